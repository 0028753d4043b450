//! Batches of datagrams per system call for the UDP port driver: `recvmmsg(2)` on a socket
//! that is readable, `sendmmsg(2)` of a run of datagrams to one destination.
//!
//! Why: a tunnel published through the driver (Flannel's VXLAN on 8472/udp) turns every byte
//! of pod traffic into ~1500-byte datagrams, so the driver's cost is per datagram, and one
//! `recvfrom` + one `send` per datagram (two wake-ups of the kernel's socket code each) was its
//! limit. One call now moves up to [`BATCH`] datagrams each way.
//!
//! Memory: a batch holds [`BATCH`] slots of the largest datagram, allocated zeroed in one
//! piece, so the allocator maps it and the kernel backs only the pages datagrams were written
//! to (a 1500-byte datagram touches one page of its 64 KiB slot). Each socket keeps its own
//! headers: the kernel shortens a header's address length to the address it wrote, which is
//! harmless only while every datagram on that socket has the same family (true per socket:
//! a dual-stack socket reports IPv4 peers as mapped IPv6 addresses).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};

/// Datagrams per call. 32 ≈ a 64 KiB TSO burst of the sender cut into 1500-byte datagrams;
/// more showed no gain in the VXLAN benchmark.
pub const BATCH: usize = 32;
/// Room for the largest IPv4 datagram plus one byte, so a datagram never fills its slot
/// exactly and a truncated one would show.
pub const SLOT: usize = 65507 + 1;

/// Receive side: buffers and headers for one socket.
pub struct RecvBatch {
    buf: Vec<u8>,
    headers: MultiHeaders<SockaddrStorage>,
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            buf: vec![0u8; BATCH * SLOT],
            headers: MultiHeaders::preallocate(BATCH, None),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Receives what is queued on `fd` (non-blocking: WouldBlock when nothing is), up to
    /// [`BATCH`] datagrams; then [`RecvBatch::get`] reads them.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.got.clear();
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .buf
            .chunks_mut(SLOT)
            .map(|c| [IoSliceMut::new(c)])
            .collect();
        // Non-blocking calls do not sleep, so EINTR cannot come back; any error goes to the
        // caller as it is.
        let res = recvmmsg(
            fd,
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        for m in res {
            self.got
                .push((m.bytes, m.address.as_ref().and_then(to_std)));
        }
        Ok(self.got.len())
    }

    /// The `i`th datagram of the last [`RecvBatch::recv`] and its source; None for a source
    /// that is not an IP socket address (never on the driver's sockets: skip it).
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (n, from) = self.got[i];
        Some((&self.buf[i * SLOT..i * SLOT + n], from?))
    }
}

/// Send side: headers for one socket.
pub struct SendBatch {
    headers: MultiHeaders<SockaddrStorage>,
}

impl SendBatch {
    pub fn new() -> SendBatch {
        SendBatch {
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Sends up to [`BATCH`] of `msgs` from `fd` to `to` (None: the connected peer), without
    /// blocking; returns how many went (at least one, or the first one's error).
    pub fn send(&mut self, fd: RawFd, msgs: &[&[u8]], to: Option<SocketAddr>) -> io::Result<usize> {
        let n = msgs.len().min(BATCH);
        let iovs: Vec<[IoSlice<'_>; 1]> = msgs[..n].iter().map(|m| [IoSlice::new(m)]).collect();
        let addr = to.map(SockaddrStorage::from);
        let addrs = vec![addr; n];
        let none: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(
            fd,
            &mut self.headers,
            iovs.iter(),
            &addrs,
            none,
            MsgFlags::MSG_DONTWAIT,
        )?;
        Ok(sent.count())
    }
}

// SAFETY: the raw pointers inside `MultiHeaders` point into its own boxed address slots
// (which move with it) and, during a call only, into the caller's buffers; nothing in it is
// tied to a thread, so a batch may move between the runtime's threads with its task.
unsafe impl Send for RecvBatch {}
unsafe impl Send for SendBatch {}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    if let Some(v6) = a.as_sockaddr_in6() {
        return Some(SocketAddr::V6(SocketAddrV6::from(*v6)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    /// Many datagrams of mixed sizes, the largest IPv4 one among them, from two sources over
    /// loopback: every one arrives whole, in order per source, with its source address.
    fn round_trip(any: &str) {
        let rx = UdpSocket::bind(any).unwrap();
        let to = rx.local_addr().unwrap();
        let a = UdpSocket::bind(any).unwrap();
        let b = UdpSocket::bind(any).unwrap();
        let mut sb = SendBatch::new();
        let sizes = [1, 1400, 65507, 0, 9000, 1500, 1500, 1500];
        let payload: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|k| (k * 7 + i) as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = payload.iter().map(|p| p.as_slice()).collect();
        let mut sent = 0;
        while sent < refs.len() {
            sent += sb.send(a.as_raw_fd(), &refs[sent..], Some(to)).unwrap();
        }
        b.send_to(b"from b", to).unwrap();
        let mut rb = RecvBatch::new();
        let mut seen = Vec::new();
        while seen.len() < sizes.len() + 1 {
            match rb.recv(rx.as_raw_fd()) {
                Ok(n) => (0..n).for_each(|i| {
                    let (d, f) = rb.get(i).unwrap();
                    seen.push((d.to_vec(), f))
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("recvmmsg: {e}"),
            }
        }
        let from_a: Vec<_> = seen
            .iter()
            .filter(|(_, f)| *f == a.local_addr().unwrap())
            .map(|(d, _)| d.clone())
            .collect();
        assert_eq!(from_a, payload);
        assert!(
            seen.iter()
                .any(|(d, f)| d == b"from b" && *f == b.local_addr().unwrap())
        );
        assert!(matches!(rb.recv(rx.as_raw_fd()), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
    }

    #[test]
    fn batches_carry_every_datagram_whole_with_its_source_v4() {
        round_trip("127.0.0.1:0");
    }

    #[test]
    fn batches_carry_every_datagram_whole_with_its_source_v6() {
        round_trip("[::1]:0");
    }

    #[test]
    fn a_connected_socket_sends_a_batch_to_its_peer() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let msgs: Vec<Vec<u8>> = (0..BATCH + 5).map(|i| vec![i as u8; 100]).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let mut sb = SendBatch::new();
        let first = sb.send(tx.as_raw_fd(), &refs, None).unwrap();
        assert_eq!(first, BATCH, "one call sends at most a batch");
        let rest = sb.send(tx.as_raw_fd(), &refs[first..], None).unwrap();
        assert_eq!(rest, 5);
        let mut buf = [0u8; 200];
        for m in &msgs {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &m[..]);
        }
    }
}
