//! What a rolling update did, backend by backend: the progress lines while
//! it runs (stdout, or stderr with `--json` so stdout holds only JSON), and
//! at the end the human report or the JSON summary. Owns no I/O but
//! printing.

use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;

use serde::Serialize;
use tokio::time::Instant;

use super::plan::Plan;

/// Exit code of an interrupted update (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;
const EXIT_FAILED: u8 = 1;

/// The stages of one backend's update, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Drain it and wait until its in-flight requests reach zero.
    Drain,
    /// Run the `--exec` command.
    Exec,
    /// Wait for a fresh probe to pass and the proxy to call it healthy.
    Health,
    /// Put it back into rotation.
    Undrain,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Drain => "drain",
            Stage::Exec => "exec",
            Stage::Health => "health",
            Stage::Undrain => "undrain",
        }
    }
}

/// Where one backend's update ended.
#[derive(Debug)]
pub enum Outcome {
    /// Its batch was not reached.
    NotStarted,
    /// Drained before the update began; left alone.
    Skipped,
    /// Replaced and back in rotation.
    Updated { seconds: f64 },
    /// Stopped at `stage`; `drained` says whether it is out of rotation.
    Failed {
        stage: Stage,
        reason: String,
        tail: Vec<String>,
        drained: bool,
    },
    /// Stopped at `stage` by Ctrl-C or SIGTERM.
    Interrupted { stage: Stage, drained: bool },
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::NotStarted => "not_started",
            Outcome::Skipped => "skipped",
            Outcome::Updated { .. } => "updated",
            Outcome::Failed { .. } => "failed",
            Outcome::Interrupted { .. } => "interrupted",
        }
    }
}

/// One backend of the plan.
pub struct Entry {
    pub addr: SocketAddr,
    /// 1-based; 0 for a skipped backend.
    pub batch: usize,
    pub outcome: Outcome,
}

/// The whole update's record.
pub struct Report {
    pub pool: String,
    pub entries: Vec<Entry>,
    batches: usize,
    max_unavailable: usize,
    /// Progress to stderr (`--json`) instead of stdout.
    json: bool,
    /// A signal stopped the update between two batches.
    interrupted: bool,
    started: Instant,
}

impl Report {
    pub fn new(pool: &str, plan: &Plan, max_unavailable: usize, json: bool) -> Self {
        let mut entries: Vec<Entry> = plan
            .batches
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                b.iter().map(move |&addr| Entry {
                    addr,
                    batch: i + 1,
                    outcome: Outcome::NotStarted,
                })
            })
            .collect();
        entries.extend(plan.skipped.iter().map(|&addr| Entry {
            addr,
            batch: 0,
            outcome: Outcome::Skipped,
        }));
        Report {
            pool: pool.to_owned(),
            entries,
            batches: plan.batches.len(),
            max_unavailable,
            json,
            interrupted: false,
            started: Instant::now(),
        }
    }

    /// A progress line, not tied to a backend.
    pub fn say(&self, text: impl Display) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// `[2/3] 127.0.0.1:8002 exec: exit status 0 after 1.2 s`.
    pub fn line(&self, i: usize, stage: Stage, text: impl Display) {
        let e = &self.entries[i];
        self.say(format_args!(
            "[{}/{}] {} {}: {text}",
            e.batch,
            self.batches,
            e.addr,
            stage.name()
        ));
    }

    /// The entries of batch `b` (0-based).
    pub fn batch(&self, b: usize) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| self.entries[i].batch == b + 1)
            .collect()
    }

    /// Records a failure and prints it as a progress line.
    pub fn fail(
        &mut self,
        i: usize,
        stage: Stage,
        reason: String,
        tail: Vec<String>,
        drained: bool,
    ) {
        self.line(i, stage, format_args!("FAILED: {reason}"));
        self.entries[i].outcome = Outcome::Failed {
            stage,
            reason,
            tail,
            drained,
        };
    }

    pub fn interrupted(&mut self, i: usize, stage: Stage, drained: bool) {
        self.line(
            i,
            stage,
            if drained {
                "interrupted; left drained"
            } else {
                "interrupted before its command ran; back in service"
            },
        );
        self.entries[i].outcome = Outcome::Interrupted { stage, drained };
    }

    pub fn interrupted_between_batches(&mut self) {
        self.say("interrupted between batches; the backends left are untouched");
        self.interrupted = true;
    }

    /// Has a backend failed or been interrupted (so no batch follows)?
    pub fn stopped(&self) -> bool {
        self.entries.iter().any(|e| {
            matches!(
                e.outcome,
                Outcome::Failed { .. } | Outcome::Interrupted { .. }
            )
        })
    }

    /// The plan, for `--dry-run`.
    pub fn print_plan(&self, command: impl Fn(SocketAddr) -> String) {
        if self.json {
            let batches = (0..self.batches)
                .map(|b| {
                    self.batch(b)
                        .into_iter()
                        .map(|i| {
                            let addr = self.entries[i].addr;
                            PlannedCommand {
                                addr,
                                command: command(addr),
                            }
                        })
                        .collect()
                })
                .collect();
            let plan = DryRun {
                pool: &self.pool,
                dry_run: true,
                max_unavailable: self.max_unavailable,
                batches,
                skipped: self.skipped().collect(),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&plan).unwrap_or_default()
            );
            return;
        }
        println!(
            "rolling update of pool {}: {} batch(es), {} at a time",
            self.pool, self.batches, self.max_unavailable
        );
        for b in 0..self.batches {
            for i in self.batch(b) {
                let a = self.entries[i].addr;
                println!("  [{}/{}] {a}: sh -c {:?}", b + 1, self.batches, command(a));
            }
        }
        for a in self.skipped() {
            println!("  skipped (drained before the update): {a}");
        }
        println!("dry run: nothing was changed");
    }

    fn skipped(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.entries
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Skipped))
            .map(|e| e.addr)
    }

    fn addrs_where(&self, f: impl Fn(&Outcome) -> bool) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| f(&e.outcome))
            .map(|e| e.addr.to_string())
            .collect()
    }

    /// Prints the end report (and the JSON summary) and answers the exit code.
    pub fn finish(&self) -> ExitCode {
        let elapsed = self.started.elapsed().as_secs_f64();
        let interrupted = self.interrupted
            || self
                .entries
                .iter()
                .any(|e| matches!(e.outcome, Outcome::Interrupted { .. }));
        let result = if interrupted {
            "interrupted"
        } else if self.stopped() {
            "failed"
        } else {
            "updated"
        };
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.summary(result, elapsed)).unwrap_or_default()
            );
        }
        let updated = self.addrs_where(|o| matches!(o, Outcome::Updated { .. }));
        if result == "updated" {
            self.say(format_args!(
                "rolling update of pool {} done: {} backend(s) updated in {elapsed:.1} s",
                self.pool,
                updated.len()
            ));
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "rolling update of pool {} {}:",
            self.pool,
            if interrupted {
                "INTERRUPTED"
            } else {
                "STOPPED"
            }
        );
        for e in &self.entries {
            match &e.outcome {
                Outcome::Failed {
                    stage,
                    reason,
                    tail,
                    drained,
                } => {
                    eprintln!("  {} failed at stage {}: {reason}", e.addr, stage.name());
                    if !tail.is_empty() {
                        eprintln!("    last lines of its stderr:");
                        tail.iter().for_each(|l| eprintln!("      {l}"));
                    }
                    self.drained_hint(e.addr, *drained);
                }
                Outcome::Interrupted { stage, drained } => {
                    eprintln!("  {} interrupted at stage {}", e.addr, stage.name());
                    self.drained_hint(e.addr, *drained);
                }
                _ => {}
            }
        }
        let untouched = self.addrs_where(|o| matches!(o, Outcome::NotStarted));
        eprintln!("  updated, in service: {}", list(&updated));
        eprintln!(
            "  not updated, untouched and in service: {}",
            list(&untouched)
        );
        ExitCode::from(if interrupted {
            EXIT_INTERRUPTED
        } else {
            EXIT_FAILED
        })
    }

    fn drained_hint(&self, addr: SocketAddr, drained: bool) {
        if drained {
            eprintln!(
                "    it is left drained (its instance may be in any state); once it is fine: \
                 switchyard ctl undrain {} {addr}",
                self.pool
            );
        } else {
            eprintln!("    it is not drained, and its command did not run");
        }
    }

    fn summary<'a>(&'a self, result: &'a str, elapsed: f64) -> Summary<'a> {
        let backends = self
            .entries
            .iter()
            .map(|e| {
                let mut b = BackendSummary {
                    addr: e.addr,
                    batch: e.batch,
                    result: e.outcome.name(),
                    seconds: None,
                    stage: None,
                    reason: None,
                    stderr_tail: None,
                    drained: None,
                };
                match &e.outcome {
                    Outcome::Updated { seconds } => b.seconds = Some(*seconds),
                    Outcome::Failed {
                        stage,
                        reason,
                        tail,
                        drained,
                    } => {
                        b.stage = Some(stage.name());
                        b.reason = Some(reason);
                        b.stderr_tail = Some(tail);
                        b.drained = Some(*drained);
                    }
                    Outcome::Interrupted { stage, drained } => {
                        b.stage = Some(stage.name());
                        b.drained = Some(*drained);
                    }
                    Outcome::NotStarted => b.drained = Some(false),
                    Outcome::Skipped => b.drained = Some(true),
                }
                b
            })
            .collect();
        Summary {
            pool: &self.pool,
            result,
            max_unavailable: self.max_unavailable,
            seconds: elapsed,
            backends,
        }
    }
}

/// `--dry-run --json`: the plan.
#[derive(Serialize)]
struct DryRun<'a> {
    pool: &'a str,
    dry_run: bool,
    max_unavailable: usize,
    batches: Vec<Vec<PlannedCommand>>,
    skipped: Vec<SocketAddr>,
}

#[derive(Serialize)]
struct PlannedCommand {
    addr: SocketAddr,
    command: String,
}

/// `--json`: what the update did, backend by backend.
#[derive(Serialize)]
struct Summary<'a> {
    pool: &'a str,
    /// `done`, `failed` or `interrupted`.
    result: &'a str,
    max_unavailable: usize,
    seconds: f64,
    backends: Vec<BackendSummary<'a>>,
}

/// One backend's outcome; the fields that apply to it.
#[derive(Serialize)]
struct BackendSummary<'a> {
    addr: SocketAddr,
    batch: usize,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr_tail: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drained: Option<bool>,
}

fn list(addrs: &[String]) -> String {
    if addrs.is_empty() {
        "none".to_owned()
    } else {
        addrs.join(", ")
    }
}
