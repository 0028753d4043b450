//! A small synchronous route-netlink client over a socket that may belong to another network
//! namespace: links, addresses, routes, and the nsid of a peer namespace.
//!
//! A netlink socket answers for the namespace it was created in, whoever holds it, so the
//! inspector creates one inside each namespace (see [`crate::enter`]) and then does all its
//! reading from here. `RTM_GETNSID` with `NETNSA_FD` asks "which id does *this* namespace
//! give to the namespace open on that fd" — the fd is resolved in the sending process, which
//! is how a veth's `IFLA_LINK_NETNSID` is turned into a namespace identity (ids are local to
//! each namespace, and `ifindex` values repeat across namespaces).

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};

use crate::Error;

/// A link as the inspector reports it.
#[derive(Debug, Clone, Default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `veth`, `bridge`, `tun`, … from IFLA_LINKINFO; `loopback`/`device` when none.
    pub kind: String,
    pub up: bool,
    pub oper: String,
    pub mtu: u32,
    pub mac: Option<String>,
    /// The bridge (or bond) it is a port of: ifindex in the same namespace.
    pub master: Option<u32>,
    /// IFLA_LINK: the peer's ifindex (for veth), in the namespace named by `link_netnsid`.
    pub link: Option<u32>,
    pub link_netnsid: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct Addr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
}

#[derive(Debug, Clone)]
pub struct DefaultRoute {
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

/// A route-netlink socket (in whichever namespace it was made).
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

fn mac_text(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Bridge => "bridge".into(),
        InfoKind::Veth => "veth".into(),
        InfoKind::Tun => "tun".into(),
        InfoKind::Dummy => "dummy".into(),
        InfoKind::Vlan => "vlan".into(),
        InfoKind::Vxlan => "vxlan".into(),
        InfoKind::Bond => "bond".into(),
        InfoKind::MacVlan => "macvlan".into(),
        InfoKind::IpVlan => "ipvlan".into(),
        InfoKind::Wireguard => "wireguard".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

impl Rtnl {
    /// Creates a route-netlink socket in the calling thread's network namespace.
    pub fn here() -> Result<Rtnl, Error> {
        use nix::sys::socket::{AddressFamily as AF, SockFlag, SockProtocol, SockType, socket};
        let fd = socket(
            AF::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| Error::Netlink {
            op: "open a route netlink socket",
            source: e.into(),
        })?;
        Ok(Rtnl::from_fd(fd))
    }

    pub fn from_fd(fd: OwnedFd) -> Rtnl {
        Rtnl { fd, seq: 0 }
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Sends one request and collects the replies until DONE (dump) or the ACK/answer.
    fn request(
        &mut self,
        op: &'static str,
        msg: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, Error> {
        let err = |source: std::io::Error| Error::Netlink { op, source };
        self.seq += 1;
        let mut req = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        req.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        req.header.sequence_number = self.seq;
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        nix::sys::socket::send(
            self.fd.as_raw_fd(),
            &buf,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        let mut rx = vec![0u8; 1 << 16];
        loop {
            let n = nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut rx,
                nix::sys::socket::MsgFlags::empty(),
            )
            .map_err(|e| err(e.into()))?;
            let mut off = 0;
            while off < n {
                let m: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&rx[off..n]).map_err(|e| {
                        err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            e.to_string(),
                        ))
                    })?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                Some(c) => Err(err(std::io::Error::from_raw_os_error(-c.get()))),
                                None => Ok(out),
                            };
                        }
                        NetlinkPayload::InnerMessage(inner) => {
                            out.push(inner);
                            if !dump {
                                return Ok(out);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    pub fn links(&mut self) -> Result<Vec<Link>, Error> {
        let msgs = self.request(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            true,
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewLink(l) = m else {
                continue;
            };
            let mut link = Link {
                index: l.header.index,
                up: l.header.flags.contains(LinkFlags::Up),
                kind: if l.header.flags.contains(LinkFlags::Loopback) {
                    "loopback".into()
                } else {
                    "device".into()
                },
                ..Link::default()
            };
            for a in l.attributes {
                match a {
                    LinkAttribute::IfName(n) => link.name = n,
                    LinkAttribute::Mtu(m) => link.mtu = m,
                    LinkAttribute::Address(b) if !b.is_empty() => link.mac = Some(mac_text(&b)),
                    LinkAttribute::Controller(c) => link.master = Some(c),
                    LinkAttribute::Link(p) => link.link = Some(p),
                    LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
                    LinkAttribute::OperState(s) => {
                        link.oper = match s {
                            State::Up => "up".into(),
                            State::Down => "down".into(),
                            State::LowerLayerDown => "lowerlayerdown".into(),
                            State::Unknown => "unknown".into(),
                            other => format!("{other:?}").to_lowercase(),
                        }
                    }
                    LinkAttribute::LinkInfo(infos) => {
                        for i in infos {
                            if let LinkInfo::Kind(k) = i {
                                link.kind = kind_name(&k);
                            }
                        }
                    }
                    _ => {}
                }
            }
            out.push(link);
        }
        Ok(out)
    }

    pub fn addrs(&mut self) -> Result<Vec<Addr>, Error> {
        let msgs = self.request(
            "list addresses",
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            true,
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS
            // is the peer there, and the same as IFA_LOCAL elsewhere.
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(addr) = addr {
                out.push(Addr {
                    index: a.header.index,
                    addr,
                    prefix: a.header.prefix_len,
                });
            }
        }
        Ok(out)
    }

    /// Default routes of the main table, IPv4 and IPv6.
    pub fn default_routes(&mut self) -> Result<Vec<DefaultRoute>, Error> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header = RouteHeader {
                address_family: family,
                ..RouteHeader::default()
            };
            for m in self.request("list routes", RouteNetlinkMessage::GetRoute(msg), true)? {
                let RouteNetlinkMessage::NewRoute(r) = m else {
                    continue;
                };
                if r.header.destination_prefix_length != 0
                    || r.header.kind != RouteType::Unicast
                    || r.header.table != RouteHeader::RT_TABLE_MAIN
                {
                    continue;
                }
                let mut d = DefaultRoute {
                    gateway: None,
                    oif: None,
                };
                for a in r.attributes {
                    match a {
                        RouteAttribute::Gateway(RouteAddress::Inet(g)) => {
                            d.gateway = Some(g.into())
                        }
                        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                            d.gateway = Some(g.into())
                        }
                        RouteAttribute::Oif(o) => d.oif = Some(o),
                        _ => {}
                    }
                }
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The id this namespace gives to the network namespace open on `other`, if it has one.
    pub fn nsid_of(&mut self, other: std::os::fd::BorrowedFd<'_>) -> Result<Option<i32>, Error> {
        let mut msg = NsidMessage::default();
        msg.attributes
            .push(NsidAttribute::Fd(other.as_raw_fd() as u32));
        let replies = self.request(
            "ask for a namespace id",
            RouteNetlinkMessage::GetNsId(msg),
            false,
        )?;
        for r in replies {
            if let RouteNetlinkMessage::NewNsId(m) = r {
                for a in m.attributes {
                    if let NsidAttribute::Id(id) = a {
                        return Ok((id >= 0).then_some(id));
                    }
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_loopback_with_its_address_here() {
        let mut r = Rtnl::here().unwrap();
        let links = r.links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo listed");
        assert_eq!(lo.kind, "loopback");
        assert_eq!(lo.mtu, 65536);
        let addrs = r.addrs().unwrap();
        if lo.up {
            assert!(
                addrs
                    .iter()
                    .any(|a| a.index == lo.index && a.addr == IpAddr::from([127, 0, 0, 1]))
            );
        }
        r.default_routes().unwrap();
    }

    #[test]
    fn asking_for_an_id_by_fd_is_answered() {
        // The kernel answers RTM_GETNSID by fd, -1 (None) meaning "no id assigned", rather
        // than failing; a non-namespace fd is an error.
        let mut r = Rtnl::here().unwrap();
        let me = crate::nsfs::open(std::path::Path::new("/proc/self/ns/net")).unwrap();
        r.nsid_of(me.as_fd()).unwrap();
        let not_ns = std::fs::File::open("/dev/null").unwrap();
        assert!(r.nsid_of(not_ns.as_fd()).is_err());
    }
}
