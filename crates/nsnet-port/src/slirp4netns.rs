//! The `slirp4netns` port driver: published ports become slirp4netns host forwards.
//!
//! RootlessKit's `--port-driver=slirp4netns` (with `--net=slirp4netns`): nothing listens in
//! nsnet itself; each port is an `add_hostfwd` on slirp4netns's API socket
//! (`$STATE/.s4nn.sock`), so slirp4netns accepts on the host and opens the connection into
//! the namespace from its gateway address. The client's source address is lost to the
//! gateway's, the price of a user-mode stack on the inbound path; it is the slowest driver and
//! exists for compatibility.
//!
//! Reproduced from RootlessKit's driver: the ids are slirp4netns's hostfwd ids; only IPv4
//! (`tcp`, `tcp4`, `udp`, `udp4`; a `6` proto is `unsupported protocol "tcp6"`); the child
//! address defaults to the network driver's child IP; the same validation and conflict
//! rules as the builtin driver. The API protocol itself (one JSON request per connection, the
//! write half closed, one JSON reply read to EOF) is `nsnet_api::slirp4netns`'s client.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use nsnet_api::slirp4netns::client::{Client, ClientError, Hostfwd};

use crate::{PortError, PortSpec, PortStatus};

/// slirp4netns's answers keep the texts RootlessKit prints (`reply.Error: map[desc:…]`).
fn backend(e: ClientError) -> PortError {
    PortError::Backend(e.to_string())
}

/// The protocols this driver offers (RootlessKit's list for it).
pub const PROTOS: [&str; 4] = ["tcp", "tcp4", "udp", "udp4"];

/// Ports published through slirp4netns's API socket.
pub struct Slirp4netnsPorts {
    client: Client,
    child_ip: Ipv4Addr,
    ports: Mutex<BTreeMap<u64, PortStatus>>,
}

impl Slirp4netnsPorts {
    /// A driver talking to the slirp4netns whose API socket is `api_socket`, forwarding to
    /// `child_ip` unless a spec names its own child IP.
    pub fn new(api_socket: PathBuf, child_ip: Ipv4Addr) -> Self {
        Slirp4netnsPorts {
            client: Client::new(api_socket),
            child_ip,
            ports: Mutex::new(BTreeMap::new()),
        }
    }

    /// Validates `spec` as the builtin driver does, then asks slirp4netns for a forward.
    pub async fn add(&self, spec: PortSpec) -> Result<PortStatus, PortError> {
        {
            let ports = self.ports.lock().expect("port state lock");
            crate::validate(&spec, ports.iter().map(|(id, p)| (*id, &p.spec)))?;
        }
        if spec.proto.ends_with('6') {
            return Err(PortError::Syntax(format!(
                "unsupported protocol {:?}",
                spec.proto
            )));
        }
        let guest = match spec.child_ip.as_str() {
            "" => self.child_ip,
            text => match text.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(v4)) => v4,
                Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                    Some(v4) => v4,
                    None => {
                        return Err(PortError::Syntax(format!("unsupported IP (v6?): {text}")));
                    }
                },
                Err(_) => return Err(PortError::Syntax(format!("invalid IP: {text:?}"))),
            },
        };
        // validate() has checked both ports are 1–65535.
        let id = self
            .client
            .add_hostfwd(&Hostfwd {
                proto: spec.proto.trim_end_matches('4').to_string(),
                host_addr: spec.parent_ip.clone(),
                host_port: spec.parent_port as u16,
                guest_addr: guest,
                guest_port: spec.child_port as u16,
            })
            .await
            .map_err(backend)?;
        let status = PortStatus { id, spec };
        self.ports
            .lock()
            .expect("port state lock")
            .insert(id, status.clone());
        Ok(status)
    }

    pub fn list(&self) -> Vec<PortStatus> {
        let ports = self.ports.lock().expect("port state lock");
        ports.values().cloned().collect()
    }

    /// Removes a forward. As in RootlessKit, an id slirp4netns does not know is its error.
    pub async fn remove(&self, id: u64) -> Result<(), PortError> {
        self.client.remove_hostfwd(id).await.map_err(backend)?;
        self.ports.lock().expect("port state lock").remove(&id);
        Ok(())
    }
}
