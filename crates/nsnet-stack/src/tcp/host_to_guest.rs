//! Host → guest: reading the host socket into the ring, and what the guest's ACKs do to it.
//!
//! When the socket is readable, [`TcpTable::pump`] reads (`readv`, straight into the ring's
//! free space) at most what the guest's window takes beyond what is already unsent, in
//! chunks of at most `FILL_CHUNK`, and sends each chunk on (`output.rs`'s `push`) before
//! the next read: the bytes are still in cache when they are copied to the tap, and the
//! ring (`RING_CAP`) holds little beyond what is in flight. Against a closed window one
//! segment is read anyway, so that the probe timer (`timers.rs`) has a reason to run.
//! Socket EOF becomes our FIN once every byte is sent; a socket error resets both sides.
//! The connection is removed, not reset, once both directions are done: the guest's FIN
//! passed on, the host's EOF sent and our FIN acknowledged.
//!
//! A guest ACK of new data frees that much of the ring and restarts the retransmission
//! timer at `RTO_MIN` (off when nothing is in flight). Three duplicate ACKs (RFC 5681's
//! definition: no data, no FIN, data in flight, the same window) send everything again from
//! `snd_una` (go-back-N, [`go_back`]): without SACK we do not know what else arrived. The
//! guest's window is taken from every segment that does not acknowledge less than
//! `snd_una`.

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::output::{push, send_ack};
use super::{Conn, FIN, RTO_MIN, Seg, State, TcpTable, seq_le, seq_lt};
use crate::stack::Ctx;
use crate::sys;

/// Most bytes read from a host socket before they are sent on.
const FILL_CHUNK: usize = 256 << 10;

impl TcpTable {
    /// Reads from the host socket into the ring and sends what the guest's window allows;
    /// closes the connection when both directions are done.
    pub(super) fn pump(&mut self, ctx: &mut Ctx<'_>, idx: usize, now: Instant) {
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
            if bufs[0].is_empty() {
                // No memory for the ring: reset the connection rather than read into nothing
                // (a read of 0 bytes would look like the host's EOF).
                error = true;
                break;
            }
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
}

/// A guest segment's acknowledgement of our data and its window: acknowledged bytes leave
/// the ring and re-arm the retransmission timer; the third duplicate ACK goes back to
/// `snd_una` (RFC 5681 3.2's fast retransmit; we keep no congestion window).
pub(super) fn on_ack(c: &mut Conn, seg: &Seg<'_>, now: Instant) {
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
}

/// Retransmit from `snd_una` (go-back-N).
pub(super) fn go_back(c: &mut Conn) {
    c.snd_nxt = c.snd_una;
    c.fin_sent = false;
    c.dupacks = 0;
}
