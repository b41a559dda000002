//! `[cluster]`: running several replicas as one through etcd. The typed
//! model (endpoints, key prefix, instance name, lease TTL, TLS and
//! authentication to etcd) and its validation, kept apart from `validate`
//! like the rollout and notify sections. The key names are fixed (outside
//! tooling writes them). Nothing here connects to etcd or reads the client
//! certificate: that happens when the cluster starts (the `cluster` module).
//! The CA file is read now, like a pool's, so a bad one is a config error.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::model::CaFile;
use super::validate::Validator;

/// Default of `lease_ttl`.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// etcd grants leases in whole seconds; below 2 s a replica's keep-alive
/// (every third of the TTL) has no room for one slow round trip.
const LEASE_TTL_RANGE: (u64, u64) = (2, 300);
/// Longest instance name (it is part of etcd keys and of every history
/// event).
const MAX_INSTANCE_LEN: usize = 128;

/// `[cluster]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub etcd: Option<Spanned<Vec<Spanned<String>>>>,
    pub prefix: Option<Spanned<String>>,
    pub instance: Option<Spanned<String>>,
    pub lease_ttl: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
}

/// A validated `[cluster]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// etcd client endpoints, all `http://` or all `https://`.
    pub endpoints: Vec<EtcdEndpoint>,
    /// Every key of this cluster lives under `prefix` + `/`.
    pub prefix: String,
    /// This replica's name in the cluster: `instance`, else
    /// `hostname:listen-port`.
    pub instance: String,
    /// Time-to-live of the membership and leadership lease.
    pub lease_ttl: Duration,
    /// TLS to etcd (`https://` endpoints).
    pub tls: Option<EtcdTls>,
    /// etcd user authentication.
    pub auth: Option<EtcdAuth>,
}

/// One etcd client endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdEndpoint {
    pub https: bool,
    /// `host:port` (port defaulted to 2379).
    pub authority: String,
}

impl fmt::Display for EtcdEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

/// TLS settings for `https://` endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// Trust anchors; `None`: the system's.
    pub ca: Option<CaFile>,
    /// Client certificate and key (PEM), for etcd's `--client-cert-auth`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// `user` and the environment variable holding the password.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdAuth {
    pub user: String,
    pub password_env: String,
}

impl fmt::Debug for EtcdAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdAuth")
            .field("user", &self.user)
            .field("password_env", &self.password_env)
            .finish()
    }
}

impl EtcdAuth {
    /// The password, read from the environment when the cluster connects.
    pub fn password(&self) -> Result<String, String> {
        match std::env::var(&self.password_env) {
            Ok(p) if !p.is_empty() => Ok(p),
            Ok(_) => Err(format!("{} is empty", self.password_env)),
            Err(_) => Err(format!(
                "cluster.password_env names {}, which is not set",
                self.password_env
            )),
        }
    }
}

/// The machine's host name, for the default instance name.
fn hostname() -> String {
    #[cfg(unix)]
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    #[cfg(not(unix))]
    let name = std::env::var("COMPUTERNAME").unwrap_or_default();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// Whether `s` may be an instance name: it is part of etcd keys.
fn instance_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_INSTANCE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

impl Validator<'_> {
    /// `[cluster]`; `listen_port` gives the default instance name.
    pub(crate) fn cluster(
        &mut self,
        raw: Option<&Spanned<RawCluster>>,
        listen_port: u16,
    ) -> Option<ClusterConfig> {
        let raw_span = raw?.span();
        let c = raw?.get_ref();
        let before = self.diags.len();
        let endpoints = self.etcd_endpoints(raw_span.clone(), c.etcd.as_ref());
        let prefix = self.cluster_prefix(raw_span, c.prefix.as_ref());
        let instance = match &c.instance {
            Some(i) if instance_ok(i.get_ref()) => i.get_ref().clone(),
            Some(i) => {
                self.error(
                    i.span(),
                    "cluster.instance",
                    format!("invalid instance name {:?}", i.get_ref()),
                    Some(format!(
                        "up to {MAX_INSTANCE_LEN} letters, digits, '.', '-', '_' or ':'"
                    )),
                );
                String::new()
            }
            None => {
                let name: String = hostname()
                    .chars()
                    .map(|ch| {
                        if instance_ok(&ch.to_string()) {
                            ch
                        } else {
                            '-'
                        }
                    })
                    .collect();
                format!("{name}:{listen_port}")
            }
        };
        let lease_ttl = self.lease_ttl(c.lease_ttl.as_ref());
        let https = endpoints.first().is_some_and(|e| e.https);
        let tls = self.etcd_tls(c, https);
        let auth = self.etcd_auth(c);
        (self.diags.len() == before).then_some(ClusterConfig {
            endpoints,
            prefix,
            instance,
            lease_ttl,
            tls,
            auth,
        })
    }

    fn etcd_endpoints(
        &mut self,
        table: std::ops::Range<usize>,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Vec<EtcdEndpoint> {
        let hint = Some("e.g. etcd = [\"http://10.0.0.5:2379\", \"http://10.0.0.6:2379\"]".into());
        let Some(list) = raw.filter(|l| !l.get_ref().is_empty()) else {
            let span = raw.map_or(table, |l| l.span());
            self.error(span, "cluster.etcd", "no etcd endpoints", hint);
            return Vec::new();
        };
        let mut out: Vec<EtcdEndpoint> = Vec::new();
        for (i, e) in list.get_ref().iter().enumerate() {
            let key = format!("cluster.etcd[{i}]");
            let Some(ep) = parse_endpoint(e.get_ref()) else {
                self.error(
                    e.span(),
                    key,
                    format!("cannot parse etcd endpoint {:?}", e.get_ref()),
                    Some("write http://host:port or https://host:port".into()),
                );
                continue;
            };
            if let Some(first) = out.first().filter(|f| f.https != ep.https) {
                self.error(
                    e.span(),
                    key,
                    format!("{ep} and {first} mix https:// and http://"),
                    Some("every endpoint of one etcd cluster speaks TLS or none does".into()),
                );
                continue;
            }
            if out.contains(&ep) {
                self.error(e.span(), key, format!("{ep} is listed twice"), None);
                continue;
            }
            out.push(ep);
        }
        out
    }

    fn cluster_prefix(
        &mut self,
        table: std::ops::Range<usize>,
        raw: Option<&Spanned<String>>,
    ) -> String {
        let hint = Some(
            "an absolute key path naming this cluster, e.g. prefix = \"/switchyard/prod-web\""
                .into(),
        );
        let Some(p) = raw else {
            self.error(table, "cluster.prefix", "no key prefix", hint);
            return String::new();
        };
        let s = p.get_ref();
        let segments_ok = s
            .strip_prefix('/')
            .is_some_and(|rest| rest.split('/').all(|seg| !seg.is_empty()));
        let chars_ok = s.bytes().all(|b| b.is_ascii_graphic());
        if !segments_ok || !chars_ok {
            self.error(
                p.span(),
                "cluster.prefix",
                format!("invalid key prefix {s:?}"),
                hint,
            );
        }
        s.clone()
    }

    fn lease_ttl(&mut self, raw: Option<&Spanned<String>>) -> Duration {
        let ttl = self.duration("cluster.lease_ttl", raw, DEFAULT_LEASE_TTL, false);
        let (min, max) = LEASE_TTL_RANGE;
        if let Some(r) = raw {
            if ttl.subsec_nanos() != 0 || ttl.as_secs() < min || ttl.as_secs() > max {
                self.error(
                    r.span(),
                    "cluster.lease_ttl",
                    format!(
                        "lease_ttl {:?} is not a whole number of seconds from {min} to {max}",
                        r.get_ref()
                    ),
                    Some("etcd grants leases in whole seconds, e.g. lease_ttl = \"5s\"".into()),
                );
                return DEFAULT_LEASE_TTL;
            }
        }
        ttl
    }

    fn etcd_tls(&mut self, c: &RawCluster, https: bool) -> Option<EtcdTls> {
        let tls_keys = [("ca_file", &c.ca_file), ("cert", &c.cert), ("key", &c.key)];
        if !https {
            for (name, value) in tls_keys {
                if let Some(v) = value {
                    self.error(
                        v.span(),
                        format!("cluster.{name}"),
                        format!("{name} needs https:// etcd endpoints"),
                        Some("write the endpoints https://, or remove this key".into()),
                    );
                }
            }
            return None;
        }
        let ca = c
            .ca_file
            .as_ref()
            .and_then(|f| self.ca_file("cluster.ca_file", f));
        let identity = match (&c.cert, &c.key) {
            (Some(cert), Some(key)) => Some((self.path(cert.get_ref()), self.path(key.get_ref()))),
            (Some(only), None) | (None, Some(only)) => {
                let (have, missing) = if c.cert.is_some() {
                    ("cert", "key")
                } else {
                    ("key", "cert")
                };
                self.error(
                    only.span(),
                    format!("cluster.{have}"),
                    format!("{have} without {missing}"),
                    Some("a client certificate needs both cert and key (PEM files)".into()),
                );
                None
            }
            (None, None) => None,
        };
        Some(EtcdTls { ca, identity })
    }

    fn etcd_auth(&mut self, c: &RawCluster) -> Option<EtcdAuth> {
        match (&c.user, &c.password_env) {
            (Some(user), Some(env)) => {
                if user.get_ref().is_empty() {
                    self.error(user.span(), "cluster.user", "empty user name", None);
                }
                if env.get_ref().is_empty() {
                    self.error(
                        env.span(),
                        "cluster.password_env",
                        "empty variable name",
                        None,
                    );
                }
                Some(EtcdAuth {
                    user: user.get_ref().clone(),
                    password_env: env.get_ref().clone(),
                })
            }
            (Some(user), None) => {
                self.error(
                    user.span(),
                    "cluster.user",
                    "user without password_env",
                    Some("name the environment variable holding the password, e.g. password_env = \"SWITCHYARD_ETCD_PASSWORD\"".into()),
                );
                None
            }
            (None, Some(env)) => {
                self.error(
                    env.span(),
                    "cluster.password_env",
                    "password_env without user",
                    None,
                );
                None
            }
            (None, None) => None,
        }
    }
}

/// `http://host[:port]` or `https://host[:port]` with nothing after the
/// authority (a trailing `/` is allowed).
fn parse_endpoint(s: &str) -> Option<EtcdEndpoint> {
    let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else {
        (false, s.strip_prefix("http://")?)
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let uri: http::uri::Authority = authority.parse().ok()?;
    if uri.host().is_empty() || authority.contains('@') {
        return None;
    }
    let authority = match uri.port_u16() {
        Some(_) => authority.to_owned(),
        None if authority.ends_with(':') => return None,
        None => format!("{authority}:2379"),
    };
    Some(EtcdEndpoint { https, authority })
}

#[cfg(test)]
mod tests;
