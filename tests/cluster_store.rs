//! The shared routing document in a real etcd: seeding, compare-and-swap,
//! racing writers, the watch (resuming after a reconnect and after
//! compaction), and what a replica sees while etcd is down.

mod support;

use std::time::Duration;

use support::cluster::{cluster_config, prefix, Replica};
use support::etcd::Etcd;
use support::eventually;
use switchyard::cluster::{ClusterError, Keys, Seeded, Store};

async fn store(etcd: &Etcd, prefix: &str, instance: &str) -> Store {
    let cfg = cluster_config(&etcd.endpoints(), prefix, instance, 2);
    let client = switchyard::cluster::connect(&cfg).await.expect("connect");
    Store::new(client, Keys::new(prefix), instance)
}

#[tokio::test]
async fn an_empty_cluster_is_seeded_once_and_then_wins_over_local_files() {
    let etcd = Etcd::single().await;
    let p = prefix("seed");
    let a = store(&etcd, &p, "a").await;
    let b = store(&etcd, &p, "b").await;
    let first = a.seed("# from a\n").await.unwrap();
    let Seeded::Created(doc) = first else {
        panic!("the first seed creates: {first:?}")
    };
    assert!(doc.revision > 0);
    let second = b.seed("# from b\n").await.unwrap();
    match second {
        Seeded::Existing(d) => {
            assert_eq!(d.text, "# from a\n");
            assert_eq!(d.by, "a");
            assert_eq!(d.revision, doc.revision);
        }
        other => panic!("the cluster's document must win: {other:?}"),
    }
}

#[tokio::test]
async fn a_change_is_a_compare_and_swap_on_the_planned_revision() {
    let etcd = Etcd::single().await;
    let p = prefix("cas");
    let a = store(&etcd, &p, "a").await;
    let r1 = a.seed("v1").await.unwrap().document().revision;
    let d2 = a.propose(r1, "v2", "api").await.unwrap();
    assert!(d2.revision > r1);
    match a.propose(r1, "v2-from-stale-plan", "file").await {
        Err(ClusterError::Conflict { planned, current }) => {
            assert_eq!(planned, r1);
            assert_eq!(current, d2.revision);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let (now, _) = a.get().await.unwrap();
    let now = now.unwrap();
    assert_eq!(now.text, "v2");
    assert_eq!(now.revision, d2.revision);
    assert_eq!(now.source, "api");
}

/// Two writers (think: the API on A, a file edit on B) each add lines on
/// top of what they read; every acknowledged change is in the final text.
#[tokio::test]
async fn racing_writers_never_lose_an_acknowledged_change() {
    let etcd = Etcd::single().await;
    let p = prefix("race");
    let seeder = store(&etcd, &p, "seed").await;
    seeder.seed("").await.unwrap();
    let mut tasks = Vec::new();
    for who in ["a", "b"] {
        let s = store(&etcd, &p, who).await;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut conflicts = 0;
            for i in 0..25 {
                let line = format!("{who}{i}\n");
                loop {
                    let (doc, _) = s.get().await.unwrap();
                    let doc = doc.unwrap();
                    let text = format!("{}{line}", doc.text);
                    match s.propose(doc.revision, &text, "api").await {
                        Ok(_) => break,
                        Err(ClusterError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                acked.push(line);
            }
            (acked, conflicts)
        }));
    }
    let mut all = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let (acked, c) = t.await.unwrap();
        all.extend(acked);
        conflicts += c;
    }
    let (doc, _) = seeder.get().await.unwrap();
    let text = doc.unwrap().text;
    for line in &all {
        assert!(
            text.contains(line.as_str()),
            "acknowledged {line:?} lost from:\n{text}"
        );
    }
    assert_eq!(text.lines().count(), 50);
    eprintln!("50 acknowledged changes, {conflicts} conflicts retried");
}

#[tokio::test]
async fn every_replica_follows_the_document() {
    let etcd = Etcd::single().await;
    let p = prefix("follow");
    let a = Replica::start(&etcd, &p, "a", "v0").await;
    a.seeded().await;
    let b = Replica::start(&etcd, &p, "b", "ignored: the cluster has one").await;
    eventually(Duration::from_secs(5), "both seeded", || async {
        a.revision() > 0 && a.revision() == b.revision()
    })
    .await;
    assert_eq!(b.text(), "v0");
    let mut rev = a.revision();
    for i in 1..=10 {
        rev = a
            .c()
            .propose(rev, &format!("v{i}"), "api")
            .await
            .unwrap()
            .revision;
    }
    eventually(
        Duration::from_secs(5),
        "b applied the last revision",
        || async { b.revision() == rev },
    )
    .await;
    assert_eq!(b.text(), "v10");
}

/// B's only endpoint goes away; meanwhile the document changes (through
/// the other members) and the history is compacted past where B stopped.
/// B catches up when its endpoint returns, by reading the document again.
#[tokio::test]
async fn the_watch_resumes_after_a_reconnect_and_after_compaction() {
    let mut etcd = Etcd::three().await;
    let p = prefix("compact");
    let writer = Replica::start_on(&[etcd.endpoint(1), etcd.endpoint(2)], &p, "w", "v0", 2).await;
    eventually(Duration::from_secs(5), "seeded", || async {
        writer.revision() > 0
    })
    .await;
    let b = Replica::start_on(&[etcd.endpoint(0)], &p, "b", "", 2).await;
    eventually(Duration::from_secs(5), "b follows", || async {
        b.revision() == writer.revision()
    })
    .await;

    etcd.kill(0).await;
    let mut rev = writer.revision();
    for i in 1..=5 {
        rev = writer
            .c()
            .propose(rev, &format!("v{i}"), "api")
            .await
            .unwrap()
            .revision;
    }
    let mut c = writer.c().store().client();
    c.compact(rev, None).await.expect("compact");
    assert!(b.revision() < rev);

    etcd.restart(0).await;
    eventually(
        Duration::from_secs(10),
        "b caught up after compaction",
        || async { b.revision() == rev },
    )
    .await;
    assert_eq!(b.text(), "v5");
    // And it keeps following.
    let next = writer.c().propose(rev, "v6", "api").await.unwrap().revision;
    eventually(Duration::from_secs(5), "b follows again", || async {
        b.revision() == next
    })
    .await;
}

/// etcd down: the replica keeps its last document, knows the store is
/// unreachable (and why), and a change is refused quickly with
/// `Unavailable`; when etcd returns, changes go through and every replica
/// converges.
#[tokio::test]
async fn while_etcd_is_down_documents_stay_and_changes_are_refused() {
    let mut etcd = Etcd::three().await;
    let p = prefix("down");
    let a = Replica::start_on(&etcd.endpoints(), &p, "a", "v0", 2).await;
    a.seeded().await;
    let b = Replica::start_on(&etcd.endpoints(), &p, "b", "", 2).await;
    eventually(Duration::from_secs(5), "seeded", || async {
        a.revision() > 0 && b.revision() == a.revision()
    })
    .await;
    let before = a.revision();

    for i in 0..3 {
        etcd.kill(i).await;
    }
    let started = tokio::time::Instant::now();
    match a.c().propose(before, "v1", "api").await {
        Err(ClusterError::Unavailable(why)) => eprintln!("refused while down: {why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() <= switchyard::cluster::PROPOSE_TIMEOUT + Duration::from_millis(500),
        "a refused change is answered within the proposal timeout"
    );
    eventually(
        Duration::from_secs(5),
        "a sees the store unreachable",
        || async { !a.c().health().borrow().reachable },
    )
    .await;
    assert!(a.c().health().borrow().error.is_some());
    assert_eq!(a.revision(), before, "the last document stays");
    assert_eq!(a.text(), "v0");

    etcd.restart_all().await;
    eventually(
        Duration::from_secs(10),
        "a sees the store again",
        || async { a.c().health().borrow().reachable },
    )
    .await;
    let d = a.c().propose(before, "v1", "api").await.unwrap();
    eventually(Duration::from_secs(10), "b converged", || async {
        b.revision() == d.revision
    })
    .await;
    assert_eq!(b.text(), "v1");
}
