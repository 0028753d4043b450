//! The ceiling of a user-mode network on this machine: a frame copier between two taps, for
//! `bench/net.sh` to measure beside the stack in the same run.
//!
//! Every user-mode network (nsnet's stack, slirp4netns, pasta) moves each byte across one tap
//! and one host socket; the least any of them can cost per byte is what the kernel charges for
//! crossing a tap. This program does nothing but that: one thread, one epoll loop, each frame
//! read from one tap written unchanged to the other (virtio-net header included, so 64 KiB TSO
//! segments cross whole), with the taps opened exactly as the stack's are
//! (`nsnet_netlink::create_tap`: `IFF_VNET_HDR`, checksum and TSO offloads) and the same
//! batch of reads per wake-up as `nsnet_stack::runtime`. iperf3 between the two namespaces
//! through it gives the ceiling against which bench/net.sh reports each cell.
//!
//! Usage (as root, or as a user who may enter both namespaces):
//!   tap_copier NETNS_A ADDR_A NETNS_B ADDR_B MTU
//! NETNS_* are paths such as /proc/PID/ns/net; ADDR_* are IPv4 addresses in one /24. It
//! prints "ready" once both taps are up and copies until killed or until a tap goes away.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nsnet_netlink::{TapConfig, TapIpv4, create_tap_in};

const BATCH: usize = 256;
const FRAME_MAX: usize = 12 + 14 + 65535 + 4;

fn open_netns(path: &str) -> io::Result<OwnedFd> {
    Ok(std::fs::File::open(path)?.into())
}

fn tap(netns: &str, addr: Ipv4Addr, peer: Ipv4Addr, mtu: u32) -> Result<OwnedFd, String> {
    let ns = open_netns(netns).map_err(|e| format!("cannot open {netns}: {e}"))?;
    let cfg = TapConfig {
        name: "tap0".into(),
        mtu,
        ipv4: Some(TapIpv4 {
            address: addr,
            prefix: 24,
            gateway: peer,
        }),
        ipv6: None,
        mac: None,
    };
    create_tap_in(ns.as_fd(), netns, &cfg, true).map_err(|e| format!("tap in {netns}: {e}"))
}

/// Moves up to [`BATCH`] frames from `from` to `to`; false when `from` has gone.
fn copy(from: &OwnedFd, to: &OwnedFd, buf: &mut [u8]) -> io::Result<bool> {
    for _ in 0..BATCH {
        // SAFETY: buf is valid for writing its length.
        let r = unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(true),
                io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        if r == 0 {
            return Ok(false);
        }
        // A full tap queue drops the frame, as it does for the stack (TCP retransmits).
        // SAFETY: the first r bytes of buf were just read.
        unsafe { libc::write(to.as_raw_fd(), buf.as_ptr().cast(), r as usize) };
    }
    Ok(true)
}

fn run(args: &[String]) -> Result<(), String> {
    let [ns_a, addr_a, ns_b, addr_b, mtu] = args else {
        return Err("usage: tap_copier NETNS_A ADDR_A NETNS_B ADDR_B MTU".into());
    };
    let parse = |s: &str| -> Result<Ipv4Addr, String> {
        s.parse()
            .map_err(|_| format!("{s:?} is not an IPv4 address"))
    };
    let (a, b) = (parse(addr_a)?, parse(addr_b)?);
    let mtu: u32 = mtu.parse().map_err(|_| format!("{mtu:?} is not an MTU"))?;
    let tap_a = tap(ns_a, a, b, mtu)?;
    let tap_b = tap(ns_b, b, a, mtu)?;
    // SAFETY: plain syscall; checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(format!("epoll: {}", io::Error::last_os_error()));
    }
    for (fd, token) in [(&tap_a, 0u64), (&tap_b, 1u64)] {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: ev is valid; fd is open.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) } < 0 {
            return Err(format!("epoll_ctl: {}", io::Error::last_os_error()));
        }
    }
    println!("ready");
    let mut buf = vec![0u8; FRAME_MAX];
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
    loop {
        // SAFETY: events is a valid buffer of its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {e}"));
        }
        for ev in &events[..n as usize] {
            let (from, to) = if ev.u64 == 0 {
                (&tap_a, &tap_b)
            } else {
                (&tap_b, &tap_a)
            };
            match copy(from, to, &mut buf) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(format!("reading a tap: {e}")),
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("tap_copier: {e}");
        std::process::exit(1);
    }
}
