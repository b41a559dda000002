//! The rollout's shadow step in a cluster (issue 15, item 3, with issue
//! 13): three real switchyard processes on a real etcd. Only the leader
//! runs the rollout, but every replica copies its own traffic to the
//! canary while the stored state says the rollout is in its shadow step,
//! publishes its shadow counts, and the leader judges their sum: a step
//! that no replica alone could judge (`min_requests`) is judged on the
//! cluster's pairs, and its outcome reaches every replica once.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::backend::Traffic;
use support::etcd::Etcd;
use support::replica::{start_all, Proc};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// Copies of every request during the shadow step, judged on at least 30
/// pairs in all; no replica gets more than 15 requests, so none could
/// judge alone.
const MIN_PAIRS: u64 = 30;
const PER_REPLICA: usize = 15;

fn shared(blue: &TestBackend, canary: &TestBackend, duration: &str) -> String {
    format!(
        "[pools.blue]\nbackends = [\"{}\"]\n\n[pools.canary]\nbackends = [\"{}\"]\n\n\
         [[routes]]\nname = \"web\"\npath_prefix = \"/\"\nsplit = {{ blue = 100, canary = 0 }}\n\n\
         [routes.rollout]\ncanary = \"canary\"\nstable = \"blue\"\nsteps = [50, 100]\n\
         step_interval = \"1h\"\nmin_requests = 5\nmax_error_rate = 0.5\n\
         shadow = {{ duration = \"{duration}\", percent = 100, min_requests = {MIN_PAIRS}, \
         max_latency_ratio = 1000.0 }}\n",
        blue.addr, canary.addr
    )
}

/// The replica that leads.
async fn leader(procs: &[Proc]) -> usize {
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
    of(&name().await).unwrap_or(0)
}

/// The canary's entry of `p`'s shadow answer for route `web` (this
/// replica's own window over the last 120 s).
async fn shadow_of(p: &Proc) -> Value {
    let a = p
        .api("GET", "/api/v1/routes/web/shadow?seconds=120", "")
        .await
        .json();
    a["pools"]
        .as_array()
        .and_then(|pools| pools.iter().find(|e| e["pool"] == "canary").cloned())
        .unwrap_or(Value::Null)
}

/// Waits until every replica copies to the canary (`copying`) or none
/// does.
async fn wait_copying(procs: &[Proc], copying: bool) {
    for p in procs {
        let what = format!("{} copying: {copying}", p.name);
        eventually(WAIT, &what, || async {
            shadow_of(p).await["active"] == copying
        })
        .await;
    }
}

/// `n` requests through `p`, one after another; how many were answered by
/// something else than blue.
async fn send(p: &Proc, n: usize) -> usize {
    let c = client();
    let mut other = 0;
    for _ in 0..n {
        let a = get(&c, &p.url("/"), &[]).await;
        other += usize::from(a.status != 200 || a.header("x-backend") != Some("blue"));
    }
    other
}

async fn rollout(p: &Proc) -> Value {
    p.api("GET", "/api/v1/routes/web/rollout", "").await.json()
}

async fn wait_phase(p: &Proc, phase: &str) -> Value {
    eventually(WAIT, &format!("phase {phase}"), || async {
        rollout(p).await["phase"] == phase
    })
    .await;
    rollout(p).await
}

/// The cluster's rollout events of route `web` as `p` shows them, oldest
/// first: (action, detail, instance).
async fn rollout_events(p: &Proc) -> Vec<(String, String, String)> {
    let h = p.api("GET", "/api/v1/history?limit=100", "").await.json();
    let mut out: Vec<_> = h["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["route"] == "web")
                .filter(|e| {
                    e["action"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("rollout"))
                })
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
                    (s("action"), s("detail"), s("instance"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.reverse();
    out
}

/// The `N` of "N pairs compared" in a shadow step's summary.
fn pairs(detail: &str) -> u64 {
    detail
        .split(" pairs compared")
        .next()
        .and_then(|s| s.rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn start(name: &str, etcd: &Etcd, shared: &str) -> (Vec<Proc>, usize) {
    let procs = start_all(
        &etcd.endpoints(),
        &cluster::prefix(name),
        &["a", "b", "c"],
        shared,
        2,
    )
    .await;
    let lead = leader(&procs).await;
    let r = procs[lead]
        .api("POST", "/api/v1/routes/web/rollout/start", "")
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    // Every replica copies: the followers read it from the stored state.
    wait_copying(&procs, true).await;
    (procs, lead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_step_failing_on_the_summed_pairs_aborts_on_every_replica_once() {
    let etcd = Etcd::single().await;
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    // The new version answers differently: every pair mismatches.
    canary.set_traffic(Traffic::Status(201));
    // Only a failure can end a step of an hour.
    let (procs, lead) = start("shadow-fail", &etcd, &shared(&blue, &canary, "1h")).await;

    for p in &procs {
        assert_eq!(
            send(p, PER_REPLICA).await,
            0,
            "{} answered by blue only",
            p.name
        );
    }
    let done = wait_phase(&procs[lead], "rolled_back").await;
    let reason = done["reason"].as_str().unwrap_or("").to_owned();
    assert!(
        reason.starts_with("shadow step: shadow_mismatch_rate "),
        "{reason}"
    );
    // Judged on the cluster's pairs: more than any replica had.
    let judged = pairs(&reason);
    assert!(
        judged >= MIN_PAIRS && judged > PER_REPLICA as u64,
        "{reason}"
    );
    // Every replica stops copying; the split never moved.
    wait_copying(&procs, false).await;
    for p in &procs {
        let s = p.split("web").await;
        assert_eq!(s["canary"].as_u64().unwrap_or(0), 0, "{}: {s}", p.name);
    }
    // The cluster's history, on every replica: one rollback, by the
    // leader, with the reason and the summed counts.
    for p in &procs {
        let events = rollout_events(p).await;
        let rollbacks: Vec<_> = events
            .iter()
            .filter(|(a, _, _)| a == "rollout_rollback")
            .collect();
        assert_eq!(rollbacks.len(), 1, "{}: {events:?}", p.name);
        assert_eq!(rollbacks[0].1, reason, "{}", p.name);
        assert_eq!(rollbacks[0].2, procs[lead].name, "{}", p.name);
    }
    // Copies only went to the canary: clients were never answered by it.
    for p in &procs {
        assert_eq!(send(p, 5).await, 0, "{}", p.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_step_the_leader_alone_could_not_judge_passes_on_the_cluster_s_pairs() {
    let etcd = Etcd::single().await;
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let (procs, lead) = start("shadow-pass", &etcd, &shared(&blue, &canary, "1s")).await;

    for p in &procs {
        assert_eq!(send(p, PER_REPLICA).await, 0, "{}", p.name);
    }
    // Every replica copied its own requests and compared the pairs.
    for p in &procs {
        let what = format!("{} compared its pairs", p.name);
        eventually(WAIT, &what, || async {
            shadow_of(p).await["window"]["compared"].as_u64() == Some(PER_REPLICA as u64)
        })
        .await;
    }
    // The leader's own pairs are under min_requests; the sum passes.
    let own = shadow_of(&procs[lead]).await["window"]["compared"]
        .as_u64()
        .unwrap_or(0);
    assert!(own < MIN_PAIRS, "{own}");
    wait_phase(&procs[lead], "progressing").await;
    for p in &procs {
        eventually(WAIT, &format!("{} at step 1", p.name), || async {
            let s = p.split("web").await;
            s == json!({"blue": 50, "canary": 50})
        })
        .await;
    }
    wait_copying(&procs, false).await;
    let events = rollout_events(&procs[lead]).await;
    let passed = events
        .iter()
        .find(|(a, d, _)| a == "rollout_step" && d.starts_with("shadow step passed ("))
        .unwrap_or_else(|| panic!("no pass in {events:?}"));
    let judged = pairs(&passed.1);
    assert!(
        judged >= MIN_PAIRS && judged > own,
        "judged on {judged} pairs, the leader had {own}: {}",
        passed.1
    );
}
