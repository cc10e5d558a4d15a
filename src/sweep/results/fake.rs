//! Tests only: a tiny HTTP/1.1 server on loopback, plain or TLS (a fixed test CA and a
//! certificate for `localhost`, `127.0.0.1` and the Tekton Results service name of
//! namespace `tekton-pipelines`, in `testdata/`), answering each request with what a
//! handler says and keeping what it saw; and the records and clients the tests use.

use super::{RecordOutcome, RecordPages, ResultsClient, ResultsConfig, SweepError, TokenSource};
use crate::events::Object;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub authorization: Option<String>,
}

/// What the fake answers a request: status and body (a 3xx answer's body is its Location).
pub type Handler = Arc<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

/// The requests a fake server saw, in order.
pub type SeenLog = Arc<Mutex<Vec<Seen>>>;

/// `what` of each request the fake server saw, in order.
pub fn each_request<T>(seen: &Mutex<Vec<Seen>>, what: impl FnMut(&Seen) -> T) -> Vec<T> {
    seen.lock().unwrap().iter().map(what).collect()
}

/// The test CA's certificate (PEM), which signed the TLS fake's certificate.
pub fn test_ca() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/sweep/results/testdata/ca.crt"
    ))
}

/// A plain HTTP fake on loopback: `http://127.0.0.1:PORT`, and what it saw.
pub async fn fake(handler: Handler) -> (String, SeenLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = SeenLog::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(answer(sock, handler.clone(), log.clone()));
        }
    });
    (addr, seen)
}

/// A TLS fake on loopback, its certificate signed by [`test_ca`]: its port, and what it
/// saw. A client that refuses its certificate never gets to send a request, so sees
/// nothing of it.
pub async fn fake_tls(handler: Handler) -> (u16, SeenLog) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/sweep/results/testdata");
    let certs = CertificateDer::pem_file_iter(format!("{dir}/tls.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/tls.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = SeenLog::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, handler, log) = (acceptor.clone(), handler.clone(), log.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(sock).await {
                    answer(tls, handler, log).await;
                }
            });
        }
    });
    (port, seen)
}

/// Reads one request head from `sock`, logs it, writes the handler's answer, closes.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut sock: S, handler: Handler, log: SeenLog) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
    let authorization = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_owned())
    });
    let req = Seen {
        path: url.path().to_owned(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        authorization,
    };
    log.lock().unwrap().push(req.clone());
    let (status, body) = handler(&req);
    let location = if (300..400).contains(&status) {
        format!("location: {body}\r\n")
    } else {
        String::new()
    };
    let resp = format!(
        "HTTP/1.1 {status} X\r\n{location}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// A PipelineRun's JSON with uid `uid`.
pub fn run_json(uid: &str) -> String {
    format!(
        r#"{{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{{"name":"n","namespace":"ns","uid":"{uid}","creationTimestamp":"2026-01-01T00:00:00Z","labels":{{"tekton.dev/pipeline":"p"}}}},"status":{{"startTime":"2026-01-01T00:00:01Z"}}}}"#
    )
}

/// A record of [`run_json`]`(uid)` last updated at `updated`, as a listing shows it.
pub fn record(uid: &str, updated: &str) -> serde_json::Value {
    let value = base64::engine::general_purpose::STANDARD.encode(run_json(uid));
    serde_json::json!({
        "name": format!("ns/results/{uid}/records/{uid}"),
        "uid": uid,
        "data": {"type": "tekton.dev/v1.PipelineRun", "value": value},
        "update_time": updated,
    })
}

/// [`ResultsClient::new`] with the provider `main` installs.
pub fn new_client(config: &ResultsConfig) -> Result<ResultsClient, SweepError> {
    crate::crypto::install_for_tests();
    ResultsClient::new(config)
}

/// A configuration for `addr` without a token, 5 s a request.
pub fn config(addr: &str) -> ResultsConfig {
    let mut c = ResultsConfig::new(addr);
    c.token = TokenSource::None;
    c.timeout = Duration::from_secs(5);
    c
}

pub fn since(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// Every page of a listing: the uids of its runs (or each other outcome, as `Debug`), and
/// the error that ended it.
pub async fn drain(pages: &mut RecordPages<'_>) -> (Vec<String>, Option<SweepError>) {
    let mut uids = Vec::new();
    while let Some(page) = pages.next_page().await {
        match page {
            Ok(p) => {
                for r in p.records {
                    match r {
                        RecordOutcome::Object(Object::PipelineRun(run)) => uids.push(run.meta.uid),
                        other => uids.push(format!("{other:?}")),
                    }
                }
            }
            Err(e) => return (uids, Some(e)),
        }
    }
    (uids, None)
}

/// A server answering `min(page_size, at_most)` records a page, and a config whose
/// page limit is 20 records' worth.
pub async fn sized_pages(at_most: usize) -> (ResultsConfig, SeenLog, String) {
    let handler: Handler = Arc::new(move |req: &Seen| {
        let size: usize = req.query["page_size"].parse().unwrap();
        let records: Vec<_> = (0..size.min(at_most))
            .map(|i| record(&format!("r{i}"), "2026-01-01T12:00:00Z"))
            .collect();
        (200, serde_json::json!({ "records": records }).to_string())
    });
    let (addr, seen) = fake(handler).await;
    let mut c = config(&addr);
    let one = serde_json::to_vec(&record("r00", "2026-01-01T12:00:00Z"))
        .unwrap()
        .len();
    c.max_page_bytes = one * 20;
    (c, seen, addr)
}
