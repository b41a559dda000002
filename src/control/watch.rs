//! Noticing edits of the configuration file. File-system events come from
//! the file's *directory* (so editors' write-to-temp-and-rename, `sed -i`
//! and a Kubernetes ConfigMap's `..data` symlink swap are all seen), are
//! debounced, and trigger a reload; the controller skips text it already
//! runs, including its own write-backs. Polling the file's metadata covers
//! what events miss (a single file bind-mounted into a container, some
//! network file systems).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ChangeSource, ControlHandle};
use crate::config::WatchMode;

/// Bursts of events (an editor's save is several) within this window make one reload.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Starts watching `path` per `mode` until `shutdown`. The watch is in
/// place when this returns, so an edit made right after is not missed.
pub fn watch_file(
    path: PathBuf,
    mode: WatchMode,
    poll_every: Duration,
    handle: ControlHandle,
    shutdown: CancellationToken,
) {
    if mode == WatchMode::Off {
        return;
    }
    let (tx, mut events) = mpsc::channel::<()>(1);
    let watcher = match mode {
        WatchMode::Auto | WatchMode::Notify => match directory_watcher(&path, tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "file events unavailable; polling instead");
                None
            }
        },
        _ => None,
    };
    let poll = mode == WatchMode::Poll || mode == WatchMode::Auto || watcher.is_none();
    let mut last = fingerprint(&path);
    tracing::debug!(file = %path.display(), ?mode, events = watcher.is_some(), poll, "watching configuration");
    tokio::spawn(async move {
        // Kept alive for as long as this task runs; dropping it stops the events.
        let _watcher = watcher;
        let mut tick = tokio::time::interval(poll_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(()) = events.recv() => {
                    // Let the rest of the burst arrive, then drain it.
                    tokio::time::sleep(DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                }
                _ = tick.tick(), if poll => {
                    if fingerprint(&path) == last {
                        continue;
                    }
                }
            }
            last = fingerprint(&path);
            // The controller logs, records and reports the outcome itself.
            let _ = handle.reload(ChangeSource::File).await;
        }
    });
}

/// Events from the file's directory that concern the file (or, for
/// ConfigMaps, the `..data` link it resolves through).
fn directory_watcher(
    path: &Path,
    tx: mpsc::Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let name = path.file_name().map(|n| n.to_owned());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if event.kind.is_access() {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            let f = p.file_name();
            f == name.as_deref() || f.is_some_and(|f| f.to_string_lossy().starts_with(".."))
        });
        if relevant {
            // Full channel: a reload is already pending, which is enough.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// What polling compares: the file's content. Metadata alone can miss an
/// edit (timestamps are coarse, and an edit may keep the size), and the
/// file is small.
fn fingerprint(path: &Path) -> Option<u64> {
    std::fs::read(path)
        .ok()
        .map(|b| crate::table::sticky::fnv1a64(&b))
}
