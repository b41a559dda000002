//! The `switchyard` binary: `check`, refusing invalid configs before
//! binding, and graceful shutdown on SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::cli::{run, BIN};
use support::*;

/// Writes `text` to `dir/name`; answers the path.
fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().expect("a UTF-8 temp path").to_owned()
}

#[test]
fn check_prints_the_table_or_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        &dir,
        "good.toml",
        "[pools.blue]\nbackends = [\"127.0.0.1:8001\"]\n[pools.canary]\nbackends = [\"127.0.0.1:8002\"]\n\
         [[routes]]\nname = \"api\"\nsplit = { blue = 90, canary = 10 }\n",
    );
    let (code, stdout, stderr) = run(&["check", &good]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("blue 90.0%, canary 10.0%"), "{stdout}");

    let bad = write(
        &dir,
        "bad.toml",
        "[pools.blue]\nbackends = [\"127.0.0.1:8001\", \"127.0.0.1:8001\"]\n\
         [[routes]]\nname = \"api\"\nsplit = { blue = 90, canry = 10 }\n\
         [pools.canary]\nbackends = [\"127.0.0.1:8002\"]\n",
    );
    let (code, _, stderr) = run(&["check", &bad]);
    assert_eq!(code, 64, "{stderr}");
    assert!(
        stderr.contains("bad.toml:2:31: pools.blue.backends[1]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.toml:5:22: routes[0].split.canry"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean \"canary\"?"), "{stderr}");
}

#[test]
fn run_with_an_invalid_file_fails_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bad = write(
        &dir,
        "bad.toml",
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\nconnect_timeout = \"fast\"\n[pools.b]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = {{ b = 1 }}\n"),
    );
    let (code, _, stderr) = run(&["run", "--config", &bad]);
    assert_eq!(code, 64, "{stderr}");
    assert!(
        stderr.contains("bad.toml:3:19: server.connect_timeout"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let backend = TestBackend::start("slow").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        &dir,
        "s.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"20s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [pools.b]\nbackends = [\"{}\"]\n[[routes]]\nname = \"r\"\nsplit = {{ b = 1 }}\n",
            backend.addr
        ),
    );
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "run", "--config"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The proxy bound port 0: read the real address from its log.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .next()
            .expect("proxy exited before listening")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v["proxy.addr"].as_str() {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {}); // keep draining the log

    let c = client();
    let slow = tokio::spawn({
        let c = c.clone();
        async move { get(&c, &format!("http://{addr}/slow?ms=1500"), &[]).await }
    });
    eventually(
        Duration::from_secs(10),
        "slow request reaches the backend",
        || async { backend.requests() == 1 },
    )
    .await;

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    eventually(
        Duration::from_secs(10),
        "new connections are refused",
        || async { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
    let a = slow.await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "slow done from slow");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// What a new user saw: `check` printed `LeastRequest` (a Rust name),
/// stopped at the first unknown key and listed the known keys twice.
#[test]
fn check_speaks_the_files_words_and_names_every_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        &dir,
        "good.toml",
        "[pools.blue]\nbackends = [\"127.0.0.1:8001\"]\nbalance = \"round_robin\"\n\
         [pools.green]\nbackends = [\"127.0.0.1:8002\"]\n\
         [[routes]]\nname = \"api\"\nsplit = { blue = 1, green = 1 }\n",
    );
    let (code, stdout, stderr) = run(&["check", &good]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("pool  blue         round_robin"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pool  green        least_request"),
        "{stdout}"
    );

    let bad = write(
        &dir,
        "bad.toml",
        "[server]\nlisten = \"127.0.0.1:8080\"\nbogus = 1\n\
         [pools.blue]\nbackends = [\"127.0.0.1:8001\"]\nwat = 2\n\
         [[routes]]\nname = \"api\"\nsplit = { blue = 1 }\nsticky = { header = \"X-User-ID\", nope = 1 }\n",
    );
    let (code, _, stderr) = run(&["check", &bad]);
    assert_eq!(code, 64, "{stderr}");
    for at in [
        "bad.toml:3:1: server.bogus: unknown field `bogus`\n",
        "bad.toml:6:1: pools.blue.wat: unknown field `wat`\n",
        "bad.toml:10:34: routes[0].sticky.nope: unknown field `nope`\n",
    ] {
        assert!(stderr.contains(at), "{at:?} in:\n{stderr}");
    }
    assert_eq!(
        stderr.matches("upstream_idle_timeout").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains(".."), "{stderr}");
}

#[test]
fn shipped_reference_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchyard.toml");
    let (code, stdout, stderr) = run(&["check", path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("blue 90.0%, green 0.0%, canary 10.0%"));
}

/// `switchyard demo` end to end: its backends answer through the proxy, and
/// editing the generated file shifts traffic; a broken edit changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_and_follows_edits_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("demo.toml");
    let mut child = Command::new(BIN)
        .args([
            "--log-format",
            "json",
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (addr, admin) = loop {
        let line = lines.next().expect("demo exited before listening").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let (Some(a), Some(b)) = (v["proxy.addr"].as_str(), v["admin.addr"].as_str()) {
            break (a.to_owned(), b.to_owned());
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let c = client();
    let pool_of = |c: HttpClient, addr: String| async move {
        get(&c, &format!("http://{addr}/"), &[]).await.json()["pool"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = pool_of(c.clone(), addr.clone()).await;
    assert!(first == "blue" || first == "canary", "{first}");

    let text = std::fs::read_to_string(&cfg).unwrap();
    let edited = text.replace(
        "split = { blue = 90, green = 0, canary = 10 }",
        "split = { blue = 0, green = 100, canary = 0 }",
    );
    assert_ne!(text, edited, "demo config has no split line to edit");
    std::fs::write(&cfg, &edited).unwrap();
    eventually(Duration::from_secs(10), "traffic moves to green", || {
        let (c, addr) = (c.clone(), addr.clone());
        async move { pool_of(c, addr).await == "green" }
    })
    .await;
    for _ in 0..50 {
        assert_eq!(pool_of(c.clone(), addr.clone()).await, "green");
    }

    // a broken edit: reported, and green keeps serving
    std::fs::write(&cfg, edited.replace("green = 100", "green = \"lots\"")).unwrap();
    eventually(
        Duration::from_secs(10),
        "status shows the reload error",
        || {
            let (c, admin) = (c.clone(), admin.clone());
            async move {
                let s = get(&c, &format!("http://{admin}/api/v1/status"), &[])
                    .await
                    .json();
                s["last_reload"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("demo.toml:"))
            }
        },
    )
    .await;
    assert_eq!(pool_of(c.clone(), addr.clone()).await, "green");
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
