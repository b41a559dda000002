//! One driver for the rollouts of a cluster (issue 13): three real
//! switchyard processes on a real etcd; only the leader runs a rollout, it
//! judges the sum of every replica's traffic (no replica alone reaches
//! `min_requests`), its decisions reach every replica, and each webhook
//! event is delivered once.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::etcd::Etcd;
use support::replica::{start_all, Proc};
use support::webhook::Receiver;
use support::*;

fn shared(blue: &TestBackend, canary: &TestBackend, rollout: &str, hooks: &Receiver) -> String {
    format!(
        "[pools.blue]\nbackends = [\"{}\"]\n\n[pools.canary]\nbackends = [\"{}\"]\n\n\
         [[routes]]\nname = \"web\"\npath_prefix = \"/\"\nsplit = {{ blue = 100, canary = 0 }}\n\n\
         [routes.rollout]\ncanary = \"canary\"\nstable = \"blue\"\n{rollout}\n\n\
         [[notify]]\nurl = \"{}\"\n",
        blue.addr,
        canary.addr,
        hooks.url("/hook")
    )
}

/// The replica that leads, and the others.
async fn leader(procs: &[Proc]) -> (usize, Vec<usize>) {
    let name = || async { procs[0].status().await["cluster"]["leader"].clone() };
    let of = |name: &Value| {
        procs
            .iter()
            .position(|p| name.as_str() == Some(p.name.as_str()))
    };
    eventually(Duration::from_secs(10), "a leader", || async {
        of(&name().await).is_some()
    })
    .await;
    let lead = of(&name().await).unwrap_or(0);
    (lead, (0..procs.len()).filter(|&i| i != lead).collect())
}

async fn wait_split(procs: &[Proc], want: &Value, deadline: Duration) {
    for p in procs {
        eventually(deadline, &format!("{} serves {want}", p.name), || async {
            let s = p.split("web").await;
            want.as_object().is_some_and(|w| {
                w.iter()
                    .all(|(k, v)| s[k].as_u64().unwrap_or(0) == v.as_u64().unwrap_or(0))
            })
        })
        .await;
    }
}

/// `n` requests through `p`, one after another; how many the canary got.
async fn send(p: &Proc, n: usize) -> usize {
    let c = client();
    let mut canary = 0;
    for _ in 0..n {
        let a = get(&c, &p.url("/"), &[]).await;
        canary += usize::from(a.header("x-backend") == Some("canary"));
    }
    canary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_judged_on_all_replicas_traffic_is_rolled_back_everywhere_once() {
    let etcd = Etcd::single().await;
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    canary.set_fail_percent(20);
    let hooks = Receiver::start().await;
    // A step of an hour: only a failed check (on min_requests) acts.
    let rollout =
        "steps = [50, 100]\nstep_interval = \"1h\"\nmin_requests = 40\nmax_error_rate = 0.05";
    let procs = start_all(
        &etcd.endpoints(),
        &cluster::prefix("rollout-fail"),
        &["a", "b", "c"],
        &shared(&blue, &canary, rollout, &hooks),
        2,
    )
    .await;
    let (lead, others) = leader(&procs).await;

    // Only the leader drives rollouts; a follower says who does.
    let f = &procs[others[0]];
    let r = f.api("POST", "/api/v1/routes/web/rollout/start", "").await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"], "not_leader", "{}", r.text());
    let r = procs[lead]
        .api("POST", "/api/v1/routes/web/rollout/start", "")
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    wait_split(
        &procs,
        &json!({"blue": 50, "canary": 50}),
        Duration::from_secs(10),
    )
    .await;

    // 50 requests on each replica: about 25 reach the canary on each, under
    // min_requests (40) on every replica, about 75 in all.
    let mut each = Vec::new();
    for p in &procs {
        each.push(send(p, 50).await);
    }
    assert!(
        each.iter().all(|&n| n < 40),
        "canary requests per replica: {each:?}"
    );
    wait_split(
        &procs,
        &json!({"blue": 100, "canary": 0}),
        Duration::from_secs(10),
    )
    .await;
    let status = procs[lead]
        .api("GET", "/api/v1/routes/web/rollout", "")
        .await
        .json();
    assert_eq!(status["phase"], "rolled_back", "{status}");
    let judged = status["last"]["canary_requests"].as_u64().unwrap_or(0);
    assert!(judged >= 40, "judged on the cluster's traffic: {status}");

    // A flip through a follower afterwards: once it is delivered, every
    // earlier event has been, and each came once.
    let r = f
        .api("POST", "/api/v1/routes/web/flip", r#"{"to": "canary"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(Duration::from_secs(10), "the flip notified", || async {
        hooks.delivered().iter().any(|a| a == "flip")
    })
    .await;
    let got = hooks.delivered();
    for action in ["rollout_start", "rollout_rollback", "flip"] {
        let n = got.iter().filter(|a| *a == action).count();
        assert_eq!(n, 1, "{action} delivered {n} times: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_on_every_replica() {
    let etcd = Etcd::single().await;
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let hooks = Receiver::start().await;
    let rollout =
        "steps = [50, 100]\nstep_interval = \"300ms\"\nmin_requests = 10\nmax_error_rate = 0.05";
    let procs = start_all(
        &etcd.endpoints(),
        &cluster::prefix("rollout-ok"),
        &["a", "b", "c"],
        &shared(&blue, &canary, rollout, &hooks),
        2,
    )
    .await;
    let (lead, _) = leader(&procs).await;
    let loads: Vec<load::Load> = procs
        .iter()
        .map(|p| load::Load::start(p.url("/"), 1, Duration::from_millis(10)))
        .collect();
    let r = procs[lead]
        .api("POST", "/api/v1/routes/web/rollout/start", "")
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    // The last step is 100 % already; promoted once it passed.
    eventually(Duration::from_secs(30), "promoted", || async {
        let s = procs[lead]
            .api("GET", "/api/v1/routes/web/rollout", "")
            .await
            .json();
        s["phase"] == "promoted"
    })
    .await;
    wait_split(
        &procs,
        &json!({"blue": 0, "canary": 100}),
        Duration::from_secs(10),
    )
    .await;
    for l in loads {
        l.finish_without_errors().await;
    }
    eventually(
        Duration::from_secs(10),
        "the promotion notified",
        || async { hooks.delivered().iter().any(|a| a == "rollout_promote") },
    )
    .await;
}
