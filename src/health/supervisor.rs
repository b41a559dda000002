//! The health supervisor: one task on the control runtime that keeps one
//! probe task per backend of the table in force. It awaits the generation
//! the controller publishes (`TableWatch`), so a backend added by a reload
//! is probed at once, and, for each new table, spawns probes for new
//! backends, aborts those of backends that left, and restarts a probe only
//! when its pool's health settings changed — an unchanged backend keeps its
//! task, its streak and its state across reloads. Every `MAINTAIN` it also
//! ends expired ejections and advances slow starts: those are timers on the
//! backends' own clocks, not table changes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::task::{self, FirstRound, ProbeSpec};
use super::AbortOnDrop;
use crate::config::HealthConfig;
use crate::stats::clock;
use crate::table::{Backend, Health, RoutingTable, TableWatch};

/// How often ejection expiry and slow-start ramps are checked.
const MAINTAIN: Duration = Duration::from_millis(100);

struct Entry {
    backend: Arc<Backend>,
    /// The settings the running probe was started with (`None`: checks off).
    health: Option<HealthConfig>,
    slow_start: Option<Duration>,
    /// The probe task; aborted when the entry is dropped or replaced.
    _task: Option<AbortOnDrop>,
}

pub(super) struct Supervisor {
    table: TableWatch,
    entries: HashMap<u64, Entry>,
    generation: u64,
    first_round: Arc<AtomicUsize>,
    first_round_logged: bool,
}

impl Supervisor {
    /// Starts the probes of the table in force (the first round) on the
    /// current runtime; `first_round` counts those not done yet.
    pub(super) fn start(table: TableWatch, first_round: Arc<AtomicUsize>) -> Self {
        // Subscribed before the first load: no table stored after it is missed.
        let table = table.subscribe();
        let t = table.load_full();
        let probed = t
            .pools()
            .iter()
            .filter(|p| p.health.enabled)
            .map(|p| p.backends.len())
            .sum();
        // Set before any probe starts, so the count cannot touch 0 early.
        first_round.store(probed, std::sync::atomic::Ordering::Release);
        let mut this = Supervisor {
            table,
            entries: HashMap::new(),
            generation: t.generation,
            first_round,
            first_round_logged: false,
        };
        this.reconcile(&t, true);
        this
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(MAINTAIN);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.table.changed() => self.follow(),
                _ = tick.tick() => self.tick(),
            }
        }
        // Dropping the entries aborts every probe task.
        self.entries.clear();
    }

    /// A new table was published: follow it.
    fn follow(&mut self) {
        let t = self.table.load_full();
        if t.generation != self.generation {
            self.generation = t.generation;
            self.reconcile(&t, false);
        }
    }

    fn tick(&mut self) {
        self.maintain(&self.table.load());
        if !self.first_round_logged
            && self.first_round.load(std::sync::atomic::Ordering::Acquire) == 0
        {
            self.first_round_logged = true;
            tracing::info!("first health-check round done");
        }
    }

    /// Makes the probe tasks match the table.
    fn reconcile(&mut self, t: &RoutingTable, first_round: bool) {
        let mut seen = HashSet::with_capacity(self.entries.len());
        for pool in t.pools() {
            let health = pool.health.enabled.then(|| pool.health.clone());
            for b in pool.backends.iter() {
                seen.insert(b.id);
                if let Some(e) = self.entries.get(&b.id) {
                    if e.health == health && e.slow_start == pool.slow_start {
                        continue;
                    }
                    tracing::debug!(pool = %pool.name, backend.addr = %b.addr,
                        "health settings changed; restarting the probe");
                    // Abort the old probe before anything else writes the
                    // backend's health.
                    self.entries.remove(&b.id);
                }
                if health.is_none() && b.health() != Health::Healthy {
                    b.set_health(Health::Healthy);
                    b.set_probe_failure(None);
                    tracing::info!(pool = %pool.name, backend.addr = %b.addr,
                        "health checks are off; the backend counts as healthy");
                }
                let task = health.clone().map(|h| {
                    let spec = ProbeSpec {
                        backend: b.clone(),
                        health: h,
                        slow_start: pool.slow_start,
                    };
                    let first = first_round.then(|| FirstRound(self.first_round.clone()));
                    AbortOnDrop(tokio::spawn(task::run(spec, first)))
                });
                self.entries.insert(
                    b.id,
                    Entry {
                        backend: b.clone(),
                        health: health.clone(),
                        slow_start: pool.slow_start,
                        _task: task,
                    },
                );
            }
        }
        let now = clock::now_ms();
        self.entries.retain(|id, e| {
            if seen.contains(id) {
                return true;
            }
            // It left the table (and is draining): free its ejection slot.
            if e.backend.uneject(now) {
                tracing::debug!(pool = %e.backend.pool, backend.addr = %e.backend.addr,
                    "ejected backend left the table");
            }
            false
        });
    }

    /// Ends ejections that are over and advances slow starts.
    fn maintain(&self, t: &RoutingTable) {
        let now = clock::now_ms();
        for pool in t.pools() {
            for b in pool.backends.iter() {
                if b.ejection_due(now) && b.uneject(now) {
                    tracing::info!(pool = %pool.name, backend.addr = %b.addr,
                        "ejection over; backend back in rotation");
                    if pool.slow_start.is_some() {
                        b.begin_slow_start(now);
                    }
                }
                if b.advance_slow_start(now, pool.slow_start) {
                    tracing::debug!(pool = %pool.name, backend.addr = %b.addr,
                        "slow start done; backend at its full share");
                }
            }
        }
    }
}
