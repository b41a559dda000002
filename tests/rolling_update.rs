//! `switchyard ctl rolling-update` end to end: real `switchyard backend`
//! processes replaced by the update's command while a load generator sends
//! requests through the proxy (no retries, so every error would show); a
//! command that fails half-way; the wait for in-flight requests; the
//! refusals; and the probe endpoint the update relies on.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use support::backend::Probe;
use support::*;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// Probes every 100 ms; no retries, so the client sees any failed try.
const SETTINGS: &str = "[server]\nworkers = 1\n\n[health]\ninterval = \"100ms\"\n\
    timeout = \"90ms\"\n\n[retry]\nretries = 0\n\n";

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
struct Fleet {
    dir: tempfile::TempDir,
    addrs: Vec<SocketAddr>,
    children: Vec<Child>,
}

impl Fleet {
    async fn start(n: usize) -> Fleet {
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

    fn exec(&self) -> String {
        format!(
            "sh {} {{addr}} {{port}} v2",
            self.dir.path().join("restart.sh").display()
        )
    }

    fn config(&self) -> String {
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

/// Requests sent through the proxy by 3 tasks until stopped.
struct Load {
    ok: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String) -> Load {
        let ok: Arc<AtomicU64> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = CancellationToken::new();
        let tasks = (0..3)
            .map(|_| {
                let (url, ok, errors, stop) = (
                    url.clone(),
                    Arc::clone(&ok),
                    Arc::clone(&errors),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let c = client();
                    while !stop.is_cancelled() {
                        match fetch(&c, &url).await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                errors.lock().unwrap().push(e);
                                0
                            }
                        };
                        // Pacing, not synchronisation: ~150 requests/s per task.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Load {
            ok,
            errors,
            stop,
            tasks,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the load; fails the test on any client error.
    async fn finish_without_errors(self) {
        self.stop.cancel();
        for t in self.tasks {
            t.await.expect("load task");
        }
        let errors = self.errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "{} client errors, first: {:?}",
            errors.len(),
            errors.first()
        );
    }
}

/// GET `url`: the body as JSON when the answer is 200, else what went wrong.
async fn fetch(c: &HttpClient, url: &str) -> Result<Value, String> {
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    if status != 200 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{e}"))
}

/// `switchyard ctl ARGS` against the proxy's admin listener.
async fn ctl(proxy: &TestProxy, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .arg("ctl")
        .args(args)
        .env("SWITCHYARD_ADMIN", format!("http://{}", proxy.admin))
        .env("SWITCHYARD_BIN", BIN)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run ctl");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// `METHOD path` on the admin API.
async fn admin(proxy: &TestProxy, method: &str, path: &str) -> Answer {
    send(&client(), method, &proxy.admin_url(path), &[], "").await
}

async fn api(proxy: &TestProxy, method: &str, path: &str) -> Value {
    admin(proxy, method, path).await.json()
}

/// `(draining, health)` of each backend of pool `web`, by address.
async fn states(proxy: &TestProxy) -> Vec<(String, bool, String)> {
    let s = api(proxy, "GET", "/api/v1/status").await;
    let pool = s["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "web")
        .unwrap();
    pool["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let (addr, health) = (b["addr"].as_str().unwrap(), b["health"].as_str().unwrap());
            (addr.to_owned(), b["draining"] == true, health.to_owned())
        })
        .collect()
}

/// Drain and undrain events, oldest first, as `drain web/ADDR`.
async fn drain_history(proxy: &TestProxy) -> Vec<String> {
    let h = api(proxy, "GET", "/api/v1/history?limit=1000").await;
    let mut v: Vec<String> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "drain" || e["action"] == "undrain")
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["backend"].as_str().unwrap()
            )
        })
        .collect();
    v.reverse();
    v
}

async fn version_of(addr: SocketAddr) -> String {
    let v = fetch(&client(), &format!("http://{addr}/"))
        .await
        .expect("backend answers");
    v["version"].as_str().unwrap().to_owned()
}

async fn ready(proxy: &TestProxy) {
    eventually(Duration::from_secs(10), "every backend healthy", || async {
        states(proxy).await.iter().all(|(_, _, h)| h == "healthy")
    })
    .await;
}

/// Two in-process backends in pool `web` behind a ready proxy.
async fn two_backends() -> (TestBackend, TestBackend, TestProxy) {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let config = format!(
        "{SETTINGS}{}",
        config_for(&[("web", &[&a, &b])], "split = { web = 1 }")
    );
    let proxy = TestProxy::start(&config).await;
    ready(&proxy).await;
    (a, b, proxy)
}

/// A request of `ms` milliseconds through the proxy, once it is in flight
/// on one of `backends`: its task (answering the status and when the
/// client had the whole answer) and that backend's address.
async fn slow_request(
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

/// A ready proxy in front of `fleet`, with a load flowing through it.
async fn proxy_under_load(fleet: &Fleet) -> (TestProxy, Load) {
    let proxy = TestProxy::start(&fleet.config()).await;
    ready(&proxy).await;
    let load = Load::start(proxy.url("/"));
    eventually(Duration::from_secs(10), "load flowing", || async {
        load.ok() >= 20
    })
    .await;
    (proxy, load)
}

const TIMEOUTS: [&str; 8] = [
    "--drain-timeout",
    "30s",
    "--command-timeout",
    "30s",
    "--health-timeout",
    "30s",
    "--poll-interval",
    "50ms",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_replaces_every_backend_without_a_client_error() {
    let fleet = Fleet::start(3).await;
    let (proxy, load) = proxy_under_load(&fleet).await;
    let before = load.ok();

    let exec = fleet.exec();
    let mut args = vec!["--json", "rolling-update", "web", "--exec", &exec];
    args.extend(TIMEOUTS);
    let (code, stdout, stderr) = ctl(&proxy, &args, &[]).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The load ran during the whole update and is still served afterwards.
    let during = load.ok() - before;
    eventually(Duration::from_secs(10), "load after the update", || async {
        load.ok() >= before + during + 20
    })
    .await;
    load.finish_without_errors().await;
    assert!(during >= 20, "only {during} requests during the update");

    let summary: Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["result"], "updated");
    let results: Vec<&str> = summary["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["updated"; 3]);
    for stage in ["drain", "exec", "health", "undrain"] {
        assert!(
            stderr.contains(&format!("{} {stage}:", fleet.addrs[2])),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains("restarted"),
        "the command's output is shown: {stderr}"
    );

    for addr in &fleet.addrs {
        assert_eq!(version_of(*addr).await, "v2", "{addr}");
    }
    let expected: Vec<String> = fleet
        .addrs
        .iter()
        .flat_map(|a| [format!("drain web/{a}"), format!("undrain web/{a}")])
        .collect();
    assert_eq!(drain_history(&proxy).await, expected);
    assert!(states(&proxy)
        .await
        .iter()
        .all(|(_, d, h)| !d && h == "healthy"));
    let v = fetch(&client(), &proxy.url("/")).await.unwrap();
    assert_eq!(v["version"], "v2");
    assert!(!std::fs::read_to_string(&proxy.path)
        .unwrap()
        .contains("drain"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_stops_the_update_and_the_rest_keeps_serving() {
    let fleet = Fleet::start(3).await;
    let [first, second, third] = [fleet.addrs[0], fleet.addrs[1], fleet.addrs[2]];
    let (proxy, load) = proxy_under_load(&fleet).await;

    let exec = fleet.exec();
    let mut args = vec!["rolling-update", "web", "--exec", &exec];
    args.extend(TIMEOUTS);
    let fail_port = second.port().to_string();
    let (code, stdout, stderr) = ctl(&proxy, &args, &[("FAIL_PORT", &fail_port)]).await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{second} failed at stage exec: exit status: 3")),
        "{stderr}"
    );
    assert!(
        stderr.contains("deploy of") && stderr.contains("image v2 not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("switchyard ctl undrain web {second}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("untouched and in service: {third}")),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("{first} undrain: back in service")),
        "{stdout}"
    );

    // Traffic keeps flowing on the first and third.
    let n = load.ok();
    eventually(
        Duration::from_secs(10),
        "load after the failure",
        || async { load.ok() >= n + 50 },
    )
    .await;
    load.finish_without_errors().await;

    assert_eq!(version_of(first).await, "v2");
    assert_eq!(
        version_of(second).await,
        "v1",
        "the failing command touched nothing"
    );
    assert_eq!(version_of(third).await, "v1");
    let s = states(&proxy).await;
    let draining: Vec<bool> = s.iter().map(|(_, d, _)| *d).collect();
    assert_eq!(
        draining,
        [false, true, false],
        "only the failed backend stays drained"
    );
    assert!(s.iter().all(|(_, _, h)| h == "healthy"), "{s:?}");
    assert_eq!(
        drain_history(&proxy).await,
        [
            format!("drain web/{first}"),
            format!("undrain web/{first}"),
            format!("drain web/{second}")
        ]
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_runs_only_after_in_flight_requests_finish() {
    let (a, b, proxy) = two_backends().await;
    let (slow, busy) = slow_request(&proxy, 1500, [&a, &b]).await;
    let dir = tempfile::tempdir().unwrap();
    let exec = format!("date +%s%N > {}/ran-{{port}}", dir.path().display());
    let mut args = vec!["rolling-update", "web", "--exec", &exec];
    args.extend(TIMEOUTS);
    let (code, stdout, stderr) = ctl(&proxy, &args, &[]).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (status, done) = slow.await.unwrap();
    assert_eq!(status, 200, "the drained backend finished its request");
    assert!(
        stdout.contains(&format!("{busy} drain: waiting for 1 in-flight request(s)")),
        "{stdout}"
    );
    let ran = std::fs::read_to_string(dir.path().join(format!("ran-{}", busy.port()))).unwrap();
    let ran = UNIX_EPOCH + Duration::from_nanos(ran.trim().parse().unwrap());
    // `done` is taken once the client has the whole body, a moment after
    // the proxy's in-flight count dropped: allow that moment.
    assert!(
        ran + Duration::from_millis(300) >= done,
        "the command ran before the request ended"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_dry_run_change_nothing() {
    let bs = [
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    ];
    let config = format!(
        "{SETTINGS}{}",
        config_for(&[("web", &[&bs[0], &bs[1], &bs[2]])], "split = { web = 1 }")
    );
    let proxy = TestProxy::start(&config).await;
    ready(&proxy).await;
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["rolling-update", "nope", "--exec", "true"],
            1,
            "pool \"nope\" is not in the running configuration",
        ),
        (
            &[
                "rolling-update",
                "web",
                "--exec",
                "true",
                "--max-unavailable",
                "3",
            ],
            1,
            "--max-unavailable 3 would take every backend of pool \"web\" that is in service \
             out at once (3 of 3 are healthy and not drained); use at most 2",
        ),
        (
            &[
                "rolling-update",
                "web",
                "--exec",
                "true",
                "--max-unavailable",
                "0",
            ],
            2,
            "0",
        ),
        (
            &["--if-match", "1", "rolling-update", "web", "--exec", "true"],
            2,
            "--if-match",
        ),
    ];
    for (args, code, needle) in cases {
        let (c, out, err) = ctl(&proxy, args, &[]).await;
        assert_eq!(c, code, "{args:?}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    let (code, out, err) = ctl(
        &proxy,
        &[
            "rolling-update",
            "web",
            "--exec",
            "deploy {host} {port}",
            "--max-unavailable",
            "2",
            "--dry-run",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "[1/2] {}: sh -c \"deploy 127.0.0.1 {}\"",
            bs[1].addr,
            bs[1].addr.port()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("[2/2] {}", bs[2].addr)), "{out}");
    assert!(drain_history(&proxy).await.is_empty());
    assert!(states(&proxy).await.iter().all(|(_, d, _)| !d));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_probes_now_and_drained_backends_are_still_probed() {
    let (mut a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let config = format!(
        "{SETTINGS}{}[pools.plain]\nbackends = [\"{}\"]\nhealth = {{ enabled = false }}\n",
        config_for(&[("web", &[&a])], "split = { web = 1 }"),
        b.addr
    );
    let proxy = TestProxy::start(&config).await;
    ready(&proxy).await;
    let probe = |pool: &str, addr: SocketAddr| format!("/api/v1/backends/{pool}/{addr}/probe");

    let p = api(&proxy, "POST", &probe("web", a.addr)).await;
    assert_eq!(
        (p["ok"].clone(), p["check"].clone(), p["status"].clone()),
        (true.into(), "http".into(), 200.into()),
        "{p}"
    );
    assert_eq!(p["health"], "healthy");
    let p = api(&proxy, "POST", &probe("plain", b.addr)).await;
    assert_eq!(
        (p["ok"].clone(), p["check"].clone()),
        (true.into(), "tcp".into()),
        "{p}"
    );
    let unknown = admin(&proxy, "POST", &probe("web", b.addr)).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        admin(&proxy, "GET", &probe("web", a.addr)).await.status,
        405
    );

    // Drained, the backend is still probed: its health follows its state.
    api(
        &proxy,
        "POST",
        &format!("/api/v1/backends/web/{}/drain", a.addr),
    )
    .await;
    a.set_probe(Probe::Status(503));
    eventually(
        Duration::from_secs(5),
        "drained backend seen unhealthy",
        || async { states(&proxy).await[0].2 == "unhealthy" },
    )
    .await;
    let p = api(&proxy, "POST", &probe("web", a.addr)).await;
    assert_eq!(
        (p["ok"].clone(), p["failure"].clone()),
        (false.into(), "status 503".into()),
        "{p}"
    );
    a.stop();
    let p = api(&proxy, "POST", &probe("web", a.addr)).await;
    assert_eq!(p["failure"], "connection refused", "{p}");
    assert_eq!(p["draining"], true);
    proxy.stop().await;
}

/// `switchyard ctl ARGS` left running, its stdout readable line by line.
fn spawn_ctl(proxy: &TestProxy, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .arg("ctl")
        .args(args)
        .env("SWITCHYARD_ADMIN", format!("http://{}", proxy.admin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ctl")
}

/// Reads `child`'s stdout until a line contains `needle`, waits for
/// `ready`, then sends SIGINT; answers the exit code, stdout and stderr.
async fn interrupt_at(
    mut child: tokio::process::Child,
    needle: &str,
    ready: impl Fn() -> bool,
) -> (i32, String, String) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(l) = lines.next_line().await.expect("ctl stdout") {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "never saw {needle:?} in:\n{seen}");
    eventually(Duration::from_secs(10), "ready to interrupt", || {
        std::future::ready(ready())
    })
    .await;
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("ctl ends after SIGINT")
        .expect("ctl output");
    while let Ok(Some(l)) = lines.next_line().await {
        seen.push_str(&l);
        seen.push('\n');
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), seen, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupting_stops_the_command_and_leaves_its_backend_drained() {
    let (a, _b, proxy) = two_backends().await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let exec = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let mut args = vec!["rolling-update", "web", "--exec", &exec];
    args.extend(TIMEOUTS);
    let child = spawn_ctl(&proxy, &args);
    let (code, stdout, stderr) = interrupt_at(child, "exec: running", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    })
    .await;
    assert_eq!(code, 130, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{} interrupted at stage exec", a.addr)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("switchyard ctl undrain web {}", a.addr)),
        "{stderr}"
    );
    // The command was stopped and reaped before the ctl exited.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "sleep {pid} still runs"
    );
    let draining: Vec<bool> = states(&proxy).await.iter().map(|s| s.1).collect();
    assert_eq!(draining, [true, false]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupting_the_drain_wait_puts_the_backend_back() {
    let (a, b, proxy) = two_backends().await;
    let (slow, busy) = slow_request(&proxy, 4000, [&a, &b]).await;
    let mut args = vec!["rolling-update", "web", "--exec", "true"];
    args.extend(TIMEOUTS);
    let child = spawn_ctl(&proxy, &args);
    let needle = format!("{busy} drain: waiting for 1 in-flight request(s)");
    let (code, stdout, stderr) = interrupt_at(child, &needle, || true).await;
    assert_eq!(code, 130, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{busy} interrupted at stage drain")),
        "{stderr}"
    );
    assert!(
        stderr.contains("it is not drained, and its command did not run"),
        "{stderr}"
    );
    let draining: Vec<bool> = states(&proxy).await.iter().map(|s| s.1).collect();
    assert_eq!(
        draining,
        [false, false],
        "the untouched backend is undrained"
    );
    assert_eq!(slow.await.unwrap().0, 200);
    proxy.stop().await;
}
