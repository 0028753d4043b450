//! How the container layer waits: on descriptors, never by sleeping and polling. A process's
//! exit is a pidfd becoming readable (`pidfd_open`, Linux 5.3); a file appearing or growing is
//! an inotify event; a peer's readiness is a byte (or EOF) on a pipe. [`poll`] waits for the
//! first of several, with an optional deadline.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// A pidfd for `pid`, or None when there is no such process.
pub fn pidfd(pid: i32) -> Option<OwnedFd> {
    if pid <= 0 {
        return None;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor just returned to us, owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until one of `fds` is readable (or hung up); returns which, or None at `timeout`.
pub fn poll(fds: &[BorrowedFd], timeout: Option<Duration>) -> io::Result<Option<usize>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: `p` is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(None);
        }
        return Ok(p.iter().position(|f| f.revents != 0));
    }
}

/// Waits up to `timeout` for the process behind `fd` to exit; true if it did.
pub fn exited(fd: &OwnedFd, timeout: Option<Duration>) -> io::Result<bool> {
    Ok(poll(&[fd.as_fd()], timeout)?.is_some())
}

/// Waits up to `timeout` for process `pid` to exit, when `same` still says (after the pidfd is
/// open, so that a reused PID cannot fool it) that `pid` is the process meant. True if it is
/// gone.
pub fn gone(pid: i32, same: impl Fn() -> bool, timeout: Duration) -> io::Result<bool> {
    let Some(fd) = pidfd(pid) else {
        return Ok(true);
    };
    if !same() {
        return Ok(true);
    }
    exited(&fd, Some(timeout))
}

/// An inotify watch set: readable when a watched file changes.
pub struct Watch {
    inotify: Inotify,
}

impl Watch {
    pub fn new() -> io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        Ok(Watch { inotify })
    }

    /// Entries of directory `dir` written (closed after writing) or renamed into it.
    pub fn dir_entries(&self, dir: &Path) -> io::Result<()> {
        self.add(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE,
        )
    }

    /// File `path` modified.
    pub fn modified(&self, path: &Path) -> io::Result<()> {
        self.add(path, AddWatchFlags::IN_MODIFY)
    }

    fn add(&self, path: &Path, flags: AddWatchFlags) -> io::Result<()> {
        self.inotify.add_watch(path, flags)?;
        Ok(())
    }

    /// Discards the pending events (the caller looks at the files themselves).
    pub fn drain(&self) {
        while matches!(self.inotify.read_events(), Ok(ev) if !ev.is_empty()) {}
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_exit_wakes_its_pidfd_and_a_live_one_times_out() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.1")
            .spawn()
            .unwrap();
        let fd = pidfd(child.id() as i32).unwrap();
        assert!(!exited(&fd, Some(Duration::from_millis(1))).unwrap());
        assert!(exited(&fd, Some(Duration::from_secs(10))).unwrap());
        child.wait().unwrap();
    }

    #[test]
    fn a_file_written_into_a_watched_dir_wakes_the_watch() {
        let d = tempfile::tempdir().unwrap();
        let w = Watch::new().unwrap();
        w.dir_entries(d.path()).unwrap();
        assert_eq!(
            poll(&[w.fd()], Some(Duration::from_millis(1))).unwrap(),
            None
        );
        std::fs::write(d.path().join("f"), "x").unwrap();
        assert_eq!(
            poll(&[w.fd()], Some(Duration::from_secs(5))).unwrap(),
            Some(0)
        );
        w.drain();
        assert_eq!(
            poll(&[w.fd()], Some(Duration::from_millis(1))).unwrap(),
            None
        );
    }

    #[test]
    fn no_process_is_gone_at_once() {
        assert!(gone(0, || true, Duration::from_secs(10)).unwrap());
    }
}
