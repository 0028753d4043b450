//! Finding a running instance: the reader's side of the state-directory contract
//! ([`crate::statedir`] is the writer's). Every front end that talks to a running instance —
//! `nsnet port`, `nsnet network`, `nsnet container` and its OCI hook, `nsnet ns exec --child`,
//! the `rootlessctl` personality — finds it here, so they all agree on which one it is.
//!
//! Where (the one order, first match wins):
//!
//! 1. the directory the user named (`--state-dir`, or the directory of rootlessctl's `--socket`);
//! 2. `$NSNET_STATE_DIR` (set by `nsnet run` inside its instances; a user may set it to pin one);
//! 3. `$ROOTLESSKIT_STATE_DIR` (set inside nsnet's and RootlessKit's instances alike);
//! 4. the default instance, `DEFAULT_BASE/default`, which `nsnet container run` starts on first
//!    use; `DEFAULT_BASE` is `$XDG_RUNTIME_DIR/nsnet`, else `$TMPDIR/nsnet-UID` (a login without
//!    a systemd user session has no `XDG_RUNTIME_DIR`).
//!
//! Alive or stale: an instance holds flock(2) on `$STATE/lock` for its whole life (RootlessKit
//! does too), and the kernel drops the lock with the process, so a directory left by a crash
//! has a free lock. The reader does not take the lock to find out — a probe that held it even
//! for a moment could make an instance starting on that directory fail to lock it — but looks
//! for it in `/proc/locks` by device and inode. `/proc/locks` lists only locks whose holder is
//! visible in the reader's PID namespace, so a caller inside an instance started with `--pidns`
//! does not see its launcher's lock there; a connect(2) to `$STATE/api.sock`, which every instance
//! serves, decides then. `child_pid` is the child's PID in the launcher's PID namespace.
//!
//! The network namespace: detached (`--detach-netns`), it is the nsfs bind mount `$STATE/netns`,
//! which exists only inside the child's mount namespace (from elsewhere it is an empty file), so
//! it is reached as `/proc/CHILD/root$STATE/netns`; otherwise it is the child's own,
//! `/proc/CHILD/ns/net`.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::enter;
use crate::nsfs::{self, NsType};

/// Why no usable instance was found.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("no nsnet instance is running at {dir} (chosen by {chosen_by}: {why})")]
    NotRunning {
        dir: PathBuf,
        chosen_by: Source,
        why: String,
    },
    #[error(
        "the instance at {dir} (chosen by {chosen_by}) is not running: its state directory was left by an instance that exited or crashed (the lock is free); start it again"
    )]
    Stale { dir: PathBuf, chosen_by: Source },
    #[error("cannot enter the {kind} namespace of the instance at {dir}: {why}")]
    Enter {
        kind: NsType,
        dir: PathBuf,
        why: String,
    },
}

/// Which rule of the order chose the directory (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Given,
    NsnetEnv,
    RootlesskitEnv,
    Default,
    Scan,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Given => "--state-dir",
            Source::NsnetEnv => "$NSNET_STATE_DIR",
            Source::RootlesskitEnv => "$ROOTLESSKIT_STATE_DIR",
            Source::Default => "the default location",
            Source::Scan => "a search of the runtime directories",
        })
    }
}

/// `$XDG_RUNTIME_DIR/nsnet`, else `$TMPDIR/nsnet-UID`: where the default instance (and the
/// container runtime's state) live.
pub fn default_base() -> PathBuf {
    default_base_in(&process_env)
}

/// The default instance's state directory.
pub fn default_dir() -> PathBuf {
    default_base().join("default")
}

/// The state directory the order chooses, and which rule chose it. Empty variables count as
/// unset.
pub fn locate_dir(given: Option<&Path>) -> (PathBuf, Source) {
    locate_in(given, &process_env)
}

type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn process_env(var: &str) -> Option<OsString> {
    std::env::var_os(var)
}

fn default_base_in(env: Env<'_>) -> PathBuf {
    match env("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("nsnet"),
        None => {
            let tmp = env("TMPDIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            tmp.join(format!("nsnet-{}", nix::unistd::geteuid()))
        }
    }
}

fn locate_in(given: Option<&Path>, env: Env<'_>) -> (PathBuf, Source) {
    if let Some(d) = given {
        return (d.to_path_buf(), Source::Given);
    }
    for (var, source) in [
        ("NSNET_STATE_DIR", Source::NsnetEnv),
        ("ROOTLESSKIT_STATE_DIR", Source::RootlesskitEnv),
    ] {
        if let Some(d) = env(var).filter(|d| !d.is_empty()) {
            return (PathBuf::from(d), source);
        }
    }
    (default_base_in(env).join("default"), Source::Default)
}

/// A running instance, read from its state directory.
#[derive(Debug, Clone)]
pub struct Instance {
    state_dir: PathBuf,
    child_pid: i32,
    source: Source,
}

impl Instance {
    /// The instance the order chooses; an error says which rule chose which directory.
    pub fn locate(given: Option<&Path>) -> Result<Instance, InstanceError> {
        let (dir, source) = locate_dir(given);
        Instance::at(&dir, source)
    }

    /// The instance at `dir`, checked alive.
    pub fn at(dir: &Path, source: Source) -> Result<Instance, InstanceError> {
        let dir = absolute(dir);
        let not = |why: String| InstanceError::NotRunning {
            dir: dir.clone(),
            chosen_by: source,
            why,
        };
        let text = match std::fs::read_to_string(dir.join("child_pid")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => {
                return Err(not("no such directory".into()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not("it has no child_pid".into()));
            }
            Err(e) => return Err(not(format!("cannot read child_pid: {e}"))),
        };
        let child_pid = text
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| not(format!("child_pid holds {:?}, not a PID", text.trim())))?;
        if !alive(&dir) {
            return Err(InstanceError::Stale {
                dir,
                chosen_by: source,
            });
        }
        Ok(Instance {
            state_dir: dir,
            child_pid,
            source,
        })
    }

    /// The running instances found under the default base and `$TMPDIR` (directories named
    /// `nsnet*` or `rootlesskit*`, and their subdirectories), for callers that accept "the one
    /// running instance" when the order finds none.
    pub fn scan() -> Vec<Instance> {
        let mut dirs = Vec::new();
        let mut look = |base: &Path, prefixed: bool| {
            let Ok(rd) = std::fs::read_dir(base) else {
                return;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = name.starts_with("nsnet") || name.starts_with("rootlesskit");
                if (!prefixed || ours) && e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                    if let Ok(sub) = std::fs::read_dir(e.path()) {
                        dirs.extend(
                            sub.flatten()
                                .filter(|s| s.file_type().is_ok_and(|t| t.is_dir()))
                                .map(|s| s.path()),
                        );
                    }
                }
            }
        };
        look(&default_base(), false);
        look(&std::env::temp_dir(), true);
        dirs.push(default_dir());
        dirs.sort();
        dirs.dedup();
        dirs.iter()
            .filter(|d| d.join("child_pid").exists())
            .filter_map(|d| Instance::at(d, Source::Scan).ok())
            .collect()
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn child_pid(&self) -> i32 {
        self.child_pid
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// `$STATE/api.sock`, RootlessKit's REST API.
    pub fn api_socket(&self) -> PathBuf {
        self.state_dir.join("api.sock")
    }

    fn detached_path(&self) -> PathBuf {
        let rel = self.state_dir.strip_prefix("/").unwrap_or(&self.state_dir);
        PathBuf::from(format!("/proc/{}/root", self.child_pid))
            .join(rel)
            .join("netns")
    }

    /// Whether the instance's netns is detached (`--detach-netns`).
    pub fn detached(&self) -> bool {
        nsfs::open_kind(&self.detached_path(), NsType::Net).is_ok()
    }

    /// A path to the instance's network namespace that this process can open.
    pub fn netns_path(&self) -> PathBuf {
        if self.detached() {
            self.detached_path()
        } else {
            PathBuf::from(format!("/proc/{}/ns/net", self.child_pid))
        }
    }

    /// Opens the instance's namespace of `kind` (the network one detached or not).
    pub fn open(&self, kind: NsType) -> Result<OwnedFd, InstanceError> {
        let path = match kind {
            NsType::Net => self.netns_path(),
            k => PathBuf::from(format!("/proc/{}/ns/{}", self.child_pid, k.name())),
        };
        nsfs::open_kind(&path, kind).map(|(fd, _)| fd).map_err(|e| {
            let why = match e {
                nsfs::OpenError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    format!("{} is gone (the instance exited?)", path.display())
                }
                e => format!("{}: {e}", path.display()),
            };
            InstanceError::Enter {
                kind,
                dir: self.state_dir.clone(),
                why,
            }
        })
    }

    /// Joins the instance's namespaces of the given kinds (those that differ from ours), in
    /// nsenter's order. Rootless, the instance's user namespace is joined too: it is what
    /// grants the rights over the others. The caller must be single-threaded.
    pub fn join(&self, kinds: &[NsType]) -> Result<(), InstanceError> {
        let mut want = kinds.to_vec();
        if !nix::unistd::geteuid().is_root() && !want.contains(&NsType::User) {
            want.push(NsType::User);
        }
        let mut list = Vec::new();
        for kind in enter::ORDER.into_iter().filter(|k| want.contains(k)) {
            let fd = self.open(kind)?;
            if !enter::is_own(kind, fd.as_fd()) {
                list.push((kind, fd));
            }
        }
        enter::join_all(&list).map_err(|e| InstanceError::Enter {
            kind: list.first().map(|(k, _)| *k).unwrap_or(NsType::User),
            dir: self.state_dir.clone(),
            why: e.to_string(),
        })
    }
}

fn absolute(dir: &Path) -> PathBuf {
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    }
}

/// Whether an instance holds `dir`'s lock (see the module comment for why it is not taken).
fn alive(dir: &Path) -> bool {
    if let Ok(meta) = std::fs::metadata(dir.join("lock"))
        && let Ok(locks) = std::fs::read_to_string("/proc/locks")
        && lock_listed(&locks, meta.dev(), meta.ino())
    {
        return true;
    }
    std::os::unix::net::UnixStream::connect(dir.join("api.sock")).is_ok()
}

/// Whether `/proc/locks` text lists a lock (not a waiter: `->`) on the file (dev, ino). Its
/// lines read `1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF`, the device as hex major:minor.
fn lock_listed(locks: &str, dev: u64, ino: u64) -> bool {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    );
    locks
        .lines()
        .filter(|l| !l.contains("->"))
        .any(|l| l.split_whitespace().any(|f| f == want))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn proc_locks_lines_are_matched_by_device_and_inode() {
        let dev = libc::makedev(0, 0x2d) as u64;
        let text = "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 99 00:2d:9999 0 EOF\n\
                    3: POSIX  ADVISORY  READ 77 fd:01:42 0 EOF\n";
        assert!(lock_listed(text, dev, 5678));
        assert!(
            !lock_listed(text, dev, 567),
            "a prefix of the inode is not a match"
        );
        assert!(
            !lock_listed(text, dev, 9999),
            "a waiter does not hold the lock"
        );
        assert!(lock_listed(text, libc::makedev(0xfd, 1) as u64, 42));
    }

    #[test]
    fn a_held_lock_is_alive_a_free_one_stale() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("child_pid"), std::process::id().to_string()).unwrap();
        let lock = std::fs::File::create(dir.path().join("lock")).unwrap();
        let e = Instance::at(dir.path(), Source::Given).unwrap_err();
        assert!(matches!(e, InstanceError::Stale { .. }), "{e}");
        assert!(e.to_string().contains("lock is free"), "{e}");
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let i = Instance::at(dir.path(), Source::Given).unwrap();
        assert_eq!(i.child_pid(), std::process::id() as i32);
        assert_eq!(i.api_socket(), dir.path().join("api.sock"));
        // Our own netns is not detached: the child's ns/net is the answer.
        assert!(!i.detached());
        assert_eq!(
            i.netns_path(),
            PathBuf::from(format!("/proc/{}/ns/net", std::process::id()))
        );
        i.open(NsType::Net).unwrap();
    }

    #[test]
    fn missing_and_malformed_directories_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        let e = Instance::at(&gone, Source::NsnetEnv)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no such directory") && e.contains("$NSNET_STATE_DIR"),
            "{e}"
        );
        let e = Instance::at(dir.path(), Source::Given)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no child_pid"), "{e}");
        std::fs::write(dir.path().join("child_pid"), "x").unwrap();
        let e = Instance::at(dir.path(), Source::Given)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a PID"), "{e}");
    }

    #[test]
    fn the_order_is_given_then_nsnet_then_rootlesskit_then_default() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |v: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == v)
                    .map(|(_, x)| OsString::from(x))
            }
        };
        let all = env(&[("NSNET_STATE_DIR", "/n"), ("ROOTLESSKIT_STATE_DIR", "/r")]);
        assert_eq!(
            locate_in(Some(Path::new("/g")), &all),
            (PathBuf::from("/g"), Source::Given)
        );
        assert_eq!(
            locate_in(None, &all),
            (PathBuf::from("/n"), Source::NsnetEnv)
        );
        let rk = env(&[("NSNET_STATE_DIR", ""), ("ROOTLESSKIT_STATE_DIR", "/r")]);
        assert_eq!(
            locate_in(None, &rk),
            (PathBuf::from("/r"), Source::RootlesskitEnv)
        );
        let xdg = env(&[("XDG_RUNTIME_DIR", "/run/user/7"), ("TMPDIR", "/t")]);
        assert_eq!(
            locate_in(None, &xdg),
            (PathBuf::from("/run/user/7/nsnet/default"), Source::Default)
        );
        // No XDG_RUNTIME_DIR (a login without a systemd user session): a per-user directory
        // under $TMPDIR, else /tmp.
        let uid = nix::unistd::geteuid();
        let tmp = env(&[("XDG_RUNTIME_DIR", ""), ("TMPDIR", "/t")]);
        assert_eq!(
            locate_in(None, &tmp).0,
            PathBuf::from(format!("/t/nsnet-{uid}/default"))
        );
        assert_eq!(
            locate_in(None, &env(&[])).0,
            PathBuf::from(format!("/tmp/nsnet-{uid}/default"))
        );
    }
}
