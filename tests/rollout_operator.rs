//! The operator and the canary engine: pause, resume, promote and abort
//! (over the API, and `ctl rollout status`), too little traffic held for
//! the operator, and a restart that resumes a paused rollout at the same
//! step from the files it left.

mod support;

use std::time::Duration;

use support::cli::ctl;
use support::release::{
    canary_rollout, canary_weights, events, post, rollout_status, wait_rollout_phase as wait_phase,
    Load, WAIT,
};
use support::route::split;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_traffic_can_hold_for_the_operator() {
    let (_blue, _canary, proxy) = canary_rollout(
        "steps = [10, 100]\nstep_interval = \"200ms\"\nmin_requests = 1000\nmax_wait = \"200ms\"\non_insufficient_traffic = \"hold\"",
    )
    .await;
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    let held = wait_phase(&proxy, "paused").await;
    assert!(held["reason"]
        .as_str()
        .unwrap()
        .contains("insufficient traffic"));
    assert_eq!(split(&proxy), canary_weights(90, 10));
    let abort = post(&proxy, "/api/v1/routes/r/rollout/abort").await;
    assert_eq!(abort.status, 202);
    wait_phase(&proxy, "rolled_back").await;
    assert_eq!(split(&proxy), canary_weights(100, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_pause_resume_promote_and_abort() {
    let (_blue, _canary, proxy) =
        canary_rollout("steps = [10, 50, 100]\nstep_interval = \"1h\"\nmin_requests = 1").await;
    // Nothing runs yet.
    assert_eq!(
        post(&proxy, "/api/v1/routes/r/rollout/pause").await.status,
        409
    );
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    eventually(WAIT, "first step", || async {
        split(&proxy) == canary_weights(90, 10)
    })
    .await;
    post(&proxy, "/api/v1/routes/r/rollout/pause").await;
    wait_phase(&proxy, "paused").await;
    post(&proxy, "/api/v1/routes/r/rollout/resume").await;
    wait_phase(&proxy, "progressing").await;
    post(&proxy, "/api/v1/routes/r/rollout/promote").await;
    wait_phase(&proxy, "promoted").await;
    assert_eq!(split(&proxy), canary_weights(0, 100));
    let actions: Vec<String> = events(&proxy, "r")
        .await
        .into_iter()
        .filter(|e| e.action.starts_with("rollout"))
        .map(|e| e.action)
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
        split(&proxy) == canary_weights(90, 10)
    })
    .await;
    post(&proxy, "/api/v1/routes/r/rollout/abort").await;
    let done = wait_phase(&proxy, "rolled_back").await;
    assert!(done["reason"]
        .as_str()
        .unwrap()
        .contains("aborted by the operator"));
    assert_eq!(split(&proxy), canary_weights(100, 0));

    // The CLI drives the same endpoints.
    let (code, stdout, stderr) = ctl(&proxy, &["rollout", "status", "r"]).await;
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(
        stdout.starts_with("rolled_back: step 1 of 3 [10% 50% 100%]"),
        "{stdout}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_at_the_same_step() {
    let (_blue, _canary, proxy) =
        canary_rollout("steps = [10, 50, 100]\nstep_interval = \"300ms\"\nmin_requests = 5").await;
    let traffic = Load::start(proxy.url("/"), 2, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/start").await;
    eventually(WAIT, "the second step", || async {
        rollout_status(&proxy, "r").await["step"] == 1
    })
    .await;
    post(&proxy, "/api/v1/routes/r/rollout/pause").await;
    wait_phase(&proxy, "paused").await;
    drop(traffic);
    assert_eq!(split(&proxy), canary_weights(50, 50));

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
    let resumed = rollout_status(&proxy, "r").await;
    assert_eq!(resumed["step"], 1, "{resumed}");
    assert_eq!(resumed["phase"], "paused");
    assert_eq!(split(&proxy), canary_weights(50, 50));

    let _traffic = Load::start(proxy.url("/"), 2, Duration::ZERO);
    post(&proxy, "/api/v1/routes/r/rollout/resume").await;
    wait_phase(&proxy, "promoted").await;
    assert_eq!(split(&proxy), canary_weights(0, 100));
    proxy.stop().await;
}
