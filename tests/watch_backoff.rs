//! A kind whose CRD is missing, and a ConfigMap the daemon may not read, against a fake
//! API server in process: the LISTs back off exponentially, and the problem is logged
//! once, not once a retry. And `konflux-public-info`, read with a `get` on a timer:
//! forbidden, it is logged once and read again on each tick until it can be.

use konflux_telemetry::capture::config_maps;
use konflux_telemetry::capture::guarded_watch::{self, WatchState};
use konflux_telemetry::capture::identity::{self, PublicInfo, PublicInfoReader};
use konflux_telemetry::capture::retry::WatchRetry;
use konflux_telemetry::events::object::KONFLUX;
use konflux_telemetry::http::server::{self, Limits};
use konflux_telemetry::pipeline::metrics::CoreMetrics;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[path = "support/crypto.rs"]
mod crypto;
#[path = "support/logs.rs"]
mod logs;
use logs::Captured;

/// LISTs to see before stopping.
const LISTS: usize = 7;
const BASE: Duration = Duration::from_millis(50);
const CAP: Duration = Duration::from_millis(400);

/// A fake API server answering every request with `code` (a Kubernetes `Status`), which
/// records when each LIST (a GET without `watch=`, or a watch with `sendInitialEvents`) of
/// `path` arrived and says so on `listed` once it has seen [`LISTS`].
struct Fake {
    client: kube::Client,
    lists: Arc<Mutex<Vec<Instant>>>,
    enough: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
}

/// A Kubernetes `Status` failure with `code` and `reason`, as the API server answers.
fn status_answer(code: u16, reason: &str) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "reason": reason, "message": "fake", "code": code,
    });
    let mut r = server::text(
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::NOT_FOUND),
        status.to_string(),
    );
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves `handler` on `listener` (plain HTTP) until the token returned is cancelled, and
/// a client of it.
fn serve_fake<H, F>(
    listener: tokio::net::TcpListener,
    handler: H,
) -> (kube::Client, CancellationToken)
where
    H: Fn(hyper::Request<server::Body>) -> F + Send + Sync + 'static,
    F: std::future::Future<
            Output = Result<
                hyper::Response<http_body_util::Full<bytes::Bytes>>,
                std::convert::Infallible,
            >,
        > + Send
        + 'static,
{
    let addr = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    tokio::spawn(server::serve(
        "fake-api",
        listener,
        server::Transport::Plain,
        Limits::new(1024, 1024 * 1024),
        handler,
        stop.clone().cancelled_owned(),
    ));
    crypto::install_provider();
    let url: http::Uri = format!("http://{addr}").parse().expect("URL");
    (
        kube::Client::try_from(kube::Config::new(url)).expect("client"),
        stop,
    )
}

async fn fake_api(path: &'static str, code: u16) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let lists = Arc::new(Mutex::new(Vec::new()));
    let (enough_tx, enough) = tokio::sync::watch::channel(false);
    let enough_tx = Arc::new(enough_tx);
    let handler = {
        let lists = Arc::clone(&lists);
        move |req: hyper::Request<server::Body>| {
            let query = req.uri().query().unwrap_or_default();
            // A LIST, or the watch-list stream's first request that stands for one.
            let is_list = req.uri().path() == path
                && (!query.contains("watch=") || query.contains("sendInitialEvents=true"));
            if is_list {
                let mut l = lists.lock().expect("lists");
                l.push(Instant::now());
                if l.len() >= LISTS {
                    enough_tx.send_replace(true);
                }
            }
            let reason = if code == 404 { "NotFound" } else { "Forbidden" };
            async move { Ok::<_, std::convert::Infallible>(status_answer(code, reason)) }
        }
    };
    let (client, stop) = serve_fake(listener, handler);
    Fake {
        client,
        lists,
        enough,
        stop,
    }
}

impl Fake {
    /// Waits for [`LISTS`] LISTs (the marker), then returns the gaps between them.
    async fn gaps(&mut self) -> Vec<Duration> {
        tokio::time::timeout(Duration::from_secs(60), self.enough.wait_for(|e| *e))
            .await
            .expect("LISTs within the wait")
            .expect("fake server");
        let lists = self.lists.lock().expect("lists").clone();
        self.stop.cancel();
        lists.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Waits grow: each at least half its ceiling, and the sixth at least three times the
/// first (a backoff that a relist resets stays flat, about 0.8 s each with kube's).
fn assert_backs_off(gaps: &[Duration]) {
    println!("gaps between LISTs: {gaps:?}");
    let retry = WatchRetry::new(BASE, CAP);
    for (n, gap) in gaps.iter().enumerate() {
        let floor = retry.ceiling(n as u32) / 2;
        assert!(
            *gap >= floor,
            "gap {n} is {gap:?}, under {floor:?}: {gaps:?}"
        );
    }
    assert!(gaps[5] >= gaps[0] * 3, "no exponential backoff: {gaps:?}");
}

/// Once [`LISTS`] LISTs failed: stops the watch, waits for it to end, and checks that it
/// backed off.
async fn stop_after_backoff(
    fake: &mut Fake,
    stop: &CancellationToken,
    watching: tokio::task::JoinHandle<()>,
) {
    let gaps = fake.gaps().await;
    stop.cancel();
    watching.await.expect("the watch ends on stop");
    assert_backs_off(&gaps);
}

/// `warning` logged once for all the failed LISTs, and no recovery.
fn assert_warned_once(logs: &Captured, warning: &str) {
    let text = logs.text();
    assert_eq!(
        text.matches(warning).count(),
        1,
        "one warning for {LISTS} failed LISTs:\n{text}"
    );
    assert!(!text.contains("recovered"), "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_kind_whose_crd_is_missing_backs_off_and_warns_once() {
    // One thread: the subscriber sees the watch's logs.
    let (logs, _guard) = Captured::install(tracing::Level::INFO);
    let mut fake = fake_api("/apis/konflux.konflux-ci.dev/v1alpha1/konfluxes", 404).await;
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let state = Arc::new(WatchState::default());
    let stop = CancellationToken::new();
    let watching = tokio::spawn(guarded_watch::run_with(
        &KONFLUX,
        fake.client.clone(),
        tx,
        CoreMetrics::default(),
        Arc::clone(&state),
        WatchRetry::new(BASE, CAP),
        stop.clone(),
    ));
    stop_after_backoff(&mut fake, &stop, watching).await;
    assert!(state.settled(), "an unavailable kind does not hold /readyz");
    assert_warned_once(&logs, "is not served");
}

#[tokio::test(flavor = "current_thread")]
async fn a_forbidden_config_map_backs_off_and_warns_once() {
    let (logs, _guard) = Captured::install(tracing::Level::INFO);
    let mut fake = fake_api("/api/v1/namespaces/konflux-info/configmaps", 403).await;
    let stop = CancellationToken::new();
    let changes = Arc::new(Mutex::new(0usize));
    let watching = {
        let (client, stop, changes) = (fake.client.clone(), stop.clone(), Arc::clone(&changes));
        tokio::spawn(async move {
            config_maps::watch_one_with(
                client,
                "konflux-info",
                "konflux-public-info",
                WatchRetry::new(BASE, CAP),
                stop,
                |_| *changes.lock().expect("changes") += 1,
            )
            .await;
        })
    };
    stop_after_backoff(&mut fake, &stop, watching).await;
    assert_eq!(*changes.lock().expect("changes"), 0);
    assert_warned_once(&logs, "cannot watch ConfigMap");
}

/// An API server that refuses the watch-list stream (422, as when its `WatchList` feature
/// is off) gets paged LISTs of `WATCH_PAGE_SIZE` objects instead, said once.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_watch_list_falls_back_to_small_pages() {
    let (logs, _guard) = Captured::install(tracing::Level::INFO);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let queries = Arc::new(Mutex::new(Vec::<String>::new()));
    let (listed_tx, mut listed) = tokio::sync::watch::channel(false);
    let listed_tx = Arc::new(listed_tx);
    let handler = {
        let queries = Arc::clone(&queries);
        move |req: hyper::Request<server::Body>| {
            let query = req.uri().query().unwrap_or_default().to_owned();
            let refused = query.contains("sendInitialEvents=true");
            if !query.contains("watch=") {
                listed_tx.send_replace(true);
            }
            queries.lock().expect("queries").push(query);
            // The watch-list refused as invalid; the LIST answered "not served" (enough
            // to see its parameters).
            let (code, reason) = if refused {
                (422, "Invalid")
            } else {
                (404, "NotFound")
            };
            async move { Ok::<_, std::convert::Infallible>(status_answer(code, reason)) }
        }
    };
    let (client, stop) = serve_fake(listener, handler);
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let watching = tokio::spawn(guarded_watch::run_with(
        &KONFLUX,
        client,
        tx,
        CoreMetrics::default(),
        Arc::new(WatchState::default()),
        WatchRetry::new(BASE, CAP),
        stop.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(60), listed.wait_for(|l| *l))
        .await
        .expect("a LIST within the wait")
        .expect("fake server");
    stop.cancel();
    watching.await.expect("the watch ends on stop");
    let queries = queries.lock().expect("queries").clone();
    assert!(
        queries[0].contains("sendInitialEvents=true"),
        "the watch-list first: {queries:?}"
    );
    let list = queries
        .iter()
        .find(|q| !q.contains("watch="))
        .expect("a LIST");
    assert!(
        list.contains(&format!("limit={}", guarded_watch::WATCH_PAGE_SIZE)),
        "{list}"
    );
    let text = logs.text();
    assert_eq!(
        text.matches("does not offer the watch-list stream").count(),
        1,
        "{text}"
    );
}

/// `konflux-public-info` forbidden (Konflux's Role for every authenticated user missing),
/// then readable: the daemon starts without it, warns once, reads again on each tick of
/// its timer (not in a hot loop), and takes it as soon as a read succeeds.
#[tokio::test(flavor = "current_thread")]
async fn a_forbidden_public_info_is_warned_once_and_read_again_on_the_timer() {
    const FORBIDDEN: usize = 3;
    const EVERY: Duration = Duration::from_secs(1);
    let (logs, _guard) = Captured::install(tracing::Level::INFO);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gets = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let handler = {
        let gets = Arc::clone(&gets);
        move |req: hyper::Request<server::Body>| {
            let mut g = gets.lock().expect("gets");
            g.push((format!("{} {}", req.method(), req.uri()), Instant::now()));
            let answer = if g.len() <= FORBIDDEN {
                status_answer(403, "Forbidden")
            } else {
                let cm = serde_json::json!({
                    "kind": "ConfigMap", "apiVersion": "v1",
                    "metadata": {"name": "konflux-public-info", "namespace": "konflux-info"},
                    "data": {"info.json": "{\"clusterId\": \"from-info\", \"konfluxVersion\": \"v9.9\"}"},
                });
                let mut r = server::text(hyper::StatusCode::OK, cm.to_string());
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                r
            };
            async move { Ok::<_, std::convert::Infallible>(answer) }
        }
    };
    let (client, server_stop) = serve_fake(listener, handler);

    // At start, as the daemon does: forbidden, so nothing.
    let mut reader = PublicInfoReader::default();
    assert_eq!(reader.read(&client).await, None);
    let (changed_tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let rereading = tokio::spawn(identity::reread_public_info(
        client,
        reader,
        PublicInfo::default(),
        EVERY,
        stop.clone(),
        move |info| {
            let _ = changed_tx.send(info.clone());
        },
    ));
    let info = tokio::time::timeout(Duration::from_secs(30), changed.recv())
        .await
        .expect("konflux-public-info taken within the wait")
        .expect("a change");
    stop.cancel();
    rereading.await.expect("the timer ends on stop");
    server_stop.cancel();

    assert_eq!(info.cluster_id.as_deref(), Some("from-info"));
    assert_eq!(info.konflux_version.as_deref(), Some("v9.9"));
    let gets = gets.lock().expect("gets").clone();
    assert_eq!(gets.len(), FORBIDDEN + 1, "{gets:?}");
    for (request, _) in &gets {
        assert_eq!(
            request, "GET /api/v1/namespaces/konflux-info/configmaps/konflux-public-info",
            "one get by name, no list or watch"
        );
    }
    for w in gets.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(
            gap >= EVERY - Duration::from_millis(50),
            "read again after {gap:?}, not on the timer"
        );
    }
    let text = logs.text();
    assert_eq!(
        text.matches("cannot read konflux-info/konflux-public-info")
            .count(),
        1,
        "one warning for {FORBIDDEN} forbidden reads:\n{text}"
    );
    assert!(text.contains("403 Forbidden"), "{text}");
    assert!(
        !text.contains("fake"),
        "the API server's message is not logged:\n{text}"
    );
    assert_eq!(text.matches("can be read again").count(), 1, "{text}");
}
