//! External network drivers, as RootlessKit runs them: `--net=slirp4netns` and `--net=pasta`.
//!
//! The parent starts `slirp4netns --configure --mtu M --cidr C [--disable-host-loopback]
//! [--enable-ipv6] [--enable-sandbox] [--enable-seccomp] -r 3 -e 4 --netns-type=path NETNS IFNAME` and waits
//! for `1` on the ready fd (3). The exit fd (4) is the read end of a pipe whose write end the
//! parent keeps: dropping [`External`] closes it, and slirp4netns exits.
//!
//! No `--userns-path`: rootless, the parent has already joined the child's user namespace
//! (to keep a thread in the child's netns), so slirp4netns starts inside it as uid 0 with its
//! capabilities, and `setns` into the same user namespace would fail; as root, the initial
//! user namespace's capabilities cover the child's netns anyway.
//!
//! `--net=pasta` (RootlessKit 2.x's command line): `pasta --stderr --runas=0:0 --ns-ifname=IF --mtu=M
//! --config-net --address=CIDR+100 --netmask=P --gateway=CIDR+2 --dns-forward=CIDR+3
//! [--no-map-gw] [--ipv4-only] --tcp-ports=none --udp-ports=none (`auto` with the implicit
//! port driver) --netns-only --netns=PATH
//! --pid=FILE`. pasta configures the interface itself, forks to the background once ready
//! and exits in the foreground: success of that exit is readiness. `--netns-only` for the
//! same reason as slirp4netns's missing `--userns-path` (rootless, we already are in the
//! child's user namespace). RootlessKit leaves the daemon to notice the namespace is gone;
//! we also take its PID from `--pid` and stop it (SIGTERM, then SIGKILL) when the child
//! exits, so nothing outlives the launch. pasta copies addresses and routes from a template
//! interface with a default route in the parent's netns and refuses to start without one
//! ("External interface not usable").
//!
//! With `--port-driver=pesto` (RootlessKit v3) pasta also gets `-c $STATE/pasta.sock`, its
//! forwarding-table socket, which the port driver (`nsnet_port::pesto`) edits; a pasta that
//! has no `-c` (passt before 2026_07_16, such as Debian's) is refused before anything starts.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::LaunchError;
use crate::config::LaunchPlan;
use crate::net::{NetContext, NetworkSetup};

/// How long slirp4netns may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("--net=slirp4netns: start {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--net=slirp4netns: {binary} exited before it was ready ({status})")]
    EarlyExit { binary: String, status: String },
    #[error("--net=slirp4netns: {binary} was not ready within {secs} s")]
    Timeout { binary: String, secs: u64 },
    #[error("--net=slirp4netns: pipe: {0}")]
    Pipe(#[source] std::io::Error),
}

/// A running external driver; dropping it stops the process.
pub struct External {
    child: Child,
    exit_w: Option<OwnedFd>,
}

impl Drop for External {
    fn drop(&mut self) {
        // Closing the exit fd's writer tells slirp4netns to exit; kill it if it lingers.
        self.exit_w.take();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ExternalError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ExternalError::Pipe(std::io::Error::from_raw_os_error(e as i32)))
}

/// A running pasta daemon (it forked away from us); dropping it stops it by PID.
pub struct Pasta {
    pid: i32,
}

impl Drop for Pasta {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        let pid = nix::unistd::Pid::from_raw(self.pid);
        if kill(pid, Signal::SIGTERM).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if kill(pid, None).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = kill(pid, Signal::SIGKILL);
    }
}

/// pasta's forwarding-table socket in the state dir, with `--port-driver=pesto`.
pub const PASTA_CONTROL_SOCKET: &str = "pasta.sock";

/// Refuses, with the fix, a pasta that does not serve the forwarding-table socket the pesto
/// port driver edits: its `--help` must list `--conf-path` (`-c`). Older passt prints its
/// usage on stderr and exits 1, so both streams are read and the status is not.
pub fn check_pasta_for_pesto(binary: &str) -> Result<(), PastaError> {
    let o = Command::new(binary)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PastaError::Spawn {
            binary: binary.to_string(),
            source,
        })?;
    let help = [o.stdout, o.stderr].concat();
    if String::from_utf8_lossy(&help).contains("--conf-path") {
        Ok(())
    } else {
        Err(PastaError::NoControlSocket {
            binary: binary.to_string(),
        })
    }
}

/// pasta's command line for a plan (RootlessKit 2.x's), without the namespace and PID file.
pub fn pasta_args(plan: &LaunchPlan) -> Vec<String> {
    let net = |n| plan.cidr.host(n);
    let mut a = vec![
        "--stderr".to_string(),
        format!("--ns-ifname={}", plan.ifname),
        format!("--mtu={}", plan.mtu),
        "--config-net".into(),
        format!("--address={}", net(100)),
        format!("--netmask={}", plan.cidr.prefix),
        format!("--gateway={}", net(2)),
        format!("--dns-forward={}", net(3)),
    ];
    if plan.disable_host_loopback {
        a.push("--no-map-gw".into());
    }
    if !plan.ipv6 {
        a.push("--ipv4-only".into());
    }
    // The implicit port driver is pasta's own forwarding: every port bound in the namespace
    // appears on the host (pasta rescans them every second), as RootlessKit 2.x runs it.
    let ports = if plan.port_driver == crate::config::PortDriver::Implicit {
        "auto"
    } else {
        "none"
    };
    a.extend([
        format!("--tcp-ports={ports}"),
        format!("--udp-ports={ports}"),
    ]);
    a
}

/// pasta's arguments for the port driver's socket: `-c SOCKET` for pesto, else none.
fn control_socket_args(plan: &LaunchPlan, state_dir: &std::path::Path) -> Vec<String> {
    if plan.port_driver == crate::config::PortDriver::Pesto {
        let sock = state_dir.join(PASTA_CONTROL_SOCKET);
        vec!["-c".into(), sock.display().to_string()]
    } else {
        Vec::new()
    }
}

pub fn start_pasta(
    plan: &LaunchPlan,
    ctx: &NetContext<'_>,
) -> Result<(NetworkSetup, Pasta), LaunchError> {
    let binary = plan.pasta_binary.clone();
    let netns = netns_path(plan, ctx);
    let pidfile = ctx.state_dir.join("pasta.pid");
    let _ = std::fs::remove_file(&pidfile);
    // A stale socket from a crashed run would make pasta fail to bind it.
    let _ = std::fs::remove_file(ctx.state_dir.join(PASTA_CONTROL_SOCKET));
    let mut cmd = Command::new(&binary);
    cmd.args(pasta_args(plan))
        .args(control_socket_args(plan, ctx.state_dir))
        .arg("--netns-only")
        .arg(format!("--netns={netns}"))
        .arg(format!("--pid={}", pidfile.display()))
        .arg("--runas=0:0")
        .stdin(Stdio::null());
    // pasta's output goes to a file, not a pipe: the foreground's exit is the readiness, and
    // a background process that kept a pipe open would leave a reader waiting for an EOF
    // that never comes.
    let log_path = ctx.state_dir.join(".pasta.stderr");
    let log = std::fs::File::create(&log_path).map_err(|source| PastaError::Spawn {
        binary: binary.clone(),
        source,
    })?;
    cmd.stdout(Stdio::null()).stderr(log);
    tracing::debug!(?cmd, "starting pasta");
    let status = cmd.status().map_err(|source| PastaError::Spawn {
        binary: binary.clone(),
        source,
    })?;
    let out = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: std::fs::read(&log_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(&log_path);
    let pid = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let _ = std::fs::remove_file(&pidfile);
    // Whatever happened, a daemon it left is ours to stop.
    let running = pid.map(|pid| Pasta { pid });
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        // Its last line says why; syslog noise ("Failed to send … to syslog") is not it.
        let why = text
            .lines()
            .rev()
            .find(|l| !l.contains("syslog") && !l.trim().is_empty())
            .unwrap_or("no message")
            .trim()
            .to_string();
        return Err(PastaError::Failed {
            binary,
            status: out.status.to_string(),
            why,
        }
        .into());
    }
    let Some(running) = running else {
        return Err(PastaError::NoPid { binary }.into());
    };
    if plan.debug {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((uplink_setup(plan), running))
}

/// What both external drivers give the child, from the CIDR (slirp4netns's and RootlessKit's
/// layout): DNS at CIDR+3, the child at CIDR+100.
fn uplink_setup(plan: &LaunchPlan) -> NetworkSetup {
    let net = |n| plan.cidr.host(n);
    NetworkSetup {
        dns: vec![net(3).to_string()],
        child_ip: Some(net(100)),
        ipv6: plan.ipv6,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PastaError {
    #[error("--net=pasta: start {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--net=pasta: {binary} failed ({status}): {why}")]
    Failed {
        binary: String,
        status: String,
        why: String,
    },
    #[error("--net=pasta: {binary} wrote no PID file; is it pasta from passt?")]
    NoPid { binary: String },
    #[error(
        "--port-driver=pesto: {binary} has no forwarding-table socket (-c, --conf-path) for the driver to edit; use nsnet's pasta personality (nsnet linked as pasta, given with --pasta-binary) or pasta from passt 2026_07_16 or later"
    )]
    NoControlSocket { binary: String },
}

/// Where an external driver finds the child's netns (detached: the bind mount in the
/// child's mount namespace).
fn netns_path(plan: &LaunchPlan, ctx: &NetContext<'_>) -> String {
    if plan.detach_netns {
        format!(
            "/proc/{}/root{}",
            ctx.child_pid,
            ctx.state_dir.join("netns").display()
        )
    } else {
        format!("/proc/{}/ns/net", ctx.child_pid)
    }
}

/// Whether `binary --help` lists `flag` (RootlessKit's feature probe for `auto`).
fn supports(binary: &str, flag: &str) -> bool {
    Command::new(binary)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}

fn wanted(mode: &str, binary: &str, flag: &str) -> bool {
    match mode {
        "true" => true,
        "auto" => supports(binary, flag),
        _ => false,
    }
}

/// slirp4netns's API socket in the state dir, when the slirp4netns port driver uses it
/// (RootlessKit's name).
pub const SLIRP4NETNS_API_SOCKET: &str = ".s4nn.sock";

/// The slirp4netns command line for a plan (without the fds and the netns path).
pub fn slirp4netns_args(plan: &LaunchPlan, sandbox: bool, seccomp: bool) -> Vec<String> {
    let mut a = vec![
        "--configure".to_string(),
        format!("--mtu={}", plan.mtu),
        format!("--cidr={}/{}", plan.cidr.network, plan.cidr.prefix),
    ];
    if plan.disable_host_loopback {
        a.push("--disable-host-loopback".into());
    }
    if plan.ipv6 {
        a.push("--enable-ipv6".into());
    }
    if sandbox {
        a.push("--enable-sandbox".into());
    }
    if seccomp {
        a.push("--enable-seccomp".into());
    }
    a
}

pub fn start_slirp4netns(
    plan: &LaunchPlan,
    ctx: &NetContext<'_>,
) -> Result<(NetworkSetup, External), LaunchError> {
    let opts = &plan.slirp4netns;
    let binary = opts.binary.clone();
    let sandbox = wanted(&opts.sandbox, &binary, "--enable-sandbox");
    let seccomp = wanted(&opts.seccomp, &binary, "--enable-seccomp");
    let netns = netns_path(plan, ctx);
    let (ready_r, ready_w) = pipe()?;
    let (exit_r, exit_w) = pipe()?;
    let mut cmd = Command::new(&binary);
    cmd.args(slirp4netns_args(plan, sandbox, seccomp));
    if plan.port_driver == crate::config::PortDriver::Slirp4netns {
        let api = ctx.state_dir.join(SLIRP4NETNS_API_SOCKET);
        // A stale socket from a crashed run would make slirp4netns fail to bind.
        let _ = std::fs::remove_file(&api);
        cmd.arg(format!("--api-socket={}", api.display()));
    }
    cmd.args([
        "-r",
        "3",
        "-e",
        "4",
        "--netns-type=path",
        &netns,
        &plan.ifname,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    if !plan.debug {
        // Its start-up chatter ("sent tapfd=…") is for --debug only.
        cmd.stderr(Stdio::null());
    }
    let (rw, er) = (ready_w.as_raw_fd(), exit_r.as_raw_fd());
    // SAFETY: dup2 is async-signal-safe; it clears close-on-exec on the new descriptors.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(rw, 3) < 0 || libc::dup2(er, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    tracing::debug!(?cmd, "starting slirp4netns");
    let child = cmd.spawn().map_err(|source| ExternalError::Spawn {
        binary: binary.clone(),
        source,
    })?;
    drop(ready_w);
    drop(exit_r);
    let mut running = External {
        child,
        exit_w: Some(exit_w),
    };
    // Wait for "1" on the ready fd, or for slirp4netns to die or time out.
    let mut ready = std::fs::File::from(ready_r);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let mut pfd = libc::pollfd {
            fd: ready.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        if pfd.revents != 0 {
            let mut b = [0u8; 1];
            if matches!(ready.read(&mut b), Ok(1) if b[0] == b'1') {
                break;
            }
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(ExternalError::EarlyExit {
                binary,
                status: status.to_string(),
            }
            .into());
        }
        if Instant::now() > deadline {
            return Err(ExternalError::Timeout {
                binary,
                secs: READY_TIMEOUT.as_secs(),
            }
            .into());
        }
    }
    Ok((uplink_setup(plan), running))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Personality, RawOptions};

    fn plan_raw() -> RawOptions {
        RawOptions {
            mtu: 1500,
            cidr: Some("10.0.135.128/25".into()),
            disable_host_loopback: true,
            ipv6: true,
            slirp4netns_sandbox: "true".into(),
            slirp4netns_seccomp: "false".into(),
            command: vec!["true".into()],
            ..RawOptions::default()
        }
    }

    #[test]
    fn slirp4netns_gets_rootlesskits_flags() {
        let plan = LaunchPlan::from_raw(
            RawOptions {
                net: Some("slirp4netns".into()),
                ..plan_raw()
            },
            Personality::Nsnet,
        )
        .unwrap();
        assert_eq!(plan.slirp4netns.binary, "slirp4netns");
        assert_eq!(plan.slirp4netns.sandbox, "true");
        assert_eq!(
            slirp4netns_args(&plan, true, false),
            [
                "--configure",
                "--mtu=1500",
                "--cidr=10.0.135.128/25",
                "--disable-host-loopback",
                "--enable-ipv6",
                "--enable-sandbox"
            ]
        );
        assert!(wanted("true", "/nonexistent", "--x"));
        assert!(!wanted("false", "/nonexistent", "--x"));
        assert!(
            !wanted("auto", "/nonexistent", "--x"),
            "auto probes the binary"
        );
    }

    #[test]
    fn pesto_gets_pasta_a_control_socket_and_needs_one() {
        let plan = |pd: &str| {
            LaunchPlan::from_raw(
                RawOptions {
                    net: Some("pasta".into()),
                    port_driver: pd.into(),
                    ..plan_raw()
                },
                Personality::Nsnet,
            )
            .unwrap()
        };
        let state = std::path::Path::new("/run/user/1000/rk");
        assert_eq!(
            control_socket_args(&plan("pesto"), state),
            ["-c", "/run/user/1000/rk/pasta.sock"]
        );
        assert!(control_socket_args(&plan("builtin"), state).is_empty());
        // A program whose --help does not list -c (true(1) prints nothing at all).
        assert_eq!(
            check_pasta_for_pesto("/bin/true").unwrap_err().to_string(),
            "--port-driver=pesto: /bin/true has no forwarding-table socket (-c, --conf-path) for the driver to edit; use nsnet's pasta personality (nsnet linked as pasta, given with --pasta-binary) or pasta from passt 2026_07_16 or later"
        );
        assert!(
            check_pasta_for_pesto("/nonexistent/pasta")
                .unwrap_err()
                .to_string()
                .starts_with("--net=pasta: start /nonexistent/pasta: ")
        );
    }

    #[test]
    fn pasta_gets_rootlesskit_2s_flags() {
        let plan = LaunchPlan::from_raw(
            RawOptions {
                net: Some("pasta".into()),
                pasta_binary: "/usr/bin/pasta".into(),
                port_driver: "builtin".into(),
                publish: vec!["8080:80/tcp".into()],
                ..plan_raw()
            },
            Personality::Nsnet,
        )
        .unwrap();
        assert_eq!(plan.pasta_binary, "/usr/bin/pasta");
        assert_eq!(
            pasta_args(&plan),
            [
                "--stderr",
                "--ns-ifname=tap0",
                "--mtu=1500",
                "--config-net",
                "--address=10.0.135.228",
                "--netmask=25",
                "--gateway=10.0.135.130",
                "--dns-forward=10.0.135.131",
                "--no-map-gw",
                "--tcp-ports=none",
                "--udp-ports=none"
            ]
        );
    }
}
