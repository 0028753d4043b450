//! Links, addresses, routes and tap devices: the thin kernel-configuration layer of nsnet.
//!
//! Everything here acts on the network namespace of the *calling thread*: callers that
//! configure a child namespace run these functions on a thread that lives there (nsnet-ns's
//! netns thread, or a forked helper in tests). This crate never decides addresses or policy;
//! the launcher and the stack hand it concrete values.
//!
//! Design:
//! - Tap devices cannot be created over netlink: [`create_tap`] uses the `TUNSETIFF` ioctl on
//!   `/dev/net/tun`, with `IFF_VNET_HDR` and `TUNSETOFFLOAD` so that 64 KiB TSO segments with
//!   partial checksums cross the tap (the user-mode stack reads and writes a 10-byte
//!   `virtio_net_hdr` before every frame; see nsnet-stack's `wire` module).
//! - Addresses, routes and link state go over a synchronous rtnetlink socket
//!   ([`Netlink`]): one request, one ACK, built with netlink-packet-route's message types. No
//!   async runtime, because these run once at start-up on a thread pinned to a namespace.
//!   Reading back (links, addresses, default routes, nsids) goes over the same socket type
//!   (`dump.rs`), so the workspace has one netlink client.

mod dump;
mod links;

pub use dump::{Addr, DefaultRoute, RouteLookup};
pub use links::Link;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage, RulePortRange};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Errors, each naming the operation and the object it acted on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("open /dev/net/tun: {0}")]
    OpenTun(#[source] io::Error),
    #[error(
        "open /dev/net/tun: permission denied (the device is mode 0600 here; most distributions ship 0666: `chmod 0666 /dev/net/tun` as root)"
    )]
    TunPermission,
    #[error("create tap {name}: {source}")]
    CreateTap {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("set offloads on tap {name}: {source}")]
    TapOffload {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("interface name {0:?} is empty or longer than 15 bytes")]
    BadName(String),
    #[error("no interface named {0}")]
    NoSuchLink(String),
    #[error("open rtnetlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("enter the network namespace {path}: {source}")]
    EnterNetns {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the tap thread for {0} panicked")]
    TapThread(String),
    #[error("{op} {object}: {source}")]
    Request {
        op: &'static str,
        object: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;

fn ifreq(name: &str) -> Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(Error::BadName(name.to_string()));
    }
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(ifr)
}

/// Creates the tap device `name` in the calling thread's network namespace and returns its
/// file descriptor (non-blocking, close-on-exec), opened with `IFF_TAP | IFF_NO_PI |
/// IFF_VNET_HDR` and with checksum and TSO (v4 and v6) offloads enabled.
pub fn create_tap(name: &str) -> Result<OwnedFd> {
    let mut ifr = ifreq(name)?;
    // SAFETY: a NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EACCES) {
            Error::TunPermission
        } else {
            Error::OpenTun(e)
        });
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    // SAFETY: TUNSETIFF reads and writes the ifreq we own.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut ifr) } < 0 {
        return Err(Error::CreateTap {
            name: name.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    let offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    // SAFETY: TUNSETOFFLOAD takes its argument by value.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, offloads as libc::c_ulong) } < 0 {
        return Err(Error::TapOffload {
            name: name.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

/// The index of the link `name` in the calling thread's network namespace.
pub fn link_index(name: &str) -> Result<u32> {
    let cname = std::ffi::CString::new(name).map_err(|_| Error::BadName(name.to_string()))?;
    // SAFETY: a valid C string.
    let idx = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if idx == 0 {
        return Err(Error::NoSuchLink(name.to_string()));
    }
    Ok(idx)
}

/// A synchronous rtnetlink socket bound in the calling thread's network namespace.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(Error::Socket)?;
        sock.bind_auto().map_err(Error::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(Error::Socket)?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends one creating request (`NLM_F_CREATE | NLM_F_EXCL`) and waits for its ACK (or the
    /// kernel's error).
    fn request(
        &mut self,
        op: &'static str,
        object: String,
        msg: RouteNetlinkMessage,
    ) -> Result<()> {
        self.request_with(NLM_F_CREATE | NLM_F_EXCL, op, object, msg)
    }

    /// Sends one request with `flags` besides `NLM_F_REQUEST | NLM_F_ACK` and waits for its ACK.
    fn request_with(
        &mut self,
        flags: u16,
        op: &'static str,
        object: String,
        msg: RouteNetlinkMessage,
    ) -> Result<()> {
        self.exchange(op, object, msg, NLM_F_REQUEST | NLM_F_ACK | flags)
            .map(drop)
    }

    /// Sends one request with `flags` and collects the replies until its ACK, its error, or
    /// the end of a dump.
    fn exchange(
        &mut self,
        op: &'static str,
        object: String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let err = |source: io::Error| Error::Request {
            op,
            object: object.clone(),
            source,
        };
        self.seq += 1;
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        req.header.sequence_number = self.seq;
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(err)?;
        let mut rx = vec![0u8; 65536];
        let mut out = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut rx[..], 0).map_err(err)?;
            let mut off = 0;
            while off < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[off..n])
                    .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    match reply.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(out),
                                Some(code) => Err(err(io::Error::from_raw_os_error(-code.get()))),
                            };
                        }
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::InnerMessage(m) => {
                            out.push(m);
                            if flags & NLM_F_ACK == 0 && flags & NLM_F_DUMP != NLM_F_DUMP {
                                return Ok(out);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// `ip link set INDEX [mtu MTU] up`.
    pub fn link_up(&mut self, index: u32, mtu: Option<u32>) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags |= LinkFlags::Up;
        msg.header.change_mask |= LinkFlags::Up;
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        self.request(
            "set up link",
            format!("index {index}"),
            RouteNetlinkMessage::SetLink(msg),
        )
    }

    /// `ip link set INDEX address MAC`.
    pub fn set_link_address(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.request(
            "set link address",
            format!(
                "index {index} to {}",
                mac.map(|b| format!("{b:02x}")).join(":")
            ),
            RouteNetlinkMessage::SetLink(msg),
        )
    }

    /// `ip addr add ADDR/PREFIX dev INDEX`.
    pub fn add_address_v4(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        if prefix < 31 {
            let brd = Ipv4Addr::from(u32::from(addr) | (u32::MAX >> prefix));
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
        self.request(
            "add address",
            format!("{addr}/{prefix} on index {index}"),
            RouteNetlinkMessage::NewAddress(msg),
        )
    }

    /// `ip addr add ADDR/PREFIX dev INDEX nodad`: usable at once, without duplicate address
    /// detection (nobody else is on a tap).
    pub fn add_address_v6(&mut self, index: u32, addr: Ipv6Addr, prefix: u8) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.header.flags = AddressHeaderFlags::Nodad;
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        self.request(
            "add address",
            format!("{addr}/{prefix} on index {index}"),
            RouteNetlinkMessage::NewAddress(msg),
        )
    }

    /// `ip -6 route add default via GATEWAY dev INDEX`.
    pub fn add_default_route_v6(&mut self, index: u32, gateway: Ipv6Addr) -> Result<()> {
        self.add_route_v6(index, Ipv6Addr::UNSPECIFIED, 0, gateway)
    }

    /// `ip -6 route add DST/PREFIX via GATEWAY dev INDEX`.
    pub fn add_route_v6(
        &mut self,
        index: u32,
        dst: Ipv6Addr,
        prefix: u8,
        gateway: Ipv6Addr,
    ) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet6;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.header.destination_prefix_length = prefix;
        if prefix > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet6(dst)));
        }
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet6(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            "add route",
            if prefix == 0 {
                format!("default via {gateway}")
            } else {
                format!("{dst}/{prefix} via {gateway}")
            },
            RouteNetlinkMessage::NewRoute(msg),
        )
    }

    /// `ip route add default via GATEWAY dev INDEX`.
    pub fn add_default_route_v4(&mut self, index: u32, gateway: Ipv4Addr) -> Result<()> {
        self.add_route_v4(index, Ipv4Addr::UNSPECIFIED, 0, Some(gateway))
    }

    /// `ip route add DST/PREFIX [via GATEWAY] dev INDEX`.
    pub fn add_route_v4(
        &mut self,
        index: u32,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.kind = RouteType::Unicast;
        msg.header.destination_prefix_length = prefix;
        if prefix > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        }
        match gateway {
            Some(gw) => {
                msg.header.scope = RouteScope::Universe;
                msg.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
            }
            None => msg.header.scope = RouteScope::Link,
        }
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            "add route",
            match gateway {
                Some(gw) => format!("{dst}/{prefix} via {gw}"),
                None => format!("{dst}/{prefix} on index {index}"),
            },
            RouteNetlinkMessage::NewRoute(msg),
        )
    }
}

/// A rule message that looks up `table` (its selectors are for the caller to add).
fn table_rule(v6: bool, table: u32) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    msg.header.action = RuleAction::ToTable;
    // Tables above 255 exist only as the attribute; the header's byte then says 0.
    msg.header.table = if table < 256 { table as u8 } else { 0 };
    msg.attributes.push(RuleAttribute::Table(table));
    msg
}

impl Netlink {
    /// `ip [-6] rule add fwmark MARK lookup TABLE priority PRIORITY`.
    pub fn add_fwmark_rule(
        &mut self,
        v6: bool,
        mark: u32,
        table: u32,
        priority: u32,
    ) -> Result<()> {
        let mut msg = table_rule(v6, table);
        msg.attributes.push(RuleAttribute::FwMark(mark));
        msg.attributes.push(RuleAttribute::Priority(priority));
        self.request(
            "add rule",
            format!("fwmark {mark} lookup {table}"),
            RouteNetlinkMessage::NewRule(msg),
        )
    }

    /// `ip [-6] rule add|del [from ADDR] ipproto udp sport PORT lookup TABLE priority
    /// PRIORITY`: datagrams sent from PORT (by ADDR only, when given) are routed by TABLE
    /// (the source-IP routing's local table, so a reply to a transparently bound client
    /// address is delivered locally), whether a local service sends them or they arrive to be
    /// forwarded from a container behind a bridge. Port rules need Linux 4.17.
    pub fn udp_sport_rule(
        &mut self,
        add: bool,
        v6: bool,
        from: Option<IpAddr>,
        port: u16,
        table: u32,
        priority: u32,
    ) -> Result<()> {
        let mut msg = table_rule(v6, table);
        if let Some(ip) = from {
            msg.header.src_len = if ip.is_ipv6() { 128 } else { 32 };
            msg.attributes.push(RuleAttribute::Source(ip));
        }
        msg.attributes.push(RuleAttribute::IpProtocol(
            netlink_packet_route::IpProtocol::Udp,
        ));
        msg.attributes
            .push(RuleAttribute::SourcePortRange(RulePortRange {
                start: port,
                end: port,
            }));
        msg.attributes.push(RuleAttribute::Priority(priority));
        let object = match from {
            Some(ip) => format!("from {ip} ipproto udp sport {port} lookup {table}"),
            None => format!("ipproto udp sport {port} lookup {table}"),
        };
        if add {
            self.request("add rule", object, RouteNetlinkMessage::NewRule(msg))
        } else {
            self.request_with(0, "delete rule", object, RouteNetlinkMessage::DelRule(msg))
        }
    }

    /// `ip [-6] route add local default dev INDEX table TABLE`: every address is local in
    /// that table (how replies to a transparently bound, non-local source are delivered).
    pub fn add_local_default_route(&mut self, v6: bool, index: u32, table: u32) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        msg.header.table = if table < 256 { table as u8 } else { 0 };
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Host;
        msg.header.kind = RouteType::Local;
        msg.attributes.push(RouteAttribute::Table(table));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            "add local default route",
            format!("table {table}"),
            RouteNetlinkMessage::NewRoute(msg),
        )
    }
}

/// The guest side of a user-mode network, as slirp4netns `--configure` (or pasta
/// `--config-net`) sets it up.
#[derive(Debug, Clone)]
pub struct TapConfig {
    pub name: String,
    pub mtu: u32,
    /// `None` for a guest without IPv4 (pasta's `-6`).
    pub ipv4: Option<TapIpv4>,
    pub ipv6: Option<TapIpv6>,
    /// The tap's own MAC address, when the caller chooses it (slirp4netns's `--macaddress`).
    pub mac: Option<[u8; 6]>,
}

/// The guest's IPv4 address, prefix length and default gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapIpv4 {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// The guest's IPv6 configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapIpv6 {
    /// A global address (added without duplicate address detection), or `None`: only the
    /// kernel's link-local address (pasta's local mode).
    pub address: Option<Ipv6Addr>,
    pub prefix: u8,
    /// The default gateway; a link-local one is reached through the tap.
    pub gateway: Ipv6Addr,
}

/// Creates and configures the tap in the calling thread's netns: `lo` up, the tap up with
/// its MTU and addresses, and default routes via the gateways. Returns the tap fd.
pub fn create_configured_tap(cfg: &TapConfig) -> Result<OwnedFd> {
    let fd = create_tap(&cfg.name)?;
    let mut nl = Netlink::open()?;
    nl.link_up(link_index("lo")?, None)?;
    let idx = link_index(&cfg.name)?;
    if let Some(mac) = cfg.mac {
        nl.set_link_address(idx, mac)?;
    }
    nl.link_up(idx, Some(cfg.mtu))?;
    if let Some(v4) = &cfg.ipv4 {
        nl.add_address_v4(idx, v4.address, v4.prefix)?;
        nl.add_default_route_v4(idx, v4.gateway)?;
    }
    if let Some(v6) = &cfg.ipv6 {
        if let Some(addr) = v6.address {
            nl.add_address_v6(idx, addr, v6.prefix)?;
        }
        nl.add_default_route_v6(idx, v6.gateway)?;
    }
    Ok(fd)
}

/// Creates the tap (configured as [`create_configured_tap`] does when `configure`) inside
/// the network namespace `netns` (named `path` in errors), from a thread that enters it and
/// ends: the caller stays where it is and is as single-threaded afterwards as before, which a
/// front end that then confines itself or forks needs. The caller must be allowed to enter
/// (CAP_SYS_ADMIN over the namespace's owner: root, or a member of its user namespace).
pub fn create_tap_in(
    netns: BorrowedFd<'_>,
    path: &str,
    cfg: &TapConfig,
    configure: bool,
) -> Result<OwnedFd> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: plain syscall on a valid descriptor; this thread ends right after.
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(Error::EnterNetns {
                    path: path.to_string(),
                    source: io::Error::last_os_error(),
                });
            }
            if configure {
                create_configured_tap(cfg)
            } else {
                create_tap(&cfg.name)
            }
        })
        .join()
        .map_err(|_| Error::TapThread(cfg.name.clone()))?
    })
}

/// The host interface a namespace's addresses are copied from (pasta's "template
/// interface"): the one with the first IPv4 default route, or `ifname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub index: u32,
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    /// The default gateway through it, when it has one.
    pub gateway: Option<Ipv4Addr>,
}

/// The name of interface `index`, empty if it has gone.
fn if_name(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IFNAMSIZ];
    // SAFETY: the buffer holds IFNAMSIZ bytes, as if_indextoname requires.
    unsafe {
        if libc::if_indextoname(index, buf.as_mut_ptr()).is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned()
        }
    }
}

/// The interface of the first default route whose gateway is of the family `v6` says, or
/// `ifname`'s; `None` when there is no such route (and no `ifname`).
fn template_index(routes: &[DefaultRoute], ifname: Option<&str>, v6: bool) -> Result<Option<u32>> {
    Ok(match ifname {
        Some(n) => Some(link_index(n)?),
        None => routes.iter().find_map(|r| match (r.oif, r.gateway) {
            (Some(o), Some(g)) if g.is_ipv6() == v6 => Some(o),
            _ => None,
        }),
    })
}

/// The gateway of the first default route of family `v6` through `oif`.
fn template_gateway(routes: &[DefaultRoute], oif: u32, v6: bool) -> Option<IpAddr> {
    routes.iter().find_map(|r| match (r.oif, r.gateway) {
        (Some(o), Some(g)) if o == oif && g.is_ipv6() == v6 => Some(g),
        _ => None,
    })
}

/// Finds the template interface in the calling thread's network namespace; `None` when no
/// interface with a default route (or `ifname`) has an IPv4 address.
pub fn ipv4_template(ifname: Option<&str>) -> Result<Option<Template>> {
    let mut nl = Netlink::open()?;
    let routes = nl.default_routes()?;
    let Some(index) = template_index(&routes, ifname, false)? else {
        return Ok(None);
    };
    let addr = nl.addrs()?.into_iter().find_map(|a| match a.addr {
        std::net::IpAddr::V4(v4) if a.index == index => Some((v4, a.prefix)),
        _ => None,
    });
    let Some((addr, prefix)) = addr else {
        return Ok(None);
    };
    Ok(Some(Template {
        index,
        name: if_name(index),
        addr,
        prefix,
        gateway: match template_gateway(&routes, index, false) {
            Some(IpAddr::V4(g)) => Some(g),
            _ => None,
        },
    }))
}

/// pasta's IPv6 template interface (`conf_ip6()`): the one with the first IPv6 default
/// route, or `ifname`, with what pasta reads from it. Whether that is enough for IPv6 (pasta
/// wants a gateway, a global address and a link-local one, else it falls back to its local
/// mode) is the caller's to decide, since `-a` and `-g` may stand in for the first two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template6 {
    pub index: u32,
    pub name: String,
    /// The most specific global address: the longest prefix among those not deprecated, the
    /// first of equals (pasta's `nl_addr_get()`).
    pub addr: Option<(Ipv6Addr, u8)>,
    /// The default gateway through it.
    pub gateway: Option<Ipv6Addr>,
    /// Whether it has a link-local address.
    pub link_local: bool,
}

/// Finds the IPv6 template interface in the calling thread's network namespace; `None` when
/// no IPv6 default route names one (and no `ifname` is given).
pub fn ipv6_template(ifname: Option<&str>) -> Result<Option<Template6>> {
    let mut nl = Netlink::open()?;
    let routes = nl.default_routes()?;
    let Some(index) = template_index(&routes, ifname, true)? else {
        return Ok(None);
    };
    let mut addr: Option<(Ipv6Addr, u8)> = None;
    let mut link_local = false;
    for a in nl.addrs()? {
        let IpAddr::V6(a6) = a.addr else { continue };
        if a.index != index || a.deprecated {
            continue;
        }
        if a.scope == dump::SCOPE_LINK {
            link_local = true;
        } else if a.scope == 0 && addr.is_none_or(|(_, p)| a.prefix > p) {
            addr = Some((a6, a.prefix));
        }
    }
    Ok(Some(Template6 {
        index,
        name: if_name(index),
        addr,
        gateway: match template_gateway(&routes, index, true) {
            Some(IpAddr::V6(g)) => Some(g),
            _ => None,
        },
        link_local,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_syscall() {
        assert!(matches!(ifreq(""), Err(Error::BadName(_))));
        assert!(matches!(
            ifreq("a-name-longer-than-15"),
            Err(Error::BadName(_))
        ));
        assert!(ifreq("tap0").is_ok());
        assert!(matches!(
            link_index("nonexistent0"),
            Err(Error::NoSuchLink(_))
        ));
    }

    #[test]
    fn errors_name_the_operation_and_object() {
        let e = Error::Request {
            op: "add address",
            object: "10.0.2.100/24 on index 2".into(),
            source: io::Error::from_raw_os_error(libc::EEXIST),
        };
        assert!(
            e.to_string()
                .starts_with("add address 10.0.2.100/24 on index 2: ")
        );
    }
}
