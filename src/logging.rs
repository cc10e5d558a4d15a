//! Logging: `tracing` to stderr, with a filter the ConfigMap's `logLevel` changes live.

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// Changes the log filter of the running process.
#[derive(Clone)]
pub struct LogLevel(Option<reload::Handle<EnvFilter, Registry>>);

impl LogLevel {
    /// Applies a filter already validated by [`crate::settings`]; a no-op when logging was
    /// set up elsewhere (tests).
    pub fn set(&self, directives: &str) {
        if let (Some(handle), Ok(filter)) = (&self.0, EnvFilter::builder().parse(directives)) {
            let _ = handle.reload(filter);
        }
    }
}

/// Sets up logging once per process. `json` gives one JSON object a line.
pub fn init(level: &str, json: bool) -> LogLevel {
    let filter = EnvFilter::builder()
        .parse(level)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let ok = if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
            .is_ok()
    } else {
        registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
            .is_ok()
    };
    LogLevel(ok.then_some(handle))
}
