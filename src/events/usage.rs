//! The properties of `Usage Summary` (made in [`crate::summary`]): counts only, no
//! name. Each is documented in `schema/events.json` and `docs/privacy.md`.

use serde::Serialize;
use std::collections::BTreeMap;

/// The 50th and 95th percentiles of durations, whole seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
}

/// The summary's own properties (beside the common ones).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The window's start (RFC 3339); the event's timestamp is its end.
    pub window_start: Option<String>,
    pub window_seconds: Option<i64>,
    /// The standing totals, counted at the window's end.
    #[serde(flatten)]
    pub totals: Totals,
    /// PipelineRuns that completed in the window, by `pipelineType`, then by outcome.
    pub pipeline_runs: Option<BTreeMap<String, BTreeMap<&'static str, u64>>>,
    /// Their durations by `pipelineType`.
    pub pipeline_run_duration_seconds: Option<BTreeMap<String, Percentiles>>,
    /// Components created in the window.
    pub components_created: Option<u64>,
    /// What the daemon itself produced, sent and dropped in the window.
    pub events_produced: Option<u64>,
    pub events_sent: Option<u64>,
    pub events_dropped: Option<u64>,
}

/// What was counted by listing the cluster at the window's end. `None`: not counted (the
/// kind's CRD is not installed, RBAC forbids it, or the listing failed), so the property
/// is left out rather than sent as 0.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Namespaces labelled `konflux-ci.dev/type=tenant`.
    pub tenant_namespaces: Option<u64>,
    /// Objects of each kind in the whole cluster.
    pub components: Option<u64>,
    pub applications: Option<u64>,
    pub integration_test_scenarios: Option<u64>,
    pub release_plans: Option<u64>,
    /// Tenant namespaces where a run started or completed in the window.
    pub active_tenant_namespaces: Option<u64>,
    /// Releases completed in the window, by outcome.
    pub releases: Option<BTreeMap<String, u64>>,
}
