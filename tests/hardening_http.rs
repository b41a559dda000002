//! Issue 18, items 6-10 over real sockets, on the default data path (the
//! lean HTTP/1 engine, whose head rules are in `proxy::h1`): Host and
//! authority, Connection nomination, transfer codings, underscores, h2c
//! upgrades. A raw client writes the exact bytes; the counting backend says
//! what arrived. (The same rules for `server.http1 = "hyper"` are on the
//! `harden` branch, not yet on main.)

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

#[tokio::test]
async fn request_rules_hold_over_the_wire() {
    let b = TestBackend::start("b").await;
    let cfg = format!(
        "[server]\nworkers = 1\n[health]\nenabled = false\n{}",
        config_for(&[("b", &[&b])], "split = { b = 1 }")
    );
    let proxy = TestProxy::start(&cfg).await;
    let ok = "GET / HTTP/1.1\nHost: a.test\nConnection: close\n\n";
    assert_eq!(raw(&proxy, ok).await, 200);
    // Item 7: Host.
    for bad in [
        "GET / HTTP/1.1\nHost: a.test\nHost: b.test\nConnection: close\n\n",
        "GET / HTTP/1.1\nConnection: close\n\n",
        "GET / HTTP/1.1\nHost: a.test/x\nConnection: close\n\n",
    ] {
        assert_eq!(raw(&proxy, bad).await, 400, "{bad}");
    }
    raw(
        &proxy,
        "GET http://c.test/ HTTP/1.1\nHost: d.test\nConnection: close\n\n",
    )
    .await;
    assert_eq!(b.last_headers()["host"], "c.test");
    // Item 9: transfer codings.
    let te = |coding: &str| {
        format!("POST / HTTP/1.1\nHost: a.test\nTransfer-Encoding: {coding}\nConnection: close\n\n0\n\n")
    };
    assert_eq!(raw(&proxy, &te("gzip, chunked")).await, 501);
    assert_eq!(raw(&proxy, &te("identity, chunked")).await, 501);
    // Item 8: Connection cannot remove what the proxy sets or requires.
    let n = raw(
        &proxy,
        "GET / HTTP/1.1\nHost: a.test\nX-Request-Id: abc\nConnection: close, host, x-request-id, x-forwarded-for\n\n",
    )
    .await;
    assert_eq!(n, 200);
    let h = b.last_headers();
    assert_eq!(h["host"], "a.test");
    assert_eq!(h["x-request-id"], "abc");
    assert!(h.contains_key("x-forwarded-for"));
    // Item 10: underscores dropped.
    raw(
        &proxy,
        "GET / HTTP/1.1\nHost: a.test\nContent_Length: 5\nX_Secret: 1\nConnection: close\n\n",
    )
    .await;
    let h = b.last_headers();
    assert!(
        !h.contains_key("content_length") && !h.contains_key("x_secret"),
        "{h:?}"
    );
    // Item 6: h2c is never offered to the backend.
    raw(&proxy, "GET / HTTP/1.1\nHost: a.test\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\nConnection: Upgrade, HTTP2-Settings, close\n\n").await;
    let h = b.last_headers();
    assert!(
        !h.contains_key("upgrade") && !h.contains_key("http2-settings"),
        "{h:?}"
    );
    proxy.stop().await;
}
