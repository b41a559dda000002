//! Backend addresses as written — `IP:port`, `name:port`, each optionally
//! prefixed by `http://` or `https://` (then the port defaults to 80 or
//! 443) — and the TLS settings of a pool's backends (`tls`, `ca_file`,
//! `tls_server_name`, `tls_insecure_skip_verify`).
//!
//! TLS is a property of the pool: its backends all speak it or none does.
//! That keeps it out of the per-backend entries, which DNS names expand
//! into (one per address), and lets a pool with one DNS name verify every
//! address's certificate against that name.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use rustls::pki_types::ServerName;
use toml::Spanned;

use super::model::{CaFile, NamedBackend, PoolTls};
use super::raw::RawPool;
use super::validate::Validator;

/// A backend address as written.
pub(crate) enum BackendAddr {
    Ip(SocketAddr),
    Name(String, u16),
}

/// Whether an address was written with a scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bare,
    Http,
    Https,
}

/// Where a pool's `https://` and plain backends were written (the first
/// of each), to check that the pool does not mix them.
#[derive(Debug, Default)]
pub(crate) struct Schemes {
    https: Option<Range<usize>>,
    /// Without a scheme or `http://`.
    plain: Option<Range<usize>>,
    /// `http://` (which `tls = true` contradicts).
    http: Option<Range<usize>>,
}

impl Schemes {
    pub(crate) fn note(&mut self, scheme: Scheme, span: Range<usize>) {
        if scheme == Scheme::Http {
            self.http.get_or_insert(span.clone());
        }
        let slot = match scheme {
            Scheme::Https => &mut self.https,
            Scheme::Http | Scheme::Bare => &mut self.plain,
        };
        slot.get_or_insert(span);
    }
}

fn strip_scheme(addr: &str) -> (Scheme, &str) {
    for (prefix, scheme) in [("https://", Scheme::Https), ("http://", Scheme::Http)] {
        if let Some(head) = addr.get(..prefix.len()) {
            if head.eq_ignore_ascii_case(prefix) {
                return (scheme, &addr[prefix.len()..]);
            }
        }
    }
    (Scheme::Bare, addr)
}

impl Validator<'_> {
    pub(crate) fn backend_addr(
        &mut self,
        key: &str,
        addr: &str,
        span: Range<usize>,
    ) -> Option<(Scheme, BackendAddr)> {
        let (scheme, rest) = strip_scheme(addr);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let default_port = match scheme {
            Scheme::Https => Some(443),
            Scheme::Http => Some(80),
            Scheme::Bare => None,
        };
        if let Ok(a) = rest.parse::<SocketAddr>() {
            if a.port() == 0 {
                self.error(span, key, format!("backend {addr:?} has port 0"), None);
                return None;
            }
            return Some((scheme, BackendAddr::Ip(a)));
        }
        // An IP without a port takes the scheme's ([::1] for IPv6).
        let bare_ip = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(rest)
            .parse::<IpAddr>()
            .ok()
            .filter(|ip| ip.is_ipv4() || rest.starts_with('['));
        if let (Some(ip), Some(port)) = (bare_ip, default_port) {
            return Some((scheme, BackendAddr::Ip(SocketAddr::new(ip, port))));
        }
        let named = match rest.rsplit_once(':') {
            Some((host, port)) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .map(|p| (host, p)),
            None => default_port.map(|p| (rest, p)),
        }
        .and_then(|(host, port)| {
            let ok = !host.is_empty()
                && host.len() <= 253
                && !host.starts_with('-')
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && host.bytes().any(|b| b.is_ascii_alphabetic());
            ok.then(|| (host.to_ascii_lowercase(), port))
        });
        match named {
            Some((host, port)) => Some((scheme, BackendAddr::Name(host, port))),
            None => {
                let hint = if scheme == Scheme::Bare && addr.contains("://") {
                    "only http:// and https:// are understood, e.g. \"https://api.internal:8443\""
                } else {
                    "write the backend as IP:port or name:port, optionally after https://, e.g. \"127.0.0.1:8001\", \"[::1]:8001\", \"blue:8000\" or \"https://api.internal:8443\""
                };
                self.error(
                    span,
                    key,
                    format!("cannot parse backend address {addr:?}"),
                    Some(hint.into()),
                );
                None
            }
        }
    }

    /// A `ca_file`: read and checked now, so a bad one is a config error.
    pub(crate) fn ca_file(&mut self, key: &str, raw: &Spanned<String>) -> Option<CaFile> {
        let path = self.path(raw.get_ref());
        match super::pem::load_ca(&path) {
            Ok(certs) => Some(CaFile { path, certs }),
            Err(e) => {
                self.error(
                    raw.span(),
                    key,
                    e.to_string(),
                    Some(
                        "a PEM file of one or more CA certificates (\"BEGIN CERTIFICATE\")".into(),
                    ),
                );
                None
            }
        }
    }

    /// The TLS settings of pool `key` (`pools.NAME`), from its keys and how
    /// its backends were written; `None` for plain HTTP.
    pub(crate) fn pool_tls(
        &mut self,
        key: &str,
        pool_span: Range<usize>,
        raw: &RawPool,
        schemes: &Schemes,
        names: &[NamedBackend],
    ) -> Option<PoolTls> {
        let tls_key = raw.tls.as_ref().map(|t| (*t.get_ref(), t.span()));
        if let (Some(https), Some(plain)) = (&schemes.https, &schemes.plain) {
            let at = plain.start.max(https.start);
            self.error(
                at..at,
                format!("{key}.backends"),
                "this pool mixes https:// and plain backends",
                Some(
                    "a pool's backends all speak TLS or none does: split them into two pools"
                        .into(),
                ),
            );
        }
        match (&tls_key, &schemes.https, &schemes.http) {
            (Some((false, span)), Some(_), _) => self.error(
                span.clone(),
                format!("{key}.tls"),
                "tls = false, but backends are written https://",
                Some("remove tls = false, or write the backends without https://".into()),
            ),
            (Some((true, span)), _, Some(_)) => self.error(
                span.clone(),
                format!("{key}.tls"),
                "tls = true, but backends are written http://",
                Some(
                    "write them https:// (then tls = true is not needed), or without a scheme"
                        .into(),
                ),
            ),
            _ => {}
        }
        let enabled = schemes.https.is_some() || tls_key.is_some_and(|(on, _)| on);
        let optional: [(&str, Option<Range<usize>>); 3] = [
            ("ca_file", raw.ca_file.as_ref().map(Spanned::span)),
            (
                "tls_server_name",
                raw.tls_server_name.as_ref().map(Spanned::span),
            ),
            (
                "tls_insecure_skip_verify",
                raw.tls_insecure_skip_verify.as_ref().map(Spanned::span),
            ),
        ];
        if !enabled {
            for (name, span) in optional {
                if let Some(span) = span {
                    self.error(
                        span,
                        format!("{key}.{name}"),
                        format!("{name} needs TLS to the backends"),
                        Some(
                            "set tls = true, or write the backends as \"https://host:port\"".into(),
                        ),
                    );
                }
            }
            return None;
        }
        let insecure = raw
            .tls_insecure_skip_verify
            .as_ref()
            .is_some_and(|v| *v.get_ref());
        let ca = raw.ca_file.as_ref().and_then(|f| {
            if insecure {
                self.error(
                    f.span(),
                    format!("{key}.ca_file"),
                    "ca_file is set but tls_insecure_skip_verify turns verification off",
                    Some(
                        "remove one of the two (keep ca_file: verification against a private CA)"
                            .into(),
                    ),
                );
                return None;
            }
            self.ca_file(&format!("{key}.ca_file"), f)
        });
        let server_name = match &raw.tls_server_name {
            Some(n) => {
                if ServerName::try_from(n.get_ref().as_str()).is_err() {
                    self.error(
                        n.span(),
                        format!("{key}.tls_server_name"),
                        format!("invalid TLS server name {:?}", n.get_ref()),
                        Some("a DNS name like \"api.internal\" or an IP address".into()),
                    );
                }
                Some(n.get_ref().to_ascii_lowercase())
            }
            None => {
                let mut hosts: Vec<&str> = names.iter().map(|n| n.host.as_str()).collect();
                hosts.sort_unstable();
                hosts.dedup();
                match hosts.as_slice() {
                    [] => None,
                    [one] => Some((*one).to_owned()),
                    many => {
                        self.error(pool_span, format!("{key}.tls_server_name"),
                            format!("the backends of this TLS pool have several DNS names ({}), so the name to verify is ambiguous", many.join(", ")),
                            Some("set tls_server_name, or put each name in a pool of its own".into()));
                        None
                    }
                }
            }
        };
        Some(PoolTls {
            ca,
            server_name,
            insecure_skip_verify: insecure,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse, ConfigError};

    fn pool(backends: &str, keys: &str) -> String {
        format!(
            "[pools.p]\nbackends = [{backends}]\n{keys}\n\n[[routes]]\nname = \"r\"\nsplit = {{ p = 100 }}\n"
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text, Path::new("t.toml")) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { diagnostics, .. }) => {
                diagnostics.iter().map(|d| d.to_string()).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn schemes_and_default_ports() {
        let c = parse(
            &pool("\"https://10.0.0.1\", \"HTTPS://[::1]:8443/\"", ""),
            Path::new("t.toml"),
        )
        .expect("valid");
        let p = &c.pools[0];
        assert_eq!(p.backends[0].addr, "10.0.0.1:443".parse().unwrap());
        assert_eq!(p.backends[1].addr, "[::1]:8443".parse().unwrap());
        let tls = p.tls.as_ref().expect("TLS pool");
        assert_eq!(
            (tls.server_name.as_deref(), tls.insecure_skip_verify),
            (None, false)
        );
        let c = parse(&pool("\"http://blue\"", ""), Path::new("t.toml")).expect("valid");
        assert_eq!(
            (c.pools[0].names[0].port, c.pools[0].tls.is_none()),
            (80, true)
        );
        let c = parse(&pool("\"https://API.internal\"", ""), Path::new("t.toml")).expect("valid");
        let tls = c.pools[0].tls.as_ref().expect("TLS pool");
        assert_eq!(
            tls.server_name.as_deref(),
            Some("api.internal"),
            "the DNS name is verified"
        );
    }

    #[test]
    fn tls_mistakes_are_reported_where_they_are() {
        let e = errors(&pool("\"https://10.0.0.1:1\", \"10.0.0.2:1\"", ""));
        assert!(
            e[0].starts_with("2:35: pools.p.backends: this pool mixes"),
            "{e:?}"
        );
        let e = errors(&pool("\"10.0.0.1:1\"", "ca_file = \"ca.pem\""));
        assert!(
            e[0].starts_with("3:11: pools.p.ca_file: ca_file needs TLS"),
            "{e:?}"
        );
        let e = errors(&pool(
            "\"10.0.0.1:1\"",
            "tls = true\nca_file = \"/nonexistent/ca.pem\"",
        ));
        assert!(
            e[0].contains("pools.p.ca_file: cannot read /nonexistent/ca.pem"),
            "{e:?}"
        );
        let e = errors(&pool(
            "\"https://a.internal:1\", \"https://b.internal:1\"",
            "",
        ));
        assert!(
            e[0].contains("several DNS names (a.internal, b.internal)"),
            "{e:?}"
        );
        let e = errors(&pool("\"http://10.0.0.1:1\"", "tls = true"));
        assert!(e[0].contains("pools.p.tls: tls = true, but"), "{e:?}");
        let e = errors(&pool("\"https://10.0.0.1:1\"", "tls = false"));
        assert!(e[0].contains("pools.p.tls: tls = false, but"), "{e:?}");
        let e = errors(&pool("\"ftp://10.0.0.1:1\"", ""));
        assert!(e[0].contains("only http:// and https://"), "{e:?}");
        let e = errors(&pool(
            "\"https://10.0.0.1:1\"",
            "tls_server_name = \"bad name!\"",
        ));
        assert!(e[0].contains("invalid TLS server name"), "{e:?}");
    }
}
