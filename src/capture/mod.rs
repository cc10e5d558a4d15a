//! The capture paths at the edge of the daemon: the watches on the API server (one
//! guarded wrapper for every kind, [`guarded_watch`]; all kinds started over when telemetry
//! comes back on, [`watches`]; the backoff, [`retry`]), the cluster identity
//! ([`identity`]) and single ConfigMaps watched live ([`config_maps`]). They turn what the
//! cluster says into [`crate::pipeline::observation`]s and settings; the mapping to events
//! is [`crate::events`].

pub mod config_maps;
pub mod guarded_watch;
pub mod identity;
pub mod retry;
pub mod watches;
