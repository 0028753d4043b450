//! The OCI bundle: `config.json` for runc, rootless-correct for a runtime that already runs
//! inside the nsnet instance's user namespace.
//!
//! Starting point: what `runc spec --rootless` writes, minus its user namespace and id maps —
//! runc is "root" in the instance's user namespace already, whose maps (with subordinate ids)
//! the container inherits; a second single-id namespace would only take those ids away. The
//! container gets pid, ipc, uts and mount namespaces, and its own network namespace unless the
//! network is `host`. `/sys` is a read-only rbind of the host's (mounting a fresh sysfs needs a
//! netns owned by the caller's user namespace, which is not the case on the `host` network).
//! `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` are bind mounts of files in the
//! container's directory, as Docker does, so the image is never edited (a `--rootfs` directory
//! is not written either: its root is an overlay, see [`crate::rootfs`]). The network is set up
//! by hooks (createRuntime, postStop) that run nsnet itself.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, Hook, HookBuilder, Hooks, HooksBuilder, LinuxBuilder, LinuxCapabilitiesBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder, get_default_maskedpaths, get_default_readonly_paths,
};

use crate::Error;

/// What goes into a container's `config.json`.
#[derive(Debug, Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub terminal: bool,
    pub hostname: String,
    pub rootfs: PathBuf,
    /// A network namespace of its own (false for the `host` network).
    pub own_netns: bool,
    /// Files bind-mounted over `/etc/…`: (destination, source).
    pub etc_files: Vec<(String, PathBuf)>,
    /// The createRuntime and postStop hooks: (path, argv) each.
    pub hooks: Option<(HookCmd, HookCmd)>,
    /// `linux.seccomp`: the bypass's profile (`nsnet_bypass::profile`), else none.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

#[derive(Debug, Clone)]
pub struct HookCmd {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
}

/// Docker's default capability set (all of them are scoped to the instance's user namespace).
const CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, Error> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(spec_err)
}

fn spec_err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("building the OCI spec: {e}"))
}

fn hook(h: &HookCmd) -> Result<Hook, Error> {
    HookBuilder::default()
        .path(h.path.clone())
        .args(h.args.clone())
        .env(h.env.clone())
        .timeout(30)
        .build()
        .map_err(spec_err)
}

/// The spec for `o`.
pub fn spec(o: &Options) -> Result<Spec, Error> {
    let caps: HashSet<Capability> = CAPS.into_iter().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(spec_err)?;
    let process = ProcessBuilder::default()
        .terminal(o.terminal)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(spec_err)?,
        )
        .args(o.args.clone())
        .env(o.env.clone())
        .cwd(if o.cwd.is_empty() { "/" } else { &o.cwd })
        .capabilities(capabilities)
        .no_new_privileges(true)
        .build()
        .map_err(spec_err)?;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    for (dest, src) in &o.etc_files {
        mounts.push(mount(
            dest,
            "none",
            &src.to_string_lossy(),
            &["rbind", "rprivate"],
        )?);
    }
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if o.own_netns {
        kinds.push(LinuxNamespaceType::Network);
    }
    let namespaces = kinds
        .into_iter()
        .map(|k| LinuxNamespaceBuilder::default().typ(k).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(spec_err)?;
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths());
    if let Some(s) = &o.seccomp {
        linux = linux.seccomp(s.clone());
    }
    let linux = linux.build().map_err(spec_err)?;
    let mut b = SpecBuilder::default()
        .version("1.0.2-dev")
        .process(process)
        .root(
            RootBuilder::default()
                .path(o.rootfs.clone())
                .readonly(false)
                .build()
                .map_err(spec_err)?,
        )
        .hostname(o.hostname.clone())
        .mounts(mounts)
        .linux(linux);
    if let Some((create, stop)) = &o.hooks {
        let hooks: Hooks = HooksBuilder::default()
            .create_runtime(vec![hook(create)?])
            .poststop(vec![hook(stop)?])
            .build()
            .map_err(spec_err)?;
        b = b.hooks(hooks);
    }
    b.build().map_err(spec_err)
}

/// Writes `bundle/config.json`.
pub fn write(bundle: &Path, o: &Options) -> Result<(), Error> {
    std::fs::create_dir_all(bundle).map_err(Error::io(format!("create {}", bundle.display())))?;
    let s = spec(o)?;
    let json = serde_json::to_vec_pretty(&s).expect("serializes");
    crate::write_atomic(&bundle.join("config.json"), &json)
}

/// `/etc/hosts` for a container named `hostname` at `ip` (none on the `none` network).
pub fn hosts_file(hostname: &str, ip: Option<std::net::Ipv4Addr>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    if let Some(ip) = ip {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    } else {
        s.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            args: vec!["httpd".into(), "-f".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/www".into(),
            terminal: false,
            hostname: "web".into(),
            rootfs: "/r".into(),
            own_netns: true,
            etc_files: vec![("/etc/hosts".into(), "/c/hosts".into())],
            hooks: Some((
                HookCmd {
                    path: "/bin/nsnet".into(),
                    args: vec!["nsnet".into(), "internal".into()],
                    env: vec![],
                },
                HookCmd {
                    path: "/bin/nsnet".into(),
                    args: vec!["nsnet".into()],
                    env: vec![],
                },
            )),
            seccomp: None,
        }
    }

    #[test]
    fn rootless_spec_has_no_user_namespace_and_its_own_netns() {
        let v = serde_json::to_value(spec(&options()).unwrap()).unwrap();
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
        assert!(v["linux"].get("uidMappings").is_none());
        assert_eq!(v["process"]["cwd"], "/www");
        assert_eq!(v["hostname"], "web");
        assert_eq!(v["root"]["path"], "/r");
        assert_eq!(v["hooks"]["createRuntime"][0]["path"], "/bin/nsnet");
        let sys = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert!(sys["options"].as_array().unwrap().contains(&"rbind".into()));
        let mut o = options();
        o.own_netns = false;
        let v = serde_json::to_value(spec(&o).unwrap()).unwrap();
        assert_eq!(v["linux"]["namespaces"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn hosts_names_the_container() {
        assert!(hosts_file("web", Some("10.4.0.2".parse().unwrap())).contains("10.4.0.2\tweb\n"));
        assert!(hosts_file("web", None).contains("127.0.1.1\tweb\n"));
    }
}
