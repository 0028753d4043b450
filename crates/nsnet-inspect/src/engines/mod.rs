//! Container engines' own names for what `nsnet ns` finds: each engine's on-disk state,
//! read as files, without root and without asking any daemon.
//!
//! | engine | where | what it gives |
//! |---|---|---|
//! | Docker (rootless 20.10) | `DATA_ROOT/containers/*/config.v2.json`, `hostconfig.json` | `Name`, `Config.Image`, `State.Running`/`Pid`, `NetworkSettings.Networks` (address, gateway), `SandboxKey`; `PortBindings` |
//! | Podman 4, 5 | `GRAPHROOT/libpod/bolt_state.db` (bbolt, [`bolt`]), else `GRAPHROOT/db.sql` (sqlite) | per container `config` (name, `rootfsImageName`, `newPortMappings`, `networkMode`), `state` (`pid`, `networkStatus`), `netns` (the file under `$XDG_RUNTIME_DIR/netns/`) |
//! | nerdctl 2 (rootless containerd) | `$XDG_DATA_HOME/nerdctl/<ADDRHASH>/` (`etchosts/<NS>/<ID>/meta.json`, `containers/<NS>/<ID>/ports.json`), containerd's `meta.db` (`nerdctl.rs`) | name, the CNI result (address, gateway, the init PID in its sandbox path), ports, image and `nerdctl/*` labels |
//! | nsnet | `$XDG_DATA_HOME/nsnet/containers/*/` (`nsnet_container::store`) | name, image, `-p`, state pid, the bridge attachment |
//!
//! Where the state is: each engine's default for a user (`$XDG_DATA_HOME`, else
//! `$HOME/.local/share`) for the inspecting user, and for every readable process that is
//! one of the engine's own (dockerd's `--data-root`/`daemon.json`/environment, conmon's
//! `--exit-command-arg --root`, nsnet's environment), so that root sees every user's
//! engines and a user sees a daemon started with another data root. Podman 4.3 writes no
//! name into the OCI `config.json` of its containers (only `io.podman.annotations.*` flags)
//! and containers/storage's `containers.json` has names but no ports, so its bbolt
//! database (Podman 5: its sqlite one) is the one source that has everything.
//!
//! What cannot be read is said once per source (`Catalog::sources[].error`), never guessed:
//! a data root of another user's (rootless: permission denied), a damaged file.

pub mod bolt;
mod docker;
mod nerdctl;
mod nsnet;
mod podman;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::procscan::Scan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Docker,
    Podman,
    Nerdctl,
    Nsnet,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
            Engine::Nerdctl => "nerdctl",
            Engine::Nsnet => "nsnet",
        }
    }
}

/// A published port, as the engine recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// `tcp`, `udp` (or `sctp`).
    pub proto: String,
    /// Empty for every address.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
}

impl std::fmt::Display for Published {
    /// Docker's own form: `127.0.0.1:8080->80/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        };
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

/// A network a container is attached to, with the address the engine gave it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attached {
    pub network: String,
    pub address: Option<String>,
    pub gateway: Option<String>,
}

/// One container as its engine keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub engine: Engine,
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    pub running: bool,
    /// Its init process, as the engine recorded it (checked against the process table by
    /// the caller before it is trusted).
    pub pid: Option<i32>,
    /// The netns file the engine made for it (Podman, Docker's `SandboxKey`).
    pub netns_path: Option<PathBuf>,
    /// `bridge`, `slirp4netns`, `host`, a network name…
    pub network_mode: Option<String>,
    pub networks: Vec<Attached>,
    pub ports: Vec<Published>,
    /// The networks it is on that are `--internal` (no route out), as the engine recorded
    /// them (nsnet's network files).
    pub internal_networks: Vec<String>,
}

impl Container {
    /// `docker/web (de45fb625f78)`.
    pub fn label(&self) -> String {
        let short: String = self.id.chars().take(12).collect();
        format!("{}/{} ({short})", self.engine.name(), self.name)
    }
}

/// A place an engine's state was looked for.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub engine: Engine,
    pub path: PathBuf,
    /// Why it was looked at: `default for uid N`, `dockerd 4242 --data-root`, …
    pub why: String,
    pub containers: usize,
    /// Why it could not be read (it is not listed when it simply does not exist).
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Catalog {
    pub containers: Vec<Container>,
    pub sources: Vec<Source>,
}

impl Catalog {
    /// Every container running with init process `pid`.
    pub fn by_pid(&self, pid: i32) -> impl Iterator<Item = &Container> {
        self.containers
            .iter()
            .filter(move |c| c.running && c.pid == Some(pid))
    }

    /// A container by `engine/name`, name, or id prefix (at least 4 characters), among the
    /// running ones; more than one match is an error naming them.
    pub fn find(&self, key: &str) -> Result<Option<&Container>, String> {
        let (engine, name) = match key.split_once('/') {
            Some((e, n)) => (Some(e), n),
            None => (None, key),
        };
        let hits: Vec<&Container> = self
            .containers
            .iter()
            .filter(|c| c.running)
            .filter(|c| engine.is_none_or(|e| e == c.engine.name()))
            .filter(|c| c.name == name || (name.len() >= 4 && c.id.starts_with(name)))
            .collect();
        match hits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(format!(
                "{key} names more than one container: {}",
                many.iter()
                    .map(|c| c.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Reads a file as process `via` sees it (through its root: a rootless daemon may run in
/// a mount namespace of its own), else as we see it.
pub(crate) fn read_via(via: Option<i32>, path: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(pid) = via {
        let rel = path.strip_prefix("/").unwrap_or(path);
        if let Ok(b) = std::fs::read(Path::new(&format!("/proc/{pid}/root")).join(rel)) {
            return Ok(b);
        }
    }
    std::fs::read(path)
}

/// A candidate location: path, why, and a process that sees it.
pub(crate) struct Candidate {
    pub path: PathBuf,
    pub why: String,
    pub via: Option<i32>,
}

fn own_data_home() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })
}

/// The value of `--flag VALUE` or `--flag=VALUE` in an argv.
pub(crate) fn flag<'a>(argv: &'a [String], names: &[&str]) -> Option<&'a str> {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        for n in names {
            if a == n {
                return it.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(n).and_then(|r| r.strip_prefix('=')) {
                return Some(v);
            }
        }
    }
    None
}

/// Reads every engine's state reachable from here.
pub fn read(scan: &Scan) -> Catalog {
    let me = nix::unistd::geteuid().as_raw();
    let own = own_data_home();
    let mut cat = Catalog::default();
    let mut seen: BTreeSet<(Engine, PathBuf)> = BTreeSet::new();
    let mut add = |cat: &mut Catalog, engine: Engine, c: Candidate| {
        let key = std::fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone());
        if !seen.insert((engine, key)) {
            return;
        }
        let got = match engine {
            Engine::Docker => docker::read(&c),
            Engine::Podman => podman::read(&c),
            Engine::Nerdctl => nerdctl::read(&c),
            Engine::Nsnet => nsnet::read(&c),
        };
        match got {
            Ok(None) => {}
            Ok(Some(list)) => {
                cat.sources.push(Source {
                    engine,
                    path: c.path,
                    why: c.why,
                    containers: list.len(),
                    error: None,
                });
                cat.containers.extend(list);
            }
            Err(e) => cat.sources.push(Source {
                engine,
                path: c.path,
                why: c.why,
                containers: 0,
                error: Some(e),
            }),
        }
    };
    if let Some(h) = &own {
        let why = format!("the default for uid {me}");
        for (engine, path) in [
            (Engine::Docker, h.join("docker")),
            (Engine::Podman, h.join("containers/storage")),
            (Engine::Nerdctl, h.join("nerdctl")),
            (Engine::Nsnet, h.join("nsnet/containers")),
        ] {
            add(
                &mut cat,
                engine,
                Candidate {
                    path,
                    why: why.clone(),
                    via: None,
                },
            );
        }
    }
    for p in &scan.procs {
        for (engine, c) in docker::candidates(p)
            .into_iter()
            .map(|c| (Engine::Docker, c))
            .chain(
                podman::candidates(p)
                    .into_iter()
                    .map(|c| (Engine::Podman, c)),
            )
            .chain(
                nerdctl::candidates(p)
                    .into_iter()
                    .map(|c| (Engine::Nerdctl, c)),
            )
            .chain(nsnet::candidates(p).into_iter().map(|c| (Engine::Nsnet, c)))
        {
            add(&mut cat, engine, c);
        }
    }
    cat
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(engine: Engine, name: &str, id: &str) -> Container {
        Container {
            engine,
            id: id.into(),
            name: name.into(),
            image: None,
            running: true,
            pid: Some(1),
            netns_path: None,
            network_mode: None,
            networks: Vec::new(),
            ports: Vec::new(),
            internal_networks: Vec::new(),
        }
    }

    #[test]
    fn find_by_engine_name_id_prefix_and_ambiguity() {
        let cat = Catalog {
            containers: vec![
                ctr(Engine::Docker, "web", "de45fb625f78aaaa"),
                ctr(Engine::Podman, "web", "6681d8cd150f"),
                ctr(Engine::Podman, "db", "b4a7a44461b2"),
            ],
            sources: Vec::new(),
        };
        assert_eq!(cat.find("podman/web").unwrap().unwrap().id, "6681d8cd150f");
        assert_eq!(cat.find("db").unwrap().unwrap().engine, Engine::Podman);
        assert_eq!(cat.find("de45").unwrap().unwrap().name, "web");
        assert!(cat.find("nope").unwrap().is_none());
        assert!(cat.find("de4").unwrap().is_none(), "ids need 4 characters");
        let e = cat.find("web").unwrap_err();
        assert_eq!(
            e,
            "web names more than one container: docker/web (de45fb625f78), podman/web (6681d8cd150f)"
        );
    }

    #[test]
    fn published_ports_print_as_docker_does() {
        let p = Published {
            proto: "tcp".into(),
            host_ip: "127.0.0.1".into(),
            host_port: 18096,
            container_port: 80,
        };
        assert_eq!(p.to_string(), "127.0.0.1:18096->80/tcp");
        let p = Published {
            host_ip: String::new(),
            ..p
        };
        assert_eq!(p.to_string(), "0.0.0.0:18096->80/tcp");
    }

    #[test]
    fn flags_in_both_forms() {
        let argv: Vec<String> = ["dockerd", "--data-root", "/d", "--x=1"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag(&argv, &["--data-root", "-g"]), Some("/d"));
        assert_eq!(flag(&argv, &["--x"]), Some("1"));
        assert_eq!(flag(&argv, &["--y"]), None);
    }
}
