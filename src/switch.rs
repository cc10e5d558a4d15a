//! The telemetry switch: whether the daemon sends anything at all.
//!
//! One rule, [`decide`], from two inputs: what the Konflux CR named `konflux` says in
//! `spec.telemetry.enabled` (the user's opt-out, which the Konflux operator also obeys by
//! removing the old bridge), and the daemon's own ConfigMap key `telemetryEnabled`. The CR,
//! where it sets the field, wins; where the CR is absent or leaves the field unset, the
//! daemon's configuration decides. Until the CR has been listed once, the answer is
//! [`Switch::Pending`]: events are buffered but nothing is sent.
//!
//! What each answer does is in [`crate::daemon`] (sending, the relist on resume) and
//! [`crate::pipeline::Core::set_enabled`] (dropping the buffer).

use crate::events::object::KONFLUX_NAME;
use crate::events::{Decoded, Object};

/// What the Konflux CR says about telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrSays {
    /// Not listed yet.
    Pending,
    /// No CR named `konflux` (never created, deleted, or its CRD is not installed).
    Absent,
    /// The CR exists and leaves `spec.telemetry.enabled` unset.
    Unset,
    /// The CR's `spec.telemetry.enabled`.
    Set(bool),
}

impl CrSays {
    /// What a watched `konflux` CR (or its absence) says. `None` when the object could not
    /// be read: the last known answer stands.
    pub fn of(watched: Option<&Decoded>) -> Option<CrSays> {
        match watched {
            None => Some(CrSays::Absent),
            Some(Decoded::Object(Object::Konflux(k))) => {
                if k.meta.name.as_deref() != Some(KONFLUX_NAME) {
                    return None;
                }
                Some(k.telemetry_enabled.map_or(CrSays::Unset, CrSays::Set))
            }
            Some(Decoded::Object(_) | Decoded::NoEvents | Decoded::Skipped(_)) => None,
        }
    }
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
    /// The daemon's ConfigMap (`telemetryEnabled`), the CR being absent or silent.
    Config,
    /// Nobody yet.
    Pending,
}

impl DecidedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::KonfluxCr => "the Konflux CR's spec.telemetry.enabled",
            DecidedBy::Config => "the daemon's telemetryEnabled setting",
            DecidedBy::Pending => "nothing yet (the Konflux CR is being read)",
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
}

/// The rule: the CR's field where set, else the daemon's own `telemetryEnabled`.
pub fn decide(cr: CrSays, configured: bool) -> Decision {
    let on_off = |on: bool| if on { Switch::On } else { Switch::Off };
    match cr {
        CrSays::Pending => Decision::PENDING,
        CrSays::Set(on) => Decision {
            switch: on_off(on),
            by: DecidedBy::KonfluxCr,
        },
        CrSays::Absent | CrSays::Unset => Decision {
            switch: on_off(configured),
            by: DecidedBy::Config,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::decode_one;

    #[test]
    fn the_cr_wins_where_it_says_and_the_config_decides_otherwise() {
        for configured in [true, false] {
            for (cr, switch, by) in [
                (CrSays::Set(true), Switch::On, DecidedBy::KonfluxCr),
                (CrSays::Set(false), Switch::Off, DecidedBy::KonfluxCr),
                (CrSays::Pending, Switch::Pending, DecidedBy::Pending),
            ] {
                assert_eq!(
                    decide(cr, configured),
                    Decision { switch, by },
                    "{cr:?} {configured}"
                );
            }
            for cr in [CrSays::Absent, CrSays::Unset] {
                let d = decide(cr, configured);
                assert_eq!(d.by, DecidedBy::Config);
                assert_eq!(d.is_on(), configured, "{cr:?}");
                assert_eq!(d.is_off(), !configured, "{cr:?}");
            }
        }
        assert!(!Decision::PENDING.is_on() && !Decision::PENDING.is_off());
    }

    fn cr(name: &str, spec: serde_json::Value) -> Decoded {
        let json = serde_json::json!({"apiVersion": "konflux.konflux-ci.dev/v1alpha1",
            "kind": "Konflux", "metadata": {"uid": "u", "name": name}, "spec": spec});
        decode_one(json.to_string().as_bytes())
    }

    #[test]
    fn what_the_cr_says_is_read_from_spec_telemetry_enabled() {
        use serde_json::json;
        let says = |d: Decoded| CrSays::of(Some(&d));
        assert_eq!(CrSays::of(None), Some(CrSays::Absent));
        assert_eq!(
            says(cr("konflux", json!({"telemetry": {"enabled": false}}))),
            Some(CrSays::Set(false))
        );
        assert_eq!(
            says(cr("konflux", json!({"telemetry": {"enabled": true}}))),
            Some(CrSays::Set(true))
        );
        for unset in [
            json!({}),
            json!({"telemetry": {}}),
            json!({"telemetry": null}),
        ] {
            assert_eq!(
                says(cr("konflux", unset.clone())),
                Some(CrSays::Unset),
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
