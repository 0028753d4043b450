//! The pasta personality's forwarding tables on nsnet's port machinery: each `-t/-u` rule
//! (or one added through `-c SOCKET`) becomes published ports of an `nsnet_port::PortManager`
//! — a host listener per port, a socket made inside the namespace for each connection or
//! client flow, the splice relay between them. The target inside is the rule's target
//! address, or the namespace's loopback (pasta's "splice" path), port `to + (n - first)`.

use std::net::IpAddr;
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

/// The port specs of one rule, one per port.
fn port_specs(r: &Rule) -> Vec<PortSpec> {
    let tcp = r.proto == PROTO_TCP;
    let (proto, parent_ip) = match r.listen_addr() {
        None => (if tcp { "tcp" } else { "udp" }, String::new()),
        Some(a @ IpAddr::V4(_)) => (if tcp { "tcp4" } else { "udp4" }, a.to_string()),
        Some(a) => (if tcp { "tcp6" } else { "udp6" }, a.to_string()),
    };
    let child_ip = match (r.target_addr(), r.listen_addr()) {
        (Some(t), _) => t.to_string(),
        (None, Some(IpAddr::V6(_))) => "::1".into(),
        _ => "127.0.0.1".into(),
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
    host: Vec<(Rule, Vec<u64>)>,
    /// The families on (`spec::CAP_IPV4 | spec::CAP_IPV6`): what the tables can hold.
    families: u32,
}

impl Forwards {
    pub fn new(
        ports: Arc<PortManager>,
        runtime: tokio::runtime::Handle,
        families: u32,
    ) -> Forwards {
        Forwards {
            ports,
            runtime,
            host: Vec::new(),
            families,
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
        for s in port_specs(r) {
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
                    caps: host_caps(self.families),
                    rules: self.host.iter().map(|(r, _)| r.clone()).collect(),
                },
            },
            PifTable {
                pif: PIF_SPLICE,
                name: "SPLICE".into(),
                table: Table::new(self.families | spec::CAP_TCP | spec::CAP_UDP),
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
        let texts: Vec<String> = t
            .rules
            .iter()
            .flat_map(port_specs)
            .map(|s| format!("{} {} {}", s.proto, s.text(), s.child_ip))
            .collect();
        assert_eq!(
            texts,
            [
                "tcp 8080:127.0.0.1:80/tcp 127.0.0.1",
                "tcp 8081:127.0.0.1:81/tcp 127.0.0.1",
                "udp6 [::]:53:[::1]:53/udp6 ::1",
                "tcp4 0.0.0.0:5000:192.0.2.5:6000/tcp4 192.0.2.5",
            ]
        );
    }
}
