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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

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

/// One splice(2), as an `io::Result` so that tokio's `try_io` sees EAGAIN as WouldBlock.
fn splice_io(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        match splice(from, None, to, None, len, flags()) {
            Ok(n) => return Ok(n),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Moves one direction until `src` reaches EOF and the pipe has drained; then shuts down
/// `dst`'s write half.
///
/// Reading and writing overlap: the pipe is a buffer of its own, so while `dst` is full (its
/// reader is slower) the pump keeps taking from `src` until the pipe is full too, and while
/// `src` is empty it keeps writing what the pipe holds. A pump that alternated (fill, then
/// drain completely) stalled the sender whenever the receiver paused, which showed as a
/// slow, bimodal ns→host direction. Writes come first when both sides are ready, so the pipe
/// stays short.
///
/// Readiness (edge-triggered) is cleared only when EAGAIN proves the side empty or full: a
/// short read does not prove the socket empty, and neither does EAGAIN while the pipe holds
/// data, since the pipe can run out of slots before it runs out of bytes. Clearing then could
/// strand data that no new edge would announce; instead reading pauses until a write has
/// made room.
async fn pump(src: &Fd, dst: &Fd) -> io::Result<u64> {
    let p = pipe()?;
    let mut total = 0u64;
    let mut in_pipe = 0usize;
    let mut eof = false;
    // The last read found the pipe (perhaps) full: wait for a write before reading again.
    let mut pipe_full = false;
    loop {
        if eof && in_pipe == 0 {
            // SAFETY: shutdown on a socket we own.
            unsafe { libc::shutdown(dst.as_raw_fd(), libc::SHUT_WR) };
            return Ok(total);
        }
        // At least one is true: a write empties the pipe only by making progress, which
        // clears `pipe_full`.
        let can_read = !eof && in_pipe < p.cap && !pipe_full;
        let can_write = in_pipe > 0;
        tokio::select! {
            biased;
            w = dst.writable(), if can_write => {
                let mut w = w?;
                if let Ok(m) = w.try_io(|d| splice_io(p.r.as_fd(), d.as_fd(), in_pipe)) {
                    in_pipe -= m?;
                    pipe_full = false;
                }
            }
            r = src.readable(), if can_read => {
                let mut r = r?;
                match splice_io(src.as_fd(), p.w.as_fd(), p.cap - in_pipe) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        in_pipe += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if in_pipe == 0 {
                            r.clear_ready();
                        } else {
                            pipe_full = true;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
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

    /// A receiver that pauses fills the destination socket and then the pipe, while the
    /// sender is done and sends no new edge: everything must still arrive, without the
    /// client closing (a request the server answers only once it has all of it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paused_receiver_strands_nothing() {
        const LEN: usize = 12 << 20;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mut client, relay_client_side) = pair(&l).await;
        let (relay_server_side, mut server) = pair(&l).await;
        tokio::spawn(relay(relay_client_side, relay_server_side));
        let data: Vec<u8> = (0..LEN as u32).map(|i| (i % 251) as u8).collect();
        let d2 = data.clone();
        let up = tokio::spawn(async move {
            client.write_all(&d2).await.unwrap();
            let mut answer = [0u8; 4];
            client.read_exact(&mut answer).await.unwrap();
            answer
        });
        let mut got = vec![0u8; LEN];
        let mut at = 0;
        let work = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            while at < LEN {
                let n = server
                    .read(&mut got[at..(at + 4096).min(LEN)])
                    .await
                    .unwrap();
                assert!(n > 0, "early EOF at {at}");
                at += n;
                if at % (1 << 20) < 4096 {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            server.write_all(b"done").await.unwrap();
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), work)
            .await
            .expect("bytes stranded in the relay");
        assert!(got == data, "bytes differ");
        assert_eq!(&up.await.unwrap(), b"done");
    }
}
