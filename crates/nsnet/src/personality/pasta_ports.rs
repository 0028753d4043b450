//! The pasta personality's forwarding tables on nsnet's port machinery: each `-t/-u` rule
//! (or one added through `-c SOCKET`) becomes published ports of an `nsnet_port::PortManager`
//! — a host listener per port, a socket made inside the namespace for each connection or
//! client flow, the splice relay between them. The target inside is port `to + (n - first)`
//! of the rule's target address or, as passt 2026's `fwd_nat_from_host()` chooses, the
//! guest's own address of the client's family — not its loopback, "so we don't
//! inadvertently expose services that listen only on the guest's loopback address" — unless
//! `--host-lo-to-ns-lo`, with which a forward from a host loopback address goes to the same
//! loopback address inside.
//!
//! The relay picks its target per listener, not per connection: so a dual-stack rule
//! becomes an IPv4 and an IPv6 listener, each with its family's guest address; without an
//! IPv6 guest address (IPv6 in pasta's local mode, link-local only) the rule keeps one
//! dual-stack listener whose IPv6 clients reach the IPv4 guest address; and
//! `--host-lo-to-ns-lo` sends every client of a wildcard listener to the namespace's
//! loopback of its family, since which host address a client connected to is not known to
//! the listener.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use nsnet_api::pesto::proto::{PIF_HOST, PIF_SPLICE};
use nsnet_api::pesto::spec::{self, PROTO_TCP, Rule, Table};
use nsnet_api::pesto::{Backend, PifTable};
use nsnet_port::{PortManager, PortSpec};

/// What the tables can hold here: both families and both protocols on the host side; no
/// `auto` scanning and no interface binding, which nsnet's listeners do not do yet.
pub const HOST_CAPS: u32 = spec::CAP_IPV4 | spec::CAP_IPV6 | spec::CAP_TCP | spec::CAP_UDP;

/// The host table's capabilities for the families the namespace has (`spec::CAP_IPV4`,
/// `spec::CAP_IPV6`).
pub fn host_caps(families: u32) -> u32 {
    HOST_CAPS & (families | spec::CAP_TCP | spec::CAP_UDP)
}

/// What a rule's target depends on: the namespace's addresses (`None` when it has none of
/// that family: the family is off, or IPv6 is link-local only) and `--host-lo-to-ns-lo`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guest {
    pub addr4: Option<Ipv4Addr>,
    pub addr6: Option<Ipv6Addr>,
    /// The families on (`spec::CAP_IPV4 | spec::CAP_IPV6`): the host table's.
    pub families: u32,
    pub host_lo_to_ns_lo: bool,
}

impl Guest {
    /// Where clients of a listener on `listen` go when the rule names no target.
    fn target(&self, listen: IpAddr) -> IpAddr {
        if self.host_lo_to_ns_lo {
            match listen {
                a if a.is_loopback() => return a,
                IpAddr::V4(a) if a.is_unspecified() => return Ipv4Addr::LOCALHOST.into(),
                IpAddr::V6(a) if a.is_unspecified() => return Ipv6Addr::LOCALHOST.into(),
                _ => {}
            }
        }
        match (listen, self.addr4, self.addr6) {
            (IpAddr::V4(_), Some(a), _) => a.into(),
            (IpAddr::V6(_), _, Some(a)) => a.into(),
            (IpAddr::V6(_), Some(a), None) => a.into(),
            // No address of the family at all (`-6` with IPv6 in local mode): the guest's
            // link-local address is not known, and pasta itself would connect to `::`, which
            // Linux takes as `::1`.
            _ => Ipv6Addr::LOCALHOST.into(),
        }
    }
}

/// The port specs of one rule, one per port and listener.
fn port_specs(r: &Rule, guest: &Guest) -> Vec<PortSpec> {
    let tcp = r.proto == PROTO_TCP;
    let (v4, v6, any) = if tcp {
        ("tcp4", "tcp6", "tcp")
    } else {
        ("udp4", "udp6", "udp")
    };
    let family = |a: IpAddr| if a.is_ipv4() { v4 } else { v6 };
    // (proto, parent IP, child IP) of each listener.
    let listeners: Vec<(&str, String, IpAddr)> = match (r.listen_addr(), r.target_addr()) {
        (None, Some(t)) => vec![(any, String::new(), t)],
        (Some(a), Some(t)) => vec![(family(a), a.to_string(), t)],
        (Some(a), None) => vec![(family(a), a.to_string(), guest.target(a))],
        // Dual-stack (both families are on): one listener per family when their targets
        // differ.
        (None, None) => {
            let t4 = guest.target(Ipv4Addr::UNSPECIFIED.into());
            let t6 = guest.target(Ipv6Addr::UNSPECIFIED.into());
            if t4 == t6 {
                vec![(any, String::new(), t4)]
            } else {
                vec![(v4, "0.0.0.0".into(), t4), (v6, "::".into(), t6)]
            }
        }
    };
    let mut out = Vec::new();
    for (proto, parent_ip, child_ip) in listeners {
        out.extend((r.first..=r.last).map(|p| PortSpec {
            proto: proto.into(),
            parent_ip: parent_ip.clone(),
            parent_port: p as i64,
            child_port: (r.to as i64) + (p - r.first) as i64,
            child_ip: child_ip.to_string(),
        }));
    }
    out
}

/// The tables and the ports behind each rule.
pub struct Forwards {
    ports: Arc<PortManager>,
    runtime: tokio::runtime::Handle,
    host: Vec<(Rule, Vec<u64>)>,
    guest: Guest,
}

impl Forwards {
    pub fn new(ports: Arc<PortManager>, runtime: tokio::runtime::Handle, guest: Guest) -> Forwards {
        Forwards {
            ports,
            runtime,
            host: Vec::new(),
            guest,
        }
    }

    /// Refuses what the tables may hold but nsnet cannot serve yet, before anything binds.
    pub fn check(host: &Table, splice: &Table) -> Result<(), String> {
        if let Some(r) = host.rules.iter().find(|r| r.flags & spec::FLAG_SCAN != 0) {
            return Err(format!(
                "'auto' port forwarding ({r}) is not supported by nsnet's pasta yet"
            ));
        }
        if let Some(r) = host.rules.iter().find(|r| !r.ifname.is_empty()) {
            return Err(format!(
                "binding a forward to an interface ({r}) is not supported by nsnet's pasta yet"
            ));
        }
        if !splice.rules.is_empty() {
            return Err(
                "-T/-U forwarding (namespace to host loopback) is not supported by nsnet's pasta yet"
                    .into(),
            );
        }
        Ok(())
    }

    /// Publishes every port of `r`; a port that cannot be bound fails the rule (its ports
    /// published so far are withdrawn) unless the rule is best effort.
    fn add(&self, r: &Rule) -> Result<Vec<u64>, String> {
        let mut ids = Vec::new();
        for s in port_specs(r, &self.guest) {
            match self.ports.add(s) {
                Ok(st) => ids.push(st.id),
                Err(_) if r.flags & spec::FLAG_WEAK != 0 => {}
                Err(e) => {
                    self.remove(&ids);
                    return Err(format!("Failed to forward {r}: {e}"));
                }
            }
        }
        Ok(ids)
    }

    fn remove(&self, ids: &[u64]) {
        for id in ids {
            let _ = self.runtime.block_on(self.ports.remove(*id));
        }
    }

    /// Makes `rules` the host table: new rules are published first (all or nothing), then
    /// the rules no longer wanted are withdrawn.
    pub fn set_host(&mut self, rules: &[Rule]) -> Result<(), String> {
        let mut added: Vec<(Rule, Vec<u64>)> = Vec::new();
        for r in rules
            .iter()
            .filter(|r| !self.host.iter().any(|(h, _)| h == *r))
        {
            match self.add(r) {
                Ok(ids) => added.push((r.clone(), ids)),
                Err(e) => {
                    for (_, ids) in &added {
                        self.remove(ids);
                    }
                    return Err(e);
                }
            }
        }
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.host)
            .into_iter()
            .partition(|(h, _)| rules.contains(h));
        for (_, ids) in &gone {
            self.remove(ids);
        }
        self.host = keep;
        self.host.extend(added);
        // Keep the table's order as given.
        self.host
            .sort_by_key(|(h, _)| rules.iter().position(|r| r == h).unwrap_or(usize::MAX));
        Ok(())
    }
}

impl Backend for Forwards {
    fn tables(&self) -> Vec<PifTable> {
        vec![
            PifTable {
                pif: PIF_HOST,
                name: "HOST".into(),
                table: Table {
                    caps: host_caps(self.guest.families),
                    rules: self.host.iter().map(|(r, _)| r.clone()).collect(),
                },
            },
            PifTable {
                pif: PIF_SPLICE,
                name: "SPLICE".into(),
                table: Table::new(self.guest.families | spec::CAP_TCP | spec::CAP_UDP),
            },
        ]
    }

    fn replace(&mut self, new: Vec<PifTable>) -> Result<(), String> {
        let host = new.iter().find(|t| t.pif == PIF_HOST);
        let splice = new.iter().find(|t| t.pif == PIF_SPLICE);
        let empty = Table::new(0);
        Forwards::check(
            host.map(|t| &t.table).unwrap_or(&empty),
            splice.map(|t| &t.table).unwrap_or(&empty),
        )?;
        match host {
            Some(t) => self.set_host(&t.table.rules),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsnet_port::PortSpecExt;

    fn specs(rules: &[(char, &str)], guest: &Guest) -> Vec<String> {
        let p = spec::Parser {
            ephemeral: (49152, 65535),
        };
        let mut t = Table::new(host_caps(guest.families));
        for (opt, s) in rules {
            p.parse(*opt, false, s, &mut t).unwrap();
        }
        t.rules
            .iter()
            .flat_map(|r| port_specs(r, guest))
            .map(|s| format!("{} {}", s.proto, s.text()))
            .collect()
    }

    const BOTH: u32 = spec::CAP_IPV4 | spec::CAP_IPV6;

    fn dual() -> Guest {
        Guest {
            addr4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            addr6: Some("2001:db8::1".parse().unwrap()),
            families: BOTH,
            host_lo_to_ns_lo: false,
        }
    }

    /// passt's fwd_nat_from_host(): the guest's address of the client's family, a dual-stack
    /// rule split into one listener per family; a rule's own target address as given.
    #[test]
    fn rules_go_to_the_guest_address_of_the_clients_family() {
        assert_eq!(
            specs(
                &[
                    ('t', "8080-8081:80-81"),
                    ('u', "[::]/53"),
                    ('t', "0.0.0.0/5000:192.0.2.5/6000"),
                    ('t', "127.0.0.1/9000"),
                    ('t', "[::1]/9001"),
                ],
                &dual()
            ),
            [
                "tcp4 0.0.0.0:8080:192.0.2.1:80/tcp4",
                "tcp4 0.0.0.0:8081:192.0.2.1:81/tcp4",
                "tcp6 [::]:8080:[2001:db8::1]:80/tcp6",
                "tcp6 [::]:8081:[2001:db8::1]:81/tcp6",
                "udp6 [::]:53:[2001:db8::1]:53/udp6",
                "tcp4 0.0.0.0:5000:192.0.2.5:6000/tcp4",
                "tcp4 127.0.0.1:9000:192.0.2.1:9000/tcp4",
                "tcp6 [::1]:9001:[2001:db8::1]:9001/tcp6",
            ]
        );
    }

    /// Without an IPv6 address (local mode) IPv6 clients reach the IPv4 guest address; with
    /// `-4` a rule listens on IPv4 only; with `-6` on IPv6 only.
    #[test]
    fn a_missing_family_falls_back_or_is_not_listened_on() {
        let no6 = Guest {
            addr6: None,
            ..dual()
        };
        assert_eq!(
            specs(&[('t', "80"), ('t', "[::]/81")], &no6),
            ["tcp 80:192.0.2.1:80/tcp", "tcp6 [::]:81:192.0.2.1:81/tcp6"]
        );
        let v4_only = Guest {
            addr6: None,
            families: spec::CAP_IPV4,
            ..dual()
        };
        assert_eq!(
            specs(&[('t', "80")], &v4_only),
            ["tcp4 0.0.0.0:80:192.0.2.1:80/tcp4"]
        );
        let v6_only = Guest {
            addr4: None,
            families: spec::CAP_IPV6,
            ..dual()
        };
        assert_eq!(
            specs(&[('u', "80")], &v6_only),
            ["udp6 [::]:80:[2001:db8::1]:80/udp6"]
        );
    }

    /// `--host-lo-to-ns-lo`: a loopback listener goes to the same loopback address inside,
    /// a wildcard one to the loopback of its family (the relay cannot tell which address a
    /// client connected to); other listeners and explicit targets as without it.
    #[test]
    fn host_lo_to_ns_lo_forwards_loopback_to_loopback() {
        let g = Guest {
            host_lo_to_ns_lo: true,
            ..dual()
        };
        assert_eq!(
            specs(
                &[
                    ('t', "127.0.0.1/9000"),
                    ('t', "[::1]/9001"),
                    ('t', "9002"),
                    ('t', "[::]/9003"),
                    ('t', "192.0.2.1/9004"),
                    ('t', "127.0.0.1/9005:192.0.2.5/80"),
                ],
                &g
            ),
            [
                "tcp4 127.0.0.1:9000:127.0.0.1:9000/tcp4",
                "tcp6 [::1]:9001:[::1]:9001/tcp6",
                "tcp4 0.0.0.0:9002:127.0.0.1:9002/tcp4",
                "tcp6 [::]:9002:[::1]:9002/tcp6",
                "tcp6 [::]:9003:[::1]:9003/tcp6",
                "tcp4 192.0.2.1:9004:192.0.2.1:9004/tcp4",
                "tcp4 127.0.0.1:9005:192.0.2.5:80/tcp4",
            ]
        );
    }
}
