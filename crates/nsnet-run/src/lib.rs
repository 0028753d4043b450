//! # nsnet-run — the rootless launcher (RootlessKit's core)
//!
//! This crate sequences the namespace mechanisms of `nsnet-ns` into a running instance: a
//! *parent* process that stays in the caller's namespaces and a *child* process inside the new
//! user, mount and (optionally) network namespace, which runs the command.
//!
//! ```text
//! parent (host namespaces)                         child (new userns + mntns [+ netns, pidns…])
//! ─────────────────────────                        ─────────────────────────────────────────────
//! validate flags, lock $STATE
//! block signals (signalfd)
//! clone(CLONE_NEWUSER|CLONE_NEWNS|…) ───────────▶  set PDEATHSIG, wait on the sync pipe
//! newuidmap/newgidmap PID (or single-id map)
//! sync byte ─────────────────────────────────────▶  execve(/proc/self/exe): uid 0 is mapped now,
//!                                                  so the new image holds full capabilities
//! ParentMsg::Start(ChildConfig) ─────────────────▶  propagation, /proc, copy-up, netns, /sys
//!                               ◀─────────────────  ChildMsg::NamespacesReady (or ::Failed)
//! network driver: rootless, join the child's
//! userns; a thread enters the child's netns
//! (tap0, sockets there)
//! ParentMsg::NetworkReady{dns} ──────────────────▶  resolv.conf + hosts
//!                               ◀─────────────────  ChildMsg::Ready  (or ChildMsg::Failed)
//! services: async runtime, port driver (-p),
//! api.sock; write $STATE/child_pid
//! ParentMsg::Go ─────────────────────────────────▶
//! forward signals, wait                            spawn COMMAND (PDEATHSIG), forward signals,
//!                                                  reap (PID 1 of a new pidns reaps orphans)
//! exit with the child's status  ◀─────────────────  exit with the command's status
//! ```
//!
//! Why a raw `clone` rather than `fork` + `unshare`: a PID namespace made by `unshare` only
//! applies to the caller's *children*, while `clone(CLONE_NEWPID)` makes the child PID 1 of the
//! new namespace, which is what `--pidns` promises. Why the child waits *before* `execve`:
//! capabilities in a new user namespace survive `execve` only when uid 0 is already mapped
//! (RootlessKit re-executes itself a second time for the same reason).
//!
//! What it leaves to others: the mechanisms are `nsnet-ns`'s; network and port drivers plug
//! in through [`net`] (one closed enum each, dispatched in one place), their implementations
//! live in their own crates. Command-line parsing belongs to the binary.

pub mod builtin_net;
pub mod child;
pub mod config;
pub mod external_net;
pub mod net;
pub mod parent;
pub mod protocol;
pub mod services;
mod sigwait;

pub use config::{LaunchPlan, Personality, RawOptions};
pub use sigwait::Exit;

/// Environment variable that marks the child stage and carries its pipe descriptors.
pub const CHILD_ENV: &str = "_NSNET_CHILD_FDS";

/// Failures of the launcher, each naming what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Ns(#[from] nsnet_ns::Error),
    #[error("the launcher must be single-threaded before it creates namespaces ({0} threads)")]
    Threaded(usize),
    #[error("cannot {op}: {source}")]
    Sys {
        op: &'static str,
        source: nix::Error,
    },
    #[error("cannot {op}: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("parent/child channel: {0}")]
    Protocol(#[from] protocol::ProtocolError),
    #[error("failed to expose port {spec}: {source}")]
    Publish {
        spec: String,
        source: nsnet_port::PortError,
    },
    /// The child reported a setup failure; the message is the child's.
    #[error("{0}")]
    Child(String),
    #[error("child exited before it was ready: {0}")]
    ChildDied(String),
    #[error(transparent)]
    Builtin(#[from] builtin_net::BuiltinError),
    #[error(transparent)]
    External(#[from] external_net::ExternalError),
    #[error("the slirp4netns port driver needs the child's IPv4 address from --net=slirp4netns")]
    NoChildIp,
}

/// Shorthand for a failed system call.
pub(crate) fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> LaunchError {
    move |source| LaunchError::Sys { op, source }
}
