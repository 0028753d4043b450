//! Multi-node (issue #18, first part): three simulated hosts on one LAN, each running an nsnet
//! instance that publishes 8472/udp, with a kernel VXLAN device inside every instance's child
//! netns programmed the way Flannel's vxlan backend programs it. docs/multinode.md has the
//! topology and the data path.
//!
//! The world: a "LAN" network namespace with a bridge `br0`, and three "host" namespaces,
//! each with one veth `eth0` on the bridge holding 198.51.100.N/24 (TEST-NET-2) and nothing
//! else: no default route, so the hosts reach each other and nothing beyond. Every namespace
//! is held by a `sleep` the test started and kills by PID. As root they are plain network
//! namespaces; unprivileged they belong to one user namespace the test makes first (the user
//! is root there, as in any `unshare -Ur`), so the instances run in it as its root: every
//! namespace, the instances' children included, is still owned by the unprivileged user.
//!
//! Cross-host pod traffic: the VXLAN device (VNI 1, dstport 8472, `dev tap0`) sends UDP to
//! the remote *host* address 198.51.100.M:8472 out of tap0 into nsnet's user-mode stack,
//! which sends it from the host's own socket (source 198.51.100.N); the remote instance's
//! builtin port driver receives it on 0.0.0.0:8472 and relays it into its child's
//! 127.0.0.1:8472 from a socket bound (IP_TRANSPARENT) to the sender's real address, so the
//! VXLAN socket there sees 198.51.100.N as the outer source, which learning records.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const POD_SERVERS: &str = include_str!("fixtures/pod_servers.py");
const POD_CLIENT: &str = include_str!("fixtures/pod_client.py");

/// Who runs the RootlessKit baseline (scripts/test creates the user with subordinate ids).
const BASELINE_USER: &str = "nsnet-test";
/// Hosts on the LAN.
const HOSTS: usize = 3;
/// The LAN's MTU (every veth's); the overlay gets 50 bytes less (VXLAN over IPv4's headers).
const LAN_MTU: u32 = 1500;
/// Bytes of the hash-checked TCP transfer per pair of hosts (a few MiB keeps CI's budget).
const TRANSFER: usize = 4 << 20;

/// The MTU of host 3's uplink when it sits behind a router (see [`Shape::leg`]).
const LEG_MTU: u32 = 1400;

/// What a lab looks like beyond the plain three hosts on one LAN.
#[derive(Clone, Copy, Default)]
struct Shape {
    /// Host 3 on a routed leg of [`LEG_MTU`] instead of the LAN: a router namespace on the
    /// bridge (198.51.100.254) with a second leg 203.0.113.254/24 to host 3 (203.0.113.3).
    /// The path between host 3 and the others is then narrower than the overlay's MTU
    /// allows for, as when one node sits behind a tunnel or a PPPoE link.
    leg: bool,
    /// Every host also publishes TCP 7000, UDP 7001 and TCP 7002 to its first CNI pod
    /// (10.244.N.2, where [`Lab::serve_in`] runs the pod servers): a Kubernetes hostPort.
    host_ports: bool,
}

/// The pod subnet's first address, which Flannel gives the VXLAN device (10.244.N.0/32).
fn pod_ip(i: usize) -> String {
    format!("10.244.{i}.0")
}

/// A fixed MAC per host's VXLAN device, as Flannel publishes `VtepMAC` in its lease.
fn vtep_mac(i: usize) -> String {
    format!("02:4e:53:00:00:{i:02x}")
}

/// How the VXLAN devices are programmed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fdb {
    /// Flannel's vxlan backend: `nolearning`, and per remote host a route, a permanent
    /// neighbour entry and a permanent per-MAC FDB entry naming the host address.
    Flannel,
    /// Learning on: per remote host only an all-zeros flood entry naming its address (and
    /// the neighbour entries, so only the FDB is learned); unicast entries come from
    /// received frames, with the outer source address the kernel saw.
    Learning,
}

/// A sleeping process holding namespaces; killed by PID when dropped.
struct Holder(Child);

impl Holder {
    fn spawn(mut c: Command) -> Holder {
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        // `sleep` is running once unshare/nsenter have made or joined the namespaces and
        // exec'd it: only then do /proc/PID/ns/* name them.
        let start = Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(start.elapsed() < Duration::from_secs(10), "holder {pid}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Holder(child)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command run in the namespaces of `pid`: its netns and, unprivileged, the lab's user
/// namespace (as its root, which is what owns the LAN and the hosts). Our own ids already
/// map to its root, so nothing is changed (`--preserve-credentials`): `unshare -r` denied
/// setgroups there, which nsenter's default switch to 0 would call.
fn enter(pid: i32, cmd: &[&str]) -> Command {
    world();
    let mut c = Command::new("nsenter");
    c.arg("-t").arg(pid.to_string());
    if !is_root() {
        c.args(["-U", "--preserve-credentials"]);
    }
    c.args(["-n", "--"]).args(cmd);
    c
}

fn enter_ok(pid: i32, cmd: &[&str]) -> String {
    let o = output(&mut enter(pid, cmd));
    assert!(o.status.success(), "{cmd:?} in {pid}: {}", stderr(&o));
    stdout(&o)
}

/// What runs on every host: nsnet, or the RootlessKit baseline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    Nsnet,
    RootlessKit,
}

struct Lab {
    dir: tempfile::TempDir,
    engine: Engine,
    fdb: Fdb,
    shape: Shape,
    /// Hosts whose instance runs runc containers (`nsnet container`), removed first.
    runc_hosts: Vec<usize>,
    /// Servers in pod containers, then the containers (held netns): before the instances.
    ctr_servers: Vec<Child>,
    ctrs: Vec<Holder>,
    /// Dropped last: the instances and servers go first (fields drop in order).
    insts: Vec<Option<Instance>>,
    servers: Vec<Option<Child>>,
    hosts: Vec<Holder>,
    /// The router of [`Shape::leg`].
    _router: Option<Holder>,
    /// Holds the LAN namespace (its bridge and the hosts' veth peers) for the lab's life.
    _lan: Holder,
}

impl Lab {
    fn new(engine: Engine, fdb: Fdb) -> Lab {
        Lab::build(engine, fdb, Shape::default())
    }

    fn build(engine: Engine, fdb: Fdb, shape: Shape) -> Lab {
        world();
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new("unshare");
        if !is_root() {
            c.args(["--user", "--map-root-user"]);
        }
        c.args(["--net", "sleep", "1000"]);
        let lan = Holder::spawn(c);
        enter_ok(
            lan.pid(),
            &[
                "sh",
                "-c",
                "ip link set lo up && ip link add br0 type bridge && ip link set br0 up",
            ],
        );
        let netns = || enter(lan.pid(), &["unshare", "--net", "sleep", "1000"]);
        let router = shape.leg.then(|| {
            let r = Holder::spawn(netns());
            let script = format!(
                "ip link add vr mtu {LAN_MTU} type veth peer name lan0 mtu {LAN_MTU} netns /proc/{}/ns/net \
                 && ip link set vr master br0 up",
                r.pid()
            );
            enter_ok(lan.pid(), &["sh", "-c", &script]);
            enter_ok(
                r.pid(),
                &[
                    "sh",
                    "-c",
                    "ip link set lo up && ip addr add 198.51.100.254/24 dev lan0 && ip link set lan0 up \
                     && sysctl -qw net.ipv4.ip_forward=1",
                ],
            );
            r
        });
        let mut hosts = Vec::new();
        for i in 1..=HOSTS {
            let h = Holder::spawn(netns());
            let ns = format!("/proc/{}/ns/net", h.pid());
            let (ip, mut script) = match &router {
                Some(r) if i == 3 => {
                    // The leg: host 3's uplink to the router, both ends LEG_MTU.
                    let script = format!(
                        "ip link add leg0 mtu {LEG_MTU} type veth peer name eth0 mtu {LEG_MTU} netns {ns} \
                         && ip addr add 203.0.113.254/24 dev leg0 && ip link set leg0 up"
                    );
                    enter_ok(r.pid(), &["sh", "-c", &script]);
                    let route = "\n ip route add 198.51.100.0/24 via 203.0.113.254";
                    ("203.0.113.3".to_string(), route.to_string())
                }
                _ => {
                    let script = format!(
                        "ip link add vh{i} mtu {LAN_MTU} type veth peer name eth0 mtu {LAN_MTU} netns {ns} \
                         && ip link set vh{i} master br0 up"
                    );
                    enter_ok(lan.pid(), &["sh", "-c", &script]);
                    let route = if router.is_some() {
                        "\n ip route add 203.0.113.0/24 via 198.51.100.254"
                    } else {
                        ""
                    };
                    (format!("198.51.100.{i}"), route.to_string())
                }
            };
            script.insert_str(
                0,
                &format!("set -e\n ip link set lo up\n ip addr add {ip}/24 dev eth0\n ip link set eth0 up"),
            );
            enter_ok(h.pid(), &["sh", "-c", &script]);
            hosts.push(h);
        }
        let mut lab = Lab {
            dir,
            engine,
            fdb,
            shape,
            runc_hosts: Vec::new(),
            ctr_servers: Vec::new(),
            ctrs: Vec::new(),
            insts: (0..HOSTS).map(|_| None).collect(),
            servers: (0..HOSTS).map(|_| None).collect(),
            hosts,
            _router: router,
            _lan: lan,
        };
        for i in 1..=HOSTS {
            lab.start_host(i);
        }
        lab
    }

    /// Host `i`'s address: 198.51.100.N on the LAN, 203.0.113.3 on the leg.
    fn host_ip(&self, i: usize) -> String {
        if self.shape.leg && i == 3 {
            "203.0.113.3".into()
        } else {
            format!("198.51.100.{i}")
        }
    }

    fn inst(&self, i: usize) -> &Instance {
        self.insts[i - 1].as_ref().unwrap()
    }

    /// Starts host `i`'s instance (publishing 8472/udp), programs its VXLAN device and
    /// starts its pod servers.
    fn start_host(&mut self, i: usize) {
        let h = self.hosts[i - 1].pid();
        let inst = match self.engine {
            Engine::Nsnet => {
                let bin = nsnet_bin();
                let mut c = enter(h, &[bin.to_str().unwrap(), "run"]);
                c.env_remove("NSNET_LOG");
                let mut args: Vec<String> = ["--net=builtin", "--port-driver=builtin"]
                    .map(String::from)
                    .into();
                let mut ports = vec!["0.0.0.0:8472:8472/udp".to_string()];
                if self.shape.host_ports {
                    let pod = format!("10.244.{i}.2");
                    ports.extend([
                        format!("0.0.0.0:7000:{pod}:7000/tcp"),
                        format!("0.0.0.0:7001:{pod}:7001/udp"),
                        format!("0.0.0.0:7002:{pod}:7002/tcp"),
                    ]);
                }
                for p in ports {
                    args.extend(["-p".to_string(), p]);
                }
                Instance::launcher(c).args(args).start()
            }
            Engine::RootlessKit => {
                // RootlessKit 1.1.0 maps ids only with subordinate ranges and the setuid
                // newuidmap (no single-id fallback), so it runs as the suite's unprivileged
                // user, whom scripts/test gives ranges, dropped to with setpriv (which execs:
                // the launcher's PID stays the one the instance signals).
                let c = enter(
                    h,
                    &[
                        "setpriv",
                        &format!("--reuid={BASELINE_USER}"),
                        &format!("--regid={BASELINE_USER}"),
                        "--init-groups",
                        "--",
                        "/usr/bin/rootlesskit",
                    ],
                );
                // RootlessKit writes child_pid after it started the command: the command
                // waits for it (bounded by the instance's start limit) before it says ready.
                Instance::launcher(c)
                    .shared()
                    .script(
                        "while [ ! -s \"$ROOTLESSKIT_STATE_DIR/child_pid\" ]; do sleep 0.01; done; \
                         echo ready > \"$READY\"; exec sleep infinity",
                    )
                    .args([
                        "--net=slirp4netns",
                        "--port-driver=builtin",
                        "-p",
                        "0.0.0.0:8472:8472/udp",
                    ])
                    .start()
            }
        };
        self.insts[i - 1] = Some(inst);
        self.program(i);
        self.serve(i);
    }

    /// Host `i`'s VXLAN device, as Flannel's vxlan backend makes it (`flannel.1` there):
    /// VNI 1, port 8472, over the uplink (tap0), MTU = the host's uplink MTU − 50, the pod
    /// subnet's first address as a /32, and per remote host its entries (see [`Fdb`]).
    fn program(&self, i: usize) {
        let learning = match self.fdb {
            Fdb::Flannel => "nolearning",
            Fdb::Learning => "learning",
        };
        let mut s = format!(
            "set -e\n\
             ip link add vxlan0 address {mac} type vxlan id 1 dstport 8472 dev tap0 {learning}\n\
             ip link set vxlan0 mtu {mtu} up\n\
             ip addr add {pod}/32 dev vxlan0\n",
            mac = vtep_mac(i),
            mtu = LAN_MTU - 50,
            pod = pod_ip(i),
        );
        for j in (1..=HOSTS).filter(|&j| j != i) {
            let (pod, mac, host) = (pod_ip(j), vtep_mac(j), self.host_ip(j));
            s += &format!(
                "ip route add 10.244.{j}.0/24 via {pod} dev vxlan0 onlink\n\
                 ip neigh replace {pod} lladdr {mac} dev vxlan0 nud permanent\n"
            );
            s += &match self.fdb {
                Fdb::Flannel => {
                    format!("bridge fdb append {mac} dev vxlan0 dst {host} self permanent\n")
                }
                Fdb::Learning => {
                    format!("bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst {host}\n")
                }
            };
        }
        self.inst(i).child_ok(&["sh", "-c", &s]);
    }

    /// Starts host `i`'s pod servers in its child netns and waits until they listen.
    fn serve(&mut self, i: usize) {
        let dir = self.dir.path();
        let script = dir.join("pod_servers.py");
        std::fs::write(&script, POD_SERVERS).unwrap();
        let ready = dir.join(format!("ready{i}"));
        let _ = std::fs::remove_file(&ready);
        let child = self
            .inst(i)
            .child(&[
                "python3",
                script.to_str().unwrap(),
                &pod_ip(i),
                ready.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.servers[i - 1] = Some(child);
        wait_for_file(&ready, Duration::from_secs(10));
    }

    fn stop_server(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `ping` from host `i`'s pod address to host `j`'s: whether `count` echoes came back
    /// (each waited for at most a second).
    fn ping(&self, i: usize, j: usize, count: u32) -> bool {
        output(&mut self.inst(i).child(&[
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-W",
            "1",
            "-I",
            &pod_ip(i),
            &pod_ip(j),
        ]))
        .status
        .success()
    }

    /// The hash-checked TCP transfer and the UDP echoes from host `i`'s pod to host `j`'s.
    fn traffic(&self, i: usize, j: usize) {
        let script = self.dir.path().join("pod_client.py");
        std::fs::write(&script, POD_CLIENT).unwrap();
        let o = output(&mut self.inst(i).child(&[
            "timeout",
            "30",
            "python3",
            script.to_str().unwrap(),
            &pod_ip(j),
            &pod_ip(i),
            &TRANSFER.to_string(),
        ]));
        assert!(
            o.status.success() && stdout(&o) == "ok\n",
            "pod traffic from host {i} to host {j}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }

    /// Host `i`'s neighbour entries on vxlan0: (address, lladdr, state).
    fn neigh(&self, i: usize) -> Vec<(String, String, String)> {
        let out = self
            .inst(i)
            .child_ok(&["ip", "-j", "neigh", "show", "dev", "vxlan0"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let state = e["state"].as_array().map(|s| {
                    s.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                });
                (
                    e["dst"].as_str().unwrap_or_default().to_string(),
                    e["lladdr"].as_str().unwrap_or_default().to_string(),
                    state.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// `ping -M do -s SIZE` (DF set, no local fragmentation) from host `i`'s pod address
    /// to host `j`'s, three echoes each waited for a second: succeeds when one came back.
    /// Not quiet: a local refusal ("message too long, mtu=N") is printed only per echo.
    fn ping_df(&self, i: usize, j: usize, size: u32) -> Output {
        output(&mut self.inst(i).child(&[
            "ping",
            "-n",
            "-M",
            "do",
            "-s",
            &size.to_string(),
            "-c",
            "3",
            "-W",
            "1",
            "-I",
            &pod_ip(i),
            &pod_ip(j),
        ]))
    }

    /// pod_client.py in container `pid` (address `local`) against the pod servers at
    /// `remote`: `size` bytes hash-checked over TCP 7000, then the UDP echoes on 7001.
    fn ctr_traffic(&self, pid: i32, local: &str, remote: &str, size: usize) {
        let client = self.dir.path().join("pod_client.py");
        std::fs::write(&client, POD_CLIENT).unwrap();
        let o = output(&mut in_ctr(
            pid,
            &[
                "timeout",
                "120",
                "python3",
                client.to_str().unwrap(),
                remote,
                local,
                &size.to_string(),
            ],
        ));
        assert!(
            o.status.success() && stdout(&o) == "ok\n",
            "pod traffic {local} → {remote}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }

    /// Host `i`'s VXLAN FDB entries that name a unicast MAC: (mac, dst, permanent).
    fn fdb(&self, i: usize) -> Vec<(String, String, bool)> {
        let out = self
            .inst(i)
            .child_ok(&["bridge", "-j", "fdb", "show", "dev", "vxlan0"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["mac"] != "00:00:00:00:00:00" && e.get("dst").is_some())
            .map(|e| {
                let permanent = e["state"] == "permanent";
                (
                    e["mac"].as_str().unwrap().to_string(),
                    e["dst"].as_str().unwrap().to_string(),
                    permanent,
                )
            })
            .collect()
    }

    /// A pod container on host `i`, networked as Flannel's CNI plugin has its delegate do
    /// it: a netns (held by a `sleep` in the instance's user namespace) attached by nsnet's
    /// CNI personality (`nsnet-bridge`) to the bridge `cni0` with the exact delegate
    /// configuration flannel_linux.go renders from subnet.env (FLANNEL_SUBNET
    /// 10.244.N.1/24, FLANNEL_NETWORK 10.244.0.0/16, FLANNEL_MTU 1450, FLANNEL_IPMASQ true,
    /// so the delegate's ipMasq is false: flanneld masquerades only beyond the cluster
    /// network, and pod addresses cross the overlay unchanged) and the delegate block of
    /// kube-flannel.yml's cni-conf.json (`hairpinMode`, `isDefaultGateway`: the pod's
    /// default route is cni0's address), in Go's key order, with what containerd adds for a
    /// pod: `CNI_ARGS` with the `K8S_POD_*` pairs, and a `runtimeConfig` port mapping (the
    /// delegate ignores it, as the reference does). Returns its PID and address.
    fn pod_container(&mut self, i: usize, n: usize) -> (i32, String) {
        let holder = self
            .inst(i)
            .exec(&["-U"], &["unshare", "-n", "sleep", "1000"]);
        let h = Holder::spawn(holder);
        let pid = h.pid();
        self.ctrs.push(h);
        let plug = self.dir.path().join("cni");
        if !plug.exists() {
            std::fs::create_dir(&plug).unwrap();
            std::os::unix::fs::symlink(nsnet_bin(), plug.join("nsnet-bridge")).unwrap();
        }
        let data = self.dir.path().join(format!("ipam{i}"));
        let conf = format!(
            r#"{{"cniVersion":"1.0.0","hairpinMode":true,"ipMasq":false,"ipam":{{"dataDir":"{data}","ranges":[[{{"subnet":"10.244.{i}.0/24"}}]],"routes":[{{"dst":"10.244.0.0/16"}}],"type":"host-local"}},"isDefaultGateway":true,"isGateway":true,"mtu":{mtu},"name":"cbr0","runtimeConfig":{{"portMappings":[{{"containerPort":80,"hostIP":"","hostPort":8080,"protocol":"tcp"}}]}},"type":"bridge"}}"#,
            mtu = LAN_MTU - 50,
            data = data.display(),
        );
        let mut c = self
            .inst(i)
            .child(&[plug.join("nsnet-bridge").to_str().unwrap()]);
        c.env("CNI_COMMAND", "ADD")
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-{i}-{n};K8S_POD_INFRA_CONTAINER_ID=pod-{i}-{n};K8S_POD_UID=00000000-0000-0000-0000-00000000{i:02}{n:02}"
                ),
            )
            .env("CNI_CONTAINERID", format!("pod-{i}-{n}"))
            .env("CNI_NETNS", format!("/proc/{pid}/ns/net"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &plug)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ch = c.spawn().unwrap();
        use std::io::Write;
        ch.stdin.take().unwrap().write_all(conf.as_bytes()).unwrap();
        let o = ch.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "CNI ADD on host {i}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let ip = r["ips"][0]["address"].as_str().unwrap();
        let ip = ip.split('/').next().unwrap().to_string();
        (pid, ip)
    }

    /// Starts the pod servers in container `pid` on `ip`.
    fn serve_in(&mut self, pid: i32, ip: &str) {
        let script = self.dir.path().join("pod_servers.py");
        let ready = self.dir.path().join(format!("ready-{ip}"));
        let c = in_ctr(
            pid,
            &[
                "python3",
                script.to_str().unwrap(),
                ip,
                ready.to_str().unwrap(),
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
        self.ctr_servers.push(c);
        wait_for_file(&ready, Duration::from_secs(10));
    }

    /// `nsnet ARGS` against host `i`'s instance, with that host's own data directory (its
    /// networks, IPAM and containers) and the lab's runtime directory (runc's state).
    fn host_nsnet(&self, i: usize, args: &[&str]) -> Command {
        let mut c = nsnet();
        let state = self.inst(i).state_dir().to_path_buf();
        c.args(args)
            .arg("--state-dir")
            .arg(state)
            .env("XDG_DATA_HOME", self.dir.path().join(format!("data{i}")))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("xdg"));
        c
    }

    fn host_nsnet_ok(&self, i: usize, args: &[&str]) -> String {
        let o = output(&mut self.host_nsnet(i, args));
        assert!(
            o.status.success(),
            "host {i}: nsnet {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// On host `i`: the network `pods` (10.244.N.0/24, gateway .1 as Flannel's cni0, the
    /// overlay's MTU) and two busybox runc containers on it, `h{i}a` serving `rootfs/www`
    /// over HTTP on 8080 and `h{i}b` idle, for clients.
    fn runc_pods(&mut self, i: usize, rootfs: &Path) {
        let xdg = self.dir.path().join("xdg");
        if !xdg.exists() {
            std::fs::create_dir(&xdg).unwrap();
            std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        std::fs::create_dir(self.dir.path().join(format!("data{i}"))).unwrap();
        self.runc_hosts.push(i);
        let (subnet, gw, mtu) = (
            format!("10.244.{i}.0/24"),
            format!("10.244.{i}.1"),
            (LAN_MTU - 50).to_string(),
        );
        self.host_nsnet_ok(
            i,
            &[
                "network",
                "create",
                "pods",
                "--subnet",
                &subnet,
                "--gateway",
                &gw,
                "--mtu",
                &mtu,
            ],
        );
        let r = rootfs.to_str().unwrap();
        for (name, cmd) in [
            ("a", &["httpd", "-f", "-p", "8080", "-h", "/www"][..]),
            ("b", &["sleep", "1000"][..]),
        ] {
            let name = format!("h{i}{name}");
            let mut args = vec![
                "container",
                "run",
                "-d",
                "--network",
                "pods",
                "--name",
                &name,
                "--rootfs",
                r,
            ];
            args.extend_from_slice(cmd);
            // The container front end takes --state-dir among its own flags: put it there.
            let mut c = nsnet();
            c.args(&args[..3])
                .arg("--state-dir")
                .arg(self.inst(i).state_dir())
                .args(&args[3..])
                .env("XDG_DATA_HOME", self.dir.path().join(format!("data{i}")))
                .env("XDG_RUNTIME_DIR", &xdg);
            let o = output(&mut c);
            assert!(
                o.status.success(),
                "host {i}: run {name}: {}{}",
                stdout(&o),
                stderr(&o)
            );
        }
    }

    /// `nsnet container exec NAME sh -c SCRIPT` on host `i`.
    fn runc_exec(&self, i: usize, name: &str, script: &str) -> Output {
        let mut c = nsnet();
        c.args(["container", "exec", "--state-dir"])
            .arg(self.inst(i).state_dir())
            .args([name, "sh", "-c", script])
            .env("XDG_DATA_HOME", self.dir.path().join(format!("data{i}")))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("xdg"));
        output(&mut c)
    }

    /// Every ordered pair of hosts.
    fn pairs() -> impl Iterator<Item = (usize, usize)> {
        (1..=HOSTS).flat_map(|i| (1..=HOSTS).filter(move |&j| j != i).map(move |j| (i, j)))
    }
}

/// `nsnet ns exec PID -n -- CMD`: a command in a pod container's netns (rootless: in the
/// instance's user namespace, which owns it).
fn in_ctr(pid: i32, cmd: &[&str]) -> Command {
    let mut c = nsnet();
    c.args(["ns", "exec", &pid.to_string(), "-n", "--"])
        .args(cmd);
    c
}

impl Drop for Lab {
    fn drop(&mut self) {
        // runc containers outlive their instance: remove them while it still runs.
        for i in std::mem::take(&mut self.runc_hosts) {
            if self.insts[i - 1].is_none() {
                continue;
            }
            let ids = output(&mut self.host_nsnet(i, &["container", "ps", "-aq"]));
            for id in stdout(&ids).split_whitespace() {
                let _ = output(&mut self.host_nsnet(i, &["container", "rm", "-f", id]));
            }
        }
        for c in &mut self.ctr_servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 1..=HOSTS {
            self.stop_server(i);
        }
    }
}

/// The overlay's MTU is what Flannel sets: the uplink's minus VXLAN's 50 bytes.
fn assert_overlay_mtu(lab: &Lab, i: usize) {
    let v: Value = serde_json::from_str(
        &lab.inst(i)
            .child_ok(&["ip", "-j", "link", "show", "vxlan0"]),
    )
    .unwrap();
    assert_eq!(v[0]["mtu"], LAN_MTU - 50);
}

#[test]
fn multinode_flannel_vxlan_carries_ping_tcp_and_udp_between_every_pair_of_hosts() {
    let lab = Lab::new(Engine::Nsnet, Fdb::Flannel);
    assert_overlay_mtu(&lab, 1);
    // Nothing but the LAN from a host: the instances' stacks can reach only 198.51.100.0/24.
    let routes = enter_ok(lab.hosts[0].pid(), &["ip", "-4", "route", "show"]);
    assert_eq!(
        routes.trim(),
        "198.51.100.0/24 dev eth0 proto kernel scope link src 198.51.100.1"
    );
    for (i, j) in Lab::pairs() {
        assert!(lab.ping(i, j, 3), "ping from host {i}'s pod to host {j}'s");
        lab.traffic(i, j);
    }
    // The overlay really ran over the LAN: every permanent entry still names a host address.
    for i in 1..=HOSTS {
        let mut fdb = lab.fdb(i);
        fdb.sort();
        let want: Vec<_> = (1..=HOSTS)
            .filter(|&j| j != i)
            .map(|j| (vtep_mac(j), lab.host_ip(j), true))
            .collect();
        assert_eq!(fdb, want, "host {i}'s FDB");
    }
}

/// The issue's shape: pod containers behind a bridge on every host, attached by nsnet's CNI
/// personality with Flannel's delegate configuration, reach the pods on the other hosts
/// across the overlay with their own addresses (no NAT inside the cluster network).
#[test]
fn multinode_flannel_cni_pods_on_every_host_reach_each_other_with_their_own_addresses() {
    let mut lab = Lab::new(Engine::Nsnet, Fdb::Flannel);
    let mut pods = Vec::new();
    for i in 1..=HOSTS {
        let (pid, ip) = lab.pod_container(i, 1);
        assert_eq!(ip, format!("10.244.{i}.2"), "host-local's first address");
        lab.serve_in(pid, &ip);
        pods.push((pid, ip));
    }
    for (i, j) in Lab::pairs() {
        let ((pi, ipi), (_, ipj)) = (&pods[i - 1], &pods[j - 1]);
        let o = output(&mut in_ctr(
            *pi,
            &["ping", "-n", "-q", "-c", "2", "-W", "1", ipj],
        ));
        assert!(o.status.success(), "ping pod {ipi} → {ipj}: {}", stdout(&o));
        lab.ctr_traffic(*pi, ipi, ipj, TRANSFER);
    }
    // The pod's own address arrives (ipMasq false: nothing rewrites it on the way).
    for (i, j) in Lab::pairs() {
        let ((pi, ipi), (_, ipj)) = (&pods[i - 1], &pods[j - 1]);
        assert_eq!(&whoami(*pi, ipj), ipi, "what {ipj} saw of {ipi}");
    }
}

/// The source address the pod servers' TCP 7002 at `addr` saw of a client in container `pid`.
fn whoami(pid: i32, addr: &str) -> String {
    let o = output(&mut in_ctr(
        pid,
        &[
            "python3",
            "-c",
            "import socket,sys; s=socket.create_connection((sys.argv[1],7002),timeout=5); print(s.recv(64).decode().strip())",
            addr,
        ],
    ));
    assert!(o.status.success(), "whoami at {addr}: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

/// The issue's full shape with runc: on every host a bridge network `pods` (10.244.N.0/24)
/// in the instance's child netns and two busybox runc containers on it (`nsnet container`);
/// a container on each host pings and fetches a hash-checked file from the HTTP server
/// container on every other host, across the overlay. `nsnet network` networks masquerade
/// what leaves their subnet, so these flows carry the sender's vxlan0 address beyond its
/// host (the CNI test above is the one that checks pod addresses survive).
#[test]
fn multinode_runc_containers_on_every_host_reach_each_other_across_the_overlay() {
    let mut lab = Lab::new(Engine::Nsnet, Fdb::Flannel);
    let rootfs = lab.dir.path().join("rootfs");
    for d in ["bin", "etc", "www"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/usr/bin/busybox (Debian package busybox-static)");
    for a in [
        "sh",
        "httpd",
        "wget",
        "ping",
        "sleep",
        "sha256sum",
        "ip",
        "grep",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    // A few MiB the server hands out, hash checked at the client.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let blob: Vec<u8> = (0..TRANSFER)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(rootfs.join("www/blob"), &blob).unwrap();
    let o = output(Command::new("sha256sum").arg(rootfs.join("www/blob")));
    let want = stdout(&o).split_whitespace().next().unwrap().to_string();
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for i in 1..=HOSTS {
        lab.runc_pods(i, &rootfs);
    }
    for i in 1..=HOSTS {
        for (n, ip) in [("a", 2), ("b", 3)] {
            let o = lab.runc_exec(i, &format!("h{i}{n}"), "ip -o -4 addr show eth0");
            assert!(
                stdout(&o).contains(&format!(" 10.244.{i}.{ip}/24 ")),
                "h{i}{n}: {}{}",
                stdout(&o),
                stderr(&o)
            );
        }
    }
    for (i, j) in Lab::pairs() {
        let server = format!("10.244.{j}.2");
        // httpd may still be starting: retry the fetch for a few seconds, bounded (busybox
        // wget's own -T hangs or crashes here: the applet timeout bounds each try).
        let script = format!(
            "ping -c 2 -W 1 {server} >/dev/null || exit 7; n=0; \
             while [ $n -lt 50 ]; do \
               h=$(timeout 10 wget -q -O - http://{server}:8080/blob | sha256sum) && \
               [ \"${{h%% *}}\" != e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ] && \
               {{ echo \"${{h%% *}}\"; exit 0; }}; n=$((n+1)); sleep 0.1; done; exit 8"
        );
        let o = lab.runc_exec(i, &format!("h{i}b"), &script);
        assert!(
            o.status.success() && stdout(&o).trim() == want,
            "h{i}b → {server}: status {:?}, got {:?}, want {want}: {}",
            o.status.code(),
            stdout(&o),
            stderr(&o)
        );
    }
}

#[test]
fn multinode_learned_fdb_entries_carry_the_peers_host_addresses() {
    let lab = Lab::new(Engine::Nsnet, Fdb::Learning);
    for (i, j) in Lab::pairs() {
        assert!(lab.ping(i, j, 2), "ping from host {i}'s pod to host {j}'s");
    }
    for i in 1..=HOSTS {
        let mut learned: Vec<_> = lab.fdb(i).into_iter().filter(|e| !e.2).collect();
        learned.sort();
        let want: Vec<_> = (1..=HOSTS)
            .filter(|&j| j != i)
            .map(|j| (vtep_mac(j), lab.host_ip(j), false))
            .collect();
        assert_eq!(learned, want, "host {i} learned");
    }
    // The learned entries are used: unicast to them carries a transfer both ways.
    lab.traffic(1, 2);
    lab.traffic(3, 1);
}

/// Host 2's instance killed with SIGKILL and started again (its VXLAN device programmed
/// again with the same VTEP MAC, which Flannel keeps in the node's lease); nothing on the
/// other hosts is reprogrammed. Traffic resumes both ways, and no host holds a stale entry:
/// every host's FDB has exactly one unicast entry per peer, naming the peer's host address
/// (with learning on, the entries learned before the kill and after it agree), and its
/// neighbour table exactly the peers' VTEPs, none failed or incomplete.
fn restart(fdb: Fdb) {
    let mut lab = Lab::new(Engine::Nsnet, fdb);
    for (i, j) in Lab::pairs() {
        assert!(lab.ping(i, j, 1), "before the kill: host {i} to host {j}");
    }
    lab.stop_server(2);
    let inst = lab.insts[1].take().unwrap();
    let (pid, child) = (inst.pid(), inst.child_pid());
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    // Dropping reaps the killed launcher and asserts that its child (and with it the child
    // netns and its VXLAN device) is gone too.
    drop(inst);
    assert!(pid_gone(pid) && pid_gone(child));
    assert!(
        !lab.ping(1, 2, 1),
        "host 2 answered while its instance was dead"
    );
    lab.start_host(2);
    for (i, j) in [(1, 2), (2, 1), (2, 3), (3, 2)] {
        assert!(lab.ping(i, j, 3), "after the restart: host {i} to host {j}");
        lab.traffic(i, j);
    }
    for i in 1..=HOSTS {
        assert_no_stale_entries(&lab, i);
    }
}

#[test]
fn multinode_a_host_killed_with_sigkill_and_restarted_carries_traffic_again() {
    restart(Fdb::Flannel);
}

#[test]
fn multinode_after_a_sigkill_restart_learned_entries_name_only_real_host_addresses() {
    restart(Fdb::Learning);
}

/// Host `i`'s overlay entries are exactly one per peer and all current (see [`restart`]).
fn assert_no_stale_entries(lab: &Lab, i: usize) {
    let permanent = lab.fdb == Fdb::Flannel;
    let mut fdb = lab.fdb(i);
    fdb.sort();
    let want: Vec<_> = (1..=HOSTS)
        .filter(|&j| j != i)
        .map(|j| (vtep_mac(j), lab.host_ip(j), permanent))
        .collect();
    assert_eq!(fdb, want, "host {i}'s FDB");
    let mut neigh = lab.neigh(i);
    neigh.sort();
    let want: Vec<_> = (1..=HOSTS)
        .filter(|&j| j != i)
        .map(|j| (pod_ip(j), vtep_mac(j), "PERMANENT".to_string()))
        .collect();
    assert_eq!(neigh, want, "host {i}'s neighbours on vxlan0");
}

/// Containers on two hosts (CNI pods, Flannel's delegate configuration): a 100 MiB stream
/// from one to the other arrives whole, its SHA-256 and length checked by the receiver.
#[test]
fn multinode_a_100_mib_transfer_between_pods_on_two_hosts_arrives_intact() {
    let mut lab = Lab::new(Engine::Nsnet, Fdb::Flannel);
    let (p1, ip1) = lab.pod_container(1, 1);
    let (p2, ip2) = lab.pod_container(2, 1);
    lab.serve_in(p2, &ip2);
    lab.ctr_traffic(p1, &ip1, &ip2, 100 << 20);
}

/// Hairpin: host ports (each host publishes TCP 7000, UDP 7001 and TCP 7002 to its first
/// pod, a Kubernetes hostPort) reached from a pod through its own host's address and through
/// another host's: the hash-checked transfer and the UDP echoes cross. The pod leaves its
/// child through nsnet's stack (its default route, `isDefaultGateway`), which connects from
/// the host's own socket to the host address, mine or another's, where the port driver takes
/// it into that host's child. The TCP server sees that host's cni0 address: the builtin
/// driver keeps TCP client addresses only for the child's own services (its transparent
/// connection is answered through a local route, which a forwarded container reply does not
/// take), so into a container the connection is made from the child's side.
#[test]
fn multinode_pods_reach_host_ports_through_their_own_and_other_hosts_addresses() {
    let shape = Shape {
        host_ports: true,
        ..Shape::default()
    };
    let mut lab = Lab::build(Engine::Nsnet, Fdb::Flannel, shape);
    let mut pods = Vec::new();
    for i in 1..=2 {
        let (pid, ip) = lab.pod_container(i, 1);
        lab.serve_in(pid, &ip);
        pods.push((pid, ip));
    }
    for (i, j) in [(1, 1), (1, 2), (2, 2), (2, 1)] {
        let (pid, ip) = &pods[i - 1];
        let host = lab.host_ip(j);
        lab.ctr_traffic(*pid, ip, &host, TRANSFER);
        assert_eq!(
            whoami(*pid, &host),
            format!("10.244.{j}.1"),
            "pod {ip} through host {j}'s address {host}"
        );
    }
}

/// DF set across the overlay: on the 1500-byte LAN a pod's DF-set packet of the overlay's
/// whole MTU (1450) crosses, and one byte more is refused at the sender (the inner MTU is
/// right: the pod learns its limit locally, nothing is lost silently). Host 3 sits behind a
/// router on a 1400-byte leg while its overlay MTU stays 1450 (the worst case: the overlay
/// does not follow the narrow leg): the outer datagrams from hosts 1 and 2 leave their host
/// with DF, the router answers with ICMP fragmentation-needed, which reaches the host
/// kernel that owns nsnet's socket (the user-mode hop sends from a real socket of the
/// host), so the host learns the path MTU and fragments the next outer datagrams; host 3
/// fragments its own on its narrow uplink. DF-set TCP (full-size segments) and the UDP
/// echoes cross the leg both ways, and host 1 has learned the leg's MTU.
#[test]
fn multinode_df_set_traffic_crosses_a_1500_byte_lan_and_a_1400_byte_leg() {
    let shape = Shape {
        leg: true,
        ..Shape::default()
    };
    let lab = Lab::build(Engine::Nsnet, Fdb::Flannel, shape);
    for (i, j) in [(1, 2), (2, 1)] {
        let full = lab.ping_df(i, j, 1422);
        assert!(
            full.status.success(),
            "1450-byte DF ping {i} → {j}: {}",
            stdout(&full)
        );
        let over = lab.ping_df(i, j, 1423);
        assert!(
            !over.status.success() && errors(&over).contains("message too long, mtu=1450"),
            "1451-byte DF ping {i} → {j} was not refused at the sender: {}",
            errors(&over)
        );
    }
    for (i, j) in [(1, 3), (3, 1), (2, 3), (3, 2)] {
        // The first outer datagram that meets the leg is dropped there (the ICMP answer
        // teaches the sender's host): a few echoes, each waited for a second.
        let o = lab.ping_df(i, j, 1422);
        assert!(
            o.status.success(),
            "1450-byte DF ping {i} → {j}: {}",
            stdout(&o)
        );
        lab.traffic(i, j);
    }
    let route = enter_ok(lab.hosts[0].pid(), &["ip", "route", "get", &lab.host_ip(3)]);
    assert!(
        route.contains(&format!("mtu {LEG_MTU}")),
        "host 1 did not learn the leg's MTU: {route}"
    );
}

/// The peer's behaviour, recorded as a test of the peer: Debian's RootlessKit 1.1.0 with
/// slirp4netns and its builtin port driver in place of nsnet, learning on.
///
/// Root only: an unprivileged user can put a process into a namespace of its own making
/// only from inside a user namespace it made, where the setuid newuidmap RootlessKit needs
/// gains nothing (its owner, root, is not mapped there) and RootlessKit has no single-id
/// fallback. As root the hosts are plain namespaces and RootlessKit runs in them as the
/// unprivileged user, which is how it runs in real life.
#[test]
fn root_only_multinode_rootlesskit_baseline_learns_127_0_0_1_for_every_peer() {
    assert!(is_root(), "root_only test run unprivileged");
    let lab = Lab::new(Engine::RootlessKit, Fdb::Learning);
    // Each request floods to every peer's host address and arrives: the receiver learns the
    // sender's VTEP MAC, but at the outer source RootlessKit's port driver gave it, the
    // child's own 127.0.0.1. Its reply, unicast to that entry, goes to its own loopback:
    // no ping is answered, not even the first.
    for (i, j) in Lab::pairs() {
        assert!(
            !lab.ping(i, j, 1),
            "host {i} to host {j} answered through RootlessKit"
        );
    }
    for i in 1..=HOSTS {
        let learned: Vec<_> = lab.fdb(i).into_iter().filter(|e| !e.2).collect();
        for (mac, dst, _) in &learned {
            assert_eq!(dst, "127.0.0.1", "host {i} learned {mac} at {dst}");
        }
        let macs: Vec<&str> = learned.iter().map(|e| e.0.as_str()).collect();
        for j in (1..=HOSTS).filter(|&j| j != i) {
            assert!(
                macs.contains(&vtep_mac(j).as_str()),
                "host {i}: {learned:?}"
            );
        }
        // The replies sent to 127.0.0.1 come back into the sender's own VXLAN socket, which
        // then learns its own MAC there too: beyond that, only the lab's VTEPs may appear.
        assert!(
            macs.iter().all(|m| (1..=HOSTS).any(|j| *m == vtep_mac(j))),
            "host {i}: {learned:?}"
        );
    }
}
