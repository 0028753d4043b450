//! Container records on disk: `$XDG_DATA_HOME/nsnet/containers/<id>/` holds `container.json`
//! (what was asked for, written once), `state.json` (status, PIDs, exit code: written by the
//! front end and the monitor), `network.json` (written by the createRuntime hook, removed by
//! postStop), the bundle, the generated `/etc` files and `container.log`. Names are reserved by
//! symlinks in `containers/.names/`, which `symlink(2)` creates atomically, so two concurrent
//! `run --name web` cannot both win.
//!
//! Crash consistency: the status on disk is a claim that is checked on every read. A
//! "running" container whose process is gone (or whose PID now belongs to another process:
//! the start time is recorded too) reads as exited; its `network.json` still says what `rm`
//! must clean.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::publish::Publish;
use crate::{Error, write_atomic};
pub use nsnet_bridge::Attachment;

/// What was asked for (`container.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub id: String,
    pub name: String,
    /// The image as given (a path), or `--rootfs DIR`.
    pub image: String,
    pub created: f64,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub hostname: String,
    /// `bridge`, `none`, `host` or a network name.
    pub network: String,
    pub publish: Vec<Publish>,
    /// State directory of the nsnet instance the container runs in.
    pub instance: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    pub rootfs: PathBuf,
    pub auto_remove: bool,
    pub detached: bool,
    pub tty: bool,
    /// `--bypass`: the monitor runs the socket bypass service ([`crate::bypass`]).
    #[serde(default)]
    pub bypass: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// The runtime status (`state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The container's init process, in the PID namespace nsnet runs in.
    pub pid: i32,
    /// Its start time (field 22 of /proc/PID/stat), against PID reuse.
    pub pid_start: u64,
    /// The process that waits for runc (the monitor, or the foreground front end).
    pub monitor_pid: i32,
    pub exit_code: Option<i32>,
    pub started: f64,
    pub finished: f64,
}

/// What the createRuntime hook set up (`network.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetState {
    /// The container's netns as the hook saw it (`/proc/PID/ns/net`).
    pub sandbox: String,
    pub attachment: Option<Attachment>,
    /// Published ports: the port driver's id for each.
    pub ports: Vec<(u64, Publish)>,
}

/// A container: its directory and records.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub config: Config,
    pub state: State,
    pub net: Option<NetState>,
}

/// Field 22 (starttime) of /proc/PID/stat, or None when the process is gone or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") || f.first() == Some(&"X") {
        return None;
    }
    f.get(19)?.parse().ok()
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, Error> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::Invalid(format!(
                "{} is damaged ({e}); remove the container with `nsnet container rm -f`",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            what: format!("read {}", path.display()),
            source: e,
        }),
    }
}

impl Container {
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Whether the recorded init process still runs.
    pub fn alive(&self) -> bool {
        self.state.pid > 0 && start_time(self.state.pid) == Some(self.state.pid_start)
    }

    /// The status after checking the claim on disk against the process table.
    pub fn status(&self) -> Status {
        match self.state.status {
            Status::Running if !self.alive() => Status::Exited,
            Status::Created
                if self.state.monitor_pid > 0 && start_time(self.state.monitor_pid).is_none() =>
            {
                Status::Exited
            }
            s => s,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("container.log")
    }

    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    pub fn save_state(&self) -> Result<(), Error> {
        write_atomic(
            &self.dir.join("state.json"),
            &serde_json::to_vec_pretty(&self.state).expect("serializes"),
        )
    }

    /// Re-reads `state.json` and `network.json` (written by other processes).
    pub fn reload(&mut self) -> Result<(), Error> {
        self.state = read_json(&self.dir.join("state.json"))?.unwrap_or_default();
        self.net = read_json(&self.dir.join("network.json"))?;
        Ok(())
    }
}

/// Saves what the createRuntime hook set up, in the container directory `dir`.
pub fn save_net(dir: &Path, net: &NetState) -> Result<(), Error> {
    write_atomic(
        &dir.join("network.json"),
        &serde_json::to_vec_pretty(net).expect("serializes"),
    )
}

pub fn load_net(dir: &Path) -> Result<Option<NetState>, Error> {
    read_json(&dir.join("network.json"))
}

pub fn clear_net(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_file(dir.join("network.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            what: format!("remove {}", dir.join("network.json").display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The containers directory.
pub struct Store {
    pub root: PathBuf,
}

/// A new random 64-hex-digit container id.
pub fn new_id() -> Result<String, Error> {
    let mut b = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").map_err(Error::io("open /dev/urandom"))?;
    std::io::Read::read_exact(&mut f, &mut b).map_err(Error::io("read /dev/urandom"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        && name.len() <= 128
}

impl Store {
    pub fn default_location() -> Result<Store, Error> {
        Ok(Store {
            root: crate::data_dir()?.join("containers"),
        })
    }

    fn names(&self) -> PathBuf {
        self.root.join(".names")
    }

    /// Creates the directory and records of a new container; reserves its name.
    pub fn create(&self, config: Config) -> Result<Container, Error> {
        if !valid_name(&config.name) {
            return Err(Error::Invalid(format!(
                "invalid container name {:?}: use letters, digits, '_', '.', '-' (starting with a letter or digit)",
                config.name
            )));
        }
        std::fs::create_dir_all(self.names())
            .map_err(Error::io(format!("create {}", self.names().display())))?;
        let dir = self.root.join(&config.id);
        std::fs::create_dir(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        if let Err(e) = std::os::unix::fs::symlink(&config.id, self.names().join(&config.name)) {
            let _ = std::fs::remove_dir(&dir);
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Invalid(format!(
                    "the container name {:?} is already in use; remove that container or choose another --name",
                    config.name
                ))
            } else {
                Error::Io {
                    what: format!("reserve the name {}", config.name),
                    source: e,
                }
            });
        }
        let c = Container {
            dir,
            config,
            state: State::default(),
            net: None,
        };
        let written = write_atomic(
            &c.dir.join("container.json"),
            &serde_json::to_vec_pretty(&c.config).expect("serializes"),
        )
        .and_then(|()| c.save_state());
        if let Err(e) = written {
            let _ = self.remove(&c);
            return Err(e);
        }
        Ok(c)
    }

    pub fn load(&self, id: &str) -> Result<Container, Error> {
        let dir = self.root.join(id);
        let config: Config = read_json(&dir.join("container.json"))?
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))?;
        let mut c = Container {
            dir,
            config,
            state: State::default(),
            net: None,
        };
        c.reload()?;
        Ok(c)
    }

    /// All containers, oldest first (a half-created directory without `container.json` is
    /// skipped).
    pub fn list(&self) -> Result<Vec<Container>, Error> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io {
                    what: format!("read {}", self.root.display()),
                    source: e,
                });
            }
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.load(&name) {
                Ok(c) => out.push(c),
                Err(Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.config.created.total_cmp(&b.config.created));
        Ok(out)
    }

    /// By name, full id, or unique id prefix.
    pub fn find(&self, key: &str) -> Result<Container, Error> {
        if key.is_empty() {
            return Err(Error::NoSuchContainer(String::new()));
        }
        if let Ok(id) = std::fs::read_link(self.names().join(key))
            && let Ok(c) = self.load(&id.to_string_lossy())
        {
            return Ok(c);
        }
        let all = self.list()?;
        let matches: Vec<Container> = all
            .into_iter()
            .filter(|c| c.config.id.starts_with(key))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one")),
            0 => Err(Error::NoSuchContainer(key.to_string())),
            n => Err(Error::Invalid(format!(
                "{n} containers have ids starting with {key:?}; give more of the id"
            ))),
        }
    }

    /// Removes the records, the directory and the name (the rootfs inside is removed too, so
    /// the caller must be able to: rootless, from inside the instance's user namespace). The
    /// overlay of a `--rootfs` container is unmounted first, never removed through.
    pub fn remove(&self, c: &Container) -> Result<(), Error> {
        crate::rootfs::release(&c.dir)?;
        let link = self.names().join(&c.config.name);
        if std::fs::read_link(&link).is_ok_and(|t| t.as_os_str() == c.config.id.as_str()) {
            let _ = std::fs::remove_file(&link);
        }
        match std::fs::remove_dir_all(&c.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                what: format!("remove {}", c.dir.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, name: &str) -> Config {
        Config {
            id: id.into(),
            name: name.into(),
            image: "img".into(),
            created: crate::time::now(),
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/".into(),
            hostname: "h".into(),
            network: "bridge".into(),
            publish: vec![],
            instance: "/s".into(),
            runtime: "runc".into(),
            runtime_root: "/r".into(),
            rootfs: "/rootfs".into(),
            auto_remove: false,
            detached: true,
            tty: false,
            bypass: false,
        }
    }

    #[test]
    fn names_are_unique_and_found_by_prefix() {
        let t = tempfile::tempdir().unwrap();
        let s = Store {
            root: t.path().join("containers"),
        };
        let a = s.create(config("abc123", "web")).unwrap();
        assert!(s.create(config("abd456", "web")).is_err());
        assert!(!t.path().join("containers/abd456").exists());
        s.create(config("abd456", "db")).unwrap();
        assert!(s.create(config("x1", "-bad")).is_err());
        assert_eq!(s.find("web").unwrap().id(), "abc123");
        assert_eq!(s.find("abd").unwrap().id(), "abd456");
        assert!(matches!(s.find("ab"), Err(Error::Invalid(_))));
        assert!(matches!(s.find("zz"), Err(Error::NoSuchContainer(_))));
        assert_eq!(s.list().unwrap().len(), 2);
        s.remove(&a).unwrap();
        assert!(s.find("web").is_err());
        s.create(config("abc789", "web")).unwrap();
    }

    #[test]
    fn a_dead_running_container_reads_as_exited() {
        let t = tempfile::tempdir().unwrap();
        let s = Store {
            root: t.path().to_path_buf(),
        };
        let mut c = s.create(config("dead", "dead")).unwrap();
        c.state.status = Status::Running;
        c.state.pid = std::process::id() as i32;
        c.state.pid_start = start_time(c.state.pid).unwrap();
        assert_eq!(c.status(), Status::Running);
        c.state.pid_start += 1;
        assert_eq!(c.status(), Status::Exited);
    }
}
