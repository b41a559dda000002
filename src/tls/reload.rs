//! Certificate hot reload, by the configuration file's watching rules
//! (`server.watch`, `server.watch_interval`): file-system events from each
//! certificate's *directory* (certbot's `live/` symlink swaps, an editor's
//! rename, a Kubernetes secret's `..data` swap all show there), debounced,
//! plus a content poll that catches what events miss. Each trigger asks the
//! store to reload; it loads only entries whose content changed.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::CertStore;
use crate::config::WatchMode;
use crate::table::sticky::fnv1a64;

/// An editor's or certbot's save is a burst of events; one reload is enough.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Watches the store's files per `mode` until `shutdown`, on the current
/// runtime. The watch is in place when this returns.
pub fn watch_certs(
    store: Arc<CertStore>,
    mode: WatchMode,
    poll_every: Duration,
    shutdown: CancellationToken,
) {
    if mode == WatchMode::Off {
        return;
    }
    let files = store.files();
    let (tx, mut events) = mpsc::channel::<()>(1);
    let watcher = match mode {
        WatchMode::Auto | WatchMode::Notify => match directory_watcher(&files, tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "file events unavailable for certificates; polling instead");
                None
            }
        },
        _ => None,
    };
    let poll = mode == WatchMode::Poll || mode == WatchMode::Auto || watcher.is_none();
    let mut last = fingerprint(&files);
    tracing::debug!(
        files = files.len(),
        ?mode,
        events = watcher.is_some(),
        poll,
        "watching certificates"
    );
    tokio::spawn(async move {
        // Kept alive for as long as this task runs; dropping it stops events.
        let _watcher = watcher;
        let mut tick = tokio::time::interval(poll_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(()) = events.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                }
                _ = tick.tick(), if poll => {
                    if fingerprint(&files) == last {
                        continue;
                    }
                }
            }
            last = fingerprint(&files);
            // Reading and parsing a few PEM files: short enough to run here.
            store.reload();
        }
    });
}

/// One watcher over the directories of `files`, signalling events that
/// concern one of them (or a `..data`-style link they resolve through).
fn directory_watcher(
    files: &[PathBuf],
    tx: mpsc::Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let dirs: HashSet<PathBuf> = files
        .iter()
        .map(|f| {
            f.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned()
        })
        .collect();
    let names: HashSet<OsString> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_owned()))
        .collect();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if event.kind.is_access() {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|f| names.contains(f) || f.to_string_lossy().starts_with(".."))
        });
        if relevant {
            // Full channel: a reload is already pending, which is enough.
            let _ = tx.try_send(());
        }
    })?;
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// The content of every file (unreadable ones count as absent): PEM files
/// are small, and timestamps are too coarse to compare.
fn fingerprint(files: &[PathBuf]) -> Vec<Option<u64>> {
    files
        .iter()
        .map(|f| std::fs::read(f).ok().map(|b| fnv1a64(&b)))
        .collect()
}
