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
use serde_json::Value;

use super::ctl::{call, Ctl, EXIT_REFUSED, EXIT_UNREACHABLE};
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
async fn watch(ctl: &Ctl, path: &str, frame: impl Fn(&Value) -> Frame) -> ExitCode {
    let mut screen = Screen::new(ctl.wide);
    let mut unreachable_since: Option<Instant> = None;
    loop {
        match call(ctl, Method::GET, path, None).await {
            Ok((status, answer)) if status.is_success() => {
                unreachable_since = None;
                let f = frame(&answer);
                screen.show(&f);
                if let Some(code) = f.done {
                    return ExitCode::from(code);
                }
            }
            Ok((status, answer)) => {
                let detail = answer["detail"]
                    .as_str()
                    .map_or_else(|| answer.to_string(), str::to_owned);
                if screen.tty {
                    println!();
                }
                eprintln!("switchyard ctl: {} {detail}", status.as_u16());
                return ExitCode::from(EXIT_REFUSED);
            }
            Err(e) => {
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
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn rollout(ctl: &Ctl, route: &str) -> ExitCode {
    let path = format!("/api/v1/routes/{route}/rollout");
    watch(ctl, &path, |r| rollout_frame(route, r)).await
}

pub async fn flip(ctl: &Ctl, route: &str, generation: u64) -> ExitCode {
    let path = format!("/api/v1/routes/{route}/flip");
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

/// One line of a rollout's progress (a `GET .../rollout` answer).
fn rollout_frame(route: &str, r: &Value) -> Frame {
    let phase = r["phase"].as_str().unwrap_or("?");
    let steps = r["steps"].as_array().map_or(0, Vec::len).max(1);
    let step = r["step"].as_u64().unwrap_or(0) as usize;
    let interval = r["step_interval_ms"].as_u64().unwrap_or(0);
    let into = r["now_ms"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(r["step_started_ms"].as_u64().unwrap_or(0));
    let step_done = if interval == 0 {
        0.0
    } else {
        (into as f64 / interval as f64).min(1.0)
    };
    let t = &r["thresholds"];
    let cur = &r["current"];
    let done = match phase {
        "promoted" => Some(0),
        "rolled_back" => Some(EXIT_REFUSED),
        _ => None,
    };
    let progress = match phase {
        "promoted" => 1.0,
        _ => (step as f64 + step_done) / steps as f64,
    };
    let next = match phase {
        "progressing" if into < interval => {
            format!("next check in {}s", (interval - into).div_ceil(1000))
        }
        "progressing" => "judging".into(),
        other => other.replace('_', " "),
    };
    let line = format!(
        "{route} {} step {}/{steps} {}% on {} │ {} req (min {}) │ errors {} (max {}) │ p99 {} (max {}) │ {next}",
        bar(progress, 20),
        step + 1,
        r["canary_weight"],
        r["canary"].as_str().unwrap_or("?"),
        cur["canary_requests"].as_u64().unwrap_or(0),
        t["min_requests"],
        percent(cur["canary_error_rate"].as_f64().unwrap_or(0.0)),
        percent(t["max_error_rate"].as_f64().unwrap_or(0.0)),
        millis(cur["canary_p99_seconds"].as_f64()),
        millis(t["max_p99_seconds"].as_f64()),
    );
    let req = cur["canary_requests"].as_u64().unwrap_or(0);
    let min = &t["min_requests"];
    let err = percent(cur["canary_error_rate"].as_f64().unwrap_or(0.0));
    let max_err = percent(t["max_error_rate"].as_f64().unwrap_or(0.0));
    let p99 = ms(cur["canary_p99_seconds"].as_f64());
    let max_p99 = ms(t["max_p99_seconds"].as_f64());
    let (weight, canary) = (&r["canary_weight"], r["canary"].as_str().unwrap_or("?"));
    let short = next.replace("next check in", "next");
    let s = step + 1;
    let narrower = vec![
        format!(
            "{route} {} {s}/{steps} {weight}% on {canary} │ {req}/{min} req │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {short}",
            bar(progress, 10)
        ),
        format!("{route} {s}/{steps} {weight}% │ {req}/{min} req │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {short}"),
        format!("{s}/{steps} {weight}% │ {req}/{min} │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {short}"),
        format!("{s}/{steps} {weight}% │ {req} │ err {err} │ p99 {p99} │ {short}"),
    ];
    let reason = r["reason"].as_str().map(|s| format!("{phase}: {s}"));
    Frame {
        line,
        narrower,
        key: format!("{phase} {step}"),
        done,
        reason,
    }
}

/// One line of a verified flip (a `GET .../flip` answer) made at
/// `generation`.
fn flip_frame(f: &Value, generation: u64) -> Frame {
    let phase = f["phase"].as_str().unwrap_or("?");
    // An older flip's record until the new one is in place.
    let ours = f["generation"].as_u64() == Some(generation);
    let window = f["window_ms"].as_u64().unwrap_or(0);
    let done = match (ours, phase) {
        (false, _) | (_, "verifying") => None,
        (_, "verified" | "unverified") => Some(0),
        _ => Some(EXIT_REFUSED),
    };
    // The proxy's clock when it says, else ours (ctl usually runs beside it).
    let now = f["now_ms"]
        .as_u64()
        .unwrap_or_else(|| unix_ms(SystemTime::now()));
    let end = f["started_ms"].as_u64().unwrap_or(0).saturating_add(window);
    let left = match phase {
        "verifying" => format!("{}s left", end.saturating_sub(now).div_ceil(1000)),
        _ => format!("window {}s", window.div_ceil(1000)),
    };
    let (route, to) = (
        f["route"].as_str().unwrap_or("?"),
        f["to"].as_str().unwrap_or("?"),
    );
    let phase_text = phase.replace('_', " ");
    let req = f["requests"].as_u64().unwrap_or(0);
    let min = &f["min_requests"];
    let err = percent(f["error_rate"].as_f64().unwrap_or(0.0));
    let max_err = percent(f["max_error_rate"].as_f64().unwrap_or(0.0));
    let line = format!(
        "{route} → {to}: {phase_text} │ {req} req (min {min}) │ errors {err} (max {max_err}) │ p99 {} (max {}) │ window {}s{}",
        millis(f["p99_seconds"].as_f64()),
        millis(f["max_p99_seconds"].as_f64()),
        window.div_ceil(1000),
        if phase == "verifying" { format!(", {left}") } else { String::new() },
    );
    let (p99, max_p99) = (
        ms(f["p99_seconds"].as_f64()),
        ms(f["max_p99_seconds"].as_f64()),
    );
    let narrower = vec![
        format!("{route} → {to}: {phase_text} │ {req}/{min} req │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {left}"),
        format!("{to} {phase_text} │ {req}/{min} │ err {err}/{max_err} │ p99 {p99}/{max_p99} │ {left}"),
        format!("{to} {phase_text} │ {req} │ err {err} │ p99 {p99} │ {left}"),
    ];
    Frame {
        line,
        narrower,
        key: phase.to_owned(),
        done,
        reason: f["reason"].as_str().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(phase: &str) -> Value {
        json!({
            "route": "api", "phase": phase, "step": 1, "steps": [10, 50, 100],
            "canary": "green", "stable": "blue", "canary_weight": 50,
            "step_started_ms": 1_000, "now_ms": 3_500, "step_interval_ms": 10_000,
            "thresholds": {"min_requests": 100, "max_error_rate": 0.01, "max_p99_seconds": 0.5},
            "current": {"canary_requests": 42, "canary_error_rate": 0.002,
                        "canary_p99_seconds": 0.031, "stable_requests": 40},
        })
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
        r["route"] = json!("checkout-api");
        r["canary"] = json!("canary-v2");
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
    fn a_flip_shows_its_time_left_at_80_columns() {
        let mut v = json!({"route": "checkout-api", "to": "green", "phase": "verifying",
            "generation": 4, "started_ms": 10_000, "now_ms": 22_000, "window_ms": 30_000,
            "requests": 9, "min_requests": 5, "error_rate": 0.0, "max_error_rate": 0.01,
            "p99_seconds": 0.012, "max_p99_seconds": 2.0});
        let f = flip_frame(&v, 4);
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
        assert!(flip_frame(&v, 4).line.ends_with("window 30s"));
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
        let f = json!({"route": "api", "to": "green", "phase": "reverted", "generation": 4,
                       "window_ms": 30_000, "requests": 9, "min_requests": 5});
        assert_eq!(flip_frame(&f, 5).done, None);
        assert_eq!(flip_frame(&f, 4).done, Some(EXIT_REFUSED));
        let ok = json!({"phase": "verified", "generation": 5});
        assert_eq!(flip_frame(&ok, 5).done, Some(0));
    }
}
