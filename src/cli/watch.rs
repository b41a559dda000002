//! `switchyard ctl rollout watch` and `ctl flip --verify --wait`: poll the
//! admin API and show progress until the outcome, then exit with it (0 the
//! release stands, 1 it was rolled back), so a CI pipeline can wait on a
//! release. On a terminal one line is redrawn in place; otherwise a line is
//! printed when something other than the counters changes, and every ten
//! seconds.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;

use super::ctl::{call, Ctl, EXIT_REFUSED, EXIT_UNREACHABLE};

/// How often the API is asked.
const POLL: Duration = Duration::from_millis(250);
/// How long the admin API may stay unreachable (a restart of the proxy
/// resumes the rollout) before giving up.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);
/// Without a terminal, an unchanged line is repeated this often.
const REPEAT: Duration = Duration::from_secs(10);

/// What a poll shows and whether it is the end.
struct Frame {
    line: String,
    /// The part of `line` whose change is worth a new line off-terminal.
    key: String,
    /// `Some(exit code)` once the outcome is known.
    done: Option<u8>,
    /// Printed under the last line at the end.
    reason: Option<String>,
}

struct Screen {
    tty: bool,
    last_key: String,
    last_print: Option<Instant>,
}

impl Screen {
    fn new() -> Self {
        Screen {
            tty: std::io::stdout().is_terminal(),
            last_key: String::new(),
            last_print: None,
        }
    }

    fn show(&mut self, f: &Frame) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            // Erase the line and draw it again; a line wider than the
            // terminal would wrap, and only its last row would be erased.
            let line = fit(&f.line, terminal_width());
            let _ = write!(out, "\r\x1b[2K{line}");
            if f.done.is_some() {
                let _ = writeln!(out);
            }
        } else if f.key != self.last_key
            || f.done.is_some()
            || self.last_print.is_none_or(|t| t.elapsed() >= REPEAT)
        {
            let _ = writeln!(out, "{}", f.line);
            self.last_key.clone_from(&f.key);
            self.last_print = Some(Instant::now());
        }
        if let (Some(_), Some(r)) = (f.done, &f.reason) {
            let _ = writeln!(out, "{r}");
        }
        let _ = out.flush();
    }
}

/// The terminal's width in columns (stdout), if known.
fn terminal_width() -> Option<usize> {
    #[cfg(unix)]
    {
        rustix::termios::tcgetwinsize(std::io::stdout())
            .ok()
            .map(|w| usize::from(w.ws_col))
            .filter(|&w| w > 0)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `line` cut to fit in `width` columns (every character here is one
/// column wide), ending in `…` when cut.
fn fit(line: &str, width: Option<usize>) -> std::borrow::Cow<'_, str> {
    match width {
        Some(w) if line.chars().count() >= w => {
            let mut cut: String = line.chars().take(w.saturating_sub(2)).collect();
            cut.push('…');
            cut.into()
        }
        _ => line.into(),
    }
}

/// Polls `path` until `frame` says it is done.
async fn watch(ctl: &Ctl, path: &str, frame: impl Fn(&Value) -> Frame) -> ExitCode {
    let mut screen = Screen::new();
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
    let reason = r["reason"].as_str().map(|s| format!("{phase}: {s}"));
    Frame {
        line,
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
    let line = format!(
        "{} → {}: {} │ {} req (min {}) │ errors {} (max {}) │ p99 {} (max {}) │ window {}s",
        f["route"].as_str().unwrap_or("?"),
        f["to"].as_str().unwrap_or("?"),
        phase.replace('_', " "),
        f["requests"].as_u64().unwrap_or(0),
        f["min_requests"],
        percent(f["error_rate"].as_f64().unwrap_or(0.0)),
        percent(f["max_error_rate"].as_f64().unwrap_or(0.0)),
        millis(f["p99_seconds"].as_f64()),
        millis(f["max_p99_seconds"].as_f64()),
        window.div_ceil(1000),
    );
    Frame {
        line,
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
    fn a_line_wider_than_the_terminal_is_cut() {
        assert_eq!(fit("abcdef", Some(10)), "abcdef");
        assert_eq!(fit("abcdef", None), "abcdef");
        assert_eq!(fit("r [██░░] step", Some(8)), "r [██░…");
        assert_eq!(fit("r [██░░] step", Some(8)).chars().count(), 7);
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
