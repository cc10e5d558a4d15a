//! konflux-telemetry: anonymous usage events from a Konflux cluster, for Segment.
//!
//! Where things live:
//! - [`events`]: the wire contract. Pure functions from decoded objects to Segment
//!   `track` events; no I/O. `events::pipelinerun` is where a PipelineRun becomes events.
//! - [`transform`]: the offline NDJSON transformer (`konflux-telemetry transform`).

pub mod events;
pub mod observation;
pub mod segment;
pub mod sink;
pub mod transform;

/// Every error this crate returns to a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An object could not be decoded into the fields the event model reads.
    #[error("malformed object: {0}")]
    Decode(#[from] events::DecodeError),

    /// Reading input or writing output failed.
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A setting (flag, environment variable, ConfigMap key) has a value that cannot be used.
    #[error("invalid setting {key}: {reason}")]
    Config { key: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `context.library` of every event: this project's name and version.
pub const LIBRARY_NAME: &str = env!("CARGO_PKG_NAME");
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");
