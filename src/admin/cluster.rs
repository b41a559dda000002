//! The cluster's part of the admin API (`[cluster]`): the `cluster` object
//! of `GET /api/v1/status` (leader, members with their applied revision
//! and last seen, the revision, the store's health, replicas that lag) and
//! the cluster's history for `GET /api/v1/history`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::api::{self, ClusterStatus, MemberStatus, StoreStatus};
use crate::cluster::{stale, Role, View};
use crate::control::ControlHandle;
use crate::event::Event;

/// Set once the replica has joined (connecting to etcd is not waited for).
pub type Slot = Arc<OnceLock<View>>;

/// A replica that has not applied the newest revision this long after it
/// was written is flagged stale (at least the lease TTL: a member record
/// is refreshed at least once per TTL).
fn stale_bound(view: &View) -> Duration {
    view.lease_ttl().max(Duration::from_secs(2))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `cluster` object of the status (`None` without `[cluster]`).
pub fn status(slot: Option<&Slot>, control: &ControlHandle) -> Option<ClusterStatus> {
    let slot = slot?;
    let state = control.shared_state().borrow().clone();
    let Some(view) = slot.get() else {
        return Some(ClusterStatus {
            joined: false,
            instance: None,
            role: None,
            leader: None,
            revision: 0,
            revision_by: None,
            applied_revision: state.revision,
            members: Vec::new(),
            stale: Vec::new(),
            store: StoreStatus {
                reachable: false,
                since_ms: 0,
                error: Some("not connected yet".into()),
            },
            lease_ttl_s: 0,
            seeded_here: None,
            local_override: state.local_override,
            conflict: state.conflict,
            error: state.error,
        });
    };
    let latest = view.latest();
    let revision = latest.as_ref().map_or(0, |d| d.revision);
    let at_ms = latest.as_ref().map_or(0, |d| d.at_ms);
    let members = view.members();
    let lagging: Vec<String> = stale(&members, revision, at_ms, now_ms(), stale_bound(view))
        .iter()
        .map(|m| m.instance.clone())
        .collect();
    let list = members
        .iter()
        .map(|m| MemberStatus {
            instance: m.instance.clone(),
            applied_revision: m.applied_revision,
            last_seen_ms: m.last_seen_ms,
            admin: m.admin.clone(),
            version: m.version.clone(),
            stale: lagging.contains(&m.instance),
        })
        .collect();
    let health = view.health();
    Some(ClusterStatus {
        joined: true,
        instance: Some(view.instance().to_owned()),
        role: Some(match view.role() {
            Role::Leader(_) => api::Role::Leader,
            Role::Follower { .. } => api::Role::Follower,
        }),
        leader: view.leader(),
        revision,
        revision_by: latest.map(|d| d.by),
        applied_revision: state.revision,
        members: list,
        stale: lagging,
        store: StoreStatus {
            reachable: health.reachable,
            since_ms: health.since_ms,
            error: health.error,
        },
        lease_ttl_s: view.lease_ttl().as_secs(),
        seeded_here: view.seeded_here(),
        local_override: state.local_override,
        conflict: state.conflict,
        error: state.error,
    })
}

/// The cluster's newest `limit` events, newest first, each with the
/// instance that made it; `None` without `[cluster]` or before joining
/// (the replica's own history is served then).
pub async fn history(slot: Option<&Slot>, limit: usize) -> Option<Result<Vec<Event>, String>> {
    let view = slot?.get()?;
    Some(match view.history(limit).await {
        Ok(events) => Ok(events
            .into_iter()
            .rev()
            .filter_map(|e| {
                // An event another version wrote in a shape this one cannot
                // read is left out rather than failing the whole answer.
                let mut ev: Event = serde_json::from_value(e.event).ok()?;
                ev.instance = Some(e.instance);
                Some(ev)
            })
            .collect()),
        Err(e) => Err(e.to_string()),
    })
}
