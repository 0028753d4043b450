//! A system-call filter for a process whose remaining work is running this stack: after
//! start-up it may make only the calls the stack's threads (and an API thread beside them)
//! make; every other call fails with `EPERM`. slirp4netns's `--enable-seccomp` is built on it.
//!
//! Stricter than slirp4netns: its `seccompfilter.c` allows everything by default and blocks
//! 13 calls (`execve`, `execveat`, `open_by_handle_at`, `ptrace`, `prctl`,
//! `process_vm_readv`, `process_vm_writev`, `mount`, `name_to_handle_at`, `setns`, `umount`,
//! `umount2`, `unshare`), and a blocked call kills the process (`SCMP_ACT_KILL_PROCESS`).
//! Here everything not listed below is refused, `open*` included, but with `EPERM` rather than
//! a kill, so a library probing for a feature degrades instead of dying. One call slirp4netns
//! blocks is allowed: `prctl`, with which the standard library names the threads it starts.
//!
//! The filter is installed while the process is single-threaded, before the stack's and the
//! API's threads start: threads inherit the filter of the thread that creates them, so the
//! one filter covers the whole process (no TSYNC needed). What the list allows is what those
//! threads do: sockets (TCP, UDP, ICMP, unix for the API), epoll and eventfd, reads and
//! writes, memory, threads and futexes, signals, time, and `unlinkat` for removing the API
//! socket at exit. Not allowed, among everything else: `execve`, `ptrace`, the mount family,
//! `setns`, `unshare`, `open*` and module and reboot calls. Built with `seccompiler`
//! (rust-vmm), which compiles the list to BPF without libseccomp.

use std::collections::BTreeMap;

/// Building or installing the filter failed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{0}")]
    Arch(String),
    #[error("build the filter: {0}")]
    Build(String),
    #[error("compile the filter: {0}")]
    Compile(String),
    #[error("install the filter: {0}")]
    Install(String),
}

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// The system calls a running stack makes.
fn allowed() -> Vec<libc::c_long> {
    let mut v = vec![
        // I/O on descriptors the process holds.
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_fcntl,
        libc::SYS_ioctl,
        libc::SYS_ppoll,
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        libc::SYS_eventfd2,
        // Sockets: outbound flows, host forwards, the API socket.
        libc::SYS_socket,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept4,
        libc::SYS_connect,
        libc::SYS_getsockopt,
        libc::SYS_setsockopt,
        libc::SYS_getsockname,
        libc::SYS_getpeername,
        libc::SYS_sendto,
        libc::SYS_recvfrom,
        libc::SYS_sendmsg,
        libc::SYS_recvmsg,
        // The UDP port driver's batches (nsnet-port's datagrams.rs).
        libc::SYS_sendmmsg,
        libc::SYS_recvmmsg,
        libc::SYS_shutdown,
        // Memory, threads, synchronisation.
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_mremap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_sigaltstack,
        libc::SYS_prctl,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_getrandom,
        libc::SYS_prlimit64,
        // Signals, identity, time, exit.
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigreturn,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_tgkill,
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_exit,
        libc::SYS_exit_group,
        // Removing the API socket at exit.
        libc::SYS_unlinkat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_poll,
        libc::SYS_epoll_wait,
        libc::SYS_accept,
        libc::SYS_unlink,
        libc::SYS_fstat,
    ]);
    v
}

/// The compiled filter (allowlist, `EPERM` otherwise) for this machine's architecture.
pub fn program() -> Result<BpfProgram, SeccompError> {
    program_with(&[])
}

/// [`program`] with the calls in `extra` allowed too: a front end whose process does more
/// than run the stack names what (pasta's background process enters the namespace with
/// `setns` for each new forward, and waits for and signals the command it started).
pub fn program_with(extra: &[libc::c_long]) -> Result<BpfProgram, SeccompError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SeccompError::Arch(e.to_string()))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = allowed()
        .into_iter()
        .chain(extra.iter().copied())
        .map(|s| (s, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| SeccompError::Build(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError::Compile(e.to_string()))
}

/// Installs `prog` on the calling thread (and so on every thread it creates from now on).
pub fn apply(prog: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(prog).map_err(|e| SeccompError::Install(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a forked child (the filter would otherwise confine the test harness): allowed
    /// calls work, others fail with EPERM.
    #[test]
    fn the_filter_allows_sockets_and_refuses_namespaces_and_exec() {
        let prog = program().unwrap();
        // SAFETY: the child only makes raw system calls and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = unsafe {
                if seccompiler::apply_filter(&prog).is_err() {
                    libc::_exit(10);
                }
                let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                if s < 0 {
                    libc::_exit(11);
                }
                libc::close(s);
                let checks: [(libc::c_long, u8); 3] = [
                    (libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS), 12),
                    (libc::syscall(libc::SYS_setns, 0, 0), 13),
                    (
                        libc::syscall(
                            libc::SYS_execve,
                            c"/bin/true".as_ptr(),
                            std::ptr::null::<*const libc::c_char>(),
                            std::ptr::null::<*const libc::c_char>(),
                        ),
                        14,
                    ),
                ];
                let mut code = 0;
                for (r, c) in checks {
                    if r != -1 || *libc::__errno_location() != libc::EPERM {
                        code = c;
                    }
                }
                let fd = libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY);
                if fd >= 0 || *libc::__errno_location() != libc::EPERM {
                    code = 15;
                }
                code
            };
            unsafe { libc::_exit(code as i32) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "check that failed (see codes)"
        );
    }
}
