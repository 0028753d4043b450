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
