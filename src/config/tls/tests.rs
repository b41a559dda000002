//! Unit tests of `config::tls`: HSTS values, SNI patterns, and whole files
//! with TLS keys, valid and invalid (line:column and key).

use std::path::Path;

use super::*;
use crate::config::{parse, ConfigError};

#[test]
fn hsts_values() {
    assert!(valid_hsts("max-age=31536000"));
    assert!(valid_hsts("max-age=31536000; includeSubDomains; preload"));
    assert!(!valid_hsts("includeSubDomains"));
    assert!(!valid_hsts("max-age=abc"));
    assert!(!valid_hsts("max-age=1; max-age=2"));
    assert!(!valid_hsts("max-age=1; bogus"));
}

#[test]
fn sni_patterns() {
    assert_eq!(
        sni_host("API.example.com"),
        Some(HostMatch::Exact("api.example.com".into()))
    );
    assert_eq!(
        sni_host("*.example.com"),
        Some(HostMatch::Suffix(".example.com".into()))
    );
    assert_eq!(sni_host("example.com:443"), None);
    assert_eq!(sni_host("*."), None);
}

const ROUTE: &str =
    "[pools.p]\nbackends = [\"10.0.0.1:1\"]\n\n[[routes]]\nname = \"r\"\nsplit = { p = 100 }\n";

fn errors(text: &str) -> Vec<String> {
    match parse(&format!("{text}\n{ROUTE}"), Path::new("/etc/sy/t.toml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            diagnostics.iter().map(|d| d.to_string()).collect()
        }
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn a_full_tls_setup_parses_with_paths_relative_to_the_file() {
    let text = format!(
        "[server]\nlisten_tls = \"0.0.0.0:8443\"\nredirect_http = true\nacme_passthrough = true\n\
         hsts = \"max-age=63072000\"\n\n[tls]\ncert = \"certs/default.pem\"\nkey = \"/keys/default.key\"\n\n\
         [[tls.certs]]\nhosts = [\"api.example.com\", \"*.Example.org\"]\ncert = \"api.pem\"\nkey = \"api.key\"\n\n{ROUTE}"
    );
    let c = parse(&text, Path::new("/etc/sy/t.toml")).expect("valid");
    assert_eq!(c.server.listen_tls, Some("0.0.0.0:8443".parse().unwrap()));
    let r = c.server.redirect.expect("redirect");
    assert!(r.acme_passthrough && r.https_port.is_none());
    assert_eq!(c.server.hsts.as_deref(), Some("max-age=63072000"));
    let tls = c.tls.expect("tls");
    assert_eq!(tls.certs[0].cert, Path::new("/etc/sy/certs/default.pem"));
    assert_eq!(tls.certs[0].key, Path::new("/keys/default.key"));
    assert_eq!(
        tls.certs[1].hosts[1],
        HostMatch::Suffix(".example.org".into())
    );
}

#[test]
fn tls_mistakes_are_reported_where_they_are() {
    let e = errors("[server]\nlisten_tls = \"0.0.0.0:8443\"\n");
    assert!(
        e[0].starts_with("2:14: server.listen_tls: listen_tls needs a [tls] table"),
        "{e:?}"
    );
    let e = errors("[server]\nredirect_http = true\n");
    assert!(
        e[0].starts_with("2:17: server.redirect_http: needs an HTTPS listener"),
        "{e:?}"
    );
    let e = errors("[server]\nacme_passthrough = true\n");
    assert!(
        e[0].contains("server.acme_passthrough: only applies with redirect_http"),
        "{e:?}"
    );
    let e = errors("[server]\nlisten_tls = \"0.0.0.0:8443\"\nhsts = \"forever\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n");
    assert!(
        e[0].starts_with("3:8: server.hsts: invalid Strict-Transport-Security"),
        "{e:?}"
    );
    let e = errors("[server]\nlisten_tls = \"0.0.0.0:8443\"\n[tls]\ncert = \"c\"\n");
    assert!(
        e[0].starts_with("4:8: tls.cert: a certificate needs its key"),
        "{e:?}"
    );
    let e = errors(
        "[server]\nlisten_tls = \"0.0.0.0:8443\"\n[[tls.certs]]\nhosts = [\"a.test\"]\ncert = \"c\"\nkey = \"k\"\n\
         [[tls.certs]]\nhosts = [\"A.test\", \"b test\"]\ncert = \"c\"\nkey = \"k\"\n",
    );
    assert!(
        e[0].contains("tls.certs[1].hosts[0]: host \"A.test\" is already served"),
        "{e:?}"
    );
    assert!(
        e[1].contains("tls.certs[1].hosts[1]: invalid host"),
        "{e:?}"
    );
    let e = errors("[tls]\ncert = \"c\"\nkey = \"k\"\n");
    assert!(
        e[0].contains("tls: [tls] is set but server.listen_tls is not"),
        "{e:?}"
    );
    let e = errors("[server]\nlisten = \"0.0.0.0:8443\"\nlisten_tls = \"0.0.0.0:8443\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n");
    assert!(e[0].contains("is also server.listen"), "{e:?}");
}
