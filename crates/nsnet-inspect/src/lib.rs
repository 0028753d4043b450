//! # nsnet-inspect — namespace and topology discovery
//!
//! The layer behind `nsnet ns`. It reads, never changes: it finds every namespace reachable
//! from here and explains the network ones — which is the host's, which is a rootless
//! child's, which belongs to a container — with their interfaces and the links between them.
//!
//! - [`nsfs`]: namespace identities and the nsfs ioctls (owner, parent, owner uid).
//! - [`procscan`]: one pass over `/proc` (namespaces, descriptors, tun devices, state
//!   directories) and the nsfs bind mounts of every mount namespace.
//! - [`namespaces`]: the namespace list (`nsnet ns ls`) with owners and holders.
//! - [`enter`]: a netlink socket inside another netns, root or rootless (forked helper).
//! - [`netlink`]: a small synchronous route-netlink reader (links, addresses, routes, nsids).
//! - [`net`]: the network view (`nsnet ns net`): roles, veth pairs resolved through the nsid
//!   maps, bridges, tap devices and the processes that own them.
//! - [`render`]: tables and the graph forms (text tree, DOT, mermaid).
//!
//! What it leaves to others: the command line and its exit codes are the binary's; creating
//! links or namespaces is `nsnet-ns`'s and the netlink layer's. It names no launcher type:
//! RootlessKit and nsnet instances are recognised by their state-directory contract
//! (`ROOTLESSKIT_STATE_DIR`, `child_pid`, `netns`), which both share.
//!
//! Kernel rules it relies on: a netlink socket answers for the namespace it was created in;
//! `setns` into a user namespace needs a single-threaded caller (hence the forked helper);
//! `RTM_GETNSID` resolves an fd in the sender's table; nsfs inodes identify namespaces.

pub mod enter;
pub mod namespaces;
pub mod net;
pub mod netlink;
pub mod nsfs;
pub mod procscan;
pub mod render;

pub use namespaces::{Snapshot, discover};
pub use nsfs::{NsId, NsType};

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
