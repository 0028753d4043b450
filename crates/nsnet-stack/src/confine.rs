//! The stack's thread confines itself before it reads its first frame: every frame the
//! namespace sends is parsed there, so that thread is the one a malformed or hostile frame
//! would reach. RootlessKit's default puts this parsing in slirp4netns under its sandbox and
//! seccomp; nsnet keeps the stack in-process (no copy of every frame between processes) and
//! confines the thread instead, which the kernel allows per thread:
//!
//! - **no_new_privs** (per thread, set by both steps below);
//! - **Landlock**: a ruleset that handles every filesystem access right the kernel knows and
//!   grants none, and scopes abstract unix sockets and signals to the thread's own domain —
//!   no file can be opened, created, executed or removed from this thread, whatever the
//!   process's other threads may do (`landlock_restrict_self` applies to the caller only);
//! - **seccomp**: the stack's allowlist ([`crate::seccomp`]), installed without TSYNC so it
//!   binds only this thread (and any it would start), leaving the launcher's other threads
//!   (the API, the port relay, the child's supervision) their own calls.
//!
//! Landlock is best effort: on a kernel without it (or with an older ABI) the thread keeps
//! what it can and one warning says so; the filter must install, or the stack does not start
//! confined and says why.

/// What the confinement achieved.
#[derive(Debug, PartialEq, Eq)]
pub struct Confined {
    /// Landlock's filesystem and scope restrictions: fully, partly (an older ABI) or not.
    pub landlock: landlock::RulesetStatus,
}

/// The confinement could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

/// Confines the calling thread as described above.
pub fn confine_this_thread() -> Result<Confined, ConfineError> {
    let landlock = landlock_this_thread()?;
    let prog = crate::seccomp::program()?;
    crate::seccomp::apply(&prog)?;
    Ok(Confined { landlock })
}

/// The Landlock half: no filesystem access at all, abstract unix sockets and signals
/// scoped, for the calling thread.
fn landlock_this_thread() -> Result<landlock::RulesetStatus, landlock::RulesetError> {
    use landlock::{ABI, Access, AccessFs, Ruleset, RulesetAttr, Scope};
    // The newest ABI this crate knows; best-effort compatibility drops what the kernel lacks.
    let abi = ABI::V6;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?
        .restrict_self()?;
    Ok(status.ruleset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_errno(path: &str) -> Option<i32> {
        std::fs::File::open(path)
            .err()
            .and_then(|e| e.raw_os_error())
    }

    /// A confined thread can still make sockets, but cannot open a file, create one, or
    /// exec (seccomp refuses first, with EPERM); a thread beside it is untouched.
    #[test]
    fn a_confined_thread_cannot_open_or_exec_and_its_neighbours_can() {
        let (c, sock, open, create, exec) = std::thread::spawn(|| {
            let c = confine_this_thread().expect("confinement installs");
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").is_ok();
            let open = open_errno("/etc/passwd");
            let create = std::fs::File::create("/tmp/nsnet-confine-probe")
                .err()
                .and_then(|e| e.raw_os_error());
            // SAFETY: execve with valid NUL-terminated strings; it only returns on failure.
            let exec = unsafe {
                let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
                libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), std::ptr::null());
                *libc::__errno_location()
            };
            (c, sock, open, create, exec)
        })
        .join()
        .unwrap();
        assert!(sock, "sockets still work");
        assert_eq!(open, Some(libc::EPERM), "open refused");
        assert_eq!(create, Some(libc::EPERM), "create refused");
        assert_eq!(exec, libc::EPERM, "exec refused");
        assert_ne!(c.landlock, landlock::RulesetStatus::NotEnforced);
        assert_eq!(
            open_errno("/etc/passwd"),
            None,
            "the harness's thread is free"
        );
    }

    /// Landlock alone (what stands if the filter were ever loosened): the filesystem is
    /// closed to the thread (EACCES), sockets are not.
    #[test]
    fn landlock_alone_closes_the_filesystem() {
        let (status, open, sock) = std::thread::spawn(|| {
            let status = landlock_this_thread().expect("landlock ruleset");
            let open = open_errno("/etc/passwd");
            (
                status,
                open,
                std::net::UdpSocket::bind("127.0.0.1:0").is_ok(),
            )
        })
        .join()
        .unwrap();
        // This machine's kernel has Landlock (ABI 7): it must be enforced here.
        assert_ne!(status, landlock::RulesetStatus::NotEnforced);
        assert_eq!(open, Some(libc::EACCES));
        assert!(sock);
    }
}
