//! Membership and leadership in a real etcd: members under leases, one
//! leader, failover, fencing of a leader that was paused (a real SIGSTOP
//! of a real process), and one etcd node of three lost.

mod support;

use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use support::cluster::{one_leader, prefix, Replica};
use support::etcd::Etcd;
use support::eventually;
use switchyard::cluster::{ClusterError, Store};

/// Env var that turns `fenced_child` into the paused leader's process.
const CHILD: &str = "SWITCHYARD_FENCE_CHILD";

#[tokio::test]
async fn members_show_their_applied_revision_and_go_with_their_lease() {
    let etcd = Etcd::single().await;
    let p = prefix("members");
    let a = Replica::start(&etcd, &p, "a", "v0").await;
    let mut b = Replica::start(&etcd, &p, "b", "").await;
    a.c().set_applied(7);
    b.c().set_applied(5);
    eventually(Duration::from_secs(5), "both members listed", || async {
        let ms = a.c().members().await.unwrap_or_default();
        ms.len() == 2
            && ms
                .iter()
                .any(|m| m.instance == "a" && m.applied_revision == 7)
            && ms
                .iter()
                .any(|m| m.instance == "b" && m.applied_revision == 5)
    })
    .await;
    let ms = a.c().members().await.unwrap();
    assert!(ms.iter().all(|m| m.last_seen_ms > 0 && m.started_ms > 0));
    b.stop().await;
    eventually(
        Duration::from_secs(5),
        "b gone with its revoked lease",
        || async {
            let ms = a.c().members().await.unwrap_or_default();
            ms.len() == 1 && ms[0].instance == "a"
        },
    )
    .await;
}

#[tokio::test]
async fn one_leader_and_another_when_it_stops() {
    let etcd = Etcd::single().await;
    let p = prefix("elect");
    let mut rs = Vec::new();
    for name in ["a", "b", "c"] {
        rs.push(Replica::start(&etcd, &p, name, "v0").await);
    }
    let refs: Vec<&Replica> = rs.iter().collect();
    let first = one_leader(&refs, Duration::from_secs(5)).await;
    let name = rs[first].c().instance().to_owned();
    // Followers learn who leads (once their own lease and campaign are
    // through).
    let follows = switchyard::cluster::Role::Follower {
        leader: Some(name.clone()),
    };
    eventually(Duration::from_secs(5), "followers name the leader", || {
        let ok = rs
            .iter()
            .enumerate()
            .all(|(i, r)| i == first || *r.c().role().borrow() == follows);
        async move { ok }
    })
    .await;
    // A leadership write lands; a follower's is refused.
    let key = rs[first].c().store().keys().rollout("r");
    let op = Store::put_op(key.clone(), b"step 1".to_vec(), None);
    rs[first].c().fenced(vec![op]).await.unwrap();
    let follower = (first + 1) % 3;
    let op = Store::put_op(key.clone(), b"follower".to_vec(), None);
    assert!(matches!(
        rs[follower].c().fenced(vec![op]).await,
        Err(ClusterError::NotLeader)
    ));

    rs[first].stop().await;
    let refs: Vec<&Replica> = rs.iter().collect();
    let second = one_leader(&refs, Duration::from_secs(3)).await;
    assert_ne!(second, first);
}

/// The leader is a separate process; it is SIGSTOPped past its lease, a
/// new leader acts, and after SIGCONT none of the old leader's writes land
/// (it keeps trying: each is refused, and it steps down).
#[tokio::test]
async fn a_paused_leader_is_fenced() {
    let etcd = Etcd::single().await;
    let p = prefix("fence");
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["fenced_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{} {p}", etcd.endpoint(0)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the leader process");
    let pid = child.id();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // libtest may have written "test fenced_child ... " before it.
            if let Some(l) = line.split_once("FENCE ").map(|(_, l)| l) {
                // The receiver may be gone at the end of the test.
                let _ = lines_tx.send(l.to_owned());
            }
        }
    });
    expect(&mut lines, "LEADER").await;
    expect(&mut lines, "WROTE").await;

    let sig = |s| {
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(pid, s).unwrap();
    };
    sig(rustix::process::Signal::STOP);
    let successor = Replica::start(&etcd, &p, "successor", "").await;
    eventually(Duration::from_secs(10), "the successor leads", || async {
        successor.is_leader()
    })
    .await;
    let key = successor.c().store().keys().rollout("r");
    let op = Store::put_op(key.clone(), b"successor".to_vec(), None);
    let landed = successor.c().fenced(vec![op]).await.unwrap();

    sig(rustix::process::Signal::CONT);
    // The old leader goes on writing; each attempt is refused.
    expect(&mut lines, "REFUSED").await;
    expect(&mut lines, "REFUSED").await;
    let kv = successor.c().store().get_key(&key).await.unwrap().unwrap();
    assert_eq!(kv.value(), b"successor");
    assert_eq!(kv.mod_revision(), landed, "no write after the successor's");
    assert!(successor.is_leader());
    child.kill().unwrap();
    // Reaped so no zombie outlives the test.
    let _ = child.wait();
}

/// Waits for the child's next line starting with `want`.
async fn expect(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>, want: &str) -> String {
    let wait = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(l) = lines.recv().await {
            if l.starts_with(want) {
                return l;
            }
        }
        panic!("the child ended before {want}");
    });
    wait.await
        .unwrap_or_else(|_| panic!("no {want} from the child"))
}

/// Not a test on its own: the paused leader of `a_paused_leader_is_fenced`
/// when started by it (does nothing otherwise).
#[tokio::test]
async fn fenced_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (endpoint, p) = spec.split_once(' ').unwrap();
    let r = Replica::start_on(&[endpoint.to_owned()], p, "paused", "v0", 2).await;
    eventually(Duration::from_secs(10), "leader", || async {
        r.is_leader()
    })
    .await;
    println!("FENCE LEADER");
    let key = r.c().store().keys().rollout("r");
    for n in 0.. {
        let op = Store::put_op(key.clone(), format!("paused {n}").into_bytes(), None);
        // Bypasses the role check: a paused process acts on what it
        // believed before the pause. Only the fence can stop the write.
        let fence = r_fence(&r);
        match r.c().store().fenced(fence, vec![op]).await {
            Ok(rev) => println!("FENCE WROTE {n} at {rev}"),
            Err(ClusterError::NotLeader) => println!("FENCE REFUSED {n}"),
            Err(e) => println!("FENCE ERROR {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fence this process had when it last led.
fn r_fence(r: &Replica) -> switchyard::cluster::Fence {
    use std::sync::OnceLock;
    static FENCE: OnceLock<switchyard::cluster::Fence> = OnceLock::new();
    *FENCE.get_or_init(|| r.c().role().borrow().fence().expect("leads at first"))
}

/// One etcd node of three killed (the one the replicas' writes go to
/// first, and whichever is raft leader): the same replica keeps leading
/// and changes go on being accepted.
#[tokio::test]
async fn one_etcd_node_of_three_lost_changes_nothing() {
    let mut etcd = Etcd::three().await;
    let p = prefix("minority");
    let mut rs = Vec::new();
    for name in ["a", "b", "c"] {
        rs.push(Replica::start_on(&etcd.endpoints(), &p, name, "v0", 2).await);
    }
    let refs: Vec<&Replica> = rs.iter().collect();
    let leader = one_leader(&refs, Duration::from_secs(5)).await;
    eventually(Duration::from_secs(5), "all seeded", || async {
        rs.iter().all(|r| r.revision() > 0)
    })
    .await;
    etcd.kill(0).await;
    let mut rev = rs[0].revision();
    for i in 1..=10 {
        // A request in flight on the killed node, or while its raft
        // leadership moves, is sent again by `propose` itself.
        rev = rs[i % 3]
            .c()
            .propose(rev, &format!("v{i}"), "api")
            .await
            .unwrap_or_else(|e| panic!("change {i}: {e}"))
            .revision;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually(
        Duration::from_secs(5),
        "every replica applied v10",
        || async { rs.iter().all(|r| r.revision() == rev) },
    )
    .await;
    // Two leases' worth of time passed with a node down: same leader.
    let refs: Vec<&Replica> = rs.iter().collect();
    assert_eq!(one_leader(&refs, Duration::from_secs(1)).await, leader);
}
