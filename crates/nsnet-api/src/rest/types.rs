//! The wire contract of RootlessKit's REST API 1.1.2 (RootlessKit v3): the JSON bodies, field
//! names and order as RootlessKit's Go structs marshal them, `omitempty` where Go has it (a
//! false boolean, an empty list or map is left out), so a client comparing bytes or decoding
//! with Go's `encoding/json` sees what RootlessKit sends. What a spec means (its text form,
//! where it listens, its conflicts) is nsnet-port's.

use std::collections::BTreeMap;

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
    /// The child's address may change (RootlessKit sets it for no driver nsnet has).
    #[serde(rename = "dynamicChildIP", default, skip_serializing_if = "is_false")]
    pub dynamic_child_ip: bool,
    /// The network routes IPv6 (`--ipv6` where the driver honours it; API 1.1.2).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ipv6: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDriverInfo {
    pub driver: String,
    /// The protos the driver serves. Not `omitempty` in RootlessKit: an empty list is `null`.
    #[serde(default)]
    pub protos: Option<Vec<String>>,
    /// Clients must not ask for a loopback `childIP`, and use `networkDriver.childIP`
    /// instead (the slirp4netns and pesto drivers forward to the child's tap address).
    #[serde(
        rename = "disallowLoopbackChildIP",
        default,
        skip_serializing_if = "is_false"
    )]
    pub disallow_loopback_child_ip: bool,
    /// Driver-specific facts, e.g. the builtin driver's `sourceIPTransparentBackend`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

fn is_false(b: &bool) -> bool {
    !*b
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

#[cfg(test)]
mod tests {
    use super::*;

    // The shapes of RootlessKit v3's `/v1/info`, as its Go structs marshal them.
    #[test]
    fn info_marshals_as_rootlesskit_v3() {
        let mut info = Info {
            api_version: "1.1.2".into(),
            version: "3.2.0".into(),
            state_dir: "/run/user/1000/dockerd-rootless".into(),
            child_pid: 42,
            network_driver: Some(NetworkDriverInfo {
                driver: "slirp4netns".into(),
                dns: vec!["10.0.2.3".into()],
                child_ip: Some("10.0.2.100".into()),
                dynamic_child_ip: false,
                ipv6: true,
            }),
            port_driver: Some(PortDriverInfo {
                driver: "slirp4netns".into(),
                protos: Some(vec![
                    "tcp".into(),
                    "tcp4".into(),
                    "udp".into(),
                    "udp4".into(),
                ]),
                disallow_loopback_child_ip: true,
                extra: BTreeMap::new(),
            }),
        };
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(
            json,
            r#"{"apiVersion":"1.1.2","version":"3.2.0","stateDir":"/run/user/1000/dockerd-rootless","childPID":42,"networkDriver":{"driver":"slirp4netns","dns":["10.0.2.3"],"childIP":"10.0.2.100","ipv6":true},"portDriver":{"driver":"slirp4netns","protos":["tcp","tcp4","udp","udp4"],"disallowLoopbackChildIP":true}}"#
        );
        assert_eq!(serde_json::from_str::<Info>(&json).unwrap(), info);

        let pd = info.port_driver.as_mut().unwrap();
        pd.driver = "builtin".into();
        pd.disallow_loopback_child_ip = false;
        pd.protos = None;
        pd.extra
            .insert("sourceIPTransparentBackend".into(), "nft".into());
        info.network_driver.as_mut().unwrap().ipv6 = false;
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            r#"{"apiVersion":"1.1.2","version":"3.2.0","stateDir":"/run/user/1000/dockerd-rootless","childPID":42,"networkDriver":{"driver":"slirp4netns","dns":["10.0.2.3"],"childIP":"10.0.2.100"},"portDriver":{"driver":"builtin","protos":null,"extra":{"sourceIPTransparentBackend":"nft"}}}"#
        );
    }

    // Docker decodes what it needs and ignores the rest; an older RootlessKit's reply (no
    // 1.1.2 fields) still decodes.
    #[test]
    fn info_decodes_without_the_new_fields() {
        let i: Info = serde_json::from_str(
            r#"{"version":"3.1.0","apiVersion":"1.1.2","stateDir":"/run/rootlesskit","childPID":0,"networkDriver":{"driver":"host"}}"#,
        )
        .unwrap();
        let n = i.network_driver.unwrap();
        assert_eq!(
            (n.driver.as_str(), n.ipv6, n.child_ip),
            ("host", false, None)
        );
        assert!(i.port_driver.is_none());
    }
}
