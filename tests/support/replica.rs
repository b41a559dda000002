//! Real switchyard processes (the binary) as replicas of one cluster on a
//! real etcd: each with its own config file in its own directory, loopback
//! ports read back from its "listening" log line, its log kept in a file
//! (shown when a test fails), and the signals the fault tests send
//! (SIGKILL, SIGSTOP, SIGCONT).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{client, eventually, get, send, Answer};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The local part of a replica's file: listeners on port 0, a fast file
/// watch, its `[cluster]` section.
pub fn local_part(endpoints: &[String], prefix: &str, instance: &str, ttl_s: u64) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "# {instance}'s own settings\n[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         watch_interval = \"100ms\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [cluster]\netcd = [{}]\nprefix = \"{prefix}\"\ninstance = \"{instance}\"\nlease_ttl = \"{ttl_s}s\"\n\n",
        list.join(", ")
    )
}

/// One switchyard process.
pub struct Proc {
    pub name: String,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub path: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Starts the binary on `config` (`RUST_LOG=info`, JSON logs) and
    /// waits for its listeners.
    pub fn start(name: &str, config: &str) -> Proc {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config).expect("write config");
        let log = dir.path().join("log.jsonl");
        let mut child = Command::new(BIN)
            .args(["--log-format", "json", "run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "switchyard=info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn switchyard");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut file = std::fs::File::create(&log).expect("log file");
        let mut line = String::new();
        let (proxy, admin) = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                let status = child.wait();
                panic!(
                    "{name} exited before listening ({status:?}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let _ = file.write_all(line.as_bytes());
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if let (Some(p), Some(a)) = (v["proxy.addr"].as_str(), v["admin.addr"].as_str()) {
                break (p.parse().expect("addr"), a.parse().expect("addr"));
            }
        };
        // The rest of the log goes to the file, so the pipe never fills.
        std::thread::spawn(move || {
            let mut buf = String::new();
            while stderr.read_line(&mut buf).unwrap_or(0) > 0 {
                let _ = file.write_all(buf.as_bytes());
                buf.clear();
            }
        });
        Proc {
            name: name.to_owned(),
            proxy,
            admin,
            path,
            log,
            child: Some(child),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `METHOD path` on the admin API with a JSON body (or none).
    pub async fn api(&self, method: &str, path: &str, body: &str) -> Answer {
        send(&client(), method, &self.admin_url(path), &[], body).await
    }

    /// `switchyard ctl --admin <this replica> ARGS...`: exit code, stdout,
    /// stderr.
    pub async fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::process::Command::new(BIN)
            .arg("ctl")
            .arg("--admin")
            .arg(self.admin_url(""))
            .args(args)
            .env_remove("SWITCHYARD_ADMIN_TOKEN")
            .output()
            .await
            .expect("run switchyard ctl");
        super::cli::outcome(&out)
    }

    /// `PUT /api/v1/routes/{route}/split`.
    pub async fn set_split(&self, route: &str, body: &str) -> Answer {
        let path = format!("/api/v1/routes/{route}/split");
        self.api("PUT", &path, body).await
    }

    pub async fn status(&self) -> Value {
        get(&client(), &self.admin_url("/api/v1/status"), &[])
            .await
            .json()
    }

    /// Route `route`'s split as the status reports it: pool → weight.
    pub async fn split(&self, route: &str) -> Value {
        let s = self.status().await;
        s["routes"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == route))
            .map(|r| r["split"].clone())
            .unwrap_or(Value::Null)
    }

    pub fn file(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// Waits until the replica has applied a revision of the cluster.
    pub async fn joined(&self) {
        eventually(
            Duration::from_secs(20),
            &format!("{} joined", self.name),
            || async {
                self.status().await["cluster"]["applied_revision"]
                    .as_i64()
                    .unwrap_or(0)
                    > 0
            },
        )
        .await;
    }

    /// The log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("pid");
        rustix::process::kill_process(pid, sig).expect("signal");
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn sigstop(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    pub fn sigcont(&self) {
        self.signal(rustix::process::Signal::CONT);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.name, self.log_text());
        }
        self.kill();
    }
}

/// Starts `names` on one cluster at `endpoints`, each with `shared` as the
/// shared part of its file; the first seeds the cluster, the others join
/// it after.
pub async fn start_all(
    endpoints: &[String],
    prefix: &str,
    names: &[&str],
    shared: &str,
    ttl_s: u64,
) -> Vec<Proc> {
    let mut out = Vec::new();
    for name in names {
        let config = format!("{}{shared}", local_part(endpoints, prefix, name, ttl_s));
        let p = Proc::start(name, &config);
        p.joined().await;
        out.push(p);
    }
    out
}
