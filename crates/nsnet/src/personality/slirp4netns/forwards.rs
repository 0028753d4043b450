//! The personality's wiring of slirp4netns's API (`nsnet_api::slirp4netns`) to nsnet's stack:
//! [`StackBackend`] binds each host port here, in the stack's namespace (a bind error is
//! `slirp_add_hostfwd failed`, as in slirp4netns), and hands the listener to the stack;
//! [`SocketFile`] removes the API socket at exit even after the sandbox hid its path.

use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::Path;

/// Forwards on nsnet's stack: the host port is bound here, in the stack's namespace.
pub struct StackBackend(pub nsnet_stack::Forwards);

impl nsnet_api::slirp4netns::Backend for StackBackend {
    fn add(&mut self, id: u32, udp: bool, host: SocketAddrV4, guest: SocketAddrV4) -> bool {
        let listener: OwnedFd = if udp {
            let Ok(s) = UdpSocket::bind(host) else {
                return false;
            };
            if s.set_nonblocking(true).is_err() {
                return false;
            }
            s.into()
        } else {
            // std's listener sets SO_REUSEADDR, as slirp's does.
            let Ok(l) = TcpListener::bind(host) else {
                return false;
            };
            if l.set_nonblocking(true).is_err() {
                return false;
            }
            l.into()
        };
        self.0
            .add(nsnet_stack::Forward {
                id,
                udp,
                listener,
                guest: guest.into(),
            })
            .is_ok()
    }

    fn remove(&mut self, id: u32) {
        self.0.remove(id);
    }
}

/// The API socket's file, removable after the sandbox hid its path: its directory is held
/// open and the name unlinked relative to it.
pub struct SocketFile {
    dir: OwnedFd,
    name: std::ffi::CString,
}

impl SocketFile {
    pub fn new(path: &Path) -> Result<SocketFile, String> {
        use std::os::unix::ffi::OsStrExt;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = std::fs::File::open(parent)
            .map_err(|e| format!("api socket directory {}: {e}", parent.display()))?;
        let name = path.file_name().unwrap_or_default().as_bytes().to_vec();
        Ok(SocketFile {
            dir: dir.into(),
            name: std::ffi::CString::new(name).map_err(|_| "api socket path has a NUL byte")?,
        })
    }

    pub fn remove(self) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid directory fd and a NUL-terminated name.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0) };
    }
}
