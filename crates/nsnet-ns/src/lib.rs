//! # nsnet-ns — the namespace layer
//!
//! The lowest layer of nsnet. It owns the kernel mechanisms a rootless launcher is made of,
//! each as a small function with no policy of its own:
//!
//! - [`idmap`]: subordinate id ranges (`/etc/subuid`, `getsubids`) and writing a child's
//!   uid/gid maps through `newuidmap`/`newgidmap`, or the single-id fallback.
//! - [`mount`]: mount propagation, a fresh `/proc` for a PID namespace, a fresh `/sys` for a
//!   network namespace, bind mounts.
//! - [`copyup`]: RootlessKit's `tmpfs+symlink` copy-up, which makes a directory such as `/etc`
//!   writable inside the mount namespace without touching the host's files.
//! - [`netns`]: bringing `lo` up and creating a *detached* network namespace kept alive by a
//!   bind mount (the child command stays in the host's network namespace).
//! - [`nsfs`]: namespace identities (`net:[N]`) and the nsfs ioctls (owner, parent, kind).
//! - [`enter`]: opening namespace files and joining them in nsenter's order.
//! - [`statedir`]: the state directory contract as the instance writes it (`lock`,
//!   `child_pid`, …); [`instance`]: the same contract as every other caller reads it —
//!   where the running instance is, whether it is alive, its netns and API socket.
//! - [`signal`]: signal names as Go prints them (RootlessKit's output) and as Linux names them.
//!
//! What it leaves to others: *when* these happen and in which process is the launcher's job
//! (`nsnet-run`); links, addresses and routes beyond `lo` are `nsnet-netlink`'s. Nothing here
//! names a network driver, a port driver or the binary.
//!
//! Kernel rules every caller must respect (see `shared/design.md` section 2):
//! - `unshare(CLONE_NEWUSER)` and `setns` into a user namespace need a single-threaded caller;
//!   `unshare(CLONE_NEWNET)` does not, which is why [`netns::create_detached`] may use a thread.
//! - Capabilities in a new user namespace survive `execve` only if uid 0 is mapped when the
//!   `execve` happens; the launcher therefore writes the maps before the child re-executes.

pub mod copyup;
pub mod enter;
pub mod idmap;
pub mod instance;
pub mod mount;
pub mod netns;
pub mod nsfs;
pub mod signal;
pub mod statedir;

use std::path::PathBuf;

/// Every failure of this layer names the operation and the object it was applied to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: malformed subordinate id entry {text:?} (want NAME:START:COUNT)")]
    SubidSyntax {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("cannot run {helper}: {source} (install the uidmap package)")]
    HelperMissing {
        helper: &'static str,
        source: std::io::Error,
    },
    #[error("{helper} {args} failed: {output}")]
    HelperFailed {
        helper: &'static str,
        args: String,
        output: String,
    },
    #[error("cannot mount {what} on {target}: {source}")]
    Mount {
        what: String,
        target: PathBuf,
        source: nix::Error,
    },
    #[error("cannot copy up {dir}: {reason}")]
    CopyUp { dir: PathBuf, reason: String },
    #[error("/tmp cannot be copied up")]
    CopyUpTmp,
    #[error("cannot {op} {path}: {source}")]
    Namespace {
        op: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("cannot bring up interface lo: {0}")]
    Loopback(nix::Error),
    #[error("failed to lock {path}, another instance is running with the same state directory?")]
    Locked { path: PathBuf },
    #[error(
        "internal error: namespaces must be joined while the process is single-threaded (a user namespace refuses a multi-threaded caller)"
    )]
    MultiThreaded,
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
