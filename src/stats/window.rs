//! The rollout engine's statistics of one (route, pool): a ring of
//! `SLOTS` one-second slots (`ring`), each holding the requests, failures
//! and a latency histogram of that second, written by the data plane with
//! relaxed atomics and no lock (`Window::record`, from `Recorder::finish`).
//! Readers sum the slots of the seconds they ask for (`Window::since`).
//!
//! The histogram buckets are the same in every process and every version
//! (`bucket_bound_us`), so windows of several replicas add up bucket by
//! bucket (`Stats::add`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::ring::{Ring, Slot};

/// Slots in the ring: the longest window that can be read, in seconds.
pub const SLOTS: usize = 120;

/// Latency buckets: upper bounds, log-spaced from 1 ms to 30 s (ratio
/// ≈ 1.3, so a percentile is known within about 30 %), and one overflow.
pub const BUCKETS: usize = 41;

/// The upper bound of bucket `i` in microseconds (`u64::MAX` for the last).
pub fn bucket_bound_us(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        return u64::MAX;
    }
    // 1 ms · 30000^(i / (BUCKETS - 2)): bucket 0 ends at 1 ms, bucket 39 at 30 s.
    let exp = i as f64 / (BUCKETS - 2) as f64;
    (1000.0 * 30_000f64.powf(exp)).round() as u64
}

fn bounds() -> &'static [u64; BUCKETS] {
    static B: std::sync::OnceLock<[u64; BUCKETS]> = std::sync::OnceLock::new();
    B.get_or_init(|| std::array::from_fn(bucket_bound_us))
}

/// The bucket a latency falls in.
pub fn bucket_of(us: u64) -> usize {
    bounds().partition_point(|&b| b < us).min(BUCKETS - 1)
}

/// Is this answer a failure for the canary? Every 5xx: the backend's, and
/// the proxy's own 502/503/504.
#[inline]
pub fn is_failure(status: u16) -> bool {
    status >= 500
}

/// One second of a window.
#[derive(Debug)]
struct Second {
    requests: AtomicU64,
    failures: AtomicU64,
    hist: [AtomicU32; BUCKETS],
}

impl Default for Second {
    fn default() -> Self {
        Second {
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            hist: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

impl Slot for Second {
    fn clear(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        for h in &self.hist {
            h.store(0, Ordering::Relaxed);
        }
    }
}

/// The ring of one (route, pool).
#[derive(Debug, Default)]
pub struct Window {
    ring: Ring<Second, SLOTS>,
}

/// Totals over some seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub failures: u64,
    /// Answers per latency bucket (`bucket_bound_us`).
    pub hist: [u64; BUCKETS],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: 0,
            failures: 0,
            hist: [0; BUCKETS],
        }
    }
}

impl Stats {
    /// Failures / requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }

    /// The `q` quantile (0 < q ≤ 1) of latency, as the upper bound of the
    /// bucket holding it (the overflow bucket reports 30 s); `None` without
    /// samples.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        percentile(&self.hist, q)
    }

    /// Adds `other` (e.g. another replica's window of the same seconds).
    pub fn add(&mut self, other: &Stats) {
        self.requests += other.requests;
        self.failures += other.failures;
        for (t, o) in self.hist.iter_mut().zip(other.hist.iter()) {
            *t += o;
        }
    }
}

/// The `q` quantile of a histogram, as its bucket's upper bound.
pub fn percentile(hist: &[u64; BUCKETS], q: f64) -> Option<Duration> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let us = bucket_bound_us(i.min(BUCKETS - 2));
            return Some(Duration::from_micros(us));
        }
    }
    None
}

impl Window {
    /// Records one answer at second `sec` of `clock`.
    #[inline]
    pub fn record(&self, sec: u64, failed: bool, latency: Duration) {
        let slot = self.ring.at(sec);
        slot.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            slot.failures.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        slot.hist[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Totals of the seconds `from..=to` (at most the last `SLOTS`).
    pub fn since(&self, from: u64, to: u64) -> Stats {
        let mut s = Stats::default();
        for slot in self.ring.between(from, to) {
            s.requests += slot.requests.load(Ordering::Relaxed);
            s.failures += slot.failures.load(Ordering::Relaxed);
            for (t, h) in s.hist.iter_mut().zip(slot.hist.iter()) {
                *t += u64::from(h.load(Ordering::Relaxed));
            }
        }
        s
    }

    /// Totals of the last `secs` seconds up to and including `now`.
    pub fn last(&self, now: u64, secs: u64) -> Stats {
        self.since(now.saturating_sub(secs.saturating_sub(1)), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_spaced_from_1ms_to_30s() {
        assert_eq!(bucket_bound_us(0), 1_000);
        assert_eq!(bucket_bound_us(BUCKETS - 2), 30_000_000);
        assert_eq!(bucket_bound_us(BUCKETS - 1), u64::MAX);
        for i in 1..BUCKETS - 1 {
            let ratio = bucket_bound_us(i) as f64 / bucket_bound_us(i - 1) as f64;
            assert!((1.25..1.35).contains(&ratio), "ratio {ratio} at {i}");
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1_000), 0);
        assert_eq!(bucket_of(1_001), 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_bound_the_true_value_within_a_bucket() {
        let w = Window::default();
        // 98 fast answers (5 ms), 2 slow ones (800 ms).
        for i in 0..100 {
            let ms = if i < 98 { 5 } else { 800 };
            w.record(10, i % 50 == 0, Duration::from_millis(ms));
        }
        let s = w.last(10, 1);
        assert_eq!((s.requests, s.failures), (100, 2));
        assert!((s.error_rate() - 0.02).abs() < 1e-9);
        let p50 = s.percentile(0.5).unwrap();
        assert!(p50 >= Duration::from_millis(5) && p50 < Duration::from_micros(6_600));
        let p99 = s.percentile(0.99).unwrap();
        assert!(p99 >= Duration::from_millis(800) && p99 < Duration::from_millis(1_050));
        assert_eq!(Stats::default().percentile(0.99), None);
        // Beyond 30 s: reported as 30 s.
        let v = Window::default();
        v.record(1, false, Duration::from_secs(100));
        assert_eq!(v.last(1, 1).percentile(0.5), Some(Duration::from_secs(30)));
    }

    #[test]
    fn windows_sum_only_the_seconds_asked_for_and_slots_are_reused() {
        let w = Window::default();
        for sec in 0..5u64 {
            for _ in 0..=sec {
                w.record(sec, sec == 4, Duration::from_millis(1));
            }
        }
        assert_eq!(w.last(4, 1).requests, 5);
        assert_eq!(w.last(4, 2).requests, 9);
        assert_eq!(w.since(0, 4).requests, 15);
        assert_eq!(w.since(0, 4).failures, 5);
        assert_eq!(w.since(5, 9).requests, 0);
        // A full turn later the slot of second 1 is reused for second 1 + SLOTS.
        let later = 1 + SLOTS as u64;
        w.record(later, false, Duration::from_millis(1));
        assert_eq!(w.last(later, 1).requests, 1);
        // Seconds older than the ring are never counted.
        // (seconds 2, 3, 4 and the new one; 0 fell out of the ring's reach)
        assert_eq!(w.since(0, later).requests, 3 + 4 + 5 + 1);
    }

    #[test]
    fn stats_of_several_windows_add_up_bucket_by_bucket() {
        let (a, b) = (Window::default(), Window::default());
        a.record(7, false, Duration::from_millis(5));
        b.record(7, true, Duration::from_millis(5));
        b.record(7, false, Duration::from_millis(900));
        let mut sum = a.last(7, 1);
        sum.add(&b.last(7, 1));
        assert_eq!((sum.requests, sum.failures), (3, 1));
        assert_eq!(sum.hist[bucket_of(5_000)], 2);
        assert_eq!(sum.hist[bucket_of(900_000)], 1);
    }
}
