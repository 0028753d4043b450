//! Persistent IPAM: one file per allocated address under `<store>/ipam/NETWORK/`, named by
//! the address as host-local names them, plus a `c-KEY` symlink per attachment (KEY is the
//! host veth name, derived from network + container + interface) so an attachment is found
//! without scanning, and `last_reserved_ip` for round-robin reuse.
//!
//! Every operation holds `<store>/ipam/NETWORK/lock` (flock: released by the kernel when the
//! holder dies, so a crash never wedges the network). A record is created with `link(2)` from
//! a fully written temporary file, which fails if the address is taken: even without the lock
//! two writers could never share an address, and a reader never sees half a record.
//!
//! A record carries what a later `gc` needs to tell a live container from a dead one: the
//! netns path *and its inode* (a `/proc/PID/ns/net` path can come back with another process),
//! the container id, and, while the attachment is being built, the attaching process's pid.
//!
//! On an IPv6 network the attachment's IPv6 address gets its own file too (named by the
//! address, a hard link of the same record, host-local's layout for dual-stack), created,
//! rewritten and removed together with the IPv4 one by the same functions. The IPv6 address
//! is derived from the IPv4 one ([`Network::ip6_for`](crate::Network::ip6_for)), so owning the IPv4 file means owning
//! the IPv6 address: no second allocator, no second race.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Store, Subnet, io_err, write_atomic};

/// Whether the attachment that owns the address was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Written before any link exists; `pid` is the attaching process.
    Attaching,
    Attached,
}

/// One allocated address and its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    /// The IPv6 address, on IPv6 networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    pub container_id: String,
    pub netns: PathBuf,
    /// The nsfs inode of `netns` when the address was allocated.
    pub netns_ino: u64,
    pub ifname: String,
    pub host_veth: String,
    pub state: State,
    /// The process that made the allocation.
    pub pid: u32,
}

/// An open, locked IPAM directory of one network.
pub(crate) struct Ipam {
    dir: PathBuf,
    network: String,
    _lock: std::fs::File,
}

fn is_ip_name(name: &str) -> Option<Ipv4Addr> {
    name.parse().ok()
}

impl Ipam {
    /// Locks the network's IPAM directory (creating it), waiting for other holders.
    pub(crate) fn lock(store: &Store, network: &str) -> Result<Ipam> {
        let dir = store.ipam_dir(network);
        let lock = crate::lock_file(&dir.join("lock"))?;
        Ok(Ipam {
            dir,
            network: network.to_string(),
            _lock: lock,
        })
    }

    fn record_path(&self, ip: Ipv4Addr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn read(&self, path: &Path) -> Result<Option<Allocation>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt {
                    path: path.to_path_buf(),
                    msg: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// Every allocation, by address. Unreadable records are reported as errors, never
    /// silently treated as free.
    pub(crate) fn allocations(&self) -> Result<Vec<Allocation>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        for e in rd {
            let e = e.map_err(io_err(&self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_ip_name(&name).is_some()
                && let Some(a) = self.read(&e.path())?
            {
                out.push(a);
            }
        }
        out.sort_by_key(|a| u32::from(a.ip));
        Ok(out)
    }

    /// The allocation of attachment `key` (its host veth name), if any.
    pub(crate) fn by_key(&self, key: &str) -> Result<Option<Allocation>> {
        let link = self.dir.join(format!("c-{key}"));
        match std::fs::read_link(&link) {
            Ok(target) => {
                let rec = self.dir.join(target);
                let a = self.read(&rec)?;
                if a.is_none() {
                    // A key left by a crash between the two removals of `release`.
                    let _ = std::fs::remove_file(&link);
                }
                Ok(a)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&link)(e)),
        }
    }

    /// The owner of `ip`, if it is allocated.
    pub(crate) fn owner(&self, ip: Ipv4Addr) -> Result<Option<Allocation>> {
        self.read(&self.record_path(ip))
    }

    /// Allocates `want`, or the next free address after the last one handed out (wrapping),
    /// never the network, gateway or broadcast address. `rec.ip` is filled in, and `rec.ip6`
    /// with what `ip6_for` derives (IPv6 networks).
    pub(crate) fn allocate(
        &self,
        subnet: Subnet,
        gateway: Ipv4Addr,
        ip6_for: &dyn Fn(Ipv4Addr) -> Option<Ipv6Addr>,
        want: Option<Ipv4Addr>,
        mut rec: Allocation,
    ) -> Result<Allocation> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let usable = |ip: Ipv4Addr| {
            subnet.contains(ip) && ip != subnet.base() && ip != subnet.broadcast() && ip != gateway
        };
        if let Some(ip) = want {
            if !usable(ip) {
                return Err(Error::Invalid(format!(
                    "{ip} is not an assignable address of network {} ({subnet}, gateway {gateway})",
                    self.network
                )));
            }
            rec.ip = ip;
            rec.ip6 = ip6_for(ip);
            return match self.create(&rec)? {
                true => Ok(rec),
                false => Err(self.taken(ip)),
            };
        }
        let first = u32::from(subnet.first_host());
        let last = u32::from(subnet.last_host());
        let span = last - first + 1;
        let last_path = self.dir.join("last_reserved_ip");
        let start = std::fs::read_to_string(&last_path)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|l| (first..=last).contains(l))
            .map(|l| l - first + 1)
            .unwrap_or(0);
        for i in 0..span {
            let ip = Ipv4Addr::from(first + (start + i) % span);
            if !usable(ip) || self.record_path(ip).exists() {
                continue;
            }
            rec.ip = ip;
            rec.ip6 = ip6_for(ip);
            if self.create(&rec)? {
                write_atomic(&last_path, ip.to_string().as_bytes())?;
                return Ok(rec);
            }
        }
        Err(Error::Exhausted {
            network: self.network.clone(),
            subnet,
        })
    }

    fn taken(&self, ip: Ipv4Addr) -> Error {
        let owner = match self.owner(ip) {
            Ok(Some(a)) => a.container_id,
            Ok(None) => "(released just now)".into(),
            Err(e) => format!("(unreadable record: {e})"),
        };
        Error::AddressTaken {
            ip,
            owner,
            network: self.network.clone(),
        }
    }

    /// Creates the record and its key; false when the address is already taken.
    fn create(&self, rec: &Allocation) -> Result<bool> {
        let path = self.record_path(rec.ip);
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{}", std::process::id(), rec.ip));
        let data = serde_json::to_vec_pretty(rec).expect("records serialise");
        std::fs::write(&tmp, data).map_err(io_err(&tmp))?;
        let linked = std::fs::hard_link(&tmp, &path);
        match linked {
            Ok(()) => {}
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(false),
                    _ => Err(io_err(&path)(e)),
                };
            }
        }
        if let Some(ip6) = rec.ip6 {
            // Whoever holds the IPv4 file holds its IPv6 twin, so an IPv6 file already there
            // is one a crash left behind (its IPv4 file was free): replace it.
            let p6 = self.dir.join(ip6.to_string());
            let _ = std::fs::remove_file(&p6);
            if let Err(e) = std::fs::hard_link(&tmp, &p6) {
                let _ = std::fs::remove_file(&tmp);
                let _ = std::fs::remove_file(&path);
                return Err(io_err(&p6)(e));
            }
        }
        let _ = std::fs::remove_file(&tmp);
        let key = self.dir.join(format!("c-{}", rec.host_veth));
        let _ = std::fs::remove_file(&key);
        if let Err(e) = std::os::unix::fs::symlink(rec.ip.to_string(), &key) {
            let _ = std::fs::remove_file(&path);
            if let Some(ip6) = rec.ip6 {
                let _ = std::fs::remove_file(self.dir.join(ip6.to_string()));
            }
            return Err(io_err(&key)(e));
        }
        Ok(true)
    }

    /// Rewrites a record (same address).
    pub(crate) fn update(&self, rec: &Allocation) -> Result<()> {
        let data = serde_json::to_vec_pretty(rec).expect("records serialise");
        if let Some(ip6) = rec.ip6 {
            write_atomic(&self.dir.join(ip6.to_string()), &data)?;
        }
        write_atomic(&self.record_path(rec.ip), &data)
    }

    /// Frees an address: the key first, then the IPv6 file, then the IPv4 record (a crash in
    /// between leaves a record that `gc` judges like any other, or an IPv6 file that `sweep`
    /// or the next allocation of its IPv4 twin removes).
    pub(crate) fn release(&self, rec: &Allocation) -> Result<()> {
        let key = self.dir.join(format!("c-{}", rec.host_veth));
        if std::fs::read_link(&key).is_ok_and(|t| t == Path::new(&rec.ip.to_string())) {
            std::fs::remove_file(&key).map_err(io_err(&key))?;
        }
        let gone = |path: PathBuf| match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        };
        if let Some(ip6) = rec.ip6 {
            gone(self.dir.join(ip6.to_string()))?;
        }
        gone(self.record_path(rec.ip))
    }

    /// Removes what crashes leave besides records: keys whose record is gone, and
    /// temporary files of dead processes. Returns how many files went.
    pub(crate) fn sweep(&self) -> Result<usize> {
        let mut n = 0;
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = if name.starts_with("c-") {
                std::fs::read_link(e.path())
                    .map(|t| !self.dir.join(t).exists())
                    .unwrap_or(true)
            } else if name.parse::<Ipv6Addr>().is_ok() {
                // An IPv6 file whose IPv4 twin no longer names it.
                self.read(&e.path())
                    .ok()
                    .flatten()
                    .and_then(|a| self.owner(a.ip).ok().flatten())
                    .is_none_or(|twin| twin.ip6.map(|i| i.to_string()) != Some(name.clone()))
            } else if let Some(rest) = name.strip_prefix(".tmp-") {
                rest.split('-')
                    .next()
                    .and_then(|p| p.parse::<i32>().ok())
                    .is_some_and(|pid| !crate::attach::pid_alive(pid))
            } else {
                false
            };
            if stale && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes the whole directory (the network is being deleted and has no allocations).
    pub(crate) fn destroy(self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Subnet6;

    fn rec(c: &str) -> Allocation {
        Allocation {
            ip: Ipv4Addr::UNSPECIFIED,
            ip6: None,
            container_id: c.into(),
            netns: "/proc/1/ns/net".into(),
            netns_ino: 1,
            ifname: "eth0".into(),
            host_veth: format!("veth{c}"),
            state: State::Attached,
            pid: std::process::id(),
        }
    }

    fn net() -> (Subnet, Ipv4Addr) {
        ("10.4.0.0/29".parse().unwrap(), Ipv4Addr::new(10, 4, 0, 1))
    }

    #[test]
    fn allocates_round_robin_and_never_twice() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        let ipam = Ipam::lock(&st, "n").unwrap();
        let (s, g) = net();
        let got: Vec<Ipv4Addr> = (0..5)
            .map(|i| {
                ipam.allocate(s, g, &|_| None, None, rec(&format!("c{i}")))
                    .unwrap()
                    .ip
            })
            .collect();
        // .1 is the gateway, .7 the broadcast: five usable addresses in a /29.
        let want: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(10, 4, 0, h)).collect();
        assert_eq!(got, want);
        let e = ipam.allocate(s, g, &|_| None, None, rec("c5")).unwrap_err();
        assert!(matches!(e, Error::Exhausted { .. }), "{e}");
        // Released .3 comes back only after the round-robin pointer wraps.
        let a3 = ipam.owner(Ipv4Addr::new(10, 4, 0, 3)).unwrap().unwrap();
        assert_eq!(a3.container_id, "c1");
        ipam.release(&a3).unwrap();
        assert!(ipam.by_key("vethc1").unwrap().is_none());
        assert_eq!(
            ipam.allocate(s, g, &|_| None, None, rec("c6")).unwrap().ip,
            Ipv4Addr::new(10, 4, 0, 3)
        );
        assert_eq!(ipam.allocations().unwrap().len(), 5);
        assert_eq!(
            ipam.by_key("vethc6").unwrap().unwrap().ip,
            Ipv4Addr::new(10, 4, 0, 3)
        );
    }

    #[test]
    fn static_addresses_are_honoured_or_refused_with_the_owner() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        let ipam = Ipam::lock(&st, "bridge").unwrap();
        let (s, g) = net();
        let ip = Ipv4Addr::new(10, 4, 0, 5);
        assert_eq!(
            ipam.allocate(s, g, &|_| None, Some(ip), rec("x"))
                .unwrap()
                .ip,
            ip
        );
        let e = ipam
            .allocate(s, g, &|_| None, Some(ip), rec("y"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "10.4.0.5 is already allocated to container x on network bridge"
        );
        for bad in ["10.4.0.1", "10.4.0.0", "10.4.0.7", "10.4.1.2"] {
            let e = ipam
                .allocate(s, g, &|_| None, Some(bad.parse().unwrap()), rec("z"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("not an assignable address"), "{bad}: {e}");
        }
        // The dynamic allocator skips the static one.
        let got: Vec<_> = (0..4)
            .map(|i| {
                ipam.allocate(s, g, &|_| None, None, rec(&format!("d{i}")))
                    .unwrap()
                    .ip
            })
            .collect();
        assert!(!got.contains(&ip));
    }

    #[test]
    fn corrupt_records_are_errors_not_free_addresses() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        let ipam = Ipam::lock(&st, "n").unwrap();
        std::fs::write(st.ipam_dir("n").join("10.4.0.2"), b"{").unwrap();
        let e = ipam.allocations().unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        let (s, g) = net();
        // The file still blocks its address.
        let a = ipam.allocate(s, g, &|_| None, None, rec("a")).unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(10, 4, 0, 3));
    }

    #[test]
    fn ipv6_twins_are_created_released_and_swept_with_their_ipv4_record() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        let ipam = Ipam::lock(&st, "n").unwrap();
        let dir = st.ipam_dir("n");
        let (s, g) = net();
        let s6: Subnet6 = "fd00:4:0::/64".parse().unwrap();
        // A file a crash left for the address the next allocation derives is replaced.
        std::fs::write(dir.join("fd00:4::a04:2"), b"{").unwrap();
        let mut a = ipam
            .allocate(s, g, &|ip| Some(s6.host_for(ip)), None, rec("a"))
            .unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(10, 4, 0, 2));
        let v6: Ipv6Addr = "fd00:4::a04:2".parse().unwrap();
        assert_eq!(a.ip6, Some(v6));
        let twin: Allocation =
            serde_json::from_slice(&std::fs::read(dir.join(v6.to_string())).unwrap()).unwrap();
        assert_eq!(twin, a);
        // Listings count the attachment once; updates reach both files.
        assert_eq!(ipam.allocations().unwrap(), [a.clone()]);
        a.state = State::Attaching;
        ipam.update(&a).unwrap();
        let twin: Allocation =
            serde_json::from_slice(&std::fs::read(dir.join(v6.to_string())).unwrap()).unwrap();
        assert_eq!(twin.state, State::Attaching);
        let b = ipam
            .allocate(
                s,
                g,
                &|ip| Some(s6.host_for(ip)),
                Some(Ipv4Addr::new(10, 4, 0, 5)),
                rec("b"),
            )
            .unwrap();
        assert_eq!(b.ip6, Some("fd00:4::a04:5".parse().unwrap()));
        ipam.release(&a).unwrap();
        assert!(!dir.join(v6.to_string()).exists());
        assert!(!dir.join("10.4.0.2").exists());
        // A crash between the two removals of release leaves an IPv6 file: sweep drops it,
        // and keeps the live one.
        let mut orphan = b.clone();
        orphan.ip = Ipv4Addr::new(10, 4, 0, 6);
        orphan.ip6 = Some("fd00:4::a04:6".parse().unwrap());
        std::fs::write(
            dir.join("fd00:4::a04:6"),
            serde_json::to_vec(&orphan).unwrap(),
        )
        .unwrap();
        assert_eq!(ipam.sweep().unwrap(), 1);
        assert!(!dir.join("fd00:4::a04:6").exists());
        assert!(dir.join("fd00:4::a04:5").exists());
    }

    #[test]
    fn sweep_drops_dangling_keys_and_dead_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::at(d.path());
        let ipam = Ipam::lock(&st, "n").unwrap();
        let dir = st.ipam_dir("n");
        std::os::unix::fs::symlink("10.4.0.9", dir.join("c-vethgone")).unwrap();
        std::fs::write(dir.join(".tmp-999999999-10.4.0.4"), b"x").unwrap();
        std::fs::write(dir.join(format!(".tmp-{}-x", std::process::id())), b"x").unwrap();
        assert_eq!(ipam.sweep().unwrap(), 2);
        assert!(dir.join(format!(".tmp-{}-x", std::process::id())).exists());
    }
}
