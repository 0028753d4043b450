//! The seccomp section of a container's OCI spec: every call allowed, the trapped ones sent to
//! the service whose socket is `listenerPath`.
//!
//! The trapped set is as small as the bypass: `connect`, and `listen` + `getsockname` only for
//! a container that publishes TCP ports ([`crate::publish`]; a container that does not pays
//! nothing for them), and `sendto` with a destination (argument 4 not NULL: `send`, which libc
//! makes a `sendto` without one, never traps; [`crate::datagram`]). Nothing runc's own init makes between loading the filter and exec'ing the
//! container's command is in it (a trapped `fcntl` or `sendmsg` there waits for a service that
//! has not got the notify fd yet: runc hangs).

use std::path::Path;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscallBuilder,
};

/// The calls the service answers for every container.
pub const TRAPPED: &[&str] = &["connect"];
/// And for a container that publishes TCP ports.
pub const TRAPPED_PUBLISHING: &[&str] = &["connect", "listen", "getsockname"];

/// The seccomp section for a container whose bypass service listens on `listener`;
/// `publishes`: the container publishes TCP ports.
pub fn seccomp(listener: &Path, publishes: bool) -> LinuxSeccomp {
    let names = if publishes {
        TRAPPED_PUBLISHING
    } else {
        TRAPPED
    };
    let trapped = LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActNotify)
        .build()
        .expect("a complete syscall rule");
    let sendto = LinuxSyscallBuilder::default()
        .names(vec!["sendto".to_string()])
        .action(LinuxSeccompAction::ScmpActNotify)
        .args(vec![
            LinuxSeccompArgBuilder::default()
                .index(4usize)
                .value(0u64)
                .op(LinuxSeccompOperator::ScmpCmpNe)
                .build()
                .expect("a complete argument rule"),
        ])
        .build()
        .expect("a complete syscall rule");
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        // The compat architectures are listed so that their calls are allowed rather than
        // killed; only x86-64's connect is trapped (i386 reaches it through socketcall).
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .listener_path(listener.to_path_buf())
        .syscalls(vec![trapped, sendto])
        .build()
        .expect("a complete seccomp section")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_allows_everything_but_the_trapped_calls_which_go_to_the_listener() {
        let v = serde_json::to_value(seccomp(Path::new("/run/x/bypass.sock"), false)).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(v["listenerPath"], "/run/x/bypass.sock");
        assert_eq!(v["syscalls"][0]["names"], serde_json::json!(["connect"]));
        assert_eq!(v["syscalls"][0]["action"], "SCMP_ACT_NOTIFY");
        assert_eq!(v["syscalls"].as_array().unwrap().len(), 2);
        assert_eq!(v["syscalls"][1]["names"], serde_json::json!(["sendto"]));
        assert_eq!(
            v["syscalls"][1]["args"],
            serde_json::json!([{"index": 4, "value": 0, "op": "SCMP_CMP_NE"}])
        );
        let v = serde_json::to_value(seccomp(Path::new("/run/x/bypass.sock"), true)).unwrap();
        assert_eq!(
            v["syscalls"][0]["names"],
            serde_json::json!(["connect", "listen", "getsockname"])
        );
    }
}
