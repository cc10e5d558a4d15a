//! A client for the Tekton Results REST API (the grpc-gateway of the Results API server),
//! just enough to list the PipelineRun records changed within a lookback window.
//!
//! `GET {addr}/apis/results.tekton.dev/v1alpha2/parents/{parent}/results/-/records`
//! with `filter` = a CEL expression on `data_type`, `order_by=update_time desc` and
//! `page_size`, following `next_page_token` until it is empty.
//!
//! The Records CEL environment of the server (tektoncd/results v0.20
//! `pkg/api/server/cel/env.go` `NewRecordsEnv`) has no `update_time` variable, so the
//! lookback cannot be a server-side filter. Instead records come newest first and the
//! listing stops at the first record last updated before the window: the sweep never
//! reads more than the window (plus one page) however long the history is.
//!
//! The environment does have `data` (the stored object, a `jsonb` column): a sweep that
//! knows the lookback's start also asks only for runs started or completed since then
//! (`data.status.startTime` / `data.status.completionTime`, the instants of the only two
//! events a PipelineRun has), which drops records updated within the window for any
//! other reason (a re-write at pruning, long after the run). That bound is the lookback,
//! never the incremental window: a record the watcher wrote late must still be read.
//! The times are compared as strings (Kubernetes writes them `YYYY-MM-DDTHH:MM:SSZ`, so
//! string order is time order), not with CEL `timestamp()`: that becomes a PostgreSQL
//! cast, and one record whose time does not cast fails the query, which Results v0.20
//! answers with an empty page and code OK (measured), silently ending the sweep. Should
//! the server refuse the filter, the listing starts again with `data_type` alone.
//!
//! Pages are fetched and decoded one at a time ([`RecordPages`]): memory is bounded by the
//! page size, never by the number of records. Within a page, records are decoded one at a
//! time as the page is parsed (`decode`): a page holds at most the records asked for
//! (more is a malformed page), and records past the window's start are skipped unread. A
//! page token is at most [`MAX_PAGE_TOKEN_BYTES`], and the tokens a listing saw are kept
//! as 16-byte digests, at most one a page ([`MAX_PAGES`]).
//!
//! The parts: `client` builds the HTTP client (address, TLS, the bearer token and its
//! file cache) and sends one request; `paging` lists page after page within its guards
//! (the filter text, page tokens, the page and time caps, the page body cap);
//! `decode` reads a page body record by record. `fake` (tests only) is a loopback HTTP(S) server.

pub mod address;
mod client;
mod decode;
pub mod discovery;
mod error;
mod paging;
pub mod tls;

#[cfg(test)]
pub(super) mod fake;

pub use client::{
    DEFAULT_PAGE_SIZE, DEFAULT_SA_TOKEN_PATH, MAX_PAGE_SIZE, MIN_PAGE_SIZE, ResultsClient,
    ResultsConfig, SERVER_MAX_PAGE_SIZE, TokenSource, clamp_page_size, parse_addr,
};
pub use decode::MAX_PAGE_TOKEN_BYTES;
pub use discovery::{Found, Located, Override, Resolver};
pub use error::{ErrorKind, SetupError, SweepError};
pub use paging::{DEFAULT_DEADLINE, MAX_PAGE_BYTES, MAX_PAGES, PIPELINERUN_TYPES, RecordPages};
pub use tls::TlsPolicy;

use crate::events::Object;

/// One record of a page, decoded.
// Mostly `Object`s, each moved on into an `Observation`: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum RecordOutcome {
    /// An object the event model reads.
    Object(Object),
    /// Decoded, but nothing the event model has events for.
    NoEvents,
    /// Its value is not base64, not JSON, or not a PipelineRun the model can read. The
    /// reason names a field, never a value.
    Undecodable(String),
}

/// One page: its records (only those within the window) and whether the listing goes on.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<RecordOutcome>,
    /// Records the server returned on this page, including any past the window.
    pub read: usize,
    /// Bytes of the page body received.
    pub bytes: usize,
}
