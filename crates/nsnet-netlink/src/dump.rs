//! Reading a namespace's configuration back: addresses, default routes, and the nsid a
//! namespace gives to another (links are listed by [`Netlink::links`] in `links.rs`). The
//! inspector (`nsnet ns`) and the bridge layer read through here, so there is one netlink
//! client in the workspace.
//!
//! A netlink socket answers for the namespace it was created in, whoever holds it: the
//! inspector creates one inside each namespace (in a forked helper that joined it) and passes
//! the descriptor back ([`Netlink::from_fd`]). `RTM_GETNSID` with `NETNSA_FD` asks "which id
//! does *this* namespace give to the namespace open on that fd" — the fd is resolved in the
//! sending process, which is how a veth's `IFLA_LINK_NETNSID` becomes a namespace identity.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::Socket;

use crate::{Netlink, Result};

/// An address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
    /// The kernel's scope (`RT_SCOPE_*`: 0 universe, 253 link, 254 host).
    pub scope: u8,
    /// IFA_F_DEPRECATED: its preferred lifetime is over (pasta never copies one).
    pub deprecated: bool,
}

/// `RT_SCOPE_LINK`: a link-local address.
pub const SCOPE_LINK: u8 = 253;

/// What the kernel's route lookup (`ip route get DST`) chose for a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLookup {
    /// `local` (an address of this namespace), `unicast`, `unreachable`, `prohibit`,
    /// `blackhole`, `broadcast`, …
    pub kind: String,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would pick.
    pub prefsrc: Option<IpAddr>,
    pub table: u32,
}

/// A default route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

impl Netlink {
    /// A route-netlink socket made elsewhere (in another namespace, by a helper) and handed
    /// over: it keeps answering for the namespace it was made in.
    pub fn from_fd(fd: OwnedFd) -> Netlink {
        // SAFETY: we own the descriptor and give it to the socket, which closes it on drop.
        let sock = unsafe { Socket::from_raw_fd(fd.into_raw_fd()) };
        Netlink { sock, seq: 0 }
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Every address of every interface. IFA_LOCAL is the interface's own address on
    /// point-to-point links (IFA_ADDRESS is the peer there, and the same as IFA_LOCAL
    /// elsewhere), so it wins when both are present.
    pub fn addrs(&mut self) -> Result<Vec<Addr>> {
        let msgs = self.exchange(
            "list addresses",
            "all".into(),
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            let find = |local: bool| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Local(ip) if local => Some(*ip),
                    AddressAttribute::Address(ip) if !local => Some(*ip),
                    _ => None,
                })
            };
            if let Some(addr) = find(true).or_else(|| find(false)) {
                // The 32-bit IFA_FLAGS attribute, when present, supersedes the header's byte.
                let deprecated = a
                    .attributes
                    .iter()
                    .find_map(|x| match x {
                        AddressAttribute::Flags(f) => Some(f.contains(AddressFlags::Deprecated)),
                        _ => None,
                    })
                    .unwrap_or(a.header.flags.contains(AddressHeaderFlags::Deprecated));
                out.push(Addr {
                    index: a.header.index,
                    addr,
                    prefix: a.header.prefix_len,
                    scope: u8::from(a.header.scope),
                    deprecated,
                });
            }
        }
        Ok(out)
    }

    /// Default routes of the main table, IPv4 and IPv6.
    pub fn default_routes(&mut self) -> Result<Vec<DefaultRoute>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header = RouteHeader {
                address_family: family,
                ..RouteHeader::default()
            };
            let replies = self.exchange(
                "list routes",
                format!("{family:?}"),
                RouteNetlinkMessage::GetRoute(msg),
                NLM_F_REQUEST | NLM_F_DUMP,
            )?;
            for m in replies {
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

    /// The route the kernel picks for `dst` (RTM_GETROUTE without NLM_F_DUMP: a real lookup,
    /// through the policy rules, as `ip route get` does). `Ok(None)` when there is no
    /// route at all (ENETUNREACH/EHOSTUNREACH).
    pub fn route_get(&mut self, dst: IpAddr) -> Result<Option<RouteLookup>> {
        let mut msg = RouteMessage::default();
        let (family, len) = match dst {
            IpAddr::V4(_) => (AddressFamily::Inet, 32),
            IpAddr::V6(_) => (AddressFamily::Inet6, 128),
        };
        msg.header = RouteHeader {
            address_family: family,
            destination_prefix_length: len,
            ..RouteHeader::default()
        };
        msg.attributes.push(RouteAttribute::Destination(match dst {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
        let replies = match self.exchange(
            "look up a route",
            dst.to_string(),
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_REQUEST,
        ) {
            Ok(r) => r,
            Err(crate::Error::Request { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH)
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        for m in replies {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let mut out = RouteLookup {
                kind: format!("{:?}", r.header.kind).to_lowercase(),
                oif: None,
                gateway: None,
                prefsrc: None,
                table: u32::from(r.header.table),
            };
            for a in r.attributes {
                match a {
                    RouteAttribute::Oif(o) => out.oif = Some(o),
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => out.gateway = Some(g.into()),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => out.gateway = Some(g.into()),
                    RouteAttribute::PrefSource(RouteAddress::Inet(g)) => {
                        out.prefsrc = Some(g.into())
                    }
                    RouteAttribute::PrefSource(RouteAddress::Inet6(g)) => {
                        out.prefsrc = Some(g.into())
                    }
                    RouteAttribute::Table(t) => out.table = t,
                    _ => {}
                }
            }
            return Ok(Some(out));
        }
        Ok(None)
    }

    /// The id this namespace gives to the network namespace open on `other`, if it has one
    /// (the kernel answers -1 for "none assigned" rather than failing).
    pub fn nsid_of(&mut self, other: BorrowedFd<'_>) -> Result<Option<i32>> {
        let mut msg = NsidMessage::default();
        msg.attributes
            .push(NsidAttribute::Fd(other.as_raw_fd() as u32));
        let replies = self.exchange(
            "ask for a namespace id",
            format!("fd {}", other.as_raw_fd()),
            RouteNetlinkMessage::GetNsId(msg),
            NLM_F_REQUEST,
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
        let mut r = Netlink::open().unwrap();
        let links = r.links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo listed");
        assert!(lo.loopback);
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
        // Loopback is local wherever lo is up; with lo down there is no route to it.
        let l = r.route_get(IpAddr::from([127, 0, 0, 1])).unwrap();
        if lo.up {
            let l = l.expect("a route to 127.0.0.1");
            assert_eq!(l.kind, "local");
            assert_eq!(l.oif, Some(lo.index));
        }
    }

    #[test]
    fn a_handed_over_socket_answers_and_ids_are_asked_by_fd() {
        let own = Netlink::open().unwrap();
        let fd = own.as_fd().try_clone_to_owned().unwrap();
        drop(own);
        let mut r = Netlink::from_fd(fd);
        let me = std::fs::File::open("/proc/self/ns/net").unwrap();
        r.nsid_of(me.as_fd()).unwrap();
        let not_ns = std::fs::File::open("/dev/null").unwrap();
        assert!(r.nsid_of(not_ns.as_fd()).is_err());
    }
}
