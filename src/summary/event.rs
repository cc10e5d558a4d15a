//! `Usage Summary`: one event per cluster per window, from the window's activity and the
//! standing totals counted at its end. Pure.

use super::activity::{Outcome, WindowActivity};
use super::window::{Window, message_id};
pub use crate::events::usage::Totals;
use crate::events::usage::{Percentiles, Usage};
use crate::events::{ClusterIdentity, Event, EventName, Properties, Timestamp};
use std::collections::BTreeMap;

/// The usage of `window`; `None` for a window ending past year 9999.
pub fn event(
    identity: &ClusterIdentity,
    window: Window,
    activity: &WindowActivity,
    totals: &Totals,
) -> Option<Event> {
    let end = window.end_timestamp()?;
    let start = Timestamp::from_unix_seconds(window.start).ok()?;
    let mut runs: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for ((kind, outcome), n) in &activity.runs {
        let outcome: Outcome = *outcome;
        *runs
            .entry(kind.clone())
            .or_default()
            .entry(outcome.as_str())
            .or_default() += n;
    }
    let durations = activity
        .durations
        .iter()
        .filter_map(|(kind, h)| {
            Some((
                kind.clone(),
                Percentiles {
                    p50: h.percentile(50)?,
                    p95: h.percentile(95)?,
                },
            ))
        })
        .collect();
    let usage = Usage {
        window_start: Some(start.as_str().to_owned()),
        window_seconds: Some(window.seconds()),
        totals: totals.clone(),
        pipeline_runs: Some(runs),
        pipeline_run_duration_seconds: Some(durations),
        components_created: Some(activity.components_created),
        events_produced: Some(activity.events_produced),
        events_sent: Some(activity.events_sent),
        events_dropped: Some(activity.events_dropped),
    };
    let properties = Properties {
        usage,
        ..Properties::common(identity)
    };
    let id = message_id(identity, &end);
    Some(Event::new(
        EventName::UsageSummary,
        id,
        end,
        identity,
        properties,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::activity::Activity;

    #[test]
    fn counts_only_and_an_absent_count_is_left_out() {
        let identity = ClusterIdentity::new(Some("c".into()), None, None);
        let now = 1_767_225_600 + 30;
        let window = Window::last_ended(now, 60);
        let mut a = Activity::new(60);
        a.own(crate::summary::activity::Own::Produced, 2, window.start);
        let totals = Totals {
            tenant_namespaces: Some(3),
            components: Some(0),
            applications: None,
            releases: Some([("succeeded".to_owned(), 2)].into()),
            ..Totals::default()
        };
        let e = event(&identity, window, &a.of(window), &totals).unwrap();
        assert_eq!(e.timestamp.as_str(), "2026-01-01T00:00:00Z");
        assert_eq!(e.name.as_str(), "Usage Summary");
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        let p = &json["properties"];
        assert_eq!(p["windowStart"], "2025-12-31T23:59:00Z");
        assert_eq!(p["windowSeconds"], 60);
        assert_eq!(p["tenantNamespaces"], 3);
        assert_eq!(p["components"], 0, "a zero is a count");
        assert!(p.get("applications").is_none(), "not counted: absent");
        assert!(p.get("activeTenantNamespaces").is_none());
        assert_eq!(p["releases"]["succeeded"], 2);
        assert_eq!(p["pipelineRuns"], serde_json::json!({}));
        assert_eq!(p["componentsCreated"], 0);
        assert!(
            e.message_id
                .ends_with("-usage-summary-2026-01-01T00:00:00Z")
        );
    }
}
