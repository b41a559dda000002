//! Validation of this module's keys: every problem is reported with its
//! key and position, like the rest of the file, and nothing here is
//! looked at again per request (regexes compiled, templates parsed,
//! header values made).

use std::ops::Range;

use http::{HeaderName, HeaderValue, StatusCode};
use toml::Spanned;

use super::parse::{owned, parse_rate, parse_size, Op, Side};
use super::*;
use crate::config::error::closest;
use crate::config::model::{PoolConfig, ServerConfig};
use crate::config::raw::{Ordered, RawRoute, RawServer};
use crate::config::template::TemplateError;
use crate::config::validate::Validator;
use crate::config::{IpNet, TrustedProxies};

/// Largest fixed body (`respond`, `maintenance_response`).
const MAX_STATIC_BODY: usize = 1 << 20;
/// Most rules in one `request_headers` / `response_headers`.
const MAX_RULES: usize = 64;

impl Validator<'_> {
    /// `[server] max_body_bytes`, `proxy_protocol`, `trusted_proxies`.
    pub(in crate::config) fn server_http(&mut self, raw: &RawServer, server: &mut ServerConfig) {
        if let Some(size) = &raw.max_body_bytes {
            server.max_body_bytes = self.body_limit("server.max_body_bytes", size).bytes();
        }
        let mut trusted = Vec::new();
        if let Some(list) = &raw.trusted_proxies {
            for (i, entry) in list.get_ref().iter().enumerate() {
                match entry.get_ref().parse::<IpNet>() {
                    Ok(net) => trusted.push(net),
                    Err(e) => self.error(
                        entry.span(),
                        format!("server.trusted_proxies[{i}]"),
                        format!("invalid address block {:?}: {e}", entry.get_ref()),
                        Some("use CIDR blocks like \"10.0.0.0/8\" or addresses".into()),
                    ),
                }
            }
        }
        server.trusted_proxies = TrustedProxies(trusted);
        if let Some(pp) = &raw.proxy_protocol {
            server.proxy_protocol = *pp.get_ref();
            if server.proxy_protocol && server.trusted_proxies.is_empty() {
                self.error(
                    pp.span(),
                    "server.proxy_protocol",
                    "proxy_protocol needs trusted_proxies: the load balancers whose PROXY headers are believed",
                    Some(
                        "e.g. trusted_proxies = [\"10.0.0.0/8\"] (your load balancers' subnet)"
                            .into(),
                    ),
                );
            }
        }
    }

    fn body_limit(&mut self, key: &str, raw: &Spanned<RawSize>) -> BodyLimit {
        let parsed = match raw.get_ref() {
            RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| "a size cannot be negative"),
            RawSize::Text(s) => parse_size(s),
        };
        match parsed {
            Ok(0) => BodyLimit::Unlimited,
            Ok(n) => BodyLimit::Bytes(n),
            Err(why) => {
                self.error(
                    raw.span(),
                    key,
                    format!("invalid body size: {why}"),
                    Some("e.g. max_body_bytes = \"10MiB\" (0: no limit)".into()),
                );
                BodyLimit::Unlimited
            }
        }
    }

    /// A route's keys of this module. `split` is the route's validated
    /// split (empty for a route that answers by itself).
    pub(in crate::config) fn route_http(
        &mut self,
        key: &str,
        raw: &Spanned<RawRoute>,
        path_prefix: &str,
        split: &[(String, u32)],
        pools: &[PoolConfig],
    ) -> RouteHttp {
        let r = raw.get_ref();
        let action = self.action(key, raw);
        let answers = !matches!(action, Action::Proxy);
        let mut http = RouteHttp {
            max_body_bytes: r
                .max_body_bytes
                .as_ref()
                .map(|s| self.body_limit(&format!("{key}.max_body_bytes"), s)),
            strip_prefix: None,
            rewrite: r.rewrite.as_ref().and_then(|rw| self.rewrite(key, rw)),
            request_headers: r.request_headers.as_ref().and_then(|h| {
                self.header_rules(&format!("{key}.request_headers"), h, Side::Request)
            }),
            response_headers: r.response_headers.as_ref().and_then(|h| {
                self.header_rules(&format!("{key}.response_headers"), h, Side::Response)
            }),
            rate_limit: r
                .rate_limit
                .as_ref()
                .and_then(|rl| self.rate_limit(key, rl)),
            maintenance: r.maintenance.as_ref().is_some_and(|m| *m.get_ref()),
            maintenance_response: r
                .maintenance_response
                .as_ref()
                .and_then(|m| self.static_response(&format!("{key}.maintenance_response"), m))
                .unwrap_or_default(),
            standby: r
                .standby
                .as_ref()
                .and_then(|s| self.standby(key, s, split, pools)),
            action,
        };
        if let Some(strip) = r.strip_prefix.as_ref().filter(|s| *s.get_ref()) {
            http.strip_prefix = self.strip_prefix(key, strip.span(), path_prefix);
        }
        if answers {
            self.answering_route_conflicts(key, r);
            if let Some(h) = &http.response_headers {
                if h.uses(Var::Pool) {
                    let span = r.response_headers.as_ref().map_or(0..0, |h| h.span());
                    self.error(
                        span,
                        format!("{key}.response_headers"),
                        "$pool is empty on a route that answers by itself",
                        None,
                    );
                }
            }
        }
        http
    }

    fn action(&mut self, key: &str, raw: &Spanned<RawRoute>) -> Action {
        let r = raw.get_ref();
        match (&r.respond, &r.redirect) {
            (Some(_), Some(redirect)) => {
                self.error(
                    redirect.span(),
                    format!("{key}.redirect"),
                    "a route has either respond or redirect, not both",
                    None,
                );
                Action::Proxy
            }
            (Some(resp), None) => self
                .static_response(&format!("{key}.respond"), resp)
                .map_or(Action::Proxy, Action::Respond),
            (None, Some(redirect)) => self
                .redirect(&format!("{key}.redirect"), redirect)
                .map_or(Action::Proxy, Action::Redirect),
            (None, None) => Action::Proxy,
        }
    }

    /// Keys that mean forwarding, on a route that answers by itself.
    fn answering_route_conflicts(&mut self, key: &str, r: &RawRoute) {
        let what = if r.respond.is_some() {
            "respond"
        } else {
            "redirect"
        };
        // A redirect may build its target from the stripped or rewritten
        // path ($uri); a fixed answer has no use for either.
        let path_keys = match r.respond.is_some() {
            true => [
                ("strip_prefix", r.strip_prefix.as_ref().map(|s| s.span())),
                ("rewrite", r.rewrite.as_ref().map(|s| s.span())),
            ],
            false => [("strip_prefix", None), ("rewrite", None)],
        };
        let present: [(&str, Option<Range<usize>>); 7] = [
            ("split", r.split.as_ref().map(|s| s.span())),
            ("sticky", r.sticky.as_ref().map(|s| s.span())),
            ("force_header", r.force_header.as_ref().map(|s| s.span())),
            ("rollout", r.rollout.as_ref().map(|s| s.span())),
            ("standby", r.standby.as_ref().map(|s| s.span())),
            (
                "request_headers",
                r.request_headers.as_ref().map(|s| s.span()),
            ),
            (
                "max_body_bytes",
                r.max_body_bytes.as_ref().map(|s| s.span()),
            ),
        ];
        for (name, at) in present.into_iter().chain(path_keys) {
            if let Some(at) = at {
                self.error(
                    at,
                    format!("{key}.{name}"),
                    format!("{name} has no effect on a route that answers by itself ({what})"),
                    Some(format!(
                        "remove {name}, or remove {what} to forward to a pool"
                    )),
                );
            }
        }
    }

    fn strip_prefix(
        &mut self,
        key: &str,
        span: Range<usize>,
        path_prefix: &str,
    ) -> Option<StripPrefix> {
        let skey = format!("{key}.strip_prefix");
        if path_prefix == "/" {
            self.error(
                span,
                skey,
                "strip_prefix on a route whose path_prefix is \"/\" strips nothing",
                Some("set path_prefix, e.g. path_prefix = \"/api\"".into()),
            );
            return None;
        }
        let trimmed = path_prefix.strip_suffix('/').unwrap_or(path_prefix);
        match HeaderValue::from_str(trimmed) {
            Ok(header) => Some(StripPrefix {
                prefix: path_prefix.into(),
                header,
            }),
            Err(_) => {
                self.error(
                    span,
                    skey,
                    format!("path_prefix {path_prefix:?} cannot be sent as X-Forwarded-Prefix"),
                    Some("use a prefix of visible ASCII characters".into()),
                );
                None
            }
        }
    }

    fn rewrite(&mut self, key: &str, raw: &Spanned<RawRewrite>) -> Option<PathRewrite> {
        let rkey = format!("{key}.rewrite");
        let rw = raw.get_ref();
        let (Some(from), Some(to)) = (&rw.from, &rw.to) else {
            self.error(
                raw.span(),
                rkey,
                "rewrite needs from and to",
                Some("e.g. rewrite = { from = \"^/old/(.*)\", to = \"/new/$1\" }".into()),
            );
            return None;
        };
        if !from.get_ref().starts_with('^') {
            self.error(
                from.span(),
                format!("{rkey}.from"),
                format!("rewrite pattern {:?} is not anchored", from.get_ref()),
                Some(format!(
                    "start it with ^ so it matches from the path's start: \"^{}\"",
                    from.get_ref()
                )),
            );
            return None;
        }
        let regex = match regex::RegexBuilder::new(from.get_ref())
            .size_limit(1 << 20)
            .nest_limit(64)
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let text = e.to_string();
                let last = text.lines().last().unwrap_or("").trim().to_owned();
                self.error(
                    from.span(),
                    format!("{rkey}.from"),
                    format!("invalid regex: {last}"),
                    Some("the syntax is Rust's regex crate (like RE2; no look-around)".into()),
                );
                return None;
            }
        };
        let groups = regex.captures_len();
        let tkey = format!("{rkey}.to");
        let resolve = |name: &str| match name.parse::<usize>() {
            Ok(n) => (n < groups).then_some(Capture(n)),
            Err(_) => regex
                .capture_names()
                .position(|n| n == Some(name))
                .map(Capture),
        };
        let template = match Template::parse(to.get_ref(), resolve) {
            Ok(t) => t,
            Err(e) => {
                let hint = match &e {
                    TemplateError::Unknown(_) => format!(
                        "from has {} capture group(s): $1..${}",
                        groups - 1,
                        groups - 1
                    ),
                    _ => "write $$ for a dollar sign".into(),
                };
                self.error(
                    to.span(),
                    tkey,
                    format!("invalid replacement: {e}"),
                    Some(hint),
                );
                return None;
            }
        };
        let path_ok = template.literals().flatten().all(|&b| is_pchar(b));
        if !to.get_ref().starts_with('/') || !path_ok {
            self.error(
                to.span(),
                tkey,
                format!("replacement {:?} is not a path", to.get_ref()),
                Some(
                    "start it with / and keep to path characters; the query string is kept as is"
                        .into(),
                ),
            );
            return None;
        }
        Some(PathRewrite {
            from: regex,
            to: template,
        })
    }

    fn header_rules(
        &mut self,
        key: &str,
        raw: &Spanned<RawHeaderRules>,
        side: Side,
    ) -> Option<HeaderRules> {
        let rules = raw.get_ref();
        let mut seen: Vec<(HeaderName, Op)> = Vec::new();
        let mut drop = Vec::new();
        let mut append = Vec::new();
        let mut ok = true;
        let tables = [(Op::Set, "set", &rules.set), (Op::Add, "add", &rules.add)];
        for (op, opname, table) in tables {
            let Some(table) = table else { continue };
            let Ordered(entries) = table.get_ref();
            for (name, value) in entries {
                let nkey = format!("{key}.{opname}.{}", name.get_ref());
                let Some(h) = self.rule_name(&nkey, name, side, op, &mut seen) else {
                    ok = false;
                    continue;
                };
                match self.header_template(&nkey, value) {
                    Some(t) => {
                        if op == Op::Set {
                            drop.push(h.clone());
                        }
                        append.push((h, t));
                    }
                    None => ok = false,
                }
            }
        }
        if let Some(list) = &rules.remove {
            for (i, name) in list.get_ref().iter().enumerate() {
                let nkey = format!("{key}.remove[{i}]");
                match self.rule_name(&nkey, name, side, Op::Remove, &mut seen) {
                    Some(h) => drop.push(h),
                    None => ok = false,
                }
            }
        }
        if seen.len() > MAX_RULES {
            self.error(
                raw.span(),
                key,
                format!("{} header rules; at most {MAX_RULES}", seen.len()),
                None,
            );
            return None;
        }
        if seen.is_empty() {
            self.error(
                raw.span(),
                key,
                "no header rules",
                Some("e.g. { set = { X-Env = \"prod\" }, remove = [\"Server\"] }".into()),
            );
            return None;
        }
        ok.then(|| HeaderRules {
            drop: drop.into(),
            append: append.into(),
        })
    }

    /// A rule's header name: valid, not owned by the proxy, in one rule.
    fn rule_name(
        &mut self,
        key: &str,
        raw: &Spanned<String>,
        side: Side,
        op: Op,
        seen: &mut Vec<(HeaderName, Op)>,
    ) -> Option<HeaderName> {
        let h = self.header_name(key, raw)?;
        if let Some(why) = owned(side, op, &h) {
            self.error(
                raw.span(),
                key,
                format!("header {} cannot be changed by a rule", raw.get_ref()),
                Some(why.into()),
            );
            return None;
        }
        if let Some((_, other)) = seen.iter().find(|(n, _)| *n == h) {
            let other = match other {
                Op::Set => "set",
                Op::Add => "add",
                Op::Remove => "remove",
            };
            self.error(
                raw.span(),
                key,
                format!("header {} already has a rule ({other})", raw.get_ref()),
                Some("give each header one rule: set replaces, add appends, remove drops".into()),
            );
            return None;
        }
        seen.push((h.clone(), op));
        Some(h)
    }

    fn header_template(&mut self, key: &str, raw: &Spanned<String>) -> Option<Template<Var>> {
        let known = || {
            Var::ALL
                .iter()
                .map(|v| format!("${}", v.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match Template::parse(raw.get_ref(), Var::from_name) {
            Ok(t) if t.literals().all(|l| HeaderValue::from_bytes(l).is_ok()) => Some(t),
            Ok(_) => {
                self.error(
                    raw.span(),
                    key,
                    format!("invalid header value {:?}", raw.get_ref()),
                    Some("header values cannot hold control characters".into()),
                );
                None
            }
            Err(e) => {
                let hint = match &e {
                    TemplateError::Unknown(name) => {
                        match closest(name, Var::ALL.iter().map(|v| v.name())) {
                            Some(c) => format!("did you mean ${c}? variables: {}", known()),
                            None => format!("variables: {}", known()),
                        }
                    }
                    _ => "write $$ for a dollar sign".into(),
                };
                self.error(raw.span(), key, format!("invalid value: {e}"), Some(hint));
                None
            }
        }
    }

    fn rate_limit(&mut self, key: &str, raw: &Spanned<RawRateLimit>) -> Option<RateLimitConfig> {
        let rkey = format!("{key}.rate_limit");
        let rl = raw.get_ref();
        let Some(rate) = &rl.rate else {
            self.error(
                raw.span(),
                &rkey,
                "rate_limit needs a rate",
                Some("e.g. rate_limit = { rate = \"100/s\", burst = 50, key = \"ip\" }".into()),
            );
            return None;
        };
        let (count, per) = match parse_rate(rate.get_ref()) {
            Ok(r) => r,
            Err(why) => {
                self.error(
                    rate.span(),
                    format!("{rkey}.rate"),
                    format!("invalid rate {:?}", rate.get_ref()),
                    Some(why.into()),
                );
                return None;
            }
        };
        // Default: one second's worth of requests (at least one).
        let per_sec = (u64::from(count) * 1000).div_ceil(per.as_millis().max(1) as u64);
        let default_burst = per_sec.clamp(1, 1_000_000) as i64;
        let burst = self.int(
            &format!("{rkey}.burst"),
            rl.burst.as_ref(),
            1,
            1_000_000,
            default_burst,
        ) as u32;
        let key = match rl.key.as_ref().map(|k| (k, k.get_ref().as_str())) {
            None | Some((_, "ip")) => RateKey::Ip,
            Some((k, text)) => match text.strip_prefix("header:") {
                Some(name) => {
                    let name = Spanned::new(k.span(), name.trim().to_owned());
                    RateKey::Header(self.header_name(&format!("{rkey}.key"), &name)?)
                }
                None => {
                    self.error(
                        k.span(),
                        format!("{rkey}.key"),
                        format!("unknown rate limit key {text:?}"),
                        Some("use \"ip\" or \"header:NAME\" (e.g. \"header:X-API-Key\")".into()),
                    );
                    return None;
                }
            },
        };
        Some(RateLimitConfig {
            count,
            per,
            burst,
            key,
        })
    }

    fn static_response(&mut self, key: &str, raw: &Spanned<RawRespond>) -> Option<StaticResponse> {
        let r = raw.get_ref();
        let mut out = StaticResponse {
            status: StatusCode::OK,
            body: bytes::Bytes::new(),
            content_type: HeaderValue::from_static("text/plain; charset=utf-8"),
            retry_after: None,
            reason: None,
        };
        if key.ends_with("maintenance_response") {
            let d = StaticResponse::maintenance_default();
            out.status = d.status;
            out.reason = d.reason;
        }
        if let Some(s) = &r.status {
            match u16::try_from(*s.get_ref())
                .ok()
                .and_then(|n| StatusCode::from_u16(n).ok())
            {
                Some(st) if (200..600).contains(&st.as_u16()) && !st.is_redirection() => {
                    out.status = st
                }
                _ => {
                    self.error(
                        s.span(),
                        format!("{key}.status"),
                        format!("status {} cannot be a fixed answer", s.get_ref()),
                        Some("use 200-299 or 400-599; for 3xx use redirect".into()),
                    );
                    return None;
                }
            }
        }
        if let Some(b) = &r.body {
            if b.get_ref().len() > MAX_STATIC_BODY {
                self.error(
                    b.span(),
                    format!("{key}.body"),
                    format!("body of {} bytes; at most 1 MiB", b.get_ref().len()),
                    None,
                );
                return None;
            }
            out.body = bytes::Bytes::from(b.get_ref().clone());
        }
        if let Some(ct) = &r.content_type {
            match HeaderValue::from_str(ct.get_ref()) {
                Ok(v) => out.content_type = v,
                Err(_) => {
                    self.error(
                        ct.span(),
                        format!("{key}.content_type"),
                        format!("invalid content type {:?}", ct.get_ref()),
                        Some("e.g. \"text/html; charset=utf-8\"".into()),
                    );
                    return None;
                }
            }
        }
        if let Some(ra) = &r.retry_after {
            let d = self.duration(
                &format!("{key}.retry_after"),
                Some(ra),
                std::time::Duration::ZERO,
                true,
            );
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            out.retry_after = Some(HeaderValue::from(secs));
        } else if out.reason.is_some() {
            out.retry_after = StaticResponse::maintenance_default().retry_after;
        }
        Some(out)
    }

    fn redirect(&mut self, key: &str, raw: &Spanned<RawRedirect>) -> Option<Redirect> {
        let r = raw.get_ref();
        let Some(to) = &r.to else {
            self.error(
                raw.span(),
                key,
                "redirect needs to",
                Some(
                    "e.g. redirect = { to = \"https://new.example$request_uri\", status = 301 }"
                        .into(),
                ),
            );
            return None;
        };
        let tkey = format!("{key}.to");
        let template = self.header_template(&tkey, to)?;
        let text = to.get_ref();
        let absolute = text.starts_with("http://") || text.starts_with("https://");
        if !(absolute || (text.starts_with('/') && !text.starts_with("//"))) {
            self.error(
                to.span(),
                &tkey,
                format!("redirect target {text:?} is neither a URL nor a path"),
                Some("start it with https://, http:// or a single /".into()),
            );
            return None;
        }
        if template.refs().any(|v| *v == Var::Pool) {
            self.error(to.span(), &tkey, "$pool is empty on a redirect route", None);
            return None;
        }
        let status = match &r.status {
            None => StatusCode::FOUND,
            Some(s) => match *s.get_ref() {
                n @ (301 | 302 | 303 | 307 | 308) => StatusCode::from_u16(n as u16).ok()?,
                n => {
                    self.error(
                        s.span(),
                        format!("{key}.status"),
                        format!("{n} is not a redirect status"),
                        Some("use 301, 302, 303, 307 or 308".into()),
                    );
                    return None;
                }
            },
        };
        Some(Redirect {
            to: template,
            status,
        })
    }

    fn standby(
        &mut self,
        key: &str,
        raw: &Spanned<String>,
        split: &[(String, u32)],
        pools: &[PoolConfig],
    ) -> Option<String> {
        let skey = format!("{key}.standby");
        let name = raw.get_ref();
        let Some(pool) = pools.iter().find(|p| p.name == *name) else {
            let names = pools.iter().map(|p| p.name.as_str());
            let hint = match closest(name, names.clone()) {
                Some(c) => format!("did you mean {c:?}?"),
                None => format!("defined pools: {}", names.collect::<Vec<_>>().join(", ")),
            };
            self.error(
                raw.span(),
                skey,
                format!("standby names unknown pool {name:?}"),
                Some(hint),
            );
            return None;
        };
        if split.iter().any(|(p, w)| p == name && *w > 0) {
            self.error(
                raw.span(),
                skey,
                format!("standby pool {name:?} already carries weight in the split"),
                Some(
                    "set its weight to 0, or remove standby (a standby takes traffic only \
                     while the split's pools have no available backend)"
                        .into(),
                ),
            );
            return None;
        }
        if pool.backends.is_empty() && pool.names.is_empty() {
            self.error(
                raw.span(),
                skey,
                format!("standby pool {name:?} has no backends"),
                None,
            );
            return None;
        }
        Some(name.clone())
    }
}

/// May `b` appear in a path (RFC 3986 `pchar`, `/`, and `%` of an escape)?
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}
