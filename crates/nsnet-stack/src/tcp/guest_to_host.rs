//! Guest → host: a guest segment on a known connection, its data into the host socket, and
//! the ACKs and window we answer with.
//!
//! [`TcpTable::on_segment`] is the path of every such segment. Its first checks finish or
//! police the handshake: a segment for a `SynSent` connection goes to `handshake.rs`, a RST
//! is taken only in window (RFC 5961 3.2 in its simplest form), a SYN gets our SYN-ACK
//! again (a retransmission) or a challenge ACK (RFC 5961 4), and the guest's ACK of our
//! SYN-ACK opens the connection. Its acknowledgement of our data goes to the sender
//! (`host_to_guest.rs`); its data and FIN are this file's.
//!
//! In-order data is written to the socket at once when nothing waits before it; what the
//! socket does not take waits in `to_host` (at most `TO_HOST_CAP`), flushed when epoll says
//! the socket is writable. The window we advertise is the room left in `to_host`, so the
//! host's reading speed is the guest's sending speed. A guest FIN becomes
//! `shutdown(SHUT_WR)` once `to_host` is empty. The ACK for a batch of tap frames goes out
//! once, at its end ([`TcpTable::flush`]), or at once after `ACK_EVERY` bytes so that a
//! fast guest keeps sending while we drain a long batch; a window update goes out when
//! flushing `to_host` (on the socket's `EPOLLOUT`, in `ready`) opened a useful amount of
//! room beyond what we last advertised (an MSS, at most a quarter of `TO_HOST_CAP`). A
//! segment that is entirely old (a retransmission, or a FIN we already have) is ACKed
//! again: our ACK may have been lost.
//!
//! Reordering: a container's traffic forwarded by the kernel (veth → bridge → tap) arrives
//! reordered by a segment or two when its sender moves between CPUs (veth's per-CPU
//! backlogs). Dropping such segments made each reorder a retransmission and, without SACK,
//! a collapsed window (0.03–4 Gbit/s instead of 10+). So a guest segment ahead of `rcv_nxt`
//! is kept in the connection's out-of-order queue (`ooo.rs`: a few sorted runs, nothing
//! allocated while the stream is in order, at most the advertised window held, freed with
//! the connection) and still answered by a duplicate ACK (RFC 5681 4.2: a real loss still
//! triggers the guest's fast retransmit); when in-order data reaches the queue, the queued
//! bytes go the in-order way (socket, then `to_host`) and one ACK covers them all. Held
//! bytes lie inside the window, so they always fit into `to_host`. A FIN on an out-of-order
//! segment is dropped (the guest retransmits it).
//!
//! Our window never shrinks (RFC 9293 3.8.6): the right edge is `rcv_nxt + room`, and every
//! byte accepted moves `rcv_nxt` forward by one while using at most one byte of room (bytes
//! held out of order use none until they are accepted).

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::host_to_guest::on_ack;
use super::output::{emit, send_ack, send_synack};
use super::{ACK, Conn, FIN, RST, SYN, Seg, State, TcpTable, seq_lt};
use crate::stack::Ctx;
use crate::sys;

/// Guest bytes after which an ACK goes out at once instead of at the end of the batch.
const ACK_EVERY: usize = 512 << 10;

impl TcpTable {
    pub(super) fn on_segment(
        &mut self,
        ctx: &mut Ctx<'_>,
        idx: usize,
        seg: &Seg<'_>,
        now: Instant,
    ) {
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
        // ACK processing: what the guest acknowledged of our data, and its window.
        on_ack(c, seg, now);

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
    Ok(written + c.to_host.push(&data[written..]))
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

pub(super) fn flush_to_host(c: &mut Conn) -> std::io::Result<()> {
    while c.to_host_len() > 0 {
        match sys::writev(c.sock.as_raw_fd(), &c.to_host.slices(0, c.to_host.len)) {
            Ok(n) => c.to_host.consume(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
