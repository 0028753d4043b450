//! pasta's forwarding-table protocol on its `-c SOCKET` (pesto protocol version 2, passt
//! 2026_07_16's `conf.c`, `pesto.c`, `pesto.h`, `fwd_rule.c`, `serialise.c`): one client at a
//! time over a unix stream socket.
//!
//! ```text
//!  server → client  struct pesto_hello (pesto.h, packed, 20 bytes):
//!                     magic[8] "basil:s\0", version u32, pif_name_size u32 (128),
//!                     ifnamsiz u32 (16)
//!                   per table (conf_send_rules): pif u8, then struct pesto_pif_info
//!                     (pesto.h, packed, 136 bytes): name[128] NUL-padded, caps u32, count u32;
//!                     then `count` rules
//!                   pif 0 (PIF_NONE): end of tables
//!  client → server  nothing (it only looked: the server reads EOF and closes), or the whole
//!                   new state (pesto.c send_conf): per table pif u8, count u32, rules; pif 0:
//!                   end. The server (conf_recv_rules) checks every rule against its table's
//!                   capabilities and only then switches to the new tables; there is no reply.
//!  rule (56 bytes)  struct fwd_rule (fwd_rule.h), sent as its raw memory by fwd_rule_write()
//!                   with only the ports byte-swapped:
//!                     0  addr[16]    union inany_addr: IPv6, or IPv4 as ::ffff:a.b.c.d;
//!                                    `::` with FWD_DUAL_STACK_ANY for "every address"
//!                    16  taddr[16]   union inany_addr, `::` = no target address
//!                    32  ifname[16]  NUL-terminated (byte 15 must be 0)
//!                    48  first u16, 50 last u16, 52 to u16   (htons)
//!                    54  proto u8 (6 TCP, 17 UDP), 55 flags u8 (DUAL_STACK_ANY 1, WEAK 2,
//!                                    SCAN 4)
//! ```
//!
//! Integers are big-endian (serialise.c's `write_u32` is `htobe32`, the structs' fields are
//! `htonl`/`htons`). The struct has no padding: `inany_addr` is 4-aligned and every field
//! ends on its own alignment, so it is 56 bytes on every Linux ABI. The position of `taddr`
//! (between `addr` and `ifname`) is the order of version 2's `fwd_rule_range_except()`
//! initialiser; version 1's struct was the same without it. The [`Backend`] is whoever owns
//! the listeners; this module owns only the bytes.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use super::spec::{Rule, Table};

pub const MAGIC: &[u8; 8] = b"basil:s\0";
pub const VERSION: u32 = 2;
pub const PIF_NAME_SIZE: u32 = 128;
pub const IFNAMSIZ: u32 = 16;
pub const RULE_LEN: usize = 56;
/// The most tables pesto holds (pesto.c's `MAX_PIFS`).
pub const MAX_PIFS: usize = 3;
/// pasta's interface ids: the host side (inbound `-t/-u`) and the namespace's loopback
/// (`-T/-U`, "splice").
pub const PIF_HOST: u8 = 1;
pub const PIF_SPLICE: u8 = 3;

/// One table as the protocol names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PifTable {
    pub pif: u8,
    pub name: String,
    pub table: Table,
}

/// The owner of the forwards behind the socket.
pub trait Backend {
    /// The tables as they are now.
    fn tables(&self) -> Vec<PifTable>;
    /// Makes `new` (already validated against each table's capabilities) the forwarding
    /// state; an error leaves the old state in place and is logged by the server.
    fn replace(&mut self, new: Vec<PifTable>) -> Result<(), String>;
}

fn addr_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn addr_from(b: &[u8]) -> IpAddr {
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(b).expect("16 bytes"));
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

pub fn encode_rule(r: &Rule) -> [u8; RULE_LEN] {
    let mut b = [0u8; RULE_LEN];
    b[0..16].copy_from_slice(&addr_bytes(r.addr));
    b[16..32].copy_from_slice(&addr_bytes(r.taddr));
    let name = r.ifname.as_bytes();
    let n = name.len().min(15);
    b[32..32 + n].copy_from_slice(&name[..n]);
    b[48..50].copy_from_slice(&r.first.to_be_bytes());
    b[50..52].copy_from_slice(&r.last.to_be_bytes());
    b[52..54].copy_from_slice(&r.to.to_be_bytes());
    b[54] = r.proto;
    b[55] = r.flags;
    b
}

/// Decodes a rule; `None` when the interface name's last byte is not NUL (pasta's
/// `conf_recv_rules` check; the name is what precedes the first NUL).
pub fn decode_rule(b: &[u8; RULE_LEN]) -> Option<Rule> {
    let name = &b[32..48];
    if name[15] != 0 {
        return None;
    }
    let end = name.iter().position(|c| *c == 0).unwrap_or(15);
    Some(Rule {
        addr: addr_from(&b[0..16]),
        taddr: addr_from(&b[16..32]),
        ifname: String::from_utf8_lossy(&name[..end]).into_owned(),
        first: u16::from_be_bytes([b[48], b[49]]),
        last: u16::from_be_bytes([b[50], b[51]]),
        to: u16::from_be_bytes([b[52], b[53]]),
        proto: b[54],
        flags: b[55],
    })
}

fn hello() -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_be_bytes());
    h[12..16].copy_from_slice(&PIF_NAME_SIZE.to_be_bytes());
    h[16..20].copy_from_slice(&IFNAMSIZ.to_be_bytes());
    h
}

fn write_tables(w: &mut impl Write, tables: &[PifTable]) -> io::Result<()> {
    let mut out = Vec::new();
    for t in tables {
        out.push(t.pif);
        let mut name = [0u8; PIF_NAME_SIZE as usize];
        let n = t.name.len().min(PIF_NAME_SIZE as usize - 1);
        name[..n].copy_from_slice(&t.name.as_bytes()[..n]);
        out.extend_from_slice(&name);
        out.extend_from_slice(&t.table.caps.to_be_bytes());
        out.extend_from_slice(&(t.table.rules.len() as u32).to_be_bytes());
        for r in &t.table.rules {
            out.extend_from_slice(&encode_rule(r));
        }
    }
    out.push(0);
    w.write_all(&out)
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_rule(r: &mut impl Read) -> io::Result<Rule> {
    let mut b = [0u8; RULE_LEN];
    r.read_exact(&mut b)?;
    decode_rule(&b).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "Interface name was not NULL terminated",
        )
    })
}

/// A client's update, checked against the tables it may touch (pasta's `conf_recv_rules`).
/// `Ok(None)`: the client closed without sending anything.
fn read_update(r: &mut impl Read, current: &[PifTable]) -> Result<Option<Vec<PifTable>>, String> {
    let mut new: Vec<PifTable> = current
        .iter()
        .map(|t| PifTable {
            table: Table::new(t.table.caps),
            ..t.clone()
        })
        .collect();
    let mut first = true;
    loop {
        let pif = match read_u8(r) {
            Ok(p) => p,
            Err(e) if first && e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(format!("Error reading from control socket: {e}")),
        };
        first = false;
        if pif == 0 {
            return Ok(Some(new));
        }
        let t = new
            .iter_mut()
            .find(|t| t.pif == pif)
            .ok_or("Received rules for non-existent table")?;
        let count = read_u32(r).map_err(|e| format!("Error reading from control socket: {e}"))?;
        if count as usize > super::spec::MAX_RULES {
            return Err(format!(
                "Received {count} rules (maximum {})",
                super::spec::MAX_RULES
            ));
        }
        for _ in 0..count {
            let rule = read_rule(r).map_err(|e| e.to_string())?;
            t.table.add(rule).map_err(|e| e.0)?;
        }
    }
}

/// The listening socket of `-c PATH`.
pub struct Server {
    listener: UnixListener,
}

impl Server {
    /// Binds `path` (pasta: `Couldn't open control socket PATH: …` when it cannot). A socket
    /// file nobody listens on any more (its pasta was killed and could not remove it) is
    /// replaced; one that a running pasta answers on is not.
    pub fn bind(path: &Path) -> Result<Server, String> {
        let fail = |e: io::Error| format!("Couldn't open control socket {}: {e}", path.display());
        match UnixListener::bind(path) {
            Ok(listener) => Ok(Server { listener }),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => match UnixStream::connect(path) {
                Err(c) if c.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(fail)?;
                    UnixListener::bind(path)
                        .map(|listener| Server { listener })
                        .map_err(fail)
                }
                _ => Err(fail(e)),
            },
            Err(e) => Err(fail(e)),
        }
    }

    /// Serves clients one after another, forever (until accept fails).
    pub fn serve(self, backend: &mut impl Backend) {
        for conn in self.listener.incoming() {
            let Ok(mut s) = conn else { return };
            if let Err(e) = handle(&mut s, backend) {
                tracing::warn!("configuration client: {e}");
            }
        }
    }
}

/// One client: hello and tables out, then its update (if any) in and applied.
pub fn handle(s: &mut UnixStream, backend: &mut impl Backend) -> Result<(), String> {
    let current = backend.tables();
    s.write_all(&hello())
        .and_then(|()| write_tables(s, &current))
        .map_err(|e| format!("Error writing configuration protocol hello: {e}"))?;
    match read_update(s, &current)? {
        None => Ok(()),
        Some(new) => backend.replace(new),
    }
}

/// The client side (`pesto`): connected, greeted, and holding the server's tables.
pub struct Client {
    stream: UnixStream,
    pub tables: Vec<PifTable>,
}

/// pesto's failures, in its words.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Failed to connect to {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("Couldn't read server greeting: {0}")]
    Greeting(#[source] io::Error),
    #[error("Bad magic number from server")]
    Magic,
    #[error("Unknown server protocol version {0} > {VERSION}")]
    Version(u32),
    #[error("Unsupported experimental server protocol")]
    Experimental,
    #[error("Server has unexpected pif name size ({0} not {PIF_NAME_SIZE})")]
    PifNameSize(u32),
    #[error("Server has unexpected IFNAMSIZ ({0} not {IFNAMSIZ})")]
    Ifnamsiz(u32),
    #[error("Error reading from control socket")]
    Read,
    #[error("Too many forwarding rules")]
    TooManyRules,
    #[error("passt has more pifs than pesto can manage (max {MAX_PIFS})")]
    TooManyPifs,
    #[error("Received duplicate interface identifier")]
    DuplicatePif,
    #[error("Received duplicate interface name")]
    DuplicateName,
    #[error("Interface name was not NULL terminated")]
    Unterminated,
    #[error("Error writing to control socket: {0}")]
    Write(#[source] io::Error),
    /// The server did not close the connection after an update (see [`Client::send_and_wait`]).
    #[error("Error waiting for the server to apply the configuration: {0}")]
    Wait(#[source] io::Error),
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        Client::connect_timeout(path, None)
    }

    /// [`Client::connect`] with every later read and write on the connection bounded by
    /// `timeout`: pasta serves one client at a time, so a caller that must not hang (a port
    /// driver holding its lock) gets an error instead of waiting forever on a stuck server.
    pub fn connect_timeout(path: &Path, timeout: Option<Duration>) -> Result<Client, ClientError> {
        let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        let bounded = stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout));
        if let Err(source) = bounded {
            return Err(ClientError::Connect {
                path: path.display().to_string(),
                source,
            });
        }
        let mut h = [0u8; 20];
        stream.read_exact(&mut h).map_err(|e| {
            // pesto's read_all_buf() reports a short read as ENODATA.
            ClientError::Greeting(if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::from_raw_os_error(61)
            } else {
                e
            })
        })?;
        if &h[..8] != MAGIC {
            return Err(ClientError::Magic);
        }
        let word = |i: usize| u32::from_be_bytes(h[i..i + 4].try_into().expect("4 bytes"));
        match word(8) {
            0 => return Err(ClientError::Experimental),
            v if v > VERSION => return Err(ClientError::Version(v)),
            _ => {}
        }
        if word(12) != PIF_NAME_SIZE {
            return Err(ClientError::PifNameSize(word(12)));
        }
        if word(16) != IFNAMSIZ {
            return Err(ClientError::Ifnamsiz(word(16)));
        }
        let mut tables = Vec::new();
        loop {
            let pif = read_u8(&mut stream).map_err(|_| ClientError::Read)?;
            if pif == 0 {
                break;
            }
            if tables.len() >= MAX_PIFS {
                return Err(ClientError::TooManyPifs);
            }
            let mut name = [0u8; PIF_NAME_SIZE as usize];
            stream
                .read_exact(&mut name)
                .map_err(|_| ClientError::Read)?;
            if name[name.len() - 1] != 0 {
                return Err(ClientError::Unterminated);
            }
            let end = name.iter().position(|c| *c == 0).unwrap_or(0);
            let name = String::from_utf8_lossy(&name[..end]).into_owned();
            let caps = read_u32(&mut stream).map_err(|_| ClientError::Read)?;
            let count = read_u32(&mut stream).map_err(|_| ClientError::Read)?;
            if count as usize > super::spec::MAX_RULES {
                return Err(ClientError::TooManyRules);
            }
            if tables.iter().any(|t: &PifTable| t.pif == pif) {
                return Err(ClientError::DuplicatePif);
            }
            if tables.iter().any(|t: &PifTable| t.name == name) {
                return Err(ClientError::DuplicateName);
            }
            // pesto reads the rules as they come, without validating them, so that it can show
            // whatever the server holds; only an unterminated name is refused here because the
            // rule could not be shown.
            let mut table = Table::new(caps);
            for _ in 0..count {
                let mut b = [0u8; RULE_LEN];
                stream.read_exact(&mut b).map_err(|_| ClientError::Read)?;
                table
                    .rules
                    .push(decode_rule(&b).ok_or(ClientError::Unterminated)?);
            }
            tables.push(PifTable { pif, name, table });
        }
        Ok(Client { stream, tables })
    }

    /// The update that makes `self.tables` the server's state (pesto.c's `send_conf`).
    fn update_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for t in &self.tables {
            out.push(t.pif);
            out.extend_from_slice(&(t.table.rules.len() as u32).to_be_bytes());
            for r in &t.table.rules {
                out.extend_from_slice(&encode_rule(r));
            }
        }
        out.push(0);
        out
    }

    /// Sends `self.tables` as the new state and closes (what pesto does: it does not wait).
    pub fn send(mut self) -> Result<(), ClientError> {
        let out = self.update_bytes();
        self.stream.write_all(&out).map_err(ClientError::Write)?;
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        Ok(())
    }

    /// Sends `self.tables` as the new state, then waits for the server to close the
    /// connection. The protocol has no reply, but pasta's `conf_handler()` closes the client's
    /// connection only after `conf_recv_rules()` and `fwd_listen_switch()` (and nsnet's
    /// server likewise after its backend's `replace`), so once this returns the update has been
    /// applied or refused, never still on its way. Whether it was applied is for the caller to
    /// read back.
    pub fn send_and_wait(mut self) -> Result<(), ClientError> {
        let out = self.update_bytes();
        self.stream.write_all(&out).map_err(ClientError::Write)?;
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        // The server sends nothing more; whatever comes before the EOF is not ours to read.
        let mut rest = Vec::new();
        self.stream
            .read_to_end(&mut rest)
            .map_err(ClientError::Wait)?;
        Ok(())
    }

    /// Closes without changing anything.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::*;
    use super::*;

    const CAPS: u32 = CAP_IPV4 | CAP_IPV6 | CAP_TCP | CAP_UDP | CAP_IFNAME;

    struct Mem(Vec<PifTable>);
    impl Backend for Mem {
        fn tables(&self) -> Vec<PifTable> {
            self.0.clone()
        }
        fn replace(&mut self, new: Vec<PifTable>) -> Result<(), String> {
            self.0 = new;
            Ok(())
        }
    }

    fn tables() -> Vec<PifTable> {
        let p = Parser {
            ephemeral: (49152, 65535),
        };
        let mut host = Table::new(CAPS);
        p.parse('t', false, "0.0.0.0/5000:192.0.2.5/6000", &mut host)
            .unwrap();
        p.parse('u', false, "%lo/53", &mut host).unwrap();
        vec![
            PifTable {
                pif: PIF_HOST,
                name: "HOST".into(),
                table: host,
            },
            PifTable {
                pif: PIF_SPLICE,
                name: "SPLICE".into(),
                table: Table::new(CAPS),
            },
        ]
    }

    #[test]
    fn rules_round_trip_through_their_bytes() {
        for t in tables() {
            for r in &t.table.rules {
                let b = encode_rule(r);
                assert_eq!(decode_rule(&b).as_ref(), Some(r));
            }
        }
        let mut b = encode_rule(&tables()[0].table.rules[0]);
        // 0.0.0.0 as ::ffff:0.0.0.0, then the target, then the ports, big-endian.
        assert_eq!(
            &b[..16],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(&b[28..32], &[192, 0, 2, 5]);
        assert_eq!(&b[48..56], &[0x13, 0x88, 0x13, 0x88, 0x17, 0x70, 6, 0]);
        b[32..48].copy_from_slice(&[b'x'; 16]);
        assert_eq!(decode_rule(&b), None, "an unterminated name is refused");
    }

    #[test]
    fn a_client_reads_the_tables_and_replaces_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pesto.sock");
        let server = Server::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let mut backend = Mem(tables());
            for _ in 0..3 {
                let (mut s, _) = server.listener.accept().unwrap();
                let r = handle(&mut s, &mut backend);
                if r.is_err() {
                    return (backend.0, r);
                }
            }
            (backend.0, Ok(()))
        });
        // 1: look only.
        let c = Client::connect(&path).unwrap();
        assert_eq!(c.tables, tables());
        c.close();
        // 2: delete the UDP rule, add one.
        let mut c = Client::connect(&path).unwrap();
        let p = Parser {
            ephemeral: (49152, 65535),
        };
        p.parse('u', true, "%lo/53", &mut c.tables[0].table)
            .unwrap();
        p.parse('t', false, "[::]/8080", &mut c.tables[0].table)
            .unwrap();
        c.send().unwrap();
        // 3: a rule the table's capabilities refuse is not applied.
        let mut c = Client::connect(&path).unwrap();
        c.tables[1].table.rules.push(Rule {
            addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            taddr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ifname: String::new(),
            first: 1,
            last: 1,
            to: 1,
            proto: 132,
            flags: 0,
        });
        c.send().unwrap();
        let (state, r) = t.join().unwrap();
        assert_eq!(
            r,
            Err("Unsupported protocol 0x84 (<unknown protocol>) for forwarding rule".into())
        );
        let rules: Vec<String> = state[0].table.rules.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rules,
            [
                "TCP [0.0.0.0]:5000  =>  192.0.2.5:6000 ",
                "TCP [::]:8080  =>  8080 "
            ]
        );
    }

    /// `send_and_wait` returns only once the server has handled the update (the backend's
    /// `replace` has run), and a server that never closes fails it within the timeout.
    #[test]
    fn send_and_wait_returns_once_the_server_is_done() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        struct Slow(Vec<PifTable>, Arc<AtomicBool>);
        impl Backend for Slow {
            fn tables(&self) -> Vec<PifTable> {
                self.0.clone()
            }
            fn replace(&mut self, new: Vec<PifTable>) -> Result<(), String> {
                std::thread::sleep(std::time::Duration::from_millis(300));
                self.0 = new;
                self.1.store(true, Ordering::SeqCst);
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        let server = Server::bind(&path).unwrap();
        let applied = Arc::new(AtomicBool::new(false));
        let seen = applied.clone();
        let t = std::thread::spawn(move || {
            let (mut s, _) = server.listener.accept().unwrap();
            handle(&mut s, &mut Slow(tables(), seen)).unwrap();
        });
        let mut c = Client::connect_timeout(&path, Some(Duration::from_secs(10))).unwrap();
        c.tables[0].table.rules.clear();
        c.send_and_wait().unwrap();
        assert!(
            applied.load(Ordering::SeqCst),
            "returned before the update was applied"
        );
        t.join().unwrap();
        // A server that greets, lists no tables, and then neither reads nor closes.
        let stuck = dir.path().join("stuck.sock");
        let l = UnixListener::bind(&stuck).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut h = hello().to_vec();
            h.push(0);
            s.write_all(&h).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(3));
        });
        let c = Client::connect_timeout(&stuck, Some(Duration::from_millis(300))).unwrap();
        let t0 = std::time::Instant::now();
        let e = c.send_and_wait().unwrap_err();
        assert!(matches!(e, ClientError::Wait(_)), "{e}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "bounded by the timeout"
        );
        t.join().unwrap();
    }

    #[test]
    fn a_wrong_greeting_is_refused_in_pestos_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.sock");
        let l = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut h = hello();
            h[8..12].copy_from_slice(&3u32.to_be_bytes());
            s.write_all(&h).unwrap();
        });
        let e = Client::connect(&path).err().unwrap();
        assert_eq!(e.to_string(), "Unknown server protocol version 3 > 2");
        t.join().unwrap();
        let e = Client::connect(&dir.path().join("none")).err().unwrap();
        assert!(e.to_string().starts_with("Failed to connect to "), "{e}");
    }

    // Byte vectors written out by hand from passt's structs (not through this module's
    // encoder), so that a change of field order, size or byte order fails here:
    // `struct pesto_hello` and `struct pesto_pif_info` (pesto.h, packed), `struct fwd_rule`
    // (fwd_rule.h: addr[16] taddr[16] ifname[16] first last to (htons) proto flags), and the
    // framing of conf.c's conf_send_rules()/conf_recv_rules() and pesto.c's send_conf().
    const HELLO: [u8; 20] = [
        b'b', b'a', b's', b'i', b'l', b':', b's', 0, // magic[8]
        0, 0, 0, 2, // version
        0, 0, 0, 128, // pif_name_size
        0, 0, 0, 16, // ifnamsiz
    ];

    /// `-t 0.0.0.0/5000:192.0.2.5/6000` as struct fwd_rule.
    fn rule_v4_target() -> Vec<u8> {
        let mut b = vec![0u8; 56];
        b[10] = 0xff; // addr ::ffff:0.0.0.0 (inany_any4)
        b[11] = 0xff;
        b[26] = 0xff; // taddr ::ffff:192.0.2.5
        b[27] = 0xff;
        b[28..32].copy_from_slice(&[192, 0, 2, 5]);
        // ifname[16] all zero
        b[48..50].copy_from_slice(&[0x13, 0x88]); // first 5000
        b[50..52].copy_from_slice(&[0x13, 0x88]); // last 5000
        b[52..54].copy_from_slice(&[0x17, 0x70]); // to 6000
        b[54] = 6; // IPPROTO_TCP
        b[55] = 0; // no flags
        b
    }

    /// `-u [::1]%lo/53-54:5353-5354` as struct fwd_rule.
    fn rule_v6_ifname() -> (Rule, Vec<u8>) {
        let r = Rule {
            addr: "::1".parse().unwrap(),
            taddr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ifname: "lo".into(),
            first: 53,
            last: 54,
            to: 5353,
            proto: PROTO_UDP,
            flags: FLAG_WEAK,
        };
        let mut b = vec![0u8; 56];
        b[15] = 1; // ::1
        b[32] = b'l';
        b[33] = b'o';
        b[48..56].copy_from_slice(&[0, 53, 0, 54, 0x14, 0xe9, 17, 2]);
        (r, b)
    }

    fn pif_info(pif: u8, name: &str, caps: u32, count: u32) -> Vec<u8> {
        let mut b = vec![pif];
        let mut n = [0u8; 128];
        n[..name.len()].copy_from_slice(name.as_bytes());
        b.extend_from_slice(&n);
        b.extend_from_slice(&caps.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b
    }

    #[test]
    fn rule_bytes_are_struct_fwd_rule() {
        let host = &tables()[0].table.rules[0];
        assert_eq!(encode_rule(host).to_vec(), rule_v4_target());
        let (r, b) = rule_v6_ifname();
        assert_eq!(encode_rule(&r).to_vec(), b);
        assert_eq!(decode_rule(&b.clone().try_into().unwrap()), Some(r));
        // `-t 8080` with no address: `::` and FWD_DUAL_STACK_ANY, ports 0x1f90.
        let p = Parser {
            ephemeral: (49152, 65535),
        };
        let mut t = Table::new(CAPS);
        p.parse('t', false, "8080", &mut t).unwrap();
        let mut want = [0u8; 56];
        want[48..56].copy_from_slice(&[0x1f, 0x90, 0x1f, 0x90, 0x1f, 0x90, 6, 1]);
        assert_eq!(encode_rule(&t.rules[0]), want);
        // pasta refuses a name whose last byte is not NUL, even after an earlier NUL.
        let mut bad = b.clone();
        bad[47] = b'x';
        assert_eq!(decode_rule(&bad.try_into().unwrap()), None);
    }

    #[test]
    fn server_speaks_conf_send_rules_and_reads_send_conf() {
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut backend = Mem(tables());
            let r = handle(&mut ours, &mut backend);
            (backend.0, r)
        });
        // What the server sends, as pesto's read_pif_conf() expects it.
        let mut want = HELLO.to_vec();
        want.extend(pif_info(1, "HOST", CAPS, 2));
        want.extend(rule_v4_target());
        let mut got = vec![0u8; want.len()];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(got, want);
        // The second HOST rule (`%lo/53`) comes next; then SPLICE, empty; then PIF_NONE.
        let mut second = [0u8; 56];
        theirs.read_exact(&mut second).unwrap();
        assert_eq!(&second[32..35], b"lo\0");
        assert_eq!(&second[48..55], &[0, 53, 0, 53, 0, 53, 17]);
        let mut rest = vec![0u8; 137 + 1];
        theirs.read_exact(&mut rest).unwrap();
        let mut tail = pif_info(3, "SPLICE", CAPS, 0);
        tail.push(0);
        assert_eq!(rest, tail);
        // A client's update, as pesto's send_conf() writes it: HOST gets one IPv6 UDP rule,
        // SPLICE nothing, then PIF_NONE.
        let (r, b) = rule_v6_ifname();
        let mut update = vec![1, 0, 0, 0, 1];
        update.extend(b);
        update.extend([3, 0, 0, 0, 0, 0]);
        theirs.write_all(&update).unwrap();
        let (state, res) = t.join().unwrap();
        res.unwrap();
        assert_eq!(state[0].table.rules, vec![r]);
        assert!(state[1].table.rules.is_empty());
    }

    #[test]
    fn client_reads_conf_send_rules_and_writes_send_conf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let l = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut out = HELLO.to_vec();
            out.extend(pif_info(1, "HOST", CAPS, 1));
            out.extend(rule_v4_target());
            out.extend(pif_info(3, "SPLICE", CAPS, 0));
            out.push(0);
            s.write_all(&out).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let mut c = Client::connect(&path).unwrap();
        assert_eq!(c.tables.len(), 2);
        assert_eq!(
            c.tables[0].table.rules[0].to_string(),
            "TCP [0.0.0.0]:5000  =>  192.0.2.5:6000 "
        );
        assert_eq!((c.tables[1].pif, c.tables[1].name.as_str()), (3, "SPLICE"));
        let (r, b) = rule_v6_ifname();
        c.tables[0].table.rules.push(r);
        c.send().unwrap();
        let mut want = vec![1, 0, 0, 0, 2];
        want.extend(rule_v4_target());
        want.extend(b);
        want.extend([3, 0, 0, 0, 0, 0]);
        assert_eq!(t.join().unwrap(), want);
    }

    #[test]
    fn client_refuses_what_pesto_refuses() {
        let serve = |bytes: Vec<u8>| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.sock");
            let l = UnixListener::bind(&path).unwrap();
            let t = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let _ = s.write_all(&bytes);
            });
            let e = Client::connect(&path).err().unwrap().to_string();
            t.join().unwrap();
            e
        };
        let with = |tail: Vec<u8>| {
            let mut b = HELLO.to_vec();
            b.extend(tail);
            b
        };
        assert_eq!(
            serve(HELLO[..10].to_vec()),
            "Couldn't read server greeting: No data available (os error 61)"
        );
        let mut h = HELLO;
        h[0] = b'B';
        assert_eq!(serve(h.to_vec()), "Bad magic number from server");
        let mut h = HELLO;
        h[11] = 0;
        assert_eq!(
            serve(h.to_vec()),
            "Unsupported experimental server protocol"
        );
        let mut h = HELLO;
        h[15] = 64;
        assert_eq!(
            serve(h.to_vec()),
            "Server has unexpected pif name size (64 not 128)"
        );
        let mut h = HELLO;
        h[19] = 32;
        assert_eq!(
            serve(h.to_vec()),
            "Server has unexpected IFNAMSIZ (32 not 16)"
        );
        assert_eq!(
            serve(with(pif_info(1, "HOST", CAPS, 256))),
            "Too many forwarding rules"
        );
        let mut two = pif_info(1, "HOST", CAPS, 0);
        two.extend(pif_info(1, "SPLICE", CAPS, 0));
        assert_eq!(serve(with(two)), "Received duplicate interface identifier");
        let mut two = pif_info(1, "HOST", CAPS, 0);
        two.extend(pif_info(3, "HOST", CAPS, 0));
        assert_eq!(serve(with(two)), "Received duplicate interface name");
        let mut four = Vec::new();
        for (p, n) in [(1, "A"), (2, "B"), (3, "C"), (4, "D")] {
            four.extend(pif_info(p, n, CAPS, 0));
        }
        assert_eq!(
            serve(with(four)),
            "passt has more pifs than pesto can manage (max 3)"
        );
        let mut unterminated = pif_info(1, "HOST", CAPS, 0);
        unterminated[128] = b'x';
        assert_eq!(
            serve(with(unterminated)),
            "Interface name was not NULL terminated"
        );
    }

    #[test]
    fn server_refuses_what_conf_recv_rules_refuses() {
        let run = |update: Vec<u8>| {
            let (mut ours, mut theirs) = UnixStream::pair().unwrap();
            let t = std::thread::spawn(move || {
                let mut backend = Mem(tables());
                let r = handle(&mut ours, &mut backend);
                (backend.0, r)
            });
            theirs.write_all(&update).unwrap();
            theirs.shutdown(std::net::Shutdown::Write).unwrap();
            let (state, r) = t.join().unwrap();
            assert_eq!(state, tables(), "a refused update changes nothing");
            r.unwrap_err()
        };
        assert_eq!(
            run(vec![2, 0, 0, 0, 0]),
            "Received rules for non-existent table"
        );
        assert_eq!(run(vec![1, 0, 0, 1, 0]), "Received 256 rules (maximum 255)");
        let (_, mut b) = rule_v6_ifname();
        b[47] = b'x';
        let mut u = vec![1, 0, 0, 0, 1];
        u.extend(b);
        u.push(0);
        assert_eq!(run(u), "Interface name was not NULL terminated");
        // Two rules that conflict (pasta's fwd_rule_add), in one update.
        let mut u = vec![1, 0, 0, 0, 2];
        u.extend(rule_v4_target());
        u.extend(rule_v4_target());
        u.push(0);
        assert!(
            run(u).starts_with("Forwarding configuration conflict: "),
            "conflict"
        );
    }
}
