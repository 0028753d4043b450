//! SVG, rendered in-process with layout-rs (no `dot` binary needed).
//!
//! layout-rs draws no nested clusters, so the SVG is the namespace-level picture: one box per
//! network namespace (role, label, id, then each interface with its addresses), and the edges
//! between boxes that carry traffic ([`crate::graph::links`]): launcher → rootless child, tap
//! owner's netns → the tap's netns (named by the owning process), and each veth pair. Laid
//! out top to bottom, the host comes first and containers last.

use std::collections::BTreeMap;

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;

use crate::graph::{self, Link};
use crate::net::{NetNs, NetView, Role};

fn box_label(view: &NetView, n: &NetNs) -> String {
    let mut lines = vec![
        match n.role {
            Role::Host => format!("host ({})", n.label),
            r => format!("{} {}", r.name(), n.label),
        },
        format!("net:[{}]", n.inode),
    ];
    lines.extend(super::about_lines(view, n));
    if let Some(e) = &n.error {
        lines.push(format!("(not readable: {e})"));
    }
    for i in &n.interfaces {
        let mut l = format!("{} ({})", i.name, i.kind);
        for a in i.addresses.iter().filter(|a| !a.starts_with("fe80:")) {
            l.push(' ');
            l.push_str(a);
        }
        lines.push(l);
    }
    lines.join("\n")
}

/// The SVG document, or why layout failed.
pub fn graph_svg(view: &NetView) -> Result<String, String> {
    // layout-rs asserts on what it cannot lay out; never let that reach the user as a panic.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| draw(view));
    std::panic::set_hook(prev);
    r.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "layout failed".into())
    })
}

/// The words on an edge between boxes (shorter than the tree's: a box has no room for fds).
fn label(link: &Link) -> String {
    match link {
        Link::Launcher { comm, pid } => format!("launched by {comm} {pid}"),
        Link::Tap(t) => format!("{} ◀ {} {}", t.tap.name, t.owner.comm, t.owner.pid),
        Link::Veth { near, far, .. } => format!("{} ⇄ {}", near.name, far.name),
    }
}

fn draw(view: &NetView) -> String {
    let mut vg = VisualGraph::new(Orientation::TopToBottom);
    let mut handles = BTreeMap::new();
    let mut order: Vec<&NetNs> = view.netns.iter().collect();
    order.sort_by_key(|n| (graph::draw_rank(n.role), n.inode));
    for n in order {
        let label = box_label(view, n);
        // layout-rs sizes a box from the size it is given, not from its text.
        // (Its own estimate, one font size per character, is twice too wide for 15px text.)
        let cols = label.lines().map(|l| l.chars().count()).max().unwrap_or(1);
        let rows = label.lines().count().max(1);
        let size = Point::new(cols as f64 * 7.5 + 24., rows as f64 * 17. + 16.);
        let shape = ShapeKind::new_box(&label);
        let e = Element::create(shape, StyleAttr::simple(), Orientation::TopToBottom, size);
        handles.insert(n.inode, vg.add_node(e));
    }
    // Each link once, a veth pair from the side `draw_rank` puts nearer the host (the
    // bridge side), so that containers come below their rootless child.
    let rank = |ns: u64| {
        view.get(ns)
            .map(|n| graph::draw_rank(n.role))
            .unwrap_or(u8::MAX)
    };
    for e in graph::links(view, rank) {
        if let (Some(a), Some(b)) = (handles.get(&e.from), handles.get(&e.to))
            && a != b
        {
            vg.add_edge(Arrow::simple(&label(&e.link)), *a, *b);
        }
    }
    let mut svg = SVGWriter::new();
    vg.do_it(false, false, false, &mut svg);
    trim(&svg.finalize())
}

/// layout-rs sizes the canvas for its unrolled layout, often twice the drawing: shrink it to
/// the boxes (edges run between boxes, so they fit too).
fn trim(svg: &str) -> String {
    let attr = |tag: &str, name: &str| -> Option<f64> {
        let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[i..].split('"').next()?.parse().ok()
    };
    let (mut w, mut h) = (0f64, 0f64);
    for tag in svg.split("<rect").skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        if let (Some(x), Some(y), Some(rw), Some(rh)) = (
            attr(tag, "x"),
            attr(tag, "y"),
            attr(tag, "width"),
            attr(tag, "height"),
        ) {
            w = w.max(x + rw);
            h = h.max(y + rh);
        }
    }
    let Some(head_end) = svg
        .find('>')
        .and_then(|a| Some(a + 1 + svg[a + 1..].find('>')?))
    else {
        return svg.to_string();
    };
    let head = &svg[..head_end];
    let (Some(old_w), Some(old_h)) = (attr(head, "width"), attr(head, "height")) else {
        return svg.to_string();
    };
    if w == 0. || h == 0. {
        return svg.to_string();
    }
    let (w, h) = ((w + 30.).min(old_w), (h + 30.).min(old_h));
    let new_head = head
        .replacen(
            &format!(" width=\"{old_w}\""),
            &format!(" width=\"{w}\""),
            1,
        )
        .replacen(
            &format!(" height=\"{old_h}\""),
            &format!(" height=\"{h}\""),
            1,
        )
        .replacen(
            &format!("viewBox=\"0 0 {old_w} {old_h}\""),
            &format!("viewBox=\"0 0 {w} {h}\""),
            1,
        );
    format!("{new_head}{}", &svg[head_end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespaces::Owner;

    #[test]
    fn boxes_list_interfaces_without_link_local_addresses() {
        let n = NetNs {
            inode: 7,
            role: Role::Container,
            label: "web".into(),
            owner: Owner {
                userns: None,
                uid: None,
            },
            processes: Vec::new(),
            held_by: Vec::new(),
            interfaces: vec![crate::net::Iface {
                index: 2,
                name: "eth0".into(),
                kind: "veth".into(),
                up: true,
                state: "up".into(),
                mtu: 1500,
                mac: None,
                master: None,
                addresses: vec!["10.4.0.2/24".into(), "fe80::1/64".into()],
                peer: None,
                ports: Vec::new(),
                tap_owners: Vec::new(),
            }],
            default_routes: Vec::new(),
            error: None,
            containers: Vec::new(),
            pasta: None,
            hostfwds: Vec::new(),
            hostfwd_error: None,
        };
        let mut view = NetView {
            host: None,
            host_basis: String::new(),
            netns: vec![n],
            veth_pairs: Vec::new(),
            taps: Vec::new(),
            instances: Vec::new(),
            engines: Vec::new(),
            catalog: Default::default(),
            unreadable_pids: Vec::new(),
            problems: Vec::new(),
        };
        assert_eq!(
            box_label(&view, &view.netns[0]),
            "container web\nnet:[7]\neth0 (veth) 10.4.0.2/24"
        );
        // An engine's container adds its line under the title.
        view.netns[0].containers.push(crate::engines::Container {
            engine: crate::engines::Engine::Docker,
            id: "de45fb625f7857f8".into(),
            name: "web".into(),
            image: Some("nsnet-bb".into()),
            running: true,
            pid: Some(9),
            netns_path: None,
            network_mode: None,
            networks: Vec::new(),
            ports: vec![crate::engines::Published {
                proto: "tcp".into(),
                host_ip: "127.0.0.1".into(),
                host_port: 18096,
                container_port: 80,
            }],
            internal_networks: Vec::new(),
        });
        assert_eq!(
            box_label(&view, &view.netns[0]),
            "container web\nnet:[7]\ndocker/web (de45fb625f78) image nsnet-bb ports 127.0.0.1:18096->80/tcp\neth0 (veth) 10.4.0.2/24"
        );
        let svg = graph_svg(&view).unwrap();
        assert!(svg.contains(">container web<") && svg.contains(">eth0 (veth) 10.4.0.2/24<"));
    }

    #[test]
    fn the_canvas_is_trimmed_to_the_boxes() {
        let svg = "<?xml version=\"1.0\"?><svg width=\"500\" height=\"900\" viewBox=\"0 0 500 900\" x=\"1\">\n<rect x=\"30\" y=\"40\" width=\"100\" height=\"60\" />\n</svg>";
        assert_eq!(
            trim(svg),
            "<?xml version=\"1.0\"?><svg width=\"160\" height=\"130\" viewBox=\"0 0 160 130\" x=\"1\">\n<rect x=\"30\" y=\"40\" width=\"100\" height=\"60\" />\n</svg>"
        );
    }
}
