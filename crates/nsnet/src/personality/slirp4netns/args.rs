//! slirp4netns's command line: its options (getopt_long, as slirp4netns 1.2.0 parses them),
//! `--help`, its messages for bad input, and the resolution of `--outbound-addr[6]` (an
//! address, or an interface of the host's namespace).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

pub(super) const HELP: &str = "Usage: slirp4netns [OPTION]... PID|PATH [TAPNAME]
User-mode networking for unprivileged network namespaces (nsnet's stack).

-c, --configure          bring up the interface
-e, --exit-fd=FD         specify the FD for terminating slirp4netns
-r, --ready-fd=FD        specify the FD to write to when the network is configured
-m, --mtu=MTU            specify MTU (default=1500, max=65521)
-6, --enable-ipv6        enable IPv6 (experimental)
-a, --api-socket=PATH    specify API socket path
--cidr=CIDR              specify network address CIDR (default=10.0.2.0/24)
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--netns-type=TYPE 	 specify network namespace type ([path|pid], default=pid)
--userns-path=PATH	 specify user namespace path
--enable-sandbox         create a new mount namespace (and drop all caps except CAP_NET_BIND_SERVICE if running as the root)
--enable-seccomp         enable seccomp to limit syscalls (experimental)
--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)
--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)
--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect (experimental)
--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
-h, --help               show this help and exit
-v, --version            show version and exit
";

#[derive(Debug, Default, PartialEq)]
pub(super) struct Opts {
    pub(super) configure: bool,
    pub(super) exit_fd: Option<i32>,
    pub(super) ready_fd: Option<i32>,
    pub(super) mtu: u32,
    pub(super) ipv6: bool,
    pub(super) cidr: Option<String>,
    pub(super) disable_host_loopback: bool,
    pub(super) netns_type_path: bool,
    pub(super) userns_path: Option<PathBuf>,
    /// An address or an interface name, resolved by [`outbound_addresses`].
    pub(super) outbound_addr: Option<String>,
    pub(super) outbound_addr6: Option<String>,
    pub(super) disable_dns: bool,
    pub(super) api_socket: Option<PathBuf>,
    pub(super) sandbox: bool,
    pub(super) seccomp: bool,
    pub(super) macaddress: Option<[u8; 6]>,
    pub(super) target: String,
    pub(super) ifname: String,
}

/// slirp4netns's MAC syntax: six hex bytes separated by `:`, and its two-line complaint.
fn parse_mac(v: &str) -> Result<[u8; 6], String> {
    let bytes: Vec<&str> = v.split(':').collect();
    let mut mac = [0u8; 6];
    let ok = bytes.len() == 6
        && bytes.iter().zip(mac.iter_mut()).all(|(b, m)| {
            (1..=2).contains(&b.len()) && u8::from_str_radix(b, 16).map(|x| *m = x).is_ok()
        });
    if ok {
        Ok(mac)
    } else {
        Err(format!(
            "\"{v}\" is an invalid MAC address.\nmacaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated by a ':')."
        ))
    }
}

pub(super) enum Parsed {
    Run(Box<Opts>),
    Help,
    Version,
}

/// Parses slirp4netns's command line (getopt_long style: `--opt=v`, `--opt v`, `-xv`, `-x v`).
pub(super) fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut o = Opts {
        mtu: 1500,
        ..Opts::default()
    };
    let mut pos = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (name, inline): (String, Option<String>) = if let Some(l) = a.strip_prefix("--") {
            match l.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (l.to_string(), None),
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let short = &a[1..2];
            let rest = (a.len() > 2).then(|| a[2..].to_string());
            let long = match short {
                "c" => "configure",
                "e" => "exit-fd",
                "r" => "ready-fd",
                "m" => "mtu",
                "6" => "enable-ipv6",
                "a" => "api-socket",
                "h" => "help",
                "v" => "version",
                _ => return Err(format!("invalid option -- '{short}'")),
            };
            (long.to_string(), rest)
        } else {
            pos.push(a.clone());
            continue;
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("option '--{name}' requires an argument"))?;
            i += 1;
            Ok(v)
        };
        let fd = |v: String| -> Result<i32, String> {
            v.parse::<i32>()
                .ok()
                .filter(|f| *f >= 0)
                .ok_or_else(|| format!("FD must be a non-negative integer: {v}"))
        };
        match name.as_str() {
            "configure" => o.configure = true,
            "exit-fd" => o.exit_fd = Some(fd(value()?)?),
            "ready-fd" => o.ready_fd = Some(fd(value()?)?),
            "mtu" => {
                let v = value()?;
                o.mtu = v
                    .parse::<u32>()
                    .ok()
                    .filter(|m| (1..=65521).contains(m))
                    .ok_or("MTU must be a positive integer (< 65522)")?;
            }
            "enable-ipv6" => o.ipv6 = true,
            "cidr" => o.cidr = Some(value()?),
            "disable-host-loopback" => o.disable_host_loopback = true,
            "netns-type" => match value()?.as_str() {
                "path" => o.netns_type_path = true,
                "pid" => o.netns_type_path = false,
                t => return Err(format!("unknown netns type: {t}")),
            },
            "userns-path" => o.userns_path = Some(value()?.into()),
            "outbound-addr" => o.outbound_addr = Some(value()?),
            "outbound-addr6" => o.outbound_addr6 = Some(value()?),
            "disable-dns" => o.disable_dns = true,
            "api-socket" => o.api_socket = Some(value()?.into()),
            "enable-sandbox" => o.sandbox = true,
            "enable-seccomp" => o.seccomp = true,
            "help" => return Ok(Parsed::Help),
            "version" => return Ok(Parsed::Version),
            "macaddress" => o.macaddress = Some(parse_mac(&value()?)?),
            "target-type" => {
                return Err(format!(
                    "--{name} is not supported by nsnet's slirp4netns yet"
                ));
            }
            _ => return Err(format!("unrecognized option '--{name}'")),
        }
    }
    match pos.as_slice() {
        [t] => o.target = t.clone(),
        [t, n] => {
            o.target = t.clone();
            o.ifname = n.clone();
        }
        _ => return Err("PID|PATH must be specified".into()),
    }
    if o.ifname.is_empty() {
        o.ifname = "tap0".into();
    }
    if o.macaddress.is_some() && !o.configure {
        return Err("--macaddr cannot be specified when --configure or -c is not specified".into());
    }
    Ok(Parsed::Run(Box::new(o)))
}

/// slirp4netns's CIDR rules and messages (the arithmetic is ipnet's).
pub(super) fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let net: ipnet::Ipv4Net = s.parse().map_err(|_| "invalid CIDR")?;
    if !(1..=25).contains(&net.prefix_len()) {
        return Err("prefix length needs to be 1-25".into());
    }
    if net.network() != net.addr() {
        return Err(format!(
            "CIDR needs to be a network address like 10.0.2.0/24, not like {s}"
        ));
    }
    Ok((net.addr(), net.prefix_len()))
}

pub(super) fn outbound_addresses(o: &Opts) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), String> {
    let of_interface = |name: &str, v6: bool| -> Option<std::net::IpAddr> {
        nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
            let a = ifa.address?;
            (ifa.interface_name == name).then_some(()).and_then(|()| {
                match (v6, a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                    (false, Some(v4), _) => Some(std::net::IpAddr::V4(v4.ip())),
                    (true, _, Some(v6)) => Some(std::net::IpAddr::V6(v6.ip())),
                    _ => None,
                }
            })
        })
    };
    let v4 = match &o.outbound_addr {
        None => None,
        Some(v) => Some(match v.parse::<Ipv4Addr>() {
            Ok(a) => a,
            Err(_) => match of_interface(v, false) {
                Some(std::net::IpAddr::V4(a)) => a,
                _ => {
                    return Err(
                        "outbound-addr has to be valid ipv4 address or interface name.".into(),
                    );
                }
            },
        }),
    };
    let v6 = match &o.outbound_addr6 {
        None => None,
        Some(v) => Some(match v.parse::<Ipv6Addr>() {
            Ok(a) => a,
            Err(_) => match of_interface(v, true) {
                Some(std::net::IpAddr::V6(a)) => a,
                _ => {
                    return Err(
                        "outbound-addr6 has to be valid ipv6 address or interface name.".into(),
                    );
                }
            },
        }),
    };
    Ok((v4, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_rootlesskits_and_podmans_command_lines() {
        let Ok(Parsed::Run(o)) = parse(&args(
            "--mtu 65520 -r 3 --disable-host-loopback --userns-path=/proc/7/ns/user --netns-type=path /proc/7/ns/net tap0",
        )) else {
            panic!()
        };
        assert_eq!(o.mtu, 65520);
        assert_eq!(o.ready_fd, Some(3));
        assert!(o.disable_host_loopback && o.netns_type_path && !o.configure);
        assert_eq!(o.userns_path, Some(PathBuf::from("/proc/7/ns/user")));
        assert_eq!(
            (o.target.as_str(), o.ifname.as_str()),
            ("/proc/7/ns/net", "tap0")
        );
        let Ok(Parsed::Run(o)) = parse(&args("-c -e3 -r 4 -m1500 -6 1234")) else {
            panic!()
        };
        assert!(o.configure && o.ipv6);
        assert_eq!((o.exit_fd, o.ready_fd, o.mtu), (Some(3), Some(4), 1500));
        assert_eq!((o.target.as_str(), o.ifname.as_str()), ("1234", "tap0"));
    }

    #[test]
    fn outbound_addresses_are_literals_or_interface_names() {
        let resolve = |s: &str| match parse(&args(s)) {
            Ok(Parsed::Run(o)) => outbound_addresses(&o),
            _ => panic!("{s} refused"),
        };
        assert_eq!(
            resolve("--outbound-addr=192.0.2.9 --outbound-addr6 2001:db8::9 1"),
            Ok((
                Some(Ipv4Addr::new(192, 0, 2, 9)),
                Some("2001:db8::9".parse().unwrap())
            ))
        );
        // Every world has lo with 127.0.0.1.
        assert_eq!(
            resolve("--outbound-addr=lo 1"),
            Ok((Some(Ipv4Addr::LOCALHOST), None))
        );
        assert_eq!(
            resolve("--outbound-addr=nosuch0 1"),
            Err("outbound-addr has to be valid ipv4 address or interface name.".into())
        );
        assert_eq!(
            resolve("--outbound-addr6=10.0.0.1 1"),
            Err("outbound-addr6 has to be valid ipv6 address or interface name.".into())
        );
    }

    #[test]
    fn slirp4netns_errors() {
        let err = |s: &str| match parse(&args(s)) {
            Err(e) => e,
            Ok(_) => panic!("{s} accepted"),
        };
        assert_eq!(
            err("--mtu 65522 1"),
            "MTU must be a positive integer (< 65522)"
        );
        assert_eq!(err("--mtu 0 1"), "MTU must be a positive integer (< 65522)");
        assert_eq!(err(""), "PID|PATH must be specified");
        let Ok(Parsed::Run(o)) = parse(&args("-a /run/x.sock 1")) else {
            panic!()
        };
        assert_eq!(o.api_socket, Some(PathBuf::from("/run/x.sock")));
        assert!(err("--target-type=bess 1").contains("not supported"));
        assert_eq!(
            err("--macaddress=02:00:00:00:00:01 1"),
            "--macaddr cannot be specified when --configure or -c is not specified"
        );
        assert!(err("-c --macaddress=zz 1").starts_with("\"zz\" is an invalid MAC address.\n"));
        assert!(err("-c --macaddress=02:00:00:00:00 1").contains("invalid MAC"));
        let Ok(Parsed::Run(o)) = parse(&args("--enable-sandbox --enable-seccomp 1")) else {
            panic!()
        };
        assert!(o.sandbox && o.seccomp);
        assert_eq!(
            parse_cidr("10.0.2.0/24"),
            Ok((Ipv4Addr::new(10, 0, 2, 0), 24))
        );
        assert_eq!(parse_cidr("10.0.2.0"), Err("invalid CIDR".into()));
        assert_eq!(
            parse_cidr("10.0.0.0/26"),
            Err("prefix length needs to be 1-25".into())
        );
        assert_eq!(
            parse_cidr("10.0.2.100/24"),
            Err(
                "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24"
                    .into()
            )
        );
        assert!(matches!(parse(&args("-h")), Ok(Parsed::Help)));
        assert!(matches!(parse(&args("--version")), Ok(Parsed::Version)));
        for f in ["--enable-sandbox", "--enable-seccomp", "--api-socket"] {
            assert!(HELP.contains(f), "{f} in --help");
        }
    }
}
