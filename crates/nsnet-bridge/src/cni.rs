//! The CNI 1.1 personality (`nsnet-bridge` as a plugin binary): the reference `bridge`
//! plugin with `host-local` IPAM folded in, over this crate's attach/detach and persistent
//! IPAM.
//!
//! Mapping of a bridge conflist onto a [`Network`] + [`Plan`]: `name` is the network (stored
//! like nsnet's own networks, so the nft sync covers it), `bridge` (default `cni0`), `mtu`,
//! `ipMasq` → masquerade, `isGateway`/`isDefaultGateway` → gateway address on the bridge,
//! `isDefaultGateway` → default route, `hairpinMode`, and from `ipam` (type `host-local`):
//! one IPv4 `subnet` (or `ranges: [[{subnet, gateway}]]`, plus at most one IPv6 /64 range
//! set: dual-stack, [`ipam_ranges`]), `routes` (either family), `dataDir` (the store root;
//! default the user's data dir). Commands: ADD, DEL (idempotent), CHECK, VERSION,
//! STATUS, GC. Errors are `{cniVersion, code, msg}` on stdout with the spec's codes.
//!
//! What a container runtime adds under Kubernetes (through Flannel's meta-plugin, which
//! passes both on to its delegate): `CNI_ARGS` (`IgnoreUnknown=1;K8S_POD_NAMESPACE=…;…`),
//! read pair by pair as the reference pair reads it ([`cni_args`]: the same refusals and
//! messages, `IP=` honoured, `MAC=` refused), and `runtimeConfig` (`portMappings`,
//! `bandwidth`, `dns`, `cgroupPath`, the pod's annotations), ignored as the reference ignores
//! it — those are the `portmap` and `bandwidth` plugins' in a conflist — except the two keys
//! the reference honours (`mac`, `ips`, also as `args.cni`), refused.
//!
//! Every ADD first frees the reservations of its network whose netns is gone (`reclaim`):
//! containerd never calls GC, so a runtime killed between a pod's death and its DEL would
//! otherwise leak the address for good.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::attach::{AttachRequest, Plan, attach_with, gc_networks, host_veth_name, reclaim};
use crate::{Error, Network, Store, Subnet, Subnet6};

pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const LATEST: &str = "1.1.0";

/// CNI error codes (spec section "Error").
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
}

/// What the plugin prints and its exit status.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub status: i32,
}

#[derive(Debug)]
struct CniError {
    code: u32,
    msg: String,
}

fn fail(code: u32, msg: impl Into<String>) -> CniError {
    CniError {
        code,
        msg: msg.into(),
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> CniError {
        let code = match &e {
            Error::Io { .. } | Error::Netlink(_) | Error::Sysctl { .. } => code::IO,
            Error::NoNft => code::NOT_AVAILABLE,
            Error::Corrupt { .. } => code::DECODE,
            Error::NotNetns { .. } => code::UNKNOWN_CONTAINER,
            Error::Exhausted { .. } => code::TRY_AGAIN,
            _ => code::INVALID_CONFIG,
        };
        fail(code, e.to_string())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetConf {
    cni_version: String,
    name: String,
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    hairpin_mode: bool,
    mtu: Option<u32>,
    ipam: Option<IpamConf>,
    dns: Option<Value>,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<ValidAttachment>>,
    /// The runtime's capability arguments. The reference pair reads `mac` (bridge) and `ips`
    /// (host-local) from it and nothing else, so Kubernetes' `portMappings`, `bandwidth`,
    /// `dns`, `cgroupPath` and `io.kubernetes.cri.pod-annotations` are ignored here as there
    /// (they are the `portmap` and `bandwidth` plugins' business in a chain).
    #[serde(default)]
    runtime_config: RuntimeConfig,
    /// `args.cni`: the config-borne twin of `CNI_ARGS` (`mac`, `ips`).
    #[serde(default)]
    args: ConfArgs,
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    mac: Option<Value>,
    ips: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfArgs {
    #[serde(default)]
    cni: RuntimeConfig,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpamConf {
    #[serde(rename = "type")]
    kind: String,
    subnet: Option<String>,
    gateway: Option<Ipv4Addr>,
    ranges: Option<Vec<Vec<RangeConf>>>,
    #[serde(default)]
    routes: Vec<RouteConf>,
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RangeConf {
    subnet: String,
    gateway: Option<IpAddr>,
    range_start: Option<String>,
    range_end: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RouteConf {
    dst: String,
    gw: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

/// The parsed config: the network, how attachments are wired, and the store.
struct Parsed {
    conf: NetConf,
    plan: Plan,
    store: Store,
    /// Routes as the result reports them: ipam routes as configured (a missing `gw` stays
    /// missing, as host-local reports it), then the default route of `isDefaultGateway`.
    result_routes: Vec<Value>,
}

fn stable_id(name: &str) -> String {
    (0u64..4)
        .map(|seed| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
            for b in name.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            format!("{h:016x}")
        })
        .collect()
}

fn parse(stdin: &[u8]) -> Result<Parsed, CniError> {
    let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
        fail(
            code::DECODE,
            format!("cannot decode the network config: {e}"),
        )
    })?;
    if !SUPPORTED.contains(&conf.cni_version.as_str()) {
        return Err(fail(
            code::INCOMPATIBLE_VERSION,
            format!(
                "incompatible CNI versions; config is \"{}\", plugin supports {:?}",
                conf.cni_version,
                &SUPPORTED[..]
            ),
        ));
    }
    crate::network::check_name(&conf.name).map_err(CniError::from)?;
    // What the reference honours and nsnet does not: refused rather than silently dropped,
    // so a runtime asking for a fixed MAC or address never gets another one.
    for (what, set) in [
        ("runtimeConfig.mac", &conf.runtime_config.mac),
        ("runtimeConfig.ips", &conf.runtime_config.ips),
        ("args.cni.mac", &conf.args.cni.mac),
        ("args.cni.ips", &conf.args.cni.ips),
    ] {
        if set.is_some() {
            return Err(fail(
                code::UNSUPPORTED_FIELD,
                format!("{what} is not supported (use CNI_ARGS IP= for a static IPv4 address)"),
            ));
        }
    }
    let ipam = conf
        .ipam
        .as_ref()
        .ok_or_else(|| fail(code::INVALID_CONFIG, "the config has no \"ipam\" section"))?;
    if ipam.kind != "host-local" && ipam.kind != "nsnet" {
        return Err(fail(
            code::UNSUPPORTED_FIELD,
            format!(
                "ipam type {:?} is not supported (nsnet-bridge embeds host-local style IPAM: use \"host-local\")",
                ipam.kind
            ),
        ));
    }
    let (subnet, gateway, subnet6) = ipam_ranges(ipam)?;
    let gateway6 = subnet6.map(|s| s.gateway());
    let mut routes = Vec::new();
    let mut routes6 = Vec::new();
    let mut result_routes = Vec::new();
    let bad_gw = |gw: &IpAddr, dst: &str| {
        fail(
            code::INVALID_CONFIG,
            format!("route {dst}: gateway {gw} is not of the destination's family"),
        )
    };
    for r in &ipam.routes {
        let mut v = json!({"dst": r.dst});
        if let Some(gw) = r.gw {
            v["gw"] = json!(gw.to_string());
        }
        if r.dst.contains(':') {
            // An IPv6 route of a dual-stack config: it needs the IPv6 range's address and
            // gateway to route from.
            let (dst, len) = parse_cidr6(&r.dst)?;
            let gw6 = gateway6.ok_or_else(|| {
                fail(
                    code::INVALID_CONFIG,
                    format!("route {}: the config has no IPv6 range", r.dst),
                )
            })?;
            let gw = match r.gw {
                None => gw6,
                Some(IpAddr::V6(g)) => g,
                Some(g) => return Err(bad_gw(&g, &r.dst)),
            };
            routes6.push((dst, len, gw));
            v["dst"] = json!(format!("{dst}/{len}"));
        } else {
            let dst: Subnet = r
                .dst
                .parse()
                .map_err(|e: String| fail(code::INVALID_CONFIG, format!("route: {e}")))?;
            let gw = match r.gw {
                None => gateway,
                Some(IpAddr::V4(g)) => g,
                Some(g) => return Err(bad_gw(&g, &r.dst)),
            };
            routes.push((dst, Some(gw)));
            v["dst"] = json!(dst.to_string());
        }
        result_routes.push(v);
    }
    // host-local reports the ipam routes, then bridge appends a default route per family
    // it has a gateway for (IPv4 first).
    let default = Subnet::new(Ipv4Addr::UNSPECIFIED, 0).expect("valid");
    if conf.is_default_gateway && !routes.iter().any(|(d, _)| *d == default) {
        routes.push((default, Some(gateway)));
        result_routes.push(json!({"dst": "0.0.0.0/0", "gw": gateway.to_string()}));
    }
    if let Some(gw6) = gateway6
        && conf.is_default_gateway
        && !routes6.iter().any(|(_, len, _)| *len == 0)
    {
        routes6.push((Ipv6Addr::UNSPECIFIED, 0, gw6));
        result_routes.push(json!({"dst": "::/0", "gw": gw6.to_string()}));
    }
    let bridge = conf.bridge.clone().unwrap_or_else(|| "cni0".into());
    let net = Network {
        name: conf.name.clone(),
        id: stable_id(&conf.name),
        bridge,
        subnet,
        gateway,
        internal: false,
        mtu: conf.mtu.unwrap_or(1500),
        masquerade: conf.ip_masq,
        subnet6,
        ip6_by_host_number: true,
    };
    let store = match &ipam.data_dir {
        Some(d) => Store::at(d),
        None => Store::default_location()?,
    };
    Ok(Parsed {
        plan: Plan {
            net,
            routes,
            routes6,
            gateway_on_bridge: conf.is_gateway || conf.is_default_gateway,
            hairpin: conf.hairpin_mode,
        },
        conf,
        store,
        result_routes,
    })
}

/// The IPAM block's address ranges: one IPv4 `subnet` (with `gateway`), or `ranges` with
/// one IPv4 range set and at most one IPv6 one (Flannel's dual-stack rendering:
/// `[[{subnet: v4}], [{subnet: v6}]]`), one range each. The IPv6 range must be a /64 with
/// the gateway host-local defaults to (`::1`): the IPv6 address follows the IPv4 one
/// ([`Network::ip6_for`]), so there is no second allocator to honour more.
fn ipam_ranges(ipam: &IpamConf) -> Result<(Subnet, Ipv4Addr, Option<Subnet6>), CniError> {
    let unsupported = |m: String| fail(code::UNSUPPORTED_FIELD, m);
    let v4 = |text: &str, gw: Option<Ipv4Addr>| -> Result<(Subnet, Ipv4Addr), CniError> {
        let subnet: Subnet = text
            .parse()
            .map_err(|e: String| fail(code::INVALID_CONFIG, e))?;
        let gateway = gw.unwrap_or(subnet.first_host());
        if !subnet.contains(gateway) {
            return Err(fail(
                code::INVALID_CONFIG,
                format!("gateway {gateway} is outside subnet {subnet}"),
            ));
        }
        Ok((subnet, gateway))
    };
    let sets = match (&ipam.subnet, &ipam.ranges) {
        (Some(s), None) => {
            let (n, g) = v4(s, ipam.gateway)?;
            return Ok((n, g, None));
        }
        (None, Some(r)) => r,
        _ => {
            return Err(fail(
                code::INVALID_CONFIG,
                "ipam needs exactly one of \"subnet\" or \"ranges\"",
            ));
        }
    };
    let mut four = None;
    let mut six = None;
    for set in sets {
        let [r] = set.as_slice() else {
            return Err(unsupported(
                "only one range per range set is supported (ranges: [[{\"subnet\": …}], …])".into(),
            ));
        };
        if r.range_start.is_some() || r.range_end.is_some() {
            return Err(unsupported(
                "rangeStart/rangeEnd are not supported: the whole subnet is allocated".into(),
            ));
        }
        if r.subnet.contains(':') {
            let (base, len) = parse_cidr6(&r.subnet)?;
            let s6 = Subnet6::new(base)
                .ok()
                .filter(|_| len == 64)
                .ok_or_else(|| {
                    unsupported(format!(
                        "IPv6 range {}: only a /64 without host bits is supported",
                        r.subnet
                    ))
                })?;
            match r.gateway {
                None => {}
                Some(IpAddr::V6(g)) if g == s6.gateway() => {}
                Some(g) => {
                    return Err(unsupported(format!(
                        "IPv6 range {s6}: gateway {g} is not supported (it is {})",
                        s6.gateway()
                    )));
                }
            }
            if six.replace(s6).is_some() {
                return Err(unsupported("only one IPv6 range set is supported".into()));
            }
        } else {
            let gw = match r.gateway {
                None => None,
                Some(IpAddr::V4(g)) => Some(g),
                Some(g) => {
                    return Err(fail(
                        code::INVALID_CONFIG,
                        format!("range {}: gateway {g} is not IPv4", r.subnet),
                    ));
                }
            };
            if four.replace(v4(&r.subnet, gw)?).is_some() {
                return Err(unsupported("only one IPv4 range set is supported".into()));
            }
        }
    }
    let (subnet, gateway) = four.ok_or_else(|| {
        unsupported("an IPv4 range is required (IPv6-only ranges are not supported)".into())
    })?;
    Ok((subnet, gateway, six))
}

/// `ADDR/LEN` of IPv6, host bits cleared as host-local reports a route's destination.
fn parse_cidr6(text: &str) -> Result<(Ipv6Addr, u8), CniError> {
    let bad = || {
        fail(
            code::INVALID_CONFIG,
            format!("{text:?} is not an IPv6 CIDR"),
        )
    };
    let (a, l) = text.split_once('/').ok_or_else(bad)?;
    let a: Ipv6Addr = a.parse().map_err(|_| bad())?;
    let l: u8 = l.parse().ok().filter(|l| *l <= 128).ok_or_else(bad)?;
    let mask = if l == 0 { 0 } else { u128::MAX << (128 - l) };
    Ok((Ipv6Addr::from(u128::from(a) & mask), l))
}

fn env<'a>(vars: &'a HashMap<String, String>, names: &[&str]) -> Result<Vec<&'a str>, CniError> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| vars.get(*n).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(fail(
            code::INVALID_ENV,
            format!("required env variables [{}] missing", missing.join(",")),
        ));
    }
    Ok(names.iter().map(|n| vars[*n].as_str()).collect())
}

/// Writes the config's network into the store (so the nft sync and `nsnet network ls` see
/// it); refuses to change the subnet under live allocations.
fn register(p: &Parsed) -> Result<(), CniError> {
    let _lock = p.store.lock()?;
    let net = &p.plan.net;
    match crate::network::read_network(&p.store, &net.name)? {
        Some(old) if old == *net => Ok(()),
        Some(old) => {
            if old.subnet != net.subnet && !crate::allocations(&p.store, &net.name)?.is_empty() {
                return Err(fail(
                    code::INVALID_CONFIG,
                    format!(
                        "network {} is in use with subnet {}; the config now says {}",
                        net.name, old.subnet, net.subnet
                    ),
                ));
            }
            crate::network::save(&p.store, net).map_err(Into::into)
        }
        None => crate::network::save(&p.store, net).map_err(Into::into),
    }
}

fn result_json(p: &Parsed, a: &crate::Attachment, host_mac: &str, bridge_mac: &str) -> Value {
    let v1 = !p.conf.cni_version.starts_with("0.");
    let mut ip = json!({
        "address": format!("{}/{}", a.ip, a.prefix_len),
        "gateway": p.plan.net.gateway.to_string(),
        "interface": 2,
    });
    if !v1 {
        ip["version"] = json!("4");
    }
    let mut ips = vec![ip];
    if let (Some(ip6), Some(s6)) = (a.ip6, p.plan.net.subnet6) {
        let mut ip = json!({
            "address": format!("{ip6}/{}", s6.prefix_len()),
            "gateway": s6.gateway().to_string(),
            "interface": 2,
        });
        if !v1 {
            ip["version"] = json!("6");
        }
        ips.push(ip);
    }
    let routes = &p.result_routes;
    json!({
        "cniVersion": p.conf.cni_version,
        "interfaces": [
            {"name": a.bridge, "mac": bridge_mac},
            {"name": a.host_veth, "mac": host_mac},
            {"name": a.ifname, "mac": a.mac, "sandbox": a.netns.display().to_string()},
        ],
        "ips": ips,
        "routes": routes,
        "dns": p.conf.dns.clone().unwrap_or_else(|| json!({})),
    })
}

fn add(vars: &HashMap<String, String>, stdin: &[u8]) -> Result<String, CniError> {
    let p = parse(stdin)?;
    let e = env(vars, &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?;
    let (id, netns, ifname) = (e[0], PathBuf::from(e[1]), e[2]);
    let want = cni_args(vars)?.ip;
    register(&p)?;
    // Containerd never calls GC, and a runtime killed before its DEL leaves the address
    // reserved: without this a node's range runs out one crash at a time.
    reclaim(&p.store, &p.plan.net.name)?;
    let req = AttachRequest {
        network: &p.plan.net.name,
        container_id: id,
        netns: &netns,
        ifname,
        static_ip: want.map(Into::into),
    };
    let a = attach_with(&p.store, &p.plan, &req, want)?;
    let mut nl = nsnet_netlink::Netlink::open().map_err(Error::from)?;
    let mac = |nl: &mut nsnet_netlink::Netlink, n: &str| -> Result<String, CniError> {
        Ok(nl
            .link(n)
            .map_err(Error::from)?
            .map(|l| l.mac)
            .unwrap_or_default())
    };
    let host_mac = mac(&mut nl, &a.host_veth)?;
    let bridge_mac = mac(&mut nl, &a.bridge)?;
    Ok(serde_json::to_string(&result_json(&p, &a, &host_mac, &bridge_mac)).expect("json"))
}

/// What `CNI_ARGS` asks of the plugin.
#[derive(Debug, Default, PartialEq, Eq)]
struct CniArgs {
    ip: Option<Ipv4Addr>,
}

/// Reads `CNI_ARGS` as the reference pair does: `bridge` and then `host-local` each parse it
/// with libcni's `types.LoadArgs` into their own argument struct (bridge knows `IgnoreUnknown`
/// and `MAC`, host-local `IgnoreUnknown` and `IP`), and every pair neither of them knows is an
/// error unless `IgnoreUnknown` is true. That is why a container runtime always sends
/// `IgnoreUnknown=1` before its `K8S_POD_*` pairs, and why even `IP=` alone fails (bridge
/// does not know it). The messages are the reference's; DEL and CHECK parse it too.
fn cni_args(vars: &HashMap<String, String>) -> Result<CniArgs, CniError> {
    let args = match vars.get("CNI_ARGS") {
        None => return Ok(CniArgs::default()),
        Some(a) if a.is_empty() => return Ok(CniArgs::default()),
        Some(a) => a.as_str(),
    };
    let err = |msg: String| fail(code::INVALID_ENV, msg);
    // One LoadArgs pass over the known keys of one plugin.
    let pass = |known: &[&str]| -> Result<Vec<(String, String)>, CniError> {
        let mut ignore = false;
        let mut unknown = Vec::new();
        let mut seen = Vec::new();
        for pair in args.split(';') {
            let kv: Vec<&str> = pair.split('=').collect();
            let [k, v] = kv[..] else {
                return Err(err(format!("ARGS: invalid pair {pair:?}")));
            };
            if k == "IgnoreUnknown" {
                // Go's UnmarshallableBool: "1"/"true" and "0"/"false", any case.
                ignore = match v.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(err(format!(
                            "ARGS: error parsing value of pair {pair:?}: boolean unmarshal error: invalid input {v}"
                        )));
                    }
                };
            } else if known.contains(&k) {
                seen.push((k.to_string(), v.to_string()));
            } else {
                unknown.push(pair);
            }
        }
        if !unknown.is_empty() && !ignore {
            let list: Vec<String> = unknown.iter().map(|u| format!("{u:?}")).collect();
            return Err(err(format!("ARGS: unknown args [{}]", list.join(" "))));
        }
        Ok(seen)
    };
    let bridge = pass(&["MAC"])?;
    let ipam = pass(&["IP"])?;
    let mut out = CniArgs::default();
    // The last pair of a key wins, as in the reference (each one overwrites the field).
    for (_, v) in ipam {
        // An empty value is a nil address: no request (Go's net.IP accepts it).
        out.ip = match v.as_str() {
            "" => None,
            v => match v.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) => Some(ip),
                Ok(std::net::IpAddr::V6(_)) => {
                    return Err(fail(
                        code::UNSUPPORTED_FIELD,
                        format!("CNI_ARGS IP={v}: static IPv6 addresses are not supported"),
                    ));
                }
                Err(_) => {
                    return Err(err(format!(
                        "ARGS: error parsing value of pair \"IP={v}\": invalid IP address {v}"
                    )));
                }
            },
        };
    }
    if let Some((_, v)) = bridge.last() {
        return Err(fail(
            code::UNSUPPORTED_FIELD,
            format!("CNI_ARGS MAC={v}: setting the container's MAC address is not supported"),
        ));
    }
    Ok(out)
}

fn del(vars: &HashMap<String, String>, stdin: &[u8]) -> Result<String, CniError> {
    let p = parse(stdin)?;
    let e = env(vars, &["CNI_CONTAINERID", "CNI_IFNAME"])?;
    cni_args(vars)?;
    // CNI_NETNS may be empty or already gone on DEL; the host end is found by name anyway.
    crate::detach(&p.store, &p.plan.net.name, e[0], None, e[1])?;
    Ok(String::new())
}

fn check(vars: &HashMap<String, String>, stdin: &[u8]) -> Result<String, CniError> {
    let p = parse(stdin)?;
    let e = env(vars, &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?;
    let (id, netns, ifname) = (e[0], PathBuf::from(e[1]), e[2]);
    cni_args(vars)?;
    let prev = p.conf.prev_result.as_ref().ok_or_else(|| {
        fail(
            code::INVALID_CONFIG,
            "CHECK needs the ADD result as prevResult in the config",
        )
    })?;
    let key = host_veth_name(&p.plan.net.name, id, ifname);
    let rec = crate::allocations(&p.store, &p.plan.net.name)?
        .into_iter()
        .find(|a| a.host_veth == key)
        .ok_or_else(|| {
            fail(
                code::UNKNOWN_CONTAINER,
                format!(
                    "container {id} has no address on network {}",
                    p.plan.net.name
                ),
            )
        })?;
    let want = format!("{}/{}", rec.ip, p.plan.net.subnet.prefix_len());
    let listed = prev["ips"]
        .as_array()
        .is_some_and(|ips| ips.iter().any(|i| i["address"] == want.as_str()));
    if !listed {
        return Err(fail(
            code::INVALID_CONFIG,
            format!("prevResult does not list {want}, the address container {id} holds"),
        ));
    }
    let mut nl = nsnet_netlink::Netlink::open().map_err(Error::from)?;
    let host = nl.link(&key).map_err(Error::from)?.ok_or_else(|| {
        fail(
            code::UNKNOWN_CONTAINER,
            format!("host interface {key} of container {id} is missing"),
        )
    })?;
    let br = nl
        .link(&p.plan.net.bridge)
        .map_err(Error::from)?
        .ok_or_else(|| fail(code::IO, format!("bridge {} is missing", p.plan.net.bridge)))?;
    if host.master != Some(br.index) {
        return Err(fail(
            code::IO,
            format!("{key} is not a port of bridge {}", br.name),
        ));
    }
    let ns = crate::nsfile::open(&netns)?;
    if ns.ino != rec.netns_ino {
        return Err(fail(
            code::UNKNOWN_CONTAINER,
            format!(
                "{} is not the network namespace container {id} was attached in",
                netns.display()
            ),
        ));
    }
    use std::os::fd::AsFd;
    let mut inner = nsnet_netlink::Netlink::open_in(ns.fd.as_fd()).map_err(Error::from)?;
    let ctr = inner.link(ifname).map_err(Error::from)?.ok_or_else(|| {
        fail(
            code::UNKNOWN_CONTAINER,
            format!("interface {ifname} is missing in {}", netns.display()),
        )
    })?;
    if ctr.mtu != p.plan.net.mtu {
        return Err(fail(
            code::IO,
            format!("{ifname} has MTU {}, want {}", ctr.mtu, p.plan.net.mtu),
        ));
    }
    Ok(String::new())
}

fn status(stdin: &[u8]) -> Result<String, CniError> {
    let p = parse(stdin)?;
    let probe = p.store.root().join("ipam").join(&p.plan.net.name);
    crate::lock_file(&probe.join("lock")).map_err(|e| {
        fail(
            code::NOT_AVAILABLE,
            format!("the IPAM store is unusable: {e}"),
        )
    })?;
    if p.conf.ip_masq {
        crate::nft::nft_path().map_err(|e| fail(code::NOT_AVAILABLE, e.to_string()))?;
    }
    Ok(String::new())
}

fn gc(stdin: &[u8]) -> Result<String, CniError> {
    let p = parse(stdin)?;
    let valid: std::collections::HashSet<(String, String)> = p
        .conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|v| (v.container_id.clone(), v.ifname.clone()))
        .collect();
    if crate::network::read_network(&p.store, &p.plan.net.name)?.is_none() {
        return Ok(String::new());
    }
    gc_networks(&p.store, Some(&p.plan.net.name), &|a| {
        valid.contains(&(a.container_id.clone(), a.ifname.clone()))
    })?;
    Ok(String::new())
}

fn version_of(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(String::from))
        .filter(|v| SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST.into())
}

/// The STATUS answer of a plugin whose network is down: error 50 ("the plugin is not
/// available"), in the config's version. The front end decides that (it knows instances).
pub fn not_available(stdin: &[u8], msg: &str) -> Outcome {
    error_outcome(stdin, &fail(code::NOT_AVAILABLE, msg))
}

fn error_outcome(stdin: &[u8], e: &CniError) -> Outcome {
    Outcome {
        stdout: json!({"cniVersion": version_of(stdin), "code": e.code, "msg": e.msg}).to_string(),
        status: 1,
    }
}

/// Runs one CNI command: `vars` is the environment, `stdin` the network config.
pub fn run(vars: &HashMap<String, String>, stdin: &[u8]) -> Outcome {
    let cmd = vars.get("CNI_COMMAND").map(String::as_str).unwrap_or("");
    let r = match cmd {
        "VERSION" => Ok(json!({
            "cniVersion": version_of(stdin),
            "supportedVersions": &SUPPORTED[..],
        })
        .to_string()),
        "ADD" => add(vars, stdin),
        "DEL" => del(vars, stdin),
        "CHECK" => check(vars, stdin),
        "STATUS" => status(stdin),
        "GC" => gc(stdin),
        "" => Err(fail(
            code::INVALID_ENV,
            "required env variables [CNI_COMMAND] missing",
        )),
        other => Err(fail(
            code::INVALID_ENV,
            format!("unknown CNI_COMMAND {other:?} (want ADD, DEL, CHECK, VERSION, STATUS or GC)"),
        )),
    };
    match r {
        Ok(out) => Outcome {
            stdout: out,
            status: 0,
        },
        Err(e) => error_outcome(stdin, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const CONF: &str = r#"{
        "cniVersion": "1.1.0", "name": "testnet", "type": "nsnet-bridge",
        "bridge": "cni-test0", "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
        "hairpinMode": true, "mtu": 1400,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]],
                 "routes": [{"dst": "192.168.5.0/24"}], "dataDir": "/nonexistent/x"}
    }"#;

    #[test]
    fn version_answers_with_the_supported_list() {
        let o = run(
            &vars(&[("CNI_COMMAND", "VERSION")]),
            b"{\"cniVersion\":\"0.4.0\"}",
        );
        assert_eq!(o.status, 0);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }

    #[test]
    fn configs_map_onto_networks_and_plans() {
        let p = parse(CONF.as_bytes()).unwrap();
        let n = &p.plan.net;
        assert_eq!(n.bridge, "cni-test0");
        assert_eq!(n.subnet.to_string(), "10.88.0.0/16");
        assert_eq!(n.mtu, 1400);
        assert!(n.masquerade && p.plan.hairpin && p.plan.gateway_on_bridge);
        let routes: Vec<String> = p
            .plan
            .routes
            .iter()
            .map(|(d, g)| format!("{d} {}", g.unwrap()))
            .collect();
        assert_eq!(routes, ["192.168.5.0/24 10.88.0.1", "0.0.0.0/0 10.88.0.1"]);
        assert_eq!(p.store.root(), std::path::Path::new("/nonexistent/x"));
        assert_eq!(stable_id("testnet").len(), 64);
        // Defaults: bridge cni0, gateway .1, no masquerade, no hairpin, no default route.
        let p = parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{"type":"host-local","subnet":"10.9.0.0/24","dataDir":"/d"}}"#,
        )
        .unwrap();
        assert_eq!(p.plan.net.bridge, "cni0");
        assert_eq!(p.plan.net.gateway, Ipv4Addr::new(10, 9, 0, 1));
        assert!(!p.plan.net.masquerade && !p.plan.hairpin && !p.plan.gateway_on_bridge);
        assert!(p.plan.routes.is_empty());
    }

    #[test]
    fn errors_carry_spec_codes() {
        let code_of = |cmd: &str, env: &[(&str, &str)], conf: &str| -> (u64, String) {
            let mut v = vars(env);
            v.insert("CNI_COMMAND".into(), cmd.into());
            let o = run(&v, conf.as_bytes());
            assert_eq!(o.status, 1, "{}", o.stdout);
            let e: Value = serde_json::from_str(&o.stdout).unwrap();
            assert!(e["cniVersion"].is_string());
            (
                e["code"].as_u64().unwrap(),
                e["msg"].as_str().unwrap().into(),
            )
        };
        assert_eq!(code_of("ADD", &[], "{").0, code::DECODE as u64);
        let bad_version = CONF.replace("\"1.1.0\"", "\"9.9.9\"");
        assert_eq!(
            code_of("ADD", &[], &bad_version).0,
            code::INCOMPATIBLE_VERSION as u64
        );
        let (c, m) = code_of("ADD", &[("CNI_IFNAME", "eth0")], CONF);
        assert_eq!(c, code::INVALID_ENV as u64);
        assert_eq!(
            m,
            "required env variables [CNI_CONTAINERID,CNI_NETNS] missing"
        );
        assert_eq!(code_of("FOO", &[], CONF).0, code::INVALID_ENV as u64);
        let dhcp = CONF.replace("\"host-local\"", "\"dhcp\"");
        assert_eq!(code_of("ADD", &[], &dhcp).0, code::UNSUPPORTED_FIELD as u64);
        let no_ipam = r#"{"cniVersion":"1.1.0","name":"n","type":"x"}"#;
        assert_eq!(code_of("ADD", &[], no_ipam).0, code::INVALID_CONFIG as u64);
        let (c, _) = code_of(
            "ADD",
            &[
                ("CNI_CONTAINERID", "c"),
                ("CNI_NETNS", "/proc/self/ns/net"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "IP=nope"),
            ],
            CONF,
        );
        assert_eq!(c, code::INVALID_ENV as u64);
    }

    #[test]
    fn cni_args_are_read_as_the_reference_reads_them() {
        let args = |a: &str| cni_args(&vars(&[("CNI_ARGS", a)]));
        let msg = |a: &str| args(a).unwrap_err().msg;
        let k8s = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1-2";
        assert_eq!(args(k8s).unwrap(), CniArgs::default());
        assert_eq!(args("").unwrap(), CniArgs::default());
        assert_eq!(
            args("K8S_POD_NAME=p;IgnoreUnknown=true;IP=10.4.0.9")
                .unwrap()
                .ip,
            Some(Ipv4Addr::new(10, 4, 0, 9))
        );
        assert_eq!(args("IgnoreUnknown=TRUE;IP=").unwrap().ip, None);
        assert_eq!(
            msg("K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"),
            r#"ARGS: unknown args ["K8S_POD_NAMESPACE=default" "K8S_POD_NAME=p"]"#
        );
        // bridge parses first and does not know IP.
        assert_eq!(msg("IP=10.4.0.9"), r#"ARGS: unknown args ["IP=10.4.0.9"]"#);
        assert_eq!(
            msg("IgnoreUnknown=0;FOO=1"),
            r#"ARGS: unknown args ["FOO=1"]"#
        );
        assert_eq!(msg("IgnoreUnknown=1;"), r#"ARGS: invalid pair """#);
        assert_eq!(msg("a=b=c"), r#"ARGS: invalid pair "a=b=c""#);
        assert_eq!(
            msg("IgnoreUnknown=yes"),
            r#"ARGS: error parsing value of pair "IgnoreUnknown=yes": boolean unmarshal error: invalid input yes"#
        );
        assert_eq!(
            msg("IgnoreUnknown=1;IP=nope"),
            r#"ARGS: error parsing value of pair "IP=nope": invalid IP address nope"#
        );
        assert_eq!(
            args("IgnoreUnknown=1;IP=nope").unwrap_err().code,
            code::INVALID_ENV
        );
        assert_eq!(
            args("IgnoreUnknown=1;MAC=02:00:00:00:00:09")
                .unwrap_err()
                .code,
            code::UNSUPPORTED_FIELD
        );
        assert_eq!(
            args("IgnoreUnknown=1;IP=fd00::9").unwrap_err().code,
            code::UNSUPPORTED_FIELD
        );
    }

    #[test]
    fn kubernetes_capability_args_are_ignored_and_static_requests_refused() {
        let k8s = CONF.replace(
            "\"ipam\"",
            r#""runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}],
                "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 1000, "egressBurst": 2000},
                "dns": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"], "options": ["ndots:5"]},
                "cgroupPath": "/kubepods/besteffort/pod1", "io.kubernetes.cri.pod-annotations": {"a": "b"}},
               "ipam""#,
        );
        let p = parse(k8s.as_bytes()).unwrap();
        assert!(
            p.conf.dns.is_none(),
            "runtimeConfig.dns is not the result's dns"
        );
        for (k, v) in [
            ("runtimeConfig", r#"{"mac": "02:00:00:00:00:01"}"#),
            ("runtimeConfig", r#"{"ips": ["10.88.0.9/16"]}"#),
            ("args", r#"{"cni": {"ips": ["10.88.0.9"]}}"#),
        ] {
            let c = CONF.replace("\"ipam\"", &format!("\"{k}\": {v}, \"ipam\""));
            let e = parse(c.as_bytes()).err().unwrap();
            assert_eq!(e.code, code::UNSUPPORTED_FIELD, "{}", e.msg);
        }
    }

    #[test]
    fn flannels_dual_stack_ranges_map_onto_an_ipv6_network() {
        let conf = |ranges: &str, routes: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"cbr0","type":"bridge","isDefaultGateway":true,"ipam":{{"type":"host-local","ranges":{ranges},"routes":{routes},"dataDir":"/d"}}}}"#
            )
        };
        let p = parse(
            conf(
                r#"[[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00:10:244:1::/64"}]]"#,
                r#"[{"dst":"10.244.0.0/16"},{"dst":"fd00:10:244::/56"}]"#,
            )
            .as_bytes(),
        )
        .unwrap();
        let n = &p.plan.net;
        assert_eq!(n.subnet6.unwrap().to_string(), "fd00:10:244:1::/64");
        assert_eq!(
            n.ip6_for(Ipv4Addr::new(10, 244, 1, 2)),
            Some("fd00:10:244:1::2".parse().unwrap())
        );
        let gw6: Ipv6Addr = "fd00:10:244:1::1".parse().unwrap();
        assert_eq!(
            p.plan.routes6,
            [
                ("fd00:10:244::".parse().unwrap(), 56, gw6),
                (Ipv6Addr::UNSPECIFIED, 0, gw6)
            ]
        );
        assert_eq!(
            p.result_routes,
            [
                json!({"dst": "10.244.0.0/16"}),
                json!({"dst": "fd00:10:244::/56"}),
                json!({"dst": "0.0.0.0/0", "gw": "10.244.1.1"}),
                json!({"dst": "::/0", "gw": "fd00:10:244:1::1"}),
            ]
        );
        // IPv6 first is the same network.
        let p2 = parse(
            conf(
                r#"[[{"subnet":"fd00:10:244:1::/64"}],[{"subnet":"10.244.1.0/24"}]]"#,
                "[]",
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(p2.plan.net.subnet6, n.subnet6);
        for (ranges, routes, code) in [
            (
                r#"[[{"subnet":"fd00:10:244:1::/64"}]]"#,
                "[]",
                code::UNSUPPORTED_FIELD,
            ),
            (
                r#"[[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00:1::/56"}]]"#,
                "[]",
                code::UNSUPPORTED_FIELD,
            ),
            (
                r#"[[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00:1::/64","gateway":"fd00:1::9"}]]"#,
                "[]",
                code::UNSUPPORTED_FIELD,
            ),
            (
                r#"[[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00:1::/64"}],[{"subnet":"fd00:2::/64"}]]"#,
                "[]",
                code::UNSUPPORTED_FIELD,
            ),
            (
                r#"[[{"subnet":"10.244.1.0/24"}]]"#,
                r#"[{"dst":"fd00::/8"}]"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"[[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00:1::/64"}]]"#,
                r#"[{"dst":"fd00::/8","gw":"10.244.1.1"}]"#,
                code::INVALID_CONFIG,
            ),
        ] {
            let e = parse(conf(ranges, routes).as_bytes()).err().unwrap();
            assert_eq!(e.code, code, "{ranges} {routes}: {}", e.msg);
        }
    }
}
