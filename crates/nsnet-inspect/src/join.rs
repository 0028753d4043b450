//! Joining a target's namespaces (`nsnet ns exec`): by PID, or the rootless child of a
//! running nsnet or RootlessKit instance (found by its state directory), without the
//! `/var/run/netns` symlink dance.
//!
//! This module is the inspector's policy (which target: a PID, or the instance found by a
//! scan of the process table); the mechanism — nsenter's order, opening everything before the
//! first `setns`, skipping one's own namespaces — is the namespace layer's
//! (`nsnet_ns::enter`). A detached child netns exists only as a bind mount in the child's
//! mount namespace; it is opened through `/proc/CHILD/root`. A new PID namespace applies to
//! children only, so the caller forks after joining one.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::namespaces::Snapshot;
use crate::nsfs::{self, NsId, NsType};

/// What to join: the namespaces of `pid`, except the netns, which may be given apart.
pub struct Target {
    pub pid: i32,
    pub netns: Option<OwnedFd>,
    /// How it was found, for messages.
    pub what: String,
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
    for kind in nsnet_ns::enter::ORDER
        .into_iter()
        .filter(|k| want.contains(k))
    {
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
        if nsnet_ns::enter::is_own(kind, fd.as_fd()) {
            continue;
        }
        out.push((kind, fd));
    }
    Ok(out)
}

/// Joins the opened namespaces, in order. The caller must be single-threaded.
pub fn join(list: &[(NsType, OwnedFd)]) -> Result<(), Error> {
    nsnet_ns::enter::join_all(list).map_err(|e| match e {
        nsnet_ns::Error::Namespace { path, source, .. } => Error::Join {
            ns: path.to_str().and_then(NsId::parse).unwrap_or(NsId {
                kind: NsType::Net,
                inode: 0,
            }),
            source: source.into(),
        },
        e => Error::Join {
            ns: NsId {
                kind: NsType::User,
                inode: 0,
            },
            source: std::io::Error::other(e.to_string()),
        },
    })
}
