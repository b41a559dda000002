//! Leader election on a lease-bound key, `P/leader`: whoever creates it
//! (a transaction comparing its `create_revision` with 0) is the leader
//! until its lease ends; the others watch the key and campaign when it is
//! deleted. The `create_revision` of the key this replica created is its
//! fencing token (`Fence`): every leadership write compares it
//! (`Store::fenced`), so a leader that was paused or cut off past its
//! lease, and then acts on what it still believes, writes nothing.
//!
//! Why not etcd's election API: it is the same thing (a key per candidate
//! under a lease, the lowest create_revision leads) behind a blocking
//! `campaign` call that cannot be raced against losing the lease; with
//! one key the leader and its token are read in one request.
//!
//! State on a `watch` channel: `Role::Leader(fence)` or
//! `Role::Follower { leader }` (the current leader's instance name, if
//! any).

use etcd_client::{
    Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::connect::rpc;
use super::error::ClusterError;
use super::lease::Backoff;
use super::store::{Fence, Store};

/// This replica's part in the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader(Fence),
    Follower { leader: Option<String> },
}

impl Role {
    pub fn fence(&self) -> Option<Fence> {
        match self {
            Role::Leader(f) => Some(*f),
            Role::Follower { .. } => None,
        }
    }
}

/// Campaigns whenever this replica has a lease and there is no leader,
/// until `shutdown`. Steps down as soon as its lease is gone, the leader
/// key changes hands, or a fenced write was refused (`step_down`).
pub async fn run(
    store: Store,
    mut lease: watch::Receiver<Option<i64>>,
    role: watch::Sender<Role>,
    step_down: std::sync::Arc<tokio::sync::Notify>,
    ttl: std::time::Duration,
    shutdown: CancellationToken,
) {
    let key = store.keys().leader();
    let mut backoff = Backoff::new(ttl);
    loop {
        // A lease first: the leader key is bound to it.
        let id = loop {
            if let Some(id) = *lease.borrow_and_update() {
                break id;
            }
            set(&role, Role::Follower { leader: None });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = lease.changed() => if changed.is_err() { return },
            }
        };
        let outcome = match campaign(&store, &key, id).await {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(error = %e, "campaign failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next()) => continue,
                }
            }
        };
        backoff.reset();
        let (watch_from, me) = match outcome {
            Campaign::Won { fence, at } => {
                tracing::info!(
                    instance = store.instance(),
                    term = fence.create_revision,
                    "became the cluster's leader"
                );
                set(&role, Role::Leader(fence));
                (at + 1, Some(fence))
            }
            Campaign::Lost { leader, at } => {
                set(
                    &role,
                    Role::Follower {
                        leader: Some(leader),
                    },
                );
                (at + 1, None)
            }
            Campaign::Vacant => continue,
        };
        // Wait for the key to go (or change hands), our lease to end, or a
        // refused fenced write; then campaign again.
        let mut c = store.client();
        let opts = WatchOptions::new().with_start_revision(watch_from);
        let mut stream = match c.watch(key.clone(), Some(opts)).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %super::error::describe(&e), "cannot watch the leader key");
                None
            }
        };
        let reason = loop {
            let msg = async {
                match stream.as_mut() {
                    Some(s) => s.message().await,
                    // No watch: poll by campaigning again after a while.
                    None => {
                        tokio::time::sleep(backoff.next()).await;
                        Ok(None)
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {
                    if me.is_some() {
                        set(&role, Role::Follower { leader: None });
                    }
                    return;
                }
                _ = lease.changed() => break "lease changed",
                _ = step_down.notified() => break "a fenced write was refused",
                m = msg => match m {
                    Ok(Some(resp)) => {
                        if resp.canceled() || resp.compact_revision() > 0 {
                            break "leader watch cancelled";
                        }
                        if let Some(why) = leader_changed(&role, &resp, me) {
                            break why;
                        }
                    }
                    Ok(None) | Err(_) => break "watch ended",
                },
            }
        };
        if me.is_some() {
            tracing::warn!(
                instance = store.instance(),
                reason,
                "no longer the cluster's leader"
            );
        }
        set(&role, Role::Follower { leader: None });
    }
}

/// What a watch answer on the leader key means for this replica: `Some`
/// when it should campaign again (the key is gone, or — for the leader —
/// it was replaced by another campaign's). A follower notes the new leader.
fn leader_changed(
    role: &watch::Sender<Role>,
    resp: &etcd_client::WatchResponse,
    me: Option<Fence>,
) -> Option<&'static str> {
    for e in resp.events() {
        match (e.event_type(), e.kv(), me) {
            (EventType::Delete, _, _) => return Some("leader key deleted"),
            (EventType::Put, Some(kv), Some(f)) if kv.create_revision() != f.create_revision => {
                return Some("leader key replaced")
            }
            (EventType::Put, Some(kv), None) => set(
                role,
                Role::Follower {
                    leader: Some(String::from_utf8_lossy(kv.value()).into_owned()),
                },
            ),
            _ => {}
        }
    }
    None
}

fn set(role: &watch::Sender<Role>, r: Role) {
    role.send_if_modified(|cur| {
        if *cur == r {
            return false;
        }
        *cur = r;
        true
    });
}

enum Campaign {
    Won {
        fence: Fence,
        at: i64,
    },
    Lost {
        leader: String,
        at: i64,
    },
    /// The key vanished between the compare and the read: try again.
    Vacant,
}

/// One attempt: create the leader key under `lease` if absent, else read
/// who holds it. A key that is ours already (same lease: a campaign whose
/// answer was lost) counts as won.
async fn campaign(store: &Store, key: &str, lease: i64) -> Result<Campaign, ClusterError> {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            store.instance(),
            Some(PutOptions::new().with_lease(lease)),
        )])
        .or_else([TxnOp::get(key, None)]);
    let mut c = store.client();
    let resp = rpc(c.txn(txn)).await?;
    let at = resp.header().map_or(0, |h| h.revision());
    if resp.succeeded() {
        return Ok(Campaign::Won {
            fence: Fence {
                create_revision: at,
                lease,
            },
            at,
        });
    }
    let kv = resp.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    });
    Ok(match kv {
        Some(kv) if kv.lease() == lease => Campaign::Won {
            fence: Fence {
                create_revision: kv.create_revision(),
                lease,
            },
            at,
        },
        Some(kv) => Campaign::Lost {
            leader: String::from_utf8_lossy(kv.value()).into_owned(),
            at,
        },
        None => Campaign::Vacant,
    })
}
