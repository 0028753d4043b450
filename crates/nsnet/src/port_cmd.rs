//! `nsnet port ls|add|rm`: manage the published ports of a running instance, found by its
//! state directory: `--state-dir`, else `$NSNET_STATE_DIR` / `$ROOTLESSKIT_STATE_DIR` (set
//! inside an instance), else the one running instance of this user whose `api.sock` answers
//! under `$TMPDIR` or `$XDG_RUNTIME_DIR/nsnet`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use nsnet_api::client::Client;
use nsnet_port::{PortSpec, PortSpecExt};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// State directory of the instance (default: found, see `nsnet port --help`)
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: PortCmd,
}

#[derive(Debug, Subcommand)]
enum PortCmd {
    /// List published ports
    #[command(alias = "list")]
    Ls {
        /// JSON array of {"id","spec"}, as the API returns it
        #[arg(long)]
        json: bool,
    },
    /// Publish ports: [PARENTIP:]PARENTPORT:[CHILDIP:]CHILDPORT/PROTO
    Add {
        #[arg(value_name = "SPEC", required = true)]
        specs: Vec<String>,
    },
    /// Stop publishing ports by id
    #[command(alias = "remove")]
    Rm {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<u64>,
    },
}

/// JSON indented by four spaces (Go's json.MarshalIndent(v, "", "    ")).
pub fn indent4<T: Serialize>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser).expect("serializes");
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut scan = |base: &Path, prefixes: &[&str]| {
        if let Ok(rd) = std::fs::read_dir(base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if prefixes.iter().any(|p| name.starts_with(p))
                    && e.path().join("api.sock").exists()
                {
                    dirs.push(e.path());
                }
            }
        }
    };
    scan(&std::env::temp_dir(), &["nsnet", "rootlesskit"]);
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        scan(&PathBuf::from(x).join("nsnet"), &[""]);
    }
    dirs.sort();
    dirs
}

async fn find_state_dir(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(d) = given {
        return Ok(d);
    }
    for var in ["NSNET_STATE_DIR", "ROOTLESSKIT_STATE_DIR"] {
        if let Some(d) = std::env::var_os(var) {
            return Ok(PathBuf::from(d));
        }
    }
    let mut live = Vec::new();
    for d in candidates() {
        if Client::new(&d.join("api.sock")).info().await.is_ok() {
            live.push(d);
        }
    }
    match live.len() {
        0 => Err("no running nsnet instance found; start one with `nsnet run --port-driver=builtin …` or pass --state-dir".into()),
        1 => Ok(live.remove(0)),
        _ => Err(format!(
            "{} running instances found ({}); choose one with --state-dir",
            live.len(),
            live.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub fn main(args: PortArgs) -> i32 {
    let fail = |msg: &dyn std::fmt::Display| {
        eprintln!("nsnet: error: {msg}");
        1
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    rt.block_on(async move {
        let dir = match find_state_dir(args.state_dir).await {
            Ok(d) => d,
            Err(e) => return fail(&e),
        };
        let client = Client::new(&dir.join("api.sock"));
        match args.cmd {
            PortCmd::Ls { json } => match client.list_ports().await {
                Ok(ports) if json => {
                    println!("{}", indent4(&ports));
                    0
                }
                Ok(ports) => {
                    let mut rows = vec![
                        ["ID", "PROTO", "HOST", "", "CHILD"]
                            .map(String::from)
                            .to_vec(),
                    ];
                    for p in &ports {
                        let plan = p.spec.plan();
                        let (host, child) = match plan {
                            Ok(pl) => (
                                if p.spec.parent_ip.is_empty() {
                                    format!("*:{}", p.spec.parent_port)
                                } else {
                                    pl.listen.to_string()
                                },
                                pl.target.to_string(),
                            ),
                            Err(_) => (
                                p.spec.parent_port.to_string(),
                                p.spec.child_port.to_string(),
                            ),
                        };
                        rows.push(vec![
                            p.id.to_string(),
                            p.spec.proto.clone(),
                            host,
                            "→".into(),
                            child,
                        ]);
                    }
                    print!("{}", crate::rootlessctl::tab_table(&rows));
                    0
                }
                Err(e) => fail(&e),
            },
            PortCmd::Add { specs } => {
                for s in specs {
                    let spec = match PortSpec::parse(&s) {
                        Ok(spec) => spec,
                        Err(e) => return fail(&e),
                    };
                    match client.add_port(&spec).await {
                        Ok(st) => println!("{} {}", st.id, st.spec.text()),
                        Err(e) => return fail(&e),
                    }
                }
                0
            }
            PortCmd::Rm { ids } => {
                for id in ids {
                    if let Err(e) = client.remove_port(id).await {
                        return fail(&e);
                    }
                    println!("{id}");
                }
                0
            }
        }
    })
}
