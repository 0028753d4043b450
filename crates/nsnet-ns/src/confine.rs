//! Confinement of a running process: a private, read-only root and no privileges left but
//! the few it names. slirp4netns's `--enable-sandbox` is built from these two calls (as its
//! `sandbox.c` does); pasta's isolation is the same pair with other directories and
//! capabilities, which is why they live here, below every front end, with no policy of
//! their own.
//!
//! ```text
//!  private_root(dirs):
//!  unshare(CLONE_NEWNS), / made rprivate      nothing we mount leaks back to the host
//!  tmpfs on /tmp (this namespace only)        the new root: /tmp/{DIR…,old}
//!  each DIR bound read-only (nosuid,          what a running process may still want to read
//!  nodev, noexec; the source's atime and      (resolver configuration, sockets under
//!  lock flags kept so a user namespace       /run); nothing else of the host is visible
//!  may remount them)
//!  pivot_root into it, old root detached      the process's root is the tmpfs, read-only
//!  drop_privileges(keep):
//!  no_new_privs; ambient and bounding sets    only the capabilities in `keep` are left
//!  and capabilities cleared but `keep`        (slirp4netns: CAP_NET_BIND_SERVICE)
//! ```
//!
//! `private_root` runs while the process is single-threaded: a mount namespace belongs to a
//! thread, and threads created afterwards inherit this one. Descriptors opened before it
//! keep working, which is how a caller still reaches files the new root hides.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// A confinement step that failed, and the kernel's or the file system's reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn err(what: &str) -> impl FnOnce(nix::Error) -> Error + '_ {
    move |source| Error::Sys {
        what: what.to_string(),
        source,
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// The capability a user-mode network keeps for host forwards on ports below 1024.
pub const CAP_NET_BIND_SERVICE: u32 = 10;

/// The flags a read-only bind remount of `path` must keep: a mount locked by a user
/// namespace refuses a remount that drops nosuid, nodev, noexec or changes its atime mode.
fn kept_flags(path: &str) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut m = MsFlags::empty();
    for (have, keep) in [
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(have) {
            m |= keep;
        }
    }
    m
}

fn bind_read_only(from: &str, to: &str) -> Result<(), Error> {
    let none: Option<&str> = None;
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(from),
        to,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(err(&format!("bind {from} on the new root")))?;
    mount(
        none,
        to,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | base | kept_flags(from),
        none,
    )
    .map_err(err(&format!("remount {from} read-only")))
}

/// A new mount namespace whose root is a read-only tmpfs holding only `dirs` (absolute
/// paths of top-level directories), each bound read-only from the old root when it exists
/// there (its mount point is made either way).
pub fn private_root(dirs: &[&str]) -> Result<(), Error> {
    let none: Option<&str> = None;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(err("unshare the mount namespace"))?;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(err("make / private"))?;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=16k,mode=0755"),
    )
    .map_err(err("mount the new root (tmpfs on /tmp)"))?;
    let targets: Vec<String> = dirs.iter().map(|d| format!("/tmp{d}")).collect();
    for d in targets.iter().map(String::as_str).chain(["/tmp/old"]) {
        std::fs::create_dir(d).map_err(io(format!("mkdir {d}")))?;
    }
    for (from, to) in dirs.iter().zip(&targets) {
        if Path::new(from).is_dir() {
            bind_read_only(from, to)?;
        }
    }
    nix::unistd::chdir("/tmp").map_err(err("chdir to the new root"))?;
    nix::unistd::pivot_root(".", "old").map_err(err("pivot_root"))?;
    nix::unistd::chdir("/").map_err(err("chdir /"))?;
    umount2("/old", MntFlags::MNT_DETACH).map_err(err("detach the old root"))?;
    std::fs::remove_dir("/old").map_err(io("rmdir /old".into()))?;
    mount(
        none,
        "/",
        none,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(err("remount the new root read-only"))
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_SETPCAP: u32 = 8;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// no_new_privs, then every capability dropped from the ambient, bounding, effective,
/// permitted and inheritable sets except those in `keep` (numbers below 32) that the process
/// holds.
pub fn drop_privileges(keep: &[u32]) -> Result<(), Error> {
    let os = |what: &str| Error::Io {
        what: what.to_string(),
        source: std::io::Error::last_os_error(),
    };
    let keep_mask = keep.iter().fold(0u32, |m, c| m | (1 << c));
    // SAFETY: prctl and capset with valid arguments; results checked.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(os("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            return Err(os("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
        }
        let mut hdr = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut now = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capget, &mut hdr, now.as_mut_ptr()) != 0 {
            return Err(os("capget"));
        }
        // Dropping from the bounding set needs CAP_SETPCAP; without it (an unprivileged
        // process in its own user namespace only) there is nothing it could regain anyway.
        if now[0].effective & (1 << CAP_SETPCAP) != 0 {
            for cap in 0.. {
                if keep.contains(&cap) {
                    continue;
                }
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                    if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                        break; // past the last capability this kernel knows
                    }
                    return Err(os("prctl(PR_CAPBSET_DROP)"));
                }
            }
        }
        let bit = now[0].permitted & keep_mask;
        let data = [
            CapData {
                effective: bit,
                permitted: bit,
                inheritable: bit,
            },
            CapData::default(),
        ];
        if libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) != 0 {
            return Err(os("capset"));
        }
    }
    Ok(())
}
