//! Set-ups for the `switchyard ctl rolling-update` tests: a fleet of real
//! `switchyard backend` processes with the restart script an update runs,
//! the proxy settings and time limits the tests use, and a slow request held
//! in flight on one backend.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::admin::wait_pool_healthy;
use super::cli::BIN;
use super::load::{fetch, Load};
use super::{client, config_for, eventually, get, TestBackend, TestProxy};

/// Probes every 100 ms; no retries, so the client sees any failed try.
pub const SETTINGS: &str = "[server]\nworkers = 1\n\n[health]\ninterval = \"100ms\"\n\
    timeout = \"90ms\"\n\n[retry]\nretries = 0\n\n";

/// Generous limits for each stage, and a quick poll.
pub const TIMEOUTS: [&str; 8] = [
    "--drain-timeout",
    "30s",
    "--command-timeout",
    "30s",
    "--health-timeout",
    "30s",
    "--poll-interval",
    "50ms",
];

/// `restart.sh ADDR PORT VERSION`: stops the backend on ADDR (its pid is in
/// DIR/PORT.pid), waits until it has exited and a little more (a deploy's
/// downtime), and starts a `switchyard backend` of VERSION on the same
/// port; exits 3 without touching anything for port $FAIL_PORT.
const RESTART_SH: &str = r#"set -e
dir="$(dirname "$0")"
if [ "$2" = "${FAIL_PORT:-none}" ]; then
  echo "deploy of $1 failed: image v2 not found" >&2
  exit 3
fi
pid=$(cat "$dir/$2.pid")
kill "$pid"
# The old process is the test's child: it stays a zombie (Z) until reaped,
# but its sockets are closed once it gets there.
while [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do
  sleep 0.02
done
# Down long enough for the proxy's probes (every 100 ms) to see it.
sleep 0.4
"$SWITCHYARD_BIN" backend --listen "$1" --pool web --version "$3" >>"$dir/$2.log" 2>&1 &
echo $! > "$dir/$2.pid"
echo "restarted $1 as $3"
"#;

/// Demo backend processes: the v1 ones this test started, and whatever
/// the restart script started (their pids are in DIR/PORT.pid); all are
/// killed on drop.
pub struct Fleet {
    dir: tempfile::TempDir,
    pub addrs: Vec<SocketAddr>,
    children: Vec<Child>,
}

impl Fleet {
    pub async fn start(n: usize) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("restart.sh"), RESTART_SH).expect("script");
        let mut fleet = Fleet {
            dir,
            addrs: vec![],
            children: vec![],
        };
        for i in 0..n {
            let log = fleet.dir.path().join(format!("start-{i}.log"));
            let child = Command::new(BIN)
                .args(["--log-format", "json", "backend", "--listen", "127.0.0.1:0"])
                .args(["--pool", "web", "--version", "v1"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("spawn backend");
            let pid = child.id();
            fleet.children.push(child);
            let addr = bound_addr(&log).await;
            std::fs::write(fleet.pid_file(addr), pid.to_string()).expect("pid file");
            fleet.addrs.push(addr);
        }
        fleet
    }

    fn pid_file(&self, addr: SocketAddr) -> PathBuf {
        self.dir.path().join(format!("{}.pid", addr.port()))
    }

    /// The update's `--exec`: the restart script, to version v2.
    pub fn exec(&self) -> String {
        format!(
            "sh {} {{addr}} {{port}} v2",
            self.dir.path().join("restart.sh").display()
        )
    }

    /// [`SETTINGS`], pool `web` of the fleet, route `r` to it.
    pub fn config(&self) -> String {
        let list: Vec<String> = self.addrs.iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            "{SETTINGS}[pools.web]\nbackends = [{}]\n\n[[routes]]\nname = \"r\"\nsplit = {{ web = 1 }}\n",
            list.join(", ")
        )
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for addr in &self.addrs {
            let pid = std::fs::read_to_string(self.pid_file(*addr)).unwrap_or_default();
            if let Some(pid) = pid
                .trim()
                .parse()
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                // Already gone is fine: nothing is left to stop.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        for c in &mut self.children {
            // Killed above or by the script; this reaps it.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The address a `switchyard backend --listen 127.0.0.1:0` logged.
async fn bound_addr(log: &Path) -> SocketAddr {
    let mut found = None;
    eventually(Duration::from_secs(10), "the backend's listen line", || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        found = text.lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            v["listen"].as_str()?.parse().ok()
        });
        std::future::ready(found.is_some())
    })
    .await;
    found.expect("listen address")
}

/// The `version` a demo backend at `addr` answers with.
pub async fn version_of(addr: SocketAddr) -> String {
    let v = fetch(&client(), &format!("http://{addr}/"))
        .await
        .expect("backend answers");
    v["version"].as_str().unwrap().to_owned()
}

/// A ready proxy in front of `fleet`, with a load of 3 clients (one
/// request per 5 ms each) flowing through it.
pub async fn proxy_under_load(fleet: &Fleet) -> (TestProxy, Load) {
    let proxy = TestProxy::start(&fleet.config()).await;
    wait_pool_healthy(&proxy, "web").await;
    let load = Load::start(proxy.url("/"), 3, Duration::from_millis(5));
    eventually(Duration::from_secs(10), "load flowing", || async {
        load.ok() >= 20
    })
    .await;
    (proxy, load)
}

/// Two in-process backends in pool `web` behind a ready proxy.
pub async fn two_backends() -> (TestBackend, TestBackend, TestProxy) {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let config = format!(
        "{SETTINGS}{}",
        config_for(&[("web", &[&a, &b])], "split = { web = 1 }")
    );
    let proxy = TestProxy::start(&config).await;
    wait_pool_healthy(&proxy, "web").await;
    (a, b, proxy)
}

/// A request of `ms` milliseconds through the proxy, once it is in flight
/// on one of `backends`: its task (answering the status and when the
/// client had the whole answer) and that backend's address.
pub async fn slow_request(
    proxy: &TestProxy,
    ms: u64,
    backends: [&TestBackend; 2],
) -> (tokio::task::JoinHandle<(u16, SystemTime)>, SocketAddr) {
    let url = proxy.url(&format!("/slow?ms={ms}"));
    let task = tokio::spawn(async move {
        let a = get(&client(), &url, &[]).await;
        (a.status, SystemTime::now())
    });
    eventually(
        Duration::from_secs(5),
        "the slow request in flight",
        || async { backends.iter().map(|b| b.requests()).sum::<usize>() == 1 },
    )
    .await;
    let busy = backends.iter().find(|b| b.requests() == 1).unwrap();
    (task, busy.addr)
}
