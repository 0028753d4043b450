//! # nsnet-inspect — namespace and topology discovery
//!
//! The layer behind `nsnet ns`. It reads, never changes (the one exception, [`join`], moves
//! only the calling process): it finds every namespace reachable from here and explains the
//! network ones — which is the host's, which is a rootless child's, which belongs to a
//! container — with their interfaces and the links between them.
//!
//! - [`nsfs`]: namespace identities and the nsfs ioctls (owner, parent, owner uid).
//! - [`procscan`]: one pass over `/proc` (namespaces, descriptors, tun devices, state
//!   directories) and the nsfs bind mounts of every mount namespace.
//! - [`namespaces`]: the namespace list (`nsnet ns ls`) with owners and holders.
//! - [`enter`]: a netlink socket inside another netns, root or rootless (forked helper).
//! - [`netlink`]: a small synchronous route-netlink reader (links, addresses, routes, nsids).
//! - [`net`]: the network view (`nsnet ns net`): roles, veth pairs resolved through the nsid
//!   maps, bridges, tap devices and the processes that own them.
//! - [`graph`]: the edge model every picture is drawn from (launcher, tap and veth links,
//!   bridge ports, the rank of each role).
//! - [`render`]: the `ls` table, the `net` listing and the graph forms (text tree, DOT,
//!   mermaid, SVG laid out in-process), one module each.
//! - [`join`]: joining a target's namespaces (`nsnet ns exec`), by PID or as the rootless
//!   child of a running instance.
//! - [`engines`]: the containers' own names, images and published ports, from each
//!   engine's files (rootless Docker, Podman 4's bbolt database and Podman 5's sqlite one,
//!   nerdctl 2's data store with containerd's `meta.db`, nsnet's store) — read as
//!   files, without root and without asking any daemon; what cannot be read is said once.
//! - [`pasta`]: what a pasta command line says (pasta is not dumpable: rootless, its
//!   descriptors cannot be read, its command line can; its `-c` socket's tables are
//!   asked in [`net`]).
//! - [`trace`]: `nsnet ns trace FROM TO`, the path of a connection walked over the kernels'
//!   own answers (route lookups per netns, [`sockets`]' listeners and their holders,
//!   [`nft`]'s nsnet table, [`netfilter`]'s judgement of the rest of the ruleset, iptables-nft
//!   rules included) to a verdict.
//!
//! What it leaves to others: the command line, exit codes and running the command after
//! [`join`] are the binary's; creating links or namespaces is `nsnet-ns`'s and the netlink
//! layer's. RootlessKit and nsnet instances are recognised by their state-directory
//! contract (`ROOTLESSKIT_STATE_DIR`, `child_pid`, `netns`), which both share, and their
//! ports asked of their `api.sock` (the one socket it talks to, besides `--probe`'s single
//! connection attempt).
//!
//! Kernel rules it relies on: a netlink socket answers for the namespace it was created in;
//! `setns` into a user namespace needs a single-threaded caller (hence the forked helper);
//! `RTM_GETNSID` resolves an fd in the sender's table; nsfs inodes identify namespaces.

pub mod engines;
pub mod enter;
#[cfg(test)]
mod fixture;
pub mod graph;
pub mod join;
pub mod namespaces;
pub mod net;
pub mod netfilter;
pub mod netlink;
pub mod nft;
pub mod pasta;
pub mod procscan;
pub mod render;
pub mod sockets;
pub mod trace;
// `nsnet_inspect::svg::graph_svg`, the path the binary uses, stays valid.
pub use render::svg;

pub use namespaces::{Snapshot, discover};
pub use nsfs::{NsId, NsType};
/// Namespace identities and the nsfs ioctls live in the namespace layer.
pub use nsnet_ns::nsfs;

/// Every failure names the operation and the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink: cannot {op}: {source}")]
    Netlink {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("cannot enter {ns}: cannot {op}: {source}")]
    Enter {
        ns: NsId,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("{what} is gone")]
    TargetGone { what: String },
    #[error("no running nsnet or RootlessKit instance{}", .state_dir.as_ref().map(|d| format!(" with state directory {}", d.display())).unwrap_or_default())]
    NoInstance {
        state_dir: Option<std::path::PathBuf>,
    },
    #[error("more than one instance is running ({}); choose one with --state-dir", .dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    AmbiguousChild { dirs: Vec<std::path::PathBuf> },
    #[error("cannot open {what}: {source}")]
    Open {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot join {ns}: {source}")]
    Join { ns: NsId, source: std::io::Error },
    #[error("unknown namespace type {0:?} (want net, user, mnt, pid, uts, ipc, cgroup or time)")]
    UnknownType(String),
}

/// Parses a comma-separated `--type` list.
pub fn parse_types(list: &str) -> Result<Vec<NsType>, Error> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| NsType::from_name(s.trim()).ok_or_else(|| Error::UnknownType(s.into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_lists_parse_and_bad_names_are_named() {
        assert_eq!(
            parse_types("net,user").unwrap(),
            vec![NsType::Net, NsType::User]
        );
        let e = parse_types("net,bogus").unwrap_err().to_string();
        assert!(e.starts_with("unknown namespace type \"bogus\""), "{e}");
    }
}
