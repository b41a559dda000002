//! Verified blue-green flips. `Rollouts::flip` sends all of a route's
//! traffic to one pool through the controller and, when asked to verify,
//! watches that pool's window from the moment of the flip: a failed check
//! (error rate or p99 over the limit, once `min_requests` were seen) or a
//! pool with no available backend puts the previous split back at once
//! (source `rollout`), with the reason in the history. A window that ends
//! with every check passed keeps the flip (`flip_verified`); one that ends
//! without `min_requests` keeps or reverts it as asked (`flip_unverified`
//! or `flip_reverted`). Another change of the route's split during the
//! window ends the verification (`flip_verify_cancelled`): the operator's
//! later word wins.
//!
//! The judgement is the canary engine's (`judge::check`) with the flipped
//! pool as the canary; there is nothing to compare it with (the previous
//! pool gets no traffic any more), so only the absolute limits apply.
//! A verification is not resumed after a restart: the flip stays.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::judge;
use super::state::unix_ms;
use super::{lookup, Rollouts};
use crate::api::{Check, FlipPhase, FlipStatus};
use crate::config::{InsufficientTraffic, RolloutConfig};
use crate::control::{Applied, Change, ChangeError};
use crate::event::{Action, ChangeSource, Event, Outcome};
use crate::stats::clock;
use crate::table::RoutingTable;

/// How a flip is verified: the window and the limits.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifySpec {
    pub window: Duration,
    pub min_requests: u64,
    pub max_error_rate: f64,
    pub max_p99_latency: Duration,
    /// Revert (rather than keep) a flip whose window saw too few requests.
    pub revert_if_insufficient: bool,
}

impl VerifySpec {
    /// The defaults for `route`: the limits of its `[routes.rollout]` when
    /// it has one (the team's definition of healthy), else 1 request,
    /// 1 % errors and a 2 s p99, over `window`.
    pub fn defaults(table: &RoutingTable, route: &str, window: Duration) -> Self {
        match lookup(table, route).and_then(|(_, c)| c) {
            Some(c) => VerifySpec {
                window,
                min_requests: c.min_requests.max(1),
                max_error_rate: c.max_error_rate,
                max_p99_latency: c.max_p99_latency,
                revert_if_insufficient: false,
            },
            None => VerifySpec {
                window,
                min_requests: 1,
                max_error_rate: 0.01,
                max_p99_latency: Duration::from_secs(2),
                revert_if_insufficient: false,
            },
        }
    }

    /// The same limits in the canary engine's terms.
    fn as_rollout(&self, to: &str) -> RolloutConfig {
        RolloutConfig {
            canary: to.to_owned(),
            stable: String::new(),
            steps: vec![100],
            step_interval: self.window,
            min_requests: self.min_requests.max(1),
            max_error_rate: self.max_error_rate,
            max_p99_latency: self.max_p99_latency,
            max_error_rate_increase: None,
            max_latency_ratio: None,
            failure_threshold: 1,
            max_wait: Duration::ZERO,
            on_insufficient_traffic: if self.revert_if_insufficient {
                InsufficientTraffic::Rollback
            } else {
                InsufficientTraffic::Hold
            },
            shadow: None,
        }
    }
}

pub(super) struct FlipEntry {
    pub(super) status: FlipStatus,
    /// Ends the verification task (a newer flip of the route replaces it).
    cancel: CancellationToken,
}

/// Why a flip was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlipError {
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("verification window {0:?} is out of range (100ms to 1h)")]
    Window(Duration),
}

/// Only the pool `to` has weight on `route`: the flip is still in force.
fn still_flipped(table: &RoutingTable, route: &str, to: &str) -> bool {
    table
        .routes()
        .iter()
        .find(|r| &*r.name == route)
        .is_some_and(|r| r.split().all(|(p, w)| (&*p.name == to) == (w > 0)))
}

fn pool_available(table: &RoutingTable, pool: &str) -> bool {
    table
        .pools()
        .iter()
        .find(|p| &*p.name == pool)
        .is_some_and(|p| p.backends.iter().any(|b| b.is_available()))
}

impl Rollouts {
    /// Flips `route` to `to`; with `verify`, watches the pool and flips
    /// back on failure. Answers the controller's answer and, when
    /// verifying, the verification as it starts.
    pub async fn flip(
        self: &Arc<Self>,
        route: &str,
        to: &str,
        if_match: Option<u64>,
        verify: Option<VerifySpec>,
    ) -> Result<(Applied, Option<FlipStatus>), FlipError> {
        if let Some(v) = &verify {
            if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&v.window) {
                return Err(FlipError::Window(v.window));
            }
        }
        let change = Change::Flip {
            route: route.to_owned(),
            to: to.to_owned(),
        };
        let applied = self
            .control
            .change(ChangeSource::Api, if_match, change)
            .await?;
        // A flip that changed nothing has nothing to go back to, and leaves
        // a running verification alone.
        if !applied.changed {
            return Ok((applied, None));
        }
        // Any other flip of the route ends the verification of an earlier one.
        let mut flips = self.flips.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = flips.get(route) {
            old.cancel.cancel();
        }
        let (Some(spec), Some(previous)) = (verify, applied.previous_split.clone()) else {
            return Ok((applied, None));
        };
        let status = FlipStatus {
            route: route.to_owned(),
            to: to.to_owned(),
            previous_split: previous,
            phase: FlipPhase::Verifying,
            generation: applied.generation,
            started_ms: unix_ms(SystemTime::now()),
            window_ms: spec.window.as_millis() as u64,
            min_requests: spec.min_requests,
            max_error_rate: spec.max_error_rate,
            max_p99_seconds: spec.max_p99_latency.as_secs_f64(),
            revert_if_insufficient: spec.revert_if_insufficient,
            requests: 0,
            error_rate: 0.0,
            p99_seconds: None,
            reason: None,
            now_ms: None,
        };
        let cancel = self.shutdown.child_token();
        let entry = FlipEntry {
            status: status.clone(),
            cancel: cancel.clone(),
        };
        flips.insert(route.to_owned(), entry);
        drop(flips);
        let me = self.clone();
        let mine = status.clone();
        tokio::spawn(async move { me.verify(mine, spec, cancel).await });
        Ok((applied, Some(status)))
    }

    /// The latest verified flip of `route`.
    pub fn flip_status(&self, route: &str) -> Option<FlipStatus> {
        self.flips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .map(|e| e.status.clone())
    }

    /// Every route's latest verified flip.
    pub fn flip_statuses(&self) -> Vec<FlipStatus> {
        let mut v: Vec<FlipStatus> = self
            .flips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|e| e.status.clone())
            .collect();
        v.sort_by(|a, b| a.route.cmp(&b.route));
        v
    }

    /// Updates the record of the flip of `route` made at `generation` (a
    /// newer flip's record is left alone).
    fn update_flip(&self, route: &str, generation: u64, f: impl FnOnce(&mut FlipStatus)) {
        let mut flips = self.flips.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = flips
            .get_mut(route)
            .filter(|e| e.status.generation == generation)
        {
            f(&mut e.status);
        }
    }

    /// The task of one verification. `status` is its own record as it
    /// started (the map may already hold a newer flip's).
    async fn verify(
        self: Arc<Self>,
        status: FlipStatus,
        spec: VerifySpec,
        cancel: CancellationToken,
    ) {
        let route = status.route.clone();
        let to = status.to.clone();
        let cfg = spec.as_rollout(&to);
        let started = Instant::now();
        let deadline = started + spec.window;
        let from = status
            .previous_split
            .0
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|(p, w)| format!("{p} {w}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.flip_event(
            &route,
            Action::FlipVerify,
            format!(
                "verifying {to} for {:?}: error rate ≤ {}, p99 ≤ {:?}, at least {} requests; else back to {from}",
                spec.window, spec.max_error_rate, spec.max_p99_latency, cfg.min_requests
            ),
        )
        .await;
        // Often: every tick a failing pool keeps the traffic costs requests,
        // and a check only sums a few one-second slots. A new table (the
        // split changed, the pool went away) is checked at once.
        let tick = (spec.window / 10).clamp(Duration::from_millis(25), Duration::from_millis(50));
        let mut tables = self.control.watch();
        let mut next = (started + tick).min(deadline);
        let outcome = loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    if self.shutdown.is_cancelled() {
                        return;
                    }
                    let why = "a newer flip of the route replaced it";
                    // A newer verified flip has replaced the entry already.
                    self.update_flip(&route, status.generation, |s| {
                        s.phase = FlipPhase::Cancelled;
                        s.reason = Some(why.into());
                    });
                    self.flip_event(&route, Action::FlipVerifyCancelled, why.into()).await;
                    return;
                }
                _ = tables.changed() => {}
                _ = tokio::time::sleep_until(next) => next = (Instant::now() + tick).min(deadline),
            }
            if let Some(outcome) = self.check_flip(&status, &cfg, started, deadline) {
                break outcome;
            }
        };
        let (phase, why) = outcome;
        self.end_flip(&status, phase, why).await;
    }

    /// One check of a verification: `None` to go on watching, else how it
    /// ends and why.
    fn check_flip(
        &self,
        flip: &FlipStatus,
        cfg: &RolloutConfig,
        started: Instant,
        deadline: Instant,
    ) -> Option<(FlipPhase, String)> {
        let (route, to) = (flip.route.as_str(), flip.to.as_str());
        let table = self.control.table().load();
        if !still_flipped(&table, route, to) {
            let why = "the route's split was changed during the window; that change stands";
            return Some((FlipPhase::Cancelled, why.into()));
        }
        if !pool_available(&table, to) {
            let why = format!("pool {to:?} has no available backend");
            return Some((FlipPhase::Reverted, why));
        }
        let stats = table
            .window(route, to)
            .map(|w| w.since(clock::secs(started), clock::secs(Instant::now())))
            .unwrap_or_default();
        let p99 = stats.percentile(0.99).map(|d| d.as_secs_f64());
        self.update_flip(route, flip.generation, |s| {
            s.requests = stats.requests;
            s.error_rate = stats.error_rate();
            s.p99_seconds = p99;
        });
        let check = judge::check(cfg, &stats, &Default::default());
        let done = Instant::now() >= deadline;
        match check {
            Check::Fail { .. } => {
                let why = format!(
                    "{} ({} requests to {to} since the flip)",
                    check.describe(),
                    stats.requests
                );
                Some((FlipPhase::Reverted, why))
            }
            _ if !done => None,
            Check::Pass => {
                let why = format!(
                    "{} requests to {to}, error rate {:.4}, p99 {}",
                    stats.requests,
                    stats.error_rate(),
                    p99.map_or_else(|| "-".into(), |s| format!("{:.0} ms", s * 1000.0))
                );
                Some((FlipPhase::Verified, why))
            }
            Check::Insufficient { .. }
                if cfg.on_insufficient_traffic == InsufficientTraffic::Rollback =>
            {
                Some((FlipPhase::Reverted, check.describe()))
            }
            Check::Insufficient { .. } => {
                let why = format!("{}; the flip stays", check.describe());
                Some((FlipPhase::Unverified, why))
            }
        }
    }

    /// Ends a verification: a revert puts the split from before the flip
    /// back (only while the flip is still in force); records why.
    async fn end_flip(&self, flip: &FlipStatus, mut phase: FlipPhase, mut why: String) {
        let route = flip.route.as_str();
        if phase == FlipPhase::Reverted {
            let change = Change::RevertFlip {
                route: route.to_owned(),
                to: flip.to.clone(),
                split: flip.previous_split.0.clone(),
            };
            if let Err(e) = self
                .control
                .change(ChangeSource::Rollout, None, change)
                .await
            {
                // A later change of the split, or the route or the pool
                // went away: nothing to go back to.
                tracing::warn!(%route, error = %e, "the split before the flip was not put back");
                why = format!("{why}; not switched back: {e}");
                phase = FlipPhase::Cancelled;
            }
        }
        let action = match phase {
            FlipPhase::Verified => Action::FlipVerified,
            FlipPhase::Unverified => Action::FlipUnverified,
            FlipPhase::Reverted => Action::FlipReverted,
            FlipPhase::Cancelled | FlipPhase::Verifying => Action::FlipVerifyCancelled,
        };
        self.update_flip(route, flip.generation, |s| {
            s.phase = phase;
            s.reason = Some(why.clone());
        });
        self.flip_event(route, action, why).await;
    }

    async fn flip_event(&self, route: &str, action: Action, detail: String) {
        tracing::info!(%route, %action, %detail, "flip verification");
        let mut ev = Event::new(0, ChangeSource::Rollout, action, Outcome::Applied);
        ev.route = Some(route.to_owned());
        ev.detail = Some(detail);
        self.control.record(ev).await;
    }
}
