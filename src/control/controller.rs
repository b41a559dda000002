//! The controller's state and the one path every change takes:
//! validate → build → store → persist → record → answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};

mod plan;
pub(in crate::control) use plan::Plan;

use super::edit::{self, EditError};
use super::history::History;
use super::persist::{self, Persist};
use super::resolve::{self, Answers, Resolve};
use super::shared::{Shared, SharedState};
use super::unsaved::Kept;
use super::{Applied, Change, ChangeError, ChangeSource, Command, ReloadStatus};
use crate::config::{self, Config};
use crate::event::{Action, Event, Outcome, Split};
use crate::stats::{Meters, StatsRegistry};
use crate::table::{Published, Registry, RoutingTable, TableWatch};
use crate::telemetry::Telemetry;

/// A route's split: pool names and weights, in the order written.
pub(super) type Weights = Vec<(String, u32)>;

/// Earlier splits kept per route for rollback.
const KEEP_SPLITS: usize = 32;

/// `route`'s standby pool in `config`.
fn standby_of(config: &Config, route: &str) -> Option<String> {
    config
        .routes
        .iter()
        .find(|r| r.name == route)
        .and_then(|r| r.http.standby.clone())
}

/// The history's note of a changed standby: `standby: blue (was none)`.
fn standby_detail(new: Option<&str>, old: Option<&str>) -> String {
    format!(
        "standby: {} (was {})",
        new.unwrap_or("none"),
        old.unwrap_or("none")
    )
}

/// Why a change is planned again: the file was saved by someone else
/// between planning a change and writing it back, or (`[cluster]`) the
/// cluster's revision moved on since the change was planned.
pub(super) struct FileMoved;

pub(super) struct Controller {
    pub(super) path: Option<PathBuf>,
    /// The running configuration's text: what was last loaded or written.
    pub(super) text: String,
    pub(super) config: Config,
    registry: Registry,
    /// The table in force; storing one publishes its generation.
    table: Published,
    pub(super) status: watch::Sender<ReloadStatus>,
    pub(super) history: History,
    /// Per route, the splits in force before each change, newest last.
    previous: HashMap<String, Vec<Vec<(String, u32)>>>,
    resolver: Arc<dyn Resolve>,
    /// Last good answers for the DNS names of the configuration.
    answers: Answers,
    telemetry: Option<Arc<Telemetry>>,
    /// Windows and metric handles, kept across tables by name.
    stats: StatsRegistry,
    /// The configuration the process started with: what the settings a
    /// reload cannot change are still set to.
    started: Config,
    /// Keys changed since start that need a restart (issue 18, item 4).
    restart_needed: Vec<&'static str>,
    /// `[cluster]` is configured: changes go through the shared store,
    /// and are refused (503) until it is attached and synchronised.
    pub(super) clustered: bool,
    pub(super) shared: Option<Arc<dyn Shared>>,
    pub(super) shared_state: watch::Sender<SharedState>,
    /// Changes in force that the file does not hold (`unsaved`), oldest
    /// first; put back on top of the file by its next successful reload.
    pub(super) unsaved: Vec<Kept>,
}

impl Controller {
    pub(super) fn new(
        config: Config,
        path: Option<PathBuf>,
        text: String,
        resolver: Arc<dyn Resolve>,
        telemetry: Option<Arc<Telemetry>>,
    ) -> (
        Self,
        TableWatch,
        watch::Receiver<ReloadStatus>,
        watch::Receiver<SharedState>,
    ) {
        let mut registry = Registry::default();
        registry.reconcile(&config);
        let meters = telemetry.clone().map(|t| t as Arc<dyn Meters>);
        let mut stats = StatsRegistry::new(meters);
        let first = RoutingTable::build(&config, &registry, &mut stats, 1);
        let table = Published::new(first);
        let watch = table.subscribe();
        let (status, status_rx) = watch::channel(ReloadStatus {
            generation: 1,
            source: None,
            error: None,
            at: SystemTime::now(),
            restart_needed: Vec::new(),
            unsaved: Vec::new(),
        });
        let mut notifier = crate::notify::Notifier::new(telemetry.clone());
        notifier.configure(&config.notify);
        let history = History::new(config.admin.history_file.clone(), notifier);
        let (shared_state, shared_rx) = watch::channel(SharedState::default());
        let c = Controller {
            clustered: config.cluster.is_some(),
            shared: None,
            shared_state,
            path,
            text,
            started: config.clone(),
            restart_needed: Vec::new(),
            config,
            registry,
            table,
            status,
            history,
            previous: HashMap::new(),
            resolver,
            answers: Answers::new(),
            telemetry,
            stats,
            unsaved: Vec::new(),
        };
        (c, watch, status_rx, shared_rx)
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // DNS names are resolved at once, then every resolve_interval.
        let mut next_resolve = tokio::time::Instant::now();
        loop {
            let has_names = self.config.pools.iter().any(|p| !p.names.is_empty());
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    self.command(cmd).await;
                }
                _ = tokio::time::sleep_until(next_resolve), if has_names => {
                    self.refresh_names().await;
                    let every = self.config.pools.iter().filter(|p| !p.names.is_empty())
                        .map(|p| p.resolve_interval).min().unwrap_or(std::time::Duration::from_secs(5));
                    next_resolve = tokio::time::Instant::now() + every;
                }
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Change {
                source,
                if_match,
                change,
                reply,
            } => {
                let result = match change {
                    Change::Reload => self.reload(source).await,
                    Change::Shared(doc) => self.apply_shared(doc),
                    Change::LocalFallback {
                        route,
                        split,
                        reason,
                    } => self.local_fallback(&route, split, reason),
                    other => self.mutate(source, if_match, other).await,
                };
                if let Some(t) = &self.telemetry {
                    match &result {
                        Ok(a) if a.changed => {
                            t.count_change(Outcome::Applied.as_str(), source.as_str())
                        }
                        Ok(_) => {}
                        Err(_) => t.count_change(Outcome::Rejected.as_str(), source.as_str()),
                    }
                }
                // The caller may have stopped waiting; nothing to undo.
                let _ = reply.send(result);
            }
            Command::History { limit, reply } => {
                let _ = reply.send(self.history.newest(limit));
            }
            Command::Record(event) => self.history.record(event),
            Command::Attach(store) => {
                self.history.forward_to(store.clone());
                self.shared = Some(store);
            }
        }
    }

    /// Resolves every name; rebuilds the table when an answer changed.
    async fn refresh_names(&mut self) {
        let mut changed = Vec::new();
        for (host, port) in resolve::names(&self.config) {
            let answer = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                self.resolver.resolve(&host, port),
            )
            .await;
            let addrs = match answer {
                Ok(Ok(a)) if !a.is_empty() => resolve::normalize(a),
                Ok(Ok(_)) => {
                    tracing::warn!(%host, port, "name resolved to no address; keeping the last good answer");
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(%host, port, error = %e, "name resolution failed; keeping the last good answer");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(%host, port, "name resolution timed out; keeping the last good answer");
                    continue;
                }
            };
            let key = (host.clone(), port);
            if self.answers.get(&key) != Some(&addrs) {
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                tracing::info!(%host, port, addrs = %list.join(", "), "name resolved to a new set of addresses");
                changed.push(format!("{host}:{port} -> {}", list.join(", ")));
                self.answers.insert(key, addrs);
            }
        }
        if changed.is_empty() {
            return;
        }
        let generation = self.rebuild();
        if let Some(t) = &self.telemetry {
            t.count_change(Outcome::Applied.as_str(), ChangeSource::Resolver.as_str());
        }
        let mut ev = Event::new(
            generation,
            ChangeSource::Resolver,
            Action::Resolve,
            Outcome::Applied,
        );
        ev.detail = Some(changed.join("; "));
        self.history.record(ev);
    }

    pub(super) fn generation(&self) -> u64 {
        self.table.load().generation
    }

    pub(super) fn split_of(&self, route: &str) -> Option<Vec<(String, u32)>> {
        self.config
            .routes
            .iter()
            .find(|r| r.name == route)
            .map(|r| r.split.clone())
    }

    /// Re-reads the file and applies it when its text changed (with
    /// `[cluster]`, an edit of the shared part is proposed to the cluster).
    async fn reload(&mut self, source: ChangeSource) -> Result<Applied, ChangeError> {
        let current = self.generation();
        let Some(path) = self.path.clone() else {
            return Ok(Applied::unchanged(current));
        };
        let (config, text) = match config::load(&path) {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(source = %source, file = %path.display(),
                    "configuration rejected; the running routing table stays in force:\n{e}");
                self.set_status(current, source, Some(e.to_string()));
                let mut ev = Event::new(current, source, Action::Reload, Outcome::Rejected);
                ev.detail = Some(e.to_string());
                self.history.record(ev);
                return Err(ChangeError::Config(Arc::new(e)));
            }
        };
        if text == self.text {
            tracing::debug!(source = %source, "configuration unchanged");
            self.all_saved();
            return Ok(Applied::unchanged(current));
        }
        // Changes the file could not take are put back on top of it.
        let (config, text, carried) = self.carry_unsaved(&path, config, text);
        if text == self.text {
            self.record_carried(carried, current);
            return Ok(Applied::unchanged(current));
        }
        let mut revision = None;
        if self.clustered && !super::document::same_shared(&text, &self.text).unwrap_or(false) {
            match self.propose_file(source, &text).await? {
                Ok(r) => revision = Some(r),
                Err(FileMoved) => return self.file_conflict(source, &path).await,
            }
        }
        self.note_restart_needed(&config);
        let changed_splits = self.changed_splits(&config);
        let changes = self.routing_changes(&config);
        let generation = self.apply(config, text);
        tracing::info!(source = %source, generation, file = %path.display(), %changes, "configuration applied");
        self.set_status(generation, source, None);
        self.record_reload(generation, source, changed_splits);
        self.record_carried(carried, generation);
        Ok(Applied {
            generation,
            changed: true,
            persisted: None,
            persist_error: None,
            split: None,
            previous_split: None,
            revision,
            standby: None,
            last_backend: None,
        })
    }

    /// What a reload to `config` changes in the routing, for its log line.
    pub(super) fn routing_changes(&self, config: &Config) -> String {
        let changes = super::diff::routing(&self.config, config);
        match changes.is_empty() {
            true => "settings".to_owned(),
            false => changes.join("; "),
        }
    }

    /// Routes whose split `config` changes: (route, old, new).
    pub(super) fn changed_splits(&self, config: &Config) -> Vec<(String, Weights, Weights)> {
        config
            .routes
            .iter()
            .filter_map(|r| {
                let old = self.split_of(&r.name)?;
                (old != r.split).then(|| (r.name.clone(), old, r.split.clone()))
            })
            .collect()
    }

    /// The history of an applied reload: one event, or one per split.
    pub(super) fn record_reload(
        &mut self,
        generation: u64,
        source: ChangeSource,
        changed_splits: Vec<(String, Weights, Weights)>,
    ) {
        if changed_splits.is_empty() {
            self.history.record(Event::new(
                generation,
                source,
                Action::Reload,
                Outcome::Applied,
            ));
        }
        for (route, old, new) in changed_splits {
            self.remember(&route, old.clone());
            let mut ev = Event::new(generation, source, Action::Reload, Outcome::Applied);
            ev.route = Some(route);
            ev.old_split = Some(Split(old));
            ev.new_split = Some(Split(new));
            self.history.record(ev);
        }
    }

    /// An API (or rollout) change: edit the text, validate it as a whole,
    /// write back, apply. When the file is saved by someone else between
    /// the plan and the write, the change is planned again on top of that
    /// edit; a file that keeps moving gets the change in memory only.
    async fn mutate(
        &mut self,
        source: ChangeSource,
        if_match: Option<u64>,
        change: Change,
    ) -> Result<Applied, ChangeError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.mutate_once(source, if_match, &change, tries < 4).await? {
                Ok(applied) => return Ok(applied),
                Err(FileMoved) if self.clustered && tries >= 8 => {
                    return Err(ChangeError::Unavailable(
                        "the cluster's configuration kept changing while this change was planned; try again".into(),
                    ))
                }
                Err(FileMoved) => tracing::info!(source = %source,
                    "the configuration (file or cluster revision) moved while a change was being written; planning the change again on top of it"),
            }
        }
    }

    async fn mutate_once(
        &mut self,
        source: ChangeSource,
        if_match: Option<u64>,
        change: &Change,
        write: bool,
    ) -> Result<Result<Applied, FileMoved>, ChangeError> {
        // Edits saved to the file that the watcher has not delivered yet go
        // first, so this change builds on them instead of overwriting them.
        // Why the file must not be written this time, if it must not.
        let mut blocked = (!write && !self.clustered).then(|| {
            "the file kept changing while the change was being written to it (3 tries)".to_owned()
        });
        if self.clustered {
            // Fails fast (503) while the store is unreachable.
            self.store()?;
        }
        if let Some(path) = self.path.clone() {
            if std::fs::read_to_string(&path).is_ok_and(|t| t != self.text) {
                if let Err(e) = self.reload(ChangeSource::File).await {
                    if !self.clustered {
                        // The file holds an invalid edit in progress: never clobber it.
                        blocked = Some(format!(
                            "{} holds an edit that is not valid (left as it is): {e}",
                            path.display()
                        ));
                    }
                }
            }
        }
        let current = self.generation();
        if let Some(expected) = if_match {
            if expected != current {
                return Err(ChangeError::Conflict {
                    expected,
                    actual: current,
                });
            }
        }
        let Plan {
            action,
            edit,
            route,
            backend,
        } = self.plan(change)?;
        let old_split = route.as_deref().and_then(|r| self.split_of(r));
        let old_standby = route.as_deref().and_then(|r| standby_of(&self.config, r));
        let text = edit::apply(&self.text, &edit).map_err(|e| match e {
            EditError::NoRoute(r) => {
                ChangeError::NotFound(format!("route {r:?} in the configuration file"))
            }
            EditError::NoBackend { pool, addr } => {
                ChangeError::NotFound(format!("backend {addr} of pool {pool:?}"))
            }
            EditError::Parse(m) => ChangeError::Invalid(m),
        })?;
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("(in memory)"));
        let config =
            config::parse(&text, &path).map_err(|e| ChangeError::Invalid(e.to_string()))?;
        let new_split = route.as_deref().and_then(|r| {
            config
                .routes
                .iter()
                .find(|x| x.name == r)
                .map(|x| x.split.clone())
        });
        let new_standby = route.as_deref().and_then(|r| standby_of(&config, r));
        let maintenance = (action == Action::Maintenance)
            .then(|| {
                let r = route.as_deref()?;
                config.routes.iter().find(|x| x.name == r)
            })
            .flatten()
            .map(|r| r.http.maintenance);
        if text == self.text {
            return Ok(Ok(Applied {
                generation: current,
                changed: false,
                persisted: None,
                persist_error: None,
                split: new_split.map(Split),
                previous_split: old_split.map(Split),
                revision: None,
                standby: new_standby,
                last_backend: None,
            }));
        }
        let mut revision = None;
        let persist = if self.clustered {
            // Stored in the cluster first; the file follows what is stored.
            match self.propose_change(source, &text).await? {
                Ok(r) => revision = Some(r),
                Err(moved) => return Ok(Err(moved)),
            }
            match self.write_shared(&self.text, &text) {
                None => Persist::NoFile,
                Some(true) => Persist::Written,
                // The cluster holds it; the file follows the next revision.
                Some(false) => Persist::NotWritten(
                    "the cluster holds the change; this replica's file could not be written".into(),
                ),
            }
        } else {
            match self.write_back(blocked, &text) {
                Ok(p) => p,
                Err(moved) => return Ok(Err(moved)),
            }
        };
        let persisted = persist.persisted();
        if let (Some(r), Some(old)) = (&route, &old_split) {
            // A standby or maintenance change leaves the split: nothing
            // to roll back to.
            if !matches!(
                action,
                Action::Rollback | Action::Standby | Action::Maintenance
            ) {
                self.remember(r, old.clone());
            }
        }
        let what = (source, action, route.clone(), backend.clone());
        self.keep_unsaved(&persist, &edit, what);
        let generation = self.apply(config, text);
        tracing::info!(source = %source, action = %action, route = route.as_deref().unwrap_or(""),
            backend = backend.as_deref().unwrap_or(""), generation, persisted = ?persisted, "change applied");
        let mut ev = Event::new(generation, source, action, Outcome::Applied);
        ev.route = route;
        ev.backend = backend;
        ev.old_split = old_split.clone().map(Split);
        ev.new_split = new_split.clone().map(Split);
        ev.persisted = persisted;
        if let Some(on) = maintenance {
            ev.detail = Some(format!("maintenance: {}", if on { "on" } else { "off" }));
        }
        if new_standby != old_standby {
            ev.detail = Some(standby_detail(
                new_standby.as_deref(),
                old_standby.as_deref(),
            ));
            tracing::info!(
                route = ev.route.as_deref().unwrap_or(""),
                standby = new_standby.as_deref().unwrap_or("none"),
                was = old_standby.as_deref().unwrap_or("none"),
                "the route's standby pool changed"
            );
        }
        if let Some(why) = persist.error() {
            let note = format!("not written to the file: {why}");
            ev.detail = Some(ev.detail.map_or(note.clone(), |d| format!("{d}; {note}")));
        }
        self.history.record(ev);
        Ok(Ok(Applied {
            generation,
            changed: true,
            persisted,
            persist_error: persist.error(),
            split: new_split.map(Split),
            previous_split: old_split.map(Split),
            revision,
            standby: new_standby,
            last_backend: None,
        }))
    }

    pub(super) fn remember(&mut self, route: &str, split: Vec<(String, u32)>) {
        let stack = self.previous.entry(route.to_owned()).or_default();
        if stack.len() == KEEP_SPLITS {
            stack.remove(0);
        }
        stack.push(split);
    }

    pub(super) fn apply(&mut self, config: Config, text: String) -> u64 {
        if config.notify != self.config.notify {
            self.history.set_sinks(&config.notify);
        }
        self.config = config;
        self.text = text;
        self.rebuild()
    }

    /// Builds and stores a table from the running config and DNS answers.
    fn rebuild(&mut self) -> u64 {
        let generation = self.generation() + 1;
        let effective = resolve::expand(&self.config, &self.answers);
        self.registry.reconcile(&effective);
        let table = RoutingTable::build(&effective, &self.registry, &mut self.stats, generation);
        self.table.store(table);
        generation
    }

    /// Writes `text` (made from the running text) to the file unless
    /// `blocked` says why not: whether it is there now and why not, or
    /// `FileMoved` when the file no longer holds the running text.
    fn write_back(&self, blocked: Option<String>, text: &str) -> Result<Persist, FileMoved> {
        let Some(path) = self.path.as_ref() else {
            return Ok(Persist::NoFile);
        };
        if let Some(why) = blocked {
            tracing::warn!(file = %path.display(), reason = %why,
                "the change applies in memory only (persisted: false); it is kept and written on top of the file by its next successful reload");
            return Ok(Persist::NotWritten(why));
        }
        match persist::write_atomic(path, text, Some(&self.text)) {
            Ok(()) => Ok(Persist::Written),
            Err(persist::PersistError::Changed(_)) => Err(FileMoved),
            Err(e) => {
                tracing::warn!(error = %e, "change not written back (persisted: false); it is kept and written on top of the file by its next successful reload");
                Ok(Persist::NotWritten(e.to_string()))
            }
        }
    }

    pub(super) fn set_status(&self, generation: u64, source: ChangeSource, error: Option<String>) {
        self.status.send_replace(ReloadStatus {
            generation,
            source: Some(source),
            error,
            at: SystemTime::now(),
            restart_needed: self.restart_needed.clone(),
            unsaved: self.unsaved.iter().map(|k| k.view().clone()).collect(),
        });
    }

    /// Compares `new` with the configuration of the start and says, once
    /// per change of the list, which of its settings wait for a restart
    /// (the rest of `new` applies now).
    pub(super) fn note_restart_needed(&mut self, new: &Config) {
        let keys = config::restart_needed(&self.started, new);
        if keys != self.restart_needed {
            if keys.is_empty() {
                tracing::info!("every setting of the file is in force again; no restart is needed");
            } else {
                tracing::warn!(keys = %keys.join(", "),
                    "these settings changed but apply only after a restart; the rest of the file applies now");
            }
        }
        self.restart_needed = keys;
    }
}
