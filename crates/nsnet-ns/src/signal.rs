//! Signal names. RootlessKit is written in Go and prints Go's descriptions
//! (`signal: user defined signal 1`); integration scripts grep for them, so the `rootlesskit`
//! personality reproduces them. nsnet's own messages add the Linux name (`SIGUSR1`).

/// Go's `syscall.Signal.String()` on Linux, or `None` for numbers Go does not name.
pub fn go_description(sig: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
        "stack fault",
        "child exited",
        "continued",
        "stopped (signal)",
        "stopped",
        "stopped (tty input)",
        "stopped (tty output)",
        "urgent I/O condition",
        "CPU time limit exceeded",
        "file size limit exceeded",
        "virtual timer expired",
        "profiling timer expired",
        "window changed",
        "I/O possible",
        "power failure",
        "bad system call",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| NAMES.get(i).copied())
}

/// Go's `signal: …` text for a signal number (`signal N` when Go has no name either).
pub fn go_string(sig: i32) -> String {
    match go_description(sig) {
        Some(d) => d.to_string(),
        None => format!("signal {sig}"),
    }
}

/// `SIGTERM`-style name, or `signal N` for real-time signals.
pub fn linux_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_go_and_linux() {
        assert_eq!(go_string(libc::SIGUSR1), "user defined signal 1");
        assert_eq!(go_string(libc::SIGTERM), "terminated");
        assert_eq!(go_string(libc::SIGKILL), "killed");
        assert_eq!(go_string(libc::SIGSYS), "bad system call");
        assert_eq!(go_string(40), "signal 40");
        assert_eq!(go_string(0), "signal 0");
        assert_eq!(linux_name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(linux_name(40), "signal 40");
    }
}
