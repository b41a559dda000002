//! The one-second ring: `N` slots, each stamped with the second (of
//! `clock::secs`) whose counts it holds. The first writer that finds an
//! older second in the slot it needs claims the slot: it swaps the stamp to
//! `RESETTING`, clears the counters and only then stamps the new second, so
//! no write of the new second lands before the clear (and is wiped by it).
//! Writers that meet a slot being reset wait for it, which happens once per
//! slot and second and lasts a few dozen stores; readers skip it. The
//! check-then-add of two concurrent budget users may still let one extra
//! through: statistics, not accounting, and no lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one second of a ring holds: atomics, zeroed by `clear`.
pub trait Slot: Default {
    /// Zeroes every counter (the slot now holds a new second).
    fn clear(&self);
}

/// The stamp of a slot that has never held a second.
const UNUSED: u64 = u64::MAX;
/// The stamp of a slot whose counters are being cleared for a new second.
const RESETTING: u64 = u64::MAX - 1;

#[derive(Debug)]
struct Stamped<S> {
    /// The second this slot holds, `UNUSED` or `RESETTING`.
    sec: AtomicU64,
    data: S,
}

/// `N` one-second slots; second `s` lives in slot `s % N`.
#[derive(Debug)]
pub struct Ring<S, const N: usize> {
    slots: [Stamped<S>; N],
}

impl<S: Slot, const N: usize> Default for Ring<S, N> {
    fn default() -> Self {
        Ring {
            slots: std::array::from_fn(|_| Stamped {
                sec: AtomicU64::new(UNUSED),
                data: S::default(),
            }),
        }
    }
}

impl<S: Slot, const N: usize> Ring<S, N> {
    /// The slot of second `sec`, cleared first when it still held an older
    /// second. A writer late by more than `N` seconds counts into the newer
    /// second the slot holds rather than wiping it.
    #[inline]
    pub fn at(&self, sec: u64) -> &S {
        let slot = &self.slots[(sec % N as u64) as usize];
        // Acquire on the stamp pairs with the Release that publishes a new
        // second: whoever sees it also sees the clear that came before it.
        let mut held = slot.sec.load(Ordering::Acquire);
        let mut spins = 0u32;
        while held != sec {
            if held == RESETTING {
                // The claimer may have been preempted mid-clear: give it the
                // core rather than spin through our time slice.
                spins += 1;
                if spins % 64 == 0 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                held = slot.sec.load(Ordering::Acquire);
                continue;
            }
            if held != UNUSED && held > sec {
                break;
            }
            match slot
                .sec
                .compare_exchange(held, RESETTING, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => {
                    slot.data.clear();
                    slot.sec.store(sec, Ordering::Release);
                    break;
                }
                Err(now) => held = now,
            }
        }
        &slot.data
    }

    /// The slots holding a second in `from..=to`, at most the last `N`
    /// seconds up to `to` (older ones have been or will be reused).
    pub fn between(&self, from: u64, to: u64) -> impl Iterator<Item = &S> {
        let from = from.max(to.saturating_sub(N as u64 - 1));
        self.slots
            .iter()
            .filter(move |s| (from..=to).contains(&s.sec.load(Ordering::Acquire)))
            .map(|s| &s.data)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Default)]
    struct Count(AtomicU32);

    impl Slot for Count {
        fn clear(&self) {
            self.0.store(0, Ordering::Relaxed);
        }
    }

    fn sum(r: &Ring<Count, 4>, from: u64, to: u64) -> u32 {
        r.between(from, to)
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum()
    }

    #[test]
    fn a_slot_is_cleared_when_a_new_second_claims_it() {
        let r = Ring::<Count, 4>::default();
        for sec in 0..4u64 {
            for _ in 0..=sec {
                r.at(sec).0.fetch_add(1, Ordering::Relaxed);
            }
        }
        assert_eq!(sum(&r, 0, 3), 1 + 2 + 3 + 4);
        assert_eq!(sum(&r, 2, 3), 3 + 4);
        // Second 4 reuses second 0's slot.
        r.at(4).0.fetch_add(1, Ordering::Relaxed);
        assert_eq!(sum(&r, 4, 4), 1);
        assert_eq!(sum(&r, 0, 4), 2 + 3 + 4 + 1);
        // A reader never reaches further back than the ring does.
        assert_eq!(sum(&r, 0, 7), 1);
        assert_eq!(sum(&r, 5, 9), 0);
        // A writer late by more than the ring counts into the newer second.
        r.at(0).0.fetch_add(1, Ordering::Relaxed);
        assert_eq!(sum(&r, 4, 4), 2);
    }

    #[test]
    fn writers_racing_a_new_second_lose_nothing() {
        const THREADS: u32 = 4;
        const SECS: u64 = 64;
        const PER: u32 = 50;
        for _round in 0..20 {
            let r = Ring::<Count, 64>::default();
            let start = std::sync::Barrier::new(THREADS as usize);
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        start.wait();
                        for sec in 0..SECS {
                            for _ in 0..PER {
                                r.at(sec).0.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            });
            let total: u32 = r
                .between(0, SECS - 1)
                .map(|c| c.0.load(Ordering::Relaxed))
                .sum();
            assert_eq!(total, THREADS * SECS as u32 * PER);
        }
    }
}
