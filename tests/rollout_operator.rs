//! What an operator sees when driving a rollout: starting one whose canary
//! already has more traffic than the first step is refused instead of
//! silently moving traffic back, and the answer to abort (and ctl's
//! output) shows the rollback rather than the phase before it.

mod support;

use std::time::Duration;

use support::cli::ctl;
use support::release::{canary_rollout, canary_weights};
use support::route::split;
use support::*;

const ROLLOUT: &str = "steps = [10, 50, 100]\nstep_interval = \"1h\"\nmin_requests = 10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_with_the_canary_ahead_of_the_first_step_is_refused() {
    let (_blue, _canary, proxy) = canary_rollout(ROLLOUT).await;
    let c = client();
    let set = send(
        &c,
        "PUT",
        &proxy.admin_url("/api/v1/routes/r/split"),
        &[],
        r#"{"blue": 0, "canary": 100}"#,
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.text());
    let generation = proxy.table().generation;

    let (code, out, err) = ctl(&proxy, &["rollout", "start", "r"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("canary_ahead"), "{err}");
    assert!(err.contains("already has 100 %"), "{err}");
    // Nothing moved.
    assert_eq!(split(&proxy), canary_weights(0, 100));
    assert_eq!(proxy.table().generation, generation);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_answers_with_the_rollback_it_caused() {
    let (_blue, _canary, proxy) = canary_rollout(ROLLOUT).await;
    let (code, out, err) = ctl(&proxy, &["rollout", "start", "r"]).await;
    assert_eq!(code, 0, "{out}{err}");
    eventually(Duration::from_secs(10), "the first step's split", || {
        let s = split(&proxy);
        async move { s == canary_weights(90, 10) }
    })
    .await;

    let (code, out, err) = ctl(&proxy, &["rollout", "abort", "r"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("abort accepted"), "{out}");
    assert!(out.contains("rolled_back"), "{out}");
    assert!(!out.contains("progressing"), "{out}");
    assert_eq!(split(&proxy), canary_weights(100, 0));

    // The same through the API: pause answers paused.
    ctl(&proxy, &["rollout", "start", "r"]).await;
    let c = client();
    let paused = send(
        &c,
        "POST",
        &proxy.admin_url("/api/v1/routes/r/rollout/pause"),
        &[],
        "",
    )
    .await;
    assert_eq!(paused.status, 202, "{}", paused.text());
    assert_eq!(
        paused.json()["rollout"]["phase"],
        "paused",
        "{}",
        paused.text()
    );
    proxy.stop().await;
}
