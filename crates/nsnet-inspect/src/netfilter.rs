//! A namespace's whole nftables ruleset judged for one new connection, as `trace` needs
//! it beyond nsnet's own table (see [`crate::nft`]): the `forward` hook's base chains
//! (the filter verdict, jumps and gotos followed) and the `postrouting` NAT chains (who
//! masquerades). This is where iptables rules show up too: iptables-nft (Debian's
//! default `iptables`) writes them as nftables tables (`ip filter`, `ip nat`, chains
//! `FORWARD`, `DOCKER-ISOLATION-STAGE-1`…), which `nft -j list ruleset` run inside the
//! namespace reads without anything but CAP_NET_ADMIN there. Rules of iptables-legacy
//! (the kernel's x_tables, read with `IPT_SO_GET_ENTRIES`) are not read.
//!
//! Only what can be decided for the packet is judged: interface names (and named or
//! anonymous sets of them), IPv4/IPv6 source and destination addresses and prefixes, the
//! layer-4 protocol and destination port, and `ct state` (a traced connection is `new`).
//! A rule that needs anything else (an `xt` match iptables-nft could not translate, marks,
//! `fib`) stops the judgement: the answer is then "not judged" with that rule named,
//! never a guess.

use std::net::IpAddr;

use serde_json::Value;

/// The first packet of the traced connection, as a chain sees it.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    pub iif: &'a str,
    pub oif: &'a str,
    pub saddr: Option<IpAddr>,
    pub daddr: IpAddr,
    /// `tcp` or `udp`.
    pub proto: &'a str,
    pub dport: u16,
}

/// What a hook's chains did with the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// No base chain for the hook, or none of their rules matched (policy accept).
    Nothing,
    /// `rule` (in words) decided, in `table`'s `chain`, reached through `path` (the base
    /// chain first).
    Accepted(Decision),
    Dropped(Decision),
    /// A NAT statement (masquerade, snat, dnat).
    Nat(Decision),
    /// Dropped by a base chain's policy.
    Policy {
        table: String,
        chain: String,
    },
    /// A rule that cannot be judged for this packet stopped the walk.
    Unjudged(Decision),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub path: Vec<String>,
    pub rule: String,
}

impl Decision {
    /// `"iifname docker0 oifname != docker0 accept" in table ip filter chain FORWARD`.
    pub fn words(&self) -> String {
        let via = if self.path.len() > 1 {
            format!(" (from {})", self.path[..self.path.len() - 1].join(" → "))
        } else {
            String::new()
        };
        format!(
            "\"{}\" in table {} {} chain {}{via}",
            self.rule, self.family, self.table, self.chain
        )
    }
}

struct Rules<'a> {
    doc: &'a [Value],
}

enum Flow {
    /// The rule's statements did not end the chain.
    Continue,
    Return,
    Accept(Decision),
    Drop(Decision),
    Nat(Decision),
    Unjudged(Decision),
}

impl<'a> Rules<'a> {
    fn rules(&self, family: &str, table: &str, chain: &str) -> impl Iterator<Item = &'a Value> {
        let (family, table, chain) = (family.to_string(), table.to_string(), chain.to_string());
        self.doc
            .iter()
            .filter_map(|o| o.get("rule"))
            .filter(move |r| r["family"] == family && r["table"] == table && r["chain"] == chain)
    }

    fn set(&self, family: &str, table: &str, name: &str) -> Vec<Value> {
        self.doc
            .iter()
            .filter_map(|o| o.get("set"))
            .filter(|s| s["family"] == family && s["table"] == table && s["name"] == name)
            .flat_map(|s| match &s["elem"] {
                Value::Array(a) => a.clone(),
                Value::Null => Vec::new(),
                e => vec![e.clone()],
            })
            .collect()
    }

    /// Runs `chain`; `path` is how it was reached (this chain last).
    fn run(
        &self,
        family: &str,
        table: &str,
        chain: &str,
        path: &mut Vec<String>,
        p: &Packet,
        depth: u32,
    ) -> Flow {
        if depth > 16 {
            return Flow::Continue;
        }
        path.push(chain.to_string());
        for r in self.rules(family, table, chain) {
            let dec = |rule: String, path: &Vec<String>| Decision {
                family: family.into(),
                table: table.into(),
                chain: chain.into(),
                path: path.clone(),
                rule,
            };
            let exprs = r["expr"].as_array().cloned().unwrap_or_default();
            let text = words(&exprs);
            let mut matched = true;
            for e in &exprs {
                let Some(m) = e.get("match") else { continue };
                match self.judge(family, table, m, p) {
                    Some(true) => {}
                    Some(false) => {
                        matched = false;
                        break;
                    }
                    None => {
                        path.pop();
                        return Flow::Unjudged(dec(text, path));
                    }
                }
            }
            if !matched {
                continue;
            }
            // The statements, in order: a verdict or a NAT statement ends the rule.
            for e in &exprs {
                let Some((k, v)) = e.as_object().and_then(|o| o.iter().next()) else {
                    continue;
                };
                match k.as_str() {
                    "match" | "counter" | "log" | "limit" | "comment" => {}
                    "accept" => {
                        let d = dec(text, path);
                        path.pop();
                        return Flow::Accept(d);
                    }
                    "drop" | "reject" => {
                        let d = dec(text, path);
                        path.pop();
                        return Flow::Drop(d);
                    }
                    "return" => {
                        path.pop();
                        return Flow::Return;
                    }
                    "masquerade" | "snat" | "dnat" | "redirect" => {
                        let d = dec(text, path);
                        path.pop();
                        return Flow::Nat(d);
                    }
                    "xt" if v["type"] == "target"
                        && matches!(v["name"].as_str(), Some("MASQUERADE" | "SNAT" | "DNAT")) =>
                    {
                        let d = dec(text, path);
                        path.pop();
                        return Flow::Nat(d);
                    }
                    "jump" | "goto" => {
                        let Some(t) = v["target"].as_str() else {
                            continue;
                        };
                        match self.run(family, table, t, path, p, depth + 1) {
                            Flow::Continue | Flow::Return if k == "jump" => {}
                            Flow::Continue | Flow::Return => {
                                path.pop();
                                return Flow::Return;
                            }
                            f => {
                                path.pop();
                                return f;
                            }
                        }
                    }
                    _ => {
                        path.pop();
                        return Flow::Unjudged(dec(text, path));
                    }
                }
            }
        }
        path.pop();
        Flow::Continue
    }

    /// Whether one `match` expression holds for the packet; None when it cannot be told.
    fn judge(&self, family: &str, table: &str, m: &Value, p: &Packet) -> Option<bool> {
        let left = &m["left"];
        let op = m["op"].as_str()?;
        let right = &m["right"];
        let values: Vec<Value> = match right {
            Value::String(s) if s.starts_with('@') => self.set(family, table, &s[1..]),
            Value::Object(o) if o.contains_key("set") => right["set"].as_array()?.clone(),
            v => vec![v.clone()],
        };
        let hit = if let Some(key) = left["meta"]["key"].as_str() {
            let have = match key {
                "iifname" => p.iif,
                "oifname" => p.oif,
                "l4proto" => p.proto,
                _ => return None,
            };
            values.iter().any(|v| v.as_str() == Some(have))
        } else if let Some(pl) = left.get("payload") {
            match (pl["protocol"].as_str()?, pl["field"].as_str()?) {
                ("ip" | "ip6", "saddr") => addr_in(p.saddr?, &values)?,
                ("ip" | "ip6", "daddr") => addr_in(p.daddr, &values)?,
                ("ip", "protocol") | ("ip6", "nexthdr") => {
                    values.iter().any(|v| v.as_str() == Some(p.proto))
                }
                (proto @ ("tcp" | "udp"), "dport") => {
                    // A port match of the other protocol does not hold.
                    if proto != p.proto {
                        return Some(op == "!=");
                    }
                    port_in(p.dport, &values)?
                }
                _ => return None,
            }
        } else if left["ct"]["key"] == "state" {
            values.iter().any(|v| {
                v.as_str() == Some("new")
                    || v.as_array().is_some_and(|a| a.iter().any(|s| s == "new"))
            })
        } else {
            return None;
        };
        match op {
            "==" | "in" => Some(hit),
            "!=" => Some(!hit),
            _ => None,
        }
    }
}

fn addr_in(a: IpAddr, values: &[Value]) -> Option<bool> {
    for v in values {
        let (net, len) = match v {
            Value::String(s) => (
                s.parse::<IpAddr>().ok()?,
                if a.is_ipv4() { 32 } else { 128 },
            ),
            Value::Object(o) if o.contains_key("prefix") => (
                v["prefix"]["addr"].as_str()?.parse::<IpAddr>().ok()?,
                v["prefix"]["len"].as_u64()? as u32,
            ),
            _ => return None,
        };
        let hit = match (a, net) {
            (IpAddr::V4(a), IpAddr::V4(n)) => {
                len == 0
                    || (u32::from(a) >> (32 - len.min(32))) == (u32::from(n) >> (32 - len.min(32)))
            }
            (IpAddr::V6(a), IpAddr::V6(n)) => {
                len == 0
                    || (u128::from(a) >> (128 - len.min(128)))
                        == (u128::from(n) >> (128 - len.min(128)))
            }
            _ => false,
        };
        if hit {
            return Some(true);
        }
    }
    Some(false)
}

fn port_in(port: u16, values: &[Value]) -> Option<bool> {
    for v in values {
        let hit = match v {
            Value::Number(n) => n.as_u64()? == u64::from(port),
            Value::Object(o) if o.contains_key("range") => {
                let r = v["range"].as_array()?;
                (r.first()?.as_u64()?..=r.get(1)?.as_u64()?).contains(&u64::from(port))
            }
            _ => return None,
        };
        if hit {
            return Some(true);
        }
    }
    Some(false)
}

fn value_words(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) if o.contains_key("prefix") => format!(
            "{}/{}",
            v["prefix"]["addr"].as_str().unwrap_or("?"),
            v["prefix"]["len"]
        ),
        Value::Object(o) if o.contains_key("set") => format!(
            "{{ {} }}",
            v["set"]
                .as_array()
                .map(|a| a.iter().map(value_words).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        Value::Object(o) if o.contains_key("range") => format!(
            "{}-{}",
            value_words(&v["range"][0]),
            value_words(&v["range"][1])
        ),
        Value::Array(a) => a.iter().map(value_words).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// A rule in nft's words, without counters: `iifname docker0 oifname != docker0 accept`.
pub fn words(exprs: &[Value]) -> String {
    let mut out = Vec::new();
    for e in exprs {
        let Some((k, v)) = e.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match k.as_str() {
            "match" => {
                let left = &v["left"];
                let l = if let Some(key) = left["meta"]["key"].as_str() {
                    key.to_string()
                } else if let Some(pl) = left.get("payload") {
                    format!(
                        "{} {}",
                        pl["protocol"].as_str().unwrap_or("?"),
                        pl["field"].as_str().unwrap_or("?")
                    )
                } else if let Some(key) = left["ct"]["key"].as_str() {
                    format!("ct {key}")
                } else {
                    left.to_string()
                };
                let op = match v["op"].as_str() {
                    Some("==") | Some("in") => String::new(),
                    Some(o) => format!("{o} "),
                    None => String::new(),
                };
                out.push(format!("{l} {op}{}", value_words(&v["right"])));
            }
            "counter" => {}
            "jump" | "goto" => out.push(format!("{k} {}", v["target"].as_str().unwrap_or("?"))),
            "xt" => out.push(format!(
                "xt {} {}",
                v["type"].as_str().unwrap_or("?"),
                v["name"].as_str().unwrap_or("?")
            )),
            "masquerade" | "accept" | "drop" | "return" | "reject" => out.push(k.clone()),
            other => out.push(other.to_string()),
        }
    }
    out.join(" ")
}

/// The base chains of `hook` (of type `kind` when given), in priority order.
fn base_chains<'a>(doc: &'a [Value], hook: &str, kind: Option<&str>) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = doc
        .iter()
        .filter_map(|o| o.get("chain"))
        .filter(|c| c["hook"] == hook && kind.is_none_or(|k| c["type"] == k))
        .filter(|c| matches!(c["family"].as_str(), Some("ip" | "ip6" | "inet")))
        .collect();
    v.sort_by_key(|c| c["prio"].as_i64().unwrap_or(0));
    v
}

/// Runs every base chain of `hook` for the packet (skipping tables named in `skip`):
/// the first drop, NAT statement or unjudgeable rule ends it; accepts go on to the next
/// base chain, as in the kernel. The last explicit accept is reported when nothing else is.
pub fn judge(ruleset: &str, hook: &str, kind: Option<&str>, p: &Packet, skip: &[&str]) -> Judged {
    let Ok(doc) = serde_json::from_str::<Value>(ruleset) else {
        return Judged::Nothing;
    };
    let Some(doc) = doc["nftables"].as_array() else {
        return Judged::Nothing;
    };
    let family_fits = |f: &str| match f {
        "ip" => p.daddr.is_ipv4(),
        "ip6" => p.daddr.is_ipv6(),
        _ => true,
    };
    let rules = Rules { doc };
    let mut accepted = None;
    for c in base_chains(doc, hook, kind) {
        let (Some(family), Some(table), Some(chain)) = (
            c["family"].as_str(),
            c["table"].as_str(),
            c["name"].as_str(),
        ) else {
            continue;
        };
        if !family_fits(family) || skip.contains(&table) {
            continue;
        }
        match rules.run(family, table, chain, &mut Vec::new(), p, 0) {
            Flow::Accept(d) => accepted = Some(d),
            Flow::Drop(d) => return Judged::Dropped(d),
            Flow::Nat(d) => return Judged::Nat(d),
            Flow::Unjudged(d) => return Judged::Unjudged(d),
            Flow::Continue | Flow::Return => {
                if c["policy"] == "drop" {
                    return Judged::Policy {
                        table: format!("{family} {table}"),
                        chain: chain.into(),
                    };
                }
            }
        }
    }
    accepted.map(Judged::Accepted).unwrap_or(Judged::Nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -j list ruleset` of a namespace where iptables-nft 1.8.9 (Debian's `iptables`)
    /// was given rootless Docker 20.10's rules for docker0 (172.17.0.0/16, a container
    /// 172.17.0.2 publishing 80) and a user network br-5c1f (abridged: metainfo left out).
    const DOCKER: &str = r#"{"nftables": [
{"table": {"family": "ip", "name": "filter", "handle": 1}},
{"chain": {"family": "ip", "table": "filter", "name": "DOCKER", "handle": 1}},
{"chain": {"family": "ip", "table": "filter", "name": "DOCKER-ISOLATION-STAGE-1", "handle": 2}},
{"chain": {"family": "ip", "table": "filter", "name": "DOCKER-ISOLATION-STAGE-2", "handle": 3}},
{"chain": {"family": "ip", "table": "filter", "name": "DOCKER-USER", "handle": 4}},
{"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 5, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
{"rule": {"family": "ip", "table": "filter", "chain": "DOCKER", "handle": 6, "expr": [{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "docker0"}}, {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "docker0"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "172.17.0.2"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-ISOLATION-STAGE-1", "handle": 7, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "docker0"}}, {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "docker0"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "DOCKER-ISOLATION-STAGE-2"}}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-ISOLATION-STAGE-1", "handle": 8, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"return": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-ISOLATION-STAGE-2", "handle": 9, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br-5c1f"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-ISOLATION-STAGE-2", "handle": 10, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"return": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-USER", "handle": 11, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"return": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 12, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "DOCKER-USER"}}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 13, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "DOCKER-ISOLATION-STAGE-1"}}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 14, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "docker0"}}, {"xt": {"type": "match", "name": "conntrack"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 15, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "docker0"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "DOCKER"}}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 16, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "docker0"}}, {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "docker0"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"table": {"family": "ip", "name": "nat", "handle": 2}},
{"chain": {"family": "ip", "table": "nat", "name": "POSTROUTING", "handle": 6, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}},
{"rule": {"family": "ip", "table": "nat", "chain": "POSTROUTING", "handle": 7, "expr": [{"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "docker0"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "172.17.0.0", "len": 16}}}}, {"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "MASQUERADE"}}]}}
]}"#;

    fn pkt<'a>(iif: &'a str, oif: &'a str, dst: &str) -> Packet<'a> {
        Packet {
            iif,
            oif,
            saddr: Some("172.17.0.2".parse().unwrap()),
            daddr: dst.parse().unwrap(),
            proto: "tcp",
            dport: 80,
        }
    }

    #[test]
    fn dockers_isolation_drop_is_found_through_its_jumps() {
        let j = judge(
            DOCKER,
            "forward",
            Some("filter"),
            &pkt("docker0", "br-5c1f", "172.18.0.2"),
            &[],
        );
        let Judged::Dropped(d) = j else {
            panic!("{j:?}")
        };
        assert_eq!(
            d.words(),
            "\"oifname br-5c1f drop\" in table ip filter chain DOCKER-ISOLATION-STAGE-2 (from FORWARD → DOCKER-ISOLATION-STAGE-1)"
        );
    }

    #[test]
    fn out_of_the_bridge_is_accepted_then_masqueraded() {
        let p = pkt("docker0", "tap0", "10.0.2.2");
        let j = judge(DOCKER, "forward", Some("filter"), &p, &[]);
        let Judged::Accepted(d) = j else {
            panic!("{j:?}")
        };
        assert_eq!(d.rule, "iifname docker0 oifname != docker0 accept");
        let j = judge(DOCKER, "postrouting", Some("nat"), &p, &[]);
        let Judged::Nat(d) = j else { panic!("{j:?}") };
        assert_eq!(
            d.words(),
            "\"oifname != docker0 ip saddr 172.17.0.0/16 xt target MASQUERADE\" in table ip nat chain POSTROUTING"
        );
    }

    #[test]
    fn an_untranslated_xt_match_is_not_guessed() {
        // Into docker0 from outside: FORWARD's conntrack rule (an xt match) is reached.
        let j = judge(
            DOCKER,
            "forward",
            Some("filter"),
            &pkt("tap0", "docker0", "172.17.0.2"),
            &[],
        );
        let Judged::Unjudged(d) = j else {
            panic!("{j:?}")
        };
        assert_eq!(d.rule, "oifname docker0 xt match conntrack accept");
        // Skipped tables are not read.
        assert_eq!(
            judge(
                DOCKER,
                "forward",
                Some("filter"),
                &pkt("docker0", "br-5c1f", "172.18.0.2"),
                &["filter"]
            ),
            Judged::Nothing
        );
    }
}
