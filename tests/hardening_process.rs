//! Issue 18, item 1: the real binary keeps serving, and obeys SIGTERM and
//! SIGINT, when the reader of its stderr goes away (`run 2>&1 | head -c
//! 200`, a container log driver that exits) or stops reading (a full
//! pipe). Failed log lines are counted in `/metrics`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

struct Running {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    /// The rest of the log; `take()` and drop it to close the pipe's read
    /// end, as a reader that exits does.
    stderr: Option<BufReader<ChildStderr>>,
}

/// Starts the binary on `config` with JSON logs (and `RUST_LOG=filter`)
/// and reads its addresses from the "listening" line.
// The child goes back to the caller, which waits for it; a panic here
// fails the test, and the harness reaps what is left.
#[allow(clippy::zombie_processes)]
fn spawn(dir: &tempfile::TempDir, config: &str, filter: &str) -> Running {
    let path = dir.path().join("s.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .env("RUST_LOG", filter)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait();
            panic!("exited before listening: {status:?}");
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let (Some(p), Some(a)) = (v["proxy.addr"].as_str(), v["admin.addr"].as_str()) {
            return Running {
                proxy: p.parse().unwrap(),
                admin: a.parse().unwrap(),
                child,
                stderr: Some(stderr),
            };
        }
    }
}

/// Two routes: `/ok` to a live backend, everything else to a dead one
/// (each request a 502 and a warning in the log).
fn config(live: &TestBackend) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [health]\nenabled = false\n\
         [pools.live]\nbackends = [\"{}\"]\n[pools.dead]\nbackends = [\"127.0.0.1:1\"]\n\
         [[routes]]\nname = \"ok\"\npath_prefix = \"/ok\"\nsplit = {{ live = 1 }}\n\
         [[routes]]\nname = \"dead\"\nsplit = {{ dead = 1 }}\n",
        live.addr
    )
}

/// Requests that log, each answered in time (never a hang).
async fn still_serving(r: &Running) {
    let c = client();
    for i in 0..50 {
        let dead = tokio::time::timeout(
            Duration::from_secs(10),
            get(&c, &format!("http://{}/x{i}", r.proxy), &[]),
        )
        .await
        .expect("a request hung");
        assert_eq!(dead.status, 502);
        let ok = get(&c, &format!("http://{}/ok", r.proxy), &[]).await;
        assert_eq!(ok.status, 200);
    }
}

fn dropped_lines(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_log_lines_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no log drop counter in:\n{metrics}"))
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Waits for the process to exit (within 15 s) and returns its status.
async fn exits(mut child: Child) -> std::process::ExitStatus {
    let waited = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || {
            let status = child.wait();
            (child, status)
        }),
    )
    .await;
    match waited {
        Ok(joined) => joined.unwrap().1.unwrap(),
        Err(_) => panic!("the proxy ignored the signal"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_stops_nothing() {
    let live = TestBackend::start("live").await;
    for sig in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut r = spawn(&dir, &config(&live), "info");
        // The log reader goes away, as `| head -c 200` does.
        drop(r.stderr.take());
        still_serving(&r).await;
        let ready = get(&client(), &format!("http://{}/ready", r.admin), &[]).await;
        assert_eq!(ready.status, 200, "{}", ready.text());
        // The signal handler logs too; it must still stop the process.
        signal(&r.child, sig);
        let status = exits(r.child).await;
        assert!(status.success(), "{sig}: exit status {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_log_writes_are_counted() {
    let live = TestBackend::start("live").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&live).replace("[admin]\n", "[admin]\nmetrics_open = true\n");
    let mut r = spawn(&dir, &cfg, "info");
    drop(r.stderr.take());
    // The 502 warnings all fail to write.
    let c = client();
    for i in 0..20 {
        let a = get(&c, &format!("http://{}/x{i}", r.proxy), &[]).await;
        assert_eq!(a.status, 502);
    }
    let metrics = format!("http://{}/metrics", r.admin);
    eventually(Duration::from_secs(10), "dropped log lines counted", || {
        let (c, url) = (c.clone(), metrics.clone());
        async move { dropped_lines(&get(&c, &url, &[]).await.text()) > 0 }
    })
    .await;
    signal(&r.child, "-TERM");
    assert!(exits(r.child).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_blocks_nothing() {
    let live = TestBackend::start("live").await;
    let dir = tempfile::tempdir().unwrap();
    // Trace level: hyper and the proxy log several lines per request, so
    // the pipe (64 KiB) fills within the first requests and stays full.
    let mut r = spawn(&dir, &config(&live), "trace");
    still_serving(&r).await;
    still_serving(&r).await;
    signal(&r.child, "-TERM");
    // Only now is the log read again (so the exit's own lines can drain).
    if let Some(stderr) = r.stderr.take() {
        std::thread::spawn(move || for _ in stderr.lines() {});
    }
    assert!(exits(r.child).await.success());
}

/// `name{kind="KIND"} N` of the metrics text.
fn counter(metrics: &str, name: &str, kind: &str) -> u64 {
    let prefix = format!("{name}{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
}

/// Issue 18, item 5: a dead pool fails every request, yet the log gets
/// one `request failed` line per interval, then a summary with the count
/// left out; the metrics count every one. The log is read all along (a
/// full pipe would drop lines and hide a flood).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_warnings_are_rate_limited_and_counted() {
    const REQUESTS: u64 = 400;
    let live = TestBackend::start("live").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&live).replace("[admin]\n", "[admin]\nmetrics_open = true\n");
    let mut r = spawn(&dir, &cfg, "info");
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let stderr = r.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            // The receiver goes at the test's end; later lines don't matter.
            let _ = tx.send(serde_json::from_str(&line).unwrap_or_default());
        }
    });
    let started = std::time::Instant::now();
    let c = client();
    for i in 0..REQUESTS {
        let a = get(&c, &format!("http://{}/x{i}", r.proxy), &[]).await;
        assert_eq!(a.status, 502);
    }
    let elapsed = started.elapsed().as_secs();
    let metrics = format!("http://{}/metrics", r.admin);
    let text = get(&c, &metrics, &[]).await.text();
    assert_eq!(
        counter(&text, "switchyard_log_events_total", "request_failed"),
        REQUESTS
    );
    assert_eq!(dropped_lines(&text), 0, "the test read every line");

    // The summary of what was left out comes once its interval is over.
    let (mut failed, mut suppressed) = (0u64, 0u64);
    let summary = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(v) = lines.recv().await {
            let f = &v;
            match f["message"].as_str() {
                Some("request failed") => {
                    failed += 1;
                    suppressed += f["suppressed"].as_u64().unwrap_or(0);
                }
                Some(m)
                    if m.starts_with("repeated warnings left out")
                        && f["kind"] == "request_failed" =>
                {
                    return f["suppressed"].as_u64().unwrap_or(0);
                }
                _ => {}
            }
        }
        panic!("the log ended without a summary");
    })
    .await
    .expect("no summary of the left-out warnings within 20 s");
    // One line per 5 s interval the requests took (and one to start).
    assert!(
        (1..=elapsed / 5 + 2).contains(&failed),
        "{failed} lines in {elapsed} s"
    );
    assert_eq!(failed + suppressed + summary, REQUESTS);
    let text = get(&c, &metrics, &[]).await.text();
    assert_eq!(
        counter(&text, "switchyard_log_suppressed_total", "request_failed"),
        REQUESTS - failed
    );
    signal(&r.child, "-TERM");
    assert!(exits(r.child).await.success());
}
