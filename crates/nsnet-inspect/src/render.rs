//! Renderers: the `ls` table, the per-namespace `net` listing, and the graph in three forms —
//! a text tree for a terminal, Graphviz DOT, and mermaid.
//!
//! The graph is a tree for reading: it starts at the host and follows the edges that carry
//! traffic outwards — launcher → rootless child, tap owner → tap, veth → peer — so that each
//! namespace appears once, under the namespace it is reached from; namespaces no edge reaches
//! follow as roots of their own. DOT and mermaid draw every edge instead.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::namespaces::{Holder, Snapshot};
use crate::net::{NetNs, NetView, Role};
use crate::nsfs::NsType;

fn holder_text(h: &Holder) -> String {
    match h {
        Holder::Thread { pid, tid, comm } => format!("thread {tid} of {comm} {pid}"),
        Holder::Fd { pid, comm, fd } => format!("fd {fd} of {comm} {pid}"),
        Holder::BindMount { path, mntns, pid } => {
            format!(
                "bind mount {} (in mnt:[{mntns}] of pid {pid})",
                path.display()
            )
        }
        Holder::Owner { of } => format!("owner of {of}"),
    }
}

fn unreadable_note(out: &mut String, pids: &[i32]) {
    if !pids.is_empty() {
        let shown: Vec<String> = pids.iter().take(8).map(i32::to_string).collect();
        let _ = writeln!(
            out,
            "note: {} processes could not be read (permission denied): pid {}{}",
            pids.len(),
            shown.join(", "),
            if pids.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
}

/// The `nsnet ns ls` table.
pub fn ls_table(snap: &Snapshot, types: &[NsType]) -> String {
    let mut rows = vec![[
        "NS".to_string(),
        "TYPE".into(),
        "NPROCS".into(),
        "PID".into(),
        "COMMAND".into(),
        "USERNS".into(),
        "UID".into(),
        "HELD BY".into(),
    ]];
    for n in &snap.namespaces {
        if !types.is_empty() && !types.contains(&n.id.kind) {
            continue;
        }
        let first = n.processes.first();
        let mut held: Vec<String> = n.held_by.iter().map(holder_text).collect();
        held.extend(n.problems.iter().map(|p| format!("({p})")));
        rows.push([
            n.id.inode.to_string(),
            n.id.kind.name().into(),
            n.processes.len().to_string(),
            first
                .map(|p| p.pid.to_string())
                .unwrap_or_else(|| "-".into()),
            first.map(|p| p.comm.clone()).unwrap_or_else(|| "-".into()),
            n.owner
                .userns
                .map(|u| u.to_string())
                .unwrap_or_else(|| "-".into()),
            n.owner
                .uid
                .map(|u| u.to_string())
                .unwrap_or_else(|| "-".into()),
            held.join("; "),
        ]);
    }
    let mut out = table(&rows);
    unreadable_note(&mut out, &snap.unreadable_pids);
    for p in &snap.problems {
        let _ = writeln!(out, "note: {p}");
    }
    out
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<0$}  ", w[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ns_title(n: &NetNs) -> String {
    match n.role {
        Role::Host => format!("net:[{}]  host  ({})", n.inode, n.label),
        r => format!("net:[{}]  {}  {}", n.inode, r.name(), n.label),
    }
}

/// A short name for a namespace seen from elsewhere: `container ctr-b net:[…]`.
fn where_text(view: &NetView, netns: u64) -> String {
    match view.get(netns) {
        Some(n) if matches!(n.role, Role::Host | Role::RootlessChild | Role::Parent) => {
            format!("{} net:[{netns}]", n.role.name())
        }
        Some(n) => format!("{} {} net:[{netns}]", n.role.name(), n.label),
        None => format!("net:[{netns}]"),
    }
}

/// The `nsnet ns net` listing.
pub fn net_text(view: &NetView) -> String {
    let mut out = String::new();
    for n in &view.netns {
        let _ = writeln!(out, "{}", ns_title(n));
        let procs: Vec<String> = n
            .processes
            .iter()
            .take(4)
            .map(|p| format!("{} {}", p.comm, p.pid))
            .collect();
        let more = n.processes.len().saturating_sub(4);
        let _ = writeln!(
            out,
            "  owner user:[{}] uid {}; processes: {}{}{}",
            n.owner.userns.map(|u| u.to_string()).unwrap_or("?".into()),
            n.owner.uid.map(|u| u.to_string()).unwrap_or("?".into()),
            n.processes.len(),
            if procs.is_empty() {
                String::new()
            } else {
                format!(" ({})", procs.join(", "))
            },
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
        );
        if n.processes.is_empty() {
            for h in &n.held_by {
                let _ = writeln!(out, "  held by {}", holder_text(h));
            }
        }
        if let Some(e) = &n.error {
            let _ = writeln!(out, "  interfaces not readable: {e}");
        }
        let mut rows = vec![[
            "  IFACE".to_string(),
            "KIND".into(),
            "STATE".into(),
            "MTU".into(),
            "MAC".into(),
            "ADDRESSES".into(),
            "LINK".into(),
        ]];
        for i in &n.interfaces {
            let mut link = Vec::new();
            if let Some(m) = &i.master {
                link.push(format!("port of {m}"));
            }
            if let Some(p) = &i.peer {
                link.push(format!(
                    "veth peer {} in {}",
                    p.name,
                    where_text(view, p.netns)
                ));
            }
            if !i.ports.is_empty() {
                link.push(format!("ports {}", i.ports.join(", ")));
            }
            for o in &i.tap_owners {
                link.push(format!(
                    "owned by {} {} (fd {}{})",
                    o.comm,
                    o.pid,
                    o.fd,
                    o.netns
                        .map(|x| format!(", lives in {}", where_text(view, x)))
                        .unwrap_or_default()
                ));
            }
            rows.push([
                format!("  {}", i.name),
                i.kind.clone(),
                if i.up { i.state.clone() } else { "DOWN".into() },
                i.mtu.to_string(),
                i.mac.clone().unwrap_or_default(),
                i.addresses.join(" "),
                link.join("; "),
            ]);
        }
        if !n.interfaces.is_empty() {
            out.push_str(&table(&rows));
        }
        for d in &n.default_routes {
            let _ = writeln!(
                out,
                "  default{}{}",
                d.gateway
                    .as_ref()
                    .map(|g| format!(" via {g}"))
                    .unwrap_or_default(),
                d.dev
                    .as_ref()
                    .map(|g| format!(" dev {g}"))
                    .unwrap_or_default()
            );
        }
        out.push('\n');
    }
    unreadable_note(&mut out, &view.unreadable_pids);
    for p in &view.problems {
        let _ = writeln!(out, "note: {p}");
    }
    out
}

/// Edges between namespaces, strongest first: (from, to, label, order among siblings: the
/// ifindex of the near end, so that children follow the interface list).
fn edges(view: &NetView) -> Vec<(u64, u64, String, u32)> {
    let mut e = Vec::new();
    for i in &view.instances {
        if let (Some(p), Some(c)) = (i.parent_netns, i.child_netns) {
            e.push((
                p,
                c,
                format!(
                    "launched by {} {}",
                    i.parent_comm.as_deref().unwrap_or("?"),
                    i.parent_pid.unwrap_or(0)
                ),
                0u32,
            ));
        }
    }
    for t in &view.taps {
        if let Some(o) = t.owner.netns {
            e.push((
                o,
                t.tap.netns,
                format!(
                    "{} carried by {} {} (fd {})",
                    t.tap.name, t.owner.comm, t.owner.pid, t.owner.fd
                ),
                0u32,
            ));
        }
    }
    for p in &view.veth_pairs {
        if p.a.netns == p.b.netns {
            continue;
        }
        let check = if p.verified { "" } else { " (unverified)" };
        e.push((
            p.a.netns,
            p.b.netns,
            format!("veth {} ⇄ {}{check}", p.a.name, p.b.name),
            p.a.ifindex,
        ));
        e.push((
            p.b.netns,
            p.a.netns,
            format!("veth {} ⇄ {}{check}", p.b.name, p.a.name),
            p.b.ifindex,
        ));
    }
    e
}

fn role_rank(r: Role) -> u8 {
    match r {
        Role::Host => 0,
        Role::Parent => 1,
        Role::RootlessChild => 2,
        Role::Container => 3,
        Role::Other => 4,
        Role::Orphan => 5,
    }
}

fn iface_line(view: &NetView, i: &crate::net::Iface) -> String {
    let mut s = i.name.clone();
    if i.kind != "device" {
        let _ = write!(s, " ({})", i.kind);
    }
    if !i.addresses.is_empty() {
        let _ = write!(s, " {}", i.addresses.join(" "));
    }
    if !i.up {
        s.push_str(" DOWN");
    }
    if let Some(m) = &i.master {
        let _ = write!(s, " port of {m}");
    }
    if let Some(p) = &i.peer {
        let _ = write!(s, " ⇄ {} in {}", p.name, where_text(view, p.netns));
    }
    for o in &i.tap_owners {
        let _ = write!(s, " ◀ {} {}", o.comm, o.pid);
        if let Some(x) = o.netns {
            let _ = write!(s, " in {}", where_text(view, x));
        }
    }
    s
}

/// The text tree.
pub fn graph_text(view: &NetView) -> String {
    let edges = edges(view);
    // Parent of each namespace: the first edge that reaches it, breadth first from the host.
    let mut order: Vec<&NetNs> = view.netns.iter().collect();
    order.sort_by_key(|n| (role_rank(n.role), n.inode));
    let mut placed: BTreeSet<u64> = BTreeSet::new();
    let mut children: BTreeMap<u64, Vec<(u64, String, u32)>> = BTreeMap::new();
    let mut roots = Vec::new();
    for start in &order {
        if placed.contains(&start.inode) {
            continue;
        }
        roots.push(start.inode);
        placed.insert(start.inode);
        let mut queue = std::collections::VecDeque::from([start.inode]);
        while let Some(cur) = queue.pop_front() {
            for (from, to, label, key) in &edges {
                if *from != cur {
                    continue;
                }
                if placed.insert(*to) {
                    children
                        .entry(cur)
                        .or_default()
                        .push((*to, label.clone(), *key));
                    queue.push_back(*to);
                } else if let Some(kid) = children
                    .get_mut(&cur)
                    .and_then(|k| k.iter_mut().find(|(c, _, _)| c == to))
                {
                    // A second edge between the same two: say both (launcher and tap).
                    kid.1 = format!("{}; {label}", kid.1);
                }
            }
        }
    }
    for kids in children.values_mut() {
        kids.sort_by_key(|k| k.2);
    }
    let mut out = String::new();
    for r in roots {
        let n = view.get(r).unwrap();
        let _ = writeln!(out, "{}", ns_title(n));
        tree_body(view, n, &children, "", &mut out);
    }
    unreadable_note(&mut out, &view.unreadable_pids);
    for p in &view.problems {
        let _ = writeln!(out, "note: {p}");
    }
    out
}

fn tree_body(
    view: &NetView,
    n: &NetNs,
    children: &BTreeMap<u64, Vec<(u64, String, u32)>>,
    prefix: &str,
    out: &mut String,
) {
    let mut items: Vec<String> = Vec::new();
    if let Some(e) = &n.error {
        items.push(format!("(interfaces not readable: {e})"));
    }
    for i in &n.interfaces {
        items.push(iface_line(view, i));
    }
    for d in &n.default_routes {
        items.push(format!(
            "default{}{}",
            d.gateway
                .as_ref()
                .map(|g| format!(" via {g}"))
                .unwrap_or_default(),
            d.dev
                .as_ref()
                .map(|g| format!(" dev {g}"))
                .unwrap_or_default()
        ));
    }
    let kids = children.get(&n.inode).map(Vec::as_slice).unwrap_or(&[]);
    let total = items.len() + kids.len();
    for (k, item) in items.iter().enumerate() {
        let last = k + 1 == total;
        let _ = writeln!(out, "{prefix}{}{item}", if last { "└── " } else { "├── " });
    }
    for (k, (c, label, _)) in kids.iter().enumerate() {
        let last = items.len() + k + 1 == total;
        let child = view.get(*c).unwrap();
        let _ = writeln!(
            out,
            "{prefix}{}{}  [{label}]",
            if last { "└─▶ " } else { "├─▶ " },
            ns_title(child)
        );
        let next = format!("{prefix}{}", if last { "    " } else { "│   " });
        tree_body(view, child, children, &next, out);
    }
}

/// "host (how it was chosen)" or "role label", for graph boxes.
fn short_title(n: &NetNs) -> String {
    match n.role {
        Role::Host => format!("host ({})", n.label),
        r => format!("{} {}", r.name(), n.label),
    }
}

fn q(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn node_id(ns: u64, idx: u32) -> String {
    format!("n{ns}_{idx}")
}

/// Graphviz DOT: one cluster per namespace, interfaces as nodes, owners as ellipses.
pub fn graph_dot(view: &NetView) -> String {
    let mut out = String::from(
        "digraph nsnet {\n  rankdir=LR;\n  compound=true;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for n in &view.netns {
        let _ = writeln!(out, "  subgraph cluster_{} {{", n.inode);
        let _ = writeln!(
            out,
            "    label=\"{}\\nnet:[{}]\";",
            q(&short_title(n)),
            n.inode
        );
        for i in &n.interfaces {
            // Escape each part, then join with DOT's own line break.
            let mut label = q(&format!("{} ({})", i.name, i.kind));
            for a in &i.addresses {
                let _ = write!(label, "\\n{}", q(a));
            }
            let _ = writeln!(
                out,
                "    {} [label=\"{label}\"];",
                node_id(n.inode, i.index)
            );
        }
        for t in view.taps.iter().filter(|t| t.owner.netns == Some(n.inode)) {
            let _ = writeln!(
                out,
                "    p{} [shape=ellipse, label=\"{} {}\"];",
                t.owner.pid,
                q(&t.owner.comm),
                t.owner.pid
            );
        }
        let _ = writeln!(out, "  }}");
    }
    for (port, master) in port_edges(view) {
        let _ = writeln!(out, "  {port} -> {master} [style=dashed, label=\"port\"];");
    }
    for p in &view.veth_pairs {
        let _ = writeln!(
            out,
            "  {} -> {} [dir=both, label=\"veth\"{}];",
            node_id(p.a.netns, p.a.ifindex),
            node_id(p.b.netns, p.b.ifindex),
            if p.verified { "" } else { ", style=dotted" }
        );
    }
    for t in &view.taps {
        let _ = writeln!(
            out,
            "  p{} -> {} [label=\"tap fd {}\"];",
            t.owner.pid,
            node_id(t.tap.netns, t.tap.ifindex),
            t.owner.fd
        );
    }
    out.push_str("}\n");
    out
}

/// Every interface enslaved to a master in its netns (a bridge port), as (port, master) node
/// ids: the dashed edges of the DOT and mermaid pictures.
fn port_edges(view: &NetView) -> impl Iterator<Item = (String, String)> + '_ {
    view.netns.iter().flat_map(|n| {
        n.interfaces.iter().filter_map(move |i| {
            let m = n
                .interfaces
                .iter()
                .find(|b| Some(&b.name) == i.master.as_ref())?;
            Some((node_id(n.inode, i.index), node_id(n.inode, m.index)))
        })
    })
}

fn mq(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Mermaid flowchart: the same picture as DOT.
pub fn graph_mermaid(view: &NetView) -> String {
    let mut out = String::from("flowchart LR\n");
    for n in &view.netns {
        let _ = writeln!(
            out,
            "  subgraph ns{}[\"{}\"]",
            n.inode,
            mq(&format!("{} net:[{}]", short_title(n), n.inode))
        );
        for i in &n.interfaces {
            let mut label = format!("{} ({})", i.name, i.kind);
            for a in &i.addresses {
                let _ = write!(label, "<br/>{a}");
            }
            let _ = writeln!(out, "    {}[\"{}\"]", node_id(n.inode, i.index), mq(&label));
        }
        for t in view.taps.iter().filter(|t| t.owner.netns == Some(n.inode)) {
            let _ = writeln!(
                out,
                "    p{}([\"{} {}\"])",
                t.owner.pid,
                mq(&t.owner.comm),
                t.owner.pid
            );
        }
        out.push_str("  end\n");
    }
    for (port, master) in port_edges(view) {
        let _ = writeln!(out, "  {port} -.->|port| {master}");
    }
    for p in &view.veth_pairs {
        let _ = writeln!(
            out,
            "  {} <-->|veth| {}",
            node_id(p.a.netns, p.a.ifindex),
            node_id(p.b.netns, p.b.ifindex)
        );
    }
    for t in &view.taps {
        let _ = writeln!(
            out,
            "  p{} -->|tap fd {}| {}",
            t.owner.pid,
            t.owner.fd,
            node_id(t.tap.netns, t.tap.ifindex)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespaces::Owner;
    use crate::net::{Endpoint, Iface, Instance, TapLink, TapOwner, VethPair};

    fn iface(index: u32, name: &str, kind: &str, addr: &[&str]) -> Iface {
        Iface {
            index,
            name: name.into(),
            kind: kind.into(),
            up: true,
            state: "up".into(),
            mtu: 1500,
            mac: None,
            master: None,
            addresses: addr.iter().map(|a| a.to_string()).collect(),
            peer: None,
            ports: Vec::new(),
            tap_owners: Vec::new(),
        }
    }

    fn ns(inode: u64, role: Role, label: &str, interfaces: Vec<Iface>) -> NetNs {
        NetNs {
            inode,
            role,
            label: label.into(),
            owner: Owner {
                userns: None,
                uid: None,
            },
            processes: Vec::new(),
            held_by: Vec::new(),
            interfaces,
            default_routes: Vec::new(),
            error: None,
        }
    }

    /// host 1 ─ launcher and slirp ─▶ child 2 ─ veth ─▶ containers 3 and 4 (4's pair is
    /// unverified), and an unconnected orphan 5 with an unreadable interface list.
    fn view() -> NetView {
        let owner = TapOwner {
            pid: 40,
            comm: "slirp4netns".into(),
            fd: 6,
            netns: Some(1),
            resolved_by: "tungetdevnetns",
        };
        let ep = |netns, ifindex, name: &str| Endpoint {
            netns,
            ifindex,
            name: name.into(),
        };
        let mut tap = iface(2, "tap0", "tun", &["10.0.2.100/24"]);
        tap.tap_owners.push(owner.clone());
        let mut vb = iface(4, "vb", "veth", &[]);
        vb.peer = Some(ep(4, 2, "eth0"));
        let mut va = iface(3, "va", "veth", &[]);
        va.peer = Some(ep(3, 2, "eth0"));
        let mut orphan = ns(5, Role::Orphan, "fd 3 of x 9", Vec::new());
        orphan.error = Some("cannot enter net:[5]: cannot setns into it: EPERM".into());
        NetView {
            host: Some(1),
            host_basis: "the network namespace of PID 1".into(),
            netns: vec![
                ns(
                    1,
                    Role::Host,
                    "the network namespace of PID 1",
                    vec![iface(1, "lo", "loopback", &["127.0.0.1/8"])],
                ),
                ns(
                    2,
                    Role::RootlessChild,
                    "of rk 30 (state /s)",
                    vec![tap, vb, va],
                ),
                ns(
                    3,
                    Role::Container,
                    "a",
                    vec![iface(2, "eth0", "veth", &["10.4.0.2/24"])],
                ),
                ns(
                    4,
                    Role::Container,
                    "b",
                    vec![iface(2, "eth0", "veth", &["10.4.0.3/24"])],
                ),
                orphan,
            ],
            veth_pairs: vec![
                VethPair {
                    a: ep(2, 4, "vb"),
                    b: ep(4, 2, "eth0"),
                    verified: false,
                },
                VethPair {
                    a: ep(2, 3, "va"),
                    b: ep(3, 2, "eth0"),
                    verified: true,
                },
            ],
            taps: vec![TapLink {
                tap: ep(2, 2, "tap0"),
                owner,
            }],
            instances: vec![Instance {
                state_dir: "/s".into(),
                child_pid: Some(31),
                parent_pid: Some(30),
                parent_comm: Some("rk".into()),
                child_netns: Some(2),
                parent_netns: Some(1),
                detached: false,
            }],
            unreadable_pids: vec![1],
            problems: Vec::new(),
        }
    }

    #[test]
    fn the_tree_follows_launcher_tap_and_veth_edges_in_interface_order() {
        let got = graph_text(&view());
        let want = "\
net:[1]  host  (the network namespace of PID 1)
├── lo (loopback) 127.0.0.1/8
└─▶ net:[2]  rootless-child  of rk 30 (state /s)  [launched by rk 30; tap0 carried by slirp4netns 40 (fd 6)]
    ├── tap0 (tun) 10.0.2.100/24 ◀ slirp4netns 40 in host net:[1]
    ├── vb (veth) ⇄ eth0 in container b net:[4]
    ├── va (veth) ⇄ eth0 in container a net:[3]
    ├─▶ net:[3]  container  a  [veth va ⇄ eth0]
    │   └── eth0 (veth) 10.4.0.2/24
    └─▶ net:[4]  container  b  [veth vb ⇄ eth0 (unverified)]
        └── eth0 (veth) 10.4.0.3/24
net:[5]  orphan  fd 3 of x 9
└── (interfaces not readable: cannot enter net:[5]: cannot setns into it: EPERM)
note: 1 processes could not be read (permission denied): pid 1
";
        assert_eq!(got, want, "\n{got}");
    }

    #[test]
    fn dot_and_mermaid_mark_unverified_pairs_and_owners() {
        let v = view();
        let dot = graph_dot(&v);
        assert!(
            dot.contains("  n2_4 -> n4_2 [dir=both, label=\"veth\", style=dotted];"),
            "{dot}"
        );
        assert!(
            dot.contains("  n2_3 -> n3_2 [dir=both, label=\"veth\"];"),
            "{dot}"
        );
        assert!(
            dot.contains("    p40 [shape=ellipse, label=\"slirp4netns 40\"];"),
            "{dot}"
        );
        assert!(dot.contains("  p40 -> n2_2 [label=\"tap fd 6\"];"), "{dot}");
        assert!(dot.ends_with("}\n"));
        let mm = graph_mermaid(&v);
        assert!(
            mm.contains("  subgraph ns2[\"rootless-child of rk 30 (state /s) net:[2]\"]"),
            "{mm}"
        );
        assert!(mm.contains("    p40([\"slirp4netns 40\"])"), "{mm}");
        assert!(mm.contains("  p40 -->|tap fd 6| n2_2"), "{mm}");
    }
}
