//! nsnet: rootless container networking in one binary.
//!
//! The binary is a thin set of front ends over the library crates. `argv[0]` picks one (the
//! table in `main`): nsnet's own command line (`cli.rs`, one file per subcommand under `cmd/`)
//! or a peer's personality (`personality/`, one file per peer: its command line, its messages
//! and exit codes, nothing else). The mechanisms live in the crates (`nsnet-ns`, `-netlink`,
//! `-stack`, `-port`, `-api`, `-bridge`, `-container`, `-inspect`, `-run`). The launcher's child
//! stage is this same binary re-executed with `_NSNET_CHILD_FDS` set, so that check comes
//! before any parsing.

mod cli;
mod cmd;
mod out;
mod personality;

use std::path::Path;

fn main() {
    if nsnet_run::child::is_child() {
        std::process::exit(nsnet_run::child::main(init_logging));
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let code = match name.as_str() {
        // dockerd-rootless.sh runs `docker-rootlesskit` in preference to `rootlesskit`.
        "rootlesskit" | "docker-rootlesskit" => personality::rootlesskit::main(),
        "rootlessctl" => personality::rootlessctl::main(),
        "slirp4netns" => personality::slirp4netns::main(),
        "pasta" => personality::pasta::main(),
        "pesto" => personality::pesto::main(),
        "nsnet-bridge" => personality::cni::main(),
        _ => cli::main(),
    };
    std::process::exit(code);
}

/// Sets up `tracing` from `RUST_LOG`, or at debug level with `--debug`. Writes to stderr and
/// starts no thread (the launcher must stay single-threaded until its child exists).
pub(crate) fn init_logging(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = if debug {
        EnvFilter::new("debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}
