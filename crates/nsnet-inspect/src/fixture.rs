//! The network view the renderers' and the edge model's tests draw: host 1 ─ launcher and
//! slirp ─▶ child 2 ─ veth ─▶ containers 3 and 4 (4's pair is unverified), and an
//! unconnected orphan 5 with an unreadable interface list.

use crate::namespaces::Owner;
use crate::net::{Endpoint, Iface, Instance, NetNs, NetView, Role, TapLink, TapOwner, VethPair};

pub fn iface(index: u32, name: &str, kind: &str, addr: &[&str]) -> Iface {
    Iface {
        index,
        name: name.into(),
        kind: kind.into(),
        up: true,
        state: "up".into(),
        mtu: 1500,
        mac: None,
        master: None,
        addresses: addr.iter().map(|a| a.to_string()).collect(),
        peer: None,
        ports: Vec::new(),
        tap_owners: Vec::new(),
    }
}

pub fn ns(inode: u64, role: Role, label: &str, interfaces: Vec<Iface>) -> NetNs {
    NetNs {
        inode,
        role,
        label: label.into(),
        owner: Owner {
            userns: None,
            uid: None,
        },
        processes: Vec::new(),
        held_by: Vec::new(),
        interfaces,
        default_routes: Vec::new(),
        error: None,
        containers: Vec::new(),
        pasta: None,
        hostfwds: Vec::new(),
        hostfwd_error: None,
    }
}

/// host 1 ─ launcher and slirp ─▶ child 2 ─ veth ─▶ containers 3 and 4 (4's pair is
/// unverified), and an unconnected orphan 5 with an unreadable interface list.
pub fn view() -> NetView {
    let owner = TapOwner {
        pid: 40,
        comm: "slirp4netns".into(),
        fd: 6,
        netns: Some(1),
        resolved_by: "tungetdevnetns",
    };
    let ep = |netns, ifindex, name: &str| Endpoint {
        netns,
        ifindex,
        name: name.into(),
    };
    let mut tap = iface(2, "tap0", "tun", &["10.0.2.100/24"]);
    tap.tap_owners.push(owner.clone());
    let mut vb = iface(4, "vb", "veth", &[]);
    vb.peer = Some(ep(4, 2, "eth0"));
    let mut va = iface(3, "va", "veth", &[]);
    va.peer = Some(ep(3, 2, "eth0"));
    let mut orphan = ns(5, Role::Orphan, "fd 3 of x 9", Vec::new());
    orphan.error = Some("cannot enter net:[5]: cannot setns into it: EPERM".into());
    NetView {
        host: Some(1),
        host_basis: "the network namespace of PID 1".into(),
        netns: vec![
            ns(
                1,
                Role::Host,
                "the network namespace of PID 1",
                vec![iface(1, "lo", "loopback", &["127.0.0.1/8"])],
            ),
            ns(
                2,
                Role::RootlessChild,
                "of rk 30 (state /s)",
                vec![tap, vb, va],
            ),
            ns(
                3,
                Role::Container,
                "a",
                vec![iface(2, "eth0", "veth", &["10.4.0.2/24"])],
            ),
            ns(
                4,
                Role::Container,
                "b",
                vec![iface(2, "eth0", "veth", &["10.4.0.3/24"])],
            ),
            orphan,
        ],
        veth_pairs: vec![
            VethPair {
                a: ep(2, 4, "vb"),
                b: ep(4, 2, "eth0"),
                verified: false,
            },
            VethPair {
                a: ep(2, 3, "va"),
                b: ep(3, 2, "eth0"),
                verified: true,
            },
        ],
        taps: vec![TapLink {
            tap: ep(2, 2, "tap0"),
            owner,
        }],
        instances: vec![Instance {
            state_dir: "/s".into(),
            child_pid: Some(31),
            parent_pid: Some(30),
            parent_comm: Some("rk".into()),
            child_netns: Some(2),
            parent_netns: Some(1),
            detached: false,
            ports: Vec::new(),
            ports_error: None,
        }],
        engines: Vec::new(),
        catalog: Default::default(),
        unreadable_pids: vec![1],
        problems: Vec::new(),
    }
}
