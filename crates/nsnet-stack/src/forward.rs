//! Host ports forwarded into the guest (slirp4netns's `hostfwd`): the stack speaks first.
//!
//! The caller binds the host listener (so a bind error is its to report, synchronously) and
//! hands it over with [`Stack::add_forward`](crate::Stack::add_forward). From then on the
//! listener is one more socket in the stack's epoll set:
//!
//! ```text
//!  TCP: accept() ──► a connection in SynSent: our SYN from gateway:ephemeral to the guest
//!                    (an ARP request first if the guest has not spoken yet)
//!       guest SYN-ACK ──► ACK, Open: from here the flow is an outbound one, same code
//!       guest RST / no answer after the retries ──► the host client sees a reset
//!  UDP: recvfrom() ──► a flow per (forward, client): gateway:ephemeral ⇄ guest; the guest's
//!                      replies go out through the listener with sendto(client)
//! ```
//!
//! Connections appear in the guest as coming from the gateway (CIDR+2), as slirp's do: the
//! guest's replies must route back through the tap, and the gateway is the one address that
//! surely does.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use crate::stack::Ctx;
use crate::tcp::TcpTable;

pub(crate) const TOKEN_KIND: u64 = 4;
/// Connections accepted per readiness event before others get a turn.
const ACCEPT_BUDGET: usize = 64;

/// A host listener to forward into the guest.
#[derive(Debug)]
pub struct Forward {
    /// The caller's id for this forward (unique among live forwards).
    pub id: u32,
    pub udp: bool,
    /// A bound (and, for TCP, listening) non-blocking socket in the stack's namespace.
    pub listener: OwnedFd,
    /// Where connections go in the guest.
    pub guest: SocketAddr,
}

pub(crate) struct Listener {
    pub udp: bool,
    pub sock: OwnedFd,
    pub guest: SocketAddr,
}

/// Accepts pending connections on a TCP forward and opens each into the guest.
pub(crate) fn accept_all(tcp: &mut TcpTable, ctx: &mut Ctx<'_>, l: &Listener, now: Instant) {
    for _ in 0..ACCEPT_BUDGET {
        // SAFETY: plain syscall; the peer address is not needed.
        let fd = unsafe {
            libc::accept4(
                l.sock.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            // EAGAIN, or a client that reset before we accepted: nothing more now.
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ECONNABORTED) {
                continue;
            }
            return;
        }
        // SAFETY: a fresh fd from accept4.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        tcp.open_to_guest(ctx, sock, l.guest, now);
    }
}
