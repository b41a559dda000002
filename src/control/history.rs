//! Deployment history: every change the controller makes or refuses, kept
//! in memory (bounded), appended as JSON lines to `admin.history_file`, and
//! offered to the webhook sinks (`notify`). `record` is the one way in, so
//! every event — the controller's own and `ControlHandle::record`'s — is
//! seen by all three.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::ChangeSource;
use crate::config::NotifyConfig;
use crate::notify::Notifier;

/// Events kept in memory.
const KEEP: usize = 1000;

/// Every action an event may have, for validating `[[notify]] events`.
/// An action recorded anywhere must be listed here, or a webhook cannot
/// ask for it by name (`History::record` checks it in debug builds).
pub const ACTIONS: &[&str] = &[
    "reload",
    "split",
    "flip",
    "rollback",
    "drain",
    "undrain",
    "resolve",
    "rollout_start",
    "rollout_step",
    "rollout_pause",
    "rollout_resume",
    "rollout_promote",
    "rollout_rollback",
    "flip_verify",
    "flip_verified",
    "flip_unverified",
    "flip_reverted",
    "flip_verify_cancelled",
];

/// One change, applied or refused.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The generation in force after the event.
    pub generation: u64,
    pub source: ChangeSource,
    /// One of `ACTIONS`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_split: Option<Split>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_split: Option<Split>,
    /// applied, unchanged or rejected.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persisted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A split as an ordered JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Split(pub Vec<(String, u32)>);

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

impl Event {
    pub fn new(
        generation: u64,
        source: ChangeSource,
        action: &'static str,
        result: &'static str,
    ) -> Self {
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
        }
    }
}

#[derive(Debug, Default)]
pub struct History {
    events: VecDeque<Event>,
    file: Option<PathBuf>,
    /// The running configuration's webhooks; offering never waits.
    notifier: Notifier,
}

impl History {
    pub fn new(file: Option<PathBuf>, notifier: Notifier) -> Self {
        History {
            events: VecDeque::new(),
            file,
            notifier,
        }
    }

    /// Follows the running `[[notify]]` (with every applied config).
    pub fn set_sinks(&mut self, sinks: &[NotifyConfig]) {
        self.notifier.configure(sinks);
    }

    pub fn record(&mut self, event: Event) {
        // Tests catch an action that a webhook could not ask for by name.
        debug_assert!(
            ACTIONS.contains(&event.action),
            "action {:?} is missing from history::ACTIONS",
            event.action
        );
        if let Some(path) = &self.file {
            let line = serde_json::to_string(&event).unwrap_or_default();
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = written {
                tracing::warn!(file = %path.display(), error = %e, "cannot append to the history file");
            }
        }
        self.notifier.offer(&event);
        if self.events.len() == KEEP {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Newest first.
    pub fn newest(&self, limit: usize) -> Vec<Event> {
        self.events.iter().rev().take(limit).cloned().collect()
    }
}
