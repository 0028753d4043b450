//! Timers: retransmission (RFC 6298's timer, without its RTT estimate), SYN and SYN-ACK
//! retries, and zero-window probes, all on one per-connection deadline (`rto_at`).
//!
//! There is no RTT estimate: the timeout starts at `RTO_MIN` (200 ms), doubles on every
//! expiry up to `RTO_MAX` (10 s), and returns to `RTO_MIN` when the guest acknowledges new
//! data. Each expiry counts a retry; the expiry after `MAX_RETRIES` (12) retries resets
//! both sides. What an expiry sends depends on the state: our SYN-ACK or SYN again,
//! everything in flight again from `snd_una` (go-back-N), or — with nothing in flight
//! because the guest's window is closed — a zero-window probe: an ACK one below `snd_nxt`,
//! which the guest must answer with its current window. The deadlines are coarse: every
//! connection's is checked at most once per `TIMER_TICK` (20 ms, a tenth of `RTO_MIN`) by
//! one scan of the table, with no timer heap to keep in step with it. About once a second
//! (`TRIM_EVERY`) the same scan frees the byte rings of connections that hold nothing in
//! them (`ring.rs`), so that an idle connection costs no buffer memory.

use std::time::{Duration, Instant};

use super::host_to_guest::go_back;
use super::output::{emit, push, send_syn, send_synack};
use super::{ACK, State, TcpTable};
use crate::stack::Ctx;

const RTO_MAX: Duration = Duration::from_secs(10);
const MAX_RETRIES: u32 = 12;
/// How often the timer scan runs (timers are coarse; RTO_MIN is 200 ms).
const TIMER_TICK: Duration = Duration::from_millis(20);
/// How often empty rings are freed.
const TRIM_EVERY: Duration = Duration::from_secs(1);

impl TcpTable {
    /// Retransmission and zero-window probe timers.
    pub fn timers(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.next_scan.is_some_and(|t| now < t) {
            return;
        }
        self.next_scan = Some(now + TIMER_TICK);
        let trim = self.next_trim.is_none_or(|t| now >= t);
        if trim {
            self.next_trim = Some(now + TRIM_EVERY);
        }
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns[idx].as_mut() else {
                continue;
            };
            if trim {
                c.ring.release_if_empty();
                c.to_host.release_if_empty();
            }
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
