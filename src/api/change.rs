//! The requests that change routing — the controller's mutations, the
//! (verified) flip — and the history query.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::cluster::HistoryScope;
use super::error::ErrorBody;
use super::rollout::FlipStatus;
use super::status::Applied;
use super::{path, paths, Params};
use crate::event::{Event, Split};

/// A change the controller makes for an admin request, one variant per
/// endpoint; each answers [`Applied`]. [`Mutation::ENDPOINTS`] says where
/// each is served and how it is read from a request, [`Mutation::request`]
/// how a client sends it: adding a mutation is a variant, its entry there
/// and its arm here, its controller arm (`control`), its `ctl` command.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Re-read the configuration file.
    Reload,
    /// Set a route's weights; pools of the current split left out get 0.
    Split { route: String, split: Split },
    /// Restore the split in force before the route's last change.
    Rollback { route: String },
    /// Take a backend out of rotation; in-flight requests finish.
    Drain { pool: String, addr: SocketAddr },
    /// Put a drained backend back.
    Undrain { pool: String, addr: SocketAddr },
    /// Set a route's standby pool (`None`: the route has none).
    Standby {
        route: String,
        standby: StandbyRequest,
    },
    /// Put a route in maintenance (it answers its `maintenance_response`)
    /// or take it out.
    Maintenance {
        route: String,
        maintenance: MaintenanceRequest,
    },
}

/// `PUT /routes/{route}/maintenance`: `{"on": true}` or `{"on": false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub on: bool,
}

impl MaintenanceRequest {
    /// Shown with a body that is not a maintenance request.
    pub const EXAMPLE: &'static str = "expected {\"on\": true} or {\"on\": false}";

    fn parse(body: Option<Value>) -> Result<Self, ErrorBody> {
        MaintenanceRequest::deserialize(body.unwrap_or(Value::Null))
            .map_err(|e| ErrorBody::invalid(format!("{e}; {}", Self::EXAMPLE)))
    }
}

/// `PUT /routes/{route}/standby`: `{"pool": "blue"}`, or `{"pool": null}`
/// for no standby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyRequest {
    pub pool: Option<String>,
}

impl StandbyRequest {
    /// Shown with a body that is not a standby request.
    pub const EXAMPLE: &'static str =
        "expected {\"pool\": \"POOL\"}, or {\"pool\": null} for no standby";

    /// The request of a body; `pool` must be there (a missing key is not
    /// taken for "no standby").
    fn parse(body: Option<Value>) -> Result<Self, ErrorBody> {
        let body = body.unwrap_or(Value::Null);
        if !body.as_object().is_some_and(|o| o.contains_key("pool")) {
            return Err(ErrorBody::invalid(Self::EXAMPLE));
        }
        Self::deserialize(body).map_err(|e| ErrorBody::invalid(format!("{e}; {}", Self::EXAMPLE)))
    }
}

/// Where a mutation is served and how it is read from a request.
pub struct MutationEndpoint {
    pub method: Method,
    /// Under [`super::PREFIX`], with `{name}` parameters.
    pub pattern: &'static str,
    /// Whether it reads a JSON body (the others never read one).
    pub body: bool,
    /// The mutation of a request: its path parameters and its body.
    pub parse: fn(&Params<'_>, Option<Value>) -> Result<Mutation, ErrorBody>,
}

impl Mutation {
    pub const ENDPOINTS: &'static [MutationEndpoint] = &[
        MutationEndpoint {
            method: Method::POST,
            pattern: paths::RELOAD,
            body: false,
            parse: |_, _| Ok(Mutation::Reload),
        },
        MutationEndpoint {
            method: Method::PUT,
            pattern: paths::SPLIT,
            body: true,
            parse: |p, body| {
                Ok(Mutation::Split {
                    route: p.get("route").to_owned(),
                    split: split_body(body)?,
                })
            },
        },
        MutationEndpoint {
            method: Method::POST,
            pattern: paths::ROLLBACK,
            body: false,
            parse: |p, _| {
                Ok(Mutation::Rollback {
                    route: p.get("route").to_owned(),
                })
            },
        },
        MutationEndpoint {
            method: Method::POST,
            pattern: paths::DRAIN,
            body: false,
            parse: |p, _| {
                let (pool, addr) = backend(p)?;
                Ok(Mutation::Drain { pool, addr })
            },
        },
        MutationEndpoint {
            method: Method::POST,
            pattern: paths::UNDRAIN,
            body: false,
            parse: |p, _| {
                let (pool, addr) = backend(p)?;
                Ok(Mutation::Undrain { pool, addr })
            },
        },
        MutationEndpoint {
            method: Method::PUT,
            pattern: paths::STANDBY,
            body: true,
            parse: |p, body| {
                Ok(Mutation::Standby {
                    route: p.get("route").to_owned(),
                    standby: StandbyRequest::parse(body)?,
                })
            },
        },
        MutationEndpoint {
            method: Method::PUT,
            pattern: paths::MAINTENANCE,
            body: true,
            parse: |p, body| {
                Ok(Mutation::Maintenance {
                    route: p.get("route").to_owned(),
                    maintenance: MaintenanceRequest::parse(body)?,
                })
            },
        },
    ];

    /// How a client sends it: method, path, JSON body.
    pub fn request(&self) -> (Method, String, Option<Value>) {
        match self {
            Mutation::Reload => (Method::POST, path(paths::RELOAD, &[]), None),
            Mutation::Split { route, split } => (
                Method::PUT,
                path(paths::SPLIT, &[route]),
                serde_json::to_value(split).ok(),
            ),
            Mutation::Rollback { route } => (Method::POST, path(paths::ROLLBACK, &[route]), None),
            Mutation::Drain { pool, addr } => {
                let addr = addr.to_string();
                (Method::POST, path(paths::DRAIN, &[pool, &addr]), None)
            }
            Mutation::Undrain { pool, addr } => {
                let addr = addr.to_string();
                (Method::POST, path(paths::UNDRAIN, &[pool, &addr]), None)
            }
            Mutation::Standby { route, standby } => (
                Method::PUT,
                path(paths::STANDBY, &[route]),
                serde_json::to_value(standby).ok(),
            ),
            Mutation::Maintenance { route, maintenance } => (
                Method::PUT,
                path(paths::MAINTENANCE, &[route]),
                serde_json::to_value(maintenance).ok(),
            ),
        }
    }
}

/// `{"blue": 75, "canary": 25}`, in the order written.
fn split_body(body: Option<Value>) -> Result<Split, ErrorBody> {
    let example = "expected an object of pool weights, e.g. {\"blue\": 75, \"canary\": 25}";
    let split = Split::deserialize(body.unwrap_or(Value::Null))
        .map_err(|e| ErrorBody::invalid(format!("{e}; {example}")))?;
    if split.0.is_empty() {
        return Err(ErrorBody::invalid(example));
    }
    Ok(split)
}

/// The `{pool}` and `{addr}` of a backend's path.
fn backend(p: &Params<'_>) -> Result<(String, SocketAddr), ErrorBody> {
    let addr = p.get("addr");
    let addr = addr
        .parse()
        .map_err(|_| ErrorBody::not_found(format!("backend {addr:?} (expected IP:port)")))?;
    Ok((p.get("pool").to_owned(), addr))
}

/// `POST /routes/{route}/flip`: all of the route's traffic to `to`,
/// verified when `verify` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlipRequest {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyRequest>,
}

impl FlipRequest {
    /// Shown with a body that is not a flip request.
    pub const EXAMPLE: &'static str =
        "expected {\"to\": \"POOL\"}, optionally with \"verify\": {\"window\": \"30s\"}";
}

/// The answer to a flip: the change, and the verification when asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlipAnswer {
    #[serde(flatten)]
    pub applied: Applied,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<FlipStatus>,
}

/// What to do with a verified flip whose window saw too few requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Insufficient {
    Keep,
    Revert,
}

/// `"verify": {"window": "30s", "max_error_rate": 0.01, "max_p99_latency":
/// "500ms", "min_requests": 50, "on_insufficient_traffic": "keep"}`; every
/// key but `window` may be left out (the server's defaults: the route's
/// `[routes.rollout]` limits, else 1 request, 1 %, 2 s), and `"30s"` is
/// short for a window with the defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VerifyRequest {
    pub window: HumanDuration,
    /// At least 1.
    pub min_requests: Option<u64>,
    /// Between 0 and 1.
    pub max_error_rate: Option<f64>,
    pub max_p99_latency: Option<HumanDuration>,
    pub on_insufficient_traffic: Option<Insufficient>,
}

impl VerifyRequest {
    const KEYS: &'static str =
        "window, min_requests, max_error_rate, max_p99_latency, on_insufficient_traffic";
}

impl Serialize for VerifyRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("window", &self.window)?;
        if let Some(n) = self.min_requests {
            m.serialize_entry("min_requests", &n)?;
        }
        if let Some(r) = self.max_error_rate {
            m.serialize_entry("max_error_rate", &r)?;
        }
        if let Some(d) = &self.max_p99_latency {
            m.serialize_entry("max_p99_latency", d)?;
        }
        if let Some(i) = self.on_insufficient_traffic {
            m.serialize_entry("on_insufficient_traffic", &i)?;
        }
        m.end()
    }
}

/// By hand, so that every refusal names the key (`verify.max_error_rate
/// must be between 0 and 1`) and an unknown key is an error.
impl<'de> Deserialize<'de> for VerifyRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = VerifyRequest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "verify must be an object like {\"window\": \"30s\", \"max_error_rate\": 0.01}",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<VerifyRequest, E> {
                Ok(VerifyRequest {
                    window: HumanDuration::parse("window", s).map_err(E::custom)?,
                    ..VerifyRequest::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<VerifyRequest, A::Error> {
                let mut v = VerifyRequest::default();
                let mut window = None;
                let named =
                    |key: &str, what: &str| de::Error::custom(format!("verify.{key} {what}"));
                while let Some(key) = m.next_key::<String>()? {
                    match key.as_str() {
                        "window" => {
                            let s: Value = m.next_value()?;
                            window = Some(
                                HumanDuration::from_value("window", &s)
                                    .map_err(de::Error::custom)?,
                            );
                        }
                        "min_requests" => {
                            let n: Value = m.next_value()?;
                            v.min_requests = Some(
                                n.as_u64()
                                    .filter(|&n| n > 0)
                                    .ok_or_else(|| named(&key, "must be a whole number ≥ 1"))?,
                            );
                        }
                        "max_error_rate" => {
                            let r: Value = m.next_value()?;
                            v.max_error_rate = Some(
                                r.as_f64()
                                    .filter(|r| (0.0..=1.0).contains(r))
                                    .ok_or_else(|| named(&key, "must be between 0 and 1"))?,
                            );
                        }
                        "max_p99_latency" => {
                            let s: Value = m.next_value()?;
                            v.max_p99_latency = Some(
                                HumanDuration::from_value(&key, &s).map_err(de::Error::custom)?,
                            );
                        }
                        "on_insufficient_traffic" => {
                            let i: Value = m.next_value()?;
                            v.on_insufficient_traffic = Some(
                                Insufficient::deserialize(i)
                                    .map_err(|_| named(&key, "must be \"keep\" or \"revert\""))?,
                            );
                        }
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key verify.{other} ({})",
                                VerifyRequest::KEYS
                            )))
                        }
                    }
                }
                v.window = window.ok_or_else(|| {
                    de::Error::custom("verify needs a window, e.g. {\"window\": \"30s\"}")
                })?;
                Ok(v)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A duration on the wire: `"30s"`, `"1m 30s"`, `"250ms"` (humantime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    fn parse(key: &str, s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(HumanDuration)
            .map_err(|_| format!("verify.{key} must be a duration like \"30s\", got {s:?}"))
    }

    fn from_value(key: &str, v: &Value) -> Result<Self, String> {
        match v.as_str() {
            Some(s) => Self::parse(key, s),
            None => Err(format!(
                "verify.{key} must be a duration like \"30s\", got {v}"
            )),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| de::Error::custom(format!("{s:?} is not a duration: {e}")))
    }
}

/// `GET /history?limit=N`: the newest `limit` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery { limit: 100 }
    }
}

impl HistoryQuery {
    /// Reads `limit=N` from a query string (other keys are ignored).
    pub fn parse(query: Option<&str>) -> Result<Self, ErrorBody> {
        let limit = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")));
        match limit {
            None => Ok(HistoryQuery::default()),
            Some(v) => v
                .parse()
                .map(|limit| HistoryQuery { limit })
                .map_err(|_| ErrorBody::bad_request("limit must be a whole number")),
        }
    }

    /// The path and query to ask for it.
    pub fn path(&self) -> String {
        format!("{}?limit={}", path(paths::HISTORY, &[]), self.limit)
    }
}

/// The answer to `GET /history`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryAnswer {
    pub events: Vec<Event>,
    /// With `[cluster]`: whose events these are (the cluster's, or only
    /// this replica's when the cluster's history cannot be read now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<HistoryScope>,
    /// Why the cluster's history could not be read (`scope` = replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_error: Option<String>,
}
