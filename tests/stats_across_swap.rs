//! A request in flight while the routing table is swapped is counted where
//! it was routed: in its (route, pool) rollout window and in `/metrics`.
//! (It holds the statistics handles its pick gave it; nothing is looked up
//! in the table when it ends.) The backend holds its answer until the test
//! has swapped the table, so the ordering is by handshake, not by timing.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Semaphore};

use support::*;

/// A backend that answers `/health` at once and every other request only
/// when the test adds a permit to `release`; each arrival is announced on
/// the returned channel.
struct HoldingBackend {
    addr: SocketAddr,
    release: Arc<Semaphore>,
    arrived: mpsc::UnboundedReceiver<()>,
    _task: tokio::task::JoinHandle<()>,
}

impl HoldingBackend {
    async fn start() -> HoldingBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Semaphore::new(0));
        let (tx, arrived) = mpsc::unbounded_channel();
        let (permits, task_tx) = (release.clone(), tx);
        let task = accept_each(listener, move |tcp| {
            let (permits, tx) = (permits.clone(), task_tx.clone());
            async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (permits, tx) = (permits.clone(), tx.clone());
                    async move {
                        if req.uri().path() != "/health" {
                            // The test may have stopped listening; the
                            // answer is held either way.
                            let _ = tx.send(());
                            permits.acquire().await.unwrap().forget();
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"held"))))
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service);
                // A connection the proxy closes ends here; nothing to report.
                let _ = conn.await;
            }
        });
        HoldingBackend {
            addr,
            release,
            arrived,
            _task: task,
        }
    }
}

fn config(blue: &TestBackend, canary: SocketAddr, split: &str) -> String {
    format!(
        "[pools.blue]\nbackends = [\"{}\"]\n\n[pools.canary]\nbackends = [\"{canary}\"]\n\n\
         [[routes]]\nname = \"r\"\nsplit = {{ {split} }}\n",
        blue.addr
    )
}

/// The value of the `/metrics` sample line starting with `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_spanning_a_table_swap_is_counted_where_it_was_routed() {
    let blue = TestBackend::start("blue").await;
    let mut canary = HoldingBackend::start().await;
    let proxy = TestProxy::start(&config(&blue, canary.addr, "blue = 0, canary = 100")).await;
    let before = proxy.table().generation;
    // Wait until the canary's first probe has passed (it takes traffic).
    eventually(Duration::from_secs(10), "the canary is available", || {
        let t = proxy.table();
        async move { t.pools().iter().all(|p| p.is_servable()) }
    })
    .await;

    let url = proxy.url("/");
    let request = tokio::spawn(async move { get(&client(), &url, &[]).await });
    tokio::time::timeout(Duration::from_secs(10), canary.arrived.recv())
        .await
        .expect("the request reaches the canary")
        .expect("the backend is running");

    // While the canary holds the answer, the split moves away from it.
    let after = proxy
        .reload(&config(&blue, canary.addr, "blue = 100, canary = 0"))
        .await;
    assert!(after > before, "the reload swapped the table");
    canary.release.add_permits(1);
    let answer = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("the held request is answered")
        .expect("the client task");
    assert_eq!((answer.status, answer.text().as_str()), (200, "held"));

    // The window of (r, canary): the same ring in the new table.
    let table = proxy.table();
    assert_eq!(table.generation, after);
    let now = switchyard::stats::clock::secs(tokio::time::Instant::now());
    let window = table.window("r", "canary").expect("r/canary window");
    let counted = window.last(now, 60);
    assert_eq!((counted.requests, counted.failures), (1, 0));
    assert_eq!(table.window("r", "blue").unwrap().last(now, 60).requests, 0);

    // And /metrics, under the labels it was routed with.
    let metrics = get(&client(), &proxy.admin_url("/metrics"), &[])
        .await
        .text();
    let series = format!(
        "switchyard_requests_total{{route=\"r\",pool=\"canary\",backend=\"{}\",code=\"2xx\"}}",
        canary.addr
    );
    assert_eq!(sample(&metrics, &series), Some(1.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "switchyard_request_duration_seconds_count{route=\"r\",pool=\"canary\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    proxy.stop().await;
}
