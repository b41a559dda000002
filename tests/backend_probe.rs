//! The admin probe endpoint (`POST /api/v1/backends/POOL/ADDR/probe`),
//! which a rolling update relies on: it probes now, with the pool's check
//! (HTTP, or TCP where checks are off), answers 404 for an unknown backend
//! and 405 for a GET, and a drained backend is still probed.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::admin::{admin, api, backend_states, wait_pool_healthy};
use support::backend::Probe;
use support::rolling::SETTINGS;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_probes_now_and_drained_backends_are_still_probed() {
    let (mut a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let config = format!(
        "{SETTINGS}{}[pools.plain]\nbackends = [\"{}\"]\nhealth = {{ enabled = false }}\n",
        config_for(&[("web", &[&a])], "split = { web = 1 }"),
        b.addr
    );
    let proxy = TestProxy::start(&config).await;
    wait_pool_healthy(&proxy, "web").await;
    let probe = |pool: &str, addr: SocketAddr| format!("/api/v1/backends/{pool}/{addr}/probe");

    let p = api(&proxy, "POST", &probe("web", a.addr)).await;
    assert_eq!(
        (p["ok"].clone(), p["check"].clone(), p["status"].clone()),
        (true.into(), "http".into(), 200.into()),
        "{p}"
    );
    assert_eq!(p["health"], "healthy");
    let p = api(&proxy, "POST", &probe("plain", b.addr)).await;
    assert_eq!(
        (p["ok"].clone(), p["check"].clone()),
        (true.into(), "tcp".into()),
        "{p}"
    );
    let unknown = admin(&proxy, "POST", &probe("web", b.addr)).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        admin(&proxy, "GET", &probe("web", a.addr)).await.status,
        405
    );

    // Drained, the backend is still probed: its health follows its state.
    api(
        &proxy,
        "POST",
        &format!("/api/v1/backends/web/{}/drain", a.addr),
    )
    .await;
    a.set_probe(Probe::Status(503));
    eventually(
        Duration::from_secs(5),
        "drained backend seen unhealthy",
        || async { backend_states(&proxy, "web").await[0].2 == "unhealthy" },
    )
    .await;
    let p = api(&proxy, "POST", &probe("web", a.addr)).await;
    assert_eq!(
        (p["ok"].clone(), p["failure"].clone()),
        (false.into(), "status 503".into()),
        "{p}"
    );
    a.stop();
    let p = api(&proxy, "POST", &probe("web", a.addr)).await;
    assert_eq!(p["failure"], "connection refused", "{p}");
    assert_eq!(p["draining"], true);
    proxy.stop().await;
}
