//! `nsnet run` (and the `rootlesskit` personality's launch): a validated plan to the launcher
//! crate, and its outcome as an exit code and the personality's lines (RootlessKit's
//! `[rootlesskit:parent] …` or nsnet's own). Without a command, `nsnet run` runs the built-in
//! report of the namespaces it made (`whoami`).

use nsnet_run::config::Role;
use nsnet_run::{LaunchPlan, Personality, RawOptions};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: RawOptions,
}

pub fn main(args: RunArgs) -> i32 {
    crate::init_logging(args.flags.debug);
    let mut raw = args.flags;
    if raw.command.is_empty() {
        raw.command = vec![
            "/proc/self/exe".into(),
            "internal".into(),
            "whoami".into(),
            format!("--host-ns={}", super::whoami::own_namespaces().join(",")),
        ];
    }
    match LaunchPlan::from_raw(raw, Personality::Nsnet) {
        Ok(plan) => launch(plan),
        Err(e) => {
            eprintln!(
                "{}",
                Personality::Nsnet.error_line(Role::Parent, &e.to_string())
            );
            1
        }
    }
}

/// Runs a validated plan and turns its outcome into an exit code and the personality's lines.
pub fn launch(plan: nsnet_run::LaunchPlan) -> i32 {
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
