//! User namespace id maps.
//!
//! A rootless launcher maps uid 0 inside the namespace to the calling user, and uids
//! 1..=N to the user's subordinate range, exactly as RootlessKit does:
//!
//! ```text
//! 0 1001 1
//! 1 100000 65536
//! ```
//!
//! Writing a map with more than the caller's own id needs privilege in the parent user
//! namespace, which the setuid helpers `newuidmap`/`newgidmap` (Debian package `uidmap`)
//! provide after checking `/etc/subuid` and `/etc/subgid`. Without ranges or helpers we fall
//! back to the one map an unprivileged process may write itself (`0 EUID 1`), which also
//! requires `deny` in `/proc/PID/setgroups` before the gid map (user_namespaces(7)).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

pub const SUBUID_FILE: &str = "/etc/subuid";
pub const SUBGID_FILE: &str = "/etc/subgid";
const GETSUBIDS: &str = "/usr/bin/getsubids";

/// Which ids a map is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Uid,
    Gid,
}

impl IdKind {
    fn helper(self) -> &'static str {
        match self {
            IdKind::Uid => "newuidmap",
            IdKind::Gid => "newgidmap",
        }
    }
    fn proc_file(self) -> &'static str {
        match self {
            IdKind::Uid => "uid_map",
            IdKind::Gid => "gid_map",
        }
    }
}

/// Where subordinate ranges come from (`--subid-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubidSource {
    /// `getsubids` when it exists and answers, else the files.
    #[default]
    Auto,
    /// Only `getsubids` (NSS-provided ranges, e.g. from LDAP or SSSD).
    Dynamic,
    /// Only `/etc/subuid` and `/etc/subgid`.
    Static,
}

/// A contiguous block of subordinate ids owned by a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// One line of `/proc/PID/{uid,gid}_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapLine {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Parses `/etc/subuid`-style text, keeping the entries for `name` or the numeric `id`.
pub fn parse_subid_file(text: &str, path: &Path, name: &str, id: u32) -> Result<Vec<IdRange>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || Error::SubidSyntax {
            path: path.to_path_buf(),
            line: i + 1,
            text: raw.to_string(),
        };
        let mut fields = line.split(':');
        let (Some(owner), Some(start), Some(count), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let start: u32 = start.parse().map_err(|_| bad())?;
        let count: u32 = count.parse().map_err(|_| bad())?;
        let matches = owner == name || owner.parse::<u32>().is_ok_and(|n| n == id);
        if matches && count > 0 {
            out.push(IdRange { start, count });
        }
    }
    Ok(out)
}

/// Parses `getsubids` output: lines like `0: alice 100000 65536`.
pub fn parse_getsubids(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().skip(2);
            let start = f.next()?.parse().ok()?;
            let count = f.next()?.parse().ok()?;
            (count > 0).then_some(IdRange { start, count })
        })
        .collect()
}

fn ranges_dynamic(kind: IdKind, name: &str) -> Option<Vec<IdRange>> {
    let mut cmd = Command::new(GETSUBIDS);
    if kind == IdKind::Gid {
        cmd.arg("-g");
    }
    let out = cmd.arg(name).output().ok()?;
    out.status
        .success()
        .then(|| parse_getsubids(&String::from_utf8_lossy(&out.stdout)))
}

fn ranges_static(kind: IdKind, name: &str, id: u32) -> Result<Vec<IdRange>> {
    let path = PathBuf::from(match kind {
        IdKind::Uid => SUBUID_FILE,
        IdKind::Gid => SUBGID_FILE,
    });
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_subid_file(&text, &path, name, id),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(Error::Read { path, source }),
    }
}

/// Whether `nsswitch.conf` text names a `subid` service other than the files; only then can
/// `getsubids` see ranges that `/etc/subuid` lacks.
pub fn nss_names_subid_service(nsswitch: &str) -> bool {
    nsswitch
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.strip_prefix("subid:"))
        .any(|services| services.split_whitespace().any(|s| s != "files"))
}

/// The subordinate ranges of user `name` (numeric id `id`) for `kind`.
///
/// `Auto` asks `getsubids` only when NSS is configured with a subid service: otherwise
/// `getsubids` reads the same files, and each call costs a fork and exec (~3.5 ms here, two
/// per launch: the largest single part of start-up time).
pub fn subordinate_ranges(
    kind: IdKind,
    name: &str,
    id: u32,
    source: SubidSource,
) -> Result<Vec<IdRange>> {
    match source {
        SubidSource::Static => ranges_static(kind, name, id),
        SubidSource::Dynamic => Ok(ranges_dynamic(kind, name).unwrap_or_default()),
        SubidSource::Auto => {
            let nss = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
            if nss_names_subid_service(&nss)
                && let Some(r) = ranges_dynamic(kind, name)
                && !r.is_empty()
            {
                return Ok(r);
            }
            ranges_static(kind, name, id)
        }
    }
}

/// The map RootlessKit writes: `0 → own`, then each range packed from 1 upwards.
pub fn plan(own: u32, ranges: &[IdRange]) -> Vec<MapLine> {
    let mut lines = vec![MapLine {
        inside: 0,
        outside: own,
        count: 1,
    }];
    let mut next = 1u32;
    for r in ranges {
        lines.push(MapLine {
            inside: next,
            outside: r.start,
            count: r.count,
        });
        next = next.saturating_add(r.count);
    }
    lines
}

/// How a child's maps were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMethod {
    /// Full map through the setuid helpers.
    Helpers,
    /// `0 → own` only, written directly (no ranges or no helpers).
    SingleId,
}

fn helper_args(pid: i32, lines: &[MapLine]) -> Vec<String> {
    let mut args = vec![pid.to_string()];
    for l in lines {
        args.extend([l.inside, l.outside, l.count].map(|n| n.to_string()));
    }
    args
}

fn run_helper(kind: IdKind, pid: i32, lines: &[MapLine]) -> Result<()> {
    let helper = kind.helper();
    let args = helper_args(pid, lines);
    let out = Command::new(helper)
        .args(&args)
        .output()
        .map_err(|source| Error::HelperMissing { helper, source })?;
    if !out.status.success() {
        let mut output = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if output.is_empty() {
            let _ = write!(output, "exit status {}", out.status);
        }
        return Err(Error::HelperFailed {
            helper,
            args: args.join(" "),
            output,
        });
    }
    Ok(())
}

fn write_proc(pid: i32, file: &str, text: &str) -> Result<()> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, text).map_err(|source| Error::Write { path, source })
}

/// Writes the single-id maps an unprivileged process may write for its own child.
pub fn write_single_id_maps(pid: i32, uid: u32, gid: u32) -> Result<()> {
    write_proc(pid, IdKind::Uid.proc_file(), &format!("0 {uid} 1\n"))?;
    // Without CAP_SETGID in the parent namespace the kernel accepts a gid map only after
    // setgroups(2) has been disabled for the namespace.
    write_proc(pid, "setgroups", "deny\n")?;
    write_proc(pid, IdKind::Gid.proc_file(), &format!("0 {gid} 1\n"))
}

/// Maps for a child that has just entered a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<MapLine>,
    pub gid: Vec<MapLine>,
}

impl IdMaps {
    /// Plans the maps for the calling user. `None` from this call means the user has no
    /// subordinate ranges, and only the single-id map can be written.
    pub fn for_current_user(source: SubidSource) -> Result<Option<IdMaps>> {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let name = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        let uranges = subordinate_ranges(IdKind::Uid, &name, uid, source)?;
        let granges = subordinate_ranges(IdKind::Gid, &name, uid, source)?;
        if uranges.is_empty() || granges.is_empty() {
            return Ok(None);
        }
        Ok(Some(IdMaps {
            uid: plan(uid, &uranges),
            gid: plan(gid, &granges),
        }))
    }

    /// Writes both maps for `pid` with the setuid helpers.
    pub fn write_with_helpers(&self, pid: i32) -> Result<()> {
        run_helper(IdKind::Uid, pid, &self.uid)?;
        run_helper(IdKind::Gid, pid, &self.gid)
    }
}

/// Writes the best maps available for `pid`, returning how, and a warning when it fell back.
pub fn write_maps(pid: i32, source: SubidSource) -> Result<(MapMethod, Option<String>)> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    match IdMaps::for_current_user(source)? {
        Some(maps) => match maps.write_with_helpers(pid) {
            Ok(()) => Ok((MapMethod::Helpers, None)),
            Err(Error::HelperMissing { helper, .. }) => {
                write_single_id_maps(pid, uid, gid)?;
                Ok((
                    MapMethod::SingleId,
                    Some(format!(
                        "{helper} not found (install the uidmap package); mapping only uid {uid} and gid {gid}"
                    )),
                ))
            }
            Err(e) => Err(e),
        },
        None => {
            write_single_id_maps(pid, uid, gid)?;
            Ok((
                MapMethod::SingleId,
                Some(format!(
                    "no subordinate id ranges for uid {uid} in {SUBUID_FILE} and {SUBGID_FILE}; mapping only uid {uid} and gid {gid} (add ranges with usermod --add-subuids/--add-subgids)"
                )),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/etc/subuid";

    #[test]
    fn parses_entries_by_name_and_by_id() {
        let text = "# comment\nalice:100000:65536\n1001:300000:10\nbob:200000:65536\n";
        let r = parse_subid_file(text, Path::new(P), "alice", 1001).unwrap();
        assert_eq!(
            r,
            vec![
                IdRange {
                    start: 100000,
                    count: 65536
                },
                IdRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert!(
            parse_subid_file(text, Path::new(P), "carol", 7)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rejects_malformed_lines_with_their_number() {
        let e = parse_subid_file("alice:1:2\nalice:x:3\n", Path::new(P), "alice", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/subuid:2: malformed subordinate id entry \"alice:x:3\" (want NAME:START:COUNT)"
        );
        assert!(parse_subid_file("alice:1:2:3\n", Path::new(P), "alice", 1).is_err());
    }

    #[test]
    fn parses_getsubids_output() {
        let r = parse_getsubids("0: alice 100000 65536\n1: alice 300000 5\ngarbage\n");
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[1],
            IdRange {
                start: 300000,
                count: 5
            }
        );
    }

    #[test]
    fn nsswitch_subid_detection() {
        assert!(!nss_names_subid_service("passwd: files\n"));
        assert!(!nss_names_subid_service("subid: files\n"));
        assert!(!nss_names_subid_service("# subid: sss\n"));
        assert!(nss_names_subid_service(
            "passwd: files\nsubid:   sss # ranges in LDAP\n"
        ));
    }

    #[test]
    fn plan_packs_ranges_after_root() {
        let lines = plan(
            1001,
            &[
                IdRange {
                    start: 100000,
                    count: 65536,
                },
                IdRange {
                    start: 300000,
                    count: 10,
                },
            ],
        );
        assert_eq!(
            helper_args(42, &lines).join(" "),
            "42 0 1001 1 1 100000 65536 65537 300000 10"
        );
    }
}
