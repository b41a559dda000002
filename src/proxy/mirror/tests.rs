use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;
use crate::shadow::Kind;
use crate::stats::StatsRegistry;
use crate::table::{Registry, RoutingTable};

/// A loopback backend answering every request with `answer(path)`
/// (status, JSON body), after `delay`; counts what it got and keeps the
/// last request's headers.
struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<Option<HeaderMap>>>,
}

async fn backend(answer: fn(&str) -> (u16, String), delay: Duration) -> Backend {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(std::sync::Mutex::new(None));
    let (h, k) = (hits.clone(), last.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (h, k) = (h.clone(), k.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (h, k) = (h.clone(), k.clone());
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        *k.lock().unwrap() = Some(req.headers().clone());
                        tokio::time::sleep(delay).await;
                        let (status, body) = answer(req.uri().path());
                        let mut r = Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Backend { addr, hits, last }
}

fn table(mirror_addr: SocketAddr, mirror: &str, stats: &mut StatsRegistry) -> RoutingTable {
    let text = format!(
        "[server]\nupstream_timeout = \"500ms\"\n[pools.blue]\nbackends = [\"127.0.0.1:1\"]\nhealth = {{ enabled = false }}\n[pools.green]\nbackends = [\"{mirror_addr}\"]\nhealth = {{ enabled = false }}\n[[routes]]\nname = \"api\"\nsplit = {{ blue = 100 }}\nmirror = {mirror}\n"
    );
    let c = crate::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let mut registry = Registry::default();
    registry.reconcile(&c);
    RoutingTable::build(&c, &registry, stats, 1)
}

fn parts(t: &RoutingTable) -> (&Route, &Arc<Pool>, &Arc<ShadowHandles>) {
    let route = t.route(None, "/").unwrap();
    let blue = t.pools().iter().find(|p| &*p.name == "blue").unwrap();
    let handles = &route.mirror.as_ref().unwrap().active().unwrap().handles;
    (route, blue, handles)
}

fn copy(path: &str) -> Copy {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer s3cret"),
    );
    headers.insert(&X_SWITCHYARD_POOL, HeaderValue::from_static("blue"));
    Copy {
        method: Method::GET,
        uri: path.parse().unwrap(),
        headers,
        body: None,
    }
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn totals(h: &ShadowHandles) -> crate::stats::shadow::ShadowStats {
    let now = clock::secs(Instant::now());
    h.window().last(now, 60)
}

#[tokio::test]
async fn only_due_copies_are_made_and_the_rest_is_counted() {
    let mut stats = StatsRegistry::new(None);
    let t = table(
        "127.0.0.1:2".parse().unwrap(),
        "{ pool = \"green\", max_body_bytes = 10, max_in_flight = 2 }",
        &mut stats,
    );
    let (route, blue, handles) = parts(&t);
    let now = Instant::now();
    assert!(
        due(route, blue, b"POST", BodySize::None, now).is_none(),
        "not a mirrored method"
    );
    let green = t.pools().iter().find(|p| &*p.name == "green").unwrap();
    assert!(
        due(route, green, b"GET", BodySize::None, now).is_none(),
        "sent to the mirror pool itself"
    );
    assert!(due(route, blue, b"GET", BodySize::Length(11), now).is_none());
    assert!(due(route, blue, b"GET", BodySize::Unknown, now).is_none());
    let held: Vec<_> = (0..3)
        .filter_map(|_| due(route, blue, b"GET", BodySize::Length(10), now))
        .collect();
    assert_eq!(held.len(), 2);
    let s = totals(handles);
    assert_eq!((s.mirrored, s.dropped), (2, [1, 2]));
}

#[tokio::test]
async fn identical_answers_match_and_the_copy_says_it_is_one() {
    let mirror = backend(
        |p| (200, format!("{{\"path\": \"{p}\", \"at\": 1}}")),
        Duration::ZERO,
    )
    .await;
    let mut stats = StatsRegistry::new(None);
    let t = table(
        mirror.addr,
        "{ pool = \"green\", compare = { body = \"json\" } }",
        &mut stats,
    );
    let (route, blue, handles) = parts(&t);
    let due = due(route, blue, b"GET", BodySize::None, Instant::now()).unwrap();
    let mut tap = spawn(due, copy("/x"), t.settings);
    tap.head(200, &HeaderMap::new());
    tap.data(b"{\"at\": 1, ");
    tap.data(b"\"path\": \"/x\"}");
    tap.end();
    eventually("the pair", || totals(handles).compared == 1).await;
    let s = totals(handles);
    assert_eq!((s.mismatches(), s.errors, s.body_skipped), (0, 0, 0));
    let seen = mirror.last.lock().unwrap().clone().unwrap();
    assert_eq!(seen.get(&X_SWITCHYARD_SHADOW).unwrap(), "1");
    assert_eq!(seen.get(&X_SWITCHYARD_POOL).unwrap(), "green");
    eventually("its place freed", || handles.in_flight_here() == 0).await;
}

#[tokio::test]
async fn a_differing_field_is_a_body_mismatch_with_a_redacted_sample() {
    let mirror = backend(
        |_| (200, "{\"price\": 12, \"at\": 2}".into()),
        Duration::ZERO,
    )
    .await;
    let mut stats = StatsRegistry::new(None);
    let t = table(
        mirror.addr,
        "{ pool = \"green\", compare = { body = \"json\", ignore = [\"$.at\"] } }",
        &mut stats,
    );
    let (route, blue, handles) = parts(&t);
    let due = due(route, blue, b"GET", BodySize::None, Instant::now()).unwrap();
    let mut tap = spawn(due, copy("/quote?api_key=k1&item=4"), t.settings);
    tap.head(200, &HeaderMap::new());
    tap.data(b"{\"price\": 10, \"at\": 1}");
    tap.end();
    eventually("the pair", || totals(handles).compared == 1).await;
    assert_eq!(totals(handles).mismatched[Kind::Body.index()], 1);
    let samples = handles.samples().newest_first();
    let s = &samples[0];
    assert_eq!(s.kind, "body");
    assert_eq!(s.diff, ["$.price: 10 → 12"]);
    assert_eq!(s.target, "/quote?api_key=[redacted]&item=4");
    let text = format!("{s:?}");
    assert!(!text.contains("s3cret") && !text.contains("k1"), "{text}");
    assert_eq!((s.primary.status, s.mirror.status), (200, 200));
}

#[tokio::test]
async fn a_mirror_that_is_down_or_hangs_is_an_error_and_the_tap_never_waits() {
    // Nothing listens on the mirror's port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut stats = StatsRegistry::new(None);
    let t = table(closed, "{ pool = \"green\" }", &mut stats);
    let (route, blue, handles) = parts(&t);
    let mut tap = spawn(
        due(route, blue, b"GET", BodySize::None, Instant::now()).unwrap(),
        copy("/"),
        t.settings,
    );
    tap.head(200, &HeaderMap::new());
    tap.end();
    eventually("the error", || totals(handles).errors == 1).await;
    assert_eq!(totals(handles).compared, 0);

    // A mirror that answers only after the deadline (500 ms).
    let slow = backend(|_| (200, "{}".into()), Duration::from_secs(5)).await;
    let mut stats = StatsRegistry::new(None);
    let t = table(slow.addr, "{ pool = \"green\" }", &mut stats);
    let (route, blue, handles) = parts(&t);
    let mut tap = spawn(
        due(route, blue, b"GET", BodySize::None, Instant::now()).unwrap(),
        copy("/"),
        t.settings,
    );
    eventually("the request at the mirror", || {
        slow.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    // The primary's answer is taken while the copy is held at the mirror.
    tap.head(200, &HeaderMap::new());
    tap.end();
    assert_eq!(handles.in_flight_here(), 1);
    eventually("the timeout", || totals(handles).errors == 1).await;
    eventually("its place freed", || handles.in_flight_here() == 0).await;
}

#[tokio::test]
async fn a_primary_that_never_ends_is_not_compared() {
    let mirror = backend(|_| (200, "{}".into()), Duration::ZERO).await;
    let mut stats = StatsRegistry::new(None);
    let t = table(
        mirror.addr,
        "{ pool = \"green\", compare = { body = \"hash\" } }",
        &mut stats,
    );
    let (route, blue, handles) = parts(&t);
    let mut tap = spawn(
        due(route, blue, b"GET", BodySize::None, Instant::now()).unwrap(),
        copy("/"),
        t.settings,
    );
    tap.head(200, &HeaderMap::new());
    tap.data(b"{");
    drop(tap);
    eventually("the mirror's answer", || {
        mirror.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("its place freed", || handles.in_flight_here() == 0).await;
    let s = totals(handles);
    assert_eq!((s.mirrored, s.compared, s.errors), (1, 0, 0));
}

#[test]
fn the_tap_hands_over_as_soon_as_it_knows_enough() {
    let tap = |mode, limit| {
        let (tx, rx) = oneshot::channel();
        let tap = Tap {
            tx: Some(tx),
            started: Instant::now(),
            mode,
            limit,
            head: None,
            body: match mode {
                BodyCompare::None => TapBody::Ignored,
                BodyCompare::Hash => TapBody::Hash(BodyHash::default()),
                BodyCompare::Json => TapBody::Kept(Vec::new()),
            },
        };
        (tap, rx)
    };
    // Status only: at the head.
    let (mut t, mut rx) = tap(BodyCompare::None, 0);
    t.head(204, &HeaderMap::new());
    let seen = rx.try_recv().unwrap();
    assert_eq!((seen.status, seen.body), (204, Body::Ignored));
    // A kept body past the limit: at once, as too big.
    let (mut t, mut rx) = tap(BodyCompare::Json, 4);
    t.head(200, &HeaderMap::new());
    t.data(b"{}");
    assert!(rx.try_recv().is_err());
    t.data(b"{}{}");
    assert_eq!(
        rx.try_recv().unwrap().body,
        Body::Unusable(Unusable::TooBig)
    );
    // A compressed answer is not compared by body.
    let (mut t, mut rx) = tap(BodyCompare::Hash, 0);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    t.head(200, &h);
    t.data(b"\x1f\x8b");
    t.end();
    assert_eq!(
        rx.try_recv().unwrap().body,
        Body::Unusable(Unusable::Encoded)
    );
    // Dropped before the end: nothing.
    let (mut t, mut rx) = tap(BodyCompare::Hash, 0);
    t.head(200, &HeaderMap::new());
    drop(t);
    assert!(rx.try_recv().is_err());
}
