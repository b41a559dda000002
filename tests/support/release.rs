//! Helpers for release tests (rollouts, verified flips): client load that
//! runs until dropped (counting failures for the canary engine to judge),
//! the rollout's status, and (re-exported) the admin calls and `ctl`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{client, get, TestBackend, TestProxy};

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

// The admin calls and the `ctl` runner release tests use, by their old
// names here (they live with their concern).
#[allow(unused_imports)]
pub use super::admin::{post, post_json, route_history};
#[allow(unused_imports)]
pub use super::cli::ctl;

/// `GET /api/v1/routes/ROUTE/rollout`.
pub async fn rollout_status(proxy: &TestProxy, route: &str) -> serde_json::Value {
    let path = format!("/api/v1/routes/{route}/rollout");
    get(&client(), &proxy.admin_url(&path), &[]).await.json()
}

/// How long a release test waits for a phase or a count.
pub const WAIT: Duration = Duration::from_secs(20);

/// Waits ([`WAIT`] at most) until route `r`'s rollout is in `phase`;
/// answers its status then.
pub async fn wait_rollout_phase(proxy: &TestProxy, phase: &str) -> serde_json::Value {
    super::eventually(WAIT, &format!("rollout phase {phase}"), || async {
        rollout_status(proxy, "r").await["phase"] == phase
    })
    .await;
    rollout_status(proxy, "r").await
}

/// A history event, by the fields release tests compare.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: String,
    pub source: String,
    pub detail: String,
    pub new_split: serde_json::Value,
}

/// The history of `route`, oldest first.
pub async fn events(proxy: &TestProxy, route: &str) -> Vec<Event> {
    let text = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or("").to_owned();
    route_history(proxy, route)
        .await
        .iter()
        .map(|e| Event {
            action: text(e, "action"),
            source: text(e, "source"),
            detail: text(e, "detail"),
            new_split: e["new_split"].clone(),
        })
        .collect()
}

/// `route::canary_config` with `rollout`'s keys, its file watched every
/// 100 ms.
pub fn rollout_config(blue: &TestBackend, canary: &TestBackend, rollout: &str) -> String {
    format!(
        "[server]\nwatch_interval = \"100ms\"\n\n{}",
        super::route::canary_config(blue, canary, "", rollout)
    )
}

/// The split of route `r` from blue to canary as the table lists it
/// (pools without weight left out).
pub fn canary_weights(blue: u32, canary: u32) -> Vec<(String, u32)> {
    super::route::weights(&[("blue", blue), ("canary", canary)])
}

/// Backends `blue` and `canary` behind a proxy started from
/// `rollout_config(blue, canary, rollout)`.
pub async fn canary_rollout(rollout: &str) -> (TestBackend, TestBackend, TestProxy) {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let proxy = TestProxy::start(&rollout_config(&blue, &canary, rollout)).await;
    (blue, canary, proxy)
}
