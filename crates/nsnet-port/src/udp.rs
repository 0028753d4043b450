//! UDP forwarding: one host-side socket per published port, and per client address a socket
//! made in the child's netns and connected to the target. Replies from the target go back to
//! the client that owns the flow. A flow idle for [`IDLE`] is closed (RootlessKit's 90 s).
//! Datagrams up to 65507 bytes (the IPv4 maximum) pass whole.
//!
//! Client source addresses (`transparent`): the flow socket is bound with IP_TRANSPARENT to
//! the client's own address and port, so the service sees the real client. The service's
//! reply to that address is kept in the child by a rule on its source port (the manager's
//! [`crate::ReplyRoutes`]) that routes it to a local-default table. That route is of type
//! local, and the kernel gives a reply from a wildcard-bound service the *destination* as its
//! source (a local route's preferred source is the address itself), so the reply does not
//! come from the target address: the flow socket stays unconnected and takes replies from the
//! target's port, whatever their source address. The target may be a service of the child
//! (loopback) or a container behind a bridge in the child's netns, whose replies are routed
//! back to the flow socket by a rule on the container's address and port; nothing is
//! forwarded, so the child needs no `ip_forward` for it. Loopback clients keep the plain
//! path, as for TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use socket2::{Domain, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::datagrams::{RecvBatch, SendBatch};
use crate::{ChildSockets, unmapped};

pub const IDLE: Duration = Duration::from_secs(90);

/// A flow's socket in the child: connected to the target, or (transparent) bound to the
/// client's address and sending to the target.
struct FlowSocket {
    sock: UdpSocket,
    transparent_to: Option<SocketAddr>,
}

impl FlowSocket {
    /// Sends `msgs` in order to the target, as few calls as the batch allows. A datagram the
    /// kernel refuses (ECONNREFUSED after an ICMP port unreachable, ENOBUFS) is dropped, as a
    /// router drops it; the rest still go.
    async fn send_all(&self, batch: &mut SendBatch, msgs: &[&[u8]]) {
        let mut done = 0;
        while done < msgs.len() {
            let fd = self.sock.as_raw_fd();
            let r = self
                .sock
                .async_io(Interest::WRITABLE, || {
                    batch.send(fd, &msgs[done..], self.transparent_to)
                })
                .await;
            match r {
                Ok(k) => done += k,
                Err(e) => {
                    tracing::debug!("udp send: {e}");
                    done += 1;
                }
            }
        }
    }

    /// Receives what the target sent (waiting until something is there), dropping datagrams
    /// of a transparent flow that came from another port than the target's.
    async fn recv_batch(&self, batch: &mut RecvBatch) -> std::io::Result<Vec<usize>> {
        let fd = self.sock.as_raw_fd();
        loop {
            let n = self
                .sock
                .async_io(Interest::READABLE, || batch.recv(fd))
                .await?;
            let keep: Vec<usize> = (0..n)
                .filter(|&i| match (batch.get(i), self.transparent_to) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some((_, from)), Some(target)) => from.port() == target.port(),
                })
                .collect();
            if !keep.is_empty() {
                return Ok(keep);
            }
        }
    }
}

struct Flow {
    child: Arc<FlowSocket>,
    last: Arc<AtomicU64>,
    replies: tokio::task::JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        // The reply task holds the child socket; end it with the flow (or the port).
        self.replies.abort();
    }
}

fn transparent_flow(
    sockets: &dyn ChildSockets,
    target: SocketAddr,
    client: SocketAddr,
) -> std::io::Result<FlowSocket> {
    let s = crate::transparent_socket(sockets, Type::DGRAM, target, client, None)?;
    Ok(FlowSocket {
        sock: UdpSocket::from_std(s.into())?,
        transparent_to: Some(target),
    })
}

fn open_flow(
    sockets: &dyn ChildSockets,
    target: SocketAddr,
    client: SocketAddr,
    transparent: bool,
) -> std::io::Result<FlowSocket> {
    let source = unmapped(client);
    if transparent && !source.ip().is_loopback() && source.is_ipv4() == target.is_ipv4() {
        match transparent_flow(sockets, target, source) {
            Ok(f) => return Ok(f),
            Err(e) => tracing::debug!(%source, %target, "transparent udp flow: {e}"),
        }
    }
    let s = sockets.socket(Domain::for_address(target), Type::DGRAM)?;
    s.set_nonblocking(true)?;
    s.connect(&target.into())?;
    Ok(FlowSocket {
        sock: UdpSocket::from_std(s.into())?,
        transparent_to: None,
    })
}

/// Serves one published UDP port until `stop` fires.
pub(crate) async fn serve(
    host: UdpSocket,
    target: SocketAddr,
    sockets: Arc<dyn ChildSockets>,
    transparent: bool,
    mut stop: oneshot::Receiver<()>,
) {
    let host = Arc::new(host);
    let start = Instant::now();
    let now = move || start.elapsed().as_millis() as u64;
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let (gone_tx, mut gone_rx) = mpsc::unbounded_channel::<SocketAddr>();
    let mut rx = RecvBatch::new();
    let mut tx = SendBatch::new();
    let fd = host.as_raw_fd();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            Some(client) = gone_rx.recv() => {
                flows.remove(&client);
            }
            r = host.async_io(Interest::READABLE, || rx.recv(fd)) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!("udp recv: {e}");
                        continue;
                    }
                };
                // Runs of datagrams from one client go to its flow in one batch.
                let mut i = 0;
                while i < n {
                    let Some((_, client)) = rx.get(i) else {
                        i += 1;
                        continue;
                    };
                    let start = i;
                    while i < n && rx.get(i).is_some_and(|(_, c)| c == client) {
                        i += 1;
                    }
                    let run: Vec<&[u8]> = (start..i).filter_map(|k| rx.get(k)).map(|(d, _)| d).collect();
                    let flow = match flows.get(&client) {
                        Some(f) => f,
                        None => {
                            let child = match open_flow(sockets.as_ref(), target, client, transparent) {
                                Ok(s) => Arc::new(s),
                                Err(e) => {
                                    tracing::debug!(%client, %target, "udp flow: {e}");
                                    continue;
                                }
                            };
                            let last = Arc::new(AtomicU64::new(now()));
                            let replies = tokio::spawn(replies(
                                child.clone(),
                                host.clone(),
                                client,
                                last.clone(),
                                now,
                                gone_tx.clone(),
                            ));
                            flows.entry(client).or_insert(Flow { child, last, replies })
                        }
                    };
                    flow.last.store(now(), Ordering::Relaxed);
                    flow.child.send_all(&mut tx, &run).await;
                }
            }
        }
    }
}

async fn replies(
    child: Arc<FlowSocket>,
    host: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    now: impl Fn() -> u64,
    gone: mpsc::UnboundedSender<SocketAddr>,
) {
    let mut rx = RecvBatch::new();
    let mut tx = SendBatch::new();
    loop {
        let idle_for = Duration::from_millis(now().saturating_sub(last.load(Ordering::Relaxed)));
        let Some(left) = IDLE.checked_sub(idle_for) else {
            let _ = gone.send(client);
            return;
        };
        // A timeout loops back to the idle check; ECONNREFUSED (an ICMP port unreachable
        // from the target) leaves the flow in place, like a NAT entry.
        if let Ok(Ok(keep)) = tokio::time::timeout(left, child.recv_batch(&mut rx)).await {
            last.store(now(), Ordering::Relaxed);
            let msgs: Vec<&[u8]> = keep
                .iter()
                .filter_map(|&i| rx.get(i))
                .map(|(d, _)| d)
                .collect();
            send_all_to(&host, &mut tx, &msgs, client).await;
        }
    }
}

/// Sends `msgs` from the published socket to `client`; see [`FlowSocket::send_all`].
async fn send_all_to(host: &UdpSocket, batch: &mut SendBatch, msgs: &[&[u8]], client: SocketAddr) {
    let fd = host.as_raw_fd();
    let mut done = 0;
    while done < msgs.len() {
        match host
            .async_io(Interest::WRITABLE, || {
                batch.send(fd, &msgs[done..], Some(client))
            })
            .await
        {
            Ok(k) => done += k,
            Err(e) => {
                tracing::debug!(%client, "udp reply: {e}");
                done += 1;
            }
        }
    }
}
