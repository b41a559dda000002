//! The shadow window of one (route, mirror pool): per second, the copies
//! mirrored, the pairs compared, the mismatches by kind, the mirror's
//! errors and 5xx answers, the copies dropped (by reason) and the bodies
//! that could not be compared, with two latency histograms of the compared
//! pairs — the primary's and the mirror's, over the same requests — in the
//! buckets of the rollout windows (`window`). Written by the data plane
//! with relaxed atomics (after the client's answer, off its path), read by
//! the rollout's shadow step and the admin API, summed across replicas
//! with `ShadowStats::add` like `Stats` (`[cluster]`: each replica publishes
//! its cumulative totals, the leader judges `minus` a baseline).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod handles;

pub use handles::{InFlightSlot, ShadowHandles, ShadowMeters};

use super::ring::{Ring, Slot};
use super::window::{bucket_bound_us, bucket_of, is_failure, BUCKETS, SLOTS};
use crate::api::ShadowWindowTotals;
use crate::shadow::{Kind, Outcome};

/// Mismatch kinds counted (`Kind::ALL`).
pub const KINDS: usize = Kind::ALL.len();

/// Why a copy that was due was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dropped {
    /// The worker already had `max_in_flight` mirror requests out.
    InFlight,
    /// The request body was bigger than the mirror's `max_body_bytes`.
    BodyTooBig,
}

impl Dropped {
    pub const ALL: [Dropped; 2] = [Dropped::InFlight, Dropped::BodyTooBig];

    /// The label in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::InFlight => "in_flight",
            Dropped::BodyTooBig => "body_too_big",
        }
    }
}

/// One second of a shadow window.
#[derive(Debug)]
struct Second {
    mirrored: AtomicU64,
    compared: AtomicU64,
    mismatched: [AtomicU64; KINDS],
    errors: AtomicU64,
    mirror_5xx: AtomicU64,
    dropped: [AtomicU64; 2],
    body_skipped: AtomicU64,
    primary: [AtomicU32; BUCKETS],
    mirror: [AtomicU32; BUCKETS],
}

impl Default for Second {
    fn default() -> Self {
        Second {
            mirrored: AtomicU64::new(0),
            compared: AtomicU64::new(0),
            mismatched: Default::default(),
            errors: AtomicU64::new(0),
            mirror_5xx: AtomicU64::new(0),
            dropped: Default::default(),
            body_skipped: AtomicU64::new(0),
            primary: std::array::from_fn(|_| AtomicU32::new(0)),
            mirror: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

impl Slot for Second {
    fn clear(&self) {
        let counters = [
            &self.mirrored,
            &self.compared,
            &self.errors,
            &self.mirror_5xx,
            &self.body_skipped,
        ];
        for c in counters
            .into_iter()
            .chain(&self.mismatched)
            .chain(&self.dropped)
        {
            c.store(0, Ordering::Relaxed);
        }
        for h in self.primary.iter().chain(&self.mirror) {
            h.store(0, Ordering::Relaxed);
        }
    }
}

/// The ring of one (route, mirror pool).
#[derive(Debug, Default)]
pub struct ShadowWindow {
    ring: Ring<Second, SLOTS>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl ShadowWindow {
    /// A copy was sent at second `sec`.
    #[inline]
    pub fn mirrored(&self, sec: u64) {
        self.ring.at(sec).mirrored.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy that was due was not sent.
    #[inline]
    pub fn dropped(&self, sec: u64, why: Dropped) {
        self.ring.at(sec).dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The mirror gave no answer (connect error, reset, timeout, no
    /// available backend).
    pub fn error(&self, sec: u64) {
        self.ring.at(sec).errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A pair was compared: `outcome`, the mirror's status and both times
    /// to the response headers.
    pub fn compared(
        &self,
        sec: u64,
        outcome: &Outcome,
        mirror_status: u16,
        primary: Duration,
        mirror: Duration,
    ) {
        let s = self.ring.at(sec);
        s.compared.fetch_add(1, Ordering::Relaxed);
        if let Some(kind) = outcome.mismatch {
            s.mismatched[kind.index()].fetch_add(1, Ordering::Relaxed);
        }
        if outcome.body_skipped {
            s.body_skipped.fetch_add(1, Ordering::Relaxed);
        }
        if is_failure(mirror_status) {
            s.mirror_5xx.fetch_add(1, Ordering::Relaxed);
        }
        s.primary[bucket_of(micros(primary))].fetch_add(1, Ordering::Relaxed);
        s.mirror[bucket_of(micros(mirror))].fetch_add(1, Ordering::Relaxed);
    }

    /// Totals of the seconds `from..=to` (at most the last `SLOTS`).
    pub fn since(&self, from: u64, to: u64) -> ShadowStats {
        let mut t = ShadowStats::default();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for s in self.ring.between(from, to) {
            t.mirrored += get(&s.mirrored);
            t.compared += get(&s.compared);
            t.errors += get(&s.errors);
            t.mirror_5xx += get(&s.mirror_5xx);
            t.body_skipped += get(&s.body_skipped);
            add_all(&mut t.mismatched, s.mismatched.iter().map(get));
            add_all(&mut t.dropped, s.dropped.iter().map(get));
            let get32 = |c: &AtomicU32| u64::from(c.load(Ordering::Relaxed));
            add_all(&mut t.primary, s.primary.iter().map(get32));
            add_all(&mut t.mirror, s.mirror.iter().map(get32));
        }
        t
    }

    /// Totals of the last `secs` seconds up to and including `now`.
    pub fn last(&self, now: u64, secs: u64) -> ShadowStats {
        self.since(now.saturating_sub(secs.saturating_sub(1)), now)
    }
}

fn add_all(to: &mut [u64], from: impl IntoIterator<Item = u64>) {
    for (t, f) in to.iter_mut().zip(from) {
        *t += f;
    }
}

/// Totals of a shadow window over some seconds (or of several replicas'
/// windows over the same seconds, `add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowStats {
    /// Copies sent.
    pub mirrored: u64,
    /// Pairs with both answers, compared.
    pub compared: u64,
    /// Mismatched pairs, by `Kind` (in `Kind::ALL` order).
    pub mismatched: [u64; KINDS],
    /// Copies the mirror did not answer.
    pub errors: u64,
    /// Compared pairs whose mirror answered 5xx.
    pub mirror_5xx: u64,
    /// Copies due but not sent, by `Dropped` (in `Dropped::ALL` order).
    pub dropped: [u64; 2],
    /// Compared pairs whose bodies could not be (too big, compressed).
    pub body_skipped: u64,
    /// Time to the primary's response headers, compared pairs only.
    #[serde(with = "hist")]
    pub primary: [u64; BUCKETS],
    /// Time to the mirror's response headers, compared pairs only.
    #[serde(with = "hist")]
    pub mirror: [u64; BUCKETS],
}

impl Default for ShadowStats {
    fn default() -> Self {
        ShadowStats {
            mirrored: 0,
            compared: 0,
            mismatched: [0; KINDS],
            errors: 0,
            mirror_5xx: 0,
            dropped: [0; 2],
            body_skipped: 0,
            primary: [0; BUCKETS],
            mirror: [0; BUCKETS],
        }
    }
}

impl ShadowStats {
    /// Mismatched pairs, all kinds.
    pub fn mismatches(&self) -> u64 {
        self.mismatched.iter().sum()
    }

    /// Mirrored requests that ended: compared or failed.
    pub fn ended(&self) -> u64 {
        self.compared + self.errors
    }

    /// Mismatched / compared (0 without comparisons).
    pub fn mismatch_rate(&self) -> f64 {
        ratio(self.mismatches(), self.compared)
    }

    /// (Mirror errors + mirror 5xx) / ended (0 when none ended).
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors + self.mirror_5xx, self.ended())
    }

    /// The mirror's `q` latency quantile over the primary's, on the same
    /// pairs, each interpolated within its bucket; `None` without pairs.
    pub fn latency_ratio(&self, q: f64) -> Option<f64> {
        let p = interpolated(&self.primary, q)?;
        let m = interpolated(&self.mirror, q)?;
        Some(m / p)
    }

    /// As the admin API shows them (p99 of both sides and their ratio).
    pub fn totals(&self) -> ShadowWindowTotals {
        const Q: f64 = 0.99;
        let kind = |k: Kind| self.mismatched[k.index()];
        let dropped = |d: Dropped| self.dropped[d as usize];
        let ms = |h| interpolated(h, Q).map(|us| us / 1000.0);
        ShadowWindowTotals {
            mirrored: self.mirrored,
            compared: self.compared,
            mismatched: self.mismatches(),
            mismatched_status_class: kind(Kind::StatusClass),
            mismatched_status: kind(Kind::Status),
            mismatched_body: kind(Kind::Body),
            mismatch_rate: self.mismatch_rate(),
            mirror_errors: self.errors,
            mirror_5xx: self.mirror_5xx,
            error_rate: self.error_rate(),
            dropped_in_flight: dropped(Dropped::InFlight),
            dropped_body_too_big: dropped(Dropped::BodyTooBig),
            body_skipped: self.body_skipped,
            primary_p99_ms: ms(&self.primary),
            mirror_p99_ms: ms(&self.mirror),
            p99_latency_ratio: self.latency_ratio(Q),
        }
    }

    /// `self − base`, counter by counter (saturating): a replica's
    /// cumulative counts since a baseline of the same epoch.
    pub fn minus(&self, base: &ShadowStats) -> ShadowStats {
        let sub = |to: &mut [u64], from: &[u64]| {
            for (t, f) in to.iter_mut().zip(from) {
                *t = t.saturating_sub(*f);
            }
        };
        let mut d = self.clone();
        d.mirrored = d.mirrored.saturating_sub(base.mirrored);
        d.compared = d.compared.saturating_sub(base.compared);
        d.errors = d.errors.saturating_sub(base.errors);
        d.mirror_5xx = d.mirror_5xx.saturating_sub(base.mirror_5xx);
        d.body_skipped = d.body_skipped.saturating_sub(base.body_skipped);
        sub(&mut d.mismatched, &base.mismatched);
        sub(&mut d.dropped, &base.dropped);
        sub(&mut d.primary, &base.primary);
        sub(&mut d.mirror, &base.mirror);
        d
    }

    /// Adds `other` (another replica's window of the same seconds).
    pub fn add(&mut self, other: &ShadowStats) {
        self.mirrored += other.mirrored;
        self.compared += other.compared;
        self.errors += other.errors;
        self.mirror_5xx += other.mirror_5xx;
        self.body_skipped += other.body_skipped;
        add_all(&mut self.mismatched, other.mismatched);
        add_all(&mut self.dropped, other.dropped);
        add_all(&mut self.primary, other.primary);
        add_all(&mut self.mirror, other.mirror);
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The `q` quantile of `hist` in microseconds, placed inside its bucket by
/// rank, on a log scale (the buckets are log-spaced): finer than the
/// bucket's upper bound, which is all `window::percentile` says, so that a
/// ratio of two quantiles is not stuck on powers of the bucket ratio
/// (≈ 1.3). The first bucket starts at 0.5 ms, the overflow bucket is
/// reported as 30 s. `None` without samples.
pub fn interpolated(hist: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0.0;
    for (i, &n) in hist.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if seen + n as f64 >= rank {
            if i + 1 >= BUCKETS {
                return Some(bucket_bound_us(BUCKETS - 2) as f64);
            }
            let upper = bucket_bound_us(i) as f64;
            let lower = match i {
                0 => upper / 2.0,
                _ => bucket_bound_us(i - 1) as f64,
            };
            let within = (rank - seen) / n as f64;
            return Some(lower * (upper / lower).powf(within));
        }
        seen += n as f64;
    }
    None
}

/// Histograms as JSON arrays (serde derives arrays only up to 32).
mod hist {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::BUCKETS;

    pub fn serialize<S: Serializer>(h: &[u64; BUCKETS], s: S) -> Result<S::Ok, S::Error> {
        h.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u64; BUCKETS], D::Error> {
        let v = Vec::<u64>::deserialize(d)?;
        let n = v.len();
        v.try_into().map_err(|_| {
            serde::de::Error::custom(format!("a histogram has {BUCKETS} buckets, not {n}"))
        })
    }
}

#[cfg(test)]
mod tests;
