//! Podman's containers from its database: Podman 4's `GRAPHROOT/libpod/bolt_state.db`
//! (read with [`super::bolt`]), else Podman 5's `GRAPHROOT/db.sql` (sqlite, read-only; see
//! [`sqlite`]). Podman keeps using a bolt database where one exists, so it is asked first.
//!
//! The layout Podman 4.3 writes (libpod's `boltdb_state.go`): bucket `ctr`, one bucket per
//! container id holding `config` (JSON: `name`, `rootfsImageName`, `newPortMappings` — older
//! Podman: `portMappings` —, `networkMode`), `state` (JSON: `state` 3 = running, `pid`,
//! `networkStatus` per network and interface), `netns` (the netns file Podman made, under
//! `$XDG_RUNTIME_DIR/netns/`) and a bucket `networks` (network name → options).
//!
//! Where: the graph root in conmon's command line (`--exit-command-arg --root
//! --exit-command-arg GRAPHROOT`, which Podman passes so that the cleanup it runs finds the
//! same store), and `$XDG_DATA_HOME/containers/storage` of the inspecting user.

use std::path::PathBuf;

use serde::Deserialize;

use super::bolt::{self, Bucket};
use super::{Attached, Candidate, Container, Engine, Published, read_via};
use crate::procscan::Proc;

/// libpod's `ContainerStateRunning`.
const RUNNING: i64 = 3;

pub(super) fn candidates(p: &Proc) -> Vec<Candidate> {
    if p.comm != "conmon" {
        return Vec::new();
    }
    // `--exit-command-arg --root --exit-command-arg G`: the values after each
    // --exit-command-arg form podman's own argv.
    let mut exit_argv = Vec::new();
    let mut it = p.cmdline.iter();
    while let Some(a) = it.next() {
        if a == "--exit-command-arg"
            && let Some(v) = it.next()
        {
            exit_argv.push(v.clone());
        }
    }
    match super::flag(&exit_argv, &["--root"]) {
        Some(root) => vec![Candidate {
            path: PathBuf::from(root),
            why: format!("conmon {} (podman --root)", p.pid),
            via: Some(p.pid),
        }],
        None => Vec::new(),
    }
}

#[derive(Deserialize)]
struct Config {
    id: String,
    name: String,
    #[serde(rename = "rootfsImageName", default)]
    image: String,
    #[serde(rename = "newPortMappings", default)]
    new_ports: Option<Vec<NewPort>>,
    #[serde(rename = "portMappings", default)]
    old_ports: Option<Vec<OldPort>>,
    #[serde(rename = "networkMode", default)]
    network_mode: String,
}

/// Podman 4's port mapping (`types.PortMapping`): `range` ports from each start, and a
/// protocol list like `tcp,udp`.
#[derive(Deserialize)]
struct NewPort {
    #[serde(default)]
    host_ip: String,
    container_port: u16,
    host_port: u16,
    #[serde(default)]
    range: u16,
    #[serde(default)]
    protocol: String,
}

/// Podman 3's (CNI's) port mapping.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OldPort {
    host_port: u16,
    container_port: u16,
    #[serde(default)]
    protocol: String,
    #[serde(rename = "hostIP", default)]
    host_ip: String,
}

#[derive(Deserialize)]
struct State {
    state: i64,
    #[serde(default)]
    pid: i32,
    #[serde(rename = "networkStatus", default)]
    network_status: Option<std::collections::BTreeMap<String, NetStatus>>,
}

#[derive(Deserialize)]
struct NetStatus {
    #[serde(default)]
    interfaces: std::collections::BTreeMap<String, IfStatus>,
}

#[derive(Deserialize)]
struct IfStatus {
    #[serde(default)]
    subnets: Vec<Subnet>,
}

#[derive(Deserialize)]
struct Subnet {
    ipnet: String,
    #[serde(default)]
    gateway: Option<String>,
}

fn ports(c: &Config) -> Vec<Published> {
    let mut out = Vec::new();
    for p in c.new_ports.iter().flatten() {
        let protos = if p.protocol.is_empty() {
            "tcp"
        } else {
            &p.protocol
        };
        for proto in protos.split(',') {
            for k in 0..p.range.max(1) {
                out.push(Published {
                    proto: proto.to_string(),
                    host_ip: p.host_ip.clone(),
                    host_port: p.host_port + k,
                    container_port: p.container_port + k,
                });
            }
        }
    }
    for p in c.old_ports.iter().flatten() {
        out.push(Published {
            proto: if p.protocol.is_empty() {
                "tcp".into()
            } else {
                p.protocol.clone()
            },
            host_ip: p.host_ip.clone(),
            host_port: p.host_port,
            container_port: p.container_port,
        });
    }
    out
}

fn container(id: &[u8], b: &Bucket) -> Result<Option<Container>, String> {
    let id = String::from_utf8_lossy(id);
    let Some(cfg) = b.value("config") else {
        return Ok(None);
    };
    let cfg: Config = serde_json::from_slice(cfg)
        .map_err(|e| format!("container {id}: its config is not Podman 4's: {e}"))?;
    let state: Option<State> = b
        .value("state")
        .and_then(|s| serde_json::from_slice(s).ok());
    let running = state.as_ref().is_some_and(|s| s.state == RUNNING);
    let mut networks = Vec::new();
    if let Some(ns) = state.as_ref().and_then(|s| s.network_status.as_ref()) {
        for (name, st) in ns {
            for i in st.interfaces.values() {
                for s in &i.subnets {
                    networks.push(Attached {
                        network: name.clone(),
                        address: Some(s.ipnet.clone()),
                        gateway: s.gateway.clone(),
                    });
                }
            }
        }
    }
    // Networks named without a status yet (the container is not running).
    if let Some(n) = b.bucket("networks") {
        for name in n.values.keys() {
            let name = String::from_utf8_lossy(name).into_owned();
            if !networks.iter().any(|a| a.network == name) {
                networks.push(Attached {
                    network: name,
                    address: None,
                    gateway: None,
                });
            }
        }
    }
    Ok(Some(Container {
        internal_networks: Vec::new(),
        engine: Engine::Podman,
        ports: ports(&cfg),
        id: cfg.id,
        name: cfg.name,
        image: (!cfg.image.is_empty()).then_some(cfg.image),
        running,
        pid: state.as_ref().map(|s| s.pid).filter(|p| *p > 0),
        netns_path: b
            .value("netns")
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .filter(|p| !p.as_os_str().is_empty()),
        network_mode: (!cfg.network_mode.is_empty()).then_some(cfg.network_mode),
        networks,
    }))
}

/// The containers of one Podman database.
pub(super) fn from_db(bytes: &[u8]) -> Result<Vec<Container>, String> {
    let root = bolt::read(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if let Some(ctrs) = root.bucket("ctr") {
        for (id, b) in &ctrs.buckets {
            if let Some(c) = container(id, b)? {
                out.push(c);
            }
        }
    }
    Ok(out)
}

pub(super) fn read(c: &Candidate) -> Result<Option<Vec<Container>>, String> {
    let db = c.path.join("libpod/bolt_state.db");
    let bytes = match read_via(c.via, &db) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Podman 5 (and 4.8+ with database_backend="sqlite") keeps a sqlite database.
            return sqlite::read(c);
        }
        Err(e) => return Err(format!("{}: {e}", db.display())),
    };
    from_db(&bytes)
        .map(Some)
        .map_err(|e| format!("{}: {e}", db.display()))
}

/// Podman 5's sqlite state: `GRAPHROOT/db.sql` (libpod's `sqlite_state.go`), tables
/// `ContainerConfig(ID, Name, PodID, JSON)` and `ContainerState(ID, State, ExitCode,
/// JSON)`, whose JSON columns are the same `ContainerConfig` and `ContainerState` the bolt
/// database holds, except that the netns path is the state's `netns` and the networks are
/// the config's `newNetworks` (bolt kept both in keys of their own).
mod sqlite {
    use std::path::{Path, PathBuf};

    use rusqlite::{Connection, OpenFlags};
    use serde::Deserialize;

    use super::{Attached, Candidate, Config, Container, Engine, RUNNING, State, ports};

    #[derive(Deserialize)]
    struct Networks {
        #[serde(rename = "newNetworks", default)]
        networks: std::collections::BTreeMap<String, serde_json::Value>,
    }

    #[derive(Deserialize)]
    struct NetNs {
        #[serde(default)]
        netns: String,
    }

    /// One row pair as a container: `config` and `state` are the two JSON columns.
    pub(super) fn container(config: &str, state: &str) -> Result<Container, String> {
        let cfg: Config =
            serde_json::from_str(config).map_err(|e| format!("a config is not Podman's: {e}"))?;
        let nets: Networks =
            serde_json::from_str(config).map_err(|e| format!("container {}: {e}", cfg.id))?;
        let st: Option<State> = serde_json::from_str(state).ok();
        let netns: Option<NetNs> = serde_json::from_str(state).ok();
        let mut networks = Vec::new();
        if let Some(ns) = st.as_ref().and_then(|s| s.network_status.as_ref()) {
            for (name, block) in ns {
                for i in block.interfaces.values() {
                    for s in &i.subnets {
                        networks.push(Attached {
                            network: name.clone(),
                            address: Some(s.ipnet.clone()),
                            gateway: s.gateway.clone(),
                        });
                    }
                }
            }
        }
        for name in nets.networks.keys() {
            if !networks.iter().any(|a| &a.network == name) {
                networks.push(Attached {
                    network: name.clone(),
                    address: None,
                    gateway: None,
                });
            }
        }
        Ok(Container {
            internal_networks: Vec::new(),
            engine: Engine::Podman,
            ports: ports(&cfg),
            running: st.as_ref().is_some_and(|s| s.state == RUNNING),
            pid: st.as_ref().map(|s| s.pid).filter(|p| *p > 0),
            netns_path: netns
                .map(|n| PathBuf::from(n.netns))
                .filter(|p| !p.as_os_str().is_empty()),
            network_mode: (!cfg.network_mode.is_empty()).then(|| cfg.network_mode.clone()),
            image: (!cfg.image.is_empty()).then(|| cfg.image.clone()),
            networks,
            id: cfg.id,
            name: cfg.name,
        })
    }

    fn query(db: &Path) -> rusqlite::Result<Vec<(String, String)>> {
        // Read-only, and without taking part in Podman's locking beyond sqlite's own
        // shared read lock: the inspector never writes.
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut stmt = conn.prepare(
            "SELECT ContainerConfig.JSON, ContainerState.JSON FROM ContainerConfig \
             INNER JOIN ContainerState ON ContainerConfig.ID = ContainerState.ID \
             ORDER BY ContainerConfig.ID;",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    pub(super) fn read(c: &Candidate) -> Result<Option<Vec<Container>>, String> {
        let direct = c.path.join("db.sql");
        // Through the process's root when it sees another file system (as read_via).
        let through = c.via.map(|pid| {
            Path::new(&format!("/proc/{pid}/root"))
                .join(direct.strip_prefix("/").unwrap_or(&direct))
        });
        let db = match through.filter(|t| t.exists()) {
            Some(t) => t,
            None if direct.exists() => direct.clone(),
            None => return Ok(None),
        };
        let rows = query(&db).map_err(|e| format!("{}: {e}", direct.display()))?;
        rows.iter()
            .map(|(cfg, st)| container(cfg, st))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| format!("{}: {e}", direct.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::bolt::tests::{file, inline, leaf};

    // From a real run of Podman 4.3.1 (Debian): `podman run -d --name pbr --network pnet
    // -p 127.0.0.1:18098:80 localhost/nsnet-bb httpd …`, abridged to the fields read.
    const CONFIG: &str = r#"{"spec":{"ociVersion":"1.0.2-dev"},"id":"b4a7a44461b283e6cb7ca37b7cdadb71ae33518c722c2bc1d05b4867c4932db1","name":"pbr","RawImageName":"localhost/nsnet-bb","rootfsImageName":"localhost/nsnet-bb:latest","createNetNS":true,"newPortMappings":[{"host_ip":"127.0.0.1","container_port":80,"host_port":18098,"range":1,"protocol":"tcp"}],"networkMode":"bridge"}"#;
    const STATE: &str = r#"{"state":3,"pid":31312,"conmonPid":31302,"networkStatus":{"pnet":{"interfaces":{"eth0":{"subnets":[{"ipnet":"10.89.0.2/24","gateway":"10.89.0.1"}],"mac_address":"2e:de:eb:02:5f:8e"}},"dns_server_ips":["10.89.0.1"]}}}"#;

    #[test]
    fn reads_names_images_ports_and_netns_from_the_bolt_database() {
        let networks = inline(&[(
            0,
            b"pnet",
            br#"{"aliases":["b4a7a44461b2"],"interface_name":"eth0"}"#,
        )]);
        let ctr = inline(&[
            (0, b"config", CONFIG.as_bytes()),
            (1, b"networks", &networks),
            (
                0,
                b"netns",
                b"/tmp/pm/w/run/netns/netns-a535b493-fda6-5c8f-ae28-2bb81d0d557e",
            ),
            (0, b"state", STATE.as_bytes()),
        ]);
        let ctrs = inline(&[(
            1,
            b"b4a7a44461b283e6cb7ca37b7cdadb71ae33518c722c2bc1d05b4867c4932db1",
            &ctr,
        )]);
        let all = inline(&[(
            0,
            b"b4a7a44461b283e6cb7ca37b7cdadb71ae33518c722c2bc1d05b4867c4932db1",
            b"pbr",
        )]);
        let db = file(
            4096,
            [3, 2],
            3,
            &[leaf(3, &[(1, b"all-ctrs", &all), (1, b"ctr", &ctrs)])],
        );
        let got = from_db(&db).unwrap();
        assert_eq!(got.len(), 1);
        let c = &got[0];
        assert_eq!(c.label(), "podman/pbr (b4a7a44461b2)");
        assert_eq!(c.image.as_deref(), Some("localhost/nsnet-bb:latest"));
        assert_eq!((c.running, c.pid), (true, Some(31312)));
        assert_eq!(c.ports[0].to_string(), "127.0.0.1:18098->80/tcp");
        assert_eq!(
            c.netns_path.as_deref(),
            Some(std::path::Path::new(
                "/tmp/pm/w/run/netns/netns-a535b493-fda6-5c8f-ae28-2bb81d0d557e"
            ))
        );
        assert_eq!(
            c.networks,
            vec![Attached {
                network: "pnet".into(),
                address: Some("10.89.0.2/24".into()),
                gateway: Some("10.89.0.1".into())
            }]
        );
    }

    /// Podman 5's tables as libpod's `sqlite_state_internal.go` creates them (the two
    /// read, and the ones they reference).
    pub(crate) const PODMAN5_SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS DBConfig(ID INTEGER PRIMARY KEY NOT NULL, SchemaVersion INTEGER NOT NULL, OS TEXT NOT NULL, StaticDir TEXT NOT NULL, TmpDir TEXT NOT NULL, GraphRoot TEXT NOT NULL, RunRoot TEXT NOT NULL, GraphDriver TEXT NOT NULL, VolumeDir TEXT NOT NULL, CHECK (ID IN (1)));
        CREATE TABLE IF NOT EXISTS IDNamespace(ID TEXT PRIMARY KEY NOT NULL);
        CREATE TABLE IF NOT EXISTS ContainerConfig(ID TEXT PRIMARY KEY NOT NULL, Name TEXT UNIQUE NOT NULL, PodID TEXT, JSON TEXT NOT NULL, FOREIGN KEY (ID) REFERENCES IDNamespace(ID) DEFERRABLE INITIALLY DEFERRED, FOREIGN KEY (ID) REFERENCES ContainerState(ID) DEFERRABLE INITIALLY DEFERRED, FOREIGN KEY (PodID) REFERENCES PodConfig(ID));
        CREATE TABLE IF NOT EXISTS ContainerState(ID TEXT PRIMARY KEY NOT NULL, State INTEGER NOT NULL, ExitCode INTEGER, JSON TEXT NOT NULL, FOREIGN KEY (ID) REFERENCES ContainerConfig(ID) DEFERRABLE INITIALLY DEFERRED, CHECK (ExitCode BETWEEN -1 AND 255));
    ";

    #[test]
    fn reads_podman_5s_sqlite_state_read_only() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("db.sql");
        {
            let w = rusqlite::Connection::open(&db).unwrap();
            w.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
            w.execute_batch(PODMAN5_SCHEMA).unwrap();
            let id = "b4a7a44461b283e6cb7ca37b7cdadb71ae33518c722c2bc1d05b4867c4932db1";
            let cfg = CONFIG.replace(
                r#""networkMode":"bridge""#,
                r#""networkMode":"bridge","newNetworks":{"pnet":{"interface_name":"eth0"}}"#,
            );
            let st = STATE.replace(
                r#""pid":31312"#,
                r#""pid":31312,"netns":"/run/user/1000/netns/netns-1""#,
            );
            w.execute("INSERT INTO IDNamespace VALUES (?1)", [id])
                .unwrap();
            w.execute(
                "INSERT INTO ContainerConfig VALUES (?1, 'pbr', NULL, ?2)",
                [id, &cfg],
            )
            .unwrap();
            w.execute(
                "INSERT INTO ContainerState VALUES (?1, 3, 0, ?2)",
                [id, &st],
            )
            .unwrap();
        }
        let got = read(&Candidate {
            path: d.path().to_path_buf(),
            why: String::new(),
            via: None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(got.len(), 1);
        let c = &got[0];
        assert_eq!(c.label(), "podman/pbr (b4a7a44461b2)");
        assert_eq!(c.image.as_deref(), Some("localhost/nsnet-bb:latest"));
        assert_eq!((c.running, c.pid), (true, Some(31312)));
        assert_eq!(c.ports[0].to_string(), "127.0.0.1:18098->80/tcp");
        assert_eq!(
            c.netns_path.as_deref(),
            Some(std::path::Path::new("/run/user/1000/netns/netns-1"))
        );
        assert_eq!(c.networks[0].address.as_deref(), Some("10.89.0.2/24"));
        // Not a database at all: said, with the file's name.
        std::fs::write(&db, "not sqlite").unwrap();
        let _ = std::fs::remove_file(d.path().join("db.sql-wal"));
        let _ = std::fs::remove_file(d.path().join("db.sql-shm"));
        let e = read(&Candidate {
            path: d.path().to_path_buf(),
            why: String::new(),
            via: None,
        })
        .unwrap_err();
        assert!(e.starts_with(&format!("{}: ", db.display())), "{e}");
    }

    #[test]
    fn conmon_names_the_graph_root_podman_was_given() {
        let p = Proc {
            pid: 7,
            comm: "conmon".into(),
            cmdline: [
                "/usr/bin/conmon",
                "-n",
                "pweb",
                "--exit-command",
                "/usr/bin/podman",
                "--exit-command-arg",
                "--root",
                "--exit-command-arg",
                "/tmp/pm/storage",
                "--exit-command-arg",
                "--runroot",
            ]
            .map(String::from)
            .to_vec(),
            ..Proc::default()
        };
        let c = candidates(&p);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, PathBuf::from("/tmp/pm/storage"));
        assert_eq!(c[0].via, Some(7));
    }

    #[test]
    fn ranges_and_protocol_lists_expand() {
        let c: Config = serde_json::from_str(
            r#"{"id":"x","name":"y","newPortMappings":[{"host_ip":"","container_port":53,"host_port":5353,"range":2,"protocol":"tcp,udp"}]}"#,
        )
        .unwrap();
        let p: Vec<String> = ports(&c).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            p,
            [
                "0.0.0.0:5353->53/tcp",
                "0.0.0.0:5354->54/tcp",
                "0.0.0.0:5353->53/udp",
                "0.0.0.0:5354->54/udp"
            ]
        );
    }
}
