//! What a reload changes in the routing, as short phrases for the log line
//! that says it was applied (`changes = "route web: split blue 90, canary
//! 10 -> blue 50, canary 50; pool blue: +127.0.0.1:8003"`). A reload that
//! changes something else (timeouts, health settings) says "settings".

use crate::config::{Config, PoolConfig};

/// The differences between two configurations that decide where requests
/// go: routes added or removed, splits, pools added or removed, backends
/// added, removed, drained or re-weighted. Empty when none of these moved.
pub fn routing(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let weights = |s: &[(String, u32)]| {
        s.iter()
            .map(|(p, w)| format!("{p} {w}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for r in &new.routes {
        match old.routes.iter().find(|o| o.name == r.name) {
            None => out.push(format!("route {}: added", r.name)),
            Some(o) if o.split != r.split => out.push(format!(
                "route {}: split {} -> {}",
                r.name,
                weights(&o.split),
                weights(&r.split)
            )),
            Some(_) => {}
        }
    }
    for o in &old.routes {
        if !new.routes.iter().any(|r| r.name == o.name) {
            out.push(format!("route {}: removed", o.name));
        }
    }
    for p in &new.pools {
        match old.pools.iter().find(|o| o.name == p.name) {
            None => out.push(format!("pool {}: added", p.name)),
            Some(o) => {
                let b = backends(o, p);
                if !b.is_empty() {
                    out.push(format!("pool {}: {}", p.name, b.join(" ")));
                }
            }
        }
    }
    for o in &old.pools {
        if !new.pools.iter().any(|p| p.name == o.name) {
            out.push(format!("pool {}: removed", o.name));
        }
    }
    out
}

/// `+addr` added, `-addr` removed, `addr drained` / `undrained`,
/// `addr weight 1->3`, `+name:port` for DNS names.
fn backends(old: &PoolConfig, new: &PoolConfig) -> Vec<String> {
    let mut out = Vec::new();
    for b in &new.backends {
        match old.backends.iter().find(|o| o.addr == b.addr) {
            None => out.push(format!("+{}", b.addr)),
            Some(o) => {
                if o.drain != b.drain {
                    let what = if b.drain { "drained" } else { "undrained" };
                    out.push(format!("{} {what}", b.addr));
                }
                if o.weight != b.weight {
                    out.push(format!("{} weight {}->{}", b.addr, o.weight, b.weight));
                }
            }
        }
    }
    for o in &old.backends {
        if !new.backends.iter().any(|b| b.addr == o.addr) {
            out.push(format!("-{}", o.addr));
        }
    }
    for n in &new.names {
        if !old.names.contains(n) {
            out.push(format!("+{}:{}", n.host, n.port));
        }
    }
    for n in &old.names {
        if !new.names.contains(n) {
            out.push(format!("-{}:{}", n.host, n.port));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(split: &str, blue: &str) -> Config {
        let text = format!(
            "[pools.blue]\nbackends = [{blue}]\n[pools.green]\nbackends = [\"127.0.0.1:9002\"]\n\
             [[routes]]\nname = \"web\"\nsplit = {{ {split} }}\n"
        );
        crate::config::parse(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn names_split_and_backend_changes() {
        let old = cfg("blue = 90, green = 10", "\"127.0.0.1:9001\"");
        let new = cfg(
            "blue = 50, green = 50",
            "{ addr = \"127.0.0.1:9001\", drain = true }, \"127.0.0.1:9003\"",
        );
        assert_eq!(
            routing(&old, &new),
            [
                "route web: split blue 90, green 10 -> blue 50, green 50",
                "pool blue: 127.0.0.1:9001 drained +127.0.0.1:9003",
            ]
        );
        assert_eq!(routing(&new, &new), Vec::<String>::new());
        assert_eq!(
            routing(&new, &old)[1],
            "pool blue: 127.0.0.1:9001 undrained -127.0.0.1:9003"
        );
    }
}
