//! TCP forwarding: a listener in the host netns, and per accepted connection a socket made in
//! the child's netns, connected to the target, then [`crate::relay`].
//!
//! A refused or unreachable target resets the client (SO_LINGER 0 before close), so the
//! client sees what it would have seen connecting directly, instead of a silent EOF.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::ChildSockets;

fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

async fn connect_child(
    sockets: &dyn ChildSockets,
    target: SocketAddr,
) -> std::io::Result<TcpStream> {
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
) {
    match connect_child(sockets.as_ref(), target).await {
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

/// Accepts until `stop` fires (or its sender is dropped).
pub(crate) async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    sockets: Arc<dyn ChildSockets>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            r = listener.accept() => match r {
                Ok((client, peer)) => {
                    tokio::spawn(handle(client, peer, target, sockets.clone()));
                }
                Err(e) => {
                    // Out of descriptors or memory: back off rather than spin; the listener
                    // stays up and later connections succeed.
                    tracing::warn!("accept on {:?}: {e}", listener.local_addr());
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }
}
