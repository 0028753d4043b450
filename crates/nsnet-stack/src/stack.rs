//! The link and network layers: Ethernet, ARP, IPv4 and ICMP, and the dispatch of TCP and UDP
//! to their modules.
//!
//! # Theory of operation
//!
//! The guest sees one Ethernet segment on its tap with two "hosts" on it: the gateway
//! (CIDR+2) and the DNS server (CIDR+3), both answered by this stack with MAC `52:55:` + the
//! IPv4 address (slirp's convention). Every other address is "behind the gateway".
//!
//! - ARP (RFC 826): requests for the gateway or DNS address are answered; nothing else. The
//!   guest's MAC is learnt from the source of its frames and is the destination of
//!   everything we send.
//! - IPv4 (RFC 791): header checksum and lengths verified; options are skipped; fragments are
//!   reassembled (`frag.rs`) and the whole datagram goes through this input again.
//! - IPv6 (RFC 8200), with `Config::ipv6` only: fd00::2 and fd00::3 answer neighbour
//!   solicitations (RFC 4861) and echo (in pasta's model every address but the guest's answers
//!   solicitations, `Config::answers_ndp`); TCP and UDP go to their modules as for IPv4; packets
//!   with extension headers (MLD's hop-by-hop, fragments) are dropped. Everything we send
//!   over IPv6 has hop limit 255, which neighbour discovery requires.
//! - ICMP (RFC 792): echo to the gateway or DNS address is answered here. Echo to other
//!   destinations is forwarded through an unprivileged ICMP socket (`SOCK_DGRAM,
//!   IPPROTO_ICMP`) where `net.ipv4.ping_group_range` allows it; where it does not, the guest
//!   gets "destination host unreachable" at once instead of silence.
//!   The same module sends "network unreachable" for destinations the stack refuses (host
//!   loopback with `disable_host_loopback`): a guest `connect()` then fails with
//!   `ENETUNREACH`, as with slirp4netns.
//!
//! Malformed frames of any kind are dropped silently: nothing here can panic on input
//! (property-tested and fuzzed).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol,
    Ipv4Address, Ipv4Packet, Ipv6Packet,
};

use crate::wire::{self, ETH_HDR_LEN, IPV4_HDR_LEN, IPV6_HDR_LEN, VNET_HDR_LEN, VnetHdr};
use crate::{Config, GuestTx, dhcp, forward, frag, icmp, tcp, udp};

/// Everything a protocol module needs to send frames and register sockets, borrowed from
/// the [`Stack`] so the modules' tables can be borrowed mutably beside it.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a Config,
    pub tx: &'a mut dyn GuestTx,
    pub epoll: i32,
    /// The guest's MAC, or broadcast while it is not known yet (see `guest_known`).
    pub guest_mac: EthernetAddress,
    /// Whether the guest has sent a frame yet: until it has, only ARP requests for it are
    /// useful (an IP packet in a broadcast frame is dropped by the guest's TCP).
    pub guest_known: bool,
    pub ident: &'a mut u16,
}

impl Ctx<'_> {
    pub fn gateway_mac(&self) -> EthernetAddress {
        mac_for(self.cfg.gateway())
    }

    /// An ARP request for `target` from the gateway: how the stack learns the guest's MAC
    /// when it speaks first (a host connection forwarded into a guest that has sent nothing).
    pub fn send_arp_request(&mut self, target: Ipv4Addr) {
        let gw = self.cfg.gateway();
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac_for(gw),
            source_protocol_addr: gw,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let mut out = [0u8; VNET_HDR_LEN + ETH_HDR_LEN + 28];
        let mut eth = EthernetFrame::new_unchecked(&mut out[VNET_HDR_LEN..]);
        eth.set_src_addr(mac_for(gw));
        eth.set_dst_addr(EthernetAddress::BROADCAST);
        eth.set_ethertype(EthernetProtocol::Arp);
        req.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        self.tx.send(&[&out]);
    }

    /// Sends an IPv4 datagram whose L4 header and payload are already complete in `l4`
    /// (checksums filled), from `src` to the guest address `dst`.
    pub fn send_ipv4(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) {
        self.send_ip(src.into(), dst.into(), proto, l4)
    }

    /// Sends an IPv4 or IPv6 packet whose L4 part is complete in `l4`.
    pub fn send_ip(&mut self, src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) {
        let mut hdr = [0u8; VNET_HDR_LEN + ETH_HDR_LEN + IPV6_HDR_LEN];
        VnetHdr::default().emit(&mut hdr);
        *self.ident = self.ident.wrapping_add(1);
        let n = wire::emit_eth_ip(
            &mut hdr[VNET_HDR_LEN..],
            mac_for_ip(src),
            self.guest_mac,
            src,
            dst,
            proto,
            l4.len(),
            *self.ident,
        );
        self.tx.send(&[&hdr[..VNET_HDR_LEN + n], l4]);
    }

    /// Like [`Ctx::send_ipv4`], fragmenting (RFC 791 2.3) what does not fit the guest MTU.
    pub fn send_ipv4_fragmented(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) {
        let room = (self.cfg.mtu as usize).saturating_sub(IPV4_HDR_LEN) & !7;
        if l4.len() <= room || room == 0 {
            self.send_ipv4(src, dst, proto, l4);
            return;
        }
        *self.ident = self.ident.wrapping_add(1);
        let mut off = 0;
        while off < l4.len() {
            let n = (l4.len() - off).min(room);
            let more = off + n < l4.len();
            let mut hdr = [0u8; VNET_HDR_LEN + ETH_HDR_LEN + IPV4_HDR_LEN];
            VnetHdr::default().emit(&mut hdr);
            wire::emit_eth_ipv4(
                &mut hdr[VNET_HDR_LEN..],
                mac_for(src),
                self.guest_mac,
                src,
                dst,
                proto,
                n,
                *self.ident,
            );
            let ip = &mut hdr[VNET_HDR_LEN + ETH_HDR_LEN..];
            let frag = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
            ip[6..8].copy_from_slice(&frag.to_be_bytes());
            ip[10..12].fill(0);
            let c = !wire::fold(wire::sum(0, ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            self.tx.send(&[&hdr, &l4[off..off + n]]);
            off += n;
        }
    }

    /// ICMP destination unreachable (type 3, `code`) about the datagram `orig` (IPv4 header
    /// and on), sent from the gateway; for an IPv6 `orig`, ICMPv6 destination unreachable
    /// (RFC 4443 3.1) with the matching code.
    pub fn send_unreachable(&mut self, code: u8, orig: &[u8]) {
        if orig.first().is_some_and(|b| b >> 4 == 6) {
            return self.send_unreachable6(code, orig);
        }
        let Some(dst) = orig.get(12..16) else { return };
        let dst = Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]);
        let quoted = &orig[..orig.len().min(IPV4_HDR_LEN + 8 + 40)];
        let mut l4 = vec![0u8; 8 + quoted.len()];
        l4[0] = 3;
        l4[1] = code;
        l4[8..].copy_from_slice(quoted);
        let c = !wire::fold(wire::sum(0, &l4));
        l4[2..4].copy_from_slice(&c.to_be_bytes());
        let src = self.cfg.gateway();
        self.send_ipv4(src, dst, 1, &l4);
    }

    fn send_unreachable6(&mut self, code: u8, orig: &[u8]) {
        let Some(d) = orig.get(8..24) else { return };
        let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(d).expect("16 bytes")));
        // No route (→ ENETUNREACH), address unreachable, port unreachable (→ ECONNREFUSED).
        let code6 = match code {
            UNREACH_NET => 0,
            UNREACH_PORT => 4,
            _ => 3,
        };
        let quoted = &orig[..orig.len().min(IPV6_HDR_LEN + 8 + 40)];
        let mut l4 = vec![0u8; 8 + quoted.len()];
        l4[0] = 1;
        l4[1] = code6;
        l4[8..].copy_from_slice(quoted);
        let src = IpAddr::V6(self.cfg.gateway6());
        icmp6_checksum(&mut l4, src, dst);
        self.send_ip(src, dst, 58, &l4);
    }
}

/// Fills the ICMPv6 checksum (RFC 4443 2.3: over the pseudo-header too).
pub(crate) fn icmp6_checksum(msg: &mut [u8], src: IpAddr, dst: IpAddr) {
    msg[2..4].fill(0);
    let c = !wire::fold(wire::sum(wire::pseudo_sum_ip(src, dst, 58, msg.len()), msg));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// A [`Ctx`] borrowing the stack's fields one by one (so its tables stay borrowable), or
/// `None` before the guest's MAC is known.
macro_rules! ctx {
    ($s:expr) => {
        match $s.guest_mac {
            Some(guest_mac) => Some(Ctx {
                cfg: &$s.cfg,
                tx: &mut *$s.tx,
                epoll: $s.epoll.as_raw_fd(),
                guest_mac,
                guest_known: true,
                ident: &mut $s.ident,
            }),
            None => None,
        }
    };
}

/// A [`Ctx`] even before the guest's MAC is known (`guest_known` false, broadcast MAC): for
/// paths where the stack speaks first (host forwards) and the timers that retry them.
macro_rules! ctx_any {
    ($s:expr) => {
        Ctx {
            cfg: &$s.cfg,
            tx: &mut *$s.tx,
            epoll: $s.epoll.as_raw_fd(),
            guest_mac: $s.guest_mac.unwrap_or(EthernetAddress::BROADCAST),
            guest_known: $s.guest_mac.is_some(),
            ident: &mut $s.ident,
        }
    };
}

/// The MAC the stack answers with for one of its addresses (slirp's `52:55:IP`).
pub fn mac_for(ip: Ipv4Addr) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x52, 0x55, o[0], o[1], o[2], o[3]])
}

/// [`mac_for`] for either family (IPv6: `52:55:` and the address's last four bytes).
pub fn mac_for_ip(ip: IpAddr) -> EthernetAddress {
    match ip {
        IpAddr::V4(a) => mac_for(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            EthernetAddress([0x52, 0x55, o[12], o[13], o[14], o[15]])
        }
    }
}

/// ICMP code "network unreachable" (what slirp4netns answers for refused host loopback).
pub const UNREACH_NET: u8 = 0;
pub const UNREACH_HOST: u8 = 1;
pub const UNREACH_PORT: u8 = 3;

/// The user-mode network: frames in from the guest, frames out through a [`GuestTx`], host
/// sockets registered in its epoll instance.
pub struct Stack {
    pub(crate) cfg: Config,
    pub(crate) tx: Box<dyn GuestTx + Send>,
    pub(crate) epoll: OwnedFd,
    guest_mac: Option<EthernetAddress>,
    ident: u16,
    pub(crate) tcp: tcp::TcpTable,
    pub(crate) udp: udp::UdpTable,
    pub(crate) icmp: icmp::IcmpTable,
    /// Host listeners forwarded into the guest, by forward id.
    forwards: HashMap<u32, forward::Listener>,
    dhcp: dhcp::Dhcp,
    frag: frag::Reassembly,
    /// Counters for tests and `--debug`.
    pub stats: Stats,
}

/// What the stack dropped and why: malformed input shows up here, never as a panic.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub frames_in: u64,
    pub dropped_malformed: u64,
    pub dropped_unsupported: u64,
}

impl Stack {
    /// A stack that sends its frames to `tx`. `epoll` is where host sockets are registered;
    /// the runtime (or a test) waits on it and calls [`Stack::socket_ready`].
    pub fn new(cfg: Config, tx: Box<dyn GuestTx + Send>) -> std::io::Result<Stack> {
        // SAFETY: plain syscall; the result is checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let epoll = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
        Ok(Stack {
            dhcp: dhcp::Dhcp::new(&cfg),
            cfg,
            tx,
            epoll,
            guest_mac: None,
            ident: 0,
            tcp: tcp::TcpTable::default(),
            udp: udp::UdpTable::default(),
            icmp: icmp::IcmpTable::default(),
            forwards: HashMap::new(),
            frag: frag::Reassembly::default(),
            stats: Stats::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The epoll instance host sockets are registered in (tokens are opaque to callers).
    pub fn epoll_fd(&self) -> i32 {
        self.epoll.as_raw_fd()
    }

    /// One frame from the tap, `virtio_net_hdr` first.
    pub fn receive(&mut self, buf: &[u8], now: Instant) {
        self.stats.frames_in += 1;
        let (Some(vnet), Some(frame)) = (VnetHdr::parse(buf), buf.get(VNET_HDR_LEN..)) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let src = eth.src_addr();
        if !src.is_unicast() || src.as_bytes()[..2] == [0x52, 0x55] {
            self.stats.dropped_malformed += 1;
            return;
        }
        let first = self.guest_mac.is_none();
        self.guest_mac = Some(src);
        if first {
            // Connections forwarded into the guest before it spoke waited for its MAC.
            let mut ctx = ctx_any!(self);
            self.tcp.resend_syns(&mut ctx);
        }
        match eth.ethertype() {
            // pasta's `-6`: the guest has no IPv4, and nothing of that family is answered.
            EthernetProtocol::Arp if self.cfg.ipv4_on() => self.arp(eth.payload()),
            EthernetProtocol::Ipv4 if self.cfg.ipv4_on() => self.ipv4(&vnet, eth.payload(), now),
            EthernetProtocol::Ipv6 if self.cfg.ipv6 => self.ipv6(&vnet, eth.payload(), now),
            _ => self.stats.dropped_unsupported += 1,
        }
    }

    /// Starts forwarding a host listener into the guest (slirp4netns's `hostfwd`): each
    /// connection accepted on a TCP listener, or each client of a UDP socket, becomes a flow
    /// from the gateway address to `fwd.guest`. Fails if the id is taken or epoll refuses.
    pub fn add_forward(&mut self, fwd: forward::Forward) -> std::io::Result<()> {
        if self.forwards.contains_key(&fwd.id) {
            return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
        }
        let token = crate::token::encode(forward::TOKEN_KIND, 0, fwd.id as usize);
        crate::sys::epoll_add(
            self.epoll.as_raw_fd(),
            fwd.listener.as_raw_fd(),
            libc::EPOLLIN as u32,
            token,
        )?;
        self.forwards.insert(
            fwd.id,
            forward::Listener {
                udp: fwd.udp,
                sock: fwd.listener,
                guest: fwd.guest,
            },
        );
        Ok(())
    }

    /// Stops a forward: its listener is closed; TCP connections already forwarded live on
    /// (as with slirp), UDP flows that answer through the listener end with it.
    pub fn remove_forward(&mut self, id: u32) -> bool {
        let Some(l) = self.forwards.remove(&id) else {
            return false;
        };
        crate::sys::epoll_del(self.epoll.as_raw_fd(), l.sock.as_raw_fd());
        if l.udp {
            self.udp.remove_forward(self.epoll.as_raw_fd(), id);
        }
        true
    }

    fn arp(&mut self, payload: &[u8]) {
        let Ok(pkt) = ArpPacket::new_checked(payload) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&pkt)
        else {
            self.stats.dropped_unsupported += 1;
            return;
        };
        if !self.cfg.answers_arp(target_protocol_addr) {
            return;
        }
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: mac_for(target_protocol_addr),
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        let mut out = [0u8; VNET_HDR_LEN + ETH_HDR_LEN + 28];
        let mut eth = EthernetFrame::new_unchecked(&mut out[VNET_HDR_LEN..]);
        eth.set_src_addr(mac_for(target_protocol_addr));
        eth.set_dst_addr(source_hardware_addr);
        eth.set_ethertype(EthernetProtocol::Arp);
        reply.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        self.tx.send(&[&out]);
    }

    fn ipv4(&mut self, vnet: &VnetHdr, payload: &[u8], now: Instant) {
        let Ok(ip) = Ipv4Packet::new_checked(payload) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if ip.version() != 4 || !ip.verify_checksum() {
            self.stats.dropped_malformed += 1;
            return;
        }
        if ip.more_frags() || ip.frag_offset() != 0 {
            let frag = frag::Fragment {
                src: ip.src_addr(),
                dst: ip.dst_addr(),
                proto: ip.next_header().into(),
                ident: ip.ident(),
                offset: ip.frag_offset() as usize,
                more: ip.more_frags(),
                payload: ip.payload(),
            };
            if let Some(whole) = self.frag.add(frag, now) {
                // The checksum of a reassembled datagram is the guest's own (no offload
                // spans fragments): verify it.
                self.ipv4(&VnetHdr::default(), &whole, now);
            }
            return;
        }
        let datagram = &payload[..ip.total_len() as usize];
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let l4 = ip.payload();
        let trusted = vnet.checksum_trusted();
        let proto = ip.next_header();
        if proto == IpProtocol::Udp && dhcp::is_dhcp_request(l4) {
            if let Some(mut ctx) = ctx!(self) {
                self.dhcp.handle(&mut ctx, l4);
            }
            return;
        }
        // Only unicast from the guest's network to somewhere else is routed.
        if dst.is_broadcast() || dst.is_multicast() || dst.is_unspecified() || src.is_multicast() {
            self.stats.dropped_unsupported += 1;
            return;
        }
        if !trusted && !l4_checksum_ok(src, dst, proto, l4) {
            self.stats.dropped_malformed += 1;
            return;
        }
        let completed = match proto {
            IpProtocol::Udp => inner_checksum_completed(vnet, datagram, datagram.len() - l4.len()),
            _ => None,
        };
        let (l4, datagram) = match &completed {
            Some(d) => (&d[d.len() - l4.len()..], &d[..]),
            None => (l4, datagram),
        };
        let Some(mut ctx) = ctx!(self) else { return };
        match proto {
            IpProtocol::Tcp => {
                self.tcp
                    .segment(&mut ctx, src.into(), dst.into(), l4, datagram, now)
            }
            IpProtocol::Udp => {
                self.udp
                    .datagram(&mut ctx, src.into(), dst.into(), l4, datagram, now)
            }
            IpProtocol::Icmp => self.icmp.message(&mut ctx, src, dst, l4, datagram, now),
            _ => self.stats.dropped_unsupported += 1,
        }
    }

    fn ipv6(&mut self, vnet: &VnetHdr, payload: &[u8], now: Instant) {
        let Ok(ip) = Ipv6Packet::new_checked(payload) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if ip.version() != 6 {
            self.stats.dropped_malformed += 1;
            return;
        }
        let datagram = &payload[..IPV6_HDR_LEN + ip.payload_len() as usize];
        let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
        let l4 = ip.payload();
        let proto: u8 = ip.next_header().into();
        // Extension headers (hop-by-hop MLD reports, fragments) are not routed.
        if !matches!(proto, 6 | 17 | 58) || ip.src_addr().is_multicast() {
            self.stats.dropped_unsupported += 1;
            return;
        }
        let trusted = vnet.checksum_trusted() && proto != 58;
        let sum = wire::sum(wire::pseudo_sum_ip(src, dst, proto, l4.len()), l4);
        if !trusted && wire::fold(sum) != 0xffff {
            self.stats.dropped_malformed += 1;
            return;
        }
        let completed = match proto {
            17 => inner_checksum_completed(vnet, datagram, IPV6_HDR_LEN),
            _ => None,
        };
        let (l4, datagram) = match &completed {
            Some(d) => (&d[IPV6_HDR_LEN..], &d[..]),
            None => (l4, datagram),
        };
        let Some(mut ctx) = ctx!(self) else { return };
        match proto {
            58 => icmp::message6(&mut ctx, src, dst, l4, datagram),
            _ if ip.dst_addr().is_multicast() => self.stats.dropped_unsupported += 1,
            6 => self.tcp.segment(&mut ctx, src, dst, l4, datagram, now),
            _ => self.udp.datagram(&mut ctx, src, dst, l4, datagram, now),
        }
    }

    /// A host socket registered by the stack became ready (`events` from epoll).
    pub fn socket_ready(&mut self, token: u64, events: u32, now: Instant) {
        if token >> 56 == forward::TOKEN_KIND {
            let id = (token & 0xffff_ffff) as u32;
            let Some(l) = self.forwards.get(&id) else {
                return;
            };
            let mut ctx = ctx_any!(self);
            if l.udp {
                self.udp
                    .forward_ready(&mut ctx, id, l.sock.as_raw_fd(), l.guest, now);
            } else {
                forward::accept_all(&mut self.tcp, &mut ctx, l, now);
            }
            return;
        }
        let Some(mut ctx) = ctx!(self) else { return };
        match token >> 56 {
            tcp::TOKEN_KIND => self.tcp.ready(&mut ctx, token, events, now),
            udp::TOKEN_KIND => self.udp.ready(&mut ctx, token, now),
            icmp::TOKEN_KIND => self.icmp.ready(&mut ctx, token, now),
            _ => {}
        }
    }

    /// Work deferred to the end of a batch of frames (one ACK per connection, not per
    /// segment).
    pub fn flush(&mut self, now: Instant) {
        if let Some(mut ctx) = ctx!(self) {
            self.tcp.flush(&mut ctx, now);
        }
    }

    /// Timers: TCP retransmission and zero-window probes, UDP and ICMP flow expiry.
    pub fn poll_timers(&mut self, now: Instant) {
        {
            // Also before the guest has spoken: forwarded connections retry their ARP.
            let mut ctx = ctx_any!(self);
            self.tcp.timers(&mut ctx, now);
        }
        self.udp
            .expire(self.epoll.as_raw_fd(), now, self.cfg.udp_timeout);
        self.icmp.expire(now);
        self.frag.expire(now);
    }

    /// How many TCP connections the timer lists hold: (armed, mapped).
    #[cfg(test)]
    pub(crate) fn tcp_timer_lists(&self) -> (usize, usize) {
        self.tcp.timer_lists()
    }

    /// Number of live TCP connections, UDP flows and ICMP flows.
    pub fn flow_counts(&self) -> (usize, usize, usize) {
        (self.tcp.len(), self.udp.len(), self.icmp.len())
    }
}

fn l4_checksum_ok(src: Ipv4Address, dst: Ipv4Address, proto: IpProtocol, l4: &[u8]) -> bool {
    match proto {
        IpProtocol::Tcp | IpProtocol::Udp => {
            if proto == IpProtocol::Udp && l4.get(6..8) == Some(&[0, 0]) {
                return true; // UDP without checksum (RFC 768)
            }
            let p: u8 = proto.into();
            wire::fold(wire::sum(wire::pseudo_sum(src, dst, p, l4.len()), l4)) == 0xffff
        }
        IpProtocol::Icmp => wire::fold(wire::sum(0, l4)) == 0xffff,
        _ => true,
    }
}

/// A guest UDP datagram whose partial checksum (`NEEDS_CSUM`) lies *inside its payload*,
/// completed: a copy of `datagram` (IP header on) with the checksum written, or `None` when
/// there is nothing to complete.
///
/// Why: the guest kernel's tunnels (VXLAN, Geneve, a FOU or GUE encapsulation) send the
/// *inner* TCP or UDP checksum as a partial one and fill the outer UDP checksum in by local
/// checksum offload, so the vnet header's `csum_start` points at the inner L4 header. The
/// stack forwards a UDP payload verbatim, so an unfinished inner checksum would reach the
/// peer as garbage and every inner TCP segment be dropped there (TcpInCsumErrors) while
/// ping, whose ICMP checksum is never offloaded, still works. The kernel itself would have
/// run `skb_checksum_help` before a device without checksum offload: this is that step.
/// A partial checksum of the outer UDP header is left alone: the stack drops that header.
fn inner_checksum_completed(vnet: &VnetHdr, datagram: &[u8], l4_at: usize) -> Option<Vec<u8>> {
    if vnet.flags & wire::VNET_F_NEEDS_CSUM == 0 {
        return None;
    }
    // csum_start counts from the Ethernet header; the datagram starts after it.
    let start = (vnet.csum_start as usize).checked_sub(ETH_HDR_LEN)?;
    let at = start + vnet.csum_offset as usize;
    if start < l4_at + wire::UDP_HDR_LEN || at + 2 > datagram.len() {
        return None;
    }
    let mut d = datagram.to_vec();
    // The field holds the pseudo-header sum; summing from csum_start on includes it.
    let c = !wire::fold(wire::sum(0, &d[start..]));
    // 0 means "no checksum" to an inner UDP header; 0xffff is the same sum, and valid.
    let c = if c == 0 { 0xffff } else { c };
    d[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Some(d)
}
