//! Issue 18, item 4: a setting a reload cannot change is reported, never
//! silently ignored. A live edit applies the rest of the file and lists
//! the keys that wait for a restart in `/api/v1/status`
//! (`restart_needed`); reverting them clears the list; `switchyard check
//! FILE --against RUNNING_FILE` lists the same keys before the edit.
//!
//! The client-side limits (`max_header_bytes`, `max_headers`,
//! `client_header_timeout`), `redirect_http` and `hsts` apply on reload to
//! the connections accepted after it, on both HTTP/1 engines, HTTP/2 and
//! TLS; a connection already open keeps the values it was accepted with.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::admin::status;
use support::cli::run;
use support::tls::{self as t, setup, tls_config};
use support::*;

fn config(blue: &TestBackend, green: &TestBackend, server: &str, split: &str) -> String {
    format!(
        "[server]\n{server}\n[health]\nenabled = false\n{}",
        config_for(
            &[("blue", &[blue]), ("green", &[green])],
            &format!("split = {{ {split} }}")
        )
    )
}

fn restart_needed(status: &serde_json::Value) -> Vec<String> {
    status["restart_needed"]
        .as_array()
        .unwrap_or_else(|| panic!("no restart_needed in {status}"))
        .iter()
        .map(|k| k.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reload_applies_what_it_can_and_lists_what_needs_a_restart() {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let start = config(&blue, &green, "workers = 1", "blue = 100, green = 0");
    let proxy = TestProxy::start(&start).await;
    assert_eq!(restart_needed(&status(&proxy).await), Vec::<String>::new());

    // Fixed-at-start keys beside a split change and a reloadable timeout.
    let edited = config(
        &blue,
        &green,
        "shutdown_grace = \"7s\"\nworkers = 2\nupstream_timeout = \"9s\"\n\
         max_headers = 50\nclient_header_timeout = \"5s\"\n\
         [admin]\nmetrics_open = true",
        "blue = 0, green = 100",
    );
    proxy.reload(&edited).await;
    let s = status(&proxy).await;
    assert_eq!(
        restart_needed(&s),
        [
            "server.workers",
            "server.shutdown_grace",
            "admin.metrics_open"
        ]
    );
    assert!(s["last_reload"]["error"].is_null(), "{s}");
    // The rest applied: traffic moved, and the timeout is in the table.
    assert_eq!(
        support::route::served_by(&client(), &proxy)
            .await
            .as_deref(),
        Some("green")
    );
    assert_eq!(
        proxy.table().settings.upstream_timeout,
        std::time::Duration::from_secs(9)
    );

    // `check --against` the file it started with names the same keys.
    let started = proxy.dir.path().join("started.toml");
    std::fs::write(&started, &start).unwrap();
    let (code, out, err) = run(&[
        "check",
        proxy.path.to_str().unwrap(),
        "--against",
        started.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("needs a restart (against")
            && out.contains("server.workers, server.shutdown_grace, admin.metrics_open"),
        "{out}"
    );

    // Back to the started values: nothing waits for a restart any more.
    proxy
        .reload(&config(
            &blue,
            &green,
            "workers = 1",
            "blue = 100, green = 0",
        ))
        .await;
    assert_eq!(restart_needed(&status(&proxy).await), Vec::<String>::new());
    let (code, out, err) = run(&[
        "check",
        proxy.path.to_str().unwrap(),
        "--against",
        started.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("a reload applies all of it"), "{out}");
    proxy.stop().await;
}

/// How long a test waits for an answer or a close.
const WAIT: Duration = Duration::from_secs(20);

/// A head over 16 KiB: one 20 000-byte header.
fn big() -> Vec<(String, String)> {
    vec![("x-big".into(), "a".repeat(20_000))]
}

/// 30 headers (besides Host).
fn many() -> Vec<(String, String)> {
    (0..30).map(|i| (format!("x-h{i}"), "1".into())).collect()
}

fn pairs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// GET on a new connection (a client of its own).
async fn fresh(client: HttpClient, url: &str, h: &[(String, String)]) -> u16 {
    get(&client, url, &pairs(h)).await.status
}

/// An HTTP/1.1 keep-alive connection to the plain listener.
async fn kept(proxy: &TestProxy) -> http1::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (tx, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    tx
}

/// GET on `tx`'s connection.
async fn on(tx: &mut http1::SendRequest<Empty<Bytes>>, h: &[(String, String)]) -> u16 {
    let mut req = http::Request::get("/").header("host", "a.test");
    for (k, v) in h {
        req = req.header(k, v);
    }
    tx.ready().await.expect("connection ready");
    let resp = tx
        .send_request(req.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    collect(resp).await.status
}

fn limits(engine: &str, b: &TestBackend, extra: &str) -> String {
    format!(
        "[server]\nworkers = 1\nhttp1 = \"{engine}\"\n{extra}\n[health]\nenabled = false\n{}",
        config_for(&[("b", &[b])], "split = { b = 100 }")
    )
}

/// Lowered by a reload, the header limits refuse (431) on a new HTTP/1.1
/// or h2c connection what they served before; a keep-alive connection
/// opened before the reload keeps the limits it was accepted with; raised
/// again, they serve it again. Nothing is listed as needing a restart.
async fn header_limits_follow_a_reload(engine: &str) {
    let b = TestBackend::start("b").await;
    let proxy = TestProxy::start(&limits(engine, &b, "")).await;
    let url = proxy.url("/");
    for h in [big(), many()] {
        assert_eq!(fresh(client(), &url, &h).await, 200, "{engine}");
        assert_eq!(fresh(h2_client(), &url, &h).await, 200, "{engine} h2c");
    }
    let mut old = kept(&proxy).await;
    assert_eq!(on(&mut old, &[]).await, 200);

    proxy
        .reload(&limits(
            engine,
            &b,
            "max_header_bytes = 16384\nmax_headers = 20",
        ))
        .await;
    assert_eq!(restart_needed(&status(&proxy).await), Vec::<String>::new());
    for (what, h) in [("max_header_bytes", big()), ("max_headers", many())] {
        assert_eq!(fresh(client(), &url, &h).await, 431, "{engine}: {what}");
        assert_eq!(
            on(&mut old, &h).await,
            200,
            "{engine}: {what}, open connection"
        );
    }
    // HTTP/2 has no header count limit; its header list is bounded.
    assert_eq!(fresh(h2_client(), &url, &big()).await, 431, "{engine} h2c");
    assert_eq!(fresh(h2_client(), &url, &many()).await, 200, "{engine} h2c");
    let served = b.requests();

    proxy.reload(&limits(engine, &b, "")).await;
    for h in [big(), many()] {
        assert_eq!(fresh(client(), &url, &h).await, 200, "{engine}");
    }
    assert_eq!(b.requests(), served + 2);
    proxy.stop().await;
}

#[tokio::test]
async fn header_limits_follow_a_reload_on_the_lean_engine() {
    header_limits_follow_a_reload("lean").await;
}

#[tokio::test]
async fn header_limits_follow_a_reload_on_the_hyper_engine() {
    header_limits_follow_a_reload("hyper").await;
}

/// A connection that has sent part of a head, once a worker has taken it
/// in (the settings it is served with are chosen then): the `n`th open.
async fn slow(proxy: &TestProxy, n: u64) -> TcpStream {
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
        .await
        .expect("write");
    eventually(WAIT, "the worker accepts the connection", || async {
        status(proxy).await["connections"].as_u64() == Some(n)
    })
    .await;
    s
}

/// What the proxy wrote before closing `s` (within [`WAIT`]).
async fn until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    match tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await {
        Ok(_) => String::from_utf8_lossy(&got).into_owned(),
        Err(_) => panic!("the slow connection was not closed within {WAIT:?}"),
    }
}

/// `client_header_timeout` lowered from 60 s to 1 s: a slow head on a new
/// connection is cut off (closed, or 408) well within the test's wait,
/// which the old value would not do; a slow head begun before the reload
/// keeps its 60 s and is served once it completes.
async fn header_timeout_follows_a_reload(engine: &str) {
    let b = TestBackend::start("b").await;
    let timeout = |t: &str| format!("client_header_timeout = \"{t}\"");
    let proxy = TestProxy::start(&limits(engine, &b, &timeout("60s"))).await;
    let mut before = slow(&proxy, 1).await;
    proxy.reload(&limits(engine, &b, &timeout("1s"))).await;
    assert_eq!(restart_needed(&status(&proxy).await), Vec::<String>::new());
    let mut after = slow(&proxy, 2).await;
    let said = until_closed(&mut after).await;
    assert!(
        said.is_empty() || said.starts_with("HTTP/1.1 408"),
        "{engine}: {said}"
    );
    before
        .write_all(b"Connection: close\r\n\r\n")
        .await
        .expect("the connection opened before the reload is still open");
    let said = until_closed(&mut before).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{engine}: {said}");
    assert_eq!(b.requests(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn header_timeout_follows_a_reload_on_the_lean_engine() {
    header_timeout_follows_a_reload("lean").await;
}

#[tokio::test]
async fn header_timeout_follows_a_reload_on_the_hyper_engine() {
    header_timeout_follows_a_reload("hyper").await;
}

fn https(engine: &str, b: &TestBackend, extra: &str) -> String {
    tls_config(
        b,
        &format!("workers = 1\nhttp1 = \"{engine}\"\n{extra}"),
        "",
    )
}

/// `redirect_http` turned on by a reload: the plain listener answers 308
/// to https on new connections (the TLS listener still serves); turned
/// off, it routes again.
async fn redirect_follows_a_reload(engine: &str) {
    let b = TestBackend::start("blue").await;
    let (ca, dir, _) = setup();
    let proxy = t::start(dir, &https(engine, &b, "")).await;
    let tls = proxy.tls_addr.expect("TLS listener");
    let url = proxy.url("/a?x=1");
    let host = [("host".to_owned(), "shop.example:8080".to_owned())];
    assert_eq!(fresh(client(), &url, &host).await, 200, "{engine}");

    proxy
        .reload(&https(engine, &b, "redirect_http = true"))
        .await;
    assert_eq!(restart_needed(&status(&proxy).await), Vec::<String>::new());
    let a = get(&client(), &url, &pairs(&host)).await;
    assert_eq!(a.status, 308, "{engine}");
    let want = format!("https://shop.example:{}/a?x=1", tls.port());
    assert_eq!(a.header("location"), Some(want.as_str()), "{engine}");
    let over_tls = t::get_tls(tls, "default.test", "/", t::default_client(&ca)).await;
    assert_eq!(over_tls.status, 200, "{engine}: TLS is never redirected");
    let served = b.requests();

    proxy.reload(&https(engine, &b, "")).await;
    assert_eq!(fresh(client(), &url, &host).await, 200, "{engine}");
    assert_eq!(b.requests(), served + 1);
    proxy.stop().await;
}

#[tokio::test]
async fn redirect_follows_a_reload_on_the_lean_engine() {
    redirect_follows_a_reload("lean").await;
}

#[tokio::test]
async fn redirect_follows_a_reload_on_the_hyper_engine() {
    redirect_follows_a_reload("hyper").await;
}

/// A changed `hsts` value is sent on new TLS connections, HTTP/1.1 and
/// HTTP/2; removed, none is sent.
#[tokio::test]
async fn hsts_follows_a_reload() {
    let b = TestBackend::start("blue").await;
    let (ca, dir, _) = setup();
    let proxy = t::start(dir, &https("lean", &b, "hsts = \"max-age=60\"")).await;
    let tls = proxy.tls_addr.expect("TLS listener");
    let h2 = t::client_config(&ca, rustls::ALL_VERSIONS, &[b"h2"]);
    let hsts = |ca: &support::tls::TestCa, h2: std::sync::Arc<rustls::ClientConfig>| {
        let h1 = t::default_client(ca);
        async move {
            let one = t::get_tls(tls, "default.test", "/", h1).await;
            let conn = t::connect(tls, "default.test", h2).await.expect("TLS");
            let two = t::get2(&mut t::h2(conn).await, "default.test", "/").await;
            assert_eq!((one.status, two.status), (200, 200));
            let value = |a: &Answer| a.header("strict-transport-security").map(str::to_owned);
            assert_eq!(value(&one), value(&two), "HTTP/1.1 and HTTP/2 agree");
            value(&one)
        }
    };
    assert_eq!(hsts(&ca, h2.clone()).await.as_deref(), Some("max-age=60"));

    proxy
        .reload(&https("lean", &b, "hsts = \"max-age=120\""))
        .await;
    assert_eq!(restart_needed(&status(&proxy).await), Vec::<String>::new());
    assert_eq!(hsts(&ca, h2.clone()).await.as_deref(), Some("max-age=120"));

    proxy.reload(&https("lean", &b, "")).await;
    assert_eq!(hsts(&ca, h2).await, None);
    proxy.stop().await;
}
