//! Hostile clients against the servers, in process on loopback: the test sink (plain
//! HTTP, through the server helper like the metrics port) and the admission webhook (TLS).

#[path = "support/crypto.rs"]
mod crypto;

use base64::Engine as _;
use konflux_telemetry::admission::{AdmissionMetrics, Handler, Webhook};
use konflux_telemetry::events::ClusterIdentity;
use konflux_telemetry::http::server::{self, Limits};
use konflux_telemetry::segment::WriteKey;
use konflux_telemetry_sink::{Sink, SinkOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "wk-server-tests";
/// The header-read timeout of these tests' servers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Slack for a loaded machine on top of a timeout; only bounds how late a close may come.
const SLACK: Duration = Duration::from_secs(5);
/// How long a test waits for anything before it fails.
const WAIT: Duration = Duration::from_secs(60);

fn limits(max_body_bytes: usize, max_bytes_in_flight: usize) -> Limits {
    Limits {
        header_read_timeout: HEADER_TIMEOUT,
        body_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(2),
        max_connections: 1_024,
        max_connections_per_peer: 1_024,
        max_body_bytes,
        max_bytes_in_flight,
        drain_timeout: Duration::from_secs(5),
    }
}

fn client() -> reqwest::Client {
    crypto::install_provider();
    reqwest::Client::new()
}

async fn get(url: String) -> reqwest::Result<reqwest::Response> {
    client().get(url).send().await
}

fn tempdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

async fn sink_with(name: &str, options: SinkOptions) -> Sink {
    let out = tempdir(name).join("events.ndjson");
    let (_, sink) = Sink::start_with(
        "127.0.0.1:0".parse().expect("address"),
        WriteKey::new(KEY),
        out,
        options,
    )
    .await
    .expect("sink starts");
    sink
}

/// A sink with these body caps, the test timeouts and a log of 100 requests.
async fn sink_capped(name: &str, max_body_bytes: usize, max_bytes_in_flight: usize) -> Sink {
    let options = SinkOptions {
        limits: limits(max_body_bytes, max_bytes_in_flight),
        request_log: 100,
    };
    sink_with(name, options).await
}

/// Connects and sends an authenticated `POST /v1/batch` head with `rest` (more headers,
/// the blank line, any body) after it.
async fn post_batch(addr: SocketAddr, rest: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: sink\r\n{}{rest}",
        auth_header()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s
}

fn auth_header() -> String {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"));
    format!("Authorization: Basic {credentials}\r\n")
}

/// Waits until the server closes `stream` (EOF or reset), discarding what it sends;
/// returns when that was.
/// `n` connections to `addr`, each having sent `start` (a part of a request) and no more.
async fn half_requests(addr: std::net::SocketAddr, n: usize, start: &[u8]) -> Vec<TcpStream> {
    let mut slow = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(start).await.expect("half a request line");
        slow.push(s);
    }
    slow
}

async fn closed_by_server<S: AsyncRead + Unpin>(mut stream: S) -> Instant {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return Instant::now(),
            Ok(_) => {}
        }
    }
}

/// Reads an answer's status line (and whatever came with it).
async fn status_line<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !got.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("an answer");
    let text = String::from_utf8_lossy(&got);
    text.lines().next().unwrap_or_default().to_owned()
}

async fn assert_all_closed_in_time(
    name: &str,
    slow: Vec<Instant>,
    started: Instant,
    bound: Duration,
) {
    let last = slow
        .iter()
        .max()
        .map(|t| *t - started)
        .expect("connections");
    println!(
        "{name}: {} slow connections all closed by the server, the last {last:?} after the first opened",
        slow.len()
    );
    assert!(
        last <= bound,
        "{name}: the last slow connection closed after {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_plain_clients_are_closed_within_the_header_timeout_and_others_are_served() {
    let sink = sink_capped("slow-plain", 1024 * 1024, 8 * 1024 * 1024).await;
    let addr = sink.addr();
    let started = Instant::now();
    let slow = half_requests(addr, 300, b"POST /v1/ba").await;
    // Meanwhile, a normal request is answered.
    let r = get(format!("http://{addr}/control/stats"))
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    let closes = tokio::time::timeout(
        WAIT,
        futures::future::join_all(slow.into_iter().map(closed_by_server)),
    )
    .await
    .expect("every slow connection closed by the server");
    assert_all_closed_in_time("plain", closes, started, HEADER_TIMEOUT + SLACK).await;
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_a_new_client_waits_for_a_slot() {
    let mut options = SinkOptions {
        limits: limits(1024 * 1024, 8 * 1024 * 1024),
        request_log: 100,
    };
    options.limits.max_connections = 8;
    let sink = sink_with("cap", options).await;
    let addr = sink.addr();
    let slow = half_requests(addr, 8, b"GET /contr").await;
    let closes = tokio::spawn(futures::future::join_all(
        slow.into_iter().map(closed_by_server),
    ));
    let r = tokio::time::timeout(WAIT, get(format!("http://{addr}/control/stats")))
        .await
        .expect("answered within the wait")
        .expect("answer");
    let answered = Instant::now();
    assert_eq!(r.status().as_u16(), 200);
    let closes = closes.await.expect("join");
    let first_close = closes.iter().min().copied().expect("closes");
    assert!(
        answered >= first_close,
        "the ninth client was served before any of the eight slots freed"
    );
}

/// `webhook-certs/make-certs.sh DIR IP:127.0.0.1`.
fn make_certs(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-certs/make-certs.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(dir)
        .arg("IP:127.0.0.1")
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run make-certs.sh");
    assert!(status.success(), "make-certs.sh failed (needs openssl)");
}

async fn webhook(
    name: &str,
    limits: Limits,
) -> (SocketAddr, PathBuf, tokio_util::sync::CancellationToken) {
    let dir = tempdir(name);
    make_certs(&dir);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    // Nothing reads the observations; keep the receiver so sends do not fail.
    std::mem::forget(rx);
    let identity = Arc::new(ClusterIdentity::default());
    let handler = Handler::new(
        tx,
        move || Arc::clone(&identity),
        AdmissionMetrics::default(),
    );
    // The webhook serves with the process's provider, which the daemon's `main` installs.
    crypto::install_provider();
    let webhook = Webhook::bind_with(
        "127.0.0.1:0".parse().expect("address"),
        &dir,
        handler,
        Duration::from_secs(60),
    )
    .await
    .expect("webhook")
    .with_limits(limits);
    let addr = webhook.local_addr().expect("address");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(webhook.run(stop.clone()));
    (addr, dir, stop)
}

fn tls_connector(dir: &Path) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ca = std::fs::read(dir.join("ca.crt")).expect("ca.crt");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    connector.connect(name, tcp).await.expect("TLS handshake")
}

fn https_client(dir: &Path) -> reqwest::Client {
    crypto::install_provider();
    let pem = std::fs::read(dir.join("ca.crt")).expect("ca.crt");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA")])
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tls_clients_are_closed_within_the_timeouts_and_others_are_served() {
    let limits = limits(8 * 1024 * 1024, 32 * 1024 * 1024);
    let (addr, dir, stop) = webhook("slow-tls", limits).await;
    let connector = tls_connector(&dir);
    let started = Instant::now();
    // 150 that never start the handshake, 150 that send half a request line after it.
    let mut silent = Vec::new();
    for _ in 0..150 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut half = Vec::new();
    for _ in 0..150 {
        let mut s = tls(&connector, addr).await;
        s.write_all(b"POST /valid")
            .await
            .expect("half a request line");
        s.flush().await.expect("flush");
        half.push(s);
    }
    let r = https_client(&dir)
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    let (silent, half) = tokio::time::timeout(
        WAIT,
        futures::future::join(
            futures::future::join_all(silent.into_iter().map(closed_by_server)),
            futures::future::join_all(half.into_iter().map(closed_by_server)),
        ),
    )
    .await
    .expect("every slow connection closed by the server");
    assert_all_closed_in_time(
        "TLS, no handshake",
        silent,
        started,
        limits.handshake_timeout + SLACK,
    )
    .await;
    // The last half-line was sent after the others' handshakes: bound it from there too.
    assert_all_closed_in_time(
        "TLS, half a request line",
        half,
        started,
        limits.handshake_timeout + HEADER_TIMEOUT + SLACK,
    )
    .await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_is_refused_413_before_it_is_sent() {
    // Plain (the sink): the head declares 1 GB and no byte of the body follows.
    let sink = sink_capped("cap-413", 64 * 1024, 1024 * 1024).await;
    let mut s = post_batch(
        sink.addr(),
        "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&mut s).await, "HTTP/1.1 413 Payload Too Large");
    // Streamed (chunked, no length): cut off at the cap.
    let mut s = post_batch(sink.addr(), "Transfer-Encoding: chunked\r\n\r\n").await;
    let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
    for _ in 0..5 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    assert_eq!(status_line(&mut s).await, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(sink.stats().statuses.get("413"), Some(&1));
    sink.shutdown().await;

    // TLS (the webhook): the same head on /validate.
    let (addr, dir, stop) = webhook("cap-413-tls", limits(64 * 1024, 1024 * 1024)).await;
    let mut s = tls(&tls_connector(&dir), addr).await;
    s.write_all(b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: 1000000000\r\n\r\n")
        .await
        .expect("head");
    assert_eq!(status_line(&mut s).await, "HTTP/1.1 413 Payload Too Large");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_bytes_in_flight_get_503() {
    let sink = sink_capped("in-flight", 80_000, 100_000).await;
    // One client holds 60,000 bytes of an 80,000-byte body, and sends no more.
    let mut holder = post_batch(sink.addr(), "Content-Length: 80000\r\n\r\n").await;
    holder
        .write_all(&vec![b' '; 60_000])
        .await
        .expect("part of the body");
    // Another's 60,000 bytes do not fit beside it, once the server has read the first.
    let client = client();
    let url = format!("{}/batch", sink.api_url());
    let mut statuses = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = client
            .post(&url)
            .basic_auth(KEY, Some(""))
            .body(vec![b' '; 60_000])
            .send()
            .await
            .expect("answer");
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 503 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
    // Once the holder is gone its bytes are free again.
    drop(holder);
    let r = client
        .post(&url)
        .basic_auth(KEY, Some(""))
        .body(r#"{"batch":[]}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_stop_in_flight_requests_finish_and_new_connections_are_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::channel::<()>(1);
    let release = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let release = Arc::clone(&release);
        move |_req: hyper::Request<server::Body>| {
            let arrived_tx = arrived_tx.clone();
            let release = Arc::clone(&release);
            async move {
                let _ = arrived_tx.send(()).await;
                release.notified().await;
                Ok::<_, std::convert::Infallible>(server::text(hyper::StatusCode::OK, "finished\n"))
            }
        }
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let served = tokio::spawn(server::serve(
        "test",
        listener,
        server::Transport::Plain,
        limits(1024, 1024),
        handler,
        stop.clone().cancelled_owned(),
    ));
    // An idle keep-alive connection, and one with a request in flight.
    let idle = TcpStream::connect(addr).await.expect("connect");
    let mut busy = TcpStream::connect(addr).await.expect("connect");
    busy.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    arrived
        .recv()
        .await
        .expect("the request reached the handler");
    stop.cancel();
    // The idle one is closed, new ones are refused...
    tokio::time::timeout(WAIT, closed_by_server(idle))
        .await
        .expect("the idle connection closed");
    tokio::time::timeout(WAIT, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("new connections refused");
    // ...and the request in flight still gets its answer.
    release.notify_one();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, busy.read_to_string(&mut answer))
        .await
        .expect("answer within the wait")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("finished\n"), "{answer}");
    tokio::time::timeout(WAIT, served)
        .await
        .expect("the server ends once drained")
        .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_answers_401_before_reading_a_body_and_keeps_a_bounded_log() {
    let sink = sink_with(
        "auth-first",
        SinkOptions {
            limits: limits(4 * 1024 * 1024, 8 * 1024 * 1024),
            request_log: 5,
        },
    )
    .await;
    // Unauthenticated, 3 MB declared, none sent: answered at once.
    let mut s = TcpStream::connect(sink.addr()).await.expect("connect");
    s.write_all(
        b"POST /v1/batch HTTP/1.1\r\nHost: sink\r\nContent-Length: 3000000\r\n\r\n{\"batch\":[",
    )
    .await
    .expect("head");
    assert_eq!(status_line(&mut s).await, "HTTP/1.1 401 Unauthorized");
    let stats = sink.stats();
    assert_eq!(stats.request_log.len(), 1);
    assert_eq!(stats.request_log[0].bytes, 0, "the body was not read");
    // The log keeps the last 5 of 20.
    let client = client();
    for _ in 0..19 {
        let r = client
            .post(format!("{}/batch", sink.api_url()))
            .body(r#"{"batch":[]}"#)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 401);
    }
    let stats = sink.stats();
    assert_eq!(stats.requests, 20);
    assert_eq!(stats.statuses.get("401"), Some(&20));
    assert_eq!(stats.request_log.len(), 5);
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_not_sent_within_the_body_timeout_is_answered_408() {
    let sink = sink_capped("body-timeout", 64 * 1024, 1024 * 1024).await;
    let sent = Instant::now();
    let mut s = post_batch(sink.addr(), "Content-Length: 1000\r\n\r\n{\"batch\":[").await;
    assert_eq!(status_line(&mut s).await, "HTTP/1.1 408 Request Timeout");
    let after = sent.elapsed();
    println!("an unfinished body was answered 408 after {after:?}");
    assert!(after >= Duration::from_secs(2), "{after:?}");
    sink.shutdown().await;
}

/// A server whose handler reads the body and answers with `answer_bytes` bytes.
async fn echo_large(
    limits: Limits,
    answer_bytes: usize,
) -> (SocketAddr, tokio_util::sync::CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let handler = move |req: hyper::Request<server::Body>| async move {
        Ok::<_, std::convert::Infallible>(
            match server::read_body(req.into_body(), usize::MAX).await {
                Ok(_) => server::text(hyper::StatusCode::OK, vec![b'x'; answer_bytes]),
                Err(e) => server::text(e.status(), format!("{e}\n")),
            },
        )
    };
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server::serve(
        "test",
        listener,
        server::Transport::Plain,
        limits,
        handler,
        stop.clone().cancelled_owned(),
    ));
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_holds_its_bytes_in_flight_until_its_answer_is_sent() {
    let mut limits = limits(80_000, 100_000);
    // Long enough that the client who does not read is not closed during the test.
    limits.idle_timeout = WAIT;
    let (addr, stop) = echo_large(limits, 8 * 1024 * 1024).await;
    // One client sends 60,000 bytes, reads the start of its 8 MiB answer, then stops.
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
        .await
        .expect("head");
    stalled.write_all(&vec![b' '; 60_000]).await.expect("body");
    assert_eq!(status_line(&mut stalled).await, "HTTP/1.1 200 OK");
    // Its bytes are still counted: another 60,000 do not fit beside them.
    let client = client();
    let post = || {
        client
            .post(format!("http://{addr}/"))
            .body(vec![b' '; 60_000])
            .send()
    };
    let r = post().await.expect("answer");
    assert_eq!(
        r.status().as_u16(),
        503,
        "the stalled answer's bytes were released"
    );
    // Once its answer is read, they are free.
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // (the status line's read took the head and perhaps a little of the body)
    let read_all = async {
        while rest.len() < 8 * 1024 * 1024 - 4096 {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read_all)
        .await
        .expect("the answer");
    let r = post().await.expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.expect("body").len(), 8 * 1024 * 1024);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_reads_bodies_up_to_its_configured_cap_above_the_default() {
    let cap = 12 * 1024 * 1024;
    let (addr, dir, stop) = webhook("cap-above-default", limits(cap, 2 * cap)).await;
    let review = |pad: usize| {
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "operation": "CREATE",
                "kind": {"group": "appstudio.redhat.com", "version": "v1alpha1", "kind": "Component"},
                "object": {"metadata": {"uid": "c", "namespace": "n", "name": "c"},
                           "spec": {"application": "a", "pad": "x".repeat(pad)}}}
        })
        .to_string()
    };
    let client = https_client(&dir);
    let post = |body: String| {
        client
            .post(format!("https://{addr}/validate"))
            .body(body)
            .send()
    };
    // 10 MiB: over the default 8 MiB, under the configured 12 MiB.
    let r = post(review(10 * 1024 * 1024)).await.expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.expect("body")).expect("a review");
    assert_eq!(v["response"]["allowed"], true);
    // Declared over the cap: 413, unread.
    let mut s = tls(&tls_connector(&dir), addr).await;
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: {}\r\n\r\n",
        cap + 1
    );
    s.write_all(head.as_bytes()).await.expect("head");
    assert_eq!(status_line(&mut s).await, "HTTP/1.1 413 Payload Too Large");
    stop.cancel();
}

/// A connection to `addr` from loopback address `from` (127.0.0.0/8 is all loopback).
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    socket.connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_take_every_connection() {
    let mut options = SinkOptions {
        limits: limits(1024 * 1024, 8 * 1024 * 1024),
        request_log: 100,
    };
    // Slow clients are not closed during the test: only the per-peer cap can help.
    options.limits.header_read_timeout = WAIT * 2;
    options.limits.idle_timeout = WAIT * 2;
    options.limits.max_connections = 8;
    options.limits.max_connections_per_peer = 4;
    let sink = sink_with("per-peer", options).await;
    let addr = sink.addr();
    // One peer opens 8 connections and sends half a request line on each: 4 are held,
    // the others closed at once.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = connect_from([127, 0, 0, 1], addr).await;
        let _ = s.write_all(b"GET /contr").await;
        held.push(s);
    }
    let mut reads = tokio::task::JoinSet::new();
    for s in held {
        reads.spawn(closed_by_server(s));
    }
    for _ in 0..4 {
        tokio::time::timeout(WAIT, reads.join_next())
            .await
            .expect("the connections over the peer's share closed")
            .expect("a read")
            .expect("join");
    }
    // Another peer is served while the first holds its share.
    let mut other = connect_from([127, 0, 0, 2], addr).await;
    other
        .write_all(b"GET /control/stats HTTP/1.1\r\nHost: sink\r\n\r\n")
        .await
        .expect("request");
    assert_eq!(status_line(&mut other).await, "HTTP/1.1 200 OK");
    // and the first peer's 4 are still open (their timeouts are far off)
    assert!(reads.try_join_next().is_none());
    assert_eq!(reads.len(), 4);
    reads.abort_all();
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_answered_while_the_metrics_port_is_full() {
    use konflux_telemetry::http::{self, Endpoints, Preview};
    let endpoints = Arc::new(Endpoints {
        buffer: Arc::new(konflux_telemetry::pipeline::Core::new(
            ClusterIdentity::default(),
            10,
            usize::MAX,
            3600,
            konflux_telemetry::pipeline::metrics::CoreMetrics::default(),
        )),
        registry: prometheus_client::registry::Registry::default(),
        ready: Box::new(|| true),
        preview: Preview::new(false),
        switch: tokio::sync::watch::channel(konflux_telemetry::switch::Decision::PENDING).1,
    });
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (main, probes) = (bind().await.expect("bind"), bind().await.expect("bind"));
    let (main_addr, probe_addr) = (
        main.local_addr().expect("address"),
        probes.local_addr().expect("address"),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let mut main_limits = limits(1024, 1024);
    main_limits.header_read_timeout = WAIT * 2;
    main_limits.idle_timeout = WAIT * 2;
    main_limits.max_connections = 4;
    tokio::spawn(http::serve(
        main,
        Arc::clone(&endpoints),
        main_limits,
        stop.clone(),
    ));
    let probe_limits = http::probe_limits(&server::ServerArgs::default());
    tokio::spawn(http::serve_probes(
        probes,
        endpoints,
        probe_limits,
        stop.clone(),
    ));
    // Four peers hold every connection of the main port with half a request line.
    let mut held = Vec::new();
    for i in 1..=4 {
        let mut s = connect_from([127, 0, 0, i], main_addr).await;
        s.write_all(b"GET /metr").await.expect("half a line");
        held.push(s);
    }
    // The probe port answers, and serves probes only.
    for (path, status) in [
        ("/healthz", "HTTP/1.1 200 OK"),
        ("/readyz", "HTTP/1.1 200 OK"),
        ("/metrics", "HTTP/1.1 404 Not Found"),
    ] {
        let mut s = TcpStream::connect(probe_addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: pod\r\n\r\n");
        s.write_all(request.as_bytes()).await.expect("request");
        assert_eq!(status_line(&mut s).await, status, "{path}");
    }
    drop(held);
    stop.cancel();
}
