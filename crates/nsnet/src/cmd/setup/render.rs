//! What `nsnet setup` writes for each client: the systemd drop-in for the rootless Docker
//! and nerdctl scripts, the containers.conf drop-in for Podman (see `setup.rs` for why each).
//! The user's own files are only read: a unit's `PATH`, containers.conf's
//! `helper_binaries_dir` (parsed as TOML, which containers.conf is).

use std::path::Path;

use super::{Client, Env};

pub(super) fn header(client: Client) -> String {
    format!(
        "# Written by `nsnet setup {c}`; `nsnet setup {c} --undo` removes it.\n",
        c = client.name()
    )
}

/// The `PATH` a unit's `Environment=` lines set, if any (the last one wins, as in systemd).
fn unit_path(unit_text: &str) -> Option<String> {
    unit_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .flat_map(|v| v.split_whitespace())
        .map(|w| w.trim_matches('"'))
        .filter_map(|w| w.strip_prefix("PATH="))
        .next_back()
        .map(str::to_string)
}

/// The `helper_binaries_dir` list of the `[engine]` table of containers.conf text (empty when
/// the file does not parse or does not set it: Podman's defaults then apply).
fn helper_dirs(conf: &str) -> Vec<String> {
    let Ok(t) = conf.parse::<toml::Table>() else {
        return Vec::new();
    };
    t.get("engine")
        .and_then(|e| e.get("helper_binaries_dir"))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Podman's default `helper_binaries_dir` on Linux (containers.conf(5)).
const PODMAN_HELPER_DIRS: [&str; 4] = [
    "/usr/local/libexec/podman",
    "/usr/local/lib/podman",
    "/usr/libexec/podman",
    "/usr/lib/podman",
];

pub(super) fn render_config(client: Client, env: &Env, bin_dir: &Path) -> String {
    let bin = bin_dir.to_string_lossy().into_owned();
    let mut out = header(client);
    match client.unit() {
        Some(unit) => {
            let unit_file = env.config_home.join("systemd/user").join(unit);
            let rest = std::fs::read_to_string(&unit_file)
                .ok()
                .and_then(|t| unit_path(&t))
                .unwrap_or_else(|| env.path.clone());
            let rest: Vec<&str> = rest
                .split(':')
                .filter(|d| !d.is_empty() && *d != bin)
                .collect();
            let p = client.env_prefix();
            out.push_str(&format!(
                "# The rootless script runs the first rootlesskit on PATH: nsnet's, with nsnet's\n\
                 # in-process network (--net=builtin) and its MTU.\n\
                 [Service]\n\
                 Environment=\"PATH={bin}:{}\"\n\
                 Environment=\"{p}_NET=builtin\"\n\
                 Environment=\"{p}_MTU=65520\"\n\
                 Environment=\"{p}_PORT_DRIVER=builtin\"\n",
                rest.join(":")
            ));
        }
        None => {
            let user_conf = env.config_home.join("containers/containers.conf");
            let mut dirs = vec![bin];
            let theirs = std::fs::read_to_string(&user_conf)
                .map(|t| helper_dirs(&t))
                .unwrap_or_default();
            let defaults = PODMAN_HELPER_DIRS.iter().map(|s| s.to_string());
            for d in theirs.into_iter().chain(defaults) {
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
            out.push_str(
                "# Podman looks for slirp4netns and pasta in helper_binaries_dir before PATH.\n[engine]\nhelper_binaries_dir = [\n",
            );
            for d in dirs {
                out.push_str(&format!("  \"{d}\",\n"));
            }
            out.push_str("]\n");
            // Podman 4 looks slirp4netns up on PATH, not in helper_binaries_dir.
            out.push_str(&format!(
                "network_cmd_path = \"{}\"\n",
                bin_dir.join("slirp4netns").display()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_path_takes_the_last_path_assignment() {
        let unit = "[Service]\nEnvironment=PATH=/a:/b\nEnvironment=\"FOO=1\" \"PATH=/c:/usr/bin\"\nExecStart=/x\n";
        assert_eq!(unit_path(unit).as_deref(), Some("/c:/usr/bin"));
        assert_eq!(unit_path("[Service]\nExecStart=/x\n"), None);
    }

    #[test]
    fn helper_dirs_reads_only_the_engine_table() {
        let conf = "[containers]\nhelper_binaries_dir = [\"/not/this\"]\n\n[engine]\n# helper_binaries_dir = [\"/commented\"]\nhelper_binaries_dir = [\n  \"/opt/podman\", # mine\n  \"/usr/libexec/podman\",\n]\nevents_logger = \"file\"\n";
        assert_eq!(
            helper_dirs(conf),
            vec!["/opt/podman", "/usr/libexec/podman"]
        );
        assert!(helper_dirs("[engine]\nevents_logger = \"file\"\n").is_empty());
    }
}
