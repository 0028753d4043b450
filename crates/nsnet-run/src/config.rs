//! Launcher options: the raw flags as both front ends (`nsnet run` and the `rootlesskit`
//! personality) parse them, and their validation into a [`LaunchPlan`].
//!
//! Every rule is checked here, before anything touches the system, so a bad flag leaves
//! nothing behind. The messages are RootlessKit's where RootlessKit has one (scripts match
//! them), and name the fix where it does not.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use nsnet_ns::idmap::SubidSource;
use nsnet_ns::mount::Propagation;
use nsnet_port::PortSpecExt;
use serde::{Deserialize, Serialize};

/// Which program's conventions the launcher follows for defaults and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Personality {
    /// `nsnet run`: `nsnet: error: …` lines, 128+N for a command killed by signal N.
    Nsnet,
    /// Installed as `rootlesskit`: `[rootlesskit:parent] error: …`, exit 255 on a signal,
    /// Go's signal descriptions.
    Rootlesskit,
}

/// Which side of the instance a message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Parent,
    Child,
}

impl Personality {
    /// One error line in this personality's format.
    pub fn error_line(self, role: Role, msg: &str) -> String {
        match (self, role) {
            (Personality::Rootlesskit, Role::Parent) => {
                format!("[rootlesskit:parent] error: {msg}")
            }
            // RootlessKit pads "child" to the width of "parent".
            (Personality::Rootlesskit, Role::Child) => format!("[rootlesskit:child ] error: {msg}"),
            (Personality::Nsnet, _) => format!("nsnet: error: {msg}"),
        }
    }

    /// One warning line in this personality's format (logrus's for RootlessKit).
    pub fn warning_line(self, msg: &str) -> String {
        match self {
            Personality::Rootlesskit => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                format!(
                    "time=\"{}\" level=warning msg=\"{}\"",
                    rfc3339_utc(now),
                    msg.replace('"', "\\\"")
                )
            }
            Personality::Nsnet => format!("nsnet: warning: {msg}"),
        }
    }

    /// The exit status for a process killed by `sig`.
    pub fn signal_exit_code(self, sig: i32) -> i32 {
        match self {
            // Go's WaitStatus.ExitStatus() is -1 for a signal, and os.Exit(-1) is 255.
            Personality::Rootlesskit => 255,
            Personality::Nsnet => 128 + sig,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (civil-from-days, Howard Hinnant's algorithm).
fn rfc3339_utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The network drivers the flag parser knows (`--net`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetDriver {
    /// The caller's own network namespace.
    Host,
    /// A new network namespace with only `lo`.
    None,
    /// nsnet's in-process user-mode network.
    Builtin,
    Slirp4netns,
    Pasta,
    Vpnkit,
    LxcUserNic,
    GvisorTapVsock,
}

impl NetDriver {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "host" => Self::Host,
            "none" => Self::None,
            "builtin" => Self::Builtin,
            "slirp4netns" => Self::Slirp4netns,
            "pasta" => Self::Pasta,
            "vpnkit" => Self::Vpnkit,
            "lxc-user-nic" => Self::LxcUserNic,
            "gvisor-tap-vsock" => Self::GvisorTapVsock,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::None => "none",
            Self::Builtin => "builtin",
            Self::Slirp4netns => "slirp4netns",
            Self::Pasta => "pasta",
            Self::Vpnkit => "vpnkit",
            Self::LxcUserNic => "lxc-user-nic",
            Self::GvisorTapVsock => "gvisor-tap-vsock",
        }
    }

    /// Whether this build can run the driver.
    pub fn available(self) -> bool {
        matches!(
            self,
            Self::Host | Self::None | Self::Builtin | Self::Slirp4netns | Self::Pasta
        )
    }

    /// The MTU `--mtu=0` stands for.
    pub fn default_mtu(self) -> u32 {
        match self {
            Self::Builtin | Self::Slirp4netns | Self::Pasta => 65520,
            _ => 1500,
        }
    }
}

/// The port drivers the flag parser knows (`--port-driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortDriver {
    None,
    Builtin,
    Slirp4netns,
    Implicit,
}

impl PortDriver {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "builtin" => Self::Builtin,
            "slirp4netns" => Self::Slirp4netns,
            "implicit" => Self::Implicit,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Builtin => "builtin",
            Self::Slirp4netns => "slirp4netns",
            Self::Implicit => "implicit",
        }
    }
}

/// An IPv4 network such as `10.0.2.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    pub const DEFAULT: Ipv4Cidr = Ipv4Cidr {
        network: Ipv4Addr::new(10, 0, 2, 0),
        prefix: 24,
    };

    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::Cidr(format!("invalid CIDR address: {s}"));
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        if u32::from(ip) & !mask != 0 {
            return Err(ConfigError::Cidr(
                "cidr must be like 10.0.2.0/24, not like 10.0.2.100/24".into(),
            ));
        }
        Ok(Ipv4Cidr {
            network: ip,
            prefix,
        })
    }

    /// The address `n` hosts into the network (slirp4netns: 2 gateway, 3 DNS, 100 guest).
    pub fn host(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(n))
    }
}

/// `--reaper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaper {
    Auto,
    On,
    Off,
}

/// The flags, as parsed from a command line and not yet checked against each other.
#[derive(Debug, Clone, Default)]
pub struct RawOptions {
    pub state_dir: Option<PathBuf>,
    pub net: String,
    pub mtu: i64,
    pub cidr: Option<String>,
    pub ifname: Option<String>,
    pub disable_host_loopback: bool,
    pub ipv6: bool,
    pub detach_netns: bool,
    pub copy_up: Vec<String>,
    pub copy_up_mode: String,
    pub propagation: String,
    pub port_driver: String,
    pub publish: Vec<String>,
    pub source_ip_transparent: bool,
    pub pidns: bool,
    pub cgroupns: bool,
    pub utsns: bool,
    pub ipcns: bool,
    pub reaper: String,
    pub evacuate_cgroup2: Option<String>,
    pub subid_source: String,
    pub debug: bool,
    pub slirp4netns_sandbox: String,
    pub slirp4netns_seccomp: String,
    pub slirp4netns_binary: String,
    pub pasta_binary: String,
    pub command: Vec<String>,
}

/// How to run the external slirp4netns (`--net=slirp4netns`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slirp4netnsOptions {
    /// The binary (`--slirp4netns-binary`; looked up in `PATH` when it has no `/`).
    pub binary: String,
    /// `--slirp4netns-sandbox`, `--slirp4netns-seccomp`: `auto`, `true` or `false`.
    pub sandbox: String,
    pub seccomp: String,
}

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
    /// `--source-ip-transparent`: published TCP ports keep the client's address.
    pub source_ip_transparent: bool,
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

/// What the child receives from the parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildConfig {
    pub personality: Personality,
    pub command: Vec<String>,
    pub state_dir: PathBuf,
    pub propagation: String,
    pub copy_up: Vec<PathBuf>,
    pub mount_proc: bool,
    /// The child itself is in a new network namespace (non-host, not detached).
    pub own_netns: bool,
    /// A detached network namespace is to be created at `$STATE/netns`.
    pub detach_netns: bool,
    /// Non-host network: write resolv.conf and hosts into the state dir.
    pub network: bool,
    pub reaper: bool,
    /// `--debug`: the child logs at debug level too.
    pub debug: bool,
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
        "--net={0} is not available in this nsnet build yet (available: host, none, builtin, slirp4netns, pasta); see issue #3"
    )]
    NetUnavailable(&'static str),
    #[error("{0}")]
    Port(#[from] nsnet_port::PortError),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

fn tri_state(flag: &str, v: &str) -> Result<(), ConfigError> {
    match v {
        "auto" | "true" | "false" | "" => Ok(()),
        _ => Err(invalid(format!("unsupported {flag} mode: {v:?}"))),
    }
}

impl LaunchPlan {
    /// Checks every flag and every combination rule (RootlessKit's, `shared/design.md` 5.1).
    pub fn from_raw(raw: RawOptions, personality: Personality) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        if raw.command.is_empty() {
            return Err(invalid("no command specified"));
        }
        let net =
            NetDriver::parse(&raw.net).ok_or_else(|| ConfigError::UnknownNet(raw.net.clone()))?;
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
        if raw.ipv6
            && !matches!(
                net,
                NetDriver::Slirp4netns | NetDriver::Builtin | NetDriver::Pasta
            )
        {
            warnings.push(format!("--ipv6 is discarded for --net={}", net.name()));
        }

        let port_driver = PortDriver::parse(&raw.port_driver)
            .ok_or_else(|| ConfigError::UnknownPortDriver(raw.port_driver.clone()))?;
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
            PortDriver::Builtin if net == NetDriver::Host => {
                return Err(invalid("port driver requires non-host network"));
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

        let reaper = match raw.reaper.as_str() {
            "auto" => Reaper::Auto,
            "true" => Reaper::On,
            "false" => Reaper::Off,
            r => return Err(invalid(format!("unknown reaper mode: {r}"))),
        };
        let reaper = match reaper {
            Reaper::Auto => raw.pidns,
            Reaper::On if !raw.pidns => return Err(invalid("reaper requires --pidns")),
            Reaper::On => true,
            Reaper::Off => false,
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
        tri_state("slirp4netns-sandbox", &raw.slirp4netns_sandbox)?;
        tri_state("slirp4netns-seccomp", &raw.slirp4netns_seccomp)?;

        // Only now, with every rule checked, say what this build cannot run.
        if !net.available() {
            return Err(ConfigError::NetUnavailable(net.name()));
        }

        let mtu = match raw.mtu {
            0 => net.default_mtu(),
            m => m as u32,
        };
        Ok(LaunchPlan {
            personality,
            state_dir: raw.state_dir,
            net,
            mtu,
            cidr: cidr.unwrap_or(Ipv4Cidr::DEFAULT),
            ifname: if ifname.is_empty() {
                "tap0".into()
            } else {
                ifname
            },
            disable_host_loopback: raw.disable_host_loopback,
            ipv6: raw.ipv6,
            slirp4netns: Slirp4netnsOptions {
                binary: if raw.slirp4netns_binary.is_empty() {
                    "slirp4netns".into()
                } else {
                    raw.slirp4netns_binary
                },
                sandbox: raw.slirp4netns_sandbox,
                seccomp: raw.slirp4netns_seccomp,
            },
            pasta_binary: if raw.pasta_binary.is_empty() {
                "pasta".into()
            } else {
                raw.pasta_binary
            },
            detach_netns: raw.detach_netns,
            copy_up,
            propagation,
            port_driver,
            publish,
            source_ip_transparent: raw.source_ip_transparent,
            pidns: raw.pidns,
            cgroupns: raw.cgroupns,
            utsns: raw.utsns,
            ipcns: raw.ipcns,
            reaper,
            subid_source,
            debug: raw.debug,
            command: raw.command,
            warnings,
        })
    }

    /// The configuration sent to the child once its namespaces exist.
    pub fn child_config(&self, state_dir: PathBuf) -> ChildConfig {
        let network = self.net != NetDriver::Host;
        ChildConfig {
            personality: self.personality,
            command: self.command.clone(),
            state_dir,
            propagation: self.propagation.name().to_string(),
            copy_up: self.copy_up.clone(),
            mount_proc: self.pidns,
            own_netns: network && !self.detach_netns,
            detach_netns: self.detach_netns,
            network,
            reaper: self.reaper,
            debug: self.debug,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawOptions {
        RawOptions {
            net: "host".into(),
            copy_up_mode: "tmpfs+symlink".into(),
            propagation: "rprivate".into(),
            port_driver: "none".into(),
            reaper: "auto".into(),
            subid_source: "auto".into(),
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
                net: "bogus".into(),
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
                net: "none".into(),
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
                net: "none".into(),
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
                net: "none".into(),
                port_driver: "implicit".into(),
                ..raw()
            })
            .contains("port driver requires pasta network")
        );
        assert!(
            err(RawOptions {
                net: "vpnkit".into(),
                ..raw()
            })
            .contains("not available")
        );
        let p = LaunchPlan::from_raw(
            RawOptions {
                net: "none".into(),
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

    #[test]
    fn cidr_and_time() {
        let c = Ipv4Cidr::parse("10.0.135.128/25").unwrap();
        assert_eq!(c.host(100).to_string(), "10.0.135.228");
        assert!(Ipv4Cidr::parse("10.0.2.0").is_err());
        assert!(Ipv4Cidr::parse("10.0.2.0/33").is_err());
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_909_076), "2026-11-28T23:37:56Z");
    }

    #[test]
    fn personalities_format_lines() {
        assert_eq!(
            Personality::Rootlesskit.error_line(Role::Child, "x"),
            "[rootlesskit:child ] error: x"
        );
        assert_eq!(
            Personality::Nsnet.error_line(Role::Parent, "x"),
            "nsnet: error: x"
        );
        assert_eq!(Personality::Rootlesskit.signal_exit_code(10), 255);
        assert_eq!(Personality::Nsnet.signal_exit_code(10), 138);
        assert!(
            Personality::Rootlesskit
                .warning_line("a \"b\"")
                .ends_with("msg=\"a \\\"b\\\"\"")
        );
    }
}
