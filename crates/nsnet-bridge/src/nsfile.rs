//! Network namespace files: opening one and proving it is a netns (nsfs `NS_GET_NSTYPE`),
//! and its identity (inode) for telling a live owner from a recycled path.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::{Error, Result};

const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// An open network namespace file and its inode.
pub(crate) struct NetnsFile {
    pub fd: OwnedFd,
    pub ino: u64,
}

/// Opens `path` and checks it is a network namespace.
pub(crate) fn open(path: &Path) -> Result<NetnsFile> {
    let not = |why: String| Error::NotNetns {
        path: path.to_path_buf(),
        why,
    };
    let f = std::fs::File::open(path).map_err(|e| not(e.to_string()))?;
    // SAFETY: an ioctl without argument on a descriptor we own.
    let kind = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE) };
    if kind < 0 {
        return Err(not("not a namespace file".into()));
    }
    if kind != libc::CLONE_NEWNET {
        return Err(not("a namespace of another type".into()));
    }
    let ino = f.metadata().map_err(|e| not(e.to_string()))?.ino();
    Ok(NetnsFile { fd: f.into(), ino })
}

/// Whether `path` still names the network namespace with inode `ino`.
pub(crate) fn still(path: &Path, ino: u64) -> bool {
    open(path).is_ok_and(|n| n.ino == ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_namespaces_pass() {
        let own = open(Path::new("/proc/self/ns/net")).unwrap();
        assert!(own.ino > 0);
        assert!(still(Path::new("/proc/self/ns/net"), own.ino));
        assert!(!still(Path::new("/proc/self/ns/net"), own.ino + 1));
        let e = open(Path::new("/proc/self/ns/uts")).err().unwrap();
        assert!(e.to_string().contains("another type"), "{e}");
        let e = open(Path::new("/etc/hostname")).err().unwrap();
        assert!(e.to_string().contains("not a namespace file"), "{e}");
        assert!(open(Path::new("/nonexistent")).is_err());
    }
}
