//! # nsnet-api — the REST API on `$STATE/api.sock`
//!
//! Layer: control. RootlessKit's API version 1.1.1, byte for byte where clients can tell
//! (status codes, `null` for an empty port list, `{"message":…}` error bodies with Go's
//! trailing newline, `404 page not found`), so Docker's, nerdctl's and RootlessKit's own
//! `rootlessctl` talk to nsnet unchanged:
//!
//! ```text
//! GET    /v1/info        200 {"apiVersion":"1.1.1","version":…,"stateDir":…,"childPID":N,
//!                             "networkDriver":{…},"portDriver":{…}}
//! GET    /v1/ports       200 [{"id":1,"spec":{…}}] | null
//! POST   /v1/ports       201 {"id":N,"spec":{…}}            400 {"message":"conflict with ID 1"}
//! DELETE /v1/ports/{id}  200 (empty)                         400 {"message":"unknown id: 99"}
//! ```
//!
//! The server serves a [`Backend`]: static facts about the instance plus, when a port driver
//! runs, its `nsnet_port::PortManager`. The [`client`] is what `rootlessctl` and `nsnet port`
//! use. What it leaves to others: the port driver itself, and the socket's lifetime
//! (`nsnet-run` binds it and removes it).
//!
//! [`slirp4netns`] is the other protocol nsnet speaks: slirp4netns's JSON API socket, server
//! and client.

pub mod client;
pub mod pesto;
pub mod server;
pub mod slirp4netns;

use serde::{Deserialize, Serialize};

/// The API version RootlessKit's clients expect.
pub const API_VERSION: &str = "1.1.1";

/// The RootlessKit release whose CLI and API behaviour nsnet reproduces.
pub const ROOTLESSKIT_COMPAT_VERSION: &str = "2.3.4";

/// `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub version: String,
    #[serde(rename = "stateDir")]
    pub state_dir: String,
    #[serde(rename = "childPID")]
    pub child_pid: i64,
    #[serde(
        rename = "networkDriver",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_driver: Option<NetworkDriverInfo>,
    #[serde(
        rename = "portDriver",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub port_driver: Option<PortDriverInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDriverInfo {
    pub driver: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(rename = "childIP", default, skip_serializing_if = "Option::is_none")]
    pub child_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDriverInfo {
    pub driver: String,
    pub protos: Vec<String>,
}
