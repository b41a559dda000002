//! Issue 18, item 2: no duration or count that validation accepts can
//! panic any code path, and a value outside its range is refused with the
//! key and the allowed range, by `check` and by a live edit alike (the
//! controller keeps working). The property test drives a running proxy
//! (requests, health probes, ejections, a rollout, a verified flip,
//! webhooks, reloads, shutdown) with values drawn from each key's accepted
//! range, its ends first, and counts every panic in the process.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use proptest::prelude::*;

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// Panics anywhere in this process (tasks, worker threads), since tokio
/// catches a task's panic and the test would not see it otherwise.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

const MS: u64 = 1;
const SEC: u64 = 1000;
const HOUR: u64 = 3600 * SEC;
const DAY: u64 = 24 * HOUR;

/// A duration in milliseconds from `min..=max`: an end half of the time.
fn ms(min: u64, max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![Just(min), Just(max), min..=max]
}

fn count(min: i64, max: i64) -> impl Strategy<Value = i64> {
    prop_oneof![Just(min), Just(max), min..=max]
}

/// Values for every duration and count key of the config below, each from
/// the range the README documents for it.
#[derive(Debug, Clone)]
struct Values {
    shutdown_grace: u64,
    connect_timeout: u64,
    upstream_timeout: u64,
    upstream_idle_timeout: u64,
    client_header_timeout: u64,
    watch_interval: u64,
    upstream_max_idle: i64,
    max_headers: i64,
    health_interval: u64,
    /// A fraction of the interval (the timeout must be shorter).
    health_timeout_permille: u64,
    thresholds: (i64, i64),
    consecutive_failures: i64,
    ejection_time: u64,
    /// Added to ejection_time (the maximum may not be shorter), capped.
    max_ejection_extra: u64,
    retries: i64,
    per_try_timeout: u64,
    budget_percent: i64,
    slow_start: u64,
    resolve_interval: u64,
    step_interval: u64,
    max_p99_latency: u64,
    max_wait: u64,
    min_requests: i64,
    failure_threshold: i64,
    notify_timeout: u64,
    notify_backoff: u64,
    notify_retries: i64,
}

fn values() -> impl Strategy<Value = Values> {
    let server = (
        ms(0, HOUR),
        ms(MS, 300 * SEC),
        ms(MS, DAY),
        ms(0, HOUR),
        ms(100 * MS, HOUR),
        ms(10 * MS, HOUR),
        count(0, 100_000),
        count(1, 10_000),
    );
    let resilience = (
        ms(10 * MS, HOUR),
        1u64..1000,
        (count(1, 100), count(1, 100)),
        count(0, 1000),
        ms(MS, DAY),
        ms(0, DAY),
        count(0, 5),
        ms(MS, DAY),
        count(0, 100),
        ms(0, HOUR),
        ms(100 * MS, DAY),
    );
    let rollout = (
        ms(10 * MS, DAY),
        ms(MS, HOUR),
        ms(0, 30 * DAY),
        count(0, 1_000_000_000),
        count(1, 1000),
        ms(MS, 300 * SEC),
        ms(MS, HOUR),
        count(0, 10),
    );
    (server, resilience, rollout).prop_map(|(s, r, o)| Values {
        shutdown_grace: s.0,
        connect_timeout: s.1,
        upstream_timeout: s.2,
        upstream_idle_timeout: s.3,
        client_header_timeout: s.4,
        watch_interval: s.5,
        upstream_max_idle: s.6,
        max_headers: s.7,
        health_interval: r.0,
        health_timeout_permille: r.1,
        thresholds: r.2,
        consecutive_failures: r.3,
        ejection_time: r.4,
        max_ejection_extra: r.5,
        retries: r.6,
        per_try_timeout: r.7,
        budget_percent: r.8,
        slow_start: r.9,
        resolve_interval: r.10,
        step_interval: o.0,
        max_p99_latency: o.1,
        max_wait: o.2,
        min_requests: o.3,
        failure_threshold: o.4,
        notify_timeout: o.5,
        notify_backoff: o.6,
        notify_retries: o.7,
    })
}

fn config(v: &Values, live: &TestBackend) -> String {
    let health_timeout =
        (v.health_interval * v.health_timeout_permille / 1000).clamp(1, v.health_interval - 1);
    let max_ejection = (v.ejection_time + v.max_ejection_extra).min(DAY);
    let port = live.addr.port();
    format!(
        r#"[server]
shutdown_grace = "{}ms"
connect_timeout = "{}ms"
upstream_timeout = "{}ms"
upstream_idle_timeout = "{}ms"
client_header_timeout = "{}ms"
watch_interval = "{}ms"
upstream_max_idle = {}
max_headers = {}
[health]
interval = "{}ms"
timeout = "{health_timeout}ms"
healthy_threshold = {}
unhealthy_threshold = {}
[outlier]
consecutive_failures = {}
ejection_time = "{}ms"
max_ejection_time = "{max_ejection}ms"
max_ejected_percent = 100
[retry]
retries = {}
per_try_timeout = "{}ms"
budget_percent = {}
[pools.live]
backends = ["{}"]
slow_start = "{}ms"
[pools.named]
backends = ["localhost:{port}"]
resolve_interval = "{}ms"
[pools.dead]
backends = ["127.0.0.1:1"]
[[routes]]
name = "r"
split = {{ live = 50, dead = 50, named = 0 }}
[routes.rollout]
canary = "dead"
stable = "live"
step_interval = "{}ms"
max_p99_latency = "{}ms"
max_wait = "{}ms"
min_requests = {}
failure_threshold = {}
[[notify]]
url = "http://127.0.0.1:1/hook"
timeout = "{}ms"
backoff = "{}ms"
retries = {}
"#,
        v.shutdown_grace,
        v.connect_timeout,
        v.upstream_timeout,
        v.upstream_idle_timeout,
        v.client_header_timeout,
        v.watch_interval,
        v.upstream_max_idle,
        v.max_headers,
        v.health_interval,
        v.thresholds.0,
        v.thresholds.1,
        v.consecutive_failures,
        v.ejection_time,
        v.retries,
        v.per_try_timeout,
        v.budget_percent,
        live.addr,
        v.slow_start,
        v.resolve_interval,
        v.step_interval,
        v.max_p99_latency,
        v.max_wait,
        v.min_requests,
        v.failure_threshold,
        v.notify_timeout,
        v.notify_backoff,
        v.notify_retries,
    )
}

/// Every code path that reads these values, once: requests (timeouts,
/// retries, ejection), probes, a rollout, a verified flip, a reload with
/// the same values changed, the status, and the graceful shutdown.
async fn exercise(cfg: &str) {
    let proxy = TestProxy::start(cfg).await;
    let c = client();
    for i in 0..10 {
        // A fresh connection each: with a short client_header_timeout the
        // proxy closes idle keep-alive connections quickly (by design).
        let req = http::Request::get(proxy.url(&format!("/{i}")))
            .header("connection", "close")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let a = tokio::time::timeout(Duration::from_secs(30), c.request(req))
            .await
            .expect("request answered");
        if let Ok(a) = a {
            assert!(
                matches!(a.status().as_u16(), 200 | 431 | 502 | 503 | 504),
                "{}",
                a.status()
            );
        }
    }
    let api = |p: &str| proxy.admin_url(&format!("/api/v1/{p}"));
    let start = send(&c, "POST", &api("routes/r/rollout/start"), &[], "").await;
    assert!(matches!(start.status, 202 | 409 | 422), "{}", start.text());
    let abort = send(&c, "POST", &api("routes/r/rollout/abort"), &[], "").await;
    assert!(abort.status < 500, "{}", abort.text());
    let flip = send(
        &c,
        "POST",
        &api("routes/r/flip"),
        &[],
        r#"{"to": "live", "verify": {"window": "1h", "max_p99_latency": "1h"}}"#,
    )
    .await;
    assert!(flip.status < 500, "{}", flip.text());
    // A reload: a new table, outlier and retry settings, sinks and
    // rollout configuration from the same values.
    let edited = cfg.replace("max_ejected_percent = 100", "max_ejected_percent = 50");
    proxy.reload(&edited).await;
    let status = get(&c, &api("status"), &[]).await;
    assert_eq!(status.status, 200);
    assert_eq!(
        status.json()["controller"]["running"],
        true,
        "{}",
        status.text()
    );
    let ready = get(&c, &proxy.admin_url("/ready"), &[]).await;
    assert!(ready.status == 200 || ready.status == 503);
    assert!(!ready.text().contains("controller"), "{}", ready.text());
    tokio::time::timeout(Duration::from_secs(30), proxy.stop())
        .await
        .expect("shutdown finished");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_accepted_duration_or_count_panics_anything(v in values()) {
        count_panics();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let live = TestBackend::start("live").await;
            let cfg = config(&v, &live);
            switchyard::config::parse(&cfg, std::path::Path::new("p.toml"))
                .unwrap_or_else(|e| panic!("a value from the documented range was refused:\n{e}\n{cfg}"));
            exercise(&cfg).await;
        });
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a code path panicked with {:?}", v);
    }
}

fn check(dir: &tempfile::TempDir, text: &str) -> (i32, String) {
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str =
    "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = { blue = 1 }\n";

#[test]
fn out_of_range_values_are_refused_with_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    // The values from the report, and each range's first value outside.
    let cases = [
        (
            "[routes.rollout]\ncanary = \"blue\"\nstable = \"green\"\nstep_interval = \"18446744073709551615s\"\n[pools.green]\nbackends = [\"127.0.0.1:2\"]\n",
            "routes[0].rollout.step_interval",
            "10ms to 1day",
        ),
        ("[health]\ninterval = \"18446744073709551615s\"\n", "health.interval", "10ms to 1h"),
        ("[server]\nshutdown_grace = \"5124095576030431h\"\n", "server.shutdown_grace", "0s to 1h"),
        ("[server]\nshutdown_grace = \"1h 1ms\"\n", "server.shutdown_grace", "0s to 1h"),
        ("[server]\nconnect_timeout = \"301s\"\n", "server.connect_timeout", "1ms to 5m"),
        ("[server]\nwatch_interval = \"9ms\"\n", "server.watch_interval", "10ms to 1h"),
        ("[outlier]\nejection_time = \"25h\"\nmax_ejection_time = \"26h\"\n", "outlier.ejection_time", "1ms to 1day"),
        ("[retry]\nper_try_timeout = \"100days\"\n", "retry.per_try_timeout", "1ms to 1day"),
        ("[server]\nworkers = 257\n", "server.workers", "0 to 256"),
        ("[server]\nmax_headers = 9223372036854775807\n", "server.max_headers", "1 to 10000"),
        ("[health]\nhealthy_threshold = -1\n", "health.healthy_threshold", "1 to 100"),
    ];
    for (extra, key, range) in cases {
        let text = if extra.starts_with("[routes.rollout]") {
            format!("{BASE}{extra}")
        } else {
            format!("{extra}{BASE}")
        };
        let (code, stderr) = check(&dir, &text);
        assert_eq!(code, 64, "{key}: {stderr}");
        assert!(stderr.contains("c.toml:"), "{stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(stderr.contains(range), "{key} wants {range}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_edit_out_of_range_leaves_the_controller_working() {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let base = config_for(
        &[("blue", &[&blue]), ("green", &[&green])],
        "split = { blue = 1 }",
    );
    let proxy = TestProxy::start(&base).await;
    let c = client();
    let bad = format!(
        "{base}[routes.rollout]\ncanary = \"green\"\nstable = \"blue\"\nstep_interval = \"5124095576030431h\"\n"
    );
    std::fs::write(&proxy.path, &bad).unwrap();
    let reload = send(&c, "POST", &proxy.admin_url("/api/v1/reload"), &[], "").await;
    assert_eq!(reload.status, 422, "{}", reload.text());
    assert!(reload.text().contains("step_interval"), "{}", reload.text());
    let status = get(&c, &proxy.admin_url("/api/v1/status"), &[])
        .await
        .json();
    assert_eq!(status["controller"]["running"], true);
    let error = status["last_reload"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("step_interval"), "{status}");
    // Later valid edits still apply.
    let good = base.replace("split = { blue = 1 }", "split = { green = 1 }");
    let g = proxy.reload(&good).await;
    assert!(g >= 2);
    let a = get(&c, &proxy.url("/"), &[]).await;
    assert_eq!(a.json()["backend"], "green", "{}", a.text());
    let ready = get(&c, &proxy.admin_url("/ready"), &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    proxy.stop().await;
}
