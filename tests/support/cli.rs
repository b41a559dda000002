//! The `switchyard` binary run as a child process: one-shot commands and
//! `switchyard ctl` against a test proxy's admin listener, and a `ctl` left
//! running to be interrupted at a given line of its output.

use std::process::{Output, Stdio};
use std::time::Duration;

use super::{eventually, TestProxy};

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A finished child's exit code (-1 if killed by a signal), stdout and
/// stderr.
pub fn outcome(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `switchyard ARGS...` to its end (blocking: for plain `#[test]`s).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .output()
        .expect("run switchyard");
    outcome(&out)
}

/// Runs `switchyard ctl --admin <proxy> ARGS...`: exit code, stdout,
/// stderr. A token in the environment is not passed on.
pub async fn ctl(proxy: &TestProxy, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .arg("ctl")
        .arg("--admin")
        .arg(proxy.admin_url(""))
        .args(args)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        // Output as off a terminal: whole lines, whatever the test's shell says.
        .env_remove("COLUMNS")
        .output()
        .await
        .expect("run switchyard ctl");
    outcome(&out)
}

/// Runs `switchyard ctl ARGS...` with the admin address in
/// `SWITCHYARD_ADMIN`, the binary in `SWITCHYARD_BIN` (for the commands a
/// rolling update runs) and `env` on top.
pub async fn ctl_env(
    proxy: &TestProxy,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .arg("ctl")
        .args(args)
        .env("SWITCHYARD_ADMIN", format!("http://{}", proxy.admin))
        .env("SWITCHYARD_BIN", BIN)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run ctl");
    outcome(&out)
}

/// `switchyard ctl ARGS` left running (admin address in
/// `SWITCHYARD_ADMIN`), its stdout readable line by line; killed on drop.
pub fn spawn_ctl(proxy: &TestProxy, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .arg("ctl")
        .args(args)
        .env("SWITCHYARD_ADMIN", format!("http://{}", proxy.admin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ctl")
}

/// Reads `child`'s stdout until a line contains `needle`, waits for
/// `ready`, then sends SIGINT; answers the exit code, stdout and stderr.
pub async fn interrupt_at(
    mut child: tokio::process::Child,
    needle: &str,
    ready: impl Fn() -> bool,
) -> (i32, String, String) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(l) = lines.next_line().await.expect("ctl stdout") {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "never saw {needle:?} in:\n{seen}");
    eventually(Duration::from_secs(10), "ready to interrupt", || {
        std::future::ready(ready())
    })
    .await;
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("ctl ends after SIGINT")
        .expect("ctl output");
    while let Ok(Some(l)) = lines.next_line().await {
        seen.push_str(&l);
        seen.push('\n');
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), seen, stderr)
}
