//! What `run` needs from the machine beyond a valid file: the admin token
//! (from its variable or file), the certificates and the rustls
//! configuration built from them, and an access log file it can open.
//! `switchyard check` runs this same function, so it accepts exactly what
//! `run` accepts, and both exit 64 when it fails (issue 18, item 3). Only
//! the ports differ: `check` binds nothing (a port in use by the running
//! proxy is no reason to call a file invalid).

use std::sync::Arc;

use super::StartError;
use crate::config::{AccessLogDest, Config};
use crate::tls::CertStore;

/// Checks everything `start` reads from outside the file; the loaded
/// certificates are handed back so that `run` does not read them twice.
pub fn preflight(config: &Config) -> Result<Option<Arc<CertStore>>, StartError> {
    resolve_token(config)?;
    let certs = match &config.tls {
        Some(tls) => {
            let store = Arc::new(CertStore::load(tls).map_err(StartError::Certificate)?);
            crate::tls::server_config(store.clone()).map_err(StartError::Tls)?;
            Some(store)
        }
        None => None,
    };
    if let Some(AccessLogDest::File(path)) = &config.server.access_log {
        // Opened as `run` opens it (appending, created if missing).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StartError::AccessLog(path.display().to_string(), e))?;
    }
    Ok(certs)
}

/// The admin token, when one is configured: a named variable that is
/// unset or empty, or a token file that is missing or empty, is an error
/// (never a silently open admin).
pub(super) fn resolve_token(config: &Config) -> Result<Option<String>, StartError> {
    if let Some(var) = &config.admin.token_env {
        return match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
            _ => Err(StartError::Token(format!(
                "admin.token_env: environment variable {var} is unset or empty"
            ))),
        };
    }
    if let Some(path) = &config.admin.token_file {
        return match std::fs::read_to_string(path) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
            Ok(_) => Err(StartError::Token(format!(
                "admin.token_file: {} is empty",
                path.display()
            ))),
            Err(e) => Err(StartError::Token(format!(
                "admin.token_file: cannot read {}: {e}",
                path.display()
            ))),
        };
    }
    Ok(None)
}
