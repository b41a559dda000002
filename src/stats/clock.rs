//! A coarse process clock for state that lives in atomics: milliseconds
//! and seconds since the first time anyone asked. Built on tokio's
//! `Instant`, so a paused test clock moves it too. The rings of this layer
//! are keyed by its seconds; `table` keys ejections and ramps by its
//! milliseconds.

use std::sync::OnceLock;

use tokio::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds from the epoch to `at` (0 for instants before it).
pub fn ms(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_millis() as u64
}

/// Whole seconds from the epoch to `at`.
pub fn secs(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_secs()
}

pub fn now_ms() -> u64 {
    ms(Instant::now())
}
