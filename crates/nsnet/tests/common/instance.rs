//! One running launcher instance, the way every integration test starts one.
//!
//! [`Instance::run`] (or [`Instance::launcher`] for another front end: a personality, Debian's
//! RootlessKit) builds the command line `LAUNCHER --state-dir=STATE FLAGS -- COMMAND`, with
//! the launcher's stdout and stderr in files of the instance's own temporary directory and
//! stdin closed. [`Builder::start`] returns once the instance is ready, which is signalled,
//! never slept for:
//!
//! - [`Ready::File`] (the default): the command run inside writes a non-empty file whose path
//!   it finds in `$READY`. Without a command of its own the instance runs
//!   `sh -c 'echo ready > READY; exec sleep infinity'`, so ready means "the launcher has
//!   started the command" (`child_pid` and `api.sock` exist before the command starts);
//! - [`Ready::ChildPid`]: the launcher has written `child_pid`, for commands that are not
//!   the test's to change.
//!
//! Either wait is bounded and gives up at once, with the launcher's stderr, if the launcher
//! exits first. On drop the instance is stopped by PID (SIGTERM to the launcher, SIGKILL
//! after 15 s) and the test asserts that the launcher and its child are gone; [`Instance::wait`]
//! instead lets it finish by itself and returns what it printed.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{nsnet, nsnet_bin, output, pid_gone, stderr, wait_gone, world};

/// How [`Builder::start`] knows that the instance is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// The command inside has written `$READY` (the default command does so at once).
    File,
    /// The launcher has written `$STATE/child_pid`.
    ChildPid,
}

/// How long a start may take before the test fails.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a stopped launcher may take to exit before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(15);

pub struct Builder {
    launcher: Command,
    dir: tempfile::TempDir,
    state: Option<PathBuf>,
    flags: Vec<OsString>,
    command: Option<Vec<OsString>>,
    ready: Ready,
}

impl Builder {
    /// The directory the instance's files live in (its state directory unless
    /// [`Builder::state_dir`] names another, the ready file, stdout and stderr, and whatever
    /// the test writes with [`Builder::file`]); removed with the instance.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `name` in [`Builder::dir`] and returns its path (a program the
    /// command inside runs).
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// A state directory the test owns (to look at it after the instance is gone).
    pub fn state_dir(mut self, state: impl Into<PathBuf>) -> Self {
        self.state = Some(state.into());
        self
    }

    /// Launcher flags, after `--state-dir`.
    pub fn args<I, S>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.flags.extend(flags.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.launcher.env(key, value);
        self
    }

    /// The command run inside (after `--`), instead of writing the ready file and sleeping.
    pub fn command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// `sh -c SCRIPT` as the command; with [`Ready::File`] it must write `$READY`.
    pub fn script(self, script: &str) -> Self {
        self.command(["sh", "-c", script])
    }

    pub fn ready(mut self, ready: Ready) -> Self {
        self.ready = ready;
        self
    }

    /// Makes the directory usable by every user (for a launcher run as another user).
    pub fn shared(self) -> Self {
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        self
    }

    /// Starts the launcher and waits until the instance is ready.
    pub fn start(mut self) -> Instance {
        world();
        let dir = self.dir.path().to_path_buf();
        let state = self.state.take().unwrap_or_else(|| dir.join("state"));
        let ready_file = dir.join("ready");
        let command = self.command.take().unwrap_or_else(|| {
            let script = format!(
                "echo ready > '{}'; exec sleep infinity",
                ready_file.display()
            );
            ["sh", "-c", &script].into_iter().map(Into::into).collect()
        });
        let job = self
            .launcher
            .arg(format!("--state-dir={}", state.display()))
            .args(&self.flags)
            .arg("--")
            .args(&command)
            .env("READY", &ready_file)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("spawn the launcher");
        let mut inst = Instance {
            job: Some(job),
            dir: self.dir,
            state,
            child_pid: 0,
        };
        let wanted = match self.ready {
            Ready::File => ready_file,
            Ready::ChildPid => inst.state.join("child_pid"),
        };
        inst.wait_for(&wanted);
        inst.child_pid = std::fs::read_to_string(inst.state.join("child_pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no child_pid in {}", inst.state.display()));
        inst
    }
}

/// A running instance; stopped by PID when dropped.
pub struct Instance {
    job: Option<Child>,
    dir: tempfile::TempDir,
    state: PathBuf,
    child_pid: i32,
}

impl Instance {
    /// `nsnet run …`.
    pub fn run() -> Builder {
        let mut c = Command::new(nsnet_bin());
        c.arg("run");
        Instance::launcher(c)
    }

    /// Any launcher taking `--state-dir=DIR FLAGS -- COMMAND` (a personality, RootlessKit).
    pub fn launcher(launcher: Command) -> Builder {
        Builder {
            launcher,
            dir: tempfile::tempdir().unwrap(),
            state: None,
            flags: Vec::new(),
            command: None,
            ready: Ready::File,
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    pub fn child_pid(&self) -> i32 {
        self.child_pid
    }

    /// The launcher's own PID.
    pub fn pid(&self) -> i32 {
        self.job.as_ref().unwrap().id() as i32
    }

    pub fn api_socket(&self) -> PathBuf {
        self.state.join("api.sock")
    }

    /// The instance's temporary directory (see [`Builder::dir`]).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the launcher has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// `nsnet ns exec --child --state-dir=STATE NS_FLAGS -- CMD`: a command in the namespaces
    /// `ns_flags` name (`-n`, `-U`, `-m`, …; none: all the child's).
    pub fn exec(&self, ns_flags: &[&str], cmd: &[&str]) -> Command {
        let mut c = nsnet();
        c.args(["ns", "exec", "--child"])
            .arg(format!("--state-dir={}", self.state.display()))
            .args(ns_flags)
            .arg("--")
            .args(cmd);
        c
    }

    /// A command in the child's network namespace (rootless: its user namespace too).
    pub fn child(&self, cmd: &[&str]) -> Command {
        self.exec(&["-n"], cmd)
    }

    /// [`Instance::child`] run to completion; asserts success, returns stdout.
    pub fn child_ok(&self, cmd: &[&str]) -> String {
        let o = output(&mut self.child(cmd));
        assert!(o.status.success(), "{cmd:?} in the child: {}", stderr(&o));
        super::stdout(&o)
    }

    /// Sends `sig` to the launcher.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits (bounded) for the launcher to exit by itself and returns its status and output.
    pub fn wait(mut self) -> Output {
        let status = self.reap(START_LIMIT).unwrap_or_else(|| {
            panic!(
                "the launcher did not exit within {START_LIMIT:?}: {}",
                self.stderr()
            )
        });
        let read = |n: &str| std::fs::read(self.dir.path().join(n)).unwrap_or_default();
        Output {
            status,
            stdout: read("stdout"),
            stderr: read("stderr"),
        }
    }

    /// Waits up to `limit` for the launcher to exit; `None` if it still runs.
    fn reap(&mut self, limit: Duration) -> Option<ExitStatus> {
        let job = self.job.as_mut()?;
        let start = Instant::now();
        loop {
            if let Some(st) = job.try_wait().unwrap() {
                self.job = None;
                return Some(st);
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `path` holds something, or fails the test when the launcher exits first
    /// or the time is up.
    fn wait_for(&mut self, path: &Path) {
        let start = Instant::now();
        loop {
            if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                return;
            }
            let job = self.job.as_mut().unwrap();
            if let Some(st) = job.try_wait().unwrap() {
                self.job = None;
                panic!(
                    "the launcher exited ({st}) before {} appeared: {}",
                    path.display(),
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < START_LIMIT,
                "{} did not appear within {START_LIMIT:?}: {}",
                path.display(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let Some(job) = self.job.as_ref() else {
            return;
        };
        let pid = Pid::from_raw(job.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let stopped = self.reap(STOP_LIMIT).is_some();
        if !stopped {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = self.reap(STOP_LIMIT);
        }
        if std::thread::panicking() {
            return;
        }
        assert!(
            stopped,
            "the launcher {pid} did not stop within {STOP_LIMIT:?} of SIGTERM"
        );
        assert!(
            self.child_pid == 0
                || pid_gone(self.child_pid)
                || wait_gone(self.child_pid, STOP_LIMIT),
            "the instance's child {} outlived its launcher",
            self.child_pid
        );
    }
}
