//! `switchyard ctl rollout watch` and `ctl flip --verify --wait`: poll the
//! admin API and show progress until the outcome, then exit with it (0 the
//! release stands, 1 it was rolled back), so a CI pipeline can wait on a
//! release. On a terminal one line is redrawn in place; otherwise a line is
//! printed when something other than the counters changes, and every ten
//! seconds.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use http::Method;
use serde::de::DeserializeOwned;
use switchyard::api::{self, paths, FlipPhase, FlipStatus, Phase, RolloutStatus, ShadowProgress};

use super::ctl::{get, Ctl, Failure, EXIT_REFUSED, EXIT_UNREACHABLE};
use super::fit;

/// How often the API is asked.
const POLL: Duration = Duration::from_millis(250);
/// How long the admin API may stay unreachable (a restart of the proxy
/// resumes the rollout) before giving up.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);
/// Without a terminal, an unchanged line is repeated this often.
const REPEAT: Duration = Duration::from_secs(10);

/// What a poll shows and whether it is the end.
struct Frame {
    /// Every field (`--wide`, and off a terminal).
    line: String,
    /// Narrower renderings, each dropping or shortening fields of the one
    /// before by priority: time left, error rate and p99 go last.
    narrower: Vec<String>,
    /// The part of `line` whose change is worth a new line off-terminal.
    key: String,
    /// `Some(exit code)` once the outcome is known.
    done: Option<u8>,
    /// Printed under the last line at the end.
    reason: Option<String>,
}

struct Screen {
    tty: bool,
    wide: bool,
    last_key: String,
    last_print: Option<Instant>,
}

impl Screen {
    fn new(wide: bool) -> Self {
        Screen {
            tty: std::io::stdout().is_terminal(),
            wide,
            last_key: String::new(),
            last_print: None,
        }
    }

    fn show(&mut self, f: &Frame) {
        let mut out = std::io::stdout().lock();
        // A line wider than the terminal would wrap, and only its last row
        // would be erased when it is redrawn.
        let line = fit::choose(&f.line, &f.narrower, fit::columns(self.wide));
        if self.tty {
            // Erase the line and draw it again.
            let _ = write!(out, "\r\x1b[2K{line}");
            if f.done.is_some() {
                let _ = writeln!(out);
            }
        } else if f.key != self.last_key
            || f.done.is_some()
            || self.last_print.is_none_or(|t| t.elapsed() >= REPEAT)
        {
            let _ = writeln!(out, "{line}");
            self.last_key.clone_from(&f.key);
            self.last_print = Some(Instant::now());
        }
        if let (Some(_), Some(r)) = (f.done, &f.reason) {
            let _ = writeln!(out, "{r}");
        }
        let _ = out.flush();
    }
}

/// Polls `path` until `frame` says it is done.
async fn watch<T: DeserializeOwned>(
    ctl: &Ctl,
    path: &str,
    frame: impl Fn(&T) -> Frame,
) -> ExitCode {
    let mut screen = Screen::new(ctl.wide);
    let mut unreachable_since: Option<Instant> = None;
    loop {
        match get::<T>(ctl, Method::GET, path, None).await {
            Ok(answer) => {
                unreachable_since = None;
                let f = frame(&answer);
                screen.show(&f);
                if let Some(code) = f.done {
                    return ExitCode::from(code);
                }
            }
            Err(Failure::Unreachable(e)) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= UNREACHABLE_FOR {
                    if screen.tty {
                        println!();
                    }
                    eprintln!(
                        "switchyard ctl: the admin API at {} has been unreachable for {}s: {e:#}",
                        ctl.admin,
                        UNREACHABLE_FOR.as_secs()
                    );
                    return ExitCode::from(EXIT_UNREACHABLE);
                }
            }
            Err(f) => {
                if screen.tty {
                    println!();
                }
                let status = f.status().unwrap_or(0);
                eprintln!("switchyard ctl: {status} {}", f.detail());
                return ExitCode::from(EXIT_REFUSED);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn rollout(ctl: &Ctl, route: &str) -> ExitCode {
    let path = api::path(paths::ROLLOUT, &[route]);
    watch(ctl, &path, |r| rollout_frame(route, r)).await
}

pub async fn flip(ctl: &Ctl, route: &str, generation: u64) -> ExitCode {
    let path = api::path(paths::FLIP, &[route]);
    watch(ctl, &path, |f| flip_frame(f, generation)).await
}

fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

fn millis(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".into(), |s| format!("{:.0} ms", s * 1000.0))
}

/// `31ms`, `-`: the narrow renderings' latency.
fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".into(), |s| format!("{:.0}ms", s * 1000.0))
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

/// How a rollout's phase ends its watch: `Some(exit code)` once over.
fn rollout_done(phase: Phase) -> Option<u8> {
    match phase {
        Phase::Promoted => Some(0),
        Phase::RolledBack => Some(EXIT_REFUSED),
        Phase::Shadow | Phase::Progressing | Phase::Paused => None,
    }
}

/// `×1.21`, `-`.
fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("×{r:.2}"))
}

/// One line of a rollout in its shadow step: copies, pairs, mismatch and
/// mirror error rates, the p99 ratio, each against its limit, and the
/// time to the end of the step; the rates and the time go last.
fn shadow_frame(route: &str, r: &RolloutStatus, s: &ShadowProgress) -> Frame {
    let w = &s.window;
    let into = r.now_ms.saturating_sub(s.started_ms);
    let next = match r.phase {
        Phase::Shadow if into < s.duration_ms => {
            format!("passes in {}s", (s.duration_ms - into).div_ceil(1000))
        }
        Phase::Shadow => "judging".into(),
        other => other.as_str().replace('_', " "),
    };
    let short = next.replace("passes in", "in");
    let (pct, pool) = (s.percent, &s.pool);
    let (n, min) = (w.compared, s.min_requests);
    let (mis, max_mis) = (percent(w.mismatch_rate), percent(s.max_mismatch_rate));
    let (err, max_err) = (percent(w.error_rate), percent(s.max_error_rate));
    let (x, max_x) = (ratio(w.p99_latency_ratio), ratio(s.max_latency_ratio));
    let line = format!(
        "{route} [shadow] {pct}% copied to {pool} │ {n} pairs (min {min}) │ mismatches {mis} (max {max_mis}) │ mirror errors {err} (max {max_err}) │ p99 ratio {x} (max {max_x}) │ {next}"
    );
    let narrower = vec![
        format!("{route} shadow {pct}% → {pool} │ {n}/{min} pairs │ mis {mis}/{max_mis} │ err {err}/{max_err} │ p99 {x}/{max_x} │ {short}"),
        format!("{route} shadow │ {n}/{min} │ mis {mis}/{max_mis} │ err {err}/{max_err} │ {x}/{max_x} │ {short}"),
        format!("shadow │ {n}/{min} │ mis {mis}/{max_mis} │ err {err}/{max_err} │ {x} │ {short}"),
        format!("shadow │ {n} │ mis {mis} │ err {err} │ {x} │ {short}"),
    ];
    Frame {
        line,
        narrower,
        key: format!("{} shadow", r.phase),
        done: rollout_done(r.phase),
        reason: r.reason.as_ref().map(|why| format!("{}: {why}", r.phase)),
    }
}

/// One line of a rollout's progress (a `GET .../rollout` answer).
fn rollout_frame(route: &str, r: &RolloutStatus) -> Frame {
    if let Some(s) = &r.shadow {
        return shadow_frame(route, r, s);
    }
    let steps = r.steps.len().max(1);
    let interval = r.step_interval_ms;
    let into = r.now_ms.saturating_sub(r.step_started_ms);
    let step_done = if interval == 0 {
        0.0
    } else {
        (into as f64 / interval as f64).min(1.0)
    };
    let (t, cur) = (&r.thresholds, r.current.as_ref());
    let done = rollout_done(r.phase);
    let progress = match r.phase {
        Phase::Promoted => 1.0,
        _ => (r.step as f64 + step_done) / steps as f64,
    };
    let next = match r.phase {
        Phase::Progressing if into < interval => {
            format!("next check in {}s", (interval - into).div_ceil(1000))
        }
        Phase::Progressing => "judging".into(),
        other => other.as_str().replace('_', " "),
    };
    let line = format!(
        "{route} {} step {}/{steps} {}% on {} │ {} req (min {}) │ errors {} (max {}) │ p99 {} (max {}) │ {next}",
        bar(progress, 20),
        r.step + 1,
        r.canary_weight,
        r.canary,
        cur.map_or(0, |c| c.canary_requests),
        t.min_requests,
        percent(cur.map_or(0.0, |c| c.canary_error_rate)),
        percent(t.max_error_rate),
        millis(cur.and_then(|c| c.canary_p99_seconds)),
        millis(Some(t.max_p99_seconds)),
    );
    let req = cur.map_or(0, |c| c.canary_requests);
    let min = t.min_requests;
    let err = percent(cur.map_or(0.0, |c| c.canary_error_rate));
    let max_err = percent(t.max_error_rate);
    let p99 = ms(cur.and_then(|c| c.canary_p99_seconds));
    let max_p99 = ms(Some(t.max_p99_seconds));
    let (weight, canary) = (r.canary_weight, &r.canary);
    let short = next.replace("next check in", "next");
    let s = r.step + 1;
    let narrower = vec![
        format!(
            "{route} {} {s}/{steps} {weight}% on {canary} │ {req}/{min} req │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {short}",
            bar(progress, 10)
        ),
        format!("{route} {s}/{steps} {weight}% │ {req}/{min} req │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {short}"),
        format!("{s}/{steps} {weight}% │ {req}/{min} │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {short}"),
        format!("{s}/{steps} {weight}% │ {req} │ err {err} │ p99 {p99} │ {short}"),
    ];
    let reason = r.reason.as_ref().map(|s| format!("{}: {s}", r.phase));
    Frame {
        line,
        narrower,
        key: format!("{} {}", r.phase, r.step),
        done,
        reason,
    }
}

/// One line of a verified flip (a `GET .../flip` answer) made at
/// `generation`.
fn flip_frame(f: &FlipStatus, generation: u64) -> Frame {
    // An older flip's record until the new one is in place.
    let ours = f.generation == generation;
    let done = match (ours, f.phase) {
        (false, _) | (_, FlipPhase::Verifying) => None,
        (_, FlipPhase::Verified | FlipPhase::Unverified) => Some(0),
        (_, FlipPhase::Reverted | FlipPhase::Cancelled) => Some(EXIT_REFUSED),
    };
    // The proxy's clock when it says, else ours (ctl usually runs beside it).
    let now = f.now_ms.unwrap_or_else(|| unix_ms(SystemTime::now()));
    let window = f.window_ms;
    let end = f.started_ms.saturating_add(window);
    let verifying = f.phase == FlipPhase::Verifying;
    let left = if verifying {
        format!("{}s left", end.saturating_sub(now).div_ceil(1000))
    } else {
        format!("window {}s", window.div_ceil(1000))
    };
    let (route, to) = (&f.route, &f.to);
    let phase_text = f.phase.as_str().replace('_', " ");
    let (req, min) = (f.requests, f.min_requests);
    let err = percent(f.error_rate);
    let max_err = percent(f.max_error_rate);
    let line = format!(
        "{route} → {to}: {phase_text} │ {req} req (min {min}) │ errors {err} (max {max_err}) │ p99 {} (max {}) │ window {}s{}",
        millis(f.p99_seconds),
        millis(Some(f.max_p99_seconds)),
        window.div_ceil(1000),
        if verifying { format!(", {left}") } else { String::new() },
    );
    let (p99, max_p99) = (ms(f.p99_seconds), ms(Some(f.max_p99_seconds)));
    let narrower = vec![
        format!("{route} → {to}: {phase_text} │ {req}/{min} req │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {left}"),
        format!("{to} {phase_text} │ {req}/{min} │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {left}"),
        format!("{to} {phase_text} │ {req} │ err {err} │ p99 {p99} │ {left}"),
    ];
    Frame {
        line,
        narrower,
        key: f.phase.to_string(),
        done,
        reason: f.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(phase: &str) -> RolloutStatus {
        let v = json!({
            "route": "api", "phase": phase, "step": 1, "steps": [10, 50, 100],
            "canary": "green", "stable": "blue", "canary_weight": 50,
            "step_started_ms": 1_000, "now_ms": 3_500, "step_interval_ms": 10_000,
            "thresholds": {"min_requests": 100, "max_error_rate": 0.01, "max_p99_seconds": 0.5},
            "current": {"canary_requests": 42, "canary_error_rate": 0.002,
                        "canary_p99_seconds": 0.031, "stable_requests": 40,
                        "stable_error_rate": 0.0, "stable_p99_seconds": null},
        });
        serde_json::from_value(v).unwrap()
    }

    fn flip(phase: &str, generation: u64) -> FlipStatus {
        let v = json!({"route": "api", "to": "green", "phase": phase, "generation": generation,
                       "previous_split": {"blue": 100, "green": 0}, "started_ms": 0,
                       "window_ms": 30_000, "requests": 9, "min_requests": 5,
                       "max_error_rate": 0.01, "max_p99_seconds": 2.0,
                       "revert_if_insufficient": false, "error_rate": 0.0});
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_rollout_line_shows_step_counts_thresholds_and_time_left() {
        let f = rollout_frame("api", &rollout("progressing"));
        assert_eq!(f.done, None);
        for part in [
            "step 2/3",
            "50% on green",
            "42 req (min 100)",
            "errors 0.20% (max 1.00%)",
            "p99 31 ms (max 500 ms)",
            "next check in 8s",
        ] {
            assert!(f.line.contains(part), "{part:?} missing from {:?}", f.line);
        }
        // 1.25 of 3 steps done.
        assert!(f.line.contains(&bar(1.25 / 3.0, 20)), "{}", f.line);
    }

    #[test]
    fn at_80_columns_a_rollout_keeps_error_rate_p99_and_time_left() {
        let mut r = rollout("progressing");
        r.route = "checkout-api".into();
        r.canary = "canary-v2".into();
        let f = rollout_frame("checkout-api", &r);
        for width in [100, 80, 60] {
            let line = fit::choose(&f.line, &f.narrower, Some(width));
            assert!(line.chars().count() < width, "{width}: {line}");
            for part in ["err 0.20%", "p99 31ms", "next 8s"] {
                assert!(line.contains(part), "{part:?} missing at {width}: {line}");
            }
        }
        let at_100 = fit::choose(&f.line, &f.narrower, Some(100));
        assert!(
            at_100.contains("/1.00%") && at_100.contains("/500ms"),
            "{at_100}"
        );
        assert_eq!(fit::choose(&f.line, &f.narrower, None), f.line);
    }

    #[test]
    fn a_shadow_step_shows_its_own_line_from_the_start_at_80_columns() {
        let mut r = rollout("shadow");
        r.route = "checkout-api".into();
        r.step = 0;
        r.canary_weight = 0;
        r.shadow = serde_json::from_value(json!({
            "pool": "canary-v2", "percent": 20.0, "started_ms": 1_000, "duration_ms": 30_000,
            "min_requests": 500, "max_mismatch_rate": 0.01, "max_error_rate": 0.02,
            "max_latency_ratio": 1.5,
            "window": {"mirrored": 130, "compared": 120, "mismatched": 3,
                "mismatched_status_class": 0, "mismatched_status": 0, "mismatched_body": 3,
                "mismatch_rate": 0.025, "mirror_errors": 0, "mirror_5xx": 0, "error_rate": 0.0,
                "dropped_in_flight": 0, "dropped_body_too_big": 0, "body_skipped": 0,
                "primary_p99_ms": 10.0, "mirror_p99_ms": 12.1, "p99_latency_ratio": 1.21},
        }))
        .unwrap();
        let f = rollout_frame("checkout-api", &r);
        assert_eq!(f.done, None);
        assert!(
            f.line
                .starts_with("checkout-api [shadow] 20% copied to canary-v2"),
            "{}",
            f.line
        );
        for part in [
            "120 pairs (min 500)",
            "mismatches 2.50% (max 1.00%)",
            "p99 ratio ×1.21 (max ×1.50)",
            "passes in 28s",
        ] {
            assert!(f.line.contains(part), "{part:?} missing from {}", f.line);
        }
        for width in [100, 80, 60] {
            let line = fit::choose(&f.line, &f.narrower, Some(width));
            assert!(line.chars().count() < width, "{width}: {line}");
            assert!(
                line.starts_with("checkout-api shadow") || line.starts_with("shadow"),
                "{line}"
            );
            for part in ["mis 2.50%", "err 0.00%", "×1.21", "in 28s"] {
                assert!(line.contains(part), "{part:?} missing at {width}: {line}");
            }
        }
        r.phase = Phase::Paused;
        assert!(rollout_frame("checkout-api", &r).line.ends_with("│ paused"));
        r.phase = Phase::RolledBack;
        assert_eq!(rollout_frame("checkout-api", &r).done, Some(EXIT_REFUSED));
    }

    #[test]
    fn a_flip_shows_its_time_left_at_80_columns() {
        let mut v = json!({"route": "checkout-api", "to": "green", "phase": "verifying",
            "generation": 4, "started_ms": 10_000, "now_ms": 22_000, "window_ms": 30_000,
            "requests": 9, "min_requests": 5, "error_rate": 0.0, "max_error_rate": 0.01,
            "p99_seconds": 0.012, "max_p99_seconds": 2.0,
            "previous_split": {"blue": 100, "green": 0}, "revert_if_insufficient": false});
        let f = flip_frame(&serde_json::from_value(v.clone()).unwrap(), 4);
        assert!(f.line.ends_with("window 30s, 18s left"), "{}", f.line);
        for width in [100, 80, 60] {
            let line = fit::choose(&f.line, &f.narrower, Some(width));
            assert!(line.chars().count() < width, "{width}: {line}");
            assert!(
                line.ends_with("18s left") && line.contains("err 0.00%"),
                "{width}: {line}"
            );
        }
        v["phase"] = json!("verified");
        let verified = serde_json::from_value(v).unwrap();
        assert!(flip_frame(&verified, 4).line.ends_with("window 30s"));
    }

    #[test]
    fn rollout_outcomes_map_to_exit_codes() {
        assert_eq!(rollout_frame("api", &rollout("promoted")).done, Some(0));
        assert_eq!(
            rollout_frame("api", &rollout("rolled_back")).done,
            Some(EXIT_REFUSED)
        );
        assert_eq!(rollout_frame("api", &rollout("paused")).done, None);
    }

    #[test]
    fn a_flip_is_judged_only_once_its_own_record_is_in() {
        let f = flip("reverted", 4);
        assert_eq!(flip_frame(&f, 5).done, None);
        assert_eq!(flip_frame(&f, 4).done, Some(EXIT_REFUSED));
        assert_eq!(flip_frame(&flip("verified", 5), 5).done, Some(0));
        let line = flip_frame(&f, 4).line;
        assert!(
            line.contains("9 req (min 5)") && line.contains("window 30s"),
            "{line}"
        );
    }
}
