//! The parent stage: stays in the caller's namespaces, creates the child with `clone`, writes
//! its id maps, hands it its configuration, then forwards signals and waits (the sequence is
//! drawn in docs/launcher.md; the handshake's steps are [`crate::channel::ParentSide`]'s).

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, pipe2};
use nsnet_ns::netns::NetnsThread;
use nsnet_ns::statedir::StateDir;
use nsnet_ns::{enter, idmap};

use crate::channel::{ParentSide, ProtocolError};
use crate::config::{LaunchPlan, Personality};
use crate::sigwait::{Exit, SignalWaiter, reap};
use crate::{CHILD_ENV, LaunchError, sys};
use crate::{net, services};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1)
}

/// Kills and reaps the child unless disarmed: any error between clone and "ready" must not
/// leave a half-built namespace behind.
struct ChildGuard {
    pid: Pid,
    armed: bool,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
    }
}

fn cstring(v: impl Into<Vec<u8>>) -> CString {
    // Arguments and environment strings from the OS cannot contain NUL.
    CString::new(v).expect("no interior NUL in OS strings")
}

/// Builds the child's environment: ours, plus the documented variables and the pipe fds.
fn child_env(state: &std::path::Path, fds: (RawFd, RawFd)) -> Vec<CString> {
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != CHILD_ENV)
        .filter(|(k, _)| {
            !matches!(
                k.to_str(),
                Some(
                    "ROOTLESSKIT_STATE_DIR"
                        | "ROOTLESSKIT_PARENT_EUID"
                        | "ROOTLESSKIT_PARENT_EGID"
                        | "NSNET_STATE_DIR"
                )
            )
        })
        .map(|(mut k, v)| {
            k.push("=");
            k.push(v);
            cstring(k.into_vec())
        })
        .collect();
    let state = state.display();
    env.push(cstring(format!("{CHILD_ENV}={},{}", fds.0, fds.1)));
    env.push(cstring(format!("ROOTLESSKIT_STATE_DIR={state}")));
    env.push(cstring(format!("NSNET_STATE_DIR={state}")));
    env.push(cstring(format!(
        "ROOTLESSKIT_PARENT_EUID={}",
        nix::unistd::geteuid()
    )));
    env.push(cstring(format!(
        "ROOTLESSKIT_PARENT_EGID={}",
        nix::unistd::getegid()
    )));
    env
}

/// Opens the child's network namespace and starts a thread in it. Rootless, the parent first
/// joins the child's user namespace (it is still single-threaded here, as the kernel requires):
/// that is what gives it CAP_SYS_ADMIN over the namespace. Root keeps its own user namespace,
/// whose capabilities already cover every descendant (and which binding privileged host ports
/// needs).
fn enter_child_netns(
    plan: &LaunchPlan,
    child: i32,
    state: &std::path::Path,
) -> Result<NetnsThread, LaunchError> {
    let path = if plan.detach_netns {
        // The bind mount exists only in the child's mount namespace.
        std::path::PathBuf::from(format!(
            "/proc/{child}/root{}",
            state.join("netns").display()
        ))
    } else {
        std::path::PathBuf::from(format!("/proc/{child}/ns/net"))
    };
    let fd = enter::open_ns(&path)?;
    if !nix::unistd::geteuid().is_root() {
        let n = threads();
        if n != 1 {
            return Err(LaunchError::Threaded(n));
        }
        enter::join_user_namespace(child)?;
    }
    let thread = NetnsThread::spawn(fd, &path)?;
    tracing::debug!(
        netns = thread.inode(),
        "parent thread entered the child's netns"
    );
    Ok(thread)
}

/// A failed handshake step as the launcher reports it: the child's own failure, or its
/// exit status when it died without one (both reaped here, so the guard has nothing left
/// to kill); anything else, an out-of-order reply included, leaves the child to the guard.
fn child_error(e: ProtocolError, guard: &mut ChildGuard) -> LaunchError {
    let mut reap_now = || {
        guard.armed = false;
        nix::sys::wait::waitpid(guard.pid, None)
            .map(|s| format!("{s:?}"))
            .unwrap_or_else(|e| e.to_string())
    };
    match e {
        ProtocolError::ChildFailed(message) => {
            reap_now();
            LaunchError::Child(message)
        }
        ProtocolError::Closed => LaunchError::ChildDied(reap_now()),
        e => e.into(),
    }
}

fn clone_flags(plan: &LaunchPlan) -> CloneFlags {
    let mut f = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
    if plan.net != crate::config::NetDriver::Host && !plan.detach_netns {
        f |= CloneFlags::CLONE_NEWNET;
    }
    for (on, flag) in [
        (plan.pidns, CloneFlags::CLONE_NEWPID),
        (plan.utsns, CloneFlags::CLONE_NEWUTS),
        (plan.ipcns, CloneFlags::CLONE_NEWIPC),
        (plan.cgroupns, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if on {
            f |= flag;
        }
    }
    f
}

/// Runs the plan to completion: returns how the child ended. `warn` receives every warning
/// (from the plan, the id maps and the child) as soon as it is known.
pub fn run(plan: &LaunchPlan, warn: &mut dyn FnMut(&str)) -> Result<Exit, LaunchError> {
    for w in &plan.warnings {
        warn(w);
    }
    let n = threads();
    if n != 1 {
        return Err(LaunchError::Threaded(n));
    }
    net::preflight(plan)?;
    let state = match &plan.state_dir {
        Some(p) => StateDir::open(p)?,
        None => StateDir::create_temp(match plan.personality {
            Personality::Rootlesskit => "rootlesskit",
            Personality::Nsnet => "nsnet",
        })?,
    };

    let (p2c_r, p2c_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let (c2p_r, c2p_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let child_fds = (p2c_r.as_raw_fd(), c2p_w.as_raw_fd());

    // Everything the child touches between clone and execve is prepared here: after the
    // clone it makes only async-signal-safe calls.
    let exe = cstring("/proc/self/exe");
    let argv0: OsString = std::env::args_os().next().unwrap_or_else(|| "nsnet".into());
    let mut argv = vec![cstring(argv0.into_vec()), cstring("(child)")];
    argv.extend(plan.command.iter().map(|a| cstring(a.as_bytes())));
    let envp = child_env(state.path(), child_fds);
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());

    let mut waiter = SignalWaiter::block()?;
    let flags = clone_flags(plan).bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    let (p2c_w_raw, c2p_r_raw) = (p2c_w.as_raw_fd(), c2p_r.as_raw_fd());
    // SAFETY: a fork-like clone (no new stack, no shared memory) of a single-threaded process.
    // nix::sched::clone requires a separate stack and closure, which buys nothing here.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if ret < 0 {
        return Err(sys("clone the child into new namespaces")(
            nix::Error::last(),
        ));
    }
    if ret == 0 {
        // Child: only async-signal-safe calls until execve.
        // SAFETY: plain syscalls on descriptors and pointers prepared before the clone.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            libc::close(p2c_w_raw);
            libc::close(c2p_r_raw);
            let mut b = 0u8;
            if libc::read(child_fds.0, (&mut b as *mut u8).cast(), 1) != 1 {
                libc::_exit(1);
            }
            libc::fcntl(child_fds.0, libc::F_SETFD, 0);
            libc::fcntl(child_fds.1, libc::F_SETFD, 0);
            libc::execve(exe.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    let child = Pid::from_raw(ret as i32);
    tracing::debug!(pid = child.as_raw(), flags = ?clone_flags(plan), "cloned the child");
    let mut guard = ChildGuard {
        pid: child,
        armed: true,
    };
    drop(p2c_r);
    drop(c2p_w);
    let mut to_child = File::from(p2c_w);

    let (method, map_warning) = idmap::write_maps(child.as_raw(), plan.subid_source)?;
    tracing::debug!(?method, "wrote the child's id maps");
    if let Some(w) = map_warning {
        warn(&w);
    }
    // The wake-up byte goes out on the raw pipe: the child reads it before execve, before
    // the channel's framing means anything to it.
    to_child.write_all(&[1]).map_err(|source| LaunchError::Io {
        op: "wake the child",
        source,
    })?;
    let mut channel = ParentSide::new(to_child.into(), c2p_r);
    let config = plan.child_config(state.path().to_path_buf());
    let warnings = channel
        .start(config)
        .map_err(|e| child_error(e, &mut guard))?;
    warnings.iter().for_each(|w| warn(w));

    let netns_thread = if net::needs_netns_thread(plan) {
        Some(Arc::new(enter_child_netns(
            plan,
            child.as_raw(),
            state.path(),
        )?))
    } else {
        None
    };
    let ctx = netns_thread.as_deref().map(|t| net::NetContext {
        netns: t,
        child_pid: child.as_raw(),
        state_dir: state.path(),
    });
    let (setup, _network) = net::start(plan, ctx.as_ref())?;
    let warnings = channel
        .network_ready(setup.dns.clone())
        .map_err(|e| child_error(e, &mut guard))?;
    warnings.iter().for_each(|w| warn(w));
    let services = services::start(
        plan,
        &mut *warn,
        netns_thread,
        &setup,
        child.as_raw(),
        state.path(),
    )?;
    state.write_child_pid(child.as_raw())?;
    channel.go()?;
    tracing::debug!(state_dir = %state.path().display(), "child ready");
    guard.armed = false;
    // Serving from here on: start-up code need not stay mapped (see `memory`).
    if let Err(e) = crate::memory::release_startup_text() {
        tracing::debug!("keeping start-up pages mapped: {e}");
    }
    let exit = match reap(child, false)? {
        Some(e) => e,
        None => waiter.wait_forwarding(child, false)?,
    };
    drop(services);
    drop(state);
    Ok(exit)
}
