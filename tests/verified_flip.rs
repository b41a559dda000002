//! Verified blue-green flips over real sockets: a flip to a failing pool
//! comes back by itself with the reason recorded, a flip to a good pool
//! stays, too little traffic keeps or reverts as asked, a later change of
//! the split ends the verification, and `ctl flip --verify --wait` exits
//! with the outcome.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use support::backend::Traffic;
use support::release::{ctl, events, post_json, Event, Load, WAIT};
use support::route::{blue_green, split};
use support::*;

fn only(pool: &str) -> Vec<(String, u32)> {
    vec![(pool.to_owned(), 100)]
}

async fn flip_status(proxy: &TestProxy) -> Value {
    get(&client(), &proxy.admin_url("/api/v1/routes/r/flip"), &[])
        .await
        .json()
}

async fn wait_flip(proxy: &TestProxy, phase: &str) -> Value {
    eventually(WAIT, &format!("flip phase {phase}"), || async {
        flip_status(proxy).await["phase"] == phase
    })
    .await;
    flip_status(proxy).await
}

/// Each event as `source action`.
fn actions(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {}", e.source, e.action))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flip_to_a_failing_pool_comes_back_by_itself() {
    let (_blue, green, proxy) = blue_green().await;
    green.set_traffic(Traffic::Status(500));
    let load = Load::start(proxy.url("/"), 4, Duration::ZERO);
    // The command-line client waits for the outcome and exits 1.
    let (code, stdout, stderr) = ctl(
        &proxy,
        &[
            "flip",
            "r",
            "green",
            "--verify",
            "30s",
            "--min-requests",
            "10",
            "--max-error-rate",
            "0.01",
            "--wait",
        ],
    )
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("reverted"), "{stdout}");
    // Long before the 30 s window ended: a failed check reverts at once.
    let status = flip_status(&proxy).await;
    assert_eq!(status["phase"], "reverted");
    assert_eq!(status["previous_split"], json!({"blue": 100, "green": 0}));
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("error_rate 1.0000 exceeds the limit 0.0100"),
        "{reason}"
    );
    assert_eq!(split(&proxy), only("blue"));
    // The switch-back is written back to the file like any change.
    let text = std::fs::read_to_string(&proxy.path).unwrap();
    assert!(text.contains("blue = 100, green = 0"), "{text}");
    let ev = events(&proxy, "r").await;
    assert_eq!(
        actions(&ev),
        [
            "api flip",
            "rollout flip_verify",
            "rollout split",
            "rollout flip_reverted"
        ],
        "{ev:?}"
    );
    assert!(ev[3].detail.contains("error_rate"), "{ev:?}");
    // Traffic goes to blue again.
    let before = load.sent.load(Ordering::Relaxed);
    let failed = load.failed.load(Ordering::Relaxed);
    eventually(WAIT, "50 more requests", || async {
        load.sent.load(Ordering::Relaxed) >= before + 50
    })
    .await;
    // At most the requests in flight at the switch-back failed since.
    assert!(load.failed.load(Ordering::Relaxed) <= failed + 4);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flip_to_a_good_pool_stays_after_the_window() {
    let (_blue, green, proxy) = blue_green().await;
    let _load = Load::start(proxy.url("/"), 2, Duration::ZERO);
    let body = json!({"to": "green", "verify": {"window": "600ms", "min_requests": 5,
        "max_error_rate": 0.01, "max_p99_latency": "2s"}});
    let a = post_json(&proxy, "/api/v1/routes/r/flip", &body).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["split"], json!({"blue": 0, "green": 100}));
    assert_eq!(v["previous_split"], json!({"blue": 100, "green": 0}));
    assert_eq!(v["verification"]["phase"], "verifying");
    assert_eq!(v["verification"]["window_ms"], 600);
    let done = wait_flip(&proxy, "verified").await;
    assert!(done["requests"].as_u64().unwrap() >= 5, "{done}");
    assert_eq!(done["error_rate"], 0.0);
    assert_eq!(split(&proxy), only("green"));
    assert!(green.requests() >= 5);
    let ev = events(&proxy, "r").await;
    assert_eq!(
        actions(&ev),
        ["api flip", "rollout flip_verify", "rollout flip_verified"],
        "{ev:?}"
    );
    // The status lists it too.
    let status = get(&client(), &proxy.admin_url("/api/v1/status"), &[])
        .await
        .json();
    assert_eq!(status["flips"][0]["phase"], "verified");
    let (code, stdout, _) = ctl(&proxy, &["status"]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("verified flip of route r to green: verified ("),
        "{stdout}"
    );

    // And the command line waits for a good outcome with exit 0.
    let (code, stdout, stderr) = ctl(
        &proxy,
        &[
            "flip",
            "r",
            "blue",
            "--verify",
            "500ms",
            "--min-requests",
            "5",
            "--wait",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("verified"), "{stdout}");
    assert_eq!(split(&proxy), only("blue"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_traffic_keeps_or_reverts_as_asked() {
    let (_blue, _green, proxy) = blue_green().await;
    // No traffic at all. The default keeps the flip, saying so.
    let body = json!({"to": "green", "verify": {"window": "300ms", "min_requests": 5}});
    assert_eq!(
        post_json(&proxy, "/api/v1/routes/r/flip", &body)
            .await
            .status,
        200
    );
    let done = wait_flip(&proxy, "unverified").await;
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("insufficient traffic: 0 canary requests, 5 needed"),
        "{done}"
    );
    assert_eq!(split(&proxy), only("green"));
    // Asked to, it goes back.
    let body = json!({"to": "blue", "verify": {"window": "300ms", "min_requests": 5,
        "on_insufficient_traffic": "revert"}});
    assert_eq!(
        post_json(&proxy, "/api/v1/routes/r/flip", &body)
            .await
            .status,
        200
    );
    wait_flip(&proxy, "reverted").await;
    assert_eq!(split(&proxy), only("green"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_change_of_the_split_ends_the_verification() {
    let (_blue, _green, proxy) = blue_green().await;
    let body = json!({"to": "green", "verify": {"window": "1h"}});
    let a = post_json(&proxy, "/api/v1/routes/r/flip", &body).await;
    assert_eq!(a.status, 200, "{}", a.text());
    // The operator's later split stands; verification stops.
    let a = send(
        &client(),
        "PUT",
        &proxy.admin_url("/api/v1/routes/r/split"),
        &[],
        r#"{"blue": 50, "green": 50}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let done = wait_flip(&proxy, "cancelled").await;
    assert!(
        done["reason"].as_str().unwrap().contains("changed"),
        "{done}"
    );
    assert_eq!(
        split(&proxy),
        [("blue".to_owned(), 50), ("green".to_owned(), 50)]
    );
    // A newer flip replaces a running verification.
    post_json(&proxy, "/api/v1/routes/r/flip", &body).await;
    let first = flip_status(&proxy).await["generation"].clone();
    let again = json!({"to": "blue", "verify": {"window": "1h"}});
    post_json(&proxy, "/api/v1/routes/r/flip", &again).await;
    let now = flip_status(&proxy).await;
    assert_ne!(now["generation"], first);
    assert_eq!(now["phase"], "verifying");
    assert_eq!(now["to"], "blue");
    // A flip that changes nothing (blue has everything already) leaves it be.
    let same = post_json(&proxy, "/api/v1/routes/r/flip", &json!({"to": "blue"})).await;
    assert_eq!(same.json()["changed"], false, "{}", same.text());
    let still = flip_status(&proxy).await;
    assert_eq!(still["phase"], "verifying");
    assert_eq!(still["generation"], now["generation"]);
    eventually(WAIT, "the replaced verification is recorded", || async {
        actions(&events(&proxy, "r").await)
            .iter()
            .any(|a| a == "rollout flip_verify_cancelled")
    })
    .await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_verification_requests_are_refused_and_change_nothing() {
    let (_blue, _green, proxy) = blue_green().await;
    for (body, needle) in [
        (json!({"to": "green", "verify": {}}), "window"),
        (json!({"to": "green", "verify": "soon"}), "duration"),
        (
            json!({"to": "green", "verify": {"window": "1s", "max_error_rate": 2}}),
            "max_error_rate",
        ),
        (
            json!({"to": "green", "verify": {"window": "1s", "colour": "red"}}),
            "verify.colour",
        ),
        (json!({"to": "green", "verify": {"window": "5h"}}), "range"),
    ] {
        let a = post_json(&proxy, "/api/v1/routes/r/flip", &body).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text());
        assert!(a.text().contains(needle), "{body}: {}", a.text());
        assert_eq!(split(&proxy), only("blue"), "{body}");
    }
    proxy.stop().await;
}

/// The switch-back is a compare-and-set: it applies only while the flipped
/// pool still has all the traffic, so a change that lands between the
/// verification's last look and its switch-back is never overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_back_never_overwrites_a_later_split() {
    use switchyard::control::{Change, ChangeError, ChangeSource};
    let (_blue, _green, proxy) = blue_green().await;
    let control = &proxy.running.as_ref().unwrap().control;
    let revert = |to: &str| Change::RevertFlip {
        route: "r".into(),
        to: to.into(),
        split: vec![("blue".into(), 100), ("green".into(), 0)],
    };
    let flip = Change::Flip {
        route: "r".into(),
        to: "green".into(),
    };
    control.change(ChangeSource::Api, None, flip).await.unwrap();
    // An operator's split lands first: the switch-back is refused.
    let halves = Change::SetSplit {
        route: "r".into(),
        split: vec![("blue".into(), 50), ("green".into(), 50)],
    };
    control
        .change(ChangeSource::Api, None, halves)
        .await
        .unwrap();
    let e = control
        .change(ChangeSource::Rollout, None, revert("green"))
        .await
        .unwrap_err();
    assert!(matches!(e, ChangeError::Superseded(_)), "{e}");
    assert_eq!(
        split(&proxy),
        [("blue".to_owned(), 50), ("green".to_owned(), 50)]
    );
    // While green has everything, it applies.
    let flip = Change::Flip {
        route: "r".into(),
        to: "green".into(),
    };
    control.change(ChangeSource::Api, None, flip).await.unwrap();
    control
        .change(ChangeSource::Rollout, None, revert("green"))
        .await
        .unwrap();
    assert_eq!(split(&proxy), only("blue"));
    proxy.stop().await;
}
