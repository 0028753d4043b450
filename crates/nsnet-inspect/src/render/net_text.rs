//! The `nsnet ns net` listing: each network namespace with its owner, processes, interfaces
//! (a table) and default routes.

use std::fmt::Write;

use super::table::table;
use super::{holder_text, notes, ns_title, where_text};
use crate::net::NetView;

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
        for l in super::about_lines(view, n) {
            let _ = writeln!(out, "  {l}");
        }
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
    for s in view.engines.iter().filter(|s| s.error.is_some()) {
        let _ = writeln!(
            out,
            "note: {} state at {} ({}) not readable: {}",
            s.engine.name(),
            s.path.display(),
            s.why,
            s.error.as_deref().unwrap_or_default()
        );
    }
    notes(&mut out, &view.unreadable_pids, &view.problems);
    out
}
