//! Deployment history: every change the controller makes or refuses, kept
//! in memory (bounded), appended as JSON lines to `admin.history_file`, and
//! offered to the webhook sinks (`notify`). `record` is the one way in, so
//! every event — the controller's own and `ControlHandle::record`'s — is
//! seen by all three.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;

use crate::config::NotifyConfig;
use crate::event::Event;
use crate::notify::Notifier;

/// Events kept in memory.
const KEEP: usize = 1000;

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
