//! Noticing edits of files: the configuration file (`control`) and the
//! TLS certificates (`tls`) follow the same rules. File-system events come
//! from each file's *directory* (editors' write-to-temp-and-rename, `sed
//! -i`, certbot's `live/` symlinks and a Kubernetes ConfigMap's or secret's
//! `..data` swap all show there, not on the old inode), debounced; polling
//! the files' content covers what events miss (a single file bind-mounted
//! into a container, some network file systems).

use std::collections::HashSet;
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::WatchMode;

/// An editor's save is a burst of events; one reaction is enough.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Watches `files` per `mode` until `shutdown`, calling `on_change` after
/// each (debounced) change, on the current runtime. The watch is in place
/// when this returns, so an edit made right after is not missed. `what`
/// names the files in logs.
pub fn watch_files<F, Fut>(
    what: &'static str,
    files: Vec<PathBuf>,
    mode: WatchMode,
    poll_every: Duration,
    shutdown: CancellationToken,
    mut on_change: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    if mode == WatchMode::Off || files.is_empty() {
        return;
    }
    let (tx, mut events) = mpsc::channel::<()>(1);
    let watcher = match mode {
        WatchMode::Auto | WatchMode::Notify => match directory_watcher(&files, tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(what, error = %e, "file events unavailable; polling instead");
                None
            }
        },
        _ => None,
    };
    let poll = mode == WatchMode::Poll || mode == WatchMode::Auto || watcher.is_none();
    let mut last = fingerprint(&files);
    tracing::debug!(
        what,
        files = files.len(),
        ?mode,
        events = watcher.is_some(),
        poll,
        "watching files"
    );
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
                    if fingerprint(&files) == last {
                        continue;
                    }
                }
            }
            last = fingerprint(&files);
            on_change().await;
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
            // Full channel: a reaction is already pending, which is enough.
            let _ = tx.try_send(());
        }
    })?;
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// What polling compares: the files' content (unreadable ones count as
/// absent). Timestamps are too coarse to compare, an edit may keep the size,
/// and these files are small.
fn fingerprint(files: &[PathBuf]) -> Vec<Option<u64>> {
    files
        .iter()
        .map(|f| std::fs::read(f).ok().map(|b| content_hash(&b)))
        .collect()
}

/// A hash of a file's content, to tell whether it changed (also the TLS
/// certificates'). Within one process only: nothing keeps it.
pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}
