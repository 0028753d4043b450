//! The renderers of `nsnet ns`: the `ls` table ([`table`]), the per-namespace `net` listing
//! ([`net_text`]), and the network graph in four forms — a text tree for a terminal
//! ([`tree`]), Graphviz DOT ([`dot`]), mermaid ([`mermaid`]) and SVG laid out in-process
//! ([`svg`]). The graphs are drawn from one edge model, [`crate::graph`]; these modules only
//! choose words and syntax. What two of them say alike (a namespace's title, how it is named
//! from elsewhere, the notes under a listing) is here.

use std::fmt::Write;

use crate::namespaces::Holder;
use crate::net::{NetNs, NetView, Role};

pub mod dot;
pub mod mermaid;
pub mod net_text;
pub mod svg;
pub mod table;
pub mod trace_text;
pub mod tree;

pub use dot::graph_dot;
pub use mermaid::graph_mermaid;
pub use net_text::net_text;
pub use svg::graph_svg;
pub use table::ls_table;
pub use trace_text::trace_text;
pub use tree::graph_text;

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

/// The notes under a listing: the processes that could not be read, then each problem met.
fn notes(out: &mut String, pids: &[i32], problems: &[String]) {
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
    for p in problems {
        let _ = writeln!(out, "note: {p}");
    }
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

/// "host (how it was chosen)" or "role label", for graph boxes.
fn short_title(n: &NetNs) -> String {
    match n.role {
        Role::Host => format!("host ({})", n.label),
        r => format!("{} {}", r.name(), n.label),
    }
}

/// What the engines and helpers say about a namespace, one line each: every container in
/// it (name, image, published ports, networks), the pasta process serving it (its
/// forwards, what it copied from the host, where the host is reached), and the ports an
/// instance whose child it is publishes through its API.
pub fn about_lines(view: &NetView, n: &NetNs) -> Vec<String> {
    let mut out = Vec::new();
    for c in &n.containers {
        let mut l = c.label();
        if let Some(i) = &c.image {
            let _ = write!(l, " image {i}");
        }
        if !c.ports.is_empty() {
            let p: Vec<String> = c.ports.iter().map(|p| p.to_string()).collect();
            let _ = write!(l, " ports {}", p.join(" "));
        }
        let nets: Vec<String> = c
            .networks
            .iter()
            .map(|a| match &a.address {
                Some(ad) => format!("{} {ad}", a.network),
                None => a.network.clone(),
            })
            .collect();
        if !nets.is_empty() {
            let _ = write!(l, " on {}", nets.join(", "));
        } else if let Some(m) = &c.network_mode {
            let _ = write!(l, " network {m}");
        }
        out.push(l);
    }
    if let Some(p) = &n.pasta {
        let mut l = format!("{} {}:", p.comm, p.pid);
        for opt in ["-t", "-u", "-T", "-U"] {
            let _ = write!(l, " {opt} {}", p.args.specs(opt).join(","));
        }
        if !p.copied.is_empty() {
            let c: Vec<String> = p.copied.iter().map(|(a, i)| format!("{a} ({i})")).collect();
            let _ = write!(l, "; copied from the host: {}", c.join(" "));
        }
        if let Some(a) = &p.host_address_at {
            let _ = write!(l, "; the host's address at {a}");
        }
        if let Some(a) = &p.host_loopback_at {
            let _ = write!(l, "; the host's loopback at {a}");
        }
        out.push(l);
        if let Some(sock) = &p.args.socket {
            if !p.socket_rules.is_empty() || p.socket_error.is_none() {
                let r: Vec<String> = p
                    .socket_rules
                    .iter()
                    .map(|r| format!("{} {}", r.table, r.text))
                    .collect();
                out.push(format!(
                    "forwarded by pasta {} ({}): {}",
                    p.pid,
                    sock.display(),
                    if r.is_empty() {
                        "nothing".to_string()
                    } else {
                        r.join("; ")
                    }
                ));
            }
            if let Some(e) = &p.socket_error {
                out.push(format!("forwarding tables not readable: {e}"));
            }
        }
    }
    if !n.hostfwds.is_empty() {
        let p: Vec<String> = n
            .hostfwds
            .iter()
            .map(|f| {
                format!(
                    "{}:{}->{}:{}/{}",
                    f.host_addr, f.host_port, f.guest_addr, f.guest_port, f.proto
                )
            })
            .collect();
        out.push(format!(
            "forwarded by slirp4netns {} (api socket): {}",
            n.hostfwds[0].pid,
            p.join(" ")
        ));
    }
    if let Some(e) = &n.hostfwd_error {
        out.push(format!("host forwards not readable: {e}"));
    }
    for i in view
        .instances
        .iter()
        .filter(|i| i.child_netns == Some(n.inode))
    {
        let who = match (&i.parent_comm, i.parent_pid) {
            (Some(c), Some(p)) => format!("{c} {p}"),
            _ => "the launcher".into(),
        };
        if !i.ports.is_empty() {
            let p: Vec<String> = i
                .ports
                .iter()
                .map(|s| {
                    let s = &s.spec;
                    let pip = if s.parent_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &s.parent_ip
                    };
                    let cip = if s.child_ip.is_empty() {
                        "127.0.0.1"
                    } else {
                        &s.child_ip
                    };
                    format!(
                        "{pip}:{}->{cip}:{}/{}",
                        s.parent_port, s.child_port, s.proto
                    )
                })
                .collect();
            out.push(format!("published by {who} (api.sock): {}", p.join(" ")));
        } else if let Some(e) = &i.ports_error {
            out.push(format!("ports of {who} not readable: {e}"));
        }
    }
    out
}

fn node_id(ns: u64, idx: u32) -> String {
    format!("n{ns}_{idx}")
}
