//! Changes the controller applied in memory but could not write to the
//! configuration file (it held an invalid edit, kept changing, or was
//! read-only), kept so that fixing the file does not silently undo an
//! acknowledged change.
//!
//! Each kept change remembers the value every key it set had before it.
//! On the next successful reload, `reapply` puts the changes back, oldest
//! first, on top of the file's text — a key the file still holds at its
//! old value takes the kept value again — unless the file itself set one
//! of the change's keys to a third value: then the operator's edit wins
//! and the change is dropped with a reason the controller records. Owned
//! by the controller task alone; `/api/v1/status` shows `view`s of it.

use std::net::SocketAddr;
use std::path::Path;

use super::controller::Controller;
use super::edit::{self, Edit};
use super::persist::{self, Persist};
use crate::api::UnsavedChange;
use crate::config::{self, Config};
use crate::event::{Action, ChangeSource, Event, Outcome, Split};

/// One setting of the file that an edit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Split(String),
    Standby(String),
    Maintenance(String),
    Drain(String, SocketAddr),
}

/// A key's value, as a configuration holds it or an edit sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// Pools with weight, sorted by name: the file's order and its zero
    /// weights do not make a different split.
    Split(Vec<(String, u32)>),
    Standby(Option<String>),
    /// `maintenance` and `drain`.
    Flag(bool),
    /// The route or backend is not in the configuration.
    Missing,
}

impl Key {
    fn read(&self, config: &Config) -> Value {
        let route = |r: &str| config.routes.iter().find(|x| x.name == r);
        match self {
            Key::Split(r) => route(r).map_or(Value::Missing, |x| split_value(&x.split)),
            Key::Standby(r) => {
                route(r).map_or(Value::Missing, |x| Value::Standby(x.http.standby.clone()))
            }
            Key::Maintenance(r) => {
                route(r).map_or(Value::Missing, |x| Value::Flag(x.http.maintenance))
            }
            Key::Drain(pool, addr) => config
                .pools
                .iter()
                .find(|p| p.name == *pool)
                .and_then(|p| p.backends.iter().find(|b| b.addr == *addr))
                .map_or(Value::Missing, |b| Value::Flag(b.drain)),
        }
    }
}

fn split_value(split: &[(String, u32)]) -> Value {
    let mut v: Vec<(String, u32)> = split.iter().filter(|(_, w)| *w > 0).cloned().collect();
    v.sort();
    Value::Split(v)
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Split(r) => write!(f, "{r}.split"),
            Key::Standby(r) => write!(f, "{r}.standby"),
            Key::Maintenance(r) => write!(f, "{r}.maintenance"),
            Key::Drain(p, a) => write!(f, "{p}/{a}.drain"),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Split(s) if s.is_empty() => f.write_str("no weight"),
            Value::Split(s) => {
                let parts: Vec<String> = s.iter().map(|(p, w)| format!("{p} {w}")).collect();
                f.write_str(&parts.join(", "))
            }
            Value::Standby(p) => f.write_str(p.as_deref().unwrap_or("none")),
            Value::Flag(d) => write!(f, "{d}"),
            Value::Missing => f.write_str("absent"),
        }
    }
}

/// Each key `edit` sets, with the value it sets it to.
fn sets(edit: &Edit) -> Vec<(Key, Value)> {
    match edit {
        Edit::SetSplit { route, split } => vec![(Key::Split(route.clone()), split_value(split))],
        Edit::SetStandby { route, pool } => {
            vec![(Key::Standby(route.clone()), Value::Standby(pool.clone()))]
        }
        Edit::SetDrain { pool, addr, drain } => {
            vec![(Key::Drain(pool.clone(), *addr), Value::Flag(*drain))]
        }
        Edit::SetMaintenance { route, on } => {
            vec![(Key::Maintenance(route.clone()), Value::Flag(*on))]
        }
        Edit::Many(edits) => edits.iter().flat_map(sets).collect(),
    }
}

/// A change in force that the file does not hold.
#[derive(Debug, Clone)]
pub(super) struct Kept {
    edit: Edit,
    /// Each key the edit sets: its value before the change, and after.
    keys: Vec<(Key, Value, Value)>,
    view: UnsavedChange,
}

impl Kept {
    /// `edit`, applied over `before` (the configuration it changed) and not
    /// written to the file for `reason`.
    pub(super) fn new(
        edit: Edit,
        before: &Config,
        what: (ChangeSource, Action, Option<String>, Option<String>),
        reason: String,
    ) -> Self {
        let (source, action, route, backend) = what;
        let keys: Vec<(Key, Value, Value)> = sets(&edit)
            .into_iter()
            .map(|(k, new)| (k.read(before), k, new))
            .map(|(old, k, new)| (k, old, new))
            .collect();
        let view = UnsavedChange {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            source,
            action,
            route,
            backend,
            sets: keys.iter().map(|(k, _, v)| format!("{k} = {v}")).collect(),
            reason,
        };
        Kept { edit, keys, view }
    }

    /// How `/api/v1/status` shows it.
    pub(super) fn view(&self) -> &UnsavedChange {
        &self.view
    }

    /// A new reason it is still not in the file.
    pub(super) fn set_reason(&mut self, reason: String) {
        self.view.reason = reason;
    }

    /// `flip web (web.split = green 100, web.standby = blue)`, for logs.
    pub(super) fn describe(&self) -> String {
        let target = self
            .view
            .route
            .as_deref()
            .or(self.view.backend.as_deref())
            .unwrap_or("");
        format!(
            "{} {target} ({})",
            self.view.action,
            self.view.sets.join(", ")
        )
    }
}

/// What `reapply` did with the kept changes.
#[derive(Debug, Default)]
pub(super) struct Merged {
    /// Put back on top of the file (the merged text holds them).
    pub(super) reapplied: Vec<Kept>,
    /// The file already holds what they set.
    pub(super) in_file: Vec<Kept>,
    /// Dropped: why (the file set one of their keys to a third value, or
    /// they no longer fit the file).
    pub(super) dropped: Vec<(Kept, String)>,
}

/// Puts `kept` back on top of the file's `text` and `config`, oldest first;
/// answers the merged text and configuration and what became of each.
pub(super) fn reapply(
    kept: Vec<Kept>,
    text: String,
    config: Config,
    path: &Path,
) -> (String, Config, Merged) {
    let (mut text, mut config) = (text, config);
    let mut merged = Merged::default();
    for k in kept {
        match plan(&k, &config) {
            Err(why) => merged.dropped.push((k, why)),
            Ok(false) => merged.in_file.push(k),
            Ok(true) => match carry(&k.edit, &text, path) {
                Ok((t, c)) => {
                    (text, config) = (t, c);
                    merged.reapplied.push(k);
                }
                Err(why) => merged.dropped.push((k, why)),
            },
        }
    }
    (text, config, merged)
}

/// Whether `k` still has to be applied to `config`, or why it must not be
/// (the file changed one of its keys to a third value).
fn plan(k: &Kept, config: &Config) -> Result<bool, String> {
    let mut needed = false;
    for (key, old, new) in &k.keys {
        let now = key.read(config);
        if now == *new {
            continue;
        }
        if now != *old {
            return Err(format!(
                "the file now sets {key} = {now}, neither {old} (before the change) nor {new} \
                 (the change): the file's edit wins"
            ));
        }
        needed = true;
    }
    Ok(needed)
}

/// `edit` on top of `text`, validated as a whole.
fn carry(edit: &Edit, text: &str, path: &Path) -> Result<(String, Config), String> {
    let why = |e: String| format!("it no longer fits the file: {e}");
    let text = edit::apply(text, edit).map_err(|e| why(e.to_string()))?;
    let config = config::parse(&text, path).map_err(|e| why(e.to_string()))?;
    Ok((text, config))
}

/// The kept change's line in the history, as `outcome` with `detail`
/// (its generation is set when it is recorded).
fn event(k: &Kept, outcome: Outcome, detail: String) -> Event {
    let mut ev = Event::new(0, k.view.source, k.view.action, outcome);
    ev.route = k.view.route.clone();
    ev.backend = k.view.backend.clone();
    ev.new_split = split_of(&k.edit).map(Split);
    ev.detail = Some(detail);
    ev
}

/// The split `edit` sets, if it sets one.
fn split_of(edit: &Edit) -> Option<Vec<(String, u32)>> {
    match edit {
        Edit::SetSplit { split, .. } => Some(split.clone()),
        Edit::Many(edits) => edits.iter().find_map(split_of),
        _ => None,
    }
}

fn describe_all(kept: &[Kept]) -> String {
    let all: Vec<String> = kept.iter().map(Kept::describe).collect();
    all.join("; ")
}

/// What the controller does with changes it cannot write.
impl Controller {
    /// After a change applied with `persist`: keeps it when the file could
    /// not take it (`what`: source, action, route, backend), or notes that
    /// the file now holds every kept change when it was written. With
    /// `[cluster]` the store holds every change, so nothing is kept.
    pub(super) fn keep_unsaved(
        &mut self,
        persist: &Persist,
        edit: &Edit,
        what: (ChangeSource, Action, Option<String>, Option<String>),
    ) {
        match persist {
            Persist::NotWritten(why) if !self.clustered => {
                let k = Kept::new(edit.clone(), &self.config, what, why.clone());
                self.unsaved.push(k);
                self.publish_unsaved();
            }
            Persist::Written => self.all_saved(),
            _ => {}
        }
    }

    /// The file holds the running text: nothing is unsaved any more.
    pub(super) fn all_saved(&mut self) {
        if self.unsaved.is_empty() {
            return;
        }
        tracing::info!(changes = %describe_all(&self.unsaved),
            "the file now holds the changes that were kept in memory");
        self.unsaved.clear();
        self.publish_unsaved();
    }

    fn publish_unsaved(&self) {
        let views: Vec<UnsavedChange> = self.unsaved.iter().map(|k| k.view.clone()).collect();
        self.status.send_modify(|s| s.unsaved = views);
    }

    /// A reload read `config` and `text` from `path`: puts the kept changes
    /// back on top of them and writes the result to the file. Answers what
    /// to apply, and the history of what became of each kept change.
    pub(super) fn carry_unsaved(
        &mut self,
        path: &Path,
        config: Config,
        text: String,
    ) -> (Config, String, Vec<Event>) {
        if self.unsaved.is_empty() || self.clustered {
            return (config, text, Vec::new());
        }
        let kept = std::mem::take(&mut self.unsaved);
        let (merged, config, m) = reapply(kept, text.clone(), config, path);
        let mut events = Vec::new();
        for (k, why) in m.dropped {
            tracing::warn!(file = %path.display(), change = %k.describe(), reason = %why,
                "a change that was kept in memory is dropped: the reloaded file does not take it");
            events.push(event(
                &k,
                Outcome::Rejected,
                format!("kept in memory, dropped: {why}"),
            ));
        }
        if !m.in_file.is_empty() {
            tracing::info!(file = %path.display(), changes = %describe_all(&m.in_file),
                "the reloaded file already holds these changes that were kept in memory");
        }
        if !m.reapplied.is_empty() {
            let changes = describe_all(&m.reapplied);
            match persist::write_atomic(path, &merged, Some(&text)) {
                Ok(()) => {
                    tracing::info!(file = %path.display(), %changes,
                        "changes kept in memory re-applied on top of the reloaded file and written to it");
                    for k in &m.reapplied {
                        let detail = "kept in memory, re-applied on top of the reloaded file and written to it";
                        let mut ev = event(k, Outcome::Applied, detail.into());
                        ev.persisted = Some(true);
                        events.push(ev);
                    }
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), %changes, error = %e,
                        "changes kept in memory re-applied on top of the reloaded file, still not written to it");
                    for mut k in m.reapplied {
                        k.set_reason(e.to_string());
                        self.unsaved.push(k);
                    }
                }
            }
        }
        self.publish_unsaved();
        (config, merged, events)
    }

    /// Records what `carry_unsaved` did, at `generation`.
    pub(super) fn record_carried(&mut self, events: Vec<Event>, generation: u64) {
        for mut ev in events {
            ev.generation = generation;
            self.history.record(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"[pools.blue]
backends = ["127.0.0.1:8001"]

[pools.green]
backends = ["127.0.0.1:8002"]

[[routes]]
name = "web"
split = { blue = 100, green = 0 }   # edit this line
"#;

    fn parse(text: &str) -> Config {
        config::parse(text, Path::new("s.toml")).unwrap()
    }

    /// A flip to green with blue kept as the standby, made on `FILE`.
    fn flip() -> Kept {
        let edit = Edit::Many(vec![
            Edit::SetSplit {
                route: "web".into(),
                split: vec![("blue".into(), 0), ("green".into(), 100)],
            },
            Edit::SetStandby {
                route: "web".into(),
                pool: Some("blue".into()),
            },
        ]);
        let what = (ChangeSource::Api, Action::Flip, Some("web".into()), None);
        Kept::new(edit, &parse(FILE), what, "broken".into())
    }

    #[test]
    fn a_flip_is_put_back_on_a_file_that_still_holds_the_old_split() {
        let k = flip();
        assert_eq!(
            k.view().sets,
            vec!["web.split = green 100", "web.standby = blue"]
        );
        let fixed = format!("# fixed\n{FILE}");
        let (text, config, m) = reapply(vec![k], fixed.clone(), parse(&fixed), "s.toml".as_ref());
        assert_eq!((m.reapplied.len(), m.dropped.len()), (1, 0));
        assert!(text.starts_with("# fixed\n"), "{text}");
        assert!(text.contains("split = { blue = 0, green = 100 }   # edit this line"));
        assert_eq!(config.routes[0].http.standby.as_deref(), Some("blue"));
    }

    #[test]
    fn a_third_value_in_the_file_wins_and_says_why() {
        let third = FILE.replace("blue = 100, green = 0", "blue = 50, green = 50");
        let (text, _, m) = reapply(
            vec![flip()],
            third.clone(),
            parse(&third),
            "s.toml".as_ref(),
        );
        assert_eq!(text, third);
        assert_eq!(m.dropped.len(), 1);
        assert!(
            m.dropped[0]
                .1
                .contains("web.split = blue 50, green 50, neither blue 100"),
            "{}",
            m.dropped[0].1
        );
    }

    #[test]
    fn a_file_that_already_holds_the_change_needs_nothing() {
        let same = FILE.replace(
            "blue = 100, green = 0 }",
            "green = 100 }\nstandby = \"blue\"",
        );
        let (text, _, m) = reapply(vec![flip()], same.clone(), parse(&same), "s.toml".as_ref());
        assert_eq!(text, same);
        assert_eq!((m.in_file.len(), m.reapplied.len()), (1, 0));
    }

    #[test]
    fn a_change_that_no_longer_fits_is_dropped() {
        let no_route = FILE.replace("name = \"web\"", "name = \"api\"");
        let (_, _, m) = reapply(
            vec![flip()],
            no_route.clone(),
            parse(&no_route),
            "s.toml".as_ref(),
        );
        assert_eq!(m.dropped.len(), 1);
        assert!(
            m.dropped[0].1.contains("web.split = absent"),
            "{}",
            m.dropped[0].1
        );
    }
}
