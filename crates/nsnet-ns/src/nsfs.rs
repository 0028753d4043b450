//! Namespace identities and the nsfs ioctls.
//!
//! A namespace is identified by the inode of its nsfs file (`/proc/PID/ns/net` → `net:[N]`);
//! all nsfs files live on one device, so the inode alone is unique while the namespace lives.
//! The ioctls on an nsfs file descriptor (linux/nsfs.h) answer the questions the paths cannot:
//! `NS_GET_USERNS` opens the user namespace that owns any namespace, `NS_GET_PARENT` the
//! parent of a user (or PID) namespace, and `NS_GET_OWNER_UID` the uid that created a user
//! namespace, as seen from the caller's user namespace, and `NS_GET_NSTYPE` the kind of the
//! namespace (which is how an empty file left where a detached netns was bind-mounted is told
//! from the namespace itself). The kernel answers `EPERM` when the answer lies outside the
//! caller's own user namespace (the parent of the initial one, say).
//!
//! This is the one home of these ioctls: the inspector, the bridge layer and the instance
//! reader all call them from here.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use serde::Serialize;

/// The eight kinds of namespace, by the names `/proc/PID/ns` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NsType {
    User,
    Mnt,
    Pid,
    Net,
    Uts,
    Ipc,
    Cgroup,
    Time,
}

impl NsType {
    pub const ALL: [NsType; 8] = [
        NsType::User,
        NsType::Mnt,
        NsType::Pid,
        NsType::Net,
        NsType::Uts,
        NsType::Ipc,
        NsType::Cgroup,
        NsType::Time,
    ];

    /// The name in `/proc/PID/ns` and in an nsfs link (`net:[…]`).
    pub fn name(self) -> &'static str {
        match self {
            NsType::User => "user",
            NsType::Mnt => "mnt",
            NsType::Pid => "pid",
            NsType::Net => "net",
            NsType::Uts => "uts",
            NsType::Ipc => "ipc",
            NsType::Cgroup => "cgroup",
            NsType::Time => "time",
        }
    }

    pub fn from_name(s: &str) -> Option<NsType> {
        NsType::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The `CLONE_NEW*` flag `setns` takes for this kind.
    pub fn clone_flag(self) -> nix::sched::CloneFlags {
        use nix::sched::CloneFlags as F;
        match self {
            NsType::User => F::CLONE_NEWUSER,
            NsType::Mnt => F::CLONE_NEWNS,
            NsType::Pid => F::CLONE_NEWPID,
            NsType::Net => F::CLONE_NEWNET,
            NsType::Uts => F::CLONE_NEWUTS,
            NsType::Ipc => F::CLONE_NEWIPC,
            NsType::Cgroup => F::CLONE_NEWCGROUP,
            // nix 0.31 has no CLONE_NEWTIME; the kernel value is 0x80.
            NsType::Time => F::from_bits_retain(0x80),
        }
    }
}

impl fmt::Display for NsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One namespace: its kind and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NsId {
    #[serde(rename = "type")]
    pub kind: NsType,
    pub inode: u64,
}

impl NsId {
    /// Parses an nsfs link target or a mountinfo root, `net:[4026531840]`. Anything else
    /// (`socket:[…]`, `pipe:[…]`, a path) is `None`.
    pub fn parse(text: &str) -> Option<NsId> {
        let (kind, rest) = text.split_once(":[")?;
        let inode = rest.strip_suffix(']')?.parse().ok()?;
        Some(NsId {
            kind: NsType::from_name(kind)?,
            inode,
        })
    }
}

impl fmt::Display for NsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:[{}]", self.kind, self.inode)
    }
}

// linux/nsfs.h: _IO(0xb7, n).
const NS_GET_USERNS: libc::c_ulong = 0xb701;
const NS_GET_PARENT: libc::c_ulong = 0xb702;
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

fn fd_ioctl(fd: BorrowedFd<'_>, req: libc::c_ulong) -> std::io::Result<OwnedFd> {
    // SAFETY: these nsfs ioctls take no argument and return a new fd or -1.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// The user namespace that owns the namespace open on `fd`.
pub fn owning_userns(fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    fd_ioctl(fd, NS_GET_USERNS)
}

/// The parent of the user namespace open on `fd`.
pub fn parent_userns(fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    fd_ioctl(fd, NS_GET_PARENT)
}

/// The uid (in the caller's user namespace) that created the user namespace open on `fd`.
pub fn owner_uid(userns: BorrowedFd<'_>) -> std::io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t to the pointer we pass.
    let r = unsafe { libc::ioctl(userns.as_raw_fd(), NS_GET_OWNER_UID, &mut uid) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(uid)
}

/// The kind of the namespace open on `fd`; `None` when `fd` is not a namespace file at all.
pub fn ns_type(fd: BorrowedFd<'_>) -> Option<NsType> {
    // SAFETY: NS_GET_NSTYPE takes no argument; on a file that is not nsfs it fails (ENOTTY).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if r < 0 {
        return None;
    }
    NsType::ALL.into_iter().find(|t| t.clone_flag().bits() == r)
}

/// Why a path is not the namespace that was asked for.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a namespace file")]
    NotNamespace,
    #[error("a namespace of another type ({0})")]
    OtherType(NsType),
}

/// Opens `path` and proves it is a namespace of kind `want`; returns it with its inode.
pub fn open_kind(path: &std::path::Path, want: NsType) -> Result<(OwnedFd, u64), OpenError> {
    let fd = open(path)?;
    match ns_type(fd.as_fd()) {
        None => Err(OpenError::NotNamespace),
        Some(t) if t != want => Err(OpenError::OtherType(t)),
        Some(_) => {
            let ino = inode(fd.as_fd())?;
            Ok((fd, ino))
        }
    }
}

/// The inode of an open file (for an nsfs file, the namespace's id).
pub fn inode(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok(st.st_ino)
}

/// Opens a namespace file read-only (close-on-exec).
pub fn open(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    Ok(f.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nsfs_links_and_rejects_other_links() {
        assert_eq!(
            NsId::parse("net:[4026531840]"),
            Some(NsId {
                kind: NsType::Net,
                inode: 4026531840
            })
        );
        assert_eq!(
            NsId::parse("cgroup:[7]").map(|n| n.to_string()),
            Some("cgroup:[7]".into())
        );
        assert_eq!(NsId::parse("socket:[12345]"), None);
        assert_eq!(NsId::parse("net:[12x]"), None);
        assert_eq!(NsId::parse("/dev/null"), None);
    }

    #[test]
    fn own_namespaces_have_owners_and_inodes_match_the_links() {
        let fd = open(std::path::Path::new("/proc/self/ns/net")).unwrap();
        let link = std::fs::read_link("/proc/self/ns/net").unwrap();
        let id = NsId::parse(link.to_str().unwrap()).unwrap();
        assert_eq!(inode(fd.as_fd()).unwrap(), id.inode);
        let user = owning_userns(fd.as_fd()).unwrap();
        let own_user = std::fs::read_link("/proc/self/ns/user").unwrap();
        assert_eq!(
            format!("user:[{}]", inode(user.as_fd()).unwrap()),
            own_user.to_str().unwrap()
        );
        // The uid that owns our own user namespace, seen from inside it: either an id mapped
        // in it or the overflow uid, never an error.
        owner_uid(user.as_fd()).unwrap();
    }

    #[test]
    fn kinds_are_told_apart_and_plain_files_are_not_namespaces() {
        let p = std::path::Path::new;
        let (_, ino) = open_kind(p("/proc/self/ns/net"), NsType::Net).unwrap();
        assert!(ino > 0);
        assert!(matches!(
            open_kind(p("/proc/self/ns/uts"), NsType::Net),
            Err(OpenError::OtherType(NsType::Uts))
        ));
        assert!(matches!(
            open_kind(p("/etc/hostname"), NsType::Net),
            Err(OpenError::NotNamespace)
        ));
        assert!(matches!(
            open_kind(p("/nonexistent"), NsType::Net),
            Err(OpenError::Io(_))
        ));
        let user = open(p("/proc/self/ns/user")).unwrap();
        assert_eq!(ns_type(user.as_fd()), Some(NsType::User));
    }
}
