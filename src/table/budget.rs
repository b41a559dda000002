//! The retry budget of a pool: over a sliding window of `WINDOW_SECS`
//! one-second slots, retries may add at most `budget_percent` % to the
//! pool's requests (and at least `MIN_RETRIES` per window are allowed, so
//! a quiet pool can still hide a dead backend). It keeps retry storms from
//! multiplying the load on a pool that is failing as a whole.
//!
//! Lock-free and approximate: the counts live in a `stats::ring::Ring` of
//! one-second slots (the same ring as the rollout windows); an increment
//! racing a slot's reset may be lost, as may the check-then-add of two
//! concurrent retries. Both errors are a request or two, never a storm.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::stats::ring::{Ring, Slot};

/// Length of the window, in one-second slots.
pub const WINDOW_SECS: u64 = 10;
/// Retries always allowed per window, whatever the request count.
pub const MIN_RETRIES: u64 = 10;

/// One second of a budget.
#[derive(Debug, Default)]
struct Second {
    requests: AtomicU32,
    retries: AtomicU32,
}

impl Slot for Second {
    fn clear(&self) {
        // Relaxed throughout: the counters are statistics (module doc).
        self.requests.store(0, Ordering::Relaxed);
        self.retries.store(0, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub struct RetryBudget {
    ring: Ring<Second, { WINDOW_SECS as usize }>,
}

impl RetryBudget {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a request (a first try) at `second`.
    #[inline]
    pub fn record_request(&self, second: u64) {
        self.ring
            .at(second)
            .requests
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Requests and retries in the window ending at `second`.
    pub fn window(&self, second: u64) -> (u64, u64) {
        let first = second.saturating_sub(WINDOW_SECS - 1);
        self.ring
            .between(first, second)
            .fold((0, 0), |(req, ret), s| {
                (
                    req + u64::from(s.requests.load(Ordering::Relaxed)),
                    ret + u64::from(s.retries.load(Ordering::Relaxed)),
                )
            })
    }

    /// Takes one retry from the budget at `second`, if there is one left.
    pub fn try_retry(&self, second: u64, percent: u32) -> bool {
        let (requests, retries) = self.window(second);
        if retries >= allowed_retries(requests, percent) {
            return false;
        }
        self.ring.at(second).retries.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Retries allowed in a window that saw `requests` first tries.
pub fn allowed_retries(requests: u64, percent: u32) -> u64 {
    (requests * u64::from(percent) / 100).max(MIN_RETRIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_capped_by_the_share_of_requests() {
        let b = RetryBudget::new();
        for _ in 0..1000 {
            b.record_request(5);
        }
        let granted = (0..1000).filter(|_| b.try_retry(5, 20)).count();
        assert_eq!(granted, 200);
    }

    #[test]
    fn a_quiet_pool_still_gets_the_minimum() {
        let b = RetryBudget::new();
        b.record_request(0);
        let granted = (0..100).filter(|_| b.try_retry(0, 20)).count();
        assert_eq!(granted as u64, MIN_RETRIES);
    }

    #[test]
    fn old_seconds_leave_the_window() {
        let b = RetryBudget::new();
        for _ in 0..100 {
            b.record_request(1);
        }
        assert_eq!(b.window(1), (100, 0));
        assert_eq!(b.window(10), (100, 0));
        assert_eq!(b.window(11), (0, 0));
        // the slot of second 1 is reused for second 11, reset first
        b.record_request(11);
        assert_eq!(b.window(11), (1, 0));
    }
}
