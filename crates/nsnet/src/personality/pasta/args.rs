//! pasta's command line: passt 2026_07_16's `conf.c` options as Podman and RootlessKit pass
//! them, getopt_long's behaviour (clustered short options, `--opt=value`, abbreviations refused)
//! and pasta's messages and exit codes for bad input. The forwarding specs themselves are
//! `nsnet_api::pesto::spec`'s.
//!
//! Options that take an address of either family (`-a`, `-g`, `--map-host-loopback`,
//! `--map-guest-addr`, `--dns-forward`, `--dns-host`) keep one value per family, the last
//! given winning, and try IPv6 first as `conf.c` does; `none` clears both families.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The version pasta reports; the suffix says whose it is.
pub const VERSION: &str = concat!("2026_07_16.nsnet-", env!("CARGO_PKG_VERSION"));

pub(super) const USAGE: &str = "Usage: pasta [OPTION]... [COMMAND] [ARGS]...
       pasta [OPTION]... PID
       pasta [OPTION]... --netns [PATH|NAME]

Without PID or --netns, run the given command or a
default shell in a new network and user namespace, and
connect it via pasta (nsnet's user-mode stack).

  -d, --debug		Be verbose
      --trace		Be extra verbose, implies --debug
  -q, --quiet		Don't print informational messages
  -f, --foreground	Don't run in background
    default: run in background
  -e, --stderr		Log to stderr too (always the case here)
  --runas UID|UID:GID 	Run as given UID, GID (only the current ones here)
  -c, --conf-path PATH	Configuration socket path
  -h, --help		Display this help message and exit
  --version		Show version and exit
  -I, --ns-ifname NAME	namespace interface name
    default: same interface name as external one
  -P, --pid FILE	Write own PID to the given file
  -m, --mtu MTU	Assign MTU via DHCP/NDP
    default: 65520
  -a, --address ADDR	Assign IPv4 or IPv6 address ADDR[/PREFIXLEN]
    can be specified zero to two times (for IPv4 and IPv6)
    default: use addresses from interface with default route
  -n, --netmask MASK	Assign IPv4 MASK, dot-decimal or bits
  -g, --gateway ADDR	Pass IPv4 or IPv6 address as gateway
    default: gateway from interface with default route
  -i, --interface NAME	Interface for addresses and routes
  -D, --dns ADDR	Use IPv4 or IPv6 address as DNS (accepted; no DHCP DNS list)
  --map-host-loopback ADDR	Translate ADDR to refer to host
    can be specified zero to two times (for IPv4 and IPv6)
    default: gateway address
  --map-guest-addr ADDR	Translate ADDR to guest's address
    can be specified zero to two times (for IPv4 and IPv6)
  --dns-forward ADDR	Forward DNS queries sent to ADDR
    can be specified zero to two times (for IPv4 and IPv6)
  --dns-host ADDR	Host nameserver to direct queries to
    can be specified zero to two times (for IPv4 and IPv6)
  --no-dhcp		Disable DHCP server
  --no-ndp		Disable NDP responses
  --no-dhcpv6		Disable DHCPv6 server
  --no-ra		Disable router advertisements
  --no-map-gw		Don't map gateway address to host
  -4, --ipv4-only	Enable IPv4 operation only
  -6, --ipv6-only	Enable IPv6 operation only
  -t, --tcp-ports SPEC	TCP port forwarding to namespace
    SPEC can be:
      'none': don't forward any ports
      'auto': forward all ports currently bound in namespace
      [ADDR[%IFACE]/]PORTS: forward specific ports
        PORTS is a comma-separated list of ports or port
         ranges.  'all' indicates all unbound non-ephemeral
         ports.  Ranges can be reduced by excluding ports or
         ranges prefixed by '~'.
        Examples:
        -t 22		Forward local port 22 to 22 on namespace
        -t 22:23	Forward local port 22 to 23 on namespace
        -t 22-80:32-90	Forward ports 22 to 80 to
			corresponding port numbers plus 10
        -t 192.0.2.1/5	Bind port 5 of 192.0.2.1 to namespace
        -t 0.0.0.0/5000:192.0.2.5/6000	Forward port 5000 to 192.0.2.5:6000
        -t 5-25,~10-20	Forward ports 5 to 9, and 21 to 25
    default: auto
  -u, --udp-ports SPEC	UDP port forwarding to namespace
    SPEC is as described for TCP above
  -T, --tcp-ns SPEC	TCP port forwarding to init namespace
    SPEC is as described above, without ADDR/; default: auto
  -U, --udp-ns SPEC	UDP port forwarding to init namespace
    SPEC is as described above, without ADDR/; default: auto
  --host-lo-to-ns-lo	Translate host-loopback forwards to
			namespace loopback
  --userns NSPATH 	Target user namespace to join
  --netns PATH|NAME	Target network namespace to join
  --netns-only		Don't join existing user namespace
  --no-netns-quit	Don't quit if filesystem-bound target
  			network namespace is deleted
  --config-net		Configure tap interface in namespace
  --ns-mac-addr ADDR	Set MAC address on tap interface
";

#[derive(Debug, Default)]
pub(super) struct Opts {
    pub(super) config_net: bool,
    pub(super) netns: Option<String>,
    pub(super) netns_only: bool,
    pub(super) userns: Option<String>,
    pub(super) specs: Vec<(char, String)>,
    pub(super) map_guest_addr: Option<Ipv4Addr>,
    pub(super) map_guest_addr6: Option<Ipv6Addr>,
    pub(super) map_host_loopback: Option<Ipv4Addr>,
    pub(super) map_host_loopback6: Option<Ipv6Addr>,
    pub(super) dns_forward: Option<Ipv4Addr>,
    pub(super) dns_forward6: Option<Ipv6Addr>,
    pub(super) dns_host: Option<Ipv4Addr>,
    pub(super) dns_host6: Option<Ipv6Addr>,
    pub(super) no_map_gw: bool,
    pub(super) address: Option<(Ipv4Addr, Option<u8>)>,
    /// `-a ADDR6[/LEN]`: pasta assigns it as a /64 whatever LEN says (passt(1)).
    pub(super) address6: Option<Ipv6Addr>,
    pub(super) netmask: Option<u8>,
    pub(super) gateway: Option<Ipv4Addr>,
    pub(super) gateway6: Option<Ipv6Addr>,
    /// `-4` and `-6`: the last one given wins.
    pub(super) ipv4_only: bool,
    pub(super) ipv6_only: bool,
    /// `--host-lo-to-ns-lo`: forwards from host loopback go to the namespace's loopback.
    pub(super) host_lo_to_ns_lo: bool,
    pub(super) mtu: Option<u32>,
    pub(super) iface: Option<String>,
    pub(super) ns_ifname: Option<String>,
    pub(super) ns_mac: Option<[u8; 6]>,
    pub(super) pid_file: Option<String>,
    pub(super) conf_path: Option<String>,
    pub(super) foreground: bool,
    pub(super) no_netns_quit: bool,
    /// PID or command.
    pub(super) rest: Vec<String>,
}

pub(super) enum Parsed {
    Run(Box<Opts>),
    Help,
    Version,
}

/// A failure in pasta's words; `usage` adds the usage text after it, as getopt's errors do.
pub(super) struct Die {
    pub(super) msg: String,
    pub(super) usage: bool,
}

fn die<T>(msg: impl Into<String>) -> Result<T, Die> {
    Err(Die {
        msg: msg.into(),
        usage: false,
    })
}

const SHORT_ARG: &str = "lscFIpPmanMgioDSHtuTU";
const SHORT_FLAG: &str = "dqfeh461";

fn long_name(short: char) -> Option<&'static str> {
    Some(match short {
        'd' => "debug",
        'q' => "quiet",
        'f' => "foreground",
        'e' => "stderr",
        'l' => "log-file",
        'h' => "help",
        's' => "socket",
        'c' => "conf-path",
        'F' => "fd",
        'I' => "ns-ifname",
        'p' => "pcap",
        'P' => "pid",
        'm' => "mtu",
        'a' => "address",
        'n' => "netmask",
        'M' => "mac-addr",
        'g' => "gateway",
        'i' => "interface",
        'o' => "outbound",
        'D' => "dns",
        'S' => "search",
        'H' => "hostname",
        '4' => "ipv4-only",
        '6' => "ipv6-only",
        '1' => "one-off",
        't' => "tcp-ports",
        'u' => "udp-ports",
        'T' => "tcp-ns",
        'U' => "udp-ns",
        _ => return None,
    })
}

/// Long options taking an argument (besides the short ones' long names).
const LONG_ARG: &[&str] = &[
    "userns",
    "netns",
    "ns-mac-addr",
    "dns-forward",
    "runas",
    "log-size",
    "outbound-if4",
    "outbound-if6",
    "map-host-loopback",
    "map-guest-addr",
    "dns-host",
    "socket-path",
    "fqdn",
    "repair-path",
    "stats",
];
const LONG_FLAG: &[&str] = &[
    "no-tcp",
    "no-udp",
    "no-icmp",
    "no-dhcp",
    "no-dhcpv6",
    "no-ndp",
    "no-ra",
    "no-splice",
    "splice-only",
    "freebind",
    "no-map-gw",
    "dhcp-dns",
    "no-dhcp-dns",
    "dhcp-search",
    "no-dhcp-search",
    "no-netns-quit",
    "trace",
    "version",
    "config-net",
    "no-copy-routes",
    "no-copy-addrs",
    "netns-only",
    "host-lo-to-ns-lo",
    "vhost-user",
    "print-capabilities",
    "migrate-exit",
    "migrate-no-linger",
    "chroot-fallback",
];

/// `conf_nat()`'s address: IPv6 first, then IPv4; neither unspecified, loopback nor
/// multicast.
fn nat_addr(v: &str) -> Result<IpAddr, Die> {
    match v.parse::<IpAddr>() {
        Ok(a) if !a.is_unspecified() && !a.is_loopback() && !a.is_multicast() => Ok(a),
        _ => die(format!("Invalid address to remap to host: {v}")),
    }
}

/// An address of either family that is none of `unspecified` and `loopback` (IPv6) or of
/// those and broadcast (IPv4), as `conf.c` checks `--dns-forward`, `--dns-host` and `-g`.
fn addr_not(v: &str, loopback: bool, msg: &str) -> Result<IpAddr, Die> {
    match v.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) if !(a.is_unspecified() || loopback && a.is_loopback()) => {
            Ok(IpAddr::V6(a))
        }
        Ok(IpAddr::V4(a))
            if !(a.is_unspecified() || a.is_broadcast() || loopback && a.is_loopback()) =>
        {
            Ok(IpAddr::V4(a))
        }
        _ => die(format!("{msg}: {v}")),
    }
}

fn parse_mac(v: &str) -> Result<[u8; 6], Die> {
    let parts: Vec<&str> = v.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() == 6
        && parts
            .iter()
            .zip(mac.iter_mut())
            .all(|(p, m)| p.len() == 2 && u8::from_str_radix(p, 16).map(|b| *m = b).is_ok())
    {
        return Ok(mac);
    }
    die(format!("Invalid MAC address: {v}"))
}

fn parse_prefix(v: &str) -> Result<u8, Die> {
    if let Ok(m) = v.parse::<Ipv4Addr>() {
        let m = u32::from(m);
        let len = m.count_ones();
        if m.checked_shl(len).unwrap_or(0) == 0 {
            return Ok(len as u8);
        }
    } else if let Ok(n) = v.parse::<u8>()
        && n <= 32
    {
        return Ok(n);
    }
    die(format!("Invalid prefix length: {v}"))
}

/// Parses pasta's command line (getopt_long with `+`: options stop at the first operand).
pub(super) fn parse(argv0: &str, args: &[String]) -> Result<Parsed, Die> {
    let mut o = Opts::default();
    // Whether the last `-a` carried a prefix length (conf.c's `opt_a_is_prefix`).
    let mut a_had_prefix = false;
    let usage_err = |msg: String| Die { msg, usage: true };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].clone();
        i += 1;
        if a == "--" {
            o.rest = args[i..].to_vec();
            break;
        }
        let (name, inline): (String, Option<String>) = if let Some(l) = a.strip_prefix("--") {
            let (n, v) = match l.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (l, None),
            };
            if !LONG_ARG.contains(&n)
                && !LONG_FLAG.contains(&n)
                && !SHORT_ARG
                    .chars()
                    .chain(SHORT_FLAG.chars())
                    .any(|c| long_name(c) == Some(n))
            {
                return Err(usage_err(format!("{argv0}: unrecognized option '--{n}'")));
            }
            (n.to_string(), v)
        } else if a.len() > 1 && a.starts_with('-') {
            // A cluster of short flags, possibly ending in one that takes the rest.
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            let mut found = None;
            while j < chars.len() {
                let c = chars[j];
                if SHORT_ARG.contains(c) {
                    let rest: String = chars[j + 1..].iter().collect();
                    found = Some((c, (!rest.is_empty()).then_some(rest)));
                    break;
                }
                if !SHORT_FLAG.contains(c) {
                    return Err(usage_err(format!("{argv0}: invalid option -- '{c}'")));
                }
                match c {
                    'h' => return Ok(Parsed::Help),
                    'f' => o.foreground = true,
                    '4' => (o.ipv4_only, o.ipv6_only) = (true, false),
                    '6' => (o.ipv4_only, o.ipv6_only) = (false, true),
                    '1' => return die("--one-off is for passt mode only"),
                    _ => {}
                }
                j += 1;
            }
            match found {
                None => continue,
                Some((c, v)) => (long_name(c).expect("short option").to_string(), v),
            }
        } else {
            o.rest = args[i - 1..].to_vec();
            break;
        };
        let takes = LONG_ARG.contains(&name.as_str())
            || SHORT_ARG
                .chars()
                .any(|c| long_name(c) == Some(name.as_str()));
        let value = if takes {
            match inline {
                Some(v) => v,
                None => {
                    let Some(v) = args.get(i).cloned() else {
                        let short = SHORT_ARG.chars().find(|c| long_name(*c) == Some(&name));
                        return Err(usage_err(match (short, a.starts_with("--")) {
                            (Some(c), false) => {
                                format!("{argv0}: option requires an argument -- '{c}'")
                            }
                            _ => format!("{argv0}: option '--{name}' requires an argument"),
                        }));
                    };
                    i += 1;
                    v
                }
            }
        } else {
            if inline.is_some() {
                return Err(usage_err(format!(
                    "{argv0}: option '--{name}' doesn't allow an argument"
                )));
            }
            String::new()
        };
        match name.as_str() {
            "help" => return Ok(Parsed::Help),
            "version" => return Ok(Parsed::Version),
            "debug" | "trace" | "quiet" | "stderr" => {}
            "foreground" => o.foreground = true,
            "config-net" => o.config_net = true,
            "netns" => {
                o.netns = Some(if value.contains('/') {
                    value
                } else {
                    format!("/run/netns/{value}")
                })
            }
            "netns-only" => {
                o.netns_only = true;
                o.userns = None;
            }
            "userns" => {
                o.userns = Some(value);
                o.netns_only = false;
            }
            "no-netns-quit" => o.no_netns_quit = true,
            "host-lo-to-ns-lo" => o.host_lo_to_ns_lo = true,
            "tcp-ports" => o.specs.push(('t', value)),
            "udp-ports" => o.specs.push(('u', value)),
            "tcp-ns" => o.specs.push(('T', value)),
            "udp-ns" => o.specs.push(('U', value)),
            "map-guest-addr" => match value.as_str() {
                "none" => (o.map_guest_addr, o.map_guest_addr6) = (None, None),
                _ => match nat_addr(&value)? {
                    IpAddr::V4(a) => o.map_guest_addr = Some(a),
                    IpAddr::V6(a) => o.map_guest_addr6 = Some(a),
                },
            },
            // `none` maps nothing (and implies --no-map-gw); an address given is mapped even
            // with --no-map-gw, which only drops the default (the gateway).
            "map-host-loopback" => match value.as_str() {
                "none" => {
                    (o.map_host_loopback, o.map_host_loopback6) = (None, None);
                    o.no_map_gw = true;
                }
                _ => match nat_addr(&value)? {
                    IpAddr::V4(a) => o.map_host_loopback = Some(a),
                    IpAddr::V6(a) => o.map_host_loopback6 = Some(a),
                },
            },
            "dns-forward" => match addr_not(&value, true, "Invalid DNS forwarding address")? {
                IpAddr::V4(a) => o.dns_forward = Some(a),
                IpAddr::V6(a) => o.dns_forward6 = Some(a),
            },
            "dns-host" => match addr_not(&value, false, "Invalid host nameserver address")? {
                IpAddr::V4(a) => o.dns_host = Some(a),
                IpAddr::V6(a) => o.dns_host6 = Some(a),
            },
            "no-map-gw" => o.no_map_gw = true,
            "ipv4-only" => (o.ipv4_only, o.ipv6_only) = (true, false),
            "ipv6-only" => (o.ipv4_only, o.ipv6_only) = (false, true),
            "address" => {
                let (a, p) = match value.split_once('/') {
                    Some((a, p)) => (a, Some(p)),
                    None => (value.as_str(), None),
                };
                let bad = || Die {
                    msg: format!("Invalid guest address: {value}"),
                    usage: false,
                };
                // An IPv4-mapped address is the IPv4 one, as pasta's inany addresses are.
                let addr = match a.parse::<IpAddr>().map_err(|_| bad())? {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    v4 => v4,
                };
                // conf_addr()'s order: a prefix that is no number, then one given beside -n,
                // then one out of range.
                let prefix = match p {
                    None => None,
                    Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
                        return Err(bad());
                    }
                    Some(p) => {
                        if o.netmask.is_some() {
                            return die("Redundant prefix length specification");
                        }
                        let max = if addr.is_ipv4() { 32 } else { 128 };
                        match p.parse::<u8>() {
                            Ok(n) if n <= max => Some(n),
                            _ => return die(format!("Invalid prefix length: {value}")),
                        }
                    }
                };
                if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
                    return Err(bad());
                }
                a_had_prefix = prefix.is_some();
                match addr {
                    IpAddr::V4(v4) => o.address = Some((v4, prefix)),
                    IpAddr::V6(v6) => o.address6 = Some(v6),
                }
            }
            "netmask" => {
                if a_had_prefix {
                    return die("Redundant prefix length specification");
                }
                o.netmask = Some(parse_prefix(&value)?);
            }
            "gateway" => match addr_not(&value, true, "Invalid gateway address")? {
                IpAddr::V4(a) => o.gateway = Some(a),
                IpAddr::V6(a) => o.gateway6 = Some(a),
            },
            "mtu" => match value.parse::<u32>() {
                Ok(m) if m <= 65520 => o.mtu = Some(m),
                Ok(m) => return die(format!("MTU {m} too large (max 65520)")),
                Err(_) => return die(format!("Invalid MTU: {value}")),
            },
            "interface" => o.iface = Some(value),
            "ns-ifname" => {
                if value.is_empty() || value.len() >= 16 {
                    return die(format!("Invalid interface name: {value}"));
                }
                o.ns_ifname = Some(value)
            }
            "ns-mac-addr" => o.ns_mac = Some(parse_mac(&value)?),
            "pid" => o.pid_file = Some(value),
            "conf-path" => o.conf_path = Some(value),
            "runas" => {
                let me = format!(
                    "{}:{}",
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw()
                );
                let uid_only = nix::unistd::geteuid().as_raw().to_string();
                if value != me && value != uid_only {
                    return die(format!(
                        "--runas {value}: running as another user is not supported by nsnet's pasta"
                    ));
                }
            }
            // Only the DHCP/NDP servers' lists: the namespace is configured directly.
            "dns" | "no-dhcp" | "no-ndp" | "no-dhcpv6" | "no-ra" | "dhcp-dns" | "dhcp-search"
            | "no-copy-routes" | "no-copy-addrs" => {}
            "no-dhcp-dns" | "no-dhcp-search" => {
                return die(format!("--{name} is for passt mode only"));
            }
            other => {
                return die(format!("--{other} is not supported by nsnet's pasta yet"));
            }
        }
    }
    if o.netns.is_some() && !o.rest.is_empty() {
        return die("Both --netns and PID or command given");
    }
    Ok(Parsed::Run(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run_opts(s: &str) -> Box<Opts> {
        match parse("pasta", &args(s)) {
            Ok(Parsed::Run(o)) => o,
            Ok(_) => panic!("{s}: not a run"),
            Err(e) => panic!("{s}: {}", e.msg),
        }
    }

    fn err(s: &str) -> String {
        match parse("/usr/bin/pasta", &args(s)) {
            Err(e) => e.msg,
            Ok(_) => panic!("{s} accepted"),
        }
    }

    #[test]
    fn podmans_container_command_line() {
        let o = run_opts(
            "--config-net -t 8080:80 -u 5353:53 --dns-forward 169.254.1.1 -T none -U none --no-map-gw --quiet --netns /run/user/1000/netns/netns-1234 --map-guest-addr 169.254.1.2",
        );
        assert!(o.config_net && o.no_map_gw);
        assert_eq!(o.netns.as_deref(), Some("/run/user/1000/netns/netns-1234"));
        assert_eq!(o.dns_forward, Some(Ipv4Addr::new(169, 254, 1, 1)));
        assert_eq!(o.map_guest_addr, Some(Ipv4Addr::new(169, 254, 1, 2)));
        assert_eq!(
            o.specs,
            [
                ('t', "8080:80".to_string()),
                ('u', "5353:53".to_string()),
                ('T', "none".to_string()),
                ('U', "none".to_string())
            ]
        );
        // The rootless netns: --pid and -c too.
        let o = run_opts(
            "--config-net --pid /run/user/1000/containers/networks/rootless-netns/rootless-netns-conn.pid -c /run/user/1000/pesto.sock --dns-forward 169.254.1.1 -t none -u none -T none -U none --no-map-gw --quiet --netns /run/user/1000/netns/rootless-netns --map-guest-addr 169.254.1.2",
        );
        assert!(o.pid_file.as_deref().unwrap().ends_with(".pid"));
        assert_eq!(o.conf_path.as_deref(), Some("/run/user/1000/pesto.sock"));
    }

    #[test]
    fn rootlesskits_command_line() {
        let o = run_opts(
            "--stderr --ns-ifname=tap0 --mtu=65520 --config-net --address=10.0.2.100 --netmask=24 --gateway=10.0.2.2 --dns-forward=10.0.2.3 --no-map-gw --ipv4-only --tcp-ports=none --udp-ports=none --netns-only --netns=/proc/1/root/run/netns --pid=/tmp/pasta.pid",
        );
        assert_eq!(o.address, Some((Ipv4Addr::new(10, 0, 2, 100), None)));
        assert_eq!((o.netmask, o.mtu), (Some(24), Some(65520)));
        assert_eq!(o.gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(o.ns_ifname.as_deref(), Some("tap0"));
        assert!(o.netns_only && o.userns.is_none());
        assert!(!o.host_lo_to_ns_lo);
        assert!(run_opts("--host-lo-to-ns-lo --netns /x").host_lo_to_ns_lo);
    }

    /// `-a`, `-g`, `--map-host-loopback`, `--map-guest-addr`, `--dns-forward`, `--dns-host`
    /// take either family (IPv6 tried first, as conf.c does), one value per family, the last
    /// winning; `-4`/`-6` the last of them; `--host-lo-to-ns-lo` is a flag.
    #[test]
    fn addresses_of_both_families() {
        let o = run_opts(
            "-a 2001:db8::50/56 -a 192.0.2.50 -g 2001:db8::fd -g 192.0.2.49 --map-host-loopback 2001:db8::fe --map-guest-addr 2001:db8:ffff::2 --map-guest-addr 169.254.1.2 --dns-forward 2001:db8:ffff::53 --dns-host ::1 --dns-host 127.0.0.1 --host-lo-to-ns-lo",
        );
        let v6 = |s: &str| s.parse::<Ipv6Addr>().ok();
        assert_eq!(o.address6, v6("2001:db8::50"));
        assert_eq!(o.address, Some((Ipv4Addr::new(192, 0, 2, 50), None)));
        assert_eq!(
            (o.gateway6, o.gateway),
            (v6("2001:db8::fd"), Some(Ipv4Addr::new(192, 0, 2, 49)))
        );
        assert_eq!(
            (o.map_host_loopback6, o.map_host_loopback),
            (v6("2001:db8::fe"), None)
        );
        assert_eq!(
            (o.map_guest_addr6, o.map_guest_addr),
            (v6("2001:db8:ffff::2"), Some(Ipv4Addr::new(169, 254, 1, 2)))
        );
        assert_eq!(
            (o.dns_forward6, o.dns_forward),
            (v6("2001:db8:ffff::53"), None)
        );
        assert_eq!(
            (o.dns_host6, o.dns_host),
            (v6("::1"), Some(Ipv4Addr::LOCALHOST))
        );
        assert!(o.host_lo_to_ns_lo && !o.ipv4_only && !o.ipv6_only);
        for (line, v4_only, v6_only) in [
            ("-6", false, true),
            ("--ipv6-only -4", true, false),
            ("-q64", true, false),
            ("--ipv4-only --ipv6-only", false, true),
        ] {
            let o = run_opts(line);
            assert_eq!((o.ipv4_only, o.ipv6_only), (v4_only, v6_only), "{line}");
        }
        // `none` unmaps both families and implies --no-map-gw; an address given after it, or
        // beside --no-map-gw, is mapped all the same.
        let o = run_opts(
            "--map-host-loopback 2001:db8::fe --map-host-loopback 192.0.2.9 --map-host-loopback none",
        );
        assert_eq!(
            (o.map_host_loopback, o.map_host_loopback6, o.no_map_gw),
            (None, None, true)
        );
        let o = run_opts("--no-map-gw --map-host-loopback 192.0.2.9");
        assert_eq!(
            (o.map_host_loopback, o.no_map_gw),
            (Some(Ipv4Addr::new(192, 0, 2, 9)), true)
        );
        let o = run_opts("--map-guest-addr 2001:db8::2 --map-guest-addr none");
        assert_eq!(o.map_guest_addr6, None);
        // An IPv4-mapped address is the IPv4 address.
        let o = run_opts("-a ::ffff:192.0.2.70");
        assert_eq!(
            (o.address, o.address6),
            (Some((Ipv4Addr::new(192, 0, 2, 70), None)), None)
        );
        for (line, msg) in [
            ("-a ::1", "Invalid guest address: ::1"),
            ("-a ff02::1", "Invalid guest address: ff02::1"),
            ("-a 2001:db8::1/6x", "Invalid guest address: 2001:db8::1/6x"),
            (
                "-a 2001:db8::1/129",
                "Invalid prefix length: 2001:db8::1/129",
            ),
            (
                "-a 2001:db8::1/64 -n 24",
                "Redundant prefix length specification",
            ),
            (
                "-n 24 -a 2001:db8::1/64",
                "Redundant prefix length specification",
            ),
            ("-g ::", "Invalid gateway address: ::"),
            ("-g ::1", "Invalid gateway address: ::1"),
            ("--dns-forward ::1", "Invalid DNS forwarding address: ::1"),
            ("--dns-host ::", "Invalid host nameserver address: ::"),
            (
                "--map-guest-addr ff02::1",
                "Invalid address to remap to host: ff02::1",
            ),
            (
                "--map-host-loopback ::1",
                "Invalid address to remap to host: ::1",
            ),
        ] {
            assert_eq!(err(line), msg, "{line}");
        }
        // -n after an -a without a prefix (of either family) is fine.
        run_opts("-a 2001:db8::1 -n 24");
        assert!(USAGE.contains("--host-lo-to-ns-lo") && USAGE.contains("--ipv6-only"));
    }

    #[test]
    fn pastas_errors_and_exits() {
        assert_eq!(
            err("--map-guest-adr 169.254.1.2"),
            "/usr/bin/pasta: unrecognized option '--map-guest-adr'"
        );
        assert_eq!(err("-Z"), "/usr/bin/pasta: invalid option -- 'Z'");
        assert_eq!(
            err("-t"),
            "/usr/bin/pasta: option requires an argument -- 't'"
        );
        assert_eq!(
            err("--netns"),
            "/usr/bin/pasta: option '--netns' requires an argument"
        );
        assert_eq!(
            err("--dns-forward 127.0.0.1"),
            "Invalid DNS forwarding address: 127.0.0.1"
        );
        assert_eq!(
            err("--map-guest-addr 0.0.0.0"),
            "Invalid address to remap to host: 0.0.0.0"
        );
        assert_eq!(err("-m 70000"), "MTU 70000 too large (max 65520)");
        assert_eq!(
            err("-a 10.0.2.100/24 -n 24"),
            "Redundant prefix length specification"
        );
        assert_eq!(
            err("--netns /x 1234"),
            "Both --netns and PID or command given"
        );
        assert!(err("--pcap /tmp/x").contains("not supported by nsnet's pasta"));
        assert!(matches!(
            parse("pasta", &args("--version")),
            Ok(Parsed::Version)
        ));
        assert!(matches!(parse("pasta", &args("-h")), Ok(Parsed::Help)));
        // Options stop at the command.
        let o = run_opts("--config-net -- ip -o addr");
        assert_eq!(o.rest, ["ip", "-o", "addr"]);
        let o = run_opts("-f sh -c true");
        assert!(o.foreground);
        assert_eq!(o.rest, ["sh", "-c", "true"]);
        assert_eq!(parse_prefix("255.255.255.0").ok(), Some(24));
        for f in [
            "--map-guest-addr",
            "--dns-forward",
            "--no-map-gw",
            "--config-net",
            "--netns",
        ] {
            assert!(USAGE.contains(f), "{f} in --help");
        }
    }
}
