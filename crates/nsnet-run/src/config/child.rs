//! What the parent hands the child once its namespaces exist ([`ChildConfig`], sent in the
//! channel's start message): the part of a [`LaunchPlan`] the child stage acts on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{LaunchPlan, NetDriver, Personality};

/// What the child receives from the parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildConfig {
    pub personality: Personality,
    pub command: Vec<String>,
    pub state_dir: PathBuf,
    pub propagation: String,
    pub copy_up: Vec<PathBuf>,
    pub mount_proc: bool,
    /// The child itself is in a new network namespace (non-host, not detached).
    pub own_netns: bool,
    /// A detached network namespace is to be created at `$STATE/netns`.
    pub detach_netns: bool,
    /// Non-host network: write resolv.conf and hosts into the state dir.
    pub network: bool,
    pub reaper: bool,
    /// `--debug`: the child logs at debug level too.
    pub debug: bool,
}

impl LaunchPlan {
    /// The configuration sent to the child once its namespaces exist.
    pub fn child_config(&self, state_dir: PathBuf) -> ChildConfig {
        let network = self.net != NetDriver::Host;
        ChildConfig {
            personality: self.personality,
            command: self.command.clone(),
            state_dir,
            propagation: self.propagation.name().to_string(),
            copy_up: self.copy_up.clone(),
            mount_proc: self.pidns,
            own_netns: network && !self.detach_netns,
            detach_netns: self.detach_netns,
            network,
            reaper: self.reaper,
            debug: self.debug,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::RawOptions;
    use super::*;

    fn child(raw: RawOptions) -> ChildConfig {
        LaunchPlan::from_raw(
            RawOptions {
                command: vec!["true".into()],
                ..raw
            },
            Personality::Nsnet,
        )
        .unwrap()
        .child_config("/s".into())
    }

    #[test]
    fn netns_follows_net_and_detach() {
        let c = child(RawOptions {
            net: Some("none".into()),
            detach_netns: true,
            pidns: true,
            ..Default::default()
        });
        assert!(c.detach_netns && !c.own_netns && c.network && c.mount_proc && c.reaper);
        let c = child(RawOptions {
            net: Some("none".into()),
            ..Default::default()
        });
        assert!(c.own_netns && c.network && !c.detach_netns && !c.mount_proc);
        let c = child(RawOptions {
            net: Some("host".into()),
            ..Default::default()
        });
        assert!(!c.own_netns && !c.network);
        assert_eq!(c.state_dir, PathBuf::from("/s"));
        assert_eq!(c.propagation, "rprivate");
    }
}
