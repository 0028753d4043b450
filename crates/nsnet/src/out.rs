//! Output helpers shared by the front ends, where a peer's exact format is reproduced:
//! Go's text/tabwriter tables (RootlessKit's `rootlessctl list-ports`) and Go's
//! `json.MarshalIndent` with four spaces (`rootlessctl info --json`).

use serde::Serialize;

/// RootlessKit's `tabwriter.NewWriter(w, 4, 8, 4, ' ', 0)` with every cell tab-terminated:
/// each cell, the last included, padded to its column's widest cell plus four spaces.
pub fn tab_table(rows: &[Vec<String>]) -> String {
    use std::io::Write;
    // Go's minwidth bounds the padded width (max(4, w + 4) = w + 4); the crate's bounds the
    // cell before padding, so it is 0 here to give Go's widths.
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(0).padding(4);
    for r in rows {
        for cell in r {
            let _ = write!(tw, "{cell}\t");
        }
        let _ = writeln!(tw);
    }
    tw.into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// JSON indented by four spaces (Go's json.MarshalIndent(v, "", "    ")).
pub fn indent4<T: Serialize>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser).expect("serializes");
    String::from_utf8(out).expect("JSON is UTF-8")
}
