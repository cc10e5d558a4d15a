//! The daemon's plain HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/preview`.

use crate::core::Core;
use crate::server;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the endpoints read.
pub struct Endpoints {
    pub core: Arc<Core>,
    pub registry: Registry,
    /// True once every watched kind has listed (or is known to be unavailable).
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
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
    let handler = move |req: Request<server::Body>| {
        let endpoints = Arc::clone(&endpoints);
        async move { Ok::<_, Infallible>(handle(&endpoints, &req)) }
    };
    server::serve(
        "http",
        listener,
        server::Transport::Plain,
        limits,
        handler,
        stop.cancelled_owned(),
    )
    .await;
}

fn handle<B>(endpoints: &Endpoints, req: &Request<B>) -> Response<Full<Bytes>> {
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
        ("GET", "/preview") => {
            let mut r = text(StatusCode::OK, endpoints.core.preview());
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        (_, "/healthz" | "/readyz" | "/metrics" | "/preview") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz /readyz /metrics /preview\n".to_owned(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    server::text(status, body)
}
