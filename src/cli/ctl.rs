//! `switchyard ctl`: the command-line client of the admin API.
//!
//! Exit codes: 0 success; 1 the API refused the request (its error is
//! printed); 2 usage; 69 the admin listener could not be reached.

mod client;
mod print;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use http::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchyard::api::{
    self, paths, Applied, FlipAnswer, FlipRequest, HistoryQuery, HumanDuration, Insufficient,
    MaintenanceRequest, Mutation, RolloutAccepted, RolloutCommand, Split, StandbyRequest,
    VerifyRequest,
};

pub(super) use client::{call, get, Failure};

pub(super) const EXIT_REFUSED: u8 = 1;
pub(super) const EXIT_UNREACHABLE: u8 = 69;

#[derive(Args)]
pub struct Ctl {
    /// Admin API base URL, or HOST:PORT (http:// is assumed).
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN",
        default_value = "http://127.0.0.1:9901",
        value_parser = parse_admin
    )]
    pub(super) admin: String,
    /// Bearer token (read from the environment; never pass it on the command line in scripts).
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub(super) token: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub(super) json: bool,
    /// Print every field, however wide (default: fit the terminal, or
    /// COLUMNS, dropping or shortening fields by priority).
    #[arg(long, global = true)]
    pub(super) wide: bool,
    /// Only apply if this generation is still in force (optimistic concurrency).
    #[arg(long, global = true)]
    pub(super) if_match: Option<u64>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Routes, splits, pools and backends with their health.
    Status,
    /// Set a route's weights: `split api blue=75 canary=25`.
    Split {
        route: String,
        #[arg(required = true, value_parser = parse_weight)]
        weights: Vec<(String, u32)>,
    },
    /// Send all of a route's traffic to one pool; with --verify, watch the
    /// pool and switch back to the previous split if it fails.
    Flip {
        route: String,
        pool: String,
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// Restore the route's previous split.
    Rollback { route: String },
    /// Set the pool that takes a route's traffic while no pool of its
    /// split has an available backend (`none`: no standby). A flip keeps
    /// the pool it replaced as the standby.
    Standby {
        route: String,
        /// A pool without weight in the route's split, or `none`.
        pool: String,
    },
    /// Put a route in maintenance: it answers its `maintenance_response`
    /// (503 with Retry-After unless configured) instead of forwarding.
    Maintenance {
        route: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Take a backend out of rotation; in-flight requests finish.
    Drain { pool: String, addr: SocketAddr },
    /// Put a drained backend back into rotation.
    Undrain { pool: String, addr: SocketAddr },
    /// Deployment events, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Replace a pool's backends a few at a time: drain, run CMD, wait for health, undrain.
    RollingUpdate(super::rolling::RollingUpdate),
    /// Re-read the configuration file now.
    Reload,
    /// Drive the canary engine of a route with `[routes.rollout]`.
    Rollout {
        #[arg(value_enum)]
        action: RolloutAction,
        route: String,
    },
    /// Shadow traffic: `shadow diff ROUTE` shows the route's shadow
    /// windows and its latest mismatch samples (secrets redacted).
    Shadow {
        #[command(subcommand)]
        action: ShadowAction,
    },
}

#[derive(Subcommand)]
enum ShadowAction {
    /// Copies, comparisons, mismatches by kind, mirror errors, dropped
    /// copies, p99 of both sides, then the latest mismatched pairs.
    Diff {
        route: String,
        /// Seconds summed (1 to 120).
        #[arg(long, default_value_t = api::ShadowQuery::DEFAULT.seconds)]
        seconds: u64,
        /// Samples shown per pool (0 to 32).
        #[arg(long, default_value_t = api::ShadowQuery::DEFAULT.samples)]
        samples: usize,
    },
}

#[derive(Args)]
struct VerifyArgs {
    /// Watch the pool for this long after the flip (e.g. 30s, 2m).
    #[arg(long, value_name = "WINDOW", value_parser = humantime::parse_duration)]
    verify: Option<std::time::Duration>,
    /// Largest error rate (5xx and proxy errors / requests), e.g. 0.01.
    #[arg(long, requires = "verify")]
    max_error_rate: Option<f64>,
    /// Largest p99 latency, e.g. 500ms.
    #[arg(long, requires = "verify", value_parser = humantime::parse_duration)]
    max_p99: Option<std::time::Duration>,
    /// Requests the pool must see before it can be judged.
    #[arg(long, requires = "verify")]
    min_requests: Option<u64>,
    /// Switch back too when the window saw fewer than --min-requests
    /// (the default keeps the flip).
    #[arg(long, requires = "verify")]
    revert_if_insufficient: bool,
    /// Wait for the outcome: exit 0 if the flip stays, 1 if it was undone.
    #[arg(long, requires = "verify")]
    wait: bool,
}

impl VerifyArgs {
    /// The API's `verify` request.
    fn request(&self) -> Option<VerifyRequest> {
        Some(VerifyRequest {
            window: HumanDuration(self.verify?),
            min_requests: self.min_requests,
            max_error_rate: self.max_error_rate,
            max_p99_latency: self.max_p99.map(HumanDuration),
            on_insufficient_traffic: self.revert_if_insufficient.then_some(Insufficient::Revert),
        })
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RolloutAction {
    /// Begin at the first step.
    Start,
    /// Stop judging; the weights stay.
    Pause,
    /// Judge again; the current step starts over.
    Resume,
    /// Skip ahead: 100% to the canary pool.
    Promote,
    /// Roll back: 100% to the stable pool.
    Abort,
    /// Phase, step, weights and the last judgement.
    Status,
    /// Follow the rollout live; exit 0 on promotion, 1 on rollback.
    Watch,
}

impl RolloutAction {
    /// The engine command it sends (`None`: it only reads the status).
    fn command(self) -> Option<RolloutCommand> {
        match self {
            RolloutAction::Start => Some(RolloutCommand::Start),
            RolloutAction::Pause => Some(RolloutCommand::Pause),
            RolloutAction::Resume => Some(RolloutCommand::Resume),
            RolloutAction::Promote => Some(RolloutCommand::Promote),
            RolloutAction::Abort => Some(RolloutCommand::Abort),
            RolloutAction::Status | RolloutAction::Watch => None,
        }
    }
}

/// `http://host:port` as given, or `host:port` with `http://` in front:
/// `--admin 127.0.0.1:9911` is what people type.
fn parse_admin(s: &str) -> Result<String, String> {
    let url = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    match url.parse::<http::Uri>() {
        Ok(u) if u.host().is_some() && matches!(u.scheme_str(), Some("http")) => Ok(url),
        Ok(u) if u.host().is_some() => Err(format!(
            "{s:?}: the admin API speaks http:// (got {}://)",
            u.scheme_str().unwrap_or("")
        )),
        _ => Err(format!(
            "{s:?} is not an admin address: give HOST:PORT (127.0.0.1:9901) or a URL (http://127.0.0.1:9901)"
        )),
    }
}

fn parse_weight(s: &str) -> Result<(String, u32), String> {
    let (pool, w) = s
        .split_once('=')
        .ok_or_else(|| format!("expected POOL=WEIGHT, got {s:?}"))?;
    let w = w
        .parse()
        .map_err(|_| format!("weight of {pool:?} must be a whole number, got {w:?}"))?;
    Ok((pool.to_owned(), w))
}

pub fn main(ctl: Ctl) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchyard ctl: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(ctl))
}

async fn run(ctl: Ctl) -> ExitCode {
    let ctl = &ctl;
    match &ctl.command {
        CtlCommand::Status => {
            let path = api::path(paths::STATUS, &[]);
            show(ctl, Method::GET, &path, None, print::status).await
        }
        CtlCommand::History { limit } => {
            let path = HistoryQuery { limit: *limit }.path();
            let width = super::fit::columns(ctl.wide);
            show(ctl, Method::GET, &path, None, |h| print::history(h, width)).await
        }
        CtlCommand::Split { route, weights } => {
            let split = Split(weights.clone());
            let m = Mutation::Split {
                route: route.clone(),
                split,
            };
            mutate(ctl, m, |a| print::route_change(route, a)).await
        }
        CtlCommand::Rollback { route } => {
            let m = Mutation::Rollback {
                route: route.clone(),
            };
            mutate(ctl, m, |a| print::route_change(route, a)).await
        }
        CtlCommand::Standby { route, pool } => {
            let m = Mutation::Standby {
                route: route.clone(),
                standby: StandbyRequest {
                    pool: (pool != "none").then(|| pool.clone()),
                },
            };
            mutate(ctl, m, |a| print::route_change(route, a)).await
        }
        CtlCommand::Maintenance { route, state } => {
            let m = Mutation::Maintenance {
                route: route.clone(),
                maintenance: MaintenanceRequest { on: state == "on" },
            };
            let done = |a: &Applied| {
                let what = match state.as_str() {
                    "on" => "in maintenance: it answers its maintenance_response",
                    _ => "out of maintenance: forwarding again",
                };
                println!("route {route}: {what}{}", print::suffix(a));
            };
            mutate(ctl, m, done).await
        }
        CtlCommand::Drain { pool, addr } => {
            let m = Mutation::Drain {
                pool: pool.clone(),
                addr: *addr,
            };
            let done = |a: &Applied| {
                println!("backend {pool}/{addr} drained{}", print::suffix(a));
                if let Some(last) = &a.last_backend {
                    print::last_backend(last);
                }
            };
            mutate(ctl, m, done).await
        }
        CtlCommand::Undrain { pool, addr } => {
            let m = Mutation::Undrain {
                pool: pool.clone(),
                addr: *addr,
            };
            let done = |a: &Applied| {
                println!("backend {pool}/{addr} back in rotation{}", print::suffix(a))
            };
            mutate(ctl, m, done).await
        }
        CtlCommand::Reload => {
            mutate(ctl, Mutation::Reload, |a| {
                let what = if a.changed { "reloaded" } else { "unchanged" };
                println!("{what} (generation {})", a.generation);
            })
            .await
        }
        CtlCommand::Flip {
            route,
            pool,
            verify,
        } => flip(ctl, route, pool, verify).await,
        CtlCommand::RollingUpdate(args) => super::rolling::run(ctl, args).await,
        CtlCommand::Rollout { action, route } => rollout(ctl, *action, route).await,
        CtlCommand::Shadow {
            action:
                ShadowAction::Diff {
                    route,
                    seconds,
                    samples,
                },
        } => {
            let query = api::ShadowQuery {
                seconds: *seconds,
                samples: *samples,
            };
            let width = super::fit::columns(ctl.wide);
            let path = query.path(route);
            show(ctl, Method::GET, &path, None, |a| print::shadow(a, width)).await
        }
    }
}

/// Prints a failure the way every ctl command does, and its exit code.
pub(super) fn refused(ctl: &Ctl, f: &Failure) -> ExitCode {
    match f {
        Failure::Unreachable(e) => {
            eprintln!(
                "switchyard ctl: cannot reach the admin API at {}: {e:#}",
                ctl.admin
            );
            ExitCode::from(EXIT_UNREACHABLE)
        }
        f => {
            eprintln!("switchyard ctl: {f}");
            if f.status() == Some(401) {
                eprintln!("{}", token_hint(ctl.token.is_some()));
            }
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

/// What to do about a 401: a missing token and a wrong one are different
/// mistakes, and both are fixed with the same variable.
fn token_hint(sent: bool) -> &'static str {
    if sent {
        "the token was refused: SWITCHYARD_ADMIN_TOKEN (or --token) must hold the proxy's \
         token (the file of [admin] token_file, or the variable its token_env names)"
    } else {
        "this admin API needs a token and none was sent: set SWITCHYARD_ADMIN_TOKEN to the \
         proxy's token (the file of [admin] token_file, or the variable its token_env names)"
    }
}

/// Sends a request and prints its answer: as JSON with `--json`, else
/// decoded into `T` and printed by `print`.
async fn show<T: DeserializeOwned>(
    ctl: &Ctl,
    method: Method,
    path: &str,
    body: Option<Value>,
    print: impl FnOnce(&T),
) -> ExitCode {
    let reply = match call(ctl, method, path, body).await {
        Ok(r) => r,
        Err(f) => return refused(ctl, &f),
    };
    if ctl.json {
        println!("{}", reply.pretty());
        return ExitCode::SUCCESS;
    }
    match reply.decode::<T>() {
        Ok(answer) => {
            print(&answer);
            ExitCode::SUCCESS
        }
        Err(f) => refused(ctl, &f),
    }
}

/// Sends a mutation; its answer is `Applied`.
async fn mutate(ctl: &Ctl, m: Mutation, print: impl FnOnce(&Applied)) -> ExitCode {
    let (method, path, body) = m.request();
    show(ctl, method, &path, body, print).await
}

async fn flip(ctl: &Ctl, route: &str, pool: &str, verify: &VerifyArgs) -> ExitCode {
    let req = FlipRequest {
        to: pool.to_owned(),
        verify: verify.request(),
    };
    let path = api::path(paths::FLIP, &[route]);
    let reply = match call(ctl, Method::POST, &path, serde_json::to_value(&req).ok()).await {
        Ok(r) => r,
        Err(f) => return refused(ctl, &f),
    };
    let answer: FlipAnswer = match reply.decode() {
        Ok(a) => a,
        Err(f) => return refused(ctl, &f),
    };
    if let (true, Some(_)) = (verify.wait, &answer.verification) {
        if !ctl.json {
            print::route_change(route, &answer.applied);
        }
        return super::watch::flip(ctl, route, answer.applied.generation).await;
    }
    if ctl.json {
        println!("{}", reply.pretty());
        return ExitCode::SUCCESS;
    }
    print::route_change(route, &answer.applied);
    if let Some(v) = &answer.verification {
        println!(
            "verifying {} for {}s (GET /api/v1/routes/{route}/flip shows the outcome; --wait waits for it)",
            v.to,
            v.window_ms.div_ceil(1000),
        );
    }
    ExitCode::SUCCESS
}

async fn rollout(ctl: &Ctl, action: RolloutAction, route: &str) -> ExitCode {
    let Some(command) = action.command() else {
        if matches!(action, RolloutAction::Watch) {
            return super::watch::rollout(ctl, route).await;
        }
        let path = api::path(paths::ROLLOUT, &[route]);
        return show(ctl, Method::GET, &path, None, print::rollout).await;
    };
    let path = api::path(command.pattern(), &[route]);
    show(ctl, Method::POST, &path, None, |a: &RolloutAccepted| {
        println!("route {route}: rollout {} accepted", a.accepted);
        if let Some(r) = &a.rollout {
            print::rollout(r);
        }
    })
    .await
}
