//! `nsnet network create|ls|inspect|rm|connect|disconnect|gc`: bridge networks of a running
//! instance. The work is nsnet-bridge's; this file finds the instance and enters its user
//! namespace (rootless) and child netns — before any thread exists, as `setns` into a user
//! namespace requires — then calls the library, which acts in the current netns. The mount
//! namespace is not joined: the data directory and the container netns paths given on the
//! command line are the caller's.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nsnet_bridge::{NetworkOptions, Store, Subnet, Subnet6};

#[derive(Debug, clap::Args)]
pub struct NetworkArgs {
    /// State directory of the instance (default: $NSNET_STATE_DIR or $ROOTLESSKIT_STATE_DIR,
    /// else the only running instance)
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: NetworkCmd,
}

#[derive(Debug, clap::Subcommand)]
enum NetworkCmd {
    /// Create a bridge network (its bridge appears on first connect)
    Create {
        name: String,
        /// IPv4 subnet in CIDR form (default: the next free 10.4.N.0/24)
        #[arg(long, value_parser = parse_subnet)]
        subnet: Option<Subnet>,
        /// Gateway address on the bridge (default: the subnet's first address)
        #[arg(long)]
        gateway: Option<std::net::Ipv4Addr>,
        /// No outbound NAT and no default route: containers reach only each other
        #[arg(long)]
        internal: bool,
        /// MTU of the bridge and the containers' interfaces (default 1500)
        #[arg(long)]
        mtu: Option<u32>,
        /// Give the network an IPv6 /64 too (gateway ::1 of it on the bridge, NAT66 out)
        #[arg(long)]
        ipv6: bool,
        /// The IPv6 /64 (default: fd00:4:N::/64 for 10.4.N.0/24); needs --ipv6
        #[arg(long, value_parser = parse_subnet6)]
        subnet6: Option<Subnet6>,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// JSON array of the network files
        #[arg(long)]
        json: bool,
    },
    /// Show networks as JSON, with their allocations
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks no container uses
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Attach a network namespace to a network (prints the attachment as JSON)
    Connect {
        network: String,
        /// The container's network namespace file (e.g. /proc/PID/ns/net)
        netns: PathBuf,
        /// Interface name inside the namespace
        #[arg(long, default_value = "eth0")]
        ifname: String,
        /// A static address instead of the next free one
        #[arg(long)]
        ip: Option<IpAddr>,
        /// Owner recorded with the address (default: the netns path)
        #[arg(long)]
        container_id: Option<String>,
    },
    /// Detach a network namespace from a network (succeeds when not attached)
    Disconnect {
        network: String,
        netns: PathBuf,
        #[arg(long, default_value = "eth0")]
        ifname: String,
        #[arg(long)]
        container_id: Option<String>,
    },
    /// Release addresses and links of containers that are gone (crashes, reboots)
    Gc {
        #[arg(long)]
        json: bool,
    },
}

fn parse_subnet(s: &str) -> Result<Subnet, String> {
    s.parse()
}

fn parse_subnet6(s: &str) -> Result<Subnet6, String> {
    s.parse()
}

/// Enters the instance's child netns (and, rootless, its user namespace). The instance is
/// found by `nsnet_ns::instance`'s order, reading `child_pid` straight (no scan of /proc:
/// every `nsnet network` call pays for this, and attach latency matters); only when the
/// default instance is not running is the process table searched for the one running instance
/// (an `nsnet run` or RootlessKit instance on any state directory).
fn enter_instance(state_dir: Option<PathBuf>) -> Result<(), String> {
    use nsnet_inspect::{Error, NsType};
    use nsnet_ns::instance::{self, Instance, Source};
    let (dir, source) = instance::locate_dir(state_dir.as_deref());
    let found = match Instance::at(&dir, source) {
        Ok(i) => i,
        Err(e) if source != Source::Default => {
            return Err(format!(
                "{e}; start one with `nsnet run --net=builtin --detach-netns --state-dir {} -- sleep infinity`",
                dir.display()
            ));
        }
        Err(_) => {
            let target = nsnet_inspect::join::child_target(&nsnet_inspect::discover(), None)
                .map_err(|e| match e {
                    Error::NoInstance { .. } => "no running nsnet instance found; start one with `nsnet run --net=builtin --detach-netns -- sleep infinity` (or pass --state-dir)".to_string(),
                    e => e.to_string(),
                })?;
            let list =
                nsnet_inspect::join::open(target, &[NsType::Net]).map_err(|e| e.to_string())?;
            return nsnet_inspect::join::join(&list).map_err(|e| e.to_string());
        }
    };
    found.join(&[NsType::Net]).map_err(|e| e.to_string())
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("serialises")
}

fn container_id(given: Option<String>, netns: &Path) -> String {
    given.unwrap_or_else(|| netns.display().to_string())
}

fn run(cmd: NetworkCmd, store: &Store) -> Result<(), String> {
    let s = |e: nsnet_bridge::Error| e.to_string();
    match cmd {
        NetworkCmd::Create {
            name,
            subnet,
            gateway,
            internal,
            mtu,
            ipv6,
            subnet6,
        } => {
            let opts = NetworkOptions {
                subnet,
                gateway,
                internal,
                mtu,
                ipv6,
                subnet6,
            };
            let n = nsnet_bridge::create_network(store, &name, &opts).map_err(s)?;
            println!("{}", n.id);
        }
        NetworkCmd::Ls { json } => {
            let list = nsnet_bridge::list_networks(store).map_err(s)?;
            if json {
                println!("{}", pretty(&list));
            } else {
                let mut rows = vec![
                    [
                        "NETWORK ID",
                        "NAME",
                        "BRIDGE",
                        "SUBNET",
                        "GATEWAY",
                        "SUBNET6",
                        "FLAGS",
                    ]
                    .map(String::from)
                    .to_vec(),
                ];
                for n in &list {
                    rows.push(vec![
                        n.id[..12].to_string(),
                        n.name.clone(),
                        n.bridge.clone(),
                        n.subnet.to_string(),
                        n.gateway.to_string(),
                        n.subnet6.map(|s| s.to_string()).unwrap_or_default(),
                        if n.internal { "internal" } else { "" }.to_string(),
                    ]);
                }
                print!("{}", crate::out::tab_table(&rows));
            }
        }
        NetworkCmd::Inspect { names } => {
            let mut out = Vec::new();
            for n in names {
                let net = nsnet_bridge::inspect_network(store, &n).map_err(s)?;
                let allocs = nsnet_bridge::allocations(store, &n).map_err(s)?;
                let mut v = serde_json::to_value(&net).expect("serialises");
                v["allocations"] = serde_json::to_value(&allocs).expect("serialises");
                out.push(v);
            }
            println!("{}", pretty(&out));
        }
        NetworkCmd::Rm { names } => {
            for n in names {
                nsnet_bridge::remove_network(store, &n).map_err(s)?;
                println!("{n}");
            }
        }
        NetworkCmd::Connect {
            network,
            netns,
            ifname,
            ip,
            container_id: id,
        } => {
            let id = container_id(id, &netns);
            let req = nsnet_bridge::AttachRequest {
                network: &network,
                container_id: &id,
                netns: &netns,
                ifname: &ifname,
                static_ip: ip,
            };
            let a = nsnet_bridge::attach(store, &req).map_err(s)?;
            println!("{}", pretty(&a));
        }
        NetworkCmd::Disconnect {
            network,
            netns,
            ifname,
            container_id: id,
        } => {
            let id = container_id(id, &netns);
            nsnet_bridge::detach(store, &network, &id, Some(&netns), &ifname).map_err(s)?;
        }
        NetworkCmd::Gc { json } => {
            let r = nsnet_bridge::gc(store).map_err(s)?;
            if json {
                println!("{}", pretty(&r));
            } else {
                for l in &r.released {
                    println!("released {l}");
                }
                for l in &r.links_removed {
                    println!("removed link {l}");
                }
            }
        }
    }
    Ok(())
}

pub fn main(args: NetworkArgs) -> i32 {
    let done = enter_instance(args.state_dir)
        .and_then(|()| Store::default_location().map_err(|e| e.to_string()))
        .and_then(|store| run(args.cmd, &store));
    match done {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nsnet: error: {e}");
            1
        }
    }
}
