//! Launcher options: the flags both front ends parse ([`RawOptions`], in [`flags`]) and their
//! validation into a [`LaunchPlan`], one `validate_*` step per concern (network, ports,
//! mounts, process, drivers), in the order the checks have always run, so that of two bad
//! flags the same one is still reported.
//!
//! Every rule is checked here, before anything touches the system, so a bad flag leaves
//! nothing behind. The messages are RootlessKit's where RootlessKit has one (scripts match
//! them), and name the fix where it does not. What the child receives is in [`child`], the
//! driver types in [`drivers`], the personalities' line formats in [`personality`].

use std::path::PathBuf;

use nsnet_ns::idmap::SubidSource;
use nsnet_ns::mount::Propagation;
use nsnet_port::PortSpecExt;

pub mod child;
pub mod drivers;
pub mod flags;
pub mod personality;

pub use child::ChildConfig;
pub use drivers::{Ipv4Cidr, NetDriver, PortDriver, Slirp4netnsOptions, SourceIpBackend};
pub use flags::RawOptions;
pub use personality::{Personality, Role};

/// A validated launch.
#[derive(Debug, Clone)]
pub struct LaunchPlan {
    pub personality: Personality,
    pub state_dir: Option<PathBuf>,
    pub net: NetDriver,
    pub mtu: u32,
    pub cidr: Ipv4Cidr,
    pub ifname: String,
    pub disable_host_loopback: bool,
    /// `--ipv6` (passed on to slirp4netns as `--enable-ipv6`).
    pub ipv6: bool,
    pub slirp4netns: Slirp4netnsOptions,
    /// The pasta binary for `--net=pasta` (`--pasta-binary`; looked up in `PATH`).
    pub pasta_binary: String,
    pub detach_netns: bool,
    pub copy_up: Vec<PathBuf>,
    pub propagation: Propagation,
    pub port_driver: PortDriver,
    pub publish: Vec<nsnet_port::PortSpec>,
    /// `--source-ip-transparent`: published ports keep the client's address.
    pub source_ip_transparent: bool,
    /// `--source-ip-transparent-backend`, as asked (nsnet's routing needs neither backend).
    pub source_ip_backend: SourceIpBackend,
    pub pidns: bool,
    pub cgroupns: bool,
    pub utsns: bool,
    pub ipcns: bool,
    pub reaper: bool,
    pub subid_source: SubidSource,
    pub debug: bool,
    pub command: Vec<String>,
    /// Things worth saying that do not stop the launch.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Cidr(String),
    #[error("mtu must be <= 65521, got {0}")]
    Mtu(i64),
    #[error("{0}")]
    Invalid(String),
    #[error("unknown network mode: {0}")]
    UnknownNet(String),
    #[error("unknown port driver: {0}")]
    UnknownPortDriver(String),
    #[error(transparent)]
    CopyUp(#[from] nsnet_ns::Error),
    #[error(
        "--net={0} is not available in this nsnet build (available: host, none, builtin, slirp4netns, pasta, gvisor-tap-vsock)"
    )]
    NetUnavailable(&'static str),
    #[error("{0}")]
    Port(#[from] nsnet_port::PortError),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// The network flags, checked.
struct NetPlan {
    net: NetDriver,
    mtu: u32,
    cidr: Ipv4Cidr,
    ifname: String,
}

/// The mount flags, checked.
struct MountPlan {
    propagation: Propagation,
    copy_up: Vec<PathBuf>,
}

/// The process flags, checked.
struct ProcessPlan {
    reaper: bool,
    subid_source: SubidSource,
}

impl LaunchPlan {
    /// Checks every flag and every combination rule (RootlessKit's, `shared/design.md` 5.1).
    /// `--net` absent means the personality's default network.
    pub fn from_raw(raw: RawOptions, personality: Personality) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        if raw.command.is_empty() {
            return Err(invalid("no command specified"));
        }
        let net = validate_net(&raw, personality, &mut warnings)?;
        let (port_driver, publish, source_ip_backend) = validate_ports(&raw, net.net)?;
        let mounts = validate_mounts(&raw)?;
        let process = validate_process(&raw)?;
        let slirp4netns = validate_drivers(&raw, net.net)?;
        Ok(LaunchPlan {
            personality,
            state_dir: raw.state_dir,
            net: net.net,
            mtu: net.mtu,
            cidr: net.cidr,
            ifname: net.ifname,
            disable_host_loopback: raw.disable_host_loopback,
            ipv6: raw.ipv6,
            slirp4netns,
            pasta_binary: if raw.pasta_binary.is_empty() {
                "pasta".into()
            } else {
                raw.pasta_binary
            },
            detach_netns: raw.detach_netns,
            copy_up: mounts.copy_up,
            propagation: mounts.propagation,
            port_driver,
            publish,
            source_ip_transparent: raw.source_ip_transparent,
            source_ip_backend,
            pidns: raw.pidns,
            cgroupns: raw.cgroupns,
            utsns: raw.utsns,
            ipcns: raw.ipcns,
            reaper: process.reaper,
            subid_source: process.subid_source,
            debug: raw.debug,
            command: raw.command,
            warnings,
        })
    }
}

/// `--net`, `--mtu`, `--cidr`, `--ifname`, and what they mean together with `--net=host`,
/// `--detach-netns`, `--disable-host-loopback` and `--ipv6`.
fn validate_net(
    raw: &RawOptions,
    personality: Personality,
    warnings: &mut Vec<String>,
) -> Result<NetPlan, ConfigError> {
    let name = raw.net.as_deref().unwrap_or(personality.default_net());
    let net = NetDriver::parse(name).ok_or_else(|| ConfigError::UnknownNet(name.to_string()))?;
    if raw.mtu < 0 || raw.mtu > 65521 {
        return Err(ConfigError::Mtu(raw.mtu));
    }
    let cidr = raw.cidr.as_deref().map(Ipv4Cidr::parse).transpose()?;
    let ifname = raw.ifname.clone().unwrap_or_default();
    if ifname.contains('/') {
        return Err(invalid("ifname must not contain \"/\""));
    }
    if ifname.len() > 15 {
        return Err(invalid(format!(
            "ifname {ifname:?} is longer than the kernel's 15-byte limit"
        )));
    }
    if net == NetDriver::Host {
        if raw.mtu != 0 {
            warnings.push(format!("unsupported mtu for --net=host: {}", raw.mtu));
        }
        if cidr.is_some() {
            return Err(invalid("custom cidr is not supported for --net=host"));
        }
        if !ifname.is_empty() {
            return Err(invalid("ifname cannot be specified for --net=host"));
        }
        if raw.detach_netns {
            return Err(invalid(
                "--detach-netns requires a non-host network (e.g. --net=none)",
            ));
        }
    } else if !raw.disable_host_loopback
        && !matches!(net, NetDriver::None)
        && personality == Personality::Rootlesskit
    {
        // nsnet's own `run` documents this instead of saying it on every launch: its
        // default network is the builtin one, and the exposure is slirp4netns's default.
        warnings.push("specifying --disable-host-loopback is highly recommended to prohibit connecting to 127.0.0.1:* on the host namespace (requires slirp4netns or VPNKit)".into());
    }
    if raw.ipv6 && net == NetDriver::GvisorTapVsock {
        // RootlessKit's own rule: that driver's network has no IPv6.
        return Err(invalid("--ipv6 is not supported for gvisor-tap-vsock"));
    }
    if raw.ipv6
        && !matches!(
            net,
            NetDriver::Slirp4netns | NetDriver::Builtin | NetDriver::Pasta
        )
    {
        warnings.push(format!("--ipv6 is discarded for --net={}", net.name()));
    }
    let mtu = match raw.mtu {
        0 => net.default_mtu(),
        m => m as u32,
    };
    Ok(NetPlan {
        net,
        mtu,
        cidr: cidr.unwrap_or(Ipv4Cidr::DEFAULT),
        ifname: if ifname.is_empty() {
            "tap0".into()
        } else {
            ifname
        },
    })
}

/// `--port-driver` and `-p`: each spec parsed and planned, no two conflicting, and the port
/// driver matched against the network driver.
fn validate_ports(
    raw: &RawOptions,
    net: NetDriver,
) -> Result<(PortDriver, Vec<nsnet_port::PortSpec>, SourceIpBackend), ConfigError> {
    let port_driver = PortDriver::parse(&raw.port_driver)
        .ok_or_else(|| ConfigError::UnknownPortDriver(raw.port_driver.clone()))?;
    let source_ip_backend =
        SourceIpBackend::parse(&raw.source_ip_transparent_backend).ok_or_else(|| {
            invalid(format!(
                "unknown source-ip-transparent-backend: {:?} (want auto, nft or iptables)",
                raw.source_ip_transparent_backend
            ))
        })?;
    let publish = raw
        .publish
        .iter()
        .map(|p| {
            let spec = nsnet_port::PortSpec::parse(p)?;
            spec.plan()?;
            Ok(spec)
        })
        .collect::<Result<Vec<_>, nsnet_port::PortError>>()?;
    if let Some((i, a)) = publish.iter().enumerate().find_map(|(i, a)| {
        publish[..i]
            .iter()
            .any(|b| b.conflicts_with(a))
            .then_some((i, a))
    }) {
        return Err(invalid(format!(
            "-p {} is published twice (entry {})",
            a.text(),
            i + 1
        )));
    }
    match port_driver {
        PortDriver::None if !raw.publish.is_empty() => {
            return Err(invalid(format!(
                "port driver {:?} does not support publishing ports",
                port_driver.name()
            )));
        }
        PortDriver::Builtin | PortDriver::GvisorTapVsock if net == NetDriver::Host => {
            return Err(invalid("port driver requires non-host network"));
        }
        // Whether the pasta binary offers the forwarding-table socket this driver drives is
        // checked when the launch starts (external_net::check_pasta_for_pesto): it means
        // running the binary, which validation does not do.
        PortDriver::Pesto if net != NetDriver::Pasta => {
            return Err(invalid("port driver requires pasta network"));
        }
        PortDriver::Slirp4netns if net != NetDriver::Slirp4netns => {
            return Err(invalid("port driver requires slirp4netns network"));
        }
        PortDriver::Implicit if net != NetDriver::Pasta => {
            return Err(invalid("port driver requires pasta network"));
        }
        // pasta forwards every port bound in the namespace to the same port on the host
        // (`--tcp-ports=auto`); there is no mapping to ask for.
        PortDriver::Implicit if !raw.publish.is_empty() => {
            return Err(invalid(
                "port driver \"implicit\" does not support publishing ports: pasta forwards every port bound in the namespace to the same port on the host",
            ));
        }
        _ => {}
    }
    Ok((port_driver, publish, source_ip_backend))
}

/// `--propagation`, `--copy-up-mode` and `--copy-up` (each directory checked by nsnet-ns).
fn validate_mounts(raw: &RawOptions) -> Result<MountPlan, ConfigError> {
    let propagation = Propagation::parse(&raw.propagation).ok_or_else(|| {
        invalid(format!(
            "unknown propagation {:?} (want one of {})",
            raw.propagation,
            Propagation::NAMES.join(", ")
        ))
    })?;
    if raw.copy_up_mode != "tmpfs+symlink" {
        return Err(invalid(format!(
            "unknown copy-up mode: {} (want tmpfs+symlink)",
            raw.copy_up_mode
        )));
    }
    if propagation.is_shared() && !raw.copy_up.is_empty() {
        return Err(invalid(format!(
            "propagation {} does not support copy-up driver tmpfs+symlink",
            propagation.name()
        )));
    }
    let copy_up = raw
        .copy_up
        .iter()
        .map(|d| nsnet_ns::copyup::validate(std::path::Path::new(d)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MountPlan {
        propagation,
        copy_up,
    })
}

/// `--reaper` (auto follows `--pidns`), `--evacuate-cgroup2` and `--subid-source`.
fn validate_process(raw: &RawOptions) -> Result<ProcessPlan, ConfigError> {
    let reaper = match raw.reaper.as_str() {
        "auto" => raw.pidns,
        "true" if !raw.pidns => return Err(invalid("reaper requires --pidns")),
        "true" => true,
        "false" => false,
        r => return Err(invalid(format!("unknown reaper mode: {r}"))),
    };
    if raw.evacuate_cgroup2.is_some() {
        if !raw.cgroupns {
            return Err(invalid("evacuate-cgroup2 requires --cgroupns"));
        }
        if !raw.pidns {
            return Err(invalid("evacuate-cgroup2 requires --pidns"));
        }
        return Err(invalid(
            "--evacuate-cgroup2 is not available in this nsnet build yet",
        ));
    }
    let subid_source = match raw.subid_source.as_str() {
        "auto" => SubidSource::Auto,
        "dynamic" => SubidSource::Dynamic,
        "static" => SubidSource::Static,
        s => return Err(invalid(format!("unknown subid source: {s}"))),
    };
    Ok(ProcessPlan {
        reaper,
        subid_source,
    })
}

/// The external slirp4netns's options, then, with every other rule checked, whether this
/// build can run the network driver at all (so a bad flag is reported before "unavailable").
fn validate_drivers(raw: &RawOptions, net: NetDriver) -> Result<Slirp4netnsOptions, ConfigError> {
    drivers::tri_state("slirp4netns-sandbox", &raw.slirp4netns_sandbox)?;
    drivers::tri_state("slirp4netns-seccomp", &raw.slirp4netns_seccomp)?;
    if !net.available() {
        return Err(ConfigError::NetUnavailable(net.name()));
    }
    Ok(Slirp4netnsOptions {
        binary: if raw.slirp4netns_binary.is_empty() {
            "slirp4netns".into()
        } else {
            raw.slirp4netns_binary.clone()
        },
        sandbox: raw.slirp4netns_sandbox.clone(),
        seccomp: raw.slirp4netns_seccomp.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawOptions {
        RawOptions {
            net: Some("host".into()),
            slirp4netns_sandbox: "false".into(),
            slirp4netns_seccomp: "false".into(),
            command: vec!["true".into()],
            ..Default::default()
        }
    }

    fn err(r: RawOptions) -> String {
        LaunchPlan::from_raw(r, Personality::Rootlesskit)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn net_defaults_to_the_personalitys() {
        let bare = RawOptions { net: None, ..raw() };
        let p = LaunchPlan::from_raw(bare.clone(), Personality::Nsnet).unwrap();
        assert_eq!((p.net, p.mtu), (NetDriver::Builtin, 65520));
        let p = LaunchPlan::from_raw(bare, Personality::Rootlesskit).unwrap();
        assert_eq!((p.net, p.mtu), (NetDriver::Host, 1500));
    }

    #[test]
    fn defaults_are_valid() {
        let p = LaunchPlan::from_raw(raw(), Personality::Nsnet).unwrap();
        assert_eq!(p.net, NetDriver::Host);
        assert!(!p.reaper);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn rootlesskit_messages() {
        assert_eq!(
            err(RawOptions {
                command: vec![],
                ..raw()
            }),
            "no command specified"
        );
        assert_eq!(
            err(RawOptions {
                net: Some("bogus".into()),
                ..raw()
            }),
            "unknown network mode: bogus"
        );
        assert_eq!(
            err(RawOptions {
                mtu: 70000,
                ..raw()
            }),
            "mtu must be <= 65521, got 70000"
        );
        assert_eq!(
            err(RawOptions {
                net: Some("none".into()),
                cidr: Some("10.0.2.100/24".into()),
                ..raw()
            }),
            "cidr must be like 10.0.2.0/24, not like 10.0.2.100/24"
        );
        assert_eq!(
            err(RawOptions {
                publish: vec!["8080:80/tcp".into()],
                ..raw()
            }),
            "port driver \"none\" does not support publishing ports"
        );
        assert_eq!(
            err(RawOptions {
                port_driver: "builtin".into(),
                ..raw()
            }),
            "port driver requires non-host network"
        );
        assert_eq!(
            err(RawOptions {
                net: Some("none".into()),
                port_driver: "slirp4netns".into(),
                ..raw()
            }),
            "port driver requires slirp4netns network"
        );
        assert_eq!(
            err(RawOptions {
                port_driver: "x".into(),
                ..raw()
            }),
            "unknown port driver: x"
        );
        assert_eq!(
            err(RawOptions {
                reaper: "true".into(),
                ..raw()
            }),
            "reaper requires --pidns"
        );
        assert_eq!(
            err(RawOptions {
                propagation: "rshared".into(),
                copy_up: vec!["/etc".into()],
                ..raw()
            }),
            "propagation rshared does not support copy-up driver tmpfs+symlink"
        );
        assert_eq!(
            err(RawOptions {
                copy_up: vec!["/tmp".into()],
                ..raw()
            }),
            "/tmp cannot be copied up"
        );
        assert_eq!(
            err(RawOptions {
                evacuate_cgroup2: Some("x".into()),
                pidns: true,
                ..raw()
            }),
            "evacuate-cgroup2 requires --cgroupns"
        );
    }

    #[test]
    fn rootlesskit_v3_flags() {
        let p = LaunchPlan::from_raw(
            RawOptions {
                net: Some("gvisor-tap-vsock".into()),
                port_driver: "gvisor-tap-vsock".into(),
                source_ip_transparent_backend: "nft".into(),
                publish: vec!["8080:80/tcp".into()],
                ..raw()
            },
            Personality::Rootlesskit,
        )
        .unwrap();
        assert_eq!(
            (p.net, p.port_driver, p.mtu, p.source_ip_backend),
            (
                NetDriver::GvisorTapVsock,
                PortDriver::GvisorTapVsock,
                65520,
                SourceIpBackend::Nft
            )
        );
        assert_eq!(
            err(RawOptions {
                net: Some("gvisor-tap-vsock".into()),
                ipv6: true,
                ..raw()
            }),
            "--ipv6 is not supported for gvisor-tap-vsock"
        );
        assert_eq!(
            err(RawOptions {
                port_driver: "gvisor-tap-vsock".into(),
                ..raw()
            }),
            "port driver requires non-host network"
        );
        assert_eq!(
            err(RawOptions {
                net: Some("slirp4netns".into()),
                port_driver: "pesto".into(),
                ..raw()
            }),
            "port driver requires pasta network"
        );
        let p = LaunchPlan::from_raw(
            RawOptions {
                net: Some("pasta".into()),
                port_driver: "pesto".into(),
                publish: vec!["8080:80/tcp".into()],
                ..raw()
            },
            Personality::Rootlesskit,
        )
        .unwrap();
        assert_eq!(
            (p.net, p.port_driver),
            (NetDriver::Pasta, PortDriver::Pesto)
        );
        assert_eq!(
            err(RawOptions {
                source_ip_transparent_backend: "bpf".into(),
                ..raw()
            }),
            "unknown source-ip-transparent-backend: \"bpf\" (want auto, nft or iptables)"
        );
    }

    #[test]
    fn combination_rules() {
        assert!(
            err(RawOptions {
                detach_netns: true,
                ..raw()
            })
            .contains("non-host")
        );
        assert!(
            err(RawOptions {
                ifname: Some("eth0".into()),
                ..raw()
            })
            .contains("ifname")
        );
        assert!(
            err(RawOptions {
                net: Some("none".into()),
                port_driver: "implicit".into(),
                ..raw()
            })
            .contains("port driver requires pasta network")
        );
        assert!(
            err(RawOptions {
                net: Some("vpnkit".into()),
                ..raw()
            })
            .contains("not available")
        );
        let p = LaunchPlan::from_raw(
            RawOptions {
                net: Some("none".into()),
                detach_netns: true,
                pidns: true,
                ..raw()
            },
            Personality::Nsnet,
        )
        .unwrap();
        assert!(p.reaper, "reaper auto follows --pidns");
        let c = p.child_config("/s".into());
        assert!(c.detach_netns && !c.own_netns && c.network && c.mount_proc);
    }
}
