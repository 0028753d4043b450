//! The `rootlesskit` personality: nsnet installed (or linked) as `rootlesskit` speaks
//! RootlessKit's command line, defaults (`--net=host`, `--port-driver=none`), error lines and
//! exit codes, so containerd-rootless.sh, dockerd-rootless.sh and RootlessKit's own test
//! scripts run unchanged.

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};
use nsnet_run::config::Role;
use nsnet_run::{LaunchPlan, Personality, RawOptions};

#[derive(Debug, Parser)]
#[command(
    name = "rootlesskit",
    about = "Linux-native fakeroot using user namespaces (nsnet personality)",
    override_usage = "rootlesskit [global options] [arguments...]",
    disable_version_flag = true,
    after_help = "Note: RootlessKit requires /etc/subuid and /etc/subgid to be configured by the real root user."
)]
struct RootlesskitCli {
    // Every launcher flag, declared once in nsnet-run; `--net`'s default (host here) is the
    // personality's, resolved by the plan.
    #[command(flatten)]
    flags: RawOptions,

    /// Print the version
    #[arg(short = 'v', long, action = ArgAction::SetTrue, help_heading = "Misc")]
    version: bool,

    /// Print the semver component [major, minor, patch]
    #[arg(long, value_name = "COMPONENT", help_heading = "Misc")]
    print_semver: Option<String>,
}

fn fail(msg: &str) -> i32 {
    eprintln!("{}", Personality::Rootlesskit.error_line(Role::Parent, msg));
    1
}

pub fn main() -> i32 {
    let matches = match RootlesskitCli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid usage");
            return fail(first.trim_start_matches("error: "));
        }
        Err(e) => {
            let _ = e.print();
            return 0;
        }
    };
    let cli = match RootlesskitCli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    // The RootlessKit release whose behaviour (flags, API 1.1.2) this personality reproduces.
    let mut semver = nsnet_api::ROOTLESSKIT_COMPAT_VERSION.split('.');
    let (major, minor, patch) = (
        semver.next().unwrap_or("0"),
        semver.next().unwrap_or("0"),
        semver.next().unwrap_or("0"),
    );
    if cli.version {
        println!(
            "rootlesskit version {}",
            nsnet_run::services::implementation_version()
        );
        return 0;
    }
    if let Some(c) = cli.print_semver.as_deref() {
        return match c {
            "major" => {
                println!("{major}");
                0
            }
            "minor" => {
                println!("{minor}");
                0
            }
            "patch" => {
                println!("{patch}");
                0
            }
            other => fail(&format!(
                "--print-semver: unknown component {other:?} (want major, minor or patch)"
            )),
        };
    }
    crate::init_logging(cli.flags.debug);
    match LaunchPlan::from_raw(cli.flags, Personality::Rootlesskit) {
        Ok(plan) => crate::cmd::run::launch(plan),
        Err(e) => fail(&e.to_string()),
    }
}
