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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use socket2::{Domain, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::{ChildSockets, unmapped};

pub const IDLE: Duration = Duration::from_secs(90);
const MAX_DATAGRAM: usize = 65507;

/// A flow's socket in the child: connected to the target, or (transparent) bound to the
/// client's address and sending to the target.
struct FlowSocket {
    sock: UdpSocket,
    transparent_to: Option<SocketAddr>,
}

impl FlowSocket {
    async fn send(&self, data: &[u8]) -> std::io::Result<usize> {
        match self.transparent_to {
            Some(target) => self.sock.send_to(data, target).await,
            None => self.sock.send(data).await,
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.transparent_to {
            None => self.sock.recv(buf).await,
            Some(target) => loop {
                let (n, from) = self.sock.recv_from(buf).await?;
                if from.port() == target.port() {
                    return Ok(n);
                }
            },
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
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        tokio::select! {
            _ = &mut stop => return,
            Some(client) = gone_rx.recv() => {
                flows.remove(&client);
            }
            r = host.recv_from(&mut buf) => {
                let (n, client) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!("udp recv: {e}");
                        continue;
                    }
                };
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
                let _ = flow.child.send(&buf[..n]).await;
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
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let idle_for = Duration::from_millis(now().saturating_sub(last.load(Ordering::Relaxed)));
        let Some(left) = IDLE.checked_sub(idle_for) else {
            let _ = gone.send(client);
            return;
        };
        // A timeout loops back to the idle check; ECONNREFUSED (an ICMP port unreachable
        // from the target) leaves the flow in place, like a NAT entry.
        if let Ok(Ok(n)) = tokio::time::timeout(left, child.recv(&mut buf)).await {
            last.store(now(), Ordering::Relaxed);
            let _ = host.send_to(&buf[..n], client).await;
        }
    }
}
