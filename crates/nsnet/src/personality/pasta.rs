//! The `pasta` personality: nsnet installed (or linked) as `pasta` takes pasta's command line
//! (passt 2026_07_16's `conf.c`), so Podman 5/6 and RootlessKit's `--net=pasta` run nsnet's
//! stack and port relay unchanged.
//!
//! ```text
//!  pasta [OPTS] --netns PATH|NAME | PID    attach to that namespace; the foreground exits 0
//!                                          once it is configured, a background process
//!                                          serves and quits when the namespace is gone
//!  pasta [OPTS] [-- CMD...]                 CMD (default $SHELL) in a new user+net namespace;
//!                                          pasta stays in the foreground and exits with it
//! ```
//!
//! pasta's address model, per family: the namespace's interface (`-I`, else the template's
//! name) gets the host's address, prefix and default gateway from the template interface
//! (the one with the family's default route, or `-i`), MTU 65520; `-a/-n/-g/-m` override
//! (`-a`/`-g` once per family); with no template, pasta's local mode (IPv4 169.254.2.1/16
//! via 169.254.2.2; IPv6 only the kernel's link-local address, default route via fe80::1).
//! `-4` leaves out IPv6, `-6` IPv4. The gateways reach host loopback (127.0.0.1, ::1) unless
//! `--no-map-gw`; `--map-guest-addr` reaches the host; `--dns-forward` ports 53 and 853 are
//! the host's resolver (all of it `nsnet_stack::Config::pasta`). The `-t/-u/-T/-U` specs
//! (`nsnet_api::pesto::spec`; each one not given is `auto`, as pasta's default) become the two
//! forwarding tables of `nsnet_port::pasta` on nsnet's port relay, delivering to the
//! namespace's own address of the client's family (loopback with `--host-lo-to-ns-lo`) and
//! keeping clients' addresses, `auto` rules following the sockets bound on the other side
//! (rescanned every second); `-c SOCKET` serves pesto's protocol over the same tables.
//!
//! This module keeps what is pasta's own: the command line, messages and exit codes, and
//! the order in which the shared pieces are put together.

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nsnet_api::pesto::proto::Server;
use nsnet_api::pesto::spec::{self, Parser, Table};
use nsnet_port::pasta::{Forwards, Guest, Scans, SharedForwards, Side, caps};
use nsnet_port::scan::PortScan;

mod args;
pub use args::VERSION;
use args::{Die, Opts, Parsed, USAGE, parse};

use nsnet_netlink::TapConfig;

use super::slirp4netns::forwards::SocketFile;

pub fn main() -> i32 {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_else(|| "pasta".into());
    let args: Vec<String> = args.collect();
    match parse(&argv0, &args) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            0
        }
        Ok(Parsed::Version) => {
            println!("pasta {VERSION}");
            println!("Copyright Red Hat (pasta); nsnet's user-mode stack");
            println!("GNU General Public License, version 2 or later");
            0
        }
        Ok(Parsed::Run(o)) => match run(&o) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Err(Die { msg, usage }) => {
            eprintln!("{msg}");
            if usage {
                eprint!("{USAGE}");
            }
            1
        }
    }
}

/// The target and how the process ends.
enum Target {
    /// An existing namespace (a path, or a PID's), left when it is gone.
    Netns { path: String, pid: Option<i32> },
    /// A command in a new namespace; pasta exits with it.
    Command(Vec<String>),
}

fn target(o: &Opts) -> Target {
    if let Some(p) = &o.netns {
        return Target::Netns {
            path: p.clone(),
            pid: None,
        };
    }
    if let [pid] = o.rest.as_slice()
        && let Ok(n) = pid.parse::<i32>()
    {
        return Target::Netns {
            path: format!("/proc/{n}/ns/net"),
            pid: Some(n),
        };
    }
    let cmd = if o.rest.is_empty() {
        vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())]
    } else {
        o.rest.clone()
    };
    Target::Command(cmd)
}

/// The stack's configuration from the template interfaces and the overrides, and the
/// namespace interface's name.
fn stack_config(o: &Opts) -> Result<(nsnet_stack::Config, String), String> {
    let (v4, name4) = match o.ipv6_only {
        true => (None, None),
        false => {
            let (v4, name) = ipv4_config(o)?;
            (Some(v4), name)
        }
    };
    let (v6, name6) = match o.ipv4_only {
        true => (None, None),
        false => {
            let (v6, name) = ipv6_config(o)?;
            (Some(v6), name)
        }
    };
    let mut cfg = nsnet_stack::Config::pasta(nsnet_stack::PastaAddrs { v4, v6 })
        .map_err(|e| e.to_string())?;
    if let Some(m) = o.mtu {
        cfg = cfg.with_mtu(m).map_err(|e| e.to_string())?;
    }
    // Linux takes IPv6 off a link below the IPv6 minimum MTU, and the address or route then
    // cannot be added: said here in one line rather than as the kernel's EINVAL.
    if cfg.ipv6 && o.config_net && cfg.mtu < 1280 {
        return Err(format!(
            "MTU {} is too small for IPv6 (minimum 1280): give -4 too",
            cfg.mtu
        ));
    }
    cfg.nameservers = match o.dns_host {
        Some(h) => vec![std::net::SocketAddrV4::new(h, 53)],
        None => nsnet_stack::nameservers_from_resolv_conf(&resolv_conf()),
    };
    // pasta's interface name: -I, else the IPv4 template's, else the IPv6 one's, else tap0.
    let ifname = o
        .ns_ifname
        .clone()
        .or(name4)
        .or(name6)
        .unwrap_or_else(|| "tap0".into());
    Ok((cfg, ifname))
}

fn resolv_conf() -> String {
    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

fn template_error(o: &Opts, e: nsnet_netlink::Error) -> String {
    match &o.iface {
        Some(i) => format!("Invalid interface name {i}: {e}"),
        None => e.to_string(),
    }
}

/// IPv4 from the template interface (`conf_ip4()`), or pasta's local mode (169.254.2.1/16,
/// gateway 169.254.2.2) without one; the template's name when it serves.
fn ipv4_config(o: &Opts) -> Result<(nsnet_stack::PastaV4, Option<String>), String> {
    let template =
        nsnet_netlink::ipv4_template(o.iface.as_deref()).map_err(|e| template_error(o, e))?;
    if o.iface.is_some() && template.is_none() {
        return Err("External interface not usable".into());
    }
    let (t_addr, t_prefix, t_gw, t_name) = match &template {
        Some(t) if t.gateway.is_some() => (t.addr, t.prefix, t.gateway, Some(t.name.clone())),
        _ => (
            Ipv4Addr::new(169, 254, 2, 1),
            16,
            Some(Ipv4Addr::new(169, 254, 2, 2)),
            None,
        ),
    };
    let guest = o.address.map(|(a, _)| a).unwrap_or(t_addr);
    let prefix = o
        .address
        .and_then(|(_, p)| p)
        .or(o.netmask)
        .unwrap_or(if o.address.is_some() { 24 } else { t_prefix });
    let gateway = o
        .gateway
        .or(t_gw)
        .ok_or("Couldn't discover IPv4 gateway address")?;
    Ok((
        nsnet_stack::PastaV4 {
            guest,
            prefix,
            gateway,
            // --no-map-gw drops only the default: an address given is mapped all the same.
            map_host_loopback: o.map_host_loopback.or((!o.no_map_gw).then_some(gateway)),
            map_guest_addr: o.map_guest_addr,
            dns_forward: o.dns_forward,
        },
        t_name,
    ))
}

/// IPv6 as pasta's `conf_ip6()` takes it: the template interface (the first IPv6 default
/// route's, or `-i`) serves when there is a gateway (its own or `-g`), a global address (its
/// most specific one, or `-a`, which pasta always assigns as a /64) and a link-local address;
/// otherwise pasta's local mode (`conf_ip6_local()`): no global address but `-a`'s, gateway
/// `-g` or fe80::1. The template's name when it serves.
fn ipv6_config(o: &Opts) -> Result<(nsnet_stack::PastaV6, Option<String>), String> {
    let t = nsnet_netlink::ipv6_template(o.iface.as_deref()).map_err(|e| template_error(o, e))?;
    let from_template = t.as_ref().and_then(|t| {
        let gateway = o.gateway6.or(t.gateway)?;
        let (addr, prefix) = o.address6.map(|a| (a, 64)).or(t.addr)?;
        t.link_local
            .then(|| (Some(addr), prefix, gateway, Some(t.name.clone())))
    });
    let (guest, prefix, gateway, name) = from_template.unwrap_or((
        o.address6,
        64,
        o.gateway6
            .unwrap_or(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        None,
    ));
    Ok((
        nsnet_stack::PastaV6 {
            guest,
            prefix,
            gateway,
            map_host_loopback: o.map_host_loopback6.or((!o.no_map_gw).then_some(gateway)),
            map_guest_addr: o.map_guest_addr6,
            dns_forward: o.dns_forward6,
            // pasta's: --dns-host, else resolv.conf's first IPv6 nameserver.
            dns_host: o.dns_host6.or_else(|| {
                nsnet_stack::nameservers6_from_resolv_conf(&resolv_conf())
                    .first()
                    .copied()
            }),
        },
        name,
    ))
}

/// The namespace's interface as the stack's configuration says (`--config-net`).
fn tap_config(cfg: &nsnet_stack::Config, name: String, mac: Option<[u8; 6]>) -> TapConfig {
    let addrs = cfg.pasta.as_ref().expect("pasta's model");
    TapConfig {
        name,
        mtu: cfg.mtu,
        ipv4: addrs.v4.as_ref().map(|v| nsnet_netlink::TapIpv4 {
            address: v.guest,
            prefix: v.prefix,
            gateway: v.gateway,
        }),
        ipv6: addrs.v6.as_ref().map(|v| nsnet_netlink::TapIpv6 {
            address: v.guest,
            prefix: v.prefix,
            gateway: v.gateway,
        }),
        mac,
    }
}

/// What the forwards need to know of the namespace (`nsnet_port::pasta::Guest`).
fn forward_guest(cfg: &nsnet_stack::Config, o: &Opts) -> Guest {
    let addrs = cfg.pasta.as_ref().expect("pasta's model");
    let mut families = 0;
    if addrs.v4.is_some() {
        families |= spec::CAP_IPV4;
    }
    if addrs.v6.is_some() {
        families |= spec::CAP_IPV6;
    }
    Guest {
        addr4: addrs.v4.as_ref().map(|v| v.guest),
        addr6: addrs.v6.as_ref().and_then(|v| v.guest),
        families,
        host_lo_to_ns_lo: o.host_lo_to_ns_lo,
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// The child of the command form: its own user and network namespace, then, once pasta has
/// written its id maps and configured the namespace, the command.
fn spawn_command(cmd: &[String]) -> Result<(i32, OwnedFd), String> {
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let argv: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| "NUL byte in the command".to_string()))
        .collect::<Result<_, _>>()?;
    // SAFETY: the process is single-threaded here; the child only makes system calls
    // before exec.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            drop(go_w);
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            let flags =
                nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNET;
            let ok = nix::sched::unshare(flags).is_ok();
            let _ = nix::unistd::write(&ready_w, if ok { b"1" } else { b"0" });
            drop(ready_w);
            let mut b = [0u8; 1];
            let go = nix::unistd::read(&go_r, &mut b).unwrap_or(0) == 1;
            if ok && go {
                // pasta blocks the signals it waits for (its signalfd); the command must get
                // them as any process does, or a SIGTERM sent to it would never arrive.
                let _ = nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                    Some(&nix::sys::signal::SigSet::empty()),
                    None,
                );
                let _ = nix::unistd::execvp(&argv[0], &argv);
                eprintln!(
                    "Failed to start command or shell: {}",
                    std::io::Error::last_os_error()
                );
            }
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            drop(go_r);
            let mut b = [0u8; 1];
            let n = nix::unistd::read(&ready_r, &mut b).unwrap_or(0);
            if n != 1 || b[0] != b'1' {
                return Err("Couldn't create user and network namespace".into());
            }
            let pid = child.as_raw();
            let uid = nix::unistd::geteuid().as_raw();
            let gid = nix::unistd::getegid().as_raw();
            let w = |f: &str, s: String| {
                std::fs::write(format!("/proc/{pid}/{f}"), s)
                    .map_err(|e| format!("Couldn't write /proc/{pid}/{f}: {e}"))
            };
            w("uid_map", format!("0 {uid} 1"))?;
            let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
            w("gid_map", format!("0 {gid} 1"))?;
            // pasta joins the new user namespace to create the tap in its network namespace.
            let user =
                nsnet_ns::enter::open_ns(std::path::Path::new(&format!("/proc/{pid}/ns/user")))
                    .map_err(|e| e.to_string())?;
            nix::sched::setns(&user, nix::sched::CloneFlags::CLONE_NEWUSER)
                .map_err(|e| format!("Couldn't switch to pasta namespaces: {e}"))?;
            Ok((pid, go_w))
        }
    }
}

/// Whether the target namespace is gone.
enum NetnsWatch {
    /// `/proc/PID/ns/net` (RootlessKit's and the PID form's path): gone once PID has exited,
    /// which a pidfd opened now shows. The path itself cannot be looked at later: procfs
    /// checks ptrace access on a namespace link, and once the background process has dropped
    /// its capabilities a process in its own user namespace that holds more of them (the
    /// target's root, rootless) is out of reach, so the look-up fails as if it were gone.
    Process(OwnedFd),
    /// Any other file (a bind mount, as Podman's): gone when removed, or no longer the
    /// namespace we hold (an unmounted bind mount leaves an empty file behind).
    File {
        dir: OwnedFd,
        name: CString,
        ino: (u64, u64),
    },
}

/// The PID of a `/proc/PID/ns/net` path.
fn proc_netns_pid(path: &str) -> Option<i32> {
    let pid = path.strip_prefix("/proc/")?.strip_suffix("/ns/net")?;
    pid.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| pid.parse().ok())
        .flatten()
}

impl NetnsWatch {
    fn new(path: &str, netns: &OwnedFd) -> Result<NetnsWatch, String> {
        if let Some(pid) = proc_netns_pid(path) {
            // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if fd < 0 {
                return Err(format!(
                    "watch {path}: pidfd_open: {}",
                    std::io::Error::last_os_error()
                ));
            }
            // SAFETY: a descriptor just returned to us, owned by nothing else.
            return Ok(NetnsWatch::Process(unsafe {
                OwnedFd::from_raw_fd(fd as i32)
            }));
        }
        let p = std::path::Path::new(path);
        let parent = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let dir =
            std::fs::File::open(parent).map_err(|e| format!("open {}: {e}", parent.display()))?;
        let st = nix::sys::stat::fstat(netns).map_err(|e| format!("stat {path}: {e}"))?;
        use std::os::unix::ffi::OsStrExt;
        Ok(NetnsWatch::File {
            dir: dir.into(),
            name: CString::new(p.file_name().unwrap_or_default().as_bytes())
                .map_err(|_| "NUL in path")?,
            ino: (st.st_dev, st.st_ino),
        })
    }

    fn gone(&self) -> bool {
        match self {
            NetnsWatch::Process(pidfd) => {
                let mut fds = [libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                // SAFETY: a valid array of one pollfd; a pidfd is readable once its process
                // has exited.
                unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) > 0 }
            }
            NetnsWatch::File { dir, name, ino } => {
                match nix::sys::stat::fstatat(dir, name.as_c_str(), nix::fcntl::AtFlags::empty()) {
                    Ok(st) => (st.st_dev, st.st_ino) != *ino,
                    Err(_) => true,
                }
            }
        }
    }
}

fn block_signals() -> Result<OwnedFd, String> {
    // SAFETY: sigset manipulation on a local set; signalfd on it. Checked.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(format!("signalfd: {}", std::io::Error::last_os_error()));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn run(o: &Opts) -> Result<i32, String> {
    let (cfg, ifname) = stack_config(o)?;
    let guest = forward_guest(&cfg, o);
    let parser = Parser::new();
    // As pasta's fwd_rule_init(): a family that is off cannot be forwarded (`-t 80` then
    // listens on the other family only; `-t [::]/80` with -4 is refused).
    let mut host = Table::new(caps(guest.families));
    let mut splice = Table::new(caps(guest.families));
    // pasta's default for each of the four options not given: `auto`.
    let defaults = ['t', 'u', 'T', 'U']
        .into_iter()
        .filter(|d| !o.specs.iter().any(|(opt, _)| opt == d))
        .map(|d| (d, "auto".to_string()));
    let specs: Vec<(char, String)> = o.specs.iter().cloned().chain(defaults).collect();
    for (opt, s) in &specs {
        let t = if *opt == 't' || *opt == 'u' {
            &mut host
        } else {
            &mut splice
        };
        parser.parse(*opt, false, s, t).map_err(|e| e.0)?;
    }
    let sigfd = block_signals()?;
    let target = target(o);
    let (netns_path, child) = match &target {
        Target::Netns { path, pid } => {
            let userns = match (&o.userns, pid) {
                (Some(u), _) => Some(u.clone()),
                (None, Some(p)) if !o.netns_only => Some(format!("/proc/{p}/ns/user")),
                _ => None,
            };
            if let Some(u) = userns {
                let fd = nsnet_ns::enter::open_ns(std::path::Path::new(&u))
                    .map_err(|e| e.to_string())?;
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWUSER)
                    .map_err(|e| format!("Couldn't switch to pasta namespaces: {e}"))?;
            }
            (path.clone(), None)
        }
        Target::Command(cmd) => {
            let (pid, go) = spawn_command(cmd)?;
            (format!("/proc/{pid}/ns/net"), Some((pid, go)))
        }
    };
    let netns = nsnet_ns::enter::open_ns(std::path::Path::new(&netns_path))
        .map_err(|e| format!("Couldn't open network namespace {netns_path}: {e}"))?;
    let tap_cfg = tap_config(&cfg, ifname, o.ns_mac);
    let tap = nsnet_netlink::create_tap_in(netns.as_fd(), &netns_path, &tap_cfg, o.config_net)
        .map_err(|e| e.to_string())?;
    let pid_file = match &o.pid_file {
        Some(p) => {
            Some(std::fs::File::create(p).map_err(|e| format!("Couldn't open PID file {p}: {e}"))?)
        }
        None => None,
    };
    // The socket is bound, and its directory held open to remove it at exit, before the
    // confinement below hides the file system.
    let control = match &o.conf_path {
        Some(p) => {
            let path = std::path::Path::new(p);
            Some((Server::bind(path)?, SocketFile::new(path)?))
        }
        None => None,
    };
    // The socket tables `auto` follows, opened while /proc is still there to open.
    let scans = Scans {
        namespace: PortScan::open_in(netns.as_fd())
            .map_err(|e| format!("Couldn't open the namespace's socket tables: {e}"))?,
        host: PortScan::open_here(),
    };
    // Clients' addresses kept, as pasta keeps them (its tap path): the namespace's routing
    // for the relay's transparent sockets, set up now because it writes a sysctl under /proc.
    let source_ip = nsnet_ns::netns::run_in(netns.as_fd(), nsnet_port::source_ip::routing)
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .inspect_err(|e| tracing::debug!("client addresses will not be kept: {e}"))
        .is_ok();
    let watch = match (&target, o.no_netns_quit) {
        (Target::Netns { path, .. }, false) => Some(NetnsWatch::new(path, &netns)?),
        _ => None,
    };
    // The background process: the foreground waits for its word (ready, or why not).
    let mut report: Option<OwnedFd> = None;
    if child.is_none() && !o.foreground {
        let (r, w) = pipe()?;
        // SAFETY: single-threaded here (the tap thread has ended).
        match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
            nix::unistd::ForkResult::Parent { .. } => {
                drop(w);
                let mut msg = String::new();
                let _ = std::fs::File::from(r).read_to_string(&mut msg);
                return match msg.strip_prefix("ok") {
                    Some(_) => Ok(0),
                    None if msg.is_empty() => Err("pasta's background process died".into()),
                    None => Err(msg),
                };
            }
            nix::unistd::ForkResult::Child => {
                drop(r);
                let _ = nix::unistd::setsid();
                report = Some(w);
            }
        }
    }
    let fail = |report: &mut Option<OwnedFd>, e: String| -> Result<i32, String> {
        if let Some(w) = report.take() {
            let _ = std::fs::File::from(w).write_all(e.as_bytes());
            return Ok(1);
        }
        Err(e)
    };
    if let Some(mut f) = pid_file {
        let _ = writeln!(f, "{}", std::process::id());
    }
    // Confined as pasta's isolate_prefork()/isolate_postfork() do, while the process is still
    // single-threaded so that every thread started below inherits it: its own mount namespace
    // with an empty read-only root, no new privileges, every capability dropped but
    // CAP_SYS_ADMIN (the netns thread's setns for new forwards), CAP_NET_ADMIN (IP_TRANSPARENT
    // on the relay's sockets inside, which keep clients' addresses, and the UDP reply rules
    // added with each UDP forward) and CAP_NET_BIND_SERVICE, and
    // the stack's system-call filter plus setns, the splice relay's pipe2 and splice, the
    // port scan's pread64 and, for `pasta CMD`, wait4 and kill.
    // /dev/null is opened now: after confinement the root is empty, and the background
    // process must still let go of the foreground's stdout and stderr (a caller such as
    // RootlessKit reads them to EOF, which would never come).
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    if let Err(e) = confine() {
        return fail(&mut report, e);
    }
    let guest_addrs = (cfg.guest(), cfg.guest6());
    let running = match nsnet_stack::spawn(tap, cfg) {
        Ok(r) => r,
        Err(e) => return fail(&mut report, e.to_string()),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&mut report, format!("start the port relay: {e}")),
    };
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("pasta-ports".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .map_err(|e| format!("start the port relay: {e}"))?;
    let thread = match nsnet_ns::netns::NetnsThread::spawn(
        netns.try_clone().map_err(|e| e.to_string())?,
        std::path::Path::new(&netns_path),
    ) {
        Ok(t) => Arc::new(t),
        Err(e) => return fail(&mut report, e.to_string()),
    };
    drop(netns);
    let inside = Arc::new(nsnet_port::NetnsThreadSockets(thread.clone()));
    let mut to_ns = nsnet_port::PortManager::new(inside.clone(), handle.clone())
        .with_local_targets(guest.addrs());
    if source_ip {
        to_ns = to_ns
            .with_source_ip(nsnet_port::source_ip::MARK)
            .with_udp_source_ip(Arc::new(nsnet_port::source_ip::NetnsReplyRoutes(
                thread.clone(),
            )));
    }
    let to_ns = Arc::new(to_ns);
    let to_host = Arc::new(
        nsnet_port::PortManager::new(Arc::new(nsnet_port::HostSockets), handle.clone())
            .with_listen_sockets(inside),
    );
    let mut fwd = Forwards::new(to_ns, to_host, handle, guest, Some(scans));
    for (side, t) in [(Side::Host, &host), (Side::Splice, &splice)] {
        if let Err(e) = fwd.set(side, &t.rules) {
            return fail(&mut report, e);
        }
    }
    let shared = SharedForwards(Arc::new(Mutex::new(fwd)));
    let timer = shared.clone();
    std::thread::Builder::new()
        .name("pasta-scan".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                timer.0.lock().expect("forwards lock").sync();
            }
        })
        .map_err(|e| format!("start the port scan: {e}"))?;
    let sock_file = match control {
        Some((server, file)) => {
            let mut backend = shared.clone();
            std::thread::Builder::new()
                .name("pasta-conf".into())
                .spawn(move || server.serve(&mut backend))
                .map_err(|e| format!("start the configuration socket: {e}"))?;
            Some(file)
        }
        None => None,
    };
    tracing::debug!(?guest_addrs, "pasta ready");
    if let Some(w) = report.take() {
        let _ = std::fs::File::from(w).write_all(b"ok");
        // Detached from whoever started the foreground: nothing of ours on its terminal.
        if let Ok(null) = &devnull {
            for fd in 0..3 {
                // SAFETY: plain syscall on descriptors we hold.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
    }
    let code = match child {
        Some((pid, go)) => {
            let _ = nix::unistd::write(&go, b"1");
            drop(go);
            wait_command(pid, sigfd.as_raw_fd())
        }
        None => {
            wait_netns(watch.as_ref(), sigfd.as_raw_fd());
            0
        }
    };
    if let Some(f) = sock_file {
        f.remove();
    }
    let _ = running.stop();
    Ok(code)
}

/// The background process's confinement (see its call in [`run`]).
fn confine() -> Result<(), String> {
    use nsnet_ns::confine;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_NET_ADMIN: u32 = 12;
    confine::private_root(&[])
        .and_then(|()| {
            confine::drop_privileges(&[CAP_SYS_ADMIN, CAP_NET_ADMIN, confine::CAP_NET_BIND_SERVICE])
        })
        .map_err(|e| format!("Failed to isolate: {e}"))?;
    // SAFETY: prctl with constant arguments: no core dumps, as pasta does.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    use nsnet_stack::seccomp;
    seccomp::program_with(&[
        libc::SYS_setns,
        libc::SYS_pipe2,
        libc::SYS_splice,
        libc::SYS_pread64,
        libc::SYS_wait4,
        libc::SYS_kill,
    ])
    .and_then(|p| seccomp::apply(&p))
    .map_err(|e| format!("Failed to apply seccomp filter: {e}"))
}

/// Until a terminating signal, or the namespace file is gone (checked every 100 ms).
fn wait_netns(watch: Option<&NetnsWatch>, sigfd: i32) {
    loop {
        let mut fds = [libc::pollfd {
            fd: sigfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: a valid array of one pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) };
        if n > 0 {
            let mut info = [0u8; 128];
            // SAFETY: reading one signalfd_siginfo into a buffer of its size.
            unsafe { libc::read(sigfd, info.as_mut_ptr().cast(), info.len()) };
            let signo = u32::from_ne_bytes(info[..4].try_into().expect("4 bytes")) as i32;
            if signo != libc::SIGCHLD {
                return;
            }
        }
        if watch.is_some_and(|w| w.gone()) {
            return;
        }
    }
}

/// Until the command exits (its exit status, 128+N for a signal) or pasta is told to stop.
fn wait_command(pid: i32, sigfd: i32) -> i32 {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let pid = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Err(_) => return 1,
            _ => {}
        }
        let mut fds = [libc::pollfd {
            fd: sigfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: a valid array of one pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) } > 0 {
            let mut info = [0u8; 128];
            // SAFETY: reading one signalfd_siginfo into a buffer of its size.
            unsafe { libc::read(sigfd, info.as_mut_ptr().cast(), info.len()) };
            let signo = u32::from_ne_bytes(info[..4].try_into().expect("4 bytes")) as i32;
            if signo != libc::SIGCHLD {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_pid_netns_paths_are_watched_by_process() {
        assert_eq!(proc_netns_pid("/proc/1234/ns/net"), Some(1234));
        for other in [
            "/proc/self/ns/net",
            "/proc/1234/root/run/netns",
            "/run/user/1000/netns/x",
            "/proc//ns/net",
            "/proc/12/ns/user",
        ] {
            assert_eq!(proc_netns_pid(other), None, "{other}");
        }
    }
}
