//! nsnet's own command line: the clap tree, and usage errors as one line (exit 2). Each
//! subcommand's work is in `cmd/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nsnet_run::Personality;
use nsnet_run::config::Role;

#[derive(Debug, Parser)]
#[command(
    name = "nsnet",
    version,
    about = "Rootless container networking in one binary",
    long_about = "Rootless container networking in one binary: the launcher (RootlessKit's job), \
                  its in-process user-mode network, port publishing and RootlessKit's API, bridge \
                  networks, containers over runc, and a namespace inspector. Linked as \
                  `rootlesskit`, `rootlessctl`, `slirp4netns` or `nsnet-bridge` (a CNI plugin) it \
                  speaks that program's command line."
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
    Run(Box<crate::cmd::run::RunArgs>),
    /// Publish, list and remove ports of a running instance (RootlessKit's API).
    Port(crate::cmd::port::PortArgs),
    /// Bridge networks of a running instance: create, list, connect namespaces, collect garbage.
    Network(crate::cmd::network::NetworkArgs),
    /// Inspect namespaces and the rootless network: list, explain, draw.
    #[command(subcommand)]
    Ns(crate::cmd::ns::NsCmd),
    /// Run containers with runc in the rootless instance, networked by OCI hooks.
    #[command(alias = "c")]
    Container(crate::cmd::container::ContainerArgs),
    /// Check that this host and user can run rootless nsnet; each problem with its fix.
    ///
    /// Exit status 0 only when nothing needed is missing.
    Check,
    /// Switch a container client (docker, podman, nerdctl) to nsnet, or back with --undo.
    Setup(crate::cmd::setup::SetupArgs),
    /// Internal entry points used by nsnet itself.
    #[command(hide = true, subcommand)]
    Internal(Internal),
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
        Cmd::Run(args) => crate::cmd::run::main(*args),
        Cmd::Port(args) => crate::cmd::port::main(args),
        Cmd::Ns(cmd) => crate::cmd::ns::main(cmd),
        Cmd::Container(args) => crate::cmd::container::main(args),
        Cmd::Network(args) => crate::cmd::network::main(args),
        Cmd::Check => crate::cmd::check::main(),
        Cmd::Setup(args) => crate::cmd::setup::main(args),
        Cmd::Internal(Internal::Whoami { host_ns }) => crate::cmd::whoami::whoami(&host_ns),
        Cmd::Internal(Internal::OciHook {
            phase,
            container_dir,
            state_dir,
        }) => crate::cmd::container::oci_hook(&phase, &container_dir, &state_dir),
        Cmd::Internal(Internal::ContainerMonitor { dir, ready_fd }) => {
            crate::cmd::container::monitor(&dir, ready_fd)
        }
        Cmd::Internal(Internal::Idle) => crate::cmd::container::idle(),
    }
}
