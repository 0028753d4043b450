//! The `rootlessctl` personality: RootlessKit's API client, with its commands, flags and
//! output (the `list-ports` table is Go's tabwriter with padding 4; `info --json` is
//! indented by four spaces), over nsnet's `api.sock` or RootlessKit's.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nsnet_api::client::Client;
use nsnet_port::{PortSpec, PortSpecExt, PortStatus};

#[derive(Debug, Parser)]
#[command(
    name = "rootlessctl",
    about = "RootlessKit API client (nsnet personality)",
    disable_version_flag = true
)]
struct Cli {
    /// Debug mode
    #[arg(long, global = true)]
    debug: bool,
    /// Path to api.sock (under the "rootlesskit --state-dir" directory), defaults to $ROOTLESSKIT_STATE_DIR/api.sock
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the version
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List ports
    ListPorts {
        /// Prints as JSON
        #[arg(long)]
        json: bool,
    },
    /// Add ports
    AddPorts {
        #[arg(value_name = "SPEC", required = true)]
        specs: Vec<String>,
    },
    /// Remove ports
    RemovePorts {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
    /// Show info
    Info {
        /// Prints as JSON
        #[arg(long)]
        json: bool,
    },
}

fn port_rows(ports: &[PortStatus]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "ID",
            "PROTO",
            "PARENTIP",
            "PARENTPORT",
            "CHILDIP",
            "CHILDPORT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for p in ports {
        rows.push(vec![
            p.id.to_string(),
            p.spec.proto.clone(),
            p.spec.parent_ip.clone(),
            p.spec.parent_port.to_string(),
            p.spec.child_ip.clone(),
            p.spec.child_port.to_string(),
        ]);
    }
    rows
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("error: {msg}");
    1
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            return fail(
                text.lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: "),
            );
        }
        Err(e) => {
            let _ = e.print();
            return 0;
        }
    };
    if cli.version {
        println!(
            "rootlessctl version {}",
            nsnet_run::services::implementation_version()
        );
        return 0;
    }
    crate::init_logging(cli.debug);
    let Some(cmd) = cli.cmd else {
        return fail("no command given (list-ports, add-ports, remove-ports, info)");
    };
    // RootlessKit's rule ($ROOTLESSKIT_STATE_DIR) within nsnet's one order of finding an
    // instance: --socket, $NSNET_STATE_DIR, $ROOTLESSKIT_STATE_DIR, the default instance.
    let socket = match cli.socket {
        Some(s) => s,
        None => {
            use nsnet_ns::instance::{self, Source};
            let (dir, source) = instance::locate_dir(None);
            let socket = dir.join("api.sock");
            if source == Source::Default && !socket.exists() {
                return fail("please specify --socket or set $ROOTLESSKIT_STATE_DIR");
            }
            socket
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let client = Client::new(&socket);
    rt.block_on(async move {
        match cmd {
            Cmd::ListPorts { json } => match client.list_ports().await {
                Ok(ports) if json => {
                    for p in &ports {
                        println!("{}", serde_json::to_string(p).expect("status serializes"));
                    }
                    0
                }
                Ok(ports) => {
                    print!("{}", crate::out::tab_table(&port_rows(&ports)));
                    0
                }
                Err(e) => fail(e),
            },
            Cmd::AddPorts { specs } => {
                for s in specs {
                    let spec = match PortSpec::parse(&s) {
                        Ok(spec) => spec,
                        Err(e) => return fail(e),
                    };
                    match client.add_port(&spec).await {
                        Ok(st) => println!("{}", st.id),
                        Err(e) => return fail(e),
                    }
                }
                0
            }
            Cmd::RemovePorts { ids } => {
                for s in ids {
                    let id: u64 = match s.parse() {
                        Ok(i) => i,
                        Err(e) => return fail(format!("bad id {s}: {e}")),
                    };
                    if let Err(e) = client.remove_port(id).await {
                        return fail(e);
                    }
                    println!("{id}");
                }
                0
            }
            Cmd::Info { json } => match client.info().await {
                Ok(info) if json => {
                    println!("{}", crate::out::indent4(&info));
                    0
                }
                Ok(info) => {
                    println!("- REST API version: {}", info.api_version);
                    println!("- Implementation version: {}", info.version);
                    println!("- State Directory: {}", info.state_dir);
                    println!("- Child PID: {}", info.child_pid);
                    if let Some(n) = &info.network_driver {
                        println!("- Network Driver: {}", n.driver);
                        println!("  - DNS: [{}]", n.dns.join(" "));
                        if let Some(ip) = &n.child_ip {
                            println!("  - IP: {ip}");
                        }
                    }
                    if let Some(p) = &info.port_driver {
                        println!("- Port Driver: {}", p.driver);
                        println!(
                            "  - Supported protocols: [{}]",
                            p.protos.as_deref().unwrap_or_default().join(" ")
                        );
                    }
                    0
                }
                Err(e) => fail(e),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_rootlessctl_byte_for_byte() {
        let ports = vec![PortStatus {
            id: 1,
            spec: PortSpec::parse("127.0.0.1:18080:80/tcp").unwrap(),
        }];
        // Captured from Debian's rootlessctl 1.1.0 against RootlessKit 1.1.0.
        assert_eq!(
            crate::out::tab_table(&port_rows(&ports)),
            "ID    PROTO    PARENTIP     PARENTPORT    CHILDIP    CHILDPORT    \n\
             1     tcp      127.0.0.1    18080                    80           \n"
        );
    }
}
