//! # nsnet-run — the rootless launcher (RootlessKit's core)
//!
//! This crate sequences the namespace mechanisms of `nsnet-ns` into a running instance: a
//! *parent* process that stays in the caller's namespaces and a *child* process inside the new
//! user, mount and (optionally) network namespace, which runs the command.
//!
//! The sequence of the two stages, the handshake between them and the reasons for each
//! choice (a raw `clone`, waiting before `execve`, signalfd, the parent's thread in the
//! child's netns) are drawn once, in `docs/launcher.md`; [`channel`] holds the handshake's
//! steps, and accepts them only in that order.
//!
//! What it leaves to others: the mechanisms are `nsnet-ns`'s; network and port drivers plug
//! in through [`net`] (one closed enum each, dispatched in one place), their implementations
//! live in their own crates. The launcher's flags are declared here ([`config::flags`]) and
//! flattened into the binary's command lines; the rest of the parsing belongs to the binary.

pub mod builtin_net;
pub mod channel;
pub mod child;
pub mod config;
pub mod external_net;
pub mod memory;
pub mod net;
pub mod parent;
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
    Protocol(#[from] channel::ProtocolError),
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
    #[error(transparent)]
    Pasta(#[from] external_net::PastaError),
    #[error("the {0} port driver needs the child's IPv4 address from --net={0}")]
    NoChildIp(&'static str),
}

/// Shorthand for a failed system call.
pub(crate) fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> LaunchError {
    move |source| LaunchError::Sys { op, source }
}
