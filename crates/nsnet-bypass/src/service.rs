//! The notification loop: one thread per container, reading the notify fd runc sent.
//!
//! `listen` and `getsockname` go to [`crate::publish`] (published ports, when the container
//! has any), `sendto` to [`crate::datagram`]; this module answers `connect`. Each trapped `connect` is answered in one of three ways (the crate page has the rules):
//! `CONTINUE` (the normal path: the container's own socket, untouched), the result of the
//! service's own connect of a host twin that it installed in place of the container's fd, or an
//! error (a host socket asked to connect where the policy refuses). A blocking connect that
//! does not complete at once is finished by a short-lived waiter thread, so one slow
//! destination never holds up the container's other connects; the waiter gives up as soon as
//! the notification goes stale (the thread was signalled or died), dropping the twin.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;
use crate::policy::Policy;
use crate::publish::Ports;
use crate::socket::{self, Dest, Kind};
use crate::sys::{self, Answer, Notif};

/// Counts of decisions, for `nsnet container inspect`, shared by the services of one container
/// (runc sends a notify fd for its init and one for each `runc exec`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Sockets swapped for host ones.
    pub bypassed: AtomicU64,
    /// Trapped connects left to the normal path.
    pub normal: AtomicU64,
    /// Connects of swapped sockets refused by the policy.
    pub refused: AtomicU64,
    file: Option<File>,
}

impl Stats {
    /// Counts kept in memory only.
    pub fn new() -> Arc<Stats> {
        Arc::new(Stats::default())
    }

    /// Counts also kept in `path` (created or truncated now) as [`Stats::line`].
    pub fn reported_to(path: &Path) -> Result<Arc<Stats>, Error> {
        let f = File::create(path).map_err(Error::io(format!("create {}", path.display())))?;
        let s = Stats {
            file: Some(f),
            ..Stats::default()
        };
        s.write()
            .map_err(Error::io(format!("write {}", path.display())))?;
        Ok(Arc::new(s))
    }

    fn write(&self) -> std::io::Result<()> {
        match &self.file {
            Some(f) => f.write_all_at(self.line().as_bytes(), 0),
            None => Ok(()),
        }
    }

    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
        // Written before the answer: once the container's call returns, the file says so.
        let _ = self.write();
    }

    /// The fixed-width line kept in the report file (rewritten in place, so a reader never
    /// sees a shorter, half-written record).
    pub fn line(&self) -> String {
        format!(
            "{{\"bypassed\":{:>12},\"normal\":{:>12},\"refused\":{:>12}}}\n",
            self.bypassed.load(Ordering::Relaxed),
            self.normal.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed)
        )
    }
}

/// What the loop and its waiters share.
pub(crate) struct Shared {
    notify: OwnedFd,
    pub(crate) policy: Policy,
    /// `SO_NETNS_COOKIE` of this thread's (the host's) network namespace.
    pub(crate) host_netns: u64,
    pub(crate) stats: Arc<Stats>,
    /// UDP sockets swapped at their first `sendto` ([`crate::datagram`]).
    pub(crate) datagrams: crate::datagram::Swapped,
    /// The container's published TCP ports, whose listeners the bypass serves.
    ports: Option<Arc<Ports>>,
}

impl Shared {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.notify.as_fd()
    }

    pub(crate) fn count(&self, c: &AtomicU64) {
        self.stats.count(c);
    }
}

/// The bypass service of one container.
pub struct Service {
    shared: Arc<Shared>,
}

impl Service {
    /// A service for the notify fd runc sent, deciding by `policy`, counting in `stats`. Call
    /// it on a thread of the host network namespace: host twins are made in the caller's.
    pub fn new(notify: OwnedFd, policy: Policy, stats: Arc<Stats>) -> Result<Service, Error> {
        let probe = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
            .map_err(Error::io("create a probe socket"))?;
        let host_netns = sys::netns_cookie(probe.as_fd()).map_err(Error::io(
            "read this network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14)",
        ))?;
        Ok(Service {
            shared: Arc::new(Shared {
                notify,
                policy,
                host_netns,
                stats,
                datagrams: Default::default(),
                ports: None,
            }),
        })
    }

    /// Also serves the listeners of `ports` (shared by the services of one container).
    pub fn publishing(self, ports: Arc<Ports>) -> Service {
        let mut shared = Arc::try_unwrap(self.shared)
            .unwrap_or_else(|_| unreachable!("a service not yet running has one owner"));
        shared.ports = Some(ports);
        Service {
            shared: Arc::new(shared),
        }
    }

    /// Answers notifications until every task under the filter is gone.
    pub fn run(self) -> Result<(), Error> {
        let s = self.shared;
        loop {
            match sys::wait_notification(s.fd()) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(Error::io("wait on the seccomp notify fd")(e)),
            }
            let n = match sys::recv(s.fd()) {
                Ok(n) => n,
                // The task went away between poll and receive.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => continue,
                Err(e) => return Err(Error::io("receive a seccomp notification")(e)),
            };
            if let Some(a) = decide(&s, &n) {
                // ENOENT: the call was interrupted meanwhile; nothing waits for the answer.
                let _ = sys::send(s.fd(), n.id, a);
            }
        }
    }
}

/// The answer to `n`, or `None` when there is nothing to answer (stale) or a waiter will.
fn decide(s: &Arc<Shared>, n: &Notif) -> Option<Answer> {
    if n.data.arch != sys::AUDIT_ARCH_X86_64 {
        return Some(Answer::Continue);
    }
    match (i64::from(n.data.nr), &s.ports) {
        (libc::SYS_connect, _) => connect(s, n),
        (libc::SYS_sendto, _) => Some(crate::datagram::sendto(s, n)),
        (libc::SYS_listen, Some(p)) => {
            let a = crate::publish::listen(s.fd(), p, s.host_netns, n);
            if a != Answer::Continue {
                s.count(&s.stats.bypassed);
            }
            Some(a)
        }
        (libc::SYS_getsockname, Some(p)) => Some(crate::publish::getsockname(s.fd(), p, n)),
        _ => Some(Answer::Continue),
    }
}

fn connect(s: &Arc<Shared>, n: &Notif) -> Option<Answer> {
    let fd = n.data.args[0] as u32 as i32;
    let len = n.data.args[2] as u32 as usize;
    if fd < 0 || !(2..=128).contains(&len) {
        return Some(Answer::Continue);
    }
    let Ok(pidfd) = sys::pidfd_open(n.pid) else {
        return Some(Answer::Continue);
    };
    // The pidfd is the target's only if the notification was still pending after it opened.
    if !sys::id_valid(s.fd(), n.id) {
        return None;
    }
    let Ok(raw) = sys::read_memory(n.pid, n.data.args[1], len) else {
        return Some(Answer::Continue);
    };
    let Ok(sock) = sys::pidfd_getfd(pidfd.as_fd(), fd) else {
        return Some(Answer::Continue);
    };
    // Both were read from the target only if it is still waiting in this very call.
    if !sys::id_valid(s.fd(), n.id) {
        return None;
    }
    let (Some(dest), Ok(Some(kind))) = (socket::parse_sockaddr(&raw), Kind::of(sock.as_fd()))
    else {
        return Some(Answer::Continue);
    };
    let Ok(cookie) = sys::netns_cookie(sock.as_fd()) else {
        return Some(Answer::Continue);
    };
    if cookie == s.host_netns {
        return reconnect(s, n, sock, kind, dest, raw);
    }
    let Dest::Inet(dst) = dest else {
        return Some(Answer::Continue);
    };
    if !family_ok(sock.as_fd(), kind, dst) || !s.policy.allows(dst) || !fresh(sock.as_fd(), kind) {
        tracing::debug!(%dst, "normal path");
        s.count(&s.stats.normal);
        return Some(Answer::Continue);
    }
    let (Ok(flags), Some(cloexec)) = (sys::status_flags(sock.as_fd()), cloexec(n.pid, fd)) else {
        return Some(Answer::Continue);
    };
    let host = match socket::twin(sock.as_fd(), kind) {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(%dst, level = e.level, name = e.name, error = %e.error, "option not replayed: normal path");
            s.count(&s.stats.normal);
            return Some(Answer::Continue);
        }
    };
    if kind.ty == libc::SOCK_DGRAM
        && let Err(e) = socket::pin_to_uplink(host.as_fd(), dst)
    {
        tracing::debug!(%dst, "cannot pin the twin to an uplink ({e}): normal path");
        s.count(&s.stats.normal);
        return Some(Answer::Continue);
    }
    let swap = Swap {
        id: n.id,
        target_fd: fd,
        cloexec,
        nonblocking: flags & libc::O_NONBLOCK != 0,
        host,
    };
    tracing::debug!(%dst, "bypass");
    match sys::connect(swap.host.as_fd(), &raw) {
        Ok(()) => swap.finish(s, Ok(())),
        Err(libc::EINPROGRESS) if swap.nonblocking => swap.finish(s, Err(libc::EINPROGRESS)),
        Err(libc::EINPROGRESS) => {
            // Loopback and LAN handshakes are usually done by now.
            if let Ok(true) = sys::wait_writable(swap.host.as_fd(), 0) {
                let r = so_error(swap.host.as_fd());
                return swap.finish(s, r);
            }
            let s2 = Arc::clone(s);
            let spawned = std::thread::Builder::new()
                .name("nsnet-bypass-connect".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    if let Some((id, a)) = swap.wait(&s2) {
                        let _ = sys::send(s2.fd(), id, a);
                    }
                });
            match spawned {
                Ok(_) => None,
                // No thread: the twin is dropped and the normal path connects instead.
                Err(_) => Some(Answer::Continue),
            }
        }
        // Refused or unreachable at once: the container's socket stays as it was, unconnected.
        Err(e) => Some(Answer::Return(Err(e))),
    }
}

/// Whether `dst` is an address of the socket's family (a v4-mapped one only on a dual-stack
/// socket): else the kernel's own error, on the normal path.
pub(crate) fn family_ok(sock: BorrowedFd, kind: Kind, dst: std::net::SocketAddr) -> bool {
    match dst {
        std::net::SocketAddr::V4(_) => kind.domain == libc::AF_INET,
        std::net::SocketAddr::V6(a) => {
            kind.domain == libc::AF_INET6
                && !(a.ip().to_ipv4_mapped().is_some()
                    && sys::getsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)
                        .unwrap_or(1)
                        != 0)
        }
    }
}

/// A socket the bypass can still swap: not bound, not listening, not connected.
pub(crate) fn fresh(fd: BorrowedFd, kind: Kind) -> bool {
    if !matches!(socket::is_bound(fd), Ok(false)) {
        return false;
    }
    if kind.ty == libc::SOCK_STREAM {
        let listening = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).unwrap_or(1);
        if listening != 0 || sys::has_peer(fd) {
            return false;
        }
    }
    true
}

/// Whether the target's `fd` is close-on-exec (`/proc/TID/fdinfo`: the `flags:` field, octal).
pub(crate) fn cloexec(tid: u32, fd: RawFd) -> Option<bool> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}")).ok()?;
    let flags = text.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
    let flags = u32::from_str_radix(flags, 8).ok()?;
    Some(flags & libc::O_CLOEXEC as u32 != 0)
}

fn so_error(fd: BorrowedFd) -> Result<(), i32> {
    match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
        Ok(0) => Ok(()),
        Ok(e) => Err(e),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// A host twin connected (or connecting) for notification `id`, to become `target_fd`.
struct Swap {
    id: u64,
    target_fd: RawFd,
    cloexec: bool,
    nonblocking: bool,
    host: OwnedFd,
}

impl Swap {
    /// Installs the twin and answers with `result`; a failed connect installs nothing.
    fn finish(self, s: &Shared, result: Result<(), i32>) -> Option<Answer> {
        if let Err(e) = result
            && e != libc::EINPROGRESS
        {
            return Some(Answer::Return(Err(e)));
        }
        if !self.nonblocking {
            let fl = sys::status_flags(self.host.as_fd()).unwrap_or(0);
            if sys::set_status_flags(self.host.as_fd(), fl & !libc::O_NONBLOCK).is_err() {
                return Some(Answer::Continue);
            }
        }
        if !sys::id_valid(s.fd(), self.id) {
            return None;
        }
        match sys::addfd_setfd(
            s.fd(),
            self.id,
            self.host.as_fd(),
            self.target_fd,
            self.cloexec,
        ) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "SECCOMP_IOCTL_NOTIF_ADDFD failed: normal path");
                return Some(Answer::Continue);
            }
        }
        s.count(&s.stats.bypassed);
        Some(Answer::Return(result.map(|()| 0)))
    }

    /// Waits for a blocking connect to complete (or the notification to go stale).
    fn wait(self, s: &Shared) -> Option<(u64, Answer)> {
        loop {
            match sys::wait_writable(self.host.as_fd(), 1000) {
                Ok(true) => break,
                Ok(false) if sys::id_valid(s.fd(), self.id) => continue,
                _ => return None,
            }
        }
        let id = self.id;
        let r = so_error(self.host.as_fd());
        self.finish(s, r).map(|a| (id, a))
    }
}

/// A connect of a socket already on the host (swapped before, or passed in): connected by the
/// service to the copy it checked, where the policy allows; refused elsewhere.
fn reconnect(
    s: &Arc<Shared>,
    n: &Notif,
    sock: OwnedFd,
    kind: Kind,
    dest: Dest,
    raw: Vec<u8>,
) -> Option<Answer> {
    if let Dest::Inet(dst) = dest
        && !s.policy.allows(dst)
    {
        // A socket swapped at `sendto` goes back to the container's own socket instead.
        if let Some(a) = crate::datagram::give_back(s, n, sock.as_fd()) {
            return Some(a);
        }
        tracing::debug!(%dst, "host socket to a refused destination");
        s.count(&s.stats.refused);
        return Some(Answer::Return(Err(libc::ENETUNREACH)));
    }
    let blocking = sys::status_flags(sock.as_fd()).map_or(true, |f| f & libc::O_NONBLOCK == 0);
    if kind.ty == libc::SOCK_STREAM && blocking {
        // The dup shares the container's blocking mode: connect on a thread of its own.
        let (s2, id) = (Arc::clone(s), n.id);
        let spawned = std::thread::Builder::new()
            .name("nsnet-bypass-connect".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let r = sys::connect(sock.as_fd(), &raw);
                let _ = sys::send(s2.fd(), id, Answer::Return(r.map(|()| 0)));
            });
        return match spawned {
            Ok(_) => None,
            Err(_) => Some(Answer::Return(Err(libc::EAGAIN))),
        };
    }
    Some(Answer::Return(sys::connect(sock.as_fd(), &raw).map(|()| 0)))
}
