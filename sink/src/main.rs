//! `konflux-telemetry-sink`: a Segment-compatible receiver for tests and demos. Accepts
//! `POST /v1/batch`, writes the events to a file, and takes injected faults on
//! `/control/*` (see the library's documentation).

use clap::{CommandFactory, FromArgMatches, Parser};
use konflux_telemetry_sink::SinkArgs;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "konflux-telemetry-sink",
    version,
    about = "A Segment-compatible receiver for tests and demos"
)]
struct Cli {
    #[command(flatten)]
    sink: SinkArgs,
}

fn main() -> ExitCode {
    // No environment variable's value in --help: the write key is one.
    let command = Cli::command().mut_args(|a| a.hide_env_values(true));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    konflux_telemetry_sink::run_command(cli.sink)
}
