//! Joining a target's namespaces (`nsnet ns exec`): by PID, or the rootless child of a
//! running nsnet or RootlessKit instance (found by its state directory), without the
//! `/var/run/netns` symlink dance.
//!
//! Kernel rules: every namespace is opened *before* the first `setns`, because after joining
//! a mount or PID namespace `/proc/PID/…` may no longer name the same thing. The user
//! namespace is joined first: rootless, it is what grants CAP_SYS_ADMIN over the others (and
//! `setns` into a user namespace needs a single-threaded caller — the binary is one). A
//! detached child netns exists only as a bind mount in the child's mount namespace; it is
//! opened through `/proc/CHILD/root`. A new PID namespace applies to children only, so the
//! caller forks after joining one.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::namespaces::Snapshot;
use crate::nsfs::{self, NsId, NsType};

/// The order nsenter uses: user first (it grants the rights for the rest), mount last but
/// time (a mount namespace change resets root and cwd).
const ORDER: [NsType; 8] = [
    NsType::User,
    NsType::Cgroup,
    NsType::Ipc,
    NsType::Uts,
    NsType::Net,
    NsType::Pid,
    NsType::Mnt,
    NsType::Time,
];

/// What to join: the namespaces of `pid`, except the netns, which may be given apart.
pub struct Target {
    pub pid: i32,
    pub netns: Option<OwnedFd>,
    /// How it was found, for messages.
    pub what: String,
}

fn own(kind: NsType) -> Option<u64> {
    let l = std::fs::read_link(format!("/proc/self/ns/{}", kind.name())).ok()?;
    NsId::parse(l.to_str()?).map(|i| i.inode)
}

/// A running process.
pub fn pid_target(pid: i32) -> Result<Target, Error> {
    if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Error::TargetGone {
            what: format!("process {pid}"),
        });
    }
    Ok(Target {
        pid,
        netns: None,
        what: format!("process {pid}"),
    })
}

/// The rootless child of the instance whose state directory is `state_dir`, or of the only
/// running instance.
pub fn child_target(snap: &Snapshot, state_dir: Option<&Path>) -> Result<Target, Error> {
    let all = crate::net::instances(snap);
    let chosen: Vec<_> = all
        .iter()
        .filter(|i| state_dir.is_none_or(|d| i.state_dir == d))
        .collect();
    let inst = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::NoInstance {
                state_dir: state_dir.map(Path::to_path_buf),
            });
        }
        many => {
            return Err(Error::AmbiguousChild {
                dirs: many.iter().map(|i| i.state_dir.clone()).collect(),
            });
        }
    };
    let pid = inst.child_pid.ok_or_else(|| Error::TargetGone {
        what: format!("the child of {}", inst.state_dir.display()),
    })?;
    let netns = match inst.child_netns {
        Some(ino) => {
            let id = NsId {
                kind: NsType::Net,
                inode: ino,
            };
            let n = snap.get(id).ok_or_else(|| Error::TargetGone {
                what: id.to_string(),
            })?;
            Some(n.open().map_err(|source| Error::Open {
                what: id.to_string(),
                source,
            })?)
        }
        None => None,
    };
    Ok(Target {
        pid,
        netns,
        what: format!("the rootless child of {}", inst.state_dir.display()),
    })
}

/// Opens the chosen namespaces of the target (all that differ from ours when `kinds` is
/// empty); rootless, the target's user namespace is added so that the others can be joined.
pub fn open(target: Target, kinds: &[NsType]) -> Result<Vec<(NsType, OwnedFd)>, Error> {
    let mut want: Vec<NsType> = if kinds.is_empty() {
        NsType::ALL.to_vec()
    } else {
        kinds.to_vec()
    };
    let rootless = !nix::unistd::geteuid().is_root();
    if rootless && !want.contains(&NsType::User) {
        want.push(NsType::User);
    }
    let mut out = Vec::new();
    for kind in ORDER.into_iter().filter(|k| want.contains(k)) {
        let fd = match (kind, &target.netns) {
            (NsType::Net, Some(fd)) => fd.try_clone().map_err(|source| Error::Open {
                what: format!("the network namespace of {}", target.what),
                source,
            })?,
            _ => {
                let path = PathBuf::from(format!("/proc/{}/ns/{}", target.pid, kind.name()));
                match nsfs::open(&path) {
                    Ok(fd) => fd,
                    // A kernel without this kind (time before 5.6), when not asked for.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && kinds.is_empty() => {
                        if Path::new(&format!("/proc/{}", target.pid)).exists() {
                            continue;
                        }
                        return Err(Error::TargetGone {
                            what: target.what.clone(),
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(Error::TargetGone {
                            what: target.what.clone(),
                        });
                    }
                    Err(source) => {
                        return Err(Error::Open {
                            what: format!("{path:?} of {}", target.what),
                            source,
                        });
                    }
                }
            }
        };
        let ino = nsfs::inode(fd.as_fd()).ok();
        // Joining one's own namespace is a no-op for most kinds and EINVAL for a user one.
        if ino.is_some() && ino == own(kind) {
            continue;
        }
        out.push((kind, fd));
    }
    Ok(out)
}

/// Joins the opened namespaces, in order. The caller must be single-threaded.
pub fn join(list: &[(NsType, OwnedFd)]) -> Result<(), Error> {
    for (kind, fd) in list {
        nix::sched::setns(fd.as_fd(), kind.clone_flag()).map_err(|e| Error::Join {
            ns: NsId {
                kind: *kind,
                inode: nsfs::inode(fd.as_fd()).unwrap_or(0),
            },
            source: e.into(),
        })?;
    }
    Ok(())
}
