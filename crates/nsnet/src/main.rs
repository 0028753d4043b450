//! nsnet: rootless container networking in one binary.
//!
//! The binary is thin: it picks a personality from `argv[0]` (`rootlesskit`, or nsnet's own
//! command line), parses flags, and hands a validated plan to the launcher crate (`nsnet ns`
//! goes to the inspector crate, through `ns_cmd`). The child
//! stage of the launcher is this same binary re-executed with `_NSNET_CHILD_FDS` set, so that
//! check comes before any parsing.

mod check_cmd;
mod cli;
mod container_cmd;
mod network_cmd;
mod ns_cmd;
mod personality;
mod port_cmd;
mod report;
mod rootlessctl;
mod rootlesskit;
mod setup_cmd;
mod slirp4netns;

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
        "rootlesskit" | "docker-rootlesskit" => rootlesskit::main(),
        "rootlessctl" => rootlessctl::main(),
        "slirp4netns" => slirp4netns::main(),
        "pasta" => personality::pasta::main(),
        "pesto" => personality::pesto::main(),
        "nsnet-bridge" => cni_plugin(),
        _ => cli::main(),
    };
    std::process::exit(code);
}

/// The CNI plugin personality: the environment and the config on stdin in, the result or
/// error JSON out (nsnet-bridge's `cni` module does the work in the current netns).
fn cni_plugin() -> i32 {
    use std::io::{Read, Write};
    let mut conf = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut conf) {
        println!(
            r#"{{"cniVersion":"1.1.0","code":5,"msg":"cannot read the config on stdin: {e}"}}"#
        );
        return 1;
    }
    let vars = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let out = nsnet_bridge::cni::run(&vars, &conf);
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.stdout.as_bytes());
    let _ = stdout.flush();
    out.status
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

/// Runs a validated plan and turns its outcome into an exit code and the personality's lines.
pub(crate) fn launch(plan: nsnet_run::LaunchPlan) -> i32 {
    use nsnet_run::Exit;
    use nsnet_run::config::{Personality, Role};
    let p = plan.personality;
    let mut warn = |w: &str| eprintln!("{}", p.warning_line(w));
    match nsnet_run::parent::run(&plan, &mut warn) {
        Ok(Exit::Code(c)) => {
            if c != 0 && p == Personality::Rootlesskit {
                eprintln!(
                    "{}",
                    p.error_line(Role::Parent, &format!("child exited: exit status {c}"))
                );
            }
            c
        }
        Ok(Exit::Signal(s)) => {
            let msg = match p {
                Personality::Rootlesskit => {
                    format!("child exited: signal: {}", nsnet_ns::signal::go_string(s))
                }
                Personality::Nsnet => format!(
                    "child process killed by signal {} ({})",
                    nsnet_ns::signal::linux_name(s),
                    nsnet_ns::signal::go_string(s)
                ),
            };
            eprintln!("{}", p.error_line(Role::Parent, &msg));
            p.signal_exit_code(s)
        }
        Err(nsnet_run::LaunchError::Child(m)) => {
            eprintln!("{}", p.error_line(Role::Child, &m));
            if p == Personality::Rootlesskit {
                eprintln!(
                    "{}",
                    p.error_line(Role::Parent, "child exited: exit status 1")
                );
            }
            1
        }
        Err(e) => {
            eprintln!("{}", p.error_line(Role::Parent, &e.to_string()));
            1
        }
    }
}
