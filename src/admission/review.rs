//! One `AdmissionReview` in, one answer out: the webhook's request path, with no I/O but a
//! `try_send` on the core's queue.
//!
//! What is read here is the caller's word, not the API server's: the observation it makes
//! is a sighting to be confirmed by the watch or the sweep (see
//! [`Sightings`](crate::pipeline::observation::Sightings)), never an event by itself.
//!
//! The review is read in two steps: the envelope with each field of `request` kept as raw
//! JSON (borrowed from the body, not copied), then only the fields needed, the object
//! through the event model's own decoder ([`Watched::decode_as`]), which skips all
//! that no event reads (most of a PipelineRun's 10 to 42 KB).
//!
//! Why not `kube::core::admission` (`AdmissionReview<DynamicObject>`, kube-core 5): it
//! decodes the whole object into a `serde_json::Value` before anything can look at it.
//! Measured on an 8 MiB review whose object holds `items` of 2.8 million empty objects
//! (the input of `docs/security.md`): peak RSS +170 MiB through kube-core, where this reader
//! skips `items` unread (+8.2 MiB, the body itself). The answer it writes is the same
//! shape `AdmissionResponse` would.

use super::metrics::{AdmissionMetrics, Outcome};
use crate::events::object::{self, Admitted};
use crate::events::{Actor, ClusterIdentity, DecodeError, Decoded, Kind, Timestamp, Watched};
use crate::pipeline::observation::{Observation, ObservationTx, Source};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

/// `apiVersion` of the answer when the request's cannot be echoed.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// Longest `request.uid` echoed, in bytes. The API server sends a UUID (36 characters);
/// a longer one is not the API server's and gets 400, so an answer never grows with it.
pub const MAX_UID_BYTES: usize = 128;
/// Longest `apiVersion` echoed, in bytes (`admission.k8s.io/v1beta1` is 24).
pub const MAX_API_VERSION_BYTES: usize = 64;

/// An answer to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// 200 with an `AdmissionReview` that allows; 400 for a body that is not one.
    pub status: u16,
    /// JSON (200) or a one-line plain-text reason (400).
    pub body: Vec<u8>,
    pub outcome: Outcome,
}

/// The request path: decodes, hands an observation to the core, allows.
pub struct Handler {
    tx: ObservationTx,
    identity: Box<dyn Fn() -> Arc<ClusterIdentity> + Send + Sync>,
    metrics: AdmissionMetrics,
    /// Unix second of the last warning per outcome, so a misconfigured webhook sending
    /// thousands of unexpected requests logs one line per outcome and interval.
    last_warned: [AtomicI64; Outcome::ALL.len()],
}

/// Seconds between two warnings about the same outcome.
const WARN_EVERY_SECONDS: i64 = 10;

impl Handler {
    /// `identity` is read at each request, so a changed cluster identity applies at once.
    pub fn new(
        tx: ObservationTx,
        identity: impl Fn() -> Arc<ClusterIdentity> + Send + Sync + 'static,
        metrics: AdmissionMetrics,
    ) -> Self {
        Self {
            tx,
            identity: Box::new(identity),
            metrics,
            last_warned: Default::default(),
        }
    }

    pub fn metrics(&self) -> &AdmissionMetrics {
        &self.metrics
    }

    /// Answers one request body. Never blocks, never fails: a body that is not an
    /// `AdmissionReview` gets a 400, anything else an allow.
    pub fn review(&self, body: &[u8]) -> Reply {
        let (operation, kind, outcome, reply) = match Envelope::read(body) {
            Err(reason) => {
                self.warn(
                    Outcome::BadRequest,
                    format_args!("not an AdmissionReview: {reason}"),
                );
                let reply = Reply {
                    status: 400,
                    body: format!("not an AdmissionReview: {reason}\n").into_bytes(),
                    outcome: Outcome::BadRequest,
                };
                ("other", "other", Outcome::BadRequest, reply)
            }
            Ok(env) => {
                let outcome = self.observe(&env);
                let reply = Reply {
                    status: 200,
                    body: env.allow(),
                    outcome,
                };
                (env.operation.label(), env.kind_label(), outcome, reply)
            }
        };
        self.metrics.count(operation, kind, outcome);
        reply
    }

    fn observe(&self, env: &Envelope<'_>) -> Outcome {
        if env.dry_run {
            return Outcome::DryRun;
        }
        if env.sub_resource {
            return self.unexpected(env, " subresource", &"objects only");
        }
        let admitted = env.kind.and_then(Kind::watched).and_then(|w| w.admitted);
        let (kind, field, raw) = match (env.operation, env.kind, admitted) {
            (Operation::Create, Some(kind), Some(Admitted::Create)) => {
                (kind, "request.object", env.object)
            }
            (Operation::Delete, Some(kind), Some(Admitted::Delete)) => {
                (kind, "request.oldObject", env.old_object)
            }
            _ => return self.unexpected(env, "", &RegisteredFor),
        };
        let Some(raw) = raw else {
            self.warn(Outcome::Undecodable, format_args!("{kind}: no {field}"));
            return Outcome::Undecodable;
        };
        let decoded = match serde_json::from_str::<Watched>(raw.get()) {
            Ok(w) => w.decode_as(kind),
            // Cannot happen: the raw value was read as JSON already.
            Err(_) => Decoded::Skipped(DecodeError::Syntax(format!("{field} is not JSON"))),
        };
        let mut object = match decoded {
            Decoded::Object(o) if o.counts() => o,
            Decoded::Object(_) | Decoded::NoEvents => return Outcome::Ignored,
            Decoded::Skipped(e) => {
                self.warn(Outcome::Undecodable, format_args!("{field}: {e}"));
                return Outcome::Undecodable;
            }
        };
        if admitted == Some(Admitted::Delete) {
            // Admission sees the request to delete, before any finalizer holds the
            // object: the removal starts now.
            object.mark_deleted_now();
        }
        let actor = env
            .username
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(|u| Actor::new(u, &(self.identity)()));
        match self.tx.try_send(Observation {
            source: Source::Admission,
            object,
            actor,
        }) {
            Ok(()) => Outcome::Observed,
            Err(TrySendError::Full(_)) => {
                self.warn(Outcome::Dropped, format_args!("the core's queue is full: an observation is lost (the watch still sees the object)"));
                Outcome::Dropped
            }
            Err(TrySendError::Closed(_)) => {
                debug!("admission: the core is stopping; observation not taken");
                Outcome::Dropped
            }
        }
    }

    /// At most one warning per outcome every [`WARN_EVERY_SECONDS`]; the rest at debug.
    /// Messages name kinds, operations and fields, never a value from the request.
    /// A request the webhook is not registered for (`registered` says what it is
    /// registered for): allowed, logged, counted.
    fn unexpected(
        &self,
        env: &Envelope<'_>,
        of: &str,
        registered: &dyn std::fmt::Display,
    ) -> Outcome {
        let (operation, kind) = (env.operation.label(), env.kind_label());
        self.warn(
            Outcome::Unexpected,
            format_args!(
                "a {operation} of a {kind}{of}: the webhook is registered for {registered}"
            ),
        );
        Outcome::Unexpected
    }

    fn warn(&self, outcome: Outcome, message: std::fmt::Arguments<'_>) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        let now = Timestamp::now().unix_seconds();
        let last = self.last_warned[i].load(Ordering::Relaxed);
        if now - last >= WARN_EVERY_SECONDS
            && self.last_warned[i]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(
                outcome = outcome.as_str(),
                "admission: {message} (allowed; see konflux_telemetry_admission_requests_total)"
            );
        } else {
            debug!(outcome = outcome.as_str(), "admission: {message}");
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Create,
    Update,
    Delete,
    Connect,
    Other,
}

impl Operation {
    fn of(s: &str) -> Self {
        match s {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => Operation::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
            Operation::Other => "other",
        }
    }
}

/// What the webhook is registered for, from the table of watched kinds: `CREATE of
/// PipelineRun, Component, Namespace; DELETE of Konflux`. Written only when a warning is
/// (warnings are rate-limited), never built per request.
struct RegisteredFor;

impl std::fmt::Display for RegisteredFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let operations = [(Admitted::Create, "CREATE"), (Admitted::Delete, "DELETE")];
        for (i, (admitted, operation)) in operations.iter().enumerate() {
            f.write_str(if i == 0 { "" } else { "; " })?;
            write!(f, "{operation} of ")?;
            let kinds = object::WATCHED
                .iter()
                .filter(|w| w.admitted == Some(*admitted));
            for (j, w) in kinds.enumerate() {
                write!(f, "{}{}", if j == 0 { "" } else { ", " }, w.name)?;
            }
        }
        Ok(())
    }
}

/// A JSON object read with each of the named fields (camelCase in JSON) kept raw,
/// borrowed from the body, and read later with [`lenient`].
macro_rules! raw_fields {
    ($(#[$doc:meta])* struct $name:ident { $($field:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct $name<'a> {
            $(
                #[serde(borrow)]
                $field: Option<&'a RawValue>,
            )*
        }
    };
}

raw_fields! {
    /// The review's outer layer, every field raw.
    struct WireReview { api_version, kind, request }
}

raw_fields! {
    /// `request`, every field raw: a field of an unexpected type is treated as absent
    /// rather than failing the whole review.
    struct WireRequest {
        uid,
        kind,
        sub_resource,
        operation,
        user_info,
        object,
        old_object,
        dry_run,
    }
}

#[derive(Deserialize)]
struct WireGvk {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
}

/// Of `userInfo`, the user name only: groups, uid and extra are never read.
#[derive(Deserialize)]
struct WireUserInfo {
    username: Option<String>,
}

/// What the webhook reads of a review.
struct Envelope<'a> {
    api_version: String,
    uid: String,
    kind: Option<Kind>,
    sub_resource: bool,
    operation: Operation,
    username: Option<String>,
    object: Option<&'a RawValue>,
    old_object: Option<&'a RawValue>,
    dry_run: bool,
}

fn lenient<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// Why a body is not an `AdmissionReview`: names a field, never a value. The JSON parser's
/// error is not kept as a source on purpose: its text quotes the body (a request object
/// may carry secrets); its category and position are what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum NotAReview {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("unexpected end of input")]
    Truncated,
    #[error("not JSON (invalid syntax at line {line} column {column})")]
    Syntax { line: usize, column: usize },
    #[error("kind is not AdmissionReview")]
    Kind,
    #[error("apiVersion is not admission.k8s.io/*")]
    ApiVersion,
    #[error("no request")]
    NoRequest,
    #[error("request is not an object")]
    RequestNotAnObject,
    #[error("no request.uid")]
    NoUid,
    #[error("request.uid is longer than {MAX_UID_BYTES} bytes")]
    UidTooLong,
}

impl<'a> Envelope<'a> {
    /// Fails, with a reason naming the field (never a value), when the body is not an
    /// `AdmissionReview` with a request and its uid.
    fn read(body: &'a [u8]) -> Result<Self, NotAReview> {
        let review: WireReview<'a> = serde_json::from_slice(body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => NotAReview::NotAnObject,
                Category::Eof => NotAReview::Truncated,
                _ => NotAReview::Syntax {
                    line: e.line(),
                    column: e.column(),
                },
            }
        })?;
        let kind: Option<String> = lenient(review.kind);
        if kind.as_deref() != Some("AdmissionReview") {
            return Err(NotAReview::Kind);
        }
        let api_version: String = review
            .api_version
            // a JSON string of at most that many bytes is at most that long, escaped
            .filter(|raw| raw.get().len() <= 6 * MAX_API_VERSION_BYTES + 2)
            .and_then(|raw| lenient(Some(raw)))
            .filter(|v: &String| {
                v.starts_with("admission.k8s.io/") && v.len() <= MAX_API_VERSION_BYTES
            })
            .ok_or(NotAReview::ApiVersion)?;
        let request = review.request.ok_or(NotAReview::NoRequest)?;
        let request: WireRequest<'a> =
            serde_json::from_str(request.get()).map_err(|_| NotAReview::RequestNotAnObject)?;
        // Measured before it is copied: at most 6 bytes of JSON (`\uXXXX`) a byte.
        if request
            .uid
            .is_some_and(|raw| raw.get().len() > 6 * MAX_UID_BYTES + 2)
        {
            return Err(NotAReview::UidTooLong);
        }
        let uid: String = lenient(request.uid)
            .filter(|u: &String| !u.is_empty())
            .ok_or(NotAReview::NoUid)?;
        if uid.len() > MAX_UID_BYTES {
            return Err(NotAReview::UidTooLong);
        }
        let gvk: Option<WireGvk> = lenient(request.kind);
        let kind = gvk.and_then(|g| {
            let group = g.group.unwrap_or_default();
            let version = g.version.unwrap_or_default();
            let api_version = if group.is_empty() {
                version
            } else {
                format!("{group}/{version}")
            };
            Kind::of(&api_version, g.kind.as_deref()?)
        });
        let sub_resource = lenient::<String>(request.sub_resource).is_some_and(|s| !s.is_empty());
        let operation =
            lenient::<String>(request.operation).map_or(Operation::Other, |o| Operation::of(&o));
        let username = lenient::<WireUserInfo>(request.user_info).and_then(|u| u.username);
        Ok(Envelope {
            api_version,
            uid,
            kind,
            sub_resource,
            operation,
            username,
            object: request.object,
            old_object: request.old_object,
            dry_run: lenient::<bool>(request.dry_run).unwrap_or(false),
        })
    }

    fn kind_label(&self) -> &'static str {
        self.kind.map_or("other", Kind::as_str)
    }

    /// The allowing `AdmissionReview`, with the request's uid and `apiVersion`.
    fn allow(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": self.api_version,
            "kind": "AdmissionReview",
            "response": {"uid": self.uid, "allowed": true},
        }))
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ActorType, Object};

    #[test]
    fn what_the_webhook_is_registered_for_comes_from_the_table() {
        assert_eq!(
            RegisteredFor.to_string(),
            "CREATE of PipelineRun, Component, Namespace; DELETE of Konflux"
        );
    }
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    fn handler(capacity: usize) -> (Handler, mpsc::Receiver<Observation>) {
        let (tx, rx) = mpsc::channel(capacity);
        let identity = Arc::new(ClusterIdentity::new(Some("c1".into()), None, None));
        (
            Handler::new(
                tx,
                move || Arc::clone(&identity),
                AdmissionMetrics::default(),
            ),
            rx,
        )
    }

    fn review(operation: &str, gvk: (&str, &str, &str), object: Value, user: &str) -> Value {
        let (group, version, kind) = gvk;
        let mut request = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": "x"},
            "operation": operation,
            "userInfo": {"username": user, "groups": ["g-secret"], "uid": "u-secret", "extra": {"e": ["x-secret"]}},
            "dryRun": false,
        });
        let field = if operation == "DELETE" {
            "oldObject"
        } else {
            "object"
        };
        request[field] = object;
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    }

    fn component() -> Value {
        json!({
            "apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Component",
            "metadata": {"name": "web", "namespace": "tenant-a", "uid": "c-uid", "creationTimestamp": "2026-03-03T10:00:00Z"},
            "spec": {"application": "app"}
        })
    }

    const COMPONENT: (&str, &str, &str) = ("appstudio.redhat.com", "v1alpha1", "Component");

    fn allowed(reply: &Reply) -> Value {
        assert_eq!(reply.status, 200);
        let v: Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(v["response"]["allowed"], true);
        v
    }

    #[test]
    fn a_component_creation_is_observed_with_its_actor() {
        let (h, mut rx) = handler(4);
        let body = review("CREATE", COMPONENT, component(), "alice").to_string();
        let reply = h.review(body.as_bytes());
        let v = allowed(&reply);
        assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(reply.outcome, Outcome::Observed);
        let obs = rx.try_recv().expect("an observation");
        assert_eq!(obs.source, Source::Admission);
        assert_eq!(obs.object.meta().uid, "c-uid");
        let identity = ClusterIdentity::new(Some("c1".into()), None, None);
        assert_eq!(obs.actor, Some(Actor::new("alice", &identity)));
        assert_eq!(obs.actor.map(|a| a.kind), Some(ActorType::User));
    }

    #[test]
    fn actor_types() {
        let (h, mut rx) = handler(4);
        for (user, kind) in [
            (
                "system:serviceaccount:ns:builder",
                ActorType::ServiceAccount,
            ),
            ("system:admin", ActorType::System),
        ] {
            let body = review("CREATE", COMPONENT, component(), user).to_string();
            h.review(body.as_bytes());
            assert_eq!(
                rx.try_recv().expect("observation").actor.map(|a| a.kind),
                Some(kind)
            );
        }
    }

    #[test]
    fn dry_run_allows_and_observes_nothing() {
        let (h, mut rx) = handler(4);
        let mut r = review("CREATE", COMPONENT, component(), "alice");
        r["request"]["dryRun"] = json!(true);
        let reply = h.review(r.to_string().as_bytes());
        allowed(&reply);
        assert_eq!(reply.outcome, Outcome::DryRun);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn konflux_deletion_starts_the_removal_now() {
        let (h, mut rx) = handler(4);
        let konflux = json!({
            "apiVersion": "konflux.konflux-ci.dev/v1alpha1", "kind": "Konflux",
            "metadata": {"name": "konflux", "uid": "k-uid", "creationTimestamp": "2026-03-03T10:00:00Z"}
        });
        let body = review(
            "DELETE",
            ("konflux.konflux-ci.dev", "v1alpha1", "Konflux"),
            konflux,
            "bob",
        )
        .to_string();
        let reply = h.review(body.as_bytes());
        allowed(&reply);
        assert_eq!(reply.outcome, Outcome::Observed);
        let obs = rx.try_recv().expect("observation");
        let Object::Konflux(k) = &obs.object else {
            panic!("{obs:?}")
        };
        let at = k
            .meta
            .deletion_timestamp
            .as_ref()
            .expect("deletion time")
            .unix_seconds();
        assert!((Timestamp::now().unix_seconds() - at).abs() <= 2);
        let events = crate::events::events_of(&obs.object, &ClusterIdentity::default());
        assert!(
            events
                .iter()
                .any(|e| e.name == crate::events::EventName::OperatorRemovalStarted)
        );
    }

    #[test]
    fn namespaces_only_when_tenant() {
        let (h, mut rx) = handler(4);
        let ns = |labels: Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "uid": "n-uid", "labels": labels}});
        let gvk = ("", "v1", "Namespace");
        let reply = h.review(
            review("CREATE", gvk, ns(json!({"a": "b"})), "alice")
                .to_string()
                .as_bytes(),
        );
        assert_eq!(reply.outcome, Outcome::Ignored);
        assert!(rx.try_recv().is_err());
        let reply = h.review(
            review(
                "CREATE",
                gvk,
                ns(json!({"konflux-ci.dev/type": "tenant"})),
                "alice",
            )
            .to_string()
            .as_bytes(),
        );
        assert_eq!(reply.outcome, Outcome::Observed);
        assert!(matches!(
            rx.try_recv().expect("observation").object,
            Object::Namespace(_)
        ));
    }

    #[test]
    fn unexpected_requests_are_allowed() {
        let (h, mut rx) = handler(4);
        let cases = [
            review("UPDATE", COMPONENT, component(), "alice"),
            review(
                "CREATE",
                ("apps", "v1", "Deployment"),
                json!({"metadata": {"uid": "d"}}),
                "alice",
            ),
            review("DELETE", COMPONENT, component(), "alice"),
            {
                let mut r = review("CREATE", COMPONENT, component(), "alice");
                r["request"]["subResource"] = json!("status");
                r
            },
        ];
        for r in cases {
            let reply = h.review(r.to_string().as_bytes());
            allowed(&reply);
            assert_eq!(reply.outcome, Outcome::Unexpected, "{r}");
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn undecodable_objects_are_allowed() {
        let (h, mut rx) = handler(4);
        for object in [
            json!({"metadata": {"name": "no-uid"}}),
            json!({"metadata": "x"}),
            json!(null),
            json!(3),
        ] {
            let reply = h.review(
                review("CREATE", COMPONENT, object.clone(), "alice")
                    .to_string()
                    .as_bytes(),
            );
            allowed(&reply);
            assert_eq!(reply.outcome, Outcome::Undecodable, "{object}");
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_drops_and_still_allows() {
        let (h, _rx) = handler(1);
        let body = review("CREATE", COMPONENT, component(), "alice").to_string();
        assert_eq!(h.review(body.as_bytes()).outcome, Outcome::Observed);
        let reply = h.review(body.as_bytes());
        allowed(&reply);
        assert_eq!(reply.outcome, Outcome::Dropped);
    }

    #[test]
    fn bodies_that_are_not_reviews_get_400() {
        let (h, _rx) = handler(4);
        let mut no_uid = review("CREATE", COMPONENT, component(), "alice");
        no_uid["request"]["uid"] = json!(7);
        let mut other_kind = review("CREATE", COMPONENT, component(), "alice");
        other_kind["kind"] = json!("ConversionReview");
        for body in [
            b"".to_vec(),
            b"{".to_vec(),
            b"not json".to_vec(),
            b"[1,2]".to_vec(),
            b"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\"}".to_vec(),
            b"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":5}"
                .to_vec(),
            no_uid.to_string().into_bytes(),
            other_kind.to_string().into_bytes(),
        ] {
            let reply = h.review(&body);
            assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(&body));
            assert_eq!(reply.outcome, Outcome::BadRequest);
            let text = String::from_utf8(reply.body).expect("text");
            assert!(text.starts_with("not an AdmissionReview: "), "{text}");
        }
    }

    #[test]
    fn uids_longer_than_a_bound_get_400_and_are_never_echoed() {
        let (h, mut rx) = handler(4);
        let mut r = review("CREATE", COMPONENT, component(), "alice");
        r["request"]["uid"] = json!("u".repeat(MAX_UID_BYTES));
        let reply = h.review(r.to_string().as_bytes());
        assert_eq!(
            allowed(&reply)["response"]["uid"],
            "u".repeat(MAX_UID_BYTES)
        );
        assert!(rx.try_recv().is_ok());
        for long in [
            "u".repeat(MAX_UID_BYTES + 1),
            "\\u0041".repeat(MAX_UID_BYTES + 1),
            "u".repeat(1 << 20),
        ] {
            let mut r = review("CREATE", COMPONENT, component(), "alice");
            r["request"]["uid"] = json!("");
            let body = r
                .to_string()
                .replace(r#""uid":"""#, &format!(r#""uid":"{long}""#));
            let reply = h.review(body.as_bytes());
            assert_eq!(reply.status, 400, "{}", long.len());
            assert_eq!(reply.outcome, Outcome::BadRequest);
            assert!(reply.body.len() < 100, "{}", reply.body.len());
            assert!(rx.try_recv().is_err());
        }
        let mut r = review("CREATE", COMPONENT, component(), "alice");
        r["apiVersion"] = json!(format!("admission.k8s.io/{}", "v".repeat(1 << 20)));
        let reply = h.review(r.to_string().as_bytes());
        assert_eq!(reply.status, 400);
        assert!(reply.body.len() < 100);
    }

    #[test]
    fn v1beta1_is_echoed_and_odd_uids_are_escaped() {
        let (h, _rx) = handler(4);
        let mut r = review("CREATE", COMPONENT, component(), "alice");
        r["apiVersion"] = json!("admission.k8s.io/v1beta1");
        r["request"]["uid"] = json!("a\"b\\c");
        let reply = h.review(r.to_string().as_bytes());
        let v: Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(v["response"]["uid"], "a\"b\\c");
    }

    #[test]
    fn nothing_from_user_info_but_the_hash_is_kept() {
        let (h, mut rx) = handler(4);
        let body = review("CREATE", COMPONENT, component(), "alice").to_string();
        h.review(body.as_bytes());
        let obs = rx.try_recv().expect("observation");
        let text = format!("{obs:?}");
        for secret in ["alice", "g-secret", "u-secret", "x-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
