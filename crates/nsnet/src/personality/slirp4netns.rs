//! The `slirp4netns` personality: nsnet installed (or linked) as `slirp4netns` runs its own
//! user-mode network with slirp4netns's command line (`shared/design.md` 5.2), so RootlessKit
//! (`--net=slirp4netns --slirp4netns-binary=…`) and other callers get nsnet's stack.
//!
//! `slirp4netns [OPTION]... PID|PATH [TAPNAME]`: joins the target's user namespace
//! (`--userns-path`, or `/proc/PID/ns/user` for `--netns-type=pid` when not root) while still
//! single-threaded, creates the tap on a thread inside the target network namespace
//! (configured with `-c`), prints slirp4netns's start-up lines, writes `1` to the ready fd and
//! runs the stack until the exit fd's writer goes away or a signal arrives.
//!
//! `--api-socket PATH` serves slirp4netns's JSON API (`nsnet_api::slirp4netns`, wired to the
//! stack in `forwards.rs`): host ports forwarded into the guest by nsnet's stack.
//!
//! `--enable-sandbox` (`nsnet_ns::confine`: a private read-only root with /etc and /run, every
//! capability dropped but CAP_NET_BIND_SERVICE) and `--enable-seccomp` (`nsnet_stack::seccomp`)
//! confine the process after start-up, as slirp4netns does, before the stack's threads start.
//!
//! This module keeps what is slirp4netns's own: the command line, `--help`, the start-up
//! lines and messages, and the order in which the pieces are put together.
//!
//! `--macaddress` sets the tap's address when nsnet configures it (`-c`), as slirp4netns does.
//!
//! Not supported yet, and refused with a one-line error rather than ignored:
//! `--target-type=bess`. `--help` does not list it, so feature probes such as RootlessKit's
//! do not ask for it.

mod args;
pub(crate) mod forwards;
use args::{HELP, Opts, Parsed, outbound_addresses, parse, parse_cidr};

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Parsed::Help) => {
            print!("{HELP}");
            0
        }
        Ok(Parsed::Version) => {
            println!(
                "slirp4netns version 1.2.0+nsnet{}",
                env!("CARGO_PKG_VERSION")
            );
            println!("commit: nsnet");
            println!("libslirp: none (nsnet-stack {})", env!("CARGO_PKG_VERSION"));
            println!("SLIRP_CONFIG_VERSION_MAX: 4");
            0
        }
        Ok(Parsed::Run(o)) => match run(&o) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Err(e) => {
            eprintln!("slirp4netns: {e}");
            eprintln!("{HELP}");
            1
        }
    }
}

/// `--outbound-addr` and `--outbound-addr6`: an address of the family, or the name of an
/// interface of this (the host's) network namespace whose first address of the family is
/// taken, as slirp4netns resolves them (before it enters the target), with its messages.
fn run(o: &Opts) -> Result<(), String> {
    let (outbound_addr, outbound_addr6) = outbound_addresses(o)?;
    let (network, prefix) = parse_cidr(o.cidr.as_deref().unwrap_or("10.0.2.0/24"))?;
    let mut cfg = nsnet_stack::Config::new(network, prefix)
        .and_then(|c| c.with_mtu(o.mtu))
        .map_err(|e| e.to_string())?;
    cfg.disable_host_loopback = o.disable_host_loopback;
    cfg.ipv6 = o.ipv6;
    cfg.outbound_addr = outbound_addr;
    cfg.outbound_addr6 = outbound_addr6;
    cfg.disable_dns = o.disable_dns;
    if !o.disable_dns {
        cfg.nameservers = nsnet_stack::nameservers_from_resolv_conf(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        );
    }
    let netns_path = if o.netns_type_path {
        PathBuf::from(&o.target)
    } else {
        let pid: i32 = o
            .target
            .parse()
            .map_err(|_| format!("invalid PID: {}", o.target))?;
        PathBuf::from(format!("/proc/{pid}/ns/net"))
    };
    // Signals are blocked before any thread exists, so every thread inherits the mask and the
    // main thread alone takes them, through a signalfd.
    let sigfd = block_signals()?;
    let netns = nsnet_ns::enter::open_ns(&netns_path).map_err(|e| e.to_string())?;
    let userns = match (&o.userns_path, o.netns_type_path) {
        (Some(p), _) => Some(p.clone()),
        (None, false) if !nix::unistd::geteuid().is_root() => {
            Some(PathBuf::from(format!("/proc/{}/ns/user", o.target)))
        }
        _ => None,
    };
    if let Some(p) = userns {
        let fd = nsnet_ns::enter::open_ns(&p).map_err(|e| e.to_string())?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWUSER)
            .map_err(|e| format!("setns(CLONE_NEWUSER) {}: {e}", p.display()))?;
    }
    let tap_cfg = nsnet_netlink::TapConfig {
        name: o.ifname.clone(),
        mtu: cfg.mtu,
        ipv4: Some(nsnet_netlink::TapIpv4 {
            address: cfg.guest(),
            prefix: cfg.prefix,
            gateway: cfg.gateway(),
        }),
        ipv6: cfg.ipv6.then(|| nsnet_netlink::TapIpv6 {
            address: Some(cfg.guest6()),
            prefix: 64,
            gateway: cfg.gateway6(),
        }),
        mac: o.macaddress,
    };
    // The tap is made by a thread that enters the target netns and ends: the process is
    // single-threaded again for the sandbox and the seccomp filter (a mount namespace and a
    // filter are per thread; threads started later inherit them).
    use std::os::fd::AsFd;
    let tap = nsnet_netlink::create_tap_in(
        netns.as_fd(),
        &netns_path.display().to_string(),
        &tap_cfg,
        o.configure,
    )
    .map_err(|e| e.to_string())?;
    drop(netns);
    let tapfd = tap.as_raw_fd();
    eprintln!("sent tapfd={tapfd} for {}", o.ifname);
    eprintln!("received tapfd={tapfd}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Starting slirp");
    let _ = writeln!(out, "* MTU:             {}", cfg.mtu);
    let _ = writeln!(out, "* Network:         {}", cfg.network);
    let _ = writeln!(out, "* Netmask:         {}", cfg.netmask());
    let _ = writeln!(out, "* Gateway:         {}", cfg.gateway());
    let _ = writeln!(out, "* DNS:             {}", cfg.dns());
    let _ = writeln!(out, "* DHCP begin:      {}", cfg.dhcp_start());
    let end = Ipv4Addr::from(u32::from(cfg.dhcp_start()) + 15);
    let _ = writeln!(out, "* DHCP end:        {end}");
    let _ = writeln!(out, "* Recommended IP:  {}", cfg.guest());
    if !o.disable_host_loopback {
        let _ = writeln!(
            out,
            "WARNING: 127.0.0.1:* on the host is accessible as {} (set --disable-host-loopback to prohibit connecting to 127.0.0.1:*)",
            cfg.gateway()
        );
    }
    let _ = out.flush();
    drop(out);
    let guest = cfg.guest();
    // The API socket exists before the ready fd says so (callers connect right after), and
    // before the sandbox hides its directory; that directory stays open to remove it at exit.
    let api_sock = match &o.api_socket {
        Some(path) => Some((
            nsnet_api::slirp4netns::Socket::bind(path).map_err(|e| e.to_string())?,
            forwards::SocketFile::new(path)?,
        )),
        None => None,
    };
    if o.sandbox {
        use nsnet_ns::confine;
        confine::private_root(&["/etc", "/run"])
            .and_then(|()| confine::drop_privileges(&[confine::CAP_NET_BIND_SERVICE]))
            .map_err(|e| format!("--enable-sandbox: {e}"))?;
    }
    if o.seccomp {
        use nsnet_stack::seccomp;
        seccomp::program()
            .and_then(|p| seccomp::apply(&p))
            .map_err(|e| format!("--enable-seccomp: {e}"))?;
    }
    let running = nsnet_stack::spawn(tap, cfg).map_err(|e| e.to_string())?;
    let mut sock_file = None;
    if let Some((sock, file)) = api_sock {
        let backend = forwards::StackBackend(running.forwards());
        std::thread::Builder::new()
            .name("slirp4netns-api".into())
            .spawn(move || sock.serve(nsnet_api::slirp4netns::Api::new(backend, guest)))
            .map_err(|e| format!("start the API socket's thread: {e}"))?;
        sock_file = Some(file);
    }
    if let Some(fd) = o.ready_fd {
        // SAFETY: the caller handed us this fd; we own it from here and close it.
        let f = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut f = std::fs::File::from(f);
        f.write_all(b"1")
            .map_err(|e| format!("write to ready fd {fd}: {e}"))?;
    }
    wait_for_exit(o.exit_fd, sigfd.as_raw_fd());
    if let Some(f) = sock_file {
        f.remove();
    }
    running.stop().map_err(|e| e.to_string())?;
    Ok(())
}

fn block_signals() -> Result<OwnedFd, String> {
    // SAFETY: sigset manipulation on a local set; signalfd on it. Checked.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(format!("signalfd: {}", std::io::Error::last_os_error()));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Returns when the exit fd becomes readable or hangs up (its writer is gone), or a
/// terminating signal arrives.
fn wait_for_exit(exit_fd: Option<i32>, sigfd: i32) {
    let mut fds = vec![libc::pollfd {
        fd: sigfd,
        events: libc::POLLIN,
        revents: 0,
    }];
    if let Some(fd) = exit_fd {
        fds.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
    }
    loop {
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n != 0 {
            return;
        }
    }
}
