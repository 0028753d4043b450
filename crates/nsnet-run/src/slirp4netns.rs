//! `--net=slirp4netns`: the external user-mode network, run as RootlessKit runs it.
//!
//! slirp4netns is started by the parent, in the host's network namespace and the caller's
//! own user namespace (before the parent joins the child's, if it does: slirp4netns joins
//! the target's user namespace itself and would refuse to "join" the one it is already in).
//! It attaches `tap0` inside the child's netns and configures it (`--configure`), then
//! writes `1` to its ready descriptor. It dies with the parent (PDEATHSIG) and is stopped
//! by PID when the instance ends.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::LaunchError;
use crate::config::{LaunchPlan, Slirp4netnsOptions};
use crate::net::NetworkSetup;

/// A running slirp4netns; dropping it stops it.
pub struct Slirp4netns {
    child: Child,
}

impl Drop for Slirp4netns {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn failed(msg: String) -> LaunchError {
    LaunchError::Driver {
        driver: "slirp4netns",
        message: msg,
    }
}

/// Arguments for slirp4netns, after the binary.
pub fn args(plan: &LaunchPlan, opts: &Slirp4netnsOptions, child: i32, state: &Path) -> Vec<String> {
    let mut a = vec![
        "--configure".to_string(),
        format!("--mtu={}", plan.mtu),
        "--ready-fd=3".into(),
    ];
    if plan.disable_host_loopback {
        a.push("--disable-host-loopback".into());
    }
    if plan.cidr != crate::config::Ipv4Cidr::DEFAULT {
        a.push(format!("--cidr={}/{}", plan.cidr.network, plan.cidr.prefix));
    }
    if plan.ipv6 {
        a.push("--enable-ipv6".into());
    }
    if opts.sandbox {
        a.push("--enable-sandbox".into());
    }
    if opts.seccomp {
        a.push("--enable-seccomp".into());
    }
    if plan.detach_netns {
        a.push("--netns-type=path".into());
        a.push(format!("--userns-path=/proc/{child}/ns/user"));
        a.push(format!(
            "/proc/{child}/root{}",
            state.join("netns").display()
        ));
    } else {
        a.push(child.to_string());
    }
    a.push(plan.ifname.clone());
    a
}

/// Starts slirp4netns for the child and waits until it reports ready.
pub fn start(
    plan: &LaunchPlan,
    opts: &Slirp4netnsOptions,
    child: i32,
    state: &Path,
) -> Result<(NetworkSetup, Slirp4netns), LaunchError> {
    let (ready_r, ready_w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(crate::sys("pipe"))?;
    let w = ready_w.as_raw_fd();
    // Its output goes to a file of the state dir rather than a pipe: reading a pipe would
    // take a thread, and the parent may still have to join a user namespace, which only a
    // single-threaded process can.
    let log_path = state.join("slirp4netns.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| failed(format!("cannot create {}: {e}", log_path.display())))?;
    let mut cmd = Command::new(&opts.binary);
    cmd.args(args(plan, opts, child, state))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    // SAFETY: dup2 and prctl in the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            // The parent blocks the signals it forwards; the mask survives execve.
            crate::sigwait::unblock_all();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::dup2(w, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut proc = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", opts.binary.display())))?;
    drop(ready_w);
    tracing::debug!(pid = proc.id(), args = ?args(plan, opts, child, state), "started slirp4netns");
    let mut ready = std::fs::File::from(ready_r);
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(30);
    // The read ends with "1" when ready, or EOF when slirp4netns exits first.
    let got = loop {
        match ready.read(&mut byte) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && Instant::now() < deadline => {}
            Err(e) => return Err(failed(format!("waiting for it to be ready: {e}"))),
        }
    };
    if got != 1 || byte[0] != b'1' {
        let _ = proc.kill();
        let _ = proc.wait();
        let err = std::fs::read_to_string(&log_path).unwrap_or_default();
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("exited before it was ready");
        return Err(failed(last.trim().to_string()));
    }
    Ok((
        NetworkSetup {
            dns: vec![plan.cidr.host(3).to_string()],
            child_ip: Some(plan.cidr.host(100)),
        },
        Slirp4netns { child: proc },
    ))
}
