//! Thin, checked wrappers over the socket and epoll system calls the stack makes on its data
//! path. They take raw fds and return `io::Result`, so the protocol modules read as protocol.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn sockaddr6(a: SocketAddrV6) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: a.port().to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: a.ip().octets(),
        },
        sin6_scope_id: 0,
    }
}

/// Calls `f` with a C socket address for `a` and its length.
fn with_sockaddr<T>(
    a: SocketAddr,
    f: impl FnOnce(*const libc::sockaddr, libc::socklen_t) -> T,
) -> T {
    match a {
        SocketAddr::V4(a) => {
            let sa = sockaddr(a);
            f(
                (&sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sa = sockaddr6(a);
            f(
                (&sa as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// A non-blocking, close-on-exec socket of `to`'s family, bound to `bind` (port 0) when given
/// and of the same family.
pub fn socket(
    to: SocketAddr,
    ty: libc::c_int,
    proto: libc::c_int,
    bind: Option<IpAddr>,
) -> io::Result<OwnedFd> {
    let domain = if to.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall.
    let fd =
        cvt(unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(addr) = bind.filter(|b| b.is_ipv4() == to.is_ipv4()) {
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        if ty == libc::SOCK_STREAM {
            // The port is then chosen at connect() for the whole 4-tuple, as without a bind:
            // a bind to port 0 takes a port of its own for every socket, so the outbound
            // address would cap all connections together at one ephemeral range (28,232 by
            // default). A kernel without the option (before 4.2) just binds the old way.
            let one: libc::c_int = 1;
            // SAFETY: one is a valid int for the option's length.
            unsafe {
                libc::setsockopt(
                    raw,
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&one as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        // SAFETY: the address is valid for its length.
        cvt(with_sockaddr(SocketAddr::new(addr, 0), |sa, len| unsafe {
            libc::bind(raw, sa, len)
        }))?;
    }
    Ok(fd)
}

/// `connect(2)`; `Ok(true)` when connected at once, `Ok(false)` when in progress.
pub fn connect(fd: RawFd, to: SocketAddr) -> io::Result<bool> {
    // SAFETY: the address is valid for its length.
    let r = with_sockaddr(to, |sa, len| unsafe { libc::connect(fd, sa, len) });
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The pending error of a socket (`SO_ERROR`), 0 if none.
pub fn so_error(fd: RawFd) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for writing.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 { libc::EBADF } else { v }
}

/// Makes `close` send RST instead of FIN (SO_LINGER with a zero timeout).
pub fn set_linger_zero(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: l is a valid linger struct. A failure only means a FIN instead of a RST.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reading; MSG_NOSIGNAL avoids SIGPIPE on a reset peer.
    cvt_size(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
}

pub fn readv(fd: RawFd, bufs: &mut [&mut [u8]]) -> io::Result<usize> {
    let iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .filter(|b| !b.is_empty())
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: every iovec points into a live mutable slice.
    cvt_size(unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as libc::c_int) })
}

pub fn writev(fd: RawFd, bufs: &[&[u8]]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 4];
    let mut n = 0;
    for b in bufs.iter().filter(|b| !b.is_empty()).take(4) {
        iov[n] = libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        };
        n += 1;
    }
    // SAFETY: every iovec points into a live slice; writev only reads them.
    cvt_size(unsafe { libc::writev(fd, iov.as_ptr(), n as libc::c_int) })
}

pub fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall; ENOTCONN after a reset is harmless here.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writing.
    cvt_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// `sendto(2)` without SIGPIPE.
pub fn sendto(fd: RawFd, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
    // SAFETY: buf is valid for reading; the address is valid for its length.
    let r = with_sockaddr(to, |sa, len| unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            sa,
            len,
        )
    });
    cvt_size(r)
}

/// `recvfrom(2)`: the datagram's length and its sender.
pub fn recvfrom(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage is large enough for any socket address; buf is valid for writing.
    let n = cvt_size(unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    let from = match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let a = unsafe { *(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            SocketAddr::new(
                IpAddr::V4(u32::from_be(a.sin_addr.s_addr).into()),
                u16::from_be(a.sin_port),
            )
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let a = unsafe { *(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            ))
        }
        _ => return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    };
    Ok((n, from))
}

pub fn epoll_add(epoll: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ev is a valid epoll_event.
    cvt(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
}

pub fn epoll_del(epoll: RawFd, fd: RawFd) {
    // SAFETY: plain syscall; the fd is closed right after anyway.
    unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_stream_socket_bound_to_an_address_takes_its_port_at_connect() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = l.local_addr().unwrap();
        let bind = Some(Ipv4Addr::LOCALHOST.into());
        let s = super::socket(to, libc::SOCK_STREAM, 0, bind).unwrap();
        // SAFETY: all zeroes is a valid sockaddr_in.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let name = |sa: &mut libc::sockaddr_in, len: &mut libc::socklen_t| {
            // SAFETY: sa and len describe a sockaddr_in buffer.
            unsafe { libc::getsockname(s.as_raw_fd(), (sa as *mut libc::sockaddr_in).cast(), len) }
        };
        assert_eq!(name(&mut sa, &mut len), 0);
        assert_eq!(sa.sin_port, 0, "no port taken at bind");
        // In progress or done: the listener's kernel completes the handshake either way.
        super::connect(s.as_raw_fd(), to).unwrap();
        let (_peer, from) = l.accept().unwrap();
        assert_eq!(from.ip(), Ipv4Addr::LOCALHOST);
        assert_ne!(from.port(), 0);
    }
}
