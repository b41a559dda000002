//! Reloading on edits of the configuration file (rules in `crate::watch`).
//! The controller skips text it already runs, including its own
//! write-backs, so a change it made itself is never a new generation.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ChangeSource, ControlHandle};
use crate::config::WatchMode;

/// Starts watching `path` per `mode` until `shutdown`; in place on return.
pub fn watch_file(
    path: PathBuf,
    mode: WatchMode,
    poll_every: Duration,
    handle: ControlHandle,
    shutdown: CancellationToken,
) {
    crate::watch::watch_files(
        "configuration",
        vec![path],
        mode,
        poll_every,
        shutdown,
        move || {
            let handle = handle.clone();
            async move {
                // The controller logs, records and reports the outcome itself.
                let _ = handle.reload(ChangeSource::File).await;
            }
        },
    );
}
