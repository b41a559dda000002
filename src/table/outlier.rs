//! Passive outlier detection: the data plane reports each try's outcome to
//! its backend; `consecutive_failures` failures in a row eject the backend
//! for a while, never more than `max_ejected_percent` of its pool at once.
//! The health supervisor ends ejections when they expire; a probe that sees
//! the backend recover (unhealthy → healthy) ends one early.
//!
//! The hot path is a relaxed load on success and one atomic add on failure;
//! the ejection itself (rare) reads the clock and logs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, EJECTED};
use super::budget::RetryBudget;
use crate::config::OutlierConfig;
use crate::stats::throttle;

/// State shared by all backends of one pool, across table generations.
#[derive(Debug)]
pub struct PoolShared {
    pub name: Arc<str>,
    /// Backends of this pool ejected right now; reserved before a backend
    /// is ejected so that concurrent ejections cannot exceed the limit.
    ejected: AtomicU32,
    /// Retries against this pool, limited to a share of its requests.
    pub budget: RetryBudget,
}

impl PoolShared {
    pub fn new(name: Arc<str>) -> Self {
        Self {
            name,
            ejected: AtomicU32::new(0),
            budget: RetryBudget::new(),
        }
    }

    pub fn ejected(&self) -> u32 {
        self.ejected.load(Ordering::Relaxed)
    }
}

/// A pool's outlier settings, precomputed when its table is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierSettings {
    /// 0: passive ejection is off.
    pub consecutive_failures: u32,
    pub ejection_ms: u64,
    pub max_ejection_ms: u64,
    /// Most backends of the pool that may be ejected at once.
    pub max_ejected: u32,
}

impl OutlierSettings {
    pub fn new(cfg: &OutlierConfig, pool_size: usize) -> Self {
        Self {
            consecutive_failures: cfg.consecutive_failures,
            ejection_ms: cfg.ejection_time.as_millis() as u64,
            max_ejection_ms: cfg.max_ejection_time.as_millis() as u64,
            max_ejected: (pool_size as u64 * u64::from(cfg.max_ejected_percent) / 100) as u32,
        }
    }
}

/// The n-th ejection in a row lasts n × `base`, capped at `max`.
pub fn ejection_length(nth: u32, base_ms: u64, max_ms: u64) -> u64 {
    base_ms.saturating_mul(u64::from(nth.max(1))).min(max_ms)
}

/// Which ejection in a row the next one is: a backend that stayed in
/// rotation for `max_ms` since its last ejection starts over at 1.
pub fn next_ejection_count(prev: u32, returned_at_ms: u64, now_ms: u64, max_ms: u64) -> u32 {
    if prev == 0 || now_ms.saturating_sub(returned_at_ms) >= max_ms {
        1
    } else {
        prev.saturating_add(1)
    }
}

impl Backend {
    /// A try on this backend succeeded (a response below 500).
    #[inline]
    pub fn report_success(&self) {
        // Load first: in the common case the counter is already 0 and a
        // store would bounce the cache line between workers for nothing.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Release);
        }
    }

    /// A try on this backend failed (connect error, reset, timeout, 5xx).
    /// Answers how long the backend was ejected for, when this failure
    /// ejected it.
    pub fn report_failure(&self, s: &OutlierSettings, now_ms: u64) -> Option<Duration> {
        if s.consecutive_failures == 0 {
            return None;
        }
        // AcqRel pairs with the Release reset in `eject`: whoever counts
        // up to the threshold after a reset sees the EJECTED flag set
        // before that reset, so a backend is never ejected twice at once.
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n != s.consecutive_failures || self.is_ejected() {
            return None;
        }
        self.eject(s, now_ms, n)
    }

    fn eject(&self, s: &OutlierSettings, now_ms: u64, failures: u32) -> Option<Duration> {
        let reserved = self
            .shared
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < s.max_ejected).then_some(n + 1)
            });
        if reserved.is_err() {
            // Once per interval across pools: a dead pool repeats it at
            // the request rate (issue 18, item 5).
            if let Some(suppressed) = throttle::EJECTION_LIMIT.admit(now_ms / 1000) {
                tracing::info!(pool = %self.pool, backend.addr = %self.addr, failures,
                    max_ejected = s.max_ejected, suppressed,
                    "backend keeps failing but the pool's ejection limit is reached; it stays in rotation");
            }
            self.failures.store(0, Ordering::Release);
            return None;
        }
        let nth = next_ejection_count(
            self.ejections.load(Ordering::Relaxed),
            self.returned_at.load(Ordering::Relaxed),
            now_ms,
            s.max_ejection_ms,
        );
        let length = ejection_length(nth, s.ejection_ms, s.max_ejection_ms);
        self.ejections.store(nth, Ordering::Relaxed);
        self.ejected_until
            .store(now_ms.saturating_add(length), Ordering::Relaxed);
        // Release: the supervisor loads the flag with Acquire and must see
        // this ejection's end time, not the previous one's.
        self.state.fetch_or(EJECTED, Ordering::Release);
        self.failures.store(0, Ordering::Release);
        self.stats.count_ejection();
        let length = Duration::from_millis(length);
        tracing::warn!(pool = %self.pool, backend.addr = %self.addr, failures,
            ejected_for = ?length, ejection = nth, "backend ejected after consecutive failures");
        Some(length)
    }

    /// Is the ejection in force over at `now_ms`?
    pub fn ejection_due(&self, now_ms: u64) -> bool {
        // Acquire pairs with the Release in `eject` (see there).
        self.state.load(Ordering::Acquire) & EJECTED != 0
            && now_ms >= self.ejected_until.load(Ordering::Relaxed)
    }

    /// Puts an ejected backend back into rotation; answers false when it
    /// was not ejected.
    pub fn uneject(&self, now_ms: u64) -> bool {
        let prev = self.state.fetch_and(!EJECTED, Ordering::AcqRel);
        if prev & EJECTED == 0 {
            return false;
        }
        self.shared.ejected.fetch_sub(1, Ordering::AcqRel);
        self.returned_at.store(now_ms, Ordering::Relaxed);
        self.failures.store(0, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(n: u32, max_ejected: u32) -> OutlierSettings {
        OutlierSettings {
            consecutive_failures: n,
            ejection_ms: 1_000,
            max_ejection_ms: 10_000,
            max_ejected,
        }
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets() {
        let b = Backend::new("p".into(), "127.0.0.1:1".parse().unwrap());
        let s = settings(3, 1);
        assert!(b.report_failure(&s, 0).is_none());
        assert!(b.report_failure(&s, 0).is_none());
        b.report_success();
        assert!(b.report_failure(&s, 0).is_none());
        assert!(b.report_failure(&s, 0).is_none());
        assert_eq!(b.report_failure(&s, 0), Some(Duration::from_secs(1)));
        assert!(b.is_ejected() && !b.is_available());
        assert!(!b.ejection_due(999) && b.ejection_due(1_000));
        // failures while ejected (requests still in flight) change nothing
        for _ in 0..10 {
            assert!(b.report_failure(&s, 10).is_none());
        }
        assert!(b.uneject(1_000));
        assert!(!b.uneject(1_000), "only once");
        assert!(b.is_available());
        assert_eq!(b.shared.ejected(), 0);
    }

    #[test]
    fn repeated_ejections_grow_then_start_over() {
        let b = Backend::new("p".into(), "127.0.0.1:1".parse().unwrap());
        let s = settings(1, 1);
        assert_eq!(b.report_failure(&s, 0), Some(Duration::from_secs(1)));
        b.uneject(1_000);
        assert_eq!(b.report_failure(&s, 1_500), Some(Duration::from_secs(2)));
        b.uneject(3_500);
        // long in rotation since: back to the base length
        assert_eq!(b.report_failure(&s, 20_000), Some(Duration::from_secs(1)));
    }

    #[test]
    fn the_pool_limit_holds() {
        let shared = Arc::new(PoolShared::new("p".into()));
        let backends: Vec<Backend> = (1..=4)
            .map(|i| {
                Backend::in_pool(
                    shared.clone(),
                    format!("127.0.0.1:{i}").parse().unwrap(),
                    true,
                )
            })
            .collect();
        let s = OutlierSettings::new(
            &OutlierConfig {
                consecutive_failures: 1,
                ..OutlierConfig::default()
            },
            backends.len(),
        );
        assert_eq!(s.max_ejected, 2);
        let ejected = backends
            .iter()
            .filter(|b| b.report_failure(&s, 0).is_some())
            .count();
        assert_eq!(ejected, 2);
        assert_eq!(shared.ejected(), 2);
        // at 50 %, a pool of one is never ejected
        assert_eq!(
            OutlierSettings::new(&OutlierConfig::default(), 1).max_ejected,
            0
        );
    }

    proptest! {
        #[test]
        fn ejection_length_is_bounded_and_grows(nth in 0u32..1000, base in 1u64..100_000, extra in 0u64..1_000_000) {
            let max = base + extra;
            let l = ejection_length(nth, base, max);
            prop_assert!(l >= base.min(max) && l <= max);
            prop_assert!(ejection_length(nth + 1, base, max) >= l);
        }
    }
}
