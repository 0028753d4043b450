//! The bridge layer, as the hooks call it: in the current netns (the instance's child netns),
//! with the user's bridge store, the container's interface always `eth0`.

use std::path::Path;

use crate::Error;
use crate::store::Attachment;

const IFNAME: &str = "eth0";

fn store() -> Result<nsnet_bridge::Store, Error> {
    nsnet_bridge::Store::default_location().map_err(|e| Error::Network(e.to_string()))
}

pub fn attach(network: &str, id: &str, netns: &Path) -> Result<Attachment, Error> {
    nsnet_bridge::attach(
        &store()?,
        &nsnet_bridge::AttachRequest {
            network,
            container_id: id,
            netns,
            ifname: IFNAME,
            static_ip: None,
        },
    )
    .map_err(|e| Error::Network(format!("attach to network {network}: {e}")))
}

pub fn detach(network: &str, id: &str, netns: Option<&Path>) -> Result<(), Error> {
    nsnet_bridge::detach(&store()?, network, id, netns, IFNAME)
        .map_err(|e| Error::Network(format!("detach from network {network}: {e}")))
}
