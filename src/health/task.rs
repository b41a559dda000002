//! The probe task of one backend: probe at once, then every `interval`
//! (start to start, with ±10 % jitter so probes of many backends do not
//! align), feed each result to the threshold counter and apply the state it
//! answers. A transition is logged with its reason; becoming healthy again
//! starts the pool's slow start and ends a passive ejection early.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::counter::{self, Thresholds};
use super::probe;
use crate::config::HealthConfig;
use crate::stats::clock;
use crate::table::{Backend, Health, ProbeFailure};

/// Counts the start-up backends whose first probe has not finished; each
/// probe task of the first round holds one and drops it after its first
/// probe (or when it is aborted, e.g. by a reload removing the backend).
pub(super) struct FirstRound(pub Arc<AtomicUsize>);

impl Drop for FirstRound {
    fn drop(&mut self) {
        // Release: readiness (Acquire) sees the states this probe set.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// What a probe task needs; cloned from the pool when it is spawned.
pub(super) struct ProbeSpec {
    pub backend: Arc<Backend>,
    pub health: HealthConfig,
    pub slow_start: Option<Duration>,
}

pub(super) async fn run(spec: ProbeSpec, first: Option<FirstRound>) {
    let ProbeSpec {
        backend,
        health,
        slow_start,
    } = spec;
    let thresholds = Thresholds {
        healthy: health.healthy_threshold,
        unhealthy: health.unhealthy_threshold,
    };
    let mut first = first;
    let mut streak = 0;
    loop {
        let started = Instant::now();
        let result = probe::probe_with(backend.addr, backend.tls.as_deref(), &health).await;
        streak = apply(&backend, streak, result, thresholds, slow_start);
        drop(first.take());
        tokio::time::sleep_until(started + jittered(health.interval)).await;
    }
}

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    let tenth = interval / 10;
    interval - tenth + tenth.mul_f64(2.0 * fastrand::f64())
}

/// Applies one probe result; answers the new streak.
fn apply(
    backend: &Backend,
    streak: u32,
    result: Result<u16, ProbeFailure>,
    thresholds: Thresholds,
    slow_start: Option<Duration>,
) -> u32 {
    let failure = result.err();
    backend.set_probe_failure(failure);
    // Only this task writes the health of its backend, so reading the
    // state and then storing the next one cannot race with another writer.
    let before = backend.health();
    let (after, streak) = counter::step(before, streak, result.is_ok(), thresholds);
    if after == before {
        return streak;
    }
    backend.set_health(after);
    match (after, failure) {
        (Health::Unhealthy, Some(reason)) => {
            tracing::warn!(pool = %backend.pool, backend.addr = %backend.addr, from = ?before,
                reason = %reason, "backend is unhealthy");
        }
        _ => {
            let status = result.ok();
            tracing::info!(pool = %backend.pool, backend.addr = %backend.addr, from = ?before,
                status, "backend is healthy");
            let now = clock::now_ms();
            // A recovery seen by the probes ends a passive ejection early.
            if before == Health::Unhealthy && backend.uneject(now) {
                tracing::info!(pool = %backend.pool, backend.addr = %backend.addr,
                    "active probes saw the backend recover; ejection ended early");
            }
            // Start-up backends begin together: no ramp for their first probe.
            let newly = before == Health::Unhealthy || !backend.admits_unknown();
            if newly && slow_start.is_some() {
                backend.begin_slow_start(now);
            }
        }
    }
    streak
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(900) && d <= Duration::from_millis(1100));
        }
    }

    #[test]
    fn apply_records_reasons_and_transitions() {
        let b = Backend::new("p".into(), "127.0.0.1:1".parse().unwrap());
        let t = Thresholds {
            healthy: 2,
            unhealthy: 2,
        };
        let s = apply(&b, 0, Err(ProbeFailure::Status(500)), t, None);
        assert_eq!((b.health(), s), (Health::Unhealthy, 0));
        assert_eq!(b.probe_failure(), Some(ProbeFailure::Status(500)));
        let s = apply(&b, s, Ok(200), t, Some(Duration::from_secs(10)));
        assert_eq!((b.health(), s), (Health::Unhealthy, 1));
        assert_eq!(b.probe_failure(), None);
        let s = apply(&b, s, Ok(200), t, Some(Duration::from_secs(10)));
        assert_eq!((b.health(), s), (Health::Healthy, 0));
        assert!(b.in_slow_start(), "a recovered backend ramps up");
    }
}
