//! The validated model of shadow traffic: a route's `mirror` (copies of
//! some of its requests sent to another pool, whose answers are compared
//! with the primary's and thrown away) and `[routes.rollout] shadow` (a
//! rollout phase that mirrors to the canary and judges the comparison
//! before any user is answered by it). Built by `validate` (this module's
//! `validate.rs`); read by the routing table (what to mirror), the proxy
//! (how to compare) and the rollout engine (the shadow step's limits).
//!
//! Mirroring is off the client's path: the client only ever gets the
//! primary's answer. Only safe methods are mirrored by default, because a
//! copy of a `POST` runs the side effect twice (a second order, a second
//! e-mail) unless the mirror pool writes to a separate store.

mod path;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::time::Duration;

use http::{HeaderName, Method};

pub use path::{JsonPath, PathError, Segment, Step};
pub(super) use raw::*;
pub(super) use validate::StepDefaults;

/// Methods mirrored when `methods` is not set: the safe ones (RFC 9110
/// §9.2.1) that switchyard forwards (`TRACE` is left out: a copy would
/// echo the request, headers and all, to another pool).
pub const DEFAULT_MIRROR_METHODS: [Method; 3] = [Method::GET, Method::HEAD, Method::OPTIONS];

/// Default largest request body copied to the mirror (64 KiB): a copy is
/// kept in memory until the mirror has read it.
pub const DEFAULT_MIRROR_BODY_BYTES: u64 = 64 << 10;

/// Default largest answer body kept for the comparison (256 KiB), per side.
pub const DEFAULT_COMPARE_BODY_BYTES: u64 = 256 << 10;

/// Default bound of mirror requests in flight, per worker and route.
pub const DEFAULT_MIRROR_IN_FLIGHT: u32 = 64;

/// A route's `mirror`.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorConfig {
    /// The pool copies go to.
    pub pool: String,
    /// Share of the route's eligible requests copied, 0 to 100.
    pub percent: f64,
    pub copy: MirrorOptions,
}

/// How requests are copied and answers compared; shared by `mirror` and
/// the rollout's shadow step.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorOptions {
    /// Methods that are mirrored (default: `DEFAULT_MIRROR_METHODS`).
    pub methods: Vec<Method>,
    /// Requests with a bigger body are not mirrored (and are counted).
    pub max_body_bytes: u64,
    /// Mirror requests in flight per worker; beyond it copies are dropped
    /// (and counted) rather than queued.
    pub max_in_flight: u32,
    pub compare: CompareConfig,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            methods: DEFAULT_MIRROR_METHODS.to_vec(),
            max_body_bytes: DEFAULT_MIRROR_BODY_BYTES,
            max_in_flight: DEFAULT_MIRROR_IN_FLIGHT,
            compare: CompareConfig::default(),
        }
    }
}

impl MirrorOptions {
    /// Is a request with this method copied?
    #[inline]
    pub fn mirrors(&self, method: &Method) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

/// How two answers are compared (`compare = { ... }`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CompareConfig {
    pub body: BodyCompare,
    /// JSON positions left out of the comparison (`body = "json"` only).
    pub ignore: Vec<JsonPath>,
    /// JSON positions compared but never shown in a diff sample.
    pub redact: Vec<JsonPath>,
    /// Headers hidden in diff samples, besides `Authorization`, `Cookie`,
    /// `Set-Cookie` and `Proxy-Authorization` (always hidden).
    pub redact_headers: Vec<HeaderName>,
    /// With `body = "json"`: answers with a bigger body are compared on
    /// status only (and counted). `hash` keeps nothing, so has no limit.
    pub max_body_bytes: u64,
}

/// What is compared of the bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyCompare {
    /// Status only (the default).
    #[default]
    None,
    /// The exact bytes (a hash of each side; nothing is kept).
    Hash,
    /// A structural JSON diff, `ignore` left out; bodies that are not
    /// JSON on either side are compared byte for byte.
    Json,
}

/// `[routes.rollout] shadow`: before the canary's first step, its pool is
/// mirrored for `duration` and judged on the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowStepConfig {
    pub duration: Duration,
    /// Share of the route's eligible requests copied to the canary.
    pub percent: f64,
    /// Mismatched / compared pairs.
    pub max_mismatch_rate: f64,
    /// (Mirror errors + mirror 5xx) / mirrored requests that ended.
    pub max_error_rate: f64,
    /// The mirror's p99 over the primary's, on the same requests.
    pub max_latency_ratio: Option<f64>,
    /// Compared pairs (plus mirror errors) the step needs to pass.
    pub min_requests: u64,
    pub copy: MirrorOptions,
}

/// Default share mirrored in a shadow step: a canary pool is usually much
/// smaller than stable, and a copy of all traffic could overload it (its
/// latency would then fail the step for the wrong reason).
pub const DEFAULT_SHADOW_PERCENT: f64 = 10.0;

/// Default `max_mismatch_rate` of a shadow step.
pub const DEFAULT_MAX_MISMATCH_RATE: f64 = 0.01;
