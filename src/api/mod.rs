//! The admin API's wire types: every request and answer of `/api/v1`, as
//! serde types (Serialize + Deserialize) that the admin server builds its
//! answers from and `switchyard ctl` decodes into, so a renamed field is a
//! compile error on both sides instead of a silent `null` at run time.
//! No handlers live here; `admin` serves these, `cli` sends them.
//!
//! Second in the layer order: it imports only `event`.
//!
//! | method, path (under `/api/v1`) | request | answer |
//! | --- | --- | --- |
//! | `GET /status` | — | [`Status`] |
//! | `GET /history?limit=N` | [`HistoryQuery`] | [`HistoryAnswer`] |
//! | `POST /reload` | [`Mutation::Reload`] | [`Applied`] |
//! | `PUT /routes/{route}/split` | [`Mutation::Split`] (body: [`Split`]) | [`Applied`] |
//! | `POST /routes/{route}/rollback` | [`Mutation::Rollback`] | [`Applied`] |
//! | `POST /backends/{pool}/{addr}/drain` | [`Mutation::Drain`] | [`Applied`] |
//! | `POST /backends/{pool}/{addr}/undrain` | [`Mutation::Undrain`] | [`Applied`] |
//! | `PUT /routes/{route}/standby` | [`Mutation::Standby`] (body: [`StandbyRequest`]) | [`Applied`] |
//! | `PUT /routes/{route}/maintenance` | [`Mutation::Maintenance`] (body: [`MaintenanceRequest`]) | [`Applied`] |
//! | `POST /routes/{route}/flip` | [`FlipRequest`] (with [`VerifyRequest`]) | [`FlipAnswer`] |
//! | `GET /routes/{route}/flip` | — | [`FlipStatus`] |
//! | `POST /backends/{pool}/{addr}/probe` | — | [`ProbeAnswer`] |
//! | `GET /routes/{route}/rollout` | — | [`RolloutStatus`] |
//! | `POST /routes/{route}/rollout/{start,pause,resume,promote,abort}` | [`RolloutCommand`] | [`RolloutAccepted`] |
//! | `GET /traffic?seconds=N` | — | [`Traffic`] |
//! | `GET /routes/{route}/shadow?seconds=N&samples=N` | [`ShadowQuery`] | [`ShadowAnswer`] |
//!
//! Every failure answers an [`ErrorBody`] (`{"error", "detail"}`) with the
//! status of its [`ErrorCode`]. Path patterns are the constants of
//! [`paths`], shared by the server's endpoint table and the client.

mod change;
mod cluster;
mod error;
mod rollout;
mod shadow;
mod status;
mod traffic;

pub use change::{
    FlipAnswer, FlipRequest, HistoryAnswer, HistoryQuery, HumanDuration, Insufficient,
    MaintenanceRequest, Mutation, MutationEndpoint, StandbyRequest, VerifyRequest,
};
pub use cluster::{ClusterStatus, HistoryScope, MemberStatus, Role, StoreStatus};
pub use error::{ErrorBody, ErrorCode};
pub use rollout::{
    Check, FlipPhase, FlipStatus, Judgement, Live, Metric, Phase, RolloutAccepted, RolloutCommand,
    RolloutStatus, Thresholds,
};
pub use shadow::{
    MismatchKind, ShadowAnswer, ShadowPool, ShadowProgress, ShadowQuery, ShadowSample, ShadowSide,
    ShadowWindowTotals,
};
pub use status::{
    Applied, BackendStatus, CertStatus, ControllerStatus, Health, LastBackend, LastReload,
    PoolStatus, ProbeAnswer, ProbeCheck, RouteStatus, Status, TakenBy, Takeover, TlsStatus,
    UnsavedChange,
};

pub use traffic::{BackendState, PoolTraffic, RolloutPlan, RouteTraffic, Series, Sticky, Traffic};

pub use crate::event::Split;

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";

/// The path pattern of every endpoint, under [`PREFIX`]; `{name}` is a
/// path parameter (one segment).
pub mod paths {
    pub const STATUS: &str = "/status";
    pub const HISTORY: &str = "/history";
    pub const RELOAD: &str = "/reload";
    pub const SPLIT: &str = "/routes/{route}/split";
    pub const FLIP: &str = "/routes/{route}/flip";
    pub const STANDBY: &str = "/routes/{route}/standby";
    pub const MAINTENANCE: &str = "/routes/{route}/maintenance";
    pub const ROLLBACK: &str = "/routes/{route}/rollback";
    pub const DRAIN: &str = "/backends/{pool}/{addr}/drain";
    pub const UNDRAIN: &str = "/backends/{pool}/{addr}/undrain";
    pub const PROBE: &str = "/backends/{pool}/{addr}/probe";
    pub const ROLLOUT: &str = "/routes/{route}/rollout";
    pub const ROLLOUT_START: &str = "/routes/{route}/rollout/start";
    pub const ROLLOUT_PAUSE: &str = "/routes/{route}/rollout/pause";
    pub const ROLLOUT_RESUME: &str = "/routes/{route}/rollout/resume";
    pub const ROLLOUT_PROMOTE: &str = "/routes/{route}/rollout/promote";
    pub const ROLLOUT_ABORT: &str = "/routes/{route}/rollout/abort";
    pub const TRAFFIC: &str = "/traffic";
    pub const SHADOW: &str = "/routes/{route}/shadow";
}

/// The full path of `pattern` with its parameters filled in, in order:
/// `path(paths::SPLIT, &["api"])` is `/api/v1/routes/api/split`.
pub fn path(pattern: &str, values: &[&str]) -> String {
    let mut out = String::from(PREFIX);
    let mut values = values.iter();
    for segment in pattern.split('/').skip(1) {
        out.push('/');
        if segment.starts_with('{') && segment.ends_with('}') {
            out.push_str(values.next().copied().unwrap_or(""));
        } else {
            out.push_str(segment);
        }
    }
    out
}

/// The path parameters of a matched pattern, by name.
#[derive(Debug, Default)]
pub struct Params<'a>(pub Vec<(&'a str, &'a str)>);

impl<'a> Params<'a> {
    /// Matches `path` (under [`PREFIX`], e.g. `/routes/api/split`) against
    /// `pattern`: the parameters, or `None` when it does not match.
    pub fn matching(pattern: &'a str, path: &'a str) -> Option<Self> {
        let mut want = pattern.split('/');
        let mut got = path.split('/');
        let mut params = Vec::new();
        loop {
            match (want.next(), got.next()) {
                (None, None) => return Some(Params(params)),
                (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {
                    params.push((&w[1..w.len() - 1], g));
                }
                (Some(w), Some(g)) if w == g => {}
                _ => return None,
            }
        }
    }

    /// The value of parameter `name` ("" when the pattern has none).
    pub fn get(&self, name: &str) -> &'a str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v)
    }
}

#[cfg(test)]
mod tests;
