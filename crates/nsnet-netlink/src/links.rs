//! Bridges and veth pairs: what a bridge network is built from (`nsnet-bridge` decides the
//! names and addresses; this module only speaks rtnetlink).
//!
//! Design: a veth pair is created with its peer placed *directly* in the target network
//! namespace under its final name (`IFLA_NET_NS_FD` in the peer's message, as
//! `ip link add … type veth peer name eth0 netns …` does), so there is no temporary name to
//! leak and no rename race. Sockets bound in another namespace ([`Netlink::open_in`]) then
//! configure that side without moving the caller.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage, State,
};

use crate::{Error, Netlink, Result};

/// What nsnet needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    /// The hardware address, `aa:bb:cc:dd:ee:ff` (empty for links without one).
    pub mac: String,
    /// The index of the bridge (or other controller) it is attached to.
    pub master: Option<u32>,
    pub up: bool,
    /// `bridge`, `veth`, … (`IFLA_INFO_KIND`), empty when the kernel reports none.
    pub kind: String,
    /// With bridge ports: whether hairpin mode is on (`IFLA_BRPORT_MODE`).
    pub hairpin: Option<bool>,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// The operational state (`IFLA_OPERSTATE`): `up`, `down`, `lowerlayerdown`, `unknown`…
    pub oper: String,
    /// `IFLA_LINK`: for a veth, the peer's ifindex, in the namespace named by `peer_netnsid`
    /// (ifindex values repeat across namespaces; the nsid is local to this one).
    pub peer_index: Option<u32>,
    pub peer_netnsid: Option<i32>,
}

fn to_link(m: LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        mtu: 0,
        mac: String::new(),
        master: None,
        up: m.header.flags.contains(LinkFlags::Up),
        kind: String::new(),
        hairpin: None,
        loopback: m.header.flags.contains(LinkFlags::Loopback),
        oper: String::new(),
        peer_index: None,
        peer_netnsid: None,
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::Mtu(v) => l.mtu = v,
            LinkAttribute::Address(b) => {
                l.mac = b
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }
            LinkAttribute::Controller(i) => l.master = Some(i),
            LinkAttribute::Link(p) => l.peer_index = Some(p),
            LinkAttribute::LinkNetNsId(id) => l.peer_netnsid = Some(id),
            LinkAttribute::OperState(st) => {
                l.oper = match st {
                    State::Up => "up".into(),
                    State::Down => "down".into(),
                    State::LowerLayerDown => "lowerlayerdown".into(),
                    State::Unknown => "unknown".into(),
                    other => format!("{other:?}").to_lowercase(),
                }
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = k.to_string(),
                        LinkInfo::PortData(InfoPortData::BridgePort(ps)) => {
                            for p in ps {
                                if let InfoBridgePort::HairpinMode(h) = p {
                                    l.hairpin = Some(h);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['\0', '/', ' ']) {
        return Err(Error::BadName(name.to_string()));
    }
    Ok(())
}

impl Netlink {
    /// A socket bound in the network namespace `netns` refers to: a short-lived thread
    /// enters it and opens the socket, which keeps answering for that namespace wherever it
    /// is used (the caller and its other threads never move). Needs CAP_SYS_ADMIN over the
    /// namespace's owner, which a process inside the owning user namespace has.
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Netlink> {
        let fd = netns.try_clone_to_owned().map_err(Error::Socket)?;
        std::thread::spawn(move || -> Result<Netlink> {
            nix_setns(fd.as_raw_fd()).map_err(Error::Socket)?;
            Netlink::open()
        })
        .join()
        .expect("the netlink opener thread does not panic")
    }

    /// The link called `name`, or `None` when there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        check_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.exchange(
            "get link",
            name.to_string(),
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_REQUEST,
        ) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(to_link(m)),
                _ => None,
            })),
            Err(Error::Request { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msg = LinkMessage::default();
        Ok(self
            .exchange(
                "list links",
                "all".into(),
                RouteNetlinkMessage::GetLink(msg),
                NLM_F_REQUEST | NLM_F_DUMP,
            )?
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(to_link(m)),
                _ => None,
            })
            .collect())
    }

    /// `ip link add NAME type bridge [mtu MTU]`.
    pub fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<()> {
        check_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            "create bridge",
            name.to_string(),
            RouteNetlinkMessage::NewLink(msg),
        )
    }

    /// `ip link add NAME mtu MTU type veth peer name PEER mtu MTU [netns FD]`: the peer is
    /// created in the namespace of `peer_netns` (here when `None`) under its final name.
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        mtu: u32,
        peer_netns: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        check_name(name)?;
        check_name(peer)?;
        let mut pm = LinkMessage::default();
        pm.attributes.push(LinkAttribute::IfName(peer.to_string()));
        pm.attributes.push(LinkAttribute::Mtu(mtu));
        if let Some(fd) = peer_netns {
            pm.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(pm))),
        ]));
        self.request(
            "create veth pair",
            format!("{name} (peer {peer})"),
            RouteNetlinkMessage::NewLink(msg),
        )
    }

    /// Changes an existing link with an `RTM_NEWLINK` without `NLM_F_CREATE` (`ip link set`).
    fn change(&mut self, op: &'static str, index: u32, attrs: Vec<LinkAttribute>) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes = attrs;
        self.exchange(
            op,
            format!("index {index}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map(drop)
    }

    /// `ip link set INDEX master BRIDGE`.
    pub fn set_master(&mut self, index: u32, bridge: u32) -> Result<()> {
        self.change(
            "attach to bridge",
            index,
            vec![LinkAttribute::Controller(bridge)],
        )
    }

    /// `ip link set INDEX type bridge_slave hairpin on|off`: frames may leave by the port they
    /// came in on (a container reaching itself through a published port or its own address
    /// via the gateway).
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        self.change(
            "set hairpin mode on",
            index,
            vec![LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                    on,
                )])),
            ])],
        )
    }

    /// `ip link set INDEX netns FD`.
    pub fn move_to_netns(&mut self, index: u32, netns: BorrowedFd<'_>) -> Result<()> {
        self.change(
            "move to another network namespace",
            index,
            vec![LinkAttribute::NetNsFd(netns.as_raw_fd())],
        )
    }

    /// `ip link set INDEX name NAME` (the link must be down).
    pub fn rename(&mut self, index: u32, name: &str) -> Result<()> {
        check_name(name)?;
        self.change(
            "rename link",
            index,
            vec![LinkAttribute::IfName(name.to_string())],
        )
    }

    /// `ip link del INDEX` (a veth takes its peer with it, wherever the peer is).
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.exchange(
            "delete link",
            format!("index {index}"),
            RouteNetlinkMessage::DelLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map(drop)
    }

    /// Deletes the link called `name` if there is one; returns whether it existed.
    pub fn delete_link_named(&mut self, name: &str) -> Result<bool> {
        match self.link(name)? {
            None => Ok(false),
            Some(l) => match self.delete_link(l.index) {
                Ok(()) => Ok(true),
                // Gone in between (its peer's namespace died): the goal is reached.
                Err(Error::Request { source, .. })
                    if source.raw_os_error() == Some(libc::ENODEV) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            },
        }
    }
}

fn nix_setns(fd: i32) -> io::Result<()> {
    // SAFETY: setns on a descriptor we own, for this thread only.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_request() {
        assert!(matches!(check_name(""), Err(Error::BadName(_))));
        assert!(matches!(check_name("a/b"), Err(Error::BadName(_))));
        assert!(matches!(
            check_name("sixteen-chars-xx"),
            Err(Error::BadName(_))
        ));
        assert!(check_name("nerdctl0").is_ok());
    }
}
