//! `nsnet setup docker|podman|nerdctl [--undo]`: switch a container client to nsnet, and back.
//!
//! Each client finds RootlessKit or slirp4netns its own way, so each gets links named after
//! nsnet's personalities in a bin directory of the user's (`~/.local/bin` by default) and one
//! configuration file of its own, owned by nsnet:
//!
//! - **Docker** (rootless, `dockerd-rootless.sh` run by the systemd user unit `docker.service`):
//!   the script runs the first `docker-rootlesskit` or `rootlesskit` on `PATH` with
//!   `--net=$DOCKERD_ROOTLESS_ROOTLESSKIT_NET --mtu=$..._MTU --port-driver=$..._PORT_DRIVER`
//!   and passes the network name through unchecked. The drop-in
//!   `~/.config/systemd/user/docker.service.d/nsnet.conf` therefore puts the bin directory
//!   first on the unit's `PATH` (systemd does not expand `$PATH`, so the unit's own `PATH` — or
//!   this shell's when there is no unit yet — is written out after it) and selects nsnet's
//!   in-process network, `builtin`, with its MTU (the script defaults the MTU to 1500 for any
//!   network it did not pick itself) and the builtin port driver. A `rootlesskit` that is not
//!   nsnet would refuse `--net=builtin` loudly rather than run a different network quietly.
//! - **nerdctl** (`containerd-rootless.sh`, unit `containerd.service`): the same with the
//!   `CONTAINERD_ROOTLESS_ROOTLESSKIT_*` variables.
//! - **Podman** 5 finds `slirp4netns` and `pasta` through `helper_binaries_dir` before
//!   `PATH`; Podman 4 takes slirp4netns from `network_cmd_path` (else `PATH`), so both are
//!   set. The setting goes in the drop-in
//!   `~/.config/containers/containers.conf.d/nsnet.conf` rather than in `containers.conf`:
//!   drop-ins are read after it and override only the keys they set, so the user's file is
//!   never rewritten, and creating a `containers.conf` where none existed would make current
//!   Podman skip `/etc/containers/containers.conf`. The list keeps Podman's default
//!   directories (conmon, netavark… are found there) and any the user configured.
//!
//! What setup did is recorded in `$XDG_DATA_HOME/nsnet/setup/CLIENT.json`; `--undo` removes
//! exactly that — the links it made, the file it wrote, the directories it created if empty —
//! and nothing that was there before. Nothing outside the user's home is written.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nsnet_ns::check::{Finding, Status};
use serde::{Deserialize, Serialize};

mod render;
use render::{header, render_config};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    Docker,
    Podman,
    Nerdctl,
}

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The client to switch to nsnet
    #[arg(value_enum)]
    client: Client,
    /// Undo what an earlier `nsnet setup CLIENT` did, exactly
    #[arg(long)]
    undo: bool,
    /// Where to link nsnet's personalities (default ~/.local/bin; must be inside HOME)
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

const ALL: [Client; 3] = [Client::Docker, Client::Podman, Client::Nerdctl];

/// The personalities nsnet has today that Podman looks up; `pasta` and `pesto` join them
/// when nsnet provides those personalities.
const PODMAN_LINKS: &[&str] = &["slirp4netns", "pasta", "pesto"];

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Docker => "docker",
            Client::Podman => "podman",
            Client::Nerdctl => "nerdctl",
        }
    }

    /// The program whose presence means the rootless client is installed.
    fn program(self) -> &'static str {
        match self {
            Client::Docker => "dockerd",
            Client::Podman => "podman",
            Client::Nerdctl => "nerdctl",
        }
    }

    fn links(self) -> &'static [&'static str] {
        match self {
            // dockerd-rootless.sh prefers docker-rootlesskit to rootlesskit anywhere on PATH.
            Client::Docker => &["docker-rootlesskit", "rootlesskit", "rootlessctl"],
            Client::Nerdctl => &["rootlesskit", "rootlessctl"],
            Client::Podman => PODMAN_LINKS,
        }
    }

    /// The systemd user unit that runs the rootless daemon, for the clients that have one.
    fn unit(self) -> Option<&'static str> {
        match self {
            Client::Docker => Some("docker.service"),
            Client::Nerdctl => Some("containerd.service"),
            Client::Podman => None,
        }
    }

    fn env_prefix(self) -> &'static str {
        match self {
            Client::Docker => "DOCKERD_ROOTLESS_ROOTLESSKIT",
            _ => "CONTAINERD_ROOTLESS_ROOTLESSKIT",
        }
    }

    fn config_file(self, env: &Env) -> PathBuf {
        match self.unit() {
            Some(unit) => env
                .config_home
                .join("systemd/user")
                .join(format!("{unit}.d"))
                .join("nsnet.conf"),
            None => env
                .config_home
                .join("containers/containers.conf.d/nsnet.conf"),
        }
    }
}

/// The user's directories and search path, from the environment.
pub struct Env {
    pub home: PathBuf,
    pub config_home: PathBuf,
    pub data_home: PathBuf,
    pub path: String,
}

impl Env {
    pub fn from_process() -> Result<Env> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .context("HOME is not set to an absolute path")?;
        let xdg = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(default))
        };
        Ok(Env {
            config_home: xdg("XDG_CONFIG_HOME", ".config"),
            data_home: xdg("XDG_DATA_HOME", ".local/share"),
            path: std::env::var("PATH").unwrap_or_else(|_| nsnet_ns::check::DEFAULT_PATH.into()),
            home,
        })
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        self.path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(program))
            .find(|p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }

    fn record_file(&self, client: Client) -> PathBuf {
        self.data_home
            .join("nsnet/setup")
            .join(format!("{}.json", client.name()))
    }
}

/// What one `nsnet setup CLIENT` changed: exactly what `--undo` takes back.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    exe: PathBuf,
    bin_dir: PathBuf,
    /// Links created (each pointing at `exe`); links that were already there are not listed.
    links: Vec<PathBuf>,
    config: PathBuf,
    /// Directories created, outermost first.
    dirs: Vec<PathBuf>,
}

/// The nsnet executable, symlinks resolved (what the links point at).
fn own_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find nsnet's own executable")?;
    Ok(std::fs::canonicalize(&exe).unwrap_or(exe))
}

fn points_at(link: &Path, exe: &Path) -> bool {
    std::fs::read_link(link).is_ok_and(|t| t == exe)
}

/// Creates `dir` and its missing parents, listing the ones it created (outermost first).
fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    for m in missing.into_iter().rev() {
        std::fs::create_dir(&m).with_context(|| format!("cannot create {}", m.display()))?;
        created.push(m);
    }
    Ok(())
}

fn setup(client: Client, env: &Env, bin_dir: &Path) -> Result<Vec<String>> {
    let name = client.name();
    let Some(found) = env.which(client.program()) else {
        bail!("{name} is not installed (no {} on PATH)", client.program());
    };
    let record_file = env.record_file(client);
    if record_file.exists() {
        return Ok(vec![format!(
            "{name} already uses nsnet (recorded in {}); undo with: nsnet setup {name} --undo",
            record_file.display()
        )]);
    }
    let exe = own_exe()?;
    let config = client.config_file(env);
    // Validate everything before changing anything.
    let mut new_links = Vec::new();
    for l in client.links() {
        let link = bin_dir.join(l);
        if points_at(&link, &exe) {
            continue;
        }
        if link.symlink_metadata().is_ok() {
            bail!(
                "{} exists and is not a link to {}: move it away first",
                link.display(),
                exe.display()
            );
        }
        new_links.push(link);
    }
    if config.symlink_metadata().is_ok() {
        bail!(
            "{} exists and was not written by nsnet setup: move it away first",
            config.display()
        );
    }
    let text = render_config(client, env, bin_dir);

    let mut lines = vec![format!("{name}: {} found", found.display())];
    let mut rec = Record {
        exe: exe.clone(),
        bin_dir: bin_dir.to_path_buf(),
        links: Vec::new(),
        config: config.clone(),
        dirs: Vec::new(),
    };
    create_dirs(bin_dir, &mut rec.dirs)?;
    for link in new_links {
        symlink(&exe, &link).with_context(|| format!("cannot link {}", link.display()))?;
        lines.push(format!("linked {} -> {}", link.display(), exe.display()));
        rec.links.push(link);
    }
    create_dirs(config.parent().expect("a file path"), &mut rec.dirs)?;
    std::fs::write(&config, &text).with_context(|| format!("cannot write {}", config.display()))?;
    lines.push(format!("wrote {}:", config.display()));
    lines.extend(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("    {l}")),
    );
    create_dirs(record_file.parent().expect("a file path"), &mut rec.dirs)?;
    std::fs::write(&record_file, serde_json::to_vec_pretty(&rec)?)
        .with_context(|| format!("cannot write {}", record_file.display()))?;
    lines.push(format!("recorded {} (for --undo)", record_file.display()));
    lines.push(next_step(client, false));
    Ok(lines)
}

fn next_step(client: Client, undo: bool) -> String {
    match (client.unit(), undo) {
        (Some(unit), _) => format!(
            "next: systemctl --user daemon-reload && systemctl --user restart {}",
            unit.trim_end_matches(".service")
        ),
        (None, false) => {
            "next: new Podman containers use it (podman system migrate restarts the pause process)"
                .into()
        }
        (None, true) => "next: new Podman containers use the system's helpers again".into(),
    }
}

fn undo(client: Client, env: &Env) -> Result<Vec<String>> {
    let name = client.name();
    let record_file = env.record_file(client);
    let Ok(raw) = std::fs::read(&record_file) else {
        bail!(
            "nothing to undo for {name} (no record at {})",
            record_file.display()
        );
    };
    let rec: Record = serde_json::from_slice(&raw)
        .with_context(|| format!("cannot parse {}", record_file.display()))?;
    let mut lines = Vec::new();
    for link in &rec.links {
        if points_at(link, &rec.exe) {
            std::fs::remove_file(link)
                .with_context(|| format!("cannot remove {}", link.display()))?;
            lines.push(format!("removed {}", link.display()));
        } else {
            lines.push(format!("left {} (no longer nsnet's link)", link.display()));
        }
    }
    match std::fs::read_to_string(&rec.config) {
        Ok(t) if t.starts_with(&header(client)) => {
            std::fs::remove_file(&rec.config)
                .with_context(|| format!("cannot remove {}", rec.config.display()))?;
            lines.push(format!("removed {}", rec.config.display()));
        }
        Ok(_) => lines.push(format!(
            "left {} (no longer nsnet's file)",
            rec.config.display()
        )),
        Err(_) => {}
    }
    std::fs::remove_file(&record_file)
        .with_context(|| format!("cannot remove {}", record_file.display()))?;
    for d in rec.dirs.iter().rev() {
        // Only if empty: anything put there since is the user's.
        if std::fs::remove_dir(d).is_ok() {
            lines.push(format!("removed {}/", d.display()));
        }
    }
    lines.push(next_step(client, true));
    Ok(lines)
}

/// One finding per client for `nsnet check`: installed or not, and whether it uses nsnet.
pub fn client_findings(env: &Env) -> Vec<Finding> {
    ALL.iter()
        .map(|&c| {
            let topic = c.name().to_string();
            let Some(found) = env.which(c.program()) else {
                return Finding {
                    status: Status::Note,
                    topic,
                    summary: format!("not installed (no {} on PATH)", c.program()),
                    fix: None,
                };
            };
            let config = c.config_file(env);
            let ours = std::fs::read_to_string(&config).is_ok_and(|t| t.starts_with(&header(c)));
            let links_ok = read_record(env, c).is_some_and(|rec| {
                c.links()
                    .iter()
                    .all(|l| std::fs::canonicalize(rec.bin_dir.join(l)).is_ok_and(|t| t == rec.exe))
            });
            if ours && links_ok {
                Finding {
                    status: Status::Ok,
                    topic,
                    summary: format!("{} uses nsnet ({})", found.display(), config.display()),
                    fix: None,
                }
            } else {
                Finding {
                    status: Status::Note,
                    topic,
                    summary: format!("{} does not use nsnet", found.display()),
                    fix: Some(format!("nsnet setup {}", c.name())),
                }
            }
        })
        .collect()
}

fn read_record(env: &Env, client: Client) -> Option<Record> {
    serde_json::from_slice(&std::fs::read(env.record_file(client)).ok()?).ok()
}

pub fn main(args: SetupArgs) -> i32 {
    let verb = if args.undo { " --undo" } else { "" };
    let name = args.client.name();
    let run = || -> Result<Vec<String>> {
        let env = Env::from_process()?;
        if args.undo {
            return undo(args.client, &env);
        }
        let bin_dir = match &args.bin_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => std::env::current_dir()?.join(d),
            None => env.home.join(".local/bin"),
        };
        if !bin_dir.starts_with(&env.home) {
            bail!(
                "--bin-dir {} is outside HOME ({}): nsnet setup changes nothing outside your home",
                bin_dir.display(),
                env.home.display()
            );
        }
        setup(args.client, &env, &bin_dir)
    };
    match run() {
        Ok(lines) => {
            println!("nsnet setup {name}{verb}:");
            for l in lines {
                println!("  {l}");
            }
            0
        }
        Err(e) => {
            eprintln!("nsnet setup {name}{verb}: error: {e:#}");
            1
        }
    }
}
