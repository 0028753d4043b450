//! TCP forwarding: a listener in the host netns, and per accepted connection a socket made in
//! the child's netns, connected to the target, then [`crate::relay`].
//!
//! A refused or unreachable target resets the client (SO_LINGER 0 before close), so the
//! client sees what it would have seen connecting directly, instead of a silent EOF.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::{ChildSockets, unmapped};

fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

async fn connect_child(
    sockets: &dyn ChildSockets,
    target: SocketAddr,
    peer: SocketAddr,
    mark: Option<u32>,
) -> std::io::Result<TcpStream> {
    let source = unmapped(peer);
    // Loopback clients are left as they are (RootlessKit's rule: inside, 127.0.0.1 is the
    // child's own). A mark is only given for targets local to the child (the manager knows
    // which), the only ones that can answer through the mark route.
    if let Some(mark) = mark
        && !source.ip().is_loopback()
        && source.is_ipv4() == target.is_ipv4()
    {
        // The mark routes the server's replies to the client's address back to this socket
        // (the parent's routing setup: `fwmark MARK lookup MARK`, a local default route in
        // that table, and `tcp_fwmark_accept` so the server's accepted socket inherits it).
        match crate::transparent_socket(sockets, Type::STREAM, target, source, Some(mark)) {
            Ok(s) => {
                let std: std::net::TcpStream = s.into();
                match TcpSocket::from_std_stream(std).connect(target).await {
                    Ok(c) => return Ok(c),
                    Err(e) => tracing::debug!(%source, %target, "transparent connect: {e}"),
                }
            }
            Err(e) => tracing::debug!(%source, %target, "transparent socket: {e}"),
        }
    }
    let s = sockets.socket(Domain::for_address(target), Type::STREAM)?;
    s.set_nonblocking(true)?;
    let std: std::net::TcpStream = s.into();
    TcpSocket::from_std_stream(std).connect(target).await
}

async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    target: SocketAddr,
    sockets: Arc<dyn ChildSockets>,
    mark: Option<u32>,
    _place: OwnedSemaphorePermit,
) {
    match connect_child(sockets.as_ref(), target, peer, mark).await {
        Ok(child) => {
            if let Err(e) = crate::relay::relay(client, child).await {
                tracing::debug!(%peer, %target, "relay ended: {e}");
            }
        }
        Err(e) => {
            tracing::debug!(%peer, %target, "cannot connect inside the child: {e}");
            reset(client);
        }
    }
}

/// Accepts until `stop` fires (or its sender is dropped), each connection only once it has a
/// place in `budget` (see `crate::connection_budget`).
pub(crate) async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    sockets: Arc<dyn ChildSockets>,
    mark: Option<u32>,
    budget: Arc<Semaphore>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let place = tokio::select! {
            _ = &mut stop => return,
            p = budget.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        tokio::select! {
            _ = &mut stop => return,
            r = listener.accept() => match r {
                Ok((client, peer)) => {
                    tokio::spawn(handle(client, peer, target, sockets.clone(), mark, place));
                }
                Err(e) => {
                    // Out of descriptors or memory all the same (other ports, UDP flows):
                    // back off rather than spin; the listener stays up and later connections
                    // succeed.
                    tracing::warn!("accept on {:?}: {e}", listener.local_addr());
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }
}
