//! The inspector's view of a namespace's links, addresses and routes, read through the one
//! netlink client of the workspace (`nsnet_netlink`: its `Netlink` over a socket made in the
//! namespace being read, see [`crate::enter`]). This module only shapes what it reads into the
//! inspector's report types (a link without `IFLA_INFO_KIND` is a `loopback` or a `device`).

use std::os::fd::{BorrowedFd, OwnedFd};

use nsnet_netlink::Netlink;
pub use nsnet_netlink::{Addr, DefaultRoute};

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

impl From<nsnet_netlink::Link> for Link {
    fn from(l: nsnet_netlink::Link) -> Link {
        let kind = match (l.kind.is_empty(), l.loopback) {
            (false, _) => l.kind,
            (true, true) => "loopback".into(),
            (true, false) => "device".into(),
        };
        Link {
            index: l.index,
            name: l.name,
            kind,
            up: l.up,
            oper: l.oper,
            mtu: l.mtu,
            mac: (!l.mac.is_empty()).then_some(l.mac),
            master: l.master,
            link: l.peer_index,
            link_netnsid: l.peer_netnsid,
        }
    }
}

/// A route-netlink socket (in whichever namespace it was made).
pub struct Rtnl(Netlink);

fn err(op: &'static str) -> impl Fn(nsnet_netlink::Error) -> Error {
    move |e| Error::Netlink {
        op,
        source: match e {
            nsnet_netlink::Error::Request { source, .. } | nsnet_netlink::Error::Socket(source) => {
                source
            }
            e => std::io::Error::other(e.to_string()),
        },
    }
}

impl Rtnl {
    /// Creates a route-netlink socket in the calling thread's network namespace.
    pub fn here() -> Result<Rtnl, Error> {
        Netlink::open()
            .map(Rtnl)
            .map_err(err("open a route netlink socket"))
    }

    pub fn from_fd(fd: OwnedFd) -> Rtnl {
        Rtnl(Netlink::from_fd(fd))
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    pub fn links(&mut self) -> Result<Vec<Link>, Error> {
        Ok(self
            .0
            .links()
            .map_err(err("list links"))?
            .into_iter()
            .map(Link::from)
            .collect())
    }

    pub fn addrs(&mut self) -> Result<Vec<Addr>, Error> {
        self.0.addrs().map_err(err("list addresses"))
    }

    /// Default routes of the main table, IPv4 and IPv6.
    pub fn default_routes(&mut self) -> Result<Vec<DefaultRoute>, Error> {
        self.0.default_routes().map_err(err("list routes"))
    }

    /// The kernel's route lookup for `dst` in this namespace (`ip route get`).
    pub fn route_get(
        mut self,
        dst: std::net::IpAddr,
    ) -> Result<Option<nsnet_netlink::RouteLookup>, Error> {
        self.0.route_get(dst).map_err(err("look up a route"))
    }

    /// The id this namespace gives to the network namespace open on `other`, if it has one.
    pub fn nsid_of(&mut self, other: BorrowedFd<'_>) -> Result<Option<i32>, Error> {
        self.0.nsid_of(other).map_err(err("ask for a namespace id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_named_by_its_flag_and_devices_keep_their_kind() {
        let mut r = Rtnl::here().unwrap();
        let links = r.links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo listed");
        assert_eq!(lo.kind, "loopback");
        assert_eq!(lo.mac.as_deref(), Some("00:00:00:00:00:00"));
    }
}
