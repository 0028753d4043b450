//! nsnet's own command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nsnet_run::config::Role;
use nsnet_run::{LaunchPlan, Personality, RawOptions};

#[derive(Debug, Parser)]
#[command(
    name = "nsnet",
    version,
    about = "Rootless container networking in one binary",
    long_about = "Rootless container networking in one binary: the launcher (RootlessKit's job), \
                  and, as they land, a user-mode network, port publishing, bridge networks and a \
                  namespace inspector. Installed as `rootlesskit` it speaks RootlessKit's CLI."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a command in a new user and mount namespace (and network namespace), rootless.
    ///
    /// Without a command, runs a built-in report of the namespaces it created.
    #[command(
        after_help = "Defaults differ from the rootlesskit personality only where noted in the README."
    )]
    Run(Box<RunArgs>),
    /// Publish, list and remove ports of a running instance (RootlessKit's API).
    Port(crate::port_cmd::PortArgs),
    /// Bridge networks of a running instance: create, list, connect namespaces, collect garbage.
    Network(crate::network_cmd::NetworkArgs),
    /// Inspect namespaces and the rootless network: list, explain, draw.
    #[command(subcommand)]
    Ns(crate::ns_cmd::NsCmd),
    /// Run containers with runc in the rootless instance, networked by OCI hooks.
    #[command(alias = "c")]
    Container(crate::container_cmd::ContainerArgs),
    /// Check that this host and user can run rootless nsnet; each problem with its fix.
    ///
    /// Exit status 0 only when nothing needed is missing.
    Check,
    /// Switch a container client (docker, podman, nerdctl) to nsnet, or back with --undo.
    Setup(crate::setup_cmd::SetupArgs),
    /// Internal entry points used by nsnet itself.
    #[command(hide = true, subcommand)]
    Internal(Internal),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    flags: RawOptions,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Describe the namespaces this process runs in, compared with the given host ones.
    Whoami {
        /// TYPE:INODE pairs of the launching process's namespaces
        #[arg(long, value_delimiter = ',')]
        host_ns: Vec<String>,
    },
    /// An OCI hook (createRuntime, postStop) of `nsnet container`; the OCI state on stdin.
    OciHook {
        phase: String,
        #[arg(long, value_name = "DIR")]
        container_dir: PathBuf,
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// The monitor of a detached container: runs runc and records the exit.
    ContainerMonitor {
        /// A pipe to the front end: one byte once the container runs
        #[arg(long, value_name = "FD")]
        ready_fd: Option<i32>,
        dir: PathBuf,
    },
    /// Wait for SIGTERM, SIGINT or SIGHUP (the default instance's command).
    Idle,
}

fn usage_error(e: clap::Error) -> i32 {
    if !e.use_stderr() {
        let _ = e.print();
        return 0;
    }
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // `nsnet ns` alone: the list of subcommands is the useful answer.
        eprint!("{}", e.render());
        return 2;
    }
    let text = e.to_string();
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("invalid usage").to_string();
    if first.ends_with(':') {
        // clap names the missing arguments on the indented lines that follow.
        let items: Vec<&str> = lines
            .take_while(|l| l.starts_with("  "))
            .map(str::trim)
            .collect();
        first = format!("{first} {}", items.join(" "));
    }
    eprintln!(
        "{} (see nsnet --help)",
        Personality::Nsnet.error_line(Role::Parent, first.trim_start_matches("error: "))
    );
    2
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    match cli.cmd {
        Cmd::Run(args) => run(*args),
        Cmd::Port(args) => crate::port_cmd::main(args),
        Cmd::Ns(cmd) => crate::ns_cmd::main(cmd),
        Cmd::Container(args) => crate::container_cmd::main(args),
        Cmd::Network(args) => crate::network_cmd::main(args),
        Cmd::Check => crate::check_cmd::main(),
        Cmd::Setup(args) => crate::setup_cmd::main(args),
        Cmd::Internal(Internal::Whoami { host_ns }) => crate::report::whoami(&host_ns),
        Cmd::Internal(Internal::OciHook {
            phase,
            container_dir,
            state_dir,
        }) => crate::container_cmd::oci_hook(&phase, &container_dir, &state_dir),
        Cmd::Internal(Internal::ContainerMonitor { dir, ready_fd }) => {
            crate::container_cmd::monitor(&dir, ready_fd)
        }
        Cmd::Internal(Internal::Idle) => crate::container_cmd::idle(),
    }
}

fn run(args: RunArgs) -> i32 {
    crate::init_logging(args.flags.debug);
    let mut raw = args.flags;
    if raw.command.is_empty() {
        raw.command = vec![
            "/proc/self/exe".into(),
            "internal".into(),
            "whoami".into(),
            format!("--host-ns={}", crate::report::own_namespaces().join(",")),
        ];
    }
    match LaunchPlan::from_raw(raw, Personality::Nsnet) {
        Ok(plan) => crate::launch(plan),
        Err(e) => {
            eprintln!(
                "{}",
                Personality::Nsnet.error_line(Role::Parent, &e.to_string())
            );
            1
        }
    }
}
