//! Validation of the HTTPS side of `[server]` (`listen_tls`,
//! `redirect_http`, `redirect_https_port`, `acme_passthrough`, `hsts`) and of
//! `[tls]`, checked together since they only make sense together. Paths are
//! relative to the configuration file's directory. Certificate *contents*
//! are not read here: they are loaded at start (`switchyard check` too) and
//! reloaded live, so a renewal gone wrong never blocks a routing change.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::model::{CertConfig, HostMatch, RedirectConfig, ServerConfig, TlsConfig};
use super::raw::{RawConfig, RawTls};
use super::validate::Validator;

impl Validator<'_> {
    /// A path from the file, relative to the file's directory.
    pub(crate) fn path(&self, raw: &str) -> PathBuf {
        let p = PathBuf::from(raw);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// Fills the HTTPS keys of `server` and answers the `[tls]` table.
    pub(crate) fn tls(&mut self, raw: &RawConfig, server: &mut ServerConfig) -> Option<TlsConfig> {
        let s = &raw.server;
        server.listen_tls =
            s.listen_tls
                .as_ref()
                .and_then(|l| match l.get_ref().parse::<SocketAddr>() {
                    Ok(a) if a == server.listen => {
                        self.error(
                            l.span(),
                            "server.listen_tls",
                            format!("listen_tls {a} is also server.listen"),
                            Some(
                                "plain HTTP and HTTPS need different ports, e.g. 8080 and 8443"
                                    .into(),
                            ),
                        );
                        None
                    }
                    Ok(a) => Some(a),
                    Err(_) => {
                        self.error(
                            l.span(),
                            "server.listen_tls",
                            format!("cannot parse address {:?}", l.get_ref()),
                            Some("use IP:port, e.g. \"0.0.0.0:8443\" or \"[::]:8443\"".into()),
                        );
                        None
                    }
                });
        let has_listener = s.listen_tls.is_some();
        let redirect = match &s.redirect_http {
            Some(r) if *r.get_ref() => {
                self.needs_listener(has_listener, r.span(), "server.redirect_http");
                let https_port = s.redirect_https_port.as_ref().map(|p| {
                    self.int("server.redirect_https_port", Some(p), 1, 65_535, 443) as u16
                });
                Some(RedirectConfig {
                    https_port,
                    acme_passthrough: s.acme_passthrough.as_ref().is_some_and(|a| *a.get_ref()),
                })
            }
            _ => {
                for (key, span) in [
                    (
                        "server.redirect_https_port",
                        s.redirect_https_port.as_ref().map(|p| p.span()),
                    ),
                    (
                        "server.acme_passthrough",
                        s.acme_passthrough.as_ref().map(|p| p.span()),
                    ),
                ] {
                    if let Some(span) = span {
                        self.error(
                            span,
                            key,
                            "only applies with redirect_http = true",
                            Some("set server.redirect_http = true, or remove this key".into()),
                        );
                    }
                }
                None
            }
        };
        server.redirect = redirect;
        server.hsts = s.hsts.as_ref().and_then(|h| {
            self.needs_listener(has_listener, h.span(), "server.hsts");
            let ok = valid_hsts(h.get_ref());
            if !ok {
                self.error(
                    h.span(),
                    "server.hsts",
                    format!("invalid Strict-Transport-Security value {:?}", h.get_ref()),
                    Some(
                        "e.g. \"max-age=31536000\" or \"max-age=31536000; includeSubDomains\""
                            .into(),
                    ),
                );
            }
            ok.then(|| h.get_ref().trim().to_owned())
        });
        match (&raw.tls, &s.listen_tls) {
            (Some(t), Some(_)) => self.tls_table(t),
            (None, Some(l)) => {
                self.error(l.span(), "server.listen_tls", "listen_tls needs a [tls] table with a certificate",
                    Some("add [tls] with cert = \"/path/fullchain.pem\" and key = \"/path/privkey.pem\"".into()));
                None
            }
            (Some(t), None) => {
                self.error(
                    t.span(),
                    "tls",
                    "[tls] is set but server.listen_tls is not, so nothing would serve it",
                    Some("add listen_tls = \"0.0.0.0:8443\" to [server], or remove [tls]".into()),
                );
                None
            }
            (None, None) => None,
        }
    }

    fn needs_listener(&mut self, has_listener: bool, span: Range<usize>, key: &str) {
        if !has_listener {
            self.error(
                span,
                key,
                "needs an HTTPS listener",
                Some("set server.listen_tls (and [tls]) first".into()),
            );
        }
    }

    fn tls_table(&mut self, raw: &Spanned<RawTls>) -> Option<TlsConfig> {
        let t = raw.get_ref();
        let mut certs = Vec::new();
        match (&t.cert, &t.key) {
            (Some(c), Some(k)) => {
                if let (Some(cert), Some(key)) = (self.file("tls.cert", c), self.file("tls.key", k))
                {
                    certs.push(CertConfig {
                        hosts: Vec::new(),
                        cert,
                        key,
                    });
                }
            }
            (Some(c), None) => self.error(
                c.span(),
                "tls.cert",
                "a certificate needs its key",
                Some("add tls.key".into()),
            ),
            (None, Some(k)) => self.error(
                k.span(),
                "tls.key",
                "a key needs its certificate",
                Some("add tls.cert".into()),
            ),
            (None, None) => {}
        }
        let mut seen: Vec<HostMatch> = Vec::new();
        for (i, entry) in t.certs.iter().enumerate() {
            let key = format!("tls.certs[{i}]");
            let e = entry.get_ref();
            let mut hosts = Vec::new();
            match &e.hosts {
                Some(h) if !h.get_ref().is_empty() => {
                    for (j, name) in h.get_ref().iter().enumerate() {
                        let hkey = format!("{key}.hosts[{j}]");
                        match sni_host(name.get_ref()) {
                            None => self.error(name.span(), hkey, format!("invalid host {:?}", name.get_ref()),
                                Some("use a name like \"api.example.com\" or \"*.example.com\", without a port".into())),
                            Some(m) if seen.contains(&m) => self.error(name.span(), hkey,
                                format!("host {:?} is already served by another certificate", name.get_ref()),
                                Some("each SNI name may appear in one [[tls.certs]] only".into())),
                            Some(m) => {
                                seen.push(m.clone());
                                hosts.push(m);
                            }
                        }
                    }
                }
                Some(h) => self.error(h.span(), format!("{key}.hosts"), "hosts is empty", None),
                None => self.error(
                    entry.span(),
                    format!("{key}.hosts"),
                    "this certificate has no hosts",
                    Some("e.g. hosts = [\"api.example.com\", \"*.example.com\"]".into()),
                ),
            }
            let cert = match &e.cert {
                Some(c) => self.file(&format!("{key}.cert"), c),
                None => {
                    self.error(
                        entry.span(),
                        format!("{key}.cert"),
                        "missing cert (PEM certificate chain)",
                        None,
                    );
                    None
                }
            };
            let pkey = match &e.key {
                Some(k) => self.file(&format!("{key}.key"), k),
                None => {
                    self.error(
                        entry.span(),
                        format!("{key}.key"),
                        "missing key (PEM private key)",
                        None,
                    );
                    None
                }
            };
            if let (Some(cert), Some(key)) = (cert, pkey) {
                certs.push(CertConfig { hosts, cert, key });
            }
        }
        if certs.is_empty() && t.cert.is_none() && t.key.is_none() && t.certs.is_empty() {
            self.error(
                raw.span(),
                "tls",
                "[tls] has no certificate",
                Some(
                    "set cert and key (the default certificate), and/or [[tls.certs]] entries"
                        .into(),
                ),
            );
            return None;
        }
        Some(TlsConfig { certs, default: 0 })
    }

    fn file(&mut self, key: &str, raw: &Spanned<String>) -> Option<PathBuf> {
        if raw.get_ref().trim().is_empty() {
            self.error(raw.span(), key, "empty file path", None);
            return None;
        }
        Some(self.path(raw.get_ref()))
    }
}

/// An SNI pattern: `api.example.com` or `*.example.com`, lower-cased.
fn sni_host(raw: &str) -> Option<HostMatch> {
    let h = raw.to_ascii_lowercase();
    let (suffix, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h.as_str()),
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| {
        if suffix {
            HostMatch::Suffix(format!(".{name}"))
        } else {
            HostMatch::Exact(name.to_owned())
        }
    })
}

/// `max-age=N` plus optional `includeSubDomains` and `preload` (RFC 6797).
fn valid_hsts(v: &str) -> bool {
    let mut max_age = false;
    for d in v.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            Some((k, n)) if k.trim().eq_ignore_ascii_case("max-age") => {
                let n = n.trim().trim_matches('"');
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || max_age {
                    return false;
                }
                max_age = true;
            }
            None if d.eq_ignore_ascii_case("includesubdomains")
                || d.eq_ignore_ascii_case("preload") => {}
            _ => return false,
        }
    }
    max_age && http::HeaderValue::from_str(v.trim()).is_ok()
}

#[cfg(test)]
mod tests;
