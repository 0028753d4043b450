//! Mounts made inside the child's mount namespace: propagation of `/`, a `/proc` that
//! matches a new PID namespace, a `/sys` that matches a new network namespace, bind mounts.
//!
//! A new mount namespace starts with copies of the parent's mounts *and* their propagation:
//! with a shared `/` (systemd's default) a mount made inside would leak out to the host, which
//! is why the launcher always sets `/` to a private or slave propagation first.

use std::path::Path;

use nix::mount::{MsFlags, mount};

use crate::{Error, Result};

/// `--propagation`: what the child's `/` becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Private,
    RPrivate,
    Slave,
    RSlave,
    Shared,
    RShared,
}

impl Propagation {
    pub const NAMES: [&'static str; 6] = [
        "private", "rprivate", "slave", "rslave", "shared", "rshared",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "private" => Self::Private,
            "rprivate" => Self::RPrivate,
            "slave" => Self::Slave,
            "rslave" => Self::RSlave,
            "shared" => Self::Shared,
            "rshared" => Self::RShared,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn is_shared(self) -> bool {
        matches!(self, Self::Shared | Self::RShared)
    }

    fn flags(self) -> MsFlags {
        match self {
            Self::Private => MsFlags::MS_PRIVATE,
            Self::RPrivate => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            Self::Slave => MsFlags::MS_SLAVE,
            Self::RSlave => MsFlags::MS_SLAVE | MsFlags::MS_REC,
            Self::Shared => MsFlags::MS_SHARED,
            Self::RShared => MsFlags::MS_SHARED | MsFlags::MS_REC,
        }
    }
}

fn mount_err(what: impl Into<String>, target: &Path) -> impl FnOnce(nix::Error) -> Error {
    let what = what.into();
    let target = target.to_path_buf();
    move |source| Error::Mount {
        what,
        target,
        source,
    }
}

/// Sets the propagation of `/` in the current mount namespace.
pub fn set_root_propagation(p: Propagation) -> Result<()> {
    let root = Path::new("/");
    mount(None::<&str>, root, None::<&str>, p.flags(), None::<&str>)
        .map_err(mount_err(format!("propagation {}", p.name()), root))
}

/// Mounts a fresh procfs on `/proc`, so that a new PID namespace sees its own processes.
/// Falls back to read-only when the kernel refuses a writable one (a read-only parent
/// mount forbids it in an unprivileged user namespace).
pub fn mount_proc() -> Result<()> {
    let target = Path::new("/proc");
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), target, Some("proc"), flags, None::<&str>)
        .or_else(|_| {
            mount(
                Some("proc"),
                target,
                Some("proc"),
                flags | MsFlags::MS_RDONLY,
                None::<&str>,
            )
        })
        .map_err(mount_err("proc", target))
}

/// Mounts a fresh sysfs on `/sys` so that `/sys/class/net` shows the new network namespace,
/// keeping the host's `/sys/fs/cgroup` (moved back on top) as RootlessKit does.
/// Best effort on the sysfs itself: a masked `/sys/firmware` makes the kernel refuse it, and
/// then the host's `/sys` stays, with a warning for the caller.
pub fn remount_sys_for_netns() -> Result<Option<String>> {
    let sys = Path::new("/sys");
    let cgroup = Path::new("/sys/fs/cgroup");
    let keep = nix::unistd::mkdtemp("/tmp/nsnet-sys.XXXXXX").map_err(|source| Error::Mount {
        what: "temporary directory".into(),
        target: "/tmp".into(),
        source,
    })?;
    let have_cgroup = cgroup.is_dir();
    let result = (|| -> Result<Option<String>> {
        if have_cgroup {
            bind(cgroup, &keep, true)?;
        }
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let warning = mount(Some("sysfs"), sys, Some("sysfs"), flags, None::<&str>)
            .or_else(|_| {
                mount(
                    Some("sysfs"),
                    sys,
                    Some("sysfs"),
                    flags | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
            })
            .err()
            .map(|e| format!("cannot mount sysfs for the new network namespace: {e}"));
        if have_cgroup {
            mount(
                Some(&keep),
                cgroup,
                None::<&str>,
                MsFlags::MS_MOVE,
                None::<&str>,
            )
            .map_err(mount_err(keep.display().to_string(), cgroup))?;
        }
        Ok(warning)
    })();
    let _ = std::fs::remove_dir(&keep);
    result
}

/// Bind-mounts `src` on `dst` (recursively when `recursive`).
pub fn bind(src: &Path, dst: &Path, recursive: bool) -> Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(src), dst, None::<&str>, flags, None::<&str>)
        .map_err(mount_err(src.display().to_string(), dst))
}

/// Moves the mount at `src` to `dst`.
pub fn move_mount(src: &Path, dst: &Path) -> Result<()> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(mount_err(src.display().to_string(), dst))
}

/// Mounts a tmpfs on `dst` with the given mode (octal, as tmpfs's `mode=` option).
pub fn tmpfs(dst: &Path, mode: u32) -> Result<()> {
    mount(
        Some("tmpfs"),
        dst,
        Some("tmpfs"),
        MsFlags::empty(),
        Some(format!("mode={mode:o}").as_str()),
    )
    .map_err(mount_err("tmpfs", dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_names_round_trip() {
        for n in Propagation::NAMES {
            assert_eq!(Propagation::parse(n).unwrap().name(), n);
        }
        assert!(Propagation::parse("bogus").is_none());
        assert!(Propagation::RShared.is_shared());
        assert!(!Propagation::RSlave.is_shared());
    }
}
