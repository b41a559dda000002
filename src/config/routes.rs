//! Validation of `[[routes]]`: names, host and path matching, the split,
//! `sticky` and the force header, kept apart from `validate` (the server,
//! admin, pools and health) so each file stays about one part of the file.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::error::closest;
use super::model::*;
use super::raw::*;
use super::validate::{valid_name, Validator};

/// Largest weight in a split; keeps sums far from overflow.
const MAX_SPLIT_WEIGHT: i64 = 1_000_000;

impl Validator<'_> {
    pub(super) fn routes(
        &mut self,
        raw: &[Spanned<RawRoute>],
        pools: &[PoolConfig],
    ) -> Vec<RouteConfig> {
        let mut out = Vec::new();
        let mut names = HashSet::new();
        let pool_names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        for (i, r) in raw.iter().enumerate() {
            let key = format!("routes[{i}]");
            let route = r.get_ref();
            let name = match &route.name {
                None => {
                    self.error(r.span(), format!("{key}.name"), "route has no name", None);
                    format!("route-{i}")
                }
                Some(n) => {
                    if !valid_name(n.get_ref()) {
                        self.error(
                            n.span(),
                            format!("{key}.name"),
                            format!("invalid route name {:?}", n.get_ref()),
                            Some("use letters, digits, '-' and '_'".into()),
                        );
                    }
                    if !names.insert(n.get_ref().clone()) {
                        self.error(
                            n.span(),
                            format!("{key}.name"),
                            format!("duplicate route name {:?}", n.get_ref()),
                            Some("route names must be unique".into()),
                        );
                    }
                    n.get_ref().clone()
                }
            };
            let host = route.host.as_ref().and_then(|h| self.host(&key, h));
            let path_prefix = match &route.path_prefix {
                None => "/".to_owned(),
                Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
                Some(p) => {
                    self.error(
                        p.span(),
                        format!("{key}.path_prefix"),
                        format!("path prefix {:?} must start with '/'", p.get_ref()),
                        None,
                    );
                    "/".to_owned()
                }
            };
            // A route that answers by itself (respond, redirect) has no split.
            let answers = route.respond.is_some() || route.redirect.is_some();
            let split = if answers {
                Vec::new()
            } else {
                self.split(&key, r.span(), route.split.as_ref(), pools, &pool_names)
            };
            let http = self.route_http(&key, r, &path_prefix, &split, pools);
            let mirror = route
                .mirror
                .as_ref()
                .and_then(|m| self.mirror(&key, m, &pool_names, answers));
            let sticky = route.sticky.as_ref().and_then(|s| self.sticky(&key, s));
            let force_header = route
                .force_header
                .as_ref()
                .and_then(|h| self.header_name(&format!("{key}.force_header"), h));
            out.push(RouteConfig {
                name,
                host,
                path_prefix,
                split,
                sticky,
                force_header,
                failover: route.failover.unwrap_or(true),
                rollout: route
                    .rollout
                    .as_ref()
                    .and_then(|ro| self.rollout(&key, ro, &pool_names)),
                http,
                mirror,
            });
        }
        out
    }

    fn split(
        &mut self,
        key: &str,
        route_span: Range<usize>,
        raw: Option<&Spanned<Ordered<Spanned<i64>>>>,
        pools: &[PoolConfig],
        pool_names: &[&str],
    ) -> Vec<(String, u32)> {
        let key = format!("{key}.split");
        let Some(raw) = raw else {
            self.error(
                route_span,
                &key,
                "route has no split",
                Some(
                    "e.g. split = { blue = 100 }; a route that answers by itself has respond or redirect"
                        .into(),
                ),
            );
            return Vec::new();
        };
        let mut out: Vec<(String, u32)> = Vec::new();
        let mut total: i64 = 0;
        for (pool, weight) in &raw.get_ref().0 {
            let pkey = format!("{key}.{}", pool.get_ref());
            let w = *weight.get_ref();
            let Some(cfg) = pools.iter().find(|p| p.name == *pool.get_ref()) else {
                let hint = match closest(pool.get_ref(), pool_names.iter().copied()) {
                    Some(c) => format!(
                        "did you mean {c:?}? defined pools: {}",
                        pool_names.join(", ")
                    ),
                    None if pool_names.is_empty() => "no [pools.NAME] tables are defined".into(),
                    None => format!("defined pools: {}", pool_names.join(", ")),
                };
                self.error(
                    pool.span(),
                    pkey,
                    format!("split names unknown pool {:?}", pool.get_ref()),
                    Some(hint),
                );
                continue;
            };
            if !(0..=MAX_SPLIT_WEIGHT).contains(&w) {
                self.error(
                    weight.span(),
                    &pkey,
                    format!("weight {w} is out of range"),
                    Some(format!(
                        "weights are whole numbers from 0 to {MAX_SPLIT_WEIGHT}"
                    )),
                );
                continue;
            }
            if w > 0 && cfg.backends.is_empty() && cfg.names.is_empty() {
                self.error(
                    weight.span(),
                    &pkey,
                    format!("pool {:?} has no backends but carries weight {w}", cfg.name),
                    Some("add backends to the pool or set its weight to 0".into()),
                );
            }
            total += w;
            out.push((pool.get_ref().clone(), w as u32));
        }
        if total == 0 && !raw.get_ref().0.is_empty() && out.len() == raw.get_ref().0.len() {
            self.error(
                raw.span(),
                &key,
                "all weights are zero, so the route could serve nothing",
                Some("give at least one pool a positive weight".into()),
            );
        } else if raw.get_ref().0.is_empty() {
            self.error(
                raw.span(),
                &key,
                "split is empty",
                Some("e.g. split = { blue = 100 }".into()),
            );
        }
        out
    }

    fn sticky(&mut self, key: &str, raw: &Spanned<RawSticky>) -> Option<StickyConfig> {
        let s = raw.get_ref();
        if s.header.is_none() && s.cookie.is_none() {
            self.error(
                raw.span(),
                format!("{key}.sticky"),
                "sticky needs a header, a cookie, or both",
                Some("e.g. sticky = { header = \"X-User-ID\", cookie = \"switchyard_id\" }".into()),
            );
            return None;
        }
        let header = match &s.header {
            Some(h) => Some(self.header_name(&format!("{key}.sticky.header"), h)?),
            None => None,
        };
        let cookie = match &s.cookie {
            Some(c) if valid_cookie_name(c.get_ref()) => Some(c.get_ref().clone()),
            Some(c) => {
                self.error(
                    c.span(),
                    format!("{key}.sticky.cookie"),
                    format!("invalid cookie name {:?}", c.get_ref()),
                    None,
                );
                return None;
            }
            None => None,
        };
        Some(StickyConfig { header, cookie })
    }

    fn host(&mut self, key: &str, raw: &Spanned<String>) -> Option<HostMatch> {
        let h = raw.get_ref().to_ascii_lowercase();
        let (suffix, name) = match h.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, h.as_str()),
        };
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            self.error(
                raw.span(),
                format!("{key}.host"),
                format!("invalid host pattern {:?}", raw.get_ref()),
                Some(
                    "use a name like \"api.example.com\" or \"*.example.com\", without a port"
                        .into(),
                ),
            );
            return None;
        }
        Some(if suffix {
            HostMatch::Suffix(format!(".{name}"))
        } else {
            HostMatch::Exact(name.to_owned())
        })
    }
}

fn valid_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
