//! Timers: retransmission (RFC 6298's timer, without its RTT estimate), SYN and SYN-ACK
//! retries, and zero-window probes, all on one per-connection deadline (`rto_at`); and the
//! release of empty byte rings. This file owns the two lists of connections these visit
//! (`armed`, `mapped`) and the rule that keeps them complete ([`TcpTable::watch`]).
//!
//! There is no RTT estimate: the timeout starts at `RTO_MIN` (200 ms), doubles on every
//! expiry up to `RTO_MAX` (10 s), and returns to `RTO_MIN` when the guest acknowledges new
//! data. Each expiry counts a retry; the expiry after `MAX_RETRIES` (12) retries resets
//! both sides. What an expiry sends depends on the state: our SYN-ACK or SYN again,
//! everything in flight again from `snd_una` (go-back-N), or — with nothing in flight
//! because the guest's window is closed — a zero-window probe: an ACK one below `snd_nxt`,
//! which the guest must answer with its current window. The deadlines are coarse: each armed
//! one is checked at most once per `TIMER_TICK` (20 ms, a tenth of `RTO_MIN`). About once a
//! second (`TRIM_EVERY`) the rings of connections that hold nothing in them are freed
//! (`ring.rs`), so that an idle connection costs no buffer memory.
//!
//! Why lists and not a scan of the table: an idle connection (nothing in flight, its window
//! open, its rings freed) has nothing to time, and the table may hold 100,000 of them; a scan
//! every tick would visit 5 million connections a second and tax the busy ones beside them.
//! So a tick visits only `armed` (connections whose timer may be set) and the release only
//! `mapped` (those that may hold a ring): the cost follows the connections with work, not
//! the table. Why not a heap or a wheel ordered by deadline: `rto_at` moves on nearly every
//! ACK of a busy connection and is set from a dozen places that hold only the `Conn`; a
//! list entry is added once, when a connection's timer is first armed or its ring first
//! mapped, and dropped by the tick that finds it disarmed or empty, so the busy path pays a
//! flag test per event. The table's entry points (`segment`, `ready`, `open_to_guest`) call
//! [`TcpTable::watch`] on the connection they touched once they are done with it; they are
//! the only places a timer is armed or a ring mapped outside the tick itself. Entries carry
//! the slot's generation, so an entry left by a connection that has gone is dropped, never
//! taken for the slot's next occupant (which adds its own). Under test every tick checks
//! that each armed timer and mapped ring is listed.

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
    /// Lists connection `idx` for the tick if its timer is armed or a ring is mapped and it
    /// is not listed yet: called by each entry point on the connection it handled.
    pub(super) fn watch(&mut self, idx: usize) {
        let generation = self.gens[idx];
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        if c.rto_at.is_some() && !c.in_armed {
            c.in_armed = true;
            self.armed.push((idx, generation));
        }
        if !c.in_mapped && (c.ring.allocated() || c.to_host.allocated()) {
            c.in_mapped = true;
            self.mapped.push((idx, generation));
        }
    }

    /// Retransmission and zero-window probe timers, and the release of empty rings.
    pub fn timers(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.next_scan.is_some_and(|t| now < t) {
            return;
        }
        self.next_scan = Some(now + TIMER_TICK);
        #[cfg(test)]
        self.check_lists();
        if self.next_trim.is_none_or(|t| now >= t) {
            self.next_trim = Some(now + TRIM_EVERY);
            let mut mapped = std::mem::take(&mut self.mapped);
            mapped.retain(|&(idx, generation)| self.release_rings(idx, generation));
            self.mapped = mapped;
        }
        let mut armed = std::mem::take(&mut self.armed);
        armed.retain(|&(idx, generation)| self.expire(ctx, idx, generation, now));
        self.armed = armed;
    }

    /// Frees the empty rings of listed connection `idx`; whether it stays listed.
    fn release_rings(&mut self, idx: usize, generation: u32) -> bool {
        if self.gens[idx] != generation {
            return false;
        }
        let Some(c) = self.conns[idx].as_mut() else {
            return false;
        };
        #[cfg(test)]
        {
            self.visits += 1;
        }
        c.ring.release_if_empty();
        c.to_host.release_if_empty();
        c.in_mapped = c.ring.allocated() || c.to_host.allocated();
        c.in_mapped
    }

    /// Fires the timer of listed connection `idx` if it is due; whether it stays listed.
    fn expire(&mut self, ctx: &mut Ctx<'_>, idx: usize, generation: u32, now: Instant) -> bool {
        if self.gens[idx] != generation {
            return false;
        }
        let Some(c) = self.conns[idx].as_mut() else {
            return false;
        };
        #[cfg(test)]
        {
            self.visits += 1;
        }
        let Some(at) = c.rto_at else {
            c.in_armed = false;
            return false;
        };
        if now < at {
            return true;
        }
        c.retries += 1;
        if c.retries > MAX_RETRIES {
            self.reset_both(ctx, idx);
            return false;
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
        true
    }

    /// How many connections the lists hold: (armed, mapped).
    #[cfg(test)]
    pub(crate) fn timer_lists(&self) -> (usize, usize) {
        (self.armed.len(), self.mapped.len())
    }

    /// Every armed timer and every mapped ring is on its list, under its generation.
    #[cfg(test)]
    fn check_lists(&self) {
        for (idx, c) in self.conns.iter().enumerate() {
            let Some(c) = c else { continue };
            let entry = (idx, self.gens[idx]);
            if c.rto_at.is_some() {
                assert!(
                    c.in_armed && self.armed.contains(&entry),
                    "{:?}: timer armed but not listed",
                    c.key
                );
            }
            if c.ring.allocated() || c.to_host.allocated() {
                assert!(
                    c.in_mapped && self.mapped.contains(&entry),
                    "{:?}: ring mapped but not listed",
                    c.key
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::rc::Rc;
    use std::time::Instant;

    use smoltcp::wire::EthernetAddress;

    use super::super::{Conn, Key, RTO_MIN, State, TcpTable};
    use super::{TIMER_TICK, TRIM_EVERY};
    use crate::stack::Ctx;
    use crate::{Config, GuestTx};

    /// Counts the frames the stack sends to the guest.
    struct Count(Rc<Cell<usize>>);
    impl GuestTx for Count {
        fn send(&mut self, _: &[&[u8]]) {
            self.0.set(self.0.get() + 1);
        }
    }

    fn key(i: usize) -> Key {
        Key {
            guest: SocketAddr::new(Ipv4Addr::new(10, 0, 2, 100).into(), 1 + (i % 60000) as u16),
            remote: SocketAddr::new(Ipv4Addr::new(10, 0, 2, 2).into(), 1000 + (i / 60000) as u16),
        }
    }

    /// A table whose open connections share one descriptor, never closed through them: they
    /// are forgotten when the table goes, also when a failed assertion unwinds.
    struct Shared(TcpTable);
    impl Drop for Shared {
        fn drop(&mut self) {
            for c in self.0.conns.drain(..).flatten() {
                if c.state == State::Open {
                    std::mem::forget(c.sock);
                }
            }
        }
    }

    /// Puts `c` in the table the way `open` does, and lists it as the entry points do.
    fn insert(t: &mut TcpTable, c: Conn) -> usize {
        let idx = crate::token::claim_slot(&mut t.conns, &mut t.gens, t.free.pop());
        t.by_key.insert(c.key, idx);
        t.conns[idx] = Some(c);
        t.watch(idx);
        idx
    }

    #[test]
    fn idle_connections_cost_the_timers_nothing() {
        const IDLE: usize = 100_000;
        let cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
        let sent = Rc::new(Cell::new(0));
        let mut tx = Count(sent.clone());
        let mut ident = 0;
        // SAFETY: a fresh descriptor, owned here.
        let epoll = unsafe { OwnedFd::from_raw_fd(libc::epoll_create1(libc::EPOLL_CLOEXEC)) };
        let mut ctx = Ctx {
            cfg: &cfg,
            tx: &mut tx,
            epoll: epoll.as_raw_fd(),
            guest_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            guest_known: true,
            ident: &mut ident,
        };
        let null = std::fs::File::open("/dev/null").unwrap();
        let mut shared = Shared(TcpTable::default());
        let t = &mut shared.0;
        let now = Instant::now();
        // 100,000 open connections with nothing in flight and no ring: what an idle flow
        // is. They share one descriptor (the test's open-file limit is well below 100,000);
        // none of them is ever closed through it (`Shared`).
        for i in 0..IDLE {
            // SAFETY: `null` outlives the table, and these handles are forgotten with it,
            // never closed.
            let sock = unsafe { OwnedFd::from_raw_fd(null.as_raw_fd()) };
            let mut c = Conn::new(key(i), sock, State::Open, 1, 1460);
            c.snd_wnd = 65535;
            insert(t, c);
        }
        assert_eq!((t.armed.len(), t.mapped.len()), (0, 0));
        // Three connections whose SYN-ACK waits for the guest's ACK: armed.
        let armed: Vec<usize> = (IDLE..IDLE + 3)
            .map(|i| {
                let sock = null.try_clone().unwrap().into();
                let mut c = Conn::new(key(i), sock, State::SynAckSent, 1, 1460);
                c.snd_nxt = 2;
                c.rto_at = Some(now + RTO_MIN);
                insert(t, c)
            })
            .collect();
        let ticks = (TRIM_EVERY * 2).as_millis() / TIMER_TICK.as_millis();
        let mut at = now;
        for _ in 0..ticks {
            t.timers(&mut ctx, at);
            at += TIMER_TICK;
        }
        assert_eq!(
            t.visits,
            3 * ticks as usize,
            "each tick visits the armed connections and none of the idle ones"
        );
        // 2 s of ticks: expiries at 200 ms, then 400 ms and 800 ms later.
        assert_eq!(
            sent.get(),
            3 * 3,
            "the armed ones still retransmit their SYN-ACK"
        );
        // The guest's ACK disarms them: the next tick drops them, and then ticks are free.
        for &idx in &armed {
            t.conns[idx].as_mut().unwrap().rto_at = None;
        }
        t.timers(&mut ctx, at);
        let before = t.visits;
        for _ in 0..ticks {
            at += TIMER_TICK;
            t.timers(&mut ctx, at);
        }
        assert_eq!((t.visits - before, t.armed.len()), (0, 0));
    }
}
