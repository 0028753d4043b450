//! nftables rules for the bridge networks, as an `ip nsnet` and an `ip6 nsnet` table
//! regenerated from the network files and applied with `nft -j -f -` (the JSON interface:
//! structured, no shell strings, one atomic transaction for both).
//!
//! Two tables of the same shape rather than one `inet` table: the IPv4 table keeps the name
//! and family that running instances and tools already know, and the IPv6 one mirrors it
//! (`ip6 saddr SUBNET6 ip6 daddr != SUBNET6 masquerade` for IPv6 networks; the same
//! interface-based isolation and internal drops, so IPv6 cannot bypass them).
//!
//! Each table:
//! - chain `postrouting` (nat, hook postrouting): per non-internal network,
//!   `ip saddr SUBNET ip daddr != SUBNET masquerade` — outbound NAT to whatever uplink the
//!   route picks (tap0 in the rootless child).
//! - chain `forward` (filter, hook forward): per network, drop traffic from its bridge to any
//!   *other* nsnet bridge (set `bridges`), Docker's isolation between networks; for internal
//!   networks, drop everything that enters or leaves the bridge for another interface.
//!
//! The transaction starts with `add table` + `delete table` (the idiom that makes the delete
//! succeed whether or not the table existed), so applying is idempotent and rules are never
//! duplicated or left behind: the table is a pure function of the network files.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::{Error, Network, Result, Store};

pub(crate) const TABLE: &str = "nsnet";

/// The subnet of `n` in `family`, if it has one there.
fn prefix(family: &str, n: &Network) -> Option<Value> {
    let (addr, len) = match family {
        "ip" => (n.subnet.base().to_string(), n.subnet.prefix_len()),
        _ => n.subnet6.map(|s| (s.base().to_string(), s.prefix_len()))?,
    };
    Some(json!({"prefix": {"addr": addr, "len": len}}))
}

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn rule(family: &str, chain: &str, comment: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {
        "family": family, "table": TABLE, "chain": chain, "comment": comment, "expr": expr
    }}})
}

/// The JSON document that makes the `ip nsnet` and `ip6 nsnet` tables match `networks`.
pub(crate) fn ruleset(networks: &[Network]) -> Value {
    let mut cmds = Vec::new();
    for family in ["ip", "ip6"] {
        family_rules(family, networks, &mut cmds);
    }
    json!({"nftables": cmds})
}

fn family_rules(family: &str, networks: &[Network], cmds: &mut Vec<Value>) {
    let table = json!({"family": family, "name": TABLE});
    let rule = |chain: &str, comment: &str, expr: Vec<Value>| rule(family, chain, comment, expr);
    cmds.extend([
        json!({"add": {"table": table}}),
        json!({"delete": {"table": table}}),
        json!({"add": {"table": table}}),
        json!({"add": {"chain": {
            "family": family, "table": TABLE, "name": "postrouting",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"
        }}}),
        json!({"add": {"chain": {
            "family": family, "table": TABLE, "name": "forward",
            "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"
        }}}),
    ]);
    let mut set = json!({"family": family, "table": TABLE, "name": "bridges", "type": "ifname"});
    if !networks.is_empty() {
        set["elem"] = networks.iter().map(|n| json!(n.bridge)).collect();
    }
    cmds.push(json!({"add": {"set": set}}));
    for n in networks {
        let br = json!(n.bridge);
        let comment = format!("nsnet network {}", n.name);
        if n.internal {
            cmds.push(rule(
                "forward",
                &comment,
                vec![
                    m("==", meta("iifname"), br.clone()),
                    m("!=", meta("oifname"), br.clone()),
                    json!({"drop": null}),
                ],
            ));
            cmds.push(rule(
                "forward",
                &comment,
                vec![
                    m("==", meta("oifname"), br.clone()),
                    m("!=", meta("iifname"), br.clone()),
                    json!({"drop": null}),
                ],
            ));
            continue;
        }
        cmds.push(rule(
            "forward",
            &comment,
            vec![
                m("==", meta("iifname"), br.clone()),
                m("==", meta("oifname"), json!("@bridges")),
                m("!=", meta("oifname"), br.clone()),
                json!({"drop": null}),
            ],
        ));
        let Some(p) = prefix(family, n).filter(|_| n.masquerade) else {
            continue;
        };
        let field = |f: &str| json!({"payload": {"protocol": family, "field": f}});
        cmds.push(rule(
            "postrouting",
            &comment,
            vec![
                m("==", field("saddr"), p.clone()),
                m("!=", field("daddr"), p),
                json!({"masquerade": null}),
            ],
        ));
    }
}

/// The `nft` binary: on `$PATH`, else the sbin directories an unprivileged user's `$PATH`
/// often lacks.
pub(crate) fn nft_path() -> Result<PathBuf> {
    let from_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nft")).collect())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(["/usr/sbin/nft", "/sbin/nft"].map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or(Error::NoNft)
}

/// Runs `nft -j -f -` with `doc` on its standard input.
pub(crate) fn apply(doc: &Value) -> Result<()> {
    let nft = nft_path()?;
    let mut child = Command::new(&nft)
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Io { path: nft, source })?;
    let text = doc.to_string();
    let wrote = child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes());
    let out = child.wait_with_output().map_err(|source| Error::Io {
        path: "nft".into(),
        source,
    })?;
    if !out.status.success() || wrote.is_err() {
        return Err(Error::Nft {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(())
}

/// Makes the current netns's `ip nsnet` and `ip6 nsnet` tables match the store's networks.
pub(crate) fn sync(store: &Store) -> Result<()> {
    apply(&ruleset(&crate::network::stored_networks(store)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_has_nat_for_normal_networks_and_drops_for_internal_ones() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        let b = crate::inspect_network(&st, "bridge").unwrap();
        let i = crate::create_network(
            &st,
            "inner",
            &crate::NetworkOptions {
                internal: true,
                ..Default::default()
            },
        )
        .unwrap();
        let doc = ruleset(&[b.clone(), i.clone()]);
        let cmds = doc["nftables"].as_array().unwrap();
        assert_eq!(cmds[0]["add"]["table"]["name"], "nsnet");
        assert_eq!(cmds[1]["delete"]["table"]["name"], "nsnet");
        let set = cmds.iter().find(|c| c["add"]["set"].is_object()).unwrap();
        assert_eq!(set["add"]["set"]["elem"], json!(["nerdctl0", i.bridge]));
        let rules: Vec<&Value> = cmds
            .iter()
            .filter_map(|c| c["add"]["rule"].as_object().map(|_| &c["add"]["rule"]))
            .filter(|r| r["family"] == "ip")
            .collect();
        let nat: Vec<_> = rules
            .iter()
            .filter(|r| r["chain"] == "postrouting")
            .collect();
        assert_eq!(nat.len(), 1, "only the non-internal network is masqueraded");
        assert_eq!(nat[0]["comment"], "nsnet network bridge");
        assert_eq!(
            nat[0]["expr"][0]["match"]["right"]["prefix"],
            json!({"addr": "10.4.0.0", "len": 24})
        );
        assert_eq!(nat[0]["expr"][1]["match"]["op"], "!=");
        let inner: Vec<_> = rules
            .iter()
            .filter(|r| r["comment"] == "nsnet network inner")
            .collect();
        assert_eq!(inner.len(), 2);
        assert!(inner.iter().all(|r| r["chain"] == "forward"));
        // Without IPv6 networks the ip6 table has the isolation rules and no NAT.
        let nat6 = cmds
            .iter()
            .filter(|c| c["add"]["rule"]["family"] == "ip6")
            .filter(|c| c["add"]["rule"]["chain"] == "postrouting")
            .count();
        assert_eq!(nat6, 0);
        let v6 = crate::create_network(
            &st,
            "six",
            &crate::NetworkOptions {
                ipv6: true,
                ..Default::default()
            },
        )
        .unwrap();
        let doc = ruleset(&[b, i, v6]);
        let cmds = doc["nftables"].as_array().unwrap();
        let of = |fam: &str, chain: &str| -> Vec<Value> {
            cmds.iter()
                .map(|c| c["add"]["rule"].clone())
                .filter(|r| r["family"] == fam && r["chain"] == chain)
                .collect()
        };
        let nat6 = of("ip6", "postrouting");
        assert_eq!(nat6.len(), 1);
        assert_eq!(nat6[0]["comment"], "nsnet network six");
        assert_eq!(
            nat6[0]["expr"][0]["match"]["left"]["payload"]["protocol"],
            "ip6"
        );
        assert_eq!(
            nat6[0]["expr"][0]["match"]["right"]["prefix"],
            json!({"addr": "fd00:4:2::", "len": 64})
        );
        assert_eq!(of("ip", "postrouting").len(), 2);
        // Isolation and internal drops are the same in both families.
        assert_eq!(of("ip6", "forward"), {
            let mut v = of("ip", "forward");
            for r in &mut v {
                r["family"] = json!("ip6");
            }
            v
        });
        assert!(
            cmds.iter()
                .any(|c| c["delete"]["table"] == json!({"family": "ip6", "name": "nsnet"}))
        );
        // An empty store still yields a valid (empty) set.
        let empty = ruleset(&[]);
        assert!(empty.to_string().contains("\"bridges\""));
    }
}
