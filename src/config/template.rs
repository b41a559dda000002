//! Value templates of the HTTP rules (`request_headers`, `response_headers`,
//! `redirect.to`, `rewrite.to`): literal text with `$name` / `${name}`
//! references, parsed and checked once when the configuration is loaded so
//! that a request only copies bytes. `$$` is a literal dollar sign.
//!
//! The template is generic over what a reference may name: request
//! variables ([`Var`]) for header rules and redirects, capture groups
//! ([`Capture`]) for a rewrite's replacement.

use bytes::Bytes;
use http::HeaderValue;

/// A request variable a header rule or a redirect may use. The names are
/// nginx's where nginx has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// `$remote_addr`: the client's IP (after the PROXY header and
    /// `trusted_proxies`).
    RemoteAddr,
    /// `$request_id`: the `X-Request-Id` sent to the backend.
    RequestId,
    /// `$host`: the request's host, without its port.
    Host,
    /// `$pool`: the pool the request was sent to.
    Pool,
    /// `$route`: the route's name.
    Route,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$request_uri`: path and query as the client sent them.
    RequestUri,
    /// `$uri`: the path as forwarded (after `strip_prefix` and `rewrite`),
    /// without the query.
    Uri,
    /// `$query`: `?` and the query string, or nothing when there is none
    /// (nginx's `$is_args$args`).
    Query,
}

impl Var {
    /// Every variable, for hints.
    pub const ALL: [Var; 9] = [
        Var::RemoteAddr,
        Var::RequestId,
        Var::Host,
        Var::Pool,
        Var::Route,
        Var::Scheme,
        Var::RequestUri,
        Var::Uri,
        Var::Query,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Var::RemoteAddr => "remote_addr",
            Var::RequestId => "request_id",
            Var::Host => "host",
            Var::Pool => "pool",
            Var::Route => "route",
            Var::Scheme => "scheme",
            Var::RequestUri => "request_uri",
            Var::Uri => "uri",
            Var::Query => "query",
        }
    }

    pub fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// The variables' values for one request, filled in by the data path
/// from what it already holds (no copies).
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub remote_addr: &'a [u8],
    pub request_id: &'a [u8],
    pub host: &'a [u8],
    pub pool: &'a [u8],
    pub route: &'a [u8],
    pub scheme: &'a [u8],
    pub request_uri: &'a [u8],
    pub uri: &'a [u8],
    pub query: &'a [u8],
}

impl<'a> Vars<'a> {
    pub fn get(&self, v: &Var) -> &'a [u8] {
        match v {
            Var::RemoteAddr => self.remote_addr,
            Var::RequestId => self.request_id,
            Var::Host => self.host,
            Var::Pool => self.pool,
            Var::Route => self.route,
            Var::Scheme => self.scheme,
            Var::RequestUri => self.request_uri,
            Var::Uri => self.uri,
            Var::Query => self.query,
        }
    }
}

/// A capture group of a rewrite's regex, by index (named groups are
/// resolved to their index at load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture(pub usize);

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<V> {
    Lit(Box<[u8]>),
    Ref(V),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<V> {
    segments: Box<[Segment<V>]>,
    /// The whole value when the template has no reference, made once so
    /// that using it is a reference-count increment.
    constant: Option<HeaderValue>,
    /// The source text, for errors, status and equality of configs.
    source: Box<str>,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`$` at byte {0} starts no reference")]
    LoneDollar(usize),
    #[error("`${{` at byte {0} is not closed")]
    Unclosed(usize),
    #[error("unknown variable `${0}`")]
    Unknown(String),
}

impl<V: Copy> Template<V> {
    /// Parses `text`; `resolve` turns a reference's name (`remote_addr`,
    /// `1`, `id`) into what it refers to.
    pub fn parse(text: &str, resolve: impl Fn(&str) -> Option<V>) -> Result<Self, TemplateError> {
        let bytes = text.as_bytes();
        let mut segments = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                lit.push(bytes[i]);
                i += 1;
                continue;
            }
            let (name, next) = match bytes.get(i + 1) {
                Some(b'$') => {
                    lit.push(b'$');
                    i += 2;
                    continue;
                }
                Some(b'{') => {
                    let close = text[i + 2..].find('}').ok_or(TemplateError::Unclosed(i))?;
                    (&text[i + 2..i + 2 + close], i + 3 + close)
                }
                Some(b) if b.is_ascii_digit() => {
                    let n = bytes[i + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    (&text[i + 1..i + 1 + n], i + 1 + n)
                }
                Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
                    let n = bytes[i + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                        .count();
                    (&text[i + 1..i + 1 + n], i + 1 + n)
                }
                _ => return Err(TemplateError::LoneDollar(i)),
            };
            let var = resolve(name).ok_or_else(|| TemplateError::Unknown(name.to_owned()))?;
            if !lit.is_empty() {
                segments.push(Segment::Lit(std::mem::take(&mut lit).into()));
            }
            segments.push(Segment::Ref(var));
            i = next;
        }
        if !lit.is_empty() || segments.is_empty() {
            segments.push(Segment::Lit(lit.into()));
        }
        let constant = match segments.as_slice() {
            [Segment::Lit(l)] => HeaderValue::from_bytes(l).ok(),
            _ => None,
        };
        Ok(Template {
            segments: segments.into(),
            constant,
            source: text.into(),
        })
    }
}

impl<V> Template<V> {
    /// The text the template was written as.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The literal pieces (for validating them as header or URI text).
    pub fn literals(&self) -> impl Iterator<Item = &[u8]> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Lit(l) => Some(&**l),
            Segment::Ref(_) => None,
        })
    }

    /// What the template refers to.
    pub fn refs(&self) -> impl Iterator<Item = &V> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Ref(v) => Some(v),
            Segment::Lit(_) => None,
        })
    }

    /// Length of the value with `value` supplying each reference.
    pub fn len_with<'v>(&self, value: &impl Fn(&V) -> &'v [u8]) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Lit(l) => l.len(),
                Segment::Ref(v) => value(v).len(),
            })
            .sum()
    }

    /// Appends the value to `out` (the lean HTTP/1 path writes it straight
    /// into the request head).
    pub fn render_into<'v>(&self, value: &impl Fn(&V) -> &'v [u8], out: &mut Vec<u8>) {
        for s in self.segments.iter() {
            match s {
                Segment::Lit(l) => out.extend_from_slice(l),
                Segment::Ref(v) => out.extend_from_slice(value(v)),
            }
        }
    }

    /// The value as a `HeaderValue`: a reference-count increment for a
    /// constant, else one allocation of exactly the value's length.
    /// `None` when a supplied value made it invalid (a control byte).
    pub fn header_value<'v>(&self, value: &impl Fn(&V) -> &'v [u8]) -> Option<HeaderValue> {
        if let Some(c) = &self.constant {
            return Some(c.clone());
        }
        let mut out = Vec::with_capacity(self.len_with(value));
        self.render_into(value, &mut out);
        HeaderValue::from_maybe_shared(Bytes::from(out)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn var(t: &str) -> Result<Template<Var>, TemplateError> {
        Template::parse(t, Var::from_name)
    }

    fn values(v: &Var) -> &'static [u8] {
        match v {
            Var::RemoteAddr => b"203.0.113.7",
            Var::RequestId => b"abc",
            Var::Host => b"api.example.com",
            Var::Pool => b"blue",
            Var::Route => b"api",
            Var::Scheme => b"https",
            Var::RequestUri => b"/a?b=1",
            Var::Uri => b"/a",
            Var::Query => b"?b=1",
        }
    }

    fn render(t: &Template<Var>) -> String {
        let mut out = Vec::new();
        t.render_into(&values, &mut out);
        assert_eq!(out.len(), t.len_with(&values));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn references_and_literals() {
        let t = var("client=$remote_addr; id=${request_id}x; $$5 $pool").unwrap();
        assert_eq!(render(&t), "client=203.0.113.7; id=abcx; $5 blue");
        assert_eq!(
            t.header_value(&values).unwrap(),
            "client=203.0.113.7; id=abcx; $5 blue"
        );
        let t = var("https://new.example$request_uri").unwrap();
        assert_eq!(render(&t), "https://new.example/a?b=1");
    }

    #[test]
    fn constants_are_made_once() {
        let t = var("max-age=60").unwrap();
        assert!(t.constant.is_some());
        assert_eq!(t.header_value(&values).unwrap(), "max-age=60");
        let empty = var("").unwrap();
        assert_eq!(empty.header_value(&values).unwrap(), "");
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(var("a $").unwrap_err(), TemplateError::LoneDollar(2));
        assert_eq!(var("a $-").unwrap_err(), TemplateError::LoneDollar(2));
        assert_eq!(var("${host").unwrap_err(), TemplateError::Unclosed(0));
        assert_eq!(
            var("$remote_ip").unwrap_err(),
            TemplateError::Unknown("remote_ip".into())
        );
        assert_eq!(var("$1").unwrap_err(), TemplateError::Unknown("1".into()));
    }

    #[test]
    fn captures_by_number_and_name() {
        let t = Template::parse("/new/$1/${id}x$12", |n| match n {
            "id" => Some(Capture(2)),
            n => n.parse().ok().map(Capture),
        })
        .unwrap();
        let caps: Vec<usize> = t.refs().map(|c| c.0).collect();
        assert_eq!(caps, vec![1, 2, 12]);
    }

    proptest! {
        /// Text without `$` is its own value, whatever it holds.
        #[test]
        fn dollar_free_text_is_literal(s in "[^$]{0,40}") {
            let t = var(&s).unwrap();
            prop_assert_eq!(render(&t), s);
        }

        /// `$$` always stands for one `$`.
        #[test]
        fn doubled_dollars_escape(a in "[a-z ]{0,10}", b in "[a-z ]{0,10}") {
            let t = var(&format!("{a}$${b}")).unwrap();
            prop_assert_eq!(render(&t), format!("{a}${b}"));
        }
    }
}
