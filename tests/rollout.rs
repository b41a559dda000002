//! The canary engine over real sockets: a healthy canary is promoted step
//! by step, a failing or slow one is rolled back with the reason and the
//! measured value, too little traffic waits then rolls back, and a canary
//! without an available backend is rolled back. (The operator's pause,
//! resume, promote and abort, a hold for the operator, and a restart that
//! resumes at the same step are in `rollout_operator.rs`.)

mod support;

use std::time::Duration;

use serde_json::Value;
use support::release::{
    canary_rollout, canary_weights, events, post, rollout_config, rollout_status,
    wait_rollout_phase as wait_phase, Event, Load, WAIT,
};
use support::route::split;
use support::*;

/// Asserts `/metrics` counts one rollout that ended `result`.
async fn assert_one_rollout(proxy: &TestProxy, result: &str) {
    let metrics = support::admin::metrics(proxy).await;
    let result = format!("result=\"{result}\"");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_rollouts_total")
                && l.contains(&result)
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_canary_walks_every_step_and_is_promoted() {
    // max_wait well past the 100 requests the 10 % step needs: a loaded
    // machine may take seconds to send them, and this test is about the
    // steps, not about insufficient traffic.
    let (_blue, _canary, proxy) = canary_rollout(
        "steps = [10, 50, 100]\nstep_interval = \"300ms\"\nmin_requests = 10\nmax_wait = \"60s\"\nmax_error_rate = 0.01\nmax_p99_latency = \"2s\"",
    )
    .await;
    let _traffic = Load::start(proxy.url("/"), 4, Duration::ZERO);
    let started = post(&proxy, "/api/v1/routes/r/rollout/start").await;
    assert_eq!(started.status, 202, "{}", started.text());
    // A second start while it runs is refused.
    let again = post(&proxy, "/api/v1/routes/r/rollout/start").await;
    assert_eq!(again.status, 409);

    let done = wait_phase(&proxy, "promoted").await;
    assert_eq!(done["canary_weight"], 100);
    assert_eq!(split(&proxy), canary_weights(0, 100));
    // Written back to the file like any other change.
    let text = std::fs::read_to_string(&proxy.path).unwrap();
    assert!(
        text.contains("split = { blue = 0, canary = 100 }"),
        "{text}"
    );
    // The stable pool stays the way back (issue 14).
    assert!(text.contains("standby = \"blue\""), "{text}");

    let events = events(&proxy, "r").await;
    let splits: Vec<Value> = events
        .iter()
        .filter(|e| e.action == "split" && e.source == "rollout")
        .map(|e| e.new_split["canary"].clone())
        .collect();
    assert_eq!(
        splits,
        vec![Value::from(10), Value::from(50), Value::from(100)]
    );
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e.action.starts_with("rollout"))
        .map(|e| e.action.as_str())
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
    assert!(events[events.len() - 1]
        .detail
        .contains("every step passed"));
    // Finished rollouts leave nothing to resume.
    let state = std::fs::read_to_string(switchyard::rollout::state_path(&proxy.path)).unwrap();
    assert_eq!(state.trim(), "{}");
    assert_one_rollout(&proxy, "promoted").await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_failing_five_percent_is_rolled_back_with_the_measured_rate() {
    // max_wait well past the 40 canary requests a loaded machine may take
    // seconds to send: this test is about the error rate, not the traffic.
    let (_blue, canary, proxy) = canary_rollout(
        "steps = [10, 50, 100]\nstep_interval = \"300ms\"\nmin_requests = 40\nmax_error_rate = 0.01\nmax_p99_latency = \"2s\"\nmax_wait = \"60s\"",
    )
    .await;
    canary.set_fail_percent(5);
    let _traffic = Load::start(proxy.url("/"), 4, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert_eq!(done["step"], 0, "rolled back at the first step: {done}");
    assert_eq!(done["last"]["check"]["metric"], "error_rate", "{done}");
    let rate = done["last"]["check"]["value"].as_f64().unwrap();
    assert!((0.02..0.1).contains(&rate), "measured {rate}");
    assert!(done["last"]["canary_requests"].as_u64().unwrap() >= 40);
    assert_eq!(split(&proxy), canary_weights(100, 0));
    let events = events(&proxy, "r").await;
    let last = events.last().unwrap();
    assert_eq!(last.action, "rollout_rollback");
    assert!(
        last.detail.starts_with("step 1: error_rate 0.0"),
        "{}",
        last.detail
    );
    assert!(
        last.detail.contains("exceeds the limit 0.0100"),
        "{}",
        last.detail
    );
    assert!(split_events_canary(&events).iter().all(|w| *w <= 10));
    assert_one_rollout(&proxy, "rolled_back").await;
    proxy.stop().await;
}

fn split_events_canary(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.action == "split")
        .filter_map(|e| e.new_split["canary"].as_u64())
        .collect()
}

/// A step cannot pass before its interval, but a canary that fails on
/// `min_requests` requests is rolled back at once, not an hour later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_does_not_wait_for_the_step_to_end() {
    let (_blue, canary, proxy) = canary_rollout(
        "steps = [10, 100]\nstep_interval = \"1h\"\nmin_requests = 20\nmax_error_rate = 0.01",
    )
    .await;
    canary.set_fail_percent(50);
    let _traffic = Load::start(proxy.url("/"), 4, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert_eq!(done["step"], 0, "{done}");
    assert_eq!(done["last"]["check"]["metric"], "error_rate");
    assert!(done["last"]["canary_requests"].as_u64().unwrap() >= 20);
    assert_eq!(split(&proxy), canary_weights(100, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_canary_is_rolled_back_on_p99() {
    let (_blue, _canary, proxy) = canary_rollout(
        "steps = [50, 100]\nstep_interval = \"300ms\"\nmin_requests = 5\nmax_error_rate = 0.5\nmax_p99_latency = \"100ms\"",
    )
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
    assert_eq!(split(&proxy), canary_weights(100, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_traffic_waits_then_rolls_back() {
    let (_blue, _canary, proxy) = canary_rollout(
        "steps = [10, 100]\nstep_interval = \"200ms\"\nmin_requests = 1000\nmax_wait = \"600ms\"\non_insufficient_traffic = \"rollback\"",
    )
    .await;
    let _traffic = Load::start(proxy.url("/"), 1, Duration::from_millis(20));
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    // Past the interval but within max_wait, the step waits.
    eventually(WAIT, "a first judgement", || async {
        rollout_status(&proxy, "r").await["last"]["check"]["result"] == "insufficient"
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
    assert_eq!(split(&proxy), canary_weights(100, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_without_an_available_backend_is_rolled_back() {
    let (blue, mut canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let text = rollout_config(
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
        split(&proxy) == canary_weights(90, 10)
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
    assert_eq!(split(&proxy), canary_weights(100, 0));
    proxy.stop().await;
}
