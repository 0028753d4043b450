//! Mermaid flowchart: the same picture as DOT, in mermaid's syntax.

use std::fmt::Write;

use super::{node_id, short_title};
use crate::graph;
use crate::net::NetView;

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
            mq(&{
                let mut t = short_title(n);
                for l in super::about_lines(view, n) {
                    t.push_str("<br/>");
                    t.push_str(&l);
                }
                format!("{t} net:[{}]", n.inode)
            })
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
    for graph::PortEdge {
        netns,
        port,
        master,
    } in graph::port_edges(view)
    {
        let (port, master) = (node_id(netns, port), node_id(netns, master));
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
    use crate::fixture::view;

    #[test]
    fn names_subgraphs_and_owners() {
        let mm = graph_mermaid(&view());
        assert!(
            mm.contains("  subgraph ns2[\"rootless-child of rk 30 (state /s) net:[2]\"]"),
            "{mm}"
        );
        assert!(mm.contains("    p40([\"slirp4netns 40\"])"), "{mm}");
        assert!(mm.contains("  p40 -->|tap fd 6| n2_2"), "{mm}");
    }
}
