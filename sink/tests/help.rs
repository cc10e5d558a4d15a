//! `konflux-telemetry-sink --help` shows no environment variable's value: the write key
//! can come from `SINK_WRITE_KEY`.

#[test]
fn help_shows_no_write_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_konflux-telemetry-sink"))
        .arg("--help")
        .env("SINK_WRITE_KEY", "sink-key-from-env-dd44")
        .output()
        .expect("run konflux-telemetry-sink --help");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Usage") && text.contains("SINK_WRITE_KEY"),
        "{text}"
    );
    assert!(!text.contains("sink-key-from-env-dd44"), "{text}");
}
