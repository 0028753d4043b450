//! Attaching a network namespace to a network, detaching it, and collecting what crashes
//! left behind (`gc`, and `reclaim`, the part of it a CNI ADD runs first).
//!
//! Attach, under the network's IPAM lock (so the bridge, the address and the links of one
//! network are changed by one process at a time):
//! 1. record the address as `attaching` with our pid (before any link exists, so a crash at
//!    any later point leaves a record that names the process and the host veth to remove);
//! 2. make sure the bridge exists, is up and holds the gateway (nft table synced when the
//!    bridge is new: a new child netns has neither);
//! 3. create the veth pair with the container end created *in* the container netns under its
//!    final name, host end on the bridge with hairpin mode;
//! 4. in the container netns (a netlink socket opened there): `lo` up, address, link up,
//!    default route via the gateway unless the network is internal (on IPv6 networks also
//!    the IPv6 address, `nodad` so it is usable at once, and the IPv6 default route via
//!    the bridge's `::1`);
//! 5. mark the record `attached`.
//!
//! Any failure undoes steps 3–1 (deleting the host veth takes its peer along). The host veth
//! name is a hash of network, container and interface, so a later run finds it again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use nsnet_netlink::Netlink;
use serde::{Deserialize, Serialize};

use crate::ipam::{Allocation, Ipam, State};
use crate::{Error, Network, Result, Store, nsfile};

/// What to attach where.
#[derive(Debug, Clone)]
pub struct AttachRequest<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    /// The container's network namespace file (`/proc/PID/ns/net`, a bind mount, …).
    pub netns: &'a Path,
    /// The interface name inside the container (`eth0`).
    pub ifname: &'a str,
    pub static_ip: Option<IpAddr>,
}

/// The result of an attach (what a runtime writes into its container state, and what CNI
/// reports).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub network: String,
    pub bridge: String,
    pub host_veth: String,
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    /// The IPv6 address (a /64) on IPv6 networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// The default route's gateway (`None` on internal networks, which have no default route).
    pub gateway: Option<Ipv4Addr>,
    /// The container interface's MAC address.
    pub mac: String,
    pub mtu: u32,
    pub container_id: String,
    pub netns: PathBuf,
}

/// What `gc` removed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// `network ip container_id (reason)` per released address.
    pub released: Vec<String>,
    /// Host-side links deleted (veths of released or unrecorded attachments).
    pub links_removed: Vec<String>,
    /// Leftover lock-free files (dangling keys, temporaries of dead processes).
    pub files_removed: usize,
}

/// The host veth name of an attachment: `veth` + 11 hex digits of FNV-1a over network,
/// container and interface (15 bytes, the kernel's limit). Deterministic, so detach and gc
/// find the link without a record, and unique enough (44 bits) for one child netns.
pub fn host_veth_name(network: &str, container_id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network
        .bytes()
        .chain([0])
        .chain(container_id.bytes())
        .chain([0])
        .chain(ifname.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("veth{:011x}", h >> 20)
}

pub(crate) fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0', ':']) || name == "lo" {
        return Err(Error::Invalid(format!(
            "invalid interface name {name:?} (1-15 characters, no '/', ':' or spaces, not lo)"
        )));
    }
    Ok(())
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const IP6_FORWARD: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// Turns on forwarding (`path`: IPv4's or IPv6's) in the current netns (the bridge → uplink
/// NAT path needs it). `/proc/sys/net` answers for the netns of the thread that opens it.
fn forward_on(path: &'static str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|source| Error::Sysctl { path, source })
}

/// How one attachment is wired beyond what the network file says (CNI configs choose these;
/// nsnet's own networks derive them).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub net: Network,
    /// Routes in the container: destination and optional gateway.
    pub routes: Vec<(crate::Subnet, Option<Ipv4Addr>)>,
    /// IPv6 routes in the container (IPv6 networks): destination, prefix length, gateway.
    pub routes6: Vec<(Ipv6Addr, u8, Ipv6Addr)>,
    /// Whether the bridge holds the gateway address (CNI `isGateway`).
    pub gateway_on_bridge: bool,
    pub hairpin: bool,
}

impl Plan {
    pub(crate) fn of(net: Network) -> Plan {
        let routes = if net.internal {
            Vec::new()
        } else {
            vec![(
                crate::Subnet::new(Ipv4Addr::UNSPECIFIED, 0).expect("valid"),
                Some(net.gateway),
            )]
        };
        let routes6 = net
            .subnet6
            .filter(|_| !net.internal)
            .map(|s| (Ipv6Addr::UNSPECIFIED, 0, s.gateway()))
            .into_iter()
            .collect();
        Plan {
            net,
            routes,
            routes6,
            gateway_on_bridge: true,
            hairpin: true,
        }
    }
}

/// The bridge of `net` in the current netns, created (up, with the gateway address) if absent.
fn ensure_bridge(store: &Store, nl: &mut Netlink, plan: &Plan) -> Result<u32> {
    let net = &plan.net;
    if let Some(l) = nl.link(&net.bridge)? {
        if !l.up {
            nl.link_up(l.index, None)?;
        }
        return Ok(l.index);
    }
    match nl.add_bridge(&net.bridge, Some(net.mtu)) {
        Ok(()) => {}
        // Another network's attach raced us to it (different lock): fine, it is the same.
        Err(nsnet_netlink::Error::Request { source, .. })
            if source.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let l = nl
        .link(&net.bridge)?
        .ok_or_else(|| nsnet_netlink::Error::NoSuchLink(net.bridge.clone()))?;
    if plan.gateway_on_bridge {
        match nl.add_address_v4(l.index, net.gateway, net.subnet.prefix_len()) {
            Ok(()) => {}
            Err(nsnet_netlink::Error::Request { source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(s6) = net.subnet6 {
            match nl.add_address_v6(l.index, s6.gateway(), s6.prefix_len()) {
                Ok(()) => {}
                Err(nsnet_netlink::Error::Request { source, .. })
                    if source.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    nl.link_up(l.index, None)?;
    forward_on(IP_FORWARD)?;
    if net.subnet6.is_some() {
        forward_on(IP6_FORWARD)?;
    }
    crate::nft::sync(store)?;
    Ok(l.index)
}

/// Attaches the network namespace `req.netns` to `req.network` (see the module comment).
pub fn attach(store: &Store, req: &AttachRequest) -> Result<Attachment> {
    let want = match req.static_ip {
        None => None,
        Some(IpAddr::V4(v4)) => Some(v4),
        Some(IpAddr::V6(v6)) => {
            return Err(Error::Invalid(format!(
                "{v6}: static IPv6 addresses are not supported (on IPv6 networks the IPv6 address follows the IPv4 one; pass --ip with that)"
            )));
        }
    };
    let net = crate::inspect_network(store, req.network)?;
    attach_with(store, &Plan::of(net), req, want)
}

/// [`attach`] with an explicit plan (the CNI personality's entry).
pub(crate) fn attach_with(
    store: &Store,
    plan: &Plan,
    req: &AttachRequest,
    want: Option<Ipv4Addr>,
) -> Result<Attachment> {
    check_ifname(req.ifname)?;
    if req.container_id.is_empty() || req.container_id.contains(['\n', '\0']) {
        return Err(Error::Invalid(format!(
            "invalid container id {:?}",
            req.container_id
        )));
    }
    let netns = nsfile::open(req.netns)?;
    let net = &plan.net;
    let ipam = Ipam::lock(store, &net.name)?;
    // The network may have been removed while we waited for the lock.
    if crate::network::read_network(store, &net.name)?.is_none() {
        return Err(Error::NoSuchNetwork(net.name.clone()));
    }
    let key = host_veth_name(&net.name, req.container_id, req.ifname);
    let mut nl = Netlink::open()?;
    if let Some(old) = ipam.by_key(&key)? {
        match judge(&old) {
            None => {
                return Err(Error::AlreadyAttached {
                    container: old.container_id,
                    network: net.name.clone(),
                    ifname: old.ifname,
                    ip: old.ip,
                });
            }
            Some(_) => {
                nl.delete_link_named(&old.host_veth)?;
                ipam.release(&old)?;
            }
        }
    }
    let rec = Allocation {
        ip: Ipv4Addr::UNSPECIFIED,
        ip6: None,
        container_id: req.container_id.to_string(),
        netns: req.netns.to_path_buf(),
        netns_ino: netns.ino,
        ifname: req.ifname.to_string(),
        host_veth: key.clone(),
        state: State::Attaching,
        pid: std::process::id(),
    };
    let mut rec = ipam.allocate(net.subnet, net.gateway, &|ip| net.ip6_for(ip), want, rec)?;
    let built = build(store, &mut nl, plan, &rec, &netns.fd);
    match built {
        Ok(mac) => {
            rec.state = State::Attached;
            if let Err(e) = ipam.update(&rec) {
                let _ = nl.delete_link_named(&key);
                let _ = ipam.release(&rec);
                return Err(e);
            }
            Ok(Attachment {
                network: net.name.clone(),
                bridge: net.bridge.clone(),
                host_veth: key,
                ifname: req.ifname.to_string(),
                ip: rec.ip,
                prefix_len: net.subnet.prefix_len(),
                ip6: rec.ip6,
                gateway: plan
                    .routes
                    .iter()
                    .find(|(d, _)| d.prefix_len() == 0)
                    .and_then(|(_, g)| *g),
                mac,
                mtu: net.mtu,
                container_id: rec.container_id,
                netns: rec.netns,
            })
        }
        Err(e) => {
            let _ = nl.delete_link_named(&key);
            let _ = ipam.release(&rec);
            Err(e)
        }
    }
}

/// Steps 2–4; returns the container interface's MAC.
fn build(
    store: &Store,
    nl: &mut Netlink,
    plan: &Plan,
    rec: &Allocation,
    netns: &std::os::fd::OwnedFd,
) -> Result<String> {
    use std::os::fd::AsFd;
    let net = &plan.net;
    let bridge = ensure_bridge(store, nl, plan)?;
    nl.add_veth(&rec.host_veth, &rec.ifname, net.mtu, Some(netns.as_fd()))
        .map_err(|e| match &e {
            nsnet_netlink::Error::Request { source, .. }
                if source.raw_os_error() == Some(libc::EEXIST) =>
            {
                Error::Invalid(format!(
                    "cannot create {} in {} or {} here: a link with that name exists",
                    rec.ifname,
                    rec.netns.display(),
                    rec.host_veth
                ))
            }
            _ => e.into(),
        })?;
    let host = nl
        .link(&rec.host_veth)?
        .ok_or_else(|| nsnet_netlink::Error::NoSuchLink(rec.host_veth.clone()))?;
    nl.set_master(host.index, bridge)?;
    if plan.hairpin {
        nl.set_hairpin(host.index, true)?;
    }
    nl.link_up(host.index, None)?;
    let mut inner = Netlink::open_in(netns.as_fd())?;
    if let Some(lo) = inner.link("lo")?
        && !lo.up
    {
        inner.link_up(lo.index, None)?;
    }
    let ctr = inner
        .link(&rec.ifname)?
        .ok_or_else(|| nsnet_netlink::Error::NoSuchLink(rec.ifname.clone()))?;
    inner.add_address_v4(ctr.index, rec.ip, net.subnet.prefix_len())?;
    inner.link_up(ctr.index, None)?;
    if let Some(ip6) = rec.ip6 {
        inner.add_address_v6(ctr.index, ip6, 64)?;
    }
    for (dst, gw) in &plan.routes {
        inner.add_route_v4(ctr.index, dst.base(), dst.prefix_len(), *gw)?;
    }
    if rec.ip6.is_some() {
        for (dst, len, gw) in &plan.routes6 {
            inner.add_route_v6(ctr.index, *dst, *len, *gw)?;
        }
    }
    Ok(ctr.mac)
}

/// Why an allocation is stale, or `None` while its owner lives.
fn judge(a: &Allocation) -> Option<&'static str> {
    if a.state == State::Attaching && !(a.pid == std::process::id() || pid_alive(a.pid as i32)) {
        return Some("attach interrupted");
    }
    if !nsfile::still(&a.netns, a.netns_ino) {
        return Some("netns gone");
    }
    None
}

/// Detaches `container_id`'s interface `ifname` from `network`: deletes the veth pair and
/// frees the address. Idempotent: detaching what is not attached succeeds. The pair is found
/// by its host end (named from network, container and interface), whose deletion takes the
/// container end with it wherever it is, so `netns` is not needed; runtimes pass it when they
/// know it, and it is checked to be a netns when given (a typo then fails loudly).
pub fn detach(
    store: &Store,
    network: &str,
    container_id: &str,
    netns: Option<&Path>,
    ifname: &str,
) -> Result<()> {
    check_ifname(ifname)?;
    crate::network::check_name(network)?;
    if let Some(p) = netns
        && p.exists()
    {
        nsfile::open(p)?;
    }
    let key = host_veth_name(network, container_id, ifname);
    let mut nl = Netlink::open()?;
    if !store.ipam_dir(network).exists() {
        nl.delete_link_named(&key)?;
        return Ok(());
    }
    let ipam = Ipam::lock(store, network)?;
    let rec = ipam.by_key(&key)?;
    nl.delete_link_named(&key)?;
    if let Some(rec) = rec {
        ipam.release(&rec)?;
    }
    Ok(())
}

/// [`gc_with`] where a container counts as alive while its netns does.
pub fn gc(store: &Store) -> Result<GcReport> {
    gc_with(store, &|_| true)
}

/// Releases every allocation whose netns is gone (or is now another namespace), whose attach
/// was interrupted (dead `attaching` process), or whose container `alive` says is gone;
/// deletes their host veths and the host veths of this store's networks that no record
/// owns; and rewrites the nft table (a crash may have stopped the first attach before it).
/// Acts on the current netns.
pub fn gc_with(store: &Store, alive: &dyn Fn(&Allocation) -> bool) -> Result<GcReport> {
    gc_networks(store, None, alive)
}

/// [`gc_with`] over one network (`only`) or all.
pub(crate) fn gc_networks(
    store: &Store,
    only: Option<&str>,
    alive: &dyn Fn(&Allocation) -> bool,
) -> Result<GcReport> {
    let mut report = GcReport::default();
    let mut nl = Netlink::open()?;
    let links = nl.links()?;
    for net in crate::network::stored_networks(store)? {
        if only.is_some_and(|o| o != net.name) {
            continue;
        }
        let ipam = Ipam::lock(store, &net.name)?;
        let kept = release_stale(&ipam, &mut nl, &net.name, alive, &mut report)?;
        report.files_removed += ipam.sweep()?;
        // Ports of this network's bridge named like ours, with no record: a crash between
        // a release and the link deletion, or a store that was wiped.
        let bridge = links.iter().find(|l| l.name == net.bridge).map(|l| l.index);
        for l in &links {
            if bridge.is_some()
                && l.master == bridge
                && l.name.starts_with("veth")
                && l.name.len() == 15
                && !kept.contains(&l.name)
                && nl.delete_link_named(&l.name)?
            {
                report.links_removed.push(l.name.clone());
            }
        }
    }
    crate::nft::sync(store)?;
    Ok(report)
}

/// Releases the allocations of one locked network that [`judge`] or `alive` condemns (and
/// deletes their host veths); returns the host veths of those kept.
fn release_stale(
    ipam: &Ipam,
    nl: &mut Netlink,
    network: &str,
    alive: &dyn Fn(&Allocation) -> bool,
    report: &mut GcReport,
) -> Result<std::collections::HashSet<String>> {
    let mut kept = std::collections::HashSet::new();
    for a in ipam.allocations()? {
        let why = judge(&a).or_else(|| (!alive(&a)).then_some("container gone"));
        match why {
            None => {
                kept.insert(a.host_veth.clone());
            }
            Some(why) => {
                if nl.delete_link_named(&a.host_veth)? {
                    report.links_removed.push(a.host_veth.clone());
                }
                ipam.release(&a)?;
                report
                    .released
                    .push(format!("{network} {} {} ({why})", a.ip, a.container_id));
            }
        }
    }
    Ok(kept)
}

/// The reconciliation a CNI ADD runs before it allocates: releases the allocations of
/// `network` whose netns is gone or is another namespace now, or whose attach was interrupted
/// — what DEL would have freed had the runtime not died first (containerd never calls GC, so
/// nothing else would). The rule is [`gc`]'s, not "the host veth is missing": a netns that
/// still exists keeps its veth pair, so the veth adds no evidence, and a store shared by two
/// instances' child netns (the default data directory) holds veths this netns cannot see.
/// Unlike `gc` it leaves unowned bridge ports and the nft table alone (a GC's job), so an ADD
/// costs a read of the network's records and nothing more while nothing leaked.
pub(crate) fn reclaim(store: &Store, network: &str) -> Result<GcReport> {
    let mut report = GcReport::default();
    if !store.ipam_dir(network).exists() {
        return Ok(report);
    }
    let ipam = Ipam::lock(store, network)?;
    let mut nl = Netlink::open()?;
    release_stale(&ipam, &mut nl, network, &|_| true, &mut report)?;
    report.files_removed = ipam.sweep()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_are_stable_short_and_distinct() {
        let a = host_veth_name("bridge", "c1", "eth0");
        assert_eq!(a, host_veth_name("bridge", "c1", "eth0"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth"));
        assert_ne!(a, host_veth_name("bridge", "c2", "eth0"));
        assert_ne!(a, host_veth_name("bridge", "c1", "eth1"));
        assert_ne!(a, host_veth_name("other", "c1", "eth0"));
        // The separators keep ("ab","c") and ("a","bc") apart.
        assert_ne!(
            host_veth_name("n", "ab", "c"),
            host_veth_name("n", "a", "bc")
        );
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("eth0").is_ok());
        for bad in ["", "lo", "a/b", "x y", "sixteen-chars-xx"] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dead_attaching_processes_and_gone_netns_make_allocations_stale() {
        let own = nsfile::open(Path::new("/proc/self/ns/net")).unwrap();
        let mut a = Allocation {
            ip: Ipv4Addr::new(10, 4, 0, 2),
            ip6: None,
            container_id: "c".into(),
            netns: "/proc/self/ns/net".into(),
            netns_ino: own.ino,
            ifname: "eth0".into(),
            host_veth: "vethx".into(),
            state: State::Attached,
            pid: 999_999_999,
        };
        assert_eq!(judge(&a), None);
        a.state = State::Attaching;
        assert_eq!(judge(&a), Some("attach interrupted"));
        a.pid = std::process::id();
        assert_eq!(judge(&a), None);
        a.netns_ino += 1;
        assert_eq!(judge(&a), Some("netns gone"));
        a.netns = "/nonexistent".into();
        assert_eq!(judge(&a), Some("netns gone"));
    }
}
