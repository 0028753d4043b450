//! Shared pieces of the integration worlds.
//!
//! Every integration test runs in a world that `scripts/test` builds for it: a fresh network
//! namespace holding only `lo` (127.0.0.1, and 192.0.2.10 for clients that must not look like
//! loopback), and a mount namespace whose `/` is shared (so propagation can
//! be observed), entered as root or as the unprivileged test user. [`world`] refuses to run
//! anywhere else, so no test can send a packet off the machine or touch the host's mounts.
//!
//! Beside this file: [`instance`] (one running launcher, ready signalled, stopped by PID),
//! [`servers`] (servers on the world's loopback, a free port), [`http`] (HTTP clients) and
//! [`gate`] (a peer that holds a process mid-operation, to kill it there).
//! The programs the tests run inside namespaces are files in `tests/fixtures/`, each saying
//! what it does and how the test knows it is ready.

#![allow(dead_code)]

mod gate;
mod http;
mod instance;
mod servers;

#[allow(unused_imports)]
pub use gate::*;
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use instance::*;
#[allow(unused_imports)]
pub use servers::*;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The nsnet binary under test (`NSNET_BIN` when the runner copied it for another user).
pub fn nsnet_bin() -> PathBuf {
    std::env::var_os("NSNET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nsnet")))
}

/// Checks that the test runs inside its own world; panics with the way to get one otherwise.
pub fn world() {
    let mut links = nsnet_ns::netns::interface_names().expect("read /proc/net/dev");
    links.sort();
    // scripts/test's world: lo and the veth pair holding 192.0.2.10.
    assert_eq!(
        links,
        vec!["lo", "nsw0", "nsw1"],
        "integration tests must run in a fresh network namespace holding only lo and nsw0/nsw1; run them with scripts/test"
    );
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn nsnet() -> Command {
    world();
    Command::new(nsnet_bin())
}

/// A directory holding `rootlesskit` and `rootlessctl` (links to nsnet), to put first on
/// `PATH`.
pub struct Personalities {
    pub dir: tempfile::TempDir,
}

impl Personalities {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["rootlesskit", "rootlessctl"] {
            symlink(nsnet_bin(), dir.path().join(name)).expect("symlink personality");
        }
        Personalities { dir }
    }

    pub fn command(&self, name: &str) -> Command {
        world();
        let mut c = Command::new(self.dir.path().join(name));
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", self.dir.path().display()));
        c
    }
}

/// Runs a command to completion, with stdin closed.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stderr without warning lines (as root with no subordinate ids, every launch warns that it
/// maps a single id; the tests that compare exact output are about the other lines).
pub fn errors(o: &Output) -> String {
    stderr(o)
        .lines()
        .filter(|l| !l.starts_with("nsnet: warning: ") && !l.starts_with("time="))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The uid_map and gid_map the launcher must write for the current user: the subordinate
/// range when `/etc/subuid` and `/etc/subgid` have one, else only `0 → self`.
pub fn expected_maps() -> (String, String, bool) {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let name = nix::unistd::User::from_uid(uid.into())
        .unwrap()
        .map(|u| u.name)
        .unwrap_or_default();
    let range = |file: &str| -> Option<(u32, u32)> {
        std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
            let mut f = l.split(':');
            let owner = f.next()?;
            if owner != name && owner != uid.to_string() {
                return None;
            }
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
    };
    match (range("/etc/subuid"), range("/etc/subgid")) {
        (Some((us, uc)), Some((gs, gc))) => (
            format!("0 {uid} 1\n1 {us} {uc}"),
            format!("0 {gid} 1\n1 {gs} {gc}"),
            true,
        ),
        _ => (format!("0 {uid} 1"), format!("0 {gid} 1"), false),
    }
}

/// Normalises a /proc/PID/{uid,gid}_map text to one space-separated line per entry.
pub fn normalise_map(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `path` exists (an instance writes child_pid once ready).
pub fn wait_for_file(path: &Path, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.is_empty()
        {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process is gone (a zombie counts as gone: it runs nothing).
pub fn pid_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Waits until a process is gone.
pub fn wait_gone(pid: i32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pid_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pid_gone(pid)
}

/// The namespace inode of this test process for `kind` (net, user, …).
pub fn own_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
