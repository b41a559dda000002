//! The HTTPS listener's certificates: one entry per configured certificate
//! (`[tls]` cert/key and each `[[tls.certs]]`), chosen per handshake by the
//! SNI name — exact names first, then `*.suffix` patterns (longest first),
//! else the default. The host index is fixed for the process; the keys
//! live in one `ArcSwap`, loaded by every handshake (no lock) and stored by
//! `reload` when a file changed. A file that fails to load keeps the
//! entry's previous key and is reported (log, `status`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::api::CertStatus;
use crate::config::pem::{self, CertError};
use crate::config::{HostMatch, TlsConfig};
use crate::watch::content_hash;

/// One configured certificate.
#[derive(Debug)]
struct Entry {
    /// The SNI patterns as written back for status (`*.example.com`).
    hosts: Vec<String>,
    cert: PathBuf,
    key: PathBuf,
}

/// Reload bookkeeping of one entry (control plane only).
#[derive(Debug, Clone)]
struct EntryState {
    /// Fingerprint of the files last looked at (`None`: unreadable), so an
    /// unchanged broken file is not reported again at every poll.
    seen: Option<u64>,
    /// Fingerprint of the files the served key came from.
    served: u64,
    loaded_at: SystemTime,
    reloads: u64,
    error: Option<String>,
}

/// The SNI certificate store and rustls certificate resolver.
pub struct CertStore {
    entries: Box<[Entry]>,
    exact: HashMap<Box<str>, usize>,
    /// `.example.com` for `*.example.com`, longest first.
    suffix: Box<[(Box<str>, usize)]>,
    default: usize,
    /// The served keys, by entry index.
    keys: ArcSwap<Vec<Arc<CertifiedKey>>>,
    /// Held only by `reload` and `status` (control plane), never by a
    /// handshake.
    state: Mutex<Vec<EntryState>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("entries", &self.entries)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

fn fingerprint(cert: &[u8], key: &[u8]) -> u64 {
    content_hash(cert) ^ content_hash(key).rotate_left(29)
}

/// A certificate chain and its key from PEM bytes, checked to belong
/// together (a renewal that has written the new certificate but not yet
/// the new key fails here, and is retried at the next change).
fn certified_key(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = pem::certificates(cert_path, cert_pem)?;
    let key = pem::private_key(key_path, key_pem)?;
    match CertifiedKey::from_der(chain, key, &super::provider()) {
        Ok(k) => Ok(Arc::new(k)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(CertError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        }),
        Err(source) => Err(CertError::Key {
            path: key_path.to_owned(),
            source,
        }),
    }
}

fn read_pair(e: &Entry) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    Ok((pem::read(&e.cert)?, pem::read(&e.key)?))
}

impl CertStore {
    /// Loads every certificate of `cfg`; any failure is an error (at start
    /// there is no previous key to keep).
    pub fn load(cfg: &TlsConfig) -> Result<Self, CertError> {
        let mut entries = Vec::with_capacity(cfg.certs.len());
        let mut keys = Vec::with_capacity(cfg.certs.len());
        let mut state = Vec::with_capacity(cfg.certs.len());
        let mut exact = HashMap::new();
        let mut suffix = Vec::new();
        for (i, c) in cfg.certs.iter().enumerate() {
            let entry = Entry {
                hosts: c
                    .hosts
                    .iter()
                    .map(|h| match h {
                        HostMatch::Exact(n) => n.clone(),
                        HostMatch::Suffix(s) => format!("*{s}"),
                    })
                    .collect(),
                cert: c.cert.clone(),
                key: c.key.clone(),
            };
            let (cert_pem, key_pem) = read_pair(&entry)?;
            keys.push(certified_key(&entry.cert, &cert_pem, &entry.key, &key_pem)?);
            let fp = fingerprint(&cert_pem, &key_pem);
            state.push(EntryState {
                seen: Some(fp),
                served: fp,
                loaded_at: SystemTime::now(),
                reloads: 0,
                error: None,
            });
            for h in &c.hosts {
                // Validation rejects duplicates; the first entry wins anyway.
                match h {
                    HostMatch::Exact(n) => {
                        exact.entry(n.as_str().into()).or_insert(i);
                    }
                    HostMatch::Suffix(s) => suffix.push((Box::<str>::from(s.as_str()), i)),
                }
            }
            entries.push(entry);
        }
        suffix.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Ok(Self {
            entries: entries.into(),
            exact,
            suffix: suffix.into(),
            default: cfg.default,
            keys: ArcSwap::from_pointee(keys),
            state: Mutex::new(state),
        })
    }

    /// The entry serving `name` (an SNI host name).
    fn index_for(&self, name: &str) -> usize {
        let name = name.strip_suffix('.').unwrap_or(name);
        let mut buf = [0u8; 253];
        let Some(name) = lowercase(name, &mut buf) else {
            return self.default;
        };
        if let Some(&i) = self.exact.get(name) {
            return i;
        }
        self.suffix
            .iter()
            .find(|(s, _)| name.len() > s.len() && name.ends_with(&**s))
            .map_or(self.default, |&(_, i)| i)
    }

    /// Re-reads every entry's files; entries whose content changed are
    /// loaded and, when valid, served from the next handshake on. Answers
    /// whether a new certificate is being served.
    pub fn reload(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next: Option<Vec<Arc<CertifiedKey>>> = None;
        for (i, (entry, st)) in self.entries.iter().zip(state.iter_mut()).enumerate() {
            let files = read_pair(entry);
            let seen = files.as_ref().ok().map(|(c, k)| fingerprint(c, k));
            // Unchanged since the last look (also an unreadable file that
            // was reported already): nothing to do.
            if seen == st.seen && (seen.is_some() || st.error.is_some()) {
                continue;
            }
            st.seen = seen;
            let loaded = files.and_then(|(c, k)| {
                if Some(st.served) == seen {
                    return Ok(None); // back to what is served: nothing to load
                }
                certified_key(&entry.cert, &c, &entry.key, &k).map(Some)
            });
            match loaded {
                Ok(None) => st.error = None,
                Ok(Some(key)) => {
                    let keys = next.get_or_insert_with(|| self.keys.load().as_ref().clone());
                    keys[i] = key;
                    st.served = seen.unwrap_or_default();
                    st.loaded_at = SystemTime::now();
                    st.reloads += 1;
                    st.error = None;
                    tracing::info!(cert = %entry.cert.display(), key = %entry.key.display(),
                        "certificate reloaded; new handshakes use it");
                }
                Err(e) => {
                    tracing::warn!(cert = %entry.cert.display(), file = %e.path().display(),
                        error = %e, "certificate not reloaded; still serving the previous one");
                    st.error = Some(e.to_string());
                }
            }
        }
        match next {
            Some(keys) => {
                self.keys.store(Arc::new(keys));
                true
            }
            None => false,
        }
    }

    /// Every file the store reads, for the watcher.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::with_capacity(self.entries.len() * 2);
        for e in self.entries.iter() {
            for p in [&e.cert, &e.key] {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// The state of every certificate, in configuration order.
    pub fn status(&self) -> Vec<CertStatus> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.entries
            .iter()
            .zip(state.iter())
            .enumerate()
            .map(|(i, (e, st))| CertStatus {
                hosts: e.hosts.clone(),
                default: i == self.default,
                cert: e.cert.display().to_string(),
                key: e.key.display().to_string(),
                loaded_at: st
                    .loaded_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                reloads: st.reloads,
                error: st.error.clone(),
            })
            .collect()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let i = hello
            .server_name()
            .map_or(self.default, |n| self.index_for(n));
        // One ArcSwap load and one refcount increment per handshake.
        self.keys.load().get(i).cloned()
    }
}

/// ASCII-lowercases into `buf` only when needed; `None` when too long.
fn lowercase<'a>(s: &'a str, buf: &'a mut [u8; 253]) -> Option<&'a str> {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(s);
    }
    let out = buf.get_mut(..s.len())?;
    out.copy_from_slice(s.as_bytes());
    out.make_ascii_lowercase();
    // Lowercasing ASCII bytes keeps valid UTF-8 valid.
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_copies_only_when_needed() {
        let mut buf = [0u8; 253];
        assert_eq!(
            lowercase("api.example.com", &mut buf),
            Some("api.example.com")
        );
        let mut buf = [0u8; 253];
        assert_eq!(
            lowercase("API.Example.com", &mut buf),
            Some("api.example.com")
        );
        let long = "A".repeat(300);
        let mut buf = [0u8; 253];
        assert_eq!(lowercase(&long, &mut buf), None);
    }
}
