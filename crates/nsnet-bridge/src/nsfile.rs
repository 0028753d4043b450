//! Network namespace files for the bridge layer: opening one and proving it is a netns, and
//! its identity (inode) for telling a live owner from a recycled path. The nsfs mechanics are
//! the namespace layer's (`nsnet_ns::nsfs`); this maps them onto this crate's errors.

use std::os::fd::OwnedFd;
use std::path::Path;

use nsnet_ns::nsfs::{self, NsType};

use crate::{Error, Result};

/// An open network namespace file and its inode.
pub(crate) struct NetnsFile {
    pub fd: OwnedFd,
    pub ino: u64,
}

/// Opens `path` and checks it is a network namespace.
pub(crate) fn open(path: &Path) -> Result<NetnsFile> {
    let (fd, ino) = nsfs::open_kind(path, NsType::Net).map_err(|e| Error::NotNetns {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    Ok(NetnsFile { fd, ino })
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
