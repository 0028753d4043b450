//! Every process of an instance killed with SIGKILL in the middle of traffic: afterwards no
//! process of the instance is left, its ports are closed, and a restart on the same state
//! directory (or, for pasta, on the same namespace and control socket) serves again.
//! The launcher's parent (tests/run.rs `killing_the_parent_takes_the_child_and_command_down`),
//! a container's monitor and the OCI hook (tests/container.rs) have their rows elsewhere.
//!
//! A process killed "during" an operation is held at a real point of it first: nsnet-bridge
//! runs `nft` (found on PATH) and waits for it once the bridge exists and the address is
//! recorded, so an `nft` of the test's first on PATH (fixtures/nft_gate.sh) holds it there,
//! and the test kills it while it waits (common's `nft_gate`). Nothing in nsnet knows.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use common::*;

const SERVER: &str = include_str!("fixtures/echo_server.py");
const CNI_KILL_WORLD: &str = include_str!("fixtures/cni_kill_world.sh");

/// Processes still alive whose environment holds `mark` (every process an instance starts
/// inherits the launcher's environment), after waiting up to 15 s for each to go.
fn survivors(mark: &str) -> Vec<i32> {
    let needle = format!("NSNET_CRASH_MARK={mark}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| *pid != std::process::id() as i32)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false)
        })
        .filter(|pid| !wait_gone(*pid, Duration::from_secs(15)))
        .collect()
}

/// Connections through `port` in a loop, each echoing a few bytes, until stopped; counts
/// the round trips that worked.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(port: u16) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let (s, k) = (stop.clone(), ok.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let round = || -> std::io::Result<()> {
                    let mut c = TcpStream::connect(("127.0.0.1", port))?;
                    c.set_read_timeout(Some(Duration::from_secs(2)))?;
                    c.write_all(b"crash-test")?;
                    let mut b = [0u8; 10];
                    c.read_exact(&mut b)?;
                    Ok(())
                };
                if round().is_ok() {
                    k.fetch_add(1, Ordering::Relaxed);
                } else {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Traffic {
            stop,
            ok,
            thread: Some(thread),
        }
    }

    /// Waits until at least `n` round trips have worked (bounded).
    fn flowing(&self, n: usize) {
        for _ in 0..1000 {
            if self.ok.load(Ordering::Relaxed) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("traffic never flowed");
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
    }
}

fn port_closed(port: u16) -> bool {
    (0..300).any(|_| {
        let closed = TcpStream::connect(("127.0.0.1", port)).is_err();
        if !closed {
            std::thread::sleep(Duration::from_millis(10));
        }
        closed
    })
}

/// An instance serving echo on a published port, marked for [`survivors`].
fn serving(mark: &str, state: &Path, port: u16, extra: &[&str]) -> Instance {
    let b = Instance::run()
        .state_dir(state)
        .env("NSNET_CRASH_MARK", mark);
    let script = b.file("server.py", SERVER);
    b.args(["--port-driver=builtin", "-p"])
        .args([format!("127.0.0.1:{port}:80/tcp")])
        .args(extra)
        .script(&format!("exec python3 {} \"$READY\"", script.display()))
        .start()
}

/// After a crash: nothing of the instance runs, its port is closed, and a restart on the
/// same state directory serves it again.
fn restart_serves(mark: &str, state: &Path, port: u16, extra: &[&str]) {
    assert_eq!(survivors(mark), Vec::<i32>::new(), "processes left behind");
    assert!(port_closed(port), "port {port} still open");
    let again = serving(mark, state, port, extra);
    let t = Traffic::start(port);
    t.flowing(3);
    t.stop();
    drop(again);
}

/// The launcher's child (the namespaces' PID 1 side) killed mid-traffic: the launcher sees it
/// die and exits non-zero, taking the command and its listeners with it.
#[test]
fn kill9_the_child_mid_traffic() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    let mark = format!("child-{}", std::process::id());
    let inst = serving(&mark, &state, 18601, &["--net=builtin"]);
    let t = Traffic::start(18601);
    t.flowing(5);
    kill(Pid::from_raw(inst.child_pid()), Signal::SIGKILL).unwrap();
    let o = inst.wait();
    t.stop();
    assert!(!o.status.success(), "launcher: {}", stderr(&o));
    restart_serves(&mark, &state, 18601, &["--net=builtin"]);
}

/// The launcher's parent killed mid-traffic: it runs the in-process stack and the port
/// driver, so the traffic stops at once; the child and the command go with it (the child's
/// parent-death signal), the published port closes, and a restart on the same state dir
/// takes over what the dead parent left there and serves again.
#[test]
fn kill9_the_launcher_parent_mid_traffic() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    let mark = format!("parent-{}", std::process::id());
    let inst = serving(&mark, &state, 18603, &["--net=builtin"]);
    let t = Traffic::start(18603);
    t.flowing(5);
    let child = inst.child_pid();
    kill(Pid::from_raw(inst.pid()), Signal::SIGKILL).unwrap();
    let o = inst.wait();
    t.stop();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(libc::SIGKILL),
        "{}",
        stderr(&o)
    );
    assert!(
        wait_gone(child, Duration::from_secs(15)),
        "the child outlived its parent"
    );
    restart_serves(&mark, &state, 18603, &["--net=builtin"]);
}

/// The command killed mid-traffic: the launcher reports the signal (exit 137, one line) and
/// removes what it made.
#[test]
fn kill9_the_command_mid_traffic() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    let mark = format!("command-{}", std::process::id());
    let inst = serving(&mark, &state, 18602, &["--net=builtin"]);
    let t = Traffic::start(18602);
    t.flowing(5);
    // The command is the child's only child.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", inst.child_pid())).unwrap();
    let command: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    kill(Pid::from_raw(command), Signal::SIGKILL).unwrap();
    let o = inst.wait();
    t.stop();
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert!(stderr(&o).contains("SIGKILL"), "{}", stderr(&o));
    assert!(!state.exists(), "state dir removed");
    restart_serves(&mark, &state, 18602, &["--net=builtin"]);
}

/// The slirp4netns personality (nsnet's stack as RootlessKit's `--net=slirp4netns` helper)
/// killed mid-traffic: the instance keeps running without its uplink, stops cleanly when
/// asked, and a restart on the same state dir has its network again.
#[test]
fn kill9_the_slirp4netns_personality_mid_traffic() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    let link = base.path().join("slirp4netns");
    std::os::unix::fs::symlink(nsnet_bin(), &link).unwrap();
    let net = [
        "--net=slirp4netns".to_string(),
        format!("--slirp4netns-binary={}", link.display()),
    ];
    let net: Vec<&str> = net.iter().map(String::as_str).collect();
    let mark = format!("slirp-{}", std::process::id());
    let inst = serving(&mark, &state, 18603, &net);
    let helper = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == nsnet_bin())
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with(link.as_os_str().as_encoded_bytes()))
        })
        .expect("the slirp4netns personality runs");
    let t = Traffic::start(18603);
    t.flowing(5);
    kill(Pid::from_raw(helper), Signal::SIGKILL).unwrap();
    assert!(wait_gone(helper, Duration::from_secs(5)));
    // The published port is the launcher's own (builtin driver): it still serves.
    let before = t.ok.load(Ordering::Relaxed);
    t.flowing(before + 3);
    t.stop();
    inst.signal(Signal::SIGTERM);
    let o = inst.wait();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    restart_serves(&mark, &state, 18603, &net);
}

/// The IPAM files of a dump that hold an address (not the lock).
fn addresses(out: &Path, step: &str) -> Vec<String> {
    std::fs::read_to_string(out.join(format!("ipam-{step}.txt")))
        .unwrap()
        .lines()
        .filter(|l| {
            l.rsplit('/')
                .next()
                .is_some_and(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        })
        .map(String::from)
        .collect()
}

fn links(out: &Path, step: &str) -> Vec<String> {
    std::fs::read_to_string(out.join(format!("links-{step}.txt")))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn rc(out: &Path, step: &str) -> String {
    std::fs::read_to_string(out.join(format!("{step}.rc")))
        .unwrap()
        .trim()
        .to_string()
}

/// The CNI personality killed during ADD, held where nsnet-bridge waits for `nft` (the
/// bridge made, the address recorded as attaching, no veth yet). The runtime's DEL after the
/// failed ADD releases the address; the same ADD then works and its DEL leaves only the
/// bridge (as the reference plugin does). No process of the instance is left.
#[test]
fn kill9_the_cni_personality_during_add() {
    world();
    let dir = tempfile::tempdir().unwrap();
    let plug = dir.path().join("plug");
    std::fs::create_dir(&plug).unwrap();
    std::os::unix::fs::symlink(nsnet_bin(), plug.join("nsnet-bridge")).unwrap();
    let gate = nft_gate(dir.path(), "nsnet-bridge");
    let out = dir.path().join("out");
    let conf = r#"{"cniVersion":"1.0.0","name":"killtest","type":"bridge","bridge":"cni-kill0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","subnet":"10.98.0.0/24","dataDir":"@DATA@"}}"#;
    let mark = format!("cni-{}", std::process::id());
    let path = std::env::var("PATH").unwrap_or_default();
    let mut launcher = nsnet()
        .args(["run", "--net=none", "--", "sh", "-c", CNI_KILL_WORLD, "w"])
        .arg(plug.join("nsnet-bridge"))
        .arg(&out)
        .env("CONF", conf)
        .env("PATH", format!("{}:{path}", gate.display()))
        .env("NSNET_CRASH_MARK", &mark)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (nft, plugin) = held(&gate);
    let exe = std::fs::read_link(format!("/proc/{plugin}/exe")).unwrap();
    assert_eq!(exe, nsnet_bin(), "the held caller is the CNI personality");
    kill(Pid::from_raw(plugin), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(nft), Signal::SIGKILL).unwrap();
    let mut err = String::new();
    launcher
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = launcher.wait().unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(rc(&out, "add1"), "137", "the ADD was killed");
    assert_eq!(
        addresses(&out, "killed").len(),
        1,
        "the killed ADD had recorded its address"
    );
    assert!(links(&out, "killed").contains(&"cni-kill0".to_string()));
    assert_eq!(rc(&out, "del1"), "0", "DEL after the failed ADD");
    assert_eq!(
        addresses(&out, "del1"),
        Vec::<String>::new(),
        "DEL released it"
    );
    let bridge_only = links(&out, "del1");
    assert_eq!(rc(&out, "add2"), "0", "ADD again");
    let addr = std::fs::read_to_string(out.join("ctr-addr.txt")).unwrap();
    assert!(addr.contains("inet 10.98.0."), "{addr}");
    assert_eq!(addresses(&out, "add2").len(), 1);
    assert_eq!(rc(&out, "del2"), "0");
    assert_eq!(addresses(&out, "del2"), Vec::<String>::new());
    assert_eq!(links(&out, "del2"), bridge_only, "no veth left");
    assert_eq!(survivors(&mark), Vec::<i32>::new(), "processes left behind");
}
