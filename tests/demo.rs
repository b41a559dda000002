//! `switchyard demo` as its guide tells a new user to use it: the rollback
//! it advertises happens when the canary is made bad with the knob the
//! demo prints (`POST /_fail?rate=0.3` on the canary backend), and the
//! knob undoes itself with `rate=0`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::cli::BIN;
use support::release::Load;
use support::*;

/// A running demo: its admin and proxy addresses (from the log) and the
/// lines of its guide (stdout). Killed on drop.
struct Demo {
    child: Child,
    proxy: String,
    admin: String,
    guide: Vec<String>,
    /// Its log (stderr) lines still to read, `Ok`; stdout lines, `Err`.
    lines: mpsc::Receiver<Result<String, String>>,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("demo.toml");
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "demo", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The guide is printed before the proxy binds; read both streams in
    // threads so neither pipe fills.
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            let _ = tx_out.send(Err(l));
        }
    });
    let err = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            let _ = tx.send(Ok(l));
        }
    });
    let (mut guide, mut addrs) = (Vec::new(), None);
    while addrs.is_none() || !guide.iter().any(|l: &String| l.contains("--verify")) {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Err(line)) => guide.push(line),
            Ok(Ok(line)) => {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let (Some(a), Some(b)) = (v["proxy.addr"].as_str(), v["admin.addr"].as_str()) {
                    addrs = Some((a.to_owned(), b.to_owned()));
                }
            }
            Err(e) => panic!("demo did not start ({e}); guide so far: {guide:#?}"),
        }
    }
    let (proxy, admin) = addrs.unwrap();
    Demo {
        child,
        proxy,
        admin,
        guide,
        lines: rx,
        config,
        _dir: dir,
    }
}

/// The URL of the guide's `curl -X POST '<url>'` line for `knob`.
fn knob_url(guide: &[String], knob: &str) -> String {
    let line = guide
        .iter()
        .find(|l| l.contains("curl -X POST") && l.contains(knob))
        .unwrap_or_else(|| panic!("the guide names no {knob} knob: {guide:#?}"));
    line.split('\'').nth(1).expect("a quoted URL").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_a_rollback_when_its_canary_is_made_to_fail() {
    let demo = start_demo();
    let c = client();
    let fail = knob_url(&demo.guide, "/_fail?rate=0.3");
    assert!(knob_url(&demo.guide, "/_slow?ms=").contains("/_slow?ms=600"));

    // The knob, as printed, makes the canary answer 503 three times in ten.
    let set = send(&c, "POST", &fail, &[], "").await;
    assert_eq!(
        (set.status, set.json()["fail_rate"].clone()),
        (200, 0.3.into())
    );
    let canary = fail.split("/_fail").next().unwrap().to_owned();
    let mut failed = 0;
    for _ in 0..10 {
        let a = get(&c, &format!("{canary}/"), &[]).await;
        assert!(a.status == 200 || a.status == 503, "{}", a.status);
        failed += usize::from(a.status == 503);
    }
    assert_eq!(failed, 3);
    // Health checks are not touched: the canary stays in rotation.
    assert_eq!(get(&c, &format!("{canary}/health"), &[]).await.status, 200);

    // The guide's rollout, with the guide's traffic loop.
    let _load = Load::start(
        format!("http://{}/", demo.proxy),
        2,
        Duration::from_millis(10),
    );
    let start = Command::new(BIN)
        .args(["ctl", "rollout", "start", "web"])
        .env("SWITCHYARD_ADMIN", format!("http://{}", demo.admin))
        .output()
        .unwrap();
    assert!(start.status.success(), "{start:?}");
    let rollout = format!("http://{}/api/v1/routes/web/rollout", demo.admin);
    eventually(
        Duration::from_secs(30),
        "the demo's rollout rolls back",
        || {
            let (c, url) = (c.clone(), rollout.clone());
            async move { get(&c, &url, &[]).await.json()["phase"] == "rolled_back" }
        },
    )
    .await;
    let r = get(&c, &rollout, &[]).await.json();
    assert!(r["reason"].as_str().unwrap_or("").contains("error"), "{r}");
    let status = get(&c, &format!("http://{}/api/v1/status", demo.admin), &[])
        .await
        .json();
    // All of it back on stable.
    assert_eq!(
        status["routes"][0]["split"],
        serde_json::json!({"blue": 100}),
        "{status}"
    );

    // rate=0 heals it.
    let heal = fail.replace("rate=0.3", "rate=0");
    assert_eq!(send(&c, "POST", &heal, &[], "").await.status, 200);
    for _ in 0..10 {
        assert_eq!(get(&c, &format!("{canary}/"), &[]).await.status, 200);
    }
    // A knob is POST only, and a bad value says what it takes.
    assert_eq!(get(&c, &fail, &[]).await.status, 405);
    let bad = send(&c, "POST", &fail.replace("0.3", "3"), &[], "").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("from 0 to 1"), "{}", bad.text());
}

/// An edit of the demo's file is logged with what it changed, not only
/// that a configuration was applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_logs_what_it_changed() {
    let demo = start_demo();
    let text = std::fs::read_to_string(&demo.config).unwrap();
    let old = "split = { blue = 90, green = 0, canary = 10 }";
    assert!(text.contains(old), "{text}");
    let edited = text.replace(old, "split = { blue = 50, green = 0, canary = 50 }");
    std::fs::write(&demo.config, edited).unwrap();
    let changes = loop {
        match demo.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) => {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(c) = v["changes"].as_str() {
                    break c.to_owned();
                }
            }
            Ok(Err(_)) => {}
            Err(e) => panic!("no reload with changes logged: {e}"),
        }
    };
    assert_eq!(
        changes,
        "route web: split blue 90, green 0, canary 10 -> blue 50, green 0, canary 50"
    );
}
