//! # nsnet-container — containers over an OCI runtime, networked by OCI hooks
//!
//! Layer: the top library below the binary. It owns what a container *is* for nsnet: the OCI
//! bundle it runs from ([`bundle`]), the local images it can be made from ([`image`]: a rootfs
//! directory, an OCI image layout, a `docker save`/`podman save` archive), its record and
//! status on disk under the user's data dir ([`store`]), the overlay a `--rootfs` directory
//! runs under so that it is never written ([`rootfs`]), the `-p` publish specs ([`publish`]),
//! the Go-template field paths of `inspect --format` ([`template`]), and the work of the
//! createRuntime/postStop OCI hooks ([`hook`]).
//!
//! Design choice: nsnet never creates a container's namespaces itself. runc does, inside the
//! user and mount namespaces of a running nsnet instance; the network is attached by a hook that
//! enters the instance's child netns, exactly as nerdctl does rootless. The lifecycle is here
//! too: finding or starting the instance and joining it ([`lifecycle`]), the runc invocations
//! ([`runtime`]), the monitor that waits for runc ([`monitor`]), what `ps` and `inspect` show
//! ([`view`]), and `--bypass`, the socket bypass service its monitor runs ([`bypass`], over
//! `nsnet_bypass`). What stays with the binary: the command line and printing.

pub mod bundle;
pub mod bypass;
pub mod hook;
pub mod image;
pub mod lifecycle;
pub mod monitor;
mod net;
pub mod publish;
pub mod rootfs;
pub mod runtime;
pub mod store;
pub mod template;
pub mod time;
pub mod view;
mod wait;

use std::path::{Path, PathBuf};

/// Errors of the container layer: each names the object and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("image {image}: {msg}")]
    Image { image: String, msg: String },
    #[error("no such container: {0} (see `nsnet container ps -a`)")]
    NoSuchContainer(String),
    #[error("{0}")]
    Network(String),
    /// The nsnet instance a container needs: not found, not answering, failed to start.
    #[error("{0}")]
    Instance(String),
    /// An OCI runtime invocation (`op`, e.g. `runc delete ID`) that failed, with runc's reason.
    #[error("{op}: {msg}")]
    Runtime { op: String, msg: String },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// `$XDG_DATA_HOME/nsnet`, else `$HOME/.local/share/nsnet`: where container records live (a
/// disk, not a tmpfs, so that `rm` can still clean up after a reboot).
pub fn data_dir() -> Result<PathBuf, Error> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("nsnet"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/nsnet")),
        None => Err(Error::Invalid(
            "neither XDG_DATA_HOME nor HOME is set; set one to say where containers are kept"
                .into(),
        )),
    }
}

/// Writes a file atomically (a rename), so that a reader never sees half a record.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(Error::io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(Error::io(format!("rename to {}", path.display())))
}
