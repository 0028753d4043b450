//! `nsnet ns`: the namespace inspector's command line. Discovery and rendering are
//! `nsnet-inspect`'s; this file picks the output form and the exit code.

use std::io::Write;
use std::path::PathBuf;

use nsnet_inspect::render;

#[derive(Debug, clap::Subcommand)]
pub enum NsCmd {
    /// List every namespace reachable from here: those with processes, and those held only by
    /// a file descriptor or a bind mount (in any mount namespace).
    Ls {
        /// Only these types (comma-separated: net,user,mnt,pid,uts,ipc,cgroup,time)
        #[arg(long = "type", short = 't', value_name = "TYPES")]
        types: Option<String>,
        /// JSON (schema in docs/ns.md)
        #[arg(long)]
        json: bool,
    },
    /// Explain every network namespace: role, interfaces, addresses, default route, veth
    /// pairs, bridges, tap devices and the processes that own them.
    Net {
        /// JSON (schema in docs/ns.md)
        #[arg(long)]
        json: bool,
    },
    /// Draw the network: host → rootless child → containers.
    Graph {
        /// text (a tree), dot (Graphviz) or mermaid
        #[arg(long, short = 'f', default_value = "text", value_parser = ["text", "dot", "mermaid"])]
        format: String,
        /// Write to FILE instead of standard output
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn emit(text: &str, output: Option<&PathBuf>) -> i32 {
    let r = match output {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
        }
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot write to standard output: {e}")),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nsnet: error: {e}");
            1
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("inspector types serialize");
    s.push('\n');
    s
}

pub fn main(cmd: NsCmd) -> i32 {
    match cmd {
        NsCmd::Ls {
            types,
            json: as_json,
        } => {
            let types = match types.as_deref().map(nsnet_inspect::parse_types) {
                None => Vec::new(),
                Some(Ok(t)) => t,
                Some(Err(e)) => {
                    eprintln!("nsnet: error: {e}");
                    return 2;
                }
            };
            let snap = nsnet_inspect::discover();
            if as_json {
                let list: Vec<_> = snap
                    .namespaces
                    .iter()
                    .filter(|n| types.is_empty() || types.contains(&n.id.kind))
                    .collect();
                emit(
                    &json(&serde_json::json!({
                        "namespaces": list,
                        "unreadable_pids": snap.unreadable_pids,
                        "problems": snap.problems,
                    })),
                    None,
                )
            } else {
                emit(&render::ls_table(&snap, &types), None)
            }
        }
        NsCmd::Net { json: as_json } => {
            let view = nsnet_inspect::net::gather();
            if as_json {
                emit(&json(&view), None)
            } else {
                emit(&render::net_text(&view), None)
            }
        }
        NsCmd::Graph { format, output } => {
            let view = nsnet_inspect::net::gather();
            let text = match format.as_str() {
                "dot" => render::graph_dot(&view),
                "mermaid" => render::graph_mermaid(&view),
                _ => render::graph_text(&view),
            };
            emit(&text, output.as_ref())
        }
    }
}
