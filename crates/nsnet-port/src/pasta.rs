//! pasta's two forwarding tables on nsnet's port relay, for the `pasta` personality: the
//! rules of `-t/-u` and `-T/-U` (and those a `pesto` client sets over `-c SOCKET`) become
//! listeners of two [`PortManager`]s, one per direction, each listener relayed by splice(2)
//! to a socket made on the other side.
//!
//! ```text
//!  HOST table   (-t/-u)  listener in the caller's netns  →  socket inside the namespace,
//!                        to the rule's target address, else [`DefaultTarget`]
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
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use nsnet_api::pesto::proto::{PIF_HOST, PIF_SPLICE};
use nsnet_api::pesto::spec::{self, PROTO_TCP, Rule, Table};
use nsnet_api::pesto::{Backend, PifTable};

use crate::scan::{PortMap, PortScan};
use crate::{PortManager, PortSpec};

/// What both tables can hold: both families and both protocols, `auto` and interface
/// binding (pasta's caps in pasta mode).
pub const CAPS: u32 = spec::CAP_IPV4
    | spec::CAP_IPV6
    | spec::CAP_TCP
    | spec::CAP_UDP
    | spec::CAP_SCAN
    | spec::CAP_IFNAME;

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

/// Where the connections of a host-table rule without a target address go inside the
/// namespace.
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

/// The port spec of port `port` of rule `r` on `side`.
fn port_spec(side: Side, r: &Rule, port: u16, default: DefaultTarget) -> PortSpec {
    let tcp = r.proto == PROTO_TCP;
    let (proto, parent_ip) = match r.listen_addr() {
        None => (if tcp { "tcp" } else { "udp" }, String::new()),
        Some(a @ IpAddr::V4(_)) => (if tcp { "tcp4" } else { "udp4" }, a.to_string()),
        Some(a) => (if tcp { "tcp6" } else { "udp6" }, a.to_string()),
    };
    // The splice side's target is always the host's loopback: pasta keeps the loopback
    // address the client used, which for one listener per port is its family's.
    let child_ip = match (side, r.target_addr(), default, r.listen_addr()) {
        (Side::Host, Some(t), _, _) => t.to_string(),
        (Side::Host, None, DefaultTarget::Guest(a), _) => a.to_string(),
        (_, _, _, Some(IpAddr::V6(_))) => "::1".into(),
        _ => "127.0.0.1".into(),
    };
    PortSpec {
        proto: proto.into(),
        parent_ip,
        parent_port: port as i64,
        child_port: (r.to as i64) + (port - r.first) as i64,
        child_ip,
    }
}

/// A rule in force and the port ids behind it.
struct Active {
    rule: Rule,
    ports: BTreeMap<u16, u64>,
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
    default: DefaultTarget,
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
        default: DefaultTarget,
        scans: Option<Scans>,
    ) -> Forwards {
        Forwards {
            managers: [host, splice],
            runtime,
            default,
            tables: [Vec::new(), Vec::new()],
            scans,
        }
    }

    fn add_port(&self, side: Side, r: &Rule, port: u16) -> Result<u64, crate::PortError> {
        let device = (!r.ifname.is_empty()).then_some(r.ifname.as_str());
        self.managers[side.index()]
            .add_on_device(port_spec(side, r, port, self.default), device)
            .map(|st| st.id)
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
                Ok(id) => {
                    active.ports.insert(port, id);
                }
                Err(_) if weak => {}
                Err(e) => {
                    self.remove(side, active.ports.into_values());
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
                        self.remove(side, a.ports.into_values());
                    }
                    return Err(e);
                }
            }
        }
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tables[side.index()])
            .into_iter()
            .partition(|a| rules.contains(&a.rule));
        for a in gone {
            self.remove(side, a.ports.into_values());
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
                    if let Some(id) = a.ports.remove(&p) {
                        self.remove(side, [id]);
                    }
                }
                for p in a.rule.first..=a.rule.last {
                    if map.contains(p) && !a.ports.contains_key(&p) {
                        match self.add_port(side, &a.rule, p) {
                            Ok(id) => {
                                a.ports.insert(p, id);
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
                    caps: CAPS,
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

    fn parse(opt: char, specs: &[&str]) -> Vec<Rule> {
        let p = spec::Parser {
            ephemeral: (49152, 65535),
        };
        let mut t = Table::new(CAPS);
        for s in specs {
            p.parse(opt, false, s, &mut t).unwrap();
        }
        t.rules
    }

    #[test]
    fn rules_become_one_port_spec_per_port() {
        let mut rules = parse('t', &["8080-8081:80-81", "0.0.0.0/5000:192.0.2.5/6000"]);
        rules.extend(parse('u', &["[::]/53"]));
        let texts = |default| -> Vec<String> {
            rules
                .iter()
                .flat_map(|r| (r.first..=r.last).map(move |p| port_spec(Side::Host, r, p, default)))
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
                "tcp4 0.0.0.0:5000:192.0.2.5:6000/tcp4",
                "udp6 [::]:53:192.0.2.1:53/udp6",
            ]
        );
        // --host-lo-to-ns-lo: the namespace's loopback of the listener's family.
        assert_eq!(
            texts(DefaultTarget::Loopback),
            [
                "tcp 8080:127.0.0.1:80/tcp",
                "tcp 8081:127.0.0.1:81/tcp",
                "tcp4 0.0.0.0:5000:192.0.2.5:6000/tcp4",
                "udp6 [::]:53:[::1]:53/udp6",
            ]
        );
        // -T: every address of the namespace's `lo`, to the host's loopback.
        let t = parse('T', &["3000:4000"]);
        assert_eq!(t[0].ifname, "lo");
        let s = port_spec(Side::Splice, &t[0], 3000, DefaultTarget::Loopback);
        assert_eq!(
            (s.proto.as_str(), s.child_ip.as_str()),
            ("tcp", "127.0.0.1")
        );
        assert_eq!(s.child_port, 4000);
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
            let mut f = Forwards::new(host, splice, rt, DefaultTarget::Loopback, Some(scans));
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
