//! The canary engine. One task per route with a running rollout walks the
//! split from `stable` to `canary` through `[routes.rollout].steps`: each
//! step asks the controller for the weights (`ChangeSource::Rollout`, so
//! the file is written back like any API change) and judges the canary's
//! window of statistics (`judge`) every quarter interval: a failure counts
//! at once, a pass only after `step_interval`; until the step passes,
//! fails or runs out of patience. Passing
//! the last step promotes (100 % canary); failing rolls back to 100 %
//! stable at once. Judgements are recorded in the controller's history.
//!
//! Progress (step, when it started, paused or not) is kept in
//! `<config>.rollout.json`, written atomically at every change, so a
//! restarted switchyard resumes a rollout at the step it was on.

pub mod coordinate;
mod engine;
pub mod judge;
pub mod shadow;
mod state;
mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
// A poisoned lock only says another thread panicked while holding it; the
// rollout table is plain data that stays consistent, so it is used as is.
use std::sync::PoisonError;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::api::{Judgement, Live, Phase, RolloutStatus, Thresholds};
use crate::config::RolloutConfig;
use crate::control::ControlHandle;
use crate::stats::Stats;
use crate::table::RoutingTable;
use crate::telemetry::{Telemetry, ROLLOUTS, ROLLOUT_STEP};
use state::unix_ms;
pub use state::{read_state, state_path};
pub use verify::{FlipError, VerifySpec};

impl Thresholds {
    /// The limits of `cfg`.
    fn of(cfg: &RolloutConfig) -> Self {
        Thresholds {
            min_requests: cfg.min_requests,
            max_error_rate: cfg.max_error_rate,
            max_p99_seconds: cfg.max_p99_latency.as_secs_f64(),
            max_error_rate_increase: cfg.max_error_rate_increase,
            max_latency_ratio: cfg.max_latency_ratio,
        }
    }
}

impl Live {
    fn new(canary: &Stats, stable: &Stats) -> Self {
        let p99 = |s: &Stats| s.percentile(0.99).map(|d| d.as_secs_f64());
        Live {
            canary_requests: canary.requests,
            canary_error_rate: canary.error_rate(),
            canary_p99_seconds: p99(canary),
            stable_requests: stable.requests,
            stable_error_rate: stable.error_rate(),
            stable_p99_seconds: p99(stable),
        }
    }
}

/// Operator commands to a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Promote,
    Abort,
}

/// Why a request to the engine was refused.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("route {0:?} not found")]
    NoRoute(String),
    #[error("route {0:?} has no [routes.rollout] section")]
    NotConfigured(String),
    #[error("a rollout of route {0:?} is already running")]
    Running(String),
    #[error("no rollout of route {0:?} is running")]
    NotRunning(String),
    #[error(
        "pool {canary:?} already has {percent} % of route {route:?}: starting would move it \
         back to the first step ({first} %); set a split below that first, or keep it as it is"
    )]
    CanaryAhead {
        route: String,
        canary: String,
        percent: u32,
        first: u32,
    },
    /// `[cluster]`: only the leader drives rollouts.
    #[error("rollouts are driven by the cluster's leader, not this replica: {0}")]
    NotLeader(String),
}

/// How long an operator command waits for the task to act on it before
/// its answer is sent anyway (the task looks at least every 250 ms).
const ACT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One route's progress in the state file.
/// With `[cluster]` the leader stores the same at `P/rollouts/state`, and
/// every replica follows it: `shadow` turns its mirroring for the shadow
/// step on and off (`cluster::shadow`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Saved {
    pub step: usize,
    pub step_started_ms: u64,
    pub paused: bool,
    /// In the shadow step (a restart runs it again, from its start).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// The share the shadow step copies, in percent (while `shadow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_percent: Option<f64>,
}

pub(super) struct Entry {
    status: RolloutStatus,
    /// `None` once the rollout has finished.
    tx: Option<mpsc::UnboundedSender<Command>>,
}

/// Every route's rollout; shared by the admin API and the tasks.
pub struct Rollouts {
    control: ControlHandle,
    telemetry: Option<Arc<Telemetry>>,
    /// `<config>.rollout.json` (`None`: no config file, nothing persisted).
    state_file: Option<PathBuf>,
    entries: Mutex<HashMap<String, Entry>>,
    /// The latest verified flip of each route.
    flips: Mutex<HashMap<String, verify::FlipEntry>>,
    shutdown: CancellationToken,
    /// Bumped by every `update`, so that a command can wait for the task
    /// to have acted on it.
    updated: watch::Sender<u64>,
    /// `[cluster]`: leadership, the cluster's traffic and the shared
    /// progress (set once the replica joined).
    coordinator: OnceLock<Arc<dyn coordinate::Coordinator>>,
}

/// The canary pool's share of `route`'s split, in percent.
fn canary_percent(table: &RoutingTable, route: &str, canary: &str) -> Option<u32> {
    let r = table.routes().iter().find(|r| &*r.name == route)?;
    let total: u32 = r.split().map(|(_, w)| w).sum();
    let w: u32 = r
        .split()
        .find(|(p, _)| &*p.name == canary)
        .map_or(0, |(_, w)| w);
    (total > 0).then(|| w * 100 / total)
}

/// The rollout config and current table indices of `route`.
fn lookup(table: &RoutingTable, route: &str) -> Option<(usize, Option<Arc<RolloutConfig>>)> {
    let i = table.routes().iter().position(|r| &*r.name == route)?;
    Some((i, table.rollouts.get(i).cloned().flatten()))
}

impl Rollouts {
    pub fn new(
        control: ControlHandle,
        telemetry: Option<Arc<Telemetry>>,
        config_path: Option<&std::path::Path>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Rollouts {
            control,
            telemetry,
            state_file: config_path.map(state_path),
            entries: Mutex::new(HashMap::new()),
            flips: Mutex::new(HashMap::new()),
            shutdown,
            updated: watch::Sender::new(0),
            coordinator: OnceLock::new(),
        })
    }

    /// From now on rollouts run only while this replica leads, judge the
    /// cluster's traffic and keep their progress in the cluster.
    pub fn coordinate(&self, c: Arc<dyn coordinate::Coordinator>) {
        // Set once, when the replica joins; a second call changes nothing.
        let _ = self.coordinator.set(c);
    }

    pub(super) fn coordinator(&self) -> Option<&Arc<dyn coordinate::Coordinator>> {
        self.coordinator.get()
    }

    /// `Err` on a replica that does not lead its cluster.
    fn leads(&self) -> Result<(), RolloutError> {
        match self.coordinator() {
            Some(c) => c.leads().map_err(RolloutError::NotLeader),
            None => Ok(()),
        }
    }

    /// Resumes the rollouts of `saved` that are not running here (the
    /// cluster's, when this replica becomes its leader).
    pub fn resume(self: &Arc<Self>, saved: HashMap<String, Saved>) {
        for (route, s) in saved {
            let table = self.control.table().load();
            match lookup(&table, &route) {
                Some((_, Some(cfg))) if s.step < cfg.steps.len() => {
                    tracing::info!(%route, step = s.step, "resuming the rollout at its step");
                    if let Err(e) = self.spawn(route, &cfg, s) {
                        tracing::debug!(error = %e, "rollout not resumed");
                    }
                }
                _ => {
                    tracing::warn!(%route, "dropping a stored rollout: the route or its [routes.rollout] is gone")
                }
            }
        }
    }

    /// Resumes the rollouts the state file says were in progress, each at
    /// its step (routes that lost their `[routes.rollout]` are dropped).
    pub fn resume_saved(self: &Arc<Self>) {
        let Some(path) = &self.state_file else { return };
        let saved = read_state(path);
        for (route, s) in saved {
            let table = self.control.table().load();
            match lookup(&table, &route) {
                Some((_, Some(cfg))) if s.step < cfg.steps.len() => {
                    tracing::info!(%route, step = s.step, "resuming the rollout saved before the restart");
                    if let Err(e) = self.spawn(route, &cfg, s) {
                        tracing::warn!(error = %e, "saved rollout not resumed");
                    }
                }
                _ => {
                    tracing::warn!(%route, "dropping a saved rollout: the route or its [routes.rollout] is gone")
                }
            }
        }
        self.save();
    }

    /// Starts the rollout of `route` at its first step.
    pub fn start(self: &Arc<Self>, route: &str) -> Result<RolloutStatus, RolloutError> {
        self.leads()?;
        let table = self.control.table().load();
        let cfg = match lookup(&table, route) {
            None => return Err(RolloutError::NoRoute(route.into())),
            Some((_, None)) => return Err(RolloutError::NotConfigured(route.into())),
            Some((_, Some(cfg))) => cfg,
        };
        // Starting at the first step would take traffic away from a canary
        // that already has more: never do that silently.
        let first = cfg.steps.first().copied().unwrap_or(0);
        if let Some(percent) = canary_percent(&table, route, &cfg.canary).filter(|&p| p > first) {
            return Err(RolloutError::CanaryAhead {
                route: route.into(),
                canary: cfg.canary.clone(),
                percent,
                first,
            });
        }
        let saved = Saved {
            step: 0,
            step_started_ms: unix_ms(SystemTime::now()),
            paused: false,
            shadow: false,
            shadow_percent: None,
        };
        self.spawn(route.to_owned(), &cfg, saved)
    }

    /// Sends an operator command to the running rollout of `route`.
    pub fn command(&self, route: &str, cmd: Command) -> Result<(), RolloutError> {
        self.leads()?;
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = entries
            .get(route)
            .and_then(|e| e.tx.as_ref())
            .ok_or_else(|| RolloutError::NotRunning(route.into()))?;
        tx.send(cmd)
            .map_err(|_| RolloutError::NotRunning(route.into()))
    }

    /// Sends `cmd` and answers the status once the task has acted on it
    /// (or after `ACT_WAIT`), so that the answer to an abort shows the
    /// rollback, not the phase before it.
    pub async fn command_acted(
        &self,
        route: &str,
        cmd: Command,
    ) -> Result<Option<RolloutStatus>, RolloutError> {
        let mut updates = self.updated.subscribe();
        self.command(route, cmd)?;
        let acted = |s: &RolloutStatus| match cmd {
            Command::Pause => s.phase == Phase::Paused,
            Command::Resume => s.phase == Phase::Progressing,
            Command::Promote => s.phase == Phase::Promoted,
            Command::Abort => s.phase == Phase::RolledBack,
        };
        let wait = async {
            while !self.status(route).is_some_and(|s| acted(&s)) {
                if updates.changed().await.is_err() {
                    break;
                }
            }
        };
        // Timing out is fine: the answer then shows the phase as it is.
        let _ = tokio::time::timeout(ACT_WAIT, wait).await;
        Ok(self.status(route))
    }

    /// The rollout of `route` (running or the last finished one).
    pub fn status(&self, route: &str) -> Option<RolloutStatus> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .map(|e| RolloutStatus {
                now_ms: unix_ms(SystemTime::now()),
                ..e.status.clone()
            })
    }

    /// Every known rollout.
    pub fn all(&self) -> Vec<RolloutStatus> {
        let mut v: Vec<RolloutStatus> = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|e| RolloutStatus {
                now_ms: unix_ms(SystemTime::now()),
                ..e.status.clone()
            })
            .collect();
        v.sort_by(|a, b| a.route.cmp(&b.route));
        v
    }

    /// Sets the rollout gauges and touches the counters (so they do not
    /// expire); called when `/metrics` is scraped.
    pub fn touch_metrics(&self) {
        let Some(t) = &self.telemetry else { return };
        for e in self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            let route = e.status.route.as_str();
            let step = if e.tx.is_some() {
                e.status.step as f64 + 1.0
            } else {
                0.0
            };
            t.gauge(ROLLOUT_STEP, &[("route", route)]).set(step);
            for result in ["promoted", "rolled_back"] {
                t.counter(ROLLOUTS, &[("route", route), ("result", result)])
                    .increment(0);
            }
        }
    }

    fn spawn(
        self: &Arc<Self>,
        route: String,
        cfg: &RolloutConfig,
        saved: Saved,
    ) -> Result<RolloutStatus, RolloutError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = RolloutStatus {
            route: route.clone(),
            phase: if saved.paused {
                Phase::Paused
            } else {
                Phase::Progressing
            },
            step: saved.step,
            steps: cfg.steps.clone(),
            canary: cfg.canary.clone(),
            stable: cfg.stable.clone(),
            canary_weight: cfg.steps[saved.step],
            step_started_ms: saved.step_started_ms,
            now_ms: 0,
            step_interval_ms: cfg.step_interval.as_millis() as u64,
            thresholds: Thresholds::of(cfg),
            current: None,
            last: None,
            reason: None,
            shadow: None,
        };
        {
            // One lock for the check and the insertion: two concurrent
            // starts cannot both win.
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.get(&route).is_some_and(|e| e.tx.is_some()) {
                return Err(RolloutError::Running(route));
            }
            let entry = Entry {
                status: status.clone(),
                tx: Some(tx),
            };
            entries.insert(route.clone(), entry);
            self.save_locked(&entries);
        }
        let me = self.clone();
        tokio::spawn(async move { me.run(route, saved, rx).await });
        Ok(status)
    }

    pub(super) fn update(&self, route: &str, f: impl FnOnce(&mut Entry)) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(route) {
            f(e);
        }
        self.save_locked(&entries);
        self.updated.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Refreshes the shadow step's progress; not saved (a restart runs
    /// the step again).
    fn update_shadow(&self, route: &str, progress: crate::api::ShadowProgress) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(route) {
            e.status.shadow = Some(progress);
        }
        drop(entries);
        self.updated.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Refreshes the live window; not saved (the state file holds only
    /// what a restart needs).
    fn update_live(&self, route: &str, live: Live, cfg: &RolloutConfig) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(route) {
            e.status.current = Some(live);
            // A reload may have changed them.
            e.status.thresholds = Thresholds::of(cfg);
            e.status.step_interval_ms = cfg.step_interval.as_millis() as u64;
            e.status.steps.clone_from(&cfg.steps);
        }
    }

    pub(super) fn config(&self, route: &str) -> Option<RolloutConfig> {
        let table = self.control.table().load();
        lookup(&table, route)
            .and_then(|(_, c)| c)
            .map(|c| (*c).clone())
    }
}
