//! Deployment history: every change the controller makes or refuses, kept
//! in memory (bounded) and appended as JSON lines to `admin.history_file`.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::ChangeSource;

/// Events kept in memory.
const KEEP: usize = 1000;

/// One change, applied or refused.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The generation in force after the event.
    pub generation: u64,
    pub source: ChangeSource,
    /// reload, split, flip, rollback, drain, undrain.
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
}

impl History {
    pub fn new(file: Option<PathBuf>) -> Self {
        History {
            events: VecDeque::new(),
            file,
        }
    }

    pub fn record(&mut self, event: Event) {
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
