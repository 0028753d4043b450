//! pasta worlds: which namespace a pasta process serves, and how, from its command line.
//!
//! pasta makes itself non-dumpable, so rootless its `/proc/PID/fd`, `ns/` and `environ` are
//! root's: the tap descriptor that gives a slirp4netns world away cannot be seen. Its
//! command line can (cmdline stays readable), and it says everything that matters here:
//! the namespace (`--netns PATH|NAME`, or a PID operand, or a command pasta started — then
//! its child's), the interface inside (`-I`), the addresses it copies from the host unless
//! `-a/-n/-g` override them, the host mappings (`--map-guest-addr ADDR`: the address at
//! which the container reaches the host's own address; `--map-host-loopback ADDR`: the
//! host's loopback; the gateway does the latter unless `--no-map-gw`), the forwarded ports
//! (`-t/-u` host → namespace, `-T/-U` namespace's loopback → host; pasta's default is
//! `auto` for each option not given, from pasta 2023 on) and its control socket (`-c`).
//! The same holds for nsnet's pasta personality (nsnet linked as pasta), which takes
//! pasta's options.

use std::path::PathBuf;

use serde::Serialize;

/// One forwarding option as given: `-t 8080:80` is `{option: "-t", spec: "8080:80"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    pub option: &'static str,
    pub spec: String,
}

/// What a pasta command line says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PastaArgs {
    /// `--netns PATH` (a NAME is under `/run/netns`, as pasta resolves it).
    pub netns: Option<PathBuf>,
    /// The PID operand (pasta joins that process's namespaces).
    pub target_pid: Option<i32>,
    /// A command pasta runs in a namespace of its own (the operands after the options).
    pub command: Vec<String>,
    pub ifname: Option<String>,
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub no_map_gw: bool,
    pub map_host_loopback: Option<String>,
    pub map_guest_addr: Option<String>,
    pub forwards: Vec<Forward>,
    pub socket: Option<PathBuf>,
    pub config_net: bool,
}

impl PastaArgs {
    /// The address inside at which the container reaches the host's own (non-loopback)
    /// address, and the one at which it reaches the host's loopback, with pasta's words
    /// for how each was set; `None` when nothing maps it.
    pub fn host_mappings(&self, gateway: Option<&str>) -> (Option<String>, Option<String>) {
        let gw = self.gateway.as_deref().or(gateway);
        let guest = self
            .map_guest_addr
            .as_ref()
            .map(|a| format!("{a} (--map-guest-addr)"));
        let lo = match (&self.map_host_loopback, self.no_map_gw, gw) {
            (Some(a), _, _) => Some(format!("{a} (--map-host-loopback)")),
            (None, false, Some(g)) => Some(format!("{g} (the gateway; pasta maps it to the host)")),
            _ => None,
        };
        (guest, lo)
    }

    /// The forwards of one option, `auto` when pasta's default applies.
    pub fn specs(&self, option: &str) -> Vec<String> {
        let given: Vec<String> = self
            .forwards
            .iter()
            .filter(|f| f.option == option)
            .map(|f| f.spec.clone())
            .collect();
        if given.is_empty() {
            vec!["auto".into()]
        } else {
            given
        }
    }
}

/// Whether a process is pasta (Debian's or nsnet linked as pasta).
pub fn is_pasta(comm: &str, argv: &[String]) -> bool {
    comm == "pasta"
        || comm == "pasta.avx2"
        || argv
            .first()
            .is_some_and(|a| a.rsplit('/').next() == Some("pasta"))
}

/// Short options that take a value (passt's `conf.c` optstring for pasta).
const SHORT_WITH_VALUE: &str = "lFIpPmanMgioDSHtuTUc";

/// Long options that take a value (the rest take none).
const LONG_WITH_VALUE: &[&str] = &[
    "log-file",
    "log-size",
    "fd",
    "ns-ifname",
    "pcap",
    "pid",
    "mtu",
    "address",
    "netmask",
    "mac-addr",
    "gateway",
    "interface",
    "outbound",
    "outbound-if4",
    "outbound-if6",
    "dns",
    "search",
    "dns-forward",
    "dns-host",
    "tcp-ports",
    "udp-ports",
    "tcp-ns",
    "udp-ns",
    "userns",
    "netns",
    "runas",
    "map-host-loopback",
    "map-guest-addr",
    "socket",
];

fn forward_option(name: &str) -> Option<&'static str> {
    Some(match name {
        "t" | "tcp-ports" => "-t",
        "u" | "udp-ports" => "-u",
        "T" | "tcp-ns" => "-T",
        "U" | "udp-ns" => "-U",
        _ => return None,
    })
}

fn set(a: &mut PastaArgs, name: &str, value: Option<String>) {
    if let Some(opt) = forward_option(name) {
        if let Some(v) = value {
            a.forwards.push(Forward {
                option: opt,
                spec: v,
            });
        }
        return;
    }
    match (name, value) {
        ("netns", Some(v)) => {
            a.netns = Some(if v.contains('/') {
                PathBuf::from(v)
            } else {
                PathBuf::from("/run/netns").join(v)
            })
        }
        ("I" | "ns-ifname", Some(v)) => a.ifname = Some(v),
        ("a" | "address", Some(v)) => a.address = Some(v),
        ("g" | "gateway", Some(v)) => a.gateway = Some(v),
        ("map-host-loopback", Some(v)) => a.map_host_loopback = Some(v),
        ("map-guest-addr", Some(v)) => a.map_guest_addr = Some(v),
        ("c" | "socket", Some(v)) => a.socket = Some(PathBuf::from(v)),
        ("no-map-gw", None) => a.no_map_gw = true,
        ("config-net", None) => a.config_net = true,
        _ => {}
    }
}

/// Reads pasta's command line (getopt_long with `+`: options end at the first operand).
pub fn parse(argv: &[String]) -> PastaArgs {
    let mut a = PastaArgs::default();
    let mut i = 1;
    while i < argv.len() {
        let w = &argv[i];
        if w == "--" {
            i += 1;
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let value = if LONG_WITH_VALUE.contains(&name) {
                inline.or_else(|| {
                    i += 1;
                    argv.get(i).cloned()
                })
            } else {
                None
            };
            set(&mut a, name, value);
            i += 1;
            continue;
        }
        if let Some(short) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
            // Clustered short options: `-4t 80` or `-t80`.
            let chars: Vec<char> = short.chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                if SHORT_WITH_VALUE.contains(c) {
                    let rest: String = chars[k + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        i += 1;
                        argv.get(i).cloned()
                    } else {
                        Some(rest)
                    };
                    set(&mut a, &c.to_string(), value);
                    break;
                }
                set(&mut a, &c.to_string(), None);
                k += 1;
            }
            i += 1;
            continue;
        }
        break;
    }
    let rest = &argv[i.min(argv.len())..];
    match rest {
        [one] if one.parse::<i32>().is_ok() => a.target_pid = one.parse().ok(),
        [one] if one.starts_with('/') && a.netns.is_none() => a.netns = Some(PathBuf::from(one)),
        _ => a.command = rest.to_vec(),
    }
    a
}

/// Where one forwarding spec sends `port`: the target port, or None when the spec does not
/// forward it. Forms (pasta(1)): `none`, `all`, `auto` (every port bound on the other side,
/// taken here as the same number), `[ADDR[%IF]/]ITEM[,ITEM…]` with `ITEM` = `P[-Q][:R[-S]]`
/// or an exclusion `~P[-Q]`.
pub fn maps(spec: &str, port: u16) -> Option<u16> {
    match spec {
        "none" => return None,
        "all" | "auto" => return Some(port),
        _ => {}
    }
    let ports = spec.rsplit_once('/').map(|(_, p)| p).unwrap_or(spec);
    let range = |s: &str| -> Option<(u16, u16)> {
        match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let a = s.parse().ok()?;
                Some((a, a))
            }
        }
    };
    let items: Vec<&str> = ports.split(',').collect();
    if items
        .iter()
        .filter_map(|i| i.strip_prefix('~'))
        .filter_map(range)
        .any(|(a, b)| (a..=b).contains(&port))
    {
        return None;
    }
    let only_exclusions = items.iter().all(|i| i.starts_with('~'));
    if only_exclusions {
        return Some(port);
    }
    for i in items.iter().filter(|i| !i.starts_with('~')) {
        let (from, to) = match i.split_once(':') {
            Some((f, t)) => (f, Some(t)),
            None => (*i, None),
        };
        let Some((a, b)) = range(from) else { continue };
        if !(a..=b).contains(&port) {
            continue;
        }
        return match to.and_then(range) {
            Some((ta, _)) => Some(ta + (port - a)),
            None => Some(port),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_map_ports_as_pasta_does() {
        assert_eq!(maps("8080:80", 8080), Some(80));
        assert_eq!(maps("8080:80", 8081), None);
        assert_eq!(maps("127.0.0.1/8080-8081:80-81", 8081), Some(81));
        assert_eq!(maps("192.0.2.1%dummy0/22", 22), Some(22));
        assert_eq!(maps("~22", 22), None);
        assert_eq!(maps("~22", 23), Some(23));
        assert_eq!(maps("1-100,~22", 22), None);
        assert_eq!(maps("1-100,~22", 21), Some(21));
        assert_eq!(maps("none", 1), None);
        assert_eq!(maps("auto", 5), Some(5));
    }

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn podman_5s_command_line() {
        let a = parse(&argv(
            "/usr/bin/pasta --config-net -t 127.0.0.1/8080-8081:80-81 -u 5353 --dns-forward 169.254.1.1 -t none -U none --no-map-gw --quiet --netns /run/user/1000/netns/netns-3e1 --map-guest-addr 169.254.1.2",
        ));
        assert_eq!(
            a.netns,
            Some(PathBuf::from("/run/user/1000/netns/netns-3e1"))
        );
        assert!(a.config_net && a.no_map_gw);
        assert_eq!(a.map_guest_addr.as_deref(), Some("169.254.1.2"));
        assert_eq!(a.specs("-t"), ["127.0.0.1/8080-8081:80-81", "none"]);
        assert_eq!(a.specs("-u"), ["5353"]);
        assert_eq!(a.specs("-T"), ["auto"], "pasta's default when not given");
        assert_eq!(a.specs("-U"), ["none"]);
        let (guest, lo) = a.host_mappings(Some("192.0.2.254"));
        assert_eq!(guest.as_deref(), Some("169.254.1.2 (--map-guest-addr)"));
        assert_eq!(lo, None, "--no-map-gw and no --map-host-loopback");
    }

    #[test]
    fn pid_operands_clusters_and_names() {
        let a = parse(&argv(
            "pasta -4t80:8080 -I tap0 --netns=ns1 -c /tmp/p.sock 4242",
        ));
        assert_eq!(a.target_pid, Some(4242));
        assert_eq!(a.netns, Some(PathBuf::from("/run/netns/ns1")));
        assert_eq!(a.ifname.as_deref(), Some("tap0"));
        assert_eq!(a.socket, Some(PathBuf::from("/tmp/p.sock")));
        assert_eq!(a.specs("-t"), ["80:8080"]);
        let (_, lo) = a.host_mappings(Some("192.0.2.254"));
        assert_eq!(
            lo.as_deref(),
            Some("192.0.2.254 (the gateway; pasta maps it to the host)")
        );
        let a = parse(&argv("pasta --config-net -- sh -c true"));
        assert_eq!(a.command, ["sh", "-c", "true"]);
        assert!(is_pasta("pasta", &argv("/usr/bin/pasta")));
        assert!(is_pasta("nsnet", &argv("/home/u/.local/bin/pasta -t 1")));
        assert!(!is_pasta("passt", &argv("passt")));
    }
}
