//! `[[notify]]`: webhooks that deployment events are posted to. The typed
//! model of a sink (its URL, event filter, timeout, retries and extra
//! headers) and its validation, kept apart from `validate` like the
//! rollout section. The URL's path and the header values may hold secrets
//! (a Slack webhook's path is its key, an `Authorization` header its
//! token): nothing here prints them, not even in an error.

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use toml::Spanned;

use super::error::closest;
use super::model::CaFile;
use super::raw::{Ordered, RawNotify};
use super::validate::Validator;
use super::values::{secs, HOUR, MS};
use crate::event::Action;

/// The events a sink gets when it lists none.
pub const DEFAULT_EVENTS: &[&str] = &["rollout_*", "flip", "flip_*", "rollback"];

/// Headers switchyard sets itself (framing, hop-by-hop, the JSON body).
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
];

/// One `[[notify]]` sink.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub url: WebhookUrl,
    /// Actions posted to this sink; `events` or `DEFAULT_EVENTS`.
    pub events: Vec<EventPattern>,
    /// Limit of one attempt: connect, TLS, request, response headers.
    pub timeout: Duration,
    /// Attempts after the first failed one.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Extra request headers (values marked sensitive).
    pub headers: WebhookHeaders,
    /// Trust anchors for an `https://` URL; `None`: the system's.
    pub ca: Option<CaFile>,
}

impl NotifyConfig {
    /// Whether events with `action` go to this sink.
    pub fn wants(&self, action: Action) -> bool {
        self.events.iter().any(|p| p.matches(action.as_str()))
    }
}

/// An event name, or a prefix written with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    Exact(String),
    Prefix(String),
}

impl EventPattern {
    /// `None` unless `s` is a name of lower-case letters, digits and `_`,
    /// optionally ending in one `*`.
    pub fn parse(s: &str) -> Option<Self> {
        let (name, glob) = match s.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (s, false),
        };
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        match (valid, glob) {
            (true, true) => Some(EventPattern::Prefix(name.to_owned())),
            (true, false) if !name.is_empty() => Some(EventPattern::Exact(name.to_owned())),
            _ => None,
        }
    }

    pub fn matches(&self, action: &str) -> bool {
        match self {
            EventPattern::Exact(name) => name == action,
            EventPattern::Prefix(prefix) => action.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventPattern::Exact(name) => f.write_str(name),
            EventPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A webhook URL, split for connecting. Its `Debug` and `Display` show the
/// scheme and authority only: the path may be the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    pub https: bool,
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written: the `Host` header, the sink's log field
    /// and metric label.
    pub authority: String,
    /// Path and query, at least `/`.
    pub path: String,
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}/…", self.authority)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `headers`: names and values, in the order written. `Debug` shows the
/// names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WebhookHeaders(pub Vec<(HeaderName, HeaderValue)>);

impl fmt::Debug for WebhookHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Validator<'_> {
    /// Every `[[notify]]` table.
    pub(super) fn notify(&mut self, raw: &[Spanned<RawNotify>]) -> Vec<NotifyConfig> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, n)| self.notify_sink(&format!("notify[{i}]"), n))
            .collect()
    }

    fn notify_sink(&mut self, key: &str, raw: &Spanned<RawNotify>) -> Option<NotifyConfig> {
        let n = raw.get_ref();
        let before = self.diags.len();
        let url = match &n.url {
            Some(u) => self.webhook_url(&format!("{key}.url"), u),
            None => {
                self.error(
                    raw.span(),
                    format!("{key}.url"),
                    "webhook has no url",
                    Some("e.g. url = \"https://hooks.example.com/switchyard\"".into()),
                );
                None
            }
        };
        let events = match &n.events {
            Some(list) => self.event_patterns(&format!("{key}.events"), list),
            None => DEFAULT_EVENTS
                .iter()
                .filter_map(|p| EventPattern::parse(p))
                .collect(),
        };
        let timeout = self.duration_in(
            &format!("{key}.timeout"),
            n.timeout.as_ref(),
            Duration::from_secs(5),
            MS..=secs(300),
        );
        let retries = self.int(&format!("{key}.retries"), n.retries.as_ref(), 0, 10, 3) as u32;
        let backoff = self.duration_in(
            &format!("{key}.backoff"),
            n.backoff.as_ref(),
            Duration::from_secs(1),
            MS..=HOUR,
        );
        let headers = match &n.headers {
            Some(h) => self.webhook_headers(&format!("{key}.headers"), h),
            None => WebhookHeaders::default(),
        };
        let ca = n.ca_file.as_ref().and_then(|f| {
            if url.as_ref().is_some_and(|u| !u.https) {
                self.error(
                    f.span(),
                    format!("{key}.ca_file"),
                    "ca_file needs an https:// url",
                    None,
                );
                return None;
            }
            self.ca_file(&format!("{key}.ca_file"), f)
        });
        if self.diags.len() > before {
            return None;
        }
        Some(NotifyConfig {
            url: url?,
            events,
            timeout,
            retries,
            backoff,
            headers,
            ca,
        })
    }

    fn webhook_url(&mut self, key: &str, raw: &Spanned<String>) -> Option<WebhookUrl> {
        // The URL is never echoed: its path may be the webhook's secret.
        let problem = match parse_url(raw.get_ref()) {
            Ok(url) => return Some(url),
            Err(problem) => problem,
        };
        let hint = match problem {
            UrlProblem::Credentials => {
                "put credentials in headers, e.g. \
                headers = { Authorization = \"Bearer ...\" }"
            }
            _ => "e.g. url = \"https://hooks.example.com/switchyard\"",
        };
        self.error(raw.span(), key, problem.to_string(), Some(hint.into()));
        None
    }

    fn event_patterns(
        &mut self,
        key: &str,
        raw: &Spanned<Vec<Spanned<String>>>,
    ) -> Vec<EventPattern> {
        if raw.get_ref().is_empty() {
            self.error(
                raw.span(),
                key,
                "events is empty, so this webhook would get nothing",
                Some(format!(
                    "leave events out for the default {DEFAULT_EVENTS:?}, or list actions"
                )),
            );
        }
        let mut out = Vec::new();
        for (i, p) in raw.get_ref().iter().enumerate() {
            let (name, key) = (p.get_ref(), format!("{key}[{i}]"));
            let names = || Action::ALL.iter().map(|a| a.as_str());
            let known = names().collect::<Vec<_>>().join(", ");
            let Some(pattern) = EventPattern::parse(name) else {
                self.error(
                    p.span(),
                    &key,
                    format!("invalid event pattern {name:?}"),
                    Some(format!(
                        "an action name, or a prefix ending in '*' (\"rollout_*\"); actions: {known}"
                    )),
                );
                continue;
            };
            if !names().any(|a| pattern.matches(a)) {
                let hint = match closest(name.trim_end_matches('*'), names()) {
                    Some(c) => format!("did you mean {c:?}? actions: {known}"),
                    None => format!("actions: {known}"),
                };
                self.error(
                    p.span(),
                    &key,
                    format!("event pattern {name:?} matches no event"),
                    Some(hint),
                );
                continue;
            }
            out.push(pattern);
        }
        out
    }

    fn webhook_headers(
        &mut self,
        key: &str,
        raw: &Spanned<Ordered<Spanned<String>>>,
    ) -> WebhookHeaders {
        let mut out = Vec::new();
        for (name, value) in &raw.get_ref().0 {
            let hkey = format!("{key}.{}", name.get_ref());
            let Some(header) = self.header_name(&hkey, name) else {
                continue;
            };
            if RESERVED_HEADERS.contains(&header.as_str()) {
                self.error(
                    name.span(),
                    &hkey,
                    format!("header {header} is set by switchyard"),
                    Some(format!(
                        "these cannot be set: {}",
                        RESERVED_HEADERS.join(", ")
                    )),
                );
                continue;
            }
            // The value is never echoed: it is likely a token.
            match HeaderValue::from_str(value.get_ref()) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    out.push((header, v));
                }
                Err(_) => self.error(
                    value.span(),
                    &hkey,
                    format!("invalid value for header {header}"),
                    Some("visible ASCII and spaces only, no line breaks".into()),
                ),
            }
        }
        WebhookHeaders(out)
    }
}

/// What is wrong with a webhook URL (without repeating it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum UrlProblem {
    #[error("cannot parse the webhook url")]
    Syntax,
    #[error("the webhook url must start with http:// or https://")]
    Scheme,
    #[error("the webhook url has no host")]
    NoHost,
    #[error("the webhook url carries credentials (user:password@)")]
    Credentials,
    #[error("the webhook url has an invalid port")]
    Port,
}

fn parse_url(s: &str) -> Result<WebhookUrl, UrlProblem> {
    if !s.contains("://") {
        return Err(UrlProblem::Scheme);
    }
    let uri: http::Uri = s.parse().map_err(|_| UrlProblem::Syntax)?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(UrlProblem::Scheme),
    };
    let authority = uri.authority().ok_or(UrlProblem::NoHost)?;
    if authority.as_str().contains('@') {
        return Err(UrlProblem::Credentials);
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(UrlProblem::NoHost);
    }
    let port = match authority.port() {
        Some(p) => p.as_str().parse::<u16>().map_err(|_| UrlProblem::Port)?,
        None if https => 443,
        None => 80,
    };
    if port == 0 {
        return Err(UrlProblem::Port);
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(WebhookUrl {
        https,
        host: host.to_owned(),
        port,
        authority: authority.as_str().to_owned(),
        path: if path.is_empty() { "/" } else { path }.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_for_connecting() {
        let u = parse_url("https://hooks.example.com/services/T0/B0/secret?x=1").unwrap();
        assert!(u.https);
        assert_eq!((u.host.as_str(), u.port), ("hooks.example.com", 443));
        assert_eq!(u.path, "/services/T0/B0/secret?x=1");
        assert_eq!(u.to_string(), "https://hooks.example.com/…");
        assert!(!format!("{u:?}").contains("secret"));
        let u = parse_url("http://[::1]:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, "/")
        );
        assert_eq!(u.authority, "[::1]:8080");
        assert_eq!(parse_url("ftp://x/"), Err(UrlProblem::Scheme));
        assert_eq!(parse_url("hooks.example.com/x"), Err(UrlProblem::Scheme));
        assert_eq!(parse_url("http://u:p@x/"), Err(UrlProblem::Credentials));
        assert_eq!(parse_url("http://x:0/"), Err(UrlProblem::Port));
        assert_eq!(parse_url("http://x y/"), Err(UrlProblem::Syntax));
    }

    #[test]
    fn patterns_match_names_and_prefixes() {
        let p = |s| EventPattern::parse(s).unwrap();
        assert!(p("flip").matches("flip"));
        assert!(!p("flip").matches("flip_verified"));
        assert!(p("flip_*").matches("flip_verified"));
        assert!(!p("flip_*").matches("flip"));
        assert!(p("*").matches("reload"));
        for bad in ["", "Flip", "ro*llout", "a**", "flip-verified"] {
            assert_eq!(EventPattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_debug_hides_values() {
        let h = WebhookHeaders(vec![(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer s3cret"),
        )]);
        assert!(!format!("{h:?}").contains("s3cret"));
    }
}
