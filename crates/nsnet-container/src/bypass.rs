//! `nsnet container run --bypass`: what the container layer adds to `nsnet_bypass` — where the
//! service listens, what the container's network forbids, and who runs the service.
//!
//! Who: the container's monitor (the detached `container-monitor`, or the foreground front
//! end). It is in the host network namespace (the instance's netns is detached; only the user
//! and mount namespaces were joined), it is root of the instance's user namespace, which owns
//! the container's (so `pidfd_getfd` and `process_vm_readv` are allowed, rootless too), and it
//! lives exactly as long as the container: when runc exits, the monitor exits and takes the
//! service thread with it; the host sockets it installed belong to the container's processes
//! and close with them. The instance's parent would also qualify, but would need a new
//! protocol, and would keep state for containers it never hears the end of.
//!
//! What the network forbids ([`policy`]): every network in nsnet-bridge's store (v4 and v6
//! subnets), every directly connected route of the instance's child netns (its tap network,
//! where the gateway is the host's loopback and CIDR+3 the DNS forwarder, and each bridge that
//! is up), the DNS address the instance reports. An `--internal` network bypasses nothing;
//! IPv6 bypasses only where the container's network and the instance both have IPv6.
//!
//! Published TCP ports ([`published_tcp`], [`PortDriver`]): the hook publishes them through the
//! instance's port driver before the container's process starts, as for any container; when
//! the app listens on one, the service takes the forward over — it removes it through the
//! instance's API (and from `network.json`, so `postStop` does not look for it) and binds the
//! published address itself; if it cannot, it publishes the port again, with the new id in
//! `network.json`. The port stays the port driver's until the app listens.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;

use ipnet::IpNet;
use nsnet_bypass::{Forwards, Listener, Policy, Ports, Published, Service, Stats};

use crate::publish::Publish;
use crate::store::{self, Container};
use crate::{Error, lifecycle};

/// The listener runc connects to: `<runtime base>/bypass/<id>.sock` (a runtime directory, so
/// the path fits a unix socket address).
pub fn socket_path(c: &Container) -> PathBuf {
    let base = c
        .config
        .runtime_root
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(lifecycle::runtime_base);
    base.join("bypass").join(format!("{}.sock", c.id()))
}

/// The counts file the service keeps, in the container's directory.
pub fn stats_path(c: &Container) -> PathBuf {
    c.dir.join("bypass.json")
}

/// The counts, if the service ran.
pub fn stats(c: &Container) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(stats_path(c)).ok()?;
    serde_json::from_str(text.trim()).ok()
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::Network(format!("bypass: {e}"))
}

/// What container `c` may bypass to.
pub fn policy(c: &Container) -> Result<Policy, Error> {
    let inst = lifecycle::instance_at(&c.config.instance).ok_or_else(|| {
        Error::Instance(format!(
            "the nsnet instance at {} does not answer",
            c.config.instance.display()
        ))
    })?;
    let store = nsnet_bridge::Store::default_location().map_err(bad)?;
    let networks = nsnet_bridge::list_networks(&store).map_err(bad)?;
    let own = networks
        .iter()
        .find(|n| n.name == c.config.network)
        .ok_or_else(|| bad(format!("no network {}", c.config.network)))?;
    let mut never: Vec<IpNet> = Vec::new();
    for n in &networks {
        never.push(IpNet::new(n.subnet.base().into(), n.subnet.prefix_len()).map_err(bad)?);
        if let Some(s6) = &n.subnet6 {
            never.push(IpNet::new(s6.base().into(), s6.prefix_len()).map_err(bad)?);
        }
    }
    if let Some(dns) = inst.dns.as_deref().and_then(|d| d.parse::<IpAddr>().ok()) {
        never.push(IpNet::from(dns));
    }
    let netns = inst
        .found
        .open(nsnet_ns::nsfs::NsType::Net)
        .map_err(|e| Error::Instance(e.to_string()))?;
    never.extend(connected_routes(netns)?);
    Ok(Policy {
        ipv4: !own.internal,
        ipv6: !own.internal && own.subnet6.is_some() && inst.ipv6,
        never,
    })
}

/// The directly connected routes of a network namespace, read by a thread that enters it
/// (and ends there: a thread that left the host netns never comes back).
fn connected_routes(netns: std::os::fd::OwnedFd) -> Result<Vec<IpNet>, Error> {
    let t = std::thread::spawn(move || -> std::io::Result<(String, String)> {
        nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
        let v4 = std::fs::read_to_string("/proc/thread-self/net/route")?;
        let v6 = std::fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap_or_default();
        Ok((v4, v6))
    });
    let (v4, v6) = t
        .join()
        .map_err(|_| bad("the route reader panicked"))?
        .map_err(Error::io(
            "read the routes of the instance's network namespace",
        ))?;
    Ok(parse_routes(&v4, &v6))
}

/// `/proc/net/route` (hex, host byte order) and `/proc/net/ipv6_route`: the routes without a
/// gateway and with a prefix (the default route is the way out, not a network).
fn parse_routes(v4: &str, v6: &str) -> Vec<IpNet> {
    let mut out = Vec::new();
    for l in v4.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dst), Some(gw), Some(mask)) = (hex(f[1]), hex(f[2]), hex(f[7])) else {
            continue;
        };
        if gw != 0 || mask == 0 {
            continue;
        }
        // The kernel prints the address's bytes as a little-endian word.
        let ip = std::net::Ipv4Addr::from(dst.to_le_bytes());
        if let Ok(n) = IpNet::new(ip.into(), mask.count_ones() as u8) {
            out.push(n.trunc());
        }
    }
    for l in v6.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Ok(dst), Ok(plen), Ok(gw)) = (
            u128::from_str_radix(f[0], 16),
            u8::from_str_radix(f[1], 16),
            u128::from_str_radix(f[4], 16),
        ) else {
            continue;
        };
        if gw != 0 || plen == 0 || f[9] == "lo" {
            continue;
        }
        if let Ok(n) = IpNet::new(std::net::Ipv6Addr::from(dst).into(), plen) {
            out.push(n.trunc());
        }
    }
    out
}

/// The container's published TCP ports, as the bypass serves them.
pub fn published_tcp(c: &Container) -> Vec<Published> {
    c.config
        .publish
        .iter()
        .filter(|p| p.proto == "tcp")
        .filter_map(|p| {
            let host_ip = match p.host_ip.as_str() {
                "" => None,
                s => Some(s.parse::<IpAddr>().ok()?),
            };
            Some(Published {
                container_port: p.container_port,
                host_ip,
                host_port: p.host_port,
            })
        })
        .collect()
}

/// The port driver's forwards of a container's published ports, through the instance's API,
/// with `network.json` (the ids `postStop` removes) kept in step.
pub struct PortDriver {
    dir: PathBuf,
    instance: PathBuf,
    /// One change of `network.json` at a time (init's and exec's services share this).
    lock: std::sync::Mutex<()>,
}

impl PortDriver {
    pub fn new(c: &Container) -> PortDriver {
        PortDriver {
            dir: c.dir.clone(),
            instance: c.config.instance.clone(),
            lock: std::sync::Mutex::new(()),
        }
    }

    fn matches(p: &Published, q: &Publish) -> bool {
        q.proto == "tcp" && q.container_port == p.container_port && q.host_port == p.host_port
    }

    fn api<T>(
        &self,
        f: impl AsyncFnOnce(&nsnet_api::client::Client) -> Result<T, nsnet_api::client::ClientError>,
    ) -> Result<T, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("start the API client: {e}"))?;
        let client = nsnet_api::client::Client::new(&self.instance.join("api.sock"));
        rt.block_on(f(&client)).map_err(|e| e.to_string())
    }
}

impl Forwards for PortDriver {
    fn take(&self, p: &Published) -> Result<(), String> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut net = store::load_net(&self.dir)
            .map_err(|e| e.to_string())?
            .ok_or("the container has no network record")?;
        let i = net
            .ports
            .iter()
            .position(|(_, q)| Self::matches(p, q))
            .ok_or("the port is not published")?;
        let id = net.ports[i].0;
        self.api(async |c| c.remove_port(id).await)?;
        net.ports.remove(i);
        store::save_net(&self.dir, &net).map_err(|e| e.to_string())
    }

    fn restore(&self, p: &Published) -> Result<(), String> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut net = store::load_net(&self.dir)
            .map_err(|e| e.to_string())?
            .ok_or("the container has no network record")?;
        let ip = net
            .attachment
            .as_ref()
            .map(|a| a.ip)
            .ok_or("the container has no address")?;
        let config: crate::store::Config = serde_json::from_slice(
            &std::fs::read(self.dir.join("container.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let publish = config
            .publish
            .into_iter()
            .find(|q| Self::matches(p, q))
            .ok_or("the port is not published")?;
        let spec = publish.port_spec(IpAddr::V4(ip));
        let st = self.api(async |c| c.add_port(&spec).await)?;
        net.ports.push((st.id, publish));
        store::save_net(&self.dir, &net).map_err(|e| e.to_string())
    }
}

/// The running service of a container; dropping it removes the listener's file.
pub struct Running {
    _listener: std::sync::Arc<Listener>,
}

/// Binds the listener and starts the thread that takes runc's handoffs for `c`: one for the
/// container's init, one more for each `runc exec` (its process gets a filter of its own). Each
/// notify fd gets a service thread, which answers until the last process under it is gone.
pub fn start(c: &Container) -> Result<Running, Error> {
    let policy = policy(c)?;
    let path = socket_path(c);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    }
    let listener = std::sync::Arc::new(Listener::bind(&path).map_err(bad)?);
    let stats = Stats::reported_to(&stats_path(c)).map_err(bad)?;
    let published = published_tcp(c);
    let ports = (!published.is_empty())
        .then(|| std::sync::Arc::new(Ports::new(published, Box::new(PortDriver::new(c)))));
    let l = std::sync::Arc::clone(&listener);
    let name = c.config.name.clone();
    std::thread::Builder::new()
        .name("nsnet-bypass".into())
        .spawn(move || {
            loop {
                let served = l.accept().and_then(|h| {
                    let mut svc = Service::new(h.notify, policy.clone(), stats.clone())?;
                    if let Some(p) = &ports {
                        svc = svc.publishing(p.clone());
                    }
                    let name = name.clone();
                    std::thread::Builder::new()
                        .name("nsnet-bypass".into())
                        .spawn(move || {
                            if let Err(e) = svc.run() {
                                eprintln!("nsnet: bypass of container {name} stopped: {e}");
                            }
                        })
                        .map_err(nsnet_bypass::Error::io("start a bypass service thread"))?;
                    Ok(())
                });
                match served {
                    Ok(()) => {}
                    Err(e @ nsnet_bypass::Error::Handoff(_)) => {
                        eprintln!("nsnet: bypass of container {name}: {e}")
                    }
                    Err(e) => {
                        eprintln!("nsnet: bypass of container {name} stopped: {e}");
                        return;
                    }
                }
            }
        })
        .map_err(Error::io("start the bypass thread"))?;
    Ok(Running {
        _listener: listener,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_routes_are_the_networks_and_the_default_route_is_not() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
tap0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
tap0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
nerdctl0\t0000040A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     tap0\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000002 00000400 00000001 00000000 00000003     tap0\n\
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";
        let got: Vec<String> = parse_routes(v4, v6).iter().map(|n| n.to_string()).collect();
        assert_eq!(got, ["10.0.2.0/24", "10.4.0.0/24", "fd00::/64"]);
    }
}
