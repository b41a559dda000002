//! The canary engine. One task per route with a running rollout walks the
//! split from `stable` to `canary` through `[routes.rollout].steps`: each
//! step asks the controller for the weights (`ChangeSource::Rollout`, so
//! the file is written back like any API change), waits `step_interval`,
//! then judges the canary's window of statistics (`judge`) every quarter
//! interval until the step passes, fails or runs out of patience. Passing
//! the last step promotes (100 % canary); failing rolls back to 100 %
//! stable at once. Judgements are recorded in the controller's history.
//!
//! Progress (step, when it started, paused or not) is kept in
//! `<config>.rollout.json`, written atomically at every change, so a
//! restarted switchyard resumes a rollout at the step it was on.

pub mod judge;
pub mod window;

use std::collections::HashMap;
use std::path::PathBuf;
// A poisoned lock only says another thread panicked while holding it; the
// rollout table is plain data that stays consistent, so it is used as is.
use std::sync::PoisonError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::RolloutConfig;
use crate::control::{Change, ChangeSource, ControlHandle, Event};
use crate::table::{clock, RoutingTable};
use crate::telemetry::{Telemetry, ROLLOUTS, ROLLOUT_STEP};
use judge::{Check, Verdict};

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Progressing,
    Paused,
    Promoted,
    RolledBack,
}

/// The last judgement of a rollout's window.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub time: String,
    pub step: usize,
    pub check: Check,
    pub canary_requests: u64,
    pub canary_error_rate: f64,
    pub canary_p99_seconds: Option<f64>,
    pub stable_requests: u64,
}

/// A rollout as `GET /routes/{route}/rollout` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub route: String,
    pub phase: Phase,
    /// 0-based index into `steps`.
    pub step: usize,
    pub steps: Vec<u32>,
    pub canary: String,
    pub stable: String,
    /// Percent on the canary now.
    pub canary_weight: u32,
    /// Unix milliseconds.
    pub step_started_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<Judgement>,
    /// Why it rolled back or paused by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
}

/// One route's progress in the state file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Saved {
    pub step: usize,
    pub step_started_ms: u64,
    pub paused: bool,
}

struct Entry {
    status: Status,
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
    shutdown: CancellationToken,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The state file of the configuration at `config`.
pub fn state_path(config: &std::path::Path) -> PathBuf {
    let mut s = config.as_os_str().to_owned();
    s.push(".rollout.json");
    PathBuf::from(s)
}

/// Reads a state file; a missing or unreadable one holds nothing.
pub fn read_state(path: &std::path::Path) -> HashMap<String, Saved> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable rollout state file");
            HashMap::new()
        }),
        Err(_) => HashMap::new(),
    }
}

/// Writes to a temporary file, fsyncs and renames over `path`.
fn write_state(path: &std::path::Path, state: &HashMap<String, Saved>) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(state).unwrap_or_default())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
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
            shutdown,
        })
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
    pub fn start(self: &Arc<Self>, route: &str) -> Result<Status, RolloutError> {
        let table = self.control.table().load();
        let cfg = match lookup(&table, route) {
            None => return Err(RolloutError::NoRoute(route.into())),
            Some((_, None)) => return Err(RolloutError::NotConfigured(route.into())),
            Some((_, Some(cfg))) => cfg,
        };
        let saved = Saved {
            step: 0,
            step_started_ms: unix_ms(SystemTime::now()),
            paused: false,
        };
        self.spawn(route.to_owned(), &cfg, saved)
    }

    /// Sends an operator command to the running rollout of `route`.
    pub fn command(&self, route: &str, cmd: Command) -> Result<(), RolloutError> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = entries
            .get(route)
            .and_then(|e| e.tx.as_ref())
            .ok_or_else(|| RolloutError::NotRunning(route.into()))?;
        tx.send(cmd)
            .map_err(|_| RolloutError::NotRunning(route.into()))
    }

    /// The rollout of `route` (running or the last finished one).
    pub fn status(&self, route: &str) -> Option<Status> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .map(|e| e.status.clone())
    }

    /// Every known rollout.
    pub fn all(&self) -> Vec<Status> {
        let mut v: Vec<Status> = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|e| e.status.clone())
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
    ) -> Result<Status, RolloutError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Status {
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
            last: None,
            reason: None,
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

    /// Writes the running rollouts to the state file.
    fn save(&self) {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.save_locked(&entries);
    }

    /// `save` with the entries already locked, so that the file never
    /// lags behind what the API shows.
    fn save_locked(&self, entries: &HashMap<String, Entry>) {
        let Some(path) = &self.state_file else { return };
        let state: HashMap<String, Saved> = entries
            .iter()
            .filter(|(_, e)| e.tx.is_some())
            .map(|(r, e)| {
                let s = &e.status;
                let saved = Saved {
                    step: s.step,
                    step_started_ms: s.step_started_ms,
                    paused: s.phase == Phase::Paused,
                };
                (r.clone(), saved)
            })
            .collect();
        if let Err(e) = write_state(path, &state) {
            tracing::warn!(file = %path.display(), error = %e, "cannot write the rollout state file; a restart would not resume");
        }
    }

    fn update(&self, route: &str, f: impl FnOnce(&mut Entry)) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(route) {
            f(e);
        }
        self.save_locked(&entries);
    }

    async fn event(&self, route: &str, action: &'static str, detail: String) {
        tracing::info!(%route, action, %detail, "rollout");
        let mut ev = Event::new(0, ChangeSource::Rollout, action, "applied");
        ev.route = Some(route.to_owned());
        ev.detail = Some(detail);
        self.control.record(ev).await;
    }

    async fn set_weight(&self, route: &str, cfg: &RolloutConfig, canary: u32) -> bool {
        let split = vec![
            (cfg.stable.clone(), 100 - canary),
            (cfg.canary.clone(), canary),
        ];
        let change = Change::SetSplit {
            route: route.to_owned(),
            split,
        };
        match self
            .control
            .change(ChangeSource::Rollout, None, change)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(%route, error = %e, "the rollout could not set the split");
                false
            }
        }
    }

    /// Ends the rollout: the final split, the event, the metric.
    async fn finish(&self, route: &str, cfg: &RolloutConfig, promoted: bool, reason: String) {
        self.set_weight(route, cfg, if promoted { 100 } else { 0 })
            .await;
        let (action, result) = if promoted {
            ("rollout_promote", "promoted")
        } else {
            ("rollout_rollback", "rolled_back")
        };
        self.update(route, |e| {
            e.tx = None;
            e.status.phase = if promoted {
                Phase::Promoted
            } else {
                Phase::RolledBack
            };
            e.status.canary_weight = if promoted { 100 } else { 0 };
            e.status.reason = Some(reason.clone());
        });
        if let Some(t) = &self.telemetry {
            t.counter(ROLLOUTS, &[("route", route), ("result", result)])
                .increment(1);
        }
        self.event(route, action, reason).await;
    }

    async fn run(
        self: Arc<Self>,
        route: String,
        saved: Saved,
        mut rx: mpsc::UnboundedReceiver<Command>,
    ) {
        let Some(mut cfg) = self.config(&route) else {
            return;
        };
        let mut step = saved.step;
        let mut paused = saved.paused;
        // The step's start, carried over a restart from the saved time, but
        // at most one interval back: the step's statistics died with the
        // old process, and `max_wait` counts from now.
        let ago = SystemTime::now()
            .duration_since(UNIX_EPOCH + Duration::from_millis(saved.step_started_ms))
            .unwrap_or_default();
        let mut started = Instant::now()
            .checked_sub(ago.min(cfg.step_interval))
            .unwrap_or_else(Instant::now);
        let mut failed = 0;
        self.set_weight(&route, &cfg, cfg.steps[step]).await;
        let what = if step == 0 && ago < cfg.step_interval {
            "started"
        } else {
            "resumed"
        };
        self.event(
            &route,
            "rollout_step",
            format!(
                "{what} at step {} ({}% on {})",
                step + 1,
                cfg.steps[step],
                cfg.canary
            ),
        )
        .await;
        let tick = (cfg.step_interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            let cmd = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                c = rx.recv() => c,
                _ = tokio::time::sleep(tick) => None,
            };
            // Thresholds follow the file: a reload may have changed them.
            match self.config(&route) {
                Some(c) => {
                    cfg = c;
                    // A reload may have shortened `steps`.
                    step = step.min(cfg.steps.len() - 1);
                }
                None => {
                    self.finish(
                        &route,
                        &cfg,
                        false,
                        "the route's [routes.rollout] was removed".into(),
                    )
                    .await;
                    return;
                }
            }
            match cmd {
                Some(Command::Pause) if !paused => {
                    paused = true;
                    self.update(&route, |e| e.status.phase = Phase::Paused);
                    self.event(
                        &route,
                        "rollout_pause",
                        format!("paused at step {} by the operator", step + 1),
                    )
                    .await;
                }
                Some(Command::Resume) if paused => {
                    paused = false;
                    started = Instant::now();
                    failed = 0;
                    let ms = unix_ms(SystemTime::now());
                    self.update(&route, |e| {
                        e.status.phase = Phase::Progressing;
                        e.status.step_started_ms = ms;
                    });
                    self.event(
                        &route,
                        "rollout_resume",
                        format!("resumed at step {}; the step starts over", step + 1),
                    )
                    .await;
                }
                Some(Command::Promote) => {
                    self.finish(
                        &route,
                        &cfg,
                        true,
                        format!("promoted by the operator at step {}", step + 1),
                    )
                    .await;
                    return;
                }
                Some(Command::Abort) => {
                    self.finish(
                        &route,
                        &cfg,
                        false,
                        format!("aborted by the operator at step {}", step + 1),
                    )
                    .await;
                    return;
                }
                _ => {}
            }
            if paused {
                continue;
            }
            let table = self.control.table().load();
            let canary_up = table
                .pools()
                .iter()
                .find(|p| *p.name == *cfg.canary)
                .is_some_and(|p| p.backends.iter().any(|b| b.is_available()));
            if !canary_up {
                self.finish(
                    &route,
                    &cfg,
                    false,
                    format!("canary pool {:?} has no available backend", cfg.canary),
                )
                .await;
                return;
            }
            let elapsed = started.elapsed();
            if elapsed < cfg.step_interval {
                continue;
            }
            let Some(route_idx) = table.routes().iter().position(|r| *r.name == *route) else {
                continue;
            };
            let pool_idx = |name: &str| table.pools().iter().position(|p| &*p.name == name);
            let window = |name: &str| {
                pool_idx(name)
                    .and_then(|p| table.stats.get(route_idx, p))
                    .map(|w| w.since(clock::secs(started), clock::secs(Instant::now())))
                    .unwrap_or_default()
            };
            let (canary, stable) = (window(&cfg.canary), window(&cfg.stable));
            let check = judge::check(&cfg, &canary, &stable);
            let (verdict, now_failed) = judge::decide(&cfg, step, elapsed, failed, &check);
            failed = now_failed;
            let judgement = Judgement {
                time: now_rfc3339(),
                step,
                check: check.clone(),
                canary_requests: canary.requests,
                canary_error_rate: canary.error_rate(),
                canary_p99_seconds: canary.percentile(0.99).map(|d| d.as_secs_f64()),
                stable_requests: stable.requests,
            };
            self.update(&route, |e| e.status.last = Some(judgement));
            match verdict {
                Verdict::Hold => {}
                Verdict::Advance => {
                    step += 1;
                    self.set_weight(&route, &cfg, cfg.steps[step]).await;
                    started = Instant::now();
                    let ms = unix_ms(SystemTime::now());
                    let weight = cfg.steps[step];
                    self.update(&route, |e| {
                        e.status.step = step;
                        e.status.canary_weight = weight;
                        e.status.step_started_ms = ms;
                    });
                    self.event(
                        &route,
                        "rollout_step",
                        format!(
                            "step {} passed ({} requests, error rate {:.4}); step {} ({}% on {})",
                            step,
                            canary.requests,
                            canary.error_rate(),
                            step + 1,
                            weight,
                            cfg.canary
                        ),
                    )
                    .await;
                }
                Verdict::Done => {
                    self.finish(
                        &route,
                        &cfg,
                        true,
                        format!(
                            "every step passed; the last with {} requests, error rate {:.4}",
                            canary.requests,
                            canary.error_rate()
                        ),
                    )
                    .await;
                    return;
                }
                Verdict::Rollback(why) => {
                    self.finish(&route, &cfg, false, format!("step {}: {why}", step + 1))
                        .await;
                    return;
                }
                Verdict::Pause(why) => {
                    paused = true;
                    self.update(&route, |e| {
                        e.status.phase = Phase::Paused;
                        e.status.reason = Some(why.clone());
                    });
                    self.event(
                        &route,
                        "rollout_pause",
                        format!("step {}: {why}; waiting for the operator", step + 1),
                    )
                    .await;
                }
            }
        }
    }

    fn config(&self, route: &str) -> Option<RolloutConfig> {
        let table = self.control.table().load();
        lookup(&table, route)
            .and_then(|(_, c)| c)
            .map(|c| (*c).clone())
    }
}
