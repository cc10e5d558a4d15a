//! The standing totals, counted at a window's end by listing the cluster page by page
//! ([`super::listing`]: bounded by bytes): metadata only where the count is all, the
//! objects themselves where their status says how they ended (Releases). Nothing is kept
//! of a listing but the counts.
//!
//! A kind whose CRD is not installed (404) is not counted: its property is left out, not
//! sent as 0, and that is logged once per kind until it is counted again.

use super::activity::{Outcome, WindowActivity};
use super::event::Totals;
use super::listing::{self, Form, Listed, Named, WithStatus};
use super::window::Window;
use crate::events::Timestamp;
use crate::events::object::{self, Counted, Kind};
use kube::Client;
use std::collections::{BTreeMap, HashSet};
use tracing::{info, warn};

/// A Release's outcome if it completed in `window`, from its status: `completionTime`,
/// and the reason of its condition `Released`.
pub fn release_outcome(status: &serde_json::Value, window: Window) -> Option<Outcome> {
    let done = Timestamp::parse(status.get("completionTime")?.as_str()?).ok()?;
    if !window.contains(done.unix_seconds()) {
        return None;
    }
    let reason = status
        .get("conditions")
        .and_then(serde_json::Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Released"))
        .and_then(|c| c.get("reason"))
        .and_then(serde_json::Value::as_str);
    Some(Outcome::of_reason(reason))
}

/// Counts the standing totals at the end of `window`, and the tenant namespaces where
/// `activity` saw a run. `missing` holds the kinds logged as not served, so each is logged
/// once.
pub async fn totals(
    client: &Client,
    window: Window,
    activity: &WindowActivity,
    missing: &mut HashSet<Kind>,
) -> Totals {
    let mut totals = Totals::default();
    for (w, counted) in object::counted() {
        let mut n = 0u64;
        let mut active = 0u64;
        let mut releases: BTreeMap<String, u64> = BTreeMap::new();
        let listed = match counted {
            Counted::Total => {
                listing::each(client, w, Form::Metadata, |o: Named| {
                    n += 1;
                    if w.kind == Kind::Namespace && activity.ran_in(o.name()) {
                        active += 1;
                    }
                })
                .await
            }
            Counted::CompletedByOutcome => {
                listing::each(client, w, Form::Whole, |o: WithStatus| {
                    let outcome = o.status.and_then(|s| release_outcome(&s, window));
                    if let Some(outcome) = outcome {
                        *releases.entry(outcome.as_str().to_owned()).or_default() += 1;
                    }
                })
                .await
            }
        };
        match listed {
            Ok(Listed::Read) => {
                if missing.remove(&w.kind) {
                    info!(kind = %w.kind, "counted again for the usage summary");
                }
            }
            Ok(Listed::NotServed) => {
                if missing.insert(w.kind) {
                    warn!(
                        kind = %w.kind,
                        "{}.{} is not served (is its CRD installed?): the usage summary leaves its count out",
                        w.plural,
                        w.group
                    );
                }
                continue;
            }
            Err(e) => {
                warn!(kind = %w.kind, "the usage summary leaves a count out: {e}");
                continue;
            }
        }
        match w.kind {
            Kind::Namespace => {
                totals.tenant_namespaces = Some(n);
                totals.active_tenant_namespaces = Some(active);
            }
            Kind::Component => totals.components = Some(n),
            Kind::Application => totals.applications = Some(n),
            Kind::IntegrationTestScenario => totals.integration_test_scenarios = Some(n),
            Kind::ReleasePlan => totals.release_plans = Some(n),
            Kind::Release => totals.releases = Some(releases),
            Kind::PipelineRun | Kind::Konflux | Kind::Other => {}
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_counts_in_the_window_of_its_completion_by_its_reason() {
        let window = Window {
            start: 1_767_225_600,
            end: 1_767_225_600 + 3_600,
        };
        let release = |done: &str, reason: Option<&str>| {
            let mut c = serde_json::json!({"type": "Released", "status": "True"});
            if let Some(r) = reason {
                c["reason"] = r.into();
            }
            serde_json::json!({"completionTime": done, "conditions": [c]})
        };
        let inside = "2026-01-01T00:30:00Z";
        assert_eq!(
            release_outcome(&release(inside, Some("Succeeded")), window),
            Some(Outcome::Succeeded)
        );
        assert_eq!(
            release_outcome(&release(inside, Some("Failed")), window),
            Some(Outcome::Failed)
        );
        assert_eq!(
            release_outcome(&release(inside, None), window),
            Some(Outcome::Unknown)
        );
        assert_eq!(
            release_outcome(&release("2026-01-01T01:00:00Z", Some("Succeeded")), window),
            None
        );
        assert_eq!(release_outcome(&serde_json::json!({}), window), None);
        assert_eq!(release_outcome(&serde_json::json!("done"), window), None);
    }
}
