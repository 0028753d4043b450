//! The edge model every picture of the network view is drawn from: which namespaces are
//! joined, by what, in which order, and in which order namespaces are ranked.
//!
//! Three kinds of link carry traffic between namespaces: a launcher and its rootless child,
//! a tap device and the process (in another netns) that holds it open, and a veth pair. The
//! text tree follows them outwards from the host ([`edges`], a veth pair in both
//! directions); the SVG draws each once ([`links`], a veth pair from its side nearer the
//! host). Bridge ports ([`port_edges`]) join interfaces within one namespace, for the DOT and
//! mermaid pictures. The renderers (`render/`) only choose words and syntax.

use crate::net::{Endpoint, NetView, Role, TapLink};

/// What joins two namespaces.
#[derive(Debug, Clone, Copy)]
pub enum Link<'a> {
    /// A launcher (RootlessKit or nsnet) in `from` made the rootless child `to`.
    Launcher { comm: &'a str, pid: i32 },
    /// A process in `from` holds the tap device that lives in `to`.
    Tap(&'a TapLink),
    /// A veth pair, `near` in `from` and `far` in `to`; `verified` when the kernel's nsid
    /// maps, not only the names, say the two ends are peers.
    Veth {
        near: &'a Endpoint,
        far: &'a Endpoint,
        verified: bool,
    },
}

/// One directed edge between network namespaces (by inode).
#[derive(Debug, Clone, Copy)]
pub struct Edge<'a> {
    pub from: u64,
    pub to: u64,
    /// Order among the edges leaving `from`: the ifindex of the near end (0 for launcher
    /// and tap edges), so that a namespace's children follow its interface list.
    pub order: u32,
    pub link: Link<'a>,
}

/// Every edge that carries traffic, strongest first (launchers, taps, veth pairs), a veth
/// pair once in each direction: the graph a walk from the host follows.
pub fn edges(view: &NetView) -> Vec<Edge<'_>> {
    let mut e = joins(view);
    for p in &view.veth_pairs {
        if p.a.netns == p.b.netns {
            continue;
        }
        e.push(veth(&p.a, &p.b, p.verified));
        e.push(veth(&p.b, &p.a, p.verified));
    }
    e
}

/// Every link once, in the order of [`edges`]; a veth pair, which has no direction, is drawn
/// from the end whose namespace `rank` puts first (the `a` end on a tie), so that the side
/// nearer the host comes first whatever the inode order.
pub fn links(view: &NetView, rank: impl Fn(u64) -> u8) -> Vec<Edge<'_>> {
    let mut e = joins(view);
    for p in &view.veth_pairs {
        if p.a.netns == p.b.netns {
            continue;
        }
        if rank(p.b.netns) < rank(p.a.netns) {
            e.push(veth(&p.b, &p.a, p.verified));
        } else {
            e.push(veth(&p.a, &p.b, p.verified));
        }
    }
    e
}

/// The launcher and tap edges, which have a direction of their own.
fn joins(view: &NetView) -> Vec<Edge<'_>> {
    let mut e = Vec::new();
    for i in &view.instances {
        if let (Some(p), Some(c)) = (i.parent_netns, i.child_netns) {
            e.push(Edge {
                from: p,
                to: c,
                order: 0,
                link: Link::Launcher {
                    comm: i.parent_comm.as_deref().unwrap_or("?"),
                    pid: i.parent_pid.unwrap_or(0),
                },
            });
        }
    }
    for t in &view.taps {
        if let Some(o) = t.owner.netns {
            e.push(Edge {
                from: o,
                to: t.tap.netns,
                order: 0,
                link: Link::Tap(t),
            });
        }
    }
    e
}

fn veth<'a>(near: &'a Endpoint, far: &'a Endpoint, verified: bool) -> Edge<'a> {
    Edge {
        from: near.netns,
        to: far.netns,
        order: near.ifindex,
        link: Link::Veth {
            near,
            far,
            verified,
        },
    }
}

/// A bridge port and its master, in one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortEdge {
    pub netns: u64,
    /// The ifindex of the port.
    pub port: u32,
    /// The ifindex of its master.
    pub master: u32,
}

/// Every interface enslaved to a master in its own netns (a bridge port); a master in
/// another namespace, or not listed, gives no edge.
pub fn port_edges(view: &NetView) -> impl Iterator<Item = PortEdge> + '_ {
    view.netns.iter().flat_map(|n| {
        n.interfaces.iter().filter_map(move |i| {
            let m = n
                .interfaces
                .iter()
                .find(|b| Some(&b.name) == i.master.as_ref())?;
            Some(PortEdge {
                netns: n.inode,
                port: i.index,
                master: m.index,
            })
        })
    })
}

/// The order the text tree takes namespaces as roots in: the host, launchers, their
/// children, containers, then the rest (others before orphans).
pub fn role_rank(r: Role) -> u8 {
    match r {
        Role::Host => 0,
        Role::Parent => 1,
        Role::RootlessChild => 2,
        Role::Container => 3,
        Role::Other => 4,
        Role::Orphan => 5,
    }
}

/// The order the SVG lays boxes out in and orients its veth edges by: `Role`'s declared
/// order, which differs from [`role_rank`] only in putting orphans before others. Kept
/// apart from it so that neither picture changes.
pub fn draw_rank(r: Role) -> u8 {
    r as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{iface, ns, view};
    use crate::net::VethPair;

    fn summary(e: &[Edge]) -> Vec<(u64, u64, u32, &'static str)> {
        e.iter()
            .map(|e| {
                let kind = match e.link {
                    Link::Launcher { .. } => "launcher",
                    Link::Tap(_) => "tap",
                    Link::Veth { .. } => "veth",
                };
                (e.from, e.to, e.order, kind)
            })
            .collect()
    }

    #[test]
    fn edges_run_launchers_then_taps_then_veth_pairs_both_ways() {
        let v = view();
        let e = edges(&v);
        assert_eq!(
            summary(&e),
            [
                (1, 2, 0, "launcher"),
                (1, 2, 0, "tap"),
                (2, 4, 4, "veth"),
                (4, 2, 2, "veth"),
                (2, 3, 3, "veth"),
                (3, 2, 2, "veth"),
            ]
        );
        assert!(matches!(
            e[0].link,
            Link::Launcher {
                comm: "rk",
                pid: 30
            }
        ));
        assert!(matches!(e[1].link, Link::Tap(t) if t.owner.pid == 40));
        let Link::Veth {
            near,
            far,
            verified,
        } = e[3].link
        else {
            panic!("{:?}", e[3]);
        };
        assert_eq!(
            (near.name.as_str(), far.name.as_str(), verified),
            ("eth0", "vb", false)
        );
    }

    #[test]
    fn links_draw_each_pair_once_from_the_side_ranked_first() {
        let mut v = view();
        // The same pair written container end first: still drawn from the child (2).
        v.veth_pairs[1] = VethPair {
            a: v.veth_pairs[1].b.clone(),
            b: v.veth_pairs[1].a.clone(),
            verified: true,
        };
        let rank = |ns: u64| v.get(ns).map(|n| draw_rank(n.role)).unwrap_or(u8::MAX);
        assert_eq!(
            summary(&links(&v, rank)),
            [
                (1, 2, 0, "launcher"),
                (1, 2, 0, "tap"),
                (2, 4, 4, "veth"),
                (2, 3, 3, "veth"),
            ]
        );
        // On a tie the a end goes first.
        assert_eq!(summary(&links(&v, |_| 0))[3], (3, 2, 2, "veth"));
    }

    #[test]
    fn a_pair_inside_one_namespace_and_an_unknown_launcher_netns() {
        let mut v = view();
        v.veth_pairs[0].b.netns = 2;
        v.instances[0].parent_netns = None;
        v.instances[0].parent_comm = None;
        assert_eq!(
            summary(&edges(&v)),
            [(1, 2, 0, "tap"), (2, 3, 3, "veth"), (3, 2, 2, "veth")]
        );
        v.instances[0].parent_netns = Some(1);
        assert!(matches!(
            edges(&v)[0].link,
            Link::Launcher { comm: "?", pid: 30 }
        ));
    }

    #[test]
    fn bridge_ports_join_interfaces_of_one_namespace_only() {
        let mut v = view();
        let mut port = iface(7, "p0", "veth", &[]);
        port.master = Some("br0".into());
        let mut stray = iface(8, "p1", "veth", &[]);
        // Its master lives elsewhere (or is not listed): no edge.
        stray.master = Some("br9".into());
        v.netns.push(ns(
            6,
            Role::Other,
            "x",
            vec![iface(6, "br0", "bridge", &[]), port, stray],
        ));
        assert_eq!(
            port_edges(&v).collect::<Vec<_>>(),
            [PortEdge {
                netns: 6,
                port: 7,
                master: 6
            }]
        );
    }

    #[test]
    fn the_two_ranks_differ_only_in_orphans_and_others() {
        let all = [
            Role::Host,
            Role::Parent,
            Role::RootlessChild,
            Role::Container,
            Role::Other,
            Role::Orphan,
        ];
        let mut by_tree = all;
        by_tree.sort_by_key(|r| role_rank(*r));
        assert_eq!(by_tree, all);
        let mut by_draw = all;
        by_draw.sort_by_key(|r| draw_rank(*r));
        assert_eq!(by_draw[..4], all[..4]);
        assert_eq!(by_draw[4..], [Role::Orphan, Role::Other]);
    }
}
