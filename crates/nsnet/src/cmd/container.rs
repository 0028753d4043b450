//! `nsnet container run|ps|inspect|exec|logs|stop|rm` and the internal entry points the
//! container layer runs again (`nsnet internal container-monitor`, `oci-hook`, `idle`): the
//! command line and what is printed. The lifecycle itself — the instance, runc, the monitor,
//! the views — is `nsnet_container`'s ([`nsnet_container::lifecycle`] and its siblings).

use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use nsnet_container::lifecycle::{self, Ctx, RunOptions};
use nsnet_container::store::{Container, Status, Store};
use nsnet_container::{hook, monitor, runtime, template, view};

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
    /// Outbound TCP and connected UDP to addresses outside the container networks run on
    /// host sockets (seccomp user notification): no bridge, NAT or user-mode stack in the way
    #[arg(long)]
    bypass: bool,
    /// IMAGE then COMMAND (or only COMMAND with --rootfs)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE|COMMAND"
    )]
    rest: Vec<String>,
}

fn ctx() -> anyhow::Result<Ctx> {
    Ok(Ctx {
        exe: std::env::current_exe().context("find the nsnet binary")?,
    })
}

pub fn main(args: ContainerArgs) -> i32 {
    let r = match args.cmd {
        ContainerCmd::Run(r) => run(r, args.state_dir, args.runtime),
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
        } => exec(
            &container,
            &runtime::ExecOptions {
                tty,
                env: &env,
                workdir: workdir.as_deref(),
                command: &command,
            },
        ),
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

fn run(a: RunArgs, state_dir: Option<PathBuf>, runtime: Option<PathBuf>) -> anyhow::Result<i32> {
    let ctx = ctx()?;
    let store = Store::default_location()?;
    let o = RunOptions {
        detach: a.detach,
        name: a.name,
        publish: a.publish,
        network: a.network,
        env: a.env,
        workdir: a.workdir,
        auto_remove: a.rm,
        tty: a.tty,
        hostname: a.hostname,
        rootfs: a.rootfs,
        rest: a.rest,
        runtime,
        state_dir,
        bypass: a.bypass,
    };
    let prepared = lifecycle::prepare(&ctx, &store, &o)?;
    if o.detach {
        println!("{}", lifecycle::start_detached(&ctx, &store, prepared)?);
        return Ok(0);
    }
    // Foreground: this process is the monitor. Terminal signals reach runc too (same process
    // group), which forwards them to the container; here they must not cut the bookkeeping.
    extern "C" fn ignore(_: libc::c_int) {}
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: an empty handler; handlers (unlike SIG_IGN) are reset by execve in runc.
        unsafe {
            libc::signal(sig, ignore as *const () as libc::sighandler_t);
        }
    }
    Ok(lifecycle::run_foreground(&ctx, &store, prepared)?)
}

fn stop_all(keys: &[String], secs: u64) -> anyhow::Result<i32> {
    let store = Store::default_location()?;
    let mut code = 0;
    for key in keys {
        let r = store
            .find(key)
            .and_then(|mut c| lifecycle::stop(&mut c, Duration::from_secs(secs)));
        match r {
            Ok(()) => println!("{key}"),
            Err(e) => {
                eprintln!("nsnet: error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn rm(keys: &[String], force: bool, state_dir: Option<&Path>) -> anyhow::Result<i32> {
    let ctx = ctx()?;
    let store = Store::default_location()?;
    let mut found: Vec<(String, Container)> = Vec::new();
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
                    lifecycle::stop(&mut c, Duration::ZERO)?;
                }
                found.push((k.clone(), c));
            }
            Err(e) => {
                eprintln!("nsnet: error: {e}");
                code = 1;
            }
        }
    }
    let Some((_, first)) = found.first() else {
        return Ok(code);
    };
    let inst = lifecycle::instance_for_rm(&ctx, state_dir, first)?;
    lifecycle::join(&inst)?;
    for (k, c) in found {
        match lifecycle::remove(&ctx, &store, c, &inst) {
            Ok(()) => println!("{k}"),
            Err(e) => {
                eprintln!("nsnet: error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn exec(key: &str, o: &runtime::ExecOptions) -> anyhow::Result<i32> {
    let store = Store::default_location()?;
    let c = store.find(key)?;
    if c.status() != Status::Running {
        bail!("container {key} is not running");
    }
    let inst = lifecycle::instance_at(&c.config.instance).ok_or_else(|| {
        anyhow!(
            "the nsnet instance of container {key} ({}) is not running",
            c.config.instance.display()
        )
    })?;
    lifecycle::join(&inst)?;
    Err(runtime::exec(&c, o).into())
}

fn logs(key: &str, follow: bool) -> anyhow::Result<()> {
    let store = Store::default_location()?;
    let mut c = store.find(key)?;
    Ok(lifecycle::logs(
        key,
        &mut c,
        follow,
        &mut std::io::stdout().lock(),
    )?)
}

fn ps(all: bool, quiet: bool, no_trunc: bool) -> anyhow::Result<()> {
    let store = Store::default_location()?;
    let list: Vec<Container> = store
        .list()?
        .into_iter()
        .rev()
        .filter(|c| all || c.status() == Status::Running)
        .collect();
    print!("{}", view::ps(&list, quiet, no_trunc));
    Ok(())
}

fn inspect(format: Option<&str>, keys: &[String]) -> anyhow::Result<i32> {
    let store = Store::default_location()?;
    let mut values = Vec::new();
    let mut code = 0;
    for k in keys {
        match store.find(k) {
            Ok(c) => values.push(view::inspect_value(&c)),
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

/// `nsnet internal container-monitor [--ready-fd N] DIR`: the detached container's monitor.
pub fn monitor(dir: &Path, ready_fd: Option<i32>) -> i32 {
    // SAFETY: the descriptor was passed to us for this (the front end's end is its own); it is
    // made close-on-exec at once, so that runc does not hold it open.
    let ready = ready_fd.map(|fd| unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        std::fs::File::from_raw_fd(fd)
    });
    let r = ctx().and_then(|ctx| Ok(monitor::monitor(&ctx, dir, ready)?));
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nsnet: monitor: {e:#}");
            1
        }
    }
}

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
