//! The container's socket, seen through our duplicate of it (`pidfd_getfd`: the same open
//! file), and its host twin: a new socket of the same domain, type and protocol in the
//! service's (host) network namespace, with every option the container changed replayed on it.
//!
//! Which options were changed is found by comparison: each option of the table is read on the
//! container's socket and on the fresh twin, and set only where the two differ. So nothing is
//! set that the application did not set — `SO_RCVBUF` in particular, whose setting turns off
//! the kernel's buffer autotuning — and the table can list options freely.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// What the service needs to know of a container's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub domain: i32,
    /// `SOCK_STREAM` or `SOCK_DGRAM` (without flags).
    pub ty: i32,
    pub protocol: i32,
}

impl Kind {
    /// The socket's domain, type and protocol; `None` for what the bypass never swaps (not
    /// AF_INET/AF_INET6, not TCP or UDP: raw, packet, SCTP, ICMP datagram sockets…).
    pub fn of(fd: BorrowedFd) -> io::Result<Option<Kind>> {
        let domain = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
        let ty = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
        let protocol = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
        let inet = domain == libc::AF_INET || domain == libc::AF_INET6;
        let ok = match ty {
            libc::SOCK_STREAM => protocol == libc::IPPROTO_TCP,
            libc::SOCK_DGRAM => protocol == libc::IPPROTO_UDP,
            _ => false,
        };
        Ok((inet && ok).then_some(Kind {
            domain,
            ty,
            protocol,
        }))
    }
}

/// A destination as the container gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Inet(SocketAddr),
    /// `AF_UNSPEC`: dissolve a UDP association.
    Unspec,
}

/// Parses a raw sockaddr of `len` bytes; `None` for families the bypass leaves alone (unix…)
/// and for lengths the kernel would refuse.
pub fn parse_sockaddr(b: &[u8]) -> Option<Dest> {
    if b.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    let port = |b: &[u8]| u16::from_be_bytes([b[2], b[3]]);
    match family {
        libc::AF_UNSPEC => Some(Dest::Unspec),
        libc::AF_INET if b.len() >= 16 => {
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Some(Dest::Inet(SocketAddr::V4(SocketAddrV4::new(ip, port(b)))))
        }
        libc::AF_INET6 if b.len() >= 28 => {
            let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            let ip: [u8; 16] = b[8..24].try_into().ok()?;
            let scope = u32::from_ne_bytes([b[24], b[25], b[26], b[27]]);
            Some(Dest::Inet(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port(b),
                flow,
                scope,
            ))))
        }
        _ => None,
    }
}

/// The raw sockaddr of `a` (`sockaddr_in` or `sockaddr_in6`), as the kernel takes it.
pub fn raw_sockaddr(a: SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(a) => {
            let mut b = vec![0u8; std::mem::size_of::<libc::sockaddr_in>()];
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
            b
        }
        SocketAddr::V6(a) => {
            let mut b = vec![0u8; std::mem::size_of::<libc::sockaddr_in6>()];
            b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            b
        }
    }
}

/// Whether the socket is bound to a local address or port: the bypass cannot give a host
/// socket the container's address, so such a socket stays on the normal path.
pub fn is_bound(fd: BorrowedFd) -> io::Result<bool> {
    let b = sys::sockname(fd)?;
    Ok(match parse_sockaddr(&b) {
        Some(Dest::Inet(a)) => {
            a.port() != 0
                || match a.ip() {
                    IpAddr::V4(ip) => !ip.is_unspecified(),
                    IpAddr::V6(ip) => !ip.is_unspecified(),
                }
        }
        _ => false,
    })
}

/// An option the twin inherits when the container's socket differs from a fresh one.
struct Opt {
    level: libc::c_int,
    name: libc::c_int,
    /// The value the kernel reports is twice what was set (`SO_RCVBUF`, `SO_SNDBUF`).
    halved: bool,
    /// For TCP sockets only (the others fail with EOPNOTSUPP or ENOPROTOOPT).
    tcp_only: bool,
    /// For AF_INET6 sockets only.
    v6_only: bool,
}

const fn opt(level: libc::c_int, name: libc::c_int) -> Opt {
    Opt {
        level,
        name,
        halved: false,
        tcp_only: false,
        v6_only: false,
    }
}

const fn tcp(name: libc::c_int) -> Opt {
    Opt {
        tcp_only: true,
        ..opt(libc::IPPROTO_TCP, name)
    }
}

const fn v6(name: libc::c_int) -> Opt {
    Opt {
        v6_only: true,
        ..opt(libc::IPPROTO_IPV6, name)
    }
}

const fn buf(name: libc::c_int) -> Opt {
    Opt {
        halved: true,
        ..opt(libc::SOL_SOCKET, name)
    }
}

/// The options replayed. Byte-compared, so structs (`SO_LINGER`, the timeouts) work too.
const OPTIONS: &[Opt] = &[
    opt(libc::SOL_SOCKET, libc::SO_REUSEADDR),
    opt(libc::SOL_SOCKET, libc::SO_REUSEPORT),
    opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    opt(libc::SOL_SOCKET, libc::SO_BROADCAST),
    opt(libc::SOL_SOCKET, libc::SO_OOBINLINE),
    opt(libc::SOL_SOCKET, libc::SO_LINGER),
    opt(libc::SOL_SOCKET, libc::SO_RCVTIMEO),
    opt(libc::SOL_SOCKET, libc::SO_SNDTIMEO),
    opt(libc::SOL_SOCKET, libc::SO_RCVLOWAT),
    opt(libc::SOL_SOCKET, libc::SO_PRIORITY),
    opt(libc::SOL_SOCKET, libc::SO_TIMESTAMP),
    buf(libc::SO_RCVBUF),
    buf(libc::SO_SNDBUF),
    tcp(libc::TCP_NODELAY),
    tcp(libc::TCP_CORK),
    tcp(libc::TCP_KEEPIDLE),
    tcp(libc::TCP_KEEPINTVL),
    tcp(libc::TCP_KEEPCNT),
    tcp(libc::TCP_USER_TIMEOUT),
    tcp(libc::TCP_SYNCNT),
    tcp(libc::TCP_WINDOW_CLAMP),
    tcp(libc::TCP_NOTSENT_LOWAT),
    tcp(libc::TCP_FASTOPEN_CONNECT),
    opt(libc::IPPROTO_IP, libc::IP_TOS),
    opt(libc::IPPROTO_IP, libc::IP_TTL),
    opt(libc::IPPROTO_IP, libc::IP_RECVERR),
    opt(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
    v6(libc::IPV6_V6ONLY),
    v6(libc::IPV6_TCLASS),
    v6(libc::IPV6_UNICAST_HOPS),
    v6(libc::IPV6_RECVERR),
];

/// Options of the container's socket that could not be carried over.
#[derive(Debug)]
pub struct NotReplayed {
    pub level: i32,
    pub name: i32,
    pub error: io::Error,
}

/// The host twin of `container` (of kind `k`): a new socket in this thread's network
/// namespace, non-blocking on our side until it is installed, with the container's changed
/// options. An option that cannot be replayed is an error: the caller then keeps the normal
/// path rather than hand the application a socket that differs from the one it configured.
pub fn twin(container: BorrowedFd, k: Kind) -> Result<OwnedFd, NotReplayed> {
    let host = sys::socket(k.domain, k.ty | libc::SOCK_NONBLOCK, k.protocol).map_err(|error| {
        NotReplayed {
            level: -1,
            name: -1,
            error,
        }
    })?;
    for o in OPTIONS {
        if (o.tcp_only && k.ty != libc::SOCK_STREAM) || (o.v6_only && k.domain != libc::AF_INET6) {
            continue;
        }
        let theirs = match sys::getsockopt_bytes(container, o.level, o.name, 32) {
            Ok(v) => v,
            // An option this kernel or this socket does not have was never set.
            Err(_) => continue,
        };
        let ours = sys::getsockopt_bytes(host.as_fd(), o.level, o.name, 32).unwrap_or_default();
        if theirs == ours {
            continue;
        }
        let mut value = theirs;
        if o.halved && value.len() == 4 {
            let v = i32::from_ne_bytes(value[..4].try_into().expect("4 bytes")) / 2;
            value = v.to_ne_bytes().to_vec();
        }
        sys::setsockopt_bytes(host.as_fd(), o.level, o.name, &value).map_err(|error| {
            NotReplayed {
                level: o.level,
                name: o.name,
                error,
            }
        })?;
    }
    Ok(host)
}

/// Pins a UDP twin to the host interface that routes `dst` (SO_BINDTODEVICE), so that nothing
/// the application sends on it later reaches the host's loopback.
///
/// Why: a swapped UDP socket is the application's to use, and `sendmsg` cannot be trapped
/// (runc's init sends the notify fd with it after the filter is on, so the service would
/// wait for itself), so a datagram to 127.0.0.1 or `::1` on the twin would reach the host's
/// loopback, which the normal path never reaches (and `--disable-host-loopback` closes even
/// through the gateway). A socket bound to a device other than `lo` cannot send to loopback
/// (the local routes are `lo`'s). Since Linux 5.7 an unprivileged process may bind a socket
/// to a device once; changing or clearing it needs CAP_NET_RAW in the host's network
/// namespace, which no container holds. The interface is the one whose address the host
/// would send from to `dst`; a destination the host sends from `lo` (one of its own
/// loopback-routed addresses) is refused: the caller keeps the normal path.
pub fn pin_to_uplink(host: BorrowedFd, dst: SocketAddr) -> io::Result<()> {
    let dst = match dst {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => dst,
        },
        v4 => v4,
    };
    let any: SocketAddr = if dst.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    // A connected UDP socket sends nothing; its local address is the route's source.
    let probe = std::net::UdpSocket::bind(any)?;
    probe.connect(dst)?;
    let src = probe.local_addr()?.ip();
    let name = nix::ifaddrs::getifaddrs()
        .map_err(io::Error::from)?
        .find(|i| {
            i.address.as_ref().is_some_and(|a| {
                a.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())) == Some(src)
                    || a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())) == Some(src)
            })
        })
        .map(|i| i.interface_name)
        .ok_or_else(|| io::Error::other(format!("no interface holds {src}")))?;
    if name == "lo" {
        return Err(io::Error::other(format!("{dst} is reached through lo")));
    }
    sys::setsockopt_bytes(
        host,
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        name.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn raw_v4(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b
    }

    #[test]
    fn sockaddrs_parse_by_family_and_short_ones_are_left_to_the_kernel() {
        assert_eq!(
            parse_sockaddr(&raw_v4([192, 0, 2, 10], 8080)),
            Some(Dest::Inet("192.0.2.10:8080".parse().unwrap()))
        );
        assert_eq!(parse_sockaddr(&raw_v4([192, 0, 2, 10], 80)[..8]), None);
        for a in [
            "192.0.2.10:8080",
            "[2001:db8::1]:443",
            "[::ffff:127.0.0.1]:80",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(parse_sockaddr(&raw_sockaddr(a)), Some(Dest::Inet(a)), "{a}");
        }
        let mut v6 = vec![0u8; 28];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&443u16.to_be_bytes());
        v6[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            parse_sockaddr(&v6),
            Some(Dest::Inet("[2001:db8::1]:443".parse().unwrap()))
        );
        let unix = (libc::AF_UNIX as u16).to_ne_bytes();
        assert_eq!(parse_sockaddr(&unix), None);
        assert_eq!(
            parse_sockaddr(&(libc::AF_UNSPEC as u16).to_ne_bytes()),
            Some(Dest::Unspec)
        );
    }

    #[test]
    fn raw_and_packet_sockets_are_never_kinds_the_bypass_swaps() {
        let udp = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        assert_eq!(
            Kind::of(udp.as_fd()).unwrap(),
            Some(Kind {
                domain: libc::AF_INET,
                ty: libc::SOCK_DGRAM,
                protocol: libc::IPPROTO_UDP
            })
        );
        let unix = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap();
        assert_eq!(Kind::of(unix.as_fd()).unwrap(), None);
        // ICMP datagram sockets exist without privilege when ping_group_range allows; raw and
        // packet sockets need CAP_NET_RAW (the root pass).
        for (d, t, p) in [
            (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
            (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP),
            (libc::AF_PACKET, libc::SOCK_RAW, 0),
        ] {
            if let Ok(s) = sys::socket(d, t, p) {
                assert_eq!(Kind::of(s.as_fd()).unwrap(), None, "{d} {t} {p}");
            }
        }
    }

    #[test]
    fn the_twin_carries_what_was_set_and_nothing_else() {
        let c = sys::socket(libc::AF_INET6, libc::SOCK_STREAM, 0).unwrap();
        let set = |l, n, v: i32| sys::setsockopt_bytes(c.as_fd(), l, n, &v.to_ne_bytes()).unwrap();
        set(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        set(libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1);
        set(libc::SOL_SOCKET, libc::SO_SNDBUF, 65536);
        let k = Kind::of(c.as_fd()).unwrap().unwrap();
        let t = twin(c.as_fd(), k).unwrap();
        let get = |fd: BorrowedFd, l, n| sys::getsockopt_int(fd, l, n).unwrap();
        for (l, n) in [
            (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            (libc::SOL_SOCKET, libc::SO_SNDBUF),
            (libc::SOL_SOCKET, libc::SO_RCVBUF),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        ] {
            assert_eq!(get(t.as_fd(), l, n), get(c.as_fd(), l, n), "option {l}/{n}");
        }
        assert_ne!(sys::status_flags(t.as_fd()).unwrap() & libc::O_NONBLOCK, 0);
    }
}
