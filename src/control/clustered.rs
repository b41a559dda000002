//! The controller with `[cluster]`: changes are stored in the cluster
//! before they are applied, and the cluster's revisions are applied like
//! a reload.
//!
//! - An API or rollout change is planned on the revision served now and
//!   proposed (compare-and-swap); it is applied and answered once stored.
//!   A conflict (another replica stored a revision meanwhile) applies that
//!   revision and plans the change again on top of it.
//! - A saved edit of the file's shared part is proposed the same way, on
//!   the revision the file was written from. A conflict keeps the
//!   cluster's version: the file is rewritten, and the conflict is logged,
//!   recorded and shown in the status (`SharedState::conflict`).
//! - Every revision delivered by the store is merged into the running
//!   text (local tables kept), validated, swapped in, and written to the
//!   file keeping its comments (`document::merge`). A revision that does
//!   not validate here changes nothing and is reported.
//! - While the store is unreachable nothing is proposed (503 with the
//!   reason); the table keeps the last revision applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::controller::{Controller, FileMoved};
use super::shared::{ShareError, Shared, SharedDocument};
use super::{document, edit, persist, Applied, Change, ChangeError, ChangeSource};
use crate::config;
use crate::event::{Action, Event, Outcome};

/// What a mutation answer says while the store cannot take it.
fn unreachable(why: &str) -> String {
    format!(
        "the cluster's store (etcd) is unreachable, so the change cannot be stored: {why}; \
         this replica keeps serving the last revision it applied"
    )
}

impl Controller {
    /// The revision served now.
    fn revision(&self) -> i64 {
        self.shared_state.borrow().revision
    }

    fn set_revision(&self, revision: i64) {
        self.shared_state.send_modify(|s| {
            s.revision = revision;
            s.local_override = None;
            s.error = None;
        });
    }

    /// The store, if a proposal can be made now.
    pub(super) fn store(&self) -> Result<Arc<dyn Shared>, ChangeError> {
        let Some(store) = self.shared.clone() else {
            return Err(ChangeError::Unavailable(unreachable(
                "not connected to it yet",
            )));
        };
        store
            .ready()
            .map_err(|why| ChangeError::Unavailable(unreachable(&why)))?;
        if self.revision() == 0 {
            return Err(ChangeError::Unavailable(
                "no revision of the cluster's configuration received yet; try again shortly".into(),
            ));
        }
        Ok(store)
    }

    /// Stores the shared part of `text` (an API or rollout change) on the
    /// revision served now. `FileMoved`: the cluster moved on; its
    /// revision is applied and the change must be planned again.
    pub(super) async fn propose_change(
        &mut self,
        source: ChangeSource,
        text: &str,
    ) -> Result<Result<i64, FileMoved>, ChangeError> {
        let store = self.store()?;
        let shared = document::shared(text).map_err(|e| ChangeError::Invalid(e.to_string()))?;
        match store.propose(self.revision(), &shared, source).await {
            Ok(r) => {
                self.set_revision(r);
                Ok(Ok(r))
            }
            Err(ShareError::Conflict { .. }) => {
                self.catch_up(store.as_ref()).await?;
                Ok(Err(FileMoved))
            }
            Err(ShareError::Unavailable(why)) => Err(ChangeError::Unavailable(unreachable(&why))),
            Err(ShareError::NotLeader) => Err(ChangeError::NotLeader),
        }
    }

    /// Stores a saved file edit of the shared part, planned on the
    /// revision the file was written from. `FileMoved`: a conflict.
    pub(super) async fn propose_file(
        &mut self,
        source: ChangeSource,
        text: &str,
    ) -> Result<Result<i64, FileMoved>, ChangeError> {
        let not_stored = |me: &mut Self, e: ChangeError| {
            let msg = format!(
                "the file's edit is not applied: {e}; it is proposed again when the store answers"
            );
            tracing::warn!(source = %source, "{msg}");
            me.set_status(me.generation(), source, Some(msg.clone()));
            let mut ev = Event::new(me.generation(), source, Action::Reload, Outcome::Rejected);
            ev.detail = Some(msg);
            me.history.record(ev);
            e
        };
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => return Err(not_stored(self, e)),
        };
        let shared = document::shared(text).map_err(|e| ChangeError::Invalid(e.to_string()))?;
        match store.propose(self.revision(), &shared, source).await {
            Ok(r) => {
                self.set_revision(r);
                self.shared_state.send_modify(|s| s.conflict = None);
                Ok(Ok(r))
            }
            Err(ShareError::Conflict { .. }) => Ok(Err(FileMoved)),
            Err(ShareError::Unavailable(why)) => Err(not_stored(
                self,
                ChangeError::Unavailable(unreachable(&why)),
            )),
            Err(ShareError::NotLeader) => Err(ChangeError::NotLeader),
        }
    }

    /// A file edit planned on an older revision: the cluster's version is
    /// kept (applied, and written over the edit), the conflict reported.
    pub(super) async fn file_conflict(
        &mut self,
        source: ChangeSource,
        path: &Path,
    ) -> Result<Applied, ChangeError> {
        let planned = self.revision();
        let msg = format!(
            "{} was edited from revision {planned} of the cluster's configuration, which has \
             moved on since: the cluster's version is kept and the file rewritten; make the edit \
             again on top of it",
            path.display()
        );
        tracing::warn!(source = %source, file = %path.display(), planned, "{msg}");
        let mut ev = Event::new(self.generation(), source, Action::Reload, Outcome::Rejected);
        ev.detail = Some(msg.clone());
        self.history.record(ev);
        self.shared_state
            .send_modify(|s| s.conflict = Some(msg.clone()));
        let store = self.store()?;
        self.catch_up(store.as_ref()).await?;
        self.set_status(self.generation(), source, Some(msg.clone()));
        Err(ChangeError::Superseded(msg))
    }

    /// Applies the store's current revision (after a conflict).
    async fn catch_up(&mut self, store: &dyn Shared) -> Result<(), ChangeError> {
        match store.current().await {
            Ok(Some(doc)) => {
                // A revision that does not validate here is reported by
                // `apply_shared`; the change is then planned on the old one
                // and conflicts again, which `mutate` bounds.
                let _ = self.apply_shared(doc);
                Ok(())
            }
            Ok(None) => Err(ChangeError::Unavailable(
                "the cluster's configuration is missing from the store".into(),
            )),
            Err(e) => Err(ChangeError::Unavailable(unreachable(&e.to_string()))),
        }
    }

    /// Applies a revision of the cluster's shared document.
    pub(super) fn apply_shared(&mut self, doc: SharedDocument) -> Result<Applied, ChangeError> {
        let state = self.shared_state.borrow().clone();
        let unchanged = |generation| Applied {
            generation,
            changed: false,
            persisted: None,
            persist_error: None,
            split: None,
            previous_split: None,
            revision: Some(state.revision),
            standby: None,
            last_backend: None,
        };
        let again = doc.revision == state.revision && state.local_override.is_some();
        if doc.revision < state.revision || (doc.revision == state.revision && !again) {
            return Ok(unchanged(self.generation()));
        }
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("(cluster)"));
        let checked = document::merge(&self.text, &doc.text)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                config::parse(&t, &path)
                    .map(|c| (c, t))
                    .map_err(|e| e.to_string())
            });
        let (config, merged) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                let msg = format!(
                    "revision {} of the cluster's configuration (by {}) is not valid on this \
                     replica, which keeps serving revision {}:\n{e}",
                    doc.revision, doc.by, state.revision
                );
                tracing::error!(revision = doc.revision, by = %doc.by, "{msg}");
                self.shared_state
                    .send_modify(|s| s.error = Some(msg.clone()));
                self.set_status(self.generation(), ChangeSource::Cluster, Some(msg.clone()));
                let mut ev = Event::new(
                    self.generation(),
                    ChangeSource::Cluster,
                    Action::Reload,
                    Outcome::Rejected,
                );
                ev.detail = Some(msg.clone());
                self.history.record(ev);
                return Err(ChangeError::Invalid(msg));
            }
        };
        self.set_revision(doc.revision);
        let before = self.text.clone();
        if merged == self.text {
            // This replica's own change coming back, or the seed it wrote.
            self.write_shared(&before, &merged);
            return Ok(unchanged(self.generation()));
        }
        self.note_restart_needed(&config);
        let changed = self.changed_splits(&config);
        let changes = self.routing_changes(&config);
        let generation = self.apply(config, merged.clone());
        let persisted = self.write_shared(&before, &merged);
        tracing::info!(revision = doc.revision, by = %doc.by, generation, persisted = ?persisted,
            %changes, "applied the cluster's configuration");
        self.set_status(generation, ChangeSource::Cluster, None);
        self.record_reload(generation, ChangeSource::Cluster, changed);
        Ok(Applied {
            generation,
            changed: true,
            persisted,
            persist_error: None,
            split: None,
            previous_split: None,
            revision: Some(doc.revision),
            standby: None,
            last_backend: None,
        })
    }

    /// Rewrites the file so that its shared part says what `text`'s does,
    /// keeping its local tables and comments; `before` is the text served
    /// until now. A shared edit saved in the file meanwhile (not proposed
    /// yet, so planned on an older revision) is overwritten and reported
    /// as a conflict. `None` without a file.
    pub(super) fn write_shared(&self, before: &str, text: &str) -> Option<bool> {
        let path = self.path.as_ref()?;
        for _ in 0..3 {
            let disk = std::fs::read_to_string(path).ok();
            let base = disk.as_deref().unwrap_or(before);
            let out = match document::merge(base, text) {
                Ok(t) => t,
                // The file holds something that is not TOML: replace it.
                Err(_) => text.to_owned(),
            };
            if disk.as_deref() == Some(out.as_str()) {
                return Some(true);
            }
            if let Some(d) = &disk {
                let pending = !document::same_shared(d, before).unwrap_or(false)
                    && !document::same_shared(d, text).unwrap_or(false);
                if pending {
                    let msg = format!(
                        "{} held an edit not yet proposed (planned on an older revision); the \
                         cluster's version replaces it",
                        path.display()
                    );
                    tracing::warn!(file = %path.display(), "{msg}");
                    self.shared_state.send_modify(|s| s.conflict = Some(msg));
                }
            }
            match persist::write_atomic(path, &out, disk.as_deref()) {
                Ok(()) => return Some(true),
                Err(persist::PersistError::Changed(_)) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the cluster's configuration not written to the file");
                    return Some(false);
                }
            }
        }
        tracing::warn!(file = %path.display(), "the file keeps changing; the cluster's configuration is not written to it");
        Some(false)
    }

    /// The rollout engine's fall-back while the store is unreachable: the
    /// split in this replica's table only; the next revision replaces it.
    pub(super) fn local_fallback(
        &mut self,
        route: &str,
        split: Vec<(String, u32)>,
        reason: String,
    ) -> Result<Applied, ChangeError> {
        let old_split = self.split_of(route);
        let set = Change::SetSplit {
            route: route.to_owned(),
            split,
        };
        let plan = self.plan(&set)?;
        let action = plan.action;
        let text =
            edit::apply(&self.text, &plan.edit).map_err(|e| ChangeError::Invalid(e.to_string()))?;
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("(in memory)"));
        let config =
            config::parse(&text, &path).map_err(|e| ChangeError::Invalid(e.to_string()))?;
        let new_split = config
            .routes
            .iter()
            .find(|r| r.name == route)
            .map(|r| r.split.clone());
        let generation = self.apply(config, text);
        tracing::warn!(%route, generation, %reason, "local fall-back applied on this replica only");
        self.shared_state
            .send_modify(|s| s.local_override = Some(reason.clone()));
        let mut ev = Event::new(generation, ChangeSource::Rollout, action, Outcome::Applied);
        ev.route = Some(route.to_owned());
        ev.old_split = old_split.clone().map(crate::event::Split);
        ev.new_split = new_split.clone().map(crate::event::Split);
        ev.persisted = Some(false);
        ev.detail = Some(reason);
        self.history.record(ev);
        Ok(Applied {
            generation,
            changed: true,
            persisted: Some(false),
            persist_error: Some(
                "a local fall-back of this replica, not stored in the cluster".into(),
            ),
            split: new_split.map(crate::event::Split),
            previous_split: old_split.map(crate::event::Split),
            revision: None,
            standby: None,
            last_backend: None,
        })
    }
}
