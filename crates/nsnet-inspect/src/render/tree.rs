//! The text tree (`nsnet ns graph`, the default form): a tree for reading. It starts at the
//! host and follows the edges of [`crate::graph::edges`] outwards, so that each namespace
//! appears once, under the namespace it is reached from, its children in the order of its
//! interfaces; namespaces no edge reaches follow as roots of their own, in
//! [`crate::graph::role_rank`] order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::{notes, ns_title, where_text};
use crate::graph::{self, Link};
use crate::net::{NetNs, NetView};

/// The text tree.
pub fn graph_text(view: &NetView) -> String {
    // A veth pair is an edge each way; the walk takes whichever it meets first.
    let edges: Vec<(u64, u64, String, u32)> = graph::edges(view)
        .into_iter()
        .map(|e| (e.from, e.to, label(&e.link), e.order))
        .collect();
    // Parent of each namespace: the first edge that reaches it, breadth first from the host.
    let mut order: Vec<&NetNs> = view.netns.iter().collect();
    order.sort_by_key(|n| (graph::role_rank(n.role), n.inode));
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
    notes(&mut out, &view.unreadable_pids, &view.problems);
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
    items.extend(super::about_lines(view, n));
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

/// The words on an edge of the tree.
fn label(link: &Link) -> String {
    match link {
        Link::Launcher { comm, pid } => format!("launched by {comm} {pid}"),
        Link::Tap(t) => format!(
            "{} carried by {} {} (fd {})",
            t.tap.name, t.owner.comm, t.owner.pid, t.owner.fd
        ),
        Link::Veth {
            near,
            far,
            verified,
        } => {
            let check = if *verified { "" } else { " (unverified)" };
            format!("veth {} ⇄ {}{check}", near.name, far.name)
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::view;

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
}
