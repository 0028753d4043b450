//! The API server (axum on a Unix socket).

use std::sync::Arc;

use super::{PortBackend, PortSpec};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};

use super::types::Info;

/// What the API serves.
pub struct Backend {
    pub info: Info,
    pub ports: Option<Arc<dyn PortBackend>>,
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// RootlessKit's httputil.WriteError: a JSON body, served as text/plain, ending in a newline.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "message": message.to_string() }).to_string() + "\n";
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn no_port_driver() -> Response {
    error(StatusCode::BAD_REQUEST, "no PortDriver is available")
}

async fn get_info(State(b): State<Arc<Backend>>) -> Response {
    json(
        StatusCode::OK,
        serde_json::to_string(&b.info).expect("info serializes"),
    )
}

async fn get_ports(State(b): State<Arc<Backend>>) -> Response {
    let Some(pm) = b.ports.as_deref() else {
        return no_port_driver();
    };
    let list = pm.list();
    // Go marshals a nil slice as null, and RootlessKit's empty list is a nil slice.
    let body = if list.is_empty() {
        "null".to_string()
    } else {
        serde_json::to_string(&list).expect("ports serialize")
    };
    json(StatusCode::OK, body)
}

async fn post_port(State(b): State<Arc<Backend>>, body: Bytes) -> Response {
    let Some(pm) = b.ports.as_deref() else {
        return no_port_driver();
    };
    let spec: PortSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match pm.add(spec).await {
        Ok(st) => json(
            StatusCode::CREATED,
            serde_json::to_string(&st).expect("status serializes"),
        ),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn delete_port(State(b): State<Arc<Backend>>, Path(id): Path<String>) -> Response {
    let Some(pm) = b.ports.as_deref() else {
        return no_port_driver();
    };
    let id: u64 = match id.parse() {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad id {id}: {e}")),
    };
    match pm.remove(id).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// Every route of API 1.1.2, as the router matches them. [`router`] is built from this table
/// and nothing else, and `openapi.yaml` beside this crate ([`super::OPENAPI`]) is tested to
/// describe exactly these.
pub const ROUTES: [(Method, &str); 4] = [
    (Method::GET, "/v1/info"),
    (Method::GET, "/v1/ports"),
    (Method::POST, "/v1/ports"),
    (Method::DELETE, "/v1/ports/{id}"),
];

fn endpoint(method: &Method, path: &str) -> MethodRouter<Arc<Backend>> {
    match (method.as_str(), path) {
        ("GET", "/v1/info") => get(get_info),
        ("GET", "/v1/ports") => get(get_ports),
        ("POST", "/v1/ports") => post(post_port),
        ("DELETE", "/v1/ports/{id}") => delete(delete_port),
        _ => unreachable!("a route in ROUTES without a handler: {method} {path}"),
    }
}

/// The routes of API 1.1.2 ([`ROUTES`]); anything else is `404 page not found`.
pub fn router(backend: Arc<Backend>) -> Router {
    ROUTES
        .iter()
        .fold(Router::new(), |r, (method, path)| {
            r.route(path, endpoint(method, path))
        })
        .fallback(not_found)
        .with_state(backend)
}

/// Serves until the listener fails (the instance ends by dropping the runtime).
pub async fn serve(listener: tokio::net::UnixListener, backend: Arc<Backend>) {
    if let Err(e) = axum::serve(listener, router(backend)).await {
        tracing::warn!("api server: {e}");
    }
}
