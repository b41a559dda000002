//! Retries through a real proxy: the retry budget caps them when every
//! backend fails, a POST is not retried once sent while idempotent and
//! unsent requests are, and a hanging try is cut by the per-try timeout.

mod support;

use std::time::Duration;

use support::admin::wait_ready;
use support::backend::Traffic;
use support::*;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries_when_every_backend_fails() {
    let bs = [
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    ];
    let proxy = TestProxy::start(&format!(
        "[outlier]\nconsecutive_failures = 0\n[retry]\nretries = 2\nbudget_percent = 20\n{}",
        config_for(&[("p", &[&bs[0], &bs[1], &bs[2]])], "split = { p = 1 }")
    ))
    .await;
    wait_ready(&proxy).await;
    for b in &bs {
        b.set_traffic(Traffic::Reset);
    }
    let c = client();
    const N: usize = 200;
    for _ in 0..N {
        let a = get(&c, &proxy.url("/"), &[]).await;
        assert_eq!(a.status, 502, "{}", a.text());
        assert_eq!(a.header("x-switchyard-error"), Some("upstream-reset"));
    }
    let tries: usize = bs.iter().map(TestBackend::requests).sum();
    // at most 20 % extra over the window (and at least 10), against up to
    // 3 tries per request without a budget
    assert!(
        tries <= N + (N / 5).max(10) + 2,
        "{tries} tries for {N} requests"
    );
    assert!(tries >= N + 30, "retries did happen: {tries} tries");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_not_retried_once_sent_but_idempotent_and_unsent_requests_are() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let proxy = TestProxy::start(&format!(
        "[outlier]\nconsecutive_failures = 0\n{}",
        config_for(&[("p", &[&a, &b])], "split = { p = 1 }").replace(
            "\n\n[[routes]]",
            "\nbalance = \"round_robin\"\n\n[[routes]]"
        )
    ))
    .await;
    wait_ready(&proxy).await;
    a.set_traffic(Traffic::ResetAfterBody);
    let c = client();
    let url = proxy.url("/upload");
    let (mut failed, mut served) = (0, 0);
    for _ in 0..10 {
        let r = send(&c, "POST", &url, &[], "order=1").await;
        match r.status {
            502 => {
                assert_eq!(r.header("x-switchyard-error"), Some("upstream-reset"));
                failed += 1;
            }
            200 => served += 1,
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(
        failed > 0 && served > 0,
        "round robin reaches both: {failed}/{served}"
    );
    assert_eq!(a.requests(), failed, "each failed POST reached a once");
    assert_eq!(b.requests(), served, "no failed POST went on to b");

    // PUT is idempotent and its small body was kept: retried on b
    let a_before = a.requests();
    for _ in 0..10 {
        let r = send(&c, "PUT", &url, &[], "state=1").await;
        assert_eq!((r.status, r.text().as_str()), (200, "7"));
    }
    assert!(a.requests() > a_before, "some PUTs met a first");

    // nothing sent (connection refused): even a POST goes to another backend
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy2 = TestProxy::start(&format!(
        "[health]\nenabled = false\n[pools.p]\nbackends = [\"{dead}\", \"{}\"]\nbalance = \"round_robin\"\n\
         [[routes]]\nname = \"r\"\nsplit = {{ p = 1 }}\n",
        b.addr
    ))
    .await;
    for _ in 0..10 {
        let r = send(&c, "POST", &proxy2.url("/upload"), &[], "order=1").await;
        assert_eq!((r.status, r.text().as_str()), (200, "7"));
    }
    proxy2.stop().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_that_hangs_is_cut_by_the_per_try_timeout_and_retried() {
    let stuck = TestBackend::start("stuck").await;
    let fine = TestBackend::start("fine").await;
    let proxy = TestProxy::start(&format!(
        "[server]\nupstream_timeout = \"5s\"\n[outlier]\nconsecutive_failures = 0\n\
         [retry]\nper_try_timeout = \"200ms\"\n{}",
        config_for(&[("p", &[&stuck, &fine])], "split = { p = 1 }").replace(
            "\n\n[[routes]]",
            "\nbalance = \"round_robin\"\n\n[[routes]]"
        )
    ))
    .await;
    wait_ready(&proxy).await;
    stuck.set_traffic(Traffic::Hang);
    let c = client();
    for _ in 0..6 {
        let started = Instant::now();
        let a = get(&c, &proxy.url("/"), &[]).await;
        assert_eq!((a.status, a.header("x-backend")), (200, Some("fine")));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(
        stuck.requests() >= 2,
        "round robin sent tries to the stuck backend"
    );
    proxy.stop().await;
}
