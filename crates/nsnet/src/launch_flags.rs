//! The launcher's flags, shared by `nsnet run` and the `rootlesskit` personality, spelled as
//! RootlessKit spells them (integrators grep `--help` for flag names).
//!
//! Go's flag package accepts `--pidns`, `--pidns=true` and `--pidns=false` for a boolean, and
//! RootlessKit's scripts use all three, so every boolean here takes an optional `=VALUE`.

use std::path::PathBuf;

use clap::{ArgAction, Args};
use nsnet_run::RawOptions;

#[derive(Debug, Clone, Args)]
pub struct LaunchFlags {
    /// Debug mode (same as RUST_LOG=debug)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Misc")]
    pub debug: bool,

    /// State directory (default: a temporary directory, removed on exit)
    #[arg(long, value_name = "DIR", help_heading = "State")]
    pub state_dir: Option<PathBuf>,

    /// Network driver [host, none, builtin, slirp4netns, pasta, vpnkit, lxc-user-nic, gvisor-tap-vsock] (default: builtin for nsnet run, host for rootlesskit)
    #[arg(long, value_name = "DRIVER", help_heading = "Network")]
    pub net: Option<String>,

    /// MTU for non-host network (0: 65520 for builtin, slirp4netns and pasta; 1500 for others)
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        help_heading = "Network"
    )]
    pub mtu: i64,

    /// CIDR for the user-mode network (default: 10.0.2.0/24)
    #[arg(long, help_heading = "Network")]
    pub cidr: Option<String>,

    /// Network interface name (default: tap0)
    #[arg(long, help_heading = "Network")]
    pub ifname: Option<String>,

    /// Prohibit connecting to 127.0.0.1:* on the host namespace
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Network")]
    pub disable_host_loopback: bool,

    /// Enable IPv6 routing (builtin and slirp4netns)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Network")]
    pub ipv6: bool,

    /// Detach network namespaces: the command stays in the host netns, the new netns is kept at $STATE/netns
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Network")]
    pub detach_netns: bool,

    /// Path of the slirp4netns binary for --net=slirp4netns
    #[arg(
        long,
        default_value = "slirp4netns",
        help_heading = "Network [slirp4netns]"
    )]
    pub slirp4netns_binary: String,

    /// Enable slirp4netns sandbox [auto, true, false]
    #[arg(long, default_value = "auto", help_heading = "Network [slirp4netns]")]
    pub slirp4netns_sandbox: String,

    /// Enable slirp4netns seccomp [auto, true, false]
    #[arg(long, default_value = "auto", help_heading = "Network [slirp4netns]")]
    pub slirp4netns_seccomp: String,

    /// Path of the pasta binary for --net=pasta
    #[arg(long, default_value = "pasta", help_heading = "Network [pasta]")]
    pub pasta_binary: String,

    /// Path of the VPNKit binary for --net=vpnkit
    #[arg(long, default_value = "vpnkit", help_heading = "Network [vpnkit]")]
    pub vpnkit_binary: String,

    /// Path of the lxc-user-nic binary for --net=lxc-user-nic
    #[arg(
        long,
        default_value = "/usr/lib/x86_64-linux-gnu/lxc/lxc-user-nic",
        help_heading = "Network [lxc-user-nic]"
    )]
    pub lxc_user_nic_binary: String,

    /// lxc-user-nic bridge name
    #[arg(
        long,
        default_value = "lxcbr0",
        help_heading = "Network [lxc-user-nic]"
    )]
    pub lxc_user_nic_bridge: String,

    /// Mount a filesystem and copy-up the contents, e.g. --copy-up=/etc (repeatable)
    #[arg(long, value_name = "DIR", help_heading = "Mount")]
    pub copy_up: Vec<String>,

    /// Copy-up mode [tmpfs+symlink]
    #[arg(long, default_value = "tmpfs+symlink", help_heading = "Mount")]
    pub copy_up_mode: String,

    /// Mount propagation [rprivate, rslave] (also private, slave)
    #[arg(long, default_value = "rprivate", help_heading = "Mount")]
    pub propagation: String,

    /// Port driver for non-host network [none, builtin, slirp4netns, implicit]
    #[arg(long, default_value = "none", help_heading = "Port")]
    pub port_driver: String,

    /// Publish ports, e.g. 127.0.0.1:8080:80/tcp (repeatable)
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "SPEC",
        help_heading = "Port"
    )]
    pub publish: Vec<String>,

    /// Preserve the client's source IP for published TCP ports
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", action = ArgAction::Set, help_heading = "Port")]
    pub source_ip_transparent: bool,

    /// Create a PID namespace
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Process")]
    pub pidns: bool,

    /// Create a cgroup namespace
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Process")]
    pub cgroupns: bool,

    /// Create a UTS namespace
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Process")]
    pub utsns: bool,

    /// Create an IPC namespace
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Process")]
    pub ipcns: bool,

    /// Enable process reaper. Requires --pidns. [auto, true, false]
    #[arg(long, default_value = "auto", help_heading = "Process")]
    pub reaper: String,

    /// Evacuate processes into the specified subgroup. Requires --pidns and --cgroupns
    #[arg(long, value_name = "SUBGROUP", help_heading = "Process")]
    pub evacuate_cgroup2: Option<String>,

    /// The source of the subids. "dynamic" executes /usr/bin/getsubids, "static" reads /etc/{subuid,subgid} [auto, dynamic, static]
    #[arg(long, default_value = "auto", help_heading = "SubID")]
    pub subid_source: String,

    /// The command to run, and its arguments
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl LaunchFlags {
    /// The raw options for the launcher, with `default_net` when `--net` is absent.
    pub fn raw(&self, default_net: &str) -> RawOptions {
        RawOptions {
            state_dir: self.state_dir.clone(),
            net: self.net.clone().unwrap_or_else(|| default_net.to_string()),
            mtu: self.mtu,
            cidr: self.cidr.clone(),
            ifname: self.ifname.clone(),
            disable_host_loopback: self.disable_host_loopback,
            ipv6: self.ipv6,
            detach_netns: self.detach_netns,
            copy_up: self.copy_up.clone(),
            copy_up_mode: self.copy_up_mode.clone(),
            propagation: self.propagation.clone(),
            port_driver: self.port_driver.clone(),
            publish: self.publish.clone(),
            source_ip_transparent: self.source_ip_transparent,
            pidns: self.pidns,
            cgroupns: self.cgroupns,
            utsns: self.utsns,
            ipcns: self.ipcns,
            reaper: self.reaper.clone(),
            evacuate_cgroup2: self.evacuate_cgroup2.clone(),
            subid_source: self.subid_source.clone(),
            debug: self.debug,
            slirp4netns_binary: self.slirp4netns_binary.clone(),
            slirp4netns_sandbox: self.slirp4netns_sandbox.clone(),
            slirp4netns_seccomp: self.slirp4netns_seccomp.clone(),
            pasta_binary: self.pasta_binary.clone(),
            command: self.command.clone(),
        }
    }
}
