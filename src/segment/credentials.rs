//! Where events go and with which key, as the Secret says now.
//!
//! The Konflux operator writes the write key and the URL into the Secret
//! `segment-bridge-config`, and changes them under a running workload (a new
//! `segmentKeySecretRef` reaches it within a second). Environment variables from a Secret
//! are read once, at start; the Secret mounted as a volume is not: the kubelet rewrites its
//! files (within its sync period, about a minute). So with `--segment-secret-dir` the
//! daemon reads the three keys it needs from that folder ([`FILES`]), again every
//! `--segment-secret-poll`, and the next flush uses what they say. A file that is absent
//! leaves the flag's (or environment's) value; a value that cannot be used (a URL that is
//! not one, a file over [`MAX_FILE_BYTES`]) keeps the last good credentials and is logged
//! once per change, without the value.

use super::{ConfigError, DEFAULT_API_URL, WriteKey, normalize_api_url};
use crate::metrics::OutcomeLabel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The keys read from the Secret's folder: the names the operator writes.
pub const FILES: [&str; 3] = ["SEGMENT_WRITE_KEY", "SEGMENT_API_URL", "SEGMENT_BATCH_API"];

/// Largest file read: a write key is tens of bytes, a URL at most a few hundred.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What was said about the output, before the rule: each value as written, if at all.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Said {
    /// `SEGMENT_API_URL`: the API base, with or without `/batch`.
    pub api_url: Option<String>,
    /// `SEGMENT_BATCH_API`: the old bridge's full batch URL.
    pub batch_api: Option<String>,
    /// `SEGMENT_WRITE_KEY`.
    pub write_key: Option<WriteKey>,
}

crate::secret::redacted_fmt!(Said, "Said { .. }");

/// Where events go now, and with which key (none: captured and previewed, never sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The API base, without `/batch`.
    pub api_url: String,
    pub write_key: Option<WriteKey>,
}

impl Said {
    /// The rule: `SEGMENT_API_URL`, else the old bridge's `SEGMENT_BATCH_API`, else
    /// Segment's own URL; the write key when not blank.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let api_url = match (&self.api_url, &self.batch_api) {
            (Some(url), _) => normalize_api_url(url)?,
            (None, Some(batch)) => normalize_api_url(batch)?,
            (None, None) => DEFAULT_API_URL.to_owned(),
        };
        let write_key = self.write_key.clone().filter(|k| !k.is_empty());
        Ok(Credentials { api_url, write_key })
    }

    /// `self` with each value whose file is in `dir` replaced by the file's.
    pub fn with_files_of(&self, dir: &Path) -> Result<Said, SecretFileError> {
        let [key, url, batch] = FILES.map(|name| read_value(&dir.join(name)));
        Ok(Said {
            write_key: key?.map(WriteKey::new).or_else(|| self.write_key.clone()),
            api_url: url?.or_else(|| self.api_url.clone()),
            batch_api: batch?.or_else(|| self.batch_api.clone()),
        })
    }
}

/// A file of the Secret's folder that cannot be read. The value is never repeated.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{file}: {source}")]
    Io {
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: longer than {MAX_FILE_BYTES} bytes")]
    TooLong { file: &'static str },
    #[error("{file}: not UTF-8")]
    NotText { file: &'static str },
}

fn file_name(path: &Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    FILES.iter().find(|f| **f == name).copied().unwrap_or("?")
}

/// The trimmed content of `path`; `None` when the file is absent or blank.
fn read_value(path: &Path) -> Result<Option<String>, SecretFileError> {
    let file = file_name(path);
    let io = |source| SecretFileError::Io { file, source };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(SecretFileError::TooLong { file });
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText { file })?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Why reading the folder gave no new credentials.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    File(#[from] SecretFileError),
    #[error(transparent)]
    Value(#[from] ConfigError),
}

/// The credentials `dir` and the flags give now.
pub fn read(dir: &Path, flags: &Said) -> Result<Credentials, ReloadError> {
    Ok(flags.with_files_of(dir)?.credentials()?)
}

/// Reads `dir` every `every` until `stop`, publishing on `tx` each change (logged, without
/// the values, and counted in `reloads{outcome}`: `applied`, `rejected`). A folder that
/// cannot be read keeps the last good credentials and is logged once until it reads
/// again.
pub async fn follow(
    dir: PathBuf,
    flags: Said,
    every: Duration,
    tx: watch::Sender<Credentials>,
    reloads: Family<OutcomeLabel, Counter>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match read(&dir, &flags) {
            Ok(now) => {
                failing = false;
                let changed = tx.send_if_modified(|current| {
                    let changed = *current != now;
                    if changed {
                        *current = now.clone();
                    }
                    changed
                });
                if changed {
                    reloads
                        .get_or_create(&OutcomeLabel { outcome: "applied" })
                        .inc();
                    info!(
                        write_key = now.write_key.is_some(),
                        "the Segment Secret changed: the next flush sends with what it says now"
                    );
                }
            }
            Err(e) => {
                if !failing {
                    reloads
                        .get_or_create(&OutcomeLabel {
                            outcome: "rejected",
                        })
                        .inc();
                    warn!(
                        "the Segment Secret cannot be used ({e}); the last good credentials stay"
                    );
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kt-credentials-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("a temporary folder");
        d
    }

    fn flags() -> Said {
        Said {
            api_url: None,
            batch_api: Some("https://flags.example/v1/batch".into()),
            write_key: Some(WriteKey::new("flag-key")),
        }
    }

    #[test]
    fn files_override_the_flags_one_by_one_and_blank_means_absent() {
        let d = dir("override");
        let c = read(&d, &flags()).expect("no files: the flags");
        assert_eq!(c.api_url, "https://flags.example/v1");
        assert_eq!(c.write_key, Some(WriteKey::new("flag-key")));

        std::fs::write(d.join("SEGMENT_WRITE_KEY"), "rotated-key\n").expect("write");
        std::fs::write(d.join("SEGMENT_API_URL"), "   ").expect("write");
        let c = read(&d, &flags()).expect("a key file");
        assert_eq!(c.write_key, Some(WriteKey::new("rotated-key")), "trimmed");
        assert_eq!(
            c.api_url, "https://flags.example/v1",
            "a blank URL file is absent"
        );

        std::fs::write(d.join("SEGMENT_API_URL"), "https://console.example/api/v1/").expect("w");
        let c = read(&d, &flags()).expect("a URL file");
        assert_eq!(
            c.api_url, "https://console.example/api/v1",
            "over the batch URL"
        );
    }

    #[test]
    fn a_bad_value_is_an_error_that_does_not_repeat_it() {
        let d = dir("bad");
        std::fs::write(d.join("SEGMENT_API_URL"), "not a url secret-ish").expect("write");
        let e = read(&d, &flags()).expect_err("not a URL");
        assert!(!e.to_string().contains("secret-ish"), "{e}");

        std::fs::write(d.join("SEGMENT_API_URL"), vec![b'a'; 70 * 1024]).expect("write");
        let e = read(&d, &flags()).expect_err("too long");
        assert!(e.to_string().contains("SEGMENT_API_URL"), "{e}");

        std::fs::write(d.join("SEGMENT_API_URL"), [0xff, 0xfe]).expect("write");
        assert!(matches!(
            read(&d, &flags()),
            Err(ReloadError::File(SecretFileError::NotText { .. }))
        ));
    }

    #[test]
    fn debug_output_holds_no_key() {
        let said = flags();
        let c = said.credentials().expect("valid");
        for text in [format!("{said:?}"), format!("{c:?}")] {
            assert!(!text.contains("flag-key"), "{text}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_published_once_and_a_bad_one_keeps_the_last_good() {
        let d = dir("follow");
        let start = read(&d, &flags()).expect("valid");
        let (tx, mut rx) = watch::channel(start);
        let reloads = Family::<OutcomeLabel, Counter>::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow(
            d.clone(),
            flags(),
            Duration::from_secs(10),
            tx,
            reloads.clone(),
            stop.clone(),
        ));
        let count = |outcome| reloads.get_or_create(&OutcomeLabel { outcome }).get();

        std::fs::write(d.join("SEGMENT_WRITE_KEY"), "second").expect("write");
        rx.changed().await.expect("published");
        assert_eq!(
            rx.borrow_and_update().write_key,
            Some(WriteKey::new("second"))
        );
        assert_eq!(count("applied"), 1);

        std::fs::write(d.join("SEGMENT_API_URL"), "ftp://nope").expect("write");
        // The marker: the loop counted the bad value (the clock is paused: each wait
        // moves it to the loop's next read).
        while count("rejected") == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(!rx.has_changed().unwrap_or(true), "the last good stays");

        std::fs::remove_file(d.join("SEGMENT_API_URL")).expect("remove");
        std::fs::write(d.join("SEGMENT_WRITE_KEY"), "third").expect("write");
        rx.changed().await.expect("published");
        assert_eq!(rx.borrow().write_key, Some(WriteKey::new("third")));
        assert_eq!(count("rejected"), 1, "counted once while it stayed bad");
        stop.cancel();
        task.await.expect("the loop ends at stop");
    }
}
