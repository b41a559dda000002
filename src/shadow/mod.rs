//! Shadow traffic's pure parts: judging one mirrored pair (`compare`: status
//! class, status, body by hash or as JSON), the structural JSON diff that
//! leaves configured fields out (`json`), and the mismatch samples with
//! their redaction (`sample`). No I/O and no state but the sample ring:
//! the data path (`proxy`) copies requests and hands both answers here; the
//! counters live in `stats::shadow`; the rollout's shadow step is judged
//! in `rollout::shadow`.
//!
//! Layer: above `config` (it reads `CompareConfig`, `JsonPath`), below
//! `stats` (which keeps a `SampleRing` per (route, pool)).

pub mod compare;
pub mod json;
pub mod sample;

pub use compare::{compare, Answer, Body, BodyHash, Kind, Outcome, Unusable};
pub use sample::{Sample, SampleRing, SideSample};

/// `s` cut to `chars` characters, with an ellipsis when cut.
pub(crate) fn cut(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}
