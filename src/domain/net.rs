//! Where a code request comes from, as the per-address caps count it. One end user is one
//! IPv4 address or one IPv6 `/64` (every IPv6 customer gets at least a whole `/64`, so
//! counting single IPv6 addresses lets one client be thousands). An IPv4-mapped IPv6 address
//! (`::ffff:198.51.100.9`) is that IPv4 address. A looser cap counts the surrounding network:
//! the IPv4 `/24`, the IPv6 `/48`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A client address, reduced to what the caps count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientNet {
    /// The end user: `198.51.100.9`, or `2001:db8:1:2::/64`.
    pub host: String,
    /// Its network: `198.51.100.0/24`, or `2001:db8:1::/48`.
    pub network: String,
}

impl ClientNet {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::v4(v4),
                None => Self::v6(v6),
            },
        }
    }

    fn v4(ip: Ipv4Addr) -> Self {
        let [a, b, c, _] = ip.octets();
        Self {
            host: ip.to_string(),
            network: format!("{a}.{b}.{c}.0/24"),
        }
    }

    fn v6(ip: Ipv6Addr) -> Self {
        let s = ip.segments();
        let prefix = |n: usize| {
            let mut kept = [0u16; 8];
            kept[..n].copy_from_slice(&s[..n]);
            Ipv6Addr::from(kept)
        };
        Self {
            host: format!("{}/64", prefix(4)),
            network: format!("{}/48", prefix(3)),
        }
    }
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> ClientNet {
        ClientNet::of(s.parse().unwrap())
    }

    #[test]
    fn users_and_networks_are_what_the_caps_count() {
        let v4 = net("198.51.100.9");
        assert_eq!(
            (v4.host.as_str(), v4.network.as_str()),
            ("198.51.100.9", "198.51.100.0/24")
        );
        assert_eq!(
            net("::ffff:198.51.100.9"),
            v4,
            "IPv4-mapped is the IPv4 address"
        );
        let a = net("2001:db8:1:2:aaaa::1");
        let b = net("2001:db8:1:2:ffff:ffff:ffff:ffff");
        assert_eq!(a, b, "one /64 is one user");
        assert_eq!(a.host, "2001:db8:1:2::/64");
        assert_eq!(a.network, "2001:db8:1::/48");
        let c = net("2001:db8:1:3::1");
        assert_ne!(a.host, c.host);
        assert_eq!(a.network, c.network, "the /48 holds both");
    }
}
