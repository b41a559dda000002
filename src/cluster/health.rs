//! The store's health as this replica sees it: reachable or not, since
//! when, and the last error. Written by the lease loop (every third of the
//! TTL it talks to etcd anyway) and by the watch; read by the status and by
//! the mutation path (a mutation while etcd is down is answered 503 with
//! the reason, not attempted). Transitions are logged once each.

use std::sync::Arc;

use tokio::sync::watch;

use super::store::unix_ms;

/// One reading of the store's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    pub reachable: bool,
    /// Since when (Unix ms) the store is reachable, or unreachable.
    pub since_ms: u64,
    /// Why the last request failed, while unreachable.
    pub error: Option<String>,
}

/// The writer side, shared by the cluster's tasks.
#[derive(Clone)]
pub struct Health(Arc<watch::Sender<StoreHealth>>);

impl Health {
    /// Starts as unreachable: nothing has been heard from etcd yet.
    pub fn new() -> Self {
        Health(Arc::new(watch::Sender::new(StoreHealth {
            reachable: false,
            since_ms: unix_ms(),
            error: Some("not connected yet".into()),
        })))
    }

    pub fn subscribe(&self) -> watch::Receiver<StoreHealth> {
        self.0.subscribe()
    }

    pub fn get(&self) -> StoreHealth {
        self.0.borrow().clone()
    }

    pub fn up(&self) {
        self.0.send_if_modified(|h| {
            if h.reachable {
                return false;
            }
            tracing::info!("etcd is reachable");
            *h = StoreHealth {
                reachable: true,
                since_ms: unix_ms(),
                error: None,
            };
            true
        });
    }

    pub fn down(&self, error: &str) {
        self.0.send_if_modified(|h| {
            if h.reachable {
                tracing::warn!(
                    error,
                    "etcd is unreachable; serving on the last applied revision"
                );
                h.reachable = false;
                h.since_ms = unix_ms();
            }
            if h.error.as_deref() == Some(error) {
                return false;
            }
            h.error = Some(error.to_owned());
            true
        });
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}
