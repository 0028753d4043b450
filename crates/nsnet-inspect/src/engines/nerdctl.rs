//! nerdctl's containers (nerdctl 2 over rootless containerd), from the files nerdctl and
//! containerd keep for their user, read without root and without containerd's socket.
//!
//! The layout, as nerdctl's source defines it (`docs/dir.md`, `pkg/dnsutil/hostsstore`,
//! `pkg/portutil/portstore`, `pkg/labels`) and as `containerd-rootless.sh` places
//! containerd's root (`$XDG_DATA_HOME/containerd`, bind-mounted on `/var/lib/containerd`
//! inside RootlessKit's mount namespace):
//!
//! - `DATAROOT` = `$XDG_DATA_HOME/nerdctl` (rootless); under it one data store per
//!   containerd address, `DATAROOT/<ADDRHASH>` (the first 8 hex digits of the address's
//!   SHA-256; every such directory is read, so the address need not be known);
//! - `<store>/etchosts/<NS>/<ID>/meta.json` (`hostsstore.Meta`: `ID`, `Name`, `Hostname`,
//!   `Networks` — network name → the CNI 1.0 result, whose interface with a `sandbox`
//!   names the netns as `/proc/<init PID>/ns/net`, and whose `ips` carry the address and
//!   gateway). Written by nerdctl's OCI hook at createRuntime, removed at postStop: it
//!   exists while the container runs;
//! - `<store>/containers/<NS>/<ID>/ports.json` (nerdctl 2: `[]go-cni.PortMapping`,
//!   `HostPort`, `ContainerPort`, `Protocol`, `HostIP`; mode 0600);
//! - `<store>/names/<NS>/<NAME>`: the ID that holds the name;
//! - containerd's `io.containerd.metadata.v1.bolt/meta.db` (bbolt, [`super::bolt`]):
//!   `v1/<NS>/containers/<ID>/image` and its `labels` bucket, where nerdctl sets
//!   `nerdctl/name`, `nerdctl/networks` and (nerdctl 1) `nerdctl/ports`.
//!
//! Where: the inspecting user's `$XDG_DATA_HOME`, and that of every rootless `containerd`
//! (one with RootlessKit's state directory in its environment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::bolt::{self, Bucket};
use super::{Attached, Candidate, Container, Engine, Published};
use crate::procscan::Proc;

pub(super) fn candidates(p: &Proc) -> Vec<Candidate> {
    if p.comm != "containerd" || p.state_dir.is_none() {
        return Vec::new();
    }
    match &p.data_home {
        Some(h) => vec![Candidate {
            path: h.join("nerdctl"),
            why: format!("containerd {} (rootless: $XDG_DATA_HOME/nerdctl)", p.pid),
            via: None,
        }],
        None => Vec::new(),
    }
}

/// `hostsstore.Meta`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Meta {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    networks: BTreeMap<String, Option<CniResult>>,
}

/// A CNI 1.0 result (`types100.Result`), the fields read.
#[derive(Deserialize)]
struct CniResult {
    #[serde(default)]
    interfaces: Vec<CniIface>,
    #[serde(default)]
    ips: Vec<CniIp>,
}

#[derive(Deserialize)]
struct CniIface {
    #[serde(default)]
    sandbox: String,
}

#[derive(Deserialize)]
struct CniIp {
    address: String,
    #[serde(default)]
    gateway: Option<String>,
}

/// go-cni's `PortMapping` (no JSON tags: Go's field names).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortMapping {
    host_port: u16,
    container_port: u16,
    #[serde(default)]
    protocol: String,
    #[serde(rename = "HostIP", default)]
    host_ip: String,
}

fn published(list: Vec<PortMapping>) -> Vec<Published> {
    list.into_iter()
        .map(|p| Published {
            proto: if p.protocol.is_empty() {
                "tcp".into()
            } else {
                p.protocol
            },
            host_ip: p.host_ip,
            host_port: p.host_port,
            container_port: p.container_port,
        })
        .collect()
}

/// `/proc/1234/ns/net` → 1234.
fn sandbox_pid(s: &str) -> Option<i32> {
    s.strip_prefix("/proc/")?
        .strip_suffix("/ns/net")?
        .parse()
        .ok()
}

/// What containerd's database says of one container.
#[derive(Default)]
struct Record {
    image: Option<String>,
    labels: BTreeMap<String, String>,
}

fn records(db: &Bucket) -> BTreeMap<(String, String), Record> {
    let mut out = BTreeMap::new();
    let Some(v1) = db.bucket("v1") else {
        return out;
    };
    for (ns, nsb) in &v1.buckets {
        let Some(ctrs) = nsb.bucket("containers") else {
            continue;
        };
        for (id, b) in &ctrs.buckets {
            let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
            out.insert(
                (text(ns), text(id)),
                Record {
                    image: b.value("image").map(text).filter(|s| !s.is_empty()),
                    labels: b
                        .bucket("labels")
                        .map(|l| l.values.iter().map(|(k, v)| (text(k), text(v))).collect())
                        .unwrap_or_default(),
                },
            );
        }
    }
    out
}

fn dirs(p: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(p)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect();
    v.sort();
    Ok(v)
}

/// One data store's running containers (those with a hosts-store `meta.json`).
fn store(dir: &Path, db: &BTreeMap<(String, String), Record>) -> Result<Vec<Container>, String> {
    let mut out = Vec::new();
    let etchosts = dir.join("etchosts");
    let namespaces = match dirs(&etchosts) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(format!("cannot list {}: {e}", etchosts.display())),
    };
    for (ns, nsdir) in namespaces {
        let ids = dirs(&nsdir).map_err(|e| format!("cannot list {}: {e}", nsdir.display()))?;
        for (id, iddir) in ids {
            let mpath = iddir.join("meta.json");
            let bytes = match std::fs::read(&mpath) {
                Ok(b) => b,
                // Released at postStop: the container is not running.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", mpath.display())),
            };
            let meta: Meta = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not nerdctl's hosts-store meta: {e}", mpath.display()))?;
            let rec = db.get(&(ns.clone(), id.clone()));
            let label = |k: &str| rec.and_then(|r| r.labels.get(k));
            let name = Some(meta.name.clone())
                .filter(|n| !n.is_empty())
                .or_else(|| label("nerdctl/name").cloned())
                .unwrap_or_default();
            let ports_file = dir
                .join("containers")
                .join(&ns)
                .join(&id)
                .join("ports.json");
            let ports = match std::fs::read(&ports_file) {
                Ok(b) => serde_json::from_slice::<Vec<PortMapping>>(&b)
                    .map(published)
                    .map_err(|e| format!("{}: not nerdctl's ports: {e}", ports_file.display()))?,
                // nerdctl 1 kept them in a label.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => label("nerdctl/ports")
                    .and_then(|s| serde_json::from_str::<Vec<PortMapping>>(s).ok())
                    .map(published)
                    .unwrap_or_default(),
                Err(e) => return Err(format!("{}: {e}", ports_file.display())),
            };
            let mut networks = Vec::new();
            let mut pid = None;
            for (net, res) in &meta.networks {
                let Some(res) = res else { continue };
                for i in &res.interfaces {
                    pid = pid.or_else(|| sandbox_pid(&i.sandbox));
                }
                for ip in &res.ips {
                    networks.push(Attached {
                        network: net.clone(),
                        address: Some(ip.address.clone()),
                        gateway: ip.gateway.clone(),
                    });
                }
            }
            let network_mode = label("nerdctl/networks")
                .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
                .map(|v| v.join(","))
                .or_else(|| {
                    (!meta.networks.is_empty())
                        .then(|| meta.networks.keys().cloned().collect::<Vec<_>>().join(","))
                });
            out.push(Container {
                engine: Engine::Nerdctl,
                id: meta.id,
                name,
                image: rec.and_then(|r| r.image.clone()),
                running: true,
                pid,
                netns_path: None,
                network_mode,
                networks,
                ports,
                internal_networks: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// Every data store under `c.path` (nerdctl's data root); None when there is none.
pub(super) fn read(c: &Candidate) -> Result<Option<Vec<Container>>, String> {
    let stores = match dirs(&c.path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot list {}: {e}", c.path.display())),
    };
    let db_path = c
        .path
        .parent()
        .unwrap_or(Path::new("/"))
        .join("containerd/io.containerd.metadata.v1.bolt/meta.db");
    let db = match std::fs::read(&db_path) {
        Ok(b) => records(&bolt::read(&b).map_err(|e| format!("{}: {e}", db_path.display()))?),
        // Without it there is no image (and no nerdctl 1 ports): the rest still names.
        Err(_) => BTreeMap::new(),
    };
    let mut out = Vec::new();
    for (hash, dir) in stores {
        // `<ADDRHASH>`: 8 hex digits; anything else under the data root is not a store.
        if hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.extend(store(&dir, &db)?);
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::bolt::tests::{file, inline, leaf};

    const ID: &str = "c4ed811cc361d26faffdee8d696ddbc45a9d93c571b5b3c54d3da01cb29caeb1";

    #[test]
    fn reads_a_data_store_with_containerds_labels_and_image() {
        let d = tempfile::tempdir().unwrap();
        let st = d.path().join("nerdctl/1935db59");
        let eh = st.join("etchosts/default").join(ID);
        std::fs::create_dir_all(&eh).unwrap();
        std::fs::write(
            eh.join("meta.json"),
            format!(
                r#"{{"ID":"{ID}","Networks":{{"bridge":{{"cniVersion":"1.0.0","interfaces":[{{"name":"nerdctl0","mac":"3a:1f:00:00:00:01"}},{{"name":"veth1","mac":"3a:1f:00:00:00:02"}},{{"name":"eth0","mac":"3a:1f:00:00:00:03","sandbox":"/proc/4242/ns/net"}}],"ips":[{{"interface":2,"address":"10.4.0.5/24","gateway":"10.4.0.1"}}],"routes":[{{"dst":"0.0.0.0/0"}}],"dns":{{}}}}}},"Hostname":"c4ed811cc361","ExtraHosts":{{}},"Name":"web"}}"#
            ),
        )
        .unwrap();
        let cs = st.join("containers/default").join(ID);
        std::fs::create_dir_all(&cs).unwrap();
        std::fs::write(
            cs.join("ports.json"),
            r#"[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"127.0.0.1"}]"#,
        )
        .unwrap();
        // Not a data store.
        std::fs::create_dir_all(d.path().join("nerdctl/volumes")).unwrap();
        let labels = inline(&[
            (0, b"nerdctl/name", b"web"),
            (0, b"nerdctl/networks", br#"["bridge"]"#),
        ]);
        let ctr = inline(&[
            (0, b"image", b"docker.io/library/nginx:alpine"),
            (1, b"labels", &labels),
        ]);
        let ctrs = inline(&[(1, ID.as_bytes(), &ctr)]);
        let ns = inline(&[(1, b"containers", &ctrs)]);
        let v1 = inline(&[(1, b"default", &ns)]);
        let db = file(4096, [3, 2], 3, &[leaf(3, &[(1, b"v1", &v1)])]);
        let dbdir = d.path().join("containerd/io.containerd.metadata.v1.bolt");
        std::fs::create_dir_all(&dbdir).unwrap();
        std::fs::write(dbdir.join("meta.db"), db).unwrap();

        let got = read(&Candidate {
            path: d.path().join("nerdctl"),
            why: String::new(),
            via: None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(got.len(), 1);
        let c = &got[0];
        assert_eq!(c.label(), "nerdctl/web (c4ed811cc361)");
        assert_eq!(c.image.as_deref(), Some("docker.io/library/nginx:alpine"));
        assert_eq!((c.running, c.pid), (true, Some(4242)));
        assert_eq!(c.ports[0].to_string(), "127.0.0.1:8080->80/tcp");
        assert_eq!(c.network_mode.as_deref(), Some("bridge"));
        assert_eq!(
            c.networks,
            vec![Attached {
                network: "bridge".into(),
                address: Some("10.4.0.5/24".into()),
                gateway: Some("10.4.0.1".into())
            }]
        );
    }

    #[test]
    fn nerdctl_1_ports_from_the_label_and_a_stopped_container_is_not_listed() {
        let d = tempfile::tempdir().unwrap();
        let st = d.path().join("nerdctl/1935db59");
        // Stopped: postStop removed meta.json, the hosts file stays.
        let eh = st.join("etchosts/default/aaaa");
        std::fs::create_dir_all(&eh).unwrap();
        std::fs::write(eh.join("hosts"), "").unwrap();
        let eh = st.join("etchosts/default").join(ID);
        std::fs::create_dir_all(&eh).unwrap();
        std::fs::write(
            eh.join("meta.json"),
            format!(r#"{{"ID":"{ID}","Networks":{{}},"Name":""}}"#),
        )
        .unwrap();
        let labels = inline(&[
            (0, b"nerdctl/name", b"old"),
            (
                0,
                b"nerdctl/ports",
                br#"[{"HostPort":9000,"ContainerPort":90,"Protocol":"udp","HostIP":"0.0.0.0"}]"#,
            ),
        ]);
        let ctr = inline(&[(1, b"labels", &labels)]);
        let ctrs = inline(&[(1, ID.as_bytes(), &ctr)]);
        let ns = inline(&[(1, b"containers", &ctrs)]);
        let v1 = inline(&[(1, b"default", &ns)]);
        let db =
            records(&bolt::read(&file(4096, [3, 2], 3, &[leaf(3, &[(1, b"v1", &v1)])])).unwrap());
        let got = store(&st, &db).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "old");
        assert_eq!(got[0].ports[0].to_string(), "0.0.0.0:9000->90/udp");
        assert_eq!(got[0].image, None);
    }

    #[test]
    fn a_damaged_meta_json_is_said() {
        let d = tempfile::tempdir().unwrap();
        let eh = d.path().join("1935db59/etchosts/default/x");
        std::fs::create_dir_all(&eh).unwrap();
        std::fs::write(eh.join("meta.json"), "{").unwrap();
        let e = store(&d.path().join("1935db59"), &BTreeMap::new()).unwrap_err();
        assert!(e.contains("not nerdctl's hosts-store meta"), "{e}");
    }
}
