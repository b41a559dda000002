//! Failover through a real proxy: a backend failing real traffic is
//! ejected (passive checks) and comes back; a dead canary hands its share to
//! stable and a route with no pool left answers 503; a slow request
//! finishes on a backend removed by reload, whose connection then closes.

mod support;

use std::time::Duration;

use support::admin::{ready, wait_ready};
use support::backend::Traffic;
use support::health::{backend_state, wait_health, FAST_HEALTH};
use support::*;
use switchyard::table::Health;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_failing_real_traffic_is_ejected_and_comes_back() {
    let good = TestBackend::start("good").await;
    let bad = TestBackend::start("bad").await;
    let proxy = TestProxy::start(&format!(
        "{FAST_HEALTH}[outlier]\nconsecutive_failures = 3\nejection_time = \"1s\"\nmax_ejection_time = \"2s\"\n{}",
        config_for(&[("p", &[&good, &bad])], "split = { p = 1 }")
    ))
    .await;
    wait_ready(&proxy).await;
    let state = backend_state(&proxy, bad.addr);
    bad.set_traffic(Traffic::Status(503));
    let c = client();
    let mut errors = 0;
    let url = proxy.url("/");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !state.is_ejected() {
        assert!(Instant::now() < deadline, "never ejected");
        if get(&c, &url, &[]).await.status == 503 {
            errors += 1;
        }
    }
    assert_eq!(errors, 3, "ejected after consecutive_failures answers");
    assert_eq!(state.health(), Health::Healthy, "probes still pass");
    for _ in 0..20 {
        let a = get(&c, &url, &[]).await;
        assert_eq!((a.status, a.header("x-backend")), (200, Some("good")));
    }
    bad.set_traffic(Traffic::Normal);
    eventually(Duration::from_secs(4), "the ejection ends", || async {
        !state.is_ejected()
    })
    .await;
    let before = bad.requests();
    eventually(Duration::from_secs(4), "bad serves again", || async {
        get(&c, &url, &[]).await.status == 200 && bad.requests() > before
    })
    .await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_canary_hands_its_share_to_stable_and_no_pool_means_503() {
    let mut stable = TestBackend::start("stable").await;
    let mut canary = TestBackend::start("canary").await;
    let proxy = TestProxy::start(&format!(
        "{FAST_HEALTH}{}",
        config_for(
            &[("stable", &[&stable]), ("canary", &[&canary])],
            "split = { stable = 50, canary = 50 }\nsticky = { header = \"X-User\" }"
        )
    ))
    .await;
    wait_ready(&proxy).await;
    canary.kill().await;
    wait_health(&proxy, &canary, Health::Unhealthy, Duration::from_secs(3)).await;
    let c = client();
    for i in 0..200 {
        let user = format!("user-{i}");
        let headers: &[(&str, &str)] = if i % 2 == 0 {
            &[("X-User", &user)]
        } else {
            &[]
        };
        let a = get(&c, &proxy.url("/"), headers).await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.header("x-backend"), Some("stable"));
    }
    assert_eq!(
        ready(&proxy).await.status,
        200,
        "stable still serves the route"
    );

    stable.kill().await;
    wait_health(&proxy, &stable, Health::Unhealthy, Duration::from_secs(3)).await;
    let a = get(&c, &proxy.url("/"), &[]).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.header("x-switchyard-error"), Some("no-healthy-backend"));
    assert!(
        a.text().contains("no available backend in pool"),
        "{}",
        a.text()
    );
    assert!(a.text().contains("other pools of route r"), "{}", a.text());
    let r = ready(&proxy).await;
    assert_eq!(r.status, 503);
    assert!(r.text().contains("route r has no pool"), "{}", r.text());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_finishes_on_a_removed_backend_whose_connection_then_closes() {
    let old = TestBackend::start("old").await;
    let new = TestBackend::start("new").await;
    let cfg = |b: &TestBackend| {
        format!(
            "{FAST_HEALTH}[server]\nupstream_idle_timeout = \"60s\"\n{}",
            config_for(&[("p", &[b])], "split = { p = 1 }")
        )
    };
    let proxy = TestProxy::start(&cfg(&old)).await;
    wait_ready(&proxy).await;
    let old_state = backend_state(&proxy, old.addr);
    let arrived = old.stats.arrived.notified();
    tokio::pin!(arrived);
    arrived.as_mut().enable();
    let url = proxy.url("/slow?ms=1000");
    let slow = tokio::spawn(async move { get(&client(), &url, &[]).await });
    arrived.await;

    proxy.reload(&cfg(&new)).await;
    assert!(old_state.is_draining());
    let c = client();
    eventually(Duration::from_secs(3), "the new backend serves", || async {
        get(&c, &proxy.url("/"), &[]).await.header("x-backend") == Some("new")
    })
    .await;
    let a = slow.await.expect("slow request");
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "slow done from old");
    // the draining backend's connection is closed, not kept idle for 60 s
    eventually(
        Duration::from_secs(2),
        "old's connection closes",
        || async { old.open_connections() == 0 },
    )
    .await;
    proxy.stop().await;
}
