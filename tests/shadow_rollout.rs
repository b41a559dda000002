//! The rollout's shadow step over real sockets (issue 15, item 3): before
//! the canary's first percent, copies of real requests go to it and are
//! compared; a step that passes moves on to step 1, one that fails ends
//! the rollout with the measured reason and diff samples in the history,
//! and no client is ever answered by the canary.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::backend::Traffic;
use support::release::{canary_rollout, events, post, wait_rollout_phase, Load};
use support::route::split;
use support::*;

const SHADOW: &str = "steps = [50, 100]\nstep_interval = \"300ms\"\nmin_requests = 5\n\
    max_error_rate = 0.5\nmax_p99_latency = \"5s\"\n\
    shadow = { duration = \"500ms\", percent = 100, min_requests = 20, max_latency_ratio = 1000.0 }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_step_that_passes_moves_to_the_first_canary_step() {
    let (_blue, canary, proxy) = canary_rollout(SHADOW).await;
    let _traffic = Load::start(proxy.url("/"), 2, Duration::ZERO);
    let started = post(&proxy, "/api/v1/routes/r/rollout/start").await;
    assert_eq!(started.status, 202, "{}", started.text());
    let shadow = wait_rollout_phase(&proxy, "shadow").await;
    assert_eq!(shadow["canary_weight"], 0);
    // Copies reach the canary while its weight is 0, marked as copies.
    eventually(WAIT_LONG, "copies at the canary", || async {
        canary.requests() > 0
    })
    .await;
    assert_eq!(canary.last_headers()["x-switchyard-shadow"], "1");

    wait_rollout_phase(&proxy, "promoted").await;
    let events = events(&proxy, "r").await;
    let rollout: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.action.starts_with("rollout"))
        .map(|e| (e.action.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(rollout.len(), 5, "{rollout:?}");
    assert!(rollout[0] == ("rollout_start", rollout[0].1) && rollout[0].1.contains("shadow step"));
    assert!(rollout[1].0 == "rollout_step" && rollout[1].1.starts_with("shadow step passed ("));
    assert!(rollout[2].0 == "rollout_step" && rollout[2].1.contains("step 1 (50% on canary)"));
    assert_eq!(rollout[3].0, "rollout_step");
    assert_eq!(rollout[4].0, "rollout_promote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shadow_step_aborts_before_any_user_sees_the_canary() {
    let (blue, canary, proxy) = canary_rollout(SHADOW).await;
    canary.set_traffic(Traffic::Status(500));
    let traffic = Load::start(proxy.url("/"), 2, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    let done = wait_rollout_phase(&proxy, "rolled_back").await;
    let reason = done["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("shadow step: shadow_error_rate "),
        "{reason}"
    );
    assert!(
        reason.contains("; samples: GET /: 200 vs 500 (status_class)"),
        "{reason}"
    );
    // Every client got blue's 200: the canary's 500s stayed with the copies.
    let (sent, failed) = (
        traffic.sent.load(Ordering::Relaxed),
        traffic.failed.load(Ordering::Relaxed),
    );
    drop(traffic);
    assert!(sent >= 20, "{sent}");
    assert_eq!(failed, 0, "of {sent}");
    assert!(blue.requests() as u64 >= sent);
    assert_eq!(split(&proxy), support::release::canary_weights(100, 0));
    let events = events(&proxy, "r").await;
    let rollback = events
        .iter()
        .find(|e| e.action == "rollout_rollback")
        .expect("a rollback event");
    assert_eq!(
        rollback.detail, reason,
        "the history has the reason and samples"
    );
    assert!(
        events
            .iter()
            .all(|e| e.new_split["canary"].as_u64().unwrap_or(0) == 0),
        "the canary never had weight: {events:?}"
    );
}

const WAIT_LONG: Duration = Duration::from_secs(20);

/// The rollout's actions, oldest first, with their details.
async fn rollout_events(proxy: &TestProxy) -> Vec<(String, String)> {
    events(proxy, "r")
        .await
        .into_iter()
        .filter(|e| e.action.starts_with("rollout"))
        .map(|e| (e.action, e.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_in_the_shadow_step_stops_judging_and_resume_starts_it_over() {
    let (blue, canary, proxy) = canary_rollout(SHADOW).await;
    // Every pair would fail the step at once, on its first 20.
    canary.set_traffic(Traffic::Status(500));
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    wait_rollout_phase(&proxy, "shadow").await;
    let paused = post(&proxy, "/api/v1/routes/r/rollout/pause").await;
    assert_eq!(paused.status, 202, "{}", paused.text());
    assert_eq!(paused.json()["rollout"]["phase"], "paused");
    let traffic = Load::start(proxy.url("/"), 2, Duration::ZERO);
    // Copies go on while paused (as a paused canary keeps its weight); ten
    // times the pairs that fail the step, and it is still paused.
    eventually(WAIT_LONG, "200 copies at the canary", || async {
        canary.requests() >= 200
    })
    .await;
    let status = support::release::rollout_status(&proxy, "r").await;
    assert_eq!(status["phase"], "paused", "{status}");
    assert_eq!(status["canary_weight"], 0);
    assert!(status["shadow"]["pool"] == "canary", "{status}");

    let resumed = post(&proxy, "/api/v1/routes/r/rollout/resume").await;
    assert_eq!(resumed.status, 202, "{}", resumed.text());
    let done = wait_rollout_phase(&proxy, "rolled_back").await;
    let reason = done["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("shadow step: shadow_error_rate "),
        "{reason}"
    );
    drop(traffic);
    let actions: Vec<_> = rollout_events(&proxy).await;
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "rollout_start",
            "rollout_pause",
            "rollout_resume",
            "rollout_rollback"
        ],
        "{actions:?}"
    );
    assert_eq!(actions[1].1, "paused in the shadow step by the operator");
    assert_eq!(
        actions[2].1,
        "resumed in the shadow step; the step starts over"
    );
    assert!(blue.requests() > 0);
    assert_eq!(split(&proxy), support::release::canary_weights(100, 0));

    // `ctl rollout watch` shows the shadow step first on its line, at 80
    // columns too, and exits 1 for the rollback.
    let (code, out, _) = support::cli::ctl(&proxy, &["rollout", "watch", "r"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("r [shadow] 100% copied to canary │ "),
        "{out}"
    );
    let cols = [("COLUMNS", "80")];
    let (code, out, _) = support::cli::ctl_env(&proxy, &["rollout", "watch", "r"], &cols).await;
    assert_eq!(code, 1, "{out}");
    let line = out.lines().next().unwrap_or("");
    assert!(line.chars().count() < 80, "{line}");
    assert!(
        line.starts_with("r shadow ") || line.starts_with("shadow │ "),
        "{line}"
    );
    assert!(
        line.contains("│ mis 100.00%/1.00% │ err 100.00%/50.00% │"),
        "{line}"
    );
    assert!(line.ends_with("│ rolled back"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_pairs_with_hold_pause_the_shadow_step_until_resumed() {
    let rollout = format!("{SHADOW}\nmax_wait = \"300ms\"\non_insufficient_traffic = \"hold\"");
    let (_blue, canary, proxy) = canary_rollout(&rollout).await;
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    // No traffic at all: after duration + max_wait the step holds.
    let held = wait_rollout_phase(&proxy, "paused").await;
    let reason = held["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("shadow step: insufficient traffic: "),
        "{held}"
    );
    assert_eq!(held["canary_weight"], 0);
    assert_eq!(split(&proxy), support::release::canary_weights(100, 0));
    assert_eq!(canary.requests(), 0);

    let _traffic = Load::start(proxy.url("/"), 2, Duration::ZERO);
    let resumed = post(&proxy, "/api/v1/routes/r/rollout/resume").await;
    assert_eq!(resumed.status, 202, "{}", resumed.text());
    wait_rollout_phase(&proxy, "promoted").await;
    let actions = rollout_events(&proxy).await;
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "rollout_start",
            "rollout_pause",
            "rollout_resume",
            "rollout_step"
        ],
        "{actions:?}"
    );
    assert!(
        actions[1].1.ends_with("; waiting for the operator"),
        "{actions:?}"
    );
    assert!(
        actions[3].1.starts_with("shadow step passed ("),
        "{actions:?}"
    );
}
