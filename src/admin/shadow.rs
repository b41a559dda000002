//! `GET /api/v1/routes/{route}/shadow`: a route's shadow traffic as
//! `api::ShadowAnswer` — per mirror pool (the route's `mirror`, its
//! rollout's shadow-step canary) the shadow window over the last seconds
//! and the latest mismatch samples. Read-only: the windows are the data
//! plane's relaxed atomics, the samples a copy of each pool's ring (whose
//! secrets were redacted before they were kept, `shadow::sample`).

use crate::api::{MismatchKind, ShadowAnswer, ShadowPool, ShadowQuery, ShadowSample, ShadowSide};
use crate::shadow::{Sample, SideSample};
use crate::table::{MirrorTarget, Route, RoutingTable};

/// The answer for route `r` of `table` at second `now` of `stats::clock`.
pub fn answer(table: &RoutingTable, r: &Route, now: u64, q: ShadowQuery) -> ShadowAnswer {
    ShadowAnswer {
        route: r.name.to_string(),
        generation: table.generation,
        seconds: q.seconds,
        pools: pools(r, now, q),
    }
}

/// The route's mirror pools: the configured mirror first, then the step's
/// canary (merged into one entry when it is the same pool, which then has
/// one window: handles are kept per (route, pool)).
pub fn pools(r: &Route, now: u64, q: ShadowQuery) -> Vec<ShadowPool> {
    let Some(m) = r.mirror.as_deref() else {
        return Vec::new();
    };
    let active = m.active().map(|t| t.pool.name.clone());
    let mut out: Vec<ShadowPool> = Vec::new();
    let targets = [(m.configured(), false), (m.step(), true)];
    for (t, step) in targets.into_iter().filter_map(|(t, s)| Some((t?, s))) {
        let entry = match out.iter_mut().find(|p| *p.pool == *t.pool.name) {
            Some(e) => e,
            None => {
                out.push(pool(t, now, q, active.as_deref() == Some(&*t.pool.name)));
                out.last_mut().expect("just pushed")
            }
        };
        match step {
            true => entry.step_percent = Some(t.percent),
            false => entry.mirror_percent = Some(t.percent),
        }
    }
    out
}

fn pool(t: &MirrorTarget, now: u64, q: ShadowQuery, active: bool) -> ShadowPool {
    let stats = t.handles.window().last(now, q.seconds);
    let samples = t
        .handles
        .samples()
        .newest_first()
        .into_iter()
        .take(q.samples)
        .filter_map(sample)
        .collect();
    ShadowPool {
        pool: t.pool.name.to_string(),
        active,
        mirror_percent: None,
        step_percent: None,
        window: stats.totals(),
        samples,
    }
}

fn kind(name: &str) -> Option<MismatchKind> {
    MismatchKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str() == name)
}

fn side(s: SideSample) -> ShadowSide {
    ShadowSide {
        status: s.status,
        latency_ms: s.latency_ms,
        headers: s.headers,
    }
}

/// A kept sample as the API shows it (`None` for a kind this build does
/// not know, which the ring never holds).
fn sample(s: Sample) -> Option<ShadowSample> {
    Some(ShadowSample {
        kind: kind(&s.kind)?,
        at_ms: s.at_ms,
        method: s.method,
        target: s.target,
        request_headers: s.request_headers,
        primary: side(s.primary),
        mirror: side(s.mirror),
        diff: s.diff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::Kind;

    #[test]
    fn every_kind_has_its_api_name() {
        for k in Kind::ALL {
            assert_eq!(kind(k.as_str()).map(|m| m.as_str()), Some(k.as_str()));
        }
        assert_eq!(Kind::ALL.len(), MismatchKind::ALL.len());
    }
}
