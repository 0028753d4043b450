//! # nsnet-bypass — a container's outbound sockets at host speed (seccomp user notification)
//!
//! Layer: above `nsnet-ns` (it only needs the kernel), below `nsnet-container` (which decides
//! when a container gets it and what its network forbids). It owns data path 3 of design.md:
//! the container's own `connect()` ends on a socket of the host network namespace, so the bytes
//! cross no veth, bridge, tap or user-mode stack — only the host's loopback or its interfaces.
//!
//! ## The data path
//!
//! ```text
//!  container process (its own netns)          bypass service (host netns, owns the userns)
//!  socket(AF_INET, SOCK_STREAM)  ── normal ──
//!  connect(fd, 192.0.2.10:80)    ── trapped (SCMP_ACT_NOTIFY) ──▶ NOTIF_RECV
//!        (blocked in the kernel)                                  read the sockaddr, ID_VALID
//!                                                                 pidfd_getfd(fd): domain, type,
//!                                                                 protocol, options, O_NONBLOCK
//!                                                                 Policy::allows(dst)?
//!                                                                   no → CONTINUE (normal path)
//!                                                                   yes → socket() here, replay
//!                                                                   options, connect(dst copy),
//!                                                                   ID_VALID, NOTIF_ADDFD(SETFD
//!                                                                   = fd), NOTIF_SEND(result)
//!  connect returns; fd is now the host socket: read/write/close never trap again
//! ```
//!
//! Published TCP ports take a second path, at `listen` ([`publish`]): the app's listener on a
//! published port becomes a host socket bound to the published address, with no relay.
//!
//! [`profile`] is the OCI seccomp section (default ALLOW, `connect` → NOTIFY, `listenerPath`;
//! `listen` and `getsockname` too for a container that publishes TCP ports);
//! runc ≥ 1.1 connects to that socket and sends the container state with the notify fd over
//! SCM_RIGHTS ([`listener`]). [`service`] runs the notification loop; [`socket`] inspects the
//! container's socket and builds its host twin; [`policy`] says which destinations may bypass.
//!
//! ## Safety rules (each one is why a line of [`service`] is there)
//!
//! - **The service connects, the kernel does not re-read.** Answering `CONTINUE` after the
//!   swap would let the kernel read the sockaddr a second time from the container's memory,
//!   where another thread may have rewritten it to 127.0.0.1 after the check — a hole to the
//!   host's loopback that `--disable-host-loopback` closes on the normal path (seccomp_unotify(2)
//!   warns of exactly this). So the service connects the host socket itself, to the copy it
//!   checked, and answers with that connect's result. `CONTINUE` is only ever the normal path:
//!   the container's own socket in its own netns, where the kernel's re-read is harmless.
//! - **Every read of the target's memory is bracketed by `SECCOMP_IOCTL_NOTIF_ID_VALID`**: the
//!   thread may have died and its PID been reused; a read is trusted only if the notification
//!   was still pending after it. The pidfd is opened before the first check, so the fd taken
//!   with `pidfd_getfd` is the target's.
//! - **Anything unreadable or unusual takes the normal path**: an unreadable address, a socket
//!   that is not AF_INET/AF_INET6 stream or datagram (raw, packet, SCTP…), a socket already bound
//!   or listening, a family mismatch, an address the policy refuses. The normal path then gives
//!   the answer (and the error) the container would have had without the bypass.
//! - **A host socket is never connected to a refused destination**: a socket already swapped
//!   (a UDP socket connected again) is connected by the service, and only where the policy
//!   allows; elsewhere the call fails with ENETUNREACH, as a host with no such route would.
//! - **Only `connect` is trapped** (and `listen` + `getsockname` where ports are published).
//!   `fcntl`, `read`, `write` and the rest never are (runc's own init would hang on a trapped
//!   `fcntl`; bypass4netns' defect), and a swapped fd is an ordinary socket to every later call.
//!
//! Unconnected UDP is swapped at its first `sendto` to an outside address ([`datagram`]).
//!
//! Limits (docs/bypass.md): `sendmsg` is never trapped (runc's init uses it under the filter);
//! a swapped connected or UDP socket reports the host's addresses to `getsockname` (a swapped
//! listener answers the container's).
//!
//! Why hand-written ioctls: the notify ABI (`seccomp_notif`, `SECCOMP_IOCTL_NOTIF_*`,
//! `seccomp_notif_addfd`) is in `libc`; the one crate that wraps it, `libseccomp`, links the C
//! library, and `seccompiler` (which nsnet uses for BPF) has no notify or ADDFD support.

pub mod datagram;
pub mod listener;
pub mod policy;
pub mod profile;
pub mod publish;
pub mod service;
pub mod socket;
mod sys;

pub use listener::Listener;
pub use policy::Policy;
pub use publish::{Forwards, Ports, Published};
pub use service::{Service, Stats};

/// Errors of the bypass layer: each names the operation and the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(String),
    /// One connection to the listener that did not bring a notify fd (the listener is fine).
    #[error("{0}")]
    Handoff(String),
}

impl Error {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
