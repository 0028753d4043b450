//! Published ports without a relay: a container's TCP listener on a port it publishes (`-p
//! HOSTIP:HP:CP`) is swapped for a host socket bound to HOSTIP:HP, so host clients connect
//! straight to the application's socket and its `accept` returns host sockets (whose
//! `getpeername` is the real client, which no relay can give).
//!
//! ## Why `listen`, not `bind`
//!
//! The app binds CP inside, then listens. Trapping `bind` would mean reading its sockaddr from
//! the container's memory (a TOCTOU to guard, as for `connect`) and deciding on a host port
//! before the app has shown it will serve; a bind that fails inside (EADDRINUSE, EACCES) must
//! also fail as it would. At `listen` everything is settled by the kernel: the container's bind
//! has succeeded inside, its address is read from the socket itself (`getsockname` on our
//! duplicate, no memory read at all), and `listen`'s own arguments are registers. So `listen`
//! is trapped; the socket qualifies when it is TCP, bound to a published CP on the
//! unspecified address or an address that is not loopback (a listener on the container's own
//! loopback is for the container alone), and not yet listening.
//!
//! ## The forward the normal path holds
//!
//! The container's port is published before its process starts: the port driver listens on
//! HOSTIP:HP and relays to the container. The two cannot both hold HP, so the service asks
//! [`Forwards::take`] to close that forward just before it binds HOSTIP:HP itself, and gives
//! it back ([`Forwards::restore`]) when the bind or the install fails: then the app's listen
//! takes the normal path and the relay serves the port as before. A container whose app never
//! listens keeps its forward; a container without `--bypass` never traps anything. Once taken,
//! the forward stays with the bypass for the container's life: a second `listen` on CP (the
//! app closed its listener and made a new one) binds HP again, or takes the normal path
//! without a forward if HP is gone meanwhile (the port then refuses, as a closed one does).
//!
//! ## What the app sees
//!
//! `getsockname` on a swapped listener answers the address the app bound inside (its
//! container address or the unspecified one, and CP): the service traps `getsockname` and
//! writes that copy into the caller's buffer for the sockets this module swapped, and lets
//! every other call run. The write goes through `/proc/TID/mem` opened before the
//! notification is checked, so it cannot land in a process that took over the PID. Accepted
//! sockets are host sockets: their `getsockname` is HOSTIP:HP, their `getpeername` the client.
//!
//! ## Limits
//!
//! The swapped listener lives in the host netns only: the container's loopback and its peers
//! on the bridge no longer reach CP (they reach the published address, where the network lets
//! them). `SO_REUSEADDR` is set on the host listener (a restarted app must not meet its own
//! TIME_WAIT connections on HP) in addition to the options the app set.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use crate::socket::{self, Dest, Kind};
use crate::sys::{self, Answer, Notif};

/// A TCP port the container publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub container_port: u16,
    /// The host address; `None` for every address (0.0.0.0, as the port driver binds it).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
}

/// The normal path's forwards of the published ports (the container layer talks to the port
/// driver). Called from the service's thread, with the container's `listen` waiting.
pub trait Forwards: Send + Sync {
    /// Closes the forward of `p`: when this returns, HOSTIP:HP is free.
    fn take(&self, p: &Published) -> Result<(), String>;
    /// Opens the forward of `p` again (the bypass could not serve it).
    fn restore(&self, p: &Published) -> Result<(), String>;
}

/// The published ports of one container and what the bypass did with them, shared by the
/// services of its notify fds (init and each `exec`).
pub struct Ports {
    published: Vec<Published>,
    forwards: Box<dyn Forwards>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Container ports whose forward the bypass holds.
    taken: Vec<u16>,
    /// Swapped listeners by socket inode: the raw address the app bound inside.
    listeners: HashMap<u64, Vec<u8>>,
}

impl Ports {
    pub fn new(published: Vec<Published>, forwards: Box<dyn Forwards>) -> Ports {
        Ports {
            published,
            forwards,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The host address a container socket of `domain` bound to `inside` takes for `p`, raw;
/// `None` where the families cannot meet (an IPv4 socket and an IPv6 host address, or an
/// IPv6-only socket and an IPv4 one).
fn host_addr(p: &Published, domain: i32, v6only: bool) -> Option<Vec<u8>> {
    let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let a = match (domain, ip) {
        (libc::AF_INET, IpAddr::V4(v4)) => SocketAddr::new(v4.into(), p.host_port),
        (libc::AF_INET6, IpAddr::V6(v6)) => SocketAddr::new(v6.into(), p.host_port),
        // A dual-stack socket serves IPv4 clients on a v4-mapped (or the unspecified) address.
        (libc::AF_INET6, IpAddr::V4(v4)) if !v6only => {
            let ip = if v4.is_unspecified() {
                std::net::Ipv6Addr::UNSPECIFIED
            } else {
                v4.to_ipv6_mapped()
            };
            SocketAddr::V6(SocketAddrV6::new(ip, p.host_port, 0, 0))
        }
        _ => return None,
    };
    Some(socket::raw_sockaddr(a))
}

/// Whether the container's socket, bound to `inside`, serves a published port (which).
fn published_for(ports: &Ports, inside: SocketAddr) -> Option<&Published> {
    let ip = match inside.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    if ip.is_loopback() {
        return None;
    }
    ports
        .published
        .iter()
        .find(|p| p.container_port == inside.port())
}

/// A trapped `listen(fd, backlog)`.
pub(crate) fn listen(notify: BorrowedFd, ports: &Ports, host_netns: u64, n: &Notif) -> Answer {
    let fd = n.data.args[0] as u32 as i32;
    let backlog = n.data.args[1] as u32 as i32;
    if fd < 0 {
        return Answer::Continue;
    }
    let Ok(pidfd) = sys::pidfd_open(n.pid) else {
        return Answer::Continue;
    };
    if !sys::id_valid(notify, n.id) {
        return Answer::Continue;
    }
    let Ok(sock) = sys::pidfd_getfd(pidfd.as_fd(), fd) else {
        return Answer::Continue;
    };
    // The fd taken is the target's only if the call still waits.
    if !sys::id_valid(notify, n.id) {
        return Answer::Continue;
    }
    let Ok(Some(kind)) = Kind::of(sock.as_fd()) else {
        return Answer::Continue;
    };
    if kind.ty != libc::SOCK_STREAM
        || sys::netns_cookie(sock.as_fd()).map_or(true, |c| c == host_netns)
        || sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_ACCEPTCONN).unwrap_or(1)
            != 0
    {
        return Answer::Continue;
    }
    let Ok(inside_raw) = sys::sockname(sock.as_fd()) else {
        return Answer::Continue;
    };
    let Some(Dest::Inet(inside)) = socket::parse_sockaddr(&inside_raw) else {
        return Answer::Continue;
    };
    let Some(p) = published_for(ports, inside) else {
        return Answer::Continue;
    };
    let v6only = kind.domain == libc::AF_INET6
        && sys::getsockopt_int(sock.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY).unwrap_or(1)
            != 0;
    let Some(host_raw) = host_addr(p, kind.domain, v6only) else {
        return Answer::Continue;
    };
    let (Ok(flags), Some(cloexec)) = (
        sys::status_flags(sock.as_fd()),
        crate::service::cloexec(n.pid, fd),
    ) else {
        return Answer::Continue;
    };
    let Ok(host) = socket::twin(sock.as_fd(), kind) else {
        return Answer::Continue;
    };
    let _ = sys::setsockopt_bytes(
        host.as_fd(),
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        &1i32.to_ne_bytes(),
    );
    if flags & libc::O_NONBLOCK == 0 {
        let fl = sys::status_flags(host.as_fd()).unwrap_or(0);
        if sys::set_status_flags(host.as_fd(), fl & !libc::O_NONBLOCK).is_err() {
            return Answer::Continue;
        }
    }
    // One listen at a time per container decides who holds HP.
    let mut st = ports.state();
    let took_now = !st.taken.contains(&p.container_port);
    if took_now {
        if let Err(e) = ports.forwards.take(p) {
            tracing::debug!(port = p.host_port, error = %e, "forward kept: normal path");
            return Answer::Continue;
        }
        st.taken.push(p.container_port);
    }
    let give_back = |st: &mut State| {
        if took_now {
            match ports.forwards.restore(p) {
                Ok(()) => st.taken.retain(|c| *c != p.container_port),
                Err(e) => tracing::warn!(port = p.host_port, error = %e, "forward not restored"),
            }
        }
    };
    if let Err(e) = bind_listen(host.as_fd(), &host_raw, backlog) {
        tracing::debug!(
            port = p.host_port,
            errno = e,
            "host listener failed: normal path"
        );
        give_back(&mut st);
        return Answer::Continue;
    }
    let Ok(ino) = sys::inode(host.as_fd()) else {
        give_back(&mut st);
        return Answer::Continue;
    };
    if !sys::id_valid(notify, n.id) {
        give_back(&mut st);
        return Answer::Continue;
    }
    if let Err(e) = sys::addfd_setfd(notify, n.id, host.as_fd(), fd, cloexec) {
        tracing::debug!(error = %e, "SECCOMP_IOCTL_NOTIF_ADDFD failed: normal path");
        give_back(&mut st);
        return Answer::Continue;
    }
    st.listeners.insert(ino, inside_raw);
    drop(host);
    tracing::debug!(%inside, port = p.host_port, "published port served by the app's socket");
    Answer::Return(Ok(0))
}

/// Binds and listens; the port driver's listener is closed when `take` returns, but its
/// address can stay busy a moment longer (a listener closing in another thread of that
/// process), so a busy address is tried again briefly.
fn bind_listen(host: BorrowedFd, addr: &[u8], backlog: i32) -> Result<(), i32> {
    let mut tries = 0;
    loop {
        match sys::bind(host, addr) {
            Ok(()) => break,
            Err(libc::EADDRINUSE) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
    sys::listen(host, backlog)
}

/// A trapped `getsockname(fd, addr, addrlen)`: the app's own address for the listeners this
/// module swapped, the kernel's answer for everything else.
pub(crate) fn getsockname(notify: BorrowedFd, ports: &Ports, n: &Notif) -> Answer {
    let fd = n.data.args[0] as u32 as i32;
    let (addr, lenp) = (n.data.args[1], n.data.args[2]);
    if fd < 0 || addr == 0 || lenp == 0 {
        return Answer::Continue;
    }
    let Ok(pidfd) = sys::pidfd_open(n.pid) else {
        return Answer::Continue;
    };
    let Ok(mem) = sys::open_memory(n.pid) else {
        return Answer::Continue;
    };
    if !sys::id_valid(notify, n.id) {
        return Answer::Continue;
    }
    let Ok(sock) = sys::pidfd_getfd(pidfd.as_fd(), fd) else {
        return Answer::Continue;
    };
    let Some(inside) = inode_of(&sock).and_then(|i| ports.state().listeners.get(&i).cloned())
    else {
        return Answer::Continue;
    };
    let Ok(len) = sys::read_memory(n.pid, lenp, 4) else {
        return Answer::Continue;
    };
    // What was read and the file opened are the target's only if the call still waits.
    if !sys::id_valid(notify, n.id) {
        return Answer::Continue;
    }
    let len = u32::from_ne_bytes(len.try_into().expect("4 bytes")) as usize;
    // As the kernel does: truncate to the caller's buffer, report the full length.
    let copy = &inside[..inside.len().min(len)];
    let full = (inside.len() as u32).to_ne_bytes();
    if mem.write_all_at(copy, addr).is_err() || mem.write_all_at(&full, lenp).is_err() {
        return Answer::Return(Err(libc::EFAULT));
    }
    Answer::Return(Ok(0))
}

fn inode_of(fd: &OwnedFd) -> Option<u64> {
    sys::inode(fd.as_fd()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;
    impl Forwards for Never {
        fn take(&self, _: &Published) -> Result<(), String> {
            Err("no".into())
        }
        fn restore(&self, _: &Published) -> Result<(), String> {
            Ok(())
        }
    }

    fn ports() -> Ports {
        Ports::new(
            vec![Published {
                container_port: 80,
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 8080,
            }],
            Box::new(Never),
        )
    }

    #[test]
    fn a_listener_on_the_published_port_qualifies_unless_on_loopback() {
        let p = ports();
        for a in [
            "0.0.0.0:80",
            "10.4.0.2:80",
            "[::]:80",
            "[::ffff:10.4.0.2]:80",
        ] {
            assert!(published_for(&p, a.parse().unwrap()).is_some(), "{a}");
        }
        for a in [
            "127.0.0.1:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
            "0.0.0.0:81",
        ] {
            assert!(published_for(&p, a.parse().unwrap()).is_none(), "{a}");
        }
    }

    #[test]
    fn the_host_address_follows_the_socket_family() {
        let v4 = Published {
            container_port: 80,
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 8080,
        };
        let parse = |b: Option<Vec<u8>>| b.and_then(|b| socket::parse_sockaddr(&b));
        assert_eq!(
            parse(host_addr(&v4, libc::AF_INET, false)),
            Some(Dest::Inet("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            parse(host_addr(&v4, libc::AF_INET6, false)),
            Some(Dest::Inet("[::ffff:127.0.0.1]:8080".parse().unwrap()))
        );
        assert_eq!(host_addr(&v4, libc::AF_INET6, true), None);
        let all = Published {
            host_ip: None,
            ..v4.clone()
        };
        assert_eq!(
            parse(host_addr(&all, libc::AF_INET6, false)),
            Some(Dest::Inet("[::]:8080".parse().unwrap()))
        );
        let v6 = Published {
            host_ip: Some("::1".parse().unwrap()),
            ..v4
        };
        assert_eq!(host_addr(&v6, libc::AF_INET, false), None);
    }
}
