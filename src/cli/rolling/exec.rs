//! The user's `--exec` command for one backend: placeholders filled in,
//! run by `sh -c` in a process group of its own with stdin closed, its
//! stdout and stderr streamed to our stderr line by line (prefixed with the
//! backend) while the last lines of its stderr are kept for the failure
//! report, under a deadline, and stopped when the update is interrupted.
//!
//! Its own process group keeps a terminal's Ctrl-C away from it (the ctl
//! decides what happens, see `rolling`) and lets a timed-out or interrupted
//! command be stopped with everything it started: SIGTERM to the group,
//! SIGKILL after `TERM_GRACE`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Lines of the command's stderr kept for the report.
const TAIL_LINES: usize = 10;
/// A kept line is cut to this many characters.
const TAIL_LINE_CHARS: usize = 300;
/// How long a stopped command's process group gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// After the command exits, how long its output may take to reach its end.
/// A daemon it started in the background may keep the pipes open forever,
/// so the readers are abandoned after this.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// The backend a command is run for.
#[derive(Debug, Clone)]
pub struct Target {
    pub pool: String,
    pub addr: SocketAddr,
}

impl Target {
    /// The placeholders and their values; also exported to the command's
    /// environment (where quoting is never a question).
    fn values(&self) -> [(&'static str, &'static str, String); 4] {
        [
            ("{addr}", "SWITCHYARD_BACKEND_ADDR", self.addr.to_string()),
            (
                "{host}",
                "SWITCHYARD_BACKEND_HOST",
                self.addr.ip().to_string(),
            ),
            (
                "{port}",
                "SWITCHYARD_BACKEND_PORT",
                self.addr.port().to_string(),
            ),
            ("{pool}", "SWITCHYARD_POOL", self.pool.clone()),
        ]
    }
}

/// `template` with `{addr}`, `{host}`, `{port}` and `{pool}` replaced. The
/// values need no shell quoting (an IP, a port, a pool name of letters,
/// digits, `-` and `_`), except an IPv6 `{addr}`'s brackets, which a shell
/// would take for a glob: quote it, or use `$SWITCHYARD_BACKEND_ADDR`.
/// Other braces (`${HOME}`) are left alone.
pub fn expand(template: &str, target: &Target) -> String {
    target
        .values()
        .iter()
        .fold(template.to_owned(), |s, (ph, _, v)| s.replace(ph, v))
}

/// Why a command did not succeed.
#[derive(Debug)]
pub struct Failure {
    pub reason: String,
    /// The last lines of its stderr.
    pub tail: Vec<String>,
    /// Stopped because the update was interrupted (not a failure of its own).
    pub interrupted: bool,
}

enum End {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Interrupted,
}

/// Runs `command` (already expanded) for `target`; answers how long it took.
pub async fn run(
    command: String,
    target: Target,
    timeout: Duration,
    stop: CancellationToken,
) -> Result<Duration, Failure> {
    let fail = |reason: String, tail: Vec<String>, interrupted: bool| Failure {
        reason,
        tail,
        interrupted,
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&command)
        .envs(target.values().map(|(_, k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start sh: {e}"), vec![], false))?;
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let label = target.addr.to_string();
    let readers: Vec<JoinHandle<()>> = [
        child
            .stdout
            .take()
            .map(|o| tokio::spawn(forward(o, label.clone(), None))),
        child
            .stderr
            .take()
            .map(|e| tokio::spawn(forward(e, label, Some(tail.clone())))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let end = tokio::select! {
        s = child.wait() => End::Exited(s),
        _ = tokio::time::sleep(timeout) => End::TimedOut,
        _ = stop.cancelled() => End::Interrupted,
    };
    if !matches!(end, End::Exited(_)) {
        stop_group(&mut child).await;
    }
    finish_output(readers).await;
    // The readers are done or aborted: nobody else holds the lock.
    let tail: Vec<String> = tail
        .lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    match end {
        End::Exited(Ok(s)) if s.success() => Ok(started.elapsed()),
        End::Exited(Ok(s)) => Err(fail(s.to_string(), tail, false)),
        End::Exited(Err(e)) => Err(fail(format!("cannot wait for it: {e}"), tail, false)),
        End::TimedOut => Err(fail(
            format!(
                "still running after {} (--command-timeout); it was stopped",
                humantime::format_duration(timeout)
            ),
            tail,
            false,
        )),
        End::Interrupted => Err(fail("interrupted; it was stopped".into(), tail, true)),
    }
}

/// Copies lines of `r` to our stderr, keeping the last ones in `tail`.
async fn forward<R: AsyncRead + Unpin>(
    r: R,
    label: String,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                eprintln!("    {label} | (cannot read the command's output: {e})");
                return;
            }
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        eprintln!("    {label} | {line}");
        if let Some(tail) = &tail {
            // Held for a push and a pop; `run` locks it once, after this
            // task has ended. A poisoned lock only loses the report's tail.
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line.chars().take(TAIL_LINE_CHARS).collect());
            }
        }
    }
}

/// Waits a little for the output to end, then abandons the readers.
async fn finish_output(readers: Vec<JoinHandle<()>>) {
    let aborts: Vec<_> = readers.iter().map(JoinHandle::abort_handle).collect();
    let all = async {
        for r in readers {
            // A reader that panicked has nothing more to give.
            let _ = r.await;
        }
    };
    if tokio::time::timeout(OUTPUT_GRACE, all).await.is_err() {
        aborts.iter().for_each(tokio::task::AbortHandle::abort);
    }
}

/// SIGTERM to the command's process group, SIGKILL after `TERM_GRACE`.
async fn stop_group(child: &mut Child) {
    #[cfg(unix)]
    {
        use rustix::process::{kill_process_group, Pid, Signal};
        let Some(pgid) = child.id().and_then(|p| Pid::from_raw(p as i32)) else {
            return; // already reaped
        };
        // ESRCH (the group is empty) is the only expected error.
        if let Err(e) = kill_process_group(pgid, Signal::TERM) {
            tracing::debug!(error = %e, "SIGTERM to the command's process group");
        }
        // Whatever the shell did, the rest of its group gets SIGKILL after
        // the grace, so nothing it started outlives a stopped command.
        // Ok or Err: either way it is time for SIGKILL.
        let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
        if let Err(e) = kill_process_group(pgid, Signal::KILL) {
            tracing::debug!(error = %e, "SIGKILL to the command's process group");
        }
    }
    // Kills the shell if still there (not on Unix: the only way) and reaps it.
    if let Err(e) = child.kill().await {
        tracing::debug!(error = %e, "killing the command");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            pool: "web".into(),
            addr: "127.0.0.1:8001".parse().unwrap(),
        }
    }

    #[test]
    fn placeholders_are_replaced_and_other_braces_kept() {
        assert_eq!(
            expand(
                "deploy {pool} {host} {port} {addr} ${HOME} {other}",
                &target()
            ),
            "deploy web 127.0.0.1 8001 127.0.0.1:8001 ${HOME} {other}"
        );
        let v6 = Target {
            pool: "p".into(),
            addr: "[::1]:9".parse().unwrap(),
        };
        assert_eq!(expand("{host} {port} {addr}", &v6), "::1 9 [::1]:9");
    }

    #[tokio::test]
    async fn success_failure_and_timeout() {
        let stop = CancellationToken::new();
        let ok = run(
            "test \"$SWITCHYARD_BACKEND_PORT\" = 8001".into(),
            target(),
            Duration::from_secs(10),
            stop.clone(),
        )
        .await;
        assert!(ok.is_ok(), "{ok:?}");
        let f = run(
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i >&2; done; exit 3".into(),
            target(),
            Duration::from_secs(10),
            stop.clone(),
        )
        .await
        .unwrap_err();
        assert!(f.reason.contains('3') && !f.interrupted, "{f:?}");
        assert_eq!(f.tail.len(), TAIL_LINES);
        assert_eq!(f.tail.last().map(String::as_str), Some("line 12"));
        // The background sleep keeps the pipes open: the run must not wait for it.
        let t = run(
            "sleep 30 & sleep 30".into(),
            target(),
            Duration::from_millis(200),
            stop.clone(),
        )
        .await
        .unwrap_err();
        assert!(t.reason.contains("still running"), "{t:?}");
        stop.cancel();
        let i = run("sleep 30".into(), target(), Duration::from_secs(30), stop)
            .await
            .unwrap_err();
        assert!(i.interrupted);
    }
}
