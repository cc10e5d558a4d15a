//! konflux-telemetry: anonymous usage events from a Konflux cluster, for Segment.
//!
//! Where things live, one folder per feature, dependencies pointing down this list's
//! layers (`tests/layering.rs` checks it):
//! - the model, pure: [`events`], the wire contract, functions from decoded objects to
//!   Segment `track` events, no I/O and no clock; `events::pipelinerun` is where a
//!   PipelineRun becomes events. [`transform`] runs it offline (`konflux-telemetry
//!   transform`).
//! - the pipeline, in memory: [`pipeline`] (observations in, de-duplicated in its ledger,
//!   `/preview` out) and [`flush`] (batching, a flush as plain data, the flusher loop).
//! - features, each its rule and its loop: [`switch`] (telemetry on or off, who decided),
//!   [`settings`] (the keys, reloaded live), [`heartbeat`], [`upgrade`], [`summary`], [`state`] (the state
//!   ConfigMap and its checkpoint).
//! - the edges: sources [`capture`] (watches, identity, ConfigMaps), [`admission`],
//!   [`sweep`] (Tekton Results); outputs [`segment`] (the HTTP client) and [`http`]
//!   (endpoints and the server every listener shares).
//! - wiring: [`daemon`] for `konflux-telemetry run` (it composes the [`metrics`] each part
//!   declares), [`cli`] (the flags of every subcommand), [`logging`], [`crypto`] (the TLS
//!   provider `main` installs).

pub mod admission;
pub mod capture;
pub mod cli;
pub mod crypto;
pub mod daemon;
pub mod events;
pub mod flush;
pub mod heartbeat;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod secret;
pub mod segment;
pub mod settings;
pub mod state;
pub mod summary;
pub mod sweep;
pub mod switch;
pub mod transform;
pub mod upgrade;

/// Every error this crate returns to a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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

    /// The kubeconfig given could not be read.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),

    /// No Kubernetes configuration could be found (in-cluster or KUBECONFIG).
    #[error("Kubernetes configuration: {0}")]
    InferConfig(#[from] kube::config::InferConfigError),

    /// The Kubernetes client could not be set up.
    #[error("Kubernetes client: {0}")]
    Kube(#[from] kube::Error),

    /// The Segment output could not be set up.
    #[error("{what}: {source}")]
    Segment {
        what: &'static str,
        #[source]
        source: segment::ConfigError,
    },

    /// No TLS crypto provider is installed (`main` installs one at start).
    #[error(transparent)]
    CryptoProvider(#[from] crypto::NoCryptoProvider),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `context.library` of every event: this project's name and version.
pub const LIBRARY_NAME: &str = env!("CARGO_PKG_NAME");
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");
