//! A route's standby pool on the control side (issue 14).
//!
//! Which pool a route keeps as its standby when its split changes: a flip
//! or a promotion keeps the pool it replaced as the way back; any change
//! that gives the standby weight ends it (the pool is active now, and the
//! configuration forbids a standby with weight). Pure functions of the
//! splits, so the controller's plan stays one edit.
//!
//! And the watcher that turns the data path's moves to and from a standby
//! (`table::StandbyShared`, counted by the request that sees them) into
//! `standby_fallback` / `standby_return` history events.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::Command;
use crate::event::{Action, ChangeSource, Event, Outcome};
use crate::table::{RoutingTable, TableWatch};

/// The route's standby after its split changes to `new`: `kept` (the
/// pool a flip replaced, the stable pool of a promotion) when it can be
/// one — `usable` says it exists and has backends — else `current`, unless
/// `new` gives it weight.
pub(super) fn after_split(
    new: &[(String, u32)],
    current: Option<&str>,
    kept: Option<&str>,
    usable: impl Fn(&str) -> bool,
) -> Option<String> {
    let weightless = |p: &&str| !new.iter().any(|(q, w)| q == *p && *w > 0);
    kept.filter(|p| weightless(p) && usable(p))
        .or(current.filter(weightless))
        .map(str::to_owned)
}

/// The pool a change of split replaced: of the pools that had weight
/// before and have none now, the one that had the most (the first written
/// on a tie). `None` when no pool lost its weight.
pub(super) fn replaced<'a>(old: &'a [(String, u32)], new: &[(String, u32)]) -> Option<&'a str> {
    let lost = |p: &str| !new.iter().any(|(q, w)| q == p && *w > 0);
    let mut best: Option<(&str, u32)> = None;
    for (p, w) in old {
        if *w > 0 && lost(p) && best.is_none_or(|(_, b)| *w > b) {
            best = Some((p, *w));
        }
    }
    best.map(|(p, _)| p)
}

/// Records every move of a route's traffic to its standby and back, as
/// the data path counted it, until the controller is gone. Woken by the
/// registry's news of a move, and by each new table (a route that gains a
/// standby starts from its count then).
pub(super) async fn watch(tx: mpsc::WeakSender<Command>, mut tables: TableWatch) {
    let table: Arc<ArcSwap<RoutingTable>> = tables.shared().clone();
    let news = table.load().standby_news.clone();
    // Per route: its standby pool and the transitions already reported.
    let mut seen: HashMap<String, (String, u64)> = HashMap::new();
    scan(&table.load_full(), &mut seen, &mut Vec::new());
    loop {
        tokio::select! {
            () = news.notified() => {}
            () = tables.changed() => {}
        }
        let mut events = Vec::new();
        scan(&table.load_full(), &mut seen, &mut events);
        let Some(tx) = tx.upgrade() else { return };
        for ev in events {
            if tx.send(Command::Record(ev)).await.is_err() {
                return;
            }
        }
    }
}

/// Compares each route's transition count with `seen` and adds an event
/// per unreported transition; a route new to `seen` (or with a new
/// standby pool) starts from its count.
fn scan(t: &RoutingTable, seen: &mut HashMap<String, (String, u64)>, events: &mut Vec<Event>) {
    seen.retain(|name, _| t.routes().iter().any(|r| &*r.name == name));
    for r in t.routes() {
        let Some((pool, state)) = r.standby_state() else {
            seen.remove(&*r.name);
            continue;
        };
        let now = state.transitions();
        let entry = seen
            .entry(r.name.to_string())
            .or_insert_with(|| (pool.name.to_string(), now));
        if entry.0 != *pool.name {
            *entry = (pool.name.to_string(), now);
        }
        // Transition n (counting from 1) is a fall-back when odd.
        for n in entry.1 + 1..=now {
            let (action, detail) = if n % 2 == 1 {
                (
                    Action::StandbyFallback,
                    format!("no pool of the split has an available backend; traffic falls back to standby {}", pool.name),
                )
            } else {
                (
                    Action::StandbyReturn,
                    format!(
                        "the split serves again; traffic returns from standby {}",
                        pool.name
                    ),
                )
            };
            let mut ev = Event::new(t.generation, ChangeSource::Health, action, Outcome::Applied);
            ev.route = Some(r.name.to_string());
            ev.detail = Some(detail);
            events.push(ev);
        }
        entry.1 = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[(&str, u32)]) -> Vec<(String, u32)> {
        v.iter().map(|(p, w)| ((*p).to_owned(), *w)).collect()
    }

    const ANY: fn(&str) -> bool = |_| true;

    /// A flip's standby: the replaced pool kept.
    fn flip(old: &[(String, u32)], new: &[(String, u32)], current: Option<&str>) -> Option<String> {
        after_split(new, current, replaced(old, new), ANY)
    }

    #[test]
    fn a_flip_keeps_the_pool_it_replaced() {
        let (blue, green) = (
            s(&[("blue", 100), ("green", 0)]),
            s(&[("blue", 0), ("green", 100)]),
        );
        assert_eq!(flip(&blue, &green, None).as_deref(), Some("blue"));
        // ... and flipping back keeps green, not the old standby
        assert_eq!(flip(&green, &blue, Some("blue")).as_deref(), Some("green"));
    }

    #[test]
    fn of_several_replaced_pools_the_heaviest_is_kept() {
        let old = s(&[("blue", 10), ("canary", 90), ("green", 0)]);
        let new = s(&[("blue", 0), ("canary", 0), ("green", 100)]);
        assert_eq!(replaced(&old, &new), Some("canary"));
        let tie = s(&[("blue", 50), ("canary", 50), ("green", 0)]);
        assert_eq!(replaced(&tie, &new), Some("blue"));
        assert_eq!(replaced(&new, &new), None);
    }

    #[test]
    fn a_pool_that_cannot_be_standby_is_not_kept() {
        let new = s(&[("blue", 0), ("green", 100)]);
        let not_blue = |p: &str| p != "blue";
        assert_eq!(after_split(&new, None, Some("blue"), not_blue), None);
        assert_eq!(
            after_split(&new, Some("old"), Some("blue"), not_blue).as_deref(),
            Some("old")
        );
        // a promotion whose stable pool still has weight keeps nothing new
        assert_eq!(after_split(&new, None, Some("green"), ANY), None);
    }

    #[test]
    fn a_flip_that_replaces_nothing_keeps_the_standby() {
        let green = s(&[("blue", 0), ("green", 100)]);
        assert_eq!(flip(&green, &green, Some("blue")).as_deref(), Some("blue"));
    }

    #[test]
    fn a_split_keeps_the_standby_until_it_gives_it_weight() {
        let canary = s(&[("blue", 0), ("green", 90), ("canary", 10)]);
        let both = s(&[("blue", 50), ("green", 50)]);
        assert_eq!(
            after_split(&canary, Some("blue"), None, ANY).as_deref(),
            Some("blue")
        );
        assert_eq!(after_split(&both, Some("blue"), None, ANY), None);
        // a plain split change never appoints one
        assert_eq!(after_split(&both, None, None, ANY), None);
    }
}
