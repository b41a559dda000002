//! The rollout's shadow step on every replica. Only the leader runs the
//! rollout engine, but every replica's traffic must be copied and
//! compared: the followers read the stored progress (`P/rollouts/state`,
//! `rollout::Saved`, written by the leader) and turn the shadow step's
//! mirroring (`ShadowHandles::set_stepping`) on for each route whose
//! rollout is in its shadow step, off for every other route — when the
//! step passes, the rollout ends or is aborted, or the route leaves the
//! state. A lost leader changes nothing by itself: the state still says
//! what the next leader resumes, and copying goes on until it says
//! otherwise. On the leader the engine owns the switch (`rollout::shadow::
//! step`); a replica that becomes leader first turns off what it turned on
//! as a follower, then resumes the stored rollouts.
//!
//! The state is followed with an etcd watch that starts right after a read
//! (so no write between them is missed), re-read after every reconnect.
//! The percent copied is the table's (the shared configuration's, the same
//! on every replica); the state carries it for the record.

use std::collections::HashMap;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::election::Role;
use super::lease::Backoff;
use super::store::Store;
use crate::control::ControlHandle;
use crate::rollout::Saved;
use crate::table::RoutingTable;

/// The rollouts' progress as stored (`None`: not read yet).
pub(super) type State = Option<HashMap<String, Saved>>;

/// The key of the rollouts' progress.
pub(super) fn state_key(store: &Store) -> String {
    format!("{}state", store.keys().rollouts())
}

/// Sets each route's shadow-step mirroring as `state` says: on while its
/// rollout is in the shadow step, off otherwise. Answers the routes whose
/// switch changed.
pub(super) fn apply(table: &RoutingTable, state: &HashMap<String, Saved>) -> Vec<String> {
    let mut changed = Vec::new();
    for r in table.routes() {
        let Some(step) = r.mirror.as_deref().and_then(|m| m.step()) else {
            continue;
        };
        let on = state.get(&*r.name).is_some_and(|s| s.shadow);
        if step.handles.stepping() != on {
            step.handles.set_stepping(on);
            changed.push(r.name.to_string());
        }
    }
    changed
}

/// Turns every route's shadow-step mirroring off (a replica that becomes
/// leader: its engine turns on what it resumes).
pub(super) fn clear(table: &RoutingTable) {
    apply(table, &HashMap::new());
}

/// Applies the stored state whenever it, the role or the table changes,
/// while this replica follows.
pub(super) async fn follow(
    mut state: watch::Receiver<State>,
    mut role: watch::Receiver<Role>,
    control: ControlHandle,
    shutdown: CancellationToken,
) {
    let mut tables = control.watch().subscribe();
    loop {
        let follows = matches!(*role.borrow_and_update(), Role::Follower { .. });
        if follows {
            if let Some(s) = state.borrow_and_update().clone() {
                for route in apply(&control.table().load(), &s) {
                    let on = s.get(&route).is_some_and(|s| s.shadow);
                    tracing::info!(%route, copying = on, percent = ?s.get(&route).and_then(|s| s.shadow_percent),
                        "the leader's rollout {} its shadow step: copying {}",
                        if on { "is in" } else { "is not in" }, if on { "on" } else { "off" });
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = state.changed() => if r.is_err() { return },
            r = role.changed() => if r.is_err() { return },
            _ = tables.changed() => {}
        }
    }
}

/// Follows `P/rollouts/state` into `out` until `shutdown` (see the module
/// doc); an unreadable value is left out with a warning.
pub(super) async fn watch_state(
    store: Store,
    out: watch::Sender<State>,
    ttl: std::time::Duration,
    shutdown: CancellationToken,
) {
    let key = state_key(&store);
    let mut backoff = Backoff::new(ttl);
    let publish = |value: Option<&[u8]>| {
        let parsed = match value {
            None => Ok(HashMap::new()),
            Some(v) => serde_json::from_slice(v),
        };
        match parsed {
            Ok(s) => {
                out.send_if_modified(|cur| {
                    let changed = cur.as_ref() != Some(&s);
                    *cur = Some(s);
                    changed
                });
            }
            Err(e) => tracing::warn!(key = %key, error = %e, "unreadable rollout state"),
        }
    };
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = store.get_key_at(&key) => r,
        };
        let next = match read {
            Ok((kv, at)) => {
                publish(kv.as_ref().map(|kv| kv.value()));
                at + 1
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the rollout state; retrying");
                if wait(&shutdown, backoff.next()).await {
                    return;
                }
                continue;
            }
        };
        let mut c = store.client();
        let opts = WatchOptions::new().with_start_revision(next);
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return,
            w = c.watch(key.clone(), Some(opts)) => w,
        };
        if let Ok(mut stream) = opened {
            backoff.reset();
            loop {
                let msg = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    m = stream.message() => m,
                };
                // An ended, failed, cancelled or compacted watch: read again.
                let Ok(Some(resp)) = msg else { break };
                if resp.canceled() || resp.compact_revision() > 0 {
                    break;
                }
                for ev in resp.events() {
                    match ev.event_type() {
                        EventType::Put => publish(ev.kv().map(|kv| kv.value())),
                        EventType::Delete => publish(None),
                    }
                }
            }
        }
        if wait(&shutdown, backoff.next()).await {
            return;
        }
    }
}

/// Sleeps `d`; true if shutdown came first.
async fn wait(shutdown: &CancellationToken, d: std::time::Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::StatsRegistry;
    use crate::table::Registry;

    fn table(stats: &mut StatsRegistry) -> RoutingTable {
        let text = "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[pools.green]\nbackends = [\"127.0.0.1:2\"]\n\
            [[routes]]\nname = \"api\"\nsplit = { blue = 100 }\n\
            [routes.rollout]\ncanary = \"green\"\nstable = \"blue\"\nshadow = { percent = 20 }\n\
            [[routes]]\nname = \"plain\"\npath_prefix = \"/plain\"\nsplit = { blue = 100 }\n";
        let c = crate::config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let mut registry = Registry::default();
        registry.reconcile(&c);
        RoutingTable::build(&c, &registry, stats, 1)
    }

    fn saved(shadow: bool) -> Saved {
        Saved {
            step: 0,
            step_started_ms: 0,
            paused: false,
            shadow,
            shadow_percent: shadow.then_some(20.0),
        }
    }

    fn stepping(t: &RoutingTable) -> bool {
        let r = t.routes().iter().find(|r| &*r.name == "api").unwrap();
        r.mirror
            .as_deref()
            .unwrap()
            .step()
            .unwrap()
            .handles
            .stepping()
    }

    #[test]
    fn followers_copy_while_the_state_says_the_rollout_is_in_its_shadow_step() {
        let mut stats = StatsRegistry::new(None);
        let t = table(&mut stats);
        assert!(!stepping(&t));
        let state = HashMap::from([("api".to_owned(), saved(true))]);
        assert_eq!(apply(&t, &state), ["api"]);
        assert!(stepping(&t));
        assert!(apply(&t, &state).is_empty(), "nothing changes twice");
        // Past the shadow step (step 1 of the canary): off.
        assert_eq!(
            apply(&t, &HashMap::from([("api".to_owned(), saved(false))])),
            ["api"]
        );
        assert!(!stepping(&t));
        apply(&t, &state);
        // The rollout ended (it left the state): off.
        assert_eq!(apply(&t, &HashMap::new()), ["api"]);
        assert!(!stepping(&t));
        apply(&t, &state);
        clear(&t);
        assert!(!stepping(&t));
    }
}
