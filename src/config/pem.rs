//! Reading PEM files: a certificate chain (leaf first, then intermediates),
//! its private key (PKCS#8, SEC1 or PKCS#1), and CA bundles for backends.
//! Every function reads the whole file once and never panics on what it
//! finds; errors name the file and what was wrong with it.
//!
//! Here, below `tls`, because validation reads the `ca_file`s with it and
//! the listener its certificates: a file `switchyard check` accepts is a
//! file the listener can serve. Making a rustls `CertifiedKey` of a chain
//! and its key needs the crypto provider, and is `tls::certs`'s.

use std::io;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not valid PEM: {source}", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no certificate (\"BEGIN CERTIFICATE\") found", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{}: no private key (\"BEGIN PRIVATE KEY\", \"BEGIN EC PRIVATE KEY\" or \"BEGIN RSA PRIVATE KEY\") found",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("{}: unusable private key or certificate: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("{}: certificate #{index} cannot be a trust anchor: {source}", path.display())]
    Anchor {
        path: PathBuf,
        index: usize,
        #[source]
        source: rustls::Error,
    },
}

impl CertError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CertError::Read { path, .. }
            | CertError::Pem { path, .. }
            | CertError::NoCertificate { path }
            | CertError::NoKey { path }
            | CertError::Key { path, .. }
            | CertError::Anchor { path, .. } => path,
            CertError::Mismatch { key, .. } => key,
        }
    }
}

/// A file's bytes.
pub fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file, in file order.
pub fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => CertError::NoKey {
            path: path.to_owned(),
        },
        source => CertError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

/// The certificates of a CA bundle, each checked to be usable as a trust
/// anchor.
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = certificates(path, &read(path)?)?;
    let mut store = RootCertStore::empty();
    for (index, c) in certs.iter().enumerate() {
        store.add(c.clone()).map_err(|source| CertError::Anchor {
            path: path.to_owned(),
            index,
            source,
        })?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_files_are_reported_with_their_path() {
        let p = Path::new("/x/cert.pem");
        let e = certificates(p, b"hello").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("/x/cert.pem: no certificate (\"BEGIN CERTIFICATE\") found")
        );
        let e = private_key(Path::new("/x/key.pem"), b"").err();
        assert!(matches!(e, Some(CertError::NoKey { .. })), "{e:?}");
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let e = certificates(p, bad).err();
        assert!(matches!(e, Some(CertError::Pem { .. })), "{e:?}");
    }
}
