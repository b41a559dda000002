//! The access log: JSON lines with the expected fields, a full queue drops
//! lines without stalling requests, and SIGUSR1 reopens the file.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_the_request() {
    let b = TestBackend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = format!(
        "[server]\naccess_log = \"{}\"\n{}",
        log.display(),
        config_for(&[("blue", &[&b])], "split = { blue = 1 }")
    );
    let proxy = TestProxy::start(&cfg).await;
    let c = client();
    let a = get(
        &c,
        &proxy.url("/hello?x=1"),
        &[("X-Request-Id", "rid-1"), ("User-Agent", "t/1")],
    )
    .await;
    assert_eq!(a.status, 200);
    let n = a.body.len() as u64;
    assert_eq!(get(&c, &proxy.url("/status/503"), &[]).await.status, 503);
    eventually(Duration::from_secs(10), "two access log lines", || async {
        lines(&log).len() == 2
    })
    .await;
    let l = lines(&log);
    let e = &l[0];
    assert_eq!(e["request_id"], "rid-1");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["path"], "/hello?x=1");
    assert_eq!(e["status"], 200);
    assert_eq!(e["route"], "r");
    assert_eq!(e["pool"], "blue");
    assert_eq!(e["backend"], b.addr.to_string());
    assert_eq!(e["client"], "127.0.0.1");
    assert_eq!(e["bytes_out"], n);
    assert_eq!(e["retries"], 0);
    assert_eq!(e["user_agent"], "t/1");
    assert!(e["total_time"].as_f64().unwrap() >= e["upstream_time"].as_f64().unwrap());
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(l[1]["status"], 503);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_writer_drops_lines_and_never_stalls_requests() {
    let b = TestBackend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    // A FIFO that is opened for reading but never read: once the pipe's
    // buffer is full, the writer blocks on every write.
    let fifo = dir.path().join("stuck.log");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let cfg = format!(
        "[server]\naccess_log = \"{}\"\naccess_log_buffer = 4\n{}",
        fifo.display(),
        config_for(&[("blue", &[&b])], "split = { blue = 1 }")
    );
    let proxy = TestProxy::start(&cfg).await;
    let c = client();
    let long = "x".repeat(2000); // long paths fill the pipe quickly
    let sent = tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..600 {
            let a = get(&c, &proxy.url(&format!("/{long}?{i}")), &[]).await;
            assert_eq!(a.status, 200);
        }
    })
    .await;
    assert!(sent.is_ok(), "requests stalled behind the access log");
    let m = get(&c, &proxy.admin_url("/metrics"), &[]).await.text();
    let dropped: f64 = m
        .lines()
        .find(|l| l.starts_with("switchyard_access_log_dropped_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(dropped > 0.0, "no line was dropped:\n{m}");
    drop(reader);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_file_after_rotation() {
    let b = TestBackend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg_path = dir.path().join("s.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = \"{}\"\naccess_log_format = \"combined\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
            log.display(),
            config_for(&[("blue", &[&b])], "split = { blue = 1 }")
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&cfg_path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = out.next().expect("exited before listening").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v["proxy.addr"].as_str() {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || for _ in out {});
    let c = client();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert_eq!(
        get(&c, &format!("http://{addr}/first"), &[]).await.status,
        200
    );
    eventually(Duration::from_secs(10), "first line", || async {
        read(&log).contains("GET /first")
    })
    .await;
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    assert!(Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    // Until the writer has reopened, lines still go to the rotated file;
    // keep sending until one lands in the new file.
    eventually(
        Duration::from_secs(10),
        "a line in the reopened file",
        || {
            let (c, addr, log) = (c.clone(), addr.clone(), log.clone());
            async move {
                get(&c, &format!("http://{addr}/second"), &[]).await;
                read(&log).contains("GET /second")
            }
        },
    )
    .await;
    let line = read(&log).lines().next().unwrap().to_owned();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("\"GET /second HTTP/1.1\" 200 ") && line.contains("route=r pool=blue"),
        "{line}"
    );
    assert!(read(&rotated).contains("GET /first"));
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
        .success());
}

/// `upstream_time` ends at the answer's head, `total_time` when its body
/// has been sent: on both HTTP/1 paths a body the backend holds back for
/// 300 ms shows in the total and not in the upstream time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_time_runs_until_the_body_ends() {
    for http1 in ["lean", "hyper"] {
        let b = TestBackend::start("b").await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let cfg = format!(
            "[server]\nhttp1 = \"{http1}\"\naccess_log = \"{}\"\n{}",
            log.display(),
            config_for(&[("blue", &[&b])], "split = { blue = 1 }")
        );
        let proxy = TestProxy::start(&cfg).await;
        let resp = client()
            .request(
                http::Request::get(proxy.url("/stream?chunks=2"))
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{http1}");
        // The gap under test, not a synchronisation: the head is here,
        // the last chunk is held for at least this long.
        let held = Duration::from_millis(300);
        tokio::time::sleep(held).await;
        b.stats.release.notify_one();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"chunk0;chunk1;", "{http1}");
        eventually(Duration::from_secs(10), "the access log line", || async {
            lines(&log).len() == 1
        })
        .await;
        let e = &lines(&log)[0];
        let (up, total) = (
            e["upstream_time"].as_f64().unwrap(),
            e["total_time"].as_f64().unwrap(),
        );
        assert!(
            total - up >= held.as_secs_f64() * 0.99,
            "{http1}: upstream_time {up}, total_time {total}"
        );
        proxy.stop().await;
    }
}
