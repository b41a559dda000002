//! Sticky assignment: a version-stable hash of the sticky key picks one of
//! 10,000 buckets, and each bucket belongs to one pool of the route's split.
//!
//! The scheme is part of switchyard's interface (applications recompute it,
//! see the README), so it must never change:
//!
//! - `hash(bytes) = fmix64(fnv1a64(bytes))` — FNV-1a 64 followed by the
//!   MurmurHash3 64-bit finaliser, which spreads short, similar keys such as
//!   `user-1`, `user-2` over the whole range;
//! - `bucket(key) = hash(key) % 10000`;
//! - the pool of a bucket is chosen by weighted rendezvous hashing: for every
//!   pool with weight `w > 0`, `x = fmix64(fnv1a64(pool) ^ bucket * φ64)`,
//!   `u = ((x >> 11) + 0.5) / 2^53`, `score = w / -ln(u)`; the highest score
//!   wins, the pool written first on a tie.
//!
//! Rendezvous scores scale with the weight, so raising one pool's weight
//! while the others shrink in proportion can only move buckets into that
//! pool: during a canary ramp nobody flaps between pools. Every process
//! computes the same table from the same split.

/// Number of sticky buckets; `X-Switchyard-Bucket` is in `0..BUCKETS`.
pub const BUCKETS: u16 = 10_000;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// 2^64 / golden ratio: spreads consecutive bucket numbers apart.
const PHI64: u64 = 0x9E37_79B9_7F4A_7C15;

pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The bucket of a sticky key.
pub fn bucket(key: &[u8]) -> u16 {
    (fmix64(fnv1a64(key)) % u64::from(BUCKETS)) as u16
}

/// For each bucket, the index (into `weights`) of the pool that owns it.
/// `weights` are `(pool name, weight)` in the order written; pools with
/// weight 0 own nothing. Returns `None` when every weight is 0.
pub fn assign(weights: &[(&str, u32)]) -> Option<Box<[u8]>> {
    if weights.iter().all(|(_, w)| *w == 0) || weights.len() > usize::from(u8::MAX) {
        return None;
    }
    let seeds: Vec<u64> = weights.iter().map(|(n, _)| fnv1a64(n.as_bytes())).collect();
    let table = (0..BUCKETS)
        .map(|b| {
            let mut best = (f64::NEG_INFINITY, 0u8);
            for (i, (&(_, w), seed)) in weights.iter().zip(&seeds).enumerate() {
                if w == 0 {
                    continue;
                }
                let score = score(*seed, b, w);
                if score > best.0 {
                    best = (score, i as u8);
                }
            }
            best.1
        })
        .collect();
    Some(table)
}

pub(crate) fn score(seed: u64, bucket: u16, weight: u32) -> f64 {
    let x = fmix64(seed ^ u64::from(bucket).wrapping_mul(PHI64));
    // 53 random bits mapped into the open interval (0, 1).
    let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight) / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert!(bucket(b"user-1") < BUCKETS);
        assert_eq!(bucket(b"user-1"), bucket(b"user-1"));
    }

    /// The same golden values as examples/fastapi/test_bucket.py: the
    /// Python implementation and this one must agree on every bucket.
    #[test]
    fn golden_values_shared_with_python() {
        let golden = [
            ("", 4342, 1, 1),
            ("a", 8315, 0, 1),
            ("user-0", 7650, 0, 1),
            ("user-1", 5477, 0, 0),
            ("user-42", 1453, 0, 1),
            ("alice", 7236, 0, 0),
            ("ünïcødé", 5629, 1, 1),
        ];
        let t90 = assign(&[("blue", 90), ("canary", 10)]).unwrap();
        let t50 = assign(&[("blue", 50), ("canary", 50)]).unwrap();
        for (key, b, p90, p50) in golden {
            assert_eq!(bucket(key.as_bytes()), b, "{key}");
            assert_eq!(t90[usize::from(b)], p90, "{key} at 90/10");
            assert_eq!(t50[usize::from(b)], p50, "{key} at 50/50");
        }
        let fingerprints: [(&[(&str, u32)], u64); 4] = [
            (&[("blue", 90), ("canary", 10)], 16965395068021857982),
            (&[("blue", 75), ("canary", 25)], 4993550912736506719),
            (
                &[("blue", 50), ("green", 30), ("canary", 20)],
                4974010166671884806,
            ),
            (
                &[("blue", 1), ("green", 1), ("canary", 1)],
                3910447782248640259,
            ),
        ];
        for (split, fp) in fingerprints {
            let t = assign(split).unwrap();
            let initials: Vec<u8> = t
                .iter()
                .map(|&i| split[usize::from(i)].0.as_bytes()[0])
                .collect();
            assert_eq!(fnv1a64(&initials), fp, "{split:?}");
        }
    }

    #[test]
    fn shares_follow_weights() {
        let t = assign(&[("blue", 90), ("canary", 10)]).unwrap();
        let canary = t.iter().filter(|&&p| p == 1).count();
        assert!((850..=1150).contains(&canary), "canary buckets: {canary}");
        let t = assign(&[("blue", 100), ("green", 0)]).unwrap();
        assert!(t.iter().all(|&p| p == 0));
        assert!(assign(&[("blue", 0)]).is_none());
    }

    proptest! {
        /// Raising the canary while the others shrink in proportion never
        /// moves a bucket out of the canary, nor between the other pools.
        #[test]
        fn ramp_only_moves_buckets_into_the_raised_pool(
            a in 1u32..100, b in 1u32..100, c1 in 1u32..100, extra in 1u32..400,
        ) {
            let c2 = c1 + extra;
            // a and b scaled by the same factor k = 2 (weights are relative)
            let before = assign(&[("a", a * 2), ("b", b * 2), ("c", c1 * 2)]).unwrap();
            let after = assign(&[("a", a * 2), ("b", b * 2), ("c", c2 * 2)]).unwrap();
            for (x, y) in before.iter().zip(after.iter()) {
                prop_assert!(x == y || *y == 2, "bucket moved {x} -> {y}");
            }
        }
    }
}
