//! The cluster's side of the seam into the controller (`control::Shared`)
//! and the task that feeds the controller:
//!
//! - proposals go to `Store::propose_as` (a compare-and-swap on the
//!   planned revision; the rollout engine's are fenced by the leader key);
//! - every revision the watch delivers is handed to the controller as
//!   `Change::Shared` (validated and swapped like a reload);
//! - the revision the controller serves is published in this replica's
//!   member record;
//! - when the store answers again after an outage, a file edit saved
//!   meanwhile is proposed (a reload), and a local fall-back is dropped on
//!   a replica that is not the leader (the leader's rollout decides);
//! - events this replica makes go to the cluster's history (the leader's
//!   rollout events fenced, so an ex-leader's judgement never appears).

use std::sync::Arc;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::election::Role;
use super::error::ClusterError;
use super::health::Health;
use super::history::History;
use super::store::{Document, Store};
use crate::control::{
    BoxFuture, Change, ChangeSource, ControlHandle, ShareError, Shared, SharedDocument,
};
use crate::event::Event;

/// `control::Shared` on etcd.
pub(super) struct Bridge {
    pub store: Store,
    pub health: Health,
    pub role: watch::Receiver<Role>,
    pub step_down: Arc<Notify>,
    pub history: Arc<History>,
}

/// Records what a request said about the store's health.
pub(super) fn note<T>(health: &Health, r: &Result<T, ClusterError>) {
    match r {
        Err(ClusterError::Unavailable(why)) => health.down(why),
        Ok(_) | Err(ClusterError::Conflict { .. } | ClusterError::NotLeader) => health.up(),
        Err(_) => {}
    }
}

fn share_error(e: ClusterError) -> ShareError {
    match e {
        ClusterError::Conflict { planned, current } => ShareError::Conflict { planned, current },
        ClusterError::NotLeader => ShareError::NotLeader,
        other => ShareError::Unavailable(other.to_string()),
    }
}

fn shared_doc(d: &Document) -> SharedDocument {
    SharedDocument {
        revision: d.revision,
        text: d.text.clone(),
        by: d.by.clone(),
    }
}

impl Shared for Bridge {
    /// Refuses at once only when the store has been unreachable for a
    /// while: one failed request (a member of three killed, a leader
    /// election in etcd) is no outage, and a proposal is retried anyway.
    fn ready(&self) -> Result<(), String> {
        let h = self.health.get();
        let down_ms = super::store::unix_ms().saturating_sub(h.since_ms);
        if h.reachable || down_ms < super::connect::RPC_TIMEOUT.as_millis() as u64 {
            Ok(())
        } else {
            Err(h.error.unwrap_or_else(|| "no answer".into()))
        }
    }

    fn propose<'a>(
        &'a self,
        planned: i64,
        text: &'a str,
        source: ChangeSource,
    ) -> BoxFuture<'a, Result<i64, ShareError>> {
        Box::pin(async move {
            let fence = if source == ChangeSource::Rollout {
                let fence = self.role.borrow().fence();
                Some(fence.ok_or(ShareError::NotLeader)?)
            } else {
                None
            };
            let r = self
                .store
                .propose_as(planned, text, source.as_str(), fence)
                .await;
            note(&self.health, &r);
            if matches!(r, Err(ClusterError::NotLeader)) {
                self.step_down.notify_one();
            }
            r.map(|d| d.revision).map_err(share_error)
        })
    }

    fn current(&self) -> BoxFuture<'_, Result<Option<SharedDocument>, ShareError>> {
        Box::pin(async move {
            let r = self.store.get().await;
            note(&self.health, &r);
            let (doc, _) = r.map_err(share_error)?;
            Ok(doc.as_ref().map(shared_doc))
        })
    }

    fn record(&self, event: &Event) {
        let value = match serde_json::to_value(event) {
            Ok(v) => v,
            Err(_) => return,
        };
        let fence = if event.source == ChangeSource::Rollout {
            match self.role.borrow().fence() {
                Some(f) => Some(f),
                // An ex-leader's judgement stays out of the cluster's history.
                None => return,
            }
        } else {
            None
        };
        let (store, history) = (self.store.clone(), self.history.clone());
        tokio::spawn(async move {
            let r = match (fence, history.event_op(value.clone())) {
                (Some(f), Ok(op)) => store.fenced(f, vec![op]).await.map(|_| ()),
                (None, _) => history.append(value).await,
                (_, Err(e)) => Err(e),
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "event not added to the cluster's history");
            }
        });
    }
}

/// What `sync` reads and writes.
pub(super) struct Feed {
    pub docs: watch::Receiver<Option<Document>>,
    pub applied: Arc<watch::Sender<i64>>,
    pub health: watch::Receiver<super::health::StoreHealth>,
    pub role: watch::Receiver<Role>,
}

/// Feeds the controller until `shutdown` (see the module doc).
pub(super) async fn sync(control: ControlHandle, mut feed: Feed, shutdown: CancellationToken) {
    let mut state = control.shared_state();
    let mut was_up = feed.health.borrow().reachable;
    let deliver = |doc: Option<Document>| {
        let control = control.clone();
        async move {
            if let Some(d) = doc {
                // The controller logs and reports a revision it refuses.
                let _ = control
                    .change(ChangeSource::Cluster, None, Change::Shared(shared_doc(&d)))
                    .await;
            }
        }
    };
    let first = feed.docs.borrow_and_update().clone();
    deliver(first).await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = feed.docs.changed() => {
                if r.is_err() { return }
                let doc = feed.docs.borrow_and_update().clone();
                deliver(doc).await;
            }
            r = state.changed() => {
                if r.is_err() { return }
                let revision = state.borrow_and_update().revision;
                feed.applied.send_if_modified(|a| {
                    let changed = *a != revision;
                    *a = revision;
                    changed
                });
            }
            r = feed.health.changed() => {
                if r.is_err() { return }
                let up = feed.health.borrow_and_update().reachable;
                if up && !was_up {
                    // A file edit saved while the store was away.
                    let _ = control.reload(ChangeSource::File).await;
                    drop_fallback(&control, &feed).await;
                }
                was_up = up;
            }
            r = feed.role.changed() => {
                if r.is_err() { return }
                feed.role.borrow_and_update();
                if feed.health.borrow().reachable {
                    drop_fallback(&control, &feed).await;
                }
            }
        }
    }
}

/// A local fall-back on a replica that does not lead: the cluster's
/// revision applies again (the leader's rollout decides from here).
async fn drop_fallback(control: &ControlHandle, feed: &Feed) {
    let has = control.shared_state().borrow().local_override.is_some();
    let leads = matches!(*feed.role.borrow(), Role::Leader(_));
    if !has || leads {
        return;
    }
    let doc = feed.docs.borrow().clone();
    if let Some(d) = doc {
        tracing::info!(
            revision = d.revision,
            "the store is back and this replica does not lead: its local fall-back gives way to the cluster's revision"
        );
        let _ = control
            .change(ChangeSource::Cluster, None, Change::Shared(shared_doc(&d)))
            .await;
    }
}
