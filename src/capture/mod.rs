//! The capture paths at the edge of the daemon: watchers on the API server
//! ([`watch`]), the cluster identity ([`identity`]) and the live ConfigMaps
//! ([`config_maps`]). They turn what the cluster says into [`crate::pipeline::observation`]s and
//! settings; the mapping to events is [`crate::events`].

pub mod config_maps;
pub mod guarded_watch;
pub mod identity;
pub mod retry;
pub mod watches;
