//! `nsnet run` with no command: a short report, printed from inside the new namespaces, of
//! what the launcher built — which namespaces are new, the id maps, the network interfaces
//! and the state directory.

use std::fmt::Write as _;

const TYPES: [&str; 7] = ["user", "mnt", "net", "pid", "uts", "ipc", "cgroup"];

fn inode(path: &str) -> Option<u64> {
    nsnet_ns::netns::ns_inode(std::path::Path::new(path)).ok()
}

/// `TYPE:INODE` for each namespace of the calling process.
pub fn own_namespaces() -> Vec<String> {
    TYPES
        .iter()
        .filter_map(|t| inode(&format!("/proc/self/ns/{t}")).map(|i| format!("{t}:{i}")))
        .collect()
}

fn map_text(file: &str) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn whoami(host_ns: &[String]) -> i32 {
    let host = |t: &str| {
        host_ns
            .iter()
            .find_map(|e| e.strip_prefix(t)?.strip_prefix(':')?.parse::<u64>().ok())
    };
    // /proc/self is the report process itself: with --pidns it lives in the new /proc.
    let mut out = String::new();
    let _ = writeln!(out, "namespaces (host → here):");
    for t in TYPES {
        let here = inode(&format!("/proc/self/ns/{t}"));
        let state = match (host(t), here) {
            (Some(h), Some(n)) if h == n => format!("{n}  shared with the host"),
            (Some(h), Some(n)) => format!("{h} → {n}  new"),
            (_, Some(n)) => n.to_string(),
            _ => "unreadable".into(),
        };
        let _ = writeln!(out, "  {t:<7}{state}");
    }
    let uid = nix::unistd::getuid();
    let _ = writeln!(
        out,
        "uid {uid} inside; uid_map: {}",
        map_text("/proc/self/uid_map")
    );
    let _ = writeln!(out, "gid_map: {}", map_text("/proc/self/gid_map"));
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut links = links;
    links.sort();
    let _ = writeln!(out, "network interfaces: {}", links.join(" "));
    if let Ok(dir) = std::env::var("NSNET_STATE_DIR") {
        let netns = std::path::Path::new(&dir).join("netns");
        let _ = writeln!(out, "state dir: {dir}");
        if let Some(i) = inode(&netns.to_string_lossy()).filter(|_| is_nsfs(&netns)) {
            let _ = writeln!(out, "detached netns: {} (net:[{i}])", netns.display());
        }
    }
    print!("{out}");
    0
}

fn is_nsfs(p: &std::path::Path) -> bool {
    nix::sys::statfs::statfs(p)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}
