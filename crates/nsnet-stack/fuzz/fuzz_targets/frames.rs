//! Feeds arbitrary bytes to the stack as a sequence of tap frames (each prefixed by a one-byte
//! length class), with the clock advancing between them. The stack must never panic, and
//! whatever it sends back must be a well-formed frame (vnet header, Ethernet, IPv4/ARP).
//!
//! Fuzzed frames can name any destination, and the stack opens real sockets: the target first
//! moves itself into new user and network namespaces holding only a down `lo`, so no
//! connect() or sendto() can leave the process's own namespace.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nsnet_stack::{Config, GuestTx, Stack};

struct Check;

impl GuestTx for Check {
    fn send(&mut self, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        assert!(len >= 10 + 14, "a frame holds a vnet and an Ethernet header");
        assert!(len <= 10 + 14 + 65535, "no frame exceeds 64 KiB of IP");
    }
}

fn isolate() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // A new user namespace is refused once libFuzzer has started its threads; as root a
        // new network namespace for this (the fuzzing) thread is enough.
        // SAFETY: plain syscalls at start-up.
        let r = unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
                0
            } else {
                libc::unshare(libc::CLONE_NEWNET)
            }
        };
        assert_eq!(r, 0, "the fuzz target must isolate itself in a new network namespace");
    });
}

fuzz_target!(|data: &[u8]| {
    isolate();
    let mut cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
    cfg.ipv6 = true;
    let Ok(mut stack) = Stack::new(cfg, Box::new(Check)) else { return };
    let mut now = Instant::now();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize * 3).min(tail.len());
        let (frame, tail) = tail.split_at(n);
        stack.receive(frame, now);
        stack.flush(now);
        now += Duration::from_millis(250);
        stack.poll_timers(now);
        rest = tail;
    }
});
