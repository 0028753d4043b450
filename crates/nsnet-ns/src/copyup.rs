//! Copy-up, mode `tmpfs+symlink` (RootlessKit's only mode).
//!
//! Rootless, `/etc` belongs to the real root and cannot be written, yet a network namespace
//! needs its own `/etc/resolv.conf` and `/etc/hosts`, and containerd wants `/var/lib` and
//! `/run` of its own. Copy-up makes such a directory writable *inside the mount namespace*:
//!
//! ```text
//! /etc               tmpfs (same mode as the original /etc)
//! /etc/.roAbC123     the original /etc, bind-mounted (writes here still hit the host's rules)
//! /etc/passwd     -> .roAbC123/passwd          (relative symlink per entry)
//! /etc/localtime  -> /usr/share/zoneinfo/UTC   (an original symlink is copied as it is)
//! ```
//!
//! A file created in the new `/etc` lives in the tmpfs and vanishes with the namespace;
//! replacing a symlink with a real file is how `/etc/resolv.conf` is overridden. `/tmp`
//! cannot be copied up because the original is parked in a temporary directory under `/tmp`
//! while the tmpfs goes on (RootlessKit has the same rule).

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Component, Path, PathBuf};

use crate::mount;
use crate::{Error, Result};

/// Cleans `dir` lexically (no symlink resolution, like Go's `filepath.Clean`).
pub fn clean(dir: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in dir.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Checks a copy-up request without touching anything, so a launcher can refuse bad flags
/// before it creates a namespace.
pub fn validate(dir: &Path) -> Result<PathBuf> {
    if !dir.is_absolute() {
        return Err(Error::CopyUp {
            dir: dir.to_path_buf(),
            reason: "the path must be absolute".into(),
        });
    }
    let d = clean(dir);
    if d == Path::new("/tmp") {
        return Err(Error::CopyUpTmp);
    }
    if d == Path::new("/") {
        return Err(Error::CopyUp {
            dir: d,
            reason: "/ cannot be copied up".into(),
        });
    }
    match std::fs::metadata(&d) {
        Ok(m) if m.is_dir() => Ok(d),
        Ok(_) => Err(Error::CopyUp {
            dir: d,
            reason: "not a directory".into(),
        }),
        Err(e) => Err(Error::CopyUp {
            dir: d,
            reason: e.to_string(),
        }),
    }
}

fn io_err(dir: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::CopyUp {
        dir: dir.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// Copies up one directory. Must run in a private mount namespace with `/` not shared
/// (a move out of a shared mount is refused by the kernel).
pub fn copy_up(dir: &Path) -> Result<()> {
    let dir = validate(dir)?;
    let mode = std::fs::metadata(&dir)
        .map_err(|e| io_err(&dir, "stat", e))?
        .mode()
        & 0o7777;
    let parked =
        nix::unistd::mkdtemp("/tmp/nsnet-copyup.XXXXXX").map_err(|e| io_err(&dir, "mkdtemp", e))?;
    let result = (|| {
        mount::bind(&dir, &parked, true)?;
        mount::tmpfs(&dir, mode)?;
        let hidden = nix::unistd::mkdtemp(&dir.join(".roXXXXXX"))
            .map_err(|e| io_err(&dir, "mkdtemp .ro", e))?;
        mount::move_mount(&parked, &hidden)?;
        let hidden_name = hidden
            .file_name()
            .expect("mkdtemp returns a named directory")
            .to_owned();
        let entries = std::fs::read_dir(&hidden).map_err(|e| io_err(&dir, "read", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, "read", e))?;
            let name = entry.file_name();
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            let target = if is_link {
                std::fs::read_link(entry.path()).map_err(|e| io_err(&dir, "readlink", e))?
            } else {
                Path::new(&hidden_name).join(&name)
            };
            symlink(&target, dir.join(&name))
                .map_err(|e| io_err(&dir, &format!("symlink {}", name.to_string_lossy()), e))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir(&parked);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_is_lexical() {
        assert_eq!(clean(Path::new("/tmp/")), Path::new("/tmp"));
        assert_eq!(clean(Path::new("/etc/../tmp")), Path::new("/tmp"));
        assert_eq!(clean(Path::new("//etc/./x")), Path::new("/etc/x"));
    }

    #[test]
    fn refuses_tmp_root_relative_and_files() {
        assert_eq!(
            validate(Path::new("/tmp/.")).unwrap_err().to_string(),
            "/tmp cannot be copied up"
        );
        assert!(validate(Path::new("/")).is_err());
        assert!(validate(Path::new("etc")).is_err());
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(
            validate(f.path())
                .unwrap_err()
                .to_string()
                .ends_with("not a directory")
        );
        assert_eq!(validate(Path::new("/etc")).unwrap(), Path::new("/etc"));
    }
}
