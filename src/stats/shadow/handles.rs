//! `ShadowHandles`: everything a mirrored request of one (route, mirror
//! pool) records into — the window, the mismatch samples, the metric
//! handles — and the per-worker bound on mirror requests in flight. Kept
//! by name in the `StatsRegistry`, so a reload or a rollout step keeps the
//! counts, the samples and the requests in flight.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Histogram};

use super::{Dropped, ShadowWindow, KINDS};
use crate::shadow::{Outcome, SampleRing};

/// Counters of mirror requests in flight, one per worker (threads beyond
/// this many share a counter, which only makes their bound stricter).
const WORKER_SLOTS: usize = 16;

/// A counter on a cache line of its own: each worker writes only its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded(AtomicU32);

/// This thread's counter index.
fn worker_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Relaxed: a ticket, not an ordering.
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % WORKER_SLOTS;
    }
    SLOT.with(|s| *s)
}

/// The Prometheus handles of one (route, mirror pool) (`Meters::shadow`).
#[derive(Debug, Clone)]
pub struct ShadowMeters {
    pub mirrored: Counter,
    pub compared: Counter,
    /// By `Kind`, in `Kind::ALL` order.
    pub mismatched: [Counter; KINDS],
    pub errors: Counter,
    /// By `Dropped`, in `Dropped::ALL` order.
    pub dropped: [Counter; 2],
    /// Time to the response headers of the compared pairs: the primary's
    /// and the mirror's.
    pub primary: Histogram,
    pub mirror: Histogram,
}

/// See the module doc.
#[derive(Debug)]
pub struct ShadowHandles {
    route: Arc<str>,
    pool: Arc<str>,
    window: ShadowWindow,
    samples: SampleRing,
    in_flight: [Padded; WORKER_SLOTS],
    meters: Option<ShadowMeters>,
    /// The rollout's shadow step mirrors the route to this pool now (set
    /// and cleared by the rollout engine; read by the data plane).
    stepping: AtomicBool,
}

/// A mirror request in flight on this worker; gives its place back when
/// dropped.
#[derive(Debug)]
pub struct InFlightSlot {
    handles: Arc<ShadowHandles>,
    slot: usize,
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        // Relaxed: a bound, not a lock; nothing is published through it.
        self.handles.in_flight[self.slot]
            .0
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl ShadowHandles {
    pub(crate) fn new(route: Arc<str>, pool: Arc<str>, meters: Option<ShadowMeters>) -> Self {
        ShadowHandles {
            route,
            pool,
            window: ShadowWindow::default(),
            samples: SampleRing::default(),
            in_flight: Default::default(),
            meters,
            stepping: AtomicBool::new(false),
        }
    }

    pub fn route(&self) -> &Arc<str> {
        &self.route
    }

    /// The mirror pool.
    pub fn pool(&self) -> &Arc<str> {
        &self.pool
    }

    pub fn window(&self) -> &ShadowWindow {
        &self.window
    }

    pub fn samples(&self) -> &SampleRing {
        &self.samples
    }

    /// Is the rollout's shadow step mirroring the route to this pool?
    #[inline]
    pub fn stepping(&self) -> bool {
        // Relaxed: a switch; a request that sees it a moment late is
        // mirrored (or not) as the moment before.
        self.stepping.load(Ordering::Relaxed)
    }

    /// Starts or ends the shadow step's mirroring (the rollout engine).
    pub fn set_stepping(&self, on: bool) {
        self.stepping.store(on, Ordering::Relaxed);
    }

    /// A place for one more mirror request on this worker, if fewer than
    /// `max` are in flight here; else the copy is dropped and counted.
    pub fn try_start(self: &Arc<Self>, sec: u64, max: u32) -> Option<InFlightSlot> {
        let slot = worker_slot();
        let c = &self.in_flight[slot].0;
        // Relaxed: only this worker increments its slot (bar shared slots,
        // where a race may let one extra through), and the count orders
        // nothing else.
        if c.load(Ordering::Relaxed) >= max {
            self.dropped(sec, Dropped::InFlight);
            return None;
        }
        c.fetch_add(1, Ordering::Relaxed);
        self.window.mirrored(sec);
        if let Some(m) = &self.meters {
            m.mirrored.increment(1);
        }
        Some(InFlightSlot {
            handles: self.clone(),
            slot,
        })
    }

    /// Mirror requests in flight on this worker.
    pub fn in_flight_here(&self) -> u32 {
        self.in_flight[worker_slot()].0.load(Ordering::Relaxed)
    }

    /// A copy that was due was not sent.
    pub fn dropped(&self, sec: u64, why: Dropped) {
        self.window.dropped(sec, why);
        if let Some(m) = &self.meters {
            m.dropped[why as usize].increment(1);
        }
    }

    /// The mirror gave no answer.
    pub fn error(&self, sec: u64) {
        self.window.error(sec);
        if let Some(m) = &self.meters {
            m.errors.increment(1);
        }
    }

    /// A pair was compared.
    pub fn compared(
        &self,
        sec: u64,
        outcome: &Outcome,
        mirror_status: u16,
        primary: Duration,
        mirror: Duration,
    ) {
        self.window
            .compared(sec, outcome, mirror_status, primary, mirror);
        if let Some(m) = &self.meters {
            m.compared.increment(1);
            if let Some(kind) = outcome.mismatch {
                m.mismatched[kind.index()].increment(1);
            }
            m.primary.record(primary.as_secs_f64());
            m.mirror.record(mirror.as_secs_f64());
        }
    }

    /// Keeps the metric series from expiring (at every `/metrics` scrape).
    pub fn touch(&self) {
        if let Some(m) = &self.meters {
            let counters = [&m.mirrored, &m.compared, &m.errors];
            for c in counters.into_iter().chain(&m.mismatched).chain(&m.dropped) {
                c.increment(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_copies_are_in_flight_per_worker() {
        let h = Arc::new(ShadowHandles::new("r".into(), "p".into(), None));
        let held: Vec<_> = (0..3).filter_map(|_| h.try_start(1, 3)).collect();
        assert_eq!(held.len(), 3);
        assert!(h.try_start(1, 3).is_none());
        assert_eq!(h.in_flight_here(), 3);
        drop(held);
        assert_eq!(h.in_flight_here(), 0);
        let again = h.try_start(1, 3);
        assert!(again.is_some());
        let s = h.window().last(1, 1);
        assert_eq!((s.mirrored, s.dropped), (4, [1, 0]));
        // Another worker has a bound of its own.
        let other = h.clone();
        let filled = std::thread::spawn(move || {
            let held: Vec<_> = (0..3).filter_map(|_| other.try_start(1, 3)).collect();
            held.len()
        })
        .join()
        .unwrap();
        assert_eq!(filled, 3);
    }
}
