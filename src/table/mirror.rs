//! A route's shadow traffic in one table generation: the `mirror` it
//! always has, and the mirror of its rollout's shadow step, which is on
//! only while the engine says so (`ShadowHandles::stepping`, kept across
//! generations with the handles, so a reload during the step keeps it on).
//! While the step runs it takes the place of the configured mirror.
//!
//! A route without either holds `None` and its requests pay one branch.

use std::sync::Arc;

use super::pool::Pool;
use crate::config::{MirrorOptions, RouteConfig};
use crate::stats::shadow::ShadowHandles;
use crate::stats::Generation;

/// One place copies go to.
#[derive(Debug)]
pub struct MirrorTarget {
    pub pool: Arc<Pool>,
    /// The share copied, in percent (as configured).
    pub percent: f64,
    /// The share copied, as a bound on a `u32` draw (2^32: all).
    threshold: u64,
    pub copy: Arc<MirrorOptions>,
    pub handles: Arc<ShadowHandles>,
}

impl MirrorTarget {
    fn new(
        route: &Arc<str>,
        pool: Arc<Pool>,
        percent: f64,
        copy: &MirrorOptions,
        stats: &mut Generation<'_>,
    ) -> Self {
        let handles = stats.shadow(route, &pool.name);
        MirrorTarget {
            threshold: (percent.clamp(0.0, 100.0) / 100.0 * 4_294_967_296.0).round() as u64,
            percent,
            pool,
            copy: Arc::new(copy.clone()),
            handles,
        }
    }

    /// Is this request one of the share copied? (A random draw.)
    #[inline]
    pub fn draw(&self) -> bool {
        u64::from(fastrand::u32(..)) < self.threshold
    }
}

/// See the module doc.
#[derive(Debug)]
pub struct RouteMirror {
    configured: Option<MirrorTarget>,
    step: Option<MirrorTarget>,
}

impl RouteMirror {
    /// The mirror of route `r`, `None` when it has neither a `mirror` nor
    /// a rollout with a shadow step.
    pub(super) fn new(
        r: &RouteConfig,
        route: &Arc<str>,
        pools: &[Arc<Pool>],
        stats: &mut Generation<'_>,
    ) -> Option<Box<Self>> {
        let find = |name: &str| pools.iter().find(|p| &*p.name == name).cloned();
        let configured = r.mirror.as_ref().and_then(|m| {
            let pool = find(&m.pool)?;
            Some(MirrorTarget::new(route, pool, m.percent, &m.copy, stats))
        });
        let step = r.rollout.as_ref().and_then(|ro| {
            let shadow = ro.shadow.as_ref()?;
            let pool = find(&ro.canary)?;
            Some(MirrorTarget::new(
                route,
                pool,
                shadow.percent,
                &shadow.copy,
                stats,
            ))
        });
        (configured.is_some() || step.is_some()).then(|| Box::new(RouteMirror { configured, step }))
    }

    /// Where copies go now: the shadow step's target while it runs, else
    /// the configured one.
    #[inline]
    pub fn active(&self) -> Option<&MirrorTarget> {
        match &self.step {
            Some(s) if s.handles.stepping() => Some(s),
            _ => self.configured.as_ref(),
        }
    }

    /// The route's `mirror`, whether copies go there now or not.
    pub fn configured(&self) -> Option<&MirrorTarget> {
        self.configured.as_ref()
    }

    /// The shadow step's target (the rollout engine turns it on and off).
    pub fn step(&self) -> Option<&MirrorTarget> {
        self.step.as_ref()
    }

    /// Keeps the metric series from expiring.
    pub(super) fn touch(&self) {
        for t in self.configured.iter().chain(&self.step) {
            t.handles.touch();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::StatsRegistry;
    use crate::table::{Registry, RoutingTable};

    fn table(extra: &str, stats: &mut StatsRegistry) -> RoutingTable {
        let text = format!(
            "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[pools.green]\nbackends = [\"127.0.0.1:2\"]\n[[routes]]\nname = \"api\"\nsplit = {{ blue = 100 }}\n{extra}"
        );
        let c = crate::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let mut registry = Registry::default();
        registry.reconcile(&c);
        RoutingTable::build(&c, &registry, stats, 1)
    }

    fn mirror(t: &RoutingTable) -> Option<&RouteMirror> {
        t.route(None, "/")?.mirror.as_deref()
    }

    #[test]
    fn the_shadow_step_takes_the_place_of_the_mirror_while_it_runs() {
        let mut stats = StatsRegistry::new(None);
        let t = table(
            "mirror = { pool = \"blue\", percent = 100 }\n[routes.rollout]\ncanary = \"green\"\nstable = \"blue\"\nshadow = { percent = 0.5 }\n",
            &mut stats,
        );
        let m = mirror(&t).unwrap();
        assert_eq!(&*m.active().unwrap().pool.name, "blue");
        let step = m.step().unwrap();
        step.handles.set_stepping(true);
        assert_eq!(&*m.active().unwrap().pool.name, "green");
        // A new generation keeps the switch (it lives with the handles).
        let t2 = table(
            "mirror = { pool = \"blue\" }\n[routes.rollout]\ncanary = \"green\"\nstable = \"blue\"\nshadow = {}\n",
            &mut stats,
        );
        assert_eq!(&*mirror(&t2).unwrap().active().unwrap().pool.name, "green");
        step.handles.set_stepping(false);
        assert_eq!(&*mirror(&t2).unwrap().active().unwrap().pool.name, "blue");
    }

    #[test]
    fn routes_without_shadow_traffic_have_none_and_shares_are_drawn() {
        let mut stats = StatsRegistry::new(None);
        assert!(mirror(&table("", &mut stats)).is_none());
        let t = table(
            "[routes.rollout]\ncanary = \"green\"\nstable = \"blue\"\nshadow = {}\n",
            &mut stats,
        );
        let m = mirror(&t).unwrap();
        assert!(
            m.active().is_none(),
            "the step is off until the engine starts it"
        );
        for (percent, lo, hi) in [(0.0, 0, 0), (100.0, 10_000, 10_000), (10.0, 800, 1200)] {
            let t = table(
                &format!("mirror = {{ pool = \"green\", percent = {percent:?} }}\n"),
                &mut stats,
            );
            let target = mirror(&t).unwrap().active().unwrap();
            let n = (0..10_000).filter(|_| target.draw()).count();
            assert!((lo..=hi).contains(&n), "{percent}%: {n} of 10000");
        }
    }
}
