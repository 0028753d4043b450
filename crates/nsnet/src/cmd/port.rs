//! `nsnet port ls|add|rm`: manage the published ports of a running instance, found as
//! `nsnet_ns::instance` finds every instance (`--state-dir`, `$NSNET_STATE_DIR`,
//! `$ROOTLESSKIT_STATE_DIR`, the default instance that `nsnet container run` starts), else the
//! one running instance of this user under the runtime directories.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use nsnet_api::client::Client;
use nsnet_ns::instance::{self, Instance, Source};
use nsnet_port::{PortSpec, PortSpecExt};

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

/// The instance: the one order of `nsnet_ns::instance` (given, `$NSNET_STATE_DIR`,
/// `$ROOTLESSKIT_STATE_DIR`, the default instance), else the one running instance a search of
/// the runtime directories finds (an `nsnet run` on a temporary state directory).
fn find_instance(given: Option<&Path>) -> Result<Instance, String> {
    let (dir, source) = instance::locate_dir(given);
    match Instance::at(&dir, source) {
        Ok(i) => Ok(i),
        Err(e) if source != Source::Default => Err(e.to_string()),
        Err(_) => {
            let mut live = Instance::scan();
            match live.len() {
                0 => Err("no running nsnet instance found; start one with `nsnet run --port-driver=builtin …` or pass --state-dir".into()),
                1 => Ok(live.remove(0)),
                _ => Err(format!(
                    "{} running instances found ({}); choose one with --state-dir",
                    live.len(),
                    live.iter()
                        .map(|i| i.state_dir().display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
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
        let inst = match find_instance(args.state_dir.as_deref()) {
            Ok(i) => i,
            Err(e) => return fail(&e),
        };
        let client = Client::new(&inst.api_socket());
        match args.cmd {
            PortCmd::Ls { json } => match client.list_ports().await {
                Ok(ports) if json => {
                    println!("{}", crate::out::indent4(&ports));
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
                    print!("{}", crate::out::tab_table(&rows));
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
