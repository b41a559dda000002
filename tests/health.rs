//! Health and resilience through a real proxy: active probes, passive
//! ejection, retries and their budget, failover between pools, draining,
//! slow start and readiness. Probe intervals are short (50–200 ms); every
//! wait is a polled condition with a deadline.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use support::backend::{Probe, Traffic};
use support::*;
use switchyard::table::{Backend, Health, ProbeFailure, RAMP_FULL};
use tokio::time::Instant;

const FAST_HEALTH: &str = "[health]\ninterval = \"100ms\"\ntimeout = \"80ms\"\n\
    healthy_threshold = 2\nunhealthy_threshold = 2\n";

/// The proxy's state of the backend at `addr`.
fn backend(proxy: &TestProxy, addr: std::net::SocketAddr) -> Arc<Backend> {
    proxy
        .table()
        .pools()
        .iter()
        .flat_map(|p| p.backends.iter())
        .find(|b| b.addr == addr)
        .cloned()
        .unwrap_or_else(|| panic!("{addr} is not in the table"))
}

async fn ready(proxy: &TestProxy) -> Answer {
    get(&client(), &format!("http://{}/ready", proxy.admin), &[]).await
}

async fn wait_ready(proxy: &TestProxy) {
    eventually(Duration::from_secs(5), "/ready says ready", || async {
        ready(proxy).await.status == 200
    })
    .await;
}

async fn wait_health(proxy: &TestProxy, b: &TestBackend, want: Health, within: Duration) {
    let state = backend(proxy, b.addr);
    eventually(within, &format!("{} becomes {want:?}", b.name), || {
        let state = state.clone();
        async move { state.health() == want }
    })
    .await;
}

/// Any method with a body.
async fn send(client: &HttpClient, method: &str, url: &str, body: &'static str) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request");
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {url} failed: {e:?}"));
    collect(resp).await
}

/// Steady GET load: `tasks` clients, each sending one request per `every`.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(usize, Vec<String>)>>,
}

impl Load {
    fn start(url: String, tasks: usize, every: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|_| {
                let (url, stop) = (url.clone(), stop.clone());
                tokio::spawn(async move {
                    let c = client();
                    let mut tick = tokio::time::interval(every);
                    let (mut ok, mut errors) = (0, Vec::new());
                    while !stop.load(Ordering::SeqCst) {
                        tick.tick().await;
                        let req = Request::get(url.as_str())
                            .body(Full::new(Bytes::new()))
                            .expect("request");
                        match c.request(req).await {
                            Ok(resp) => {
                                let a = collect(resp).await;
                                if a.status == 200 {
                                    ok += 1;
                                } else {
                                    errors.push(format!("{}: {}", a.status, a.text().trim()));
                                }
                            }
                            Err(e) => errors.push(format!("client error: {e:?}")),
                        }
                    }
                    (ok, errors)
                })
            })
            .collect();
        Load { stop, tasks }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let (mut ok, mut errors) = (0, Vec::new());
        for t in self.tasks {
            let (o, e) = t.await.expect("load task");
            ok += o;
            errors.extend(e);
        }
        (ok, errors)
    }
}

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
        backend(&proxy, b.addr).probe_failure(),
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
        backend(&proxy, x.addr).probe_failure(),
        Some(ProbeFailure::Status(500))
    );
    assert_eq!(
        backend(&proxy, y.addr).probe_failure(),
        Some(ProbeFailure::Timeout)
    );
    assert_eq!(
        backend(&proxy, z.addr).probe_failure(),
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
    let state = backend(&proxy, b.addr);

    // pass, fail, pass, ...: never three in a row, so never a flip
    b.set_probe(Probe::Alternate);
    let start = b.probes();
    let deadline = Instant::now() + Duration::from_secs(8);
    while b.probes() < start + 20 {
        assert_eq!(
            state.health(),
            Health::Healthy,
            "flapped after {} probes",
            b.probes() - start
        );
        assert!(Instant::now() < deadline, "probes stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

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
async fn a_backend_failing_real_traffic_is_ejected_and_comes_back() {
    let good = TestBackend::start("good").await;
    let bad = TestBackend::start("bad").await;
    let proxy = TestProxy::start(&format!(
        "{FAST_HEALTH}[outlier]\nconsecutive_failures = 3\nejection_time = \"1s\"\nmax_ejection_time = \"2s\"\n{}",
        config_for(&[("p", &[&good, &bad])], "split = { p = 1 }")
    ))
    .await;
    wait_ready(&proxy).await;
    let state = backend(&proxy, bad.addr);
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
    let old_state = backend(&proxy, old.addr);
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
        let r = send(&c, "POST", &url, "order=1").await;
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
        let r = send(&c, "PUT", &url, "state=1").await;
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
        let r = send(&c, "POST", &proxy2.url("/upload"), "order=1").await;
        assert_eq!((r.status, r.text().as_str()), (200, "7"));
    }
    proxy2.stop().await;
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
    let state = backend(&proxy, b.addr);
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
    while state.ramp() < RAMP_FULL {
        let r = state.ramp();
        seen_partial |= r > 0;
        assert!(
            healthy.elapsed() < Duration::from_secs(3),
            "ramp stuck at {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_partial, "the share grew in steps");
    assert!(
        healthy.elapsed() >= Duration::from_millis(800),
        "full share after {:?}",
        healthy.elapsed()
    );
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
