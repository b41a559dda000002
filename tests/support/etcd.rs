//! Real etcd for the cluster tests: one node, or a three-node cluster, on
//! loopback, data directories in a temp dir, started and waited for by a
//! health check (`GET /health` answering `{"health":"true"}`, which etcd
//! only gives once the node has a leader and has served a linearizable
//! read through raft). Nodes can be killed, stopped, continued and
//! restarted with their data.
//!
//! The binary is `$SWITCHYARD_TEST_ETCD` (set by `scripts/test`, which gets
//! it with `scripts/etcd`), else `etcd` on PATH, else `target/tools/etcd`.
//!
//! Ports: etcd cannot report the port of a `:0` bind (the address it
//! listens on is also the one it advertises to its peers), so free ports
//! are picked by binding port 0, reading the port and releasing it, then
//! passed to etcd. Another process may take such a port in between: a node
//! that then exits with "address already in use" is retried with fresh
//! ports (the whole cluster, since the peer list names every port).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long a node gets to become healthy.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Attempts at a start whose ports were taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// The etcd server binary the tests run.
pub fn etcd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_TEST_ETCD") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("etcd");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let cached = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/etcd");
    if cached.is_file() {
        return cached;
    }
    panic!(
        "no etcd binary: run ./scripts/etcd (it fetches Debian's etcd-server into \
         target/tools), or set SWITCHYARD_TEST_ETCD=/path/to/etcd"
    )
}

/// A free loopback port, released again (see the module doc).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// One etcd member.
pub struct EtcdNode {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl EtcdNode {
    /// `http://127.0.0.1:PORT`, the client endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// The last lines of this node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// A running etcd cluster of one or three nodes; every process is killed
/// when it is dropped.
pub struct Etcd {
    pub nodes: Vec<EtcdNode>,
    token: String,
    /// Data directories and logs; removed after the processes (field order:
    /// `nodes` drops, and so kills, first).
    _dir: Option<tempfile::TempDir>,
}

impl Etcd {
    /// One node.
    pub async fn single() -> Etcd {
        Self::start(1).await
    }

    /// Three nodes (quorum two).
    pub async fn three() -> Etcd {
        Self::start(3).await
    }

    async fn start(n: usize) -> Etcd {
        let (mut etcd, dir) = Self::start_in(n).await;
        etcd._dir = Some(dir);
        etcd
    }

    async fn start_in(n: usize) -> (Etcd, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        for attempt in 1..=PORT_ATTEMPTS {
            let token = format!("switchyard-test-{}-{attempt}", std::process::id());
            let nodes = (0..n)
                .map(|i| {
                    let name = format!("n{i}");
                    EtcdNode {
                        data_dir: dir.path().join(format!("{name}-{attempt}.etcd")),
                        log: dir.path().join(format!("{name}-{attempt}.log")),
                        name,
                        client_port: free_port(),
                        peer_port: free_port(),
                        child: None,
                    }
                })
                .collect();
            let mut etcd = Etcd {
                nodes,
                token,
                _dir: None,
            };
            for i in 0..n {
                etcd.spawn(i);
            }
            match etcd.wait_all_healthy().await {
                Ok(()) => return (etcd, dir),
                Err(Failure::PortTaken) if attempt < PORT_ATTEMPTS => {
                    // Dropping `etcd` kills the nodes of this attempt.
                    eprintln!("etcd: a picked port was taken meanwhile; retrying with new ports");
                }
                Err(Failure::PortTaken) => panic!("etcd: picked ports kept being taken"),
                Err(Failure::Other(msg)) => panic!("{msg}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn initial_cluster(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}={}", n.name, n.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) {
        let initial = self.initial_cluster();
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open etcd log");
        let client = node.endpoint();
        let peer = node.peer_url();
        let child = Command::new(etcd_binary())
            .args(["--name", &node.name])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            // Fast elections on loopback: the fault tests wait for them.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", etcd_binary().display()));
        node.child = Some(child);
    }

    /// Client endpoints of every node.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(EtcdNode::endpoint).collect()
    }

    /// Client endpoint of node `i`.
    pub fn endpoint(&self, i: usize) -> String {
        self.nodes[i].endpoint()
    }

    /// SIGKILL node `i` and reap it.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            // A node already gone is fine: the point is that it is not running.
            let _ = child.kill().await;
        }
    }

    /// SIGSTOP node `i` (it keeps its sockets but answers nothing).
    pub fn stop(&self, i: usize) {
        signal(
            self.nodes[i].pid().expect("node running"),
            rustix::process::Signal::STOP,
        );
    }

    /// SIGCONT node `i`.
    pub fn cont(&self, i: usize) {
        signal(
            self.nodes[i].pid().expect("node running"),
            rustix::process::Signal::CONT,
        );
    }

    /// Starts a killed node again on its ports with its data, and waits
    /// until it is healthy (for a cluster member: until it has a leader,
    /// which needs a quorum running).
    pub async fn restart(&mut self, i: usize) {
        self.kill(i).await;
        self.spawn(i);
        match self.wait_healthy(i).await {
            Ok(()) => {}
            Err(Failure::Other(m)) => panic!("{m}"),
            Err(Failure::PortTaken) => panic!("etcd {}: its port was taken", self.nodes[i].name),
        }
    }

    /// Starts every killed node again (a whole cluster that was down) and
    /// waits for all.
    pub async fn restart_all(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                self.spawn(i);
            }
        }
        match self.wait_all_healthy().await {
            Ok(()) => {}
            Err(Failure::Other(m)) => panic!("{m}"),
            Err(Failure::PortTaken) => panic!("etcd: a node's port was taken while it was down"),
        }
    }

    async fn wait_all_healthy(&mut self) -> Result<(), Failure> {
        for i in 0..self.nodes.len() {
            self.wait_healthy(i).await?;
        }
        Ok(())
    }

    /// Polls node `i`'s `/health` until it says true, the process exits, or
    /// the deadline passes.
    pub async fn wait_healthy(&mut self, i: usize) -> Result<(), Failure> {
        let start = Instant::now();
        let url = format!("{}/health", self.nodes[i].endpoint());
        let client = super::client();
        loop {
            let node = &mut self.nodes[i];
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    let tail = node.log_tail();
                    let msg = format!(
                        "etcd {} exited ({status}) while starting:\n{tail}",
                        node.name
                    );
                    return Err(if tail.contains("address already in use") {
                        Failure::PortTaken
                    } else {
                        Failure::Other(msg)
                    });
                }
            }
            if healthy(&client, &url).await {
                return Ok(());
            }
            if start.elapsed() > READY_DEADLINE {
                let msg = format!(
                    "etcd {} not healthy after {READY_DEADLINE:?}:\n{}",
                    node.name,
                    node.log_tail()
                );
                return Err(Failure::Other(msg));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether node `i` answers its health check now.
    pub async fn is_healthy(&self, i: usize) -> bool {
        let url = format!("{}/health", self.nodes[i].endpoint());
        healthy(&super::client(), &url).await
    }
}

/// Why a start failed.
#[derive(Debug)]
pub enum Failure {
    /// A picked port was taken before etcd bound it: retry with new ones.
    PortTaken,
    Other(String),
}

async fn healthy(client: &super::HttpClient, url: &str) -> bool {
    let req = hyper::Request::get(url)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let fut = client.request(req);
    match tokio::time::timeout(Duration::from_secs(1), fut).await {
        Ok(Ok(resp)) if resp.status() == 200 => {
            let a = super::collect(resp).await;
            a.text().contains("\"health\":\"true\"")
        }
        _ => false,
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid > 0");
    rustix::process::kill_process(pid, sig).expect("signal etcd");
}
