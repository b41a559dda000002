//! `examples/fastapi/run-local.sh`, the FastAPI example without Docker:
//! it starts blue, green and canary uvicorns on loopback and switchyard in
//! front of them, the walkthrough's flip and rollback work through it, and
//! stopping the script stops every process it started.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::cli::BIN;
use support::python::python;
use support::*;

/// The script's process group, killed on drop (a failed assertion must
/// not leave uvicorns behind).
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        // Best effort: the group is usually gone already.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// Ports the kernel handed out just now and that are free again.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_local_serves_the_walkthrough_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("local.toml");
    let p = free_ports(9);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fastapi/run-local.sh");
    let mut child = Command::new(script)
        .env("PORT", p[0].to_string())
        .env("ADMIN_PORT", p[1].to_string())
        .env("BLUE_PORTS", list(&p[2..5]))
        .env("GREEN_PORTS", list(&p[5..8]))
        .env("CANARY_PORTS", list(&p[8..9]))
        .env("PYTHON", python())
        .env("SWITCHYARD", BIN)
        .env("CONFIG", &config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    let err = BufReader::new(child.stderr.take().unwrap());
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        out.lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx2.send(l)))
    });
    std::thread::spawn(move || {
        err.lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx.send(l)))
    });
    let script = Script(child);
    let mut seen = Vec::new();
    // Seven FastAPI processes importing on a shared machine: generous.
    while !seen
        .iter()
        .any(|l: &String| l.contains("switchyard listening"))
    {
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(l) => seen.push(l),
            Err(e) => panic!("run-local.sh did not start switchyard ({e}): {seen:#?}"),
        }
    }
    let admin = format!("http://127.0.0.1:{}", p[1]);
    assert!(seen
        .iter()
        .any(|l| l.contains(&format!("export SWITCHYARD_ADMIN={admin}"))));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("\n[routes.rollout]\ncanary = \"canary\"\n"),
        "{text}"
    );
    assert!(!text.contains("token_env"), "{text}");

    let c = client();
    let data = format!("http://127.0.0.1:{}/api/data", p[0]);
    let color = |c: HttpClient, url: String| async move {
        let a = get(&c, &url, &[("x-user-id", "alice")]).await;
        if a.status == 200 {
            a.json()["color"].as_str().unwrap_or("").to_owned()
        } else {
            String::new()
        }
    };
    eventually(Duration::from_secs(30), "blue answers", || {
        let f = color(c.clone(), data.clone());
        async move { f.await == "blue" }
    })
    .await;

    // The walkthrough's ctl commands, against the script's switchyard.
    let ctl = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("ctl")
            .args(args)
            .env("SWITCHYARD_ADMIN", &admin)
            .output()
            .unwrap();
        assert!(out.status.success(), "ctl {args:?}: {out:?}");
    };
    ctl(&["flip", "api", "green"]);
    eventually(Duration::from_secs(30), "green answers", || {
        let f = color(c.clone(), data.clone());
        async move { f.await == "green" }
    })
    .await;
    ctl(&["rollback", "api"]);
    assert_eq!(color(c.clone(), data.clone()).await, "blue");

    // SIGTERM to the script (not its group): it stops what it started.
    let pid = script.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut script = script;
    let status = script.0.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    for port in &p[..9] {
        let addr = format!("127.0.0.1:{port}");
        eventually(Duration::from_secs(20), &format!("{addr} closed"), || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(&addr).await.is_err() }
        })
        .await;
    }
}
