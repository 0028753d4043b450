//! Which destinations a container's connect may take to the host network namespace.
//!
//! The rule: a destination bypasses only where the normal path would have taken the container's
//! flow to that same address on the host's network, unchanged. So never: the container's own
//! loopback (127.0.0.0/8, `::1`, and 0.0.0.0/`::`, which Linux connects to loopback), any
//! container network or the instance's own network (where the gateway stands for the host's
//! loopback and CIDR+3 for the DNS forwarder: a host socket to those addresses would mean
//! something else, or open what `--disable-host-loopback` closes), link-local, multicast and
//! broadcast addresses, and no family the container's network does not route (an `--internal`
//! network routes none; a network without IPv6 routes no IPv6). The caller
//! (`nsnet-container`) lists the networks; this module only applies the list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// What a container may bypass to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The normal path routes IPv4 to the outside (false on an `--internal` network).
    pub ipv4: bool,
    /// The normal path routes IPv6 to the outside.
    pub ipv6: bool,
    /// Networks that are never bypassed: every container network, the instance's own network,
    /// its DNS address.
    pub never: Vec<IpNet>,
}

impl Policy {
    /// Whether a connect to `dst` may run on a host socket.
    pub fn allows(&self, dst: SocketAddr) -> bool {
        if dst.port() == 0 {
            return false;
        }
        let ip = match dst.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        let open = match ip {
            IpAddr::V4(v4) => self.ipv4 && outside_v4(v4),
            IpAddr::V6(v6) => self.ipv6 && outside_v6(v6),
        };
        open && !self.never.iter().any(|n| n.contains(&ip))
    }
}

fn outside_v4(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.octets()[0] == 0
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast())
}

fn outside_v6(ip: Ipv6Addr) -> bool {
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || ip.is_unicast_link_local())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Policy {
        Policy {
            ipv4: true,
            ipv6: true,
            never: ["10.0.2.0/24", "10.4.0.0/24", "fd00::/64", "fd00:4::/64"]
                .iter()
                .map(|n| n.parse().unwrap())
                .collect(),
        }
    }

    fn allows(p: &Policy, a: &str) -> bool {
        p.allows(a.parse().unwrap())
    }

    #[test]
    fn outside_addresses_bypass_in_both_families() {
        let p = p();
        for a in [
            "192.0.2.10:80",
            "198.51.100.7:443",
            "[2001:db8::1]:80",
            "[::ffff:192.0.2.10]:80",
        ] {
            assert!(allows(&p, a), "{a}");
        }
    }

    #[test]
    fn loopback_container_networks_gateway_dns_and_scoped_addresses_never_bypass() {
        let p = p();
        for a in [
            "127.0.0.1:80",
            "127.1.2.3:80",
            "0.0.0.0:80",
            "10.0.2.2:8080",
            "10.0.2.3:53",
            "10.4.0.7:80",
            "169.254.1.1:80",
            "224.0.0.1:5353",
            "255.255.255.255:67",
            "[::1]:80",
            "[::]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:10.0.2.2]:80",
            "[fd00::2]:80",
            "[fd00:4::5]:80",
            "[fe80::1]:80",
            "[ff02::1]:80",
            "192.0.2.10:0",
        ] {
            assert!(!allows(&p, a), "{a}");
        }
    }

    #[test]
    fn a_family_the_network_does_not_route_never_bypasses() {
        let internal = Policy {
            ipv4: false,
            ipv6: false,
            ..p()
        };
        assert!(!allows(&internal, "192.0.2.10:80"));
        assert!(!allows(&internal, "[2001:db8::1]:80"));
        let v4_only = Policy { ipv6: false, ..p() };
        assert!(allows(&v4_only, "192.0.2.10:80"));
        assert!(allows(&v4_only, "[::ffff:192.0.2.10]:80"));
        assert!(!allows(&v4_only, "[2001:db8::1]:80"));
    }
}
