//! `nsnet container run|ps|inspect|exec|logs|stop|rm`: the container front end, and the two
//! processes it starts (`nsnet internal container-monitor`, `nsnet internal idle`).
//!
//! Process model (design.md sections 1 and 2): the front end finds the running nsnet instance —
//! `--state-dir`, `$NSNET_STATE_DIR`, else the default one at `$XDG_RUNTIME_DIR/nsnet/default`
//! (`$TMPDIR/nsnet-UID/default` without XDG_RUNTIME_DIR), which it starts as a daemon on first
//! use: `nsnet run --net=builtin --disable-host-loopback --detach-netns --port-driver=builtin`
//! around an idle command.
//! It then joins the instance's user and mount namespaces (while single-threaded: no runtime
//! has started) and runs runc there, where runc is root. runc creates the container's own
//! namespaces; the network comes from OCI hooks (`nsnet internal oci-hook`, see
//! `nsnet_container::hook`) that enter the child netns.
//!
//! Each container has a monitor: the process that waits for `runc run` and records the exit.
//! Detached (`-d`), it is `nsnet internal container-monitor` in its own session with stdout and
//! stderr on the container's log; in the foreground it is the front end itself.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nsnet_container::bundle::{self, HookCmd};
use nsnet_container::publish::Publish;
use nsnet_container::store::{self, Config, Container, Status, Store};
use nsnet_container::{hook, image, template, time};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct ContainerArgs {
    /// State directory of the nsnet instance to use (default: $NSNET_STATE_DIR, else the
    /// default instance, started on first use)
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The OCI runtime (default: runc from PATH)
    #[arg(long, global = true, value_name = "PATH")]
    runtime: Option<PathBuf>,
    #[command(subcommand)]
    cmd: ContainerCmd,
}

#[derive(Debug, clap::Subcommand)]
enum ContainerCmd {
    /// Run a command in a new container: IMAGE (an OCI image layout directory or a
    /// `docker save`/`podman save` archive) or --rootfs DIR, then the command
    Run(RunArgs),
    /// List containers
    #[command(alias = "ls")]
    Ps {
        /// All containers (default: running ones)
        #[arg(short, long)]
        all: bool,
        /// Only ids
        #[arg(short, long)]
        quiet: bool,
        /// Full ids and commands
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show containers as JSON
    Inspect {
        /// A Go-template with field paths, e.g. '{{.State.Pid}}'
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true, value_name = "CONTAINER")]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec {
        /// Keep stdin open (it always is)
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal
        #[arg(short, long)]
        tty: bool,
        /// Environment variables (K=V)
        #[arg(short, long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Working directory inside the container
        #[arg(short, long, value_name = "DIR")]
        workdir: Option<String>,
        container: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print a container's output (detached containers)
    Logs {
        /// Follow until the container exits
        #[arg(short, long)]
        follow: bool,
        container: String,
    },
    /// Stop containers: SIGTERM, then SIGKILL after the timeout
    Stop {
        /// Seconds to wait before SIGKILL
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        #[arg(required = true, value_name = "CONTAINER")]
        containers: Vec<String>,
    },
    /// Remove containers (their network attachment, published ports and files)
    Rm {
        /// Kill running containers first
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_name = "CONTAINER")]
        containers: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    name: Option<String>,
    /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]
    #[arg(short, long = "publish", value_name = "SPEC")]
    publish: Vec<String>,
    /// bridge (default), none, host, or a network made with `nsnet network create`
    #[arg(long = "network", alias = "net", default_value = "bridge")]
    network: String,
    /// Environment variables (K=V)
    #[arg(short, long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Keep stdin open (it always is in the foreground)
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a terminal
    #[arg(short, long)]
    tty: bool,
    /// Hostname (default: the first 12 digits of the id)
    #[arg(long)]
    hostname: Option<String>,
    /// A root filesystem directory to run instead of an image
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// IMAGE then COMMAND (or only COMMAND with --rootfs)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE|COMMAND"
    )]
    rest: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The instance.

/// A running nsnet instance.
struct Instance {
    state_dir: PathBuf,
    child_pid: i32,
    dns: Option<String>,
}

/// Where the default instance and runc's state live: `$XDG_RUNTIME_DIR/nsnet`, else
/// `$TMPDIR/nsnet-UID` (both searched by `nsnet port`).
pub fn runtime_base() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("nsnet"),
        None => std::env::temp_dir().join(format!("nsnet-{}", nix::unistd::geteuid())),
    }
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

fn instance_at(state_dir: &Path) -> Option<Instance> {
    let info = probe(state_dir)?;
    let child_pid = std::fs::read_to_string(state_dir.join("child_pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let dns = info["networkDriver"]["dns"][0].as_str().map(String::from);
    Some(Instance {
        state_dir: state_dir.to_path_buf(),
        child_pid,
        dns,
    })
}

/// The instance to use; starts the default one when `start` and none runs.
fn instance(given: Option<&Path>, start: bool) -> anyhow::Result<Instance> {
    let given = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("NSNET_STATE_DIR").map(PathBuf::from));
    if let Some(d) = given {
        return instance_at(&d).ok_or_else(|| {
            anyhow!(
                "no nsnet instance answers at {}; start one with `nsnet run --detach-netns --port-driver=builtin --state-dir={} …`",
                d.display(),
                d.display()
            )
        });
    }
    let base = runtime_base();
    let dir = base.join("default");
    if let Some(i) = instance_at(&dir) {
        return Ok(i);
    }
    if !start {
        bail!(
            "the default nsnet instance ({}) is not running; `nsnet container run` starts it",
            dir.display()
        );
    }
    start_default(&base, &dir)
}

/// Starts the default instance as a daemon and waits until its API answers.
fn start_default(base: &Path, dir: &Path) -> anyhow::Result<Instance> {
    std::fs::create_dir_all(base).with_context(|| format!("create {}", base.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o700));
    // One starter at a time; the loser finds the winner's instance.
    let lock = std::fs::File::create(base.join("default.start.lock"))
        .with_context(|| format!("create {}", base.join("default.start.lock").display()))?;
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map(|_lock| {
            let mut started = None;
            if let Some(i) = instance_at(dir) {
                return Ok(i);
            }
            let exe = std::env::current_exe().context("find the nsnet binary")?;
            let log = base.join("default.log");
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .with_context(|| format!("open {}", log.display()))?;
            let mut cmd = Command::new(&exe);
            cmd.args([
                "run",
                "--net=builtin",
                // As rootless Docker and containerd-rootless.sh do: containers do not reach
                // the user's loopback services through the gateway.
                "--disable-host-loopback",
                "--detach-netns",
                "--port-driver=builtin",
            ])
            .arg(format!("--state-dir={}", dir.display()))
            .arg("--")
            .arg(&exe)
            .args(["internal", "idle"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
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
                .with_context(|| format!("start {}", exe.display()))?;
            std::fs::write(base.join("default.pid"), format!("{}\n", child.id()))?;
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(20) {
                if let Some(i) = instance_at(dir) {
                    started = Some(i);
                    break;
                }
                if let Ok(Some(st)) = child.try_wait() {
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    let last = tail.lines().rev().find(|l| !l.is_empty()).unwrap_or("");
                    bail!(
                        "the default nsnet instance exited at start ({st}): {last} (log: {})",
                        log.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            started.ok_or_else(|| {
                anyhow!(
                    "the default nsnet instance did not answer within 20 s (log: {})",
                    log.display()
                )
            })
        })
        .map_err(|(_, e)| anyhow!("lock {}: {e}", base.join("default.start.lock").display()))?
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Joins the instance's user and mount namespaces (those that differ from ours). After this
/// the current directory is the namespace's root: callers resolve relative paths first.
fn join(inst: &Instance) -> anyhow::Result<()> {
    if threads() > 1 {
        bail!("internal error: the container front end must join namespaces while single-threaded");
    }
    let mut open = Vec::new();
    for (kind, flag) in [
        ("user", nix::sched::CloneFlags::CLONE_NEWUSER),
        ("mnt", nix::sched::CloneFlags::CLONE_NEWNS),
    ] {
        let theirs = format!("/proc/{}/ns/{kind}", inst.child_pid);
        if std::fs::read_link(&theirs).ok()
            == std::fs::read_link(format!("/proc/self/ns/{kind}")).ok()
        {
            continue;
        }
        let f = std::fs::File::open(&theirs).with_context(|| {
            format!(
                "open {theirs} (the nsnet instance at {} may have exited)",
                inst.state_dir.display()
            )
        })?;
        open.push((kind, flag, f));
    }
    for (kind, flag, f) in &open {
        nix::sched::setns(f.as_fd(), *flag).with_context(|| {
            format!(
                "join the {kind} namespace of the nsnet instance at {}",
                inst.state_dir.display()
            )
        })?;
    }
    Ok(())
}

fn find_runtime(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if p.is_file() {
            return Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
        }
        bail!("the runtime {} does not exist", p.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for d in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
    {
        let c = d.join("runc");
        if c.is_file() {
            return Ok(c);
        }
    }
    bail!(
        "runc not found in PATH; install it (Debian: apt-get install runc) or pass --runtime PATH"
    )
}

// ---------------------------------------------------------------------------------------
// Entry points.

pub fn main(args: ContainerArgs) -> i32 {
    let r = match args.cmd {
        ContainerCmd::Run(r) => run(r, args.state_dir.as_deref(), args.runtime.as_deref()),
        ContainerCmd::Ps {
            all,
            quiet,
            no_trunc,
        } => ps(all, quiet, no_trunc).map(|()| 0),
        ContainerCmd::Inspect { format, containers } => inspect(format.as_deref(), &containers),
        ContainerCmd::Exec {
            tty,
            env,
            workdir,
            container,
            command,
            ..
        } => exec(&container, tty, &env, workdir.as_deref(), &command),
        ContainerCmd::Logs { follow, container } => logs(&container, follow).map(|()| 0),
        ContainerCmd::Stop { time, containers } => stop_all(&containers, time),
        ContainerCmd::Rm { force, containers } => rm(&containers, force, args.state_dir.as_deref()),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nsnet: error: {e:#}");
            1
        }
    }
}

fn stop_all(keys: &[String], secs: u64) -> anyhow::Result<i32> {
    let store = Store::default_location()?;
    let mut code = 0;
    for key in keys {
        let r = store
            .find(key)
            .map_err(anyhow::Error::from)
            .and_then(|mut c| stop(&mut c, Duration::from_secs(secs)));
        match r {
            Ok(()) => println!("{key}"),
            Err(e) => {
                eprintln!("nsnet: error: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
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

fn run(a: RunArgs, state_dir: Option<&Path>, runtime: Option<&Path>) -> anyhow::Result<i32> {
    let publish = a
        .publish
        .iter()
        .map(|p| Publish::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let network = a.network.clone();
    let networked = !matches!(network.as_str(), "none" | "host");
    if !networked && !publish.is_empty() {
        bail!("-p needs a bridge network; --network {network} has no address to publish to");
    }
    let (image_arg, command): (Option<String>, Vec<String>) = match &a.rootfs {
        Some(_) => (None, a.rest.clone()),
        None => {
            let mut it = a.rest.clone().into_iter();
            let img = it.next().ok_or_else(|| {
                anyhow!("give an IMAGE (OCI layout directory or image archive) or --rootfs DIR")
            })?;
            (Some(img), it.collect())
        }
    };
    // Paths are resolved before joining the mount namespace (which resets the cwd).
    let rootfs_dir = a
        .rootfs
        .as_ref()
        .map(|r| {
            std::fs::canonicalize(r)
                .with_context(|| format!("--rootfs {}: not a directory", r.display()))
        })
        .transpose()?;
    if let Some(r) = &rootfs_dir
        && !r.is_dir()
    {
        bail!("--rootfs {}: not a directory", r.display());
    }
    let image_path = image_arg
        .as_ref()
        .map(|i| {
            std::fs::canonicalize(i).with_context(|| {
                format!("image {i}: no such file or directory (nsnet runs local images: an OCI layout directory or a `docker save`/`podman save` archive; or use --rootfs DIR)")
            })
        })
        .transpose()?;
    let runtime = find_runtime(runtime)?;
    let exe = std::env::current_exe().context("find the nsnet binary")?;
    let store = Store::default_location()?;
    let inst = instance(state_dir, true)?;
    let id = store::new_id()?;
    let hostname = a.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let config = Config {
        id: id.clone(),
        name: a
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
        runtime: runtime.clone(),
        runtime_root: runtime_base().join("runc"),
        rootfs: rootfs_dir
            .clone()
            .unwrap_or_else(|| store.root.join(&id).join("rootfs")),
        auto_remove: a.rm,
        detached: a.detach,
        tty: a.tty,
    };
    let mut c = store.create(config)?;
    join(&inst)?;
    let prepared = (|| -> anyhow::Result<()> {
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
            bail!("no command: give one after the image (the image has no Cmd or Entrypoint)");
        }
        let mut extra = vec![format!("HOSTNAME={hostname}")];
        if a.tty {
            extra.push("TERM=xterm".into());
        }
        c.config.env = merge_env(&img.env, &a.env, &extra);
        c.config.args = args;
        c.config.cwd = a
            .workdir
            .clone()
            .or(Some(img.working_dir).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        nsnet_container::write_atomic(
            &c.dir.join("container.json"),
            &serde_json::to_vec_pretty(&c.config)?,
        )?;
        let resolv = match network.as_str() {
            "none" => String::new(),
            "host" => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            _ => format!(
                "nameserver {}\n",
                inst.dns.clone().unwrap_or_else(|| "10.0.2.3".into())
            ),
        };
        std::fs::write(c.dir.join("resolv.conf"), resolv)?;
        std::fs::write(c.dir.join("hostname"), format!("{hostname}\n"))?;
        std::fs::write(c.dir.join("hosts"), bundle::hosts_file(&hostname, None))?;
        let etc_files: Vec<(String, PathBuf)> = ["hosts", "resolv.conf", "hostname"]
            .iter()
            .map(|f| (format!("/etc/{f}"), c.dir.join(f)))
            .collect();
        // A --rootfs directory is the user's: runc runs on an overlay of it, never in it.
        let root = match &rootfs_dir {
            Some(dir) => {
                let files: Vec<&str> = etc_files.iter().map(|(d, _)| d.as_str()).collect();
                nsnet_container::rootfs::mount(&c.dir, dir, &files)?
            }
            None => c.config.rootfs.clone(),
        };
        let hook = |phase: &str| HookCmd {
            path: exe.clone(),
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
                terminal: a.tty,
                hostname: hostname.clone(),
                rootfs: root,
                own_netns: network != "host",
                etc_files,
                hooks: networked.then(|| (hook("createRuntime"), hook("postStop"))),
            },
        )?;
        Ok(())
    })();
    if let Err(e) = prepared {
        let _ = store.remove(&c);
        return Err(e);
    }
    if a.detach {
        let log = std::fs::File::create(c.log_path())
            .with_context(|| format!("create {}", c.log_path().display()))?;
        let mut cmd = Command::new(&exe);
        cmd.args(["internal", "container-monitor"])
            .arg(&c.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut monitor = cmd.spawn().context("start the container monitor")?;
        let t0 = Instant::now();
        loop {
            if c.reload().is_err() {
                // Its monitor already removed it (--rm): it ran and is done.
                let _ = monitor.wait();
                println!("{}", c.id());
                return Ok(0);
            }
            if c.state.status == Status::Running {
                println!("{}", c.id());
                return Ok(0);
            }
            if c.state.status == Status::Exited || monitor.try_wait()?.is_some() {
                let _ = monitor.wait();
                if c.reload().is_err() {
                    println!("{}", c.id());
                    return Ok(0);
                }
                let log = std::fs::read_to_string(c.log_path()).unwrap_or_default();
                let last = failure_line(&log);
                // Started and already done (a short command): that is a run, not a failure.
                if c.state.started > 0.0 {
                    println!("{}", c.id());
                    return Ok(0);
                }
                let id = c.id().to_string();
                let _ = remove(&store, c, &inst);
                bail!("container {} failed to start: {last}", &id[..12]);
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!(
                    "container {} did not start within 60 s; see `nsnet container logs {}`",
                    &c.id()[..12],
                    c.config.name
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Foreground: the front end is the monitor. Terminal signals reach runc too (same process
    // group), which forwards them to the container; here they must not cut the bookkeeping.
    extern "C" fn ignore(_: libc::c_int) {}
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: an empty handler; handlers (unlike SIG_IGN) are reset by execve in runc.
        unsafe {
            libc::signal(sig, ignore as *const () as libc::sighandler_t);
        }
    }
    let code = supervise(
        &mut c,
        Stdio::inherit(),
        Stdio::inherit(),
        Stdio::inherit(),
        false,
    )?;
    // It never started (runc said why on stderr): leave nothing behind.
    if c.config.auto_remove || c.state.started == 0.0 {
        remove(&store, c, &inst)?;
    }
    Ok(code)
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

fn runc(c: &Config) -> Command {
    let mut cmd = Command::new(&c.runtime);
    cmd.arg("--root").arg(&c.runtime_root);
    cmd
}

/// Runs `runc run` for `c` and waits: records running (with the PID runc reports) and the
/// exit. Returns the container's exit code (128+N for a signal).
fn supervise(c: &mut Container, i: Stdio, o: Stdio, e: Stdio, ctty: bool) -> anyhow::Result<i32> {
    let pid_file = c.dir.join("runc.pid");
    let _ = std::fs::remove_file(&pid_file);
    let mut cmd = runc(&c.config);
    if ctty {
        // runc's foreground terminal mode opens /dev/tty: give it a session whose controlling
        // terminal is the pty on its stdin.
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .arg("run")
        .arg("--bundle")
        .arg(c.bundle())
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(c.id())
        .stdin(i)
        .stdout(o)
        .stderr(e)
        .spawn()
        .with_context(|| format!("run {}", c.config.runtime.display()))?;
    c.state.monitor_pid = std::process::id() as i32;
    c.save_state()?;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if c.state.status != Status::Running
            && let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
        {
            c.state.status = Status::Running;
            c.state.pid = pid;
            c.state.pid_start = store::start_time(pid).unwrap_or(0);
            c.state.started = time::now();
            c.save_state()?;
            // Nothing more to poll for: wait for the exit.
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    c.reload()?;
    // runc writes the PID file once the container started (hooks included): a command that
    // was over before the poll above saw it still ran.
    if c.state.started == 0.0
        && let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    {
        c.state.pid = pid;
        c.state.started = time::now();
    }
    c.state.status = Status::Exited;
    c.state.exit_code = Some(code);
    c.state.finished = time::now();
    c.save_state()?;
    Ok(code)
}

/// A detached container with `-t`: runc gets a pty of the monitor's as its controlling
/// terminal (its foreground terminal mode needs one), and what the container writes to its
/// terminal is copied from the pty's master to the log (the monitor's stdout).
fn supervise_with_pty(c: &mut Container) -> anyhow::Result<i32> {
    let pty = nix::pty::openpty(None, None).context("open a pty for the container's terminal")?;
    let slave = std::fs::File::from(pty.slave);
    let (i, o, e) = (slave.try_clone()?, slave.try_clone()?, slave);
    let mut master = std::fs::File::from(pty.master);
    let copier = std::thread::spawn(move || {
        // Ends with EIO once the last slave descriptor (runc's, the container's) is closed.
        let mut out = std::io::stdout();
        let mut buf = [0u8; 8192];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = out.flush();
        }
    });
    let code = supervise(c, i.into(), o.into(), e.into(), true)?;
    let _ = copier.join();
    Ok(code)
}

/// `nsnet internal container-monitor DIR`: the detached container's monitor.
pub fn monitor(dir: &Path) -> i32 {
    let r = (|| -> anyhow::Result<i32> {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let store = Store {
            root: dir.parent().unwrap_or(Path::new("/")).to_path_buf(),
        };
        let mut c = store.load(&id)?;
        let code = if c.config.tty {
            supervise_with_pty(&mut c)?
        } else {
            supervise(
                &mut c,
                Stdio::null(),
                Stdio::inherit(),
                Stdio::inherit(),
                false,
            )?
        };
        if c.config.auto_remove {
            let inst = instance_at(&c.config.instance).ok_or_else(|| {
                anyhow!(
                    "the nsnet instance at {} is gone",
                    c.config.instance.display()
                )
            })?;
            remove(&store, c, &inst)?;
        }
        Ok(code)
    })();
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nsnet: monitor: {e:#}");
            1
        }
    }
}

/// Stops a running container: SIGTERM to its init, SIGKILL after `grace`, then waits for its
/// monitor to record the exit (runc has run the postStop hook by then).
fn stop(c: &mut Container, grace: Duration) -> anyhow::Result<()> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if c.status() == Status::Running {
        let pid = Pid::from_raw(c.state.pid);
        let _ = kill(pid, Signal::SIGTERM);
        let t0 = Instant::now();
        while c.alive() && t0.elapsed() < grace {
            std::thread::sleep(Duration::from_millis(20));
        }
        if c.alive() {
            let _ = kill(pid, Signal::SIGKILL);
        }
        let t0 = Instant::now();
        while c.alive() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if c.alive() {
            bail!("container {} did not exit after SIGKILL", c.config.name);
        }
    }
    // The monitor records the exit once runc has cleaned up (postStop included).
    let t0 = Instant::now();
    while store::start_time(c.state.monitor_pid).is_some() && t0.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    c.reload()?;
    Ok(())
}

/// Removes a stopped container: runc's state, the network (the postStop hook, run by hand
/// when runc could not — a crash), the files. The caller has joined the instance.
fn remove(store: &Store, c: Container, inst: &Instance) -> anyhow::Result<()> {
    let out = runc(&c.config)
        .args(["delete", "--force", c.id()])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", c.config.runtime.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !err.contains("does not exist") && !err.contains("not exist") {
        bail!(
            "runc delete {}: {}",
            &c.id()[..12],
            err.lines().last().unwrap_or("failed")
        );
    }
    if store::load_net(&c.dir)?.is_some() {
        let exe = std::env::current_exe().context("find the nsnet binary")?;
        let mut hook = Command::new(exe)
            .args(["internal", "oci-hook", "postStop"])
            .arg(format!("--container-dir={}", c.dir.display()))
            .arg(format!("--state-dir={}", inst.state_dir.display()))
            .stdin(Stdio::piped())
            .spawn()
            .context("run the postStop hook")?;
        let state = json!({"ociVersion": "1.0.2", "id": c.id(), "status": "stopped", "pid": 0});
        hook.stdin
            .take()
            .expect("piped")
            .write_all(state.to_string().as_bytes())?;
        if !hook.wait()?.success() {
            bail!(
                "could not clean up the network of container {}; its record is kept, retry `nsnet container rm`",
                c.config.name
            );
        }
    }
    store.remove(&c)?;
    Ok(())
}

fn rm(keys: &[String], force: bool, state_dir: Option<&Path>) -> anyhow::Result<i32> {
    let store = Store::default_location()?;
    let mut found = Vec::new();
    let mut code = 0;
    for k in keys {
        match store.find(k) {
            Ok(mut c) => {
                if c.status() == Status::Running {
                    if !force {
                        eprintln!(
                            "nsnet: error: container {k} is running; stop it first or use rm -f"
                        );
                        code = 1;
                        continue;
                    }
                    stop(&mut c, Duration::ZERO)?;
                }
                found.push((k.clone(), c));
            }
            Err(e) => {
                eprintln!("nsnet: error: {e}");
                code = 1;
            }
        }
    }
    if found.is_empty() {
        return Ok(code);
    }
    let inst = match state_dir {
        Some(d) => instance(Some(d), false)?,
        None => match instance_at(&found[0].1.config.instance) {
            Some(i) => i,
            None => instance(None, true)?,
        },
    };
    join(&inst)?;
    for (k, c) in found {
        match remove(&store, c, &inst) {
            Ok(()) => println!("{k}"),
            Err(e) => {
                eprintln!("nsnet: error: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn exec(
    key: &str,
    tty: bool,
    env: &[String],
    workdir: Option<&str>,
    command: &[String],
) -> anyhow::Result<i32> {
    let store = Store::default_location()?;
    let c = store.find(key)?;
    if c.status() != Status::Running {
        bail!("container {key} is not running");
    }
    let inst = instance_at(&c.config.instance).ok_or_else(|| {
        anyhow!(
            "the nsnet instance of container {key} ({}) is not running",
            c.config.instance.display()
        )
    })?;
    join(&inst)?;
    let mut cmd = runc(&c.config);
    cmd.arg("exec");
    if tty {
        cmd.arg("--tty");
    }
    if let Some(w) = workdir {
        cmd.arg("--cwd").arg(w);
    }
    for e in env {
        cmd.arg("--env").arg(e);
    }
    let err = cmd.arg(c.id()).args(command).exec();
    Err(anyhow!("run {}: {err}", c.config.runtime.display()))
}

fn logs(key: &str, follow: bool) -> anyhow::Result<()> {
    let store = Store::default_location()?;
    let mut c = store.find(key)?;
    let mut f = match std::fs::File::open(c.log_path()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "container {key} ran in the foreground: its output went to the terminal, there is no log"
            )
        }
        Err(e) => return Err(e).with_context(|| format!("open {}", c.log_path().display())),
    };
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            continue;
        }
        out.flush()?;
        if !follow {
            return Ok(());
        }
        c.reload()?;
        if c.status() != Status::Running && c.state.status != Status::Created {
            // Drain what the exit left behind, then stop.
            let n = f.read(&mut buf)?;
            out.write_all(&buf[..n])?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// ps and inspect.

fn status_text(c: &Container) -> String {
    let now = time::now();
    match c.status() {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", time::human(now - c.state.started)),
        Status::Exited => match (c.state.exit_code, c.state.finished) {
            (Some(code), f) if f > 0.0 => {
                format!("Exited ({code}) {} ago", time::human(now - f))
            }
            // Died without its monitor: the exit status is unknown.
            _ => "Exited (unknown)".into(),
        },
    }
}

fn ports_text(c: &Container) -> String {
    if c.status() != Status::Running {
        return String::new();
    }
    c.config
        .publish
        .iter()
        .map(Publish::display)
        .collect::<Vec<_>>()
        .join(", ")
}

fn command_text(c: &Container, full: bool) -> String {
    let cmd = c.config.args.join(" ");
    if full || cmd.chars().count() <= 20 {
        format!("\"{cmd}\"")
    } else {
        format!("\"{}…\"", cmd.chars().take(19).collect::<String>())
    }
}

/// Docker's `ps` layout: columns padded to the widest cell plus three spaces.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0) + 3)
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ps(all: bool, quiet: bool, no_trunc: bool) -> anyhow::Result<()> {
    let store = Store::default_location()?;
    let list: Vec<Container> = store
        .list()?
        .into_iter()
        .rev()
        .filter(|c| all || c.status() == Status::Running)
        .collect();
    let short = |id: &str| {
        if no_trunc {
            id.to_string()
        } else {
            id[..12.min(id.len())].to_string()
        }
    };
    if quiet {
        for c in &list {
            println!("{}", short(c.id()));
        }
        return Ok(());
    }
    let mut rows = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let now = time::now();
    for c in &list {
        rows.push(vec![
            short(c.id()),
            c.config.image.clone(),
            command_text(c, no_trunc),
            format!("{} ago", time::human(now - c.config.created)),
            status_text(c),
            ports_text(c),
            c.config.name.clone(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

/// Docker-shaped inspect JSON.
fn inspect_value(c: &Container) -> Value {
    let status = c.status();
    let running = status == Status::Running;
    let a = c
        .net
        .as_ref()
        .and_then(|n| n.attachment.clone())
        .filter(|_| running);
    let mut ports = serde_json::Map::new();
    for p in &c.config.publish {
        ports.insert(
            format!("{}/{}", p.container_port, p.proto),
            json!([{"HostIp": if p.host_ip.is_empty() {"0.0.0.0"} else {&p.host_ip}, "HostPort": p.host_port.to_string()}]),
        );
    }
    let mut networks = serde_json::Map::new();
    if let Some(a) = &a {
        networks.insert(
            a.network.clone(),
            json!({
                "IPAddress": a.ip.to_string(),
                "IPPrefixLen": a.prefix_len,
                "Gateway": a.gateway.map(|g| g.to_string()).unwrap_or_default(),
                "MacAddress": a.mac,
                "Bridge": a.bridge,
                "HostVeth": a.host_veth,
                "Interface": a.ifname,
            }),
        );
    }
    let pid = if running { c.state.pid } else { 0 };
    json!({
        "Id": c.id(),
        "Name": format!("/{}", c.config.name),
        "Created": time::rfc3339(c.config.created),
        "Path": c.config.args.first().cloned().unwrap_or_default(),
        "Args": c.config.args.get(1..).unwrap_or_default(),
        "Image": c.config.image,
        "State": {
            "Status": status.as_str(),
            "Running": running,
            "Pid": pid,
            "ExitCode": c.state.exit_code.unwrap_or(0),
            "StartedAt": time::rfc3339(c.state.started),
            "FinishedAt": time::rfc3339(c.state.finished),
        },
        "Config": {
            "Hostname": c.config.hostname,
            "Env": c.config.env,
            "Cmd": c.config.args,
            "WorkingDir": c.config.cwd,
            "Tty": c.config.tty,
        },
        "HostConfig": {
            "NetworkMode": c.config.network,
            "AutoRemove": c.config.auto_remove,
            "Runtime": c.config.runtime,
        },
        "NetworkSettings": {
            "SandboxKey": if running && c.config.network != "host" { format!("/proc/{pid}/ns/net") } else { String::new() },
            "IPAddress": a.as_ref().map(|a| a.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": a.as_ref().map(|a| a.prefix_len).unwrap_or(0),
            "Gateway": a.as_ref().and_then(|a| a.gateway).map(|g| g.to_string()).unwrap_or_default(),
            "MacAddress": a.as_ref().map(|a| a.mac.clone()).unwrap_or_default(),
            "Ports": ports,
            "Networks": networks,
        },
        "NsnetStateDir": c.config.instance,
        "LogPath": if c.config.detached { c.log_path().display().to_string() } else { String::new() },
    })
}

fn inspect(format: Option<&str>, keys: &[String]) -> anyhow::Result<i32> {
    let store = Store::default_location()?;
    let mut values = Vec::new();
    let mut code = 0;
    for k in keys {
        match store.find(k) {
            Ok(c) => values.push(inspect_value(&c)),
            Err(e) => {
                eprintln!("nsnet: error: {e}");
                code = 1;
            }
        }
    }
    match format {
        Some(f) => {
            for v in &values {
                println!("{}", template::render(f, v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&values)?),
    }
    Ok(code)
}

// ---------------------------------------------------------------------------------------
// Internal entry points.

/// `nsnet internal oci-hook PHASE`.
pub fn oci_hook(phase: &str, container_dir: &Path, state_dir: &Path) -> i32 {
    let r = match phase {
        "createRuntime" => {
            hook::read_state().and_then(|s| hook::create_runtime(container_dir, state_dir, &s))
        }
        "postStop" => hook::read_state().and_then(|_| hook::post_stop(container_dir, state_dir)),
        other => Err(nsnet_container::Error::Invalid(format!(
            "unknown hook phase {other:?}: createRuntime or postStop"
        ))),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nsnet: oci-hook {phase}: {e}");
            1
        }
    }
}

/// `nsnet internal idle`: the default instance's command; waits for SIGTERM, SIGINT or SIGHUP
/// and exits 0.
pub fn idle() -> i32 {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return 1;
    }
    let _ = set.wait();
    0
}
