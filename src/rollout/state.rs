//! The rollout state file, `<config>.rollout.json`: each running
//! rollout's step, when it began and whether it is paused, written
//! atomically at every change so that a restart resumes where it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Entry, Phase, Rollouts, Saved};

pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The state file of the configuration at `config`.
pub fn state_path(config: &Path) -> PathBuf {
    let mut s = config.as_os_str().to_owned();
    s.push(".rollout.json");
    PathBuf::from(s)
}

/// Reads a state file; a missing or unreadable one holds nothing.
pub fn read_state(path: &Path) -> HashMap<String, Saved> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable rollout state file");
            HashMap::new()
        }),
        Err(_) => HashMap::new(),
    }
}

/// Writes to a temporary file, fsyncs and renames over `path`.
fn write_state(path: &Path, state: &HashMap<String, Saved>) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(state).unwrap_or_default())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Rollouts {
    /// Writes the running rollouts to the state file.
    pub(super) fn save(&self) {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.save_locked(&entries);
    }

    /// `save` with the entries already locked, so that the file never
    /// lags behind what the API shows.
    pub(super) fn save_locked(&self, entries: &HashMap<String, Entry>) {
        let state: HashMap<String, Saved> = entries
            .iter()
            .filter(|(_, e)| e.tx.is_some())
            .map(|(r, e)| {
                let s = &e.status;
                let saved = Saved {
                    step: s.step,
                    step_started_ms: s.step_started_ms,
                    paused: s.phase == Phase::Paused,
                    shadow: s.shadow.is_some(),
                    shadow_percent: s.shadow.as_ref().map(|p| p.percent),
                };
                (r.clone(), saved)
            })
            .collect();
        // [cluster]: the leader's progress is the cluster's (fenced there).
        if let Some(c) = self.coordinator() {
            if c.leads().is_ok() {
                c.save(state.clone());
            }
        }
        let Some(path) = &self.state_file else { return };
        if let Err(e) = write_state(path, &state) {
            tracing::warn!(file = %path.display(), error = %e, "cannot write the rollout state file; a restart would not resume");
        }
    }
}
