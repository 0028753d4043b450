//! The socket runc hands the notify fd to (OCI `linux.seccomp.listenerPath`).
//!
//! runc ≥ 1.1 connects once the container's filter is loaded and sends, in one message, the
//! container process state as JSON (`specs.ContainerProcessState`: `ociVersion`, `fds`, `pid`,
//! `metadata`, `state`) with the descriptors named by `fds` attached as SCM_RIGHTS; the one named
//! `seccompFd` is the notify fd. Other descriptors are closed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::Error;

/// The longest path a unix socket address holds (`sun_path` less its terminating NUL).
pub const MAX_PATH: usize = 107;

/// What runc sent.
#[derive(Debug)]
pub struct Handoff {
    pub notify: OwnedFd,
    /// The container's init as runc saw it.
    pub pid: i32,
}

/// A bound listener socket; the file is removed on drop.
#[derive(Debug)]
pub struct Listener {
    sock: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Binds `path` (an old socket file there is replaced).
    pub fn bind(path: &Path) -> Result<Listener, Error> {
        if path.as_os_str().len() > MAX_PATH {
            return Err(Error::Protocol(format!(
                "the bypass socket {} is longer than a unix socket address allows ({MAX_PATH} bytes); use a shorter XDG_RUNTIME_DIR",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(path);
        let sock =
            UnixListener::bind(path).map_err(Error::io(format!("listen on {}", path.display())))?;
        Ok(Listener {
            sock,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for runc and takes the notify fd it sends.
    pub fn accept(&self) -> Result<Handoff, Error> {
        let (conn, _) = self
            .sock
            .accept()
            .map_err(Error::io(format!("accept on {}", self.path.display())))?;
        receive(conn.as_raw_fd())
            .map_err(|e| Error::Handoff(format!("{}: {e}", self.path.display())))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How many descriptors one message may carry here (runc sends one).
const MAX_FDS: usize = 8;

fn receive(sock: RawFd) -> Result<Handoff, Error> {
    let mut data = vec![0u8; 64 * 1024];
    // SAFETY: CMSG_SPACE is a pure computation.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; the fields set below describe our buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    // SAFETY: msg describes valid buffers for the kernel to fill.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(Error::io("receive the notify fd from runc")(
            io::Error::last_os_error(),
        ));
    }
    let mut fds: Vec<OwnedFd> = Vec::new();
    // SAFETY: walking the control buffer the kernel filled, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(Error::Protocol("runc's message was truncated".into()));
    }
    let state: serde_json::Value = serde_json::from_slice(&data[..n as usize])
        .map_err(|e| Error::Protocol(format!("runc's container state is not JSON: {e}")))?;
    let names: Vec<&str> = state["fds"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let idx = names
        .iter()
        .position(|n| *n == "seccompFd")
        .filter(|_| names.iter().filter(|n| **n == "seccompFd").count() == 1)
        .ok_or_else(|| Error::Protocol("no single seccompFd in runc's fds".into()))?;
    if idx >= fds.len() {
        return Err(Error::Protocol(format!(
            "runc named {} descriptors and sent {}",
            names.len(),
            fds.len()
        )));
    }
    let notify = fds.swap_remove(idx);
    let link = std::fs::read_link(format!("/proc/self/fd/{}", notify.as_raw_fd()))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if link != "anon_inode:seccomp notify" {
        return Err(Error::Protocol(format!(
            "the seccompFd runc sent is not a seccomp notify fd ({link})"
        )));
    }
    Ok(Handoff {
        notify,
        pid: state["pid"].as_i64().unwrap_or(0) as i32,
    })
}
