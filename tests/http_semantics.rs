//! HTTP behaviour of the proxy: headers both ways, streaming, large
//! uploads, upgrades, HTTP/2 clients, and the error answers.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn one_backend(extra: &str) -> (TestBackend, TestProxy) {
    let b = TestBackend::start("b").await;
    let p = TestProxy::start(&config_for(
        &[("p", &[&b])],
        &format!("split = {{ p = 1 }}\n{extra}"),
    ))
    .await;
    (b, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_rewritten_both_ways() {
    let (b, proxy) = one_backend("").await;
    // A raw request, so that hop-by-hop headers really go over the wire.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        b"GET /x?q=1 HTTP/1.1\r\nHost: shop.example.com\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\n\
          Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n\
          X-Forwarded-For: 203.0.113.9\r\nX-Request-Id: req-123\r\nX-Switchyard-Bucket: 42\r\nX-Custom: kept\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\"version\"") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_lowercase();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    // response: the backend's hop-by-hop headers are gone, others stay
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-backend: b"));
    assert!(!head.contains("x-backend-private"), "{head}");
    assert!(!head.contains("keep-alive: timeout"), "{head}");

    let h = b.last_headers();
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "te",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the backend: {h:?}");
    }
    assert_eq!(h["host"], "shop.example.com");
    assert_eq!(h["x-forwarded-host"], "shop.example.com");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-request-id"], "req-123");
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["x-switchyard-pool"], "p");
    // a client cannot forge the sticky decision
    assert!(!h.contains_key("x-switchyard-bucket"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_generated_when_missing() {
    let (b, proxy) = one_backend("").await;
    get(&client(), &proxy.url("/"), &[]).await;
    let id = b.last_headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_chunk_arrives_before_the_backend_finishes() {
    let (b, proxy) = one_backend("").await;
    let resp = client()
        .request(
            Request::get(proxy.url("/stream?chunks=3"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first chunk was held back")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), Bytes::from("chunk0;"));
    // the backend sends its last chunk only now
    b.stats.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from("chunk1;chunk2;"));
    proxy.stop().await;
}

/// A request body of `total` bytes generated as it is sent.
struct Generated {
    left: u64,
    chunk: Bytes,
}

impl hyper::body::Body for Generated {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = this.left.min(this.chunk.len() as u64);
        this.left -= n;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(
            this.chunk.slice(..n as usize),
        ))))
    }
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_256_mib_streams_with_flat_memory() {
    // Past the default body limit (10 MiB, issue 14): turned off here.
    let (_b, proxy) = one_backend("max_body_bytes = 0").await;
    let total: u64 = 256 << 20;
    // Reset the peak-RSS counter, so VmHWM measures this upload only.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let before = rss_kib("VmRSS:");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let req = Request::post(proxy.url("/upload"))
        .header("content-length", total.to_string())
        .body(Generated {
            left: total,
            chunk: Bytes::from(vec![7u8; 64 * 1024]),
        })
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), total.to_string());
    let peak = rss_kib("VmHWM:");
    // client, proxy and backend all live in this process: together they
    // must stay far below the upload's size.
    let grew_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grew_mib < 48,
        "memory grew by {grew_mib} MiB during a 256 MiB upload"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_style_upgrade_is_tunnelled() {
    let (_b, proxy) = one_backend("").await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for msg in [&b"hello"[..], b"over the tunnel"] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
    // Shutdown waits for open tunnels (up to shutdown_grace): close ours.
    drop(s);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client_reaches_http1_backend() {
    let (b, proxy) = one_backend("").await;
    let a = get(&h2_client(), &proxy.url("/h2?x=1"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["path"], "/h2?x=1");
    // :authority became the Host header
    assert_eq!(b.last_headers()["host"], proxy.addr.to_string().as_str());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_502() {
    // a port that was just free: nothing listens there
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Health checks off: a probe would take the dead backend out of
    // rotation (then 503 no-healthy-backend) before the request arrives.
    let proxy = TestProxy::start(&format!(
        "[health]\nenabled = false\n[pools.p]\nbackends = [\"{dead}\"]\n[[routes]]\nname = \"r\"\nsplit = {{ p = 1 }}\n"
    ))
    .await;
    let a = get(&client(), &proxy.url("/"), &[]).await;
    assert_eq!(a.status, 502);
    assert_eq!(a.header("x-switchyard-error"), Some("upstream-connect"));
    assert!(a.header("x-request-id").is_some());
    assert!(a.text().contains("connect"), "{}", a.text());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_that_never_answers_is_504() {
    let b = TestBackend::start("b").await;
    let cfg = config_for(&[("p", &[&b])], "split = { p = 1 }").replace(
        "[pools.p]",
        "[server]\nupstream_timeout = \"300ms\"\n\n[pools.p]",
    );
    let proxy = TestProxy::start(&cfg).await;
    let a = get(&client(), &proxy.url("/never"), &[]).await;
    assert_eq!(a.status, 504);
    assert_eq!(a.header("x-switchyard-error"), Some("upstream-timeout"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_available_backend_is_503_never_a_hang() {
    let (b, proxy) = one_backend("").await;
    for backend in proxy.table().pools()[0].backends.iter() {
        backend.set_health(switchyard::table::Health::Unhealthy);
    }
    let a = get(&client(), &proxy.url("/"), &[]).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.header("x-switchyard-error"), Some("no-healthy-backend"));
    assert!(a.text().contains("pool p"), "{}", a.text());
    assert_eq!(b.requests(), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_head_is_431() {
    let (b, proxy) = one_backend("").await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let big = "a".repeat(100 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // the proxy may answer and close before it has read everything
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(b.requests(), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_closing_idle_connections_causes_no_errors() {
    // The backend drops keep-alive connections after 200 ms idle (as uvicorn
    // does after 5 s), and the proxy's own idle expiry is set far above
    // that, so reuse of a dead connection must be caught and resent.
    let b = TestBackend::start_with("b", Some(Duration::from_millis(200))).await;
    let cfg = config_for(&[("p", &[&b])], "split = { p = 1 }").replace(
        "[pools.p]",
        "[server]\nupstream_idle_timeout = \"60s\"\nworkers = 1\n\n[pools.p]",
    );
    let proxy = TestProxy::start(&cfg).await;
    let c = client();
    for i in 0..8 {
        let a = get(&c, &proxy.url("/"), &[]).await;
        assert_eq!(a.status, 200, "request {i}: {}", a.text());
        // The gap is the scenario under test, not a synchronisation: it lets
        // the backend close the pooled connection.
        tokio::time::sleep(Duration::from_millis(260)).await;
    }
    proxy.stop().await;
}

/// Upstream keep-alive really reuses connections: hyper stops polling a
/// Content-Length body once it reports its end, and an earlier version then
/// dropped (closed) the connection instead of returning it to the pool, so
/// every request paid a new connect. Sequential requests on one worker must
/// share one upstream connection; so must HEAD and 204 answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused() {
    let b = TestBackend::start("b").await;
    let cfg = config_for(&[("p", &[&b])], "split = { p = 1 }").replace(
        "[pools.p]",
        "[server]\nworkers = 1\n[health]\nenabled = false\n\n[pools.p]",
    );
    let proxy = TestProxy::start(&cfg).await;
    let c = client();
    for _ in 0..30 {
        assert_eq!(get(&c, &proxy.url("/"), &[]).await.status, 200);
        assert_eq!(get(&c, &proxy.url("/status/204"), &[]).await.status, 204);
        assert_eq!(send(&c, "HEAD", &proxy.url("/"), &[], "").await.status, 200);
    }
    assert_eq!(b.requests(), 90);
    assert_eq!(
        b.accepted_connections(),
        1,
        "upstream connections were not reused"
    );
    proxy.stop().await;
}
