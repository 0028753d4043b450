//! nftables rules of a namespace, as `trace` needs them: `nft -j list table FAMILY NAME`
//! run inside the namespace (rootless: after joining the user namespace that owns it, which
//! grants CAP_NET_ADMIN there; nft only reads), and the `forward` rule that would drop a
//! packet from one interface to another.
//!
//! Only what can be evaluated from interface names is judged: a rule made of `meta
//! iifname`/`meta oifname` matches (against a name or a named set of the same table),
//! counters, and a `drop` verdict — which is what nsnet's bridge rules are (see
//! `nsnet_bridge::nft`: isolation between networks and `--internal`). A rule with anything
//! else (addresses, ct state) is not guessed at: it is skipped, never claimed.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::nsfs;

fn nft() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nft"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin/nft", "/sbin/nft"].map(std::path::PathBuf::from))
        .find(|p| p.is_file())
}

/// `nft -j list table FAMILY TABLE` inside the netns open on `netns`.
pub fn list_table(netns: BorrowedFd<'_>, family: &str, table: &str) -> Result<String, String> {
    list(netns, &["table", family, table])
}

/// `nft -j list ruleset` inside the netns open on `netns` (every table: nsnet's, and
/// iptables-nft's `filter`/`nat` that Docker and CNI plugins program).
pub fn list_ruleset(netns: BorrowedFd<'_>) -> Result<String, String> {
    list(netns, &["ruleset"])
}

fn list(netns: BorrowedFd<'_>, what: &[&str]) -> Result<String, String> {
    let nft = nft().ok_or("nft is not installed")?;
    let user = nsfs::owning_userns(netns).ok();
    let own_user = nsfs::open(std::path::Path::new("/proc/self/ns/user"))
        .and_then(|f| nsfs::inode(std::os::fd::AsFd::as_fd(&f)))
        .ok();
    let user = user.filter(|u| nsfs::inode(std::os::fd::AsFd::as_fd(u)).ok() != own_user);
    let (net_fd, user_fd) = (netns.as_raw_fd(), user.as_ref().map(|u| u.as_raw_fd()));
    let mut cmd = Command::new(nft);
    cmd.args(["-j", "list"])
        .args(what)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only setns(2) calls on descriptors the parent holds
    // open for the child's whole life (the Command is waited for below).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(net_fd, libc::CLONE_NEWNET) == 0 {
                return Ok(());
            }
            let Some(u) = user_fd else {
                return Err(std::io::Error::last_os_error());
            };
            if libc::setns(u, libc::CLONE_NEWUSER) != 0
                || libc::setns(net_fd, libc::CLONE_NEWNET) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run nft there: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn set_elems(doc: &Value, name: &str) -> Vec<String> {
    doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("set"))
        .filter(|s| s["name"] == name)
        .flat_map(|s| match &s["elem"] {
            Value::Array(a) => a
                .iter()
                .filter_map(|e| e.as_str().map(String::from))
                .collect(),
            Value::String(e) => vec![e.clone()],
            _ => Vec::new(),
        })
        .collect()
}

/// The first rule of chain `forward` that drops a packet from `iif` to `oif`, in words.
pub fn dropping_rule(json: &str, iif: &str, oif: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(json).ok()?;
    for obj in doc["nftables"].as_array()? {
        let Some(r) = obj.get("rule") else { continue };
        if r["chain"] != "forward" {
            continue;
        }
        let mut all = true;
        let mut drop = false;
        let mut words = Vec::new();
        for e in r["expr"].as_array()? {
            if let Some(m) = e.get("match") {
                let key = m["left"]["meta"]["key"].as_str();
                let (value, shown) = match key {
                    Some("iifname") => (iif, "iifname"),
                    Some("oifname") => (oif, "oifname"),
                    _ => {
                        all = false;
                        break;
                    }
                };
                let right = m["right"].as_str().unwrap_or_default();
                let set: Vec<String> = match right.strip_prefix('@') {
                    Some(s) => set_elems(&doc, s),
                    None => vec![right.to_string()],
                };
                let hit = set.iter().any(|s| s == value);
                let ok = match m["op"].as_str() {
                    Some("==") => hit,
                    Some("!=") => !hit,
                    _ => {
                        all = false;
                        break;
                    }
                };
                if !ok {
                    all = false;
                    break;
                }
                let op = if m["op"] == "==" { "" } else { "!= " };
                words.push(format!("{shown} {op}{right}"));
            } else if e.get("drop").is_some() {
                drop = true;
            } else if e.get("counter").is_none() {
                all = false;
                break;
            }
        }
        if all && drop {
            let comment = r["comment"].as_str().unwrap_or_default();
            let internal = words.len() == 2
                && words[0] == format!("iifname {iif}")
                && words[1] == format!("oifname != {iif}");
            return Some(format!(
                "dropped by the nft rule \"{} drop\" in table {} {} chain forward{}{}",
                words.join(" "),
                r["family"].as_str().unwrap_or("?"),
                r["table"].as_str().unwrap_or("?"),
                if comment.is_empty() {
                    String::new()
                } else {
                    format!(" ({comment})")
                },
                if internal {
                    ": the network is --internal"
                } else {
                    ""
                }
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -j list table ip nsnet` as nft 1.0.6 prints nsnet's table with one normal and
    /// one internal network (abridged to the objects read).
    const TABLE: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "nsnet", "handle": 1}}, {"chain": {"family": "ip", "table": "nsnet", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}, {"set": {"family": "ip", "name": "bridges", "table": "nsnet", "type": "ifname", "handle": 3, "elem": ["nerdctl0", "br-7d1c"]}}, {"rule": {"family": "ip", "table": "nsnet", "chain": "forward", "handle": 5, "comment": "nsnet network bridge", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "nerdctl0"}}, {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "@bridges"}}, {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "nerdctl0"}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "nsnet", "chain": "forward", "handle": 6, "comment": "nsnet network inner", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br-7d1c"}}, {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "br-7d1c"}}, {"drop": null}]}}]}"#;

    #[test]
    fn names_the_internal_and_isolation_drops() {
        let r = dropping_rule(TABLE, "br-7d1c", "tap0").unwrap();
        assert_eq!(
            r,
            "dropped by the nft rule \"iifname br-7d1c oifname != br-7d1c drop\" in table ip nsnet chain forward (nsnet network inner): the network is --internal"
        );
        let r = dropping_rule(TABLE, "nerdctl0", "br-7d1c").unwrap();
        assert!(
            r.contains("oifname @bridges oifname != nerdctl0 drop"),
            "{r}"
        );
        assert!(!r.ends_with("--internal"), "{r}");
        // Out of the normal network to the uplink: no rule drops it.
        assert_eq!(dropping_rule(TABLE, "nerdctl0", "tap0"), None);
        // Inside the internal bridge (container to container): not dropped.
        assert_eq!(dropping_rule(TABLE, "br-7d1c", "br-7d1c"), None);
    }
}
