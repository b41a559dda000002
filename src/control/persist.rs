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
    /// The file changed under us after the change was planned on it.
    #[error("{0} was changed by someone else while the change was being written")]
    Changed(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What became of writing a change back to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Persist {
    /// No configuration file: nothing to write.
    NoFile,
    /// The file holds the change.
    Written,
    /// The change applies in memory only, for this reason.
    NotWritten(String),
}

impl Persist {
    /// The answer's `persisted`.
    pub(super) fn persisted(&self) -> Option<bool> {
        match self {
            Persist::NoFile => None,
            Persist::Written => Some(true),
            Persist::NotWritten(_) => Some(false),
        }
    }

    /// The answer's `persist_error`.
    pub(super) fn error(&self) -> Option<String> {
        match self {
            Persist::NotWritten(why) => Some(why.clone()),
            _ => None,
        }
    }
}

/// Renames `tmp` over `real` if `real` still holds `base`; answers whether
/// it did. On Linux the two files are exchanged atomically (`renameat2`
/// with `RENAME_EXCHANGE`) and the content that was replaced is checked
/// afterwards: a save that landed after the plan is swapped back in place,
/// so no save is lost however the two interleave. Elsewhere, or where the
/// file system cannot exchange, `real` is read again just before a plain
/// rename, which leaves a window of that instant.
fn replace_if_unchanged(tmp: &Path, real: &Path, base: &str) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, tmp, CWD, real, RenameFlags::EXCHANGE) {
            Ok(()) => {
                // `tmp` now holds what `real` held an instant ago.
                if std::fs::read_to_string(tmp)? == base {
                    // The old content; best effort.
                    let _ = std::fs::remove_file(tmp);
                    return Ok(true);
                }
                renameat_with(CWD, tmp, CWD, real, RenameFlags::EXCHANGE)?;
                return Ok(false);
            }
            // EINVAL/ENOSYS: no exchange here; fall through.
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    if std::fs::read_to_string(real)? != base {
        return Ok(false);
    }
    std::fs::rename(tmp, real)?;
    Ok(true)
}

/// Atomically replaces the file at `path` with `text`. A symlink (such as
/// a Kubernetes ConfigMap's) is followed and its target replaced.
///
/// `base` is the content `text` was made from: if the file no longer holds
/// it just before the rename (an operator saved an edit meanwhile), nothing
/// is replaced and `Changed` is answered, so the caller can build on the
/// edit instead of overwriting it (see `replace_if_unchanged`).
pub fn write_atomic(path: &Path, text: &str, base: Option<&str>) -> Result<(), PersistError> {
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
        if let Some(base) = base {
            if !replace_if_unchanged(&tmp, &real, base)? {
                return Ok(false);
            }
        } else {
            std::fs::rename(&tmp, &real)?;
        }
        // The rename itself must survive a crash too.
        std::fs::File::open(dir)?.sync_all()?;
        Ok(true)
    })();
    if !matches!(result, Ok(true)) {
        // Best effort: the temporary file may not even exist.
        let _ = std::fs::remove_file(&tmp);
    }
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(PersistError::Changed(path.display().to_string())),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_saved_meanwhile_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        write_atomic(&path, "a = 2\n", Some("a = 1\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 2\n");
        // The operator saved "a = 3" after our change was planned on "a = 2".
        std::fs::write(&path, "a = 3\n").unwrap();
        let e = write_atomic(&path, "a = 4\n", Some("a = 2\n")).unwrap_err();
        assert!(matches!(e, PersistError::Changed(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 3\n");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
