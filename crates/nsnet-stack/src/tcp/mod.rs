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
//! guest segments ahead of `rcv_nxt` are held, not dropped (`guest_to_host.rs`, `ooo.rs`);
//! ours are retransmitted go-back-N from `snd_una` on three duplicate ACKs
//! (`host_to_guest.rs`) or on the retransmission timer (`timers.rs`).
//!
//! # Where each part lives
//!
//! The files follow the data paths of the diagram; every one of them adds methods to
//! [`TcpTable`] over the [`Conn`] defined here.
//!
//! - this file: the connection record (`Key`, `State`, `Conn`), the table, segment parsing,
//!   and the entry points the stack calls: [`TcpTable::segment`] (a guest segment: a new
//!   connection or one we know) and [`TcpTable::ready`] (a host socket event: connect done,
//!   room to write, bytes to read);
//! - `handshake.rs`: both opens — the guest's SYN onto a non-blocking `connect()`, a host
//!   connection accepted on a forward onto our SYN — and how a refused connect is answered;
//! - `guest_to_host.rs`: a guest segment on a known connection, its data into the socket,
//!   `to_host` and the out-of-order queue, and the ACKs and window we send for it;
//! - `host_to_guest.rs`: socket → ring reads, the guest's ACKs of our data, fast retransmit;
//! - `output.rs`: the building of every segment we send (TSO, partial checksums), and the
//!   sender that turns ring bytes into segments;
//! - `ring.rs`: the fixed-capacity byte ring of each direction (`ring`, `to_host`);
//! - `ooo.rs`: the out-of-order queue itself;
//! - `timers.rs`: retransmission, SYN/SYN-ACK retries and zero-window probes, and the
//!   release of empty rings, over lists of the connections that have a timer armed or a
//!   ring mapped: an idle connection costs the timers nothing, whatever the table's size.
//!
//! Every entry point that handles a connection ends with [`TcpTable::watch`] on it, which
//! lists it for the timers if it now has a deadline or a ring. How many connections the
//! table holds (131,072 at most, in practice one per open file the process may have) is
//! `handshake.rs`'s `MAX_CONNS`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use smoltcp::wire::TcpPacket;

use crate::stack::Ctx;
use crate::sys;
use crate::wire::{IPV4_HDR_LEN, TCP_HDR_LEN};

mod guest_to_host;
mod handshake;
mod host_to_guest;
mod ooo;
mod output;
mod ring;
mod timers;
use guest_to_host::flush_to_host;
use ooo::OutOfOrder;
use output::{emit, reset_unknown, send_ack};
use ring::Ring;

pub(crate) const TOKEN_KIND: u64 = 1;

/// Bytes read from a host socket that the guest has not acknowledged yet.
const RING_CAP: usize = 4 << 20;
/// Bytes from the guest that the host socket has not taken yet (our receive window).
const TO_HOST_CAP: usize = 4 << 20;
/// Window scale we offer: 4 MiB of room fits in 16 bits at shift 7.
const RCV_WSCALE: u8 = 7;
/// Largest TCP payload in one frame (IPv4 total length is 16 bits).
const MAX_PAYLOAD: usize = 65535 - IPV4_HDR_LEN - TCP_HDR_LEN;
const RTO_MIN: Duration = Duration::from_millis(200);

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
    /// The guest's SYN (IP header + 8 bytes) for an ICMP error while connecting.
    syn_quote: Vec<u8>,
    // guest → host
    rcv_nxt: u32,
    to_host: Ring<TO_HOST_CAP>,
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
    ring: Ring<RING_CAP>,
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
    /// Whether the table's `armed` list holds this connection (see `timers.rs`).
    in_armed: bool,
    /// Whether the table's `mapped` list holds this connection (see `timers.rs`).
    in_mapped: bool,
}

impl Conn {
    /// A connection in `state` with nothing sent or received, no timer and no buffers.
    fn new(key: Key, sock: OwnedFd, state: State, iss: u32, mss: usize) -> Conn {
        Conn {
            key,
            sock,
            state,
            syn_quote: Vec::new(),
            rcv_nxt: 0,
            to_host: Ring::default(),
            ooo: OutOfOrder::default(),
            guest_fin: false,
            host_wr_shut: false,
            last_adv_room: TO_HOST_CAP,
            ack_pending: false,
            acked_to: 0,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            ring: Ring::default(),
            readable: false,
            host_eof: false,
            fin_sent: false,
            snd_wnd: 0,
            snd_wscale: 0,
            wscale_ok: false,
            mss,
            dupacks: 0,
            rto: RTO_MIN,
            rto_at: None,
            retries: 0,
            in_armed: false,
            in_mapped: false,
        }
    }
    fn to_host_len(&self) -> usize {
        self.to_host.len
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
    /// Connections whose retransmission timer may be armed, as (slot, generation): the only
    /// ones a timer tick visits (`timers.rs`).
    armed: Vec<(usize, u32)>,
    /// Connections that may hold a mapped ring, as (slot, generation): the only ones the
    /// ring release visits.
    mapped: Vec<(usize, u32)>,
    next_scan: Option<Instant>,
    next_trim: Option<Instant>,
    /// Connections visited by timer ticks so far (for the tests' cost accounting).
    #[cfg(test)]
    visits: usize,
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

    /// One TCP segment from the guest. `datagram` is the whole IP datagram (for ICMP
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
        let idx = match self.by_key.get(&key) {
            Some(&idx) => {
                self.on_segment(ctx, idx, &seg, now);
                idx
            }
            None if seg.has(SYN) && !seg.has(ACK) && !seg.has(RST) => {
                let Some(idx) = self.open(ctx, key, &seg, datagram, now) else {
                    return;
                };
                idx
            }
            None => return reset_unknown(ctx, key, &seg),
        };
        self.watch(idx);
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

    /// A host socket event.
    pub fn ready(&mut self, ctx: &mut Ctx<'_>, token: u64, events: u32, now: Instant) {
        let Some(idx) = self.lookup_token(token) else {
            return;
        };
        self.ready_at(ctx, idx, events, now);
        self.watch(idx);
    }

    fn ready_at(&mut self, ctx: &mut Ctx<'_>, idx: usize, events: u32, now: Instant) {
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
}
