//! The client's real address behind load balancers (nginx's
//! `set_real_ip_from` + `real_ip_header X-Forwarded-For` +
//! `real_ip_recursive on`). The connection's address (the PROXY header's
//! source when the peer is trusted to send one, else the TCP peer) is the
//! client unless it is in `trusted_proxies`; then `X-Forwarded-For` is
//! walked from the right, past every trusted address, and the first
//! untrusted one is the client. A peer that is not trusted cannot make
//! switchyard believe anything it writes in the header.
//!
//! Used for logs, `$remote_addr` and rate limit keys. What is sent on as
//! `X-Forwarded-For` is the header received plus the connection's address
//! (the hop switchyard saw), so the chain stays true either way.

use std::net::{IpAddr, SocketAddr};

use crate::config::TrustedProxies;

/// Entries of `X-Forwarded-For` looked at, at most (a longer chain of
/// trusted hops stops at this one).
pub const MAX_HOPS: usize = 32;

/// The client's address. `xff` yields the `X-Forwarded-For` header values
/// in the order received (several headers are one list, RFC 9110 §5.3).
pub fn client_ip<'h, I>(conn: IpAddr, trusted: &TrustedProxies, xff: I) -> IpAddr
where
    I: DoubleEndedIterator<Item = &'h [u8]>,
{
    let conn = conn.to_canonical();
    if trusted.is_empty() || !trusted.contains(conn) {
        return conn;
    }
    let mut client = conn;
    let entries = xff.rev().flat_map(|v| v.rsplit(|&b| b == b','));
    for entry in entries.take(MAX_HOPS) {
        let Some(ip) = parse_entry(entry) else {
            // Garbage: nothing to its left can be trusted either.
            return client;
        };
        client = ip;
        if !trusted.contains(ip) {
            return ip;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`,
/// `[2001:db8::1]:5`, as some balancers write them).
fn parse_entry(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(raw.trim_ascii()).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn walk(conn: &str, t: &TrustedProxies, headers: &[&str]) -> IpAddr {
        client_ip(ip(conn), t, headers.iter().map(|h| h.as_bytes()))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(walk("198.51.100.1", &t, &["1.2.3.4"]), ip("198.51.100.1"));
        // with nobody trusted, nobody's header is believed
        let none = TrustedProxies::default();
        assert_eq!(walk("10.0.0.1", &none, &["1.2.3.4"]), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let t = trusted(&["10.0.0.0/8", "2001:db8::/32"]);
        // client, a spoofed entry the client wrote, then our two balancers
        assert_eq!(
            walk("10.0.0.2", &t, &["6.6.6.6, 203.0.113.7, 10.0.0.9"]),
            ip("203.0.113.7")
        );
        // several headers are one list
        assert_eq!(
            walk("10.0.0.2", &t, &["6.6.6.6, 203.0.113.7", "10.1.1.1"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            walk("::ffff:10.0.0.2", &t, &["[2001:db8::5]:443, 2001:db8::9"]),
            ip("2001:db8::5"),
            "every hop trusted: the leftmost is the client"
        );
    }

    #[test]
    fn ports_garbage_and_no_header() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            walk("10.0.0.2", &t, &["203.0.113.7:5555"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            walk("10.0.0.2", &t, &["[2001:db8::7]:1"]),
            ip("2001:db8::7")
        );
        // garbage stops the walk at the last trusted hop
        assert_eq!(
            walk("10.0.0.2", &t, &["1.2.3.4, junk, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(walk("10.0.0.2", &t, &[]), ip("10.0.0.2"));
        assert_eq!(walk("10.0.0.2", &t, &[""]), ip("10.0.0.2"));
    }

    proptest! {
        /// Whatever a client writes in front, the answer is the entry
        /// right of it that the trusted chain vouches for.
        #[test]
        fn a_client_cannot_choose_its_address(
            forged in proptest::collection::vec(any::<[u8; 4]>(), 0..5),
            real: [u8; 4],
            hops in 0usize..4,
        ) {
            let real = IpAddr::from(real);
            let t = trusted(&["10.0.0.0/8"]);
            prop_assume!(!t.contains(real));
            let mut list: Vec<String> = forged.iter().map(|o| IpAddr::from(*o).to_string()).collect();
            list.push(real.to_string());
            for h in 0..hops {
                list.push(format!("10.0.0.{h}"));
            }
            let header = list.join(", ");
            prop_assert_eq!(walk("10.9.9.9", &t, &[header.as_str()]), real);
        }
    }
}
