//! The launcher's flags, declared and defaulted once: [`RawOptions`] is flattened into both
//! front ends' command lines (`nsnet run` and the `rootlesskit` personality), as youki's
//! liboci-cli holds the arg structs its runtimes share. Spelled as RootlessKit spells them
//! (integrators grep `--help` for flag names, nerdctl looks for `--detach-netns`), so every
//! RootlessKit flag is declared here even where this build cannot act on it yet.
//!
//! The one default that differs between the front ends, `--net`, is left unset here and
//! resolved by [`Personality::default_net`](super::Personality::default_net).
//!
//! Go's flag package accepts `--pidns`, `--pidns=true` and `--pidns=false` for a boolean, and
//! RootlessKit's scripts use all three, so every boolean here takes an optional `=VALUE`.

use std::path::PathBuf;

use clap::{ArgAction, Args, FromArgMatches};

// The flags as parsed and not yet checked against each other (`LaunchPlan::from_raw` does
// that). A plain comment, not a doc comment: clap would take a doc comment on a flattened
// struct as the about text of the command it is flattened into.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RawOptions {
    /// Debug mode (same as RUST_LOG=debug)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Misc")]
    pub debug: bool,

    /// State directory (default: a temporary directory, removed on exit)
    #[arg(long, value_name = "DIR", help_heading = "State")]
    pub state_dir: Option<PathBuf>,

    /// Network driver [host, none, builtin, slirp4netns, pasta, gvisor-tap-vsock, vpnkit, lxc-user-nic] (default: builtin for nsnet run, host for rootlesskit; gvisor-tap-vsock is served by nsnet's own stack: child 10.0.2.100/24, gateway and DNS 10.0.2.1)
    #[arg(long, value_name = "DRIVER", help_heading = "Network")]
    // `None` when absent: the default depends on the front end (see the module page).
    pub net: Option<String>,

    /// MTU for non-host network (0: 65520 for builtin, slirp4netns, pasta and gvisor-tap-vsock; 1500 for others)
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        help_heading = "Network"
    )]
    pub mtu: i64,

    /// CIDR for builtin, slirp4netns, pasta and gvisor-tap-vsock networks (default: 10.0.2.0/24)
    #[arg(long, help_heading = "Network")]
    pub cidr: Option<String>,

    /// Network interface name (default: tap0)
    #[arg(long, help_heading = "Network")]
    pub ifname: Option<String>,

    /// Prohibit connecting to 127.0.0.1:* on the host namespace
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, help_heading = "Network")]
    pub disable_host_loopback: bool,

    /// Enable IPv6 routing (builtin, slirp4netns and pasta; not supported for gvisor-tap-vsock)
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

    // The VPNKit and lxc-user-nic flags are accepted (scripts pass them) but unused: the
    // plan refuses those drivers as unavailable in this build.
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

    /// Port driver for non-host network [none, builtin, slirp4netns, implicit (for pasta), pesto (for pasta), gvisor-tap-vsock]
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

    /// Backend of --source-ip-transparent's child-side rules [auto, nft, iptables] (nsnet sets up policy routing over netlink, which needs neither; /v1/info reports what is used)
    #[arg(long, default_value = "auto", help_heading = "Port")]
    pub source_ip_transparent_backend: String,

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

impl Default for RawOptions {
    /// The options of an empty command line: the defaults declared on the fields above, so
    /// that options built in code (and in tests) start from what the parser would give.
    fn default() -> Self {
        let cmd = Self::augment_args(clap::Command::new("defaults").no_binary_name(true));
        let matches = cmd
            .try_get_matches_from(std::iter::empty::<&str>())
            .expect("every launcher flag is optional");
        Self::from_arg_matches(&matches).expect("the defaults parse as their fields")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: RawOptions,
    }

    fn parse(args: &[&str]) -> RawOptions {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .flags
    }

    #[test]
    fn defaults_are_the_declared_ones() {
        let d = RawOptions::default();
        assert_eq!(d, parse(&[]));
        assert_eq!(d.net, None);
        assert_eq!(d.mtu, 0);
        assert_eq!(d.port_driver, "none");
        assert_eq!(d.propagation, "rprivate");
        assert_eq!(d.copy_up_mode, "tmpfs+symlink");
        assert_eq!(d.reaper, "auto");
        assert_eq!(d.subid_source, "auto");
        assert_eq!(d.slirp4netns_binary, "slirp4netns");
        assert_eq!(d.pasta_binary, "pasta");
        assert!(d.source_ip_transparent && !d.pidns && !d.debug);
        assert_eq!(d.source_ip_transparent_backend, "auto");
    }

    #[test]
    fn booleans_take_go_spellings_and_command_is_trailing() {
        let o = parse(&[
            "--pidns",
            "--ipv6=true",
            "--source-ip-transparent=false",
            "-p",
            "8080:80/tcp",
            "--publish=1:2/udp",
            "--net=none",
            "sh",
            "-c",
            "--pidns",
        ]);
        assert!(o.pidns && o.ipv6 && !o.source_ip_transparent);
        assert_eq!(o.publish, ["8080:80/tcp", "1:2/udp"]);
        assert_eq!(o.net.as_deref(), Some("none"));
        assert_eq!(o.command, ["sh", "-c", "--pidns"]);
        assert!(Cli::try_parse_from(["x", "--pidns=maybe"]).is_err());
    }
}
