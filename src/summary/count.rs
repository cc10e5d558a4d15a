//! The standing totals, counted at a window's end by listing the cluster page by page:
//! metadata only ([`PAGE`] objects a page) where the count is all, the objects themselves
//! ([`OBJECT_PAGE`] a page) where their status says how they ended (Releases). What one
//! listing holds at a time is one page; nothing is kept of it but the counts.
//!
//! A kind whose CRD is not installed (404) is not counted: its property is left out, not
//! sent as 0, and that is logged once per kind until it is counted again.

use super::activity::{Outcome, WindowActivity};
use super::event::Totals;
use super::window::Window;
use crate::events::Timestamp;
use crate::events::object::{self, Counted, Kind, WatchedKind};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectList};
use std::collections::{BTreeMap, HashSet};
use tracing::{info, warn};

/// Objects a page of a metadata listing.
pub const PAGE: u32 = 500;
/// Objects a page of a listing of whole objects. Bounded by bytes, not by habit: an object
/// can be as large as the API server takes (etcd's 1.5 MB), so a page is at most ~12 MB
/// of body whatever tenants put in their Releases, well inside the Pod's 128Mi.
pub const OBJECT_PAGE: u32 = 8;
/// Pages one listing reads at most: every listing ends (800,000 whole objects, 50 million
/// names).
pub const MAX_PAGES: usize = 100_000;

/// Why a kind could not be counted. Says which kind, never an object's name.
#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error("listing {kind} failed: {source}")]
    List {
        kind: Kind,
        #[source]
        source: kube::Error,
    },
    #[error("listing {kind} did not end within {MAX_PAGES} pages")]
    TooManyPages { kind: Kind },
}

/// What a listing found: the kind is not served (its CRD is missing), or it was read.
enum Listed {
    NotServed,
    Read,
}

fn api(client: &Client, w: &WatchedKind) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(w.group, w.version, w.name);
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, w.plural),
    )
}

fn params(w: &WatchedKind, page: u32) -> ListParams {
    let lp = ListParams::default().limit(page);
    match w.selector {
        Some(selector) => lp.labels(selector),
        None => lp,
    }
}

fn not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Calls `each` with the name of every object of `w` (that matches its selector), page
/// by page, metadata only.
async fn each_name(
    client: &Client,
    w: &WatchedKind,
    mut each: impl FnMut(&str),
) -> Result<Listed, CountError> {
    let api = api(client, w);
    let list = |lp: ListParams| {
        let api = api.clone();
        async move { api.list_metadata(&lp).await }
    };
    each_page(w, PAGE, list, |o| {
        each(o.metadata.name.as_deref().unwrap_or_default());
    })
    .await
}

/// Calls `each` with every object of `w`, page by page.
async fn each_object(
    client: &Client,
    w: &WatchedKind,
    mut each: impl FnMut(&serde_json::Value),
) -> Result<Listed, CountError> {
    let api = api(client, w);
    let list = |lp: ListParams| {
        let api = api.clone();
        async move { api.list(&lp).await }
    };
    each_page(w, OBJECT_PAGE, list, |o: &DynamicObject| each(&o.data)).await
}

/// Reads `w` with `list`, `page` objects a page, calling `each` with every object, until
/// the last page (or [`MAX_PAGES`]).
async fn each_page<T: Clone, F, Fut>(
    w: &WatchedKind,
    page: u32,
    mut list: F,
    mut each: impl FnMut(&T),
) -> Result<Listed, CountError>
where
    F: FnMut(ListParams) -> Fut,
    Fut: std::future::Future<Output = Result<ObjectList<T>, kube::Error>>,
{
    let mut lp = params(w, page);
    for _ in 0..MAX_PAGES {
        let page = match list(lp.clone()).await {
            Ok(page) => page,
            Err(e) if not_served(&e) => return Ok(Listed::NotServed),
            Err(source) => {
                return Err(CountError::List {
                    kind: w.kind,
                    source,
                });
            }
        };
        page.items.iter().for_each(&mut each);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(Listed::Read),
        }
    }
    Err(CountError::TooManyPages { kind: w.kind })
}

/// A Release's outcome if it completed in `window`: its `status.completionTime`, and the
/// reason of its condition `Released`.
pub fn release_outcome(release: &serde_json::Value, window: Window) -> Option<Outcome> {
    let status = release.get("status")?;
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
                each_name(client, w, |name| {
                    n += 1;
                    if w.kind == Kind::Namespace && activity.ran_in(name) {
                        active += 1;
                    }
                })
                .await
            }
            Counted::CompletedByOutcome => {
                each_object(client, w, |o| {
                    if let Some(outcome) = release_outcome(o, window) {
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
            serde_json::json!({"status": {"completionTime": done, "conditions": [c]}})
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
        assert_eq!(
            release_outcome(&serde_json::json!({"status": {}}), window),
            None
        );
        assert_eq!(release_outcome(&serde_json::json!({}), window), None);
    }
}
