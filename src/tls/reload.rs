//! Certificate hot reload, by the configuration file's watching rules
//! (`server.watch`, `server.watch_interval`): file-system events from each
//! certificate's *directory* (certbot's `live/` symlink swaps, an editor's
//! rename, a Kubernetes secret's `..data` swap all show there), debounced,
//! plus a content poll that catches what events miss. Each trigger asks the
//! store to reload; it loads only entries whose content changed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::CertStore;
use crate::config::WatchMode;

/// Watches the store's files per `mode` until `shutdown`, on the current
/// runtime. The watch is in place when this returns.
pub fn watch_certs(
    store: Arc<CertStore>,
    mode: WatchMode,
    poll_every: Duration,
    shutdown: CancellationToken,
) {
    let files = store.files();
    crate::watch::watch_files(
        "certificates",
        files,
        mode,
        poll_every,
        shutdown,
        move || {
            // Reading and parsing a few PEM files: short enough to run here.
            store.reload();
            std::future::ready(())
        },
    );
}
