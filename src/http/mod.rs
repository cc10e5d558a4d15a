//! The daemon's plain HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/preview`; and,
//! with `--probe-listen`, `/healthz` and `/readyz` alone on a listener of their own
//! ([`serve_probes`]) for the kubelet, so that clients holding the main port's connections
//! cannot make the probes fail (the NetworkPolicy admits no one to it but the node).
//!
//! `/preview` streams the buffer a piece at a time ([`PreviewSource::preview_chunk`]), so a reader
//! costs one piece (~64 KiB) whatever the buffer holds; at most [`MAX_PREVIEWS`] run at
//! once, and only for a loopback peer (`kubectl port-forward` arrives on loopback) unless
//! `--preview-any-peer` says otherwise.

pub mod server;

use crate::pipeline::preview::{PreviewCursor, PreviewSource};
use crate::switch::Decision;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the endpoints read.
pub struct Endpoints {
    pub buffer: Arc<dyn PreviewSource>,
    pub registry: Registry,
    /// True once every watched kind has listed (or is known to be unavailable).
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
    /// Who `/preview` answers, and its readers at once.
    pub preview: Preview,
    /// The telemetry switch, which `/preview` reports (header [`TELEMETRY_HEADER`]).
    pub switch: tokio::sync::watch::Receiver<Decision>,
}

/// The header of every `/preview` answer saying whether telemetry is on, off or pending
/// and who decided: `on; decided-by=config`.
pub const TELEMETRY_HEADER: &str = "konflux-telemetry";

/// `/preview`'s bounds: the peers it answers and the readers at once.
#[derive(Debug, Default)]
pub struct Preview {
    /// Serve any peer, not only loopback (`--preview-any-peer`).
    any_peer: bool,
    running: Arc<AtomicUsize>,
}

impl Preview {
    pub fn new(any_peer: bool) -> Self {
        Self {
            any_peer,
            running: Arc::default(),
        }
    }
}

/// The body of every answer: whole (`Full`) or, for `/preview`, streamed.
pub type Body = BoxBody<Bytes, Infallible>;

/// `/preview` readers at once; one more is answered 503.
pub const MAX_PREVIEWS: usize = 4;

/// One of the [`MAX_PREVIEWS`] places, given back when the body is dropped (sent, or the
/// reader went away).
struct PreviewSlot(Arc<AtomicUsize>);

impl PreviewSlot {
    fn take(running: &Arc<AtomicUsize>) -> Option<Self> {
        running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PREVIEWS).then_some(n + 1)
            })
            .ok()
            .map(|_| PreviewSlot(Arc::clone(running)))
    }
}

impl Drop for PreviewSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether `/preview` answers `peer`: a loopback address (IPv4, IPv6, or IPv4 mapped in
/// IPv6), or any with `--preview-any-peer`.
pub fn preview_allowed(peer: IpAddr, any_peer: bool) -> bool {
    any_peer
        || peer.is_loopback()
        || matches!(peer, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

/// Largest request body: the endpoints take GETs, so a body is never read.
pub const MAX_BODY: usize = 16 * 1024;
/// Bytes of bodies held at once across connections.
pub const MAX_BYTES_IN_FLIGHT: usize = 1024 * 1024;

/// Serves the endpoints on `listener` until `stop`, with the [`server`] limits.
pub async fn serve(
    listener: TcpListener,
    endpoints: Arc<Endpoints>,
    limits: server::Limits,
    stop: CancellationToken,
) {
    serve_with("http", listener, endpoints, limits, stop, handle).await;
}

/// Serves `answer` on `listener` until `stop`: the one loop of both listeners, `name`
/// naming it in log lines. `answer` gets the request's peer (unknown counts as not
/// loopback).
async fn serve_with(
    name: &'static str,
    listener: TcpListener,
    endpoints: Arc<Endpoints>,
    limits: server::Limits,
    stop: CancellationToken,
    answer: fn(&Endpoints, SocketAddr, &Request<server::Body>) -> Response<Body>,
) {
    let handler = move |req: Request<server::Body>| {
        let endpoints = Arc::clone(&endpoints);
        let peer = req
            .extensions()
            .get::<server::Peer>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0);
        async move { Ok::<_, Infallible>(answer(&endpoints, peer, &req)) }
    };
    server::serve(
        name,
        listener,
        server::Transport::Plain,
        limits,
        handler,
        stop.cancelled_owned(),
    )
    .await;
}

/// Connections the probe listener holds at once, and per peer: the kubelet opens one per
/// probe, and there are two probes.
pub const PROBE_MAX_CONNECTIONS: usize = 16;
pub const PROBE_MAX_CONNECTIONS_PER_PEER: usize = 8;

/// The probe listener's limits: `server`'s timeouts, its own connection caps, no body.
pub fn probe_limits(server: &server::ServerArgs) -> server::Limits {
    let mut limits = server.limits(MAX_BODY, MAX_BYTES_IN_FLIGHT);
    limits.max_connections = PROBE_MAX_CONNECTIONS;
    limits.max_connections_per_peer = PROBE_MAX_CONNECTIONS_PER_PEER;
    limits
}

/// Serves `/healthz` and `/readyz` only on `listener` until `stop`: the kubelet's way in,
/// apart from the port Prometheus and `/preview` use.
pub async fn serve_probes(
    listener: TcpListener,
    endpoints: Arc<Endpoints>,
    limits: server::Limits,
    stop: CancellationToken,
) {
    let answer =
        |endpoints: &Endpoints, _: SocketAddr, req: &Request<server::Body>| probe(endpoints, req);
    serve_with("probes", listener, endpoints, limits, stop, answer).await;
}

/// Answers one request on the probe listener: `/healthz` and `/readyz`, nothing else.
pub fn probe<B>(endpoints: &Endpoints, req: &Request<B>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" | "/readyz" => handle(endpoints, SocketAddr::from(([0, 0, 0, 0], 0)), req),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: the probe port serves /healthz /readyz\n".to_owned(),
        ),
    }
}

/// Answers one request from `peer`.
pub fn handle<B>(endpoints: &Endpoints, peer: SocketAddr, req: &Request<B>) -> Response<Body> {
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/healthz") => text(StatusCode::OK, "ok\n".to_owned()),
        ("GET", "/readyz") => {
            if (endpoints.ready)() {
                text(StatusCode::OK, "ready\n".to_owned())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "waiting for the watches' first list\n".to_owned(),
                )
            }
        }
        ("GET", "/metrics") => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, &endpoints.registry) {
                Ok(()) => {
                    let mut r = text(StatusCode::OK, body);
                    r.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                }
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot encode metrics: {e}\n"),
                ),
            }
        }
        ("GET", "/preview") => preview(endpoints, peer),
        (_, "/healthz" | "/readyz" | "/metrics" | "/preview") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz /readyz /metrics /preview\n".to_owned(),
        ),
    }
}

/// `/preview`: the buffer streamed, one piece at a time.
fn preview(endpoints: &Endpoints, peer: SocketAddr) -> Response<Body> {
    if !preview_allowed(peer.ip(), endpoints.preview.any_peer) {
        return text(
            StatusCode::FORBIDDEN,
            "/preview answers on loopback only: use kubectl port-forward (or --preview-any-peer)\n"
                .to_owned(),
        );
    }
    let decision = *endpoints.switch.borrow();
    let said = HeaderValue::from_str(&format!(
        "{}; decided-by={}",
        decision.state(),
        decision.by.label()
    ));
    let say = |mut r: Response<Body>| {
        if let Ok(v) = &said {
            r.headers_mut().insert(TELEMETRY_HEADER, v.clone());
        }
        r
    };
    // Telemetry off: nothing is buffered, and the answer says why it is empty.
    if !endpoints.buffer.enabled() {
        let mut r = text(
            StatusCode::OK,
            format!(
                r#"{{"batch":[],"telemetry":"off","decidedBy":"{}"}}"#,
                decision.by.label()
            ),
        );
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return say(r);
    }
    let Some(slot) = PreviewSlot::take(&endpoints.preview.running) else {
        let mut r = text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_PREVIEWS} /preview requests are running; try again\n"),
        );
        r.headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let buffer = Arc::clone(&endpoints.buffer);
    let mut cursor = PreviewCursor::default();
    let pieces = std::iter::from_fn(move || {
        let _slot = &slot;
        buffer.preview_chunk(&mut cursor)
    })
    .map(|piece| Ok::<_, Infallible>(Frame::data(piece)));
    let mut r = Response::new(StreamBody::new(futures::stream::iter(pieces)).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    say(r)
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    server::text(status, body).map(|b| b.map_err(|never| match never {}).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ClusterIdentity;
    use crate::pipeline::metrics::CoreMetrics;

    fn endpoints(any_peer: bool) -> Endpoints {
        Endpoints {
            buffer: Arc::new(crate::pipeline::Core::new(
                ClusterIdentity::new(Some("c".into()), None, None),
                10,
                usize::MAX,
                3600,
                CoreMetrics::default(),
            )),
            registry: Registry::default(),
            ready: Box::new(|| true),
            preview: Preview::new(any_peer),
            switch: tokio::sync::watch::channel(Decision::PENDING).1,
        }
    }

    fn get(e: &Endpoints, peer: &str) -> StatusCode {
        let req = Request::get("/preview").body(()).expect("request");
        handle(e, peer.parse().expect("address"), &req).status()
    }

    #[test]
    fn preview_answers_loopback_only_unless_told() {
        for ip in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(preview_allowed(ip.parse().expect("ip"), false), "{ip}");
        }
        for ip in [
            "10.244.0.7",
            "192.168.1.1",
            "::ffff:10.0.0.1",
            "fd00::1",
            "0.0.0.0",
        ] {
            assert!(!preview_allowed(ip.parse().expect("ip"), false), "{ip}");
            assert!(preview_allowed(ip.parse().expect("ip"), true), "{ip}");
        }
        let e = endpoints(false);
        assert_eq!(get(&e, "10.244.0.7:40000"), StatusCode::FORBIDDEN);
        assert_eq!(get(&e, "127.0.0.1:40000"), StatusCode::OK);
        assert_eq!(get(&endpoints(true), "10.244.0.7:40000"), StatusCode::OK);
        // the other endpoints answer anyone (probes and Prometheus are not on loopback)
        let req = Request::get("/healthz").body(()).expect("request");
        assert_eq!(
            handle(&e, "10.244.0.7:1".parse().expect("address"), &req).status(),
            StatusCode::OK
        );
    }

    #[test]
    fn the_probe_port_answers_probes_only() {
        let e = endpoints(true);
        let status = |path: &str| {
            let req = Request::get(path).body(()).expect("request");
            probe(&e, &req).status()
        };
        assert_eq!(status("/healthz"), StatusCode::OK);
        assert_eq!(status("/readyz"), StatusCode::OK);
        for path in ["/metrics", "/preview", "/"] {
            assert_eq!(status(path), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn at_most_max_previews_at_once() {
        let e = endpoints(false);
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("address");
        let req = Request::get("/preview").body(()).expect("request");
        let held: Vec<Response<Body>> = (0..MAX_PREVIEWS).map(|_| handle(&e, peer, &req)).collect();
        assert!(held.iter().all(|r| r.status() == StatusCode::OK));
        assert_eq!(
            handle(&e, peer, &req).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(held);
        assert_eq!(handle(&e, peer, &req).status(), StatusCode::OK);
    }
}
