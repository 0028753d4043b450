//! Servers the tests run on the world's loopback (the "host" a guest reaches through its
//! gateway), each in a thread of the test process, listening before the function returns,
//! so no client has to wait for them.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// When an echo server sends back what it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// All of it, once the client has half-closed.
    AfterEof,
    /// Each read as it comes (a client may wait for its answer without closing).
    Stream,
}

/// A TCP echo server on `addr` (`127.0.0.1:0`, `[::1]:0`), a thread per connection. Returns
/// the port and a count of the connections served to the end.
pub fn echo_server(addr: &str, mode: Echo) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let s = served.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let s = s.clone();
            std::thread::spawn(move || {
                let done = match mode {
                    Echo::AfterEof => {
                        let mut all = Vec::new();
                        c.read_to_end(&mut all).is_ok() && c.write_all(&all).is_ok()
                    }
                    Echo::Stream => {
                        let mut buf = [0u8; 4096];
                        loop {
                            match c.read(&mut buf) {
                                Ok(0) => break true,
                                Ok(n) if c.write_all(&buf[..n]).is_ok() => {}
                                _ => break false,
                            }
                        }
                    }
                };
                if done {
                    s.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (port, served)
}

/// A TCP server on `addr` for one client: reads its 4 bytes (peer_client.py's "ping") and
/// answers with the client's source address, as it sees it. Join the handle to know it did.
pub fn peer_server(addr: &str) -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        if let Ok((mut s, peer)) = l.accept() {
            let mut b = [0u8; 4];
            let _ = s.read_exact(&mut b);
            let _ = s.write_all(peer.ip().to_string().as_bytes());
        }
    });
    (port, h)
}
