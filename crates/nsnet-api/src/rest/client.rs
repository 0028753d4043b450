//! A client for the API, over the Unix socket (what `rootlessctl` and `nsnet port` use).

use std::path::{Path, PathBuf};

use super::types::{PortSpec, PortStatus};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::types::Info;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The server's own message (`{"message":…}`), or the status and body when it sent none.
    #[error("{0}")]
    Server(String),
    #[error("unexpected reply: {0}")]
    Json(#[from] serde_json::Error),
}

/// One API endpoint.
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Self {
        Client {
            socket: socket.to_path_buf(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let conn = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://rootlesskit{path}"))
            .header("Host", "rootlesskit");
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request parts are valid");
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        conn.abort();
        if !status.is_success() {
            #[derive(serde::Deserialize)]
            struct Msg {
                message: String,
            }
            let msg = serde_json::from_slice::<Msg>(&bytes)
                .map(|m| m.message)
                .unwrap_or_else(|_| {
                    format!(
                        "unexpected HTTP status {status}, body={:?}",
                        String::from_utf8_lossy(&bytes)
                    )
                });
            return Err(ClientError::Server(msg));
        }
        Ok((status, bytes))
    }

    pub async fn info(&self) -> Result<Info, ClientError> {
        let (_, b) = self.call(Method::GET, "/v1/info", None).await?;
        Ok(serde_json::from_slice(&b)?)
    }

    pub async fn list_ports(&self) -> Result<Vec<PortStatus>, ClientError> {
        let (_, b) = self.call(Method::GET, "/v1/ports", None).await?;
        Ok(serde_json::from_slice::<Option<Vec<PortStatus>>>(&b)?.unwrap_or_default())
    }

    pub async fn add_port(&self, spec: &PortSpec) -> Result<PortStatus, ClientError> {
        let body = serde_json::to_string(spec)?;
        let (_, b) = self.call(Method::POST, "/v1/ports", Some(body)).await?;
        Ok(serde_json::from_slice(&b)?)
    }

    pub async fn remove_port(&self, id: u64) -> Result<(), ClientError> {
        self.call(Method::DELETE, &format!("/v1/ports/{id}"), None)
            .await
            .map(drop)
    }
}
