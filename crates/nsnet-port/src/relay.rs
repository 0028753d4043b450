//! The TCP relay between the host-side client connection and the child-side connection.
//!
//! Each direction moves bytes socket → pipe → socket with splice(2): the payload pages go
//! from one socket's receive queue to the other's send queue without being copied into user
//! space. A pipe per direction is the kernel's required middleman. The pipe is enlarged (up
//! to `fs.pipe-max-size`, 1 MiB by default) so one wake-up moves up to that much data,
//! fewer wake-ups per byte being what a relay's speed comes down to.
//!
//! Half-close: when one side's reads end (FIN), the other side's write half is shut down
//! once the pipe has drained, and the opposite direction keeps flowing until it ends too.
//! A reset on either side ends both directions.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use tokio::net::TcpStream;

/// Pipe size asked for; the kernel may grant less (then F_GETPIPE_SZ tells).
const PIPE_SIZE: i32 = 1 << 20;

struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

fn pipe() -> io::Result<Pipe> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    // Ask for a large pipe; an unprivileged process may be refused above pipe-max-size,
    // which only costs throughput.
    let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    let cap = fcntl(&w, FcntlArg::F_GETPIPE_SZ)? as usize;
    Ok(Pipe { r, w, cap })
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE
}

type Fd = tokio::io::unix::AsyncFd<OwnedFd>;

fn would_block(e: &nix::Error) -> bool {
    *e == nix::Error::EAGAIN
}

/// Moves one direction until `src` reaches EOF; then shuts down `dst`'s write half.
///
/// Per chunk: one splice in, one splice out. A read that returns less than the pipe could
/// hold has drained the socket, so its readiness is cleared without the extra EAGAIN read an
/// edge-triggered loop would otherwise spend (tokio keeps a readiness that arrived in the
/// meantime, so no wake-up is lost).
async fn pump(src: &Fd, dst: &Fd) -> io::Result<u64> {
    let p = pipe()?;
    let mut total = 0u64;
    loop {
        let mut ready = src.readable().await?;
        let n = match splice(src.get_ref(), None, p.w.as_fd(), None, p.cap, flags()) {
            Ok(0) => {
                // SAFETY: shutdown on a socket we own.
                unsafe { libc::shutdown(dst.as_raw_fd(), libc::SHUT_WR) };
                return Ok(total);
            }
            Ok(n) => {
                if n < p.cap {
                    ready.clear_ready();
                }
                n
            }
            Err(e) if would_block(&e) => {
                ready.clear_ready();
                continue;
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        drop(ready);
        let mut left = n;
        while left > 0 {
            match splice(p.r.as_fd(), None, dst.get_ref(), None, left, flags()) {
                Ok(m) => left -= m,
                Err(e) if would_block(&e) => {
                    let mut w = dst.writable().await?;
                    // Retry under the guard so that a still-full socket clears the
                    // readiness and the next wait really waits.
                    match splice(p.r.as_fd(), None, dst.get_ref(), None, left, flags()) {
                        Ok(m) => left -= m,
                        Err(e) if would_block(&e) => w.clear_ready(),
                        Err(nix::Error::EINTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        total += n as u64;
    }
}

/// Relays both directions until both have ended. Returns bytes moved (client→child,
/// child→client).
pub async fn relay(client: TcpStream, child: TcpStream) -> io::Result<(u64, u64)> {
    let register = |s: TcpStream| -> io::Result<Fd> {
        let fd = OwnedFd::from(s.into_std()?);
        // SAFETY: the AsyncFd owns the descriptor, so it stays open and the same for the
        // AsyncFd's whole life.
        unsafe { Fd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))
    };
    let client = register(client)?;
    let child = register(child)?;
    let (up, down) = tokio::join!(pump(&client, &child), pump(&child, &client));
    match (up, down) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), _) | (_, Err(e)) => {
            // One side failed (typically a reset): make sure the other sees it end too.
            for s in [&client, &child] {
                // SAFETY: shutdown on descriptors we own.
                unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_RDWR) };
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// client ⇄ [relay] ⇄ server over loopback, 8 MiB each way, byte-exact, with half-close.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relays_both_ways_with_half_close() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mut client, relay_client_side) = pair(&l).await;
        let (relay_server_side, mut server) = pair(&l).await;
        let r = tokio::spawn(relay(relay_client_side, relay_server_side));
        let data: Vec<u8> = (0..8u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let d2 = data.clone();
        let up = tokio::spawn(async move {
            client.write_all(&d2).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "client→server bytes differ");
        server.write_all(&got[..1 << 20]).await.unwrap();
        server.shutdown().await.unwrap();
        let back = up.await.unwrap();
        assert!(back == data[..1 << 20], "server→client bytes differ");
        let (a, b) = r.await.unwrap().unwrap();
        assert_eq!((a, b), (8 << 20, 1 << 20));
    }
}
