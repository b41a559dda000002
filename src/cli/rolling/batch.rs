//! One batch of a rolling update going through the stages — drain and
//! wait for in-flight requests, run the commands, wait for health, undrain
//! — and recording each backend's outcome in the report. Each stage hands
//! the next the entries (indices into the report) that got through it.

use std::collections::HashMap;
use std::net::SocketAddr;

use http::Method;
use switchyard::api::{self, paths, Applied, Health, ProbeAnswer, Status};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::report::{Outcome, Report, Stage};
use super::{ask, exec, plan, target, ApiFailure, RollingUpdate};
use crate::cli::ctl::Ctl;

/// One batch and what it needs.
pub(super) struct Batch<'a> {
    pub ctl: &'a Ctl,
    pub args: &'a RollingUpdate,
    pub report: &'a mut Report,
    /// Cancelled by Ctrl-C or SIGTERM.
    pub stop: &'a CancellationToken,
    /// When the batch began (its backends' times count from here).
    pub started: Instant,
}

impl Batch<'_> {
    /// Runs batch `b` (0-based) of the report.
    pub async fn run(&mut self, b: usize) {
        let entries = self.report.batch(b);
        let addrs: Vec<SocketAddr> = entries
            .iter()
            .map(|&i| self.report.entries[i].addr)
            .collect();
        // Safe now? A backend may have turned unhealthy since the start.
        let check = match ask::<Status>(self.ctl, Method::GET, &api::path(paths::STATUS, &[])).await
        {
            Ok(s) => plan::pool_backends(&s, &self.args.pool)
                .map_err(|e| e.to_string())
                .and_then(|views| plan::batch_is_safe(&views, &addrs)),
            Err(e) => Err(format!("cannot read the status: {e}")),
        };
        if let Err(why) = check {
            for &i in &entries {
                self.report
                    .fail(i, Stage::Drain, why.clone(), vec![], false);
            }
            return;
        }
        let drained = self.drain(entries).await;
        let idle = self.wait_idle(drained).await;
        let replaced = self.exec(idle).await;
        let healthy = self.wait_healthy(replaced).await;
        self.undrain(healthy).await;
    }

    /// The path of entry `i`'s backend endpoint `pattern` (drain, probe...).
    fn path(&self, i: usize, pattern: &str) -> String {
        let addr = self.report.entries[i].addr.to_string();
        api::path(pattern, &[&self.args.pool, &addr])
    }

    async fn drain(&mut self, entries: Vec<usize>) -> Vec<usize> {
        let mut drained = Vec::new();
        for i in entries {
            match ask::<Applied>(self.ctl, Method::POST, &self.path(i, paths::DRAIN)).await {
                Ok(a) => {
                    self.report.line(
                        i,
                        Stage::Drain,
                        format_args!("drained (generation {})", a.generation),
                    );
                    drained.push(i);
                }
                // Whether it is drained is unknown only when unreachable.
                Err(e) => {
                    let unknown = matches!(e, ApiFailure::Unreachable(_));
                    self.report
                        .fail(i, Stage::Drain, e.to_string(), vec![], unknown);
                }
            }
        }
        drained
    }

    /// Polls the status until the in-flight count of each is zero.
    async fn wait_idle(&mut self, mut pending: Vec<usize>) -> Vec<usize> {
        let deadline = Instant::now() + self.args.drain_timeout;
        let mut idle = Vec::new();
        let mut shown: HashMap<usize, u64> = HashMap::new();
        let mut last_error = String::new();
        while !pending.is_empty() {
            match ask::<Status>(self.ctl, Method::GET, &api::path(paths::STATUS, &[])).await {
                Ok(s) => {
                    let views = match plan::pool_backends(&s, &self.args.pool) {
                        Ok(v) => v,
                        Err(e) => {
                            // The pool itself left the configuration.
                            for i in std::mem::take(&mut pending) {
                                self.report
                                    .fail(i, Stage::Drain, e.to_string(), vec![], false);
                            }
                            break;
                        }
                    };
                    for i in std::mem::take(&mut pending) {
                        let addr = self.report.entries[i].addr;
                        match views.iter().find(|v| v.addr == addr).map(|v| v.in_flight) {
                            None => self.report.fail(
                                i,
                                Stage::Drain,
                                "it left the pool's configuration".into(),
                                vec![],
                                false,
                            ),
                            Some(0) => {
                                let t = self.started.elapsed().as_secs_f64();
                                self.report.line(
                                    i,
                                    Stage::Drain,
                                    format_args!("no requests in flight ({t:.1} s)"),
                                );
                                idle.push(i);
                            }
                            Some(n) => {
                                if shown.insert(i, n) != Some(n) {
                                    self.report.line(
                                        i,
                                        Stage::Drain,
                                        format_args!("waiting for {n} in-flight request(s)"),
                                    );
                                }
                                pending.push(i);
                            }
                        }
                    }
                }
                Err(e) => show_once(
                    self.report,
                    &mut last_error,
                    format!("cannot read the status ({e}); retrying"),
                ),
            }
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for i in std::mem::take(&mut pending) {
                    let n = shown.get(&i).copied().unwrap_or(0);
                    let why = format!(
                        "{n} request(s) still in flight after {} (--drain-timeout)",
                        humantime::format_duration(self.args.drain_timeout)
                    );
                    self.report.fail(i, Stage::Drain, why, vec![], true);
                }
                break;
            }
            if self.pause().await {
                // Nothing was run yet: the instances are as they were.
                let all: Vec<usize> = idle.drain(..).chain(pending.drain(..)).collect();
                self.undrain_untouched(all).await;
                break;
            }
        }
        idle
    }

    /// After an interrupt: puts back backends whose command never ran.
    async fn undrain_untouched(&mut self, entries: Vec<usize>) {
        for i in entries {
            let back = ask::<Applied>(self.ctl, Method::POST, &self.path(i, paths::UNDRAIN))
                .await
                .is_ok();
            self.report.interrupted(i, Stage::Drain, !back);
        }
    }

    /// Runs the command of every entry at once; answers those that exited 0.
    async fn exec(&mut self, entries: Vec<usize>) -> Vec<usize> {
        if self.stop.is_cancelled() {
            // Interrupted before any command started: nothing was touched.
            self.undrain_untouched(entries).await;
            return vec![];
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut ids = HashMap::new();
        for &i in &entries {
            let t = target(self.args, self.report.entries[i].addr);
            let command = exec::expand(&self.args.exec, &t);
            self.report
                .line(i, Stage::Exec, format_args!("running: {command}"));
            let (timeout, stop) = (self.args.command_timeout, self.stop.clone());
            let task = tasks.spawn(exec::run(command, t, timeout, stop));
            ids.insert(task.id(), i);
        }
        let mut done = Vec::new();
        while let Some(joined) = tasks.join_next_with_id().await {
            // Every spawned task's id is in `ids`: the lookups cannot fail.
            let (i, result) = match joined {
                Ok((id, r)) => (ids[&id], r),
                Err(e) => {
                    let why = format!("the task running it failed: {e}");
                    self.report
                        .fail(ids[&e.id()], Stage::Exec, why, vec![], true);
                    continue;
                }
            };
            match result {
                Ok(took) => {
                    self.report.line(
                        i,
                        Stage::Exec,
                        format_args!("exit status 0 ({:.1} s)", took.as_secs_f64()),
                    );
                    done.push(i);
                }
                Err(f) if f.interrupted => self.report.interrupted(i, Stage::Exec, true),
                Err(f) => self.report.fail(i, Stage::Exec, f.reason, f.tail, true),
            }
        }
        done.sort_unstable();
        done
    }

    /// Probes each entry until a fresh probe passes and the proxy's own
    /// health checks call it healthy (and it is not ejected).
    async fn wait_healthy(&mut self, mut pending: Vec<usize>) -> Vec<usize> {
        let since = Instant::now();
        let deadline = since + self.args.health_timeout;
        let mut healthy = Vec::new();
        let mut last: HashMap<usize, String> = HashMap::new();
        while !pending.is_empty() {
            for i in std::mem::take(&mut pending) {
                let path = self.path(i, paths::PROBE);
                let waiting = match ask::<ProbeAnswer>(self.ctl, Method::POST, &path).await {
                    Ok(p) if p.ready() => {
                        let t = since.elapsed().as_secs_f64();
                        let how = p
                            .status
                            .map_or_else(|| "TCP connect".to_owned(), |s| format!("status {s}"));
                        self.report.line(
                            i,
                            Stage::Health,
                            format_args!(
                                "healthy: a fresh probe passed ({how}) {t:.1} s after the command"
                            ),
                        );
                        healthy.push(i);
                        continue;
                    }
                    Ok(p) if !p.ok => {
                        format!("probe failed: {}", p.failure.as_deref().unwrap_or("?"))
                    }
                    Ok(p) if p.health != Health::Healthy => format!(
                        "probe passed; waiting for the proxy's health checks (now {})",
                        p.health
                    ),
                    Ok(_) => {
                        "ejected by outlier detection; waiting for the ejection to end".to_owned()
                    }
                    Err(ApiFailure::Refused(404, detail)) => {
                        self.report.fail(
                            i,
                            Stage::Health,
                            format!("not found: {detail}"),
                            vec![],
                            true,
                        );
                        continue;
                    }
                    Err(e) => e.to_string(),
                };
                if last.get(&i) != Some(&waiting) {
                    self.report.line(i, Stage::Health, &waiting);
                    last.insert(i, waiting);
                }
                pending.push(i);
            }
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for i in std::mem::take(&mut pending) {
                    let why = format!(
                        "not healthy after {} (--health-timeout): {}",
                        humantime::format_duration(self.args.health_timeout),
                        last.remove(&i).unwrap_or_default()
                    );
                    self.report.fail(i, Stage::Health, why, vec![], true);
                }
                break;
            }
            if self.pause().await {
                for i in std::mem::take(&mut pending) {
                    self.report.interrupted(i, Stage::Health, true);
                }
                break;
            }
        }
        healthy
    }

    async fn undrain(&mut self, entries: Vec<usize>) {
        for i in entries {
            match ask::<Applied>(self.ctl, Method::POST, &self.path(i, paths::UNDRAIN)).await {
                Ok(a) => {
                    self.report.line(
                        i,
                        Stage::Undrain,
                        format_args!("back in service (generation {})", a.generation),
                    );
                    let seconds = self.started.elapsed().as_secs_f64();
                    self.report.entries[i].outcome = Outcome::Updated { seconds };
                }
                Err(e) => self
                    .report
                    .fail(i, Stage::Undrain, e.to_string(), vec![], true),
            }
        }
    }

    /// Sleeps one poll interval; true when interrupted meanwhile.
    async fn pause(&self) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(self.args.poll_interval) => self.stop.is_cancelled(),
            _ = self.stop.cancelled() => true,
        }
    }
}

/// Prints a transient problem once (not at every poll).
fn show_once(report: &Report, last: &mut String, text: String) {
    if *last != text {
        report.say(&text);
        *last = text;
    }
}
