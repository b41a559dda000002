//! The one-second ring: `N` slots, each stamped with the second (of
//! `clock::secs`) whose counts it holds. The first writer that finds an
//! older second in the slot it needs claims the slot with a
//! compare-and-swap on the stamp and clears it; a write racing with that
//! reset may be lost, as may the check-then-add of two concurrent budget
//! users. Statistics, not accounting: close enough for judging a canary
//! (`window`) and for capping retries (`table::budget`), and no lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one second of a ring holds: atomics, zeroed by `clear`.
pub trait Slot: Default {
    /// Zeroes every counter (the slot now holds a new second).
    fn clear(&self);
}

#[derive(Debug)]
struct Stamped<S> {
    /// The second this slot holds (`u64::MAX`: never used).
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
                sec: AtomicU64::new(u64::MAX),
                data: S::default(),
            }),
        }
    }
}

impl<S: Slot, const N: usize> Ring<S, N> {
    /// The slot of second `sec`, cleared first when it still held an older
    /// second.
    #[inline]
    pub fn at(&self, sec: u64) -> &S {
        let slot = &self.slots[(sec % N as u64) as usize];
        // Acquire/AcqRel on the stamp: a reader that sees the new second
        // also sees the reset that came with it (the counters themselves are
        // relaxed; see the module doc for what a race can lose).
        let held = slot.sec.load(Ordering::Acquire);
        if held != sec
            && slot
                .sec
                .compare_exchange(held, sec, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.data.clear();
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
    }
}
