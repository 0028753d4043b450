//! # nsnet-api — the REST API on `$STATE/api.sock`
//!
//! Layer: control. RootlessKit's API version 1.1.2 (RootlessKit v3), byte for byte where clients can tell
//! (status codes, `null` for an empty port list, `{"message":…}` error bodies with Go's
//! trailing newline, `404 page not found`), so Docker's, nerdctl's and RootlessKit's own
//! `rootlessctl` talk to nsnet unchanged:
//!
//! ```text
//! GET    /v1/info        200 {"apiVersion":"1.1.2","version":…,"stateDir":…,"childPID":N,
//!                             "networkDriver":{…},"portDriver":{…}}   (docs/api.md)
//! GET    /v1/ports       200 [{"id":1,"spec":{…}}] | null
//! POST   /v1/ports       201 {"id":N,"spec":{…}}            400 {"message":"conflict with ID 1"}
//! DELETE /v1/ports/{id}  200 (empty)                         400 {"message":"unknown id: 99"}
//! ```
//!
//! `openapi.yaml` beside this crate describes the same contract in OpenAPI 3 ([`rest::OPENAPI`]),
//! tested to name exactly the server's routes and types (`tests/openapi.rs`).
//!
//! [`rest::types`] is the wire contract (Info, PortSpec, PortStatus). [`rest::server`] serves a
//! `Backend`: static facts about the instance plus, when a port driver runs, that driver as a
//! [`rest::PortBackend`] (nsnet-port's `Ports`). [`rest::client`] is what `rootlessctl` and
//! `nsnet port` use. What it leaves to others: the port drivers and the rules of a port spec
//! (`nsnet-port`, which depends on this crate, not the other way), and the socket's lifetime
//! (`nsnet-run` binds it and removes it).
//!
//! [`slirp4netns`] is the other protocol nsnet speaks: slirp4netns's JSON API socket, server
//! and client.

pub mod pesto;
pub mod rest;
pub mod slirp4netns;

pub use rest::types::{Info, NetworkDriverInfo, PortDriverInfo, PortSpec, PortStatus};
pub use rest::{client, server};

/// The API version RootlessKit's clients expect.
pub const API_VERSION: &str = "1.1.2";

/// The RootlessKit release whose CLI and API behaviour nsnet reproduces.
pub const ROOTLESSKIT_COMPAT_VERSION: &str = "3.2.0";
