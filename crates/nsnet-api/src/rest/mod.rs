//! RootlessKit's REST API: the wire types, the server and the client.
//!
//! The server reaches the port driver only through [`PortBackend`], the three calls the API
//! makes of it (RootlessKit's `port.Manager`), so this crate does not know which drivers exist.

pub mod client;
pub mod server;
pub mod types;

use std::future::Future;
use std::pin::Pin;

pub use types::{PortSpec, PortStatus};

/// The OpenAPI 3 description of this API (`crates/nsnet-api/openapi.yaml`): RootlessKit's
/// contract as [`server`] serves it, for clients and for schemathesis. Tested against the
/// server's routes and types (`tests/openapi.rs`) and against a live instance (the nsnet
/// crate's `tests/ports.rs`).
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

/// A failure the API reports as `400 {"message": …}`: the driver's own text.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// What the server needs of a port driver: `POST`, `GET` and `DELETE /v1/ports`.
pub trait PortBackend: Send + Sync {
    /// Publishes a port (validation and conflicts are the driver's).
    fn add(
        &self,
        spec: PortSpec,
    ) -> Pin<Box<dyn Future<Output = Result<PortStatus, BackendError>> + Send + '_>>;
    /// Every published port, by id.
    fn list(&self) -> Vec<PortStatus>;
    /// Stops publishing `id`.
    fn remove(
        &self,
        id: u64,
    ) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + '_>>;
}
