//! Issue 18, items 6-10 over real sockets, on both HTTP/1 engines (the
//! lean one, default, and `server.http1 = "hyper"`) and on HTTP/2 (h2c with
//! prior knowledge): Host and authority, Connection nomination, transfer
//! codings, underscores, h2c upgrades, padded HTTP/2 values. One set of
//! rules (`proxy::rules`) serves every engine; a raw client writes the
//! exact bytes (an `h2` client the exact fields) and the counting backend
//! says what arrived.

mod support;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::*;

/// Sends `head` (CRLF line ends added) and returns the status code of the
/// answer.
async fn raw(proxy: &TestProxy, head: &str) -> u16 {
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let req = head.replace('\n', "\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an answer: {text}"))
}

async fn start(engine: &str, extra: &str) -> (TestBackend, TestProxy) {
    let b = TestBackend::start("b").await;
    let cfg = format!(
        "[server]\nworkers = 1\nhttp1 = \"{engine}\"\n{extra}\n[health]\nenabled = false\n{}",
        config_for(&[("b", &[&b])], "split = { b = 1 }")
    );
    let proxy = TestProxy::start(&cfg).await;
    (b, proxy)
}

async fn request_rules_hold_over_the_wire(engine: &str) {
    let (b, proxy) = start(engine, "").await;
    let ok = "GET / HTTP/1.1\nHost: a.test\nConnection: close\n\n";
    assert_eq!(raw(&proxy, ok).await, 200);
    // Item 7: Host.
    for bad in [
        "GET / HTTP/1.1\nHost: a.test\nHost: b.test\nConnection: close\n\n",
        "GET / HTTP/1.1\nHost: a.test\nhost: a.test\nConnection: close\n\n",
        "GET / HTTP/1.1\nConnection: close\n\n",
        "GET / HTTP/1.1\nHost: a.test/x\nConnection: close\n\n",
        "GET / HTTP/1.1\nHost: a test\nConnection: close\n\n",
        "GET http://u@c.test/ HTTP/1.1\nHost: c.test\nConnection: close\n\n",
    ] {
        assert_eq!(raw(&proxy, bad).await, 400, "{engine}: {bad}");
    }
    let n = b.requests();
    assert_eq!(n, 1, "{engine}: a refused request reached the backend");
    raw(
        &proxy,
        "GET http://c.test/ HTTP/1.1\nHost: d.test\nConnection: close\n\n",
    )
    .await;
    assert_eq!(b.last_headers()["host"], "c.test", "{engine}");
    // Item 9: transfer codings.
    let te = |coding: &str| {
        format!("POST / HTTP/1.1\nHost: a.test\nTransfer-Encoding: {coding}\nConnection: close\n\n0\n\n")
    };
    for coding in ["gzip, chunked", "identity, chunked"] {
        assert_eq!(raw(&proxy, &te(coding)).await, 501, "{engine}: {coding}");
    }
    // Not ending in chunked: hyper's own parser answers 400 first.
    let gzip = raw(&proxy, &te("gzip")).await;
    assert!([400, 501].contains(&gzip), "{engine}: gzip {gzip}");
    assert_eq!(raw(&proxy, &te("chunked, gzip")).await, 400, "{engine}");
    let twice = "POST / HTTP/1.1\nHost: a.test\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\nConnection: close\n\n0\n\n";
    assert_eq!(raw(&proxy, twice).await, 501, "{engine}");
    assert_eq!(b.requests(), n + 1, "{engine}: a refused coding went on");
    // Item 8: Connection cannot remove what the proxy sets or requires.
    let n = raw(
        &proxy,
        "GET / HTTP/1.1\nHost: a.test\nX-Request-Id: abc\nX-Gone: 1\nConnection: close, host, x-request-id, x-forwarded-for, x-forwarded-host, x-gone\n\n",
    )
    .await;
    assert_eq!(n, 200);
    let h = b.last_headers();
    assert_eq!(h["host"], "a.test", "{engine}");
    assert_eq!(h["x-request-id"], "abc", "{engine}");
    assert_eq!(h["x-forwarded-host"], "a.test", "{engine}");
    assert!(h.contains_key("x-forwarded-for"), "{engine}");
    assert!(!h.contains_key("x-gone"), "{engine}: {h:?}");
    // Item 10: underscores dropped.
    raw(
        &proxy,
        "GET / HTTP/1.1\nHost: a.test\nContent_Length: 5\nX_Secret: 1\nConnection: close\n\n",
    )
    .await;
    let h = b.last_headers();
    assert!(
        !h.contains_key("content_length") && !h.contains_key("x_secret"),
        "{engine}: {h:?}"
    );
    // Item 6: h2c is never offered to the backend.
    raw(&proxy, "GET / HTTP/1.1\nHost: a.test\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\nConnection: Upgrade, HTTP2-Settings, close\n\n").await;
    let h = b.last_headers();
    assert!(
        !h.contains_key("upgrade") && !h.contains_key("http2-settings"),
        "{engine}: {h:?}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn request_rules_hold_on_the_lean_engine() {
    request_rules_hold_over_the_wire("lean").await;
}

#[tokio::test]
async fn request_rules_hold_on_the_hyper_engine() {
    request_rules_hold_over_the_wire("hyper").await;
}

/// `server.underscores_in_headers = true` passes them on, on both engines.
#[tokio::test]
async fn underscores_pass_when_the_setting_allows_them() {
    for engine in ["lean", "hyper"] {
        let (b, proxy) = start(engine, "underscores_in_headers = true").await;
        let req = "GET / HTTP/1.1\nHost: a.test\nX_Secret: 1\nConnection: close\n\n";
        assert_eq!(raw(&proxy, req).await, 200);
        assert_eq!(b.last_headers()["x_secret"], "1", "{engine}");
        proxy.stop().await;
    }
}

/// An HTTP/2 (h2c, prior knowledge) connection to the proxy.
async fn h2(proxy: &TestProxy) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        // The connection ends with the test; its error is of no interest.
        let _ = conn.await;
    });
    client
}

/// Sends a bodiless request; its status, or the stream error.
async fn h2_send(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    req: http::Request<()>,
) -> Result<u16, h2::Error> {
    let (resp, _) = client.send_request(req, true)?;
    Ok(resp.await?.status().as_u16())
}

fn h2_get(uri: &str) -> http::request::Builder {
    http::Request::builder().method("GET").uri(uri)
}

/// Items 7, 10 and 12 on HTTP/2: `:authority` decides over Host, two Host
/// fields are a 400, names with `_` are dropped, a value with leading or
/// trailing whitespace is malformed (RFC 9113 §8.2.1, §8.3.1). hyper's h2
/// server serves HTTP/2 on the plain port for both engines.
#[tokio::test]
async fn http2_requests_follow_the_same_rules() {
    for engine in ["lean", "hyper"] {
        let (b, proxy) = start(engine, "").await;
        let mut c = h2(&proxy).await;
        let req = h2_get("http://a.test/x")
            .header("host", "b.test")
            .header("x_secret", "1")
            .body(())
            .unwrap();
        assert_eq!(h2_send(&mut c, req).await.unwrap(), 200, "{engine}");
        let h = b.last_headers();
        assert_eq!(h["host"], "a.test", "{engine}: :authority decides");
        assert!(!h.contains_key("x_secret"), "{engine}: {h:?}");
        let before = b.requests();
        let two = h2_get("http://a.test/")
            .header("host", "a.test")
            .header("host", "b.test")
            .body(())
            .unwrap();
        assert_eq!(h2_send(&mut c, two).await.unwrap(), 400, "{engine}");
        for padded in [" 1", "1 ", "\t1"] {
            let req = h2_get("http://a.test/")
                .header("x-padded", http::HeaderValue::from_str(padded).unwrap())
                .body(())
                .unwrap();
            assert_eq!(
                h2_send(&mut c, req).await.unwrap(),
                400,
                "{engine}: {padded:?}"
            );
        }
        assert_eq!(b.requests(), before, "{engine}: a refused request went on");
        proxy.stop().await;
    }
}
