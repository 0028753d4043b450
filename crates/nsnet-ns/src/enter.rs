//! Entering another process's namespaces ("enter by PID").
//!
//! Namespace files under `/proc/PID/ns/` (and bind mounts of them) are handles: opening one
//! keeps the namespace alive and `setns(2)` moves the caller into it. The kernel's rules:
//! joining a *user* namespace requires a single-threaded caller and CAP_SYS_ADMIN in the target
//! (which the creator's euid has over a namespace it owns); joining any other namespace requires
//! CAP_SYS_ADMIN in the caller's own user namespace and in the one owning the target.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use crate::{Error, Result};

/// Opens a namespace file (`/proc/PID/ns/net`, a bind-mounted `$STATE/netns`, …).
pub fn open_ns(path: &Path) -> Result<OwnedFd> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Moves the calling (single-threaded) process into the user namespace of `pid`. The caller
/// then holds every capability there, and keeps its host namespaces of every other type.
pub fn join_user_namespace(pid: i32) -> Result<()> {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/ns/user"));
    let fd = open_ns(&path)?;
    setns(&fd, CloneFlags::CLONE_NEWUSER).map_err(|source| Error::Namespace {
        op: "join the user namespace",
        path,
        source,
    })
}

use std::os::fd::AsFd;

use crate::nsfs::{self, NsType};

/// The order nsenter uses: user first (rootless, it is what grants CAP_SYS_ADMIN over the
/// others), mount last but time (a mount namespace change resets root and cwd).
pub const ORDER: [NsType; 8] = [
    NsType::User,
    NsType::Cgroup,
    NsType::Ipc,
    NsType::Uts,
    NsType::Net,
    NsType::Pid,
    NsType::Mnt,
    NsType::Time,
];

/// The inode of the caller's own namespace of `kind`.
pub fn own_inode(kind: NsType) -> Option<u64> {
    let l = std::fs::read_link(format!("/proc/self/ns/{}", kind.name())).ok()?;
    nsfs::NsId::parse(l.to_str()?).map(|i| i.inode)
}

/// Whether `fd` is the caller's own namespace of `kind` (joining one's own user namespace is
/// EINVAL, and joining any other own namespace is a no-op, so callers skip them).
pub fn is_own(kind: NsType, fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let ino = nsfs::inode(fd).ok();
    ino.is_some() && ino == own_inode(kind)
}

/// The number of threads of the calling process (`setns` into a user namespace, and
/// `unshare(CLONE_NEWUSER)`, need exactly one).
pub fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Joins already opened namespaces, in [`ORDER`], skipping the caller's own. Every namespace
/// must be opened *before* the first `setns`: after joining a mount or PID namespace,
/// `/proc/PID/…` may no longer name the same thing. The caller must be single-threaded when
/// the list holds a user namespace.
pub fn join_all(list: &[(NsType, OwnedFd)]) -> Result<()> {
    let mut sorted: Vec<&(NsType, OwnedFd)> = list.iter().collect();
    sorted.sort_by_key(|(k, _)| ORDER.iter().position(|o| o == k));
    if sorted.iter().any(|(k, _)| *k == NsType::User) && threads() > 1 {
        return Err(Error::MultiThreaded);
    }
    for (kind, fd) in sorted {
        if is_own(*kind, fd.as_fd()) {
            continue;
        }
        setns(fd.as_fd(), kind.clone_flag()).map_err(|source| Error::Namespace {
            op: "join",
            path: format!("{kind}:[{}]", nsfs::inode(fd.as_fd()).unwrap_or(0)).into(),
            source,
        })?;
    }
    Ok(())
}
