//! Shadow traffic over real sockets (issue 15): a route's `mirror` copies
//! requests to another pool; the client gets only the primary's answer and
//! never waits for the copy; answers are compared into the route's shadow
//! window, mismatches sampled with secrets redacted. Backends are
//! in-process (loopback, port 0); the proxy runs its default data path.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::shadow::Kind;
use switchyard::stats::clock;
use switchyard::stats::shadow::{Dropped, ShadowStats};
use switchyard::table::RoutingTable;

use support::backend::Traffic;
use support::shadow::{discounted, mirrored, price, quotes, JSON_MIRROR};
use support::{client, eventually, get, send, TestBackend, TestProxy};

const WAIT: Duration = Duration::from_secs(20);

/// The shadow window of route `r`'s active mirror, over the last 2 min.
fn window(table: &RoutingTable) -> ShadowStats {
    let target = table
        .route(None, "/")
        .and_then(|r| r.mirror.as_deref())
        .and_then(|m| m.active())
        .expect("route r has an active mirror");
    let now = clock::secs(tokio::time::Instant::now());
    target.handles.window().last(now, 120)
}

/// Both HTTP/1 engines run every case (`server.http1`).
macro_rules! on_both_paths {
    ($($case:ident),* $(,)?) => {
        mod lean {
            $(#[tokio::test]
            async fn $case() {
                super::$case("lean").await
            })*
        }
        mod hyper_path {
            $(#[tokio::test]
            async fn $case() {
                super::$case("hyper").await
            })*
        }
    };
}

on_both_paths!(
    a_copy_arrives_marked_and_the_client_gets_only_the_primary_answer,
    unsafe_methods_are_copied_only_when_listed_and_the_body_limit_holds,
    a_mirror_that_hangs_or_is_down_never_reaches_the_client,
    one_changed_json_field_is_caught_at_its_share_and_ignored_fields_are_ignored,
);

async fn a_copy_arrives_marked_and_the_client_gets_only_the_primary_answer(engine: &str) {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let proxy = TestProxy::start(&mirrored(
        engine,
        blue.addr,
        green.addr,
        "{ pool = \"green\", percent = 100 }",
    ))
    .await;
    let c = client();
    let a = get(&c, &proxy.url("/hello"), &[("authorization", "Bearer t")]).await;
    assert_eq!(a.status, 200);
    // The test backend answers with its name and the headers it got.
    let body = a.json();
    assert_eq!(body["backend"], "blue", "{body}");
    eventually(WAIT, "the copy at green", || async {
        green.requests() == 1
    })
    .await;
    let h = green.last_headers();
    assert_eq!(h["x-switchyard-shadow"], "1");
    assert_eq!(h["x-switchyard-pool"], "green");
    assert_eq!(h["host"], green.addr.to_string(), "the mirror's Host");
    assert_eq!(
        h["x-forwarded-host"],
        proxy.addr.to_string(),
        "the client's Host"
    );
    assert_eq!(h["authorization"], "Bearer t", "the copy is the request");
    let primary = blue.last_headers();
    assert!(primary.get("x-switchyard-shadow").is_none());
    assert_eq!(primary["host"], proxy.addr.to_string());
    assert!(
        a.header("x-switchyard-shadow").is_none()
            && body["headers"]["x-switchyard-shadow"].is_null(),
        "nothing of the copy reaches the client"
    );
    eventually(WAIT, "the pair compared", || async {
        window(&proxy.table()).compared == 1
    })
    .await;
}

async fn unsafe_methods_are_copied_only_when_listed_and_the_body_limit_holds(engine: &str) {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let mirror = "{ pool = \"green\" }";
    let proxy = TestProxy::start(&mirrored(engine, blue.addr, green.addr, mirror)).await;
    let c = client();
    let url = proxy.url("/upload");
    assert_eq!(send(&c, "POST", &url, &[], "12345").await.text(), "5");
    // A GET after it: once its copy arrived, the POST's would have too.
    get(&c, &proxy.url("/after"), &[]).await;
    eventually(WAIT, "the GET's copy", || async {
        window(&proxy.table()).compared == 1
    })
    .await;
    assert_eq!(green.requests(), 1, "a POST is not mirrored by default");

    proxy
        .reload(&mirrored(
            engine,
            blue.addr,
            green.addr,
            "{ pool = \"green\", methods = [\"GET\", \"POST\"], max_body_bytes = 10 }",
        ))
        .await;
    assert_eq!(send(&c, "POST", &url, &[], "12345").await.text(), "5");
    eventually(WAIT, "the POST's copy", || async { green.requests() == 2 }).await;
    // The copy carried the body: the mirror read 5 bytes, same answer.
    eventually(WAIT, "the pair", || async {
        window(&proxy.table()).compared == 2
    })
    .await;
    assert_eq!(window(&proxy.table()).mismatches(), 0);
    // Over the limit: forwarded whole, not copied, counted.
    assert_eq!(
        send(&c, "POST", &url, &[], "0123456789ab").await.text(),
        "12"
    );
    let s = window(&proxy.table());
    assert_eq!(
        s.dropped[Dropped::BodyTooBig as usize],
        1,
        "dropped as body_too_big: {s:?}"
    );
    assert_eq!(green.requests(), 2);
}

async fn a_mirror_that_hangs_or_is_down_never_reaches_the_client(engine: &str) {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    green.set_traffic(Traffic::Hang);
    let mirror = "{ pool = \"green\" }";
    let proxy = TestProxy::start(&mirrored(engine, blue.addr, green.addr, mirror)).await;
    let c = client();
    for i in 0..5 {
        // The mirror never answers (the upstream timeout is 30 s): a
        // client that waited for it would not be answered within WAIT.
        let a = tokio::time::timeout(WAIT, get(&c, &proxy.url(&format!("/h{i}")), &[]))
            .await
            .expect("answered without waiting for the mirror");
        assert_eq!(
            (a.status, a.json()["backend"].as_str()),
            (200, Some("blue"))
        );
    }
    eventually(WAIT, "the copies held at green", || async {
        green.requests() == 5
    })
    .await;
    let s = window(&proxy.table());
    assert_eq!((s.mirrored, s.compared, s.errors), (5, 0, 0));

    // Down: nothing listens on the mirror's port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    proxy
        .reload(&mirrored(engine, blue.addr, closed, "{ pool = \"green\" }"))
        .await;
    for i in 0..10 {
        let a = get(&c, &proxy.url(&format!("/d{i}")), &[]).await;
        assert_eq!(
            (a.status, a.json()["backend"].as_str()),
            (200, Some("blue"))
        );
    }
    eventually(WAIT, "the mirror errors", || async {
        window(&proxy.table()).errors == 10
    })
    .await;
}

async fn one_changed_json_field_is_caught_at_its_share_and_ignored_fields_are_ignored(
    engine: &str,
) {
    let (blue, _) = quotes(price).await;
    // The new version discounts every fourth item.
    let (green, green_served) = quotes(discounted).await;
    let proxy = TestProxy::start(&mirrored(engine, blue, green, JSON_MIRROR)).await;
    let c = client();
    let n = 2000u64;
    let seen = Arc::new(Mutex::new(0u64));
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let (c, url, seen) = (c.clone(), proxy.url(""), seen.clone());
        tasks.push(tokio::spawn(async move {
            for item in (w..n).step_by(4) {
                let a = get(
                    &c,
                    &format!("{url}/quote/{item}?token=s3cret"),
                    &[("authorization", "Bearer s3cret"), ("x-api-key", "k3y")],
                )
                .await;
                assert_eq!(a.status, 200);
                assert_eq!(
                    a.json()["price"],
                    10 + item % 7,
                    "the client gets blue's answer"
                );
                *seen.lock().unwrap() += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), n);
    eventually(WAIT, "every pair compared", || async {
        window(&proxy.table()).compared == n
    })
    .await;
    let s = window(&proxy.table());
    assert_eq!(green_served.load(Ordering::SeqCst) as u64, n);
    assert_eq!(
        (s.mirrored, s.errors, s.mismatches(), n / 4),
        (n, 0, n / 4, s.mismatched[Kind::Body.index()]),
        "exactly the discounted quarter, as body mismatches: {s:?}"
    );
    let target = proxy.table();
    let handles = &target
        .route(None, "/")
        .and_then(|r| r.mirror.as_deref())
        .and_then(|m| m.active())
        .unwrap()
        .handles;
    let samples = handles.samples().newest_first();
    assert!(
        !samples.is_empty() && samples.len() < n as usize / 4,
        "{}",
        samples.len()
    );
    for sample in &samples {
        let item: u64 = sample.target["/quote/".len()..]
            .split('?')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sample.kind, "body");
        assert_eq!(sample.diff, [format!("$.price: {} → 1", 10 + item % 7)]);
        assert!(
            sample.target.ends_with("?token=[redacted]"),
            "{}",
            sample.target
        );
        let text = format!("{sample:?}");
        assert!(!text.contains("s3cret") && !text.contains("k3y"), "{text}");
        assert!(
            !text.contains("generated_at"),
            "ignored field in the diff: {text}"
        );
    }
}

/// HTTP/2 (h2c, prior knowledge) requests go through the same routing
/// decision as HTTP/1's, so they are mirrored the same way: the copy is
/// sent to the mirror over HTTP/1.1, marked, with the request's body when
/// it has a length within the limit; the client gets the primary's answer.
#[tokio::test]
async fn http2_requests_are_mirrored_like_http1_ones() {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    // Bodies compared by hash: a copy without the request's body would
    // answer another length from /upload.
    let mirror =
        "{ pool = \"green\", methods = [\"GET\", \"POST\"], compare = { body = \"hash\" } }";
    let proxy = TestProxy::start(&mirrored("lean", blue.addr, green.addr, mirror)).await;
    let h2 = support::h2_client();
    let a = get(
        &h2,
        &proxy.url("/status/200"),
        &[("authorization", "Bearer t")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(blue.requests(), 1, "the primary went to blue");
    eventually(WAIT, "the h2 request's copy at green", || async {
        green.requests() == 1
    })
    .await;
    let h = green.last_headers();
    assert_eq!(h["x-switchyard-shadow"], "1");
    assert_eq!(h["x-switchyard-pool"], "green");
    assert_eq!(h["host"], green.addr.to_string(), "the mirror's Host");
    assert_eq!(h["authorization"], "Bearer t", "the copy is the request");
    eventually(WAIT, "the h2 pair compared", || async {
        window(&proxy.table()).compared == 1
    })
    .await;
    // A body with its length: copied whole, the mirror reads the same.
    let up = send(&h2, "POST", &proxy.url("/upload"), &[], "123456").await;
    assert_eq!(up.text(), "6");
    eventually(WAIT, "the h2 POST's pair", || async {
        window(&proxy.table()).compared == 2
    })
    .await;
    // `status 200 from blue` against `... from green`: one body mismatch,
    // the GET's; the POST's bodies (the length read) are the same.
    let s = window(&proxy.table());
    assert_eq!(
        (
            s.mirrored,
            s.errors,
            s.mismatches(),
            s.mismatched[Kind::Body.index()]
        ),
        (2, 0, 1, 1),
        "{s:?}"
    );
    assert_eq!(green.requests(), 2);
}
