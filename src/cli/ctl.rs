//! `switchyard ctl`: the command-line client of the admin API.
//!
//! Exit codes: 0 success; 1 the API refused the request (its error is
//! printed); 2 usage; 69 the admin listener could not be reached.

use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

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
    token: Option<String>,
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
        weights: Vec<(String, u64)>,
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
    /// Take a backend out of rotation; in-flight requests finish.
    Drain { pool: String, addr: String },
    /// Put a drained backend back into rotation.
    Undrain { pool: String, addr: String },
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
    /// The API's `verify` object.
    fn body(&self) -> Option<Value> {
        let window = self.verify?;
        let fmt = |d: std::time::Duration| humantime::format_duration(d).to_string();
        let mut v = serde_json::json!({ "window": fmt(window) });
        if let Some(r) = self.max_error_rate {
            v["max_error_rate"] = r.into();
        }
        if let Some(d) = self.max_p99 {
            v["max_p99_latency"] = fmt(d).into();
        }
        if let Some(n) = self.min_requests {
            v["min_requests"] = n.into();
        }
        if self.revert_if_insufficient {
            v["on_insufficient_traffic"] = "revert".into();
        }
        Some(v)
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
    fn name(self) -> &'static str {
        match self {
            RolloutAction::Start => "start",
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Promote => "promote",
            RolloutAction::Abort => "abort",
            RolloutAction::Status => "status",
            RolloutAction::Watch => "watch",
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

fn parse_weight(s: &str) -> Result<(String, u64), String> {
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
    if let CtlCommand::Rollout {
        action: RolloutAction::Watch,
        route,
    } = &ctl.command
    {
        return super::watch::rollout(&ctl, route).await;
    }
    let (method, path, body) = match &ctl.command {
        CtlCommand::Status => (Method::GET, "/api/v1/status".to_owned(), None),
        CtlCommand::Split { route, weights } => {
            let obj: serde_json::Map<String, Value> = weights
                .iter()
                .map(|(p, w)| (p.clone(), Value::from(*w)))
                .collect();
            (
                Method::PUT,
                format!("/api/v1/routes/{route}/split"),
                Some(Value::Object(obj)),
            )
        }
        CtlCommand::Flip {
            route,
            pool,
            verify,
        } => {
            let mut body = serde_json::json!({ "to": pool });
            if let Some(v) = verify.body() {
                body["verify"] = v;
            }
            (
                Method::POST,
                format!("/api/v1/routes/{route}/flip"),
                Some(body),
            )
        }
        CtlCommand::Rollback { route } => (
            Method::POST,
            format!("/api/v1/routes/{route}/rollback"),
            None,
        ),
        CtlCommand::Drain { pool, addr } => (
            Method::POST,
            format!("/api/v1/backends/{pool}/{addr}/drain"),
            None,
        ),
        CtlCommand::Undrain { pool, addr } => (
            Method::POST,
            format!("/api/v1/backends/{pool}/{addr}/undrain"),
            None,
        ),
        CtlCommand::History { limit } => {
            (Method::GET, format!("/api/v1/history?limit={limit}"), None)
        }
        CtlCommand::RollingUpdate(args) => return super::rolling::run(&ctl, args).await,
        CtlCommand::Reload => (Method::POST, "/api/v1/reload".to_owned(), None),
        CtlCommand::Rollout {
            action: RolloutAction::Status,
            route,
        } => (Method::GET, format!("/api/v1/routes/{route}/rollout"), None),
        CtlCommand::Rollout { action, route } => (
            Method::POST,
            format!("/api/v1/routes/{route}/rollout/{}", action.name()),
            None,
        ),
    };
    let (status, answer) = match call(&ctl, method, &path, body).await {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!(
                "switchyard ctl: cannot reach the admin API at {}: {e:#}",
                ctl.admin
            );
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    if !status.is_success() {
        let error = answer["error"].as_str().unwrap_or("error");
        let detail = answer["detail"]
            .as_str()
            .map_or_else(|| answer.to_string(), str::to_owned);
        eprintln!("switchyard ctl: {} {error}: {detail}", status.as_u16());
        if status == StatusCode::UNAUTHORIZED {
            eprintln!("{}", token_hint(ctl.token.is_some()));
        }
        return ExitCode::from(EXIT_REFUSED);
    }
    if let CtlCommand::Flip {
        route,
        verify: VerifyArgs { wait: true, .. },
        ..
    } = &ctl.command
    {
        if answer["verification"].is_object() {
            if !ctl.json {
                println!(
                    "route {route}: {}{}",
                    split_text(&answer["split"]),
                    suffix(&answer)
                );
            }
            let generation = answer["generation"].as_u64().unwrap_or(0);
            return super::watch::flip(&ctl, route, generation).await;
        }
    }
    if ctl.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    match &ctl.command {
        CtlCommand::Status => print_status(&answer),
        CtlCommand::History { .. } => print_history(&answer, super::fit::columns(ctl.wide)),
        CtlCommand::RollingUpdate(_) => unreachable!("rolling-update returns above"),
        CtlCommand::Drain { pool, addr } | CtlCommand::Undrain { pool, addr } => {
            let what = if matches!(ctl.command, CtlCommand::Drain { .. }) {
                "drained"
            } else {
                "back in rotation"
            };
            println!("backend {pool}/{addr} {what}{}", suffix(&answer));
        }
        CtlCommand::Reload => println!(
            "{} (generation {})",
            if answer["changed"].as_bool() == Some(true) {
                "reloaded"
            } else {
                "unchanged"
            },
            answer["generation"]
        ),
        CtlCommand::Rollout { action, route } => {
            let r = match action {
                RolloutAction::Status | RolloutAction::Watch => &answer,
                _ => &answer["rollout"],
            };
            if !matches!(action, RolloutAction::Status) {
                println!("route {route}: rollout {} accepted", action.name());
            }
            print_rollout(r);
        }
        CtlCommand::Split { route, .. }
        | CtlCommand::Flip { route, .. }
        | CtlCommand::Rollback { route } => {
            println!(
                "route {route}: {}{}",
                split_text(&answer["split"]),
                suffix(&answer)
            );
            let v = &answer["verification"];
            if v.is_object() {
                println!(
                    "verifying {} for {}s (GET /api/v1/routes/{route}/flip shows the outcome; --wait waits for it)",
                    v["to"].as_str().unwrap_or("?"),
                    v["window_ms"].as_u64().unwrap_or(0).div_ceil(1000),
                );
            }
        }
    }
    ExitCode::SUCCESS
}

pub(super) async fn call(
    ctl: &Ctl,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}{path}", ctl.admin.trim_end_matches('/'));
    let mut req = Request::builder().method(method).uri(&url);
    if let Some(t) = &ctl.token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(g) = ctl.if_match {
        req = req.header(http::header::IF_MATCH, g.to_string());
    }
    let body = match body {
        Some(v) => {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let req = req.body(body).with_context(|| format!("bad URL {url}"))?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .context("no answer within 30 s")??;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, value))
}

fn suffix(a: &Value) -> String {
    let persisted = match a["persisted"].as_bool() {
        Some(true) => ", written to the file",
        Some(false) => ", NOT written to the file (in memory only)",
        None => "",
    };
    let changed = if a["changed"].as_bool() == Some(false) {
        ", no change"
    } else {
        ""
    };
    format!(" (generation {}{changed}{persisted})", a["generation"])
}

fn split_text(split: &Value) -> String {
    let Some(obj) = split.as_object() else {
        return "-".into();
    };
    let total: u64 = obj.values().filter_map(Value::as_u64).sum();
    obj.iter()
        .map(|(p, w)| {
            let w = w.as_u64().unwrap_or(0);
            format!("{p} {w} ({:.0}%)", 100.0 * w as f64 / total.max(1) as f64)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_rollout(r: &Value) {
    if r.is_null() {
        return;
    }
    let steps: Vec<String> = r["steps"]
        .as_array()
        .map(|a| a.iter().map(|v| format!("{v}%")).collect())
        .unwrap_or_default();
    println!(
        "{}: step {} of {} [{}], {}% on {} ({} stable)",
        r["phase"].as_str().unwrap_or("?"),
        r["step"].as_u64().unwrap_or(0) + 1,
        steps.len(),
        steps.join(" "),
        r["canary_weight"],
        r["canary"].as_str().unwrap_or("?"),
        r["stable"].as_str().unwrap_or("?"),
    );
    let last = &r["last"];
    if !last.is_null() {
        println!(
            "last check: {} ({} canary requests, error rate {:.4}, p99 {})",
            last["check"]["result"].as_str().unwrap_or("?"),
            last["canary_requests"],
            last["canary_error_rate"].as_f64().unwrap_or(0.0),
            last["canary_p99_seconds"]
                .as_f64()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.0} ms", s * 1000.0)),
        );
    }
    if let Some(reason) = r["reason"].as_str() {
        println!("reason: {reason}");
    }
}

fn print_status(s: &Value) {
    println!("generation {}", s["generation"]);
    if let Some(err) = s["last_reload"]["error"].as_str() {
        println!("last reload FAILED (the previous table is serving):\n{err}");
    }
    let mut routes = Table::new();
    routes
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(["route", "prefix", "split"]);
    for r in s["routes"].as_array().into_iter().flatten() {
        routes.add_row([
            r["name"].as_str().unwrap_or(""),
            r["path_prefix"].as_str().unwrap_or(""),
            &split_text(&r["split"]),
        ]);
    }
    println!("{routes}");
    let mut pools = Table::new();
    pools.load_preset(UTF8_BORDERS_ONLY).set_header([
        "pool",
        "backend",
        "health",
        "state",
        "in-flight",
    ]);
    for p in s["pools"].as_array().into_iter().flatten() {
        for b in p["backends"].as_array().into_iter().flatten() {
            let state = if b["draining"].as_bool() == Some(true) {
                "draining"
            } else {
                "active"
            };
            pools.add_row([
                p["name"].as_str().unwrap_or(""),
                b["addr"].as_str().unwrap_or(""),
                b["health"].as_str().unwrap_or(""),
                state,
                &b["in_flight"].to_string(),
            ]);
        }
    }
    println!("{pools}");
    for r in s["rollouts"].as_array().into_iter().flatten() {
        print!("rollout of route {}: ", r["route"].as_str().unwrap_or("?"));
        print_rollout(r);
    }
    for f in s["flips"].as_array().into_iter().flatten() {
        println!(
            "verified flip of route {} to {}: {}{}",
            f["route"].as_str().unwrap_or("?"),
            f["to"].as_str().unwrap_or("?"),
            f["phase"].as_str().unwrap_or("?"),
            f["reason"]
                .as_str()
                .map_or_else(String::new, |r| format!(" ({r})")),
        );
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

/// `blue 90, canary 10`: the weights only, pools without weight left out.
fn split_short(split: &Value) -> String {
    let Some(obj) = split.as_object() else {
        return "-".into();
    };
    let parts: Vec<String> = obj
        .iter()
        .filter(|(_, w)| w.as_u64() != Some(0))
        .map(|(p, w)| format!("{p} {w}"))
        .collect();
    parts.join(", ")
}

/// The history as a table: every field with `--wide` or off a terminal;
/// fitted to `width` otherwise (time of day, short splits, and what is
/// still too long wrapped inside its cell rather than across the screen).
fn print_history(h: &Value, width: Option<usize>) {
    use comfy_table::ContentArrangement;
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header([
        "time", "gen", "source", "action", "target", "change", "result",
    ]);
    if let Some(w) = width {
        t.set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(u16::try_from(w).unwrap_or(u16::MAX));
    }
    for e in h["events"].as_array().into_iter().flatten() {
        let target = e["route"].as_str().or(e["backend"].as_str()).unwrap_or("");
        let time = e["time"].as_str().unwrap_or("");
        // `2026-12-02T02:31:07.123Z` -> `02:31:07`.
        let time = match width {
            Some(_) => time.get(11..19).unwrap_or(time),
            None => time,
        };
        let change = if e["new_split"].is_object() && width.is_some() {
            format!(
                "{} -> {}",
                split_short(&e["old_split"]),
                split_short(&e["new_split"])
            )
        } else if e["new_split"].is_object() {
            format!(
                "{} -> {}",
                split_text(&e["old_split"]),
                split_text(&e["new_split"])
            )
        } else {
            e["detail"]
                .as_str()
                .map(|d| d.lines().next().unwrap_or("").to_owned())
                .unwrap_or_default()
        };
        let mut result = e["result"].as_str().unwrap_or("").to_owned();
        if e["persisted"].as_bool() == Some(false) {
            result.push_str(" (not persisted)");
        }
        t.add_row([
            time,
            &e["generation"].to_string(),
            e["source"].as_str().unwrap_or(""),
            e["action"].as_str().unwrap_or(""),
            target,
            &change,
            &result,
        ]);
    }
    println!("{t}");
}
