//! Docker's containers from its data root: `containers/<id>/config.v2.json` (the container
//! as the daemon last saved it: `Name` with Docker's leading slash, `Config.Image` as the
//! user wrote it, `State.Running` and `State.Pid` — a host PID: `dockerd-rootless.sh`
//! starts RootlessKit without a PID namespace — and `NetworkSettings`) and
//! `containers/<id>/hostconfig.json` (`PortBindings`, `NetworkMode`). Docker 20.10 writes
//! config.v2.json mode 0600 and the directory 0710: only its user (and root) reads them.
//!
//! Where the data root is: dockerd's `--data-root` (or the old `-g`), else `data-root` in
//! its `daemon.json` (`--config-file`, else rootless `$XDG_CONFIG_HOME/docker/daemon.json`,
//! else `/etc/docker/daemon.json`), else rootless (RootlessKit's state directory in its
//! environment) `$XDG_DATA_HOME/docker`, else `/var/lib/docker` — dockerd's own order.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Attached, Candidate, Container, Engine, Published, flag, read_via};
use crate::procscan::Proc;

pub(super) fn candidates(p: &Proc) -> Vec<Candidate> {
    if p.comm != "dockerd" {
        return Vec::new();
    }
    let via = Some(p.pid);
    let rootless = p.state_dir.is_some();
    let (path, why) = if let Some(d) = flag(&p.cmdline, &["--data-root", "-g"]) {
        (PathBuf::from(d), format!("dockerd {} --data-root", p.pid))
    } else if let Some(d) = daemon_json_root(p, rootless) {
        d
    } else if rootless {
        match &p.data_home {
            Some(h) => (
                h.join("docker"),
                format!("dockerd {} (rootless: $XDG_DATA_HOME/docker)", p.pid),
            ),
            None => return Vec::new(),
        }
    } else {
        (
            PathBuf::from("/var/lib/docker"),
            format!("dockerd {} (the default data root)", p.pid),
        )
    };
    vec![Candidate { path, why, via }]
}

fn daemon_json_root(p: &Proc, rootless: bool) -> Option<(PathBuf, String)> {
    let file = match flag(&p.cmdline, &["--config-file"]) {
        Some(f) => PathBuf::from(f),
        None if rootless => p.config_home.as_ref()?.join("docker/daemon.json"),
        None => PathBuf::from("/etc/docker/daemon.json"),
    };
    let text = read_via(Some(p.pid), &file).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let root = v.get("data-root")?.as_str()?;
    Some((
        PathBuf::from(root),
        format!("dockerd {} data-root in {}", p.pid, file.display()),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigV2 {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    config: Option<Cfg>,
    state: Option<St>,
    network_settings: Option<NetSettings>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Cfg {
    image: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct St {
    running: bool,
    pid: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetSettings {
    sandbox_key: Option<String>,
    #[serde(default)]
    networks: std::collections::BTreeMap<String, Endpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Endpoint {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
    #[serde(rename = "IPPrefixLen", default)]
    ip_prefix_len: u8,
    #[serde(default)]
    gateway: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfig {
    #[serde(default)]
    port_bindings: Option<std::collections::BTreeMap<String, Option<Vec<Binding>>>>,
    network_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Binding {
    #[serde(default)]
    host_ip: String,
    #[serde(default)]
    host_port: String,
}

/// `"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18096"}]` → published ports (a host
/// port range `8000-8001` binds each in turn, as Docker does).
fn ports(bindings: &std::collections::BTreeMap<String, Option<Vec<Binding>>>) -> Vec<Published> {
    let mut out = Vec::new();
    for (key, list) in bindings {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let (c_lo, c_hi) = range(port);
        for b in list.iter().flatten() {
            let (h_lo, _) = range(&b.host_port);
            let Some(c_lo) = c_lo else { continue };
            for (k, c) in (c_lo..=c_hi.unwrap_or(c_lo)).enumerate() {
                out.push(Published {
                    proto: proto.to_string(),
                    host_ip: b.host_ip.clone(),
                    // An empty HostPort is a port the daemon chose: not recorded here.
                    host_port: h_lo.map(|h| h + k as u16).unwrap_or(0),
                    container_port: c,
                });
            }
        }
    }
    out
}

fn range(s: &str) -> (Option<u16>, Option<u16>) {
    match s.split_once('-') {
        Some((a, b)) => (a.parse().ok(), b.parse().ok()),
        None => (s.parse().ok(), None),
    }
}

/// One container directory, or None when it is not one (no config.v2.json).
fn container(dir: &Path, via: Option<i32>) -> Result<Option<Container>, String> {
    let cfg_path = dir.join("config.v2.json");
    let bytes = match read_via(via, &cfg_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", cfg_path.display())),
    };
    let c: ConfigV2 = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not Docker's config.v2.json: {e}", cfg_path.display()))?;
    let hc: Option<HostConfig> = read_via(via, &dir.join("hostconfig.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let (running, pid) = match &c.state {
        Some(s) => (s.running, (s.pid > 0).then_some(s.pid)),
        None => (false, None),
    };
    let ns = c.network_settings.as_ref();
    Ok(Some(Container {
        internal_networks: Vec::new(),
        engine: Engine::Docker,
        id: c.id,
        name: c.name.trim_start_matches('/').to_string(),
        image: c.config.and_then(|c| c.image),
        running,
        pid,
        netns_path: ns
            .and_then(|n| n.sandbox_key.as_deref())
            .filter(|k| !k.is_empty())
            .map(PathBuf::from),
        network_mode: hc.as_ref().and_then(|h| h.network_mode.clone()),
        networks: ns
            .map(|n| {
                n.networks
                    .iter()
                    .map(|(name, e)| Attached {
                        network: name.clone(),
                        address: (!e.ip_address.is_empty())
                            .then(|| format!("{}/{}", e.ip_address, e.ip_prefix_len)),
                        gateway: (!e.gateway.is_empty()).then(|| e.gateway.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ports: hc
            .as_ref()
            .and_then(|h| h.port_bindings.as_ref())
            .map(ports)
            .unwrap_or_default(),
    }))
}

/// Every container under `c.path/containers`; None when there is no such directory.
pub(super) fn read(c: &Candidate) -> Result<Option<Vec<Container>>, String> {
    let dir = c.path.join("containers");
    let through = c.via.map(|pid| {
        Path::new(&format!("/proc/{pid}/root")).join(dir.strip_prefix("/").unwrap_or(&dir))
    });
    let listing = through
        .as_ref()
        .and_then(|t| std::fs::read_dir(t).ok())
        .map(Ok)
        .unwrap_or_else(|| std::fs::read_dir(&dir));
    let rd = match listing {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        if let Some(ctr) = container(&dir.join(&n), c.via)? {
            out.push(ctr);
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two files as rootless Docker 20.10.24 (Debian's docker.io) wrote them for
    /// `docker run -d --name web -p 127.0.0.1:18096:80 nsnet-bb httpd …` (abridged to the
    /// fields read; the rest of each file is ignored).
    const CONFIG: &str = r#"{"StreamConfig":{},"State":{"Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"RemovalInProgress":false,"Dead":false,"Pid":30001,"ExitCode":0,"Error":"","StartedAt":"2026-12-02T03:58:25.565855223Z","FinishedAt":"0001-01-01T00:00:00Z","Health":null},"ID":"de45fb625f7857f87bbb1d52855e1a7681046952e93b3581b8b11a7f6c57f05d","Created":"2026-12-02T03:58:25.39Z","Managed":false,"Path":"httpd","Args":["-f","-p","80","-h","/www"],"Config":{"Hostname":"de45fb625f78","ExposedPorts":{"80/tcp":{}},"Image":"nsnet-bb"},"Image":"sha256:3545591b86a6888b7cf7e0f1200a8e1ea7d025ecc439b98a5675111fcddc494b","NetworkSettings":{"Bridge":"","SandboxID":"f6d0115cae76077f9f9715c769a35ae4f960663d84b3bede02c13d312de0ea05","HairpinMode":false,"Networks":{"bridge":{"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"0fb75a7af75c","EndpointID":"658e70f3ec2d","Gateway":"172.17.0.1","IPAddress":"172.17.0.2","IPPrefixLen":16,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"02:42:ac:11:00:02","DriverOpts":null,"IPAMOperational":false}},"Service":null,"Ports":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18096"}]},"SandboxKey":"/tmp/dk/w/run/docker/netns/f6d0115cae76","SecondaryIPAddresses":null,"SecondaryIPv6Addresses":null,"IsAnonymousEndpoint":false,"HasSwarmEndpoint":false},"Name":"/web","Driver":"overlay2"}"#;
    const HOSTCONFIG: &str = r#"{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"json-file","Config":{}},"NetworkMode":"default","PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18096"}]},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false}"#;

    #[test]
    fn reads_a_docker_20_10_container_directory() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("containers/de45fb625f78");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("config.v2.json"), CONFIG).unwrap();
        std::fs::write(c.join("hostconfig.json"), HOSTCONFIG).unwrap();
        // A directory without config.v2.json is not a container.
        std::fs::create_dir_all(d.path().join("containers/partial")).unwrap();
        let got = read(&Candidate {
            path: d.path().to_path_buf(),
            why: String::new(),
            via: None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(got.len(), 1);
        let w = &got[0];
        assert_eq!(w.label(), "docker/web (de45fb625f78)");
        assert_eq!(w.image.as_deref(), Some("nsnet-bb"));
        assert_eq!((w.running, w.pid), (true, Some(30001)));
        assert_eq!(w.ports.len(), 1);
        assert_eq!(w.ports[0].to_string(), "127.0.0.1:18096->80/tcp");
        assert_eq!(
            w.networks,
            vec![Attached {
                network: "bridge".into(),
                address: Some("172.17.0.2/16".into()),
                gateway: Some("172.17.0.1".into()),
            }]
        );
        assert_eq!(w.network_mode.as_deref(), Some("default"));
        assert_eq!(
            w.netns_path.as_deref(),
            Some(Path::new("/tmp/dk/w/run/docker/netns/f6d0115cae76"))
        );
    }

    #[test]
    fn a_missing_root_is_nothing_and_a_damaged_file_is_said() {
        let d = tempfile::tempdir().unwrap();
        let cand = Candidate {
            path: d.path().join("nope"),
            why: String::new(),
            via: None,
        };
        assert!(read(&cand).unwrap().is_none());
        let c = d.path().join("containers/x");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("config.v2.json"), "{").unwrap();
        let e = read(&Candidate {
            path: d.path().to_path_buf(),
            why: String::new(),
            via: None,
        })
        .unwrap_err();
        assert!(e.contains("not Docker's config.v2.json"), "{e}");
    }

    #[test]
    fn port_ranges_and_daemon_chosen_ports() {
        let b: std::collections::BTreeMap<String, Option<Vec<Binding>>> = serde_json::from_str(
            r#"{"80-81/tcp":[{"HostIp":"","HostPort":"8000-8001"}],"53/udp":[{"HostIp":"","HostPort":""}],"9/tcp":null}"#,
        )
        .unwrap();
        let p: Vec<String> = ports(&b).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            p,
            [
                "0.0.0.0:0->53/udp",
                "0.0.0.0:8000->80/tcp",
                "0.0.0.0:8001->81/tcp"
            ]
        );
    }
}
