//! Configuration: the TOML file (`raw`), its validation (`validate`) and the
//! typed model everything else reads (`model`). Loading never has side
//! effects: a file is read, parsed and validated into a `Config`, or every
//! problem found is returned as a `ConfigError`.

mod backend;
mod cluster;
mod error;
mod http;
mod model;
mod net;
mod notify;
pub mod pem;
mod raw;
mod resilience;
mod restart;
mod rollout;
mod routes;
mod shadow;
pub mod template;
mod tls;
mod unknown;
mod validate;
mod values;

use std::path::Path;

pub use cluster::{ClusterConfig, EtcdAuth, EtcdEndpoint, EtcdTls, DEFAULT_LEASE_TTL};
pub use error::{ConfigError, Diagnostic};
pub use http::{
    Action, BodyLimit, HeaderRules, PathRewrite, RateKey, RateLimitConfig, Redirect, RouteHttp,
    StaticResponse, StripPrefix, DEFAULT_MAX_BODY_BYTES,
};
pub use model::*;
pub use net::{IpNet, IpNetError, TrustedProxies};
pub use notify::{
    EventPattern, NotifyConfig, WebhookHeaders, WebhookUrl, DEFAULT_EVENTS as DEFAULT_NOTIFY_EVENTS,
};
/// The file's top-level shape, for tests that check every section is
/// accounted for (`control::document`).
#[cfg(test)]
pub(crate) use raw::RawConfig as RawConfigProbe;
pub use resilience::MAX_RETRIES;
pub use restart::{restart_needed, FIXED_AT_START};
pub use shadow::{
    BodyCompare, CompareConfig, JsonPath, MirrorConfig, MirrorOptions, PathError, Segment,
    ShadowStepConfig, Step, DEFAULT_COMPARE_BODY_BYTES, DEFAULT_MIRROR_BODY_BYTES,
    DEFAULT_MIRROR_IN_FLIGHT, DEFAULT_MIRROR_METHODS,
};

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<(Config, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = parse(&text, path)?;
    Ok((config, text))
}

/// Validates configuration text; `path` is used only in error messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |diagnostics| ConfigError::Invalid {
        path: path.to_owned(),
        diagnostics,
    };
    // An unknown key is reported, blanked out and the text parsed again,
    // so one run names all of them (serde stops at the first).
    let mut diags = Vec::new();
    let mut current = std::borrow::Cow::Borrowed(text);
    let raw: raw::RawConfig = loop {
        match toml::from_str(&current) {
            Ok(raw) => break raw,
            Err(e) => {
                let mut d = serde_diagnostic(&current, &e);
                // Several unknown keys of one table: list its keys once.
                if d.hint
                    .as_deref()
                    .is_some_and(|h| h.starts_with("known keys"))
                    && diags.iter().any(|p: &Diagnostic| p.hint == d.hint)
                {
                    d.hint = Some("known keys: as listed above".into());
                }
                diags.push(d);
                let next = e
                    .span()
                    .filter(|_| e.message().contains("unknown field `"))
                    .filter(|_| diags.len() < unknown::MAX_UNKNOWN)
                    .and_then(|s| unknown::without_entry_at(&current, s.start));
                match next {
                    Some(t) => current = std::borrow::Cow::Owned(t),
                    None => return Err(invalid(diags)),
                }
            }
        }
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let mut v = validate::Validator::new(&current).with_base(base);
    match v.config(raw) {
        Some(config) if diags.is_empty() => Ok(config),
        _ => {
            diags.append(&mut v.diags);
            Err(invalid(diags))
        }
    }
}

/// Turns a TOML or serde error into a diagnostic with a key and a hint.
fn serde_diagnostic(text: &str, e: &toml::de::Error) -> Diagnostic {
    let span = e.span().unwrap_or(0..0);
    let (line, column) = error::position(text, span.start);
    let snippet = text.get(span.clone()).unwrap_or("").trim();
    let table = enclosing_table(text, span.start);
    let mut message = e.message().trim().to_owned();
    let mut hint = None;
    let mut key = table.clone();
    if let Some(field) = between(&message, "unknown field `", "`") {
        let inline = inline_tables(text, span.start);
        let table = match inline.is_empty() {
            true => table.clone(),
            false => join_key(&table, &inline),
        };
        key = join_key(&table, field);
        let expected: Vec<&str> = message
            .split("expected ")
            .nth(1)
            .map(|rest| rest.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        // The hint names the keys; the message need not list them too.
        let short = format!("unknown field `{field}`");
        hint = Some(match error::closest(field, expected.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None if !expected.is_empty() => format!("known keys: {}", expected.join(", ")),
            None => "remove this key".to_owned(),
        });
        message = short;
    } else if !snippet.is_empty() && !snippet.contains('\n') && snippet.len() < 60 {
        let line_start = text
            .get(..span.start)
            .and_then(|t| t.rfind('\n'))
            .map_or(0, |i| i + 1);
        let prefix = text.get(line_start..span.start).unwrap_or("").trim();
        if let Some((k, _)) = snippet.split_once('=') {
            key = join_key(&table, k.trim());
        } else if let Some(k) = prefix
            .strip_suffix('=')
            .map(str::trim)
            .filter(|k| is_bare_key(k))
        {
            key = join_key(&table, k);
        } else if is_bare_key(snippet) {
            key = join_key(&table, snippet);
        }
    }
    if message.contains("untagged enum RawBackend") {
        hint = Some("a backend is \"IP:port\" or { addr = \"IP:port\", weight = N }".to_owned());
    } else if message.contains("invalid type") && hint.is_none() {
        hint = Some("check the value's type: durations and addresses are strings".into());
    }
    Diagnostic {
        line,
        column,
        key: if key.is_empty() {
            "(top level)".into()
        } else {
            key
        },
        message,
        hint,
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

fn join_key(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

fn is_bare_key(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// The inline tables open at `offset` on its line, as a dotted key:
/// `rate_limit = { brust = 5 }` is inside `rate_limit`.
fn inline_tables(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or("");
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let mut open: Vec<&str> = Vec::new();
    let (mut start, mut quoted) = (0, None);
    for (i, c) in line.char_indices() {
        match (quoted, c) {
            (Some(q), c) if c == q => quoted = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quoted = Some(c),
            (None, '{') => {
                let k = line[start..i].trim().trim_end_matches('=').trim();
                open.push(k.trim_matches('"'));
                start = i + 1;
            }
            (None, '}') => {
                open.pop();
                start = i + 1;
            }
            (None, ',') => start = i + 1,
            _ => {}
        }
    }
    open.join(".")
}

/// The `[table]` or `[[array]]` header in force at `offset`, as a dotted key.
fn enclosing_table(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let mut arrays: std::collections::HashMap<String, usize> = Default::default();
    let mut current = String::new();
    for line in before.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = arrays.entry(name.clone()).or_insert(0);
            current = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = name.trim();
            // A sub-table of the latest array element, like [routes.rollout].
            current = match arrays
                .iter()
                .find(|(a, _)| name.starts_with(&format!("{a}.")))
            {
                Some((a, n)) => format!("{a}[{}]{}", n.saturating_sub(1), &name[a.len()..]),
                None => name.to_owned(),
            };
        }
    }
    current
}

#[cfg(test)]
mod tests;
