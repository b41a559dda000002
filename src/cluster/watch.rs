//! Following the shared document: every revision of `P/config`, in order,
//! published on a `watch` channel (a consumer that falls behind gets the
//! newest revision, which is all it needs: each revision is a whole
//! document, not a delta).
//!
//! The watch resumes from the revision after the last one seen, so a
//! reconnect (etcd restarted, a member lost, a network blip) neither misses
//! nor repeats a revision. If that revision was compacted away meanwhile,
//! the document is read again and the watch starts after the read.

use etcd_client::{EventType, WatchOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::lease::Backoff;
use super::store::{Document, Store};

/// Follows the document until `shutdown`. `from`: the revision already
/// known (the seed's), or 0 to start by reading the current one.
pub async fn run(
    store: Store,
    from: i64,
    docs: watch::Sender<Option<Document>>,
    health: Health,
    ttl: std::time::Duration,
    shutdown: CancellationToken,
) {
    let key = store.keys().config();
    let mut next = if from > 0 { from + 1 } else { 0 };
    let mut backoff = Backoff::new(ttl);
    loop {
        if next == 0 {
            match store.get().await {
                Ok((doc, at)) => {
                    if let Some(d) = doc {
                        publish(&docs, d);
                    }
                    next = at + 1;
                }
                Err(e) => {
                    health.down(&e.to_string());
                    if wait(&shutdown, backoff.next()).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let mut c = store.client();
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return,
            w = c.watch(key.clone(), Some(WatchOptions::new().with_start_revision(next).with_progress_notify())) => w,
        };
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                health.down(&super::error::describe(&e));
                if wait(&shutdown, backoff.next()).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = stream.message() => m,
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => {
                    tracing::debug!("etcd watch stream ended; resuming");
                    break;
                }
                Err(e) => {
                    health.down(&super::error::describe(&e));
                    break;
                }
            };
            if resp.compact_revision() > 0 {
                tracing::warn!(
                    from = next,
                    compacted = resp.compact_revision(),
                    "the revisions to resume from were compacted; reading the document again"
                );
                next = 0;
                break;
            }
            if resp.canceled() {
                tracing::debug!(
                    reason = resp.cancel_reason(),
                    "etcd cancelled the watch; resuming"
                );
                break;
            }
            health.up();
            backoff.reset();
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                next = next.max(kv.mod_revision() + 1);
                match ev.event_type() {
                    EventType::Put => match Document::decode(kv) {
                        Ok(d) => publish(&docs, d),
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring an undecodable document revision")
                        }
                    },
                    EventType::Delete => tracing::warn!(
                        key = %key,
                        "the shared document was deleted from etcd; keeping the last revision (write it again, or restart a replica to seed it)"
                    ),
                }
            }
        }
        if wait(&shutdown, backoff.next()).await {
            return;
        }
    }
}

fn publish(docs: &watch::Sender<Option<Document>>, d: Document) {
    docs.send_if_modified(|cur| {
        if cur.as_ref().is_some_and(|c| c.revision >= d.revision) {
            return false;
        }
        tracing::debug!(revision = d.revision, by = %d.by, source = %d.source, "cluster document revision");
        *cur = Some(d);
        true
    });
}

/// Sleeps `d`; true if shutdown came first.
async fn wait(shutdown: &CancellationToken, d: std::time::Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
