//! nsnet's user-mode network: the guest's Ethernet frames on a tap, terminated onto host
//! sockets — slirp4netns's job, in-process.
//!
//! # Layer
//!
//! This crate sits between a tap file descriptor (opened by `nsnet-netlink` inside the child
//! network namespace, with `IFF_VNET_HDR` and TSO/checksum offloads) and the host's socket
//! API in the namespace the stack runs in. It decides nothing about namespaces, processes,
//! bridges or the command line: callers hand it a tap fd and a [`Config`], and get a
//! [`Running`] guard back (drop = stop). Host ports forwarded into the guest (slirp4netns's
//! `hostfwd`) arrive as listening sockets the caller bound ([`Forward`], `forward.rs`).
//!
//! ```text
//!  guest kernel ── tap0 ──(vnet_hdr + frame)──► Stack::receive ──► arp / ipv4 ─┬─ tcp ──► host TCP sockets
//!                                                                  ndp / ipv6 ─┤
//!                      ◄──(writev)── GuestTx ◄────────────────────────────────┼─ udp ──► host UDP sockets (DNS: CIDR+3)
//!                                                                             ├─ icmp ─► echo / ping sockets
//!                                                                             └─ dhcp
//! ```
//!
//! Addresses (slirp4netns's): network CIDR (10.0.2.0/24), gateway CIDR+2 (host loopback
//! unless `disable_host_loopback`), DNS CIDR+3, guest CIDR+100, DHCP pool CIDR+15..+30; with
//! `ipv6`, fd00::/64 with gateway fd00::2 (host `::1`), DNS fd00::3, guest fd00::100, and
//! neighbour discovery answered for the gateway and DNS (statically configured guests only:
//! no router advertisements).
//!
//! pasta's model instead ([`Config::pasta`], [`PastaAddrs`]): per family, the guest has the
//! host's own address, prefix and gateway (copied from a template interface by the caller),
//! so the guest's network is the host's and every address in it but the guest's own is
//! answered by the stack (ARP; neighbour solicitations other than duplicate address
//! detection) and reached on the host's network. Either family may be off (pasta's `-4`,
//! `-6`), and IPv6 may have no global address at all (pasta's local mode: link-local only,
//! gateway fe80::1). The gateway reaches host loopback (`127.0.0.1`, `::1`) unless
//! `--no-map-gw`; `map_guest_addr` reaches the host itself (its address is the guest's, so a
//! flow to it leaves as one to the host's own address); `dns_forward` ports 53 and 853 are
//! the host's nameserver (passt's `fwd.c`: `nat_outbound`, `fwd_nat_from_tap`).
//!
//! # Design choice: our own TCP termination, smoltcp for wire formats
//!
//! smoltcp 0.14 with defaults measured 2.6–5.4 Gbit/s over a tap here, below slirp4netns
//! (5.9 at MTU 65520); a copy loop between two taps with vnet_hdr + TSO reached 21–22 Gbit/s.
//! The gap is per-byte work: smoltcp sockets buffer every byte twice, checksum in software
//! and send MSS-sized frames. A terminator needs far less than a TCP stack (the guest kernel
//! does congestion control on a lossless link), so we follow passt's `tcp.c`: guest segments
//! map onto host socket calls, windows follow the socket buffers, data moves socket → ring
//! → tap with one `writev`, checksums stay partial (`NEEDS_CSUM`) and one frame carries up to
//! 64 KiB at any MTU (TSO). smoltcp's `wire` module parses what we receive (zero-copy views);
//! the hot-path headers we send are written by [`wire`]. See `tcp/mod.rs` for the state
//! machine.
//!
//! The measurement behind the choice: smoltcp's figures above were taken on this machine
//! before this crate existed (`shared/design.md` section 6); a tuned smoltcp was not built for
//! comparison. This terminator, measured side by side with slirp4netns and pasta in one run
//! (`bench/net.sh`, `docs/benchmarks.md`), moved 7–12 Gbit/s at both MTUs: 2–4× slirp4netns
//! at MTU 65520 and 7–20× at MTU 1500, with a third to a half of slirp4netns's CPU per GB at
//! 65520 and a seventh to a twentieth at 1500. Its profile is two kernel copies per byte and
//! the guest's own TCP work; the stack's user-space code is a few percent.
//!
//! [`seccomp`] is the system-call filter of a process left running only this stack (what its
//! threads call, `EPERM` for the rest); front ends install it before [`spawn`].
//!
//! Time is a parameter: every entry point of [`Stack`] takes `now`, so tests drive timers on
//! a virtual clock. One thread runs a stack ([`spawn`]): an epoll loop over the tap and the
//! host sockets, frames batched, ACKs coalesced per batch.
//!

pub mod confine;
mod dhcp;
mod forward;
mod frag;
mod icmp;
mod runtime;
pub mod seccomp;
mod stack;
mod sys;
mod tcp;
mod token;
mod udp;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

pub use forward::Forward;
pub use runtime::{Forwards, Running, TapTx, spawn};
pub use stack::{Stack, Stats, mac_for, mac_for_ip};

/// Where the stack sends frames for the guest: `parts` concatenated form one tap write
/// (a `virtio_net_hdr`, then the Ethernet frame).
pub trait GuestTx {
    fn send(&mut self, parts: &[&[u8]]);
}

/// Errors of the stack's set-up (a running stack never fails on input).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid CIDR {0}: prefix length needs to be 1-25")]
    Prefix(String),
    #[error("CIDR needs to be a network address like 10.0.2.0/24, not like {0}")]
    NotNetwork(String),
    #[error("invalid address {0}: prefix length needs to be 1-31")]
    PastaPrefix(String),
    #[error("gateway {0} is not another address of {1}'s network")]
    Gateway(Ipv4Addr, String),
    #[error("invalid IPv6 address {0}: prefix length needs to be 1-128")]
    PastaPrefix6(String),
    #[error("IPv6 gateway {0} is not a unicast address other than the guest's")]
    Gateway6(Ipv6Addr),
    #[error("neither IPv4 nor IPv6 is enabled")]
    PastaNoFamily,
    #[error("MTU must be a positive integer (< 65522), got {0}")]
    Mtu(u32),
    #[error("create epoll instance for the stack: {0}")]
    Epoll(#[source] std::io::Error),
    #[error("register tap fd with the stack's epoll: {0}")]
    RegisterTap(#[source] std::io::Error),
    #[error("start the stack thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("read tap: {0}")]
    ReadTap(#[source] std::io::Error),
}

/// The user-mode network's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
    /// Refuse every guest path to host 127.0.0.0/8 (the gateway included), except the DNS
    /// forwarder's own queries to a loopback resolver.
    pub disable_host_loopback: bool,
    /// Bind every outgoing IPv4 (IPv6) host socket to this address: the gateway's flows to
    /// host loopback and the DNS forwarder's queries too, as libslirp binds every socket it
    /// opens for the guest, so a server on 127.0.0.1 sees the flow come from this address.
    pub outbound_addr: Option<Ipv4Addr>,
    pub outbound_addr6: Option<Ipv6Addr>,
    /// CIDR+3 (fd00::3) is not the DNS forwarder but an address like any outside one: the
    /// guest's flows to it go to that address on the host's network (slirp4netns's
    /// `--disable-dns`).
    pub disable_dns: bool,
    /// IPv6 too: fd00::/64, gateway fd00::2, DNS fd00::3, guest fd00::100 (slirp4netns's).
    pub ipv6: bool,
    /// Where the DNS forwarder on CIDR+3 sends queries (the first one is used).
    pub nameservers: Vec<SocketAddrV4>,
    /// Idle time after which a UDP flow is forgotten.
    pub udp_timeout: Duration,
    /// Host numbers of the gateway and the DNS forwarder in the network: slirp4netns's 2
    /// and 3 by default; gvisor-tap-vsock's plan puts both on 1 (the gateway then answers
    /// port 53 and forwards every other port like the gateway).
    pub gateway_host: u32,
    pub dns_host: u32,
    /// pasta's address model instead of the CIDR+n plan (see [`Config::pasta`]).
    pub pasta: Option<PastaAddrs>,
}

/// The addresses of pasta's model, per family (`None`: the family is off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastaAddrs {
    pub v4: Option<PastaV4>,
    pub v6: Option<PastaV6>,
}

/// pasta's IPv4: the guest's address is the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastaV4 {
    pub guest: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The address that reaches host loopback (`--map-host-loopback`, the gateway by
    /// default), `None` with `--no-map-gw`.
    pub map_host_loopback: Option<Ipv4Addr>,
    /// `--map-guest-addr`: this address reaches the host's own address (the guest's).
    pub map_guest_addr: Option<Ipv4Addr>,
    /// `--dns-forward`: ports 53 and 853 of this address are the host's nameserver.
    pub dns_forward: Option<Ipv4Addr>,
}

/// pasta's IPv6: the guest's global address is the host's, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastaV6 {
    /// `None` in pasta's local mode (no template): the guest has only its link-local address.
    pub guest: Option<Ipv6Addr>,
    pub prefix: u8,
    /// Often link-local (fe80::1 in local mode); it need not be inside the guest's prefix.
    pub gateway: Ipv6Addr,
    /// The address that reaches host `::1` (the gateway by default), `None` with
    /// `--no-map-gw`.
    pub map_host_loopback: Option<Ipv6Addr>,
    /// `--map-guest-addr`: this address reaches the host's own address (the guest's).
    pub map_guest_addr: Option<Ipv6Addr>,
    /// `--dns-forward`: ports 53 and 853 of this address are the host's nameserver.
    pub dns_forward: Option<Ipv6Addr>,
    /// Where those queries go (`--dns-host`, or resolv.conf's first IPv6 nameserver); `None`:
    /// the first of [`Config::nameservers`] (IPv4), as slirp4netns's fd00::3 does.
    pub dns_host: Option<Ipv6Addr>,
}

impl Config {
    /// slirp4netns's defaults for `network/prefix`: MTU 65520, host loopback reachable.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Config, Error> {
        let text = format!("{network}/{prefix}");
        if !(1..=25).contains(&prefix) {
            return Err(Error::Prefix(text));
        }
        if u32::from(network) & !mask(prefix) != 0 {
            return Err(Error::NotNetwork(text));
        }
        Ok(Config {
            network,
            prefix,
            mtu: 65520,
            disable_host_loopback: false,
            outbound_addr: None,
            outbound_addr6: None,
            disable_dns: false,
            ipv6: false,
            nameservers: Vec::new(),
            udp_timeout: Duration::from_secs(60),
            gateway_host: 2,
            dns_host: 3,
            pasta: None,
        })
    }

    /// pasta's model. IPv4: `guest/prefix` is the host's address on its template interface
    /// (any prefix 1–31 and any host part), `gateway` its default gateway, which must be
    /// another address of that network. IPv6: any prefix 1–128; the gateway is any unicast
    /// address but the guest's (the kernel decides whether it can be routed through). At
    /// least one family must be on.
    pub fn pasta(addrs: PastaAddrs) -> Result<Config, Error> {
        let mut c = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24)?;
        match (&addrs.v4, &addrs.v6) {
            (None, None) => return Err(Error::PastaNoFamily),
            (Some(v4), _) => {
                let text = format!("{}/{}", v4.guest, v4.prefix);
                if !(1..=31).contains(&v4.prefix) {
                    return Err(Error::PastaPrefix(text));
                }
                let network = Ipv4Addr::from(u32::from(v4.guest) & mask(v4.prefix));
                if u32::from(v4.gateway) & mask(v4.prefix) != u32::from(network)
                    || v4.gateway == v4.guest
                {
                    return Err(Error::Gateway(v4.gateway, text));
                }
                c.network = network;
                c.prefix = v4.prefix;
            }
            // No IPv4: `network` and `prefix` keep slirp4netns's plan, which nothing reads,
            // since the stack then drops every IPv4 and ARP frame (see `ipv4_on`).
            (None, Some(_)) => {}
        }
        if let Some(v6) = &addrs.v6 {
            if !(1..=128).contains(&v6.prefix) {
                let guest = v6.guest.unwrap_or(Ipv6Addr::UNSPECIFIED);
                return Err(Error::PastaPrefix6(format!("{guest}/{}", v6.prefix)));
            }
            let gw = v6.gateway;
            if gw.is_unspecified() || gw.is_loopback() || gw.is_multicast() || Some(gw) == v6.guest
            {
                return Err(Error::Gateway6(gw));
            }
            c.ipv6 = true;
        }
        c.disable_dns = addrs.v4.as_ref().is_none_or(|v| v.dns_forward.is_none())
            && addrs.v6.as_ref().is_none_or(|v| v.dns_forward.is_none());
        c.pasta = Some(addrs);
        Ok(c)
    }

    fn pasta4(&self) -> Option<&PastaV4> {
        self.pasta.as_ref()?.v4.as_ref()
    }
    fn pasta6(&self) -> Option<&PastaV6> {
        self.pasta.as_ref()?.v6.as_ref()
    }

    /// Whether the guest speaks IPv4: always in slirp4netns's plan; in pasta's unless `-6`.
    pub fn ipv4_on(&self) -> bool {
        self.pasta.as_ref().is_none_or(|p| p.v4.is_some())
    }

    pub fn with_mtu(mut self, mtu: u32) -> Result<Config, Error> {
        if !(68..=65521).contains(&mtu) {
            return Err(Error::Mtu(mtu));
        }
        self.mtu = mtu;
        Ok(self)
    }

    fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }
    // In pasta's model without IPv4 the IPv4 accessors answer 0.0.0.0: no frame of that
    // family is accepted, so nothing sends from or to it.
    pub fn gateway(&self) -> Ipv4Addr {
        match &self.pasta {
            Some(_) => self.pasta4().map_or(Ipv4Addr::UNSPECIFIED, |p| p.gateway),
            None => self.nth(self.gateway_host),
        }
    }
    /// The DNS forwarder's address (unspecified in pasta's model without `dns_forward`).
    pub fn dns(&self) -> Ipv4Addr {
        match &self.pasta {
            Some(_) => self
                .pasta4()
                .and_then(|p| p.dns_forward)
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            None => self.nth(self.dns_host),
        }
    }
    /// The address a statically configured guest takes (slirp4netns's "recommended IP").
    pub fn guest(&self) -> Ipv4Addr {
        match &self.pasta {
            Some(_) => self.pasta4().map_or(Ipv4Addr::UNSPECIFIED, |p| p.guest),
            None => self.nth(100),
        }
    }

    /// Whether the stack answers ARP for `ip`: its gateway and DNS addresses; in pasta's
    /// model every address but the guest's own (the guest's network is the host's, reached
    /// through the stack).
    pub fn answers_arp(&self, ip: Ipv4Addr) -> bool {
        if self.pasta.is_some() {
            return self.pasta4().is_some()
                && ip != self.guest()
                && !ip.is_unspecified()
                && !ip.is_broadcast();
        }
        ip == self.gateway() || ip == self.dns()
    }
    pub fn dhcp_start(&self) -> Ipv4Addr {
        self.nth(15)
    }
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }
    pub fn in_network(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// The IPv6 gateway: slirp4netns's fd00::2, or pasta's (unspecified without IPv6).
    pub fn gateway6(&self) -> Ipv6Addr {
        match &self.pasta {
            Some(_) => self.pasta6().map_or(Ipv6Addr::UNSPECIFIED, |p| p.gateway),
            None => Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        }
    }
    /// The IPv6 DNS forwarder: fd00::3, or pasta's `--dns-forward` (else unspecified).
    pub fn dns6(&self) -> Ipv6Addr {
        match &self.pasta {
            Some(_) => self
                .pasta6()
                .and_then(|p| p.dns_forward)
                .unwrap_or(Ipv6Addr::UNSPECIFIED),
            None => Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3),
        }
    }
    /// The guest's IPv6 address: fd00::100, or pasta's global one (unspecified in local mode
    /// or without IPv6).
    pub fn guest6(&self) -> Ipv6Addr {
        match &self.pasta {
            Some(_) => self
                .pasta6()
                .and_then(|p| p.guest)
                .unwrap_or(Ipv6Addr::UNSPECIFIED),
            None => Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100),
        }
    }
    /// The IPv6 prefix length of the guest's address (slirp4netns's /64, or pasta's).
    pub fn prefix6(&self) -> u8 {
        self.pasta6().map_or(64, |p| p.prefix)
    }
    fn in_network6(&self, ip: Ipv6Addr) -> bool {
        ip.segments()[..4] == [0xfd00, 0, 0, 0]
    }

    /// Whether `ip` is one of the stack's own addresses (gateway or DNS), which answer echo
    /// themselves.
    pub fn is_own(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => a == self.gateway() || a == self.dns(),
            IpAddr::V6(a) if self.pasta.is_some() => self
                .pasta6()
                .is_some_and(|p| a == p.gateway || Some(a) == p.dns_forward),
            IpAddr::V6(a) => a == self.gateway6() || a == self.dns6(),
        }
    }

    /// Whether a neighbour solicitation for `target` from `src` is answered: for the
    /// gateway and DNS addresses (slirp4netns's plan); in pasta's model for every unicast
    /// address but the guest's own, as ARP is — except duplicate address detection (from
    /// `::`), which probes only the guest's own tentative addresses (its link-local one
    /// among them, which the stack does not know) and must go unanswered.
    pub fn answers_ndp(&self, target: Ipv6Addr, src: IpAddr) -> bool {
        match self.pasta6() {
            Some(p) => {
                !src.is_unspecified()
                    && Some(target) != p.guest
                    && !target.is_unspecified()
                    && !target.is_multicast()
                    && !target.is_loopback()
            }
            None if self.pasta.is_some() => false,
            None => self.is_own(IpAddr::V6(target)),
        }
    }

    /// The address to bind an outgoing socket to, for a destination's family. Loopback
    /// destinations are no exception: Linux routes a packet from any local address to
    /// 127.0.0.0/8 or `::1` over `lo`.
    pub fn outbound_for(&self, to: SocketAddr) -> Option<IpAddr> {
        match to {
            SocketAddr::V4(_) => self.outbound_addr.map(IpAddr::V4),
            SocketAddr::V6(_) => self.outbound_addr6.map(IpAddr::V6),
        }
    }

    /// Where a guest flow to `dst` goes on the host, or `None` if the stack refuses it.
    ///
    /// CIDR+3 (fd00::3) port 53 is the first nameserver (even a loopback one with host
    /// loopback disabled: the guest never names it); with `disable_dns`, CIDR+3 (fd00::3) is
    /// itself the destination, on the host's network, like an outside address. CIDR+2 (fd00::2) is host loopback unless
    /// `disable_host_loopback`. 127.0.0.0/8, 0.0.0.0/8 (which Linux connects to loopback),
    /// `::1`, `::` and IPv4-mapped forms of those are refused with host loopback disabled;
    /// the rest of the guest's own networks, link-local, broadcast and multicast are never
    /// routed.
    pub fn host_destination(&self, dst: SocketAddr) -> Option<SocketAddr> {
        if let Some(p) = &self.pasta {
            return self.pasta_destination(p, dst);
        }
        let port = dst.port();
        let v4 = match dst.ip() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => {
                if !self.ipv6 {
                    return None;
                }
                if ip == self.dns6() {
                    if self.disable_dns {
                        return Some(dst);
                    }
                    let ns = self.nameservers.first()?;
                    return (port == 53).then_some(SocketAddr::V4(*ns));
                }
                if ip == self.gateway6() {
                    return (!self.disable_host_loopback)
                        .then_some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
                }
                if let Some(mapped) = ip.to_ipv4_mapped() {
                    // Refused like the IPv4 address it stands for.
                    self.host_destination(SocketAddr::new(IpAddr::V4(mapped), port))?;
                    return Some(dst);
                }
                if (ip.is_loopback() && self.disable_host_loopback)
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || ip.is_unicast_link_local()
                    || self.in_network6(ip)
                {
                    return None;
                }
                return Some(dst);
            }
        };
        // Where one address is both, only port 53 is DNS.
        if v4 == self.dns() && (port == 53 || self.dns() != self.gateway()) {
            if self.disable_dns {
                return Some(dst);
            }
            let ns = self.nameservers.first()?;
            return (port == 53).then_some(SocketAddr::V4(*ns));
        }
        if v4 == self.gateway() {
            return (!self.disable_host_loopback)
                .then_some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        }
        let first = v4.octets()[0];
        if (first == 127 || first == 0) && self.disable_host_loopback {
            return None;
        }
        if first == 0 || self.in_network(v4) || v4.is_broadcast() || v4.is_multicast() {
            return None;
        }
        Some(dst)
    }
}

impl Config {
    /// [`Config::host_destination`] in pasta's model, per family.
    fn pasta_destination(&self, p: &PastaAddrs, dst: SocketAddr) -> Option<SocketAddr> {
        let port = dst.port();
        // passt's `is_dns_flow`: DNS and DNS over TLS.
        let dns_port = port == 53 || port == 853;
        let nameserver = || -> Option<SocketAddr> {
            let ns = self.nameservers.first()?;
            Some(match port {
                53 => SocketAddr::V4(*ns),
                _ => SocketAddr::new(IpAddr::V4(*ns.ip()), port),
            })
        };
        match dst.ip() {
            IpAddr::V4(ip) => {
                let p4 = p.v4.as_ref()?;
                if Some(ip) == p4.dns_forward {
                    return dns_port.then(nameserver).flatten();
                }
                if Some(ip) == p4.map_host_loopback {
                    return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
                }
                if Some(ip) == p4.map_guest_addr {
                    return Some(SocketAddr::new(IpAddr::V4(p4.guest), port));
                }
                let first = ip.octets()[0];
                // The guest's own loopback and "this host" never leave it; everything else,
                // the guest's (= the host's) network included, is an address on the host's
                // network.
                if first == 127
                    || first == 0
                    || ip == p4.guest
                    || ip.is_broadcast()
                    || ip.is_multicast()
                {
                    return None;
                }
                Some(dst)
            }
            IpAddr::V6(ip) => {
                let p6 = p.v6.as_ref()?;
                if Some(ip) == p6.dns_forward {
                    if !dns_port {
                        return None;
                    }
                    return match p6.dns_host {
                        Some(h) => Some(SocketAddr::new(IpAddr::V6(h), port)),
                        None => nameserver(),
                    };
                }
                if Some(ip) == p6.map_host_loopback {
                    return Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
                }
                if Some(ip) == p6.map_guest_addr {
                    // In local mode the host has no global address to stand for.
                    return p6.guest.map(|g| SocketAddr::new(IpAddr::V6(g), port));
                }
                // As for IPv4, plus link-local addresses (a host socket cannot name one
                // without a scope) and IPv4-mapped ones, which would turn the guest's IPv6
                // flow into an IPv4 one on the host (and reach IPv4 with `-6`).
                if ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || ip.is_unicast_link_local()
                    || ip.to_ipv4_mapped().is_some()
                    || Some(ip) == p6.guest
                {
                    return None;
                }
                Some(dst)
            }
        }
    }
}

/// The netmask of a prefix length as a number (ipnet does the arithmetic; prefixes here are
/// already checked to be at most 32).
fn mask(prefix: u8) -> u32 {
    u32::from(
        ipnet::Ipv4Net::new(Ipv4Addr::UNSPECIFIED, prefix)
            .map_or(Ipv4Addr::BROADCAST, |n| n.netmask()),
    )
}

/// The IPv4 `nameserver` lines of a resolv.conf, as DNS server addresses (port 53).
pub fn nameservers_from_resolv_conf(text: &str) -> Vec<SocketAddrV4> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            let ip: Ipv4Addr = w.next()?.parse().ok()?;
            Some(SocketAddrV4::new(ip, 53))
        })
        .collect()
}

/// The IPv6 `nameserver` lines of a resolv.conf; a zone (`%eth0`) is cut off, as pasta's
/// `get_dns()` does.
pub fn nameservers6_from_resolv_conf(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            let a = w.next()?;
            a.split('%').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests;
