//! The `nsnet ns ls` table, and the column writer the `net` listing shares.

use std::fmt::Write;

use super::{holder_text, notes};
use crate::namespaces::Snapshot;
use crate::nsfs::NsType;

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
    notes(&mut out, &snap.unreadable_pids, &snap.problems);
    out
}

pub(super) fn table<const N: usize>(rows: &[[String; N]]) -> String {
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
