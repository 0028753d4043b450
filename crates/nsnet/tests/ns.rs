//! `nsnet ns`: the namespace inspector against real worlds, as root and as the unprivileged
//! user (scripts/test runs every test both ways, each in a fresh network namespace).
//!
//! The seed's world is built by [`Seed::start`]: `nsnet run --net=none --detach-netns
//! --pidns` gives a user namespace, a child mount namespace and a detached netns held only by
//! a bind mount on `$STATE/netns`; inside it the script makes a bridge br0 10.4.0.1/24, two
//! "containers" (A: a process in its own netns; B: a netns held only by a bind mount in the
//! child's mount namespace) joined by veth pairs with eth0 10.4.0.2/24 and 10.4.0.3/24, tap0
//! owned by a process living in the host (world) netns, as slirp4netns does, and a netns held
//! only by a file descriptor. No packet is sent anywhere.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The seed world (see the file's header); writes two inodes to $READY once built.
const SEED: &str = include_str!("fixtures/ns_seed.sh");

fn inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .ino()
}

fn ns_inode(link: &str) -> Option<u64> {
    let l = std::fs::read_link(link).ok()?;
    let s = l.to_str()?;
    s.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// The netns `nsnet ns net` must call the host's, computed the documented way: PID 1's, else
/// kthreadd's, else our own.
fn expected_host() -> u64 {
    if let Some(h) = ns_inode("/proc/1/ns/net") {
        return h;
    }
    if std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd")
        && let Some(h) = ns_inode("/proc/2/ns/net")
    {
        return h;
    }
    ns_inode("/proc/self/ns/net").unwrap()
}

struct Seed {
    /// Killed with all its namespaces' processes, thanks to --pidns.
    inst: Instance,
    world: u64,
    child: u64,
    ctr_a: u64,
    ctr_b: u64,
    fd_held: u64,
}

impl Seed {
    fn start() -> Seed {
        let inst = Instance::run()
            .args(["--net=none", "--detach-netns", "--pidns"])
            .script(SEED)
            .start();
        let ids = std::fs::read_to_string(inst.dir().join("ready")).unwrap();
        let ids: Vec<u64> = ids.split_whitespace().map(|s| s.parse().unwrap()).collect();
        let root = format!(
            "/proc/{}/root{}",
            inst.child_pid(),
            inst.state_dir().display()
        );
        Seed {
            world: ns_inode("/proc/self/ns/net").unwrap(),
            child: inode(&format!("{root}/netns")),
            ctr_a: ids[0],
            ctr_b: inode(&format!("{root}/ctr-b")),
            fd_held: ids[1],
            inst,
        }
    }
}

fn json_of(args: &[&str]) -> Value {
    let o = output(nsnet().args(args));
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

fn by_inode(list: &Value, ino: u64) -> &Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|n| n["inode"] == ino)
        .unwrap_or_else(|| panic!("net:[{ino}] not listed"))
}

#[test]
fn ls_finds_namespaces_held_only_by_bind_mounts_and_descriptors() {
    let seed = Seed::start();
    let v = json_of(&["ns", "ls", "--type", "net,user", "--json"]);
    let list = &v["namespaces"];
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|n| n["type"] == "net" || n["type"] == "user")
    );
    let userns = ns_inode(&format!("/proc/{}/ns/user", seed.inst.child_pid())).unwrap();
    let ours: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "net" && n["owner"]["userns"] == userns)
        .collect();
    assert_eq!(
        ours.len(),
        4,
        "child, A, B and the fd-held netns: {ours:#?}"
    );
    let state = seed.inst.state_dir().display().to_string();
    let child = by_inode(list, seed.child);
    assert_eq!(child["held_by"][0]["kind"], "bind-mount");
    assert_eq!(child["held_by"][0]["path"], format!("{state}/netns"));
    assert_eq!(
        child["held_by"][0]["mntns"],
        ns_inode(&format!("/proc/{}/ns/mnt", seed.inst.child_pid())).unwrap()
    );
    let b = by_inode(list, seed.ctr_b);
    assert_eq!(b["processes"].as_array().unwrap().len(), 0);
    assert_eq!(b["held_by"][0]["path"], format!("{state}/ctr-b"));
    let f = by_inode(list, seed.fd_held);
    assert_eq!(f["processes"].as_array().unwrap().len(), 0);
    assert_eq!(f["held_by"].as_array().unwrap().len(), 1);
    assert_eq!(f["held_by"][0]["kind"], "fd");
    assert_eq!(f["held_by"][0]["fd"], 9);
    assert_eq!(f["held_by"][0]["comm"], "sleep");
    assert_eq!(
        by_inode(list, userns)["owner"]["uid"],
        nix::unistd::geteuid().as_raw()
    );

    // util-linux lsns lists namespaces by their processes only: B and the fd-held one are
    // missing there.
    let o = output(std::process::Command::new("lsns").args(["-t", "net", "-n", "-o", "NS"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let lsns: Vec<u64> = stdout(&o)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        !lsns.contains(&seed.ctr_b) && !lsns.contains(&seed.fd_held),
        "{lsns:?}"
    );

    // The table says the same for people.
    let o = output(nsnet().args(["ns", "ls", "-t", "net"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let line = |ino: u64| {
        table
            .lines()
            .find(|l| l.starts_with(&ino.to_string()))
            .unwrap_or_else(|| panic!("{ino} not in\n{table}"))
            .to_string()
    };
    assert!(line(seed.ctr_b).ends_with(&format!(
        "bind mount {state}/ctr-b (in mnt:[{}] of pid {})",
        ns_inode(&format!("/proc/{}/ns/mnt", seed.inst.child_pid())).unwrap(),
        seed.inst.child_pid()
    )));
    assert!(
        line(seed.fd_held).contains(" fd 9 of sleep "),
        "{}",
        line(seed.fd_held)
    );
}

#[test]
fn net_explains_roles_pairs_bridge_and_tap_owner() {
    let seed = Seed::start();
    let v = json_of(&["ns", "net", "--json"]);
    let host = expected_host();
    assert_eq!(v["host"], host);
    let ns = &v["netns"];
    let role = |ino: u64| by_inode(ns, ino)["role"].as_str().unwrap().to_string();
    assert_eq!(
        role(seed.world),
        if host == seed.world { "host" } else { "parent" }
    );
    assert_eq!(role(seed.child), "rootless-child");
    assert_eq!(role(seed.ctr_a), "container");
    assert_eq!(role(seed.ctr_b), "container");
    assert_eq!(role(seed.fd_held), "orphan");
    assert_eq!(by_inode(ns, seed.ctr_b)["label"], "ctr-b");

    let inst: Vec<&Value> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state_dir"] == seed.inst.state_dir().to_str().unwrap())
        .collect();
    assert_eq!(inst.len(), 1);
    assert_eq!(inst[0]["child_netns"], seed.child);
    assert_eq!(inst[0]["parent_netns"], seed.world);
    assert_eq!(inst[0]["detached"], true);
    assert_eq!(inst[0]["child_pid"], seed.inst.child_pid());

    // Exactly two veth pairs, each verified from both sides, child ⇄ container eth0.
    let pairs: Vec<&Value> = v["veth_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["a"]["netns"] == seed.child || p["b"]["netns"] == seed.child)
        .collect();
    assert_eq!(pairs.len(), 2, "{pairs:#?}");
    for (veth, ctr) in [("veth-a", seed.ctr_a), ("veth-b", seed.ctr_b)] {
        let p = pairs
            .iter()
            .find(|p| p["a"]["name"] == veth || p["b"]["name"] == veth)
            .unwrap();
        let (mine, theirs) = if p["a"]["netns"] == seed.child {
            (&p["a"], &p["b"])
        } else {
            (&p["b"], &p["a"])
        };
        assert_eq!(mine["name"], veth);
        assert_eq!(theirs["netns"], ctr);
        assert_eq!(theirs["name"], "eth0");
        assert_eq!(p["verified"], true);
    }

    // The child: lo, br0 with both ports and the gateway address, the veths on br0, tap0
    // owned by the python process that lives in the world netns.
    let child = by_inode(ns, seed.child);
    let ifs = child["interfaces"].as_array().unwrap();
    let names: Vec<&str> = ifs.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lo", "br0", "veth-a", "veth-b", "tap0"]);
    let iface = |n: &str| ifs.iter().find(|i| i["name"] == n).unwrap();
    assert_eq!(iface("br0")["kind"], "bridge");
    assert_eq!(
        iface("br0")["ports"],
        serde_json::json!(["veth-a", "veth-b"])
    );
    assert!(
        iface("br0")["addresses"]
            .as_array()
            .unwrap()
            .contains(&"10.4.0.1/24".into())
    );
    assert_eq!(iface("veth-a")["master"], "br0");
    assert_eq!(iface("veth-a")["peer"]["netns"], seed.ctr_a);
    assert_eq!(iface("tap0")["kind"], "tun");
    let owners = iface("tap0")["tap_owners"].as_array().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["comm"], "python3");
    assert_eq!(owners[0]["netns"], seed.world);
    assert_eq!(owners[0]["resolved_by"], "tungetdevnetns");
    let taps: Vec<&Value> = v["taps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["tap"]["netns"] == seed.child)
        .collect();
    assert_eq!(taps.len(), 1);

    for (ctr, addr) in [(seed.ctr_a, "10.4.0.2/24"), (seed.ctr_b, "10.4.0.3/24")] {
        let c = by_inode(ns, ctr);
        let eth0 = c["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "eth0")
            .unwrap();
        assert!(eth0["addresses"].as_array().unwrap().contains(&addr.into()));
        assert_eq!(eth0["peer"]["netns"], seed.child);
        assert_eq!(
            c["default_routes"],
            serde_json::json!([{"gateway": "10.4.0.1", "dev": "eth0"}])
        );
    }
}

/// Replaces the volatile ids (inodes, pids, paths, link-local addresses) by names.
fn normalise(text: &str, names: &[(String, &str)]) -> String {
    let mut t = text.to_string();
    for (from, to) in names {
        t = t.replace(from.as_str(), to);
    }
    t.lines()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.starts_with("fe80::"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn graph_text_reads_host_to_child_to_containers() {
    let seed = Seed::start();
    let v = json_of(&["ns", "net", "--json"]);
    let o = output(nsnet().args(["ns", "graph"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let tap = &v["taps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tap"]["netns"] == seed.child)
        .unwrap()["owner"];
    let inst = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["child_netns"] == seed.child)
        .unwrap();
    let ctr_a_label = by_inode(&v["netns"], seed.ctr_a)["label"]
        .as_str()
        .unwrap()
        .to_string();
    let names = vec![
        (format!("net:[{}]", seed.world), "net:[WORLD]"),
        (format!("net:[{}]", seed.child), "net:[CHILD]"),
        (format!("net:[{}]", seed.ctr_a), "net:[A]"),
        (format!("net:[{}]", seed.ctr_b), "net:[B]"),
        (ctr_a_label, "sleep A"),
        (format!("python3 {}", tap["pid"]), "python3 TAPPID"),
        (format!("nsnet {}", inst["parent_pid"]), "nsnet PARENT"),
        (seed.inst.state_dir().display().to_string(), "STATE"),
    ];
    let text = normalise(&text, &names);
    // The child's subtree, exactly: every interface, each pair, the tap owner and where it
    // lives, the containers under the child.
    let start = text
        .lines()
        .position(|l| l.contains("net:[CHILD]  rootless-child"))
        .unwrap_or_else(|| panic!("{text}"));
    let subtree: Vec<&str> = text.lines().skip(start).take(14).collect();
    let world_role = if expected_host() == seed.world {
        "host"
    } else {
        "parent"
    };
    let expected = format!(
        "\
└─▶ net:[CHILD]  rootless-child  of nsnet PARENT (detached, state STATE)  [launched by nsnet PARENT; tap0 carried by python3 TAPPID (fd 4)]
    ├── lo (loopback) 127.0.0.1/8 ::1/128
    ├── br0 (bridge) 10.4.0.1/24
    ├── veth-a (veth) port of br0 ⇄ eth0 in container sleep A net:[A]
    ├── veth-b (veth) port of br0 ⇄ eth0 in container ctr-b net:[B]
    ├── tap0 (tun) 10.0.2.100/24 ◀ python3 TAPPID in {world_role} net:[WORLD]
    ├─▶ net:[A]  container  sleep A  [veth veth-a ⇄ eth0]
    │   ├── lo (loopback) 127.0.0.1/8 ::1/128
    │   ├── eth0 (veth) 10.4.0.2/24 ⇄ veth-a in rootless-child net:[CHILD]
    │   └── default via 10.4.0.1 dev eth0
    └─▶ net:[B]  container  ctr-b  [veth veth-b ⇄ eth0]
        ├── lo (loopback) DOWN
        ├── eth0 (veth) 10.4.0.3/24 ⇄ veth-b in rootless-child net:[CHILD]
        └── default via 10.4.0.1 dev eth0"
    );
    let got = subtree.join("\n");
    // The subtree hangs under the world netns, as its last item.
    let world_line = text
        .lines()
        .position(|l| l.starts_with(&format!("net:[WORLD]  {world_role}")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(world_line < start, "{text}");
    assert_eq!(got, expected, "\n{text}");
}

#[test]
fn dot_mermaid_and_svg_draw_the_veth_tap_and_port_edges() {
    let seed = Seed::start();
    let v = json_of(&["ns", "net", "--json"]);
    let child = by_inode(&v["netns"], seed.child);
    let idx = |name: &str| {
        child["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()["index"]
            .as_u64()
            .unwrap()
    };
    let tap_pid = v["taps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tap"]["netns"] == seed.child)
        .unwrap()["owner"]["pid"]
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.dot");
    let o = output(nsnet().args([
        "ns",
        "graph",
        "--format",
        "dot",
        "-o",
        file.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let dot = std::fs::read_to_string(&file).unwrap();
    assert!(dot.starts_with("digraph nsnet {"), "{dot}");
    assert!(dot.contains(&format!("subgraph cluster_{} {{", seed.child)));
    let n = |ns: u64, i: u64| format!("n{ns}_{i}");
    assert!(
        dot.contains(&format!(
            "  p{tap_pid} -> {} [label=\"tap fd 4\"];",
            n(seed.child, idx("tap0"))
        )),
        "{dot}"
    );
    assert!(dot.contains(&format!(
        "  {} -> {} [style=dashed, label=\"port\"];",
        n(seed.child, idx("veth-a")),
        n(seed.child, idx("br0"))
    )));
    let veth_lines = dot
        .lines()
        .filter(|l| l.contains("label=\"veth\"") && l.contains(&format!("n{}_", seed.child)))
        .count();
    assert_eq!(veth_lines, 2, "{dot}");

    // SVG, laid out in-process: one box per namespace with its interfaces, the edges named.
    let svg_file = dir.path().join("g.svg");
    let o = output(nsnet().args(["ns", "graph", "-f", "svg", "-o", svg_file.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&svg_file).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    for text in [
        format!(">net:[{}]<", seed.child),
        format!(">net:[{}]<", seed.ctr_a),
        ">container ctr-b<".to_string(),
        ">br0 (bridge) 10.4.0.1/24<".to_string(),
        ">eth0 (veth) 10.4.0.3/24<".to_string(),
        format!(">tap0 ◀ python3 {tap_pid}<"),
        ">veth-a ⇄ eth0<".to_string(),
        ">veth-b ⇄ eth0<".to_string(),
    ] {
        assert!(svg.contains(&text), "{text} not in {svg}");
    }

    let o = output(nsnet().args(["ns", "graph", "-f", "mermaid"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let mm = stdout(&o);
    assert!(mm.starts_with("flowchart LR\n"));
    assert!(mm.contains(&format!(
        "  p{tap_pid} -->|tap fd 4| {}",
        n(seed.child, idx("tap0"))
    )));
    assert_eq!(
        mm.lines()
            .filter(|l| l.contains("<-->|veth|") && l.contains(&format!("n{}_", seed.child)))
            .count(),
        2,
        "{mm}"
    );
}

/// Debian's RootlessKit 1.1.0 with slirp4netns: the child netns is the child process's own
/// (not detached), tap0 is in it, and its owner is slirp4netns living in the parent (world)
/// netns. As root, root inspects the unprivileged user's instance.
#[test]
fn rootlesskit_with_slirp4netns_is_explained() {
    // RootlessKit refuses root without subordinate ids: as root, the test user runs it and
    // root inspects that user's world (scripts/test creates the user).
    let cmd = if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "nsnet-test", "--", "rootlesskit"]);
        c
    } else {
        std::process::Command::new("rootlesskit")
    };
    let b = Instance::launcher(cmd).args(["--net=slirp4netns", "--disable-host-loopback"]);
    let b = if is_root() { b.shared() } else { b };
    let rk = b.start();
    let (state, child_pid) = (rk.state_dir().to_path_buf(), rk.child_pid());
    let world = ns_inode("/proc/self/ns/net").unwrap();
    let child = ns_inode(&format!("/proc/{child_pid}/ns/net")).unwrap();
    // slirp4netns configures tap0 after the child starts; wait until it is up.
    let mut v = json_of(&["ns", "net", "--json"]);
    for _ in 0..100 {
        let has_tap = v["taps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tap"]["netns"] == child);
        if has_tap {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        v = json_of(&["ns", "net", "--json"]);
    }
    let c = by_inode(&v["netns"], child);
    assert_eq!(c["role"], "rootless-child");
    let inst = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["state_dir"] == state.to_str().unwrap())
        .expect("the rootlesskit instance");
    assert_eq!(inst["detached"], false);
    assert_eq!(inst["parent_comm"], "rootlesskit");
    assert_eq!(inst["child_netns"], child);
    assert_eq!(inst["parent_netns"], world);
    let taps: Vec<&Value> = v["taps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["tap"]["netns"] == child)
        .collect();
    assert_eq!(taps.len(), 1, "{v:#}");
    assert_eq!(taps[0]["tap"]["name"], "tap0");
    assert_eq!(taps[0]["owner"]["comm"], "slirp4netns");
    assert_eq!(taps[0]["owner"]["netns"], world);
    let tap0 = c["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "tap0")
        .unwrap();
    assert!(
        tap0["addresses"]
            .as_array()
            .unwrap()
            .contains(&"10.0.2.100/24".into())
    );
    assert_eq!(
        c["default_routes"],
        serde_json::json!([{"gateway": "10.0.2.2", "dev": "tap0"}])
    );

    // The text says which process carries the child's traffic and where it lives.
    let o = output(nsnet().args(["ns", "graph"]));
    let text = stdout(&o);
    let tap_line = text
        .lines()
        // (Other worlds may have a tap0 of their own: ours is the one slirp4netns owns.)
        .find(|l| {
            l.contains("tap0 (tun) 10.0.2.100/24")
                && l.contains(&format!("◀ slirp4netns {} ", taps[0]["owner"]["pid"]))
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        tap_line.contains(&format!("◀ slirp4netns {} in ", taps[0]["owner"]["pid"]))
            && tap_line.ends_with(&format!("net:[{world}]")),
        "{tap_line}"
    );
}

#[test]
fn bad_input_is_one_line_and_a_usage_exit() {
    let o = output(nsnet().args(["ns", "ls", "--type", "net,bogus"]));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "nsnet: error: unknown namespace type \"bogus\" (want net, user, mnt, pid, uts, ipc, cgroup or time)\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/g.dot");
    let o = output(nsnet().args(["ns", "graph", "-o", missing.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "nsnet: error: cannot write {}: ",
            missing.display()
        )) && err.lines().count() == 1,
        "{err}"
    );
    assert!(!Path::new(&missing).exists());
}

/// A namespace the unprivileged user can see but not enter (root made it, bind-mounted in
/// the world's mount namespace): listed, with the reason its interfaces are missing, and the
/// rest of the view still printed. Root is needed to make a namespace the user cannot enter.
#[test]
fn root_only_a_namespace_the_user_cannot_enter_is_reported_not_fatal() {
    assert!(
        is_root(),
        "root-only test: scripts/test skips it for the unprivileged run"
    );
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let pin = dir.path().join("roots-netns");
    std::fs::write(&pin, "").unwrap();
    let o = output(std::process::Command::new("unshare").args([
        "-n",
        "mount",
        "--bind",
        "/proc/self/ns/net",
        pin.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let pinned = inode(pin.to_str().unwrap());
    let as_user = |args: &[&str]| {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "nsnet-test", "--"])
            .arg(nsnet_bin())
            .args(args);
        output(&mut c)
    };
    let o = as_user(&["ns", "net", "--json"]);
    let _ = nix::mount::umount(&pin);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = by_inode(&v["netns"], pinned);
    assert_eq!(n["role"], "orphan");
    assert_eq!(n["interfaces"].as_array().unwrap().len(), 0);
    let err = n["error"].as_str().unwrap();
    assert!(
        err.starts_with(&format!("cannot enter net:[{pinned}]: cannot ")),
        "{err}"
    );
    let world = by_inode(&v["netns"], ns_inode("/proc/self/ns/net").unwrap());
    assert!(
        world["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "lo"),
        "the readable namespaces are still explained"
    );
}

/// The host PID of the process in network namespace `net` (container A's sleep).
fn pid_in(net: u64) -> i32 {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            (ns_inode(&format!("/proc/{pid}/ns/net"))? == net).then_some(pid)
        })
        .expect("a process in the namespace")
}

#[test]
fn exec_child_and_pid_targets_without_symlinks() {
    let seed = Seed::start();
    // The detached child netns, found by the state directory alone.
    let state = seed.inst.state_dir().to_str().unwrap();
    // (Other worlds' instances may be visible: name ours, by environment or flag.)
    let with_env = [
        "ns",
        "exec",
        "--child",
        "-n",
        "--",
        "readlink",
        "/proc/self/ns/net",
    ];
    let with_flag = [
        "ns",
        "exec",
        "--child",
        "--state-dir",
        state,
        "-n",
        "--",
        "readlink",
        "/proc/self/ns/net",
    ];
    for (args, env) in [(&with_env[..], Some(state)), (&with_flag[..], None)] {
        let mut c = nsnet();
        c.args(args);
        match env {
            Some(d) => c.env("ROOTLESSKIT_STATE_DIR", d),
            None => c.env_remove("ROOTLESSKIT_STATE_DIR"),
        };
        let o = output(&mut c);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("net:[{}]\n", seed.child), "{args:?}");
    }
    let o = output(nsnet().args([
        "ns",
        "exec",
        "--child",
        "--state-dir",
        state,
        "-n",
        "--",
        "ip",
        "-br",
        "addr",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let br0 = stdout(&o);
    assert!(
        br0.lines()
            .any(|l| l.starts_with("br0 ") && l.contains("10.4.0.1/24")),
        "{br0}"
    );
    // A container by PID: its netns, and (rootless) the user namespace that allows it.
    let a = pid_in(seed.ctr_a);
    let o = output(nsnet().args([
        "ns",
        "exec",
        &a.to_string(),
        "-n",
        "--",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; ip -br addr show eth0",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with(&format!("net:[{}]\n", seed.ctr_a)), "{out}");
    assert!(out.contains("10.4.0.2/24"), "{out}");
    // The child's PID and mount namespaces: its PID 1 is the launcher's child stage; the
    // command's exit status comes back.
    let o = output(nsnet().args([
        "ns",
        "exec",
        "--child",
        "--state-dir",
        state,
        "-p",
        "-m",
        "--",
        "sh",
        "-c",
        "cat /proc/1/comm; exit 3",
    ]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "exe\n");
}

#[test]
fn exec_errors_are_one_line_with_distinct_codes() {
    world();
    let o = output(nsnet().args(["ns", "exec", "999999999", "--", "true"]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "nsnet: error: process 999999999 is gone\n");
    let o = output(nsnet().args([
        "ns",
        "exec",
        "--child",
        "--state-dir",
        "/nonexistent",
        "--",
        "true",
    ]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "nsnet: error: no running nsnet or RootlessKit instance with state directory /nonexistent\n"
    );
    let me = std::process::id().to_string();
    let o = output(nsnet().args(["ns", "exec", &me, "-n", "--", "/nonexistent/cmd"]));
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).starts_with("nsnet: error: cannot run /nonexistent/cmd: "),
        "{}",
        stderr(&o)
    );
    let o = output(nsnet().args(["ns", "exec", "1", "--"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "nsnet: error: the following required arguments were not provided: <COMMAND>... (see nsnet --help)\n"
    );
}

/// slirp4netns alone, as Podman uses it: no launcher state directory names the namespace;
/// the tap owned from the world netns is what makes it a rootless child, and the world netns
/// its parent.
#[test]
fn a_bare_slirp4netns_namespace_is_a_rootless_child_by_its_tap() {
    world();
    let mut sleeper = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = sleeper.id() as i32;
    let world_net = ns_inode("/proc/self/ns/net").unwrap();
    let mut child = None;
    for _ in 0..250 {
        child = ns_inode(&format!("/proc/{pid}/ns/net")).filter(|n| *n != world_net);
        if child.is_some()
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let child = child.expect("the sleeper's netns");
    let mut slirp = std::process::Command::new("slirp4netns")
        .args([
            "--configure",
            "--disable-host-loopback",
            &pid.to_string(),
            "tap0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slirp4netns (Debian package slirp4netns) is installed");
    let found = (|| {
        for _ in 0..250 {
            let v = json_of(&["ns", "net", "--json"]);
            let tap = v["taps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tap"]["netns"] == child)
                .cloned();
            if let Some(t) = tap {
                return Some((v, t));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    })();
    let _ = slirp.kill();
    let _ = slirp.wait();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let (v, tap) = found.expect("tap0 of slirp4netns found");
    assert_eq!(tap["owner"]["comm"], "slirp4netns");
    assert_eq!(tap["owner"]["pid"], slirp.id());
    assert_eq!(tap["owner"]["netns"], world_net);
    let c = by_inode(&v["netns"], child);
    assert_eq!(c["role"], "rootless-child");
    assert_eq!(
        c["label"],
        format!("of slirp4netns {} (tap tap0)", slirp.id())
    );
    let expected_world = if expected_host() == world_net {
        "host"
    } else {
        "parent"
    };
    assert_eq!(by_inode(&v["netns"], world_net)["role"], expected_world);
}

/// With a port driver the rootless nsnet parent joins its child's user namespace (to keep a
/// thread in the child's netns); the instance must still be recognised, through the state
/// directory in the child's environment.
#[test]
fn an_instance_whose_parent_joined_the_child_user_namespace_is_recognised() {
    let inst = Instance::run()
        .args(["--net=none", "--detach-netns", "--port-driver=builtin"])
        .start();
    let (state, child) = (inst.state_dir().to_path_buf(), inst.child_pid());
    let v = json_of(&["ns", "net", "--json"]);
    drop(inst);
    let inst = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["state_dir"] == state.display().to_string())
        .unwrap_or_else(|| panic!("instance not found: {}", v["instances"]));
    assert_eq!(inst["child_pid"], child);
    assert_eq!(inst["detached"], true);
    let netns = inst["child_netns"]
        .as_u64()
        .expect("the detached netns is found");
    assert_eq!(by_inode(&v["netns"], netns)["role"], "rootless-child");
}

/// `ns net --watch` prints the view again when a rootless instance comes and when it goes
/// (other worlds on the machine may add views of their own: only these two are required).
#[test]
fn net_watch_prints_again_when_an_instance_comes_and_goes() {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let mut w = nsnet()
        .args(["ns", "net", "--watch", "--interval", "0.2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let out = w.stdout.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    // The views printed so far, each the lines after a `--- HH:MM:SS UTC` header.
    let views = || -> Vec<String> {
        let all = lines.lock().unwrap();
        let mut v: Vec<String> = Vec::new();
        for l in all.iter() {
            if l.starts_with("--- ") && l.ends_with(" UTC") {
                v.push(String::new());
            } else if let Some(cur) = v.last_mut() {
                cur.push_str(l);
                cur.push('\n');
            }
        }
        v
    };
    let wait_for = |what: &str, ok: &dyn Fn(&[String]) -> bool| {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while !ok(&views()) {
            assert!(std::time::Instant::now() < until, "{what}: {:#?}", views());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("a first view", &|v| !v.is_empty());
    let inst = Instance::run()
        .args(["--net=none", "--detach-netns"])
        .start();
    let state = format!("state {}", inst.state_dir().display());
    let before = views().len();
    wait_for("a view with the new instance", &|v| {
        v.len() > before && v.iter().skip(before).any(|x| x.contains(&state))
    });
    let with = views().len();
    drop(inst);
    wait_for("a view without it", &|v| {
        v.len() > with && v.last().is_some_and(|x| !x.contains(&state))
    });
    let _ = w.kill();
    let _ = w.wait();
}

/// `ns graph --watch -o FILE` replaces FILE with a new drawing when a rootless instance
/// comes and when it goes; svg without -o is a usage error.
#[test]
fn graph_watch_redraws_the_file_when_an_instance_comes_and_goes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("world.dot");
    let mut w = nsnet()
        .args([
            "ns",
            "graph",
            "-f",
            "dot",
            "--watch",
            "--interval",
            "0.2",
            "-o",
        ])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let t = std::fs::read_to_string(&file).unwrap_or_default();
            if ok(&t) {
                break;
            }
            assert!(std::time::Instant::now() < until, "{what}: {t}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("a first drawing", &|t| t.starts_with("digraph"));
    let inst = Instance::run()
        .args(["--net=none", "--detach-netns"])
        .start();
    let state = format!("state {}", inst.state_dir().display());
    wait_for("a drawing with the new instance", &|t| {
        t.contains(&state) && t.trim_end().ends_with('}')
    });
    drop(inst);
    wait_for("a drawing without it", &|t| {
        t.starts_with("digraph") && !t.contains(&state)
    });
    let _ = w.kill();
    let _ = w.wait();
    assert!(!dir.path().join("world.dot.tmp").exists());
    let o = output(nsnet().args(["ns", "graph", "-f", "svg", "--watch"]));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "nsnet: error: ns graph --watch --format svg needs -o FILE (one SVG document per file)\n"
    );
}
