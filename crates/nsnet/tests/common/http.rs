//! HTTP/1.x clients of the tests: a GET through a published port, and one raw exchange over
//! a Unix socket (the REST API on api.sock).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// An HTTP/1.0 GET of `/index.html` on 127.0.0.1:`port`, retried (every 50 ms, for up to
/// `limit`) while the server starts, until the whole reply satisfies `done`. Panics with the
/// last attempt when the time is up.
pub fn http_get(port: u16, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let t0 = Instant::now();
    loop {
        let got = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut b = String::new();
            s.read_to_string(&mut b)?;
            Ok(b)
        })();
        match got {
            Ok(b) if done(&b) => return b,
            _ if t0.elapsed() > limit => panic!("GET 127.0.0.1:{port}: {got:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// One raw HTTP/1.1 exchange over a Unix socket: (status line, content-type, body).
pub fn unix_http(sock: &Path, method: &str, path: &str, body: &str) -> (String, String, String) {
    let mut s = UnixStream::connect(sock).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: rootlesskit\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or("")
        .to_string();
    (status, ctype, body.to_string())
}
