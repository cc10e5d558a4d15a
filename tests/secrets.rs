//! Secrets stay out of `--help` and of the flags' `Debug` output.

use clap::Parser;
use konflux_telemetry::daemon::RunArgs;
use std::process::Command;

/// Every environment variable the commands read, each with a value to look for.
const ENV: &[(&str, &str)] = &[
    ("SEGMENT_WRITE_KEY", "env-write-key-5f3a"),
    ("TEKTON_RESULTS_TOKEN", "env-results-token-8c1d"),
    ("CLUSTER_ID", "env-cluster-salt-77e2"),
    ("SINK_WRITE_KEY", "env-sink-key-2b9c"),
    ("SEGMENT_API_URL", "https://env-segment-url-4d4d.example/v1"),
    (
        "SEGMENT_BATCH_API",
        "https://env-batch-url-9a9a.example/v1/batch",
    ),
    (
        "TEKTON_RESULTS_API_ADDR",
        "https://env-results-addr-1e1e.example",
    ),
    ("KUBECONFIG", "/env-kubeconfig-3c3c"),
    ("SA_TOKEN_PATH", "/env-token-path-6b6b"),
    ("KONFLUX_VERSION", "env-konflux-version-0f0f"),
];

fn help(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_konflux-telemetry"));
    cmd.args(args);
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run --help");
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn help_shows_no_environment_value() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["run", "-h"],
        &["transform", "--help"],
    ] {
        let text = help(args);
        assert!(text.contains("Usage"), "{args:?}: {text}");
        for (name, value) in ENV {
            assert!(
                !text.contains(value),
                "{args:?} prints the value of {name}:\n{text}"
            );
        }
    }
    // The variables themselves are still named, so a user knows they exist.
    let run = help(&["run", "--help"]);
    assert!(run.contains("CLUSTER_ID") && run.contains("SEGMENT_WRITE_KEY"));
}

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

#[test]
fn the_flags_debug_output_holds_no_secret() {
    let cli = Cli::try_parse_from([
        "konflux-telemetry",
        "--segment-write-key",
        "flag-write-key-aa11",
        "--tekton-results-token",
        "flag-results-token-bb22",
        "--cluster-id",
        "flag-cluster-salt-cc33",
    ])
    .expect("flags parse");
    let text = format!("{cli:?} {:#?}", cli.run);
    for secret in [
        "flag-write-key-aa11",
        "flag-results-token-bb22",
        "flag-cluster-salt-cc33",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("<redacted>"), "{text}");
    // The values are still there for the code that uses them.
    let key = cli
        .run
        .segment
        .segment_write_key
        .as_ref()
        .map(|k| k.expose());
    assert_eq!(key, Some("flag-write-key-aa11"));
}
