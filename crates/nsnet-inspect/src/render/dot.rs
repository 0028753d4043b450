//! Graphviz DOT: one cluster per namespace, interfaces as nodes, tap owners as ellipses, and
//! every edge drawn (bridge ports dashed, veth pairs both ways, unverified ones dotted).

use std::fmt::Write;

use super::{node_id, short_title};
use crate::graph;
use crate::net::NetView;

fn q(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT: one cluster per namespace, interfaces as nodes, owners as ellipses.
pub fn graph_dot(view: &NetView) -> String {
    let mut out = String::from(
        "digraph nsnet {\n  rankdir=LR;\n  compound=true;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for n in &view.netns {
        let _ = writeln!(out, "  subgraph cluster_{} {{", n.inode);
        let mut title = q(&short_title(n));
        for l in super::about_lines(view, n) {
            let _ = write!(title, "\\n{}", q(&l));
        }
        let _ = writeln!(out, "    label=\"{title}\\nnet:[{}]\";", n.inode);
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
    for graph::PortEdge {
        netns,
        port,
        master,
    } in graph::port_edges(view)
    {
        let (port, master) = (node_id(netns, port), node_id(netns, master));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::view;

    #[test]
    fn marks_unverified_pairs_and_owners() {
        let dot = graph_dot(&view());
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
    }
}
