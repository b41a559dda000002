//! Backends given by DNS name (`"blue:8000"`): each name becomes one
//! backend per address it resolves to, resolved again every
//! `resolve_interval`. A failed or empty answer keeps the last good set
//! (nginx resolves once at start and keeps sending to dead container IPs;
//! switchyard follows the answers). Addresses that appear are new backends
//! (probed before they take traffic); addresses that disappear are drained.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::config::{BackendConfig, Config};

/// Resolved addresses by (host, port).
pub type Answers = HashMap<(String, u16), Vec<SocketAddr>>;

/// A name resolver; tests substitute their own.
pub trait Resolve: Send + Sync + 'static {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// The names of `config`, each once.
pub fn names(config: &Config) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = Vec::new();
    for n in config.pools.iter().flat_map(|p| &p.names) {
        let key = (n.host.clone(), n.port);
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// `config` with every name replaced by the backends it resolved to.
/// Static IP:port entries win over a resolved duplicate.
pub fn expand(config: &Config, answers: &Answers) -> Config {
    let mut out = config.clone();
    for pool in &mut out.pools {
        for n in std::mem::take(&mut pool.names) {
            for addr in answers.get(&(n.host.clone(), n.port)).into_iter().flatten() {
                if !pool.backends.iter().any(|b| b.addr == *addr) {
                    pool.backends.push(BackendConfig {
                        addr: *addr,
                        weight: n.weight,
                        drain: n.drain,
                    });
                }
            }
        }
    }
    out
}

/// Sorted and without duplicates, so that answers compare by content.
pub fn normalize(mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    addrs.sort();
    addrs.dedup();
    addrs
}
