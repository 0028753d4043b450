//! The drivers a launch can name and their own settings: the network drivers (`--net`, and
//! the MTU each one means by `--mtu=0`), the port drivers (`--port-driver`), the user-mode
//! network's CIDR (`--cidr`), and the external slirp4netns's options.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

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
            Self::Host
                | Self::None
                | Self::Builtin
                | Self::Slirp4netns
                | Self::Pasta
                | Self::GvisorTapVsock
        )
    }

    /// Whether nsnet's in-process stack serves the driver (`builtin`, and `gvisor-tap-vsock`
    /// with that driver's addressing).
    pub fn in_process(self) -> bool {
        matches!(self, Self::Builtin | Self::GvisorTapVsock)
    }

    /// The MTU `--mtu=0` stands for.
    pub fn default_mtu(self) -> u32 {
        match self {
            Self::Builtin | Self::Slirp4netns | Self::Pasta | Self::GvisorTapVsock => 65520,
            _ => 1500,
        }
    }

    /// Where the gateway and the DNS server sit in the CIDR (host numbers): slirp4netns's
    /// plan (gateway .2, DNS .3) for every driver but gvisor-tap-vsock, whose gateway is .1
    /// and answers DNS itself. The child is .100 for all of them.
    pub fn gateway_and_dns_hosts(self) -> (u32, u32) {
        match self {
            Self::GvisorTapVsock => (1, 1),
            _ => (2, 3),
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
    /// RootlessKit v3's driver for its gvisor-tap-vsock network; here the builtin driver
    /// serves it (same API contract), and `/v1/info` names it as asked.
    GvisorTapVsock,
    /// RootlessKit v3's driver for `--net=pasta` (pasta's `pesto` control tool).
    Pesto,
}

impl PortDriver {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "builtin" => Self::Builtin,
            "slirp4netns" => Self::Slirp4netns,
            "implicit" => Self::Implicit,
            // RootlessKit's flag has spelled it both ways.
            "gvisor-tap-vsock" | "gvisortapvsock" => Self::GvisorTapVsock,
            "pesto" => Self::Pesto,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Builtin => "builtin",
            Self::Slirp4netns => "slirp4netns",
            Self::Implicit => "implicit",
            Self::GvisorTapVsock => "gvisor-tap-vsock",
            Self::Pesto => "pesto",
        }
    }

    /// Whether nsnet's builtin driver (a listener on the host, a socket in the child's netns
    /// per flow) serves it.
    pub fn builtin_served(self) -> bool {
        matches!(self, Self::Builtin | Self::GvisorTapVsock)
    }
}

/// `--source-ip-transparent-backend`: how RootlessKit installs the child-side rules that
/// deliver replies to a transparently bound client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceIpBackend {
    Auto,
    Nft,
    Iptables,
}

impl SourceIpBackend {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => Self::Auto,
            "nft" => Self::Nft,
            "iptables" => Self::Iptables,
            _ => return None,
        })
    }
}

/// What `/v1/info` reports as `portDriver.extra.sourceIPTransparentBackend` when nsnet's
/// source-IP routing is in place: policy routing set up over netlink (a fwmark rule, a
/// `local` route, per-port UDP rules), which needs neither nft nor iptables whatever the
/// flag asked for.
pub const SOURCE_IP_BACKEND_USED: &str = "netlink";

/// The same key's value when client addresses are not kept (`--source-ip-transparent=false`,
/// or the routing could not be set up), as RootlessKit reports it.
pub const SOURCE_IP_BACKEND_NONE: &str = "none";

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
        let net: ipnet::Ipv4Net = s
            .parse()
            .map_err(|_| ConfigError::Cidr(format!("invalid CIDR address: {s}")))?;
        if net.network() != net.addr() {
            return Err(ConfigError::Cidr(
                "cidr must be like 10.0.2.0/24, not like 10.0.2.100/24".into(),
            ));
        }
        Ok(Ipv4Cidr {
            network: net.network(),
            prefix: net.prefix_len(),
        })
    }

    /// The address `n` hosts into the network (slirp4netns: 2 gateway, 3 DNS, 100 guest).
    pub fn host(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(n))
    }
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

/// `--slirp4netns-sandbox` and `--slirp4netns-seccomp` take `auto`, `true` or `false`; an
/// empty value (`--slirp4netns-sandbox=`) is let through and means off, as it always has.
pub(super) fn tri_state(flag: &str, v: &str) -> Result<(), ConfigError> {
    match v {
        "auto" | "true" | "false" | "" => Ok(()),
        _ => Err(ConfigError::Invalid(format!(
            "unsupported {flag} mode: {v:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let c = Ipv4Cidr::parse("10.0.135.128/25").unwrap();
        assert_eq!(c.host(100).to_string(), "10.0.135.228");
        assert!(Ipv4Cidr::parse("10.0.2.0").is_err());
        assert!(Ipv4Cidr::parse("10.0.2.0/33").is_err());
        assert_eq!(
            Ipv4Cidr::parse("10.0.2.100/24").unwrap_err().to_string(),
            "cidr must be like 10.0.2.0/24, not like 10.0.2.100/24"
        );
    }

    #[test]
    fn names_round_trip() {
        for n in [
            "host",
            "none",
            "builtin",
            "slirp4netns",
            "pasta",
            "vpnkit",
            "lxc-user-nic",
            "gvisor-tap-vsock",
        ] {
            assert_eq!(NetDriver::parse(n).unwrap().name(), n);
        }
        for n in [
            "none",
            "builtin",
            "slirp4netns",
            "implicit",
            "gvisor-tap-vsock",
            "pesto",
        ] {
            assert_eq!(PortDriver::parse(n).unwrap().name(), n);
        }
        assert_eq!(
            PortDriver::parse("gvisortapvsock"),
            Some(PortDriver::GvisorTapVsock)
        );
        assert_eq!(NetDriver::GvisorTapVsock.gateway_and_dns_hosts(), (1, 1));
        assert_eq!(NetDriver::Builtin.gateway_and_dns_hosts(), (2, 3));
        assert_eq!(NetDriver::GvisorTapVsock.default_mtu(), 65520);
        assert_eq!(SourceIpBackend::parse("nft"), Some(SourceIpBackend::Nft));
        assert_eq!(SourceIpBackend::parse("bpf"), None);
        assert_eq!(NetDriver::parse("bogus"), None);
        assert_eq!(NetDriver::Builtin.default_mtu(), 65520);
        assert_eq!(NetDriver::None.default_mtu(), 1500);
        assert!(tri_state("x", "").is_ok());
        assert_eq!(
            tri_state("x", "yes").unwrap_err().to_string(),
            "unsupported x mode: \"yes\""
        );
    }
}
