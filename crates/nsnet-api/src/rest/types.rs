//! The wire contract of RootlessKit's REST API 1.1.1: the JSON bodies, field names and
//! order as RootlessKit's Go structs marshal them. What a spec means (its text form, where it
//! listens, its conflicts) is nsnet-port's.

use serde::{Deserialize, Serialize};

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

/// RootlessKit's `port.Spec` (field order and names as its JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub proto: String,
    #[serde(rename = "parentIP", default, skip_serializing_if = "String::is_empty")]
    pub parent_ip: String,
    #[serde(rename = "parentPort", default, skip_serializing_if = "is_zero")]
    pub parent_port: i64,
    #[serde(rename = "childPort", default, skip_serializing_if = "is_zero")]
    pub child_port: i64,
    #[serde(rename = "childIP", default, skip_serializing_if = "String::is_empty")]
    pub child_ip: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A published port (`port.Status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub id: u64,
    pub spec: PortSpec,
}
