//! The runtime: what drives the pipeline over time and wires it to the edges.
//!
//! - [`flusher`]: when to flush, and to which output.
//! - [`heartbeat`]: the heartbeat every `heartbeatInterval`.
//! - [`live`]: the live settings from the ConfigMap, on a `watch` channel.
//! - [`switch`]: the telemetry switch decided and applied.
//! - [`watches`]: the watched kinds, started over when telemetry comes back on.
//! - [`checkpoint`]: the state ConfigMap saved and held.
//! - [`args`]: the flags, in groups, and what each group builds; [`output`]: Segment or
//!   nothing.
//!
//! [`crate::daemon`] wires them for `konflux-telemetry run`.

pub mod args;
pub mod checkpoint;
pub mod flusher;
pub mod heartbeat;
pub mod live;
pub mod output;
pub mod switch;
pub mod watches;

use crate::events::Timestamp;
use crate::observation::ObservationRx;
use crate::pipeline::Core;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Hands every observation to the core until all senders are gone.
pub async fn consume(core: Arc<Core>, mut rx: ObservationRx) {
    while let Some(obs) = rx.recv().await {
        core.observe(obs, Timestamp::now().unix_seconds());
    }
}

/// A channel of `f(settings)`, republished (when it changes) by a task in `tasks` until
/// `stop`: how a component reads its part of the live settings.
pub fn project<T, U>(
    from: &watch::Receiver<T>,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
    f: impl Fn(&T) -> U + Send + 'static,
) -> watch::Receiver<U>
where
    T: Send + Sync + 'static,
    U: PartialEq + Send + Sync + 'static,
{
    let mut from = from.clone();
    let (tx, rx) = watch::channel(f(&from.borrow_and_update()));
    let stop = stop.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                changed = from.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let next = f(&from.borrow_and_update());
                    tx.send_if_modified(|cur| {
                        let changed = *cur != next;
                        if changed {
                            *cur = next;
                        }
                        changed
                    });
                }
            }
        }
    });
    rx
}
