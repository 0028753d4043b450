//! The child stage: runs inside the new namespaces with full capabilities there, builds the
//! mounts and network namespace the plan asks for, reports ready, then runs the command and
//! passes its exit status up.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::Pid;
use nsnet_ns::mount::{self, Propagation};
use nsnet_ns::{copyup, netns};

use crate::channel::ChildSide;
use crate::config::{ChildConfig, Personality, Role};
use crate::sigwait::{Exit, SignalWaiter, block_forwarded, unblock_all};
use crate::{CHILD_ENV, LaunchError};

/// Whether this process was started as the child stage.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

fn parse_fds(v: &str) -> Option<(RawFd, RawFd)> {
    let (a, b) = v.split_once(',')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

/// Runs the child stage and returns its exit code. `init_logging(debug)` is called once the
/// configuration (which carries `--debug`) has arrived.
pub fn main(init_logging: fn(bool)) -> i32 {
    block_forwarded();
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let Some(fds) = std::env::var(CHILD_ENV).ok().and_then(|v| parse_fds(&v)) else {
        eprintln!("nsnet: error: malformed {CHILD_ENV}");
        return 1;
    };
    // SAFETY: the child stage is single-threaded here.
    unsafe { std::env::remove_var(CHILD_ENV) };
    set_cloexec(fds.0);
    set_cloexec(fds.1);
    // SAFETY: both descriptors were passed to us by our parent and nothing else owns them.
    let mut channel =
        unsafe { ChildSide::new(OwnedFd::from_raw_fd(fds.0), OwnedFd::from_raw_fd(fds.1)) };
    let config = match channel.start() {
        Ok(c) => c,
        Err(e) => {
            init_logging(false);
            eprintln!("nsnet: error: child stage: {e}");
            return 1;
        }
    };
    init_logging(config.debug);
    let warnings = match setup(&config) {
        Ok(w) => w,
        Err(e) => {
            channel.failed(e.to_string());
            return 1;
        }
    };
    let dns = match channel.namespaces_ready(warnings) {
        Ok(dns) => dns,
        // The parent gave up (its driver failed); it reports why.
        Err(_) => return 1,
    };
    let mut warnings = Vec::new();
    if config.network
        && let Err(e) = write_name_files(&config, &dns, &mut warnings)
    {
        channel.failed(e.to_string());
        return 1;
    }
    // The command starts only once $STATE/child_pid and api.sock exist, so that it can use
    // them at once (RootlessKit leaves a window here).
    if channel.ready(warnings).is_err() {
        return 1;
    }
    run_command(&config)
}

/// Builds the mounts and network the configuration asks for, in the order the kernel needs:
/// propagation first (a move out of a shared mount is refused), `/proc` before anything reads
/// it, copy-up before the resolv.conf bind (which replaces a copied-up symlink).
fn setup(cfg: &ChildConfig) -> Result<Vec<String>, LaunchError> {
    tracing::debug!(?cfg, "child setup");
    let mut warnings = Vec::new();
    let prop = Propagation::parse(&cfg.propagation).unwrap_or(Propagation::RPrivate);
    mount::set_root_propagation(prop)?;
    if cfg.mount_proc {
        mount::mount_proc()?;
    }
    for dir in &cfg.copy_up {
        copyup::copy_up(dir)?;
    }
    if cfg.detach_netns {
        netns::create_detached(&cfg.state_dir.join("netns"))?;
    }
    if cfg.own_netns {
        netns::loopback_up()?;
        if let Some(w) = mount::remount_sys_for_netns()? {
            warnings.push(w);
        }
    }
    Ok(warnings)
}

fn write_file(path: &Path, text: &str) -> Result<(), LaunchError> {
    std::fs::write(path, text).map_err(|source| {
        nsnet_ns::Error::Write {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// `$STATE/resolv.conf` and `$STATE/hosts`, bind-mounted over `/etc` when the command itself
/// is in the new network namespace (in detached mode they are for the containers' use).
fn write_name_files(
    cfg: &ChildConfig,
    dns: &[String],
    warnings: &mut Vec<String>,
) -> Result<(), LaunchError> {
    let etc_copied = cfg.copy_up.iter().any(|d| d == Path::new("/etc"));
    let resolv = cfg.state_dir.join("resolv.conf");
    let hosts = cfg.state_dir.join("hosts");
    let resolv_text = if dns.is_empty() {
        "# nsnet: this network has no DNS server\n".to_string()
    } else {
        dns.iter().map(|d| format!("nameserver {d}\n")).collect()
    };
    write_file(&resolv, &resolv_text)?;
    let mut hosts_text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if !hosts_text.ends_with('\n') && !hosts_text.is_empty() {
        hosts_text.push('\n');
    }
    if let Ok(h) = nix::unistd::gethostname() {
        let h = h.to_string_lossy();
        hosts_text.push_str(&format!("127.0.0.1 {h}\n::1 {h}\n"));
    }
    write_file(&hosts, &hosts_text)?;
    if cfg.detach_netns {
        return Ok(());
    }
    if !etc_copied && cfg.personality == Personality::Rootlesskit {
        warnings.push("Mounting /etc/resolv.conf without copying-up /etc. Note that /etc/resolv.conf in the namespace will be unmounted when it is recreated on the host. Unless /etc/resolv.conf is statically configured, copying-up /etc is highly recommended.".into());
    }
    for (src, dst) in [(&resolv, "/etc/resolv.conf"), (&hosts, "/etc/hosts")] {
        let dst = Path::new(dst);
        if etc_copied {
            // The copied-up entry is a symlink into the original /etc; a bind mount would
            // follow it onto the host's file, so put a plain file in its place.
            let _ = std::fs::remove_file(dst);
            write_file(dst, "")?;
        } else if !dst.exists() {
            warnings.push(format!(
                "{} does not exist on the host and /etc is not copied up; not replacing it",
                dst.display()
            ));
            continue;
        }
        mount::bind(src, dst, false)?;
    }
    Ok(())
}

/// Go's `%v` of a string slice, as RootlessKit prints the command.
fn go_list(cmd: &[String]) -> String {
    format!("[{}]", cmd.join(" "))
}

fn spawn_error(cfg: &ChildConfig, e: &std::io::Error) -> (String, i32) {
    let prog = &cfg.command[0];
    match cfg.personality {
        Personality::Rootlesskit => {
            let what = if e.kind() == std::io::ErrorKind::NotFound && !prog.contains('/') {
                format!("exec: {prog:?}: executable file not found in $PATH")
            } else {
                let errno = nix::Error::from_raw(e.raw_os_error().unwrap_or(0));
                format!("fork/exec {prog}: {}", errno.desc().to_lowercase())
            };
            (
                format!("command {} exited: {what}", go_list(&cfg.command)),
                1,
            )
        }
        Personality::Nsnet => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            (format!("cannot run {prog}: {e}"), code)
        }
    }
}

/// Finds `prog` on `$PATH` the way Go's `exec.LookPath` does (RootlessKit's behaviour): a
/// directory we may not search is skipped rather than turning "not found" into EACCES.
fn look_path(prog: &str) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if prog.contains('/') {
        return Ok(prog.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))
}

fn run_command(cfg: &ChildConfig) -> i32 {
    let say = |msg: &str| eprintln!("{}", cfg.personality.error_line(Role::Child, msg));
    let mut waiter = match SignalWaiter::block() {
        Ok(w) => w,
        Err(e) => {
            say(&e.to_string());
            return 1;
        }
    };
    let socket_activation = std::env::var_os("LISTEN_FDS").is_some();
    let program = match look_path(&cfg.command[0]) {
        Ok(p) => p,
        Err(e) => {
            let (msg, code) = spawn_error(cfg, &e);
            say(&msg);
            return code;
        }
    };
    let mut cmd = Command::new(program);
    cmd.arg0(&cfg.command[0]).args(&cfg.command[1..]);
    // SAFETY: the child stage is single-threaded, so the forked process may call anything;
    // what runs here is a few syscalls and, for socket activation, setenv.
    let me = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            unblock_all();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            // If we died between the fork and the prctl, no signal will ever come: the
            // command must not outlive the instance (prctl(2)'s documented race).
            if libc::getppid() != me {
                libc::_exit(1);
            }
            if socket_activation {
                // systemd's LISTEN_PID must name the process that receives the descriptors,
                // which is the command, not us (RootlessKit re-executes a helper for this).
                let pid = std::ffi::CString::new(libc::getpid().to_string()).unwrap_or_default();
                libc::setenv(c"LISTEN_PID".as_ptr(), pid.as_ptr(), 1);
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let (msg, code) = spawn_error(cfg, &e);
            say(&msg);
            return code;
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    // Only waiting from here on (see `memory`).
    let _ = crate::memory::release_startup_text();
    let exit = match waiter.wait_forwarding(pid, cfg.reaper) {
        Ok(e) => e,
        Err(e) => {
            say(&e.to_string());
            return 1;
        }
    };
    match (exit, cfg.personality) {
        (Exit::Code(0), _) => 0,
        (Exit::Code(c), Personality::Rootlesskit) => {
            say(&format!(
                "command {} exited: exit status {c}",
                go_list(&cfg.command)
            ));
            c
        }
        (Exit::Code(c), Personality::Nsnet) => c,
        (Exit::Signal(s), p) => {
            match p {
                Personality::Rootlesskit => say(&format!(
                    "command {} exited: signal: {}",
                    go_list(&cfg.command),
                    nsnet_ns::signal::go_string(s)
                )),
                Personality::Nsnet => eprintln!(
                    "nsnet: command killed by signal {} ({})",
                    nsnet_ns::signal::linux_name(s),
                    nsnet_ns::signal::go_string(s)
                ),
            }
            p.signal_exit_code(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_env_parsing() {
        assert_eq!(parse_fds("3,4"), Some((3, 4)));
        assert_eq!(parse_fds("3"), None);
        assert_eq!(parse_fds("a,4"), None);
    }

    #[test]
    fn rootlesskit_spawn_errors_read_like_go() {
        let mut cfg = crate::config::LaunchPlan::from_raw(
            crate::config::RawOptions {
                net: Some("host".into()),
                command: vec!["nonexistent-cmd".into()],
                ..Default::default()
            },
            Personality::Rootlesskit,
        )
        .unwrap()
        .child_config("/s".into());
        let nf = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            spawn_error(&cfg, &nf),
            (
                "command [nonexistent-cmd] exited: exec: \"nonexistent-cmd\": executable file not found in $PATH".into(),
                1
            )
        );
        cfg.personality = Personality::Nsnet;
        assert_eq!(spawn_error(&cfg, &nf).1, 127);
    }
}
