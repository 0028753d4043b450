//! The pasta personality's forwarding tables on nsnet's port machinery: each `-t/-u` rule
//! (or one added through `-c SOCKET`) becomes published ports of an `nsnet_port::PortManager`
//! — a host listener per port, a socket made inside the namespace for each connection or
//! client flow, the splice relay between them. The target inside is the rule's target
//! address, else the namespace's own address (pasta's default) or, with
//! `--host-lo-to-ns-lo`, its loopback ([`DefaultTarget`]); port `to + (n - first)`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use nsnet_api::pesto::proto::{PIF_HOST, PIF_SPLICE};
use nsnet_api::pesto::spec::{self, PROTO_TCP, Rule, Table};
use nsnet_api::pesto::{Backend, PifTable};
use nsnet_port::{PortManager, PortSpec};

/// What the tables can hold here: both families and both protocols on the host side; no
/// `auto` scanning and no interface binding, which nsnet's listeners do not do yet.
pub const HOST_CAPS: u32 = spec::CAP_IPV4 | spec::CAP_IPV6 | spec::CAP_TCP | spec::CAP_UDP;

/// Where the connections of a rule without a target address go inside the namespace.
///
/// pasta (`fwd_nat_from_host()`, passt 2024_08 and later) sends a connection from the host's
/// loopback over the namespace's `lo` to the namespace's own address ("so we don't
/// inadvertently expose services that listen only on the guest's loopback address"), and any
/// other through the tap to that same address; `--host-lo-to-ns-lo` sends the loopback ones to
/// the namespace's loopback instead. nsnet's relay has one target per port, so the choice is
/// made per rule: the namespace's address, or with that option its loopback for every client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultTarget {
    /// The namespace's address. nsnet's pasta configures no IPv6 address inside, so IPv6
    /// listeners go to this IPv4 address too (pasta: the guest's IPv6 address).
    Guest(Ipv4Addr),
    /// The namespace's loopback of the listener's family (`--host-lo-to-ns-lo`).
    Loopback,
}

/// The port specs of one rule, one per port.
fn port_specs(r: &Rule, default: DefaultTarget) -> Vec<PortSpec> {
    let tcp = r.proto == PROTO_TCP;
    let (proto, parent_ip) = match r.listen_addr() {
        None => (if tcp { "tcp" } else { "udp" }, String::new()),
        Some(a @ IpAddr::V4(_)) => (if tcp { "tcp4" } else { "udp4" }, a.to_string()),
        Some(a) => (if tcp { "tcp6" } else { "udp6" }, a.to_string()),
    };
    let child_ip = match (r.target_addr(), default, r.listen_addr()) {
        (Some(t), _, _) => t.to_string(),
        (None, DefaultTarget::Guest(a), _) => a.to_string(),
        (None, DefaultTarget::Loopback, Some(IpAddr::V6(_))) => "::1".into(),
        (None, DefaultTarget::Loopback, _) => "127.0.0.1".into(),
    };
    (r.first..=r.last)
        .map(|p| PortSpec {
            proto: proto.into(),
            parent_ip: parent_ip.clone(),
            parent_port: p as i64,
            child_port: (r.to as i64) + (p - r.first) as i64,
            child_ip: child_ip.clone(),
        })
        .collect()
}

/// The tables and the ports behind each rule.
pub struct Forwards {
    ports: Arc<PortManager>,
    runtime: tokio::runtime::Handle,
    default: DefaultTarget,
    host: Vec<(Rule, Vec<u64>)>,
}

impl Forwards {
    pub fn new(
        ports: Arc<PortManager>,
        runtime: tokio::runtime::Handle,
        default: DefaultTarget,
    ) -> Forwards {
        Forwards {
            ports,
            runtime,
            default,
            host: Vec::new(),
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
        for s in port_specs(r, self.default) {
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
                    caps: HOST_CAPS,
                    rules: self.host.iter().map(|(r, _)| r.clone()).collect(),
                },
            },
            PifTable {
                pif: PIF_SPLICE,
                name: "SPLICE".into(),
                table: Table::new(spec::CAP_IPV4 | spec::CAP_IPV6 | spec::CAP_TCP | spec::CAP_UDP),
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

    #[test]
    fn rules_become_one_port_spec_per_port() {
        let p = spec::Parser {
            ephemeral: (49152, 65535),
        };
        let mut t = Table::new(HOST_CAPS);
        p.parse('t', false, "8080-8081:80-81", &mut t).unwrap();
        p.parse('u', false, "[::]/53", &mut t).unwrap();
        p.parse('t', false, "0.0.0.0/5000:192.0.2.5/6000", &mut t)
            .unwrap();
        let texts = |default| -> Vec<String> {
            t.rules
                .iter()
                .flat_map(|r| port_specs(r, default))
                .map(|s| format!("{} {}", s.proto, s.text()))
                .collect()
        };
        // pasta's default: the namespace's address, whatever the listener's family; a rule's
        // own target address wins.
        assert_eq!(
            texts(DefaultTarget::Guest(Ipv4Addr::new(192, 0, 2, 1))),
            [
                "tcp 8080:192.0.2.1:80/tcp",
                "tcp 8081:192.0.2.1:81/tcp",
                "udp6 [::]:53:192.0.2.1:53/udp6",
                "tcp4 0.0.0.0:5000:192.0.2.5:6000/tcp4",
            ]
        );
        // --host-lo-to-ns-lo: the namespace's loopback of the listener's family.
        assert_eq!(
            texts(DefaultTarget::Loopback),
            [
                "tcp 8080:127.0.0.1:80/tcp",
                "tcp 8081:127.0.0.1:81/tcp",
                "udp6 [::]:53:[::1]:53/udp6",
                "tcp4 0.0.0.0:5000:192.0.2.5:6000/tcp4",
            ]
        );
    }
}
