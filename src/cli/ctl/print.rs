//! How `switchyard ctl` shows the admin API's answers to people (`--json`
//! prints them as they came instead).

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use switchyard::api::{
    Applied, ClusterStatus, HistoryAnswer, HistoryScope, LastBackend, RolloutStatus, ShadowAnswer,
    Split, Status, TakenBy,
};

/// ` (generation 4, written to the file)`.
pub fn suffix(a: &Applied) -> String {
    let persisted = match a.persisted {
        Some(true) => ", written to the file",
        Some(false) => ", NOT written to the file (in memory only)",
        None => "",
    };
    let changed = if a.changed { "" } else { ", no change" };
    let revision = a
        .revision
        .map_or_else(String::new, |r| format!(", cluster revision {r}"));
    // Why the file does not hold it, on lines of their own: the reason
    // can be a whole validation report.
    let why = a.persist_error.as_ref().map_or_else(String::new, |e| {
        format!(
            "\nnot written because: {e}\nkept in memory; written on top of the file at its next \
             successful reload"
        )
    });
    format!(
        " (generation {}{revision}{changed}{persisted}){why}",
        a.generation
    )
}

/// `blue 75 (75%), canary 25 (25%)`; `-` for no split.
pub fn split_text(split: Option<&Split>) -> String {
    let Some(split) = split.filter(|s| !s.0.is_empty()) else {
        return "-".into();
    };
    let total: u64 = split.0.iter().map(|(_, w)| u64::from(*w)).sum();
    split
        .0
        .iter()
        .map(|(p, w)| {
            let pct = 100.0 * f64::from(*w) / total.max(1) as f64;
            format!("{p} {w} ({pct:.0}%)")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `route api: blue 0 (0%), green 100 (100%), standby blue (generation
/// 3, ...)`.
pub fn route_change(route: &str, a: &Applied) {
    let standby = a
        .standby
        .as_ref()
        .map_or_else(String::new, |p| format!(", standby {p}"));
    println!(
        "route {route}: {}{standby}{}",
        split_text(a.split.as_ref()),
        suffix(a)
    );
}

/// The warning of a drain that left its pool with no available backend:
/// who takes over each route (on stderr, so scripts reading stdout see
/// only the result).
pub fn last_backend(last: &LastBackend) {
    eprintln!(
        "warning: that was the last available backend of pool {}",
        last.pool
    );
    for t in &last.routes {
        let pool = t.pool.as_deref().unwrap_or("");
        match t.by {
            TakenBy::Failover => {
                eprintln!("  pool {pool} takes over route {} (failover)", t.route)
            }
            TakenBy::Standby => eprintln!("  standby pool {pool} takes over route {}", t.route),
            TakenBy::Nobody => eprintln!(
                "  route {} will answer 503: no pool of its split and no standby has an available backend",
                t.route
            ),
        }
    }
}

pub fn rollout(r: &RolloutStatus) {
    let steps: Vec<String> = r.steps.iter().map(|s| format!("{s}%")).collect();
    println!(
        "{}: step {} of {} [{}], {}% on {} ({} stable)",
        r.phase,
        r.step + 1,
        steps.len(),
        steps.join(" "),
        r.canary_weight,
        r.canary,
        r.stable,
    );
    if let Some(last) = &r.last {
        println!(
            "last check: {} ({} canary requests, error rate {:.4}, p99 {})",
            last.check.name(),
            last.canary_requests,
            last.canary_error_rate,
            last.canary_p99_seconds
                .map_or_else(|| "-".to_owned(), |s| format!("{:.0} ms", s * 1000.0)),
        );
    }
    if let Some(reason) = &r.reason {
        println!("reason: {reason}");
    }
}

pub fn status(s: &Status) {
    println!("generation {}", s.generation);
    if let Some(err) = &s.last_reload.error {
        println!("last reload FAILED (the previous table is serving):\n{err}");
    }
    let mut routes = Table::new();
    routes
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(["route", "prefix", "split", "standby"]);
    for r in &s.routes {
        let standby = match (&r.standby, r.standby_active) {
            (Some(p), true) => format!("{p} (serving)"),
            (Some(p), false) => p.clone(),
            (None, _) => "-".into(),
        };
        routes.add_row([
            &r.name,
            &r.path_prefix,
            &split_text(Some(&r.split)),
            &standby,
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
    for p in &s.pools {
        for b in &p.backends {
            let state = if b.draining { "draining" } else { "active" };
            pools.add_row([
                p.name.clone(),
                b.addr.to_string(),
                b.health.to_string(),
                state.to_owned(),
                b.in_flight.to_string(),
            ]);
        }
    }
    println!("{pools}");
    for r in &s.rollouts {
        print!("rollout of route {}: ", r.route);
        rollout(r);
    }
    for f in &s.flips {
        let reason = f
            .reason
            .as_ref()
            .map_or_else(String::new, |r| format!(" ({r})"));
        println!(
            "verified flip of route {} to {}: {}{reason}",
            f.route, f.to, f.phase
        );
    }
    if let Some(c) = &s.cluster {
        cluster(c);
    }
    unsaved(s);
}

/// Changes in force that the file does not hold yet, and why.
fn unsaved(s: &Status) {
    if s.unsaved.is_empty() {
        return;
    }
    println!(
        "{} change(s) in force but NOT in the file (written on top of it at its next \
         successful reload):",
        s.unsaved.len()
    );
    for u in &s.unsaved {
        let target = u.route.as_deref().or(u.backend.as_deref()).unwrap_or("");
        println!("  {} {target}: {}", u.action, u.sets.join(", "));
        println!("    why: {}", u.reason);
    }
}

/// The `[cluster]` part of the status: leader, revision, store, members.
fn cluster(c: &ClusterStatus) {
    if !c.joined {
        println!("cluster: not joined yet (serving the local file; changes are refused)");
        return;
    }
    let store = match (&c.store.reachable, &c.store.error) {
        (true, _) => "reachable".to_owned(),
        (false, e) => format!("UNREACHABLE ({})", e.as_deref().unwrap_or("no answer")),
    };
    println!(
        "cluster: {} ({}), leader {}, revision {} (applied here {}), store {store}",
        c.instance.as_deref().unwrap_or("?"),
        c.role.map_or("?", |r| r.as_str()),
        c.leader.as_deref().unwrap_or("none"),
        c.revision,
        c.applied_revision,
    );
    if c.seeded_here == Some(false) {
        println!("the cluster's configuration won over this replica's file");
    }
    for note in [&c.local_override, &c.conflict, &c.error]
        .into_iter()
        .flatten()
    {
        println!("{note}");
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header([
        "member",
        "applied revision",
        "last seen (unix ms)",
        "state",
    ]);
    for m in &c.members {
        let state = if m.stale { "STALE" } else { "current" };
        t.add_row([
            m.instance.clone(),
            m.applied_revision.to_string(),
            m.last_seen_ms.to_string(),
            state.to_owned(),
        ]);
    }
    println!("{t}");
}

/// `blue 90, canary 10`: the weights only, pools without weight left out.
fn split_short(split: Option<&Split>) -> String {
    let Some(split) = split else {
        return "-".into();
    };
    let parts: Vec<String> = split
        .0
        .iter()
        .filter(|(_, w)| *w != 0)
        .map(|(p, w)| format!("{p} {w}"))
        .collect();
    parts.join(", ")
}

/// The history as a table: every field with `--wide` or off a terminal;
/// fitted to `width` otherwise (time of day, short splits, and what is
/// still too long wrapped inside its cell rather than across the screen).
pub fn history(h: &HistoryAnswer, width: Option<usize>) {
    use comfy_table::ContentArrangement;
    if h.scope == Some(HistoryScope::Replica) {
        println!(
            "this replica's events only: the cluster's history cannot be read ({})",
            h.cluster_error.as_deref().unwrap_or("no answer")
        );
    }
    // With [cluster], each event names the replica that made it.
    let clustered = h.scope.is_some();
    let mut header = vec![
        "time", "gen", "source", "action", "target", "change", "result",
    ];
    if clustered {
        header.insert(1, "instance");
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header);
    if let Some(w) = width {
        t.set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(u16::try_from(w).unwrap_or(u16::MAX));
    }
    for e in &h.events {
        let target = e.route.as_deref().or(e.backend.as_deref()).unwrap_or("");
        // `2026-12-02T02:31:07.123Z` -> `02:31:07`.
        let time = match width {
            Some(_) => e.time.get(11..19).unwrap_or(&e.time),
            None => &e.time,
        };
        let change = match &e.new_split {
            // A standby change (or a data-path event): its note says it.
            Some(new) if e.old_split.as_ref() == Some(new) && e.detail.is_some() => {
                e.detail.clone().unwrap_or_default()
            }
            Some(new) if width.is_some() => format!(
                "{} -> {}",
                split_short(e.old_split.as_ref()),
                split_short(Some(new))
            ),
            Some(new) => format!(
                "{} -> {}",
                split_text(e.old_split.as_ref()),
                split_text(Some(new))
            ),
            None => e
                .detail
                .as_deref()
                .and_then(|d| d.lines().next())
                .unwrap_or("")
                .to_owned(),
        };
        let mut result = e.result.to_string();
        if e.persisted == Some(false) {
            result.push_str(" (not persisted)");
        }
        let mut row = vec![
            time.to_owned(),
            e.generation.to_string(),
            e.source.to_string(),
            e.action.to_string(),
            target.to_owned(),
            change,
            result,
        ];
        if clustered {
            row.insert(1, e.instance.clone().unwrap_or_default());
        }
        t.add_row(row);
    }
    println!("{t}");
}

/// `12 ms`, `-`.
fn millis(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".into(), |m| format!("{m:.0} ms"))
}

/// `05:40:12` (UTC) of a Unix-ms time.
fn time_of_day(at_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms);
    let stamp = humantime::format_rfc3339_seconds(t).to_string();
    stamp.get(11..19).unwrap_or(&stamp).to_owned()
}

/// `ctl shadow diff ROUTE`: per mirror pool its window, then its latest
/// mismatch samples. Fitted to `width` (each line cut, headers left out);
/// with `--wide` or off a terminal every field and the samples' headers.
pub fn shadow(a: &ShadowAnswer, width: Option<usize>) {
    use super::super::fit::{choose, fit};
    let out = |line: &str| println!("{}", fit(line, width));
    if a.pools.is_empty() {
        println!(
            "route {}: no shadow traffic (no mirror and no rollout shadow step)",
            a.route
        );
        return;
    }
    for p in &a.pools {
        let mut how = Vec::new();
        if let Some(pct) = p.mirror_percent {
            how.push(format!("mirror {pct}%"));
        }
        if let Some(pct) = p.step_percent {
            how.push(format!("shadow step {pct}%"));
        }
        let state = if p.active { "copying now" } else { "idle" };
        out(&format!(
            "route {} → {} ({}, {state}), last {} s",
            a.route,
            p.pool,
            how.join(", "),
            a.seconds
        ));
        let w = &p.window;
        out(&format!(
            "  mirrored {}  compared {}  mismatched {} ({:.2}%)",
            w.mirrored,
            w.compared,
            w.mismatched,
            w.mismatch_rate * 100.0
        ));
        out(&format!(
            "  by kind: status_class {}, status {}, body {}; bodies not compared {}",
            w.mismatched_status_class, w.mismatched_status, w.mismatched_body, w.body_skipped
        ));
        out(&format!(
            "  mirror errors {} + 5xx {} ({:.2}%); dropped: in-flight {}, body too big {}",
            w.mirror_errors,
            w.mirror_5xx,
            w.error_rate * 100.0,
            w.dropped_in_flight,
            w.dropped_body_too_big
        ));
        out(&format!(
            "  p99 primary {}, mirror {}, ratio {}",
            millis(w.primary_p99_ms),
            millis(w.mirror_p99_ms),
            w.p99_latency_ratio
                .map_or_else(|| "-".into(), |r| format!("{r:.2}"))
        ));
        if p.samples.is_empty() {
            out("  no mismatch samples");
            continue;
        }
        out(&format!(
            "  mismatch samples, newest first ({}):",
            p.samples.len()
        ));
        for s in &p.samples {
            let statuses = format!("{} → {}", s.primary.status, s.mirror.status);
            let line = format!(
                "  {} {} {}  {statuses} {}  {:.0} → {:.0} ms",
                time_of_day(s.at_ms),
                s.method,
                s.target,
                s.kind,
                s.primary.latency_ms,
                s.mirror.latency_ms
            );
            // Narrower: without the latencies, then without the time; the
            // statuses and kind stay, the target is cut last.
            let narrower = [
                format!(
                    "  {} {} {}  {statuses} {}",
                    time_of_day(s.at_ms),
                    s.method,
                    s.target,
                    s.kind
                ),
                format!("  {statuses} {} {} {}", s.kind, s.method, s.target),
            ];
            println!("{}", choose(&line, &narrower, width));
            for d in &s.diff {
                out(&format!("      {d}"));
            }
            if width.is_none() {
                let headers = [
                    ("request", &s.request_headers),
                    ("primary", &s.primary.headers),
                    ("mirror", &s.mirror.headers),
                ];
                for (side, hs) in headers {
                    for (name, value) in hs {
                        println!("      {side} {name}: {value}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_not_written_says_why() {
        let mut a = Applied::unchanged(4);
        a.changed = true;
        a.persisted = Some(false);
        a.persist_error = Some("s.toml is read-only".into());
        let s = suffix(&a);
        assert!(
            s.starts_with(" (generation 4, NOT written to the file (in memory only))\n"),
            "{s}"
        );
        assert!(
            s.contains("not written because: s.toml is read-only\n"),
            "{s}"
        );
        a.persisted = Some(true);
        a.persist_error = None;
        assert_eq!(suffix(&a), " (generation 4, written to the file)");
    }
}
