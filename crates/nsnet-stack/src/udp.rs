//! UDP NAT and the DNS forwarder.
//!
//! # Theory of operation (RFC 768; RFC 4787 for NAT behaviour; RFC 1035 4.2.1 for DNS over UDP)
//!
//! Each guest flow — (guest address and port, destination address and port) — gets its own
//! host socket, `connect()`ed to where the destination maps on the host (see
//! [`Config::host_destination`](crate::Config::host_destination)): the gateway CIDR+2 is
//! host loopback unless `disable_host_loopback`, and CIDR+3 port 53 is the first host
//! nameserver. That makes the DNS forwarder a flow like any other: queries go out from a
//! host socket to the resolver, answers come back with their source rewritten to CIDR+3.
//! Loopback resolvers (`127.0.0.53`) are reached even with `disable_host_loopback`, as
//! slirp4netns does: the guest names only CIDR+3, never host loopback itself.
//!
//! A connected socket only receives from its peer, so the mapping is endpoint-dependent
//! (RFC 4787's "address and port-dependent"), which is what the guest expects of a NAT and
//! what keeps strangers out. An ICMP port unreachable received by the host socket shows up
//! as `ECONNREFUSED` and is passed to the guest as an ICMP port unreachable quoting its own
//! last datagram, so `recv()` in the guest fails the way it would on a real network.
//!
//! Host forwards (`forward.rs`) add flows the other way: a host client's datagrams to a
//! forwarded port go to the guest from the gateway address, and the guest's replies leave
//! through the forward's listener to that client.
//!
//! Flows expire after `udp_timeout` idle (DNS flows after 10 s). Replies longer than the
//! guest MTU are fragmented (RFC 791 section 2.3).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use smoltcp::wire::UdpPacket;

use crate::stack::{Ctx, UNREACH_NET, UNREACH_PORT};
use crate::sys;
use crate::wire::{self, IPV4_HDR_LEN, IPV6_HDR_LEN, UDP_HDR_LEN};

pub(crate) const TOKEN_KIND: u64 = 2;
const MAX_FLOWS: usize = 4096;
const DNS_TIMEOUT: Duration = Duration::from_secs(10);
/// Datagrams read per readiness event before giving others a turn.
const READ_BUDGET: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    guest: SocketAddr,
    remote: SocketAddr,
}

struct Flow {
    key: Key,
    /// The flow's own connected host socket; `None` for a flow of a host forward, which
    /// answers through the forward's listener (`back`).
    sock: Option<OwnedFd>,
    back: Option<Back>,
    last: Instant,
    dns: bool,
    /// The guest's last datagram (IPv4 header + 8 bytes), quoted in ICMP errors.
    quote: Vec<u8>,
}

/// Where a forwarded flow's guest replies go: `sendto(listener, client)`.
struct Back {
    fwd: u32,
    /// The forward's listener; it outlives the flow (removing a forward ends its flows).
    listener: RawFd,
    client: SocketAddr,
}

#[derive(Default)]
pub(crate) struct UdpTable {
    flows: Vec<Option<Flow>>,
    gens: Vec<u32>,
    free: Vec<usize>,
    by_key: HashMap<Key, usize>,
    /// Flows of host forwards, by (forward id, host client).
    by_client: HashMap<(u32, SocketAddr), usize>,
    fwd_port: u16,
    buf: Vec<u8>,
}

impl UdpTable {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn datagram(
        &mut self,
        ctx: &mut Ctx<'_>,
        src: IpAddr,
        dst: IpAddr,
        l4: &[u8],
        datagram: &[u8],
        now: Instant,
    ) {
        let Ok(udp) = UdpPacket::new_checked(l4) else {
            return;
        };
        if udp.src_port() == 0 || udp.dst_port() == 0 {
            return;
        }
        let key = Key {
            guest: SocketAddr::new(src, udp.src_port()),
            remote: SocketAddr::new(dst, udp.dst_port()),
        };
        let payload = udp.payload();
        let iphl = if src.is_ipv4() {
            IPV4_HDR_LEN
        } else {
            IPV6_HDR_LEN
        };
        let quote = &datagram[..datagram.len().min(iphl + UDP_HDR_LEN)];
        let idx = match self.by_key.get(&key) {
            Some(&i) => i,
            None => match self.open(ctx, key, quote, now) {
                Some(i) => i,
                None => return,
            },
        };
        let f = self.flows[idx].as_mut().expect("indexed flow");
        f.last = now;
        f.quote.clear();
        f.quote.extend_from_slice(quote);
        let sent = match (&f.sock, &f.back) {
            (Some(s), _) => sys::write(s.as_raw_fd(), payload),
            (None, Some(b)) => sys::sendto(b.listener, payload, b.client),
            (None, None) => return,
        };
        if let Err(e) = sent
            && e.raw_os_error() == Some(libc::ECONNREFUSED)
        {
            ctx.send_unreachable(UNREACH_PORT, quote);
        }
    }

    fn alloc(&mut self) -> usize {
        crate::token::claim_slot(&mut self.flows, &mut self.gens, self.free.pop())
    }

    /// Datagrams from host clients of forward `fwd`: each client's become a flow from the
    /// gateway (an ephemeral port) to `guest`.
    pub fn forward_ready(
        &mut self,
        ctx: &mut Ctx<'_>,
        fwd: u32,
        listener: RawFd,
        guest: SocketAddr,
        now: Instant,
    ) {
        if self.buf.len() < 65536 {
            self.buf = vec![0; 65536];
        }
        for _ in 0..READ_BUDGET {
            let (n, client) = match sys::recvfrom(listener, &mut self.buf[UDP_HDR_LEN..]) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if !ctx.guest_known {
                // Dropped like a datagram to a host whose MAC is unresolved; the ARP
                // request lets the client's retry through.
                if let IpAddr::V4(ip) = guest.ip() {
                    ctx.send_arp_request(ip);
                }
                continue;
            }
            let idx = match self.by_client.get(&(fwd, client)) {
                Some(&i) => i,
                None => {
                    if self.by_key.len() >= MAX_FLOWS {
                        continue;
                    }
                    let gw = match guest {
                        SocketAddr::V4(_) => IpAddr::V4(ctx.cfg.gateway()),
                        SocketAddr::V6(_) => IpAddr::V6(ctx.cfg.gateway6()),
                    };
                    let by_key = &self.by_key;
                    let Some(port) = crate::tcp::next_ephemeral(&mut self.fwd_port, |p| {
                        by_key.contains_key(&Key {
                            guest,
                            remote: SocketAddr::new(gw, p),
                        })
                    }) else {
                        continue;
                    };
                    let key = Key {
                        guest,
                        remote: SocketAddr::new(gw, port),
                    };
                    let idx = self.alloc();
                    self.flows[idx] = Some(Flow {
                        key,
                        sock: None,
                        back: Some(Back {
                            fwd,
                            listener,
                            client,
                        }),
                        last: now,
                        dns: false,
                        quote: Vec::new(),
                    });
                    self.by_key.insert(key, idx);
                    self.by_client.insert((fwd, client), idx);
                    idx
                }
            };
            let f = self.flows[idx].as_mut().expect("indexed flow");
            f.last = now;
            let l4 = &mut self.buf[..UDP_HDR_LEN + n];
            send_udp(ctx, l4, f.key.remote, f.key.guest);
        }
    }

    /// Ends the flows of a removed forward (their listener is about to close).
    pub fn remove_forward(&mut self, epoll: i32, fwd: u32) {
        for idx in 0..self.flows.len() {
            if self.flows[idx]
                .as_ref()
                .is_some_and(|f| f.back.as_ref().is_some_and(|b| b.fwd == fwd))
            {
                self.close(epoll, idx);
            }
        }
    }

    fn close(&mut self, epoll: i32, idx: usize) {
        if let Some(f) = self.flows[idx].take() {
            if let Some(s) = &f.sock {
                sys::epoll_del(epoll, s.as_raw_fd());
            }
            if let Some(b) = &f.back {
                self.by_client.remove(&(b.fwd, b.client));
            }
            self.by_key.remove(&f.key);
            self.free.push(idx);
        }
    }

    fn open(&mut self, ctx: &mut Ctx<'_>, key: Key, quote: &[u8], now: Instant) -> Option<usize> {
        let Some(to) = ctx.cfg.host_destination(key.remote) else {
            ctx.send_unreachable(UNREACH_NET, quote);
            return None;
        };
        if self.by_key.len() >= MAX_FLOWS {
            return None;
        }
        let bind = ctx.cfg.outbound_for(to);
        let sock = sys::socket(to, libc::SOCK_DGRAM, 0, bind).ok()?;
        if sys::connect(sock.as_raw_fd(), to).is_err() {
            ctx.send_unreachable(UNREACH_NET, quote);
            return None;
        }
        let idx = self.alloc();
        let token = crate::token::encode(TOKEN_KIND, self.gens[idx], idx);
        if sys::epoll_add(ctx.epoll, sock.as_raw_fd(), libc::EPOLLIN as u32, token).is_err() {
            self.free.push(idx);
            return None;
        }
        let dns = !ctx.cfg.disable_dns
            && key.remote.port() == 53
            && (key.remote.ip() == IpAddr::V4(ctx.cfg.dns())
                || key.remote.ip() == IpAddr::V6(ctx.cfg.dns6()));
        self.flows[idx] = Some(Flow {
            key,
            sock: Some(sock),
            back: None,
            last: now,
            dns,
            quote: Vec::new(),
        });
        self.by_key.insert(key, idx);
        Some(idx)
    }

    /// The host socket of a flow is readable: pass its datagrams to the guest.
    pub fn ready(&mut self, ctx: &mut Ctx<'_>, token: u64, now: Instant) {
        let Some(idx) = crate::token::current(token, &self.gens) else {
            return;
        };
        let Some(f) = self.flows[idx].as_mut() else {
            return;
        };
        let Some(sock) = f.sock.as_ref().map(|s| s.as_raw_fd()) else {
            return;
        };
        if self.buf.len() < 65536 {
            self.buf = vec![0; 65536];
        }
        for _ in 0..READ_BUDGET {
            match sys::recv(sock, &mut self.buf[UDP_HDR_LEN..]) {
                Ok(n) => {
                    f.last = now;
                    let l4 = &mut self.buf[..UDP_HDR_LEN + n];
                    send_udp(ctx, l4, f.key.remote, f.key.guest);
                }
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    let q = f.quote.clone();
                    ctx.send_unreachable(UNREACH_PORT, &q);
                }
                Err(_) => break,
            }
        }
    }

    /// Closes flows idle for longer than their timeout.
    pub fn expire(&mut self, epoll: i32, now: Instant, timeout: Duration) {
        for idx in 0..self.flows.len() {
            let expired = self.flows[idx].as_ref().is_some_and(|f| {
                let t = if f.dns {
                    DNS_TIMEOUT.min(timeout)
                } else {
                    timeout
                };
                now.saturating_duration_since(f.last) >= t
            });
            if expired {
                self.close(epoll, idx);
            }
        }
    }
}

/// Fills the UDP header of `l4` (payload in place) and sends the datagram to the guest: IPv4
/// above the MTU as fragments, IPv6 whole (no fragment header yet).
fn send_udp(ctx: &mut Ctx<'_>, l4: &mut [u8], src: SocketAddr, dst: SocketAddr) {
    emit_udp(l4, src, dst);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ctx.send_ipv4_fragmented(s, d, 17, l4),
        (s, d) => ctx.send_ip(s, d, 17, l4),
    }
}

/// Fills the UDP header (ports, length, checksum) of `l4`, whose payload is in place.
pub(crate) fn emit_udp(l4: &mut [u8], src: SocketAddr, dst: SocketAddr) {
    let len = l4.len();
    l4[0..2].copy_from_slice(&src.port().to_be_bytes());
    l4[2..4].copy_from_slice(&dst.port().to_be_bytes());
    l4[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    l4[6..8].fill(0);
    let mut c = !wire::fold(wire::sum(
        wire::pseudo_sum_ip(src.ip(), dst.ip(), 17, len),
        l4,
    ));
    if c == 0 {
        c = 0xffff;
    }
    l4[6..8].copy_from_slice(&c.to_be_bytes());
}
