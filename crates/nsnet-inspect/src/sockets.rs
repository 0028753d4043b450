//! Listening sockets of a network namespace, from its `/proc/net/{tcp,tcp6,udp,udp6}`, and
//! the processes holding them (a socket's inode in their descriptor tables).
//!
//! `/proc/PID/net/…` shows the namespace PID is in, so a readable process inside serves;
//! a namespace with none (held only by a bind mount) is read through the entering helper,
//! which opens `/proc/thread-self/net/tcp` after joining it ([`crate::enter::read_in`]).
//! Addresses are printed by the kernel as native-endian 32-bit words in hex.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;

use crate::namespaces::Snapshot;
use crate::nsfs::{NsId, NsType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

impl Listener {
    /// Whether a connection to `dst:port` lands on it (a wildcard listener takes every
    /// address; an IPv6 wildcard takes IPv4 too, as dual-stack sockets do by default).
    pub fn accepts(&self, dst: IpAddr, port: u16) -> bool {
        if self.port != port {
            return false;
        }
        match (self.addr, dst) {
            (a, d) if a == d => true,
            (IpAddr::V4(a), IpAddr::V4(_)) => a.is_unspecified(),
            (IpAddr::V6(a), _) if a.is_unspecified() => true,
            (IpAddr::V6(a), IpAddr::V4(d)) => a.to_ipv4_mapped() == Some(d),
            _ => false,
        }
    }
}

fn hex_addr(s: &str) -> Option<IpAddr> {
    match s.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(s, 16).ok()?.to_ne_bytes(),
        ))),
        32 => {
            let mut b = [0u8; 16];
            for k in 0..4 {
                let w = u32::from_str_radix(&s[k * 8..k * 8 + 8], 16).ok()?;
                b[k * 4..k * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// The listening (TCP, state 0A) or bound (UDP, state 07) sockets in one table's text.
pub fn parse(text: &str, proto: Proto) -> Vec<Listener> {
    let want = match proto {
        Proto::Tcp => "0A",
        Proto::Udp => "07",
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3)? != &want {
                return None;
            }
            let (a, p) = f.get(1)?.split_once(':')?;
            Some(Listener {
                addr: hex_addr(a)?,
                port: u16::from_str_radix(p, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// Every listener of `proto` in the netns `ino`.
pub fn listeners(snap: &Snapshot, ino: u64, proto: Proto) -> Result<Vec<Listener>, String> {
    let files = match proto {
        Proto::Tcp => ["tcp", "tcp6"],
        Proto::Udp => ["udp", "udp6"],
    };
    let inside = snap
        .scan
        .procs
        .iter()
        .find(|p| !p.unreadable && p.ns.get(&NsType::Net) == Some(&ino));
    let mut out = Vec::new();
    for f in files {
        let text = match inside
            .and_then(|p| std::fs::read_to_string(format!("/proc/{}/net/{f}", p.pid)).ok())
        {
            Some(t) => t,
            None => {
                let id = NsId {
                    kind: NsType::Net,
                    inode: ino,
                };
                let n = snap.get(id).ok_or_else(|| format!("{id} is gone"))?;
                let fd = n.open().map_err(|e| format!("cannot open {id}: {e}"))?;
                match crate::enter::read_in(fd.as_fd(), &format!("/proc/thread-self/net/{f}")) {
                    Ok(t) => t,
                    // A kernel without IPv6 has no tcp6.
                    Err(_) if f.ends_with('6') => continue,
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        out.extend(parse(&text, proto));
    }
    Ok(out)
}

/// The processes holding the socket `inode`: `(pid, comm)`.
pub fn holders(snap: &Snapshot, inode: u64) -> Vec<(i32, String)> {
    snap.scan
        .procs
        .iter()
        .filter(|p| p.sockets.iter().any(|(_, i)| *i == inode))
        .map(|p| (p.pid, p.comm.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_tables() {
        // A real /proc/net/tcp line (127.0.0.1:18096 listening) and an established one.
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:46B0 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 123456 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:46B0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1001        0 123457 1\n";
        let l = parse(v4, Proto::Tcp);
        assert_eq!(
            l,
            [Listener {
                addr: "127.0.0.1".parse().unwrap(),
                port: 18096,
                inode: 123456
            }]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1\n   1: 00000000000000000000000001000000:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 998 1\n";
        let l = parse(v6, Proto::Tcp);
        assert_eq!(l[0].addr, "::".parse::<IpAddr>().unwrap());
        assert_eq!(l[1].addr, "::1".parse::<IpAddr>().unwrap());
        assert!(l[0].accepts("10.4.0.2".parse().unwrap(), 80));
        assert!(!l[1].accepts("127.0.0.1".parse().unwrap(), 81));
    }

    #[test]
    fn sees_a_listener_of_its_own_namespace_and_who_holds_it() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let snap = crate::discover();
        let own = crate::nsfs::open(std::path::Path::new("/proc/self/ns/net")).unwrap();
        let ino = crate::nsfs::inode(own.as_fd()).unwrap();
        let found = listeners(&snap, ino, Proto::Tcp).unwrap();
        let mine = found
            .iter()
            .find(|x| x.accepts("127.0.0.1".parse().unwrap(), port))
            .expect("our listener");
        let who = holders(&snap, mine.inode);
        assert_eq!(who.len(), 1, "{who:?}");
        assert_eq!(who[0].0, std::process::id() as i32);
    }
}
