//! `nsnet ns`: the namespace inspector's command line. Discovery and rendering are
//! `nsnet-inspect`'s; this file picks the output form and the exit code.

use std::io::Write;
use std::path::{Path, PathBuf};

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
        /// Keep watching: print the view again whenever its namespaces, roles, names,
        /// interfaces, addresses, containers or ports change (until interrupted)
        #[arg(long)]
        watch: bool,
        /// With --watch: seconds between looks
        #[arg(long, value_name = "SECONDS", default_value = "1", requires = "watch")]
        interval: f64,
    },
    /// Draw the network: host → rootless child → containers.
    Graph {
        /// text (a tree), dot (Graphviz), mermaid, or svg (laid out in-process)
        #[arg(long, short = 'f', default_value = "text", value_parser = ["text", "dot", "mermaid", "svg"])]
        format: String,
        /// Write to FILE instead of standard output
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Keep watching: draw again whenever the view's shape changes (as `net --watch`);
        /// with -o, FILE is replaced (renamed into place) each time
        #[arg(long)]
        watch: bool,
        /// With --watch: seconds between looks
        #[arg(long, value_name = "SECONDS", default_value = "1", requires = "watch")]
        interval: f64,
    },
    /// Explain the path of a connection from FROM to TO through the rootless worlds, hop
    /// by hop, and where it ends.
    ///
    /// FROM: `host`, a PID, `net:[INODE]`, or a container (`web`, `docker/web`, an id
    /// prefix). TO: `ADDR:PORT`, `host:PORT` (the host's loopback, as FROM's world reaches
    /// it), or a container (`NAME[:PORT]`). Reads only; exit 0 when reachable, 4 when not.
    Trace {
        from: String,
        to: String,
        /// UDP instead of TCP
        #[arg(long)]
        udp: bool,
        /// JSON (schema in docs/ns.md)
        #[arg(long)]
        json: bool,
        /// After the walk, one TCP connection attempt from FROM to TO — only when the path
        /// ends inside a namespace explained here
        #[arg(long)]
        probe: bool,
    },
    /// Run a command in the namespaces of a process or of a rootless child.
    ///
    /// TARGET is a PID, or --child: the rootless child of a running nsnet or RootlessKit
    /// instance. Rootless, the target's user namespace is joined first. Without
    /// -n/-m/-U/-p/-u/-i/-C, every namespace of the target that differs from ours.
    Exec(ExecArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The target: a process id, or the name or id of a running `nsnet container`
    #[arg(
        value_name = "PID|CONTAINER",
        required_unless_present = "child",
        conflicts_with = "child"
    )]
    target: Option<String>,
    /// The rootless child of the running instance (its detached netns when there is one)
    #[arg(long)]
    child: bool,
    /// With --child: the instance's state directory (default: $ROOTLESSKIT_STATE_DIR, else
    /// the only running instance)
    #[arg(long, value_name = "DIR", requires = "child")]
    state_dir: Option<PathBuf>,
    /// Network namespace
    #[arg(short = 'n', long)]
    net: bool,
    /// Mount namespace
    #[arg(short = 'm', long)]
    mount: bool,
    /// User namespace
    #[arg(short = 'U', long)]
    user: bool,
    /// PID namespace (the command runs as a child of nsnet)
    #[arg(short = 'p', long)]
    pid_ns: bool,
    /// UTS namespace
    #[arg(short = 'u', long)]
    uts: bool,
    /// IPC namespace
    #[arg(short = 'i', long)]
    ipc: bool,
    /// Cgroup namespace
    #[arg(short = 'C', long)]
    cgroup: bool,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
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

/// The init process of a running container, by name or id.
/// The init process of a running container, by name or id: nsnet's own first (its store's
/// rules: a name, or an id prefix), then every engine `nsnet ns` reads (`web`,
/// `docker/web`, `podman/db`, an id prefix).
fn container_pid(key: &str) -> Result<i32, String> {
    use nsnet_container::store::{Status, Store};
    let own = Store::default_location().and_then(|s| s.find(key));
    if let Ok(c) = &own {
        if c.status() != Status::Running {
            return Err(format!("container {key} is not running"));
        }
        return Ok(c.state.pid);
    }
    let scan = nsnet_inspect::procscan::scan();
    let catalog = nsnet_inspect::engines::read(&scan);
    match catalog.find(key)? {
        // The engine's record is a claim: the process must still be there.
        Some(c) => match c.pid.filter(|p| scan.proc(*p).is_some()) {
            Some(pid) => Ok(pid),
            None => Err(format!("{}: its init process is gone", c.label())),
        },
        None => Err(own
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| format!("no running container is called {key}"))),
    }
}

fn exec(a: ExecArgs) -> i32 {
    use nsnet_inspect::NsType;
    use std::os::unix::process::CommandExt;
    let mut kinds = Vec::new();
    for (on, k) in [
        (a.net, NsType::Net),
        (a.mount, NsType::Mnt),
        (a.user, NsType::User),
        (a.pid_ns, NsType::Pid),
        (a.uts, NsType::Uts),
        (a.ipc, NsType::Ipc),
        (a.cgroup, NsType::Cgroup),
    ] {
        if on {
            kinds.push(k);
        }
    }
    let target = match a.target.as_deref() {
        Some(t) => {
            let pid = match t.parse::<i32>() {
                Ok(pid) => pid,
                Err(_) => match container_pid(t) {
                    Ok(pid) => pid,
                    Err(e) => {
                        eprintln!("nsnet: error: {e}");
                        return 1;
                    }
                },
            };
            nsnet_inspect::join::pid_target(pid)
        }
        None => child_of_instance(a.state_dir.as_deref()),
    };
    let joined = target
        .and_then(|t| nsnet_inspect::join::open(t, &kinds))
        .and_then(|list| {
            nsnet_inspect::join::join(&list)?;
            Ok(list.iter().any(|(k, _)| *k == NsType::Pid))
        });
    let new_pidns = match joined {
        Ok(p) => p,
        Err(e) => {
            eprintln!("nsnet: error: {e}");
            return 1;
        }
    };
    let mut cmd = std::process::Command::new(&a.command[0]);
    cmd.args(&a.command[1..]);
    let failed = |e: std::io::Error| {
        eprintln!(
            "nsnet: error: cannot run {}: {e}",
            a.command[0].to_string_lossy()
        );
        if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    };
    if !new_pidns {
        return failed(cmd.exec());
    }
    // A joined PID namespace holds only children: run the command as one and pass its status.
    match cmd.status() {
        Ok(s) => s.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
        }),
        Err(e) => failed(e),
    }
}

fn trace(from: &str, to: &str, udp: bool, as_json: bool, probe: bool) -> i32 {
    use nsnet_inspect::sockets::Proto;
    use nsnet_inspect::trace;
    let snap = nsnet_inspect::discover();
    let view = nsnet_inspect::net::gather_from(&snap);
    let proto = if udp { Proto::Udp } else { Proto::Tcp };
    let resolved = trace::resolve_from(&view, &snap, &view.catalog, from).and_then(|f| {
        let (t, hops, v) = trace::resolve_to(&view, &view.catalog, &f, to, proto)?;
        Ok((f, t, hops, v))
    });
    let (f, t, hops, v) = match resolved {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nsnet: error: {e}");
            return 1;
        }
    };
    let result = trace::trace(&view, &snap, &view.catalog, f, t, hops, v);
    // The probe connects only where the walk ended inside the worlds it explained.
    let probed = match (probe, &result.end) {
        (false, _) => None,
        (true, _) if udp => Some(Err("only TCP is probed".to_string())),
        (true, None) => Some(Err(
            "not probed: the path does not end inside a namespace explained here".to_string(),
        )),
        (true, Some(_)) => Some(trace::probe(
            &snap,
            result.from.netns,
            result.to.addr,
            result.to.port,
            std::time::Duration::from_secs(2),
        )),
    };
    let code = if result.verdict.outcome == trace::Outcome::Reachable {
        0
    } else {
        4
    };
    if as_json {
        let mut v = serde_json::to_value(&result).expect("serializes");
        v["probe"] = match &probed {
            None => serde_json::Value::Null,
            Some(Ok(())) => serde_json::json!({"connected": true, "error": null}),
            Some(Err(e)) => serde_json::json!({"connected": false, "error": e}),
        };
        return emit(&json(&v), None).max(code);
    }
    let mut text = render::trace_text(&result);
    match probed {
        None => {}
        Some(Ok(())) => text.push_str("probe: connected\n"),
        Some(Err(e)) => text.push_str(&format!("probe: {e}\n")),
    }
    emit(&text, None).max(code)
}

/// `ns net --watch`: the view again whenever its shape changes (see
/// `nsnet_inspect::net::NetView::shape`: processes coming and going alone do not count, or a
/// busy machine would reprint every second). Text views are separated by a line with the
/// time; JSON views are one compact document per line.
fn watch_net(as_json: bool, interval: f64) -> i32 {
    watch(interval, None, |view| {
        Ok(if as_json {
            let mut s = serde_json::to_string(view).expect("inspector types serialize");
            s.push('\n');
            s
        } else {
            format!("--- {} UTC\n{}", clock(), render::net_text(view))
        })
    })
}

/// `HH:MM:SS` (UTC) now.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// Looks every `interval` seconds and emits `draw(view)` whenever the view's shape changed;
/// into `output` (written beside it, then renamed over it, so that a viewer reloading the
/// file never reads half of one), else to standard output. Until interrupted, or an error.
fn watch(
    interval: f64,
    output: Option<&PathBuf>,
    draw: impl Fn(&nsnet_inspect::net::NetView) -> Result<String, String>,
) -> i32 {
    if !(interval.is_finite() && interval > 0.0) {
        eprintln!("nsnet: error: --interval must be a positive number of seconds");
        return 2;
    }
    let mut last = None;
    loop {
        let view = nsnet_inspect::net::gather();
        let shape = view.shape();
        if last.as_ref() != Some(&shape) {
            let text = match draw(&view) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("nsnet: error: {e}");
                    return 1;
                }
            };
            let code = match output {
                Some(p) => {
                    let mut tmp = p.clone().into_os_string();
                    tmp.push(".tmp");
                    let tmp = PathBuf::from(tmp);
                    match emit(&text, Some(&tmp)) {
                        0 => match std::fs::rename(&tmp, p) {
                            Ok(()) => 0,
                            Err(e) => {
                                let _ = std::fs::remove_file(&tmp);
                                eprintln!("nsnet: error: cannot write {}: {e}", p.display());
                                1
                            }
                        },
                        c => c,
                    }
                }
                None => emit(&text, None),
            };
            if code != 0 {
                return code;
            }
            let _ = std::io::stdout().flush();
            last = Some(shape);
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(interval));
    }
}

/// One drawing of the graph in `format`.
fn draw_graph(view: &nsnet_inspect::net::NetView, format: &str) -> Result<String, String> {
    Ok(match format {
        "dot" => render::graph_dot(view),
        "mermaid" => render::graph_mermaid(view),
        "svg" => nsnet_inspect::svg::graph_svg(view)
            .map_err(|e| format!("cannot lay out the SVG: {e}"))?,
        _ => render::graph_text(view),
    })
}

pub fn main(cmd: NsCmd) -> i32 {
    match cmd {
        NsCmd::Trace {
            from,
            to,
            udp,
            json: as_json,
            probe,
        } => trace(&from, &to, udp, as_json, probe),
        NsCmd::Exec(a) => exec(a),
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
        NsCmd::Net {
            json: as_json,
            watch,
            interval,
        } => {
            if watch {
                return watch_net(as_json, interval);
            }
            let view = nsnet_inspect::net::gather();
            if as_json {
                emit(&json(&view), None)
            } else {
                emit(&render::net_text(&view), None)
            }
        }
        NsCmd::Graph {
            format,
            output,
            watch: true,
            interval,
        } => {
            if output.is_none() && format == "svg" {
                eprintln!(
                    "nsnet: error: ns graph --watch --format svg needs -o FILE (one SVG document per file)"
                );
                return 2;
            }
            // On standard output each drawing follows a line with the time, in the
            // format's own comment syntax where it has one.
            let header = match (output.is_some(), format.as_str()) {
                (true, _) => None,
                (false, "dot") => Some("//"),
                (false, "mermaid") => Some("%%"),
                (false, _) => Some(""),
            };
            watch(interval, output.as_ref(), |view| {
                let g = draw_graph(view, &format)?;
                Ok(match header {
                    None => g,
                    Some("") => format!("--- {} UTC\n{g}", clock()),
                    Some(c) => format!("{c} --- {} UTC\n{g}", clock()),
                })
            })
        }
        NsCmd::Graph { format, output, .. } => {
            let view = nsnet_inspect::net::gather();
            match draw_graph(&view, &format) {
                Ok(text) => emit(&text, output.as_ref()),
                Err(e) => {
                    eprintln!("nsnet: error: {e}");
                    1
                }
            }
        }
    }
}

/// `--child`: the instance `nsnet_ns::instance`'s order finds (given, `$NSNET_STATE_DIR`,
/// `$ROOTLESSKIT_STATE_DIR`, the default instance); when that finds none, the process table
/// is searched (for the directory given, or for the one running instance).
fn child_of_instance(
    given: Option<&Path>,
) -> Result<nsnet_inspect::join::Target, nsnet_inspect::Error> {
    use nsnet_ns::instance::{self, Instance, Source};
    let (dir, source) = instance::locate_dir(given);
    if let Ok(i) = Instance::at(&dir, source)
        && let Ok(netns) = i.open(nsnet_inspect::NsType::Net)
    {
        return Ok(nsnet_inspect::join::Target {
            pid: i.child_pid(),
            netns: Some(netns),
            what: format!("the rootless child of {}", i.state_dir().display()),
        });
    }
    let dir = (source != Source::Default).then_some(dir);
    nsnet_inspect::join::child_target(&nsnet_inspect::discover(), dir.as_deref())
}
