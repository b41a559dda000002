//! Deployment history: every change the controller makes or refuses, kept
//! in memory (bounded), appended as JSON lines to `admin.history_file`, and
//! offered to the webhook sinks (`notify`). `record` is the one way in, so
//! every event — the controller's own and `ControlHandle::record`'s — is
//! seen by all three.
//!
//! With `[cluster]`, the events this replica makes are also added to the
//! cluster's history (`forward_to`); the copies of other replicas'
//! changes it applies (`ChangeSource::Cluster`) are kept here but neither
//! forwarded nor offered to the webhooks: the replica that made a change
//! notifies it, so each event is delivered once.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::shared::Shared;
use crate::config::NotifyConfig;
use crate::event::{ChangeSource, Event};
use crate::notify::Notifier;

/// Events kept in memory.
const KEEP: usize = 1000;

#[derive(Default)]
pub struct History {
    events: VecDeque<Event>,
    file: Option<PathBuf>,
    /// The running configuration's webhooks; offering never waits.
    notifier: Notifier,
    /// The cluster's history (`[cluster]`).
    cluster: Option<Arc<dyn Shared>>,
}

impl History {
    pub fn new(file: Option<PathBuf>, notifier: Notifier) -> Self {
        History {
            events: VecDeque::new(),
            file,
            notifier,
            cluster: None,
        }
    }

    /// Adds this replica's own events to the cluster's history too.
    pub fn forward_to(&mut self, cluster: Arc<dyn Shared>) {
        self.cluster = Some(cluster);
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
        if event.source != ChangeSource::Cluster {
            self.notifier.offer(&event);
            if let Some(c) = &self.cluster {
                c.record(&event);
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
