//! Real uvicorn processes serving FastAPI apps: `examples/fastapi` (the
//! reference service, by colour) or any app module in a directory, with
//! uvicorn's own flags (`--root-path`, ...). The Python environment
//! (pinned FastAPI and uvicorn) is `support::python`'s.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::python::python;

/// A uvicorn process.
pub struct Uvicorn {
    child: Child,
    pub port: u16,
    pub color: &'static str,
}

impl Uvicorn {
    /// Starts `examples/fastapi` as `color` on `port` (0: any) and waits
    /// until it listens.
    pub fn start(color: &'static str, port: u16) -> Uvicorn {
        let app_dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fastapi"));
        let env = [("APP_COLOR", color), ("APP_VERSION", "1.0.0")];
        let mut u = Self::start_app(app_dir, "app:app", port, &[], &env);
        u.color = color;
        u
    }

    /// Starts `app` (`module:attribute`) from `dir` with extra uvicorn
    /// `args` and environment, and waits until it listens.
    pub fn start_app(
        dir: &Path,
        app: &str,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Uvicorn {
        let mut child = Command::new(python())
            .args(["-m", "uvicorn", app, "--host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--log-level", "info", "--no-access-log"])
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start uvicorn");
        // uvicorn prints "Uvicorn running on http://127.0.0.1:PORT" once bound.
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("uvicorn exited before listening")
                .expect("read");
            if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("port");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Uvicorn {
            child,
            port,
            color: "",
        }
    }

    /// The process id (to tell a restarted instance from the old one).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        // SIGKILL: the crash case, no graceful close of its connections.
        // An error means it has already exited, which is what was wanted.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Uvicorn {
    fn drop(&mut self) {
        self.kill();
    }
}
