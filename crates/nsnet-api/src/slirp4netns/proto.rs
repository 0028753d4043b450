//! slirp4netns's API socket (`--api-socket PATH`): host ports forwarded into the guest.
//!
//! The protocol is slirp4netns 1.2.0's `api.c`, byte for byte: one JSON request per unix
//! connection, read with a single `read()` of under 4096 bytes, one reply without a trailing
//! newline, then the connection is shut down. Requests: `add_hostfwd` (→ `{"return":{"id":N}}`),
//! `list_hostfwd` (→ `{"entries":[…]}`, without the `return` wrapper the man page shows),
//! `remove_hostfwd` (→ `{"return":{}}`); errors are `{"error":{"desc":"…"}}` with its strings.
//! Where slirp4netns crashes (no `proto`), we answer `bad arguments.proto`.
//!
//! The protocol logic ([`Api::handle`]) is separate from the network ([`Backend`]) so its
//! every answer is unit-tested; the front end that runs a network supplies the backend (the
//! slirp4netns personality binds the host port and hands the listener to nsnet's stack; a
//! bind error is `slirp_add_hostfwd failed`, as in slirp4netns). [`Socket`] serves an [`Api`]
//! on the unix socket, one connection at a time. This module owns the server side of the
//! wire contract and [`super::client`] the client side, so the two are tested against each
//! other here.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// What the API needs from the network: start and stop one forward.
pub trait Backend {
    fn add(&mut self, id: u32, udp: bool, host: SocketAddrV4, guest: SocketAddrV4) -> bool;
    fn remove(&mut self, id: u32);
}

struct Entry {
    id: u32,
    udp: bool,
    host: SocketAddrV4,
    guest: SocketAddrV4,
}

/// The API's state: the forwards added so far and the next id (ids are never reused).
pub struct Api<B> {
    backend: B,
    default_guest: Ipv4Addr,
    next_id: u32,
    entries: Vec<Entry>,
}

fn error(desc: &str) -> String {
    format!("{{\"error\":{{\"desc\":\"{desc}\"}}}}")
}

/// `json_object_dotget_string(jo, "arguments.KEY")`: a string, or nothing.
fn arg_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("arguments")?.get(key)?.as_str()
}

/// `(int)json_object_dotget_number(jo, "arguments.KEY")`: 0 when missing or not a number.
fn arg_int(v: &Value, key: &str) -> i64 {
    v.get("arguments")
        .and_then(|a| a.get(key))
        .and_then(Value::as_f64)
        .map(|f| f as i64)
        .unwrap_or(0)
}

impl<B: Backend> Api<B> {
    pub fn new(backend: B, default_guest: Ipv4Addr) -> Api<B> {
        Api {
            backend,
            default_guest,
            next_id: 1,
            entries: Vec::new(),
        }
    }

    /// The reply to one request (the bytes of one read).
    pub fn handle(&mut self, req: &[u8]) -> String {
        let Ok(v) = serde_json::from_slice::<Value>(req) else {
            return error("bad request: cannot parse JSON");
        };
        if !v.is_object() {
            return error("bad request: json_object() failed");
        }
        match v.get("execute").and_then(Value::as_str) {
            None => error("bad request: no execute found"),
            Some("add_hostfwd") => self.add(&v),
            Some("list_hostfwd") => self.list(),
            Some("remove_hostfwd") => self.remove(&v),
            Some(_) => error("bad request: unknown execute"),
        }
    }

    fn add(&mut self, v: &Value) -> String {
        let bad = |what: &str| error(&format!("bad request: add_hostfwd: bad arguments.{what}"));
        let udp = match arg_str(v, "proto") {
            Some("udp") => true,
            Some("tcp") => false,
            _ => return bad("proto"),
        };
        let host_ip = match arg_str(v, "host_addr").filter(|s| !s.is_empty()) {
            None => Ipv4Addr::UNSPECIFIED,
            Some(s) => match s.parse() {
                Ok(ip) => ip,
                Err(_) => return bad("host_addr"),
            },
        };
        let host_port = arg_int(v, "host_port");
        if host_port == 0 {
            return bad("host_port");
        }
        let guest_ip = match arg_str(v, "guest_addr").filter(|s| !s.is_empty()) {
            None => self.default_guest,
            Some(s) => match s.parse() {
                Ok(ip) => ip,
                Err(_) => return bad("guest_addr"),
            },
        };
        let guest_port = arg_int(v, "guest_port");
        if guest_port == 0 {
            return bad("guest_port");
        }
        let failed = || error("bad request: add_hostfwd: slirp_add_hostfwd failed");
        let (Ok(hp), Ok(gp)) = (u16::try_from(host_port), u16::try_from(guest_port)) else {
            return failed();
        };
        let host = SocketAddrV4::new(host_ip, hp);
        let guest = SocketAddrV4::new(guest_ip, gp);
        let id = self.next_id;
        if !self.backend.add(id, udp, host, guest) {
            return failed();
        }
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            udp,
            host,
            guest,
        });
        format!("{{\"return\":{{\"id\":{id}}}}}")
    }

    fn list(&self) -> String {
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                format!(
                    "{{\"id\":{},\"proto\":\"{}\",\"host_addr\":\"{}\",\"host_port\":{},\"guest_addr\":\"{}\",\"guest_port\":{}}}",
                    e.id,
                    if e.udp { "udp" } else { "tcp" },
                    e.host.ip(),
                    e.host.port(),
                    e.guest.ip(),
                    e.guest.port()
                )
            })
            .collect();
        format!("{{\"entries\":[{}]}}", entries.join(","))
    }

    fn remove(&mut self, v: &Value) -> String {
        let id = arg_int(v, "id");
        let Some(pos) = self.entries.iter().position(|e| i64::from(e.id) == id) else {
            return error("bad request: remove_hostfwd: bad arguments.id");
        };
        let e = self.entries.remove(pos);
        self.backend.remove(e.id);
        "{\"return\":{}}".into()
    }
}

/// The API socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("api socket {}: bind: {source}", path.display())]
pub struct BindError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The API socket: bound at start-up (an existing file is replaced, as slirp4netns does);
/// the caller removes the file when it exits.
pub struct Socket {
    listener: UnixListener,
}

impl Socket {
    pub fn bind(path: &Path) -> Result<Socket, BindError> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|source| BindError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Socket { listener })
    }

    /// Serves requests one connection at a time, for the life of the process.
    pub fn serve<B: Backend>(self, mut api: Api<B>) {
        for conn in self.listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = vec![0u8; 4096];
            let reply = match conn.read(&mut buf) {
                Ok(n) if n == buf.len() => {
                    eprintln!("api_handler: too large message (>= {n} bytes)");
                    error("bad request: too large message")
                }
                Ok(n) => {
                    eprintln!(
                        "api_handler: got request: {}",
                        String::from_utf8_lossy(&buf[..n])
                    );
                    api.handle(&buf[..n])
                }
                Err(e) => {
                    eprintln!("api_handler: read: {e}");
                    continue;
                }
            };
            let _ = conn.write_all(reply.as_bytes());
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake {
        added: Vec<(u32, bool, SocketAddrV4, SocketAddrV4)>,
        removed: Vec<u32>,
        fail: bool,
    }

    impl Backend for &mut Fake {
        fn add(&mut self, id: u32, udp: bool, host: SocketAddrV4, guest: SocketAddrV4) -> bool {
            if self.fail {
                return false;
            }
            self.added.push((id, udp, host, guest));
            true
        }
        fn remove(&mut self, id: u32) {
            self.removed.push(id);
        }
    }

    #[test]
    fn add_list_remove_byte_for_byte() {
        let mut fake = Fake::default();
        let mut api = Api::new(&mut fake, Ipv4Addr::new(10, 0, 2, 100));
        assert_eq!(
            api.handle(br#"{"execute":"list_hostfwd"}"#),
            r#"{"entries":[]}"#
        );
        assert_eq!(
            api.handle(br#"{"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": 8080, "guest_addr": "10.0.2.100", "guest_port": 80}}"#),
            r#"{"return":{"id":1}}"#
        );
        // Defaults: host 0.0.0.0, guest the recommended address.
        assert_eq!(
            api.handle(br#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":5353,"guest_port":53}}"#),
            r#"{"return":{"id":2}}"#
        );
        assert_eq!(
            api.handle(b"{\"execute\":\"list_hostfwd\"}\n"),
            r#"{"entries":[{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80},{"id":2,"proto":"udp","host_addr":"0.0.0.0","host_port":5353,"guest_addr":"10.0.2.100","guest_port":53}]}"#
        );
        assert_eq!(
            api.handle(br#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#),
            r#"{"return":{}}"#
        );
        assert_eq!(
            api.handle(br#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#),
            r#"{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}"#
        );
        // Ids are not reused.
        assert_eq!(
            api.handle(br#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":1,"guest_port":2}}"#),
            r#"{"return":{"id":3}}"#
        );
        drop(api);
        assert_eq!(fake.removed, vec![1]);
        assert_eq!(
            fake.added[1],
            (
                2,
                true,
                "0.0.0.0:5353".parse().unwrap(),
                "10.0.2.100:53".parse().unwrap()
            )
        );
    }

    #[test]
    fn slirp4netns_error_strings() {
        let mut fake = Fake::default();
        let mut api = Api::new(&mut fake, Ipv4Addr::new(10, 0, 2, 100));
        let e = |d: &str| format!(r#"{{"error":{{"desc":"bad request: {d}"}}}}"#);
        for (req, want) in [
            (&b"{not json"[..], e("cannot parse JSON")),
            (b"", e("cannot parse JSON")),
            (b"[1,2]", e("json_object() failed")),
            (b"{}", e("no execute found")),
            (br#"{"execute":7}"#, e("no execute found")),
            (br#"{"execute":"reboot"}"#, e("unknown execute")),
            (br#"{"execute":"add_hostfwd"}"#, e("add_hostfwd: bad arguments.proto")),
            (
                br#"{"execute":"add_hostfwd","arguments":{"proto":"sctp"}}"#,
                e("add_hostfwd: bad arguments.proto"),
            ),
            (
                br#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"::1","host_port":1,"guest_port":1}}"#,
                e("add_hostfwd: bad arguments.host_addr"),
            ),
            (
                br#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":"80","guest_port":1}}"#,
                e("add_hostfwd: bad arguments.host_port"),
            ),
            (
                br#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":80,"guest_addr":"x","guest_port":1}}"#,
                e("add_hostfwd: bad arguments.guest_addr"),
            ),
            (
                br#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":80}}"#,
                e("add_hostfwd: bad arguments.guest_port"),
            ),
            (
                br#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":70000,"guest_port":1}}"#,
                e("add_hostfwd: slirp_add_hostfwd failed"),
            ),
            (br#"{"execute":"remove_hostfwd"}"#, e("remove_hostfwd: bad arguments.id")),
        ] {
            assert_eq!(api.handle(req), want, "{}", String::from_utf8_lossy(req));
        }
        drop(api);
        assert!(fake.added.is_empty());
        fake.fail = true;
        let mut api = Api::new(&mut fake, Ipv4Addr::new(10, 0, 2, 100));
        assert_eq!(
            api.handle(br#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":80,"guest_port":80}}"#),
            e("add_hostfwd: slirp_add_hostfwd failed")
        );
        assert_eq!(
            api.handle(br#"{"execute":"list_hostfwd"}"#),
            r#"{"entries":[]}"#,
            "a failed add takes no id and leaves no entry"
        );
    }
}
