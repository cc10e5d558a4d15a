//! A Segment-compatible receiver for tests and demos: the `konflux-telemetry-sink`
//! command, and [`Sink`] for tests in process. Not part of the daemon's binary or image.
//!
//! It accepts `POST /v1/batch` and `POST /batch` with Segment's Basic auth and limits
//! (400 for a body over 500,000 bytes, an event over 32,768 bytes, more than 2,500
//! events, bad JSON or no `batch` array; 401 for a wrong or missing key), and appends
//! every accepted event to the output file, one compact JSON line each, exactly as
//! received (flushed per request).
//!
//! A control API on the same listener injects faults while it runs:
//! - `POST /control/fault` with a [`Fault`], e.g. `{"status":503,"count":5}`;
//! - `POST /control/reset`: forget faults and statistics (the output file is kept);
//! - `GET /control/stats`: the [`Stats`], with every batch request's arrival time,
//!   status, event count and `sentAt`.

mod control;

pub use control::{Fault, RequestRecord, Stats};

use base64::Engine as _;
use bytes::Bytes;
use control::{Control, unix_ms};
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use konflux_telemetry::http::server::{self, ServerArgs};
use konflux_telemetry::segment::WriteKey;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::future::Future;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Largest request body, uncompressed.
pub const MAX_BODY_BYTES: usize = 500_000;
/// Largest event, as received.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Most events in one request.
pub const MAX_EVENTS: usize = 2_500;
/// Default largest body read off the wire (compressed or not); a longer one is answered
/// 413 (from its `Content-Length`, unread).
pub const MAX_WIRE_BYTES: usize = 4 * 1024 * 1024;
/// Default bytes of bodies held at once across connections.
pub const MAX_BYTES_IN_FLIGHT: usize = 64 * 1024 * 1024;
/// Default number of batch requests kept in the request log (the oldest go first).
pub const REQUEST_LOG: usize = 1_000;

/// `konflux-telemetry-sink`: a Segment-compatible receiver writing events to a file.
#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// The write key clients must send as Basic-auth user.
    #[arg(long, env = "SINK_WRITE_KEY", hide_env_values = true)]
    pub write_key: WriteKey,
    /// File the accepted events are appended to, one JSON line each.
    #[arg(long)]
    pub out: PathBuf,
    /// Largest request body read off the wire, in bytes (larger: 413).
    #[arg(long, default_value_t = MAX_WIRE_BYTES)]
    pub max_body_bytes: usize,
    /// Bytes of request bodies held at once, all connections together (beyond: 503).
    #[arg(long, default_value_t = MAX_BYTES_IN_FLIGHT)]
    pub max_bytes_in_flight: usize,
    /// Batch requests kept in the request log of `/control/stats` (the last N).
    #[arg(long, default_value_t = REQUEST_LOG)]
    pub request_log: usize,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How a [`Sink`] serves: its server limits and the length of its request log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkOptions {
    pub limits: server::Limits,
    pub request_log: usize,
}

impl Default for SinkOptions {
    /// [`MAX_WIRE_BYTES`], [`MAX_BYTES_IN_FLIGHT`], [`REQUEST_LOG`] and the server defaults.
    fn default() -> Self {
        Self {
            limits: server::Limits::new(MAX_WIRE_BYTES, MAX_BYTES_IN_FLIGHT),
            request_log: REQUEST_LOG,
        }
    }
}

impl SinkArgs {
    fn options(&self) -> SinkOptions {
        SinkOptions {
            limits: self
                .server
                .limits(self.max_body_bytes, self.max_bytes_in_flight),
            request_log: self.request_log,
        }
    }
}

/// Why the sink could not run.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The output file could not be opened.
    #[error("opening {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The runtime could not be started.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Runs the sink until `shutdown` completes. Prints `sink listening on http://ADDR` on
/// stdout once it listens.
pub async fn serve(args: SinkArgs, shutdown: impl Future<Output = ()>) -> Result<(), SinkError> {
    let options = args.options();
    let (listener, state) = bind(args.listen, args.write_key, &args.out, &options).await?;
    let addr = local_addr(&listener, args.listen)?;
    println!("sink listening on http://{addr}");
    info!(%addr, out = %args.out.display(), "sink listening");
    accept_loop(listener, state, options.limits, shutdown).await;
    Ok(())
}

/// The `sink` subcommand: a runtime, [`serve`] until Ctrl-C or SIGTERM, an exit code.
pub fn run_command(args: SinkArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(SinkError::Runtime)
        .and_then(|rt| rt.block_on(serve(args, server::shutdown_signal())));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sink: {e}");
            ExitCode::from(1)
        }
    }
}

/// A sink running in this process, for tests. Dropping it stops the sink.
pub struct Sink {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("addr", &self.addr).finish()
    }
}

impl Sink {
    /// Starts a sink on the current Tokio runtime. `listen` may have port 0; the actual
    /// address is returned.
    pub async fn start(
        listen: SocketAddr,
        write_key: WriteKey,
        out: PathBuf,
    ) -> Result<(SocketAddr, Sink), SinkError> {
        Self::start_with(listen, write_key, out, SinkOptions::default()).await
    }

    /// [`Sink::start`] with limits and a request log length of the caller's.
    pub async fn start_with(
        listen: SocketAddr,
        write_key: WriteKey,
        out: PathBuf,
        options: SinkOptions,
    ) -> Result<(SocketAddr, Sink), SinkError> {
        let (listener, state) = bind(listen, write_key, &out, &options).await?;
        let addr = local_addr(&listener, listen)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&state),
            options.limits,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok((
            addr,
            Sink {
                addr,
                state,
                stop: Some(stop),
                task: Some(task),
            },
        ))
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base to configure a sender with: `http://ADDR/v1`.
    pub fn api_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The statistics `GET /control/stats` returns.
    pub fn stats(&self) -> Stats {
        self.state.control().stats()
    }

    /// Queues a fault, as `POST /control/fault` does.
    pub fn inject(&self, fault: Fault) -> Result<(), &'static str> {
        fault.validate()?;
        self.state.control().push_fault(fault);
        Ok(())
    }

    /// Forgets faults and statistics, as `POST /control/reset` does.
    pub fn reset(&self) {
        self.state.control().reset();
    }

    /// Stops accepting, closes open connections and waits for the sink to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct State {
    write_key: WriteKey,
    out: tokio::sync::Mutex<tokio::fs::File>,
    control: Mutex<Control>,
    max_body_bytes: usize,
}

impl State {
    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn bind(
    listen: SocketAddr,
    write_key: WriteKey,
    out: &Path,
    options: &SinkOptions,
) -> Result<(TcpListener, Arc<State>), SinkError> {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .await
        .map_err(|source| SinkError::Open {
            path: out.to_owned(),
            source,
        })?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SinkError::Bind {
            addr: listen,
            source,
        })?;
    let state = Arc::new(State {
        write_key,
        out: tokio::sync::Mutex::new(file),
        control: Mutex::new(Control::new(options.request_log)),
        max_body_bytes: options.limits.max_body_bytes,
    });
    Ok((listener, state))
}

fn local_addr(listener: &TcpListener, listen: SocketAddr) -> Result<SocketAddr, SinkError> {
    listener.local_addr().map_err(|source| SinkError::Bind {
        addr: listen,
        source,
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    limits: server::Limits,
    shutdown: impl Future<Output = ()>,
) {
    let handler = move |req: Request<server::Body>| handle(Arc::clone(&state), req);
    server::serve(
        "sink",
        listener,
        server::Transport::Plain,
        limits,
        handler,
        shutdown,
    )
    .await;
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
struct DropConnection;

type HttpResponse = Response<Full<Bytes>>;

fn response(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(status: StatusCode, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "success": false, "message": message }).to_string();
    response(status, body)
}

async fn handle(
    state: Arc<State>,
    req: Request<server::Body>,
) -> Result<HttpResponse, DropConnection> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/v1/batch" | "/batch") => batch(state, req, path).await,
        (&Method::POST, "/control/fault") => Ok(control_fault(&state, req).await),
        (&Method::POST, "/control/reset") => {
            state.control().reset();
            Ok(response(StatusCode::OK, r#"{"success":true}"#))
        }
        (&Method::GET, "/control/stats") => {
            let stats = state.control().stats();
            Ok(match serde_json::to_vec(&stats) {
                Ok(body) => response(StatusCode::OK, body),
                Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "stats"),
            })
        }
        (_, "/v1/batch" | "/batch" | "/control/fault" | "/control/reset" | "/control/stats") => Ok(
            error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        ),
        _ => Ok(error_response(StatusCode::NOT_FOUND, "not found")),
    }
}

async fn control_fault(state: &State, req: Request<server::Body>) -> HttpResponse {
    let body = match server::read_body(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return error_response(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Err(reason) = fault.validate() {
        return error_response(StatusCode::BAD_REQUEST, reason);
    }
    state.control().push_fault(fault);
    response(StatusCode::OK, r#"{"success":true}"#)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
}

/// What a body holds, for the request log.
struct Parsed {
    sent_at: Option<String>,
    message_ids: Vec<String>,
}

fn summarize(envelope: &Envelope<'_>) -> Parsed {
    Parsed {
        sent_at: envelope.sent_at.clone(),
        message_ids: envelope
            .batch
            .iter()
            .map(|raw| {
                serde_json::from_str::<IdOnly>(raw.get())
                    .ok()
                    .and_then(|i| i.message_id)
                    .unwrap_or_default()
            })
            .collect(),
    }
}

async fn batch(
    state: Arc<State>,
    req: Request<server::Body>,
    path: String,
) -> Result<HttpResponse, DropConnection> {
    let arrival_ms = unix_ms();
    let fault = state.control().take_fault();
    let mut record = RequestRecord {
        arrival_ms,
        responded_ms: 0,
        path,
        status: None,
        events: 0,
        message_ids: Vec::new(),
        bytes: 0,
        sent_at: None,
        error: None,
        retry_count: req
            .headers()
            .get("x-retry-count")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    if let Some(ms) = fault.as_ref().and_then(|f| f.latency_ms) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if fault.as_ref().is_some_and(|f| f.drop) {
        // Read a part of the body, then close without an answer.
        let mut body = req.into_body();
        let _ = body.frame().await;
        record.responded_ms = unix_ms();
        record.error = Some("connection dropped (fault)".into());
        state.control().record(record, 0);
        return Err(DropConnection);
    }

    // Auth first: an unauthenticated body is never read, whatever its size.
    if !authorized(&req, &state.write_key) {
        return Ok(finish(
            &state,
            record,
            StatusCode::UNAUTHORIZED,
            "missing or wrong write key",
        ));
    }
    let gzip = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let wire = match server::read_body(req.into_body(), state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            return Ok(finish(&state, record, status, &e.to_string()));
        }
    };
    let body = if gzip {
        match gunzip(&wire) {
            Ok(b) => Bytes::from(b),
            Err(message) => {
                return Ok(finish(&state, record, StatusCode::BAD_REQUEST, message));
            }
        }
    } else {
        wire
    };
    record.bytes = body.len();
    let envelope = serde_json::from_slice::<Envelope<'_>>(&body);
    if let Ok(envelope) = &envelope {
        let parsed = summarize(envelope);
        record.events = envelope.batch.len();
        record.sent_at = parsed.sent_at;
        record.message_ids = parsed.message_ids;
    }

    if let Some(status) = fault.as_ref().and_then(|f| f.status) {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = finish(&state, record, code, "injected fault");
        if let Some(seconds) = fault.as_ref().and_then(|f| f.retry_after) {
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        return Ok(r);
    }
    if body.len() > MAX_BODY_BYTES {
        return Ok(finish(
            &state,
            record,
            StatusCode::BAD_REQUEST,
            "body over 500000 bytes",
        ));
    }
    let envelope = match envelope {
        Ok(e) => e,
        Err(_) => {
            return Ok(finish(
                &state,
                record,
                StatusCode::BAD_REQUEST,
                "bad JSON or no batch array",
            ));
        }
    };
    if envelope.batch.len() > MAX_EVENTS {
        return Ok(finish(
            &state,
            record,
            StatusCode::BAD_REQUEST,
            "more than 2500 events",
        ));
    }
    if envelope
        .batch
        .iter()
        .any(|e| e.get().len() > MAX_EVENT_BYTES)
    {
        return Ok(finish(
            &state,
            record,
            StatusCode::BAD_REQUEST,
            "an event over 32768 bytes",
        ));
    }
    if envelope.batch.iter().any(|e| !e.get().starts_with('{')) {
        return Ok(finish(
            &state,
            record,
            StatusCode::BAD_REQUEST,
            "an event is not an object",
        ));
    }
    let mut lines = Vec::with_capacity(body.len());
    for event in &envelope.batch {
        compact_into(event.get(), &mut lines);
        lines.push(b'\n');
    }
    let written = {
        let mut out = state.out.lock().await;
        match out.write_all(&lines).await {
            Ok(()) => out.flush().await,
            Err(e) => Err(e),
        }
    };
    if let Err(e) = written {
        warn!(error = %e, "sink: writing events failed");
        return Ok(finish(
            &state,
            record,
            StatusCode::INTERNAL_SERVER_ERROR,
            "writing events failed",
        ));
    }
    let accepted = envelope.batch.len();
    record.status = Some(200);
    record.responded_ms = unix_ms();
    state.control().record(record, accepted);
    Ok(response(StatusCode::OK, r#"{"success":true}"#))
}

/// Records the request with `status` and builds the error answer.
fn finish(
    state: &State,
    mut record: RequestRecord,
    status: StatusCode,
    message: &str,
) -> HttpResponse {
    record.status = Some(status.as_u16());
    record.error = Some(message.to_owned());
    record.responded_ms = unix_ms();
    state.control().record(record, 0);
    error_response(status, message)
}

/// Basic auth with the write key as user name (the password is ignored, as Segment does).
fn authorized(req: &Request<server::Body>, key: &WriteKey) -> bool {
    let Some(value) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, credentials)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials.trim()) else {
        return false;
    };
    let user = decoded
        .iter()
        .position(|&b| b == b':')
        .map_or(&decoded[..], |i| &decoded[..i]);
    key.matches(user)
}

/// Decompresses a gzip body, refusing more than [`MAX_BODY_BYTES`] + 1 bytes of output.
fn gunzip(wire: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(wire)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| "bad gzip body")?;
    Ok(out)
}

/// Appends `json` without the whitespace between tokens: one line, same keys, same order.
fn compact_into(json: &str, out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_strings() {
        let mut out = Vec::new();
        compact_into(
            "{ \"a b\" :\n [1, \"x \\\" y\"],\r\n\t\"c\": {} }",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{"a b":[1,"x \" y"],"c":{}}"#
        );
    }

    #[test]
    fn gunzip_limits_output() {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b' '; MAX_BODY_BYTES + 10])
            .expect("compress");
        let gz = enc.finish().expect("compress");
        assert_eq!(gunzip(&gz).expect("gunzip").len(), MAX_BODY_BYTES + 1);
        assert!(gunzip(b"not gzip").is_err());
    }
}
