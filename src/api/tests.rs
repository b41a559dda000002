//! Round trips of every request and answer, and the wire shapes the
//! integration tests and scripts read.

use std::fmt::Debug;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;
use crate::event::{Action, ChangeSource, Event, Outcome};

/// `v` → JSON → `T` gives `v` back, and the JSON is `wire` when given.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T, wire: Option<Value>) {
    let json = serde_json::to_value(v).unwrap();
    if let Some(wire) = wire {
        assert_eq!(json, wire);
    }
    let back: T = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(&back, v, "{json}");
}

fn split(pairs: &[(&str, u32)]) -> Split {
    Split(pairs.iter().map(|(p, w)| ((*p).to_owned(), *w)).collect())
}

fn rollout_status() -> RolloutStatus {
    RolloutStatus {
        route: "api".into(),
        phase: Phase::RolledBack,
        step: 1,
        steps: vec![10, 50, 100],
        canary: "green".into(),
        stable: "blue".into(),
        canary_weight: 0,
        step_started_ms: 1_000,
        now_ms: 2_000,
        step_interval_ms: 60_000,
        thresholds: Thresholds {
            min_requests: 100,
            max_error_rate: 0.01,
            max_p99_seconds: 0.5,
            max_error_rate_increase: Some(0.02),
            max_latency_ratio: None,
        },
        current: Some(Live {
            canary_requests: 120,
            canary_error_rate: 0.05,
            canary_p99_seconds: Some(0.03),
            stable_requests: 900,
            stable_error_rate: 0.0,
            stable_p99_seconds: None,
        }),
        last: Some(Judgement {
            time: "2026-12-01T10:00:00.000Z".into(),
            step: 1,
            check: Check::Fail {
                metric: Metric::ErrorRate,
                value: 0.05,
                limit: 0.01,
            },
            canary_requests: 120,
            canary_error_rate: 0.05,
            canary_p99_seconds: Some(0.03),
            stable_requests: 900,
        }),
        reason: Some("error_rate 0.0500 exceeds the limit 0.0100".into()),
        shadow: None,
    }
}

fn flip_status() -> FlipStatus {
    FlipStatus {
        route: "api".into(),
        to: "green".into(),
        previous_split: split(&[("blue", 100), ("green", 0)]),
        phase: FlipPhase::Verifying,
        generation: 3,
        started_ms: 5,
        window_ms: 30_000,
        min_requests: 1,
        max_error_rate: 0.01,
        max_p99_seconds: 2.0,
        revert_if_insufficient: false,
        requests: 4,
        error_rate: 0.0,
        p99_seconds: None,
        reason: None,
        now_ms: None,
    }
}

fn applied() -> Applied {
    Applied {
        generation: 3,
        changed: true,
        persisted: Some(true),
        persist_error: None,
        split: Some(split(&[("blue", 0), ("green", 100)])),
        previous_split: Some(split(&[("blue", 100), ("green", 0)])),
        revision: None,
        standby: Some("blue".into()),
        last_backend: None,
    }
}

fn cluster_status() -> ClusterStatus {
    ClusterStatus {
        joined: true,
        instance: Some("web-2".into()),
        role: Some(Role::Follower),
        leader: Some("web-1".into()),
        revision: 12,
        revision_by: Some("web-1".into()),
        applied_revision: 12,
        members: vec![MemberStatus {
            instance: "web-1".into(),
            applied_revision: 12,
            last_seen_ms: 1_700_000_000_000,
            admin: Some("127.0.0.1:9901".into()),
            version: "0.1.0".into(),
            stale: false,
        }],
        stale: vec![],
        store: StoreStatus {
            reachable: true,
            since_ms: 1_700_000_000_000,
            error: None,
        },
        lease_ttl_s: 5,
        seeded_here: Some(false),
        local_override: None,
        conflict: None,
        error: None,
    }
}

#[test]
fn the_status_document_keeps_its_field_names() {
    let status = Status {
        generation: 3,
        routes: vec![RouteStatus {
            name: "api".into(),
            path_prefix: "/".into(),
            split: split(&[("blue", 90), ("canary", 10)]),
            standby: Some("green".into()),
            standby_active: false,
            maintenance: false,
        }],
        pools: vec![PoolStatus {
            name: "blue".into(),
            backends: vec![BackendStatus {
                addr: "127.0.0.1:8001".parse().unwrap(),
                health: Health::Healthy,
                draining: false,
                in_flight: 2,
            }],
        }],
        connections: 7,
        controller: ControllerStatus {
            running: true,
            error: None,
        },
        last_reload: LastReload {
            generation: 2,
            source: Some(ChangeSource::File),
            error: None,
        },
        restart_needed: vec!["server.listen".into()],
        tls: Some(TlsStatus {
            certificates: vec![CertStatus {
                hosts: vec!["*.example.com".into()],
                default: true,
                cert: "c.pem".into(),
                key: "k.pem".into(),
                loaded_at: 1_700_000_000,
                reloads: 1,
                error: None,
            }],
        }),
        rollouts: vec![rollout_status()],
        flips: vec![flip_status()],
        cluster: Some(cluster_status()),
        unsaved: Vec::new(),
    };
    let json = serde_json::to_value(&status).unwrap();
    // No unsaved change: the key is left out.
    assert!(json.get("unsaved").is_none(), "{json}");
    // What the integration tests, `ctl` of earlier versions and scripts read.
    assert_eq!(
        json["routes"][0]["split"],
        json!({"blue": 90, "canary": 10})
    );
    assert_eq!(
        json["pools"][0]["backends"][0],
        json!({"addr": "127.0.0.1:8001", "health": "healthy", "draining": false, "in_flight": 2})
    );
    assert_eq!(
        json["last_reload"],
        json!({"generation": 2, "source": "file", "error": null})
    );
    assert_eq!(json["controller"], json!({"running": true, "error": null}));
    // The console reads `standby` as a pool name.
    assert_eq!(json["routes"][0]["standby"], "green");
    assert_eq!(json["routes"][0]["standby_active"], false);
    assert_eq!(json["restart_needed"], json!(["server.listen"]));
    assert_eq!(json["tls"]["certificates"][0]["hosts"][0], "*.example.com");
    assert_eq!(json["rollouts"][0]["last"]["check"]["result"], "fail");
    assert_eq!(json["rollouts"][0]["last"]["check"]["metric"], "error_rate");
    assert_eq!(json["rollouts"][0]["phase"], "rolled_back");
    assert_eq!(json["flips"][0]["phase"], "verifying");
    // Issue 13 names these (outside tooling reads them).
    assert_eq!(json["cluster"]["leader"], "web-1");
    assert_eq!(json["cluster"]["revision"], 12);
    assert_eq!(json["cluster"]["role"], "follower");
    assert_eq!(
        json["cluster"]["members"][0],
        json!({"instance": "web-1", "applied_revision": 12, "last_seen_ms": 1_700_000_000_000u64,
               "admin": "127.0.0.1:9901", "version": "0.1.0", "stale": false})
    );
    assert_eq!(json["cluster"]["store"]["reachable"], true);
    assert_eq!(json["cluster"]["seeded_here"], false);
    assert!(json["rollouts"][0]["thresholds"]
        .get("max_latency_ratio")
        .is_none());
    round_trip(&status, None);
    // No HTTPS listener: `tls` is null, not missing.
    let plain = Status {
        tls: None,
        ..status
    };
    assert_eq!(serde_json::to_value(&plain).unwrap()["tls"], Value::Null);
    round_trip(&plain, None);
    let unsaved = Status {
        unsaved: vec![UnsavedChange {
            time: "2026-12-02T14:00:00.000Z".into(),
            source: ChangeSource::Api,
            action: Action::Flip,
            route: Some("api".into()),
            backend: None,
            sets: vec!["api.split = canary 100".into()],
            reason: "s.toml holds an invalid edit".into(),
        }],
        ..plain
    };
    assert_eq!(
        serde_json::to_value(&unsaved).unwrap()["unsaved"][0]["reason"],
        "s.toml holds an invalid edit"
    );
    round_trip(&unsaved, None);
}

#[test]
fn answers_round_trip() {
    round_trip(
        &applied(),
        Some(json!({"generation": 3, "changed": true, "persisted": true,
            "split": {"blue": 0, "green": 100}, "previous_split": {"blue": 100, "green": 0},
            "standby": "blue"})),
    );
    // Not written: the answer says why.
    let unsaved = Applied {
        persisted: Some(false),
        persist_error: Some("s.toml is read-only".into()),
        ..applied()
    };
    assert_eq!(
        serde_json::to_value(&unsaved).unwrap()["persist_error"],
        "s.toml is read-only"
    );
    round_trip(&unsaved, None);
    // A drain that left its pool empty says who takes over.
    let drained = Applied {
        last_backend: Some(LastBackend {
            pool: "green".into(),
            routes: vec![
                Takeover {
                    route: "api".into(),
                    by: TakenBy::Standby,
                    pool: Some("blue".into()),
                },
                Takeover {
                    route: "web".into(),
                    by: TakenBy::Nobody,
                    pool: None,
                },
            ],
        }),
        ..Applied::unchanged(5)
    };
    round_trip(
        &drained,
        Some(
            json!({"generation": 5, "changed": false, "last_backend": {"pool": "green",
            "routes": [{"route": "api", "by": "standby", "pool": "blue"},
                       {"route": "web", "by": "nobody", "pool": null}]}}),
        ),
    );
    // Nothing to write: no `persisted`, no splits.
    round_trip(
        &Applied::unchanged(4),
        Some(json!({"generation": 4, "changed": false})),
    );
    // A flip without verification answers exactly `Applied`.
    let plain = FlipAnswer {
        applied: applied(),
        verification: None,
    };
    round_trip(&plain, Some(serde_json::to_value(applied()).unwrap()));
    let verified = FlipAnswer {
        verification: Some(flip_status()),
        ..plain
    };
    round_trip(&verified, None);
    assert_eq!(
        serde_json::to_value(&verified).unwrap()["verification"]["to"],
        "green"
    );
    round_trip(
        &RolloutAccepted {
            accepted: RolloutCommand::Pause,
            rollout: Some(rollout_status()),
        },
        None,
    );
    round_trip(
        &RolloutAccepted {
            accepted: RolloutCommand::Start,
            rollout: None,
        },
        Some(json!({"accepted": "start", "rollout": null})),
    );
    for check in [
        Check::Pass,
        Check::Insufficient {
            requests: 3,
            needed: 100,
        },
    ] {
        round_trip(&check, None);
    }
    round_trip(&Check::Pass, Some(json!({"result": "pass"})));
    let mut e = Event::new(5, ChangeSource::Api, Action::Drain, Outcome::Applied);
    e.backend = Some("blue/127.0.0.1:8001".into());
    e.persisted = Some(true);
    round_trip(
        &HistoryAnswer {
            events: vec![e],
            scope: None,
            cluster_error: None,
        },
        None,
    );
    round_trip(
        &ProbeAnswer {
            pool: "blue".into(),
            addr: "[::1]:8001".parse().unwrap(),
            check: ProbeCheck::Http,
            ok: false,
            status: Some(503),
            failure: Some("status 503".into()),
            elapsed_ms: 12,
            health: Health::Unhealthy,
            draining: true,
            ejected: false,
            in_flight: 0,
        },
        Some(
            json!({"pool": "blue", "addr": "[::1]:8001", "check": "http", "ok": false,
            "status": 503, "failure": "status 503", "elapsed_ms": 12, "health": "unhealthy",
            "draining": true, "ejected": false, "in_flight": 0}),
        ),
    );
}

#[test]
fn errors_round_trip_with_their_status() {
    round_trip(
        &ErrorBody::not_found("route \"x\" not found"),
        Some(json!({"error": "not_found", "detail": "route \"x\" not found"})),
    );
    for code in ErrorCode::ALL {
        round_trip(&ErrorBody::new(*code, "why"), None);
        assert!((400..600).contains(&code.status()), "{code}");
    }
    assert_eq!(ErrorCode::InvalidChange.status(), 422);
    assert_eq!(ErrorCode::GenerationMismatch.status(), 409);
}

#[test]
fn flip_requests_round_trip_and_name_the_key_that_is_wrong() {
    let plain = FlipRequest {
        to: "green".into(),
        verify: None,
    };
    round_trip(&plain, Some(json!({"to": "green"})));
    let full = FlipRequest {
        to: "green".into(),
        verify: Some(VerifyRequest {
            window: HumanDuration(Duration::from_secs(30)),
            min_requests: Some(50),
            max_error_rate: Some(0.01),
            max_p99_latency: Some(HumanDuration(Duration::from_millis(500))),
            on_insufficient_traffic: Some(Insufficient::Revert),
        }),
    };
    round_trip(
        &full,
        Some(
            json!({"to": "green", "verify": {"window": "30s", "min_requests": 50,
            "max_error_rate": 0.01, "max_p99_latency": "500ms",
            "on_insufficient_traffic": "revert"}}),
        ),
    );
    // `"verify": "30s"` is a window with the defaults; null is none.
    let short: FlipRequest = serde_json::from_value(json!({"to": "g", "verify": "2m"})).unwrap();
    assert_eq!(
        short.verify.map(|v| v.window),
        Some(HumanDuration(Duration::from_secs(120)))
    );
    let none: FlipRequest = serde_json::from_value(json!({"to": "g", "verify": null})).unwrap();
    assert_eq!(none.verify, None);
    for (verify, needle) in [
        (json!({}), "verify needs a window"),
        (json!("soon"), "verify.window must be a duration"),
        (json!({"window": 30}), "verify.window must be a duration"),
        (
            json!({"window": "1s", "max_error_rate": 2}),
            "verify.max_error_rate",
        ),
        (
            json!({"window": "1s", "min_requests": 0}),
            "verify.min_requests",
        ),
        (
            json!({"window": "1s", "max_p99_latency": "x"}),
            "verify.max_p99_latency",
        ),
        (
            json!({"window": "1s", "on_insufficient_traffic": "maybe"}),
            "verify.on_insufficient_traffic",
        ),
        (
            json!({"window": "1s", "colour": "red"}),
            "unknown key verify.colour",
        ),
        (json!(5), "verify must be an object"),
    ] {
        let e = serde_json::from_value::<FlipRequest>(json!({"to": "g", "verify": verify}))
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{verify}: {e}");
    }
    let e = serde_json::from_value::<FlipRequest>(json!({"verify": "1s"})).unwrap_err();
    assert!(e.to_string().contains("`to`"), "{e}");
}

#[test]
fn every_mutation_is_found_by_its_own_request() {
    let addr = "127.0.0.1:8001".parse().unwrap();
    let all = [
        Mutation::Reload,
        Mutation::Split {
            route: "api".into(),
            split: split(&[("blue", 75), ("canary", 25)]),
        },
        Mutation::Rollback {
            route: "api".into(),
        },
        Mutation::Drain {
            pool: "blue".into(),
            addr,
        },
        Mutation::Undrain {
            pool: "blue".into(),
            addr,
        },
        Mutation::Standby {
            route: "api".into(),
            standby: StandbyRequest {
                pool: Some("blue".into()),
            },
        },
        Mutation::Maintenance {
            route: "api".into(),
            maintenance: MaintenanceRequest { on: true },
        },
    ];
    assert_eq!(all.len(), Mutation::ENDPOINTS.len());
    for m in all {
        let (method, path, body) = m.request();
        let rest = path.strip_prefix(PREFIX).unwrap();
        let mut found = Mutation::ENDPOINTS
            .iter()
            .filter(|e| e.method == method)
            .filter_map(|e| Params::matching(e.pattern, rest).map(|p| (e, p)));
        let (endpoint, params) = found.next().unwrap_or_else(|| panic!("{path}"));
        assert!(found.next().is_none(), "{path} matches twice");
        assert_eq!(endpoint.body, body.is_some(), "{path}");
        assert_eq!((endpoint.parse)(&params, body).unwrap(), m);
    }
}

#[test]
fn mutation_bodies_and_paths_are_checked() {
    let split = Mutation::ENDPOINTS
        .iter()
        .find(|e| e.pattern == paths::SPLIT)
        .unwrap();
    let params = Params::matching(paths::SPLIT, "/routes/api/split").unwrap();
    for (body, needle) in [
        (json!({}), "expected an object of pool weights"),
        (json!([1]), "expected an object of pool weights"),
        (
            json!({"blue": -1}),
            "weight of \"blue\" must be a whole number",
        ),
        (json!({"blue": 1.5}), "weight of \"blue\""),
    ] {
        let e = (split.parse)(&params, Some(body.clone())).unwrap_err();
        assert_eq!(e.error, ErrorCode::InvalidChange, "{body}");
        assert!(e.detail.contains(needle), "{body}: {}", e.detail);
    }
    let drain = Mutation::ENDPOINTS
        .iter()
        .find(|e| e.pattern == paths::DRAIN)
        .unwrap();
    let params = Params::matching(paths::DRAIN, "/backends/blue/nope/drain").unwrap();
    let e = (drain.parse)(&params, None).unwrap_err();
    assert_eq!(e.error, ErrorCode::NotFound);
    assert!(e.detail.contains("expected IP:port"), "{}", e.detail);
    let standby = Mutation::ENDPOINTS
        .iter()
        .find(|e| e.pattern == paths::STANDBY)
        .unwrap();
    let params = Params::matching(paths::STANDBY, "/routes/api/standby").unwrap();
    let none = (standby.parse)(&params, Some(json!({"pool": null}))).unwrap();
    assert_eq!(
        none,
        Mutation::Standby {
            route: "api".into(),
            standby: StandbyRequest { pool: None }
        }
    );
    for body in [
        json!({}),
        json!({"pool": 1}),
        json!({"pol": "blue"}),
        Value::Null,
    ] {
        let e = (standby.parse)(&params, Some(body.clone())).unwrap_err();
        assert_eq!(e.error, ErrorCode::InvalidChange, "{body}");
        assert!(
            e.detail.contains("{\"pool\": null}"),
            "{body}: {}",
            e.detail
        );
    }
    let maintenance = Mutation::ENDPOINTS
        .iter()
        .find(|e| e.pattern == paths::MAINTENANCE)
        .unwrap();
    let params = Params::matching(paths::MAINTENANCE, "/routes/api/maintenance").unwrap();
    for body in [
        json!({}),
        json!({"on": "yes"}),
        json!({"on": true, "x": 1}),
        Value::Null,
    ] {
        let e = (maintenance.parse)(&params, Some(body.clone())).unwrap_err();
        assert_eq!(e.error, ErrorCode::InvalidChange, "{body}");
        assert!(e.detail.contains("{\"on\": true}"), "{body}: {}", e.detail);
    }
}

#[test]
fn paths_are_filled_and_matched() {
    assert_eq!(path(paths::SPLIT, &["api"]), "/api/v1/routes/api/split");
    assert_eq!(
        path(paths::PROBE, &["blue", "[::1]:80"]),
        "/api/v1/backends/blue/[::1]:80/probe"
    );
    assert_eq!(path(paths::STATUS, &[]), "/api/v1/status");
    let p = Params::matching(paths::DRAIN, "/backends/blue/127.0.0.1:1/drain").unwrap();
    assert_eq!((p.get("pool"), p.get("addr")), ("blue", "127.0.0.1:1"));
    assert_eq!(p.get("nope"), "");
    for miss in [
        "/backends/blue/127.0.0.1:1/undrain",
        "/backends/blue/127.0.0.1:1/drain/",
        "/backends//127.0.0.1:1/drain",
        "/backends/blue/drain",
    ] {
        assert!(Params::matching(paths::DRAIN, miss).is_none(), "{miss}");
    }
    for c in RolloutCommand::ALL {
        assert_eq!(
            c.pattern().rsplit('/').next(),
            Some(c.as_str()),
            "the path of {c} ends in its name"
        );
    }
}

#[test]
fn the_history_query_reads_limit() {
    assert_eq!(HistoryQuery::parse(None).unwrap().limit, 100);
    assert_eq!(HistoryQuery::parse(Some("x=1&limit=5")).unwrap().limit, 5);
    let e = HistoryQuery::parse(Some("limit=many")).unwrap_err();
    assert_eq!(e.error, ErrorCode::BadRequest);
    assert_eq!(
        HistoryQuery { limit: 20 }.path(),
        "/api/v1/history?limit=20"
    );
}
