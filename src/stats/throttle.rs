//! Rate-limited warnings (issue 18, item 5): a dead pool used to write
//! thousands of identical `request failed` lines a second. Each repeated
//! warning has a static [`Throttle`] in [`ALL`]: its first occurrence in
//! an interval is logged; the rest are counted, and the next line logged
//! (or the summary that [`flush`] writes once the interval is over) says
//! how many were left out. Every occurrence is still counted
//! (`switchyard_log_events_total` and `switchyard_log_suppressed_total`,
//! by `kind`), and the requests themselves are in the request metrics.
//!
//! Lock-free: two relaxed atomics and one compare-exchange per logged
//! line, so the hot path that fails can call it per request.

use std::sync::atomic::{AtomicU64, Ordering};

/// The seconds between two lines of one kind.
pub const INTERVAL_SECS: u64 = 5;

/// One kind of repeated warning.
pub struct Throttle {
    /// The `kind` label and the summary's name.
    pub kind: &'static str,
    /// Clock second (+1; 0: never) the last line of this kind was logged.
    logged_at: AtomicU64,
    /// Occurrences left out since that line.
    suppressed: AtomicU64,
    /// Every occurrence, logged or not.
    total: AtomicU64,
    /// Occurrences left out, over the process's life.
    suppressed_total: AtomicU64,
}

/// A request answered with an error of the proxy or the backend's side.
pub static REQUEST_FAILED: Throttle = Throttle::new("request_failed");
/// A failing backend that stays in rotation: its pool's ejection limit.
pub static EJECTION_LIMIT: Throttle = Throttle::new("ejection_limit");
/// An accept that failed (EMFILE and friends).
pub static ACCEPT_FAILED: Throttle = Throttle::new("accept_failed");

/// Every throttle, for the metrics and [`flush`].
pub static ALL: [&Throttle; 3] = [&REQUEST_FAILED, &EJECTION_LIMIT, &ACCEPT_FAILED];

impl Throttle {
    pub const fn new(kind: &'static str) -> Self {
        Self {
            kind,
            logged_at: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            total: AtomicU64::new(0),
            suppressed_total: AtomicU64::new(0),
        }
    }

    /// An occurrence at clock second `now`: `Some(left out before it)`
    /// when it is to be logged, `None` when it is only counted.
    pub fn admit(&self, now: u64) -> Option<u64> {
        // Relaxed throughout: these are statistics; the compare-exchange
        // alone decides which of racing occurrences is the one logged.
        self.total.fetch_add(1, Ordering::Relaxed);
        let last = self.logged_at.load(Ordering::Relaxed);
        let stamp = now.saturating_add(1);
        let due = last == 0 || stamp >= last.saturating_add(INTERVAL_SECS);
        if due
            && self
                .logged_at
                .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        self.suppressed_total.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// At clock second `now`: the occurrences left out in an interval
    /// that is over (and not reported yet), taken; 0 when none.
    pub fn take_summary(&self, now: u64) -> u64 {
        let last = self.logged_at.load(Ordering::Relaxed);
        if now.saturating_add(1) < last.saturating_add(INTERVAL_SECS) {
            return 0;
        }
        self.suppressed.swap(0, Ordering::Relaxed)
    }

    /// Every occurrence so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Occurrences left out of the log so far.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total.load(Ordering::Relaxed)
    }
}

/// Writes the summary of each kind whose interval is over with lines left
/// out; called every second or so by a background task.
pub fn flush(now: u64) {
    for t in ALL {
        let n = t.take_summary(now);
        if n > 0 {
            tracing::warn!(
                kind = t.kind,
                suppressed = n,
                interval_secs = INTERVAL_SECS,
                "repeated warnings left out of the log (metrics count each one)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_an_interval_is_logged_the_rest_are_counted() {
        let t = Throttle::new("t");
        assert_eq!(t.admit(0), Some(0));
        for s in 0..INTERVAL_SECS - 1 {
            assert_eq!(t.admit(s), None);
        }
        // A summary waits for the interval's end.
        assert_eq!(t.take_summary(1), 0);
        // The next interval's first line carries the count.
        assert_eq!(t.admit(INTERVAL_SECS), Some(INTERVAL_SECS - 1));
        assert_eq!(t.admit(INTERVAL_SECS), None);
        assert_eq!(t.take_summary(2 * INTERVAL_SECS), 1);
        assert_eq!(t.take_summary(2 * INTERVAL_SECS), 0);
        assert_eq!(t.total(), INTERVAL_SECS + 2);
        assert_eq!(t.suppressed_total(), INTERVAL_SECS);
    }

    #[test]
    fn a_flood_logs_one_line_per_interval() {
        let t = Throttle::new("t");
        let logged = (0..100_000u64)
            .filter(|i| t.admit(i / 1000).is_some())
            .count();
        // 100 seconds at 1,000 a second: one line every INTERVAL_SECS.
        assert_eq!(logged as u64, 100 / INTERVAL_SECS);
        assert_eq!(t.total(), 100_000);
    }

    #[test]
    fn huge_clock_values_do_not_overflow() {
        // (The clock never gets there; saturating, nothing panics.)
        let t = Throttle::new("t");
        assert_eq!(t.admit(u64::MAX), Some(0));
        t.admit(u64::MAX);
        t.take_summary(u64::MAX);
        assert_eq!(t.total(), 2);
    }
}
