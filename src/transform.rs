//! `konflux-telemetry transform`: objects as NDJSON in, events as NDJSON out, then the
//! heartbeat. A drop-in for the old bridge's `tekton-to-segment.sh`.
//!
//! It streams: one line is in memory at a time. A line that is not an object the model can
//! read is skipped with one warning naming its line number and why (never its content).

use crate::events::{self, ClusterIdentity, Decoded, Timestamp};
use crate::{Error, Result};
use std::io::{BufRead, Write};

/// What a run read, wrote and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub objects: u64,
    pub events: u64,
    pub skipped: u64,
}

/// Reads `input` to its end, writes events to `output` and warnings to `warn`.
/// Errors only on I/O; malformed lines are counted in [`Summary::skipped`].
pub fn run(
    input: impl BufRead,
    mut output: impl Write,
    mut warn: impl Write,
    identity: &ClusterIdentity,
    heartbeat_at: Option<Timestamp>,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut input = input;
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|source| Error::Io {
                context: "reading input",
                source,
            })?;
        if n == 0 {
            break;
        }
        summary.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match events::decode(&line) {
            Err(e) => {
                summary.skipped += 1;
                warn_line(&mut warn, summary.lines, &e)?;
            }
            Ok(items) => {
                for item in items {
                    match item {
                        Decoded::Object(object) => {
                            summary.objects += 1;
                            for event in events::events_of(&object, identity) {
                                write_event(&mut output, &event)?;
                                summary.events += 1;
                            }
                        }
                        Decoded::NoEvents => summary.objects += 1,
                        Decoded::Skipped(e) => {
                            summary.skipped += 1;
                            warn_line(&mut warn, summary.lines, &e)?;
                        }
                    }
                }
            }
        }
    }
    let now = heartbeat_at.unwrap_or_else(Timestamp::now);
    write_event(&mut output, &events::heartbeat::event(identity, now))?;
    summary.events += 1;
    output.flush().map_err(|source| Error::Io {
        context: "writing events",
        source,
    })?;
    Ok(summary)
}

fn write_event(output: &mut impl Write, event: &events::Event) -> Result<()> {
    serde_json::to_writer(&mut *output, event)
        .map_err(std::io::Error::from)
        .and_then(|()| output.write_all(b"\n"))
        .map_err(|source| Error::Io {
            context: "writing events",
            source,
        })
}

fn warn_line(warn: &mut impl Write, line: u64, e: &events::DecodeError) -> Result<()> {
    writeln!(warn, "warning: line {line} skipped: {e}").map_err(|source| Error::Io {
        context: "writing warnings",
        source,
    })
}
