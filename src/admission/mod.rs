//! Admission capture: a validating webhook that sees creations and removals as they happen,
//! and who asked.
//!
//! The API server calls `POST /validate` with an `AdmissionReview` v1 for CREATE of
//! PipelineRuns, Components and Namespaces, and DELETE of the Konflux CR. The webhook is an
//! observer, never a gate: it always allows, and its request path does no network call: it
//! decodes the object ([`review`]), puts an [`Observation`](crate::pipeline::observation::Observation)
//! with the hashed actor on the core's queue (`try_send`: a full queue drops, counts and
//! still allows) and answers. The webhook port is not trusted (any Pod that reaches it can
//! POST a review): the core produces no event from admission's word. The sighting waits
//! until the watch or the sweep sees the same object (uid, kind, namespace, time; see
//! [`Sightings`](crate::pipeline::observation::Sightings)), whose events then carry the actor; a
//! PipelineRun's actor goes on the run's `Started` and `Completed` events.
//!
//! TLS (rustls, ring) with the certificate of `--webhook-cert-dir`, reloaded when the
//! files change ([`tls`]). `webhook-certs/` makes a CA and certificate for tests and small
//! installations; `webhook-certs/README.md` has the production alternatives.

pub mod metrics;
pub mod review;
pub mod tls;

pub use metrics::{AdmissionMetrics, Outcome};
pub use review::{Handler, Reply};
pub use tls::CertStore;

use crate::events::ClusterIdentity;
use crate::http::server;
use crate::pipeline::observation::ObservationTx;
use crate::{Error, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The path the webhook configuration calls.
pub const PATH: &str = "/validate";
/// How often the certificate files are looked at.
pub const CERT_POLL: Duration = Duration::from_secs(2);
/// Largest body read by default: an object is at most 1.5 MB in etcd, and a review may
/// hold two.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Largest `--webhook-max-body-bytes` accepted at start: the API server sends at most its
/// request limit (3 MB) twice over; beyond this a single review would be a sizeable share
/// of the Pod's 128 MiB.
pub const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Bytes of review bodies held at once across connections (the API server sends few
/// requests at a time; a flood of large forged ones gets 503 beyond this).
pub const MAX_BYTES_IN_FLIGHT: usize = 32 * 1024 * 1024;

/// The webhook server, bound and with its first certificate tried.
pub struct Webhook {
    listener: TcpListener,
    handler: Arc<Handler>,
    certs: Arc<CertStore>,
    acceptor: TlsAcceptor,
    cert_poll: Duration,
    limits: server::Limits,
}

impl Webhook {
    /// Binds `listen` and loads the certificate of `cert_dir`. A missing or bad certificate
    /// is not fatal (a Secret may be mounted late): it is logged, and handshakes fail until
    /// a good one appears. `identity` gives the cluster identity at each request.
    pub async fn bind(
        listen: SocketAddr,
        cert_dir: &Path,
        tx: ObservationTx,
        identity: impl Fn() -> Arc<ClusterIdentity> + Send + Sync + 'static,
        metrics: AdmissionMetrics,
    ) -> Result<Self> {
        let handler = Handler::new(tx, identity, metrics.clone());
        Self::bind_with(listen, cert_dir, handler, CERT_POLL).await
    }

    /// [`Webhook::bind`] with a handler and polling interval of the caller's (benchmarks).
    pub async fn bind_with(
        listen: SocketAddr,
        cert_dir: &Path,
        handler: Handler,
        cert_poll: Duration,
    ) -> Result<Self> {
        let certs = Arc::new(CertStore::new(cert_dir, handler.metrics().clone())?);
        certs.reload();
        let config = tls::server_config(&certs).map_err(|e| Error::Config {
            key: "webhook-cert-dir".to_owned(),
            reason: e.to_string(),
        })?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Io {
                context: "binding the webhook listener",
                source,
            })?;
        Ok(Self {
            listener,
            handler: Arc::new(handler),
            certs,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert_poll,
            limits: server::Limits::new(MAX_BODY, MAX_BYTES_IN_FLIGHT),
        })
    }

    /// Serves with `limits` rather than the defaults (`Limits::new(MAX_BODY,
    /// MAX_BYTES_IN_FLIGHT)`).
    pub fn with_limits(mut self, limits: server::Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop`, then lets in-flight requests finish (within the drain
    /// timeout; the API server's `failurePolicy: Ignore` lets any cut off through).
    pub async fn run(self, stop: CancellationToken) {
        let addr = self.local_addr();
        info!(
            "admission webhook on https://{}{PATH}",
            addr.map_or_else(|| "?".to_owned(), |a| a.to_string())
        );
        let certs = Arc::clone(&self.certs);
        let cert_poll = self.cert_poll;
        let polling = stop.child_token();
        let poller = tokio::spawn({
            let polling = polling.clone();
            async move {
                let mut poll = tokio::time::interval(cert_poll);
                poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = polling.cancelled() => return,
                        _ = poll.tick() => {
                            let certs = Arc::clone(&certs);
                            // File reads: off the async workers.
                            let _ = tokio::task::spawn_blocking(move || certs.reload()).await;
                        }
                    }
                }
            }
        });
        let transport = server::Transport::Tls {
            acceptor: self.acceptor,
            failures: self.handler.metrics().tls_handshake_failures.clone(),
        };
        let handler = Arc::clone(&self.handler);
        let max_body = self.limits.max_body_bytes;
        let service = move |req: Request<server::Body>| {
            let handler = Arc::clone(&handler);
            async move { Ok::<_, Infallible>(handle(&handler, req, max_body).await) }
        };
        server::serve(
            "webhook",
            self.listener,
            transport,
            self.limits,
            service,
            stop.cancelled_owned(),
        )
        .await;
        polling.cancel();
        let _ = poller.await;
    }
}

/// Routes one HTTP request: `POST /validate` (a body of at most `max_body` bytes, the
/// server's `--webhook-max-body-bytes`), and `GET /healthz` (for a probe over TLS).
pub async fn handle<B>(handler: &Handler, req: Request<B>, max_body: usize) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    match (req.method(), req.uri().path()) {
        (&Method::POST, PATH) => {}
        (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
        (_, PATH) => return text(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview\n"),
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    }
    let body = match server::read_body(req.into_body(), max_body).await {
        Ok(b) => b,
        Err(e) => {
            handler
                .metrics()
                .count("other", "other", Outcome::BadRequest);
            return server::text(e.status(), format!("{e}\n"));
        }
    };
    let reply = handler.review(&body);
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = status;
    let content_type = if status == StatusCode::OK {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    handler
        .metrics()
        .request_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    server::text(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ClusterIdentity;

    fn handler() -> Handler {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let identity = Arc::new(ClusterIdentity::default());
        Handler::new(
            tx,
            move || Arc::clone(&identity),
            AdmissionMetrics::default(),
        )
    }

    fn request(method: &str, path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(body)))
            .expect("request")
    }

    #[tokio::test]
    async fn routes() {
        let h = handler();
        let status = |r: Response<Full<Bytes>>| r.status().as_u16();
        assert_eq!(
            status(handle(&h, request("GET", "/healthz", vec![]), MAX_BODY).await),
            200
        );
        assert_eq!(
            status(handle(&h, request("GET", PATH, vec![]), MAX_BODY).await),
            405
        );
        assert_eq!(
            status(handle(&h, request("POST", "/mutate", vec![]), MAX_BODY).await),
            404
        );
        assert_eq!(
            status(handle(&h, request("POST", PATH, b"{}".to_vec()), MAX_BODY).await),
            400
        );
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            status(handle(&h, request("POST", PATH, big.clone()), MAX_BODY).await),
            413
        );
        // The server's cap (`--webhook-max-body-bytes`) is the one applied, above the
        // default too: the body is read, and found not to be a review.
        assert_eq!(
            status(handle(&h, request("POST", PATH, big), 2 * MAX_BODY).await),
            400
        );
        let review = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "operation": "CREATE",
                        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}
        });
        let r = handle(
            &h,
            request("POST", PATH, review.to_string().into_bytes()),
            MAX_BODY,
        )
        .await;
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn certificates_reload_and_bad_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!(
            "konflux-telemetry-admission-unit-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-certs/make-certs.sh");
        let make = |new_ca: bool| {
            let mut cmd = std::process::Command::new("bash");
            cmd.arg(&script);
            if new_ca {
                cmd.arg("--new-ca");
            }
            cmd.arg(&dir)
                .arg("IP:127.0.0.1")
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        crate::crypto::install_for_tests();
        let store = CertStore::new(&dir, AdmissionMetrics::default()).expect("a provider");
        assert!(matches!(store.reload(), tls::Reload::Rejected(_)));
        assert_eq!(store.reload(), tls::Reload::Unchanged);
        if !make(false) {
            eprintln!("openssl not available: skipped");
            return;
        }
        assert_eq!(store.reload(), tls::Reload::Applied);
        assert_eq!(store.reload(), tls::Reload::Unchanged);
        // A key of another pair: refused, the loaded certificate stays.
        let good_key = std::fs::read(dir.join("tls.key")).expect("key");
        assert!(make(true));
        let new_key = std::fs::read(dir.join("tls.key")).expect("key");
        std::fs::write(dir.join("tls.key"), &good_key).expect("write");
        assert!(matches!(store.reload(), tls::Reload::Rejected(r) if r.contains("usable pair")));
        assert!(store.has_certificate());
        std::fs::write(dir.join("tls.key"), &new_key).expect("write");
        assert_eq!(store.reload(), tls::Reload::Applied);
        std::fs::write(dir.join("tls.crt"), b"garbage").expect("write");
        assert!(matches!(store.reload(), tls::Reload::Rejected(r) if r.contains("no certificate")));
        assert!(store.has_certificate());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
