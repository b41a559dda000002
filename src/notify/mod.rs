//! Webhook notifications (`[[notify]]`): every event that enters the
//! controller's history is offered here, and each sink whose `events`
//! match gets a JSON POST of it (`payload`).
//!
//! Owns the sinks of the running configuration: per sink a bounded queue
//! and one delivery task (`deliver`) on the control runtime. The history
//! (that is, the controller task, the only writer) calls `offer`, which
//! never waits: it serializes the event once and `try_send`s it to each
//! sink that wants it; a full queue drops the notification and counts it.
//! So a dead receiver delays only its own notifications, which stay in
//! order, and neither the controller nor the data plane ever waits on one.
//! The data plane never reaches this module.
//!
//! The sinks follow the configuration: `configure` (called with every
//! applied configuration) keeps a sink whose settings are unchanged, with
//! its queue, and starts new ones; a removed or changed sink's queue is
//! closed, and its task ends once what was queued before the change has
//! been delivered or given up. Notifications still queued at exit are lost.
//!
//! Outcomes are counted in `switchyard_notifications_total{sink, result}`
//! (`delivered`, `failed` after the retries, `dropped` on a full queue);
//! the sink label is the URL's `host[:port]`, never its path (a Slack
//! webhook's path is its key), and header values are never logged.

mod deliver;
mod payload;

use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::config::NotifyConfig;
use crate::event::Event;
use crate::telemetry::Telemetry;
use deliver::{Delivery, Target};

/// Notifications that may wait per sink before new ones are dropped.
const QUEUE: usize = 128;

/// The running configuration's webhook sinks.
pub struct Notifier {
    sinks: Vec<Sink>,
    telemetry: Option<Arc<Telemetry>>,
    /// Queue length of new sinks (`QUEUE`; tests use less).
    queue: usize,
}

/// One sink: its settings and the sending end of its queue.
struct Sink {
    config: NotifyConfig,
    tx: mpsc::Sender<Arc<Delivery>>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new(None)
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sinks.iter().map(|s| &s.config.url))
            .finish()
    }
}

impl Notifier {
    /// A notifier without sinks; outcomes are counted in `telemetry`.
    pub fn new(telemetry: Option<Arc<Telemetry>>) -> Self {
        Notifier {
            sinks: Vec::new(),
            telemetry,
            queue: QUEUE,
        }
    }

    /// Reconciles the sinks with `configs` (the running `[[notify]]`).
    /// Starts tasks: call it on a tokio runtime.
    pub fn configure(&mut self, configs: &[NotifyConfig]) {
        let mut old = std::mem::take(&mut self.sinks);
        let before = old.len();
        let mut started = 0;
        for config in configs {
            if let Some(i) = old.iter().position(|s| s.config == *config) {
                self.sinks.push(old.swap_remove(i));
                continue;
            }
            let (tx, rx) = mpsc::channel(self.queue);
            let target = Target::new(config.clone(), self.telemetry.clone());
            tokio::spawn(deliver::run(target, rx));
            self.sinks.push(Sink {
                config: config.clone(),
                tx,
            });
            started += 1;
        }
        if started > 0 || !old.is_empty() {
            let sinks: Vec<String> = self
                .sinks
                .iter()
                .map(|s| s.config.url.to_string())
                .collect();
            tracing::info!(sinks = %sinks.join(", "), started, stopped = old.len(),
                kept = before - old.len(), "webhook sinks configured");
        }
        // `old` is dropped here: those queues close (see the module docs).
    }

    /// Queues `event` for every sink that wants it; never waits.
    pub fn offer(&self, event: &Event) {
        if !self.sinks.iter().any(|s| s.config.wants(event.action)) {
            return;
        }
        let id = format!("{:016x}", fastrand::u64(..));
        let delivery = Arc::new(Delivery {
            body: payload::body(event, &id),
            id,
            action: event.action,
        });
        for sink in self.sinks.iter().filter(|s| s.config.wants(event.action)) {
            let why = match sink.tx.try_send(delivery.clone()) {
                Ok(()) => continue,
                Err(TrySendError::Full(_)) => "its queue is full",
                Err(TrySendError::Closed(_)) => "its task has stopped",
            };
            tracing::warn!(notify.sink = %sink.config.url.authority, notify.action = %event.action,
                "notification dropped: {why}");
            if let Some(t) = &self.telemetry {
                t.count_notification(&sink.config.url.authority, "dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests;
