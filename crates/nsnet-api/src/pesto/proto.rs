//! pasta's forwarding-table protocol on its `-c SOCKET` (pesto protocol version 2, passt
//! 2026_07_16's `conf.c` and `pesto.c`): one client at a time over a unix stream socket.
//!
//! ```text
//!  server → client  hello: "basil:s\0", version u32, PIF_NAME_SIZE u32 (128), IFNAMSIZ u32 (16)
//!                   per table: pif u8, name[128] (NUL-padded), caps u32, count u32, rules
//!                   pif 0 (PIF_NONE): end of tables
//!  client → server  nothing (it only looked), or the whole new state:
//!                   per table: pif u8, count u32, rules;  pif 0: end — the server validates
//!                   every rule against the table's capabilities and then replaces the tables
//!  rule (56 bytes)  addr[16] taddr[16] (IPv4 as ::ffff:a.b.c.d, `::` = unspecified)
//!                   ifname[16] first u16 last u16 to u16 proto u8 flags u8
//! ```
//!
//! Integers are big-endian. The rule's layout is version 2's `struct fwd_rule` as we read it
//! (version 1's plus the target address after the listening one); a client and server of this
//! module agree by construction, and the size is checked against the hello's field sizes.
//! The [`Backend`] is whoever owns the listeners; this module owns only the bytes.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use super::spec::{Rule, Table};

pub const MAGIC: &[u8; 8] = b"basil:s\0";
pub const VERSION: u32 = 2;
pub const PIF_NAME_SIZE: u32 = 128;
pub const IFNAMSIZ: u32 = 16;
pub const RULE_LEN: usize = 56;
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

/// Decodes a rule; `None` when the interface name is not NUL-terminated.
pub fn decode_rule(b: &[u8; RULE_LEN]) -> Option<Rule> {
    let name = &b[32..48];
    let end = name.iter().position(|c| *c == 0)?;
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
    /// Binds `path` (pasta: `Couldn't open control socket PATH: …` when it cannot).
    pub fn bind(path: &Path) -> Result<Server, String> {
        UnixListener::bind(path)
            .map(|listener| Server { listener })
            .map_err(|e| format!("Couldn't open control socket {}: {e}", path.display()))
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
    #[error("Interface name was not NULL terminated")]
    Unterminated,
    #[error("Error writing to control socket: {0}")]
    Write(#[source] io::Error),
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        let mut h = [0u8; 20];
        stream.read_exact(&mut h).map_err(ClientError::Greeting)?;
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
            let mut name = [0u8; PIF_NAME_SIZE as usize];
            stream
                .read_exact(&mut name)
                .map_err(|_| ClientError::Read)?;
            let end = name
                .iter()
                .position(|c| *c == 0)
                .ok_or(ClientError::Unterminated)?;
            let caps = read_u32(&mut stream).map_err(|_| ClientError::Read)?;
            let count = read_u32(&mut stream).map_err(|_| ClientError::Read)?;
            if count as usize > super::spec::MAX_RULES {
                return Err(ClientError::Read);
            }
            let mut table = Table::new(caps);
            for _ in 0..count {
                let mut b = [0u8; RULE_LEN];
                stream.read_exact(&mut b).map_err(|_| ClientError::Read)?;
                table
                    .rules
                    .push(decode_rule(&b).ok_or(ClientError::Unterminated)?);
            }
            tables.push(PifTable {
                pif,
                name: String::from_utf8_lossy(&name[..end]).into_owned(),
                table,
            });
        }
        Ok(Client { stream, tables })
    }

    /// Sends `self.tables` as the new state and closes.
    pub fn send(mut self) -> Result<(), ClientError> {
        let mut out = Vec::new();
        for t in &self.tables {
            out.push(t.pif);
            out.extend_from_slice(&(t.table.rules.len() as u32).to_be_bytes());
            for r in &t.table.rules {
                out.extend_from_slice(&encode_rule(r));
            }
        }
        out.push(0);
        self.stream.write_all(&out).map_err(ClientError::Write)?;
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
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
            Err("Unsupported protocol 0x84 for forwarding rule".into())
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
}
