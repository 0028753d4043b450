//! Signals in the launcher's two processes.
//!
//! Both the parent and the child block the signals they forward (and SIGCHLD) and read them
//! from a signalfd, so there is no async handler and no race between "child exited" and "a
//! signal arrived". A blocked signal is also never discarded by the kernel, which matters for
//! the child when it is PID 1 of a new PID namespace: signals from outside to a namespace's
//! init are dropped only while its disposition is the default *and* the signal is unblocked.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::{LaunchError, sys};

/// Signals passed on to the child (and by the child to the command), as RootlessKit's
/// sigproxy does. Job-control stops are left to the terminal, which stops the whole group.
pub(crate) const FORWARDED: [Signal; 12] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGPWR,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
];

fn mask() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Keeps the forwarded signals blocked (the child stage inherits them blocked from the
/// parent's clone, and says so explicitly here). A signal sent to the child between the
/// moment the parent publishes `child_pid` and the moment the child reads its signalfd then
/// stays pending and is forwarded to the command; unblocked, it would be discarded, because
/// the kernel drops signals with the default disposition sent to a PID namespace's init from
/// outside (RootlessKit's exit-code.sh sends SIGUSR1 as soon as `child_pid` appears).
pub(crate) fn block_forwarded() {
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask()), None);
}

/// How a waited-for process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Blocks the forwarded signals and reads them from a signalfd.
pub(crate) struct SignalWaiter {
    fd: SignalFd,
}

impl SignalWaiter {
    pub(crate) fn block() -> Result<Self, LaunchError> {
        let set = mask();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(sys("block signals"))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(sys("signalfd"))?;
        Ok(SignalWaiter { fd })
    }

    fn next(&mut self) -> Result<i32, LaunchError> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => return Ok(info.ssi_signo as i32),
                Ok(None) | Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
                Err(e) => return Err(sys("read signalfd")(e)),
            }
        }
    }

    /// Waits until `target` exits, forwarding every other signal to it. With `reap_all`,
    /// also collects any other child (orphans re-parented to a PID namespace's init).
    pub(crate) fn wait_forwarding(
        &mut self,
        target: Pid,
        reap_all: bool,
    ) -> Result<Exit, LaunchError> {
        loop {
            if let Some(exit) = reap(target, reap_all)? {
                return Ok(exit);
            }
            let sig = self.next()?;
            if sig != libc::SIGCHLD
                && let Ok(s) = Signal::try_from(sig)
            {
                let _ = kill(target, s);
            }
        }
    }
}

/// Collects finished children without blocking; `Some` once `target` has ended.
pub(crate) fn reap(target: Pid, reap_all: bool) -> Result<Option<Exit>, LaunchError> {
    let who = if reap_all { None } else { Some(target) };
    loop {
        match waitpid(who, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == target => {
                return Ok(Some(Exit::Code(code)));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == target => {
                return Ok(Some(Exit::Signal(sig as i32)));
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(None),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("waitpid")(e)),
        }
    }
}

/// Restores an empty signal mask (the mask survives execve, so every process we start
/// would otherwise inherit our blocked set). Async-signal-safe.
pub(crate) fn unblock_all() {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
