//! `nsnet ns trace FROM TO`: the path a connection from FROM to TO takes through the
//! rootless worlds, walked over their real configuration, hop by hop, to a verdict.
//!
//! Each step asks the kernel of the namespace it is in, never a model of it:
//! 1. the route (`RTM_GETROUTE` for the destination, as `ip route get`, policy rules
//!    included). `local`: the destination is this namespace's own; the listener is looked
//!    up in its `/proc/net/tcp*` (or `udp*`) and named by the process holding the socket.
//!    A listener that belongs to a port forwarder continues the path where the forwarder
//!    sends it: a RootlessKit/nsnet port driver (its `api.sock` ports: parent → child
//!    netns), docker-proxy (its `-container-ip/-container-port`), Podman's rootlessport (the
//!    container's published port from Podman's database), pasta (its `-c` socket's
//!    tables, else its `-t` specs).
//! 2. out of a veth: into its peer's namespace (the pair resolved by `nsnet ns net`); out
//!    of a bridge: into the namespace behind the port that holds the destination.
//!    Forwarding between two interfaces of a namespace is checked against the `forward`
//!    chain of nsnet's nftables table there (`nft -j list table ip nsnet`, run inside the
//!    namespace), the rule that drops it is named (an `--internal` network); then against
//!    the namespace's other tables ([`crate::netfilter`]: iptables-nft's `filter` chains,
//!    Docker's isolation among them), and a packet leaving by anything but a bridge
//!    against the `postrouting` NAT chains (who masquerades it).
//! 3. out of a tap: to the process holding it (slirp4netns, pasta, nsnet's stack), which
//!    maps its gateway to the host's loopback unless told not to — `--disable-host-loopback`
//!    in its command line or its launcher's (RootlessKit, nsnet) — pasta its gateway unless
//!    `--no-map-gw`, and `--map-guest-addr`/`--map-host-loopback`; anything else it opens a
//!    host socket to, in its own namespace.
//!
//! It stops at the first answer: reached (who accepts), blocked (by which setting or
//! rule), no listener, no route, or left the explained worlds. Everything is read-only;
//! `--probe` (in the binary) then makes one connection attempt from FROM, only when the
//! path ended inside a namespace of the view.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use serde::Serialize;

use crate::engines::{Catalog, Engine};
use crate::namespaces::Snapshot;
use crate::net::{NetNs, NetView, Role};
use crate::netfilter::{Judged, Packet};
use crate::nsfs::{NsId, NsType};
use crate::sockets::{self, Proto};

/// Where a trace starts.
#[derive(Debug, Clone, Serialize)]
pub struct From {
    pub netns: u64,
    pub name: String,
}

/// Where it goes: an address and port (after `host:PORT` and container names are resolved).
#[derive(Debug, Clone, Serialize)]
pub struct To {
    /// As given.
    pub given: String,
    pub addr: IpAddr,
    pub port: u16,
    pub proto: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub netns: u64,
    /// The namespace's name as `nsnet ns net` gives it.
    pub name: String,
    pub step: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Reachable,
    Blocked,
    NoListener,
    NoRoute,
    /// The path leaves the worlds explained here (a real network beyond the host).
    Leaves,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub from: From,
    pub to: To,
    pub hops: Vec<Hop>,
    pub verdict: Verdict,
    /// The namespace the path ends in and the address there, when it ends inside the view
    /// (what `--probe` may connect to).
    #[serde(skip)]
    pub end: Option<(u64, IpAddr, u16)>,
}

/// The names a FROM or TO may use.
fn ns_name(view: &NetView, ino: u64) -> String {
    match view.get(ino) {
        Some(n) if n.role == Role::Host => format!("host net:[{ino}]"),
        Some(n) if n.label.is_empty() => format!("{} net:[{ino}]", n.role.name()),
        Some(n) => format!("{} {} net:[{ino}]", n.role.name(), n.label),
        None => format!("net:[{ino}]"),
    }
}

/// Resolves FROM: `host`, a PID, `net:[INODE]`, or a container by its
/// engine's name (`web`, `docker/web`, an id prefix).
pub fn resolve_from(
    view: &NetView,
    snap: &Snapshot,
    cat: &Catalog,
    key: &str,
) -> Result<From, String> {
    let ino = if key == "host" {
        view.host
            .ok_or("the host's network namespace is not known")?
    } else if let Some(i) = key
        .strip_prefix("net:[")
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
    {
        i
    } else if let Ok(pid) = key.parse::<i32>() {
        snap.scan
            .proc(pid)
            .ok_or_else(|| format!("process {pid} is not visible"))?
            .ns
            .get(&NsType::Net)
            .copied()
            .ok_or_else(|| format!("the network namespace of process {pid} is not readable"))?
    } else {
        container_netns(view, cat, key)?
    };
    if view.get(ino).is_none() {
        return Err(format!("net:[{ino}] is not among the namespaces seen"));
    }
    Ok(From {
        netns: ino,
        name: ns_name(view, ino),
    })
}

fn container_netns(view: &NetView, cat: &Catalog, key: &str) -> Result<u64, String> {
    let c = cat
        .find(key)?
        .ok_or_else(|| format!("no running container, PID or namespace is called {key}"))?;
    view.netns
        .iter()
        .find(|n| {
            n.containers
                .iter()
                .any(|x| x.engine == c.engine && x.id == c.id)
        })
        .map(|n| n.inode)
        .ok_or_else(|| format!("{}: its network namespace is not visible", c.label()))
}

/// The first IPv4 address of a namespace's non-loopback interfaces.
fn first_v4(n: &NetNs) -> Option<Ipv4Addr> {
    n.interfaces
        .iter()
        .filter(|i| i.kind != "loopback")
        .flat_map(|i| i.addresses.iter())
        .find_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
}

/// Resolves TO: `ADDR:PORT`, `[V6]:PORT`, `host:PORT` (the host's loopback as FROM's world
/// reaches it), or `CONTAINER[:PORT]` (its address; without a port, its first published
/// container port).
pub fn resolve_to(
    view: &NetView,
    cat: &Catalog,
    from: &From,
    given: &str,
    proto: Proto,
) -> Result<(To, Vec<Hop>, Option<Verdict>), String> {
    let (host, port) = match given.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && !h.ends_with(':') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>().ok(),
        ),
        _ => (given, None),
    };
    let to = |addr: IpAddr, port: u16| To {
        given: given.to_string(),
        addr,
        port,
        proto: proto.name(),
    };
    if let Ok(addr) = host.parse::<IpAddr>() {
        let port = port.ok_or_else(|| format!("{given}: give a port (ADDR:PORT)"))?;
        return Ok((to(addr, port), Vec::new(), None));
    }
    if host == "host" {
        let port = port.ok_or("host:PORT needs a port")?;
        let (addr, hops, verdict) = host_loopback_from(view, from.netns);
        return Ok((
            to(addr.unwrap_or(IpAddr::from([127, 0, 0, 1])), port),
            hops,
            verdict,
        ));
    }
    let ino = container_netns(view, cat, host)?;
    let n = view.get(ino).expect("resolved above");
    let addr = first_v4(n).ok_or_else(|| format!("{host} has no IPv4 address"))?;
    let port = match port {
        Some(p) => p,
        None => n
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .map(|p| p.container_port)
            .next()
            .ok_or_else(|| format!("{host} publishes no port: give one ({host}:PORT)"))?,
    };
    Ok((to(IpAddr::V4(addr), port), Vec::new(), None))
}

/// The address at which namespace `ino` reaches the host's loopback: follow default routes
/// outwards to the first user-mode network (a tap owned from another namespace, or a
/// pasta world) and take its mapping. From the host itself: 127.0.0.1.
fn host_loopback_from(view: &NetView, ino: u64) -> (Option<IpAddr>, Vec<Hop>, Option<Verdict>) {
    let mut cur = ino;
    let hops = Vec::new();
    for _ in 0..8 {
        if Some(cur) == view.host {
            return (Some(IpAddr::from([127, 0, 0, 1])), hops, None);
        }
        let Some(n) = view.get(cur) else { break };
        if let Some(p) = &n.pasta {
            let (_, lo) = p.args.host_mappings(
                n.default_routes
                    .iter()
                    .find_map(|d| d.gateway.as_deref().filter(|g| !g.contains(':'))),
            );
            return match lo
                .as_deref()
                .and_then(|l| l.split(' ').next()?.parse().ok())
            {
                Some(a) => (Some(a), hops, None),
                None => (
                    None,
                    hops,
                    Some(Verdict {
                        outcome: Outcome::Blocked,
                        reason: format!(
                            "pasta {} maps nothing to the host's loopback (--no-map-gw and no --map-host-loopback)",
                            p.pid
                        ),
                    }),
                ),
            };
        }
        let Some(d) = n.default_routes.iter().find(|d| {
            d.gateway
                .as_deref()
                .is_some_and(|g| g.parse::<Ipv4Addr>().is_ok())
        }) else {
            break;
        };
        let dev = d
            .dev
            .as_deref()
            .and_then(|x| n.interfaces.iter().find(|i| i.name == x));
        match dev {
            Some(i) if i.kind == "tun" && !i.tap_owners.is_empty() => {
                return (
                    d.gateway.as_deref().and_then(|g| g.parse().ok()),
                    hops,
                    None,
                );
            }
            Some(i) if i.peer.is_some() => {
                cur = i.peer.as_ref().unwrap().netns;
            }
            _ => break,
        }
    }
    (
        None,
        hops,
        Some(Verdict {
            outcome: Outcome::Unknown,
            reason: format!(
                "no user-mode network found on the default route of {}: the host's loopback is not mapped there",
                ns_name(view, ino)
            ),
        }),
    )
}

/// Whether an argv turns a boolean flag on (`--flag`, `--flag=true`).
fn flag_on(argv: &[String], name: &str) -> bool {
    argv.iter().any(|a| {
        a == name
            || a.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .is_some_and(|v| v == "true" || v == "1")
    })
}

struct Walker<'a> {
    /// Where the trace started: pasta's host-address case is the origin's own question.
    origin: u64,
    view: &'a NetView,
    snap: &'a Snapshot,
    cat: &'a Catalog,
    proto: Proto,
    hops: Vec<Hop>,
    /// The connection's source address, as the kernel picks it on the first route out of
    /// the origin (the rules that match on `saddr` need it).
    src: Option<IpAddr>,
    /// Each namespace's `nft -j list ruleset`, read once (None: not readable there).
    rulesets: std::collections::HashMap<u64, Option<String>>,
}

enum Next {
    /// Continue in this namespace, to this address and port, arriving by `iif` (the
    /// interface the packet came in through there, for the forwarding rules).
    Go(u64, IpAddr, u16, Option<String>),
    Done(Verdict, Option<(u64, IpAddr, u16)>),
}

impl<'a> Walker<'a> {
    fn hop(&mut self, netns: u64, step: String) {
        self.hops.push(Hop {
            netns,
            name: ns_name(self.view, netns),
            step,
        });
    }

    fn cmdline(&self, pid: i32) -> Vec<String> {
        self.snap
            .scan
            .proc(pid)
            .map(|p| p.cmdline.clone())
            .unwrap_or_default()
    }

    fn route(&self, ino: u64, dst: IpAddr) -> Result<Option<nsnet_netlink::RouteLookup>, String> {
        let id = NsId {
            kind: NsType::Net,
            inode: ino,
        };
        let n = self.snap.get(id).ok_or_else(|| format!("{id} is gone"))?;
        let fd = n.open().map_err(|e| format!("cannot open {id}: {e}"))?;
        let rtnl = crate::enter::rtnl_in(fd.as_fd()).map_err(|e| e.to_string())?;
        rtnl.route_get(dst).map_err(|e| e.to_string())
    }

    fn step(&mut self, ino: u64, dst: IpAddr, port: u16, iif: Option<&str>) -> Next {
        let Some(n) = self.view.get(ino) else {
            return Next::Done(
                Verdict {
                    outcome: Outcome::Unknown,
                    reason: format!("net:[{ino}] is not among the namespaces seen"),
                },
                None,
            );
        };
        let r = match self.route(ino, dst) {
            Ok(r) => r,
            Err(e) => {
                return Next::Done(
                    Verdict {
                        outcome: Outcome::Unknown,
                        reason: format!(
                            "cannot read the routes of {}: {e}",
                            ns_name(self.view, ino)
                        ),
                    },
                    None,
                );
            }
        };
        let Some(r) = r else {
            return Next::Done(
                Verdict {
                    outcome: Outcome::NoRoute,
                    reason: format!("no route to {dst} in {}", ns_name(self.view, ino)),
                },
                None,
            );
        };
        if r.kind == "local" {
            return self.local(n, dst, port);
        }
        if r.kind != "unicast" {
            return Next::Done(
                Verdict {
                    outcome: Outcome::Blocked,
                    reason: format!(
                        "the route to {dst} in {} is of type {} (table {})",
                        ns_name(self.view, ino),
                        r.kind,
                        r.table
                    ),
                },
                None,
            );
        }
        let dev = r
            .oif
            .and_then(|o| n.interfaces.iter().find(|i| i.index == o));
        let Some(dev) = dev else {
            return Next::Done(
                Verdict {
                    outcome: Outcome::Unknown,
                    reason: format!("the route to {dst} leaves by an interface not listed"),
                },
                None,
            );
        };
        let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        if self.src.is_none() {
            self.src = r.prefsrc;
        }
        // Forwarded between two interfaces here: nsnet's filter rules apply.
        if let Some(iif) = iif
            && let Some(rule) = self.forward_drop(ino, iif, &dev.name)
        {
            self.hop(ino, format!("forwarded from {iif} to {}", dev.name));
            return Next::Done(
                Verdict {
                    outcome: Outcome::Blocked,
                    reason: rule,
                },
                None,
            );
        }
        // And the namespace's other tables: iptables-nft's (Docker's, CNI's) among them.
        if let Some(iif) = iif {
            let oif = dev.name.clone();
            match self.netfilter(ino, "forward", "filter", iif, &oif, dst, port) {
                Judged::Dropped(d) => {
                    self.hop(ino, format!("forwarded from {iif} to {oif}"));
                    return Next::Done(
                        Verdict {
                            outcome: Outcome::Blocked,
                            reason: format!("dropped by the rule {}", d.words()),
                        },
                        None,
                    );
                }
                Judged::Policy { table, chain } => {
                    self.hop(ino, format!("forwarded from {iif} to {oif}"));
                    return Next::Done(
                        Verdict {
                            outcome: Outcome::Blocked,
                            reason: format!("dropped by the policy of table {table} chain {chain}"),
                        },
                        None,
                    );
                }
                Judged::Accepted(d) => self.hop(
                    ino,
                    format!("forwarded from {iif} to {oif}: accepted by {}", d.words()),
                ),
                Judged::Unjudged(d) => self.hop(
                    ino,
                    format!(
                        "forwarded from {iif} to {oif}; the filter rules are not judged past {} (it needs more than this packet's interfaces, addresses and ports)",
                        d.words()
                    ),
                ),
                Judged::Nothing | Judged::Nat(_) => {}
            }
            if dev.kind != "bridge"
                && let Judged::Nat(d) =
                    self.netfilter(ino, "postrouting", "nat", iif, &oif, dst, port)
            {
                let from = self.src.map(|s| format!(" of {s}")).unwrap_or_default();
                self.hop(
                    ino,
                    format!("the source address{from} is translated by {}", d.words()),
                );
            }
        }
        // The bridge interface itself: the port whose namespace has the address.
        if dev.kind == "bridge" {
            for port_name in &dev.ports {
                let Some(pi) = n.interfaces.iter().find(|i| &i.name == port_name) else {
                    continue;
                };
                let Some(peer) = &pi.peer else { continue };
                let holds = self.view.get(peer.netns).is_some_and(|pn| {
                    pn.interfaces.iter().any(|i| {
                        i.addresses
                            .iter()
                            .any(|a| a.split('/').next() == Some(&dst.to_string()))
                    })
                });
                if holds {
                    self.hop(
                        ino,
                        format!(
                            "route to {dst} by bridge {}{via}; port {} ⇄ {} into {}",
                            dev.name,
                            pi.name,
                            peer.name,
                            ns_name(self.view, peer.netns)
                        ),
                    );
                    return Next::Go(peer.netns, dst, port, Some(peer.name.clone()));
                }
            }
            return Next::Done(
                Verdict {
                    outcome: Outcome::NoRoute,
                    reason: format!(
                        "no container on bridge {} in {} has {dst}",
                        dev.name,
                        ns_name(self.view, ino)
                    ),
                },
                None,
            );
        }
        if let Some(peer) = &dev.peer {
            self.hop(
                ino,
                format!(
                    "route to {dst} by {}{via} ⇄ {} into {}",
                    dev.name,
                    peer.name,
                    ns_name(self.view, peer.netns)
                ),
            );
            // A veth that is a bridge port enters the bridge: the bridge is the incoming
            // interface for the forwarding rules there.
            let iif = self
                .view
                .get(peer.netns)
                .and_then(|pn| pn.interfaces.iter().find(|i| i.index == peer.ifindex))
                .map(|i| i.master.clone().unwrap_or_else(|| i.name.clone()));
            return Next::Go(peer.netns, dst, port, iif);
        }
        if dev.kind == "tun" {
            return self.tap(n, dev, dst, port, r.gateway);
        }
        self.hop(ino, format!("route to {dst} by {}{via}", dev.name));
        Next::Done(
            Verdict {
                outcome: Outcome::Leaves,
                reason: format!(
                    "leaves {} by {}{via}: beyond the namespaces explained here",
                    ns_name(self.view, ino),
                    dev.name
                ),
            },
            None,
        )
    }

    /// Out of a tap: the user-mode network behind it.
    fn tap(
        &mut self,
        n: &NetNs,
        dev: &crate::net::Iface,
        dst: IpAddr,
        port: u16,
        gw: Option<IpAddr>,
    ) -> Next {
        let ino = n.inode;
        let owner = dev.tap_owners.first();
        if let Some(p) = &n.pasta {
            return self.pasta_out(n, p, dst, port);
        }
        let Some(o) = owner else {
            return Next::Done(
                Verdict {
                    outcome: Outcome::Unknown,
                    reason: format!(
                        "{} in {} is held by no process that can be seen (root sees every holder)",
                        dev.name,
                        ns_name(self.view, ino)
                    ),
                },
                None,
            );
        };
        let Some(out_ns) = o.netns else {
            return Next::Done(
                Verdict {
                    outcome: Outcome::Unknown,
                    reason: format!("the namespace of {} {} is not readable", o.comm, o.pid),
                },
                None,
            );
        };
        self.hop(
            ino,
            format!(
                "route to {dst} by {}{} (tap of {} {}, which lives in {})",
                dev.name,
                gw.map(|g| format!(" via {g}")).unwrap_or_default(),
                o.comm,
                o.pid,
                ns_name(self.view, out_ns)
            ),
        );
        // The stack's gateway (10.0.2.2 for slirp4netns, RootlessKit and nsnet) is the
        // host's loopback, unless disabled.
        let gateway = n
            .default_routes
            .iter()
            .find(|d| d.dev.as_deref() == Some(&dev.name))
            .and_then(|d| d.gateway.as_deref()?.parse::<IpAddr>().ok());
        if Some(dst) == gateway {
            if let Some(who) = self.host_loopback_disabled(o.pid) {
                return Next::Done(
                    Verdict {
                        outcome: Outcome::Blocked,
                        reason: format!("host loopback disabled by {who} --disable-host-loopback"),
                    },
                    None,
                );
            }
            let lo = match dst {
                IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
                IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            };
            self.hop(
                out_ns,
                format!(
                    "{} {} maps {dst} to the host's loopback: connects to {lo}:{port}",
                    o.comm, o.pid
                ),
            );
            return Next::Go(out_ns, lo, port, None);
        }
        self.hop(
            out_ns,
            format!("{} {} opens a host socket to {dst}:{port}", o.comm, o.pid),
        );
        Next::Go(out_ns, dst, port, None)
    }

    /// Who disabled the host loopback for the stack run by `pid`: the stack itself
    /// (slirp4netns's flag, nsnet's) or the launcher that started it (RootlessKit passes
    /// the flag on; its own command line says it too).
    fn host_loopback_disabled(&self, pid: i32) -> Option<String> {
        let me = self.snap.scan.proc(pid)?;
        let parent = self.snap.scan.proc(me.ppid);
        if let Some(p) = parent
            && flag_on(&p.cmdline, "--disable-host-loopback")
        {
            return Some(format!("{} {}", p.comm, p.pid));
        }
        flag_on(&me.cmdline, "--disable-host-loopback").then(|| format!("{} {}", me.comm, me.pid))
    }

    fn pasta_out(&mut self, n: &NetNs, p: &crate::net::PastaWorld, dst: IpAddr, port: u16) -> Next {
        let ino = n.inode;
        let host_ns = p.netns.or(self.view.host).unwrap_or(ino);
        let gw = n
            .default_routes
            .iter()
            .find_map(|d| d.gateway.as_deref().filter(|g| !g.contains(':')));
        let (guest, lo) = p.args.host_mappings(gw);
        let addr_of = |s: &Option<String>| -> Option<IpAddr> {
            s.as_deref()?.split(' ').next()?.parse().ok()
        };
        self.hop(
            ino,
            format!("route to {dst} into the tap of pasta {}", p.pid),
        );
        if addr_of(&lo) == Some(dst) {
            self.hop(
                host_ns,
                format!(
                    "pasta {} maps {dst} to the host's loopback: 127.0.0.1:{port}",
                    p.pid
                ),
            );
            return Next::Go(host_ns, IpAddr::from([127, 0, 0, 1]), port, None);
        }
        if addr_of(&guest) == Some(dst) {
            let host_addr = p
                .copied
                .first()
                .and_then(|(a, _)| a.split('/').next()?.parse().ok())
                .unwrap_or(dst);
            self.hop(
                host_ns,
                format!(
                    "pasta {} maps {dst} to the host's address {host_addr}",
                    p.pid
                ),
            );
            return Next::Go(host_ns, host_addr, port, None);
        }
        self.hop(
            host_ns,
            format!("pasta {} opens a host socket to {dst}:{port}", p.pid),
        );
        Next::Go(host_ns, dst, port, None)
    }

    /// At a local address: the listener, and where its forwarder sends the connection.
    fn local(&mut self, n: &NetNs, dst: IpAddr, port: u16) -> Next {
        let ino = n.inode;
        let name = ns_name(self.view, ino);
        // pasta copied the host's address into the namespace: the host's own address is
        // the namespace's here.
        if let Some(p) = &n.pasta
            && ino == self.origin
            && p.copied
                .iter()
                .any(|(a, _)| a.split('/').next() == Some(&dst.to_string()))
        {
            let (guest, lo) = p.args.host_mappings(
                n.default_routes
                    .iter()
                    .find_map(|d| d.gateway.as_deref().filter(|g| !g.contains(':'))),
            );
            let use_ = match (guest, lo) {
                (Some(g), _) => format!("use {g}"),
                (None, Some(l)) => format!("use {l} for the host's loopback"),
                (None, None) => {
                    "pasta maps nothing to the host here (--no-map-gw, no --map-guest-addr)".into()
                }
            };
            self.hop(
                ino,
                format!(
                    "{dst} is an address of {name} itself (pasta {} copied it from the host)",
                    p.pid
                ),
            );
            return Next::Done(
                Verdict {
                    outcome: Outcome::Blocked,
                    reason: format!("the container's own address is the host's: {use_}"),
                },
                Some((ino, dst, port)),
            );
        }
        let ls = match sockets::listeners(self.snap, ino, self.proto) {
            Ok(l) => l,
            Err(e) => {
                return Next::Done(
                    Verdict {
                        outcome: Outcome::Unknown,
                        reason: format!("the sockets of {name} are not readable: {e}"),
                    },
                    None,
                );
            }
        };
        let Some(l) = ls.iter().find(|l| l.accepts(dst, port)) else {
            self.hop(ino, format!("{dst} is local in {name}"));
            return Next::Done(
                Verdict {
                    outcome: Outcome::NoListener,
                    reason: format!(
                        "no listener on {dst}:{port} ({}) in {name}",
                        self.proto.name()
                    ),
                },
                Some((ino, dst, port)),
            );
        };
        let holders = sockets::holders(self.snap, l.inode);
        let who = if holders.is_empty() {
            "a process that cannot be seen from here".to_string()
        } else {
            holders
                .iter()
                .map(|(p, c)| format!("{c} {p}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.hop(
            ino,
            format!(
                "{dst}:{port} is local in {name}: listener {}:{} held by {who}",
                l.addr, l.port
            ),
        );
        for (pid, comm) in &holders {
            if let Some(next) = self.forwarder(ino, *pid, comm, port) {
                return next;
            }
            let argv = self.cmdline(*pid);
            if crate::pasta::is_pasta(comm, &argv)
                && let Some(next) = self.pasta_in(ino, port)
            {
                return next;
            }
        }
        // A listener nobody can be seen holding, in pasta's host side: pasta's own (its
        // descriptors are root's), when one of its -t specs covers the port.
        if holders.is_empty()
            && let Some(next) = self.pasta_in(ino, port)
        {
            return next;
        }
        Next::Done(
            Verdict {
                outcome: Outcome::Reachable,
                reason: format!("{who} accepts on {}:{} in {name}", l.addr, l.port),
            },
            Some((ino, dst, port)),
        )
    }

    /// A known port forwarder's listener: where it sends the connection.
    fn forwarder(&mut self, ino: u64, pid: i32, comm: &str, port: u16) -> Option<Next> {
        let argv = self.cmdline(pid);
        // RootlessKit's and nsnet's port drivers: the parent of an instance holds the
        // listener; the API's ports say where in the child it goes.
        if let Some(i) = self
            .view
            .instances
            .iter()
            .find(|i| i.parent_pid == Some(pid) || i.child_pid == Some(pid))
        {
            let spec = i.ports.iter().find(|p| {
                p.spec.parent_port == i64::from(port) && p.spec.proto.starts_with(self.proto.name())
            })?;
            let child = i.child_netns?;
            let cip: IpAddr = if spec.spec.child_ip.is_empty() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                spec.spec.child_ip.parse().ok()?
            };
            let cport = spec.spec.child_port as u16;
            self.hop(
                ino,
                format!(
                    "{comm} {pid} is the port driver of {}: port {} → {cip}:{cport} in {}",
                    i.state_dir.display(),
                    spec.id,
                    ns_name(self.view, child)
                ),
            );
            return Some(Next::Go(child, cip, cport, None));
        }
        if comm == "docker-proxy" || comm.starts_with("rootlesskit-doc") {
            let ip: IpAddr = crate::engines::flag(&argv, &["-container-ip"])?
                .parse()
                .ok()?;
            let cport: u16 = crate::engines::flag(&argv, &["-container-port"])?
                .parse()
                .ok()?;
            self.hop(ino, format!("{comm} {pid} forwards to {ip}:{cport}"));
            return Some(Next::Go(ino, ip, cport, None));
        }
        // slirp4netns's own host forwards (`add_hostfwd`, Podman's port_handler=slirp4netns,
        // RootlessKit's slirp4netns port driver): into the namespace of its tap.
        if let Some(n) = self.view.netns.iter().find(|n| {
            n.hostfwds
                .iter()
                .any(|f| f.pid == pid && f.host_port == port && f.proto == self.proto.name())
        }) {
            let f = n
                .hostfwds
                .iter()
                .find(|f| f.pid == pid && f.host_port == port)?;
            let guest: IpAddr = match f.guest_addr.parse::<IpAddr>() {
                Ok(a) if !a.is_unspecified() => a,
                // slirp4netns's default guest: the tap's own address.
                _ => IpAddr::V4(first_v4(n)?),
            };
            self.hop(
                ino,
                format!(
                    "{comm} {pid} forwards host port {port} (add_hostfwd) to {guest}:{} in {}",
                    f.guest_port,
                    ns_name(self.view, n.inode)
                ),
            );
            return Some(Next::Go(n.inode, guest, f.guest_port, None));
        }
        if comm == "rootlessport" {
            // Podman's: the container whose published port this is.
            let c = self.cat.containers.iter().find(|c| {
                c.engine == Engine::Podman
                    && c.running
                    && c.ports
                        .iter()
                        .any(|p| p.host_port == port && p.proto == self.proto.name())
            })?;
            let p = c.ports.iter().find(|p| p.host_port == port)?;
            let cn = self
                .view
                .netns
                .iter()
                .find(|n| n.containers.iter().any(|x| x.id == c.id))?;
            let addr = match c.network_mode.as_deref() {
                Some("slirp4netns") | Some("pasta") => IpAddr::from([127, 0, 0, 1]),
                _ => IpAddr::V4(first_v4(cn)?),
            };
            self.hop(
                ino,
                format!(
                    "rootlessport {pid} publishes {} for {}: → {addr}:{} in {}",
                    p,
                    c.label(),
                    p.container_port,
                    ns_name(self.view, cn.inode)
                ),
            );
            return Some(Next::Go(cn.inode, addr, p.container_port, None));
        }
        None
    }

    /// pasta's inbound forwarding (`-t`/`-u` specs) from its host side into its namespace.
    fn pasta_in(&mut self, host_ns: u64, port: u16) -> Option<Next> {
        let opt = match self.proto {
            Proto::Tcp => "-t",
            Proto::Udp => "-u",
        };
        let n = self.view.netns.iter().find(|n| {
            n.pasta
                .as_ref()
                .is_some_and(|p| p.netns.or(self.view.host) == Some(host_ns))
        })?;
        let p = n.pasta.as_ref()?;
        // The tables its -c socket serves are what it forwards now (pesto may have changed
        // them since it started); its command line is the fallback.
        if p.args.socket.is_some() && p.socket_error.is_none() {
            let proto = match self.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            let r = p.socket_rules.iter().find(|r| {
                r.pif == nsnet_api::pesto::proto::PIF_HOST
                    && r.proto == proto
                    && (r.first..=r.last).contains(&port)
            })?;
            let target = r.to.wrapping_add(port - r.first);
            let addr = match &r.target {
                Some(t) => t.parse().ok()?,
                None => first_v4(n).map(IpAddr::V4)?,
            };
            self.hop(
                host_ns,
                format!(
                    "pasta {} forwards {port} into {} by its -c socket's rule \"{}\": {addr}:{target}",
                    p.pid,
                    ns_name(self.view, n.inode),
                    r.text
                ),
            );
            return Some(Next::Go(n.inode, addr, target, None));
        }
        let target = p
            .args
            .specs(opt)
            .iter()
            .find_map(|s| crate::pasta::maps(s, port))?;
        let addr = first_v4(n).map(IpAddr::V4)?;
        self.hop(
            host_ns,
            format!(
                "pasta {} forwards {opt} {port} into {}: {addr}:{target}",
                p.pid,
                ns_name(self.view, n.inode)
            ),
        );
        Some(Next::Go(n.inode, addr, target, None))
    }

    /// What the base chains of `hook` (of `kind`) in `ino` do with this connection's first
    /// packet, from `iif` out by `oif`; nsnet's own table is judged by [`Self::forward_drop`].
    #[allow(clippy::too_many_arguments)]
    fn netfilter(
        &mut self,
        ino: u64,
        hook: &str,
        kind: &str,
        iif: &str,
        oif: &str,
        dst: IpAddr,
        port: u16,
    ) -> Judged {
        let snap = self.snap;
        let text = self
            .rulesets
            .entry(ino)
            .or_insert_with(|| {
                let id = NsId {
                    kind: NsType::Net,
                    inode: ino,
                };
                let fd = snap.get(id)?.open().ok()?;
                crate::nft::list_ruleset(fd.as_fd()).ok()
            })
            .clone();
        let Some(text) = text else {
            return Judged::Nothing;
        };
        let p = Packet {
            iif,
            oif,
            saddr: self.src,
            daddr: dst,
            proto: match self.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            },
            dport: port,
        };
        crate::netfilter::judge(&text, hook, Some(kind), &p, &["nsnet"])
    }

    /// The `forward` rule of nsnet's nftables table in `ino` that drops traffic from `iif`
    /// to `oif`, in words; None when none does (or nft cannot be read there).
    fn forward_drop(&self, ino: u64, iif: &str, oif: &str) -> Option<String> {
        let id = NsId {
            kind: NsType::Net,
            inode: ino,
        };
        let fd = self.snap.get(id)?.open().ok()?;
        let text = crate::nft::list_table(fd.as_fd(), "ip", "nsnet").ok()?;
        crate::nft::dropping_rule(&text, iif, oif)
    }
}

/// Walks the path from `from` to `to`.
pub fn trace(
    view: &NetView,
    snap: &Snapshot,
    cat: &Catalog,
    from: From,
    to: To,
    pre: Vec<Hop>,
    pre_verdict: Option<Verdict>,
) -> Trace {
    let proto = if to.proto == "udp" {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    let mut w = Walker {
        origin: from.netns,
        view,
        snap,
        cat,
        proto,
        hops: pre,
        src: None,
        rulesets: std::collections::HashMap::new(),
    };
    if let Some(v) = pre_verdict {
        return Trace {
            from,
            to,
            hops: w.hops,
            verdict: v,
            end: None,
        };
    }
    let (mut ino, mut dst, mut port, mut iif) = (from.netns, to.addr, to.port, None::<String>);
    let mut end = None;
    let mut verdict = Verdict {
        outcome: Outcome::Unknown,
        reason: "the path is longer than 24 hops".into(),
    };
    for _ in 0..24 {
        match w.step(ino, dst, port, iif.as_deref()) {
            Next::Go(n, d, p, i) => {
                (ino, dst, port, iif) = (n, d, p, i);
            }
            Next::Done(v, e) => {
                verdict = v;
                end = e;
                break;
            }
        }
    }
    // No route out of a container on an --internal network: that is why.
    if verdict.outcome == Outcome::NoRoute
        && let Some(n) = view.get(ino)
    {
        let internal: Vec<String> = n
            .containers
            .iter()
            .flat_map(|c| {
                c.internal_networks
                    .iter()
                    .map(move |i| format!("{} is on {i}", c.label()))
            })
            .collect();
        if !internal.is_empty() {
            verdict.outcome = Outcome::Blocked;
            verdict.reason = format!(
                "{}: {}, an --internal network (no route out of it)",
                verdict.reason,
                internal.join(", ")
            );
        }
    }
    // From the host to a container's own address: say how it is published instead.
    if view
        .get(from.netns)
        .is_some_and(|n| matches!(n.role, Role::Host | Role::Parent))
        && matches!(verdict.outcome, Outcome::NoRoute | Outcome::Leaves)
        && let Some(n) = view.netns.iter().find(|n| {
            n.interfaces.iter().any(|i| {
                i.addresses
                    .iter()
                    .any(|a| a.split('/').next() == Some(&to.addr.to_string()))
            })
        })
    {
        let published: Vec<String> = n
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .filter(|p| p.container_port == to.port)
            .map(|p| {
                format!(
                    "{}:{}",
                    if p.host_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &p.host_ip
                    },
                    p.host_port
                )
            })
            .collect();
        verdict.reason = format!(
            "{}; {} is inside {}, which the host does not route to{}",
            verdict.reason,
            to.addr,
            ns_name(view, n.inode),
            if published.is_empty() {
                String::new()
            } else {
                format!(": use its published port {}", published.join(", "))
            }
        );
    }
    Trace {
        from,
        to,
        hops: w.hops,
        verdict,
        end,
    }
}

/// `--probe`: one TCP connection attempt from inside `from` to `addr:port` (the socket is
/// made in that namespace by the entering helper, so the connect happens there), bounded
/// by `limit`. Closed at once: nothing is sent.
pub fn probe(
    snap: &Snapshot,
    from: u64,
    addr: IpAddr,
    port: u16,
    limit: std::time::Duration,
) -> Result<(), String> {
    use std::os::fd::{AsRawFd, OwnedFd};
    let id = NsId {
        kind: NsType::Net,
        inode: from,
    };
    let n = snap.get(id).ok_or_else(|| format!("{id} is gone"))?;
    let fd = n.open().map_err(|e| format!("cannot open {id}: {e}"))?;
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let sock: OwnedFd =
        crate::enter::tcp_socket_in(fd.as_fd(), family).map_err(|e| e.to_string())?;
    let s = socket2::Socket::from(sock);
    let target = std::net::SocketAddr::new(addr, port);
    let r = s.connect_timeout(&target.into(), limit);
    let _ = s.as_raw_fd();
    r.map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut {
            format!("no answer within {limit:?}")
        } else {
            e.to_string()
        }
    })
}
