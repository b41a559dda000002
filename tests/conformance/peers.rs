//! nginx and HAProxy in front of the conformance backend, so the suite can
//! show case by case where switchyard judges a request or an answer as they
//! do. Each runs as a real process on loopback, configured as it is
//! commonly deployed in front of an application (the migration guide's
//! `proxy_set_header` lines for nginx, `option forwardfor` for HAProxy),
//! with their default limits and strictness.
//!
//! The binaries are `$SWITCHYARD_TEST_NGINX` and `$SWITCHYARD_TEST_HAPROXY`
//! (set by `scripts/test`, which installs Debian's nginx and haproxy
//! when they are missing), else `nginx` / `haproxy` on PATH or in
//! /usr/sbin.
//!
//! Ports: neither reports the port of a `:0` bind, so a free port is picked
//! by binding port 0 and releasing it; a process that exits before it
//! answers (the port was taken meanwhile) is retried with a fresh one.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a peer gets to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// Attempts at a start whose port was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// A proxy the suite compares switchyard with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Nginx,
    Haproxy,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Nginx => "nginx",
            Peer::Haproxy => "haproxy",
        }
    }

    fn env(self) -> &'static str {
        match self {
            Peer::Nginx => "SWITCHYARD_TEST_NGINX",
            Peer::Haproxy => "SWITCHYARD_TEST_HAPROXY",
        }
    }

    /// The binary the tests run.
    pub fn binary(self) -> PathBuf {
        if let Some(p) = std::env::var_os(self.env()) {
            return PathBuf::from(p);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs =
            std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/local/sbin".into()]);
        for dir in dirs {
            let candidate = dir.join(self.name());
            if candidate.is_file() {
                return candidate;
            }
        }
        panic!(
            "no {} binary: run ./scripts/test (it installs Debian's nginx and haproxy), \
             apt-get install nginx haproxy, or set {}=/path/to/{}",
            self.name(),
            self.env(),
            self.name()
        )
    }

    fn config(self, dir: &Path, port: u16, backend: SocketAddr) -> String {
        let d = dir.display();
        match self {
            Peer::Nginx => format!(
                "daemon off; master_process off; worker_processes 1;\n\
                 error_log {d}/error.log warn; pid {d}/nginx.pid;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log off;\n\
                   client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
                   fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
                   map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}\n\
                   upstream b {{ server {backend}; keepalive 16; }}\n\
                   server {{\n    listen 127.0.0.1:{port};\n\
                     location / {{\n      proxy_pass http://b;\n      proxy_http_version 1.1;\n\
                       proxy_set_header Host $host;\n\
                       proxy_set_header Upgrade $http_upgrade;\n\
                       proxy_set_header Connection $connection_upgrade;\n\
                       proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                       proxy_set_header X-Forwarded-Proto $scheme;\n\
                       proxy_set_header X-Request-Id $request_id;\n    }}\n  }}\n}}\n"
            ),
            Peer::Haproxy => format!(
                "global\n  nbthread 1\n\
                 defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n\
                   timeout server 30s\n  timeout http-request 10s\n  option http-keep-alive\n\
                   option forwardfor\n\
                 frontend f\n  bind 127.0.0.1:{port}\n\
                   http-request set-header X-Forwarded-Proto http\n\
                   http-request set-header X-Request-Id %[uuid()]\n  default_backend b\n\
                 backend b\n  server s {backend}\n"
            ),
        }
    }

    fn command(self, dir: &Path) -> Command {
        let mut cmd = Command::new(self.binary());
        let cfg = dir.join("peer.conf");
        match self {
            Peer::Nginx => cmd.arg("-p").arg(dir).arg("-c").arg(cfg),
            Peer::Haproxy => cmd.arg("-db").arg("-f").arg(cfg),
        };
        cmd
    }
}

/// A running peer; stopped (and waited for) when dropped or by `stop`.
pub struct Running {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Running {
    pub async fn stop(mut self) {
        // The peer may already be gone; either way it is reaped here.
        let _ = self.child.kill().await;
    }
}

/// Starts `peer` in front of `backend` and waits until it accepts.
pub async fn start(peer: Peer, backend: SocketAddr) -> Running {
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let dir = tempfile::tempdir().expect("peer temp dir");
        let port = free_port();
        std::fs::write(
            dir.path().join("peer.conf"),
            peer.config(dir.path(), port, backend),
        )
        .expect("write peer config");
        let mut child = peer
            .command(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", peer.name()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let out = child
                    .wait_with_output()
                    .await
                    .map(|o| o.stderr)
                    .unwrap_or_default();
                last = format!(
                    "{} exited {status}: {}",
                    peer.name(),
                    String::from_utf8_lossy(&out)
                );
                break;
            }
            if TcpStream::connect(addr).await.is_ok() {
                return Running {
                    addr,
                    child,
                    _dir: dir,
                };
            }
            assert!(
                Instant::now() < deadline,
                "{} did not accept on {addr} within {READY_DEADLINE:?}",
                peer.name()
            );
            // Polled under the deadline above: the process has no readiness signal.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("{} would not start: {last}", peer.name())
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("free port").port()
}
