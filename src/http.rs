//! The daemon's plain HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/preview`.

use crate::core::Core;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// What the endpoints read.
pub struct Endpoints {
    pub core: Arc<Core>,
    pub registry: Registry,
    /// True once every watched kind has listed (or is known to be unavailable).
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
}

pub async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>, stop: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let endpoints = Arc::clone(&endpoints);
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let endpoints = Arc::clone(&endpoints);
                            async move { Ok::<_, Infallible>(handle(&endpoints, &req)) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(e) => {
                    warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    connections.shutdown().await;
}

fn handle(endpoints: &Endpoints, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
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
        // Telemetry off: nothing is buffered, and the answer says why it is empty.
        ("GET", "/preview") if !endpoints.core.enabled() => {
            let mut r = text(
                StatusCode::OK,
                r#"{"batch":[],"telemetry":"off"}"#.to_owned(),
            );
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
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
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
