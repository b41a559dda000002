//! The canary engine's and the verified flips' statuses and commands:
//! `GET /routes/{route}/rollout`, `POST /routes/{route}/rollout/{command}`,
//! `GET /routes/{route}/flip` (and the `rollouts` and `flips` of the status).

use serde::{Deserialize, Serialize};

use super::paths;
use crate::event::{names, Split};

names! {
    /// Where a rollout is.
    Phase {
        /// The shadow step: the canary gets copies, no user traffic.
        Shadow = "shadow",
        Progressing = "progressing",
        Paused = "paused",
        Promoted = "promoted",
        RolledBack = "rolled_back",
    }
}

names! {
    /// An operator's command to the canary engine of a route.
    RolloutCommand {
        /// Begin at the first step.
        Start = "start",
        /// Stop judging; the weights stay.
        Pause = "pause",
        /// Judge again; the current step starts over.
        Resume = "resume",
        /// Skip ahead: 100 % to the canary pool.
        Promote = "promote",
        /// Roll back: 100 % to the stable pool.
        Abort = "abort",
    }
}

impl RolloutCommand {
    /// The command's path pattern (`POST`).
    pub const fn pattern(self) -> &'static str {
        match self {
            RolloutCommand::Start => paths::ROLLOUT_START,
            RolloutCommand::Pause => paths::ROLLOUT_PAUSE,
            RolloutCommand::Resume => paths::ROLLOUT_RESUME,
            RolloutCommand::Promote => paths::ROLLOUT_PROMOTE,
            RolloutCommand::Abort => paths::ROLLOUT_ABORT,
        }
    }
}

/// `202 Accepted` to a rollout command: the rollout as it is now (the
/// engine acts on the command at its next tick).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutAccepted {
    pub accepted: RolloutCommand,
    pub rollout: Option<RolloutStatus>,
}

names! {
    /// The measure a failed check crossed.
    Metric {
        ErrorRate = "error_rate",
        P99LatencySeconds = "p99_latency_seconds",
        /// The canary's error rate minus stable's.
        ErrorRateIncrease = "error_rate_increase",
        /// The canary's p99 over stable's.
        P99LatencyRatio = "p99_latency_ratio",
        /// A shadow step: the mirrored requests' error rate.
        ShadowErrorRate = "shadow_error_rate",
        /// A shadow step: pairs whose answers differed.
        ShadowMismatchRate = "shadow_mismatch_rate",
        /// A shadow step: the mirror's p99 over the primary's.
        ShadowP99LatencyRatio = "shadow_p99_latency_ratio",
    }
}

/// The outcome of one check of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Check {
    Pass,
    /// A threshold was crossed: which, the measured value, the limit.
    Fail {
        metric: Metric,
        value: f64,
        limit: f64,
    },
    /// Fewer canary requests than `min_requests`.
    Insufficient {
        requests: u64,
        needed: u64,
    },
}

impl Check {
    /// `pass`, `fail` or `insufficient` (the JSON's `result`).
    pub fn name(&self) -> &'static str {
        match self {
            Check::Pass => "pass",
            Check::Fail { .. } => "fail",
            Check::Insufficient { .. } => "insufficient",
        }
    }

    /// A sentence for the history and the API.
    pub fn describe(&self) -> String {
        match self {
            Check::Pass => "all thresholds met".into(),
            Check::Fail {
                metric,
                value,
                limit,
            } => format!("{metric} {value:.4} exceeds the limit {limit:.4}"),
            Check::Insufficient { requests, needed } => {
                format!("insufficient traffic: {requests} canary requests, {needed} needed")
            }
        }
    }
}

/// The last judgement of a rollout's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub time: String,
    pub step: usize,
    pub check: Check,
    pub canary_requests: u64,
    pub canary_error_rate: f64,
    pub canary_p99_seconds: Option<f64>,
    pub stable_requests: u64,
}

/// The limits of `[routes.rollout]` as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub min_requests: u64,
    pub max_error_rate: f64,
    pub max_p99_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate_increase: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ratio: Option<f64>,
}

/// A window of the canary and of stable, summed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub canary_requests: u64,
    pub canary_error_rate: f64,
    pub canary_p99_seconds: Option<f64>,
    pub stable_requests: u64,
    pub stable_error_rate: f64,
    pub stable_p99_seconds: Option<f64>,
}

/// A rollout as `GET /routes/{route}/rollout` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    pub route: String,
    pub phase: Phase,
    /// 0-based index into `steps`.
    pub step: usize,
    pub steps: Vec<u32>,
    pub canary: String,
    pub stable: String,
    /// Percent on the canary now.
    pub canary_weight: u32,
    /// Unix milliseconds.
    pub step_started_ms: u64,
    /// The proxy's clock when this was read (Unix ms), so that a client
    /// on another host can tell the time to the next check.
    pub now_ms: u64,
    /// How long each step lasts before it is judged.
    pub step_interval_ms: u64,
    /// What every step is judged against.
    pub thresholds: Thresholds,
    /// The canary and stable since the step began, refreshed at every
    /// tick (the judgement only comes after `step_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Live>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Judgement>,
    /// Why it rolled back or paused by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The shadow step, while the rollout is in it (phase `shadow`, or
    /// `paused` during the step), and after a shadow step that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<super::ShadowProgress>,
}

names! {
    /// Where a flip's verification is.
    FlipPhase {
        Verifying = "verifying",
        /// The window passed; the flip stays.
        Verified = "verified",
        /// The window saw too few requests to judge; the flip stays.
        Unverified = "unverified",
        /// The previous split is back.
        Reverted = "reverted",
        /// Another change of the route's split ended the verification.
        Cancelled = "cancelled",
    }
}

/// A verified flip as `GET /routes/{route}/flip` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlipStatus {
    pub route: String,
    pub to: String,
    /// The split to go back to.
    pub previous_split: Split,
    pub phase: FlipPhase,
    /// The generation the flip made.
    pub generation: u64,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub window_ms: u64,
    pub min_requests: u64,
    pub max_error_rate: f64,
    pub max_p99_seconds: f64,
    pub revert_if_insufficient: bool,
    /// The flipped pool since the flip.
    pub requests: u64,
    pub error_rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The proxy's clock (Unix milliseconds) when it says; a reader
    /// without it uses its own to tell the time left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now_ms: Option<u64>,
}
