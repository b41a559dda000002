//! Address blocks: `trusted_proxies = ["10.0.0.0/8", "2001:db8::/32",
//! "192.0.2.1"]`, the peers whose PROXY header and `X-Forwarded-For` are
//! believed. Parsed at load; a lookup is a short linear scan of masks (a
//! deployment lists a handful of blocks).

use std::net::IpAddr;
use std::str::FromStr;

/// One block of addresses: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a block does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    #[error("not an IP address")]
    Address,
    #[error("prefix length /{0} is longer than the address")]
    Prefix(String),
    #[error("host bits are set: {0}/{1} is {2}/{1}")]
    HostBits(IpAddr, u8, IpAddr),
}

impl IpNet {
    /// Does the block hold `ip`? An IPv4-mapped IPv6 address counts as
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask32(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(v: u32, prefix: u8) -> u32 {
    v.checked_shr(32 - u32::from(prefix))
        .and_then(|x| x.checked_shl(32 - u32::from(prefix)))
        .unwrap_or(0)
}

fn mask128(v: u128, prefix: u8) -> u128 {
    v.checked_shr(128 - u32::from(prefix))
        .and_then(|x| x.checked_shl(128 - u32::from(prefix)))
        .unwrap_or(0)
}

impl FromStr for IpNet {
    type Err = IpNetError;

    /// `"10.0.0.0/8"`, `"2001:db8::/32"`, or a bare address (one host).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| IpNetError::Address)?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(IpNetError::Prefix(p.to_owned())),
            },
        };
        let masked = match addr {
            IpAddr::V4(a) => IpAddr::from(mask32(u32::from(a), prefix).to_be_bytes()),
            IpAddr::V6(a) => IpAddr::from(mask128(u128::from(a), prefix).to_be_bytes()),
        };
        if masked != addr {
            return Err(IpNetError::HostBits(addr, prefix, masked));
        }
        Ok(IpNet { addr, prefix })
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `[server] trusted_proxies`: empty means no peer is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_hold_their_addresses() {
        let n = net("10.0.0.0/8");
        assert!(n.contains("10.255.1.2".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        // an IPv4-mapped IPv6 peer is its IPv4 address
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let all = net("0.0.0.0/0");
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let host = net("192.0.2.1");
        assert!(host.contains("192.0.2.1".parse().unwrap()));
        assert!(!host.contains("192.0.2.2".parse().unwrap()));
        assert_eq!(host.to_string(), "192.0.2.1/32");
    }

    #[test]
    fn bad_blocks_say_why() {
        assert_eq!("10.0.0/8".parse::<IpNet>(), Err(IpNetError::Address));
        assert_eq!(
            "10.0.0.0/33".parse::<IpNet>(),
            Err(IpNetError::Prefix("33".into()))
        );
        assert_eq!(
            "10.0.0.0/+8".parse::<IpNet>(),
            Err(IpNetError::Prefix("+8".into()))
        );
        assert!(matches!(
            "10.1.0.0/8".parse::<IpNet>(),
            Err(IpNetError::HostBits(..))
        ));
    }

    proptest! {
        /// A block holds exactly the addresses that share its first
        /// `prefix` bits.
        #[test]
        fn membership_is_the_prefix(a: u32, b: u32, prefix in 0u8..=32) {
            let base = mask32(a, prefix);
            let n: IpNet = format!("{}/{prefix}", std::net::Ipv4Addr::from(base)).parse().unwrap();
            let same = mask32(b, prefix) == base;
            prop_assert_eq!(n.contains(IpAddr::from(b.to_be_bytes())), same);
        }
    }
}
