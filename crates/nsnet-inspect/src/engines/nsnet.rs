//! nsnet's own containers (`nsnet container`), from its store (`nsnet_container::store`:
//! `$XDG_DATA_HOME/nsnet/containers/<id>/container.json`, `state.json`, `network.json`).
//! The store's own reader is used, so its crash rule holds here too: a container recorded
//! as running whose init process is gone (or whose PID was reused) reads as exited.

use std::path::PathBuf;

use nsnet_container::store::{Status, Store};

use super::{Attached, Candidate, Container, Engine, Published};
use crate::procscan::Proc;

pub(super) fn candidates(p: &Proc) -> Vec<Candidate> {
    if p.comm != "nsnet" {
        return Vec::new();
    }
    match &p.data_home {
        Some(h) => vec![Candidate {
            path: h.join("nsnet/containers"),
            why: format!("nsnet {} ($XDG_DATA_HOME/nsnet)", p.pid),
            via: None,
        }],
        None => Vec::new(),
    }
}

pub(super) fn read(c: &Candidate) -> Result<Option<Vec<Container>>, String> {
    if !c.path.exists() {
        return Ok(None);
    }
    let store = Store {
        root: c.path.clone(),
    };
    let list = store.list().map_err(|e| e.to_string())?;
    Ok(Some(
        list.into_iter()
            .map(|k| {
                let running = k.status() == Status::Running;
                let att = k.net.as_ref().and_then(|n| n.attachment.as_ref());
                // The network's own file says whether it is internal (read directly: the
                // bridge layer's lookups create the default network when it is missing).
                let internal_networks = att
                    .filter(|a| {
                        c.path
                            .parent()
                            .map(|d| d.join("networks").join(format!("{}.json", a.network)))
                            .and_then(|f| std::fs::read(f).ok())
                            .and_then(|b| serde_json::from_slice::<nsnet_bridge::Network>(&b).ok())
                            .is_some_and(|n| n.internal)
                    })
                    .map(|a| a.network.clone())
                    .into_iter()
                    .collect();
                Container {
                    internal_networks,
                    engine: Engine::Nsnet,
                    id: k.config.id.clone(),
                    name: k.config.name.clone(),
                    image: Some(k.config.image.clone()),
                    running,
                    pid: (k.state.pid > 0).then_some(k.state.pid),
                    netns_path: att.map(|a| a.netns.clone()).or_else(|| {
                        k.net
                            .as_ref()
                            .map(|n| PathBuf::from(&n.sandbox))
                            .filter(|p| !p.as_os_str().is_empty())
                    }),
                    network_mode: Some(k.config.network.clone()),
                    networks: att
                        .map(|a| Attached {
                            network: a.network.clone(),
                            address: Some(format!("{}/{}", a.ip, a.prefix_len)),
                            gateway: a.gateway.map(|g| g.to_string()),
                        })
                        .into_iter()
                        .collect(),
                    ports: k
                        .config
                        .publish
                        .iter()
                        .map(|p| Published {
                            proto: p.proto.clone(),
                            host_ip: p.host_ip.clone(),
                            host_port: p.host_port,
                            container_port: p.container_port,
                        })
                        .collect(),
                }
            })
            .collect(),
    ))
}
