//! The `konflux-telemetry` command: wires the subcommands to the library.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use konflux_telemetry::cli::IdentityArgs;
use konflux_telemetry::events::{ClusterIdentity, Timestamp};
use konflux_telemetry::transform;
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "konflux-telemetry",
    version,
    about = "Anonymous usage events from a Konflux cluster, for Segment"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Objects as NDJSON on stdin (one `kubectl get -o json` object a line), events as NDJSON
    /// on stdout, then the heartbeat. A drop-in for the old bridge's tekton-to-segment.sh.
    Transform(TransformArgs),
    /// The daemon: watch the cluster, buffer events, send them to Segment.
    Run(Box<konflux_telemetry::daemon::RunArgs>),
}

#[derive(clap::Args)]
struct TransformArgs {
    #[command(flatten)]
    identity: IdentityArgs,
    /// Time of the heartbeat (RFC 3339); now, in whole seconds, by default.
    #[arg(long, env = "HEARTBEAT_TIMESTAMP", value_parser = Timestamp::parse)]
    heartbeat_timestamp: Option<Timestamp>,
}

/// The command line, with no environment variable's value shown by `--help` in any
/// subcommand: some are secrets, and `CLUSTER_ID` salts the hashes.
fn command() -> clap::Command {
    fn hide_env_values(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| a.hide_env_values(true))
            .mut_subcommands(hide_env_values)
    }
    hide_env_values(Cli::command())
}

fn main() -> ExitCode {
    // The one TLS crypto provider of the process (rustls' ring), before anything builds a
    // TLS configuration; the library installs none (see `konflux_telemetry::crypto`).
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("konflux-telemetry: a TLS crypto provider was installed before main");
        return ExitCode::from(1);
    }
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Transform(args) => run_transform(args),
        Command::Run(args) => run_daemon(*args),
    }
}

fn run_transform(args: TransformArgs) -> ExitCode {
    let configured = args.identity.configured();
    let identity = ClusterIdentity::new(
        configured.cluster_id,
        configured.konflux_version,
        configured.kubernetes_version,
    );
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut stderr = std::io::stderr().lock();
    match transform::run(
        stdin,
        stdout,
        &mut stderr,
        &identity,
        args.heartbeat_timestamp,
    ) {
        Ok(s) => {
            let _ = writeln!(
                stderr,
                "transform: {} objects read, {} events written, {} lines skipped",
                s.objects, s.events, s.skipped
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(stderr, "transform: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_daemon(args: konflux_telemetry::daemon::RunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("run: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(konflux_telemetry::daemon::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run: {e}");
            ExitCode::from(1)
        }
    }
}
