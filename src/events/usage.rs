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
    pub window_start: Option<String>,
    pub window_seconds: Option<i64>,
    pub tenant_namespaces: Option<u64>,
    pub components: Option<u64>,
    pub applications: Option<u64>,
    pub integration_test_scenarios: Option<u64>,
    pub release_plans: Option<u64>,
    pub pipeline_runs: Option<BTreeMap<String, BTreeMap<&'static str, u64>>>,
    pub pipeline_run_duration_seconds: Option<BTreeMap<String, Percentiles>>,
    pub active_tenant_namespaces: Option<u64>,
    pub components_created: Option<u64>,
    pub releases: Option<BTreeMap<String, u64>>,
    pub events_produced: Option<u64>,
    pub events_sent: Option<u64>,
    pub events_dropped: Option<u64>,
}
