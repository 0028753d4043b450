//! ICMP echo: answered for the stack's own addresses, forwarded through unprivileged ICMP
//! sockets for everything else.
//!
//! # Theory of operation (RFC 792; Linux `icmp(7)` "ping sockets")
//!
//! The gateway and DNS addresses answer echo requests themselves, so `ping 10.0.2.2` works
//! even with `disable_host_loopback`, as with slirp4netns.
//!
//! For other destinations the stack opens a `SOCK_DGRAM, IPPROTO_ICMP` socket, one per
//! (guest, destination, echo identifier), `connect()`s it and sends the guest's echo
//! request through it. The kernel owns the identifier on such sockets (it rewrites it to the
//! socket's "port"), so replies have their identifier put back to the guest's and their
//! checksum recomputed. Ping sockets need the user's group in `net.ipv4.ping_group_range`;
//! where that is not so (the default, "1 0"), the guest gets "host unreachable" at once.
//! Host loopback is refused with "network unreachable" when `disable_host_loopback` is set.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::stack::{Ctx, UNREACH_HOST, UNREACH_NET, icmp6_checksum, mac_for_ip};
use crate::sys;
use crate::wire;

pub(crate) const TOKEN_KIND: u64 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_FLOWS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    guest: Ipv4Addr,
    remote: Ipv4Addr,
    ident: u16,
}

struct Flow {
    key: Key,
    sock: OwnedFd,
    last: Instant,
}

#[derive(Default)]
pub(crate) struct IcmpTable {
    flows: Vec<Option<Flow>>,
    gens: Vec<u32>,
    by_key: HashMap<Key, usize>,
    expired: Vec<OwnedFd>,
    /// Receive buffer for echo replies, allocated on first use and kept.
    buf: Vec<u8>,
}

fn checksum(msg: &mut [u8]) {
    msg[2..4].fill(0);
    let c = !wire::fold(wire::sum(0, msg));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

impl IcmpTable {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn message(
        &mut self,
        ctx: &mut Ctx<'_>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        l4: &[u8],
        datagram: &[u8],
        now: Instant,
    ) {
        // Echo request: type 8, code 0, at least the 8-byte header, valid checksum.
        if l4.len() < 8 || l4[0] != 8 || l4[1] != 0 || wire::fold(wire::sum(0, l4)) != 0xffff {
            return;
        }
        if dst == ctx.cfg.gateway() || dst == ctx.cfg.dns() {
            let mut reply = l4.to_vec();
            reply[0] = 0;
            checksum(&mut reply);
            ctx.send_ipv4(dst, src, 1, &reply);
            return;
        }
        if ctx
            .cfg
            .host_destination(SocketAddr::V4(SocketAddrV4::new(dst, 1)))
            .is_none()
        {
            ctx.send_unreachable(UNREACH_NET, datagram);
            return;
        }
        let key = Key {
            guest: src,
            remote: dst,
            ident: u16::from_be_bytes([l4[4], l4[5]]),
        };
        let idx = match self.by_key.get(&key) {
            Some(&i) => i,
            None => match self.open(ctx, key, now) {
                Some(i) => i,
                None => {
                    ctx.send_unreachable(UNREACH_HOST, datagram);
                    return;
                }
            },
        };
        let f = self.flows[idx].as_mut().expect("indexed flow");
        f.last = now;
        let _ = sys::write(f.sock.as_raw_fd(), l4);
    }

    fn open(&mut self, ctx: &mut Ctx<'_>, key: Key, now: Instant) -> Option<usize> {
        if self.by_key.len() >= MAX_FLOWS {
            return None;
        }
        let to = SocketAddr::V4(SocketAddrV4::new(key.remote, 0));
        let bind = ctx.cfg.outbound_addr.map(IpAddr::V4);
        let sock = sys::socket(to, libc::SOCK_DGRAM, libc::IPPROTO_ICMP, bind).ok()?;
        sys::connect(sock.as_raw_fd(), to).ok()?;
        let free = self.flows.iter().position(Option::is_none);
        let idx = crate::token::claim_slot(&mut self.flows, &mut self.gens, free);
        let token = crate::token::encode(TOKEN_KIND, self.gens[idx], idx);
        sys::epoll_add(ctx.epoll, sock.as_raw_fd(), libc::EPOLLIN as u32, token).ok()?;
        self.flows[idx] = Some(Flow {
            key,
            sock,
            last: now,
        });
        self.by_key.insert(key, idx);
        Some(idx)
    }

    pub fn ready(&mut self, ctx: &mut Ctx<'_>, token: u64, now: Instant) {
        let Some(idx) = crate::token::current(token, &self.gens) else {
            return;
        };
        let Some(f) = self.flows[idx].as_mut() else {
            return;
        };
        if self.buf.len() < 65536 {
            self.buf = vec![0; 65536];
        }
        while let Ok(n) = sys::recv(f.sock.as_raw_fd(), &mut self.buf) {
            f.last = now;
            if n < 8 {
                continue;
            }
            let msg = &mut self.buf[..n];
            msg[4..6].copy_from_slice(&f.key.ident.to_be_bytes());
            checksum(msg);
            ctx.send_ipv4_fragmented(f.key.remote, f.key.guest, 1, msg);
        }
    }

    pub fn expire(&mut self, now: Instant) {
        self.expired.clear();
        for slot in &mut self.flows {
            if slot
                .as_ref()
                .is_some_and(|f| now.saturating_duration_since(f.last) >= TIMEOUT)
            {
                let f = slot.take().expect("checked");
                self.by_key.remove(&f.key);
                // Closing the fd removes it from the epoll set.
                self.expired.push(f.sock);
            }
        }
    }
}

/// ICMPv6 from the guest (RFC 4443, RFC 4861): neighbour solicitations for the gateway and
/// DNS addresses (in pasta's model, for any address but the guest's: `Config::answers_ndp`)
/// get a neighbour advertisement, echo requests to gateway or DNS an echo reply, echo
/// requests elsewhere "address unreachable" (no ping-socket forwarding for IPv6 yet). The
/// rest (router solicitations, MLD) is left unanswered: the guest is configured statically.
pub(crate) fn message6(ctx: &mut Ctx<'_>, src: IpAddr, dst: IpAddr, l4: &[u8], datagram: &[u8]) {
    if l4.len() < 8 {
        return;
    }
    match (l4[0], l4[1]) {
        // Neighbour solicitation: type 135, target at 8..24.
        (135, 0) if l4.len() >= 24 => {
            let target = Ipv6Addr::from(<[u8; 16]>::try_from(&l4[8..24]).expect("16 bytes"));
            if !ctx.cfg.answers_ndp(target, src) {
                return;
            }
            let to = if src.is_unspecified() {
                IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1))
            } else {
                src
            };
            let mut na = vec![0u8; 32];
            na[0] = 136;
            // Router, solicited (unless answering DAD), override.
            na[4] = if src.is_unspecified() { 0xa0 } else { 0xe0 };
            na[8..24].copy_from_slice(&target.octets());
            na[24] = 2; // target link-layer address option, 8 bytes
            na[25] = 1;
            na[26..32].copy_from_slice(mac_for_ip(IpAddr::V6(target)).as_bytes());
            icmp6_checksum(&mut na, IpAddr::V6(target), to);
            ctx.send_ip(IpAddr::V6(target), to, 58, &na);
        }
        // Echo request.
        (128, 0) if ctx.cfg.is_own(dst) => {
            let mut reply = l4.to_vec();
            reply[0] = 129;
            icmp6_checksum(&mut reply, dst, src);
            ctx.send_ip(dst, src, 58, &reply);
        }
        (128, 0) if !dst.is_multicast() => {
            let code = match ctx.cfg.host_destination(SocketAddr::new(dst, 1)) {
                None => UNREACH_NET,
                Some(_) => UNREACH_HOST,
            };
            ctx.send_unreachable(code, datagram);
        }
        _ => {}
    }
}
