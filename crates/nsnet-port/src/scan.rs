//! Which ports are bound in a network namespace, read as pasta reads them for `-t/-u auto`:
//! the sockets in the listening state of `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! A `/proc/net` file shows the network namespace of the task that opened it, for as long as
//! it stays open, so the four files are opened once (inside the namespace, by a short-lived
//! thread that joins it) and re-read at every scan with `pread` from offset 0 — which lets a
//! process that later hides its file system (pasta's confinement) keep scanning.

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

/// The kernel's socket states (`include/net/tcp_states.h`): TCP's `LISTEN`, and `CLOSE`,
/// which is what a bound, unconnected UDP socket reports.
const TCP_LISTEN: u8 = 0x0a;
const UDP_BOUND: u8 = 0x07;

/// A set of ports, one bit each.
#[derive(Clone, PartialEq, Eq)]
pub struct PortMap(Box<[u64; 1024]>);

impl Default for PortMap {
    fn default() -> Self {
        PortMap(Box::new([0; 1024]))
    }
}

impl std::fmt::Debug for PortMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl PortMap {
    pub fn set(&mut self, port: u16) {
        self.0[port as usize / 64] |= 1 << (port % 64);
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0[port as usize / 64] & (1 << (port % 64)) != 0
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=u16::MAX).filter(|p| self.contains(*p))
    }
}

/// The socket tables of one network namespace.
pub struct PortScan {
    tcp: Vec<File>,
    udp: Vec<File>,
}

impl PortScan {
    /// The tables of the calling thread's network namespace (a table the kernel does not
    /// have — no IPv6 — is left out).
    pub fn open_here() -> PortScan {
        // /proc/net is /proc/self/net: the namespace of the thread-group leader, not of a
        // thread that joined another one. thread-self is the caller's own.
        let open = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| File::open(format!("/proc/thread-self/net/{n}")).ok())
                .collect()
        };
        PortScan {
            tcp: open(&["tcp", "tcp6"]),
            udp: open(&["udp", "udp6"]),
        }
    }

    /// The tables of the network namespace `netns` refers to, opened by a thread that joins
    /// it (setns needs CAP_SYS_ADMIN over the namespace's user namespace) and then ends.
    pub fn open_in(netns: BorrowedFd<'_>) -> std::io::Result<PortScan> {
        nsnet_ns::netns::run_in(netns, PortScan::open_here)
    }

    /// Ports with a TCP socket listening.
    pub fn tcp(&self) -> PortMap {
        let mut map = PortMap::default();
        for f in &self.tcp {
            scan(f, TCP_LISTEN, &mut map);
        }
        map
    }

    /// Ports with a bound UDP socket, and — as pasta does, for protocols such as iperf3's
    /// that announce a UDP port over a TCP control connection on the same number — ports
    /// with a TCP socket listening.
    pub fn udp(&self) -> PortMap {
        let mut map = self.tcp();
        for f in &self.udp {
            scan(f, UDP_BOUND, &mut map);
        }
        map
    }
}

/// Reads a whole table from its start.
fn read_all(f: &File) -> String {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match f.read_at(&mut chunk, buf.len() as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn scan(f: &File, state: u8, map: &mut PortMap) {
    parse_table(&read_all(f), state, map);
}

/// `sl local_address rem_address st ...`: the local port is the hex after the local
/// address's `:`, the state the fourth column.
fn parse_table(text: &str, state: u8, map: &mut PortMap) {
    for line in text.lines().skip(1) {
        let mut cols = line.split_whitespace();
        let (Some(_), Some(local), Some(_), Some(st)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        let port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        if let (Some(port), Ok(st)) = (port, u8::from_str_radix(st, 16))
            && st == state
        {
            map.set(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sockets_in_the_state_asked_for_count() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1
";
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
";
        let mut m = PortMap::default();
        parse_table(tcp, TCP_LISTEN, &mut m);
        parse_table(tcp6, TCP_LISTEN, &mut m);
        // 8080 listens, 54321 is a connected client socket, 22 listens on IPv6.
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![22, 8080]);
        let mut u = PortMap::default();
        parse_table(
            "  sl  local_address rem_address   st\n 1: 00000000:0035 00000000:0000 07 x\n 2: 0100007F:0036 0100007F:1000 01 x\n",
            UDP_BOUND,
            &mut u,
        );
        assert_eq!(u.iter().collect::<Vec<_>>(), vec![53]);
    }

    #[test]
    fn a_listener_of_this_namespace_is_seen_and_udp_includes_tcp() {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = PortScan::open_here();
        let tp = t.local_addr().unwrap().port();
        let up = u.local_addr().unwrap().port();
        assert!(s.tcp().contains(tp));
        assert!(!s.tcp().contains(up) || tp == up);
        assert!(s.udp().contains(up) && s.udp().contains(tp));
        drop(t);
        // Re-read from the start: the closed listener is gone.
        assert!(!s.tcp().contains(tp));
    }
}
