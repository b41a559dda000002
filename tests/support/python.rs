//! The Python with examples/fastapi's pinned FastAPI and uvicorn:
//! `SWITCHYARD_TEST_PYTHON` (set by `scripts/test`), else `target/pyenv`,
//! prepared by `scripts/pyenv` when a test runs alone.

use std::path::PathBuf;
use std::process::Command;

pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SWITCHYARD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let py = root.join("target/pyenv/bin/python");
    if !py.exists() {
        let status = Command::new(root.join("scripts/pyenv"))
            .status()
            .expect("run scripts/pyenv");
        assert!(
            status.success(),
            "scripts/pyenv failed: cannot prepare FastAPI and uvicorn"
        );
    }
    py
}
