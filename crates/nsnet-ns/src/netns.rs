//! Network namespaces: bringing `lo` up, and the *detached* network namespace.
//!
//! Detached mode (RootlessKit's `--detach-netns`) keeps the child command in the host's
//! network namespace, so that it can still pull images and reach the host, and puts the
//! containers' network in a separate namespace that lives only as a bind mount on
//! `$STATE/netns` inside the child's mount namespace. From the host mount namespace that file
//! is an empty regular file; the namespace is reached as `/proc/CHILD/root/$STATE/netns`.
//!
//! `unshare(CLONE_NEWNET)` changes only the calling thread, so a short-lived thread creates
//! the namespace and pins it by bind-mounting `/proc/thread-self/ns/net`; the caller never
//! leaves its own namespace (which, rootless, it could not re-enter: the host netns belongs to
//! the initial user namespace).

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use crate::{Error, Result};

/// Sets `lo` up in the calling thread's network namespace.
///
/// One pair of ioctls is all this needs; the netlink layer (`nsnet-netlink`) is for real link
/// work and is not worth pulling into the namespace layer for a flag.
pub fn loopback_up() -> Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(Error::Loopback)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write an ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(Error::Loopback(nix::Error::last()));
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(Error::Loopback(nix::Error::last()));
        }
    }
    Ok(())
}

fn netns_err(op: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Namespace { op, path, source }
}

/// Creates a new network namespace with `lo` up and pins it on `path` (an empty file is
/// created there) without moving the caller into it.
pub fn create_detached(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o400)
        .open(path)
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
    let target: PathBuf = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(netns_err("create a network namespace for", &target))?;
        loopback_up()?;
        crate::mount::bind(Path::new("/proc/thread-self/ns/net"), &target, false)
    })
    .join()
    .expect("the netns thread does not panic");
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// The inode number of a namespace file (what `readlink /proc/PID/ns/net` shows in brackets).
pub fn ns_inode(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.ino())
}

/// The interfaces of the calling process's network namespace, by name (`/proc/net/dev`).
/// Tests, fuzz replays and property tests that open sockets to arbitrary destinations check
/// with it that they run in a world of their own (a namespace holding only `lo`).
pub fn interface_names() -> std::io::Result<Vec<String>> {
    let dev = std::fs::read_to_string("/proc/net/dev")?;
    Ok(dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect())
}

/// Runs `f` on a short-lived thread that joins the network namespace `netns` refers to, and
/// returns its result: for one-off work in a namespace (opening its `/proc/net` files,
/// writing its sysctls) before a process hides its file system, where a [`NetnsThread`]
/// would outlive its purpose.
pub fn run_in<T: Send + 'static>(
    netns: std::os::fd::BorrowedFd<'_>,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let fd = netns.try_clone_to_owned()?;
    std::thread::spawn(move || {
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        Ok(f())
    })
    .join()
    .map_err(|_| std::io::Error::other("the thread in the network namespace panicked"))?
}

/// A thread that lives in another network namespace, running closures for the rest of the
/// process's life: sockets and tap devices it creates belong to that namespace, while every
/// other thread stays in the host's. This is how the parent reaches the child's netns without
/// passing a descriptor per connection (`shared/design.md` section 2, way (b)).
///
/// `setns(CLONE_NEWNET)` needs CAP_SYS_ADMIN both in the user namespace that owns the target
/// and in the caller's own; a rootless parent gets both by joining the child's user namespace
/// first ([`crate::enter::join_user_namespace`]). The thread never switches back.
pub struct NetnsThread {
    tx: std::sync::mpsc::Sender<Job>,
    inode: u64,
}

type Job = Box<dyn FnOnce() + Send>;

impl NetnsThread {
    /// Starts the thread and moves it into the network namespace `netns` refers to.
    pub fn spawn(netns: std::os::fd::OwnedFd, path: &Path) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::File::from(netns.try_clone().map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?)
        .metadata()
        .map(|m| m.ino())
        .unwrap_or(0);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let target = path.to_path_buf();
        std::thread::Builder::new()
            .name("nsnet-netns".into())
            .spawn(move || {
                let entered = nix::sched::setns(&netns, CloneFlags::CLONE_NEWNET)
                    .map_err(netns_err("enter the network namespace", &target));
                drop(netns);
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    for job in rx {
                        job();
                    }
                }
            })
            .map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
        ready_rx
            .recv()
            .expect("the netns thread reports whether it entered")?;
        Ok(NetnsThread { tx, inode })
    }

    /// Runs `f` inside the namespace and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .expect("the netns thread lives as long as its handle");
        rx.recv().expect("the netns thread runs every job it gets")
    }

    /// The inode of the namespace the thread lives in.
    pub fn inode(&self) -> u64 {
        self.inode
    }
}
