//! Unconnected UDP: a container's UDP socket is swapped for a host socket at its first `sendto`
//! to an outside address, and the service sends that datagram itself.
//!
//! The profile traps `sendto` only with a destination (argument 4 not NULL): `send` and
//! `write` never trap, and neither does `sendmsg` (runc's init sends the notify fd with it
//! before anyone serves the filter). A trapped `sendto` never gets `CONTINUE` once a host
//! socket is involved: the kernel would read the destination again from the container's
//! memory, where another thread may have put 127.0.0.1 after the check. So the service reads
//! the destination and the payload, checks them, and calls `sendto` on the host socket with
//! those copies, answering with its result.
//!
//! ## Which socket, which datagram
//!
//! - A container socket that is fresh (never bound, so nothing was sent on it yet and no
//!   reply can be on its way to the container's address) whose datagram goes where the policy
//!   allows: a host twin is made (options replayed), installed in place of the app's fd, and
//!   the datagram sent on it. Replies come to the twin: the app's `recvfrom` reads them.
//!   Anything else — a bound socket, a never-bypass destination (DNS, container networks,
//!   loopback…) — is the normal path, untouched.
//! - A socket swapped here that sends to an outside address again: sent by the service on our
//!   duplicate of the host socket (every such datagram is a round trip to the service).
//! - A socket swapped here that sends to (or connects to) a never-bypass address (a container
//!   peer, the DNS forwarder): the app must still reach it, and a host socket cannot. The service keeps the
//!   container's original socket for each swap, puts it back in place of the app's fd and
//!   answers `CONTINUE`: the kernel sends on the container's socket, where its second read of
//!   the address is harmless (the normal path's rules apply). The socket stays on the normal
//!   path for good (the send binds it, and a bound socket is never swapped again); datagrams
//!   that outside peers still send to the host socket's port are lost, as after a NAT
//!   rebinding.
//! - A host socket the service did not swap here (a UDP socket swapped by `connect`, or one
//!   passed in) sending to a never-bypass address: refused with ENETUNREACH, as its `connect`
//!   there is. Without this trap such a `sendto` would have reached the host's loopback.
//!
//! The kept originals are dropped once their host socket is gone: each new swap first prunes
//! the entries whose socket inode no longer appears in this netns's `/proc/net/udp{,6}`.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use crate::service::{self, Shared};
use crate::socket::{self, Dest, Kind};
use crate::sys::{self, Answer, Notif};

/// The largest UDP payload (IPv4; larger sends are the kernel's EMSGSIZE on the normal path).
const MAX_PAYLOAD: usize = 65507;

/// The container's original socket of each UDP socket swapped at `sendto`, by the inode of
/// the host socket that replaced it.
#[derive(Default)]
pub(crate) struct Swapped(Mutex<HashMap<u64, OwnedFd>>);

impl Swapped {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OwnedFd>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, host_inode: u64, original: OwnedFd) {
        let live = live_udp_inodes();
        let mut m = self.map();
        m.retain(|ino, _| live.contains(ino));
        m.insert(host_inode, original);
    }
}

/// The inodes of this thread's network namespace's UDP sockets.
fn live_udp_inodes() -> Vec<u64> {
    ["/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(9)?.parse().ok())
                .collect::<Vec<u64>>()
        })
        .collect()
}

/// A trapped `sendto(fd, buf, len, flags, dst, dstlen)`.
pub(crate) fn sendto(s: &Shared, n: &Notif) -> Answer {
    let a = n.data.args;
    let fd = a[0] as u32 as i32;
    let (buf, len, flags) = (a[1], a[2] as usize, a[3] as u32 as i32);
    let (dst, dlen) = (a[4], a[5] as u32 as usize);
    if fd < 0 || dst == 0 || !(2..=128).contains(&dlen) || len > MAX_PAYLOAD {
        return Answer::Continue;
    }
    let Ok(pidfd) = sys::pidfd_open(n.pid) else {
        return Answer::Continue;
    };
    if !sys::id_valid(s.fd(), n.id) {
        return Answer::Continue;
    }
    let Ok(raw) = sys::read_memory(n.pid, dst, dlen) else {
        return Answer::Continue;
    };
    let Ok(sock) = sys::pidfd_getfd(pidfd.as_fd(), fd) else {
        return Answer::Continue;
    };
    if !sys::id_valid(s.fd(), n.id) {
        return Answer::Continue;
    }
    let (Some(Dest::Inet(to)), Ok(Some(kind))) =
        (socket::parse_sockaddr(&raw), Kind::of(sock.as_fd()))
    else {
        return Answer::Continue;
    };
    if kind.ty != libc::SOCK_DGRAM {
        return Answer::Continue;
    }
    let Ok(cookie) = sys::netns_cookie(sock.as_fd()) else {
        return Answer::Continue;
    };
    let allowed = s.policy.allows(to);
    if cookie == s.host_netns {
        if allowed {
            return send_here(s, n, sock.as_fd(), (buf, len), flags, &raw);
        }
        return give_back(s, n, sock.as_fd()).unwrap_or_else(|| {
            tracing::debug!(%to, "host socket to a refused destination");
            s.count(&s.stats.refused);
            Answer::Return(Err(libc::ENETUNREACH))
        });
    }
    if !allowed
        || !service::family_ok(sock.as_fd(), kind, to)
        || !service::fresh(sock.as_fd(), kind)
    {
        tracing::debug!(%to, "normal path");
        s.count(&s.stats.normal);
        return Answer::Continue;
    }
    let (Ok(fl), Some(cloexec)) = (sys::status_flags(sock.as_fd()), service::cloexec(n.pid, fd))
    else {
        return Answer::Continue;
    };
    let Ok(host) = socket::twin(sock.as_fd(), kind) else {
        s.count(&s.stats.normal);
        return Answer::Continue;
    };
    if let Err(e) = socket::pin_to_uplink(host.as_fd(), to) {
        tracing::debug!(%to, "cannot pin the twin to an uplink ({e}): normal path");
        s.count(&s.stats.normal);
        return Answer::Continue;
    }
    if fl & libc::O_NONBLOCK == 0 {
        let hf = sys::status_flags(host.as_fd()).unwrap_or(0);
        if sys::set_status_flags(host.as_fd(), hf & !libc::O_NONBLOCK).is_err() {
            return Answer::Continue;
        }
    }
    let Ok(ino) = sys::inode(host.as_fd()) else {
        return Answer::Continue;
    };
    // Installed before the send: a datagram sent and then not installed would be sent twice
    // (again by the normal path), or its reply lost.
    if !sys::id_valid(s.fd(), n.id)
        || sys::addfd_setfd(s.fd(), n.id, host.as_fd(), fd, cloexec).is_err()
    {
        return Answer::Continue;
    }
    s.datagrams.insert(ino, sock);
    s.count(&s.stats.bypassed);
    tracing::debug!(%to, "bypass (sendto)");
    send_here(s, n, host.as_fd(), (buf, len), flags, &raw)
}

/// For a host socket swapped here (`sock`, our duplicate of the target's `args[0]`): puts the
/// container's own socket back in its place and answers `CONTINUE`, so that the trapped call
/// (a `sendto` or `connect` to a never-bypass address) runs on it — the kernel's re-read of the
/// address can only reach what the normal path reaches. `None` for any other socket.
pub(crate) fn give_back(s: &Shared, n: &Notif, sock: BorrowedFd) -> Option<Answer> {
    let fd = n.data.args[0] as u32 as i32;
    let original = sys::inode(sock)
        .ok()
        .and_then(|i| s.datagrams.map().remove(&i))?;
    let cloexec = service::cloexec(n.pid, fd).unwrap_or(true);
    if !sys::id_valid(s.fd(), n.id)
        || sys::addfd_setfd(s.fd(), n.id, original.as_fd(), fd, cloexec).is_err()
    {
        return Some(Answer::Return(Err(libc::ENETUNREACH)));
    }
    tracing::debug!("swapped UDP socket back to the normal path");
    s.count(&s.stats.normal);
    Some(Answer::Continue)
}

/// Sends the target's payload on host socket `sock` to the checked `raw` destination.
fn send_here(
    s: &Shared,
    n: &Notif,
    sock: BorrowedFd,
    (buf, len): (u64, usize),
    flags: i32,
    raw: &[u8],
) -> Answer {
    let data = if len == 0 {
        Vec::new()
    } else {
        match sys::read_memory(n.pid, buf, len) {
            Ok(d) => d,
            Err(_) => return Answer::Return(Err(libc::EFAULT)),
        }
    };
    if !sys::id_valid(s.fd(), n.id) {
        return Answer::Return(Err(libc::EINTR));
    }
    let blocking = flags & libc::MSG_DONTWAIT == 0
        && sys::status_flags(sock).is_ok_and(|f| f & libc::O_NONBLOCK == 0);
    loop {
        // Never blocking in the service: a full send buffer is waited for here, a second at a
        // time, while the caller still waits.
        match sys::sendto(sock, &data, flags | libc::MSG_DONTWAIT, raw) {
            Err(libc::EAGAIN) if blocking => match sys::wait_writable(sock, 1000) {
                Ok(_) if sys::id_valid(s.fd(), n.id) => continue,
                _ => return Answer::Return(Err(libc::EINTR)),
            },
            r => return Answer::Return(r.map(|n| n as i64)),
        }
    }
}
