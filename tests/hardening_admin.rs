//! Issue 18, items 13 and 14: the admin API cannot be driven or read by a
//! web page (cross-site requests, DNS rebinding), the bearer scheme is
//! case-insensitive, and a body that never arrives cannot hold a handler.
//! Each request is what a browser (or an attacker's socket) actually sends,
//! over real sockets to a running proxy.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::*;

/// Two pools and route `r` on blue; `admin` is extra `[admin]` keys.
async fn proxy_with(admin: &str) -> (TestProxy, TestBackend, TestBackend) {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let cfg = format!(
        "[admin]\n{admin}\n[health]\nenabled = false\n{}",
        config_for(
            &[("blue", &[&blue]), ("green", &[&green])],
            "split = { blue = 100, green = 0 }"
        )
    );
    (TestProxy::start(&cfg).await, blue, green)
}

/// The route's pools with weight (zero-weight pools are left out).
fn weights(proxy: &TestProxy) -> Vec<(String, u32)> {
    proxy.table().routes()[0]
        .split()
        .map(|(p, w)| (p.name.to_string(), w))
        .collect()
}

fn unchanged(proxy: &TestProxy, text: &str) {
    assert_eq!(
        proxy.table().generation,
        1,
        "a refused request changed the table"
    );
    assert_eq!(weights(proxy), [("blue".to_owned(), 100)]);
    assert_eq!(
        std::fs::read_to_string(&proxy.path).unwrap(),
        text,
        "a refused request rewrote the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_cannot_change_anything() {
    let (proxy, _b, _g) = proxy_with("").await;
    let text = std::fs::read_to_string(&proxy.path).unwrap();
    let c = client();
    let flip = proxy.admin_url("/api/v1/routes/r/flip");
    let host = proxy.admin.to_string();
    let own = format!("http://{host}");
    let body = r#"{"to": "green"}"#;
    // What a page on another site can send without a CORS preflight: an
    // HTML form, fetch(no-cors) with a string (text/plain) or a Blob (no
    // type), each with the page's Origin; sandboxed frames send "null".
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("origin", "https://evil.example"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            403,
            "cross_origin",
        ),
        (
            vec![
                ("origin", "https://evil.example"),
                ("content-type", "text/plain;charset=UTF-8"),
            ],
            403,
            "cross_origin",
        ),
        (
            vec![("origin", "https://evil.example")],
            403,
            "cross_origin",
        ),
        (vec![("origin", "null")], 403, "cross_origin"),
        // A look-alike of the admin's own origin.
        (
            vec![("origin", "http://127.0.0.1.evil.example")],
            403,
            "cross_origin",
        ),
        // Without an Origin (a browser that left it out), the body type
        // still gives it away.
        (
            vec![("content-type", "text/plain;charset=UTF-8")],
            415,
            "unsupported_media_type",
        ),
        (
            vec![("content-type", "multipart/form-data; boundary=x")],
            415,
            "unsupported_media_type",
        ),
    ];
    for (headers, status, code) in cases {
        let a = send(&c, "POST", &flip, &headers, body).await;
        assert_eq!(a.status, status, "{headers:?}: {}", a.text());
        assert_eq!(a.json()["error"], code, "{headers:?}");
        unchanged(&proxy, &text);
    }
    // A bodiless cross-site POST (fetch no-cors, sendBeacon) carries an Origin.
    let rollback = proxy.admin_url("/api/v1/routes/r/rollback");
    let a = send(
        &c,
        "POST",
        &rollback,
        &[("origin", "https://evil.example")],
        "",
    )
    .await;
    assert_eq!(a.status, 403);
    let reload = proxy.admin_url("/api/v1/reload");
    let a = send(
        &c,
        "POST",
        &reload,
        &[("origin", "https://evil.example")],
        "",
    )
    .await;
    assert_eq!(a.status, 403);
    unchanged(&proxy, &text);

    // The web console: same origin, JSON, as the admin serves it.
    let a = send(
        &c,
        "POST",
        &flip,
        &[("origin", &own), ("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(weights(&proxy), [("green".to_owned(), 100)]);
    // Non-browser clients send no Origin: ctl-style calls keep working.
    let a = send(&c, "POST", &rollback, &[], "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_cannot_read_or_drive_the_admin() {
    let (proxy, _b, _g) = proxy_with("metrics_open = true").await;
    let text = std::fs::read_to_string(&proxy.path).unwrap();
    let c = client();
    let port = proxy.admin.port();
    let evil = format!("evil.example:{port}");
    let evil_origin = format!("http://{evil}");
    // After rebinding, the page's requests are same-origin in the
    // browser's eyes: Host and Origin both name the attacker's domain.
    for path in [
        "/api/v1/status",
        "/api/v1/history",
        "/metrics",
        "/ready",
        "/health",
    ] {
        let a = get(&c, &proxy.admin_url(path), &[("host", &evil)]).await;
        assert_eq!(a.status, 403, "GET {path}: {}", a.text());
        assert_eq!(a.json()["error"], "host_not_allowed");
    }
    let a = send(
        &c,
        "POST",
        &proxy.admin_url("/api/v1/routes/r/flip"),
        &[
            ("host", &evil),
            ("origin", &evil_origin),
            ("content-type", "application/json"),
        ],
        r#"{"to": "green"}"#,
    )
    .await;
    assert_eq!(a.status, 403);
    unchanged(&proxy, &text);
    // Other spellings of a rebound name, each refused.
    for host in [
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("EVIL.example:{port}"),
    ] {
        let a = get(&c, &proxy.admin_url("/api/v1/status"), &[("host", &host)]).await;
        assert_eq!(a.status, 403, "{host}");
    }
    // IP literals and localhost names cannot be rebound: allowed.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("localhost:{port}"),
        format!("console.localhost:{port}"),
    ] {
        let a = get(&c, &proxy.admin_url("/api/v1/status"), &[("host", &host)]).await;
        assert_eq!(a.status, 200, "{host}: {}", a.text());
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_hosts_and_tokens_reach_the_admin_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (proxy, _b, _g) = proxy_with(&format!(
        "allowed_hosts = [\"admin.internal\"]\ntoken_file = \"{}\"",
        token.display()
    ))
    .await;
    let c = client();
    let status = proxy.admin_url("/api/v1/status");
    let port = proxy.admin.port();
    let named = format!("Admin.Internal:{port}");
    let a = get(
        &c,
        &status,
        &[("host", &named), ("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    // Open endpoints by a configured name need no token.
    let a = get(&c, &proxy.admin_url("/health"), &[("host", &named)]).await;
    assert_eq!(a.status, 200);
    // An unknown name is refused unless the request carries the token,
    // which a rebinding page cannot know (compose service names etc.).
    let other = format!("switchyard:{port}");
    let a = get(&c, &proxy.admin_url("/health"), &[("host", &other)]).await;
    assert_eq!(a.status, 403);
    let a = get(
        &c,
        &status,
        &[("host", &other), ("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = get(
        &c,
        &status,
        &[("host", &other), ("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(a.status, 403);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (proxy, _b, _g) = proxy_with(&format!("token_file = \"{}\"", token.display())).await;
    let c = client();
    let status = proxy.admin_url("/api/v1/status");
    // RFC 9110 §11.1: the scheme is case-insensitive; §11.4: 1*SP.
    for auth in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR   s3cret",
    ] {
        let a = get(&c, &status, &[("authorization", auth)]).await;
        assert_eq!(a.status, 200, "{auth}: {}", a.text());
    }
    for auth in [
        "Bearer s3cre",
        "Basic czNjcmV0",
        "Bearers3cret",
        "s3cret",
        "Bearer",
    ] {
        let a = get(&c, &status, &[("authorization", auth)]).await;
        assert_eq!(a.status, 401, "{auth}");
    }
    proxy.stop().await;
}

/// Sends `head` (and `body`) on a fresh connection and reads the answer's
/// status line, failing if none comes within `within`.
async fn raw_status(addr: std::net::SocketAddr, head: &str, body: &[u8], within: Duration) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, s.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer within {within:?} to:\n{head}"))
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (proxy, _b, _g) = proxy_with(&format!("token_file = \"{}\"", token.display())).await;
    let text = std::fs::read_to_string(&proxy.path).unwrap();
    let head = |len: &str| {
        format!(
            "PUT /api/v1/routes/r/split HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer s3cret\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n\r\n"
        )
    };
    // Declared far above the limit, one byte sent: 413 at once (the
    // deadline is far below the body timeout, so this is not the timeout).
    for len in ["1000000000000", "65537"] {
        let status = raw_status(proxy.admin, &head(len), b"{", Duration::from_secs(5)).await;
        assert_eq!(status, 413, "Content-Length: {len}");
    }
    // Declared within the limit, one byte sent: answered when the body
    // timeout (10 s) runs out, not never.
    let status = raw_status(proxy.admin, &head("100"), b"{", Duration::from_secs(20)).await;
    assert_eq!(status, 408);
    unchanged(&proxy, &text);
    proxy.stop().await;
}
