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
//! rules as the builtin driver. The API protocol is one JSON request per connection, the
//! write half closed, one JSON reply read to EOF.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{PortError, PortSpec, PortStatus};

/// The protocols this driver offers (RootlessKit's list for it).
pub const PROTOS: [&str; 4] = ["tcp", "tcp4", "udp", "udp4"];

/// Ports published through slirp4netns's API socket.
pub struct Slirp4netnsPorts {
    api_socket: PathBuf,
    child_ip: Ipv4Addr,
    ports: Mutex<BTreeMap<u64, PortStatus>>,
}

impl Slirp4netnsPorts {
    /// A driver talking to the slirp4netns whose API socket is `api_socket`, forwarding to
    /// `child_ip` unless a spec names its own child IP.
    pub fn new(api_socket: PathBuf, child_ip: Ipv4Addr) -> Self {
        Slirp4netnsPorts {
            api_socket,
            child_ip,
            ports: Mutex::new(BTreeMap::new()),
        }
    }

    async fn call(&self, request: Value) -> Result<Value, PortError> {
        let fail = |e: std::io::Error| {
            PortError::Backend(format!(
                "slirp4netns API {}: {e}",
                self.api_socket.display()
            ))
        };
        let mut s = tokio::net::UnixStream::connect(&self.api_socket)
            .await
            .map_err(fail)?;
        s.write_all((request.to_string() + "\n").as_bytes())
            .await
            .map_err(fail)?;
        s.shutdown().await.map_err(fail)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(fail)?;
        let reply: Value = serde_json::from_slice(&raw).map_err(|e| {
            PortError::Backend(format!(
                "slirp4netns API {}: unparsable reply {:?}: {e}",
                self.api_socket.display(),
                String::from_utf8_lossy(&raw)
            ))
        })?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            // RootlessKit prints Go's %+v of the error map: map[desc:…].
            let desc = err.get("desc").and_then(Value::as_str).unwrap_or_default();
            return Err(PortError::Backend(format!("reply.Error: map[desc:{desc}]")));
        }
        Ok(reply.get("return").cloned().unwrap_or(Value::Null))
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
        let ret = self
            .call(json!({
                "execute": "add_hostfwd",
                "arguments": {
                    "proto": spec.proto.trim_end_matches('4'),
                    "host_addr": spec.parent_ip,
                    "host_port": spec.parent_port,
                    "guest_addr": guest.to_string(),
                    "guest_port": spec.child_port,
                }
            }))
            .await?;
        let id = ret.get("id").and_then(Value::as_u64).ok_or_else(|| {
            PortError::Backend(format!("unexpected reply from slirp4netns: {ret}"))
        })?;
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
        self.call(json!({"execute": "remove_hostfwd", "arguments": {"id": id}}))
            .await?;
        self.ports.lock().expect("port state lock").remove(&id);
        Ok(())
    }
}
