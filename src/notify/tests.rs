//! The notifier without a receiver: the filter, the bounded queue and the
//! reconciliation of sinks. (Delivery over real sockets: tests/notify.rs.)

use std::path::Path;

use super::*;
use crate::event::{Action, ChangeSource, Outcome};

/// A `[[notify]]` config posting to a port nothing listens on.
fn sinks(extra: &str) -> Vec<NotifyConfig> {
    let text = format!(
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = {{ blue = 1 }}\n\
         [[notify]]\nurl = \"http://127.0.0.1:9/hook\"\n{extra}"
    );
    match crate::config::parse(&text, Path::new("t.toml")) {
        Ok(c) => c.notify,
        Err(e) => panic!("{e}"),
    }
}

fn event(action: Action) -> Event {
    Event::new(1, ChangeSource::Api, action, Outcome::Applied)
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts_and_unwanted_events_are_not_queued() {
    let telemetry = Telemetry::new();
    let mut n = Notifier::new(Some(telemetry.clone()));
    n.queue = 1;
    n.configure(&sinks(""));
    // The delivery task cannot run before this test yields, so the queue
    // holds exactly what was offered.
    n.offer(&event(Action::Split)); // not in the default events: not queued
    n.offer(&event(Action::Flip)); // queued
    assert_eq!(telemetry.notifications("127.0.0.1:9", "dropped"), 0);
    n.offer(&event(Action::RolloutStep));
    n.offer(&event(Action::FlipVerified));
    assert_eq!(telemetry.notifications("127.0.0.1:9", "dropped"), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn an_unchanged_sink_is_kept_and_a_changed_one_replaced() {
    let mut n = Notifier::default();
    n.configure(&sinks(""));
    let first = n.sinks[0].tx.downgrade();
    n.configure(&sinks(""));
    let kept = n.sinks[0].tx.downgrade();
    assert!(
        kept.upgrade()
            .is_some_and(|tx| first.upgrade().is_some_and(|f| tx.same_channel(&f))),
        "unchanged: the same queue"
    );
    n.configure(&sinks("retries = 1\n"));
    // The changed sink's queue was closed (its task ends after draining
    // it) and a new one started.
    assert!(
        first.upgrade().is_none(),
        "changed: the old queue is closed"
    );
    assert_eq!(n.sinks.len(), 1);
    n.configure(&[]);
    assert!(n.sinks.is_empty());
}
