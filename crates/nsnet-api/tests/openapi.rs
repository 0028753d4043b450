//! `openapi.yaml` against the server it describes: the same routes (every path and method in
//! the description is served, and the server serves nothing else), the statuses and media
//! types the description declares, examples that decode into the server's types and encode
//! back to the same JSON, and schemas that name every field those types send. What it cannot
//! check without a port driver (a 201 from a real publish) the live schemathesis run in the
//! nsnet crate's tests/ports.rs checks.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nsnet_api::rest::server::{Backend, ROUTES, router};
use nsnet_api::rest::{OPENAPI, PortSpec, PortStatus};
use nsnet_api::{Info, NetworkDriverInfo, PortDriverInfo};
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn spec() -> Value {
    serde_norway::from_str(OPENAPI).expect("openapi.yaml is YAML")
}

/// The path prefix of the description's server URL (`http://rootlesskit/v1` → `/v1`).
fn prefix(spec: &Value) -> String {
    let url = spec["servers"][0]["url"].as_str().expect("servers[0].url");
    let rest = url.split_once("://").expect("an absolute URL").1;
    rest.find('/')
        .map(|i| rest[i..].to_string())
        .unwrap_or_default()
}

/// Every (METHOD, full path) the description declares.
fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let prefix = prefix(spec);
    let paths = spec["paths"].as_object().expect("paths");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for (key, _) in item.as_object().expect("a path item") {
            if METHODS.contains(&key.as_str()) {
                ops.insert((key.to_uppercase(), format!("{prefix}{path}")));
            }
        }
    }
    ops
}

fn operation<'a>(spec: &'a Value, id: &str) -> &'a Value {
    spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .find(|op| op["operationId"] == id)
        .unwrap_or_else(|| panic!("no operation {id}"))
}

/// `#/components/…` resolved.
fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let ptr = r.strip_prefix('#').expect("a local $ref");
            resolve(spec, spec.pointer(ptr).unwrap_or_else(|| panic!("{r}")))
        }
        None => v,
    }
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    &spec["components"]["schemas"][name]
}

fn info() -> Info {
    Info {
        api_version: "1.1.2".into(),
        version: "3.2.0+nsnet.0.1.0".into(),
        state_dir: "/run/user/1000/nsnet/default".into(),
        child_pid: 10042,
        network_driver: Some(NetworkDriverInfo {
            driver: "builtin".into(),
            dns: vec!["10.0.2.3".into()],
            child_ip: Some("10.0.2.100".into()),
            dynamic_child_ip: true,
            ipv6: true,
        }),
        port_driver: Some(PortDriverInfo {
            driver: "builtin".into(),
            protos: Some(vec!["tcp".into(), "udp".into()]),
            disallow_loopback_child_ip: true,
            extra: [("sourceIPTransparentBackend".to_string(), "netlink".into())].into(),
        }),
    }
}

/// A request to the router of an instance without a port driver: (status, content type,
/// body).
async fn call(method: &str, path: &str, body: &str) -> (StatusCode, String, String) {
    let backend = Arc::new(Backend {
        info: info(),
        ports: None,
    });
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(format!("http://rootlesskit{path}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(backend).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
}

#[test]
fn the_description_names_exactly_the_servers_routes() {
    let spec = spec();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.as_str().to_string(), p.to_string()))
        .collect();
    assert_eq!(operations(&spec), served);
}

#[tokio::test]
async fn every_route_answers_with_a_status_and_media_type_the_description_declares() {
    let spec = spec();
    let prefix = prefix(&spec);
    for (path, item) in spec["paths"].as_object().unwrap() {
        let full = format!("{prefix}{path}");
        for method in METHODS {
            let Some(op) = item.get(method) else {
                // A known path with a method it does not serve: 405, never a handler.
                if method != "head" {
                    let (status, _, _) = call(&method.to_uppercase(), &concrete(&full), "").await;
                    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {full}");
                }
                continue;
            };
            let (status, ctype, body) = call(&method.to_uppercase(), &concrete(&full), "").await;
            let declared = resolve(&spec, &op["responses"][status.as_str()]);
            assert!(
                declared.is_object(),
                "{method} {full}: {status} is not declared"
            );
            match declared.get("content").and_then(Value::as_object) {
                None => assert!(body.is_empty(), "{method} {full}: a body: {body}"),
                Some(content) => {
                    let media = ctype.split(';').next().unwrap();
                    let entry = content
                        .get(media)
                        .unwrap_or_else(|| panic!("{method} {full}: {ctype} is not declared"));
                    let v: Value = serde_json::from_str(&body).unwrap();
                    let s = resolve(&spec, &entry["schema"]);
                    for field in s["required"].as_array().into_iter().flatten() {
                        assert!(
                            v.get(field.as_str().unwrap()).is_some(),
                            "{method} {full}: {body} lacks {field}"
                        );
                    }
                }
            }
        }
    }
    // Off the description: RootlessKit's (Go's) not-found page.
    for path in [
        "/",
        "/v1",
        "/v1/",
        "/v1/info/x",
        "/v1/ports/1/x",
        "/v2/info",
    ] {
        let (status, ctype, body) = call("GET", path, "").await;
        assert_eq!(
            (status, ctype.as_str(), body.as_str()),
            (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "404 page not found\n"
            ),
            "{path}"
        );
    }
}

/// `serde_json` of a value decoded from `example` as `T`, to compare with `example`.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(example: &Value) -> Value {
    let t: T = serde_json::from_value(example.clone()).unwrap_or_else(|e| panic!("{example}: {e}"));
    serde_json::to_value(&t).unwrap()
}

#[test]
fn every_example_round_trips_through_the_servers_types() {
    let spec = spec();
    let json = "application/json";
    let info = &operation(&spec, "getInfo")["responses"]["200"]["content"][json]["example"];
    assert_eq!(&round_trip::<Info>(info), info);
    let list = &operation(&spec, "listPorts")["responses"]["200"]["content"][json]["example"];
    assert_eq!(&round_trip::<Vec<PortStatus>>(list), list);
    let add = operation(&spec, "addPort");
    let req = &add["requestBody"]["content"][json]["example"];
    assert_eq!(&round_trip::<PortSpec>(req), req);
    let created = &add["responses"]["201"]["content"][json]["example"];
    assert_eq!(&round_trip::<PortStatus>(created), created);
    assert_eq!(created["spec"], *req, "the status keeps the spec as sent");
    let error = &spec["components"]["responses"]["Error"]["content"]["text/plain"]["example"];
    assert!(error["message"].is_string(), "{error}");
    // Every property example decodes as the schema's type says.
    for (name, s) in spec["components"]["schemas"].as_object().unwrap() {
        for (field, p) in s["properties"].as_object().into_iter().flatten() {
            if let (Some(ex), Some(ty)) = (p.get("example"), p["type"].as_str()) {
                let ok = match ty {
                    "string" => ex.is_string(),
                    "integer" => ex.is_i64(),
                    "boolean" => ex.is_boolean(),
                    "array" => ex.is_array(),
                    "object" => ex.is_object(),
                    _ => false,
                };
                assert!(ok, "{name}.{field}: example {ex} is not a {ty}");
            }
        }
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn properties(spec: &Value, name: &str) -> BTreeSet<String> {
    keys(&schema(spec, name)["properties"])
}

fn required(spec: &Value, name: &str) -> BTreeSet<String> {
    schema(spec, name)["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_schemas_name_every_field_the_types_send_and_require_what_is_always_sent() {
    let spec = spec();
    // Every field set: what the server can send at most.
    let full = serde_json::to_value(info()).unwrap();
    assert_eq!(keys(&full), properties(&spec, "Info"));
    assert_eq!(
        keys(&full["networkDriver"]),
        properties(&spec, "NetworkDriverInfo")
    );
    assert_eq!(
        keys(&full["portDriver"]),
        properties(&spec, "PortDriverInfo")
    );
    let spec_full = PortSpec {
        proto: "tcp".into(),
        parent_ip: "127.0.0.1".into(),
        parent_port: 8080,
        child_port: 80,
        child_ip: "127.0.0.1".into(),
    };
    let status = serde_json::to_value(PortStatus {
        id: 1,
        spec: spec_full,
    })
    .unwrap();
    assert_eq!(keys(&status), properties(&spec, "PortStatus"));
    assert_eq!(keys(&status["spec"]), properties(&spec, "PortSpec"));

    // Every omitempty field left out: what the server always sends.
    let bare = serde_json::to_value(Info {
        network_driver: Some(NetworkDriverInfo {
            driver: "none".into(),
            dns: vec![],
            child_ip: None,
            dynamic_child_ip: false,
            ipv6: false,
        }),
        port_driver: Some(PortDriverInfo {
            driver: "builtin".into(),
            protos: None,
            disallow_loopback_child_ip: false,
            extra: Default::default(),
        }),
        ..info()
    })
    .unwrap();
    let sent = |v: &Value| -> BTreeSet<String> {
        keys(v).into_iter().filter(|k| !v[k].is_object()).collect()
    };
    assert_eq!(sent(&bare), required(&spec, "Info"));
    assert_eq!(
        keys(&bare["networkDriver"]),
        required(&spec, "NetworkDriverInfo")
    );
    assert_eq!(keys(&bare["portDriver"]), required(&spec, "PortDriverInfo"));
    assert_eq!(keys(&status), required(&spec, "PortStatus"));
    // A spec the drivers accept has these; an empty one is refused (`invalid ParentPort: 0`).
    assert_eq!(
        required(&spec, "PortSpec"),
        ["proto", "parentPort", "childPort"]
            .map(String::from)
            .into()
    );
}
