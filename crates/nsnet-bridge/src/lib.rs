//! # nsnet-bridge — bridge networks inside the rootless child netns
//!
//! What a container network is once the rootless child exists: a Linux bridge per network
//! (`nerdctl0` for the default network `bridge`, 10.4.0.0/24), a veth pair per attached
//! container (its end named `eth0` in the container's netns, the other on the bridge with
//! hairpin mode), addresses from a persistent IPAM, and nftables rules for outbound NAT and
//! isolation between networks. It also speaks CNI 1.1 as the `nsnet-bridge` plugin.
//!
//! Design:
//! - Everything acts in the **calling thread's current network namespace** (the caller has
//!   entered the instance's child netns, see `shared/design.md` section 2); the container's
//!   side is configured through a netlink socket opened inside the container netns by a
//!   short-lived thread, so the caller itself never moves and may be multi-threaded.
//! - State is plain files under a [`Store`] root (`$XDG_DATA_HOME/nsnet`): one JSON file per
//!   network, one file per allocated address (host-local's layout, plus the owner's netns
//!   identity so that a crash or a reboot can be told apart from a live container), and
//!   `flock`ed lock files. Nothing lives on a tmpfs.
//! - nftables is driven through `nft -j -f -`: the whole `ip nsnet` table is regenerated from
//!   the network files in one transaction, so rules never accumulate per container and a
//!   rule can never be left behind by a crash.
//!
//! Layers: uses nsnet-netlink for links/addresses/routes; knows nothing about instances,
//! state directories or the command line (the binary enters the namespaces first).

mod attach;
pub mod cni;
mod ipam;
mod network;
mod nft;
mod nsfile;
mod subnet;

use std::path::{Path, PathBuf};

pub use attach::{AttachRequest, Attachment, GcReport, attach, detach, gc, gc_with};
pub use ipam::Allocation;
pub use network::{
    DEFAULT_BRIDGE, DEFAULT_NETWORK, Network, NetworkOptions, create_network, inspect_network,
    list_networks, remove_network,
};
pub use subnet::{Subnet, Subnet6};

/// Every failure names the object and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot find the data directory: neither XDG_DATA_HOME nor HOME is set")]
    NoDataDir,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: malformed: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("network {0} not found (list them with `nsnet network ls`)")]
    NoSuchNetwork(String),
    #[error("network {0} already exists")]
    NetworkExists(String),
    #[error("invalid network name {0:?} (want letters, digits, '_', '.', '-', at most 64)")]
    BadNetworkName(String),
    #[error("{0}")]
    Invalid(String),
    #[error("network {network} has no free address left in {subnet}")]
    Exhausted { network: String, subnet: Subnet },
    #[error("{ip} is already allocated to container {owner} on network {network}")]
    AddressTaken {
        ip: std::net::Ipv4Addr,
        owner: String,
        network: String,
    },
    #[error(
        "container {container} is already attached to network {network} as {ifname} ({ip}); disconnect it first"
    )]
    AlreadyAttached {
        container: String,
        network: String,
        ifname: String,
        ip: std::net::Ipv4Addr,
    },
    #[error(
        "network {network} is in use by {count} container(s) ({first}…); disconnect them first"
    )]
    InUse {
        network: String,
        count: usize,
        first: String,
    },
    #[error("{path} is not a network namespace ({why})")]
    NotNetns { path: PathBuf, why: String },
    #[error(transparent)]
    Netlink(#[from] nsnet_netlink::Error),
    #[error("nft not found (tried $PATH, /usr/sbin/nft, /sbin/nft): install the nftables package")]
    NoNft,
    #[error("nft -j -f - failed ({status}): {stderr}")]
    Nft { status: String, stderr: String },
    #[error("cannot write {path}: {source} (set it to 1 by hand as root in the child netns)")]
    Sysctl {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The addresses allocated on `network`, by address.
pub fn allocations(store: &Store, network: &str) -> Result<Vec<Allocation>> {
    network::check_name(network)?;
    ipam::Ipam::lock(store, network)?.allocations()
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where networks and address allocations are kept.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `$XDG_DATA_HOME/nsnet`, else `~/.local/share/nsnet`: persistent, per user (not a
    /// runtime tmpfs, which a reboot would empty while containers' configs survive).
    pub fn default_location() -> Result<Store> {
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return Ok(Store::at(PathBuf::from(x).join("nsnet")));
        }
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(h) => Ok(Store::at(PathBuf::from(h).join(".local/share/nsnet"))),
            None => Err(Error::NoDataDir),
        }
    }

    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn networks_dir(&self) -> PathBuf {
        self.root.join("networks")
    }

    pub(crate) fn ipam_dir(&self, network: &str) -> PathBuf {
        self.root.join("ipam").join(network)
    }

    /// The store-wide lock (network create/remove), held until the returned file is dropped.
    pub(crate) fn lock(&self) -> Result<std::fs::File> {
        lock_file(&self.root.join("lock"))
    }
}

/// Opens (creating it and its directory) and `flock`s `path` exclusively; the lock is released
/// when the file is closed, also when the process dies (no stale lock after a crash).
pub(crate) fn lock_file(path: &Path) -> Result<std::fs::File> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.lock().map_err(io_err(path))?;
    Ok(f)
}

/// Writes `data` to `path` atomically (a temporary file renamed over it): readers never see
/// a half-written file, and a crash leaves either the old or the new content.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().expect("store paths have a parent");
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&tmp, data).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path)(e)
    })
}
