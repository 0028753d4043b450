//! What TCP termination sends the guest: segment emission (TSO, partial checksums) for
//! every path, and the sender (window, FIN) over the ring of unacknowledged bytes (`ring.rs`). The reads
//! that fill the ring and the ACKs that free it are in `host_to_guest.rs`; theory in `mod.rs`.

use std::net::SocketAddr;
use std::time::Instant;

use super::{ACK, Conn, FIN, Key, PSH, RCV_WSCALE, RST, SYN, Seg, State};
use crate::stack::Ctx;
use crate::wire::{
    self, ETH_HDR_LEN, IPV6_HDR_LEN, TCP_HDR_LEN, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4,
    VNET_GSO_TCPV6, VNET_HDR_LEN, VnetHdr,
};

/// Sends one segment from `remote` to `guest`; `payload` may be split over ring slices.
#[allow(clippy::too_many_arguments)]
pub(super) fn emit(
    ctx: &mut Ctx<'_>,
    remote: SocketAddr,
    guest: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    syn_opts: Option<(u16, Option<u8>)>,
    payload: [&[u8]; 2],
    mss: usize,
) {
    let opt_len = match syn_opts {
        Some((_, Some(_))) => 8,
        Some((_, None)) => 4,
        None => 0,
    };
    let tcp_len = TCP_HDR_LEN + opt_len;
    let plen = payload[0].len() + payload[1].len();
    let mut hdr = [0u8; VNET_HDR_LEN + ETH_HDR_LEN + IPV6_HDR_LEN + TCP_HDR_LEN + 8];
    *ctx.ident = ctx.ident.wrapping_add(1);
    let src_mac = ctx.gateway_mac();
    let l3 = wire::emit_eth_ip(
        &mut hdr[VNET_HDR_LEN..],
        src_mac,
        ctx.guest_mac,
        remote.ip(),
        guest.ip(),
        6,
        tcp_len + plen,
        *ctx.ident,
    );
    let hlen = VNET_HDR_LEN + l3 + tcp_len;
    let t = &mut hdr[VNET_HDR_LEN + l3..hlen];
    t[0..2].copy_from_slice(&remote.port().to_be_bytes());
    t[2..4].copy_from_slice(&guest.port().to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((tcp_len / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&window.to_be_bytes());
    t[16..20].fill(0);
    if let Some((mss_opt, ws)) = syn_opts {
        t[20..24].copy_from_slice(&[2, 4, (mss_opt >> 8) as u8, mss_opt as u8]);
        if let Some(ws) = ws {
            t[24..28].copy_from_slice(&[1, 3, 3, ws]);
        }
    }
    let pseudo = wire::pseudo_sum_ip(remote.ip(), guest.ip(), 6, tcp_len + plen);
    let mut vnet = VnetHdr::default();
    if plen == 0 {
        let c = !wire::fold(wire::sum(pseudo, t));
        t[16..18].copy_from_slice(&c.to_be_bytes());
    } else {
        // Partial checksum: the kernel (or the guest's stack, which trusts CHECKSUM_PARTIAL)
        // completes it; 64 KiB are never summed in software.
        t[16..18].copy_from_slice(&wire::fold(pseudo).to_be_bytes());
        vnet.flags = VNET_F_NEEDS_CSUM;
        vnet.csum_start = l3 as u16;
        vnet.csum_offset = 16;
        if plen > mss {
            vnet.gso_type = if guest.is_ipv4() {
                VNET_GSO_TCPV4
            } else {
                VNET_GSO_TCPV6
            };
            vnet.gso_size = mss as u16;
            vnet.hdr_len = (l3 + tcp_len) as u16;
        }
    }
    vnet.emit(&mut hdr);
    ctx.tx.send(&[&hdr[..hlen], payload[0], payload[1]]);
}

/// A RST for a segment that belongs to no connection (RFC 9293 3.10.7.1).
pub(super) fn reset_unknown(ctx: &mut Ctx<'_>, key: Key, seg: &Seg<'_>) {
    if seg.has(RST) {
        return;
    }
    if seg.has(ACK) {
        emit(
            ctx,
            key.remote,
            key.guest,
            seg.ack,
            0,
            RST,
            0,
            None,
            [&[], &[]],
            1,
        );
    } else {
        let len = seg.payload.len() as u32 + seg.has(SYN) as u32 + seg.has(FIN) as u32;
        let ack = seg.seq.wrapping_add(len);
        emit(
            ctx,
            key.remote,
            key.guest,
            0,
            ack,
            RST | ACK,
            0,
            None,
            [&[], &[]],
            1,
        );
    }
}

pub(super) fn send_synack(ctx: &mut Ctx<'_>, c: &mut Conn) {
    let ws = c.wscale_ok.then_some(RCV_WSCALE);
    let mss = super::our_mss(ctx, c.key.guest);
    let win = c.room().min(65535) as u16;
    c.last_adv_room = c.room();
    let (r, g, iss, ack) = (c.key.remote, c.key.guest, c.iss, c.rcv_nxt);
    emit(
        ctx,
        r,
        g,
        iss,
        ack,
        SYN | ACK,
        win,
        Some((mss, ws)),
        [&[], &[]],
        1,
    );
}

/// Our SYN of a connection forwarded into the guest; an ARP request for the guest instead
/// while its MAC is unknown (the retransmission timer and the guest's first frame retry).
pub(super) fn send_syn(ctx: &mut Ctx<'_>, c: &mut Conn) {
    if !ctx.guest_known {
        if let std::net::IpAddr::V4(ip) = c.key.guest.ip() {
            ctx.send_arp_request(ip);
        }
        return;
    }
    let mss = super::our_mss(ctx, c.key.guest);
    let win = c.room().min(65535) as u16;
    c.last_adv_room = c.room();
    let (r, g, iss) = (c.key.remote, c.key.guest, c.iss);
    emit(
        ctx,
        r,
        g,
        iss,
        0,
        SYN,
        win,
        Some((mss, Some(RCV_WSCALE))),
        [&[], &[]],
        1,
    );
}

pub(super) fn send_ack(ctx: &mut Ctx<'_>, c: &mut Conn) {
    c.ack_pending = false;
    c.acked_to = c.rcv_nxt;
    c.last_adv_room = c.room();
    let w = c.window_field();
    let (r, g, seq, ack) = (c.key.remote, c.key.guest, c.snd_nxt, c.rcv_nxt);
    emit(ctx, r, g, seq, ack, ACK, w, None, [&[], &[]], 1);
}

/// Sends ring data the guest's window allows, then our FIN once the host is done.
pub(super) fn push(ctx: &mut Ctx<'_>, c: &mut Conn, now: Instant) {
    if c.state != State::Open {
        return;
    }
    let max = c.max_payload();
    loop {
        if c.fin_sent {
            break;
        }
        let sent = c.data_in_flight();
        let unsent = c.ring.len - sent;
        let n = unsent.min(c.wnd_left()).min(max);
        if n == 0 {
            break;
        }
        c.ack_pending = false;
        c.acked_to = c.rcv_nxt;
        c.last_adv_room = c.room();
        let w = c.window_field();
        let payload = c.ring.slices(sent, n);
        let (r, g, seq, ack, mss) = (c.key.remote, c.key.guest, c.snd_nxt, c.rcv_nxt, c.mss);
        emit(ctx, r, g, seq, ack, ACK | PSH, w, None, payload, mss);
        c.snd_nxt = c.snd_nxt.wrapping_add(n as u32);
    }
    if c.host_eof && !c.fin_sent && c.data_in_flight() == c.ring.len {
        c.ack_pending = false;
        c.last_adv_room = c.room();
        let w = c.window_field();
        let (r, g, seq, ack) = (c.key.remote, c.key.guest, c.snd_nxt, c.rcv_nxt);
        emit(ctx, r, g, seq, ack, FIN | ACK, w, None, [&[], &[]], 1);
        c.snd_nxt = c.snd_nxt.wrapping_add(1);
        c.fin_sent = true;
    }
    if c.rto_at.is_none() && (c.in_flight() > 0 || (c.ring.len > 0 && c.snd_wnd == 0)) {
        c.rto_at = Some(now + c.rto);
    }
}
