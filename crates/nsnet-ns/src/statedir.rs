//! The state directory (RootlessKit's `--state-dir` contract).
//!
//! ```text
//! $STATE/lock          flock(2)ed for the instance's whole life: one instance per directory
//! $STATE/child_pid     decimal PID of the child (in the namespaces), written once it is ready
//! $STATE/api.sock      REST API (port driver issue)
//! $STATE/netns         detached network namespace (a bind mount inside the child's mounts)
//! $STATE/resolv.conf   bind-mounted over /etc/resolv.conf when the child has its own netns
//! $STATE/hosts         bind-mounted over /etc/hosts likewise
//! $STATE/pasta.sock    pasta's forwarding-table socket (`-c`), for the pesto port driver
//! ```
//!
//! A crashed instance leaves files behind; the next one on the same directory takes the lock
//! (the kernel released it with the dead process) and removes the stale files. Unlike
//! RootlessKit, which deletes the whole directory on exit, we remove only the names we own,
//! then the directory if that leaves it empty: a mistyped `--state-dir=$HOME` loses nothing.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Names this layer and the layers above may create in a state directory.
pub const OWNED_FILES: &[&str] = &[
    "child_pid",
    "api.sock",
    "netns",
    "resolv.conf",
    "hosts",
    ".child.sock",
    ".s4nn.sock",
    ".pasta.stderr",
    "pasta.sock",
    "lock",
];

/// A locked state directory; dropping it removes what it owns.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: File,
}

fn sd_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::StateDir { path, source }
}

impl StateDir {
    /// Creates a fresh private directory under `$TMPDIR` (RootlessKit's default).
    pub fn create_temp(prefix: &str) -> Result<Self> {
        let base = std::env::temp_dir();
        let template = base.join(format!("{prefix}XXXXXX"));
        let path = nix::unistd::mkdtemp(&template).map_err(|e| Error::StateDir {
            path: base,
            source: e.into(),
        })?;
        Self::lock(path)
    }

    /// Opens (creating it, mode 0700, if needed) and locks `path`, removing stale state.
    pub fn open(path: &Path) -> Result<Self> {
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir().map_err(sd_err(path))?.join(path)
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(sd_err(&path))?;
        let sd = Self::lock(path)?;
        for name in OWNED_FILES.iter().filter(|n| **n != "lock") {
            let p = sd.path.join(name);
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(Error::StateDir { path: p, source: e });
            }
        }
        Ok(sd)
    }

    fn lock(path: PathBuf) -> Result<Self> {
        let lock_path = path.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(sd_err(&lock_path))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::Locked { path: lock_path });
            }
            return Err(Error::StateDir {
                path: lock_path,
                source: e,
            });
        }
        Ok(StateDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `child_pid` (read-only, decimal, no newline, like RootlessKit).
    pub fn write_child_pid(&self, pid: i32) -> Result<()> {
        let p = self.file("child_pid");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o444)
            .open(&p)
            .map_err(sd_err(&p))?;
        std::io::Write::write_all(&mut f, pid.to_string().as_bytes()).map_err(sd_err(&p))
    }
}

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

impl Drop for StateDir {
    fn drop(&mut self) {
        for name in OWNED_FILES {
            let _ = std::fs::remove_file(self.path.join(name));
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_conflict_and_cleanup() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        let a = StateDir::open(&dir).unwrap();
        a.write_child_pid(1234).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("child_pid")).unwrap(),
            "1234"
        );
        let e = StateDir::open(&dir).unwrap_err();
        assert!(e.to_string().starts_with("failed to lock"), "{e}");
        drop(a);
        assert!(!dir.exists(), "an emptied state dir is removed");
    }

    #[test]
    fn stale_files_removed_foreign_files_kept() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path();
        std::fs::write(dir.join("child_pid"), "99").unwrap();
        std::fs::write(dir.join("mine.txt"), "keep").unwrap();
        let sd = StateDir::open(dir).unwrap();
        assert!(!dir.join("child_pid").exists());
        drop(sd);
        assert!(dir.join("mine.txt").exists());
        assert!(!dir.join("lock").exists());
    }
}
