//! Getting a route-netlink socket inside another network namespace, as root or rootless.
//!
//! `setns(CLONE_NEWNET)` needs CAP_SYS_ADMIN over the user namespace that owns the target
//! netns. Root has it everywhere. A rootless user has it only inside user namespaces it
//! created — and only after joining one, which a multi-threaded process cannot do (setns of a
//! user namespace requires a single-threaded caller). So one short-lived forked helper per
//! namespace (always single-threaded, whatever the parent is) tries `setns(net)` first, and on
//! EPERM joins the netns's owning user namespace and tries again; then it opens a
//! NETLINK_ROUTE socket and passes it back with SCM_RIGHTS. The socket keeps answering for
//! the namespace it was created in, so the parent never leaves its own namespaces and can read
//! the host's view before and after. The same path serves root, where the first setns works.
//!
//! The helper does nothing but raw system calls between fork and `_exit`, so it is safe even
//! when the parent has threads.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, socketpair,
};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use crate::Error;
use crate::netlink::Rtnl;
use crate::nsfs::{self, NsId, NsType};

// Steps the helper reports when it fails.
const STEP_SETNS_NET: u32 = 1;
const STEP_SETNS_USER: u32 = 3;
const STEP_SOCKET: u32 = 4;

fn step_name(step: u32) -> &'static str {
    match step {
        STEP_SETNS_NET => "setns into it",
        STEP_SETNS_USER => "join its owning user namespace",
        STEP_SOCKET => "open a socket or file in it",
        _ => "start the helper",
    }
}

/// Sends `[step, errno]` and, on success, `fd` over `sock`. Raw libc only (see the module doc).
unsafe fn helper_send(sock: RawFd, step: u32, errno: i32, fd: Option<RawFd>) {
    let mut data = [0u8; 8];
    data[..4].copy_from_slice(&step.to_ne_bytes());
    data[4..].copy_from_slice(&errno.to_ne_bytes());
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain old data; every pointer set below outlives the sendmsg call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(fd) = fd {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        }
        libc::sendmsg(sock, &msg, 0);
    }
}

/// What the helper makes inside the namespace and hands back.
pub enum What {
    /// A NETLINK_ROUTE socket (the interface, address and route reads).
    Rtnl,
    /// A file opened read-only there: `/proc/thread-self/net/tcp` shows the sockets of the
    /// namespace the opener was in, and keeps doing so for whoever holds the descriptor.
    File(std::ffi::CString),
    /// A TCP socket of this family (`libc::AF_INET`/`AF_INET6`), for `trace --probe`: a
    /// socket answers for the namespace it was made in, so a connect through it happens
    /// there.
    Tcp(i32),
}

/// The helper's whole life after fork. `user` is the netns's owning user namespace, when it
/// is not our own (joining one's own user namespace is EINVAL, and would grant nothing).
unsafe fn helper(sock: RawFd, netns: RawFd, user: Option<RawFd>, what: &What) -> ! {
    // SAFETY: raw system calls on descriptors we hold; _exit never returns.
    unsafe {
        let errno = || *libc::__errno_location();
        if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
            let Some(user) = user else {
                helper_send(sock, STEP_SETNS_NET, errno(), None);
                libc::_exit(1);
            };
            if errno() != libc::EPERM {
                helper_send(sock, STEP_SETNS_NET, errno(), None);
                libc::_exit(1);
            }
            if libc::setns(user, libc::CLONE_NEWUSER) != 0 {
                helper_send(sock, STEP_SETNS_USER, errno(), None);
                libc::_exit(1);
            }
            if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                helper_send(sock, STEP_SETNS_NET, errno(), None);
                libc::_exit(1);
            }
        }
        let s = match what {
            What::Rtnl => libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            ),
            What::File(path) => libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC),
            What::Tcp(family) => libc::socket(*family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
        };
        if s < 0 {
            helper_send(sock, STEP_SOCKET, errno(), None);
            libc::_exit(1);
        }
        helper_send(sock, 0, 0, Some(s));
        libc::_exit(0)
    }
}

/// A route-netlink socket that answers for the network namespace open on `netns`.
pub fn rtnl_in(netns: BorrowedFd<'_>) -> Result<Rtnl, Error> {
    open_in(netns, What::Rtnl).map(|fd| match fd {
        Opened::Here => Rtnl::here(),
        Opened::Fd(fd) => Ok(Rtnl::from_fd(fd)),
    })?
}

/// Reads a whole file as the network namespace open on `netns` shows it (`/proc/thread-
/// self/net/…`).
pub fn read_in(netns: BorrowedFd<'_>, path: &str) -> Result<String, Error> {
    let c = std::ffi::CString::new(path).expect("no NUL in a /proc path");
    let fd = match open_in(netns, What::File(c))? {
        Opened::Here => {
            return std::fs::read_to_string(path).map_err(|source| Error::Open {
                what: path.into(),
                source,
            });
        }
        Opened::Fd(fd) => fd,
    };
    let mut f = std::fs::File::from(fd);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).map_err(|source| Error::Open {
        what: path.into(),
        source,
    })?;
    Ok(s)
}

/// A TCP socket made inside the network namespace open on `netns` (see [`What::Tcp`]).
pub fn tcp_socket_in(netns: BorrowedFd<'_>, family: i32) -> Result<OwnedFd, Error> {
    match open_in(netns, What::Tcp(family))? {
        Opened::Fd(fd) => Ok(fd),
        Opened::Here => {
            // SAFETY: a plain socket call; the descriptor is owned at once.
            let s = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            if s < 0 {
                return Err(Error::Netlink {
                    op: "create a TCP socket",
                    source: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: just created, ours.
            Ok(unsafe { OwnedFd::from_raw_fd(s) })
        }
    }
}

/// Either the namespace is our own (the caller makes the thing here, no helper needed), or
/// the helper made it there.
pub enum Opened {
    Here,
    Fd(OwnedFd),
}

/// Makes `what` inside the network namespace open on `netns` (see the module doc).
pub fn open_in(netns: BorrowedFd<'_>, what: What) -> Result<Opened, Error> {
    let id = NsId {
        kind: NsType::Net,
        inode: nsfs::inode(netns).map_err(|source| Error::Netlink {
            op: "stat a network namespace",
            source,
        })?,
    };
    let own =
        nsfs::open(std::path::Path::new("/proc/self/ns/net")).and_then(|f| nsfs::inode(f.as_fd()));
    if own.ok() == Some(id.inode) {
        return Ok(Opened::Here);
    }
    let enter_err = |op: &'static str, source: std::io::Error| Error::Enter { ns: id, op, source };
    // The owner is unknown (EPERM) when it lies outside our own user namespace — an
    // ancestor, whose rights we could not gain anyway: then only the direct setns is tried.
    let owner = nsfs::owning_userns(netns).ok();
    let own_user = nsfs::open(std::path::Path::new("/proc/self/ns/user"))
        .and_then(|f| nsfs::inode(f.as_fd()))
        .ok();
    let user = owner
        .as_ref()
        .filter(|o| nsfs::inode(o.as_fd()).ok() != own_user)
        .map(|o| o.as_raw_fd());
    let (mine, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| enter_err("create a socket pair", e.into()))?;
    // SAFETY: the child runs only `helper`, which makes raw system calls and _exits.
    let pid = match unsafe { nix::unistd::fork() }
        .map_err(|e| enter_err("fork a helper", e.into()))?
    {
        ForkResult::Child => unsafe { helper(theirs.as_raw_fd(), netns.as_raw_fd(), user, &what) },
        ForkResult::Parent { child } => child,
    };
    drop(theirs);
    let mut data = [0u8; 8];
    let mut iov = [std::io::IoSliceMut::new(&mut data)];
    let mut cspace = nix::cmsg_space!([RawFd; 1]);
    let received = recvmsg::<()>(
        mine.as_raw_fd(),
        &mut iov,
        Some(&mut cspace),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| enter_err("hear from the helper", e.into()));
    let mut fd = None;
    if let Ok(msg) = &received {
        for c in msg.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: SCM_RIGHTS just installed this descriptor in our table.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    fd.get_or_insert(owned);
                }
            }
        }
    }
    let _ = waitpid(pid, None);
    received?;
    let step = u32::from_ne_bytes(data[..4].try_into().unwrap());
    let errno = i32::from_ne_bytes(data[4..].try_into().unwrap());
    match fd {
        Some(fd) if step == 0 => Ok(Opened::Fd(fd)),
        _ => Err(enter_err(
            step_name(step),
            std::io::Error::from_raw_os_error(if errno == 0 { libc::EIO } else { errno }),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_read_without_a_helper() {
        // Entering other namespaces (root: setns; rootless: through the owning user
        // namespace) is exercised by the integration worlds in crates/nsnet/tests/ns.rs.
        let me = nsfs::open(std::path::Path::new("/proc/self/ns/net")).unwrap();
        let mut r = rtnl_in(me.as_fd()).unwrap();
        assert!(r.links().unwrap().iter().any(|l| l.name == "lo"));
    }
}
