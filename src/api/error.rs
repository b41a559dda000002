//! The error body every refused admin request answers.

use serde::{Deserialize, Serialize};

use crate::event::names;

names! {
    /// What went wrong, machine-readable; each has one HTTP status.
    ErrorCode {
        /// The request is malformed: not JSON, a bad `If-Match`, a bad query.
        BadRequest = "bad_request",
        /// No valid bearer token.
        Unauthorized = "unauthorized",
        /// The `Host` header is neither an IP address, localhost, nor a
        /// name of `admin.allowed_hosts` (DNS rebinding).
        HostNotAllowed = "host_not_allowed",
        /// An `Origin` other than the admin's own (a web page).
        CrossOrigin = "cross_origin",
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        /// `If-Match` names a generation that is no longer in force.
        GenerationMismatch = "generation_mismatch",
        NothingToRollBack = "nothing_to_roll_back",
        /// A conditional change whose condition no longer holds.
        Superseded = "superseded",
        RolloutRunning = "rollout_running",
        NoRolloutRunning = "no_rollout_running",
        /// `rollout start` with the canary already past the first step.
        CanaryAhead = "canary_ahead",
        BodyTooLarge = "body_too_large",
        /// The body did not arrive in time.
        BodyTimeout = "body_timeout",
        /// A body not declared `Content-Type: application/json`.
        UnsupportedMediaType = "unsupported_media_type",
        /// Well-formed, but not a valid change (422).
        InvalidChange = "invalid_change",
        ShuttingDown = "shutting_down",
        /// `[cluster]`: the change cannot be stored in the cluster now
        /// (etcd unreachable, or not joined yet); nothing changed.
        ClusterUnavailable = "cluster_unavailable",
        /// `[cluster]`: a leader-only write by a replica that no longer
        /// leads; nothing was written.
        NotLeader = "not_leader",
    }
}

impl ErrorCode {
    /// The HTTP status answered with this code.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::HostNotAllowed | ErrorCode::CrossOrigin => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::GenerationMismatch
            | ErrorCode::NothingToRollBack
            | ErrorCode::Superseded
            | ErrorCode::RolloutRunning
            | ErrorCode::NoRolloutRunning
            | ErrorCode::CanaryAhead
            | ErrorCode::NotLeader => 409,
            ErrorCode::BodyTimeout => 408,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::InvalidChange => 422,
            ErrorCode::ShuttingDown | ErrorCode::ClusterUnavailable => 503,
        }
    }
}

/// `{"error": "not_found", "detail": "route \"x\" not found"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {detail}")]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// For people: what and why, often with a hint.
    pub detail: String,
}

impl ErrorBody {
    pub fn new(error: ErrorCode, detail: impl Into<String>) -> Self {
        ErrorBody {
            error,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidChange, detail)
    }
}
