//! The one event vocabulary: what happened (`Action`), how it ended
//! (`Outcome`), who asked (`ChangeSource`), and the history `Event` that
//! carries them — recorded by the controller and the rollout engine, kept
//! in the history, served by `GET /api/v1/history`, posted to webhooks and
//! matched by `[[notify]] events`.
//!
//! The lowest layer: it imports nothing from the crate, so `config`,
//! `notify`, `control`, `rollout`, `api` and `cli` all speak the same
//! types. The serialized names are the wire format (history file, admin
//! JSON, webhook payloads, `X-Switchyard-Event`) and never change; every
//! enum has `ALL` (validation, hints, docs) and `as_str()` (the same name).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a fieldless enum whose variants serialize as the given names,
/// with `ALL`, `as_str()` and `Display` (the same names), so the list, the
/// strings and the serde form cannot drift apart. (`api` uses it too.)
macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The serialized name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use names;

names! {
    /// What an event did. Webhooks select events by these names.
    Action {
        /// The configuration file was (re)read: file watch, SIGHUP, API.
        Reload = "reload",
        /// A route's weights were set.
        Split = "split",
        /// All of a route's traffic was sent to one pool.
        Flip = "flip",
        /// A route's split before its last change was restored.
        Rollback = "rollback",
        /// A backend was taken out of rotation.
        Drain = "drain",
        /// A drained backend was put back.
        Undrain = "undrain",
        /// A DNS answer changed the backends.
        Resolve = "resolve",
        RolloutStart = "rollout_start",
        /// A step passed (or a rollout resumed at a step after a restart).
        RolloutStep = "rollout_step",
        RolloutPause = "rollout_pause",
        RolloutResume = "rollout_resume",
        RolloutPromote = "rollout_promote",
        RolloutRollback = "rollout_rollback",
        /// A verified flip's verification began.
        FlipVerify = "flip_verify",
        FlipVerified = "flip_verified",
        /// The verification window ended without enough requests.
        FlipUnverified = "flip_unverified",
        /// A failed verification switched the route back.
        FlipReverted = "flip_reverted",
        /// A later change of the route ended the verification.
        FlipVerifyCancelled = "flip_verify_cancelled",
        /// A route's standby pool was set or cleared (`ctl standby`).
        Standby = "standby",
        /// A route was put in maintenance or taken out of it
        /// (`ctl maintenance`).
        Maintenance = "maintenance",
        /// No pool of a route's split had an available backend: its
        /// traffic fell back to the standby pool.
        StandbyFallback = "standby_fallback",
        /// A pool of the split serves again: the traffic returned from
        /// the standby.
        StandbyReturn = "standby_return",
    }
}

names! {
    /// How an event ended.
    Outcome {
        Applied = "applied",
        /// Accepted, but it changed nothing.
        Unchanged = "unchanged",
        /// Refused; nothing changed.
        Rejected = "rejected",
    }
}

names! {
    /// What asked for a change; recorded with it.
    ChangeSource {
        File = "file",
        Signal = "signal",
        Api = "api",
        Rollout = "rollout",
        /// A DNS answer changed.
        Resolver = "resolver",
        /// A revision of the cluster's configuration made on another
        /// replica (`[cluster]`), applied here.
        Cluster = "cluster",
        /// Backend health moved a route's traffic (to or from its standby).
        Health = "health",
    }
}

/// One change, applied or refused: a line of the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The generation in force after the event.
    pub generation: u64,
    pub source: ChangeSource,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// `pool/addr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_split: Option<Split>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_split: Option<Split>,
    pub result: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// With `[cluster]`: the replica that made the change (in the
    /// cluster's history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Event {
    /// An event stamped now, with no route, backend, splits or detail.
    pub fn new(generation: u64, source: ChangeSource, action: Action, result: Outcome) -> Self {
        Event {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            generation,
            source,
            action,
            route: None,
            backend: None,
            old_split: None,
            new_split: None,
            result,
            persisted: None,
            detail: None,
            instance: None,
        }
    }
}

/// A route's split, pool → weight, as a JSON object in the order written
/// (serde_json's maps are sorted, so this is not a map type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split(pub Vec<(String, u32)>);

impl Split {
    /// The weight of `pool` (0 when the split does not name it).
    pub fn weight(&self, pool: &str) -> u32 {
        self.0
            .iter()
            .find(|(p, _)| p == pool)
            .map_or(0, |(_, w)| *w)
    }
}

impl fmt::Display for Split {
    /// `blue=90 canary=10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (p, w)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{p}={w}")?;
        }
        Ok(())
    }
}

impl Serialize for Split {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Split {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Split;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of pool names and integer weights")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Split, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0));
                while let Some(pool) = m.next_key::<String>()? {
                    let weight = m.next_value::<u32>().map_err(|e| {
                        serde::de::Error::custom(format!(
                            "weight of {pool:?} must be a whole number ≥ 0 ({e})"
                        ))
                    })?;
                    out.push((pool, weight));
                }
                Ok(Split(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The action names the README lists for `[[notify]] events`.
    fn documented_actions() -> Vec<String> {
        let readme = include_str!("../README.md");
        let line = readme
            .lines()
            .find(|l| l.starts_with("| `events` |"))
            .expect("the README documents `[[notify]] events`");
        let list = line
            .split("Actions: ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .expect("the events row lists the actions as `Actions: ...;`");
        list.split(", ")
            .map(|a| a.trim().trim_matches('`').to_owned())
            .collect()
    }

    #[test]
    fn every_action_is_documented_and_nothing_else() {
        let documented = documented_actions();
        let ours: Vec<String> = Action::ALL.iter().map(|a| a.as_str().to_owned()).collect();
        assert_eq!(documented, ours, "README's action list vs Action::ALL");
        let arch = include_str!("../docs/architecture.md");
        for a in Action::ALL {
            assert!(
                arch.contains(&format!("`{a}`")),
                "docs/architecture.md never names action `{a}`"
            );
        }
    }

    #[test]
    fn names_are_the_serde_form_and_unique() {
        fn check<T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug + Copy>(
            all: &[T],
            name: fn(T) -> &'static str,
        ) {
            let mut seen = std::collections::HashSet::new();
            for &v in all {
                let json = serde_json::to_string(&v).unwrap();
                assert_eq!(json, format!("\"{}\"", name(v)));
                assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
                assert!(seen.insert(name(v)), "{} twice", name(v));
            }
        }
        check(Action::ALL, Action::as_str);
        check(Outcome::ALL, Outcome::as_str);
        check(ChangeSource::ALL, ChangeSource::as_str);
        assert_eq!(Action::ALL.len(), 22);
        assert!(serde_json::from_str::<Action>("\"nope\"").is_err());
    }

    #[test]
    fn an_event_round_trips_and_keeps_its_wire_shape() {
        let mut e = Event::new(4, ChangeSource::Api, Action::Flip, Outcome::Applied);
        e.route = Some("api".into());
        e.old_split = Some(Split(vec![("blue".into(), 100), ("green".into(), 0)]));
        e.new_split = Some(Split(vec![("blue".into(), 0), ("green".into(), 100)]));
        let json = serde_json::to_string(&e).unwrap();
        let want = format!(
            "{{\"time\":\"{}\",\"generation\":4,\"source\":\"api\",\"action\":\"flip\",\
             \"route\":\"api\",\"old_split\":{{\"blue\":100,\"green\":0}},\
             \"new_split\":{{\"blue\":0,\"green\":100}},\"result\":\"applied\"}}",
            e.time
        );
        assert_eq!(json, want);
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    #[test]
    fn a_split_keeps_its_order() {
        let s: Split = serde_json::from_str(r#"{"z": 1, "a": 2}"#).unwrap();
        assert_eq!(s.0, vec![("z".into(), 1), ("a".into(), 2)]);
        assert_eq!(s.to_string(), "z=1 a=2");
        assert_eq!(s.weight("a"), 2);
        assert_eq!(s.weight("b"), 0);
    }
}
