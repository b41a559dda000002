//! The JSON body of a notification: the history event as
//! `GET /api/v1/history` shows it, plus `text` (a one-line summary a chat
//! relay can post as it is) and `delivery` (an id that stays the same
//! across retries, for receivers that must not act twice). Pure functions.

use std::fmt::Write;

use bytes::Bytes;
use serde::Serialize;

use crate::event::{Event, Outcome};

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(flatten)]
    event: &'a Event,
    text: String,
    delivery: &'a str,
}

/// The request body for `event`.
pub fn body(event: &Event, delivery: &str) -> Bytes {
    let payload = Payload {
        event,
        text: summary(event),
        delivery,
    };
    // An `Event` is strings, numbers and an ordered map of them: it always
    // serializes; an empty object would still be posted rather than nothing.
    Bytes::from(serde_json::to_vec(&payload).unwrap_or_else(|_| b"{}".to_vec()))
}

/// One line: what happened, where, how, why. E.g. `switchyard: flip on
/// route api: blue=100 green=0 -> blue=0 green=100 (by api)`.
pub fn summary(e: &Event) -> String {
    let mut s = format!("switchyard: {}", e.action);
    if let Some(route) = &e.route {
        let _ = write!(s, " on route {route}");
    }
    if let Some(backend) = &e.backend {
        let _ = write!(s, " of backend {backend}");
    }
    match (&e.old_split, &e.new_split) {
        (Some(old), Some(new)) => {
            let _ = write!(s, ": {old} -> {new}");
        }
        (None, Some(new)) => {
            let _ = write!(s, ": {new}");
        }
        _ => {}
    }
    let _ = write!(s, " (by {}", e.source);
    if e.result != Outcome::Applied {
        let _ = write!(s, ", {}", e.result);
    }
    s.push(')');
    if let Some(detail) = &e.detail {
        // Rejected reloads carry one diagnostic per line; the first says
        // where, the event has them all.
        let first = detail.lines().next().unwrap_or("");
        let more = if detail.lines().nth(1).is_some() {
            " …"
        } else {
            ""
        };
        let _ = write!(s, ": {first}{more}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, ChangeSource, Split};

    fn split(pairs: &[(&str, u32)]) -> Option<Split> {
        Some(Split(
            pairs.iter().map(|(p, w)| ((*p).to_owned(), *w)).collect(),
        ))
    }

    #[test]
    fn a_flip_reads_as_one_line() {
        let mut e = Event::new(7, ChangeSource::Api, Action::Flip, Outcome::Applied);
        e.route = Some("api".into());
        e.old_split = split(&[("blue", 100), ("green", 0)]);
        e.new_split = split(&[("blue", 0), ("green", 100)]);
        assert_eq!(
            summary(&e),
            "switchyard: flip on route api: blue=100 green=0 -> blue=0 green=100 (by api)"
        );
    }

    #[test]
    fn a_rollout_event_carries_its_detail_and_a_rejection_its_first_line() {
        let mut e = Event::new(
            3,
            ChangeSource::Rollout,
            Action::RolloutStart,
            Outcome::Applied,
        );
        e.route = Some("api".into());
        e.detail = Some("started at step 1 (5% on canary)".into());
        assert_eq!(
            summary(&e),
            "switchyard: rollout_start on route api (by rollout): started at step 1 (5% on canary)"
        );
        let mut e = Event::new(3, ChangeSource::File, Action::Reload, Outcome::Rejected);
        e.detail = Some("a.toml:3:1: x: bad\n    hint: fix it".into());
        assert_eq!(
            summary(&e),
            "switchyard: reload (by file, rejected): a.toml:3:1: x: bad …"
        );
    }

    #[test]
    fn the_body_is_the_history_event_plus_text_and_delivery() {
        let mut e = Event::new(2, ChangeSource::Api, Action::Drain, Outcome::Applied);
        e.backend = Some("blue/10.0.0.1:80".into());
        let v: serde_json::Value = serde_json::from_slice(&body(&e, "00ff")).unwrap();
        let mut want = serde_json::to_value(&e).unwrap();
        want["text"] = summary(&e).into();
        want["delivery"] = "00ff".into();
        assert_eq!(v, want);
    }
}
