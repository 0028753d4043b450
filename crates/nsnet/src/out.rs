//! Output helpers shared by the front ends, where a peer's exact format is reproduced:
//! Go's text/tabwriter tables (RootlessKit's `rootlessctl list-ports`) and Go's
//! `json.MarshalIndent` with four spaces (`rootlessctl info --json`).

use serde::Serialize;

/// Go's text/tabwriter with minwidth 4 and padding 4: every cell, the last included, padded
/// to its column's widest cell plus four spaces.
pub fn tab_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .saturating_add(4)
                .max(4)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            out.push_str(&format!("{cell:<w$}", w = widths[c]));
        }
        out.push('\n');
    }
    out
}

/// JSON indented by four spaces (Go's json.MarshalIndent(v, "", "    ")).
pub fn indent4<T: Serialize>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser).expect("serializes");
    String::from_utf8(out).expect("JSON is UTF-8")
}
