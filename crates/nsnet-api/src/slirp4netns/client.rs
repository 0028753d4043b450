//! A client of slirp4netns's API socket, as RootlessKit's slirp4netns port driver talks to
//! it: one JSON request per connection, the write half closed, one JSON reply read to EOF.
//! An `{"error":{"desc":…}}` reply is [`ClientError::Reply`], printed as RootlessKit prints it
//! (Go's `%+v` of the error map).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request that failed, or slirp4netns's refusal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("slirp4netns API {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("slirp4netns API {}: unparsable reply {raw:?}: {source}", path.display())]
    Unparsable {
        path: PathBuf,
        raw: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("reply.Error: map[desc:{0}]")]
    Reply(String),
    #[error("unexpected reply from slirp4netns: {0}")]
    Unexpected(Value),
}

/// One host forward to add (`add_hostfwd`'s arguments; `proto` is `tcp` or `udp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostfwd {
    pub proto: String,
    pub host_addr: String,
    pub host_port: u16,
    pub guest_addr: Ipv4Addr,
    pub guest_port: u16,
}

/// The API socket at a path.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    pub fn new(path: PathBuf) -> Client {
        Client { path }
    }

    /// One request; the reply's `return` member (`null` when it has none, as for
    /// `list_hostfwd`, whose entries are then in [`Client::list_hostfwd`]).
    pub async fn call(&self, request: &Value) -> Result<Value, ClientError> {
        let reply = self.raw(request).await?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            let desc = err.get("desc").and_then(Value::as_str).unwrap_or_default();
            return Err(ClientError::Reply(desc.to_string()));
        }
        Ok(reply.get("return").cloned().unwrap_or(Value::Null))
    }

    async fn raw(&self, request: &Value) -> Result<Value, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut s = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(io)?;
        s.write_all((request.to_string() + "\n").as_bytes())
            .await
            .map_err(io)?;
        s.shutdown().await.map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(io)?;
        serde_json::from_slice(&raw).map_err(|source| ClientError::Unparsable {
            path: self.path.clone(),
            raw: String::from_utf8_lossy(&raw).into_owned(),
            source,
        })
    }

    /// `add_hostfwd`: the new forward's id.
    pub async fn add_hostfwd(&self, f: &Hostfwd) -> Result<u64, ClientError> {
        let ret = self
            .call(&json!({
                "execute": "add_hostfwd",
                "arguments": {
                    "proto": f.proto,
                    "host_addr": f.host_addr,
                    "host_port": f.host_port,
                    "guest_addr": f.guest_addr.to_string(),
                    "guest_port": f.guest_port,
                }
            }))
            .await?;
        ret.get("id")
            .and_then(Value::as_u64)
            .ok_or(ClientError::Unexpected(ret))
    }

    /// `remove_hostfwd`.
    pub async fn remove_hostfwd(&self, id: u64) -> Result<(), ClientError> {
        self.call(&json!({"execute": "remove_hostfwd", "arguments": {"id": id}}))
            .await
            .map(drop)
    }

    /// `list_hostfwd`: the `entries` array as slirp4netns sends it.
    pub async fn list_hostfwd(&self) -> Result<Vec<Value>, ClientError> {
        let reply = self.raw(&json!({"execute": "list_hostfwd"})).await?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            let desc = err.get("desc").and_then(Value::as_str).unwrap_or_default();
            return Err(ClientError::Reply(desc.to_string()));
        }
        match reply.get("entries").and_then(Value::as_array) {
            Some(a) => Ok(a.clone()),
            None => Err(ClientError::Unexpected(reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slirp4netns::{Api, Backend, Socket};
    use std::net::SocketAddrV4;
    use std::sync::{Arc, Mutex};

    /// Records what the server asked of the network; refuses host port 1.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Backend for Recorder {
        fn add(&mut self, id: u32, udp: bool, host: SocketAddrV4, guest: SocketAddrV4) -> bool {
            if host.port() == 1 {
                return false;
            }
            self.0
                .lock()
                .unwrap()
                .push(format!("add {id} {udp} {host} {guest}"));
            true
        }
        fn remove(&mut self, id: u32) {
            self.0.lock().unwrap().push(format!("remove {id}"));
        }
    }

    fn server() -> (tempfile::TempDir, Client, Recorder) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let sock = Socket::bind(&path).unwrap();
        let rec = Recorder::default();
        let api = Api::new(rec.clone(), Ipv4Addr::new(10, 0, 2, 100));
        std::thread::spawn(move || sock.serve(api));
        (dir, Client::new(path), rec)
    }

    fn fwd(proto: &str, host_port: u16, guest_port: u16) -> Hostfwd {
        Hostfwd {
            proto: proto.into(),
            host_addr: "127.0.0.1".into(),
            host_port,
            guest_addr: Ipv4Addr::new(10, 0, 2, 100),
            guest_port,
        }
    }

    #[tokio::test]
    async fn the_client_adds_lists_and_removes_through_the_server() {
        let (_dir, client, rec) = server();
        assert_eq!(client.list_hostfwd().await.unwrap(), Vec::<Value>::new());
        assert_eq!(client.add_hostfwd(&fwd("tcp", 8080, 80)).await.unwrap(), 1);
        assert_eq!(client.add_hostfwd(&fwd("udp", 5353, 53)).await.unwrap(), 2);
        let list = client.list_hostfwd().await.unwrap();
        assert_eq!(
            Value::Array(list).to_string(),
            r#"[{"guest_addr":"10.0.2.100","guest_port":80,"host_addr":"127.0.0.1","host_port":8080,"id":1,"proto":"tcp"},{"guest_addr":"10.0.2.100","guest_port":53,"host_addr":"127.0.0.1","host_port":5353,"id":2,"proto":"udp"}]"#
        );
        client.remove_hostfwd(1).await.unwrap();
        assert_eq!(
            *rec.0.lock().unwrap(),
            [
                "add 1 false 127.0.0.1:8080 10.0.2.100:80",
                "add 2 true 127.0.0.1:5353 10.0.2.100:53",
                "remove 1"
            ]
        );
    }

    #[tokio::test]
    async fn server_errors_reach_the_client_as_rootlesskit_prints_them() {
        let (_dir, client, _rec) = server();
        let e = client.remove_hostfwd(9).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "reply.Error: map[desc:bad request: remove_hostfwd: bad arguments.id]"
        );
        let e = client.add_hostfwd(&fwd("tcp", 1, 80)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "reply.Error: map[desc:bad request: add_hostfwd: slirp_add_hostfwd failed]"
        );
        let e = client.add_hostfwd(&fwd("sctp", 80, 80)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "reply.Error: map[desc:bad request: add_hostfwd: bad arguments.proto]"
        );
        let e = client
            .call(&json!({"execute": "reboot"}))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Reply(d) if d == "bad request: unknown execute"));
    }

    #[tokio::test]
    async fn no_server_is_an_io_error_naming_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        let e = Client::new(path.clone()).list_hostfwd().await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("slirp4netns API {}: ", path.display())),
            "{e}"
        );
    }
}
