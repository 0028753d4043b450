//! pasta's two forwarding tables on nsnet's port relay, for the `pasta` personality: the
//! rules of `-t/-u` and `-T/-U` (and those a `pesto` client sets over `-c SOCKET`) become
//! listeners of two [`PortManager`]s, one per direction, each listener relayed by splice(2)
//! to a socket made on the other side.
//!
//! ```text
//!  HOST table   (-t/-u)  listener in the caller's netns  →  socket inside the namespace,
//!                        to the rule's target address, else the guest's ([`Guest`])
//!  SPLICE table (-T/-U)  listener inside the namespace,  →  socket in the caller's netns,
//!                        bound to its `lo`                  to the host's loopback
//! ```
//!
//! Port `n` of a rule goes to port `to + (n - first)`. A "scan" rule (`auto`) holds a port
//! only while the other side has a socket bound on it ([`crate::scan`], re-read by
//! [`Forwards::sync`] about every second, as pasta's `fwd_scan_ports_timer`), leaving out the
//! ports this process itself listens on for the opposite direction, which would otherwise
//! chase each other round the loop. A rule that is not "weak" is all or nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use nsnet_api::pesto::proto::{PIF_HOST, PIF_SPLICE};
use nsnet_api::pesto::spec::{self, PROTO_TCP, Rule, Table};
use nsnet_api::pesto::{Backend, PifTable};

use crate::scan::{PortMap, PortScan};
use crate::{PortManager, PortSpec};

/// What both tables can hold (pasta's `fwd_rule_init()` in pasta mode): the families the
/// namespace has (`spec::CAP_IPV4`, `spec::CAP_IPV6`), both protocols, `auto` and interface
/// binding. A family that is off cannot be forwarded: `-t 80` then listens on the other
/// family only, and `-t [::]/80` with `-4` is refused.
pub fn caps(families: u32) -> u32 {
    (families & (spec::CAP_IPV4 | spec::CAP_IPV6))
        | spec::CAP_TCP
        | spec::CAP_UDP
        | spec::CAP_SCAN
        | spec::CAP_IFNAME
}

/// The two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Host → namespace (`-t/-u`).
    Host,
    /// Namespace loopback → host loopback (`-T/-U`).
    Splice,
}

impl Side {
    fn index(self) -> usize {
        self as usize
    }

    fn pif(self) -> u8 {
        match self {
            Side::Host => PIF_HOST,
            Side::Splice => PIF_SPLICE,
        }
    }
}

/// What a host-table rule's target depends on: the namespace's addresses (`None` when it has
/// none of that family: the family is off, or IPv6 is link-local only) and
/// `--host-lo-to-ns-lo`.
///
/// pasta (passt 2026's `fwd_nat_from_host()`) sends a forward without a target address to
/// the guest's own address of the client's family — not its loopback, "so we don't
/// inadvertently expose services that listen only on the guest's loopback address" — and with
/// `--host-lo-to-ns-lo` a forward from a host loopback address to the same loopback address
/// inside. The relay picks its target per listener, not per connection: so a dual-stack rule
/// becomes an IPv4 and an IPv6 listener, each with its family's guest address; without an
/// IPv6 guest address (IPv6 in pasta's local mode, link-local only) the rule keeps one
/// dual-stack listener whose IPv6 clients reach the IPv4 guest address; and
/// `--host-lo-to-ns-lo` sends every client of a wildcard listener to the namespace's loopback
/// of its family, since which host address a client connected to is not known to the
/// listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Guest {
    pub addr4: Option<Ipv4Addr>,
    pub addr6: Option<Ipv6Addr>,
    /// The families on (`spec::CAP_IPV4 | spec::CAP_IPV6`).
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

    /// The guest's addresses, which the relay counts as local targets.
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.addr4
            .map(IpAddr::from)
            .into_iter()
            .chain(self.addr6.map(IpAddr::from))
            .collect()
    }
}

/// The port specs of port `port` of rule `r` on `side`: one per listener (a dual-stack host
/// rule may need one per family, see [`Guest`]).
fn port_specs(side: Side, r: &Rule, port: u16, guest: &Guest) -> Vec<PortSpec> {
    let tcp = r.proto == PROTO_TCP;
    let (v4, v6, any) = if tcp {
        ("tcp4", "tcp6", "tcp")
    } else {
        ("udp4", "udp6", "udp")
    };
    let family = |a: IpAddr| if a.is_ipv4() { v4 } else { v6 };
    // (proto, parent IP, child IP) of each listener.
    let listeners: Vec<(&str, String, IpAddr)> = match (side, r.listen_addr(), r.target_addr()) {
        // The splice side's target is always the host's loopback: pasta keeps the loopback
        // address the client used, which for one listener per port is its family's.
        (Side::Splice, None, _) => vec![(any, String::new(), Ipv4Addr::LOCALHOST.into())],
        (Side::Splice, Some(a), _) => {
            let lo: IpAddr = if a.is_ipv4() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                Ipv6Addr::LOCALHOST.into()
            };
            vec![(family(a), a.to_string(), lo)]
        }
        (Side::Host, None, Some(t)) => vec![(any, String::new(), t)],
        (Side::Host, Some(a), Some(t)) => vec![(family(a), a.to_string(), t)],
        (Side::Host, Some(a), None) => vec![(family(a), a.to_string(), guest.target(a))],
        (Side::Host, None, None) => {
            let t4 = guest.target(Ipv4Addr::UNSPECIFIED.into());
            let t6 = guest.target(Ipv6Addr::UNSPECIFIED.into());
            if t4 == t6 {
                vec![(any, String::new(), t4)]
            } else {
                vec![(v4, "0.0.0.0".into(), t4), (v6, "::".into(), t6)]
            }
        }
    };
    listeners
        .into_iter()
        .map(|(proto, parent_ip, child_ip)| PortSpec {
            proto: proto.into(),
            parent_ip,
            parent_port: port as i64,
            child_port: (r.to as i64) + (port - r.first) as i64,
            child_ip: child_ip.to_string(),
        })
        .collect()
}

/// A rule in force and the port ids behind it (one per listener of each port).
struct Active {
    rule: Rule,
    ports: BTreeMap<u16, Vec<u64>>,
}

impl Active {
    fn scan(&self) -> bool {
        self.rule.flags & spec::FLAG_SCAN != 0
    }
}

/// The socket tables `auto` rules follow: the namespace's for the host table, the host's
/// for the splice table.
pub struct Scans {
    pub namespace: PortScan,
    pub host: PortScan,
}

/// Both tables and the ports behind each rule.
pub struct Forwards {
    managers: [Arc<PortManager>; 2],
    runtime: tokio::runtime::Handle,
    guest: Guest,
    tables: [Vec<Active>; 2],
    scans: Option<Scans>,
}

impl Forwards {
    /// `host` publishes host listeners relayed into the namespace; `splice` makes its
    /// listeners inside the namespace and its targets in the caller's netns.
    pub fn new(
        host: Arc<PortManager>,
        splice: Arc<PortManager>,
        runtime: tokio::runtime::Handle,
        guest: Guest,
        scans: Option<Scans>,
    ) -> Forwards {
        Forwards {
            managers: [host, splice],
            runtime,
            guest,
            tables: [Vec::new(), Vec::new()],
            scans,
        }
    }

    /// Every listener of port `port` of `r`, or none (what was bound is withdrawn).
    fn add_port(&self, side: Side, r: &Rule, port: u16) -> Result<Vec<u64>, crate::PortError> {
        let device = (!r.ifname.is_empty()).then_some(r.ifname.as_str());
        let mut ids = Vec::new();
        for spec in port_specs(side, r, port, &self.guest) {
            match self.managers[side.index()].add_on_device(spec, device) {
                Ok(st) => ids.push(st.id),
                Err(e) => {
                    self.remove(side, ids);
                    return Err(e);
                }
            }
        }
        Ok(ids)
    }

    fn remove(&self, side: Side, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            let _ = self
                .runtime
                .block_on(self.managers[side.index()].remove(id));
        }
    }

    /// Starts a rule: every port of it (best effort for a weak rule, which still needs one),
    /// or, for a scan rule, none until [`Forwards::sync`] finds them bound.
    fn start(&self, side: Side, r: &Rule) -> Result<Active, String> {
        let mut active = Active {
            rule: r.clone(),
            ports: BTreeMap::new(),
        };
        if active.scan() {
            if self.scans.is_none() {
                return Err(format!(
                    "'auto' port forwarding ({r}) needs the socket tables"
                ));
            }
            return Ok(active);
        }
        let weak = r.flags & spec::FLAG_WEAK != 0;
        for port in r.first..=r.last {
            match self.add_port(side, r, port) {
                Ok(ids) => {
                    active.ports.insert(port, ids);
                }
                Err(_) if weak => {}
                Err(e) => {
                    self.remove(side, active.ports.into_values().flatten());
                    return Err(format!("Failed to forward {r}: {e}"));
                }
            }
        }
        if active.ports.is_empty() {
            return Err(format!("All listens failed for {r}"));
        }
        Ok(active)
    }

    /// Makes `rules` the table of `side`: new rules start first (all or nothing), then the
    /// rules no longer wanted stop.
    pub fn set(&mut self, side: Side, rules: &[Rule]) -> Result<(), String> {
        let mut started: Vec<Active> = Vec::new();
        let current = &self.tables[side.index()];
        for r in rules
            .iter()
            .filter(|r| !current.iter().any(|a| a.rule == **r))
        {
            match self.start(side, r) {
                Ok(a) => started.push(a),
                Err(e) => {
                    for a in started {
                        self.remove(side, a.ports.into_values().flatten());
                    }
                    return Err(e);
                }
            }
        }
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tables[side.index()])
            .into_iter()
            .partition(|a| rules.contains(&a.rule));
        for a in gone {
            self.remove(side, a.ports.into_values().flatten());
        }
        let table = &mut self.tables[side.index()];
        *table = keep;
        table.extend(started);
        // The table's order is the order given.
        table.sort_by_key(|a| rules.iter().position(|r| *r == a.rule));
        if self.has_scan_rules() {
            self.sync();
        }
        Ok(())
    }

    fn has_scan_rules(&self) -> bool {
        self.tables.iter().flatten().any(Active::scan)
    }

    /// The ports `side` listens on now, for one protocol.
    fn listening(&self, side: Side, proto: u8) -> PortMap {
        let mut m = PortMap::default();
        for a in self.tables[side.index()]
            .iter()
            .filter(|a| a.rule.proto == proto)
        {
            for p in a.ports.keys() {
                m.set(*p);
            }
        }
        m
    }

    /// Brings every scan rule in line with the sockets bound on its other side now.
    pub fn sync(&mut self) {
        if !self.has_scan_rules() {
            return;
        }
        let Some(scans) = &self.scans else { return };
        let bound = |s: &PortScan, mine: PortMap, proto: u8| {
            let seen = if proto == PROTO_TCP { s.tcp() } else { s.udp() };
            let mut m = PortMap::default();
            for p in seen.iter().filter(|p| !mine.contains(*p)) {
                m.set(p);
            }
            m
        };
        let udp = spec::PROTO_UDP;
        // [side][tcp, udp]: what the other side has bound, less what we listen on there.
        let maps = [
            [
                bound(
                    &scans.namespace,
                    self.listening(Side::Splice, PROTO_TCP),
                    PROTO_TCP,
                ),
                bound(&scans.namespace, self.listening(Side::Splice, udp), udp),
            ],
            [
                bound(
                    &scans.host,
                    self.listening(Side::Host, PROTO_TCP),
                    PROTO_TCP,
                ),
                bound(&scans.host, self.listening(Side::Host, udp), udp),
            ],
        ];
        for side in [Side::Host, Side::Splice] {
            let mut table = std::mem::take(&mut self.tables[side.index()]);
            for a in table.iter_mut().filter(|a| a.scan()) {
                let map = &maps[side.index()][usize::from(a.rule.proto != PROTO_TCP)];
                let stale: Vec<u16> = a
                    .ports
                    .keys()
                    .copied()
                    .filter(|p| !map.contains(*p))
                    .collect();
                for p in stale {
                    if let Some(ids) = a.ports.remove(&p) {
                        self.remove(side, ids);
                    }
                }
                for p in a.rule.first..=a.rule.last {
                    if map.contains(p) && !a.ports.contains_key(&p) {
                        match self.add_port(side, &a.rule, p) {
                            Ok(ids) => {
                                a.ports.insert(p, ids);
                            }
                            Err(e) => tracing::debug!(port = p, "auto forward: {e}"),
                        }
                    }
                }
            }
            self.tables[side.index()] = table;
        }
    }

    /// The ports each rule of `side` holds now (for tests and for `nsnet ns`).
    pub fn ports(&self, side: Side) -> Vec<(Rule, Vec<u16>)> {
        self.tables[side.index()]
            .iter()
            .map(|a| (a.rule.clone(), a.ports.keys().copied().collect()))
            .collect()
    }
}

/// The tables shared between the configuration socket's server and the scan timer.
#[derive(Clone)]
pub struct SharedForwards(pub Arc<Mutex<Forwards>>);

impl Backend for SharedForwards {
    fn tables(&self) -> Vec<PifTable> {
        let f = self.0.lock().expect("forwards lock");
        [(Side::Host, "HOST"), (Side::Splice, "SPLICE")]
            .into_iter()
            .map(|(side, name)| PifTable {
                pif: side.pif(),
                name: name.into(),
                table: Table {
                    caps: caps(f.guest.families),
                    rules: f.tables[side.index()]
                        .iter()
                        .map(|a| a.rule.clone())
                        .collect(),
                },
            })
            .collect()
    }

    fn replace(&mut self, new: Vec<PifTable>) -> Result<(), String> {
        let mut f = self.0.lock().expect("forwards lock");
        for side in [Side::Host, Side::Splice] {
            if let Some(t) = new.iter().find(|t| t.pif == side.pif()) {
                f.set(side, &t.table.rules)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HostSockets, PortSpecExt};

    const BOTH: u32 = spec::CAP_IPV4 | spec::CAP_IPV6;

    fn parse_in(families: u32, opt: char, specs: &[&str]) -> Vec<Rule> {
        let p = spec::Parser {
            ephemeral: (49152, 65535),
        };
        let mut t = Table::new(caps(families));
        for s in specs {
            p.parse(opt, false, s, &mut t).unwrap();
        }
        t.rules
    }

    fn parse(opt: char, specs: &[&str]) -> Vec<Rule> {
        parse_in(BOTH, opt, specs)
    }

    /// The specs of every port of every rule, as `PROTO TEXT`.
    fn specs(rules: &[(char, &str)], guest: &Guest) -> Vec<String> {
        rules
            .iter()
            .flat_map(|(opt, s)| parse_in(guest.families, *opt, &[s]))
            .flat_map(|r| {
                (r.first..=r.last)
                    .flat_map(|p| port_specs(Side::Host, &r, p, guest))
                    .collect::<Vec<_>>()
            })
            .map(|s| format!("{} {}", s.proto, s.text()))
            .collect()
    }

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
                "tcp6 [::]:8080:[2001:db8::1]:80/tcp6",
                "tcp4 0.0.0.0:8081:192.0.2.1:81/tcp4",
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

    /// -T: every address of the namespace's `lo`, to the host's loopback.
    #[test]
    fn splice_rules_listen_on_lo_and_reach_host_loopback() {
        let t = parse('T', &["3000:4000"]);
        assert_eq!(t[0].ifname, "lo");
        let s = port_specs(Side::Splice, &t[0], 3000, &dual());
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].proto.as_str(), s[0].child_ip.as_str(), s[0].child_port),
            ("tcp", "127.0.0.1", 4000)
        );
    }

    /// A scan rule takes a port once the other side has it bound. (Both "sides" are this
    /// test's own namespace here; the withdrawal, which needs two namespaces, is tested in
    /// crates/nsnet/tests/pasta.rs.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_auto_rule_takes_a_port_bound_on_the_other_side() {
        let rt = tokio::runtime::Handle::current();
        let host = Arc::new(PortManager::new(Arc::new(HostSockets), rt.clone()));
        let splice = Arc::new(PortManager::new(Arc::new(HostSockets), rt.clone()));
        let scans = Scans {
            namespace: PortScan::open_here(),
            host: PortScan::open_here(),
        };
        // The "inside" listener is on 127.0.0.2, so the forward's own on 127.0.0.1 can bind.
        let inside = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let port = inside.local_addr().unwrap().port();
        let other = port.checked_add(1).unwrap_or(port - 1);
        let rules = parse(
            't',
            &[&format!("127.0.0.1/{port}:127.0.0.2/{port},{other},auto")],
        );
        assert_ne!(rules[0].flags & spec::FLAG_SCAN, 0);
        let f = tokio::task::spawn_blocking(move || {
            let guest = Guest {
                host_lo_to_ns_lo: true,
                ..dual()
            };
            let mut f = Forwards::new(host, splice, rt, guest, Some(scans));
            f.set(Side::Host, &rules).unwrap();
            f
        })
        .await
        .unwrap();
        let held: Vec<u16> = f
            .ports(Side::Host)
            .into_iter()
            .flat_map(|(_, p)| p)
            .collect();
        assert_eq!(held, vec![port]);
        let c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(c.is_ok(), "the forward listens: {c:?}");
        // ... and relays to the listener it follows.
        let (_, peer) = tokio::task::spawn_blocking(move || inside.accept().unwrap())
            .await
            .unwrap();
        assert!(peer.ip().is_loopback());
    }
}
