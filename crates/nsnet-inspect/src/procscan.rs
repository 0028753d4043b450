//! One pass over `/proc`: every process's namespaces (and its threads' where they differ),
//! the namespace and tun descriptors it holds, its rootless state directory, and the nsfs
//! bind mounts of every distinct mount namespace.
//!
//! Why each source is needed (and what `lsns` misses): a namespace lives while anything
//! references it, and a process being *in* it is only one kind of reference. A descriptor
//! (`/proc/PID/fd/N` → `net:[…]`) keeps it alive with nobody inside; so does a bind mount of
//! an nsfs file, which is visible only inside the mount namespace that has it — RootlessKit's
//! detached `$STATE/netns` exists only in the child's mount namespace. So each distinct mount
//! namespace's `mountinfo` is read once (through one of its processes), and an nsfs mount's
//! root field (`net:[N]`) names the namespace without opening it.
//!
//! Reading another process's `ns`, `fd`, `environ` or `root` needs ptrace read access: other
//! users' processes are unreadable rootless. Those are counted, not fatal; processes that exit
//! during the scan are skipped silently.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::nsfs::{NsId, NsType};

/// What one process contributes.
#[derive(Debug, Clone, Default)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    /// The namespaces the process is in (`/proc/PID/ns`), by kind.
    pub ns: BTreeMap<NsType, u64>,
    /// Namespaces of threads that differ from the process's own (a thread may `setns`).
    pub thread_ns: Vec<(i32, NsId)>,
    /// Namespace descriptors: (fd number, namespace).
    pub ns_fds: Vec<(i32, NsId)>,
    /// `/dev/net/tun` descriptors attached to a device: (fd number, interface name).
    pub tun_fds: Vec<(i32, String)>,
    /// Socket descriptors: (fd number, socket inode), to name the process holding a
    /// listener found in `/proc/net/tcp`.
    pub sockets: Vec<(i32, u64)>,
    /// `ROOTLESSKIT_STATE_DIR` from its environment.
    pub state_dir: Option<PathBuf>,
    /// Its command line (readable for every process, also where the rest is not: the
    /// engines' helpers — pasta, conmon, docker-proxy — say what they serve in it).
    pub cmdline: Vec<String>,
    /// Where its user keeps data (`$XDG_DATA_HOME`, else `$HOME/.local/share`) and its
    /// configuration (`$XDG_CONFIG_HOME`, else `$HOME/.config`), from its environment: a
    /// rootless engine's on-disk state is under these.
    pub data_home: Option<PathBuf>,
    pub config_home: Option<PathBuf>,
    /// The namespaces could not be read (other user's process, rootless).
    pub unreadable: bool,
    /// Its namespaces were readable but its descriptors were not (a non-dumpable process,
    /// such as pasta: its `/proc/PID/fd` belongs to root).
    pub fds_unreadable: bool,
}

/// An nsfs bind mount seen in one mount namespace.
#[derive(Debug, Clone)]
pub struct NsMount {
    pub ns: NsId,
    /// The mount point as the mount namespace sees it.
    pub path: PathBuf,
    /// The mount namespace it lives in, and a process through which it is reached.
    pub mntns: u64,
    pub via_pid: i32,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub procs: Vec<Proc>,
    pub mounts: Vec<NsMount>,
    /// Mount namespaces whose mountinfo could not be read, with why.
    pub mount_errors: Vec<(u64, String)>,
}

impl Scan {
    pub fn proc(&self, pid: i32) -> Option<&Proc> {
        self.procs
            .binary_search_by_key(&pid, |p| p.pid)
            .ok()
            .map(|i| &self.procs[i])
    }
}

fn pids(dir: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn read_ns_dir(dir: &Path) -> std::io::Result<BTreeMap<NsType, u64>> {
    let mut out = BTreeMap::new();
    for t in NsType::ALL {
        match std::fs::read_link(dir.join(t.name())) {
            Ok(l) => {
                if let Some(id) = l.to_str().and_then(NsId::parse) {
                    out.insert(t, id.inode);
                }
            }
            // A kernel without this kind (time before 5.6).
            Err(e) if e.kind() == ErrorKind::NotFound && dir.exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// `(ppid, comm)` from `/proc/PID/stat` (comm may hold spaces and parentheses).
fn stat(pid: i32) -> Option<(i32, String)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let ppid = s[close + 1..].split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

fn scan_proc(pid: i32) -> Option<Proc> {
    let (ppid, comm) = stat(pid)?;
    let base = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = std::fs::read(base.join("cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut cmdline = cmdline;
    // The kernel ends the list with a NUL: drop the empty word after it.
    if cmdline.last().is_some_and(String::is_empty) {
        cmdline.pop();
    }
    let mut p = Proc {
        pid,
        ppid,
        comm,
        cmdline,
        ..Proc::default()
    };
    match read_ns_dir(&base.join("ns")) {
        Ok(ns) => p.ns = ns,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            p.unreadable = true;
            return Some(p);
        }
        Err(_) => return None, // gone
    }
    for tid in pids(&base.join("task")) {
        if tid == pid {
            continue;
        }
        if let Ok(ns) = read_ns_dir(&base.join(format!("task/{tid}/ns"))) {
            for (k, ino) in ns {
                if p.ns.get(&k) != Some(&ino) {
                    p.thread_ns.push((
                        tid,
                        NsId {
                            kind: k,
                            inode: ino,
                        },
                    ));
                }
            }
        }
    }
    let fds = std::fs::read_dir(base.join("fd"));
    if let Err(e) = &fds
        && e.kind() == ErrorKind::PermissionDenied
    {
        p.fds_unreadable = true;
    }
    if let Ok(dir) = fds {
        for e in dir.flatten() {
            let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(id) = NsId::parse(&target) {
                p.ns_fds.push((fd, id));
            } else if let Some(ino) = target
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
            {
                p.sockets.push((fd, ino));
            } else if target == "/dev/net/tun"
                && let Ok(info) = std::fs::read_to_string(base.join(format!("fdinfo/{fd}")))
                && let Some(iff) = info.lines().find_map(|l| l.strip_prefix("iff:"))
            {
                p.tun_fds.push((fd, iff.trim().to_string()));
            }
        }
        p.ns_fds.sort();
        p.tun_fds.sort();
    }
    if let Ok(env) = std::fs::read(base.join("environ")) {
        let var = |name: &str| {
            env.split(|b| *b == 0).find_map(|kv| {
                let v = kv.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
                (!v.is_empty()).then(|| PathBuf::from(String::from_utf8_lossy(v).into_owned()))
            })
        };
        p.state_dir = var("ROOTLESSKIT_STATE_DIR");
        let home = var("HOME");
        p.data_home =
            var("XDG_DATA_HOME").or_else(|| home.as_ref().map(|h| h.join(".local/share")));
        p.config_home = var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
    }
    Some(p)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The nsfs mounts in one mountinfo text: (namespace, mount point).
pub fn nsfs_mounts(mountinfo: &str) -> Vec<(NsId, PathBuf)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            if post.split(' ').next()? != "nsfs" {
                return None;
            }
            let mut f = pre.split(' ');
            let root = f.nth(3)?;
            let point = f.next()?;
            Some((NsId::parse(root)?, PathBuf::from(unescape(point))))
        })
        .collect()
}

/// Scans every process, then every distinct mount namespace once.
pub fn scan() -> Scan {
    let mut s = Scan::default();
    for pid in pids(Path::new("/proc")) {
        if let Some(p) = scan_proc(pid) {
            s.procs.push(p);
        }
    }
    let mut seen: BTreeMap<u64, ()> = BTreeMap::new();
    for p in &s.procs {
        let Some(&mnt) = p.ns.get(&NsType::Mnt) else {
            continue;
        };
        if seen.contains_key(&mnt) {
            continue;
        }
        match std::fs::read_to_string(format!("/proc/{}/mountinfo", p.pid)) {
            Ok(text) => {
                seen.insert(mnt, ());
                for (ns, path) in nsfs_mounts(&text) {
                    s.mounts.push(NsMount {
                        ns,
                        path,
                        mntns: mnt,
                        via_pid: p.pid,
                    });
                }
            }
            // Gone or not readable: another process of the same namespace may do.
            Err(_) => continue,
        }
    }
    for p in &s.procs {
        if let Some(&mnt) = p.ns.get(&NsType::Mnt)
            && !seen.contains_key(&mnt)
            && !s.mount_errors.iter().any(|(m, _)| *m == mnt)
        {
            s.mount_errors
                .push((mnt, format!("mountinfo not readable through pid {}", p.pid)));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nsfs_mounts_and_unescapes_their_paths() {
        let text = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
480 22 0:4 net:[4026532890] /run/user/1000/state\\040dir/netns rw - nsfs nsfs rw
481 22 0:4 / /proc rw - proc proc rw
";
        let m = nsfs_mounts(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0.to_string(), "net:[4026532890]");
        assert_eq!(m[0].1, PathBuf::from("/run/user/1000/state dir/netns"));
    }

    #[test]
    fn scan_sees_this_process_and_its_comm() {
        let s = scan();
        let me = s
            .proc(std::process::id() as i32)
            .expect("own pid in the scan");
        assert!(!me.unreadable);
        let own_net = std::fs::read_link("/proc/self/ns/net").unwrap();
        assert_eq!(
            format!("net:[{}]", me.ns[&NsType::Net]),
            own_net.to_str().unwrap()
        );
    }

    #[test]
    fn a_held_namespace_descriptor_is_seen() {
        let f = std::fs::File::open("/proc/self/ns/uts").unwrap();
        let s = scan();
        let me = s.proc(std::process::id() as i32).unwrap();
        use std::os::fd::AsRawFd;
        assert!(
            me.ns_fds
                .iter()
                .any(|(fd, id)| *fd == f.as_raw_fd() && id.kind == NsType::Uts),
            "{:?}",
            me.ns_fds
        );
    }
}
