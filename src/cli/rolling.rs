//! `switchyard ctl rolling-update POOL --exec CMD`: replaces the backends of
//! a pool a batch at a time through the admin API. For each batch of
//! `--max-unavailable` backends: drain them and wait until their in-flight
//! requests reach zero, run the command for each (together), wait until a
//! probe made after the command passes *and* the proxy's own health checks
//! call the backend healthy (`POST /api/v1/backends/{pool}/{addr}/probe`,
//! see `admin::probe` in the library), undrain. The first failure ends the
//! update after its batch: backends not reached stay in service, untouched;
//! a backend that failed after its drain stays drained (its state is
//! unknown) and the report says how to undrain it.
//!
//! Ctrl-C (or SIGTERM) stops at once: while waiting for in-flight requests
//! the batch is undrained (its instances were not touched); a running
//! command's process group is stopped (SIGTERM, SIGKILL after 5 s) and its
//! backend left drained, like one whose health is being awaited. A second
//! signal exits at once. Exit codes: 0 done, 1 refused or failed, 2 usage,
//! 69 admin API unreachable at the start, 130 interrupted.
//!
//! This file: arguments, the start (plan, refusals, dry run), signals and
//! the admin API calls; `rolling/batch.rs`: the stages of a batch;
//! `rolling/plan.rs`, `rolling/report.rs`, `rolling/exec.rs`: the plan,
//! the report, the command.

mod batch;
mod exec;
mod plan;
mod report;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use http::Method;
use serde::de::DeserializeOwned;
use switchyard::api::{self, paths, Status};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ctl::{get, Ctl, Failure};
use report::Report;

const EXIT_REFUSED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNREACHABLE: u8 = 69;

#[derive(Args)]
pub struct RollingUpdate {
    /// The pool whose backends are replaced, one batch after another.
    pool: String,
    /// Replaces one instance; run by `sh -c` with {addr}, {host}, {port} and
    /// {pool} filled in (also in $SWITCHYARD_BACKEND_ADDR, _HOST, _PORT,
    /// $SWITCHYARD_POOL). Exit 0 only once the old instance has stopped
    /// serving; the new one may still be starting.
    #[arg(long, value_name = "CMD")]
    exec: String,
    /// Backends out of rotation at the same time.
    #[arg(long, value_name = "N", default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..))]
    max_unavailable: u16,
    /// Longest wait for a drained backend's in-flight requests to finish.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Longest run of the command for one backend (then its process group is stopped).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    command_timeout: Duration,
    /// Longest wait, after the command, for the backend to pass its health checks.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    health_timeout: Duration,
    /// How often the status is read and the probe repeated while waiting.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Print the plan (batches and commands) and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// An admin API call that did not succeed.
enum ApiFailure {
    Unreachable(anyhow::Error),
    Refused(u16, String),
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiFailure::Unreachable(e) => write!(f, "admin API unreachable: {e:#}"),
            ApiFailure::Refused(status, detail) => {
                write!(f, "admin API answered {status}: {detail}")
            }
        }
    }
}

/// One admin API call, decoded into the endpoint's answer.
async fn ask<T: DeserializeOwned>(ctl: &Ctl, method: Method, path: &str) -> Result<T, ApiFailure> {
    get(ctl, method, path, None).await.map_err(|f| match f {
        Failure::Unreachable(e) => ApiFailure::Unreachable(e),
        f => ApiFailure::Refused(f.status().unwrap_or(0), f.detail()),
    })
}

pub async fn run(ctl: &Ctl, args: &RollingUpdate) -> ExitCode {
    if ctl.if_match.is_some() {
        eprintln!("switchyard ctl: --if-match does not apply to rolling-update (it makes a change per backend)");
        return ExitCode::from(EXIT_USAGE);
    }
    let status = match ask::<Status>(ctl, Method::GET, &api::path(paths::STATUS, &[])).await {
        Ok(s) => s,
        Err(e @ ApiFailure::Unreachable(_)) => {
            eprintln!("switchyard ctl: {e} ({})", ctl.admin);
            return ExitCode::from(EXIT_UNREACHABLE);
        }
        Err(e) => {
            eprintln!("switchyard ctl: {e}");
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let n = usize::from(args.max_unavailable);
    let plan = match plan::pool_backends(&status, &args.pool)
        .and_then(|b| plan::plan(&args.pool, &b, n))
    {
        Ok(p) => p,
        Err(why) => {
            eprintln!("switchyard ctl: rolling update refused: {why}");
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let mut report = Report::new(&args.pool, &plan, n, ctl.json);
    if args.dry_run {
        report.print_plan(|addr| exec::expand(&args.exec, &target(args, addr)));
        return ExitCode::SUCCESS;
    }
    let stop = on_signal();
    report.say(format_args!(
        "rolling update of pool {}: {} backend(s) in {} batch(es), {n} at a time",
        args.pool,
        plan.batches.iter().map(Vec::len).sum::<usize>(),
        plan.batches.len(),
    ));
    for b in 0..plan.batches.len() {
        if stop.is_cancelled() {
            // Between batches: the batches left are untouched.
            report.interrupted_between_batches();
            break;
        }
        let mut batch = batch::Batch {
            ctl,
            args,
            report: &mut report,
            stop: &stop,
            started: Instant::now(),
        };
        batch.run(b).await;
        if report.stopped() {
            break;
        }
    }
    report.finish()
}

fn target(args: &RollingUpdate, addr: SocketAddr) -> exec::Target {
    exec::Target {
        pool: args.pool.clone(),
        addr,
    }
}

/// Cancelled by the first SIGINT or SIGTERM; the second exits at once.
fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if !signal().await {
            return;
        }
        eprintln!("switchyard ctl: interrupted; stopping the rolling update (signal again to exit at once)");
        t.cancel();
        if signal().await {
            std::process::exit(i32::from(report::EXIT_INTERRUPTED));
        }
    });
    token
}

/// Waits for SIGINT or SIGTERM; false when the handlers cannot be set up.
async fn signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            eprintln!(
                "switchyard ctl: cannot handle signals; Ctrl-C will kill the update mid-stage"
            );
            return false;
        };
        tokio::select! {
            _ = int.recv() => true,
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}
