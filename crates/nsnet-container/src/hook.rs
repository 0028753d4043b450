//! The OCI hooks: `nsnet internal oci-hook createRuntime|postStop`, run by runc with the
//! container's state (`{"id","pid","bundle",…}`) on stdin, inside the nsnet instance's user and
//! mount namespaces but in the host netns (a detached instance).
//!
//! createRuntime enters the instance's child netns (`$STATE/netns`; for an instance that is
//! not detached, the child's own netns) — allowed, since the hook runs as root of the user
//! namespace that owns it — attaches the container's netns (`/proc/PID/ns/net`) to the bridge
//! network, records the attachment in `network.json` at once (so that a failure further on
//! still leaves something to clean up), writes `/etc/hosts` with the address, and publishes the
//! `-p` ports through the instance's API with the container's IP as `childIP`: the port driver
//! dials the container directly from the child netns, with no second DNAT hop. postStop undoes
//! both, in reverse, and tolerates half-done states (it is also what `rm` runs after a crash).

use std::io::Read;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::Path;

use nsnet_api::client::Client;
use serde::Deserialize;

use crate::store::{self, Attachment, Config, NetState};
use crate::{Error, bundle};

/// The fields of the OCI state the hooks use.
#[derive(Debug, Deserialize)]
pub struct OciState {
    pub id: String,
    #[serde(default)]
    pub pid: i32,
}

/// Reads the OCI state from stdin.
pub fn read_state() -> Result<OciState, Error> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(Error::io("read the OCI state from stdin"))?;
    serde_json::from_str(&s)
        .map_err(|e| Error::Invalid(format!("the OCI state on stdin is not valid: {e}")))
}

/// Enters the instance's child netns (this thread; the hook is single-threaded until then).
/// The instance is read as every front end reads it (`nsnet_ns::instance`): a crashed one is
/// reported, not joined.
fn enter_child_netns(instance: &Path) -> Result<(), Error> {
    use nsnet_ns::instance::{Instance, Source};
    let found = Instance::at(instance, Source::Given)
        .map_err(|e| Error::Network(format!("{e} (nsnet container starts the default one)")))?;
    let netns = found
        .open(nsnet_ns::nsfs::NsType::Net)
        .map_err(|e| Error::Network(e.to_string()))?;
    nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        Error::Network(format!(
            "cannot enter the child netns {}: {e}",
            found.netns_path().display()
        ))
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("start the API client"))
}

fn load_config(dir: &Path) -> Result<Config, Error> {
    let text = std::fs::read(dir.join("container.json")).map_err(Error::io(format!(
        "read {}",
        dir.join("container.json").display()
    )))?;
    serde_json::from_slice(&text).map_err(|e| Error::Invalid(format!("container.json: {e}")))
}

/// createRuntime: attach and publish.
pub fn create_runtime(dir: &Path, instance: &Path, state: &OciState) -> Result<(), Error> {
    let config = load_config(dir)?;
    if state.pid <= 0 {
        return Err(Error::Invalid(
            "the OCI state has no pid; createRuntime needs the container's process".into(),
        ));
    }
    let sandbox = format!("/proc/{}/ns/net", state.pid);
    enter_child_netns(instance)?;
    let mut net = NetState {
        sandbox: sandbox.clone(),
        attachment: None,
        ports: Vec::new(),
    };
    let result = (|| {
        let a = crate::net::attach(&config.network, &state.id, Path::new(&sandbox))?;
        net.attachment = Some(a.clone());
        store::save_net(dir, &net)?;
        // In place, not by rename: the container's /etc/hosts is a bind mount of this inode.
        std::fs::write(
            dir.join("hosts"),
            bundle::hosts_file(&config.hostname, Some(a.ip)),
        )
        .map_err(Error::io(format!("write {}", dir.join("hosts").display())))?;
        if !config.publish.is_empty() {
            let client = Client::new(&instance.join("api.sock"));
            let rt = runtime()?;
            for p in &config.publish {
                let spec = p.port_spec(IpAddr::V4(a.ip));
                let st = rt
                    .block_on(client.add_port(&spec))
                    .map_err(|e| Error::Network(format!("publish {}: {e}", p.display())))?;
                net.ports.push((st.id, p.clone()));
                store::save_net(dir, &net)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = teardown(dir, instance, &config, &net);
        return Err(e);
    }
    Ok(())
}

fn teardown(dir: &Path, instance: &Path, config: &Config, net: &NetState) -> Result<(), Error> {
    let mut first: Option<Error> = None;
    if !net.ports.is_empty() {
        let client = Client::new(&instance.join("api.sock"));
        let rt = runtime()?;
        for (id, p) in &net.ports {
            if let Err(e) = rt.block_on(client.remove_port(*id)) {
                // Already gone (the instance restarted, or a second teardown): nothing to do.
                if !e.to_string().contains("unknown id") && !instance.join("api.sock").exists() {
                    continue;
                }
                if !e.to_string().contains("unknown id") {
                    first.get_or_insert(Error::Network(format!("unpublish {}: {e}", p.display())));
                }
            }
        }
    }
    let sandbox = Path::new(&net.sandbox);
    let netns = sandbox.exists().then_some(sandbox);
    let network = net
        .attachment
        .as_ref()
        .map(|a| a.network.clone())
        .unwrap_or_else(|| config.network.clone());
    if let Err(e) = crate::net::detach(&network, &config.id, netns) {
        first.get_or_insert(e);
    }
    match first {
        Some(e) => Err(e),
        None => store::clear_net(dir),
    }
}

/// postStop: unpublish and detach what `network.json` records; nothing when it records nothing.
pub fn post_stop(dir: &Path, instance: &Path) -> Result<(), Error> {
    let config = load_config(dir)?;
    let Some(net) = store::load_net(dir)? else {
        return Ok(());
    };
    enter_child_netns(instance)?;
    teardown(dir, instance, &config, &net)
}

/// The attachment as the container layer records it.
pub fn attached(a: &Attachment) -> String {
    format!("{}/{} on {}", a.ip, a.prefix_len, a.bridge)
}
