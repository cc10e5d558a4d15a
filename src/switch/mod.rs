//! The telemetry switch: whether the daemon sends anything at all.
//!
//! One rule, [`decide`], from three inputs, in this order:
//! 1. what the Konflux CR named `konflux` says in `spec.telemetry.enabled`, where it sets
//!    the field (the user's choice, which the Konflux operator also obeys);
//! 2. else an explicit `telemetryEnabled` (the daemon's ConfigMap key, or the flag
//!    `--telemetry-enabled`), where the user wrote one;
//! 3. else the platform's default (the Konflux telemetry guide and its ADR): **off** on
//!    vanilla Kubernetes; on OpenShift (the `ClusterVersion` named `version` exists) the
//!    OpenShift console's telemetry state, decided as the console decides it
//!    ([`ConsoleSays`]).
//!
//! Until what the rule needs has been read once, the answer is [`Switch::Pending`]: events
//! are buffered but nothing is sent.
//!
//! What each answer does is in [`crate::daemon`] (sending, the relist on resume) and
//! `crate::pipeline::Core::set_enabled` (dropping the buffer).

pub mod inputs;

use crate::events::object::KONFLUX_NAME;
use crate::events::{Decoded, Object};
use std::collections::BTreeMap;

/// What the Konflux CR says about telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KonfluxSays {
    /// Not listed yet.
    Pending,
    /// No CR named `konflux` (never created, deleted, or its CRD is not installed).
    Absent,
    /// The CR exists and leaves `spec.telemetry.enabled` unset.
    Unset,
    /// The CR's `spec.telemetry.enabled`.
    Set(bool),
}

impl KonfluxSays {
    /// What a watched `konflux` CR (or its absence) says. `None` when the object could not
    /// be read: the last known answer stands.
    pub fn of(watched: Option<&Decoded>) -> Option<KonfluxSays> {
        match watched {
            None => Some(KonfluxSays::Absent),
            Some(Decoded::Object(Object::Konflux(k))) => {
                if k.meta.name.as_deref() != Some(KONFLUX_NAME) {
                    return None;
                }
                Some(
                    k.telemetry_enabled
                        .map_or(KonfluxSays::Unset, KonfluxSays::Set),
                )
            }
            Some(Decoded::Object(_) | Decoded::NoEvents | Decoded::Skipped(_)) => None,
        }
    }
}

/// What the platform says when nobody else did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformSays {
    /// Not known yet (the `ClusterVersion`, or on OpenShift the console's state, is being
    /// read).
    Pending,
    /// Vanilla Kubernetes (no `ClusterVersion` named `version`): off unless opted in.
    Kubernetes,
    /// OpenShift, and what its console's telemetry is.
    OpenShift(ConsoleSays),
}

/// The OpenShift console's telemetry, as the console decides it: off when one of the
/// console operator's annotations `telemetry.console.openshift.io/DISABLED`,
/// `.../DEVSANDBOX_DISABLED` or `.../TELEMETER_CLIENT_DISABLED` on
/// `consoles.operator.openshift.io/cluster` is `"true"`, or when the cluster opted out of
/// its own telemetry (`telemeterClient.enabled: false` in
/// `openshift-monitoring/cluster-monitoring-config`, which removes the telemeter client
/// the console operator checks); on otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleSays {
    On,
    /// Off by an annotation of the console operator's config.
    OffByConsole,
    /// Off by the cluster's telemetry opt-out (`cluster-monitoring-config`).
    OffByClusterMonitoring,
}

/// The console operator's annotations that turn the console's telemetry off when `"true"`
/// (its frontend's `DISABLED`, `DEVSANDBOX_DISABLED`, `TELEMETER_CLIENT_DISABLED`).
pub const CONSOLE_DISABLING_ANNOTATIONS: [&str; 3] = [
    "telemetry.console.openshift.io/DISABLED",
    "telemetry.console.openshift.io/DEVSANDBOX_DISABLED",
    "telemetry.console.openshift.io/TELEMETER_CLIENT_DISABLED",
];

impl ConsoleSays {
    /// From the console operator config's annotations (`None`: no such object, as on a
    /// cluster without the console capability) and whether the cluster opted out of its
    /// telemetry in `cluster-monitoring-config`.
    pub fn of(console_annotations: Option<&BTreeMap<String, String>>, opted_out: bool) -> Self {
        let disabled_by_console = console_annotations.is_some_and(|a| {
            CONSOLE_DISABLING_ANNOTATIONS
                .iter()
                .any(|k| a.get(*k).is_some_and(|v| v.trim() == "true"))
        });
        if disabled_by_console {
            ConsoleSays::OffByConsole
        } else if opted_out {
            ConsoleSays::OffByClusterMonitoring
        } else {
            ConsoleSays::On
        }
    }
}

/// Whether `cluster-monitoring-config`'s `config.yaml` turns the cluster's telemetry off
/// (`telemeterClient: {enabled: false}`). `Err` when the YAML cannot be read: the caller
/// keeps the last answer and says why.
pub fn monitoring_opts_out(config_yaml: &str) -> Result<bool, serde_norway::Error> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        telemeter_client: Option<Telemeter>,
    }
    #[derive(serde::Deserialize)]
    struct Telemeter {
        enabled: Option<bool>,
    }
    if config_yaml.trim().is_empty() {
        return Ok(false);
    }
    let config: Option<Config> = serde_norway::from_str(config_yaml)?;
    Ok(config
        .and_then(|c| c.telemeter_client)
        .and_then(|t| t.enabled)
        == Some(false))
}

/// Whether the daemon sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Sending: events are buffered and flushed.
    On,
    /// Off: nothing is buffered, nothing is sent, no connection to Segment is opened.
    Off,
    /// Not known yet (the CR is being listed): events are buffered, nothing is sent.
    Pending,
}

/// Who decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// The Konflux CR's `spec.telemetry.enabled`.
    KonfluxCr,
    /// An explicit `telemetryEnabled` (ConfigMap or flag), the CR being absent or silent.
    Config,
    /// The default on vanilla Kubernetes: off, nobody having opted in.
    KubernetesDefault,
    /// The OpenShift console's telemetry state.
    OpenShiftConsole,
    /// The cluster's telemetry opt-out in `openshift-monitoring/cluster-monitoring-config`.
    OpenShiftClusterMonitoring,
    /// Nobody yet.
    Pending,
}

impl DecidedBy {
    pub const ALL: [DecidedBy; 6] = [
        DecidedBy::KonfluxCr,
        DecidedBy::Config,
        DecidedBy::KubernetesDefault,
        DecidedBy::OpenShiftConsole,
        DecidedBy::OpenShiftClusterMonitoring,
        DecidedBy::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::KonfluxCr => "the Konflux CR's spec.telemetry.enabled",
            DecidedBy::Config => "the daemon's telemetryEnabled setting",
            DecidedBy::KubernetesDefault => {
                "the default on Kubernetes: off unless the Konflux CR's spec.telemetry.enabled or telemetryEnabled says true"
            }
            DecidedBy::OpenShiftConsole => "the OpenShift console's telemetry setting",
            DecidedBy::OpenShiftClusterMonitoring => {
                "the OpenShift cluster's telemetry opt-out (openshift-monitoring/cluster-monitoring-config)"
            }
            DecidedBy::Pending => "nothing yet (the Konflux CR and the platform are being read)",
        }
    }

    /// The metric label (`konflux_telemetry_decided_by{by=...}`).
    pub fn label(self) -> &'static str {
        match self {
            DecidedBy::KonfluxCr => "konflux_cr",
            DecidedBy::Config => "config",
            DecidedBy::KubernetesDefault => "kubernetes_default",
            DecidedBy::OpenShiftConsole => "openshift_console",
            DecidedBy::OpenShiftClusterMonitoring => "openshift_cluster_monitoring",
            DecidedBy::Pending => "pending",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub switch: Switch,
    pub by: DecidedBy,
}

impl Decision {
    pub const PENDING: Decision = Decision {
        switch: Switch::Pending,
        by: DecidedBy::Pending,
    };

    pub fn is_on(self) -> bool {
        self.switch == Switch::On
    }

    pub fn is_off(self) -> bool {
        self.switch == Switch::Off
    }

    /// `Some(true)` on, `Some(false)` off, `None` pending: what a part that only needs
    /// to know whether events are sent reads.
    pub fn sending(&self) -> Option<bool> {
        match self.switch {
            Switch::On => Some(true),
            Switch::Off => Some(false),
            Switch::Pending => None,
        }
    }

    /// `on`, `off` or `pending`.
    pub fn state(self) -> &'static str {
        match self.switch {
            Switch::On => "on",
            Switch::Off => "off",
            Switch::Pending => "pending",
        }
    }
}

/// The rule: the CR's field where set, else an explicit `telemetryEnabled`, else the
/// platform's default.
pub fn decide(cr: KonfluxSays, configured: Option<bool>, platform: PlatformSays) -> Decision {
    let on_off = |on: bool, by| Decision {
        switch: if on { Switch::On } else { Switch::Off },
        by,
    };
    match (cr, configured, platform) {
        (KonfluxSays::Pending, _, _) => Decision::PENDING,
        (KonfluxSays::Set(on), _, _) => on_off(on, DecidedBy::KonfluxCr),
        (KonfluxSays::Absent | KonfluxSays::Unset, Some(on), _) => on_off(on, DecidedBy::Config),
        (_, None, PlatformSays::Pending) => Decision::PENDING,
        (_, None, PlatformSays::Kubernetes) => on_off(false, DecidedBy::KubernetesDefault),
        (_, None, PlatformSays::OpenShift(ConsoleSays::On)) => {
            on_off(true, DecidedBy::OpenShiftConsole)
        }
        (_, None, PlatformSays::OpenShift(ConsoleSays::OffByConsole)) => {
            on_off(false, DecidedBy::OpenShiftConsole)
        }
        (_, None, PlatformSays::OpenShift(ConsoleSays::OffByClusterMonitoring)) => {
            on_off(false, DecidedBy::OpenShiftClusterMonitoring)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::decode_one;

    #[test]
    fn the_cr_wins_where_it_says_then_the_config_then_the_platform() {
        let platforms = [
            PlatformSays::Pending,
            PlatformSays::Kubernetes,
            PlatformSays::OpenShift(ConsoleSays::On),
            PlatformSays::OpenShift(ConsoleSays::OffByConsole),
        ];
        for platform in platforms {
            for configured in [None, Some(true), Some(false)] {
                for (cr, switch, by) in [
                    (KonfluxSays::Set(true), Switch::On, DecidedBy::KonfluxCr),
                    (KonfluxSays::Set(false), Switch::Off, DecidedBy::KonfluxCr),
                    (KonfluxSays::Pending, Switch::Pending, DecidedBy::Pending),
                ] {
                    let d = decide(cr, configured, platform);
                    assert_eq!(d, Decision { switch, by }, "{cr:?} {configured:?}");
                }
                for cr in [KonfluxSays::Absent, KonfluxSays::Unset] {
                    let Some(on) = configured else { continue };
                    let d = decide(cr, configured, platform);
                    assert_eq!(d.by, DecidedBy::Config);
                    assert_eq!((d.is_on(), d.is_off()), (on, !on), "{cr:?}");
                }
            }
        }
        assert!(!Decision::PENDING.is_on() && !Decision::PENDING.is_off());
    }

    #[test]
    fn nobody_said_anything_the_platform_decides() {
        for cr in [KonfluxSays::Absent, KonfluxSays::Unset] {
            let d = |p| decide(cr, None, p);
            assert_eq!(d(PlatformSays::Pending), Decision::PENDING);
            let k8s = d(PlatformSays::Kubernetes);
            assert!(k8s.is_off(), "off on vanilla Kubernetes");
            assert_eq!(k8s.by, DecidedBy::KubernetesDefault);
            let on = d(PlatformSays::OpenShift(ConsoleSays::On));
            assert_eq!((on.is_on(), on.by), (true, DecidedBy::OpenShiftConsole));
            let off = d(PlatformSays::OpenShift(ConsoleSays::OffByConsole));
            assert_eq!((off.is_off(), off.by), (true, DecidedBy::OpenShiftConsole));
            let opted_out = d(PlatformSays::OpenShift(ConsoleSays::OffByClusterMonitoring));
            assert_eq!(
                (opted_out.is_off(), opted_out.by),
                (true, DecidedBy::OpenShiftClusterMonitoring)
            );
        }
    }

    #[test]
    fn the_console_is_off_by_any_of_its_annotations_or_the_clusters_opt_out() {
        let annotations = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(ConsoleSays::of(None, false), ConsoleSays::On);
        assert_eq!(
            ConsoleSays::of(None, true),
            ConsoleSays::OffByClusterMonitoring
        );
        for key in CONSOLE_DISABLING_ANNOTATIONS {
            let a = annotations(&[(key, "true")]);
            assert_eq!(ConsoleSays::of(Some(&a), false), ConsoleSays::OffByConsole);
            let a = annotations(&[(key, "false")]);
            assert_eq!(ConsoleSays::of(Some(&a), false), ConsoleSays::On, "{key}");
        }
        let other = annotations(&[("telemetry.console.openshift.io/SEGMENT_API_KEY", "k")]);
        assert_eq!(ConsoleSays::of(Some(&other), false), ConsoleSays::On);
    }

    #[test]
    fn cluster_monitoring_config_opts_out_only_with_telemeter_client_disabled() {
        for (yaml, out) in [
            ("", false),
            ("prometheusK8s:\n  retention: 24h\n", false),
            ("telemeterClient:\n  enabled: false\n", true),
            ("telemeterClient: {enabled: false}", true),
            ("telemeterClient:\n  enabled: true\n", false),
            ("telemeterClient: {}\n", false),
        ] {
            assert_eq!(monitoring_opts_out(yaml).ok(), Some(out), "{yaml:?}");
        }
        assert!(monitoring_opts_out("telemeterClient: [unclosed").is_err());
        assert!(monitoring_opts_out("telemeterClient:\n  enabled: maybe\n").is_err());
    }

    fn cr(name: &str, spec: serde_json::Value) -> Decoded {
        let json = serde_json::json!({"apiVersion": "konflux.konflux-ci.dev/v1alpha1",
            "kind": "Konflux", "metadata": {"uid": "u", "name": name}, "spec": spec});
        decode_one(json.to_string().as_bytes())
    }

    #[test]
    fn what_the_cr_says_is_read_from_spec_telemetry_enabled() {
        use serde_json::json;
        let says = |d: Decoded| KonfluxSays::of(Some(&d));
        assert_eq!(KonfluxSays::of(None), Some(KonfluxSays::Absent));
        assert_eq!(
            says(cr("konflux", json!({"telemetry": {"enabled": false}}))),
            Some(KonfluxSays::Set(false))
        );
        assert_eq!(
            says(cr("konflux", json!({"telemetry": {"enabled": true}}))),
            Some(KonfluxSays::Set(true))
        );
        for unset in [
            json!({}),
            json!({"telemetry": {}}),
            json!({"telemetry": null}),
        ] {
            assert_eq!(
                says(cr("konflux", unset.clone())),
                Some(KonfluxSays::Unset),
                "{unset}"
            );
        }
        // another CR than `konflux` says nothing; a wrong type keeps the last answer
        assert_eq!(
            says(cr("other", json!({"telemetry": {"enabled": false}}))),
            None
        );
        let wrong = cr("konflux", json!({"telemetry": {"enabled": "false"}}));
        assert!(matches!(wrong, Decoded::Skipped(_)), "{wrong:?}");
        assert_eq!(says(wrong), None);
    }
}
