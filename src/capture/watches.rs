//! The watches at run time: every watched kind ([`crate::capture::guarded_watch::run_all`]),
//! started over when telemetry comes back on after being off, so that their relist
//! produces what lies within the lookback and was not sent (the catch-up).

use crate::capture::guarded_watch::{self, Readiness};
use crate::pipeline::metrics::CoreMetrics;
use crate::pipeline::observation::ObservationTx;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Runs the watches until `stop`, starting them over at each off-then-on of `sending`
/// (`None` while the telemetry switch is pending: see
/// [`crate::switch::Decision::sending`]).
pub async fn run(
    client: kube::Client,
    tx: ObservationTx,
    metrics: CoreMetrics,
    readiness: Readiness,
    mut sending: watch::Receiver<Option<bool>>,
    stop: CancellationToken,
) {
    loop {
        let generation = stop.child_token();
        let watches = guarded_watch::run_all(
            client.clone(),
            tx.clone(),
            metrics.clone(),
            readiness.clone(),
            generation.clone(),
        );
        let resumed = async {
            sending.wait_for(|s| *s == Some(false)).await?;
            sending.wait_for(|s| *s == Some(true)).await.map(|_| ())
        };
        tokio::pin!(watches);
        tokio::select! {
            () = stop.cancelled() => {
                generation.cancel();
                watches.await;
                return;
            }
            () = &mut watches => return,
            // Disabled if the switch is gone: the watches then run until stop.
            Ok(()) = resumed => {}
        }
        info!("telemetry back on: the watches relist to catch up within the lookback");
        generation.cancel();
        watches.await;
    }
}
