//! The canary engine over real sockets: a healthy canary is promoted step
//! by step, a failing or slow one is rolled back with the reason and the
//! measured value, too little traffic waits then rolls back or holds, a
//! restart resumes at the same step, and the operator's pause, resume,
//! promote and abort.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::release::{post, route_history, Load};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

fn config(blue: &TestBackend, canary: &TestBackend, rollout: &str) -> String {
    format!(
        r#"[server]
watch_interval = "100ms"

[pools.blue]
backends = ["{}"]

[pools.canary]
backends = ["{}"]

[[routes]]
name = "r"
split = {{ blue = 100, canary = 0 }}

[routes.rollout]
canary = "canary"
stable = "blue"
{rollout}
"#,
        blue.addr, canary.addr
    )
}

async fn rollout(proxy: &TestProxy) -> Value {
    get(&client(), &proxy.admin_url("/api/v1/routes/r/rollout"), &[])
        .await
        .json()
}

async fn wait_phase(proxy: &TestProxy, phase: &str) -> Value {
    eventually(WAIT, &format!("rollout phase {phase}"), || async {
        rollout(proxy).await["phase"] == phase
    })
    .await;
    rollout(proxy).await
}

fn split(proxy: &TestProxy) -> Vec<(String, u32)> {
    proxy.table().routes()[0]
        .split()
        .map(|(p, w)| (p.name.to_string(), w))
        .collect()
}

/// The split as the table lists it (pools without weight left out).
fn weights(blue: u32, canary: u32) -> Vec<(String, u32)> {
    [("blue".to_owned(), blue), ("canary".to_owned(), canary)]
        .into_iter()
        .filter(|(_, w)| *w > 0)
        .collect()
}

/// The route's history, oldest first, as (action, source, detail, new split).
async fn history(proxy: &TestProxy) -> Vec<(String, String, String, Value)> {
    let text = |e: &Value, k: &str| e[k].as_str().unwrap_or("").to_owned();
    route_history(proxy, "r")
        .await
        .iter()
        .map(|e| {
            let split = e["new_split"].clone();
            (
                text(e, "action"),
                text(e, "source"),
                text(e, "detail"),
                split,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_canary_walks_every_step_and_is_promoted() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let proxy = TestProxy::start(&config(
        &blue,
        &canary,
        "steps = [10, 50, 100]\nstep_interval = \"300ms\"\nmin_requests = 10\nmax_error_rate = 0.01\nmax_p99_latency = \"2s\"",
    ))
    .await;
    let _traffic = Load::start(proxy.url("/"), 4, Duration::ZERO);
    let started = post(&proxy, "/api/v1/routes/r/rollout/start").await;
    assert_eq!(started.status, 202, "{}", started.text());
    // A second start while it runs is refused.
    let again = post(&proxy, "/api/v1/routes/r/rollout/start").await;
    assert_eq!(again.status, 409);

    let done = wait_phase(&proxy, "promoted").await;
    assert_eq!(done["canary_weight"], 100);
    assert_eq!(split(&proxy), weights(0, 100));
    // Written back to the file like any other change.
    let text = std::fs::read_to_string(&proxy.path).unwrap();
    assert!(
        text.contains("split = { blue = 0, canary = 100 }"),
        "{text}"
    );

    let events = history(&proxy).await;
    let splits: Vec<Value> = events
        .iter()
        .filter(|e| e.0 == "split" && e.1 == "rollout")
        .map(|e| e.3["canary"].clone())
        .collect();
    assert_eq!(
        splits,
        vec![Value::from(10), Value::from(50), Value::from(100)]
    );
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e.0.starts_with("rollout"))
        .map(|e| e.0.as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "rollout_start",
            "rollout_step",
            "rollout_step",
            "rollout_promote"
        ]
    );
    assert!(events[events.len() - 1].2.contains("every step passed"));
    // Finished rollouts leave nothing to resume.
    let state = std::fs::read_to_string(switchyard::rollout::state_path(&proxy.path)).unwrap();
    assert_eq!(state.trim(), "{}");
    let metrics = get(&client(), &proxy.admin_url("/metrics"), &[])
        .await
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_rollouts_total")
                && l.contains("result=\"promoted\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_failing_five_percent_is_rolled_back_with_the_measured_rate() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    canary.set_fail_percent(5);
    let proxy = TestProxy::start(&config(
        &blue,
        &canary,
        "steps = [10, 50, 100]\nstep_interval = \"300ms\"\nmin_requests = 40\nmax_error_rate = 0.01\nmax_p99_latency = \"2s\"",
    ))
    .await;
    let _traffic = Load::start(proxy.url("/"), 4, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert_eq!(done["step"], 0, "rolled back at the first step: {done}");
    assert_eq!(done["last"]["check"]["metric"], "error_rate");
    let rate = done["last"]["check"]["value"].as_f64().unwrap();
    assert!((0.02..0.1).contains(&rate), "measured {rate}");
    assert!(done["last"]["canary_requests"].as_u64().unwrap() >= 40);
    assert_eq!(split(&proxy), weights(100, 0));
    let events = history(&proxy).await;
    let last = events.last().unwrap();
    assert_eq!(last.0, "rollout_rollback");
    assert!(last.2.starts_with("step 1: error_rate 0.0"), "{}", last.2);
    assert!(last.2.contains("exceeds the limit 0.0100"), "{}", last.2);
    assert!(split_events_canary(&events).iter().all(|w| *w <= 10));
    let metrics = get(&client(), &proxy.admin_url("/metrics"), &[])
        .await
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_rollouts_total")
                && l.contains("result=\"rolled_back\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    proxy.stop().await;
}

fn split_events_canary(events: &[(String, String, String, Value)]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.0 == "split")
        .filter_map(|e| e.3["canary"].as_u64())
        .collect()
}

/// A step cannot pass before its interval, but a canary that fails on
/// `min_requests` requests is rolled back at once, not an hour later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_does_not_wait_for_the_step_to_end() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    canary.set_fail_percent(50);
    let proxy = TestProxy::start(&config(
        &blue,
        &canary,
        "steps = [10, 100]\nstep_interval = \"1h\"\nmin_requests = 20\nmax_error_rate = 0.01",
    ))
    .await;
    let _traffic = Load::start(proxy.url("/"), 4, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert_eq!(done["step"], 0, "{done}");
    assert_eq!(done["last"]["check"]["metric"], "error_rate");
    assert!(done["last"]["canary_requests"].as_u64().unwrap() >= 20);
    assert_eq!(split(&proxy), weights(100, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_canary_is_rolled_back_on_p99() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let proxy = TestProxy::start(&config(
        &blue,
        &canary,
        "steps = [50, 100]\nstep_interval = \"300ms\"\nmin_requests = 5\nmax_error_rate = 0.5\nmax_p99_latency = \"100ms\"",
    ))
    .await;
    let _traffic = Load::start(proxy.url("/slow?ms=150"), 8, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert_eq!(done["last"]["check"]["metric"], "p99_latency_seconds");
    assert!(
        done["last"]["check"]["value"].as_f64().unwrap() >= 0.15,
        "{done}"
    );
    assert!(done["reason"]
        .as_str()
        .unwrap()
        .contains("p99_latency_seconds"));
    assert_eq!(split(&proxy), weights(100, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_traffic_waits_then_rolls_back() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let proxy = TestProxy::start(&config(
        &blue,
        &canary,
        "steps = [10, 100]\nstep_interval = \"200ms\"\nmin_requests = 1000\nmax_wait = \"600ms\"\non_insufficient_traffic = \"rollback\"",
    ))
    .await;
    let _traffic = Load::start(proxy.url("/"), 1, Duration::from_millis(20));
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    // Past the interval but within max_wait, the step waits.
    eventually(WAIT, "a first judgement", || async {
        rollout(&proxy).await["last"]["check"]["result"] == "insufficient"
    })
    .await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("insufficient traffic"),
        "{done}"
    );
    assert_eq!(split(&proxy), weights(100, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_traffic_can_hold_for_the_operator() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let proxy = TestProxy::start(&config(
        &blue,
        &canary,
        "steps = [10, 100]\nstep_interval = \"200ms\"\nmin_requests = 1000\nmax_wait = \"200ms\"\non_insufficient_traffic = \"hold\"",
    ))
    .await;
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    let held = wait_phase(&proxy, "paused").await;
    assert!(held["reason"]
        .as_str()
        .unwrap()
        .contains("insufficient traffic"));
    assert_eq!(split(&proxy), weights(90, 10));
    let abort = post(&proxy, "/api/v1/routes/r/rollout/abort").await;
    assert_eq!(abort.status, 202);
    wait_phase(&proxy, "rolled_back").await;
    assert_eq!(split(&proxy), weights(100, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_pause_resume_promote_and_abort() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let proxy = TestProxy::start(&config(
        &blue,
        &canary,
        "steps = [10, 50, 100]\nstep_interval = \"1h\"\nmin_requests = 1",
    ))
    .await;
    // Nothing runs yet.
    assert_eq!(
        post(&proxy, "/api/v1/routes/r/rollout/pause").await.status,
        409
    );
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    eventually(WAIT, "first step", || async {
        split(&proxy) == weights(90, 10)
    })
    .await;
    post(&proxy, "/api/v1/routes/r/rollout/pause").await;
    wait_phase(&proxy, "paused").await;
    post(&proxy, "/api/v1/routes/r/rollout/resume").await;
    wait_phase(&proxy, "progressing").await;
    post(&proxy, "/api/v1/routes/r/rollout/promote").await;
    wait_phase(&proxy, "promoted").await;
    assert_eq!(split(&proxy), weights(0, 100));
    let actions: Vec<String> = history(&proxy)
        .await
        .into_iter()
        .filter(|e| e.0.starts_with("rollout"))
        .map(|e| e.0)
        .collect();
    assert_eq!(
        actions,
        [
            "rollout_start",
            "rollout_pause",
            "rollout_resume",
            "rollout_promote"
        ]
    );

    // Back to stable for the next round, then start again and abort.
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    wait_phase(&proxy, "progressing").await;
    eventually(WAIT, "first step again", || async {
        split(&proxy) == weights(90, 10)
    })
    .await;
    post(&proxy, "/api/v1/routes/r/rollout/abort").await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert!(done["reason"]
        .as_str()
        .unwrap()
        .contains("aborted by the operator"));
    assert_eq!(split(&proxy), weights(100, 0));

    // The CLI drives the same endpoints.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "ctl",
            "--admin",
            &proxy.admin_url(""),
            "rollout",
            "status",
            "r",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("rolled_back: step 1 of 3 [10% 50% 100%]"),
        "{stdout}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_at_the_same_step() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let proxy = TestProxy::start(&config(
        &blue,
        &canary,
        "steps = [10, 50, 100]\nstep_interval = \"300ms\"\nmin_requests = 5",
    ))
    .await;
    let traffic = Load::start(proxy.url("/"), 2, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    eventually(WAIT, "the second step", || async {
        rollout(&proxy).await["step"] == 1
    })
    .await;
    post(&proxy, "/api/v1/routes/r/rollout/pause").await;
    wait_phase(&proxy, "paused").await;
    drop(traffic);
    assert_eq!(split(&proxy), weights(50, 50));

    // Stop, then start a new process from the same files.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    let state = switchyard::rollout::state_path(&proxy.path);
    let (text, saved) = (
        std::fs::read_to_string(&proxy.path).unwrap(),
        std::fs::read_to_string(&state).unwrap(),
    );
    proxy.stop().await;
    std::fs::write(&path, text).unwrap();
    std::fs::write(switchyard::rollout::state_path(&path), saved).unwrap();
    let proxy = TestProxy::start_at(dir, path).await;
    let resumed = rollout(&proxy).await;
    assert_eq!(resumed["step"], 1, "{resumed}");
    assert_eq!(resumed["phase"], "paused");
    assert_eq!(split(&proxy), weights(50, 50));

    let _traffic = Load::start(proxy.url("/"), 2, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/resume").await;
    wait_phase(&proxy, "promoted").await;
    assert_eq!(split(&proxy), weights(0, 100));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_without_an_available_backend_is_rolled_back() {
    let (blue, mut canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let text = config(
        &blue,
        &canary,
        "steps = [10, 100]\nstep_interval = \"1h\"\nmin_requests = 1",
    )
    .replace(
        "[pools.blue]",
        "[health]\ninterval = \"100ms\"\ntimeout = \"80ms\"\nunhealthy_threshold = 1\n\n[pools.blue]",
    );
    let proxy = TestProxy::start(&text).await;
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    eventually(WAIT, "first step", || async {
        split(&proxy) == weights(90, 10)
    })
    .await;
    canary.kill().await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("no available backend"),
        "{done}"
    );
    assert_eq!(split(&proxy), weights(100, 0));
    proxy.stop().await;
}
