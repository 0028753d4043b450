//! The kernel calls of the bypass, each a thin safe wrapper: the seccomp notify ioctls (ABI from
//! `libc`), pidfds, `process_vm_readv`, socket options. Nothing here decides anything.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `AUDIT_ARCH_X86_64`: the only architecture whose `connect` number the service knows.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `SO_NETNS_COOKIE` (Linux 5.14): which network namespace a socket lives in, unprivileged.
const SO_NETNS_COOKIE: libc::c_int = 71;
/// `PIDFD_THREAD` (Linux 6.9) is `O_EXCL`: a pidfd for a thread, not only a group leader.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// One pending notification.
pub type Notif = libc::seccomp_notif;

/// `SECCOMP_IOCTL_NOTIF_RECV`.
pub fn recv(notify: BorrowedFd) -> io::Result<Notif> {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
    let mut n: Notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `n`.
    cvt(
        unsafe { libc::ioctl(notify.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) }
            as libc::c_long,
    )?;
    Ok(n)
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: the notification is still pending (its thread alive and
/// still in the call), so what was read from it before is the target's.
pub fn id_valid(notify: BorrowedFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one u64.
    unsafe {
        libc::ioctl(
            notify.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id,
        ) == 0
    }
}

/// How the service answers a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Let the call run as it would without the filter (the normal path).
    Continue,
    /// The call's result: `Ok(value)` or `Err(errno)`.
    Return(Result<i64, i32>),
}

/// `SECCOMP_IOCTL_NOTIF_SEND`. ENOENT means the notification went away (a signal, an exit).
pub fn send(notify: BorrowedFd, id: u64, a: Answer) -> io::Result<()> {
    let mut r = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: 0,
    };
    match a {
        Answer::Continue => r.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        Answer::Return(Ok(v)) => r.val = v,
        Answer::Return(Err(e)) => r.error = -e,
    }
    // SAFETY: the ioctl reads one seccomp_notif_resp.
    cvt(
        unsafe { libc::ioctl(notify.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut r) }
            as libc::c_long,
    )?;
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` with `SECCOMP_ADDFD_FLAG_SETFD`: `src` becomes the target's
/// descriptor `target_fd`, replacing what was there (as dup2 would).
pub fn addfd_setfd(
    notify: BorrowedFd,
    id: u64,
    src: BorrowedFd,
    target_fd: RawFd,
    cloexec: bool,
) -> io::Result<()> {
    let mut a = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: src.as_raw_fd() as u32,
        newfd: target_fd as u32,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: the ioctl reads one seccomp_notif_addfd.
    cvt(
        unsafe { libc::ioctl(notify.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut a) }
            as libc::c_long,
    )?;
    Ok(())
}

/// A pidfd for thread `tid` (the notification names a thread), else for a process.
pub fn pidfd_open(tid: u32) -> io::Result<OwnedFd> {
    let open = |flags: libc::c_uint| {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
        cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::pid_t, flags) })
    };
    let fd = open(PIDFD_THREAD).or_else(|_| open(0))?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_getfd`: our own descriptor for the target's `fd` (the same open file).
pub fn pidfd_getfd(pidfd: BorrowedFd, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd returns a new descriptor (with O_CLOEXEC) or fails.
    let r = cvt(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Reads `len` bytes at `addr` in thread `tid`'s memory; short reads are errors.
pub fn read_memory(tid: u32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: the local iovec covers `buf`; the remote one is only read by the kernel, in the
    // target's address space.
    let n = unsafe { libc::process_vm_readv(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != len {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(buf)
}

/// An integer socket option.
pub fn getsockopt_int(fd: BorrowedFd, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len describe a buffer of one c_int.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    cvt(r as libc::c_long)?;
    Ok(v)
}

/// A socket option as bytes (at most `max`).
pub fn getsockopt_bytes(
    fd: BorrowedFd,
    level: libc::c_int,
    name: libc::c_int,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let mut len = max as libc::socklen_t;
    // SAFETY: buf and len describe a buffer of `max` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    cvt(r as libc::c_long)?;
    buf.truncate(len as usize);
    Ok(buf)
}

pub fn setsockopt_bytes(
    fd: BorrowedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: &[u8],
) -> io::Result<()> {
    // SAFETY: v is a readable buffer of v.len() bytes.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            v.as_ptr().cast(),
            v.len() as libc::socklen_t,
        )
    };
    cvt(r as libc::c_long).map(|_| ())
}

/// The cookie of the network namespace `fd` lives in.
pub fn netns_cookie(fd: BorrowedFd) -> io::Result<u64> {
    let b = getsockopt_bytes(fd, libc::SOL_SOCKET, SO_NETNS_COOKIE, 8)?;
    let b: [u8; 8] = b
        .try_into()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(u64::from_ne_bytes(b))
}

/// A new socket (close-on-exec on our side; the target's flag is set by ADDFD).
pub fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket returns a new descriptor or fails.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    cvt(fd as libc::c_long)?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `connect` with a raw sockaddr: `Ok(())` or the errno.
pub fn connect(fd: BorrowedFd, addr: &[u8]) -> Result<(), i32> {
    loop {
        // SAFETY: addr is a readable buffer holding a sockaddr of addr.len() bytes.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                addr.as_ptr().cast(),
                addr.len() as libc::socklen_t,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// The file status flags (`O_NONBLOCK`…) of the open file behind `fd`.
pub fn status_flags(fd: BorrowedFd) -> io::Result<i32> {
    // SAFETY: F_GETFL takes no argument.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) } as libc::c_long).map(|r| r as i32)
}

pub fn set_status_flags(fd: BorrowedFd, flags: i32) -> io::Result<()> {
    // SAFETY: F_SETFL takes an int.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) } as libc::c_long).map(|_| ())
}

/// The local address the socket is bound to, raw.
pub fn sockname(fd: BorrowedFd) -> io::Result<Vec<u8>> {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss and len describe a sockaddr_storage.
    let r = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    cvt(r as libc::c_long)?;
    // SAFETY: the kernel wrote `len` bytes of it.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&ss as *const libc::sockaddr_storage).cast::<u8>(),
            len as usize,
        )
    };
    Ok(bytes.to_vec())
}

/// Whether the socket has a peer (a connected TCP socket, or UDP with a default destination).
pub fn has_peer(fd: BorrowedFd) -> bool {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss and len describe a sockaddr_storage.
    unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        ) == 0
    }
}

/// Waits until `fd` is writable or `timeout_ms` passes; `Ok(true)` when writable.
pub fn wait_writable(fd: BorrowedFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}

/// Waits until the notify fd has a notification (`Ok(true)`), or hangs up because every task
/// under the filter is gone (`Ok(false)`).
pub fn wait_notification(notify: BorrowedFd) -> io::Result<bool> {
    loop {
        let mut p = libc::pollfd {
            fd: notify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        let r = unsafe { libc::poll(&mut p, 1, -1) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if p.revents & libc::POLLIN != 0 {
            return Ok(true);
        }
        if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Ok(false);
        }
    }
}

/// `bind` with a raw sockaddr: `Ok(())` or the errno.
pub fn bind(fd: BorrowedFd, addr: &[u8]) -> Result<(), i32> {
    // SAFETY: addr is a readable buffer holding a sockaddr of addr.len() bytes.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}

pub fn listen(fd: BorrowedFd, backlog: i32) -> Result<(), i32> {
    // SAFETY: listen takes a descriptor and an int.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}

/// The inode of the open file behind `fd`: a socket's identity however many descriptors
/// (ours from `pidfd_getfd`, the target's) name it.
pub fn inode(fd: BorrowedFd) -> io::Result<u64> {
    // SAFETY: stat is plain data that fstat fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid stat buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok(st.st_ino)
}

/// Opens thread `tid`'s memory for writing. Opened before the notification is checked, the
/// file stays bound to the address space it was opened on, so a write after a successful
/// `ID_VALID` cannot land in a process that reused the PID.
pub fn open_memory(tid: u32) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{tid}/mem"))
}

/// `sendto` with a raw sockaddr: the bytes sent, or the errno.
pub fn sendto(fd: BorrowedFd, data: &[u8], flags: i32, addr: &[u8]) -> Result<usize, i32> {
    loop {
        // SAFETY: data and addr are readable buffers of their lengths.
        let r = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                flags,
                addr.as_ptr().cast(),
                addr.len() as libc::socklen_t,
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if e != libc::EINTR {
            return Err(e);
        }
    }
}
