//! Network drivers, parent side.
//!
//! Once the child's namespaces exist, the parent sets up the network driver the plan names,
//! before the command starts (the child waits for `ParentMsg::NetworkReady`). A driver that
//! must act inside the child's network namespace (create `tap0`, open sockets there) gets a
//! [`NetnsThread`]: a thread of the parent that lives in that namespace. The driver's running
//! state is kept in [`RunningNetwork`] until the child exits; dropping it stops the driver.
//!
//! The set of drivers is closed and dispatched here, in one place; `none` is the do-nothing
//! driver (a network namespace with only `lo`, brought up by the child).

use std::net::Ipv4Addr;
use std::path::Path;

use nsnet_ns::netns::NetnsThread;

use crate::LaunchError;
use crate::config::{ConfigError, LaunchPlan, NetDriver};

/// What the parent knows when it sets a driver up.
pub struct NetContext<'a> {
    /// A thread inside the child's network namespace.
    pub netns: &'a NetnsThread,
    pub child_pid: i32,
    pub state_dir: &'a Path,
}

/// What a driver tells the child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSetup {
    /// Name servers for `$STATE/resolv.conf`.
    pub dns: Vec<String>,
    /// The child's own address on the uplink, if the driver assigns one.
    pub child_ip: Option<Ipv4Addr>,
    /// Whether the network routes IPv6 for the child.
    pub ipv6: bool,
}

/// A running driver; dropping it stops the driver.
pub enum RunningNetwork {
    /// `--net=host` and `--net=none`: nothing runs in the parent.
    Nothing,
    /// `--net=builtin` and `--net=gvisor-tap-vsock`: the user-mode network's thread (stopped
    /// on drop).
    Builtin(nsnet_stack::Running),
    /// `--net=slirp4netns`: the external process (told to exit on drop).
    External(crate::external_net::External),
    /// `--net=pasta`: pasta's daemon (stopped by PID on drop).
    Pasta(crate::external_net::Pasta),
}

/// Whether the plan's drivers need a thread in the child's network namespace.
pub fn needs_netns_thread(plan: &LaunchPlan) -> bool {
    !matches!(plan.net, NetDriver::Host | NetDriver::None)
        || plan.port_driver != crate::config::PortDriver::None
}

/// Checks, before the launch creates anything, what the drivers need of the programs they will
/// run, so that a launch that cannot work fails with nothing to clean up.
pub fn preflight(plan: &LaunchPlan) -> Result<(), LaunchError> {
    if plan.net == NetDriver::Pasta && plan.port_driver == crate::config::PortDriver::Pesto {
        crate::external_net::check_pasta_for_pesto(&plan.pasta_binary)?;
    }
    Ok(())
}

/// Starts the network driver of `plan`.
pub fn start(
    plan: &LaunchPlan,
    ctx: Option<&NetContext<'_>>,
) -> Result<(NetworkSetup, RunningNetwork), LaunchError> {
    match (plan.net, ctx) {
        (NetDriver::Host | NetDriver::None, _) => {
            Ok((NetworkSetup::default(), RunningNetwork::Nothing))
        }
        (NetDriver::Builtin | NetDriver::GvisorTapVsock, Some(ctx)) => {
            let (setup, running) = crate::builtin_net::start(plan, ctx)?;
            Ok((setup, RunningNetwork::Builtin(running)))
        }
        (NetDriver::Slirp4netns, Some(ctx)) => {
            let (setup, running) = crate::external_net::start_slirp4netns(plan, ctx)?;
            Ok((setup, RunningNetwork::External(running)))
        }
        (NetDriver::Pasta, Some(ctx)) => {
            let (setup, running) = crate::external_net::start_pasta(plan, ctx)?;
            Ok((setup, RunningNetwork::Pasta(running)))
        }
        (other, _) => Err(ConfigError::NetUnavailable(other.name()).into()),
    }
}
