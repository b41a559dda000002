//! One driver for the cluster's rollouts (`rollout::Coordinator` on etcd):
//!
//! - `publish`: every replica adds each completed second of its
//!   per-(route, pool) windows to cumulative counts and publishes them
//!   under its lease at `P/stats/<instance>` four times a second, only
//!   when they changed (at rest nothing is written); the shadow windows
//!   (mirrored, compared, mismatched by kind, …) go the same way;
//! - `Drive::snapshot` / `shadow_snapshot`: the leader reads every
//!   replica's publication for the engine to judge the sum
//!   (`rollout::coordinate::delta`), of a canary step's windows or of the
//!   shadow step's;
//! - `Drive::save` / `persist`: the running rollouts' progress at
//!   `P/rollouts/state`, written by the leader in a fenced transaction, so
//!   a paused or deposed leader's progress never lands;
//! - `lead`: when this replica becomes the leader it resumes the rollouts
//!   stored there at their step; a replica that stops leading stops
//!   driving (the engine checks `leads` at every tick);
//! - every replica follows the stored progress to copy during a shadow
//!   step (`shadow`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::election::Role;
use super::shadow::state_key;
use super::stats::{self, Counts, Publication};
use super::store::{unix_ms, Store};
use crate::control::ControlHandle;
use crate::rollout::coordinate::{BoxFuture, Coordinator, Snapshot};
use crate::rollout::{Rollouts, Saved};
use crate::stats::shadow::ShadowStats;
use crate::stats::window::BUCKETS;
use crate::stats::{clock, Stats};

/// How often the statistics are published (when they changed).
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// `rollout::Coordinator` on etcd.
pub(super) struct Drive {
    pub store: Store,
    pub role: watch::Receiver<Role>,
    pub saved: watch::Sender<Option<HashMap<String, Saved>>>,
}

fn to_stats(c: &Counts) -> Stats {
    let mut s = Stats {
        requests: c.requests,
        failures: c.failures,
        ..Stats::default()
    };
    for (t, v) in s.hist.iter_mut().zip(&c.buckets) {
        *t = *v;
    }
    s
}

impl Drive {
    /// Every replica's publication now, as (epoch, `pick` of it).
    async fn read<T>(&self, pick: impl Fn(&Publication) -> T) -> Result<Snapshot<T>, String> {
        let pubs = stats::collect(&self.store, BUCKETS)
            .await
            .map_err(|e| e.to_string())?;
        Ok(pubs
            .iter()
            .map(|p| (p.instance.clone(), (p.epoch, pick(p))))
            .collect())
    }
}

impl Coordinator for Drive {
    fn leads(&self) -> Result<(), String> {
        match &*self.role.borrow() {
            Role::Leader(_) => Ok(()),
            Role::Follower {
                leader: Some(leader),
            } => Err(format!(
                "replica {leader:?} leads the cluster and drives its rollouts"
            )),
            Role::Follower { leader: None } => {
                Err("the cluster has no leader now; try again shortly".into())
            }
        }
    }

    fn snapshot<'a>(
        &'a self,
        route: &'a str,
        pool: &'a str,
    ) -> BoxFuture<'a, Result<Snapshot, String>> {
        Box::pin(self.read(move |p| p.get(route, pool).map(to_stats).unwrap_or_default()))
    }

    fn shadow_snapshot<'a>(
        &'a self,
        route: &'a str,
        pool: &'a str,
    ) -> BoxFuture<'a, Result<Snapshot<ShadowStats>, String>> {
        Box::pin(self.read(move |p| p.shadow_of(route, pool).cloned().unwrap_or_default()))
    }

    fn save(&self, state: HashMap<String, Saved>) {
        self.saved.send_replace(Some(state));
    }
}

/// Writes the newest progress `Drive::save` was given, fenced, while this
/// replica leads (a refused write is dropped: the new leader owns it).
pub(super) async fn persist(
    store: Store,
    role: watch::Receiver<Role>,
    mut saved: watch::Receiver<Option<HashMap<String, Saved>>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = saved.changed() => if r.is_err() { return },
        }
        let Some(state) = saved.borrow_and_update().clone() else {
            continue;
        };
        let Some(fence) = role.borrow().fence() else {
            continue;
        };
        let value = match serde_json::to_vec(&state) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "rollout progress not stored");
                continue;
            }
        };
        let op = Store::put_op(state_key(&store), value, None);
        if let Err(e) = store.fenced(fence, vec![op]).await {
            tracing::warn!(error = %e, "rollout progress not stored in the cluster");
        }
    }
}

/// Resumes the stored rollouts whenever this replica becomes the leader.
pub(super) async fn lead(
    store: Store,
    mut role: watch::Receiver<Role>,
    rollouts: Arc<Rollouts>,
    control: ControlHandle,
    shutdown: CancellationToken,
) {
    let mut leading = false;
    loop {
        let now = matches!(*role.borrow_and_update(), Role::Leader(_));
        if now && !leading {
            // What this replica copied as a follower is the engine's now.
            super::shadow::clear(&control.table().load());
            match store.get_key(&state_key(&store)).await {
                Ok(kv) => {
                    let saved: HashMap<String, Saved> = kv
                        .and_then(|kv| serde_json::from_slice(kv.value()).ok())
                        .unwrap_or_default();
                    if !saved.is_empty() {
                        tracing::info!(
                            rollouts = saved.len(),
                            "this replica leads: resuming the cluster's rollouts at their steps"
                        );
                    }
                    rollouts.resume(saved);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the cluster's rollouts; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            }
        }
        leading = now;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = role.changed() => if r.is_err() { return },
        }
    }
}

/// The seconds of one (route, pool) window not yet added to the
/// cumulative counts: from the second it was first seen to the last
/// completed one (`None`: nothing new). Counting starts with the second in
/// which a (route, pool) is first seen (the epoch, for those at start):
/// that second is counted once it is complete, so the traffic of a
/// replica's first second is not lost.
fn pending(
    next: &mut HashMap<(String, String), u64>,
    key: (&str, &str),
    current: u64,
) -> Option<(u64, u64)> {
    let k = (key.0.to_owned(), key.1.to_owned());
    let from = *next.entry(k.clone()).or_insert(current);
    if from >= current {
        return None;
    }
    next.insert(k, current);
    Some((from, current - 1))
}

/// Cumulative counts since the epoch, by route then pool.
type Cumulated<T> = BTreeMap<String, BTreeMap<String, T>>;

/// This replica's cumulative counts, grown at every publication tick.
#[derive(Default)]
struct Totals {
    windows: Cumulated<Counts>,
    shadow: Cumulated<ShadowStats>,
    /// Per (route, pool): the next second to add, of each kind of window.
    next: HashMap<(String, String), u64>,
    next_shadow: HashMap<(String, String), u64>,
}

impl Totals {
    /// Adds the windows' completed seconds (the current one is still being
    /// written, and in the clock's first second none is complete yet).
    fn grow(&mut self, table: &crate::table::RoutingTable, current: u64) {
        for route in table.routes() {
            for pool in table.pools() {
                let Some(w) = table.window(&route.name, &pool.name) else {
                    continue;
                };
                let key = (&*route.name, &*pool.name);
                let Some((from, to)) = pending(&mut self.next, key, current) else {
                    continue;
                };
                let s = w.since(from, to);
                self.windows
                    .entry(key.0.to_owned())
                    .or_default()
                    .entry(key.1.to_owned())
                    .or_insert_with(|| Counts {
                        buckets: vec![0; BUCKETS],
                        ..Counts::default()
                    })
                    .add(&Counts {
                        requests: s.requests,
                        failures: s.failures,
                        buckets: s.hist.to_vec(),
                    });
            }
            // The route's mirror and its shadow step's: one window when
            // they are the same pool (handles are kept per (route, pool)).
            let Some(m) = route.mirror.as_deref() else {
                continue;
            };
            for t in m.configured().into_iter().chain(m.step()) {
                let key = (&*route.name, &*t.pool.name);
                let Some((from, to)) = pending(&mut self.next_shadow, key, current) else {
                    continue;
                };
                self.shadow
                    .entry(key.0.to_owned())
                    .or_default()
                    .entry(key.1.to_owned())
                    .or_default()
                    .add(&t.handles.window().since(from, to));
            }
        }
    }
}

/// Publishes this replica's cumulative counts (see the module doc).
pub(super) async fn publish(
    store: Store,
    control: ControlHandle,
    lease: watch::Receiver<Option<i64>>,
    shutdown: CancellationToken,
) {
    let epoch = unix_ms();
    let mut totals = Totals::default();
    let mut last_sent: Option<(Cumulated<Counts>, Cumulated<ShadowStats>)> = None;
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let current = clock::secs(tokio::time::Instant::now());
        totals.grow(&control.table().load(), current);
        if last_sent
            .as_ref()
            .is_some_and(|(w, s)| *w == totals.windows && *s == totals.shadow)
        {
            continue;
        }
        let now = (totals.windows.clone(), totals.shadow.clone());
        let Some(id) = *lease.borrow() else { continue };
        let p = Publication {
            instance: store.instance().to_owned(),
            epoch,
            at_ms: unix_ms(),
            buckets: BUCKETS,
            windows: now.0.clone(),
            shadow: now.1.clone(),
        };
        match stats::publish(&store, &p, id).await {
            Ok(()) => last_sent = Some(now),
            Err(e) => tracing::debug!(error = %e, "statistics not published"),
        }
    }
}
