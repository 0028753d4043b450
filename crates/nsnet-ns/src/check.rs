//! Host prerequisites of a rootless launcher, as findings a user can act on (`nsnet check`).
//!
//! Each check reads the host through a [`Host`] — a root directory under which `/etc`,
//! `/proc/sys`, `/sys/fs/cgroup` and `/dev` are looked up — so that tests can build any host in
//! a temporary directory. What cannot live in a directory (a device node's kind, a file
//! capability, whether the kernel lets this process make a user namespace) is gathered once
//! into a [`Probe`] by [`Probe::gather`] and passed in, so every finding is a pure function of
//! files plus probe results.
//!
//! A [`Finding`] says what was found and, for anything short of fine, the exact command that
//! fixes it. Only [`Status::Problem`] means "rootless nsnet will not work as it should"; notes
//! are things most users want (low ports, resource limits) but the network does not need.
//!
//! Covered here: subordinate id ranges (parsed by [`crate::idmap`]), `newuidmap`/`newgidmap`
//! (setuid root or file capabilities), `/dev/net/tun` (opened *inside* the user namespace,
//! where its root owner is unmapped, so it needs the world bits), unprivileged user
//! namespaces (`kernel.unprivileged_userns_clone` on Debian's and Ubuntu's kernels,
//! `user.max_user_namespaces`, and Ubuntu 24.04's
//! `kernel.apparmor_restrict_unprivileged_userns`, under which the binary needs an AppArmor
//! profile granting `userns`), `net.ipv4.ip_unprivileged_port_start` and cgroup v2
//! delegation to the user's systemd manager. Which container clients are installed and
//! configured is the binary's business (it knows what `nsnet setup` writes).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::idmap::{self, IdRange};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Present and usable.
    Ok,
    /// Not needed by the network, but worth changing (or only informative).
    Note,
    /// Needed and missing: `nsnet check` exits non-zero.
    Problem,
}

/// One line of the report: the topic, what was found, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    pub topic: String,
    pub summary: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(topic: &str, summary: impl Into<String>) -> Self {
        Finding {
            status: Status::Ok,
            topic: topic.into(),
            summary: summary.into(),
            fix: None,
        }
    }
    fn note(topic: &str, summary: impl Into<String>, fix: Option<String>) -> Self {
        Finding {
            status: Status::Note,
            topic: topic.into(),
            summary: summary.into(),
            fix,
        }
    }
    fn problem(topic: &str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            status: Status::Problem,
            topic: topic.into(),
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The host's files, rooted at `root` (`/` for the real host).
#[derive(Debug, Clone)]
pub struct Host {
    pub root: PathBuf,
}

impl Host {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Host { root: root.into() }
    }

    /// `abs` (an absolute host path) under this root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    pub fn read(&self, abs: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.path(abs)).ok()
    }

    /// A sysctl by its dotted name (`net.ipv4.ip_unprivileged_port_start`), trimmed; `None`
    /// when this kernel has no such knob.
    pub fn sysctl(&self, name: &str) -> Option<String> {
        self.read(format!("/proc/sys/{}", name.replace('.', "/")))
            .map(|s| s.trim().to_string())
    }
}

/// Who the checks are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// A setuid helper as found on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperFile {
    pub path: PathBuf,
    pub mode: u32,
    pub owner: u32,
    /// The raw `security.capability` extended attribute, when the file has one.
    pub caps: Option<Vec<u8>>,
}

/// `/dev/net/tun` as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tun {
    Missing,
    NotCharDevice,
    /// A character device with this permission mode; `open` is the outcome of opening it
    /// read-write in this process (an errno on failure).
    Device {
        mode: u32,
        open: Result<(), i32>,
    },
}

/// What the checks need beyond files: gathered once from the running system.
#[derive(Debug, Clone)]
pub struct Probe {
    pub user: User,
    /// The executable that makes the user namespaces (symlinks resolved: AppArmor attaches
    /// profiles to the real path).
    pub exe: PathBuf,
    pub newuidmap: Option<HelperFile>,
    pub newgidmap: Option<HelperFile>,
    pub tun: Tun,
    /// Creating a user and a network namespace in a forked child: an errno on failure.
    pub userns: Result<(), i32>,
}

/// `PATH` when the environment has none (the directories the `uidmap` package installs to).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Probe {
    /// Gathers the probe results of this process on the real host (`host` locates the
    /// files; `path` is the `PATH` to search for the helpers). Forks once, so call it while
    /// single-threaded.
    pub fn gather(host: &Host, user: User, exe: PathBuf, path: &str) -> Probe {
        Probe {
            newuidmap: find_helper(host, "newuidmap", path),
            newgidmap: find_helper(host, "newgidmap", path),
            tun: tun_state(host),
            userns: probe_user_namespace(),
            exe,
            user,
        }
    }
}

fn find_helper(host: &Host, name: &str, path: &str) -> Option<HelperFile> {
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .find_map(|dir| {
            let shown = Path::new(dir).join(name);
            let real = host.path(&shown);
            let meta = std::fs::metadata(&real).ok()?;
            (meta.is_file() && meta.mode() & 0o111 != 0).then(|| HelperFile {
                caps: read_xattr(&real, "security.capability"),
                path: shown,
                mode: meta.mode() & 0o7777,
                owner: meta.uid(),
            })
        })
}

fn read_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 64];
    // SAFETY: both strings are NUL-terminated and buf is writable for its length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len > 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

fn tun_state(host: &Host) -> Tun {
    let path = host.path("/dev/net/tun");
    let Ok(meta) = std::fs::metadata(&path) else {
        return Tun::Missing;
    };
    if !meta.file_type().is_char_device() {
        return Tun::NotCharDevice;
    }
    // Opening /dev/net/tun creates nothing: an interface appears only with TUNSETIFF.
    let open = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map(drop)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
    Tun::Device {
        mode: meta.mode() & 0o7777,
        open,
    }
}

/// Whether this process may create a user namespace and, inside it, a network namespace —
/// what the launcher does first. Under Ubuntu's AppArmor restriction the user namespace is
/// created but has no capabilities, so the network namespace is what fails.
pub fn probe_user_namespace() -> Result<(), i32> {
    use nix::sched::{CloneFlags, unshare};
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    // SAFETY: the child only calls unshare and _exit (async-signal-safe).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = match unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET) {
                Ok(()) => 0,
                Err(e) => (e as i32).clamp(1, 255),
            };
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(WaitStatus::Exited(_, code)) => Err(code),
            _ => Err(libc::ECHILD),
        },
        Err(e) => Err(e as i32),
    }
}

/// Every namespace-side finding, in report order.
pub fn run(host: &Host, probe: &Probe) -> Vec<Finding> {
    let mut out = subids(host, &probe.user);
    let install = install_uidmap(host);
    for (name, file) in [
        ("newuidmap", &probe.newuidmap),
        ("newgidmap", &probe.newgidmap),
    ] {
        out.push(helper(name, file.as_ref(), probe.user.is_root(), &install));
    }
    out.push(tun(probe.tun, probe.user.is_root()));
    out.push(user_namespaces(host, probe.userns));
    out.push(apparmor(host, &probe.exe, probe.user.is_root()));
    out.push(unprivileged_ports(host));
    out.push(cgroups(host, &probe.user));
    out
}

/// The first start of a free 65536-id block above every range in `texts` (whole subid
/// files), at least 100000 as `useradd` allocates.
fn free_block(texts: &[String]) -> u64 {
    let end = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| {
            let mut f = l.trim().split(':').skip(1);
            let start: u64 = f.next()?.parse().ok()?;
            let count: u64 = f.next()?.parse().ok()?;
            Some(start + count)
        })
        .max()
        .unwrap_or(0)
        .max(100_000);
    end.div_ceil(65536) * 65536
}

fn subids(host: &Host, user: &User) -> Vec<Finding> {
    if user.is_root() {
        return vec![Finding::ok(
            "subordinate ids",
            "not needed as root (root writes any id map itself)",
        )];
    }
    let texts: Vec<String> = [idmap::SUBUID_FILE, idmap::SUBGID_FILE]
        .iter()
        .map(|f| host.read(f).unwrap_or_default())
        .collect();
    let start = free_block(&texts);
    let fix = format!(
        "sudo usermod --add-subuids {start}-{} --add-subgids {start}-{} {}",
        start + 65535,
        start + 65535,
        user.name
    );
    let nss = host.read("/etc/nsswitch.conf").unwrap_or_default();
    let mut out = Vec::new();
    for (kind, file, text) in [
        ("uids", idmap::SUBUID_FILE, &texts[0]),
        ("gids", idmap::SUBGID_FILE, &texts[1]),
    ] {
        let topic = format!("subordinate {kind}");
        let ranges = match idmap::parse_subid_file(text, Path::new(file), &user.name, user.uid) {
            Ok(r) => r,
            Err(e) => {
                out.push(Finding::problem(
                    &topic,
                    e.to_string(),
                    format!("sudoedit {file}"),
                ));
                continue;
            }
        };
        let total: u64 = ranges.iter().map(|r| u64::from(r.count)).sum();
        if ranges.is_empty() && idmap::nss_names_subid_service(&nss) {
            out.push(Finding::note(
                &topic,
                format!("none in {file}; NSS names a subid service, so they may come from it"),
                Some(format!("getsubids {}", user.name)),
            ));
        } else if ranges.is_empty() {
            out.push(Finding::problem(
                &topic,
                format!(
                    "none for {} in {file}: containers get a single id (0 = you) and images with other owners fail",
                    user.name
                ),
                fix.clone(),
            ));
        } else if total < 65536 {
            out.push(Finding::note(
                &topic,
                format!(
                    "{} in {file}: fewer than 65536, files owned by higher ids in images cannot be mapped",
                    show_ranges(&ranges)
                ),
                Some(fix.clone()),
            ));
        } else {
            out.push(Finding::ok(
                &topic,
                format!("{} in {file}", show_ranges(&ranges)),
            ));
        }
    }
    out
}

fn show_ranges(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| {
            format!(
                "{}-{} ({})",
                r.start,
                u64::from(r.start) + u64::from(r.count) - 1,
                r.count
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The package-manager command that installs `newuidmap`/`newgidmap` on this distribution.
fn install_uidmap(host: &Host) -> String {
    let os = host.read("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let ids = format!("{} {}", field("ID="), field("ID_LIKE="));
    let has = |w: &str| ids.split_whitespace().any(|i| i == w);
    if has("debian") || has("ubuntu") {
        "sudo apt-get install uidmap".into()
    } else if has("fedora") || has("rhel") || has("centos") {
        "sudo dnf install shadow-utils".into()
    } else if has("arch") {
        "sudo pacman -S shadow".into()
    } else if has("suse") || has("opensuse") {
        "sudo zypper install shadow".into()
    } else if has("alpine") {
        "sudo apk add shadow-uidmap".into()
    } else {
        "install your distribution's package with newuidmap and newgidmap (shadow's uidmap)".into()
    }
}

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// The permitted capability set of a `security.capability` attribute (struct
/// vfs_cap_data, revisions 1–3: magic, then permitted/inheritable pairs of 32-bit words).
pub fn file_caps_permitted(raw: &[u8]) -> Option<u64> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            raw.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let magic = word(0)? & 0xFF00_0000;
    match magic {
        0x0100_0000 => Some(u64::from(word(1)?)),
        0x0200_0000 | 0x0300_0000 => Some(u64::from(word(1)?) | u64::from(word(3)?) << 32),
        _ => None,
    }
}

fn helper(name: &str, file: Option<&HelperFile>, root: bool, install: &str) -> Finding {
    let Some(f) = file else {
        if root {
            return Finding::ok(name, "not found; not needed as root");
        }
        return Finding::problem(
            name,
            "not found on PATH: only a single id can be mapped",
            install,
        );
    };
    let shown = f.path.display();
    if root {
        return Finding::ok(name, format!("{shown} (not needed as root)"));
    }
    let cap = if name == "newuidmap" {
        CAP_SETUID
    } else {
        CAP_SETGID
    };
    if f.mode & 0o4000 != 0 && f.owner == 0 {
        return Finding::ok(name, format!("{shown} is setuid root"));
    }
    if let Some(set) = f.caps.as_deref().and_then(file_caps_permitted)
        && set & (1 << cap) != 0
    {
        let cname = if cap == CAP_SETUID {
            "cap_setuid"
        } else {
            "cap_setgid"
        };
        return Finding::ok(name, format!("{shown} has the file capability {cname}"));
    }
    Finding::problem(
        name,
        format!(
            "{shown} is neither setuid root nor has file capabilities (mode {:04o}): it cannot write id maps",
            f.mode
        ),
        format!("sudo chown root {shown} && sudo chmod u+s {shown}"),
    )
}

fn tun(t: Tun, root: bool) -> Finding {
    const TOPIC: &str = "/dev/net/tun";
    match t {
        Tun::Missing => Finding::problem(
            TOPIC,
            "missing: no tap device for the user-mode network (--net=builtin, slirp4netns)",
            "sudo modprobe tun",
        ),
        Tun::NotCharDevice => Finding::problem(
            TOPIC,
            "exists but is not a character device",
            "sudo rm /dev/net/tun && sudo mknod -m 0666 /dev/net/tun c 10 200",
        ),
        Tun::Device { mode, open } => {
            // Inside the user namespace the device's owner (root) is unmapped: only the
            // "other" permission bits apply to the launcher's child.
            let world_rw = mode & 0o006 == 0o006;
            match open {
                Ok(()) if root || world_rw => Finding::ok(
                    TOPIC,
                    format!("a character device this user can open (mode {mode:04o})"),
                ),
                Ok(()) | Err(libc::EACCES) | Err(libc::EPERM) => Finding::problem(
                    TOPIC,
                    format!(
                        "mode {mode:04o}: inside a user namespace only the world bits apply, so the tap cannot be created"
                    ),
                    "sudo chmod 0666 /dev/net/tun && echo 'KERNEL==\"tun\", MODE=\"0666\"' | sudo tee /etc/udev/rules.d/60-nsnet-tun.rules",
                ),
                Err(e) => Finding::problem(
                    TOPIC,
                    format!(
                        "cannot be opened: {}",
                        nix::errno::Errno::from_raw(e).desc()
                    ),
                    "sudo modprobe tun",
                ),
            }
        }
    }
}

fn persist(key: &str, value: &str, file: &str) -> String {
    format!("sudo sysctl -w {key}={value} && echo {key}={value} | sudo tee /etc/sysctl.d/{file}")
}

fn user_namespaces(host: &Host, probe: Result<(), i32>) -> Finding {
    const TOPIC: &str = "user namespaces";
    let clone = host.sysctl("kernel.unprivileged_userns_clone");
    let max = host.sysctl("user.max_user_namespaces");
    let mut knobs = Vec::new();
    if let Some(v) = &clone {
        knobs.push(format!("kernel.unprivileged_userns_clone={v}"));
    }
    if let Some(v) = &max {
        knobs.push(format!("user.max_user_namespaces={v}"));
    }
    let knobs = if knobs.is_empty() {
        String::new()
    } else {
        format!(" ({})", knobs.join(", "))
    };
    if clone.as_deref() == Some("0") {
        return Finding::problem(
            TOPIC,
            format!("unprivileged user namespaces are disabled{knobs}"),
            persist(
                "kernel.unprivileged_userns_clone",
                "1",
                "50-nsnet-userns.conf",
            ),
        );
    }
    if max.as_deref() == Some("0") {
        return Finding::problem(
            TOPIC,
            format!("no user namespace may be created{knobs}"),
            persist("user.max_user_namespaces", "28633", "50-nsnet-userns.conf"),
        );
    }
    match probe {
        Ok(()) => Finding::ok(TOPIC, format!("this user can create them{knobs}")),
        Err(e) => {
            let why = nix::errno::Errno::from_raw(e).desc();
            if host
                .sysctl("kernel.apparmor_restrict_unprivileged_userns")
                .as_deref()
                == Some("1")
            {
                // The AppArmor finding carries the fix (a profile for the binary).
                Finding::problem(
                    TOPIC,
                    format!(
                        "creating a user and a network namespace failed: {why} (AppArmor restricts them: see below)"
                    ),
                    "see the AppArmor line",
                )
            } else {
                Finding::problem(
                    TOPIC,
                    format!("creating a user and a network namespace failed: {why}{knobs}"),
                    "check the kernel configuration (CONFIG_USER_NS) and any seccomp or LSM policy confining this shell",
                )
            }
        }
    }
}

/// The AppArmor profile file name Docker's and Ubuntu's documentation use for a binary: its
/// path without the leading slash, slashes turned into dots.
pub fn apparmor_profile_name(exe: &Path) -> String {
    exe.to_string_lossy()
        .trim_start_matches('/')
        .replace('/', ".")
}

/// Whether some profile under `/etc/apparmor.d` attaches to `exe` and grants `userns`.
fn apparmor_profile_for(host: &Host, exe: &Path) -> Option<PathBuf> {
    let exe = exe.to_string_lossy();
    let dir = host.path("/etc/apparmor.d");
    let mut entries: Vec<_> = std::fs::read_dir(&dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    entries.into_iter().find_map(|e| {
        let text = std::fs::read_to_string(e.path()).ok()?;
        let attaches = text.lines().any(|l| {
            let l = l.trim();
            !l.starts_with('#')
                && l.ends_with('{')
                && (l.contains(&format!("\"{exe}\"")) || l.split_whitespace().any(|w| w == exe))
        });
        let userns = text.lines().any(|l| l.trim() == "userns,");
        (attaches && userns).then(|| Path::new("/etc/apparmor.d").join(e.file_name()))
    })
}

fn apparmor(host: &Host, exe: &Path, root: bool) -> Finding {
    const TOPIC: &str = "AppArmor";
    let knob = "kernel.apparmor_restrict_unprivileged_userns";
    match host.sysctl(knob).as_deref() {
        None => Finding::ok(TOPIC, format!("{knob} is absent: no restriction")),
        Some("0") => Finding::ok(TOPIC, format!("{knob}=0: no restriction")),
        Some(v) if root => Finding::ok(TOPIC, format!("{knob}={v} does not apply to root")),
        Some(v) => match apparmor_profile_for(host, exe) {
            Some(p) => Finding::ok(
                TOPIC,
                format!(
                    "{knob}={v}; {} grants userns to {}",
                    p.display(),
                    exe.display()
                ),
            ),
            None => {
                let name = apparmor_profile_name(exe);
                let exe = exe.display();
                Finding::problem(
                    TOPIC,
                    format!(
                        "{knob}={v} and no profile grants userns to {exe}: its user namespaces get no capabilities"
                    ),
                    format!(
                        "sudo tee /etc/apparmor.d/{name} <<'EOF'\nabi <abi/4.0>,\ninclude <tunables/global>\n\"{exe}\" flags=(unconfined) {{\n  userns,\n  include if exists <local/{name}>\n}}\nEOF\nsudo apparmor_parser -r /etc/apparmor.d/{name}"
                    ),
                )
            }
        },
    }
}

fn unprivileged_ports(host: &Host) -> Finding {
    const KEY: &str = "net.ipv4.ip_unprivileged_port_start";
    const TOPIC: &str = "low ports";
    match host.sysctl(KEY) {
        Some(v) if v == "0" => Finding::ok(TOPIC, format!("{KEY}=0: any port can be published")),
        Some(v) => Finding::note(
            TOPIC,
            format!("{KEY}={v}: ports below {v} cannot be published rootless"),
            Some(persist(KEY, "0", "50-nsnet-ports.conf")),
        ),
        None => Finding::note(
            TOPIC,
            format!("{KEY} is absent: ports below 1024 need privilege"),
            None,
        ),
    }
}

/// The controllers the rootless Docker and Podman documentation ask to delegate.
const WANTED_CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

fn cgroups(host: &Host, user: &User) -> Finding {
    const TOPIC: &str = "cgroup v2";
    if host.read("/sys/fs/cgroup/cgroup.controllers").is_none() {
        let hybrid = host.path("/sys/fs/cgroup/unified").is_dir();
        return Finding::note(
            TOPIC,
            format!(
                "not the unified hierarchy ({}): rootless containers get no resource limits",
                if hybrid { "hybrid v1/v2" } else { "cgroup v1" }
            ),
            Some(
                "sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&systemd.unified_cgroup_hierarchy=1 /' /etc/default/grub && sudo update-grub && sudo reboot"
                    .into(),
            ),
        );
    }
    if user.is_root() {
        return Finding::ok(TOPIC, "unified hierarchy; root owns every controller");
    }
    let uid = user.uid;
    let file =
        format!("/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers");
    let fix = "sudo mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload";
    let Some(have) = host.read(&file) else {
        return Finding::note(
            TOPIC,
            format!(
                "unified hierarchy, but no systemd user manager for uid {uid} (log in through systemd-logind, or: sudo loginctl enable-linger {})",
                user.name
            ),
            None,
        );
    };
    let have: Vec<&str> = have.split_whitespace().collect();
    let missing: Vec<&str> = WANTED_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !have.contains(c))
        .collect();
    if missing.is_empty() {
        Finding::ok(
            TOPIC,
            format!("delegated to user@{uid}.service: {}", have.join(" ")),
        )
    } else {
        Finding::note(
            TOPIC,
            format!(
                "user@{uid}.service lacks {}: containers cannot be limited on them",
                missing.join(" ")
            ),
            Some(fix.into()),
        )
    }
}

#[cfg(test)]
mod tests;
