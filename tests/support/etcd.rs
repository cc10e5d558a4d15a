//! Talking to the local control plane's etcd through its v3 JSON gateway
//! (plain HTTP on loopback), e.g. to compact history and so make watches
//! that resume from an old resourceVersion fail with 410 Gone.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The current etcd revision (the newest resourceVersion the API server can
/// have handed out).
pub async fn current_revision(endpoint: &str) -> Result<i64, String> {
    // Any key will do: every response carries the header with the revision.
    // "Lw==" is base64 for "/".
    let body = post(endpoint, "/v3/kv/range", r#"{"key":"Lw==","limit":1}"#).await?;
    header_revision(&body)
}

/// Compacts etcd's history up to `revision` and waits until the compaction is
/// physically applied. Compacting to a revision that is already compacted is
/// not an error.
pub async fn compact(endpoint: &str, revision: i64) -> Result<(), String> {
    let req = format!(r#"{{"revision":"{revision}","physical":true}}"#);
    match post(endpoint, "/v3/kv/compaction", &req).await {
        Ok(_) => Ok(()),
        Err(e) if e.contains("required revision has been compacted") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Compacts all history up to now; returns the revision compacted to.
pub async fn compact_now(endpoint: &str) -> Result<i64, String> {
    let rev = current_revision(endpoint).await?;
    compact(endpoint, rev).await?;
    Ok(rev)
}

fn header_revision(body: &serde_json::Value) -> Result<i64, String> {
    // int64 fields are strings in protobuf's JSON mapping.
    let rev = &body["header"]["revision"];
    rev.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| rev.as_i64())
        .ok_or_else(|| format!("no header.revision in etcd's answer: {body}"))
}

/// A minimal HTTP/1.0 POST (so the answer is neither chunked nor kept alive),
/// to avoid an HTTP client dependency for two calls.
async fn post(endpoint: &str, path: &str, json: &str) -> Result<serde_json::Value, String> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("etcd endpoint {endpoint} is not http://host:port"))?
        .trim_end_matches('/');
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        let req = format!(
            "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        stream.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        stream.read_to_end(&mut resp).await?;
        Ok::<_, std::io::Error>(resp)
    };
    let resp = tokio::time::timeout(Duration::from_secs(30), io)
        .await
        .map_err(|_| format!("etcd {endpoint}{path}: no answer within 30s"))?
        .map_err(|e| format!("etcd {endpoint}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("etcd {endpoint}{path}: malformed answer {text:?}"))?;
    let status_ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
    if !status_ok {
        return Err(format!(
            "etcd {endpoint}{path}: {} {body}",
            head.lines().next().unwrap_or("")
        ));
    }
    serde_json::from_str(body).map_err(|e| format!("etcd {endpoint}{path}: {e} in {body:?}"))
}
