//! A rollout seen from the users and from a CI pipeline: sticky users who
//! landed on the canary stay there while the engine raises its weight and
//! all go back to stable on a rollback; `switchyard ctl rollout watch`
//! follows a rollout to its end and exits 0 on promotion, 1 on rollback.

mod support;

use std::time::Duration;

use support::backend::Traffic;
use support::release::{ctl, post, rollout_status, Load, WAIT};
use support::route::{canary_config, weight};
use support::*;

/// Which of `users` the proxy sends to the canary now.
async fn on_canary(proxy: &TestProxy, users: &[String]) -> Vec<bool> {
    let c = client();
    let mut v = Vec::with_capacity(users.len());
    for u in users {
        let a = get(&c, &proxy.url("/"), &[("X-User-ID", u)]).await;
        assert_eq!(a.status, 200, "{u}: {}", a.text());
        v.push(a.header("x-backend") == Some("canary"));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_users_stay_on_the_canary_as_it_ramps_and_all_return_on_rollback() {
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let proxy = TestProxy::start(&canary_config(
        &blue,
        &canary,
        "sticky = { header = \"X-User-ID\" }",
        "steps = [10, 30, 60, 90, 100]\nstep_interval = \"300ms\"\nmin_requests = 1\nmax_error_rate = 0.5",
    ))
    .await;
    // Anonymous traffic (no key: weighted random) feeds the judgement.
    let _load = Load::start(proxy.url("/"), 2, Duration::from_millis(5));
    let users: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
    assert_eq!(
        post(&proxy, "/api/v1/routes/r/rollout/start").await.status,
        202
    );
    let mut before = vec![false; users.len()];
    let mut weights = Vec::new();
    loop {
        // Hold the step still while the users are asked.
        assert_eq!(
            post(&proxy, "/api/v1/routes/r/rollout/pause").await.status,
            202
        );
        eventually(WAIT, "paused", || async {
            rollout_status(&proxy, "r").await["phase"] == "paused"
        })
        .await;
        let step = rollout_status(&proxy, "r").await["step"].as_u64().unwrap();
        let weight = weight(&proxy, "canary");
        let now = on_canary(&proxy, &users).await;
        for (i, u) in users.iter().enumerate() {
            assert!(
                !before[i] || now[i],
                "{u} moved from the canary back to blue at {weight}%"
            );
        }
        let share = now.iter().filter(|&&c| c).count() as f64 / users.len() as f64;
        assert!(
            (share - f64::from(weight) / 100.0).abs() < 0.08,
            "canary at {weight}%: share of users {share}"
        );
        weights.push(weight);
        before = now;
        if weight >= 60 {
            break;
        }
        assert_eq!(
            post(&proxy, "/api/v1/routes/r/rollout/resume").await.status,
            202
        );
        eventually(WAIT, "the next step", || async {
            rollout_status(&proxy, "r").await["step"].as_u64().unwrap() > step
        })
        .await;
    }
    assert!(weights.len() >= 2, "saw only {weights:?}");
    assert!(weights.windows(2).all(|w| w[0] < w[1]), "{weights:?}");
    // A rollback sends every user to stable.
    assert_eq!(
        post(&proxy, "/api/v1/routes/r/rollout/abort").await.status,
        202
    );
    eventually(WAIT, "rolled back", || async {
        rollout_status(&proxy, "r").await["phase"] == "rolled_back"
    })
    .await;
    let after = on_canary(&proxy, &users).await;
    assert!(after.iter().all(|c| !c), "users left on the canary");
    proxy.stop().await;
}

const FAST: &str =
    "steps = [20, 100]\nstep_interval = \"300ms\"\nmin_requests = 5\nmax_error_rate = 0.01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_exits_0_on_promotion() {
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let proxy = TestProxy::start(&canary_config(&blue, &canary, "", FAST)).await;
    let _load = Load::start(proxy.url("/"), 2, Duration::ZERO);
    assert_eq!(
        post(&proxy, "/api/v1/routes/r/rollout/start").await.status,
        202
    );
    let (code, stdout, stderr) = ctl(&proxy, &["rollout", "watch", "r"]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Not a terminal: one line per change, the last one the outcome.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("r ["), "{stdout}");
    assert!(lines[0].contains("step 1/2 20% on canary"), "{stdout}");
    assert!(lines[0].contains("(min 5)"), "{stdout}");
    assert!(lines[0].contains("(max 1.00%)"), "{stdout}");
    assert!(
        lines.iter().any(|l| l.contains("promoted")),
        "no outcome in {stdout}"
    );
    assert!(
        stdout.contains("promoted: every step passed"),
        "no reason in {stdout}"
    );
    let (_, status, _) = ctl(&proxy, &["status"]).await;
    assert!(
        status.contains("rollout of route r: promoted: step 2 of 2 [20% 100%]"),
        "{status}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_exits_1_on_rollback_and_on_a_route_without_a_rollout() {
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    canary.set_traffic(Traffic::Status(503));
    let proxy = TestProxy::start(&canary_config(&blue, &canary, "", FAST)).await;
    // Nothing has run yet.
    let (code, _, stderr) = ctl(&proxy, &["rollout", "watch", "r"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no rollout of route"), "{stderr}");

    let _load = Load::start(proxy.url("/"), 2, Duration::ZERO);
    assert_eq!(
        post(&proxy, "/api/v1/routes/r/rollout/start").await.status,
        202
    );
    let (code, stdout, stderr) = ctl(&proxy, &["rollout", "watch", "r"]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("rolled_back: step 1: error_rate"),
        "{stdout}"
    );
    proxy.stop().await;
}
