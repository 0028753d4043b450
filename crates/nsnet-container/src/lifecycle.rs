//! The container lifecycle: finding (or starting) the nsnet instance a container runs in,
//! joining its namespaces, preparing a container (record, files, bundle), starting it detached
//! or in the foreground, stopping it and removing it with everything it set up.
//!
//! Process model (design.md sections 1 and 2): the front end finds the running nsnet instance
//! as every front end does (`nsnet_ns::instance`: `--state-dir`, `$NSNET_STATE_DIR`,
//! `$ROOTLESSKIT_STATE_DIR`, else the default one at `$XDG_RUNTIME_DIR/nsnet/default`, or
//! `$TMPDIR/nsnet-UID/default` without XDG_RUNTIME_DIR), and starts the default as a daemon on
//! first use: `nsnet run --net=builtin --disable-host-loopback --detach-netns --port-driver=builtin`
//! around an idle command. It then joins the instance's user and mount namespaces (while
//! single-threaded) and runs runc there, where runc is root. runc creates the container's own
//! namespaces; the network comes from OCI hooks ([`crate::hook`]) that enter the child netns.
//! The monitor ([`crate::monitor`]) waits for runc and records the exit.
//!
//! The nsnet binary is a parameter ([`Ctx::exe`]): the hooks, the monitor and the default
//! instance are that binary run again, and this layer never names the crate that builds it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bundle::{self, HookCmd};
use crate::publish::Publish;
use crate::store::{self, Config, Container, Status, Store};
use crate::{Error, image, monitor, rootfs, runtime, time, wait};

/// What every lifecycle operation runs with.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The nsnet binary: run again as the hooks, the monitor and the default instance.
    pub exe: PathBuf,
}

// ---------------------------------------------------------------------------------------
// The instance.

/// A running nsnet instance whose API answers.
#[derive(Debug)]
pub struct Instance {
    pub state_dir: PathBuf,
    pub found: nsnet_ns::instance::Instance,
    /// The DNS server its network offers containers.
    pub dns: Option<String>,
    /// Its network routes IPv6 (`networkDriver.ipv6`).
    pub ipv6: bool,
}

/// Where the default instance and runc's state live (`nsnet_ns::instance::default_base`,
/// which every front end's search ends at).
pub fn runtime_base() -> PathBuf {
    nsnet_ns::instance::default_base()
}

/// `GET /v1/info` over the socket, synchronously: no runtime may start before the namespaces
/// are joined.
fn probe(state_dir: &Path) -> Option<Value> {
    let mut s = std::os::unix::net::UnixStream::connect(state_dir.join("api.sock")).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /v1/info HTTP/1.1\r\nHost: rootlesskit\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// The instance at `state_dir` if it answers.
pub fn instance_at(state_dir: &Path) -> Option<Instance> {
    let found =
        nsnet_ns::instance::Instance::at(state_dir, nsnet_ns::instance::Source::Given).ok()?;
    let info = probe(state_dir)?;
    let dns = info["networkDriver"]["dns"][0].as_str().map(String::from);
    let ipv6 = info["networkDriver"]["ipv6"].as_bool().unwrap_or(false);
    Some(Instance {
        state_dir: found.state_dir().to_path_buf(),
        found,
        dns,
        ipv6,
    })
}

/// The instance to use, found in `nsnet_ns::instance`'s order (given, `$NSNET_STATE_DIR`,
/// `$ROOTLESSKIT_STATE_DIR`, the default); starts the default one when `start` and none runs.
pub fn instance(ctx: &Ctx, given: Option<&Path>, start: bool) -> Result<Instance, Error> {
    use nsnet_ns::instance::Source;
    let (dir, source) = nsnet_ns::instance::locate_dir(given);
    if let Some(i) = instance_at(&dir) {
        return Ok(i);
    }
    if source != Source::Default {
        return Err(Error::Instance(format!(
            "no nsnet instance answers at {} (chosen by {source}); start one with `nsnet run --detach-netns --port-driver=builtin --state-dir={} …`",
            dir.display(),
            dir.display()
        )));
    }
    if !start {
        return Err(Error::Instance(format!(
            "the default nsnet instance ({}) is not running; `nsnet container run` starts it",
            dir.display()
        )));
    }
    start_default(ctx, &runtime_base(), &dir)
}

/// Starts the default instance as a daemon and waits until its API answers.
pub fn start_default(ctx: &Ctx, base: &Path, dir: &Path) -> Result<Instance, Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(base).map_err(Error::io(format!("create {}", base.display())))?;
    let _ = std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o700));
    // One starter at a time; the loser finds the winner's instance.
    let lock_path = base.join("default.start.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(Error::io(format!("create {}", lock_path.display())))?;
    let _lock =
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::io(format!("lock {}", lock_path.display()))(std::io::Error::from(e))
        })?;
    if let Some(i) = instance_at(dir) {
        return Ok(i);
    }
    let log = base.join("default.log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(Error::io(format!("open {}", log.display())))?;
    let mut cmd = Command::new(&ctx.exe);
    cmd.args([
        "run",
        "--net=builtin",
        // As rootless Docker and containerd-rootless.sh do: containers do not reach the user's
        // loopback services through the gateway.
        "--disable-host-loopback",
        "--detach-netns",
        "--port-driver=builtin",
    ])
    .arg(format!("--state-dir={}", dir.display()))
    .arg("--")
    .arg(&ctx.exe)
    .args(["internal", "idle"])
    .stdin(Stdio::null())
    .stdout(out.try_clone().map_err(Error::io("duplicate the log"))?)
    .stderr(out);
    // SAFETY: setsid is async-signal-safe; the daemon leaves our session and terminal.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(Error::io(format!("start {}", ctx.exe.display())))?;
    let pid_path = base.join("default.pid");
    std::fs::write(&pid_path, format!("{}\n", child.id()))
        .map_err(Error::io(format!("write {}", pid_path.display())))?;
    let exited = wait::pidfd(child.id() as i32);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Some(i) = instance_at(dir) {
            return Ok(i);
        }
        // The instance has no readiness descriptor of its own: its API answering is the
        // signal, looked at every 20 ms unless it exits first.
        let dead = match &exited {
            Some(fd) => wait::exited(fd, Some(Duration::from_millis(20))).unwrap_or(false),
            None => true,
        };
        if dead && let Ok(Some(st)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let last = tail.lines().rev().find(|l| !l.is_empty()).unwrap_or("");
            return Err(Error::Instance(format!(
                "the default nsnet instance exited at start ({st}): {last} (log: {})",
                log.display()
            )));
        }
    }
    Err(Error::Instance(format!(
        "the default nsnet instance did not answer within 20 s (log: {})",
        log.display()
    )))
}

/// Joins the instance's user and mount namespaces (those that differ from ours). After this
/// the current directory is the namespace's root: callers resolve relative paths first.
pub fn join(inst: &Instance) -> Result<(), Error> {
    use nsnet_ns::nsfs::NsType;
    inst.found
        .join(&[NsType::User, NsType::Mnt])
        .map_err(|e| Error::Instance(e.to_string()))
}

// ---------------------------------------------------------------------------------------
// run.

/// What `nsnet container run` asks for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub detach: bool,
    pub name: Option<String>,
    pub publish: Vec<String>,
    pub network: String,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub auto_remove: bool,
    pub tty: bool,
    pub hostname: Option<String>,
    pub rootfs: Option<PathBuf>,
    /// IMAGE then COMMAND, or only COMMAND with `rootfs`.
    pub rest: Vec<String>,
    /// The OCI runtime (default: runc from PATH).
    pub runtime: Option<PathBuf>,
    /// The instance's state directory (default: `$NSNET_STATE_DIR`, else the default instance).
    pub state_dir: Option<PathBuf>,
    /// Outbound connects on host sockets (seccomp user notification, [`crate::bypass`]).
    pub bypass: bool,
}

fn split_env(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Image env, then `-e` (which overrides by name; a bare `-e NAME` takes ours).
fn merge_env(image: &[String], given: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut put = |kv: String| {
        let k = split_env(&kv).to_string();
        out.retain(|e| split_env(e) != k);
        out.push(kv);
    };
    for e in image.iter().chain(extra) {
        put(e.clone());
    }
    for e in given {
        if e.contains('=') {
            put(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            put(format!("{e}={v}"));
        }
    }
    if !out.iter().any(|e| split_env(e) == "PATH") {
        out.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    out
}

/// The environment the hooks run with (runc gives them only what the spec lists): what finds
/// the user's data dir and the programs the network layer may run.
fn hook_env() -> Vec<String> {
    [
        "PATH",
        "HOME",
        "XDG_DATA_HOME",
        "XDG_RUNTIME_DIR",
        "TMPDIR",
        "RUST_LOG",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
    .collect()
}

/// A container prepared to start: its record, files and bundle written, the instance joined.
pub struct Prepared {
    pub container: Container,
    pub instance: Instance,
}

/// Checks `o`, finds (or starts) the instance, records the container, joins the instance and
/// writes the container's files and bundle (unpacking its image). A failure after the record
/// was made removes it again.
pub fn prepare(ctx: &Ctx, store: &Store, o: &RunOptions) -> Result<Prepared, Error> {
    prepare_with(ctx, store, o, || {
        instance(ctx, o.state_dir.as_deref(), true)
    })
}

/// [`prepare`], with the instance found by `find` once the options are checked.
fn prepare_with(
    ctx: &Ctx,
    store: &Store,
    o: &RunOptions,
    find: impl FnOnce() -> Result<Instance, Error>,
) -> Result<Prepared, Error> {
    let publish = o
        .publish
        .iter()
        .map(|p| Publish::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let network = o.network.clone();
    let networked = !matches!(network.as_str(), "none" | "host");
    if !networked && !publish.is_empty() {
        return Err(Error::Invalid(format!(
            "-p needs a bridge network; --network {network} has no address to publish to"
        )));
    }
    let (image_arg, command): (Option<String>, Vec<String>) = match &o.rootfs {
        Some(_) => (None, o.rest.clone()),
        None => {
            let mut it = o.rest.clone().into_iter();
            let img = it.next().ok_or_else(|| {
                Error::Invalid(
                    "give an IMAGE (OCI layout directory or image archive) or --rootfs DIR".into(),
                )
            })?;
            (Some(img), it.collect())
        }
    };
    // Paths are resolved before joining the mount namespace (which resets the cwd).
    let not_dir = |r: &Path| Error::Invalid(format!("--rootfs {}: not a directory", r.display()));
    let rootfs_dir = match &o.rootfs {
        Some(r) => {
            let c = std::fs::canonicalize(r).map_err(|e| Error::Io {
                what: format!("--rootfs {}: not a directory", r.display()),
                source: e,
            })?;
            if !c.is_dir() {
                return Err(not_dir(&c));
            }
            Some(c)
        }
        None => None,
    };
    let image_path = image_arg
        .as_ref()
        .map(|i| {
            std::fs::canonicalize(i).map_err(|e| Error::Io {
                what: format!("image {i}: no such file or directory (nsnet runs local images: an OCI layout directory or a `docker save`/`podman save` archive; or use --rootfs DIR)"),
                source: e,
            })
        })
        .transpose()?;
    if o.bypass && !networked {
        return Err(Error::Invalid(format!(
            "--bypass needs a container network (bridge or one made by `nsnet network create`); --network {network} has nothing to bypass"
        )));
    }
    let runtime = runtime::find(o.runtime.as_deref())?;
    let inst = find()?;
    let id = store::new_id()?;
    let hostname = o.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let config = Config {
        id: id.clone(),
        name: o
            .name
            .clone()
            .unwrap_or_else(|| format!("nsnet-{}", &id[..8])),
        image: rootfs_dir
            .as_ref()
            .or(image_path.as_ref())
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        created: time::now(),
        args: Vec::new(),
        env: Vec::new(),
        cwd: String::new(),
        hostname: hostname.clone(),
        network: network.clone(),
        publish,
        instance: inst.state_dir.clone(),
        runtime,
        runtime_root: runtime_base().join("runc"),
        rootfs: rootfs_dir
            .clone()
            .unwrap_or_else(|| store.root.join(&id).join("rootfs")),
        auto_remove: o.auto_remove,
        detached: o.detach,
        tty: o.tty,
        bypass: o.bypass,
    };
    let mut c = store.create(config)?;
    join(&inst)?;
    let prepared = (|| -> Result<(), Error> {
        let img = match &image_path {
            Some(p) => image::unpack(p, &c.config.rootfs, &c.dir.join("image.tmp"))?,
            None => image::ImageConfig::default(),
        };
        let mut args: Vec<String> = img.entrypoint.clone();
        args.extend(if command.is_empty() {
            img.cmd.clone()
        } else {
            command.clone()
        });
        if args.is_empty() {
            return Err(Error::Invalid(
                "no command: give one after the image (the image has no Cmd or Entrypoint)".into(),
            ));
        }
        let mut extra = vec![format!("HOSTNAME={hostname}")];
        if o.tty {
            extra.push("TERM=xterm".into());
        }
        c.config.env = merge_env(&img.env, &o.env, &extra);
        c.config.args = args;
        c.config.cwd = o
            .workdir
            .clone()
            .or(Some(img.working_dir).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        crate::write_atomic(
            &c.dir.join("container.json"),
            &serde_json::to_vec_pretty(&c.config).expect("serializes"),
        )?;
        let resolv = match network.as_str() {
            "none" => String::new(),
            "host" => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            _ => format!(
                "nameserver {}\n",
                inst.dns.clone().unwrap_or_else(|| "10.0.2.3".into())
            ),
        };
        let write = |name: &str, text: String| {
            let p = c.dir.join(name);
            std::fs::write(&p, text).map_err(Error::io(format!("write {}", p.display())))
        };
        write("resolv.conf", resolv)?;
        write("hostname", format!("{hostname}\n"))?;
        write("hosts", bundle::hosts_file(&hostname, None))?;
        let etc_files: Vec<(String, PathBuf)> = ["hosts", "resolv.conf", "hostname"]
            .iter()
            .map(|f| (format!("/etc/{f}"), c.dir.join(f)))
            .collect();
        // A --rootfs directory is the user's: runc runs on an overlay of it, never in it.
        let root = match &rootfs_dir {
            Some(dir) => {
                let files: Vec<&str> = etc_files.iter().map(|(d, _)| d.as_str()).collect();
                rootfs::mount(&c.dir, dir, &files)?
            }
            None => c.config.rootfs.clone(),
        };
        let hook = |phase: &str| HookCmd {
            path: ctx.exe.clone(),
            args: vec![
                "nsnet".into(),
                "internal".into(),
                "oci-hook".into(),
                phase.into(),
                format!("--container-dir={}", c.dir.display()),
                format!("--state-dir={}", inst.state_dir.display()),
            ],
            env: hook_env(),
        };
        bundle::write(
            &c.bundle(),
            &bundle::Options {
                args: c.config.args.clone(),
                env: c.config.env.clone(),
                cwd: c.config.cwd.clone(),
                terminal: o.tty,
                hostname: hostname.clone(),
                rootfs: root,
                own_netns: network != "host",
                etc_files,
                hooks: networked.then(|| (hook("createRuntime"), hook("postStop"))),
                seccomp: o.bypass.then(|| {
                    nsnet_bypass::profile::seccomp(
                        &crate::bypass::socket_path(&c),
                        !crate::bypass::published_tcp(&c).is_empty(),
                    )
                }),
            },
        )
    })();
    if let Err(e) = prepared {
        let _ = store.remove(&c);
        return Err(e);
    }
    Ok(Prepared {
        container: c,
        instance: inst,
    })
}

/// The line of a failed start's log that says why: a hook's own message when runc wraps one
/// (`… error running hook #0: …, stderr: nsnet: oci-hook createRuntime: …"`), else the last line.
fn failure_line(log: &str) -> String {
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    match last.find("nsnet: oci-hook ") {
        Some(i) => last[i..]
            .trim_end_matches('"')
            .trim_end_matches("\\n")
            .replace("\\\"", "\"")
            .to_string(),
        None => last.to_string(),
    }
}

/// How long a detached container may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a prepared container detached: its monitor (`nsnet internal container-monitor`, in
/// its own session, output to the log) runs runc, and says over a pipe when the container
/// runs. Returns the container's id once it runs — or ran: a command over at once is a run,
/// not a failure. A container that never started is removed, and the error says why.
pub fn start_detached(ctx: &Ctx, store: &Store, p: Prepared) -> Result<String, Error> {
    let Prepared {
        container: mut c,
        instance: inst,
    } = p;
    let log = std::fs::File::create(c.log_path())
        .map_err(Error::io(format!("create {}", c.log_path().display())))?;
    let (ready_r, ready_w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("create the monitor's ready pipe")(std::io::Error::from(e)))?;
    let mut cmd = Command::new(&ctx.exe);
    cmd.args(["internal", "container-monitor", "--ready-fd=3"])
        .arg(&c.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(Error::io("duplicate the log"))?)
        .stderr(log);
    let w = ready_w.as_raw_fd();
    // SAFETY: setsid and dup2 are async-signal-safe; dup2 leaves fd 3 without O_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::dup2(w, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut monitor = cmd
        .spawn()
        .map_err(Error::io("start the container monitor"))?;
    drop(ready_w);
    let mut ready = std::fs::File::from(ready_r);
    let running = match wait::poll(&[ready.as_fd()], Some(START_TIMEOUT)) {
        Ok(Some(_)) => {
            let mut b = [0u8; 1];
            matches!(ready.read(&mut b), Ok(1) if b[0] == monitor::READY)
        }
        Ok(None) => {
            return Err(Error::Invalid(format!(
                "container {} did not start within {} s; see `nsnet container logs {}`",
                &c.id()[..12],
                START_TIMEOUT.as_secs(),
                c.config.name
            )));
        }
        Err(e) => return Err(Error::io("wait for the container monitor")(e)),
    };
    if running {
        return Ok(c.id().to_string());
    }
    // EOF: the monitor is done, without the container ever running — or after a short one.
    let _ = monitor.wait();
    if c.reload().is_err() || c.state.started > 0.0 {
        // Gone: its monitor already removed it (--rm), so it ran and is done.
        return Ok(c.id().to_string());
    }
    let text = std::fs::read_to_string(c.log_path()).unwrap_or_default();
    let last = failure_line(&text);
    let id = c.id().to_string();
    let _ = remove(ctx, store, c, &inst);
    Err(Error::Invalid(format!(
        "container {} failed to start: {last}",
        &id[..12]
    )))
}

/// Runs a prepared container in the foreground (this process is its monitor) and returns its
/// exit code; removes it afterwards with `--rm`, or when it never started (runc said why on
/// stderr). The caller decides what terminal signals do to this process.
pub fn run_foreground(ctx: &Ctx, store: &Store, p: Prepared) -> Result<i32, Error> {
    let Prepared {
        container: mut c,
        instance: inst,
    } = p;
    let code = monitor::supervise(
        &mut c,
        (Stdio::inherit(), Stdio::inherit(), Stdio::inherit()),
        false,
        None,
    )?;
    if c.config.auto_remove || c.state.started == 0.0 {
        remove(ctx, store, c, &inst)?;
    }
    Ok(code)
}

// ---------------------------------------------------------------------------------------
// stop, rm, logs.

/// Stops a running container: SIGTERM to its init, SIGKILL after `grace`, then waits for its
/// monitor to record the exit (runc has run the postStop hook by then).
pub fn stop(c: &mut Container, grace: Duration) -> Result<(), Error> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let name = c.config.name.clone();
    let waited = |e| Error::io(format!("wait for container {name}"))(e);
    if c.status() == Status::Running {
        let pid = Pid::from_raw(c.state.pid);
        let _ = kill(pid, Signal::SIGTERM);
        let gone = |t| wait::gone(c.state.pid, || c.alive(), t);
        if !gone(grace).map_err(&waited)? {
            let _ = kill(pid, Signal::SIGKILL);
            if !gone(Duration::from_secs(10)).map_err(&waited)? {
                return Err(Error::Invalid(format!(
                    "container {} did not exit after SIGKILL",
                    c.config.name
                )));
            }
        }
    }
    // The monitor records the exit once runc has cleaned up (postStop included).
    let m = c.state.monitor_pid;
    wait::gone(
        m,
        || store::start_time(m).is_some(),
        Duration::from_secs(15),
    )
    .map_err(waited)?;
    c.reload()
}

/// Removes a stopped container: runc's state, the network (the postStop hook, run by hand
/// when runc could not — a crash), the overlay and the files. The caller has joined the
/// instance.
pub fn remove(ctx: &Ctx, store: &Store, c: Container, inst: &Instance) -> Result<(), Error> {
    runtime::delete(&c)?;
    // Left behind only by a monitor that was killed.
    let _ = std::fs::remove_file(crate::bypass::socket_path(&c));
    if store::load_net(&c.dir)?.is_some() {
        post_stop_by_hand(ctx, &c, inst)?;
    }
    store.remove(&c)
}

fn post_stop_by_hand(ctx: &Ctx, c: &Container, inst: &Instance) -> Result<(), Error> {
    let mut hook = Command::new(&ctx.exe)
        .args(["internal", "oci-hook", "postStop"])
        .arg(format!("--container-dir={}", c.dir.display()))
        .arg(format!("--state-dir={}", inst.state_dir.display()))
        .stdin(Stdio::piped())
        .spawn()
        .map_err(Error::io("run the postStop hook"))?;
    let state = json!({"ociVersion": "1.0.2", "id": c.id(), "status": "stopped", "pid": 0});
    let sent = hook
        .stdin
        .take()
        .expect("piped")
        .write_all(state.to_string().as_bytes());
    let ok = hook.wait().map(|s| s.success()).unwrap_or(false);
    if sent.is_err() || !ok {
        return Err(Error::Invalid(format!(
            "could not clean up the network of container {}; its record is kept, retry `nsnet container rm`",
            c.config.name
        )));
    }
    Ok(())
}

/// The instance for removing `first` (the first of the containers to remove): the given one,
/// else the container's own if it still answers, else the default (started if need be).
pub fn instance_for_rm(
    ctx: &Ctx,
    given: Option<&Path>,
    first: &Container,
) -> Result<Instance, Error> {
    match given {
        Some(d) => instance(ctx, Some(d), false),
        None => match instance_at(&first.config.instance) {
            Some(i) => Ok(i),
            None => instance(ctx, None, true),
        },
    }
}

/// Copies a detached container's log to `out`; with `follow`, until the container exits.
/// `key` is how the user named it.
pub fn logs(key: &str, c: &mut Container, follow: bool, out: &mut dyn Write) -> Result<(), Error> {
    let path = c.log_path();
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(format!(
                "container {key} ran in the foreground: its output went to the terminal, there is no log"
            )));
        }
        Err(e) => return Err(Error::io(format!("open {}", path.display()))(e)),
    };
    let io = |what: &str| Error::io(format!("{what} {}", path.display()));
    let mut buf = vec![0u8; 64 * 1024];
    let mut copy = |f: &mut std::fs::File, out: &mut dyn Write| -> Result<usize, Error> {
        let n = f.read(&mut buf).map_err(io("read"))?;
        out.write_all(&buf[..n]).map_err(io("copy"))?;
        out.flush().map_err(io("copy"))?;
        Ok(n)
    };
    if !follow {
        while copy(&mut f, out)? > 0 {}
        return Ok(());
    }
    // Woken by the log growing, by state.json being replaced, or by the exit of the monitor or
    // of the container's init (either may die without the other writing anything).
    let watch = wait::Watch::new().map_err(io("watch"))?;
    watch.modified(&path).map_err(io("watch"))?;
    watch.dir_entries(&c.dir).map_err(io("watch"))?;
    let mut pids: Vec<OwnedFd> = [c.state.monitor_pid, c.state.pid]
        .into_iter()
        .filter_map(wait::pidfd)
        .collect();
    loop {
        if copy(&mut f, out)? > 0 {
            continue;
        }
        c.reload()?;
        if c.status() != Status::Running && c.state.status != Status::Created {
            // Drain what the exit left behind, then stop.
            copy(&mut f, out)?;
            return Ok(());
        }
        let mut fds = vec![watch.fd()];
        fds.extend(pids.iter().map(|p| p.as_fd()));
        match wait::poll(&fds, None).map_err(io("wait for"))? {
            Some(0) | None => watch.drain(),
            Some(i) => {
                pids.remove(i - 1);
            }
        }
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
