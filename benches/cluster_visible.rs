//! Change visible on every replica, at the cluster layer: three replicas
//! (`switchyard::cluster::Cluster`, in this process) on a real one-node
//! etcd on loopback; 100 changes, each proposed by the next replica in
//! turn, each timed from the proposal until all three replicas' watches
//! delivered its revision. Prints p50, p99 and max; then the writes per
//! second three idle replicas make (the etcd revision's growth over 10 s).
//!
//!   cargo bench --bench cluster_visible
//!
//! etcd: `$SWITCHYARD_TEST_ETCD`, else `etcd` on PATH, else
//! `target/tools/etcd` (`./scripts/etcd` fetches it). This is the etcd part
//! of issue 13's target (p99 < 250 ms); applying the revision to the
//! routing table adds the controller's validate-and-swap on top.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchyard::cluster::{Cluster, Start};
use tokio_util::sync::CancellationToken;

const CHANGES: usize = 100;

fn etcd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_TEST_ETCD") {
        return p.into();
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("etcd"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/etcd"))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn config(endpoint: &str, instance: &str) -> switchyard::config::ClusterConfig {
    let text = format!(
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = {{ blue = 100 }}\n\
         [cluster]\netcd = [\"{endpoint}\"]\nprefix = \"/bench\"\ninstance = \"{instance}\"\n"
    );
    switchyard::config::parse(&text, std::path::Path::new("bench.toml"))
        .expect("valid")
        .cluster
        .expect("cluster")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (client_port, peer_port) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = tokio::process::Command::new(etcd_binary())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &endpoint,
            "--advertise-client-urls",
            &endpoint,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(["--log-level", "error"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start etcd (run ./scripts/etcd)");

    let shutdown = CancellationToken::new();
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        let start = Start {
            seed: "# v0\n".into(),
            admin: None,
        };
        let c = Cluster::start(&config(&endpoint, name), start, &shutdown)
            .await
            .expect("cluster");
        replicas.push(c);
    }
    // Ready: every replica has the seeded document (etcd answered).
    let ready = Instant::now();
    while replicas.iter().any(|c| c.documents().borrow().is_none()) {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "etcd did not come up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut rev = replicas[0]
        .documents()
        .borrow()
        .as_ref()
        .map_or(0, |d| d.revision);
    let mut rxs: Vec<_> = replicas.iter().map(|c| c.documents()).collect();
    let mut samples = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let t = Instant::now();
        let doc = replicas[i % 3]
            .propose(rev, &format!("# v{}\n", i + 1), "api")
            .await
            .expect("propose");
        rev = doc.revision;
        for rx in rxs.iter_mut() {
            rx.wait_for(|d| d.as_ref().is_some_and(|d| d.revision >= rev))
                .await
                .expect("watch");
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "change visible on 3 replicas ({CHANGES} changes, 1 etcd node): p50 {:?}  p99 {:?}  max {:?}",
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    );
    // Load on etcd at rest: revisions (= writes) over 10 s with three idle
    // replicas (lease keep-alives are not writes; member heartbeats are).
    let (_, r0) = replicas[0].store().get().await.expect("get");
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let (_, r1) = replicas[0].store().get().await.expect("get");
    println!(
        "etcd writes at rest, 3 replicas, lease_ttl 5s: {:.2}/s",
        (r1 - r0) as f64 / idle.as_secs_f64()
    );
    for c in replicas {
        c.stop().await;
    }
    // Killed on drop as well; this reaps it.
    let _ = etcd.kill().await;
}
