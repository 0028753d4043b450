//! The root of a `--rootfs DIR` container: an overlay that leaves DIR untouched.
//!
//! runc needs a mount target for every mount of the spec (`/proc`, `/dev`, `/sys`,
//! `/etc/hosts`, …) and creates the missing ones inside the root it is given. Handed the user's
//! DIR directly, it writes into it — and fails outright when DIR is not writable from the
//! instance's user namespace: a tree unpacked by real root is owned by the overflow uid there,
//! on which even root of the namespace has no DAC override. So the bundle's root is instead an
//! overlay mounted in the instance's mount namespace (the caller has joined it, and is root of
//! the user namespace that owns it; unprivileged overlayfs, Linux 5.11+):
//!
//! ```text
//!   CONTAINER_DIR/overlay/merged   the bundle's root
//!     lowerdir = overlay/targets : DIR
//!     upperdir = overlay/upper,  workdir = overlay/work
//! ```
//!
//! `targets` is a layer of empty mount targets (directories and files) that nsnet writes
//! itself, above DIR: a directory there (`/etc`) takes its owner from this top layer, so the
//! files inside it exist without a copy-up of DIR's `/etc`. `upper` takes the container's own
//! writes, and goes away with the container. The mount lives only in the instance's mount
//! namespace: if the instance is gone, so is the mount, and [`release`] has nothing to do.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// Directories every spec mounts on (the rest of `/dev` is made by runc inside its tmpfs).
const DIRS: [&str; 3] = ["proc", "dev", "sys"];

fn overlay_dir(container_dir: &Path) -> PathBuf {
    container_dir.join("overlay")
}

/// The bundle root of a container whose directory is `container_dir`.
pub fn merged(container_dir: &Path) -> PathBuf {
    overlay_dir(container_dir).join("merged")
}

/// Writes the targets layer (DIRS, and an empty file for each of `files`, absolute paths inside
/// the container) and mounts the overlay of it and `lower`. Returns the merged directory.
pub fn mount(container_dir: &Path, lower: &Path, files: &[&str]) -> Result<PathBuf, Error> {
    let o = overlay_dir(container_dir);
    let targets = o.join("targets");
    let (upper, work, merged) = (o.join("upper"), o.join("work"), merged(container_dir));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(Error::io(format!("create {}", d.display())))?;
    }
    for d in DIRS {
        let p = targets.join(d);
        std::fs::create_dir_all(&p).map_err(Error::io(format!("create {}", p.display())))?;
    }
    for f in files {
        let p = targets.join(f.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(Error::io(format!("create {}", parent.display())))?;
        }
        std::fs::write(&p, b"").map_err(Error::io(format!("create {}", p.display())))?;
    }
    // The option string is comma-separated with `:` between lower layers: paths with either
    // cannot be named in it.
    for p in [&targets, &upper, &work, &lower.to_path_buf()] {
        let s = p.to_string_lossy();
        if s.contains([',', ':']) {
            return Err(Error::Invalid(format!(
                "{}: a path with ',' or ':' cannot be an overlay layer; move the root filesystem (or the data directory) to a path without them",
                p.display()
            )));
        }
    }
    let data = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        targets.display(),
        lower.display(),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| {
        Error::Invalid(format!(
            "--rootfs {}: cannot mount an overlay over it ({e}); the kernel must allow overlayfs in a user namespace (Linux 5.11+), or use an image instead",
            lower.display()
        ))
    })?;
    Ok(merged)
}

/// Unmounts the overlay of `container_dir` if it is mounted here, and fails if it still is
/// afterwards (so that nobody removes the directory through the mount). Nothing to do when it
/// was never mounted, or its instance (and with it the mount) is gone.
pub fn release(container_dir: &Path) -> Result<(), Error> {
    let m = merged(container_dir);
    let Ok(inner) = std::fs::metadata(&m) else {
        return Ok(());
    };
    let outer = std::fs::metadata(overlay_dir(container_dir)).map_err(Error::io(format!(
        "stat {}",
        overlay_dir(container_dir).display()
    )))?;
    if inner.dev() == outer.dev() {
        return Ok(());
    }
    nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
        Error::Invalid(format!(
            "unmount the container's root at {}: {e}",
            m.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_of_a_never_mounted_or_absent_overlay_is_nothing() {
        let d = tempfile::tempdir().unwrap();
        release(d.path()).unwrap();
        std::fs::create_dir_all(merged(d.path())).unwrap();
        release(d.path()).unwrap();
    }

    #[test]
    fn a_layer_path_the_option_string_cannot_hold_is_refused_before_mounting() {
        let d = tempfile::tempdir().unwrap();
        let e = mount(d.path(), Path::new("/a:b"), &["/etc/hosts"]).unwrap_err();
        assert!(e.to_string().contains("/a:b"), "{e}");
        // The targets layer was written, and names the files asked for.
        assert!(d.path().join("overlay/targets/etc/hosts").is_file());
        assert!(d.path().join("overlay/targets/proc").is_dir());
    }
}
