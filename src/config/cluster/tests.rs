use std::path::Path;
use std::time::Duration;

use crate::config::{parse, ClusterConfig, ConfigError, DEFAULT_LEASE_TTL};

const ROUTING: &str = r#"
[server]
listen = "127.0.0.1:8080"

[pools.blue]
backends = ["127.0.0.1:8001"]

[[routes]]
name = "api"
split = { blue = 100 }
"#;

fn cluster(section: &str) -> Result<Option<ClusterConfig>, ConfigError> {
    let text = format!("{ROUTING}\n{section}");
    parse(&text, Path::new("t.toml")).map(|c| c.cluster)
}

/// (line, key, message) of every diagnostic.
fn errors(section: &str) -> Vec<(usize, String, String)> {
    match cluster(section) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e
            .diagnostics()
            .iter()
            .map(|d| (d.line, d.key.clone(), d.message.clone()))
            .collect(),
    }
}

#[test]
fn no_cluster_section_is_stand_alone() {
    assert_eq!(cluster("").unwrap(), None);
}

#[test]
fn the_issue_example_parses() {
    let c = cluster(
        r#"
[cluster]
etcd = ["http://127.0.0.1:2379"]
prefix = "/switchyard/prod-web"
instance = "web-1"
lease_ttl = "5s"
"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.endpoints.len(), 1);
    assert_eq!(c.endpoints[0].to_string(), "http://127.0.0.1:2379");
    assert_eq!(c.prefix, "/switchyard/prod-web");
    assert_eq!(c.instance, "web-1");
    assert_eq!(c.lease_ttl, Duration::from_secs(5));
    assert_eq!(c.tls, None);
    assert_eq!(c.auth, None);
}

#[test]
fn defaults_instance_to_hostname_and_listen_port() {
    let c = cluster("[cluster]\netcd = [\"http://10.0.0.5\"]\nprefix = \"/s/p\"\n")
        .unwrap()
        .unwrap();
    assert!(c.instance.ends_with(":8080"), "{}", c.instance);
    assert!(c.instance.len() > ":8080".len());
    assert_eq!(c.lease_ttl, DEFAULT_LEASE_TTL);
    // The port defaults to etcd's client port.
    assert_eq!(c.endpoints[0].authority, "10.0.0.5:2379");
}

#[test]
fn https_with_ca_client_certificate_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["etcd".into()]).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
    let text = format!(
        "{ROUTING}\n[cluster]\netcd = [\"https://etcd-0:2379\", \"https://etcd-1:2379\"]\n\
         prefix = \"/s/p\"\nca_file = \"ca.pem\"\ncert = \"client.pem\"\nkey = \"client.key\"\n\
         user = \"proxy\"\npassword_env = \"ETCD_PW\"\n"
    );
    let c = parse(&text, &dir.path().join("t.toml"))
        .unwrap()
        .cluster
        .unwrap();
    let tls = c.tls.unwrap();
    assert_eq!(tls.ca.unwrap().certs.len(), 1);
    assert_eq!(
        tls.identity,
        Some((dir.path().join("client.pem"), dir.path().join("client.key")))
    );
    let auth = c.auth.unwrap();
    assert_eq!(auth.user, "proxy");
    assert_eq!(auth.password_env, "ETCD_PW");
    // The Debug form never shows a password (it is not even held).
    assert!(!format!("{auth:?}").contains("secret"));
}

#[test]
fn every_error_names_line_and_key() {
    let errs = errors(
        r#"
[cluster]
etcd = ["http://a:2379", "ftp://b", "https://c:2379", "http://a:2379"]
prefix = "switchyard/"
instance = "web 1"
lease_ttl = "1500ms"
ca_file = "ca.pem"
user = "proxy"
"#,
    );
    let keys: Vec<&str> = errs.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "cluster.etcd[1]",
            "cluster.etcd[2]",
            "cluster.etcd[3]",
            "cluster.prefix",
            "cluster.instance",
            "cluster.lease_ttl",
            "cluster.ca_file",
            "cluster.user",
        ],
        "{errs:?}"
    );
    // After ROUTING and two empty lines, `[cluster]` is line 13.
    let line_of = |key: &str| errs.iter().find(|(_, k, _)| k == key).unwrap().0;
    assert_eq!(line_of("cluster.etcd[1]"), 14);
    assert_eq!(line_of("cluster.prefix"), 15);
    assert_eq!(line_of("cluster.user"), 19);
    assert!(errs[1].2.contains("mix https:// and http://"), "{errs:?}");
    assert!(errs[2].2.contains("listed twice"), "{errs:?}");
}

#[test]
fn missing_endpoints_and_prefix() {
    let errs = errors("[cluster]\netcd = []\n");
    let keys: Vec<&str> = errs.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(keys, ["cluster.etcd", "cluster.prefix"], "{errs:?}");
}

#[test]
fn unknown_key_gets_a_suggestion() {
    let err = cluster("[cluster]\netcd = [\"http://a\"]\nprefix = \"/p\"\nlease_tll = \"5s\"\n")
        .unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!(d.key, "cluster.lease_tll");
    assert_eq!(d.hint.as_deref(), Some("did you mean `lease_ttl`?"));
}

#[test]
fn half_a_client_certificate_and_half_the_auth() {
    let errs = errors(
        "[cluster]\netcd = [\"https://a\"]\nprefix = \"/p\"\ncert = \"c.pem\"\npassword_env = \"X\"\n",
    );
    let keys: Vec<&str> = errs.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(keys, ["cluster.cert", "cluster.password_env"], "{errs:?}");
}

#[test]
fn lease_ttl_bounds() {
    for bad in ["1s", "301s", "2.5s", "0s"] {
        let errs = errors(&format!(
            "[cluster]\netcd = [\"http://a\"]\nprefix = \"/p\"\nlease_ttl = \"{bad}\"\n"
        ));
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert_eq!(errs[0].1, "cluster.lease_ttl");
    }
    let ok = cluster("[cluster]\netcd = [\"http://a\"]\nprefix = \"/p\"\nlease_ttl = \"2s\"\n")
        .unwrap()
        .unwrap();
    assert_eq!(ok.lease_ttl, Duration::from_secs(2));
}
