//! The cluster's leader fails mid-rollout (issue 13): SIGKILL, and another
//! replica leads and resumes the rollout at the same step; SIGSTOP past its
//! lease, a new leader acts, SIGCONT: none of the old leader's writes land.
//! Real switchyard processes on a real etcd. Canary traffic is sent with
//! the force header, so each step gets exactly the requests the test
//! sends: step 2 holds (too few requests, `on_insufficient_traffic =
//! "hold"`) until the test sends more.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::etcd::Etcd;
use support::replica::{start_all, Proc};
use support::*;

/// Lease TTL of the replicas, seconds.
const TTL: u64 = 2;

fn shared(blue: &TestBackend, canary: &TestBackend) -> String {
    format!(
        "[pools.blue]\nbackends = [\"{}\"]\n\n[pools.canary]\nbackends = [\"{}\"]\n\n\
         [[routes]]\nname = \"web\"\npath_prefix = \"/\"\nsplit = {{ blue = 100, canary = 0 }}\n\
         force_header = \"X-Switchyard-Pool\"\n\n\
         [routes.rollout]\ncanary = \"canary\"\nstable = \"blue\"\nsteps = [20, 50, 100]\n\
         step_interval = \"200ms\"\nmin_requests = 12\nmax_wait = \"1h\"\n\
         on_insufficient_traffic = \"hold\"\n",
        blue.addr, canary.addr
    )
}

/// The index of the replica `p` names as leader, once it names one of
/// `among`.
async fn leader_seen_by(p: &Proc, procs: &[Proc], among: &[usize]) -> usize {
    let of = |v: &Value| {
        among
            .iter()
            .copied()
            .find(|&i| v.as_str() == Some(procs[i].name.as_str()))
    };
    let name = || async { p.status().await["cluster"]["leader"].clone() };
    eventually(
        Duration::from_secs(20),
        &format!("{} names a leader", p.name),
        || async { of(&name().await).is_some() },
    )
    .await;
    of(&name().await).unwrap_or(among[0])
}

/// `n` requests forced to the canary through each of `procs`.
async fn canary_traffic(procs: &[&Proc], n: usize) {
    let c = client();
    for p in procs {
        for _ in 0..n {
            let a = get(&c, &p.url("/"), &[("x-switchyard-pool", "canary")]).await;
            assert_eq!(a.status, 200, "{}", a.text());
        }
    }
}

async fn rollout(p: &Proc) -> Value {
    p.api("GET", "/api/v1/routes/web/rollout", "").await.json()
}

async fn wait_step(p: &Proc, step: u64) {
    eventually(
        Duration::from_secs(20),
        &format!("{} at step {}", p.name, step + 1),
        || async { rollout(p).await["step"] == step },
    )
    .await;
}

async fn wait_canary(procs: &[&Proc], weight: u64) {
    for p in procs {
        eventually(
            Duration::from_secs(10),
            &format!("{} at canary {weight}", p.name),
            || async { p.split("web").await["canary"].as_u64().unwrap_or(0) == weight },
        )
        .await;
    }
}

/// Three replicas with a rollout at step 2 (50 %), holding for traffic;
/// the leader's index.
async fn at_step_two(
    etcd: &Etcd,
    blue: &TestBackend,
    canary: &TestBackend,
    test: &str,
) -> (Vec<Proc>, usize) {
    let procs = start_all(
        &etcd.endpoints(),
        &cluster::prefix(test),
        &["a", "b", "c"],
        &shared(blue, canary),
        TTL,
    )
    .await;
    let lead = leader_seen_by(&procs[0], &procs, &[0, 1, 2]).await;
    let r = procs[lead]
        .api("POST", "/api/v1/routes/web/rollout/start", "")
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    // Canary requests on every replica, a round at a time, until the step
    // passed (the step's baseline is taken at its first reading, which
    // the first requests may precede).
    let all: Vec<&Proc> = procs.iter().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rollout(&procs[lead]).await["step"] != 1 {
        assert!(std::time::Instant::now() < deadline, "step 1 never passed");
        canary_traffic(&all, 1).await;
    }
    wait_canary(&all, 50).await;
    (procs, lead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_rollout_is_replaced_and_the_rollout_resumes_at_its_step() {
    let etcd = Etcd::single().await;
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let (mut procs, lead) = at_step_two(&etcd, &blue, &canary, "failover-kill").await;
    let rest: Vec<usize> = (0..3).filter(|&i| i != lead).collect();

    let killed = Instant::now();
    procs[lead].kill();
    let next = leader_seen_by(&procs[rest[0]], &procs, &rest).await;
    // Issue 13 aims at lease_ttl + 1 s; printed, not asserted (a loaded
    // machine stretches it).
    eprintln!(
        "new leader {} after {:?}",
        procs[next].name,
        killed.elapsed()
    );
    wait_step(&procs[next], 1).await;
    let s = rollout(&procs[next]).await;
    assert_eq!(s["phase"], "progressing", "{s}");
    let survivors: Vec<&Proc> = rest.iter().map(|&i| &procs[i]).collect();
    for p in &survivors {
        assert_eq!(p.split("web").await["canary"], 50, "{} moved", p.name);
    }
    // The step goes on with the survivors' traffic: 7 + 7 ≥ 12.
    canary_traffic(&survivors, 7).await;
    wait_canary(&survivors, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_writes_nothing_after_its_successor_acted() {
    let etcd = Etcd::single().await;
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let (procs, lead) = at_step_two(&etcd, &blue, &canary, "failover-stop").await;
    let rest: Vec<usize> = (0..3).filter(|&i| i != lead).collect();

    procs[lead].sigstop();
    let next = leader_seen_by(&procs[rest[0]], &procs, &rest).await;
    wait_step(&procs[next], 1).await;
    // The new leader aborts the rollout: 100 % stable everywhere it runs.
    let r = procs[next]
        .api("POST", "/api/v1/routes/web/rollout/abort", "")
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let survivors: Vec<&Proc> = rest.iter().map(|&i| &procs[i]).collect();
    wait_canary(&survivors, 0).await;
    let settled = procs[next].status().await["cluster"]["revision"].clone();

    // The old leader wakes believing it still drives step 2, with enough
    // traffic to pass it: its step (and anything else it decides) is
    // refused by the fence.
    procs[lead].sigcont();
    canary_traffic(&[&procs[lead]], 15).await;
    eventually(
        Duration::from_secs(20),
        "the old leader steps down",
        || async { procs[lead].status().await["cluster"]["role"] == "follower" },
    )
    .await;
    let all: Vec<&Proc> = procs.iter().collect();
    wait_canary(&all, 0).await;
    for p in &all {
        let s = p.status().await;
        assert_eq!(
            s["cluster"]["revision"], settled,
            "{}: {}",
            p.name, s["cluster"]
        );
    }
    let h = procs[next]
        .api("GET", "/api/v1/history?limit=100", "")
        .await
        .json();
    let old = procs[lead].name.as_str();
    let theirs: Vec<&Value> = h["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["instance"] == old).collect())
        .unwrap_or_default();
    // Newest first: nothing of the old leader's after the abort.
    let abort_at = h["events"]
        .as_array()
        .and_then(|e| e.iter().position(|e| e["action"] == "rollout_rollback"))
        .expect("the abort is in the history");
    let newer: Vec<&Value> = h["events"].as_array().unwrap()[..abort_at]
        .iter()
        .filter(|e| e["instance"] == old)
        .collect();
    assert!(
        newer.is_empty(),
        "{old} wrote after the abort: {newer:?} (all of its: {theirs:?})"
    );
}
