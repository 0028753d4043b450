//! Every namespace reachable from here (`nsnet ns ls`): the union of what the processes are
//! in, what their threads are in, what descriptors and bind mounts hold, and the user
//! namespaces that own any of those — each with its owner and what keeps it alive.
//!
//! A user namespace can outlive all its processes while a namespace it owns is alive (the
//! owned namespace holds a reference to its owner), so owners found through `NS_GET_USERNS`
//! are namespaces in their own right, held "as owner of" another.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use serde::Serialize;

use crate::nsfs::{self, NsId, NsType};
use crate::procscan::{self, Scan};

/// A process in a namespace.
#[derive(Debug, Clone, Serialize)]
pub struct ProcRef {
    pub pid: i32,
    pub comm: String,
}

/// What keeps a namespace alive besides processes in it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Holder {
    /// A thread that entered it while its process stayed elsewhere.
    Thread { pid: i32, tid: i32, comm: String },
    /// An open descriptor of a process.
    Fd { pid: i32, comm: String, fd: i32 },
    /// An nsfs bind mount, at `path` in the mount namespace `mntns` (seen through `pid`).
    BindMount { path: PathBuf, mntns: u64, pid: i32 },
    /// It owns (or is the parent user namespace of) another namespace.
    Owner { of: String },
}

/// The user namespace owning a namespace (for a user namespace: its parent), and the uid
/// that created that user namespace (for a user namespace: the uid that created it).
#[derive(Debug, Clone, Serialize)]
pub struct Owner {
    pub userns: Option<u64>,
    pub uid: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Namespace {
    #[serde(flatten)]
    pub id: NsId,
    pub owner: Owner,
    pub processes: Vec<ProcRef>,
    pub held_by: Vec<Holder>,
    /// What could not be read about it, and why.
    pub problems: Vec<String>,
    /// Where it can be opened from, best first.
    #[serde(skip)]
    sources: Vec<PathBuf>,
    /// An open handle, kept for user and network namespaces (the inspector enters those).
    #[serde(skip)]
    handle: Option<OwnedFd>,
}

impl Namespace {
    fn new(id: NsId) -> Self {
        Namespace {
            id,
            owner: Owner {
                userns: None,
                uid: None,
            },
            processes: Vec::new(),
            held_by: Vec::new(),
            problems: Vec::new(),
            sources: Vec::new(),
            handle: None,
        }
    }

    /// Opens it (a fresh descriptor each call).
    pub fn open(&self) -> std::io::Result<OwnedFd> {
        if let Some(h) = &self.handle {
            return h.try_clone();
        }
        let mut last = std::io::Error::from(std::io::ErrorKind::NotFound);
        for s in &self.sources {
            match nsfs::open(s) {
                Ok(fd) if nsfs::inode(fd.as_fd())? == self.id.inode => return Ok(fd),
                // The process exited and its pid was reused, or a mount changed.
                Ok(_) => last = std::io::Error::from(std::io::ErrorKind::NotFound),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// The result of one discovery pass.
#[derive(Debug)]
pub struct Snapshot {
    pub namespaces: Vec<Namespace>,
    /// Processes whose namespaces could not be read (other users', when rootless).
    pub unreadable_pids: Vec<i32>,
    /// Mount namespaces whose bind mounts could not be listed, with why.
    pub problems: Vec<String>,
    pub scan: Scan,
}

impl Snapshot {
    pub fn get(&self, id: NsId) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.id == id)
    }

    pub fn of_type(&self, kind: NsType) -> impl Iterator<Item = &Namespace> {
        self.namespaces.iter().filter(move |n| n.id.kind == kind)
    }
}

fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Scans `/proc` and every mount namespace, then resolves owners.
pub fn discover() -> Snapshot {
    let scan = procscan::scan();
    let mut map: BTreeMap<NsId, Namespace> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for p in &scan.procs {
        if p.unreadable {
            unreadable.push(p.pid);
            continue;
        }
        for (&kind, &inode) in &p.ns {
            let id = NsId { kind, inode };
            let n = map.entry(id).or_insert_with(|| Namespace::new(id));
            n.processes.push(ProcRef {
                pid: p.pid,
                comm: p.comm.clone(),
            });
            n.sources
                .push(PathBuf::from(format!("/proc/{}/ns/{}", p.pid, kind.name())));
        }
        for &(tid, id) in &p.thread_ns {
            let n = map.entry(id).or_insert_with(|| Namespace::new(id));
            n.held_by.push(Holder::Thread {
                pid: p.pid,
                tid,
                comm: p.comm.clone(),
            });
            n.sources.push(PathBuf::from(format!(
                "/proc/{}/task/{tid}/ns/{}",
                p.pid,
                id.kind.name()
            )));
        }
        for &(fd, id) in &p.ns_fds {
            let n = map.entry(id).or_insert_with(|| Namespace::new(id));
            n.held_by.push(Holder::Fd {
                pid: p.pid,
                comm: p.comm.clone(),
                fd,
            });
            n.sources
                .push(PathBuf::from(format!("/proc/{}/fd/{fd}", p.pid)));
        }
    }
    for m in &scan.mounts {
        let n = map.entry(m.ns).or_insert_with(|| Namespace::new(m.ns));
        n.held_by.push(Holder::BindMount {
            path: m.path.clone(),
            mntns: m.mntns,
            pid: m.via_pid,
        });
        let rel = m.path.strip_prefix("/").unwrap_or(&m.path);
        n.sources
            .push(PathBuf::from(format!("/proc/{}/root", m.via_pid)).join(rel));
    }
    resolve_owners(&mut map);
    let mut problems: Vec<String> = scan
        .mount_errors
        .iter()
        .map(|(mnt, why)| format!("bind mounts of mnt:[{mnt}] not listed: {why}"))
        .collect();
    problems.extend(scan.procs.iter().filter(|p| p.fds_unreadable).map(|p| {
        format!(
            "descriptors of pid {} ({}) not readable: permission denied (a non-dumpable process; root can read them)",
            p.pid, p.comm
        )
    }));
    Snapshot {
        namespaces: map.into_values().collect(),
        unreadable_pids: unreadable,
        problems,
        scan,
    }
}

/// Fills in owners; adds the owning user namespaces that nothing else reaches.
fn resolve_owners(map: &mut BTreeMap<NsId, Namespace>) {
    let mut todo: Vec<NsId> = map.keys().copied().collect();
    while let Some(id) = todo.pop() {
        let fd = match map[&id].open() {
            Ok(fd) => fd,
            Err(e) => {
                map.get_mut(&id)
                    .unwrap()
                    .problems
                    .push(format!("cannot open: {}", errno_text(&e)));
                continue;
            }
        };
        let owner = if id.kind == NsType::User {
            nsfs::parent_userns(fd.as_fd())
        } else {
            nsfs::owning_userns(fd.as_fd())
        };
        let uid_of = if id.kind == NsType::User {
            Some(fd.as_fd())
        } else {
            None
        };
        let mut owner_rec = Owner {
            userns: None,
            uid: uid_of.and_then(|u| nsfs::owner_uid(u).ok()),
        };
        match owner {
            Ok(ofd) => {
                let oino = nsfs::inode(ofd.as_fd()).ok();
                if owner_rec.uid.is_none() {
                    owner_rec.uid = nsfs::owner_uid(ofd.as_fd()).ok();
                }
                owner_rec.userns = oino;
                if let Some(oino) = oino {
                    let oid = NsId {
                        kind: NsType::User,
                        inode: oino,
                    };
                    let entry = map.entry(oid).or_insert_with(|| {
                        todo.push(oid);
                        Namespace::new(oid)
                    });
                    if entry.processes.is_empty() && entry.handle.is_none() {
                        entry.handle = ofd.try_clone().ok();
                    }
                    if entry.processes.is_empty() && entry.sources.is_empty() {
                        entry.held_by.push(Holder::Owner { of: id.to_string() });
                    }
                }
            }
            // The owner lies outside our user namespace (the initial one has no parent).
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => map
                .get_mut(&id)
                .unwrap()
                .problems
                .push(format!("owner not readable: {}", errno_text(&e))),
        }
        let n = map.get_mut(&id).unwrap();
        n.owner = owner_rec;
        if matches!(id.kind, NsType::Net | NsType::User) && n.handle.is_none() {
            n.handle = Some(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_own_namespaces_with_this_process_in_them() {
        let snap = discover();
        let me = std::process::id() as i32;
        for kind in [NsType::Net, NsType::User, NsType::Mnt] {
            let link = std::fs::read_link(format!("/proc/self/ns/{}", kind.name())).unwrap();
            let id = NsId::parse(link.to_str().unwrap()).unwrap();
            let n = snap.get(id).expect("own namespace listed");
            assert!(n.processes.iter().any(|p| p.pid == me));
            let fd = n.open().unwrap();
            assert_eq!(nsfs::inode(fd.as_fd()).unwrap(), id.inode);
        }
    }
}
