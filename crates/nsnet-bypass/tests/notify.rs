//! The service against a real seccomp filter, without runc: a forked target enters a user and
//! network namespace of its own (only a down `lo`: every connect on the normal path fails with
//! ENETUNREACH), traps `connect` with SECCOMP_FILTER_FLAG_NEW_LISTENER, hands the notify fd to
//! this process over a socketpair and runs its cases; this process runs the service in the
//! world's netns, where 192.0.2.10 (scripts/test's world address, on a veth: a destination
//! the host reaches through a device other than `lo`) has an echo server.
//!
//! So a connect that succeeds was bypassed, and one that must stay on the normal path has to
//! fail with the target's own errno. The target runs between fork and exit, with raw libc
//! calls on memory prepared before the fork (no allocation: the parent has threads).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nsnet_bypass::{Forwards, Policy, Ports, Published, Service, Stats};

const WORLD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// The cases, in order; each reports one i32 (0 or an errno).
const CASES: &[&str] = &[
    "tcp blocking, echo",
    "tcp non-blocking, then SO_ERROR",
    "ipv6 socket, v4-mapped destination",
    "udp connect",
    "udp reconnect to the target's loopback",
    "tcp to a never-bypass network",
    "tcp to the target's loopback",
    "raw socket",
    "unreadable sockaddr",
    "bound socket",
];

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    }
}

fn sockaddr_in6_mapped(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in6 {
    // SAFETY: plain data.
    let mut a: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    a.sin6_family = libc::AF_INET6 as u16;
    a.sin6_port = port.to_be();
    a.sin6_addr.s6_addr = ip.to_ipv6_mapped().octets();
    a
}

/// The filter: x86-64 `connect` → USER_NOTIF, everything else allowed.
fn filter() -> [libc::sock_filter; 6] {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt: 0,
        jf,
        k,
    };
    [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        jeq(0xC000_003E, 3),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jeq(libc::SYS_connect as u32, 1),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_USER_NOTIF),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// The filter of a container that publishes ports: `connect`, `listen`, `getsockname`.
fn filter_publishing() -> [libc::sock_filter; 8] {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        jeq(0xC000_003E, 0, 4),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jeq(libc::SYS_connect as u32, 3, 0),
        jeq(libc::SYS_listen as u32, 2, 0),
        jeq(libc::SYS_getsockname as u32, 1, 0),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_USER_NOTIF),
    ]
}

/// Everything the target needs, made before the fork.
struct Prepared {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    filter: [libc::sock_filter; 6],
    world: libc::sockaddr_in,
    world6: libc::sockaddr_in6,
    never: libc::sockaddr_in,
    lo: libc::sockaddr_in,
    any: libc::sockaddr_in,
}

fn errno() -> i32 {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// connect(2) as a result: 0 or errno.
///
/// # Safety
/// `addr` must point to `len` readable bytes, or be a deliberately bad pointer.
unsafe fn connect_raw(fd: RawFd, addr: *const libc::c_void, len: usize) -> i32 {
    // SAFETY: per the caller.
    if unsafe { libc::connect(fd, addr.cast(), len as libc::socklen_t) } == 0 {
        0
    } else {
        errno()
    }
}

fn connect_in(fd: RawFd, a: &libc::sockaddr_in) -> i32 {
    // SAFETY: a sockaddr_in of its own size.
    unsafe {
        connect_raw(
            fd,
            (a as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>(),
        )
    }
}

/// The target, between fork and exit: returns the exit code (0 when every step before the
/// cases worked). Only async-signal-safe calls on prepared memory.
/// Enters a user and network namespace of its own, loads `filter` and sends the notify fd
/// on `chan`: 0, or the exit code of the step that failed.
fn enter(uid_map: &[u8], gid_map: &[u8], filter: &[libc::sock_filter], chan: RawFd) -> i32 {
    // SAFETY: raw system calls on prepared buffers, in a single-threaded child.
    unsafe {
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            return 10;
        }
        let write = |path: &[u8], data: &[u8]| -> bool {
            let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY);
            if fd < 0 {
                return false;
            }
            let ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
            libc::close(fd);
            ok
        };
        if !write(b"/proc/self/setgroups\0", b"deny")
            || !write(b"/proc/self/uid_map\0", uid_map)
            || !write(b"/proc/self/gid_map\0", gid_map)
        {
            return 11;
        }
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return 12;
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return 13;
        }
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        let notify = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        ) as RawFd;
        if notify < 0 {
            return 14;
        }
        // Hand the notify fd over, then close our copy.
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        libc::CMSG_DATA(c).cast::<RawFd>().write_unaligned(notify);
        if libc::sendmsg(chan, &msg, 0) != 1 {
            return 15;
        }
        libc::close(notify);

        0
    }
}

/// The target, between fork and exit: returns the exit code (0 when every step before the
/// cases worked). Only async-signal-safe calls on prepared memory.
fn target(p: &Prepared, chan: RawFd) -> i32 {
    let e = enter(&p.uid_map, &p.gid_map, &p.filter, chan);
    if e != 0 {
        return e;
    }
    // SAFETY: raw system calls on prepared buffers, in a single-threaded child.
    unsafe {
        let mut results = [0i32; 10];
        let tcp = || libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);

        // 0: blocking TCP, then 4 bytes there and back.
        let s = tcp();
        results[0] = connect_in(s, &p.world);
        if results[0] == 0 {
            let mut b = *b"ping";
            if libc::write(s, b.as_ptr().cast(), 4) != 4
                || libc::read(s, b.as_mut_ptr().cast(), 4) != 4
            {
                results[0] = -1;
            } else if &b != b"ping" {
                results[0] = -2;
            }
        }
        libc::close(s);
        // 1: non-blocking TCP: EINPROGRESS, then writable with SO_ERROR 0.
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        let r = connect_in(s, &p.world);
        results[1] = if r == libc::EINPROGRESS || r == 0 {
            let mut pfd = libc::pollfd {
                fd: s,
                events: libc::POLLOUT,
                revents: 0,
            };
            libc::poll(&mut pfd, 1, 10_000);
            let mut e: i32 = -1;
            let mut len = 4 as libc::socklen_t;
            libc::getsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut e as *mut i32).cast(),
                &mut len,
            );
            let nb = libc::fcntl(s, libc::F_GETFL) & libc::O_NONBLOCK != 0;
            if nb { e } else { -3 }
        } else {
            r
        };
        libc::close(s);
        // 2: an AF_INET6 socket to a v4-mapped address.
        let s = libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
        results[2] = connect_raw(
            s,
            (&p.world6 as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>(),
        );
        libc::close(s);
        // 3 and 4: UDP connected out, then again to loopback (a host socket now: refused).
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        results[3] = connect_in(s, &p.world);
        results[4] = connect_in(s, &p.lo);
        libc::close(s);
        // 5: a network the policy keeps.
        let s = tcp();
        results[5] = connect_in(s, &p.never);
        libc::close(s);
        // 6: the target's loopback (down here; the world's has a server on that port).
        let s = tcp();
        results[6] = connect_in(s, &p.lo);
        libc::close(s);
        // 7: a raw socket to the world address.
        let s = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP);
        results[7] = if s < 0 { -4 } else { connect_in(s, &p.world) };
        libc::close(s);
        // 8: a sockaddr pointer into nothing.
        let s = tcp();
        results[8] = connect_raw(s, 16 as *const libc::c_void, 16);
        libc::close(s);
        // 9: a socket bound first (lo is down, but the any-address bind works).
        let s = tcp();
        let b = libc::bind(
            s,
            (&p.any as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        results[9] = if b != 0 { -5 } else { connect_in(s, &p.world) };
        libc::close(s);

        let n = std::mem::size_of_val(&results);
        if libc::write(chan, results.as_ptr().cast(), n) != n as isize {
            return 16;
        }
        0
    }
}

#[test]
fn a_trapped_connect_bypasses_outside_and_takes_the_normal_path_everywhere_else() {
    let l = TcpListener::bind((WORLD, 0)).expect("192.0.2.10 in scripts/test's world");
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut b = [0u8; 4];
                if c.read_exact(&mut b).is_ok() {
                    let _ = c.write_all(&b);
                }
            });
        }
    });
    // The world's loopback on the same port: reached only if the bypass opened it.
    let lo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let lo_port = lo.local_addr().unwrap().port();
    let lo_hits = Arc::new(AtomicUsize::new(0));
    let h = lo_hits.clone();
    std::thread::spawn(move || {
        for _ in lo.incoming() {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });

    let uid = nix_uid();
    let p = Prepared {
        uid_map: format!("0 {} 1", uid.0).into_bytes(),
        gid_map: format!("0 {} 1", uid.1).into_bytes(),
        filter: filter(),
        world: sockaddr_in(WORLD, port),
        world6: sockaddr_in6_mapped(WORLD, port),
        never: sockaddr_in(Ipv4Addr::new(10, 0, 2, 5), port),
        lo: sockaddr_in(Ipv4Addr::LOCALHOST, lo_port),
        any: sockaddr_in(Ipv4Addr::UNSPECIFIED, 0),
    };
    let mut pair = [0 as RawFd; 2];
    // SAFETY: socketpair fills two descriptors.
    assert_eq!(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        },
        0
    );
    // SAFETY: both descriptors are fresh and ours.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    // SAFETY: the child runs `target` (async-signal-safe calls only) and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = target(&p, theirs.as_raw_fd());
        // SAFETY: leave without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(theirs);

    let notify = recv_fd(ours.as_raw_fd()).expect("the target's notify fd");
    let policy = Policy {
        ipv4: true,
        ipv6: true,
        never: vec!["10.0.2.0/24".parse().unwrap()],
    };
    let stats = tempfile::NamedTempFile::new().unwrap();
    let svc = Service::new(notify, policy, Stats::reported_to(stats.path()).unwrap()).unwrap();
    let served = std::thread::spawn(move || svc.run());

    let mut results = [0i32; 10];
    // SAFETY: reading into a plain i32 array.
    let n = unsafe {
        libc::read(
            ours.as_raw_fd(),
            results.as_mut_ptr().cast(),
            std::mem::size_of_val(&results),
        )
    };
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the target failed before its cases: status {status:#x}"
    );
    assert_eq!(n as usize, std::mem::size_of_val(&results));
    // Every task under the filter is gone: the loop ends by itself.
    served.join().unwrap().unwrap();

    let want = [
        0,
        0,
        0,
        0,
        libc::ENETUNREACH,
        libc::ENETUNREACH,
        libc::ENETUNREACH,
        libc::ENETUNREACH,
        libc::EFAULT,
        libc::ENETUNREACH,
    ];
    for (i, case) in CASES.iter().enumerate() {
        assert_eq!(
            results[i],
            want[i],
            "{case}: got {} ({}), want {}",
            results[i],
            std::io::Error::from_raw_os_error(results[i].max(0)),
            want[i]
        );
    }
    assert_eq!(
        lo_hits.load(Ordering::SeqCst),
        0,
        "the world's loopback was reached"
    );
    let line = std::fs::read_to_string(stats.path()).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["bypassed"], 4, "{line}");
    assert_eq!(v["refused"], 1, "{line}");
}

fn nix_uid() -> (u32, u32) {
    // SAFETY: getuid and getgid cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

fn recv_fd(sock: RawFd) -> Option<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 4];
    // SAFETY: msghdr over our buffers; the kernel fills them.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) != 1 {
            return None;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        Some(OwnedFd::from_raw_fd(
            libc::CMSG_DATA(c).cast::<RawFd>().read_unaligned(),
        ))
    }
}

/// What the listen target needs, made before the fork.
struct PreparedListen {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    filter: [libc::sock_filter; 8],
    /// The published port, on the container's loopback and on every address.
    lo: libc::sockaddr_in,
    any: libc::sockaddr_in,
    /// A port that is not published, and one whose host port is taken.
    unpublished: libc::sockaddr_in,
    busy: libc::sockaddr_in,
}

/// The listen cases, the first batch's.
const LISTEN_CASES: &[&str] = &[
    "listen on the container's loopback (normal path)",
    "listen on every address of the published port (swapped)",
    "getsockname of the swapped listener answers the address bound inside",
    "listen on a port that is not published (normal path)",
    "listen where the host port is taken (normal path, forward restored)",
];

fn listen_target(p: &PreparedListen, chan: RawFd) -> i32 {
    let e = enter(&p.uid_map, &p.gid_map, &p.filter, chan);
    if e != 0 {
        return e;
    }
    let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: raw system calls on prepared buffers, in a single-threaded child.
    unsafe {
        let one: i32 = 1;
        let listener = |a: &libc::sockaddr_in| -> (RawFd, i32) {
            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const i32).cast(),
                4,
            );
            if libc::bind(s, (a as *const libc::sockaddr_in).cast(), size) != 0 {
                return (s, -10);
            }
            let r = if libc::listen(s, 8) == 0 { 0 } else { errno() };
            (s, r)
        };
        let mut first = [0i32; 5];
        let (s, r) = listener(&p.lo);
        first[0] = r;
        libc::close(s);
        let (s, r) = listener(&p.any);
        first[1] = r;
        // SAFETY: plain data.
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut len = size;
        first[2] =
            if libc::getsockname(s, (&mut got as *mut libc::sockaddr_in).cast(), &mut len) != 0 {
                errno()
            } else if len != size
                || got.sin_family != p.any.sin_family
                || got.sin_port != p.any.sin_port
                || got.sin_addr.s_addr != p.any.sin_addr.s_addr
            {
                -1
            } else {
                0
            };
        let (s2, r) = listener(&p.unpublished);
        first[3] = r;
        libc::close(s2);
        let (s3, r) = listener(&p.busy);
        first[4] = r;
        libc::close(s3);
        let n = std::mem::size_of_val(&first);
        if libc::write(chan, first.as_ptr().cast(), n) != n as isize {
            return 16;
        }
        // The test's client: 4 bytes in, 4 out, and its port as getpeername tells it.
        let mut second = [0i32; 2];
        let mut peer: libc::sockaddr_in = std::mem::zeroed();
        let mut plen = size;
        let c = libc::accept(s, (&mut peer as *mut libc::sockaddr_in).cast(), &mut plen);
        if c < 0 {
            second[0] = errno();
        } else {
            let mut b = [0u8; 4];
            second[0] = if libc::read(c, b.as_mut_ptr().cast(), 4) != 4 || &b != b"ping" {
                -2
            } else if libc::write(c, b"pong".as_ptr().cast(), 4) != 4 {
                -3
            } else {
                0
            };
            let mut p2: libc::sockaddr_in = std::mem::zeroed();
            let mut l2 = size;
            libc::getpeername(c, (&mut p2 as *mut libc::sockaddr_in).cast(), &mut l2);
            second[1] = u16::from_be(p2.sin_port) as i32;
            libc::close(c);
        }
        libc::close(s);
        let n = std::mem::size_of_val(&second);
        if libc::write(chan, second.as_ptr().cast(), n) != n as isize {
            return 17;
        }
        0
    }
}

/// A port driver that only records what it is asked.
#[derive(Default, Clone)]
struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

impl Forwards for Recorder {
    fn take(&self, p: &Published) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push(format!("take {}", p.container_port));
        Ok(())
    }
    fn restore(&self, p: &Published) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push(format!("restore {}", p.container_port));
        Ok(())
    }
}

#[test]
fn a_listener_on_a_published_port_becomes_a_host_listener_on_the_published_address() {
    let free_port = || {
        TcpListener::bind((WORLD, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let host_port = free_port();
    // Someone else holds the second published port's host address.
    let squatter = TcpListener::bind((WORLD, 0)).unwrap();
    let busy_port = squatter.local_addr().unwrap().port();
    let uid = nix_uid();
    let p = PreparedListen {
        uid_map: format!("0 {} 1", uid.0).into_bytes(),
        gid_map: format!("0 {} 1", uid.1).into_bytes(),
        filter: filter_publishing(),
        lo: sockaddr_in(Ipv4Addr::LOCALHOST, 8080),
        any: sockaddr_in(Ipv4Addr::UNSPECIFIED, 8080),
        unpublished: sockaddr_in(Ipv4Addr::UNSPECIFIED, 8081),
        busy: sockaddr_in(Ipv4Addr::UNSPECIFIED, 8082),
    };
    let mut pair = [0 as RawFd; 2];
    // SAFETY: socketpair fills two descriptors.
    assert_eq!(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        },
        0
    );
    // SAFETY: both descriptors are fresh and ours.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    // SAFETY: the child runs `listen_target` (async-signal-safe calls only) and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = listen_target(&p, theirs.as_raw_fd());
        // SAFETY: leave without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(theirs);

    let notify = recv_fd(ours.as_raw_fd()).expect("the target's notify fd");
    let recorder = Recorder::default();
    let published = |container_port, host_port| Published {
        container_port,
        host_ip: Some(WORLD.into()),
        host_port,
    };
    let ports = Arc::new(Ports::new(
        vec![published(8080, host_port), published(8082, busy_port)],
        Box::new(recorder.clone()),
    ));
    let policy = Policy {
        ipv4: true,
        ipv6: true,
        never: vec![],
    };
    let stats = tempfile::NamedTempFile::new().unwrap();
    let svc = Service::new(notify, policy, Stats::reported_to(stats.path()).unwrap())
        .unwrap()
        .publishing(ports);
    let served = std::thread::spawn(move || svc.run());

    let read = |buf: &mut [i32]| {
        // SAFETY: reading into a plain i32 slice.
        unsafe {
            libc::read(
                ours.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                std::mem::size_of_val(buf),
            )
        }
    };
    let mut first = [0i32; 5];
    let n = read(&mut first);
    let exchanged = (n as usize == std::mem::size_of_val(&first)).then(|| {
        // The swapped listener is in this (the world's) netns, on the published address.
        let mut c = std::net::TcpStream::connect((WORLD, host_port)).expect("connect to HP");
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        (b, c.local_addr().unwrap().port())
    });
    let mut second = [0i32; 2];
    let n2 = read(&mut second);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the target failed: status {status:#x}"
    );
    served.join().unwrap().unwrap();
    for (i, case) in LISTEN_CASES.iter().enumerate() {
        assert_eq!(first[i], 0, "{case}: {}", first[i]);
    }
    let (b, client_port) = exchanged.expect("the first batch");
    assert_eq!(&b, b"pong");
    assert_eq!(n2 as usize, std::mem::size_of_val(&second));
    assert_eq!(second[0], 0, "accept, read, write on the swapped listener");
    assert_eq!(
        second[1], client_port as i32,
        "getpeername is the real client"
    );
    assert_eq!(
        *recorder.0.lock().unwrap(),
        ["take 8080", "take 8082", "restore 8082"]
    );
    let line = std::fs::read_to_string(stats.path()).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["bypassed"], 1, "{line}");
    drop(squatter);
}

/// The filter for unconnected UDP: `connect` and `sendto` (every `sendto`: the service leaves
/// those without a destination alone; the real profile does not even trap them).
fn filter_datagrams() -> [libc::sock_filter; 8] {
    let mut f = filter_publishing();
    f[4].k = libc::SYS_sendto as u32;
    f[5].k = libc::SYS_sendto as u32;
    f
}

struct PreparedUdp {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    filter: [libc::sock_filter; 8],
    lo_up: libc::ifreq,
    world: libc::sockaddr_in,
    /// The target's own loopback, where it has a socket of its own.
    inside: libc::sockaddr_in,
    dns: libc::sockaddr_in,
}

const UDP_CASES: &[&str] = &[
    "first sendto to the world (swapped, sent by the service)",
    "the reply reaches the swapped socket",
    "a second sendto to the world, and its reply",
    "sendto to the target's loopback from the swapped socket (back to the normal path)",
    "the target's own socket got it",
    "the world again, now on the normal path (no route here)",
    "a fresh socket to the DNS address (normal path)",
    "another socket swapped at sendto, then connected to the target's loopback",
    "its send there reaches the target's own socket",
    "a socket swapped at sendto, then sendmsg (never trapped) to 127.0.0.1: the twin is pinned to an uplink, the world's loopback is not reached",
];

fn udp_target(p: &PreparedUdp, chan: RawFd) -> i32 {
    let e = enter(&p.uid_map, &p.gid_map, &p.filter, chan);
    if e != 0 {
        return e;
    }
    let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: raw system calls on prepared buffers, in a single-threaded child.
    unsafe {
        let ctl = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if libc::ioctl(ctl, libc::SIOCSIFFLAGS, &p.lo_up) != 0 {
            return 20;
        }
        libc::close(ctl);
        let timeout = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        let udp = || {
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
            s
        };
        let send = |s: RawFd, what: &[u8], to: &libc::sockaddr_in| -> i32 {
            let r = libc::sendto(
                s,
                what.as_ptr().cast(),
                what.len(),
                0,
                (to as *const libc::sockaddr_in).cast(),
                size,
            );
            if r < 0 { errno() } else { r as i32 }
        };
        let recv_is = |s: RawFd, want: &[u8]| -> i32 {
            let mut b = [0u8; 16];
            let r = libc::recv(s, b.as_mut_ptr().cast(), b.len(), 0);
            if r < 0 {
                errno()
            } else if &b[..r as usize] != want {
                -1
            } else {
                0
            }
        };
        let own = udp();
        if libc::bind(own, (&p.inside as *const libc::sockaddr_in).cast(), size) != 0 {
            return 21;
        }
        let mut r = [0i32; 10];
        let s = udp();
        r[0] = send(s, b"one", &p.world);
        r[1] = recv_is(s, b"one");
        r[2] = if send(s, b"two", &p.world) == 3 {
            recv_is(s, b"two")
        } else {
            -2
        };
        r[3] = send(s, b"in", &p.inside);
        r[4] = recv_is(own, b"in");
        r[5] = send(s, b"three", &p.world);
        let t = udp();
        r[6] = send(t, b"dns", &p.dns);
        let u = udp();
        r[7] = if send(u, b"one", &p.world) == 3 && recv_is(u, b"one") == 0 {
            connect_in(u, &p.inside)
        } else {
            -3
        };
        r[8] = if libc::send(u, b"c".as_ptr().cast(), 1, 0) == 1 {
            recv_is(own, b"c")
        } else {
            errno()
        };
        let v = udp();
        r[9] = if send(v, b"one", &p.world) == 3 && recv_is(v, b"one") == 0 {
            let iov = libc::iovec {
                iov_base: b"hole".as_ptr() as *mut libc::c_void,
                iov_len: 4,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = (&p.inside as *const libc::sockaddr_in).cast_mut().cast();
            msg.msg_namelen = size;
            msg.msg_iov = (&iov as *const libc::iovec).cast_mut();
            msg.msg_iovlen = 1;
            // Whatever the kernel answers (ENETUNREACH here: no route leaves the pinned
            // device), the world's loopback must not see the datagram: checked by the test.
            let _ = libc::sendmsg(v, &msg, 0);
            0
        } else {
            -4
        };
        let n = std::mem::size_of_val(&r);
        if libc::write(chan, r.as_ptr().cast(), n) != n as isize {
            return 22;
        }
        0
    }
}

#[test]
fn an_unconnected_udp_socket_is_swapped_at_its_first_sendto_outside_and_still_reaches_inside() {
    // The world's echo server, counting what arrives.
    let echo = std::net::UdpSocket::bind((WORLD, 0)).unwrap();
    let port = echo.local_addr().unwrap().port();
    let got = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 64];
        while let Ok((n, from)) = echo.recv_from(&mut b) {
            g.lock().unwrap().push(b[..n].to_vec());
            let _ = echo.send_to(&b[..n], from);
        }
    });
    // The world's loopback on the port the target uses inside: reached only through a hole.
    let lo = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    lo.set_nonblocking(true).unwrap();
    let inside_port = lo.local_addr().unwrap().port();
    let uid = nix_uid();
    // SAFETY: plain data.
    let mut lo_up: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, c) in b"lo".iter().enumerate() {
        lo_up.ifr_name[i] = *c as libc::c_char;
    }
    lo_up.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as i16;
    let p = PreparedUdp {
        uid_map: format!("0 {} 1", uid.0).into_bytes(),
        gid_map: format!("0 {} 1", uid.1).into_bytes(),
        filter: filter_datagrams(),
        lo_up,
        world: sockaddr_in(WORLD, port),
        inside: sockaddr_in(Ipv4Addr::LOCALHOST, inside_port),
        dns: sockaddr_in(Ipv4Addr::new(10, 0, 2, 3), 53),
    };
    let mut pair = [0 as RawFd; 2];
    // SAFETY: socketpair fills two descriptors.
    assert_eq!(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        },
        0
    );
    // SAFETY: both descriptors are fresh and ours.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    // SAFETY: the child runs `udp_target` (async-signal-safe calls only) and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = udp_target(&p, theirs.as_raw_fd());
        // SAFETY: leave without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(theirs);
    let notify = recv_fd(ours.as_raw_fd()).expect("the target's notify fd");
    let policy = Policy {
        ipv4: true,
        ipv6: true,
        never: vec!["10.0.2.0/24".parse().unwrap()],
    };
    let stats = tempfile::NamedTempFile::new().unwrap();
    let svc = Service::new(notify, policy, Stats::reported_to(stats.path()).unwrap()).unwrap();
    let served = std::thread::spawn(move || svc.run());
    let mut r = [0i32; 10];
    // SAFETY: reading into a plain i32 array.
    let n = unsafe {
        libc::read(
            ours.as_raw_fd(),
            r.as_mut_ptr().cast(),
            std::mem::size_of_val(&r),
        )
    };
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the target failed: status {status:#x}"
    );
    served.join().unwrap().unwrap();
    assert_eq!(n as usize, std::mem::size_of_val(&r));
    let want = [3, 0, 0, 2, 0, libc::ENETUNREACH, libc::ENETUNREACH, 0, 0, 0];
    for (i, case) in UDP_CASES.iter().enumerate() {
        assert_eq!(r[i], want[i], "{case}: got {}, want {}", r[i], want[i]);
    }
    assert_eq!(
        *got.lock().unwrap(),
        [
            b"one".to_vec(),
            b"two".to_vec(),
            b"one".to_vec(),
            b"one".to_vec()
        ]
    );
    let mut b = [0u8; 16];
    assert!(
        lo.recv_from(&mut b).is_err(),
        "the world's loopback was reached"
    );
    let line = std::fs::read_to_string(stats.path()).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["bypassed"], 3, "{line}");
}
