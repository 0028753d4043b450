//! Opening connections, both ways, and refusing them.
//!
//! A guest SYN for an address the host routes becomes a non-blocking `socket()` +
//! `connect()` (bound to the outbound address if one is set); the connection stays
//! `Connecting`, answering nothing, until the socket is writable, and only then sends our
//! SYN-ACK, so that the guest sees a refusal the way a real peer's would and never a
//! connection we cannot complete. A refused connect is answered by what the host's error
//! means: network unreachable (`ENETUNREACH`, and `EACCES`/`EPERM`, a local policy's
//! refusal) and host unreachable (`EHOSTUNREACH`, `ETIMEDOUT`) become ICMP errors quoting
//! the SYN (`syn_quote`, the IP header + 8 bytes), anything else (`ECONNREFUSED` among
//! them) a RST|ACK of the SYN, as for a segment of no connection.
//!
//! A host connection accepted on a forward is opened into the guest the other way round:
//! from the gateway address and the next free ephemeral port ([`super::next_ephemeral`]),
//! with our SYN (or, while the guest's MAC is unknown, an ARP request; `resend_syns` sends
//! the SYNs once it is heard from), and `SynSent` until the guest's SYN-ACK (RFC 9293
//! 3.10.7.3, without simultaneous open). The socket starts `readable`: the client may have
//! written before the accept, and edge-triggered epoll would not say so again.
//!
//! Both ways the MSS is the guest's (536 if it sent none) clamped to 64..=what the guest's
//! MTU allows; window scaling is used only if both sides offer it (our SYN always offers
//! `RCV_WSCALE`, our SYN-ACK only if the guest's SYN offered a scale), and a SYN's window
//! is never scaled. Past `MAX_CONNS` connections a new one is reset, and so is one whose
//! host socket cannot be made (past the process's open-file limit: see `MAX_CONNS`).
//! Retransmitting our SYN or SYN-ACK is `timers.rs`'s job; completing the guest's handshake
//! with its ACK is the first step of a known connection's segment (`guest_to_host.rs`).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use super::output::{emit, reset_unknown, send_ack, send_syn, send_synack};
use super::{
    ACK, Conn, Key, RST, RTO_MIN, SYN, Seg, State, TcpTable, ip_hdr_len, next_ephemeral, our_mss,
};
use crate::stack::{Ctx, UNREACH_NET};
use crate::sys;

/// Most connections at once; a new one past it is reset.
///
/// What bounds the number of connections in practice is not this but open files: each
/// connection holds its host socket, so the stack holds one descriptor per connection and
/// `socket()` fails past `RLIMIT_NOFILE` (the stack raises its soft limit to the hard one
/// when it starts, `runtime.rs`; the hard limit is the user's or the system's to set). This
/// cap bounds the table's own memory for a guest that opens connections without end: an
/// idle connection costs its `Conn` record and table entries, about 0.3 KiB, and its
/// kernel socket, which is nobody's RSS; a busy one maps its rings as far as data goes.
/// 131,072 leaves a third of headroom over 100,000 idle flows; the timers cost nothing per
/// idle connection (`timers.rs`), so the table's size does not slow the busy ones.
const MAX_CONNS: usize = 1 << 17;

impl TcpTable {
    pub(super) fn open(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: Key,
        seg: &Seg<'_>,
        datagram: &[u8],
        now: Instant,
    ) -> Option<usize> {
        let Some(to) = ctx.cfg.host_destination(key.remote) else {
            ctx.send_unreachable(UNREACH_NET, datagram);
            return None;
        };
        if self.by_key.len() >= MAX_CONNS {
            reset_unknown(ctx, key, seg);
            return None;
        }
        let bind = ctx.cfg.outbound_for(to);
        let sock = match sys::socket(to, libc::SOCK_STREAM, 0, bind) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("tcp socket for {:?}: {e}", key.remote);
                reset_unknown(ctx, key, seg);
                return None;
            }
        };
        let connected = match sys::connect(sock.as_raw_fd(), to) {
            Ok(c) => c,
            Err(e) => {
                self.refuse(ctx, key, seg, datagram, e.raw_os_error().unwrap_or(0));
                return None;
            }
        };
        let Some(idx) = self.register(ctx, &sock) else {
            reset_unknown(ctx, key, seg);
            return None;
        };
        let iss = self.new_iss(key, now);
        let quote_len = datagram.len().min(ip_hdr_len(key.guest) + 8);
        let mss = (seg.mss.unwrap_or(536) as usize).clamp(64, our_mss(ctx, key.guest) as usize);
        let mut conn = Conn::new(key, sock, State::Connecting, iss, mss);
        conn.syn_quote = datagram[..quote_len].to_vec();
        conn.rcv_nxt = seg.seq.wrapping_add(1);
        conn.acked_to = conn.rcv_nxt;
        conn.snd_wnd = seg.window as u32;
        conn.snd_wscale = seg.wscale.unwrap_or(0).min(14);
        conn.wscale_ok = seg.wscale.is_some();
        self.conns[idx] = Some(conn);
        self.by_key.insert(key, idx);
        if connected {
            self.connected(ctx, idx, now);
        }
        Some(idx)
    }

    /// A free slot, with `sock` registered in epoll under its token.
    fn register(&mut self, ctx: &Ctx<'_>, sock: &OwnedFd) -> Option<usize> {
        let idx = crate::token::claim_slot(&mut self.conns, &mut self.gens, self.free.pop());
        let token = self.token(idx);
        let ev = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        if sys::epoll_add(ctx.epoll, sock.as_raw_fd(), ev, token).is_err() {
            self.free.push(idx);
            return None;
        }
        Some(idx)
    }

    fn new_iss(&mut self, key: Key, now: Instant) -> u32 {
        self.isn_counter = self.isn_counter.wrapping_add(0x0001_0001);
        let nanos = now.elapsed().subsec_nanos();
        nanos ^ self.isn_counter ^ ((key.guest.port() as u32) << 16)
    }

    /// A host connection accepted on a forward: opened into the guest at `guest`, from the
    /// gateway address and an ephemeral port (our SYN now, or once the guest's MAC is known).
    /// Over the connection limit, or out of ports, the host client is reset.
    pub fn open_to_guest(
        &mut self,
        ctx: &mut Ctx<'_>,
        sock: OwnedFd,
        guest: SocketAddr,
        now: Instant,
    ) {
        let gw = match guest {
            SocketAddr::V4(_) => IpAddr::V4(ctx.cfg.gateway()),
            SocketAddr::V6(_) => IpAddr::V6(ctx.cfg.gateway6()),
        };
        let by_key = &self.by_key;
        let port = next_ephemeral(&mut self.fwd_port, |p| {
            by_key.contains_key(&Key {
                guest,
                remote: SocketAddr::new(gw, p),
            })
        });
        let (Some(port), true) = (port, self.by_key.len() < MAX_CONNS) else {
            sys::set_linger_zero(sock.as_raw_fd());
            return;
        };
        let key = Key {
            guest,
            remote: SocketAddr::new(gw, port),
        };
        let Some(idx) = self.register(ctx, &sock) else {
            sys::set_linger_zero(sock.as_raw_fd());
            return;
        };
        let iss = self.new_iss(key, now);
        let mut conn = Conn::new(key, sock, State::SynSent, iss, our_mss(ctx, guest) as usize);
        conn.snd_nxt = iss.wrapping_add(1);
        // The client may have written before we accepted; edge-triggered epoll would not
        // say so again.
        conn.readable = true;
        conn.rto_at = Some(now + RTO_MIN);
        self.conns[idx] = Some(conn);
        self.by_key.insert(key, idx);
        send_syn(ctx, self.conns[idx].as_mut().expect("just stored"));
        self.watch(idx);
    }

    /// Sends the SYN of every connection still waiting for the guest (its MAC just became
    /// known).
    pub fn resend_syns(&mut self, ctx: &mut Ctx<'_>) {
        for c in self.conns.iter_mut().flatten() {
            if c.state == State::SynSent {
                send_syn(ctx, c);
            }
        }
    }

    /// The guest's answer to our SYN (RFC 9293 3.10.7.3, without simultaneous open).
    pub(super) fn on_syn_sent(
        &mut self,
        ctx: &mut Ctx<'_>,
        idx: usize,
        seg: &Seg<'_>,
        now: Instant,
    ) {
        let c = self.conns[idx].as_mut().expect("indexed connection");
        let ack_ok = seg.has(ACK) && seg.ack == c.iss.wrapping_add(1);
        if seg.has(ACK) && !ack_ok {
            if !seg.has(RST) {
                let (r, g) = (c.key.remote, c.key.guest);
                emit(ctx, r, g, seg.ack, 0, RST, 0, None, [&[], &[]], 1);
            }
            return;
        }
        if seg.has(RST) {
            if ack_ok {
                // The guest refused: the host client sees a reset too.
                self.remove(ctx, idx, true);
            }
            return;
        }
        if !seg.has(SYN) || !ack_ok {
            return;
        }
        c.rcv_nxt = seg.seq.wrapping_add(1);
        c.acked_to = c.rcv_nxt;
        c.snd_una = seg.ack;
        c.wscale_ok = seg.wscale.is_some();
        c.snd_wscale = seg.wscale.unwrap_or(0).min(14);
        // The window of a SYN is never scaled.
        c.snd_wnd = seg.window as u32;
        c.mss = (seg.mss.unwrap_or(536) as usize).clamp(64, our_mss(ctx, c.key.guest) as usize);
        c.state = State::Open;
        c.rto = RTO_MIN;
        c.rto_at = None;
        c.retries = 0;
        send_ack(ctx, c);
        self.pump(ctx, idx, now);
    }

    /// The host refused a connection: RST, or ICMP for an unreachable network or host.
    pub(super) fn refuse(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: Key,
        seg: &Seg<'_>,
        quote: &[u8],
        errno: i32,
    ) {
        match errno {
            libc::ENETUNREACH | libc::EACCES | libc::EPERM => {
                ctx.send_unreachable(UNREACH_NET, quote)
            }
            libc::EHOSTUNREACH | libc::ETIMEDOUT => {
                ctx.send_unreachable(crate::stack::UNREACH_HOST, quote)
            }
            // A refused SYN is answered as a segment for no connection: RST|ACK of the SYN.
            _ => reset_unknown(ctx, key, seg),
        }
    }

    pub(super) fn connected(&mut self, ctx: &mut Ctx<'_>, idx: usize, now: Instant) {
        let c = self.conns[idx].as_mut().expect("live connection");
        c.state = State::SynAckSent;
        c.snd_nxt = c.iss.wrapping_add(1);
        c.rto_at = Some(now + c.rto);
        send_synack(ctx, c);
    }
}
