//! One way to serve HTTP/1.1, for every listener: the metrics port ([`crate::http`]), the
//! admission webhook ([`crate::admission`], over TLS) and the test sink (the `sink` crate).
//!
//! What a caller can hold is bounded here, in one place ([`Limits`]):
//! - **time**: a request head must arrive within `header_read_timeout` (hyper's own
//!   timer, which also closes a keep-alive connection idle that long between requests); a
//!   body within `body_timeout` of its head (else 408); a TLS handshake within
//!   `handshake_timeout`; a connection on which no byte moved for `idle_timeout` while no
//!   request is being handled (a client that does not read its answer) is closed;
//! - **connections**: at most `max_connections` at once. Beyond that the listener accepts
//!   nothing until one closes (new ones wait in the kernel's backlog). One peer (an IP
//!   address) holds at most `max_connections_per_peer` of them: its next connection is
//!   accepted and closed at once (logged at most once a minute), so no single client can take every slot (the
//!   kubelet's probes have a listener of their own, `--probe-listen`, [`crate::http`]);
//! - **bytes**: a body declared (`Content-Length`) over `max_body_bytes` is answered 413
//!   before a byte of it is read; a streamed one is cut off at the cap; all the bodies
//!   being read at once hold at most `max_bytes_in_flight` (beyond: 503); a request's
//!   bytes stay counted until its answer has been taken for sending (a client that does
//!   not read its answer keeps them until the idle timeout closes it).
//!
//! When `stop` completes the listener is closed (new connections are refused), idle
//! connections close, in-flight requests finish and their connections close, all within
//! `drain_timeout`; whatever is still open then is dropped.
//!
//! Why this is written here and not taken whole from a library: it is built on hyper's
//! own pieces (its `header_read_timeout`, hyper-util's `GracefulShutdown` for the drain),
//! and adds only what none of them does. `tower`/`tower-http` layers (already in the
//! dependency tree through kube: `TimeoutLayer`, `RequestBodyLimitLayer`,
//! `ConcurrencyLimitLayer`) act on one request inside a connection; none bounds
//! connections per peer, the bytes all bodies hold at once, a TLS handshake, or a
//! connection whose client does not read its answer. Those four are what the figures of
//! `docs/security.md` measure (40 clients that never read: 327 MiB before, 61.8 MiB with
//! these bounds; four 8 MiB reviews at once: +32.6 MiB).

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

/// Any error a body or a handler may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every answer: whatever the handler built (full or streamed), boxed.
pub type ResponseBody = BoxBody<Bytes, BoxError>;

/// An answer being worked out, as one concrete type.
type Answer = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;
/// The handler as the connections hold it: one concrete type, whatever the caller's was.
type Respond = Box<dyn Fn(Request<Body>) -> Answer + Send + Sync>;

/// Largest read (and write) buffer of one connection: a request head must fit in it.
const MAX_BUF: usize = 64 * 1024;

/// What one server lets a caller hold. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub max_body_bytes: usize,
    pub max_bytes_in_flight: usize,
    pub drain_timeout: Duration,
}

impl Limits {
    /// The defaults of [`ServerArgs`] with the given body caps.
    pub fn new(max_body_bytes: usize, max_bytes_in_flight: usize) -> Self {
        ServerArgs::default().limits(max_body_bytes, max_bytes_in_flight)
    }
}

/// The limits every server shares, as flags (`run` and `sink`), each with an environment
/// fallback. Body caps are per server (the webhook's and the sink's have flags of their
/// own; the metrics port takes GETs only).
#[derive(clap::Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerArgs {
    /// Longest a client may take to send a request head, and longest an idle keep-alive
    /// connection is kept (every server).
    #[arg(long, env = "SERVER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = crate::settings::parse_duration)]
    pub server_header_read_timeout: Duration,
    /// Longest a client may take to send a request body, from its head (every server).
    #[arg(long, env = "SERVER_BODY_TIMEOUT", default_value = "30s", value_parser = crate::settings::parse_duration)]
    pub server_body_timeout: Duration,
    /// A connection with no byte read or written for this long while no request is being
    /// handled is closed; the TLS handshake has the same bound (every server).
    #[arg(long, env = "SERVER_IDLE_TIMEOUT", default_value = "30s", value_parser = crate::settings::parse_duration)]
    pub server_idle_timeout: Duration,
    /// Most connections each server holds open at once; more wait to be accepted.
    #[arg(long, env = "SERVER_MAX_CONNECTIONS", default_value_t = 256)]
    pub server_max_connections: usize,
    /// Most connections one peer (IP address) holds open at once on each server; more
    /// from it are closed at once. Keeps one client from taking every connection.
    #[arg(long, env = "SERVER_MAX_CONNECTIONS_PER_PEER", default_value_t = 64)]
    pub server_max_connections_per_peer: usize,
    /// On SIGTERM, longest in-flight requests are given to finish.
    #[arg(long, env = "SERVER_DRAIN_TIMEOUT", default_value = "5s", value_parser = crate::settings::parse_duration)]
    pub server_drain_timeout: Duration,
}

impl Default for ServerArgs {
    /// 10 s for a head, 30 s for a body, 30 s idle (and handshake), 256 connections (64
    /// a peer), 5 s to drain.
    fn default() -> Self {
        Self {
            server_header_read_timeout: Duration::from_secs(10),
            server_body_timeout: Duration::from_secs(30),
            server_idle_timeout: Duration::from_secs(30),
            server_max_connections: 256,
            server_max_connections_per_peer: 64,
            server_drain_timeout: Duration::from_secs(5),
        }
    }
}

impl ServerArgs {
    /// The [`Limits`] of one server: these flags and its body caps.
    pub fn limits(&self, max_body_bytes: usize, max_bytes_in_flight: usize) -> Limits {
        Limits {
            header_read_timeout: self.server_header_read_timeout,
            body_timeout: self.server_body_timeout,
            idle_timeout: self.server_idle_timeout,
            handshake_timeout: self.server_idle_timeout,
            max_connections: self.server_max_connections.max(1),
            max_connections_per_peer: self.server_max_connections_per_peer.max(1),
            max_body_bytes,
            max_bytes_in_flight: max_bytes_in_flight.max(1),
            drain_timeout: self.server_drain_timeout,
        }
    }
}

/// How connections start: plain TCP, or TLS (handshakes that fail or time out are counted
/// in `failures`).
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls {
        acceptor: TlsAcceptor,
        failures: Counter,
    },
}

/// Why a request body could not be read. [`BodyError::status`] is the answer to give.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body over {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body not received within {0:?}")]
    Timeout(Duration),
    #[error("too many request bodies being read at once")]
    Busy,
    #[error("reading the request body: {0}")]
    Read(#[source] BoxError),
}

impl BodyError {
    /// 413, 408, 503 or 400.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads a whole body, at most `limit` bytes, keeping the server's reasons for a refusal
/// (over its cap, too slow, too many bodies at once) apart from a broken connection.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // Read into one buffer sized by the declared length (at most the cap): the body is
    // held once, not as its frames and then a copy of them.
    let expected = usize::try_from(body.size_hint().lower()).unwrap_or(limit);
    let mut buf = BytesMut::with_capacity(expected.min(limit));
    let mut body = std::pin::pin!(Limited::new(body, limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                return BodyError::TooLarge { limit };
            }
            match e.downcast::<BodyError>() {
                Ok(ours) => *ours,
                Err(other) => BodyError::Read(other),
            }
        })?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A request body as handlers see it: hyper's, cut off at the server's byte cap, its
/// deadline and its share of the bytes in flight.
pub struct Body {
    inner: Incoming,
    limit: usize,
    remaining: usize,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    budget: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyError::Timeout(this.timeout))));
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(BodyError::Read(Box::new(e))))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len();
            if n > this.remaining {
                return Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })));
            }
            this.remaining -= n;
            let permits = u32::try_from(n).map_err(|_| BodyError::Busy);
            match permits.and_then(|p| {
                Arc::clone(&this.budget)
                    .try_acquire_many_owned(p)
                    .map_err(|_| BodyError::Busy)
            }) {
                Ok(permit) => {
                    let mut held = this.held.lock().unwrap_or_else(PoisonError::into_inner);
                    match held.as_mut() {
                        Some(h) => h.merge(permit),
                        None => *held = Some(permit),
                    }
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves `listener` with `handler` until `stop` completes, then drains (see the module
/// documentation). `name` is for the logs.
pub async fn serve<H, F, B, E>(
    name: &'static str,
    listener: TcpListener,
    transport: Transport,
    limits: Limits,
    handler: H,
    stop: impl Future<Output = ()>,
) where
    H: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError> + 'static,
    E: Into<BoxError> + 'static,
{
    let handler = Arc::new(handler);
    let handler: Respond = Box::new(move |req| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let response = handler(req).await.map_err(|e| -> BoxError { e.into() })?;
            Ok(response.map(|b| b.map_err(|e| -> BoxError { e.into() }).boxed()))
        })
    });
    let shared = Arc::new(Shared {
        limits,
        transport,
        budget: Arc::new(Semaphore::new(
            limits.max_bytes_in_flight.min(Semaphore::MAX_PERMITS),
        )),
        handler,
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let peers = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    let mut refused_since_warning = 0u64;
    let mut last_warning: Option<Instant> = None;
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(share) =
                    PeerShare::take(&peers, peer.ip(), limits.max_connections_per_peer)
                else {
                    // Closed unread: the slot is free again at once.
                    drop(stream);
                    drop(permit);
                    refused_since_warning += 1;
                    if last_warning.is_none_or(|t| t.elapsed() >= PEER_WARN_EVERY) {
                        warn!(
                            server = name,
                            refused = refused_since_warning,
                            "connections refused: one peer already holds {} (--server-max-connections-per-peer)",
                            limits.max_connections_per_peer
                        );
                        refused_since_warning = 0;
                        last_warning = Some(Instant::now());
                    }
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let watcher = graceful.watcher();
                connections.spawn(connection(
                    stream,
                    peer,
                    Arc::clone(&shared),
                    watcher,
                    (permit, share),
                ));
            }
            Err(e) => {
                warn!(server = name, "accept failed: {e}");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        info!(
            server = name,
            connections = open,
            "stopping: letting in-flight requests finish"
        );
    }
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            server = name,
            "connections still open after the drain timeout: closed"
        );
    }
    connections.shutdown().await;
}

/// Shortest time between two warnings about connections refused to a peer.
const PEER_WARN_EVERY: Duration = Duration::from_secs(60);

/// One of a peer's connections, given back when the connection ends.
struct PeerShare {
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PeerShare {
    /// A share for `ip`, unless it holds `max` already.
    fn take(peers: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let ip = canonical(ip);
        let mut held = peers.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerShare {
            peers: Arc::clone(peers),
            ip,
        })
    }
}

impl Drop for PeerShare {
    fn drop(&mut self) {
        let mut held = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// An IPv4 address mapped in IPv6 counts as the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The address a request came from, in its extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

struct Shared {
    limits: Limits,
    transport: Transport,
    budget: Arc<Semaphore>,
    handler: Respond,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    watcher: Watcher,
    _slot: (OwnedSemaphorePermit, PeerShare),
) {
    match &shared.transport {
        Transport::Plain => serve_io(stream, peer, Arc::clone(&shared), watcher).await,
        Transport::Tls { acceptor, failures } => {
            match tokio::time::timeout(shared.limits.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => serve_io(tls, peer, Arc::clone(&shared), watcher).await,
                Ok(Err(e)) => {
                    failures.inc();
                    debug!("TLS handshake failed: {e}");
                }
                Err(_) => {
                    failures.inc();
                    debug!("TLS handshake timed out");
                }
            }
        }
    }
}

async fn serve_io<I>(io: I, peer: SocketAddr, shared: Arc<Shared>, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let limits = shared.limits;
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            let shared = Arc::clone(&shared);
            let busy = Busy::start(&activity);
            let answer: Answer = Box::pin(async move {
                let response = respond(&shared, req).await;
                drop(busy);
                response
            });
            answer
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUF);
    let io = Tracked {
        inner: io,
        activity: Arc::clone(&activity),
    };
    // Boxed as a plain `dyn Future`: proving the connection `Send` inside this async fn
    // trips a compiler limitation on the error type's lifetime.
    let mut conn: Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>> =
        Box::pin(watcher.watch(builder.serve_connection(TokioIo::new(io), service)));
    loop {
        tokio::select! {
            result = &mut conn => {
                if let Err(e) = result {
                    debug!("connection closed: {e}");
                }
                return;
            }
            () = tokio::time::sleep_until(activity.idle_deadline(limits.idle_timeout)) => {
                if activity.idle_for_at_least(limits.idle_timeout) {
                    debug!("connection idle for {:?}: closed", limits.idle_timeout);
                    return;
                }
            }
        }
    }
}

async fn respond(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, BoxError> {
    let limits = &shared.limits;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        // Refused unread: hyper closes the connection rather than drain the body.
        let mut r = text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {} bytes\n", limits.max_body_bytes),
        );
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return Ok(r.map(|b| b.map_err(|never| match never {}).boxed()));
    }
    let held = Arc::new(Mutex::new(None));
    let req = req.map(|inner| Body {
        inner,
        limit: limits.max_body_bytes,
        remaining: limits.max_body_bytes,
        timeout: limits.body_timeout,
        deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
        budget: Arc::clone(&shared.budget),
        held: Arc::clone(&held),
    });
    let response = (shared.handler)(req).await;
    // The bytes read for this request stay counted until its answer is sent: a client
    // that does not read its answer keeps the answer in memory (until the idle timeout).
    let held = held.lock().unwrap_or_else(PoisonError::into_inner).take();
    response.map(|r| {
        r.map(|inner| {
            Holding {
                inner,
                rest: Bytes::new(),
                held,
            }
            .boxed()
        })
    })
}

/// Largest piece of an answer handed to hyper at once. hyper asks for the next piece only
/// when its write buffer ([`MAX_BUF`]) has room, so an answer is taken from [`Holding`]
/// no faster than the client reads it.
const MAX_FRAME: usize = 16 * 1024;

/// An answer's body that keeps its request's share of the bytes in flight until the last
/// piece of it is taken for sending (at most [`MAX_BUF`] is then left unsent), or until
/// the connection closes.
struct Holding {
    inner: ResponseBody,
    /// What is left of a data frame larger than [`MAX_FRAME`].
    rest: Bytes,
    held: Option<OwnedSemaphorePermit>,
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if !this.rest.is_empty() {
            let n = this.rest.len().min(MAX_FRAME);
            return Poll::Ready(Some(Ok(Frame::data(this.rest.split_to(n)))));
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) if data.len() > MAX_FRAME => {
                    this.rest = data.split_off(MAX_FRAME);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => {
                // The end (or an error): nothing more of this answer will be sent.
                this.held = None;
                Poll::Ready(other)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

/// When a connection last moved a byte, and how many of its requests are being handled.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    fn idle_for_at_least(&self, idle: Duration) -> bool {
        self.busy.load(Ordering::Relaxed) == 0 && Instant::now() >= self.idle_deadline(idle)
    }
}

/// A request being handled: the connection is not idle, whatever its bytes do.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// An I/O stream that records when it last moved a byte.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            self.activity.touch();
        }
        Poll::Ready(result)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        if matches!(result, Ok(n) if n > 0) {
            self.activity.touch();
        }
        Poll::Ready(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs));
        if matches!(result, Ok(n) if n > 0) {
            self.activity.touch();
        }
        Poll::Ready(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Completes on SIGTERM or Ctrl-C: the one shutdown signal of the daemon and the sink.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
