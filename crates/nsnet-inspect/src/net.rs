//! The network view (`nsnet ns net`): every network namespace with its role, interfaces,
//! addresses and default route, and the edges between namespaces.
//!
//! Theory of operation:
//! 1. Discover every namespace ([`crate::namespaces`]) and keep the network ones open.
//! 2. Read each netns through a netlink socket made inside it ([`crate::enter`]); the
//!    inspector's own namespace first, so the host view exists even if nothing else can be
//!    entered.
//! 3. veth pairs: a veth's `IFLA_LINK` is the peer's ifindex *in the peer's namespace*, and
//!    `IFLA_LINK_NETNSID` names that namespace by an id local to this one. Ids are turned into
//!    namespaces by asking each namespace `RTM_GETNSID` for every other namespace's fd. Each
//!    pair is then checked from the other side (its peer points back at us), because ifindex
//!    values repeat across namespaces (every container's `eth0` reads `@if2`… of its own peer).
//! 4. Tap devices: a process owning a tap has a `/dev/net/tun` fd whose fdinfo says
//!    `iff: tap0`. The tap's namespace is asked of the device itself (the fd is duplicated with
//!    `pidfd_getfd` and `TUNGETDEVNETNS` opens its netns); when that is refused, a tap of that
//!    name is looked up, and used only if exactly one namespace has one. The owner's own netns
//!    is the other end of the edge (slirp4netns lives in the host netns, its tap in the child).
//! 5. Rootless instances (nsnet and RootlessKit share the contract): a state directory named
//!    by `ROOTLESSKIT_STATE_DIR` in a process's environment, or holding a `netns` bind mount
//!    next to `child_pid`. The child netns is the `netns` bind mount (detached) or the child
//!    process's own; the parent's netns is where the launcher runs.
//! 6. Roles: host (PID 1's netns, else kthreadd's, else — rootless — the inspector's own),
//!    rootless child (of a launcher instance, or holding a tap owned from another netns),
//!    parent (a launcher's netns that is not the host's), container (reached by a veth,
//!    or a process's netns owned by a rootless instance's user namespace), orphan (nothing in
//!    it but descriptors or bind mounts), other.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::enter::rtnl_in;
use crate::namespaces::{Holder, Owner, ProcRef, Snapshot};
use crate::netlink::Link;
use crate::nsfs::{self, NsId, NsType};

/// In the order the pictures draw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Host,
    Parent,
    RootlessChild,
    Container,
    Orphan,
    Other,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Parent => "parent",
            Role::RootlessChild => "rootless-child",
            Role::Container => "container",
            Role::Orphan => "orphan",
            Role::Other => "other",
        }
    }
}

/// One end of an edge: an interface in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    pub netns: u64,
    pub ifindex: u32,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TapOwner {
    pub pid: i32,
    pub comm: String,
    pub fd: i32,
    /// The netns the owning process lives in.
    pub netns: Option<u64>,
    /// How the tap's own namespace was found: `tungetdevnetns` or `name`.
    pub resolved_by: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Iface {
    pub index: u32,
    pub name: String,
    pub kind: String,
    pub up: bool,
    pub state: String,
    pub mtu: u32,
    pub mac: Option<String>,
    /// The bridge it is a port of.
    pub master: Option<String>,
    pub addresses: Vec<String>,
    /// The other end of a veth, resolved across namespaces.
    pub peer: Option<Endpoint>,
    /// For a bridge: its ports.
    pub ports: Vec<String>,
    /// For a tap/tun: the processes holding it.
    pub tap_owners: Vec<TapOwner>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DefaultRoute {
    pub gateway: Option<String>,
    pub dev: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NetNs {
    pub inode: u64,
    pub role: Role,
    /// A short human label: "host", the container's name, the instance's state dir…
    pub label: String,
    pub owner: Owner,
    pub processes: Vec<ProcRef>,
    pub held_by: Vec<Holder>,
    pub interfaces: Vec<Iface>,
    pub default_routes: Vec<DefaultRoute>,
    /// Why the interfaces could not be read, when they could not.
    pub error: Option<String>,
    /// The engines' containers that run in it (by their init process, or by the netns
    /// file the engine made for them), with their names, images and published ports.
    pub containers: Vec<crate::engines::Container>,
    /// The pasta process serving it, when one does.
    pub pasta: Option<PastaWorld>,
    /// Host ports the slirp4netns serving it forwards in (`list_hostfwd` on its
    /// `--api-socket`), and why they could not be asked for.
    pub hostfwds: Vec<HostFwd>,
    pub hostfwd_error: Option<String>,
}

/// One slirp4netns host forward, as `list_hostfwd` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFwd {
    /// The slirp4netns process that listens on the host side.
    pub pid: i32,
    pub proto: String,
    pub host_addr: String,
    pub host_port: u16,
    pub guest_addr: String,
    pub guest_port: u16,
}

/// Whether a process is slirp4netns (Debian's, or nsnet linked as slirp4netns).
pub fn is_slirp4netns(comm: &str, argv: &[String]) -> bool {
    comm == "slirp4netns"
        || argv
            .first()
            .is_some_and(|a| a.rsplit('/').next() == Some("slirp4netns"))
}

/// A namespace served by pasta (Debian's, or nsnet linked as pasta).
#[derive(Debug, Clone, Serialize)]
pub struct PastaWorld {
    pub pid: i32,
    pub comm: String,
    pub args: crate::pasta::PastaArgs,
    /// The netns pasta lives in (its host side), when readable (rootless, pasta's are not:
    /// it makes itself non-dumpable).
    pub netns: Option<u64>,
    /// Addresses inside that are also addresses of pasta's host side (pasta copies the
    /// host's by default): `(address, host interface)`.
    pub copied: Vec<(String, String)>,
    /// Where the container reaches the host's own address and its loopback (see
    /// [`crate::pasta::PastaArgs::host_mappings`]).
    pub host_address_at: Option<String>,
    pub host_loopback_at: Option<String>,
    /// Its forwarding tables as its `-c` socket serves them (pesto's protocol), when it has
    /// one: what it forwards now, after any `pesto` updates, rather than what its command
    /// line said at start.
    pub socket_rules: Vec<SocketRule>,
    pub socket_error: Option<String>,
}

/// One rule of a pasta forwarding table, as read from its `-c` socket.
#[derive(Debug, Clone, Serialize)]
pub struct SocketRule {
    /// The table's name as pasta gives it (`HOST`: `-t/-u`, into the namespace; `SPLICE`:
    /// `-T/-U`, from the namespace's loopback out).
    pub table: String,
    pub pif: u8,
    pub proto: String,
    /// The listening address, None for every address of both families.
    pub addr: Option<String>,
    pub first: u16,
    pub last: u16,
    pub to: u16,
    pub target: Option<String>,
    /// pesto's own line for it: `TCP [*]:18080  =>  80`.
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VethPair {
    pub a: Endpoint,
    pub b: Endpoint,
    /// Both ends point at each other (checked from each side's own namespace).
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TapLink {
    pub tap: Endpoint,
    pub owner: TapOwner,
}

#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub state_dir: PathBuf,
    pub child_pid: Option<i32>,
    pub parent_pid: Option<i32>,
    pub parent_comm: Option<String>,
    pub child_netns: Option<u64>,
    pub parent_netns: Option<u64>,
    pub detached: bool,
    /// The ports published through its API (`GET /v1/ports` on `api.sock`).
    pub ports: Vec<nsnet_api::rest::types::PortStatus>,
    /// Why the ports could not be asked for (no API socket, refused, timed out).
    pub ports_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NetView {
    pub host: Option<u64>,
    /// How the host netns was chosen.
    pub host_basis: String,
    pub netns: Vec<NetNs>,
    pub veth_pairs: Vec<VethPair>,
    pub taps: Vec<TapLink>,
    pub instances: Vec<Instance>,
    /// Where each engine's state was read (or why it could not be).
    pub engines: Vec<crate::engines::Source>,
    /// The containers themselves (each also listed under its namespace).
    #[serde(skip)]
    pub catalog: crate::engines::Catalog,
    pub unreadable_pids: Vec<i32>,
    pub problems: Vec<String>,
}

impl NetView {
    pub fn get(&self, inode: u64) -> Option<&NetNs> {
        self.netns.iter().find(|n| n.inode == inode)
    }

    /// What `ns net --watch` compares: each namespace's identity, role, name, interfaces with
    /// their addresses and links, its containers and their ports, and the instances' ports —
    /// not its processes (which come and go on any machine all the time).
    pub fn shape(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .netns
            .iter()
            .map(|n| {
                let ifs: Vec<String> = n
                    .interfaces
                    .iter()
                    .map(|i| {
                        format!(
                            "{} {} {} {:?} {:?} {:?}",
                            i.name,
                            i.kind,
                            i.addresses.join(","),
                            i.peer.as_ref().map(|p| (p.netns, p.ifindex)),
                            i.master,
                            i.tap_owners.iter().map(|o| o.pid).collect::<Vec<_>>()
                        )
                    })
                    .collect();
                let ctrs: Vec<String> = n
                    .containers
                    .iter()
                    .map(|c| {
                        let p: Vec<String> = c.ports.iter().map(|p| p.to_string()).collect();
                        format!("{} {}", c.label(), p.join(","))
                    })
                    .collect();
                format!(
                    "{} {} {} [{}] [{}] {:?}",
                    n.inode,
                    n.role.name(),
                    n.label,
                    ifs.join("; "),
                    ctrs.join("; "),
                    n.error
                )
            })
            .collect();
        for i in &self.instances {
            let p: Vec<String> = i
                .ports
                .iter()
                .map(|p| format!("{}:{}", p.spec.parent_ip, p.spec.parent_port))
                .collect();
            out.push(format!("{} {}", i.state_dir.display(), p.join(",")));
        }
        out
    }
}

struct Read {
    links: Vec<Link>,
    addrs: Vec<crate::netlink::Addr>,
    routes: Vec<crate::netlink::DefaultRoute>,
    rtnl: crate::netlink::Rtnl,
}

fn own_netns() -> Option<u64> {
    let l = std::fs::read_link("/proc/self/ns/net").ok()?;
    NsId::parse(l.to_str()?).map(|i| i.inode)
}

/// Builds the whole network view.
pub fn gather() -> NetView {
    let snap = crate::discover();
    gather_from(&snap)
}

pub fn gather_from(snap: &Snapshot) -> NetView {
    let mut problems = snap.problems.clone();
    let own = own_netns();
    let mut fds: BTreeMap<u64, OwnedFd> = BTreeMap::new();
    for n in snap.of_type(NsType::Net) {
        match n.open() {
            Ok(fd) => {
                fds.insert(n.id.inode, fd);
            }
            Err(e) => problems.push(format!("{}: cannot open: {e}", n.id)),
        }
    }
    // Own namespace first (the host view before any helper runs), then the rest.
    let mut order: Vec<u64> = fds.keys().copied().collect();
    order.sort_by_key(|i| Some(*i) != own);
    let mut reads: BTreeMap<u64, Read> = BTreeMap::new();
    let mut errors: BTreeMap<u64, String> = BTreeMap::new();
    for ino in order {
        let r = rtnl_in(fds[&ino].as_fd()).and_then(|mut rtnl| {
            Ok(Read {
                links: rtnl.links()?,
                addrs: rtnl.addrs()?,
                routes: rtnl.default_routes()?,
                rtnl,
            })
        });
        match r {
            Ok(r) => {
                reads.insert(ino, r);
            }
            Err(e) => {
                errors.insert(ino, e.to_string());
            }
        }
    }
    // nsid maps, only where some link names a peer namespace.
    let mut nsids: BTreeMap<u64, BTreeMap<i32, u64>> = BTreeMap::new();
    for (ino, r) in reads.iter_mut() {
        if !r.links.iter().any(|l| l.link_netnsid.is_some()) {
            continue;
        }
        let map = nsids.entry(*ino).or_default();
        for (other, fd) in &fds {
            if other == ino {
                continue;
            }
            if let Ok(Some(id)) = r.rtnl.nsid_of(fd.as_fd()) {
                map.insert(id, *other);
            }
        }
    }
    let veth_pairs = veth_pairs(&reads, &nsids);
    let taps = taps(snap, &reads, &mut problems);
    let instances = instances(snap);
    let (host, host_basis) = host_netns(snap, own);

    let mut netns = Vec::new();
    for n in snap.of_type(NsType::Net) {
        let ino = n.id.inode;
        let mut ifaces = Vec::new();
        let mut default_routes = Vec::new();
        if let Some(r) = reads.get(&ino) {
            let name_of = |idx: u32| {
                r.links
                    .iter()
                    .find(|l| l.index == idx)
                    .map(|l| l.name.clone())
            };
            for l in &r.links {
                let addresses = r
                    .addrs
                    .iter()
                    .filter(|a| a.index == l.index)
                    .map(|a| format!("{}/{}", a.addr, a.prefix))
                    .collect();
                let peer = veth_pairs.iter().find_map(|p| {
                    if p.a.netns == ino && p.a.ifindex == l.index {
                        Some(p.b.clone())
                    } else if p.b.netns == ino && p.b.ifindex == l.index {
                        Some(p.a.clone())
                    } else {
                        None
                    }
                });
                ifaces.push(Iface {
                    index: l.index,
                    name: l.name.clone(),
                    kind: l.kind.clone(),
                    up: l.up,
                    state: l.oper.clone(),
                    mtu: l.mtu,
                    mac: l.mac.clone(),
                    master: l.master.and_then(name_of),
                    addresses,
                    peer,
                    ports: r
                        .links
                        .iter()
                        .filter(|p| p.master == Some(l.index))
                        .map(|p| p.name.clone())
                        .collect(),
                    tap_owners: taps
                        .iter()
                        .filter(|t| t.tap.netns == ino && t.tap.ifindex == l.index)
                        .map(|t| t.owner.clone())
                        .collect(),
                });
            }
            for d in &r.routes {
                default_routes.push(DefaultRoute {
                    gateway: d.gateway.map(|g| g.to_string()),
                    dev: d.oif.and_then(name_of),
                });
            }
        }
        netns.push(NetNs {
            inode: ino,
            role: Role::Other,
            label: String::new(),
            owner: n.owner.clone(),
            processes: n.processes.clone(),
            held_by: n.held_by.clone(),
            interfaces: ifaces,
            default_routes,
            error: errors.get(&ino).cloned(),
            containers: Vec::new(),
            pasta: None,
            hostfwds: Vec::new(),
            hostfwd_error: None,
        });
    }
    let catalog = crate::engines::read(&snap.scan);
    let mut view = NetView {
        host,
        host_basis,
        netns,
        veth_pairs,
        taps,
        instances,
        engines: catalog.sources.clone(),
        catalog: crate::engines::Catalog::default(),
        unreadable_pids: snap.unreadable_pids.clone(),
        problems,
    };
    pasta_worlds(&mut view, snap);
    assign_roles(&mut view, snap);
    name_containers(&mut view, snap, &catalog);
    instance_ports(&mut view.instances);
    slirp_hostfwds(&mut view, snap);
    view.catalog = catalog;
    view
}

/// The inode of the netns at `path`: a bind mount seen in any mount namespace, an nsfs file
/// we can open (a `/proc/PID/ns/net`, or a mount in ours), else none.
pub(crate) fn netns_at(snap: &Snapshot, path: &Path) -> Option<u64> {
    if let Some(m) = snap
        .scan
        .mounts
        .iter()
        .find(|m| m.ns.kind == NsType::Net && m.path == path)
    {
        return Some(m.ns.inode);
    }
    let fd = nsfs::open(path).ok()?;
    (nsfs::ns_type(fd.as_fd()) == Some(NsType::Net))
        .then(|| nsfs::inode(fd.as_fd()).ok())
        .flatten()
}

/// Labels each netns with the engines' containers in it: by the recorded init process
/// (checked live: it must be in this netns now), else by the engine's netns file.
fn name_containers(view: &mut NetView, snap: &Snapshot, catalog: &crate::engines::Catalog) {
    for c in catalog.containers.iter().filter(|c| c.running) {
        let by_pid = c
            .pid
            .and_then(|p| snap.scan.proc(p))
            .and_then(|p| p.ns.get(&NsType::Net).copied());
        let by_path = || c.netns_path.as_deref().and_then(|p| netns_at(snap, p));
        let Some(ino) = by_pid.or_else(by_path) else {
            continue;
        };
        if let Some(n) = view.netns.iter_mut().find(|n| n.inode == ino) {
            // A container's label only replaces a guess (its first process, its bind
            // mount's file name), never a launcher's or the host's.
            // A rootless child that no launcher made (a bare slirp4netns or pasta serving
            // one container, as Podman runs them) is that container's namespace.
            let served = n.role == Role::RootlessChild
                && !view.instances.iter().any(|i| i.child_netns == Some(ino));
            if served && n.pasta.is_none() && n.containers.is_empty() {
                let by = n.label.strip_prefix("of ").unwrap_or(&n.label).to_string();
                n.label = format!("{}, served by {by}", c.label());
                n.containers.push(c.clone());
                continue;
            }
            if matches!(n.role, Role::Container | Role::Orphan | Role::Other)
                || (served && n.pasta.is_some())
            {
                n.label = match (&n.pasta, n.containers.is_empty()) {
                    (Some(p), true) => format!("{}, served by pasta {}", c.label(), p.pid),
                    (None, true) => c.label(),
                    (_, false) => format!("{}, {}", n.label, c.label()),
                };
                if n.role != Role::RootlessChild {
                    n.role = Role::Container;
                }
            }
            n.containers.push(c.clone());
        }
    }
}

/// Finds the namespace each pasta process serves, from its command line (see
/// [`crate::pasta`]), and what it copied from the host.
fn pasta_worlds(view: &mut NetView, snap: &Snapshot) {
    for p in &snap.scan.procs {
        // (An empty command line is a process on its way out.)
        if p.cmdline.is_empty() || !crate::pasta::is_pasta(&p.comm, &p.cmdline) {
            continue;
        }
        let args = crate::pasta::parse(&p.cmdline);
        let by_args = if let Some(path) = &args.netns {
            // `/proc/PID/ns/net` of a process that is gone names nothing any more.
            netns_at(snap, path)
        } else if let Some(pid) = args.target_pid {
            snap.scan
                .proc(pid)
                .and_then(|t| t.ns.get(&NsType::Net).copied())
        } else {
            // A command pasta started: its child, in a netns other than pasta's.
            snap.scan
                .procs
                .iter()
                .find(|c| c.ppid == p.pid && c.ns.get(&NsType::Net) != p.ns.get(&NsType::Net))
                .and_then(|c| c.ns.get(&NsType::Net).copied())
        };
        // Where its descriptors are readable (root, or a pasta that stays dumpable), the tap
        // it holds says it best.
        let target = by_args.or_else(|| {
            view.taps
                .iter()
                .find(|t| t.owner.pid == p.pid)
                .map(|t| t.tap.netns)
        });
        let Some(target) = target else {
            view.problems.push(format!(
                "pasta {}: the namespace it serves is not visible from here ({})",
                p.pid,
                p.cmdline.join(" ")
            ));
            continue;
        };
        let own = p.ns.get(&NsType::Net).copied();
        let host_side = own.or(view.host);
        let host_addrs: Vec<(String, String)> = host_side
            .and_then(|h| view.get(h))
            .map(|h| {
                h.interfaces
                    .iter()
                    .filter(|i| i.kind != "loopback")
                    .flat_map(|i| i.addresses.iter().map(move |a| (a.clone(), i.name.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let Some(n) = view.netns.iter_mut().find(|n| n.inode == target) else {
            continue;
        };
        let copied: Vec<(String, String)> = n
            .interfaces
            .iter()
            .flat_map(|i| i.addresses.iter())
            .filter(|a| !a.starts_with("fe80:"))
            .filter_map(|a| host_addrs.iter().find(|(h, _)| h == a).cloned())
            .collect();
        let gateway = n
            .default_routes
            .iter()
            .find_map(|d| d.gateway.clone().filter(|g| !g.contains(':')));
        let (host_address_at, host_loopback_at) = args.host_mappings(gateway.as_deref());
        let (socket_rules, socket_error) = match &args.socket {
            Some(sock) => match pasta_socket(p.pid, sock) {
                Ok(r) => (r, None),
                Err(e) => (Vec::new(), Some(e)),
            },
            None => (Vec::new(), None),
        };
        n.pasta = Some(PastaWorld {
            pid: p.pid,
            comm: p.comm.clone(),
            args,
            netns: own,
            copied,
            host_address_at,
            host_loopback_at,
            socket_rules,
            socket_error,
        });
    }
}

/// Reads a pasta's forwarding tables from its `-c` socket (the socket as the process sees
/// it, through its root, else as given; one second at most: pasta serves one client at a
/// time), and leaves them as they were (the client only looks, then closes).
fn pasta_socket(pid: i32, sock: &Path) -> Result<Vec<SocketRule>, String> {
    use nsnet_api::pesto::{proto, spec};
    let through =
        Path::new(&format!("/proc/{pid}/root")).join(sock.strip_prefix("/").unwrap_or(sock));
    let path = if sock.is_absolute() && through.exists() {
        through
    } else {
        sock.to_path_buf()
    };
    let c = proto::Client::connect_timeout(&path, Some(std::time::Duration::from_secs(1)))
        .map_err(|e| format!("pasta {pid} -c {}: {e}", sock.display()))?;
    let mut out = Vec::new();
    for t in &c.tables {
        for r in &t.table.rules {
            out.push(SocketRule {
                table: t.name.clone(),
                pif: t.pif,
                proto: spec::proto_name(r.proto).to_ascii_lowercase(),
                addr: r.listen_addr().map(|a| a.to_string()),
                first: r.first,
                last: r.last,
                to: r.to,
                target: r.target_addr().map(|a| a.to_string()),
                text: r.to_string().trim_end().to_string(),
            });
        }
    }
    c.close();
    Ok(out)
}

/// Asks each slirp4netns that has an API socket (`--api-socket PATH`, `-a PATH`) for its
/// host forwards (bounded: one second each), and files them under the namespace of its tap.
fn slirp_hostfwds(view: &mut NetView, snap: &Snapshot) {
    let asks: Vec<(u64, i32, PathBuf)> = view
        .taps
        .iter()
        .filter_map(|t| {
            let p = snap.scan.proc(t.owner.pid)?;
            if !is_slirp4netns(&p.comm, &p.cmdline) {
                return None;
            }
            let sock = crate::engines::flag(&p.cmdline, &["--api-socket", "-a"])?;
            Some((t.tap.netns, p.pid, PathBuf::from(sock)))
        })
        .collect();
    if asks.is_empty() {
        return;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    for (ns, pid, sock) in asks {
        let client = nsnet_api::slirp4netns::Client::new(sock.clone());
        let r = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), client.list_hostfwd()).await
        });
        let Some(n) = view.netns.iter_mut().find(|n| n.inode == ns) else {
            continue;
        };
        match r {
            Ok(Ok(entries)) => {
                for e in entries {
                    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                    let port = |k: &str| e[k].as_u64().and_then(|p| u16::try_from(p).ok());
                    if let (Some(hp), Some(gp)) = (port("host_port"), port("guest_port")) {
                        n.hostfwds.push(HostFwd {
                            pid,
                            proto: s("proto"),
                            host_addr: s("host_addr"),
                            host_port: hp,
                            guest_addr: s("guest_addr"),
                            guest_port: gp,
                        });
                    }
                }
            }
            Ok(Err(e)) => {
                n.hostfwd_error = Some(format!("slirp4netns {pid} ({}): {e}", sock.display()))
            }
            Err(_) => {
                n.hostfwd_error = Some(format!(
                    "slirp4netns {pid} ({}): no answer within 1 s",
                    sock.display()
                ))
            }
        }
    }
}

/// Asks each instance's API for its ports (bounded: one second per instance).
fn instance_ports(instances: &mut [Instance]) {
    if instances.is_empty() {
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            for i in instances {
                i.ports_error = Some(format!("cannot start the API client: {e}"));
            }
            return;
        }
    };
    for i in instances {
        let mut sockets = vec![i.state_dir.join("api.sock")];
        if let Some(c) = i.child_pid {
            let rel = i.state_dir.strip_prefix("/").unwrap_or(&i.state_dir);
            sockets.push(
                Path::new(&format!("/proc/{c}/root"))
                    .join(rel)
                    .join("api.sock"),
            );
        }
        let mut last = Some("no api.sock in its state directory".to_string());
        for s in sockets.into_iter().filter(|s| s.exists()) {
            let client = nsnet_api::rest::client::Client::new(&s);
            let r = rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(1), client.list_ports()).await
            });
            match r {
                Ok(Ok(p)) => {
                    i.ports = p;
                    last = None;
                    break;
                }
                // An instance without a port driver has no ports: nothing unreadable.
                Ok(Err(e)) if e.to_string().contains("no PortDriver") => {
                    last = None;
                    break;
                }
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some(format!("{}: no answer within 1 s", s.display())),
            }
        }
        i.ports_error = last;
    }
}

/// The host's netns: PID 1's; else kthreadd's (kernel threads live in the initial namespaces),
/// which root can read even where PID 1 is hidden; else, rootless, our own.
fn host_netns(snap: &Snapshot, own: Option<u64>) -> (Option<u64>, String) {
    if let Some(&h) = snap.scan.proc(1).and_then(|p| p.ns.get(&NsType::Net)) {
        return (Some(h), "the network namespace of PID 1".into());
    }
    if let Some(p) = snap
        .scan
        .proc(2)
        .filter(|p| p.comm == "kthreadd" && p.ppid == 0)
        && let Some(&h) = p.ns.get(&NsType::Net)
    {
        return (Some(h), "the initial network namespace (kthreadd's)".into());
    }
    (
        own,
        "this process's network namespace (PID 1's is not readable)".into(),
    )
}

fn veth_pairs(
    reads: &BTreeMap<u64, Read>,
    nsids: &BTreeMap<u64, BTreeMap<i32, u64>>,
) -> Vec<VethPair> {
    // Where a veth's peer lives, as seen from its own namespace.
    let peer_of = |ino: u64, l: &Link| -> Option<(u64, u32)> {
        let idx = l.link?;
        let ns = match l.link_netnsid {
            Some(id) => *nsids.get(&ino)?.get(&id)?,
            None => ino,
        };
        Some((ns, idx))
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (&ino, r) in reads {
        for l in r.links.iter().filter(|l| l.kind == "veth") {
            let a = Endpoint {
                netns: ino,
                ifindex: l.index,
                name: l.name.clone(),
            };
            let Some((pns, pidx)) = peer_of(ino, l) else {
                continue;
            };
            let Some(p) = reads
                .get(&pns)
                .and_then(|pr| pr.links.iter().find(|x| x.index == pidx))
            else {
                continue;
            };
            let b = Endpoint {
                netns: pns,
                ifindex: p.index,
                name: p.name.clone(),
            };
            let verified = p.kind == "veth" && peer_of(pns, p) == Some((ino, l.index));
            let key = if a < b {
                (a.clone(), b.clone())
            } else {
                (b.clone(), a.clone())
            };
            if seen.insert(key.clone()) {
                out.push(VethPair {
                    a: key.0,
                    b: key.1,
                    verified,
                });
            } else if !verified {
                // Seen verified from the other side but not from this one: keep the doubt.
                if let Some(pair) = out.iter_mut().find(|x| x.a == key.0 && x.b == key.1) {
                    pair.verified = false;
                }
            }
        }
    }
    out
}

/// The netns of the tun device behind fd `fd` of `pid`, asked of the device itself.
fn tap_netns(pid: i32, fd: i32) -> std::io::Result<u64> {
    // SAFETY: plain system calls; every returned descriptor is owned right away.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let dup = OwnedFd::from_raw_fd(dup as i32);
        // TUNGETDEVNETNS = _IO('T', 227)
        let ns = libc::ioctl(dup.as_raw_fd(), 0x54e3);
        if ns < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let ns = OwnedFd::from_raw_fd(ns);
        nsfs::inode(ns.as_fd())
    }
}

fn taps(snap: &Snapshot, reads: &BTreeMap<u64, Read>, problems: &mut Vec<String>) -> Vec<TapLink> {
    let mut out = Vec::new();
    for p in &snap.scan.procs {
        for (fd, iff) in &p.tun_fds {
            let by_device = tap_netns(p.pid, *fd);
            let (ns, how) = match &by_device {
                Ok(ns) => (Some(*ns), "tungetdevnetns"),
                Err(_) => {
                    let named: Vec<u64> = reads
                        .iter()
                        .filter(|(_, r)| r.links.iter().any(|l| &l.name == iff && l.kind == "tun"))
                        .map(|(i, _)| *i)
                        .collect();
                    ((named.len() == 1).then(|| named[0]), "name")
                }
            };
            let Some(ns) = ns else {
                problems.push(format!(
                    "tap {iff} of pid {} ({}): its namespace is unknown ({}; its name is not unique)",
                    p.pid,
                    p.comm,
                    by_device.err().map(|e| e.to_string()).unwrap_or_default()
                ));
                continue;
            };
            let Some(link) = reads
                .get(&ns)
                .and_then(|r| r.links.iter().find(|l| &l.name == iff))
            else {
                problems.push(format!(
                    "tap {iff} of pid {} ({}) is in net:[{ns}], which could not be read",
                    p.pid, p.comm
                ));
                continue;
            };
            out.push(TapLink {
                tap: Endpoint {
                    netns: ns,
                    ifindex: link.index,
                    name: link.name.clone(),
                },
                owner: TapOwner {
                    pid: p.pid,
                    comm: p.comm.clone(),
                    fd: *fd,
                    netns: p.ns.get(&NsType::Net).copied(),
                    resolved_by: how,
                },
            });
        }
    }
    out
}

/// Reads a file as process `pid` sees it (through its root), else as we see it.
fn read_as(pid: i32, path: &Path) -> Option<String> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    std::fs::read_to_string(Path::new(&format!("/proc/{pid}/root")).join(rel))
        .or_else(|_| std::fs::read_to_string(path))
        .ok()
}

/// The running rootless instances (nsnet or RootlessKit) and their child and parent netns.
pub fn instances(snap: &Snapshot) -> Vec<Instance> {
    // State directories, each with a process that can see it.
    let mut dirs: BTreeMap<PathBuf, i32> = BTreeMap::new();
    for p in &snap.scan.procs {
        if let Some(d) = &p.state_dir {
            dirs.entry(d.clone()).or_insert(p.pid);
        }
    }
    for m in &snap.scan.mounts {
        if m.ns.kind == NsType::Net
            && m.path.file_name().is_some_and(|f| f == "netns")
            && let Some(dir) = m.path.parent()
            && read_as(m.via_pid, &dir.join("child_pid")).is_some()
        {
            dirs.entry(dir.to_path_buf()).or_insert(m.via_pid);
        }
    }
    let mut out = Vec::new();
    for (dir, via) in dirs {
        let child_pid: Option<i32> =
            read_as(via, &dir.join("child_pid")).and_then(|s| s.trim().parse().ok());
        let child = child_pid.and_then(|c| snap.scan.proc(c));
        let Some(child) = child else {
            // No live child: a stale or foreign directory explains nothing.
            continue;
        };
        // After a crash the pid may have been reused. A launcher's child carries the state
        // dir in its environment, or else runs in a user namespace below its parent's (an
        // nsnet parent that publishes ports joins its child's user namespace, so the
        // environment is the test that holds for every launcher).
        let parent_user = snap
            .scan
            .proc(child.ppid)
            .and_then(|p| p.ns.get(&NsType::User));
        let names_dir = child.state_dir.as_deref() == Some(dir.as_path());
        if !names_dir && (parent_user.is_none() || parent_user == child.ns.get(&NsType::User)) {
            continue;
        }
        let child_mnt = child.ns.get(&NsType::Mnt).copied();
        let netns_path = dir.join("netns");
        let mut bound: Vec<_> = snap
            .scan
            .mounts
            .iter()
            .filter(|m| m.ns.kind == NsType::Net && m.path == netns_path)
            .collect();
        bound.sort_by_key(|m| Some(m.mntns) != child_mnt);
        let parent = snap.scan.proc(child.ppid);
        let parent_netns = parent.and_then(|p| p.ns.get(&NsType::Net).copied());
        let (child_netns, detached) = match bound.first() {
            Some(m) => (Some(m.ns.inode), true),
            None => {
                let own = child.ns.get(&NsType::Net).copied();
                (own.filter(|o| Some(*o) != parent_netns), false)
            }
        };
        out.push(Instance {
            state_dir: dir,
            child_pid,
            parent_pid: parent.map(|p| p.pid),
            parent_comm: parent.map(|p| p.comm.clone()),
            child_netns,
            parent_netns,
            detached,
            ports: Vec::new(),
            ports_error: None,
        });
    }
    out
}

fn assign_roles(view: &mut NetView, snap: &Snapshot) {
    let mut roles: BTreeMap<u64, (Role, String)> = BTreeMap::new();
    if let Some(h) = view.host {
        roles.insert(h, (Role::Host, view.host_basis.clone()));
    }
    let mut instance_users: BTreeSet<u64> = BTreeSet::new();
    for i in &view.instances {
        let launcher = match (&i.parent_comm, i.parent_pid) {
            (Some(c), Some(p)) => format!("{c} {p}"),
            _ => "launcher".into(),
        };
        if let Some(c) = i.child_netns {
            let how = if i.detached { "detached, " } else { "" };
            roles.insert(
                c,
                (
                    Role::RootlessChild,
                    format!("of {launcher} ({how}state {})", i.state_dir.display()),
                ),
            );
            if let Some(u) = snap
                .get(NsId {
                    kind: NsType::Net,
                    inode: c,
                })
                .and_then(|n| n.owner.userns)
            {
                instance_users.insert(u);
            }
        }
        if let Some(p) = i.parent_netns {
            roles
                .entry(p)
                .or_insert((Role::Parent, format!("where {launcher} runs")));
        }
    }
    // A namespace pasta serves is a rootless child by pasta's command line (rootless, its
    // tap descriptor cannot be seen: pasta is not dumpable).
    for n in &view.netns {
        if let Some(p) = &n.pasta
            && !roles.contains_key(&n.inode)
        {
            roles.insert(
                n.inode,
                (Role::RootlessChild, format!("of pasta {}", p.pid)),
            );
            if let Some(u) = n.owner.userns {
                instance_users.insert(u);
            }
            if let Some(o) = p.netns {
                roles
                    .entry(o)
                    .or_insert((Role::Parent, format!("where pasta {} runs", p.pid)));
            }
        }
    }
    // A tap whose owner lives in another netns is a user-mode network's link from that
    // netns into this one (slirp4netns, pasta, nsnet's builtin stack): a rootless child even
    // when no launcher state directory names it.
    for t in &view.taps {
        if let Some(o) = t.owner.netns
            && o != t.tap.netns
            && !roles.contains_key(&t.tap.netns)
        {
            roles.insert(
                t.tap.netns,
                (
                    Role::RootlessChild,
                    format!("of {} {} (tap {})", t.owner.comm, t.owner.pid, t.tap.name),
                ),
            );
            if let Some(u) = snap
                .get(NsId {
                    kind: NsType::Net,
                    inode: t.tap.netns,
                })
                .and_then(|n| n.owner.userns)
            {
                instance_users.insert(u);
            }
        }
    }
    for t in &view.taps {
        if let Some(o) = t.owner.netns
            && roles
                .get(&t.tap.netns)
                .is_some_and(|r| r.0 == Role::RootlessChild)
        {
            roles.entry(o).or_insert((
                Role::Parent,
                format!("where {} {} runs", t.owner.comm, t.owner.pid),
            ));
        }
    }
    let veth_linked: BTreeSet<u64> = view
        .veth_pairs
        .iter()
        .filter(|p| p.a.netns != p.b.netns)
        .flat_map(|p| [p.a.netns, p.b.netns])
        .collect();
    for n in &mut view.netns {
        let (role, label) = match roles.remove(&n.inode) {
            Some(r) => r,
            None => {
                let in_instance = n.owner.userns.is_some_and(|u| instance_users.contains(&u));
                let role =
                    if veth_linked.contains(&n.inode) || (in_instance && !n.processes.is_empty()) {
                        Role::Container
                    } else if n.processes.is_empty() {
                        Role::Orphan
                    } else {
                        Role::Other
                    };
                (role, holder_label(n))
            }
        };
        n.role = role;
        n.label = label;
    }
}

fn holder_label(n: &NetNs) -> String {
    if let Some(p) = n.processes.first() {
        return format!("{} {}", p.comm, p.pid);
    }
    // A bind mount names it best (`ip netns add` and CNI name the file after the container).
    if let Some(path) = n.held_by.iter().find_map(|h| match h {
        Holder::BindMount { path, .. } => Some(path),
        _ => None,
    }) {
        return path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
    }
    match n.held_by.first() {
        Some(Holder::Fd { pid, comm, fd }) => format!("fd {fd} of {comm} {pid}"),
        Some(Holder::Thread { pid, tid, comm }) => format!("thread {tid} of {comm} {pid}"),
        Some(Holder::Owner { of }) => format!("owner of {of}"),
        _ => String::new(),
    }
}
