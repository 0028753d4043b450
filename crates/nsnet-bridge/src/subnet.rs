//! IPv4 subnets (`10.4.0.0/24`) and IPv6 /64s (`fd00:4:1::/64`): parsing, membership, the
//! usable host range.
//!
//! The arithmetic is `ipnet`'s (as everywhere in nsnet); this type adds the bridge's rules
//! (room for a gateway and a container) and is serialised as its CIDR text so the network
//! files read like nerdctl's. IPv6 subnets are
//! always /64s: SLAAC, and every runtime's bridge defaults, assume that size, and with one
//! size two subnets overlap exactly when they are equal.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 network: its base address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    base: Ipv4Addr,
    len: u8,
}

impl Subnet {
    /// A subnet from a base address and prefix; host bits must be zero and the prefix at most
    /// 30 (a bridge network needs a gateway and at least one container).
    pub fn new(base: Ipv4Addr, len: u8) -> Result<Subnet, String> {
        if len > 30 {
            return Err(format!(
                "{base}/{len}: the prefix must be at most /30 (room for a gateway and a container)"
            ));
        }
        let s = Subnet { base, len };
        if s.net().network() != base {
            return Err(format!(
                "{base}/{len} has host bits set (did you mean {}/{len}?)",
                s.net().network()
            ));
        }
        Ok(s)
    }

    fn net(&self) -> ipnet::Ipv4Net {
        ipnet::Ipv4Net::new(self.base, self.len).expect("the prefix was checked to be at most 30")
    }

    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.net().contains(&ip)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        self.net().broadcast()
    }

    /// The first usable host address (`.1`, the default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// The last usable host address (the one before the broadcast address).
    pub fn last_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.broadcast()) - 1)
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR subnet (want e.g. 10.4.1.0/24)"))?;
        let base: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("{s:?}: {l:?} is not a prefix length (0-32)"))?;
        Subnet::new(base, len)
    }
}

impl TryFrom<String> for Subnet {
    type Error = String;
    fn try_from(s: String) -> Result<Subnet, String> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.len)
    }
}

/// An IPv6 /64: its base address (the low 64 bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet6 {
    base: Ipv6Addr,
}

impl Subnet6 {
    pub fn new(base: Ipv6Addr) -> Result<Subnet6, String> {
        let b = u128::from(base);
        if b & u128::from(u64::MAX) != 0 {
            return Err(format!(
                "{base}/64 has host bits set (did you mean {}/64?)",
                Ipv6Addr::from(b & !u128::from(u64::MAX))
            ));
        }
        Ok(Subnet6 { base })
    }

    pub fn base(&self) -> Ipv6Addr {
        self.base
    }

    pub fn prefix_len(&self) -> u8 {
        64
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & !u128::from(u64::MAX) == u128::from(self.base)
    }

    /// `::1` of the subnet: the gateway on the bridge.
    pub fn gateway(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.base) | 1)
    }

    /// The container address that goes with IPv4 address `v4`: the IPv4 address in the low
    /// 32 bits (`fd00:4:1::a04:102` for 10.4.1.2). One-to-one with the IPv4 allocation, so the
    /// v6 address needs no allocator of its own and can never collide with `::1` (no
    /// container has IPv4 address 0.0.0.1).
    pub fn host_for(&self, v4: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.base) | u128::from(u32::from(v4)))
    }

    /// The container address with `v4`'s host number in `subnet` (`…::2` beside 10.244.1.2
    /// of a /24): what host-local hands out from an IPv6 range beside an IPv4 one, since it
    /// allocates both upwards from `::2` / `.2` and releases them together — until the IPv4
    /// range wraps, where host-local would go on upwards and this stays one-to-one. Never
    /// `::1` (the gateway) nor `::` (no container holds the IPv4 base address).
    pub fn host_at(&self, subnet: Subnet, v4: Ipv4Addr) -> Ipv6Addr {
        let n = u32::from(v4).wrapping_sub(u32::from(subnet.base()));
        Ipv6Addr::from(u128::from(self.base) | u128::from(n))
    }
}

impl FromStr for Subnet6 {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet6, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an IPv6 CIDR subnet (want e.g. fd00:4:1::/64)"))?;
        let base: Ipv6Addr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IPv6 address"))?;
        if l != "64" {
            return Err(format!("{s:?}: IPv6 bridge subnets must be /64 (got /{l})"));
        }
        Subnet6::new(base)
    }
}

impl TryFrom<String> for Subnet6 {
    type Error = String;
    fn try_from(s: String) -> Result<Subnet6, String> {
        s.parse()
    }
}

impl From<Subnet6> for String {
    fn from(s: Subnet6) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/64", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_subnets_are_64s_with_gateway_1_and_hosts_from_ipv4() {
        let s: Subnet6 = "fd00:4:1::/64".parse().unwrap();
        assert_eq!(s.to_string(), "fd00:4:1::/64");
        assert_eq!(s.gateway(), "fd00:4:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            s.host_at("10.4.1.0/24".parse().unwrap(), Ipv4Addr::new(10, 4, 1, 2)),
            "fd00:4:1::2".parse::<Ipv6Addr>().unwrap()
        );
        let h = s.host_for(Ipv4Addr::new(10, 4, 1, 2));
        assert_eq!(h, "fd00:4:1::a04:102".parse::<Ipv6Addr>().unwrap());
        assert!(s.contains(h) && !s.contains("fd00:4:2::1".parse().unwrap()));
        assert!(
            "fd00:4:1::/48"
                .parse::<Subnet6>()
                .unwrap_err()
                .contains("must be /64")
        );
        assert!(
            "fd00:4:1::5/64"
                .parse::<Subnet6>()
                .unwrap_err()
                .contains("did you mean fd00:4:1::/64")
        );
        assert!("10.4.0.0/64".parse::<Subnet6>().is_err());
        assert!("fd00::".parse::<Subnet6>().unwrap_err().contains("CIDR"));
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, "\"fd00:4:1::/64\"");
        assert!(serde_json::from_str::<Subnet6>("\"fd00::/56\"").is_err());
    }

    #[test]
    fn parses_and_answers_membership() {
        let s: Subnet = "10.4.0.0/24".parse().unwrap();
        assert!(s.contains("10.4.0.200".parse().unwrap()));
        assert!(!s.contains("10.4.1.1".parse().unwrap()));
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 4, 0, 1));
        assert_eq!(s.last_host(), Ipv4Addr::new(10, 4, 0, 254));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 4, 0, 255));
        assert_eq!(s.to_string(), "10.4.0.0/24");
        let big: Subnet = "10.4.0.0/16".parse().unwrap();
        assert!(big.overlaps(&s) && s.overlaps(&big));
        assert!(!s.overlaps(&"10.4.1.0/24".parse().unwrap()));
    }

    #[test]
    fn bad_subnets_say_what_is_wrong() {
        assert!(
            "10.4.0.1/24"
                .parse::<Subnet>()
                .unwrap_err()
                .contains("did you mean 10.4.0.0/24")
        );
        assert!("10.4.0.0".parse::<Subnet>().unwrap_err().contains("CIDR"));
        assert!("10.4.0.0/33".parse::<Subnet>().is_err());
        assert!("10.4.0.0/31".parse::<Subnet>().unwrap_err().contains("/30"));
        assert!("x/24".parse::<Subnet>().is_err());
        let j = serde_json::to_string(&"10.4.2.0/24".parse::<Subnet>().unwrap()).unwrap();
        assert_eq!(j, "\"10.4.2.0/24\"");
        assert!(serde_json::from_str::<Subnet>("\"10.4.2.1/24\"").is_err());
    }
}
