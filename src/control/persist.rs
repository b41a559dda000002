//! Writing the configuration back: a temporary file in the same directory,
//! fsync, the original file's mode, rename over the original, fsync of the
//! directory. Readers never see a half-written file.

use std::io::Write;
use std::path::Path;

/// Why a change was not written to the file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{0} is read-only (no write permission bits); the change applies in memory only")]
    ReadOnly(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Atomically replaces the file at `path` with `text`. A symlink (such as
/// a Kubernetes ConfigMap's) is followed and its target replaced.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.display().to_string(),
        source,
    };
    let real = std::fs::canonicalize(path).map_err(io)?;
    let meta = std::fs::metadata(&real).map_err(io)?;
    // Honour a file the operator made read-only even when running as root,
    // where the kernel would let us replace it anyway.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o222 == 0 {
            return Err(PersistError::ReadOnly(path.display().to_string()));
        }
    }
    let dir = real.parent().unwrap_or(Path::new("."));
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.switchyard-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(meta.permissions())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &real)?;
        // The rename itself must survive a crash too.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
