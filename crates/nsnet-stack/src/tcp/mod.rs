//! TCP termination: every guest connection becomes a host socket connection.
//!
//! # Theory of operation (read RFC 9293 first; RFC 7323 for window scaling, RFC 6298 for RTO)
//!
//! We are not a TCP stack; we are the far end of each of the guest's connections, and the
//! near end of a host socket. The design is passt's `tcp.c`: map guest segments straight onto
//! socket calls and let the socket buffers drive the windows.
//!
//! ```text
//!  guest SYN ──► socket()+connect() (non-blocking) ──► connected: SYN-ACK
//!                                                  └─► refused:   RST (or ICMP net unreachable)
//!  guest data (seq == rcv_nxt) ──► send() to the socket; what it does not take waits in
//!                                  `to_host` (bounded); ACK what was taken or queued, once
//!                                  per batch of tap frames (at once every 512 KiB);
//!                                  window = room left in `to_host`
//!  guest data (seq > rcv_nxt) ──► kept in `ooo` (the part inside the window) + duplicate
//!                                  ACK; once in-order data reaches it, taken as above
//!  socket readable ──► readv() into `ring` (bounded, holds everything unacked by the guest),
//!                      at most what the guest's window takes, 256 KiB at a time
//!                  ──► each chunk sent at once while it is still in cache, as segments of
//!                      up to 64 KiB (TSO, gso_size = guest MSS); a guest ACK frees the ring
//!  guest FIN ──► shutdown(SHUT_WR) once `to_host` is flushed      socket EOF ──► our FIN
//!  guest RST ──► close with SO_LINGER 0 (the host peer sees RST)  socket error ──► RST
//! ```
//!
//! Why hand-written instead of smoltcp: a smoltcp socket keeps its own send and receive
//! buffers, so each byte is copied socket → smoltcp buffer → frame and back, checksummed in
//! software, and sent in MSS-sized frames; its defaults measured 2.6–5.4 Gbit/s here, below
//! slirp4netns. Termination needs none of a general stack (no listen, no congestion control
//! on a lossless virtual link, no SACK, no timestamps): the guest's kernel does congestion
//! control and we only keep what TCP's reliability demands — the unacked bytes (`ring`) and
//! bytes the host has not taken yet (`to_host`). Bytes move socket → ring → tap (`writev`)
//! and tap → socket, checksums are left to the kernel (`NEEDS_CSUM`), and one frame carries
//! up to 64 KiB whatever the MTU.
//!
//! Reliability on a link that only loses frames when a queue overflows, but reorders them:
//! a container's traffic forwarded by the kernel (veth → bridge → tap) arrives reordered by
//! a segment or two when its sender moves between CPUs (veth's per-CPU backlogs). Dropping
//! such segments made each reorder a retransmission and, without SACK, a collapsed window
//! (0.03–4 Gbit/s instead of 10+). So a guest segment ahead of `rcv_nxt` is kept in a
//! per-connection out-of-order queue (`ooo.rs`: a few sorted runs, nothing allocated while
//! the stream is in order, at most the advertised window held, freed with the connection)
//! and still answered by a duplicate ACK (RFC 5681 4.2: a real loss still triggers the
//! guest's fast retransmit); when in-order data reaches the queue, the queued bytes go the
//! in-order way (socket, then `to_host`) and one ACK covers them all. Held bytes lie inside
//! the window, so they always fit into `to_host`. A FIN on an out-of-order segment is
//! dropped (the guest retransmits it). Ours are retransmitted go-back-N from `snd_una` on
//! three duplicate ACKs or on the retransmission timer (200 ms doubling to 10 s; the
//! connection is reset after 12 tries). A zero window from the guest is probed on the same
//! timer.
//!
//! Our window never shrinks (RFC 9293 3.8.6): the right edge is `rcv_nxt + room`, and every
//! byte accepted moves `rcv_nxt` forward by one while using at most one byte of room (bytes
//! held out of order use none until they are accepted).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use smoltcp::wire::TcpPacket;

use crate::stack::{Ctx, UNREACH_NET};
use crate::sys;
use crate::wire::{IPV4_HDR_LEN, TCP_HDR_LEN};

mod ooo;
mod output;
use ooo::OutOfOrder;
use output::{Ring, emit, push, reset_unknown, send_ack, send_syn, send_synack};

pub(crate) const TOKEN_KIND: u64 = 1;

/// Bytes read from a host socket that the guest has not acknowledged yet.
const RING_CAP: usize = 4 << 20;
/// Most bytes read from a host socket before they are sent on.
const FILL_CHUNK: usize = 256 << 10;
/// Bytes from the guest that the host socket has not taken yet (our receive window).
const TO_HOST_CAP: usize = 4 << 20;
/// Guest bytes after which an ACK goes out at once instead of at the end of the batch.
const ACK_EVERY: usize = 512 << 10;
/// Window scale we offer: 4 MiB of room fits in 16 bits at shift 7.
const RCV_WSCALE: u8 = 7;
/// Largest TCP payload in one frame (IPv4 total length is 16 bits).
const MAX_PAYLOAD: usize = 65535 - IPV4_HDR_LEN - TCP_HDR_LEN;
const MAX_CONNS: usize = 16384;
const RTO_MIN: Duration = Duration::from_millis(200);
const RTO_MAX: Duration = Duration::from_secs(10);
const MAX_RETRIES: u32 = 12;
/// How often the timer scan runs (timers are coarse; RTO_MIN is 200 ms).
const TIMER_TICK: Duration = Duration::from_millis(20);

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// The IP header length of a connection's family.
fn ip_hdr_len(a: SocketAddr) -> usize {
    if a.is_ipv4() {
        IPV4_HDR_LEN
    } else {
        crate::wire::IPV6_HDR_LEN
    }
}

/// The MSS the guest's MTU allows for a connection's family.
fn our_mss(ctx: &Ctx<'_>, a: SocketAddr) -> u16 {
    (ctx.cfg.mtu as usize)
        .saturating_sub(ip_hdr_len(a) + TCP_HDR_LEN)
        .clamp(536, 65535) as u16
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
fn seq_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// A guest connection: its two ends as the guest sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    guest: SocketAddr,
    remote: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Guest SYN seen, host `connect()` in progress.
    Connecting,
    /// Host connected, our SYN-ACK sent, waiting for the guest's ACK.
    SynAckSent,
    /// A host connection forwarded into the guest: our SYN sent, waiting for its SYN-ACK.
    SynSent,
    Open,
}

struct Conn {
    key: Key,
    sock: OwnedFd,
    state: State,
    /// The guest's SYN (IPv4 header + 8 bytes) for an ICMP error while connecting.
    syn_quote: Vec<u8>,
    // guest → host
    rcv_nxt: u32,
    to_host: Vec<u8>,
    to_host_off: usize,
    /// Guest segments ahead of `rcv_nxt`, until the hole before them fills.
    ooo: OutOfOrder,
    guest_fin: bool,
    host_wr_shut: bool,
    last_adv_room: usize,
    ack_pending: bool,
    /// The highest ACK we sent.
    acked_to: u32,
    // host → guest
    iss: u32,
    snd_una: u32,
    snd_nxt: u32,
    ring: Ring,
    readable: bool,
    host_eof: bool,
    fin_sent: bool,
    snd_wnd: u32,
    snd_wscale: u8,
    /// Whether the guest offered window scaling (then both sides scale).
    wscale_ok: bool,
    mss: usize,
    dupacks: u8,
    rto: Duration,
    rto_at: Option<Instant>,
    retries: u32,
}

impl Conn {
    fn to_host_len(&self) -> usize {
        self.to_host.len() - self.to_host_off
    }
    fn room(&self) -> usize {
        TO_HOST_CAP - self.to_host_len()
    }
    fn rcv_shift(&self) -> u8 {
        if self.wscale_ok { RCV_WSCALE } else { 0 }
    }
    fn window_field(&self) -> u16 {
        (self.room() >> self.rcv_shift()).min(65535) as u16
    }
    /// The window we advertise, in bytes.
    fn rcv_wnd(&self) -> usize {
        (self.window_field() as usize) << self.rcv_shift()
    }
    /// Bytes sent but not acknowledged, counting the FIN.
    fn in_flight(&self) -> usize {
        self.snd_nxt.wrapping_sub(self.snd_una) as usize
    }
    fn data_in_flight(&self) -> usize {
        self.in_flight() - self.fin_sent as usize
    }
    fn fin_acked(&self) -> bool {
        self.fin_sent && self.snd_una == self.snd_nxt
    }
    /// Bytes the guest's window still takes beyond `snd_nxt`.
    fn wnd_left(&self) -> usize {
        let end = self.snd_una.wrapping_add(self.snd_wnd);
        if seq_lt(self.snd_nxt, end) {
            end.wrapping_sub(self.snd_nxt) as usize
        } else {
            0
        }
    }
    fn max_payload(&self) -> usize {
        if self.mss >= MAX_PAYLOAD {
            MAX_PAYLOAD
        } else {
            (MAX_PAYLOAD / self.mss) * self.mss
        }
    }
}

/// The guest's TCP connections.
#[derive(Default)]
pub(crate) struct TcpTable {
    conns: Vec<Option<Conn>>,
    gens: Vec<u32>,
    free: Vec<usize>,
    by_key: HashMap<Key, usize>,
    pending: Vec<usize>,
    next_scan: Option<Instant>,
    isn_counter: u32,
    /// The last ephemeral port given to a connection forwarded into the guest.
    fwd_port: u16,
}

/// Ephemeral ports for connections forwarded into the guest (Linux's default range).
pub(crate) const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

/// The next port after `last` in [`EPHEMERAL`] for which `taken` is false, if any.
pub(crate) fn next_ephemeral(last: &mut u16, taken: impl Fn(u16) -> bool) -> Option<u16> {
    let span = (EPHEMERAL.end() - EPHEMERAL.start()) as u32 + 1;
    for _ in 0..span {
        *last = if EPHEMERAL.contains(last) && *last < *EPHEMERAL.end() {
            *last + 1
        } else {
            *EPHEMERAL.start()
        };
        if !taken(*last) {
            return Some(*last);
        }
    }
    None
}

/// Header fields of a segment, parsed once.
struct Seg<'a> {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: &'a [u8],
    mss: Option<u16>,
    wscale: Option<u8>,
}

impl Seg<'_> {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

fn parse(l4: &[u8]) -> Option<Seg<'_>> {
    let p = TcpPacket::new_checked(l4).ok()?;
    let (mss, wscale) = match p.syn() {
        true => p
            .options_summary()
            .map(|s| (s.max_segment_size, s.window_scale))
            .unwrap_or((None, None)),
        false => (None, None),
    };
    let mut flags = 0;
    for (set, f) in [
        (p.fin(), FIN),
        (p.syn(), SYN),
        (p.rst(), RST),
        (p.psh(), PSH),
        (p.ack(), ACK),
    ] {
        if set {
            flags |= f;
        }
    }
    let hl = p.header_len() as usize;
    Some(Seg {
        seq: p.seq_number().0 as u32,
        ack: p.ack_number().0 as u32,
        flags,
        window: p.window_len(),
        payload: &l4[hl..],
        mss,
        wscale,
    })
}

impl TcpTable {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    fn token(&self, idx: usize) -> u64 {
        crate::token::encode(TOKEN_KIND, self.gens[idx], idx)
    }

    fn lookup_token(&self, token: u64) -> Option<usize> {
        crate::token::current(token, &self.gens).filter(|i| self.conns[*i].is_some())
    }

    /// One TCP segment from the guest. `datagram` is the whole IPv4 datagram (for ICMP
    /// errors that quote it).
    pub fn segment(
        &mut self,
        ctx: &mut Ctx<'_>,
        src: IpAddr,
        dst: IpAddr,
        l4: &[u8],
        datagram: &[u8],
        now: Instant,
    ) {
        let Some(seg) = parse(l4) else { return };
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        if sport == 0 || dport == 0 {
            return;
        }
        let key = Key {
            guest: SocketAddr::new(src, sport),
            remote: SocketAddr::new(dst, dport),
        };
        match self.by_key.get(&key) {
            Some(&idx) => self.on_segment(ctx, idx, &seg, now),
            None if seg.has(SYN) && !seg.has(ACK) && !seg.has(RST) => {
                self.open(ctx, key, &seg, datagram, now)
            }
            None => reset_unknown(ctx, key, &seg),
        }
    }

    fn open(&mut self, ctx: &mut Ctx<'_>, key: Key, seg: &Seg<'_>, datagram: &[u8], now: Instant) {
        let Some(to) = ctx.cfg.host_destination(key.remote) else {
            ctx.send_unreachable(UNREACH_NET, datagram);
            return;
        };
        if self.by_key.len() >= MAX_CONNS {
            reset_unknown(ctx, key, seg);
            return;
        }
        let bind = ctx.cfg.outbound_for(to);
        let sock = match sys::socket(to, libc::SOCK_STREAM, 0, bind) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("tcp socket for {:?}: {e}", key.remote);
                reset_unknown(ctx, key, seg);
                return;
            }
        };
        let connected = match sys::connect(sock.as_raw_fd(), to) {
            Ok(c) => c,
            Err(e) => {
                self.refuse(ctx, key, seg, datagram, e.raw_os_error().unwrap_or(0));
                return;
            }
        };
        let Some(idx) = self.register(ctx, &sock) else {
            reset_unknown(ctx, key, seg);
            return;
        };
        let iss = self.new_iss(key, now);
        let quote_len = datagram.len().min(ip_hdr_len(key.guest) + 8);
        let conn = Conn {
            key,
            sock,
            state: State::Connecting,
            syn_quote: datagram[..quote_len].to_vec(),
            rcv_nxt: seg.seq.wrapping_add(1),
            to_host: Vec::new(),
            to_host_off: 0,
            ooo: OutOfOrder::default(),
            guest_fin: false,
            host_wr_shut: false,
            last_adv_room: TO_HOST_CAP,
            ack_pending: false,
            acked_to: seg.seq.wrapping_add(1),
            iss,
            snd_una: iss,
            snd_nxt: iss,
            ring: Ring::default(),
            readable: false,
            host_eof: false,
            fin_sent: false,
            snd_wnd: seg.window as u32,
            snd_wscale: seg.wscale.unwrap_or(0).min(14),
            wscale_ok: seg.wscale.is_some(),
            mss: (seg.mss.unwrap_or(536) as usize).clamp(64, our_mss(ctx, key.guest) as usize),
            dupacks: 0,
            rto: RTO_MIN,
            rto_at: None,
            retries: 0,
        };
        self.conns[idx] = Some(conn);
        self.by_key.insert(key, idx);
        if connected {
            self.connected(ctx, idx, now);
        }
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
        let conn = Conn {
            key,
            sock,
            state: State::SynSent,
            syn_quote: Vec::new(),
            rcv_nxt: 0,
            to_host: Vec::new(),
            to_host_off: 0,
            ooo: OutOfOrder::default(),
            guest_fin: false,
            host_wr_shut: false,
            last_adv_room: TO_HOST_CAP,
            ack_pending: false,
            acked_to: 0,
            iss,
            snd_una: iss,
            snd_nxt: iss.wrapping_add(1),
            ring: Ring::default(),
            // The client may have written before we accepted; edge-triggered epoll would
            // not say so again.
            readable: true,
            host_eof: false,
            fin_sent: false,
            snd_wnd: 0,
            snd_wscale: 0,
            wscale_ok: false,
            mss: our_mss(ctx, guest) as usize,
            dupacks: 0,
            rto: RTO_MIN,
            rto_at: Some(now + RTO_MIN),
            retries: 0,
        };
        self.conns[idx] = Some(conn);
        self.by_key.insert(key, idx);
        send_syn(ctx, self.conns[idx].as_mut().expect("just stored"));
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
    fn on_syn_sent(&mut self, ctx: &mut Ctx<'_>, idx: usize, seg: &Seg<'_>, now: Instant) {
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
    fn refuse(&mut self, ctx: &mut Ctx<'_>, key: Key, seg: &Seg<'_>, quote: &[u8], errno: i32) {
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

    fn connected(&mut self, ctx: &mut Ctx<'_>, idx: usize, now: Instant) {
        let c = self.conns[idx].as_mut().expect("live connection");
        c.state = State::SynAckSent;
        c.snd_nxt = c.iss.wrapping_add(1);
        c.rto_at = Some(now + c.rto);
        send_synack(ctx, c);
    }

    fn remove(&mut self, ctx: &mut Ctx<'_>, idx: usize, abort: bool) {
        if let Some(c) = self.conns[idx].take() {
            if abort {
                sys::set_linger_zero(c.sock.as_raw_fd());
            }
            sys::epoll_del(ctx.epoll, c.sock.as_raw_fd());
            self.by_key.remove(&c.key);
            self.free.push(idx);
        }
    }

    fn reset_both(&mut self, ctx: &mut Ctx<'_>, idx: usize) {
        if let Some(c) = self.conns[idx].as_ref() {
            let (remote, guest, seq, ack) = (c.key.remote, c.key.guest, c.snd_nxt, c.rcv_nxt);
            emit(
                ctx,
                remote,
                guest,
                seq,
                ack,
                RST | ACK,
                0,
                None,
                [&[], &[]],
                1,
            );
        }
        self.remove(ctx, idx, true);
    }

    fn on_segment(&mut self, ctx: &mut Ctx<'_>, idx: usize, seg: &Seg<'_>, now: Instant) {
        let c = self.conns[idx].as_mut().expect("indexed connection");
        if c.state == State::SynSent {
            self.on_syn_sent(ctx, idx, seg, now);
            return;
        }
        if seg.has(RST) {
            // Accept a RST only in window (RFC 5961 3.2 in its simplest form).
            let off = seg.seq.wrapping_sub(c.rcv_nxt);
            if c.state == State::Connecting || (off as usize) <= c.room().max(1) {
                self.remove(ctx, idx, true);
            }
            return;
        }
        if seg.has(SYN) {
            // A retransmitted SYN (our SYN-ACK was lost) gets the SYN-ACK again; anything
            // else gets a challenge ACK (RFC 5961 4).
            if c.state == State::SynAckSent && seg.seq.wrapping_add(1) == c.rcv_nxt {
                send_synack(ctx, c);
            } else if c.state != State::Connecting {
                send_ack(ctx, c);
            }
            return;
        }
        if !seg.has(ACK) || c.state == State::Connecting {
            return;
        }
        if c.state == State::SynAckSent {
            if seg.ack != c.iss.wrapping_add(1) {
                emit(
                    ctx,
                    c.key.remote,
                    c.key.guest,
                    seg.ack,
                    0,
                    RST,
                    0,
                    None,
                    [&[], &[]],
                    1,
                );
                return;
            }
            c.state = State::Open;
            c.snd_una = seg.ack;
            c.rto_at = None;
            c.retries = 0;
        }
        // ACK processing.
        let old_wnd = c.snd_wnd;
        if seq_lt(c.snd_una, seg.ack) && seq_le(seg.ack, c.snd_nxt) {
            let acked = seg.ack.wrapping_sub(c.snd_una) as usize;
            let fin_now_acked = c.fin_sent && seg.ack == c.snd_nxt;
            c.ring.consume(acked - fin_now_acked as usize);
            c.snd_una = seg.ack;
            c.dupacks = 0;
            c.retries = 0;
            c.rto = RTO_MIN;
            c.rto_at = (c.in_flight() > 0).then(|| now + c.rto);
        } else if seg.ack == c.snd_una
            && seg.payload.is_empty()
            && !seg.has(FIN)
            && c.in_flight() > 0
            && (seg.window as u32) << c.snd_wscale == old_wnd
        {
            c.dupacks = c.dupacks.saturating_add(1);
            if c.dupacks == 3 {
                go_back(c);
            }
        }
        if seq_le(c.snd_una, seg.ack) {
            c.snd_wnd = (seg.window as u32) << c.snd_wscale;
        }

        // Data and FIN: in order straight on, ahead of rcv_nxt into the out-of-order queue.
        let mut data = seg.payload;
        let mut seq = seg.seq;
        let mut fin = seg.has(FIN);
        if seq_lt(seq, c.rcv_nxt) {
            let old = c.rcv_nxt.wrapping_sub(seq) as usize;
            if old > data.len() || (old == data.len() && !fin) {
                // Entirely old (a retransmission, or a FIN we already have): ACK it again,
                // our ACK may have been lost.
                fin = false;
                data = &[];
                c.ack_pending = true;
            } else {
                data = &data[old..];
            }
            seq = c.rcv_nxt;
        }
        let mut error = false;
        if seq != c.rcv_nxt {
            // Out of order: keep what lies in the window, and send a duplicate ACK at once
            // (RFC 5681 4.2) so that a real loss still triggers the guest's fast retransmit.
            // A FIN on such a segment is dropped; the guest retransmits it.
            if !c.guest_fin {
                let wnd = c.rcv_wnd();
                c.ooo.insert(c.rcv_nxt, wnd, seq, data);
            }
            send_ack(ctx, c);
        } else if !c.guest_fin {
            let taken = match accept(c, data) {
                Ok(n) => n,
                Err(_) => {
                    error = true;
                    0
                }
            };
            c.rcv_nxt = c.rcv_nxt.wrapping_add(taken as u32);
            if !data.is_empty() {
                c.ack_pending = true;
            }
            if fin && taken == data.len() {
                c.rcv_nxt = c.rcv_nxt.wrapping_add(1);
                c.guest_fin = true;
                c.ack_pending = true;
                // Nothing follows a FIN.
                c.ooo.clear();
                if c.to_host_len() == 0 {
                    sys::shutdown_write(c.sock.as_raw_fd());
                    c.host_wr_shut = true;
                }
            } else if taken > 0 && !c.ooo.is_empty() && drain_ooo(c).is_err() {
                error = true;
            }
        }
        if error {
            self.reset_both(ctx, idx);
            return;
        }
        if c.ack_pending {
            if c.rcv_nxt.wrapping_sub(c.acked_to) as usize >= ACK_EVERY {
                // Mid-batch ACK: keeps a fast guest sending while we drain a long batch.
                send_ack(ctx, c);
            } else {
                self.pending.push(idx);
            }
        }
        self.pump(ctx, idx, now);
    }

    /// Reads from the host socket into the ring and sends what the guest's window allows;
    /// closes the connection when both directions are done.
    fn pump(&mut self, ctx: &mut Ctx<'_>, idx: usize, now: Instant) {
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        if c.state != State::Open {
            return;
        }
        let mut error = false;
        // Read in chunks of what the guest's window can take now, sending each before the
        // next read: the bytes are still in cache when they are copied to the tap, and the
        // ring holds little beyond what is in flight.
        while c.readable && !c.host_eof && c.ring.free() > 0 {
            let unsent = c.ring.len - c.data_in_flight();
            let want = if c.snd_wnd == 0 && unsent == 0 {
                // A closed window: hold one segment so the probe timer has a reason to run.
                c.mss
            } else {
                c.wnd_left().saturating_sub(unsent).min(FILL_CHUNK)
            };
            if want == 0 {
                break;
            }
            let mut bufs = c.ring.free_slices(want);
            match sys::readv(c.sock.as_raw_fd(), &mut bufs) {
                Ok(0) => c.host_eof = true,
                Ok(n) => {
                    c.ring.len += n;
                    push(ctx, c, now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => c.readable = false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    error = true;
                    break;
                }
            }
        }
        if error {
            self.reset_both(ctx, idx);
            return;
        }
        push(ctx, c, now);
        if c.guest_fin && c.host_wr_shut && c.host_eof && c.fin_acked() {
            if c.ack_pending {
                send_ack(ctx, c);
            }
            self.remove(ctx, idx, false);
        }
    }

    /// Sends the ACKs deferred while a batch of frames was processed.
    pub fn flush(&mut self, ctx: &mut Ctx<'_>, _now: Instant) {
        for idx in std::mem::take(&mut self.pending) {
            if let Some(c) = self.conns[idx].as_mut()
                && c.ack_pending
            {
                send_ack(ctx, c);
            }
        }
    }

    /// A host socket event.
    pub fn ready(&mut self, ctx: &mut Ctx<'_>, token: u64, events: u32, now: Instant) {
        let Some(idx) = self.lookup_token(token) else {
            return;
        };
        let c = self.conns[idx].as_mut().expect("looked up");
        if c.state == State::Connecting {
            let err = sys::so_error(c.sock.as_raw_fd());
            if err != 0 {
                let key = c.key;
                let quote = std::mem::take(&mut c.syn_quote);
                let seq = c.rcv_nxt.wrapping_sub(1);
                self.remove(ctx, idx, false);
                let seg = Seg {
                    seq,
                    ack: 0,
                    flags: SYN,
                    window: 0,
                    payload: &[],
                    mss: None,
                    wscale: None,
                };
                self.refuse(ctx, key, &seg, &quote, err);
                return;
            }
            if events & libc::EPOLLOUT as u32 == 0 {
                return;
            }
            c.syn_quote = Vec::new();
            c.readable = true;
            self.connected(ctx, idx, now);
            return;
        }
        if events & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
        {
            c.readable = true;
        }
        if events & libc::EPOLLOUT as u32 != 0 && c.to_host_len() > 0 {
            match flush_to_host(c) {
                Ok(()) => {
                    if c.guest_fin && !c.host_wr_shut && c.to_host_len() == 0 {
                        sys::shutdown_write(c.sock.as_raw_fd());
                        c.host_wr_shut = true;
                    }
                    // Window update once a useful amount of room opened.
                    if c.room() >= c.last_adv_room + c.mss.min(TO_HOST_CAP / 4) {
                        send_ack(ctx, c);
                    }
                }
                Err(_) => {
                    self.reset_both(ctx, idx);
                    return;
                }
            }
        }
        self.pump(ctx, idx, now);
    }

    /// Retransmission and zero-window probe timers.
    pub fn timers(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.next_scan.is_some_and(|t| now < t) {
            return;
        }
        self.next_scan = Some(now + TIMER_TICK);
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns[idx].as_mut() else {
                continue;
            };
            let Some(at) = c.rto_at else { continue };
            if now < at {
                continue;
            }
            c.retries += 1;
            if c.retries > MAX_RETRIES {
                self.reset_both(ctx, idx);
                continue;
            }
            c.rto = (c.rto * 2).min(RTO_MAX);
            c.rto_at = Some(now + c.rto);
            match c.state {
                State::Connecting => {}
                State::SynAckSent => send_synack(ctx, c),
                State::SynSent => send_syn(ctx, c),
                State::Open if c.in_flight() > 0 => {
                    go_back(c);
                    push(ctx, c, now);
                }
                State::Open => {
                    // Zero-window probe: an ACK one below snd_nxt makes the guest answer
                    // with its current window.
                    let (r, g) = (c.key.remote, c.key.guest);
                    let (seq, ack, w) = (c.snd_nxt.wrapping_sub(1), c.rcv_nxt, c.window_field());
                    emit(ctx, r, g, seq, ack, ACK, w, None, [&[], &[]], 1);
                }
            }
        }
    }
}

/// Retransmit from `snd_una` (go-back-N).
fn go_back(c: &mut Conn) {
    c.snd_nxt = c.snd_una;
    c.fin_sent = false;
    c.dupacks = 0;
}

/// Takes guest payload: straight into the socket, the rest into `to_host` while room lasts.
/// Returns how many bytes were taken (all of them are acknowledged).
fn accept(c: &mut Conn, data: &[u8]) -> std::io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    let mut written = 0;
    if c.to_host_len() == 0 {
        match sys::write(c.sock.as_raw_fd(), data) {
            Ok(n) => written = n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    let rest = &data[written..];
    let take = rest.len().min(c.room());
    if take > 0 {
        if c.to_host_off > 0 && c.to_host_off == c.to_host.len() {
            c.to_host.clear();
            c.to_host_off = 0;
        }
        c.to_host.extend_from_slice(&rest[..take]);
    }
    Ok(written + take)
}

/// Takes the queued out-of-order bytes that now continue the stream, in order, through
/// [`accept`]; the ACK that follows covers them all.
fn drain_ooo(c: &mut Conn) -> std::io::Result<()> {
    let mut q = std::mem::take(&mut c.ooo);
    let mut res = Ok(());
    while let Some(d) = q.ready(c.rcv_nxt) {
        match accept(c, d) {
            Ok(n) => {
                c.rcv_nxt = c.rcv_nxt.wrapping_add(n as u32);
                if n < d.len() {
                    // Cannot happen while held bytes stay inside the window; kept if it does.
                    break;
                }
            }
            Err(e) => {
                res = Err(e);
                break;
            }
        }
    }
    q.trim(c.rcv_nxt);
    c.ooo = q;
    res
}

fn flush_to_host(c: &mut Conn) -> std::io::Result<()> {
    while c.to_host_len() > 0 {
        match sys::write(c.sock.as_raw_fd(), &c.to_host[c.to_host_off..]) {
            Ok(n) => c.to_host_off += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if c.to_host_off == c.to_host.len() {
        c.to_host.clear();
        c.to_host_off = 0;
        if c.to_host.capacity() > 1 << 20 {
            c.to_host.shrink_to(1 << 16);
        }
    }
    Ok(())
}
