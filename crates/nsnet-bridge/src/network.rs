//! Networks: one JSON file each under `<store>/networks/NAME.json`.
//!
//! The default network `bridge` (bridge `nerdctl0`, 10.4.0.0/24, nerdctl's defaults) is
//! created on first use; further networks take the next free 10.4.N.0/24 and a bridge named
//! `br-` + the first 12 hex digits of their id, as nerdctl names them.
//!
//! IPv6 is per network (`--ipv6`): a /64 whose `::1` is the gateway on the bridge. Without
//! `--subnet6` it is the unique-local `fd00:4:N::/64` where N is the third octet of a
//! 10.4.N.0/24 subnet (so 10.4.3.0/24 pairs with fd00:4:3::/64), else the first free N from
//! 256 up. All of them sit in fd00:4::/32, away from the builtin stack's uplink fd00::/64.

use std::net::{Ipv4Addr, Ipv6Addr};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Store, Subnet, Subnet6, io_err, write_atomic};

pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "nerdctl0";
const DEFAULT_MTU: u32 = 1500;

/// A bridge network as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// The Linux bridge in the child netns.
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// No outbound NAT, no default route in the containers, no forwarding off the bridge.
    #[serde(default)]
    pub internal: bool,
    pub mtu: u32,
    /// Outbound NAT for the subnet (off for internal networks, and for CNI configs with
    /// `ipMasq: false`).
    #[serde(default = "yes")]
    pub masquerade: bool,
    /// The IPv6 /64 of an IPv6 network (gateway `::1` of it on the bridge); files written
    /// before IPv6 existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Subnet6>,
    /// How a container's IPv6 address follows its IPv4 one: false (nsnet's networks) puts the
    /// whole IPv4 address in the low 32 bits ([`Subnet6::host_for`]); true (CNI configs) puts
    /// its host number there ([`Subnet6::host_at`]), the address host-local hands out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ip6_by_host_number: bool,
}

impl Network {
    /// The IPv6 address that goes with IPv4 address `v4`, on IPv6 networks.
    pub fn ip6_for(&self, v4: Ipv4Addr) -> Option<Ipv6Addr> {
        let s6 = self.subnet6?;
        Some(if self.ip6_by_host_number {
            s6.host_at(self.subnet, v4)
        } else {
            s6.host_for(v4)
        })
    }
}

fn yes() -> bool {
    true
}

/// What `nsnet network create` may choose; everything else is derived.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    pub mtu: Option<u32>,
    /// Give the network an IPv6 /64 too.
    pub ipv6: bool,
    /// That /64 (default: derived from the IPv4 subnet, see the module comment); only with
    /// `ipv6`.
    pub subnet6: Option<Subnet6>,
}

pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadNetworkName(name.to_string()))
    }
}

fn path(store: &Store, name: &str) -> PathBuf {
    store.networks_dir().join(format!("{name}.json"))
}

fn random_id() -> Result<String> {
    let p = std::path::Path::new("/dev/urandom");
    let mut buf = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open(p).map_err(io_err(p))?, &mut buf)
        .map_err(io_err(p))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn read(store: &Store, name: &str) -> Result<Option<Network>> {
    let p = path(store, name);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: p,
                msg: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&p)(e)),
    }
}

fn default_network() -> Network {
    Network {
        name: DEFAULT_NETWORK.into(),
        // A fixed id: the default network is the same everywhere (nerdctl derives it too).
        id: "17f29b073143d8cd97b5bbe492bdeffec1c5fee55cc1fe2112c8b9335f8b6121".into(),
        bridge: DEFAULT_BRIDGE.into(),
        subnet: Subnet::new(Ipv4Addr::new(10, 4, 0, 0), 24).expect("valid"),
        gateway: Ipv4Addr::new(10, 4, 0, 1),
        internal: false,
        mtu: DEFAULT_MTU,
        masquerade: true,
        subnet6: None,
        ip6_by_host_number: false,
    }
}

/// The network called `name`; the default network is created on first use.
pub fn inspect_network(store: &Store, name: &str) -> Result<Network> {
    check_name(name)?;
    if let Some(n) = read(store, name)? {
        return Ok(n);
    }
    if name != DEFAULT_NETWORK {
        return Err(Error::NoSuchNetwork(name.to_string()));
    }
    let _lock = store.lock()?;
    if let Some(n) = read(store, name)? {
        return Ok(n);
    }
    let n = default_network();
    save(store, &n)?;
    Ok(n)
}

pub(crate) fn read_network(store: &Store, name: &str) -> Result<Option<Network>> {
    read(store, name)
}

pub(crate) fn save(store: &Store, n: &Network) -> Result<()> {
    let text = serde_json::to_vec_pretty(n).expect("networks serialise");
    write_atomic(&path(store, &n.name), &text)
}

/// Every network, by name, the default one included.
pub fn list_networks(store: &Store) -> Result<Vec<Network>> {
    inspect_network(store, DEFAULT_NETWORK)?;
    stored_networks(store)
}

/// The networks that have a file (the default one only once it was used): what the nft
/// rules and gc cover, so a CNI-only data directory never grows nsnet's default network.
pub(crate) fn stored_networks(store: &Store) -> Result<Vec<Network>> {
    let dir = store.networks_dir();
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    for e in rd {
        let e = e.map_err(io_err(&dir))?;
        let fname = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = fname.strip_suffix(".json")
            && !fname.starts_with('.')
            && let Some(n) = read(store, name)?
        {
            out.push(n);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Creates a network file (the bridge itself is created on first attach, in whichever child
/// netns the attach runs).
pub fn create_network(store: &Store, name: &str, opts: &NetworkOptions) -> Result<Network> {
    check_name(name)?;
    let existing = list_networks(store)?;
    // (list_networks wrote the default network, so its subnet is never handed out twice.)
    let _lock = store.lock()?;
    if read(store, name)?.is_some() {
        return Err(Error::NetworkExists(name.to_string()));
    }
    if let Some(mtu) = opts.mtu
        && !(68..=65535).contains(&mtu)
    {
        return Err(Error::Invalid(format!(
            "MTU {mtu} is out of range (68-65535)"
        )));
    }
    let subnet = match opts.subnet {
        Some(s) => {
            if let Some(o) = existing.iter().find(|n| n.subnet.overlaps(&s)) {
                return Err(Error::Invalid(format!(
                    "subnet {s} overlaps network {} ({})",
                    o.name, o.subnet
                )));
            }
            s
        }
        None => (1..=255u8)
            .map(|i| Subnet::new(Ipv4Addr::new(10, 4, i, 0), 24).expect("valid"))
            .find(|s| !existing.iter().any(|n| n.subnet.overlaps(s)))
            .ok_or_else(|| {
                Error::Invalid("no free subnet left in 10.4.0.0/16; pass --subnet".into())
            })?,
    };
    let gateway = match opts.gateway {
        Some(g) => {
            if !subnet.contains(g) || g == subnet.base() || g == subnet.broadcast() {
                return Err(Error::Invalid(format!(
                    "gateway {g} is not a host address of subnet {subnet}"
                )));
            }
            g
        }
        None => subnet.first_host(),
    };
    let subnet6 = match (opts.ipv6, opts.subnet6) {
        (false, None) => None,
        (false, Some(s6)) => {
            return Err(Error::Invalid(format!(
                "--subnet6 {s6} needs --ipv6 (add --ipv6 to make an IPv6 network)"
            )));
        }
        (true, Some(s6)) => {
            if let Some(o) = existing.iter().find(|n| n.subnet6 == Some(s6)) {
                return Err(Error::Invalid(format!(
                    "subnet6 {s6} overlaps network {} ({s6}); pick another /64",
                    o.name
                )));
            }
            Some(s6)
        }
        (true, None) => Some(default_subnet6(&subnet, &existing)?),
    };
    let id = random_id()?;
    let n = Network {
        name: name.to_string(),
        bridge: format!("br-{}", &id[..12]),
        id,
        subnet,
        gateway,
        internal: opts.internal,
        mtu: opts.mtu.unwrap_or(DEFAULT_MTU),
        masquerade: !opts.internal,
        subnet6,
        ip6_by_host_number: false,
    };
    save(store, &n)?;
    Ok(n)
}

/// `fd00:4:N::/64` for 10.4.N.0/24, else (or when taken) the first free N from 256 up.
fn default_subnet6(subnet: &Subnet, existing: &[Network]) -> Result<Subnet6> {
    let o = subnet.base().octets();
    let preferred = (o[0] == 10 && o[1] == 4 && subnet.prefix_len() >= 24).then_some(o[2] as u16);
    let make = |n: u16| {
        Subnet6::new(std::net::Ipv6Addr::new(0xfd00, 4, n, 0, 0, 0, 0, 0)).expect("a /64 base")
    };
    preferred
        .into_iter()
        .chain(256..=u16::MAX)
        .map(make)
        .find(|s| !existing.iter().any(|n| n.subnet6 == Some(*s)))
        .ok_or_else(|| Error::Invalid("no free subnet left in fd00:4::/32; pass --subnet6".into()))
}

/// Removes a network that no container uses: its file, its (empty) IPAM directory, and its
/// bridge and rules in the current netns. The default network cannot be removed.
pub fn remove_network(store: &Store, name: &str) -> Result<()> {
    check_name(name)?;
    if name == DEFAULT_NETWORK {
        return Err(Error::Invalid(format!(
            "the default network {DEFAULT_NETWORK} cannot be removed"
        )));
    }
    let _lock = store.lock()?;
    let Some(n) = read(store, name)? else {
        return Err(Error::NoSuchNetwork(name.to_string()));
    };
    let ipam = crate::ipam::Ipam::lock(store, name)?;
    let live = ipam.allocations()?;
    if let Some(first) = live.first() {
        return Err(Error::InUse {
            network: name.to_string(),
            count: live.len(),
            first: first.container_id.clone(),
        });
    }
    let p = path(store, name);
    std::fs::remove_file(&p).map_err(io_err(&p))?;
    ipam.destroy()?;
    let mut nl = nsnet_netlink::Netlink::open()?;
    nl.delete_link_named(&n.bridge)?;
    crate::nft::sync(store)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_appears_and_next_ones_take_free_subnets() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        let b = inspect_network(&st, "bridge").unwrap();
        assert_eq!(b.bridge, "nerdctl0");
        assert_eq!(b.subnet.to_string(), "10.4.0.0/24");
        assert_eq!(b.gateway, Ipv4Addr::new(10, 4, 0, 1));
        let a = create_network(&st, "a", &NetworkOptions::default()).unwrap();
        assert_eq!(a.subnet.to_string(), "10.4.1.0/24");
        assert_eq!(a.gateway, Ipv4Addr::new(10, 4, 1, 1));
        assert!(a.bridge.starts_with("br-") && a.bridge.len() == 15);
        let c = create_network(
            &st,
            "c",
            &NetworkOptions {
                subnet: Some("10.4.2.0/24".parse().unwrap()),
                gateway: Some("10.4.2.254".parse().unwrap()),
                internal: true,
                mtu: Some(9000),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(c.internal && c.mtu == 9000);
        let next = create_network(&st, "d", &NetworkOptions::default()).unwrap();
        assert_eq!(next.subnet.to_string(), "10.4.3.0/24");
        let names: Vec<_> = list_networks(&st)
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["a", "bridge", "c", "d"]);
        assert_eq!(inspect_network(&st, "a").unwrap(), a);
    }

    #[test]
    fn ipv6_networks_get_a_derived_or_given_64_and_old_files_still_load() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        let v6 = NetworkOptions {
            ipv6: true,
            ..Default::default()
        };
        let a = create_network(&st, "a", &v6).unwrap();
        assert_eq!(a.subnet.to_string(), "10.4.1.0/24");
        assert_eq!(a.subnet6.unwrap().to_string(), "fd00:4:1::/64");
        let b = create_network(
            &st,
            "b",
            &NetworkOptions {
                subnet: Some("192.168.7.0/24".parse().unwrap()),
                ipv6: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(b.subnet6.unwrap().to_string(), "fd00:4:100::/64");
        // A given /64 that another network holds is refused, naming it.
        let taken = NetworkOptions {
            ipv6: true,
            subnet6: Some("fd00:4:1::/64".parse().unwrap()),
            ..Default::default()
        };
        let e = create_network(&st, "c", &taken).unwrap_err().to_string();
        assert_eq!(
            e,
            "subnet6 fd00:4:1::/64 overlaps network a (fd00:4:1::/64); pick another /64"
        );
        // The derived one skips a /64 someone chose by hand.
        let hand = NetworkOptions {
            ipv6: true,
            subnet6: Some("fd00:4:2::/64".parse().unwrap()),
            ..Default::default()
        };
        create_network(&st, "c", &hand).unwrap();
        let d2 = create_network(&st, "d", &v6).unwrap();
        assert_eq!(d2.subnet.to_string(), "10.4.3.0/24");
        assert_eq!(d2.subnet6.unwrap().to_string(), "fd00:4:3::/64");
        let no_flag = NetworkOptions {
            subnet6: Some("fd00:9::/64".parse().unwrap()),
            ..Default::default()
        };
        let e = create_network(&st, "e", &no_flag).unwrap_err().to_string();
        assert!(e.contains("needs --ipv6"), "{e}");
        assert!(inspect_network(&st, "e").is_err());
        // IPv4-only networks write no subnet6 key, and a file without one loads.
        let text = std::fs::read_to_string(path(&st, "bridge")).unwrap();
        assert!(!text.contains("subnet6"), "{text}");
        assert_eq!(inspect_network(&st, "bridge").unwrap().subnet6, None);
        assert_eq!(inspect_network(&st, "a").unwrap(), a);
    }

    #[test]
    fn conflicts_and_bad_input_are_refused_clearly() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        create_network(&st, "a", &NetworkOptions::default()).unwrap();
        let e = create_network(&st, "a", &NetworkOptions::default()).unwrap_err();
        assert_eq!(e.to_string(), "network a already exists");
        let o = NetworkOptions {
            subnet: Some("10.4.0.0/16".parse().unwrap()),
            ..Default::default()
        };
        let e = create_network(&st, "b", &o).unwrap_err().to_string();
        assert!(e.contains("overlaps network"), "{e}");
        let o = NetworkOptions {
            subnet: Some("10.9.0.0/24".parse().unwrap()),
            gateway: Some("10.8.0.1".parse().unwrap()),
            ..Default::default()
        };
        let e = create_network(&st, "b", &o).unwrap_err().to_string();
        assert!(e.contains("not a host address"), "{e}");
        assert!(matches!(
            create_network(&st, "-x", &NetworkOptions::default()),
            Err(Error::BadNetworkName(_))
        ));
        assert!(matches!(
            create_network(&st, "a/b", &NetworkOptions::default()),
            Err(Error::BadNetworkName(_))
        ));
        assert!(matches!(
            inspect_network(&st, "nope"),
            Err(Error::NoSuchNetwork(_))
        ));
        assert!(remove_network(&st, "bridge").is_err());
        // Nothing was written for the refused ones.
        assert_eq!(list_networks(&st).unwrap().len(), 2);
    }
}
