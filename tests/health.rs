//! Active health checks through a real proxy: a backend killed under load
//! is marked down without a client error and comes back, failing probes
//! carry their reason, thresholds stop flapping, a backend added by reload
//! waits for its first passing probe, `/ready` waits for the first round,
//! slow start ramps a recovered backend up, and checks turned off by reload.
//! Probe intervals are short (50–600 ms); every wait is a polled condition
//! with a deadline. (Passive ejection and failover are in `failover.rs`,
//! retries in `retry.rs`.)

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::admin::{ready, wait_ready};
use support::backend::Probe;
use support::health::{backend_state, wait_health, FAST_HEALTH};
use support::load::Load;
use support::*;
use switchyard::table::{Health, ProbeFailure, RAMP_FULL};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_shows_no_errors_and_it_comes_back() {
    let a = TestBackend::start("a").await;
    let mut b = TestBackend::start("b").await;
    let c = TestBackend::start("c").await;
    let proxy = TestProxy::start(&format!(
        "{FAST_HEALTH}{}",
        config_for(&[("p", &[&a, &b, &c])], "split = { p = 1 }")
    ))
    .await;
    wait_ready(&proxy).await;
    // 4 clients × one request per 10 ms: a few hundred requests per second
    let load = Load::start(proxy.url("/"), 4, Duration::from_millis(10));
    eventually(Duration::from_secs(5), "all three take traffic", || async {
        a.requests() > 10 && b.requests() > 10 && c.requests() > 10
    })
    .await;

    let killed = Instant::now();
    b.kill().await;
    wait_health(&proxy, &b, Health::Unhealthy, Duration::from_secs(3)).await;
    let took = killed.elapsed();
    // interval × unhealthy_threshold + one interval (the last passing probe
    // may have just run), plus a little scheduling slack on a busy machine
    assert!(
        took <= Duration::from_millis(300 + 150),
        "marked unhealthy after {took:?}"
    );
    assert_eq!(
        backend_state(&proxy, b.addr).probe_failure(),
        Some(ProbeFailure::Refused)
    );
    let served = a.requests() + c.requests();
    eventually(Duration::from_secs(5), "load goes on without b", || async {
        a.requests() + c.requests() > served + 100
    })
    .await;

    let passes = b.probe_passes();
    b.restart().await;
    wait_health(&proxy, &b, Health::Healthy, Duration::from_secs(3)).await;
    assert!(
        b.probe_passes() >= passes + 2,
        "healthy after {} passing probes",
        b.probe_passes() - passes
    );
    let before = b.requests();
    eventually(Duration::from_secs(5), "b takes traffic again", || async {
        b.requests() > before + 50
    })
    .await;

    let (ok, errors) = load.finish().await;
    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    eprintln!(
        "{ok} requests, {} retries",
        switchyard::proxy::retry::RETRIES.load(Ordering::Relaxed)
    );
    assert!(ok > 200, "only {ok} requests");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_probes_are_reported_with_their_reason() {
    let x = TestBackend::start("x").await;
    let y = TestBackend::start("y").await;
    let mut z = TestBackend::start("z").await;
    let proxy = TestProxy::start(&format!(
        "{FAST_HEALTH}{}",
        config_for(
            &[("x", &[&x]), ("y", &[&y]), ("z", &[&z])],
            "split = { x = 1, y = 1, z = 1 }"
        )
    ))
    .await;
    wait_ready(&proxy).await;
    x.set_probe(Probe::Status(500));
    y.set_probe(Probe::Hang);
    z.kill().await;
    let within = Duration::from_secs(3);
    wait_health(&proxy, &x, Health::Unhealthy, within).await;
    wait_health(&proxy, &y, Health::Unhealthy, within).await;
    wait_health(&proxy, &z, Health::Unhealthy, within).await;
    assert_eq!(
        backend_state(&proxy, x.addr).probe_failure(),
        Some(ProbeFailure::Status(500))
    );
    assert_eq!(
        backend_state(&proxy, y.addr).probe_failure(),
        Some(ProbeFailure::Timeout)
    );
    assert_eq!(
        backend_state(&proxy, z.addr).probe_failure(),
        Some(ProbeFailure::Refused)
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_backend_flips_no_faster_than_the_thresholds() {
    let b = TestBackend::start("b").await;
    let proxy = TestProxy::start(&format!(
        "[health]\ninterval = \"50ms\"\ntimeout = \"40ms\"\nhealthy_threshold = 3\nunhealthy_threshold = 3\n{}",
        config_for(&[("p", &[&b])], "split = { p = 1 }")
    ))
    .await;
    wait_ready(&proxy).await;
    let state = backend_state(&proxy, b.addr);

    // pass, fail, pass, ...: never three in a row, so never a flip
    b.set_probe(Probe::Alternate);
    let start = b.probes();
    let every = Duration::from_millis(5);
    eventually_every(Duration::from_secs(8), every, "20 more probes", || {
        let done = b.probes() >= start + 20;
        if !done {
            assert_eq!(
                state.health(),
                Health::Healthy,
                "flapped after {} probes",
                b.probes() - start
            );
        }
        std::future::ready(done)
    })
    .await;

    // a settled run of passes, then failures: unhealthy only after three
    b.set_probe(Probe::Ok);
    let passes = b.probe_passes();
    eventually(Duration::from_secs(3), "three passes", || async {
        b.probe_passes() >= passes + 3
    })
    .await;
    let failures = b.probe_failures();
    b.set_probe(Probe::Status(503));
    wait_health(&proxy, &b, Health::Unhealthy, Duration::from_secs(3)).await;
    assert!(
        b.probe_failures() >= failures + 3,
        "flipped after {}",
        b.probe_failures() - failures
    );

    // and back: healthy only after three passes in a row
    let passes = b.probe_passes();
    b.set_probe(Probe::Ok);
    wait_health(&proxy, &b, Health::Healthy, Duration::from_secs(3)).await;
    assert!(
        b.probe_passes() >= passes + 3,
        "recovered after {}",
        b.probe_passes() - passes
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_added_by_reload_waits_for_its_first_passing_probe() {
    let b1 = TestBackend::start("b1").await;
    let b2 = TestBackend::start("b2").await;
    let b3 = TestBackend::start("b3").await;
    b3.set_probe(Probe::Status(500));
    let head = "[health]\ninterval = \"3s\"\ntimeout = \"500ms\"\n";
    let proxy = TestProxy::start(&format!(
        "{head}{}",
        config_for(&[("p", &[&b1])], "split = { p = 1 }")
    ))
    .await;
    wait_ready(&proxy).await;
    let b1_probes = b1.probes();

    proxy
        .reload(&format!(
            "{head}{}",
            config_for(&[("p", &[&b1, &b2, &b3])], "split = { p = 1 }")
        ))
        .await;
    let c = client();
    eventually(Duration::from_secs(3), "b2 takes traffic", || async {
        get(&c, &proxy.url("/"), &[]).await.header("x-backend") == Some("b2")
    })
    .await;
    // b2 answered a probe before its first request; b3 failed its probe
    // and never got one
    assert!(b2.probes() >= 1);
    wait_health(&proxy, &b3, Health::Unhealthy, Duration::from_secs(3)).await;
    for _ in 0..30 {
        assert_eq!(get(&c, &proxy.url("/"), &[]).await.status, 200);
    }
    assert_eq!(b3.requests(), 0);
    // b1 kept its probe task: no extra probe at the reload (the next one
    // is ~3 s after the first)
    assert_eq!(
        b1.probes(),
        b1_probes,
        "b1's probe was restarted by the reload"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_for_the_first_probe_round_and_a_servable_route() {
    let b = TestBackend::start("b").await;
    b.set_probe(Probe::Hang);
    let proxy = TestProxy::start(&format!(
        "[health]\ninterval = \"600ms\"\ntimeout = \"400ms\"\nhealthy_threshold = 1\n{}",
        config_for(&[("p", &[&b])], "split = { p = 1 }")
    ))
    .await;
    let r = ready(&proxy).await;
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("first health-check round"),
        "{}",
        r.text()
    );
    eventually(Duration::from_secs(3), "the probe times out", || async {
        ready(&proxy).await.text().contains("route r has no pool")
    })
    .await;
    b.set_probe(Probe::Ok);
    wait_ready(&proxy).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_backend_ramps_up_over_slow_start() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let proxy = TestProxy::start(&format!(
        "[health]\ninterval = \"50ms\"\ntimeout = \"40ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n{}",
        config_for(&[("p", &[&a, &b])], "split = { p = 1 }")
            .replace("\n\n[[routes]]", "\nslow_start = \"1s\"\n\n[[routes]]")
    ))
    .await;
    wait_ready(&proxy).await;
    let state = backend_state(&proxy, b.addr);
    assert_eq!(
        state.ramp(),
        RAMP_FULL,
        "no slow start for start-up backends"
    );
    b.set_probe(Probe::Status(500));
    wait_health(&proxy, &b, Health::Unhealthy, Duration::from_secs(2)).await;
    b.set_probe(Probe::Ok);
    wait_health(&proxy, &b, Health::Healthy, Duration::from_secs(2)).await;
    let healthy = Instant::now();
    let mut seen_partial = false;
    eventually(
        Duration::from_secs(3),
        "the full share (ramp stuck)",
        || {
            let r = state.ramp();
            seen_partial |= r > 0 && r < RAMP_FULL;
            std::future::ready(r >= RAMP_FULL)
        },
    )
    .await;
    assert!(seen_partial, "the share grew in steps");
    assert!(
        healthy.elapsed() >= Duration::from_millis(800),
        "full share after {:?}",
        healthy.elapsed()
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_checks_off_by_reload_makes_backends_healthy() {
    let b = TestBackend::start("b").await;
    b.set_probe(Probe::Status(500));
    let body = config_for(&[("p", &[&b])], "split = { p = 1 }");
    let proxy = TestProxy::start(&format!("{FAST_HEALTH}{body}")).await;
    wait_health(&proxy, &b, Health::Unhealthy, Duration::from_secs(3)).await;
    assert_eq!(get(&client(), &proxy.url("/"), &[]).await.status, 503);
    proxy
        .reload(&format!("[health]\nenabled = false\n{body}"))
        .await;
    wait_health(&proxy, &b, Health::Healthy, Duration::from_secs(3)).await;
    assert_eq!(get(&client(), &proxy.url("/"), &[]).await.status, 200);
    // and no probe runs any more
    let probes = b.probes();
    let c = client();
    for _ in 0..20 {
        assert_eq!(get(&c, &proxy.url("/"), &[]).await.status, 200);
    }
    assert!(b.probes() <= probes + 1, "probes went on");
    proxy.stop().await;
}
