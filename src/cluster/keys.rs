//! The key layout of one cluster under its `prefix`. Every key the cluster
//! reads or writes is named here, so the layout is documented once:
//!
//! | key | value | lease |
//! | --- | --- | --- |
//! | `P/config` | the shared routing document (`Document`) | — |
//! | `P/leader` | the leader's instance name | leader's |
//! | `P/members/<instance>` | `Member` (applied revision, last seen) | member's |
//! | `P/stats/<instance>` | `Publication` (per-(route, pool) windows) | member's |
//! | `P/rollouts/state` | running rollouts' progress (`rollout::Saved` by route), written by the leader only, followed by every replica (its shadow step) | — |
//! | `P/history/<ms>-<instance>-<n>` | one history event | — |

/// The keys of the cluster at one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` as validated (`/a/b`, no trailing `/`).
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The shared routing document.
    pub fn config(&self) -> String {
        format!("{}/config", self.prefix)
    }

    /// The leader key (bound to the leader's lease).
    pub fn leader(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    pub fn members(&self) -> String {
        format!("{}/members/", self.prefix)
    }

    pub fn member(&self, instance: &str) -> String {
        format!("{}/members/{instance}", self.prefix)
    }

    pub fn stats(&self) -> String {
        format!("{}/stats/", self.prefix)
    }

    pub fn stats_of(&self, instance: &str) -> String {
        format!("{}/stats/{instance}", self.prefix)
    }

    pub fn rollouts(&self) -> String {
        format!("{}/rollouts/", self.prefix)
    }

    pub fn rollout(&self, route: &str) -> String {
        format!("{}/rollouts/{route}", self.prefix)
    }

    pub fn history(&self) -> String {
        format!("{}/history/", self.prefix)
    }

    /// A history key: sorting keys sorts events by time (the milliseconds
    /// are zero-padded), ties broken by instance and its own counter.
    pub fn history_event(&self, unix_ms: u64, instance: &str, n: u64) -> String {
        format!("{}/history/{unix_ms:015}-{instance}-{n:06}", self.prefix)
    }

    /// The last path segment of `key` under `dir` (an instance name).
    pub fn name_in<'k>(&self, dir: &str, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(dir)
            .filter(|n| !n.is_empty() && !n.contains('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("/switchyard/prod");
        assert_eq!(k.config(), "/switchyard/prod/config");
        assert_eq!(
            k.member("web-1:8080"),
            "/switchyard/prod/members/web-1:8080"
        );
        assert_eq!(
            k.name_in(&k.members(), "/switchyard/prod/members/web-1"),
            Some("web-1")
        );
        assert_eq!(k.name_in(&k.members(), "/switchyard/prod/config"), None);
        let a = k.history_event(999, "b", 2);
        let b = k.history_event(1000, "a", 1);
        assert!(a < b, "history keys sort by time: {a} {b}");
    }

    #[test]
    fn prefixes_do_not_overlap() {
        // "/p/stats/" must not match "/p/statsx": every directory ends in '/'.
        let k = Keys::new("/p");
        assert!(!"/p/statsx/a".starts_with(&k.stats()));
    }
}
