//! Validation of `[routes.rollout]` (the canary engine's settings), kept
//! apart from `validate` so that file stays about the routing shape.

use std::time::Duration;

use toml::Spanned;

use super::model::*;
use super::raw::*;
use super::shadow::StepDefaults;
use super::validate::Validator;
use super::values::{ms, DAY, HOUR, MAX_DURATION, MS};

impl Validator<'_> {
    /// `[routes.rollout]`.
    pub(super) fn rollout(
        &mut self,
        key: &str,
        raw: &Spanned<RawRollout>,
        pool_names: &[&str],
    ) -> Option<RolloutConfig> {
        let key = format!("{key}.rollout");
        let r = raw.get_ref();
        let mut ok = true;
        let mut pool = |this: &mut Self, name: &str, v: &Option<Spanned<String>>| match v {
            None => {
                this.error(
                    raw.span(),
                    format!("{key}.{name}"),
                    format!("rollout has no {name} pool"),
                    None,
                );
                ok = false;
                String::new()
            }
            Some(p) if !pool_names.contains(&p.get_ref().as_str()) => {
                this.error(
                    p.span(),
                    format!("{key}.{name}"),
                    format!("unknown pool {:?}", p.get_ref()),
                    None,
                );
                ok = false;
                String::new()
            }
            Some(p) => p.get_ref().clone(),
        };
        let canary = pool(self, "canary", &r.canary);
        let stable = pool(self, "stable", &r.stable);
        if ok && canary == stable {
            self.error(
                raw.span(),
                format!("{key}.canary"),
                "canary and stable must be different pools",
                None,
            );
            ok = false;
        }
        let steps: Vec<u32> = match &r.steps {
            None => vec![5, 10, 25, 50, 100],
            Some(s) => {
                let v = s.get_ref();
                let valid = !v.is_empty()
                    && v.iter().all(|&p| (1..=100).contains(&p))
                    && v.windows(2).all(|w| w[0] < w[1]);
                if !valid {
                    self.error(
                        s.span(),
                        format!("{key}.steps"),
                        "steps must be rising percentages between 1 and 100",
                        Some("e.g. steps = [5, 10, 25, 50, 100]".into()),
                    );
                    ok = false;
                }
                v.iter().map(|&p| p.clamp(0, 100) as u32).collect()
            }
        };
        let step_interval = self.duration_in(
            &format!("{key}.step_interval"),
            r.step_interval.as_ref(),
            Duration::from_secs(60),
            ms(10)..=DAY,
        );
        let min_requests = self.int(
            &format!("{key}.min_requests"),
            r.min_requests.as_ref(),
            0,
            1_000_000_000,
            100,
        ) as u64;
        let mut ratio =
            |this: &mut Self, name: &str, v: &Option<Spanned<f64>>, max: f64| -> Option<f64> {
                let v = v.as_ref()?;
                if !(0.0..=max).contains(v.get_ref()) {
                    this.error(
                        v.span(),
                        format!("{key}.{name}"),
                        format!("{name} must be between 0 and {max}"),
                        None,
                    );
                    ok = false;
                }
                Some(*v.get_ref())
            };
        let max_error_rate = ratio(self, "max_error_rate", &r.max_error_rate, 1.0).unwrap_or(0.01);
        let max_error_rate_increase = ratio(
            self,
            "max_error_rate_increase",
            &r.max_error_rate_increase,
            1.0,
        );
        let max_latency_ratio = ratio(self, "max_latency_ratio", &r.max_latency_ratio, f64::MAX);
        let max_p99_latency = self.duration_in(
            &format!("{key}.max_p99_latency"),
            r.max_p99_latency.as_ref(),
            Duration::from_secs(2),
            MS..=HOUR,
        );
        let failure_threshold = self.int(
            &format!("{key}.failure_threshold"),
            r.failure_threshold.as_ref(),
            1,
            1000,
            1,
        ) as u32;
        let max_wait = self.duration_in(
            &format!("{key}.max_wait"),
            r.max_wait.as_ref(),
            step_interval.saturating_mul(5),
            Duration::ZERO..=MAX_DURATION,
        );
        let on_insufficient_traffic = match r
            .on_insufficient_traffic
            .as_ref()
            .map(|v| (v, v.get_ref().as_str()))
        {
            None | Some((_, "rollback")) => InsufficientTraffic::Rollback,
            Some((_, "hold")) => InsufficientTraffic::Hold,
            Some((v, other)) => {
                self.error(
                    v.span(),
                    format!("{key}.on_insufficient_traffic"),
                    format!("unknown value {other:?}"),
                    Some("use \"rollback\" or \"hold\"".into()),
                );
                ok = false;
                InsufficientTraffic::Rollback
            }
        };
        let shadow = r.shadow.as_ref().map(|s| {
            let defaults = StepDefaults {
                duration: step_interval,
                max_error_rate,
                max_latency_ratio,
                min_requests,
            };
            self.shadow_step(&key, s, defaults)
        });
        ok.then_some(RolloutConfig {
            canary,
            stable,
            steps,
            step_interval,
            min_requests,
            max_error_rate,
            max_p99_latency,
            max_error_rate_increase,
            max_latency_ratio,
            failure_threshold,
            max_wait,
            on_insufficient_traffic,
            shadow,
        })
    }
}
