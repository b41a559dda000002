//! Helpers for release tests (rollouts, verified flips): client load that
//! runs until dropped, admin calls, and the `switchyard ctl` binary.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{client, get, send, Answer, TestProxy};

/// Requests from `loops` client loops until dropped; counts the answers
/// that were not 2xx (or did not come).
pub struct Load {
    stop: Arc<AtomicBool>,
    pub sent: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
}

impl Load {
    pub fn start(url: String, loops: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        for _ in 0..loops {
            let (url, stop, c) = (url.clone(), stop.clone(), client());
            let (sent, failed) = (sent.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = c
                        .get(url.parse().unwrap())
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            });
        }
        Load { stop, sent, failed }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `POST` to the admin API without a body.
pub async fn post(proxy: &TestProxy, path: &str) -> Answer {
    send(&client(), "POST", &proxy.admin_url(path), &[], "").await
}

/// `POST` a JSON body to the admin API.
pub async fn post_json(proxy: &TestProxy, path: &str, body: &serde_json::Value) -> Answer {
    let headers = [("content-type", "application/json")];
    send(
        &client(),
        "POST",
        &proxy.admin_url(path),
        &headers,
        &body.to_string(),
    )
    .await
}

/// Runs `switchyard ctl --admin <proxy> ARGS...`: exit code, stdout, stderr.
pub async fn ctl(proxy: &TestProxy, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("ctl")
        .arg("--admin")
        .arg(proxy.admin_url(""))
        .args(args)
        .output()
        .await
        .expect("run switchyard ctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The history events of `route`, oldest first.
pub async fn route_history(proxy: &TestProxy, route: &str) -> Vec<serde_json::Value> {
    let h = get(&client(), &proxy.admin_url("/api/v1/history"), &[])
        .await
        .json();
    let mut v: Vec<_> = h["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["route"] == route)
        .cloned()
        .collect();
    v.reverse();
    v
}
