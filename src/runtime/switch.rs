//! The telemetry switch at run time: the Konflux CR watched, the rule
//! ([`crate::switch::decide`]) applied to it and to the live `telemetryEnabled`, each new
//! decision applied to the core (off drops the buffer) and published to the flusher and
//! the watches.

use crate::capture::config_maps;
use crate::capture::retry::WatchRetry;
use crate::capture::watch::{self, Lite};
use crate::events::object::{KONFLUX, KONFLUX_NAME};
use crate::pipeline::Core;
use crate::settings::Settings;
use crate::switch::{self, CrSays, Decision, Switch};
use std::sync::Arc;
use tokio::sync::watch as live;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Watches the `konflux` CR until `stop`, publishing what it says about telemetry.
pub async fn watch_cr(client: kube::Client, says: live::Sender<CrSays>, stop: CancellationToken) {
    let api: kube::Api<Lite> = kube::Api::all_with(client, &&KONFLUX);
    config_maps::watch_named(
        api,
        "the Konflux CR (for spec.telemetry.enabled)",
        KONFLUX_NAME,
        WatchRetry::default(),
        stop,
        |cr| match CrSays::of(cr.map(|c| c.clone().decode_as(&KONFLUX)).as_ref()) {
            Some(s) => {
                says.send_replace(s);
            }
            None => warn!("the Konflux CR cannot be read: the telemetry switch stays as it was"),
        },
        // No Konflux CRD: no CR to say anything. Forbidden: unknown, nothing is sent.
        |e| {
            if watch::status_code(e) == Some(404) {
                says.send_replace(CrSays::Absent);
            }
        },
    )
    .await;
}

/// Decides from what the CR says and the settings' `telemetryEnabled`, until `stop`:
/// each new decision is applied to `core` (off drops what it buffered), logged with who
/// decided, and published on `decisions`.
pub async fn decide(
    core: Arc<Core>,
    mut cr: live::Receiver<CrSays>,
    mut settings: live::Receiver<Settings>,
    decisions: live::Sender<Decision>,
    stop: CancellationToken,
) {
    let mut last = *decisions.borrow();
    loop {
        let said = *cr.borrow_and_update();
        let d = switch::decide(said, settings.borrow_and_update().telemetry_enabled);
        if d != last {
            let dropped = core.set_enabled(!d.is_off());
            let state = match d.switch {
                Switch::On => "on",
                Switch::Off => "off: nothing is buffered or sent",
                Switch::Pending => "held until the Konflux CR is read",
            };
            info!(dropped, "telemetry {state} (decided by {})", d.by.as_str());
            decisions.send_replace(d);
            last = d;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            r = cr.changed() => if r.is_err() { return },
            r = settings.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClusterIdentity, Timestamp};
    use crate::metrics::CoreMetrics;

    #[tokio::test(start_paused = true)]
    async fn the_cr_and_the_setting_decide_and_off_drops_the_buffer() {
        let core = Arc::new(Core::new(
            ClusterIdentity::new(None, None, None),
            1000,
            1 << 20,
            3600,
            CoreMetrics::default(),
        ));
        let (cr_tx, cr_rx) = live::channel(CrSays::Pending);
        let (settings_tx, settings_rx) = live::channel(Settings::default());
        let (tx, mut rx) = live::channel(Decision::PENDING);
        let stop = CancellationToken::new();
        let task = tokio::spawn(decide(
            Arc::clone(&core),
            cr_rx,
            settings_rx,
            tx,
            stop.clone(),
        ));
        core.heartbeat(Timestamp::from_unix_seconds(1_767_225_600).expect("a time"));
        assert_eq!(core.buffered(), 1);

        cr_tx.send_replace(CrSays::Absent);
        rx.changed().await.expect("a decision");
        assert!(
            rx.borrow_and_update().is_on(),
            "no CR: the setting (true) decides"
        );

        settings_tx.send_modify(|s| s.telemetry_enabled = false);
        rx.changed().await.expect("a decision");
        assert!(rx.borrow_and_update().is_off());
        assert_eq!(core.buffered(), 0, "off drops the buffer");
        assert!(!core.enabled());

        // The CR's field wins over the setting.
        cr_tx.send_replace(CrSays::Set(true));
        rx.changed().await.expect("a decision");
        let d = *rx.borrow_and_update();
        assert!(d.is_on());
        assert_eq!(d.by, switch::DecidedBy::KonfluxCr);
        assert!(core.enabled());

        stop.cancel();
        task.await.expect("the loop ends on stop");
    }
}
