//! The `nsnet ns ls` table, and the column writer the `net` listing shares.

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

/// Columns two spaces apart (Go's text/tabwriter with padding 2, as `lsns` lays them out);
/// the last column and trailing blanks unpadded.
pub(super) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    use std::io::Write as _;
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(0).padding(2);
    for r in rows {
        let _ = writeln!(tw, "{}", r.join("\t"));
    }
    let text = tw
        .into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    text.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}
