//! The `builtin` network driver: nsnet's in-process user-mode network.
//!
//! On the parent's thread inside the child's network namespace it creates `tap0` (`--ifname`)
//! with `IFF_VNET_HDR` and TSO offloads, gives it CIDR+100 and the MTU, brings `lo` and the
//! tap up and routes everything via CIDR+2 (`nsnet-netlink`). The tap's descriptor then goes
//! to a stack thread of the parent (`nsnet-stack`), which terminates the guest's traffic on
//! host sockets in the parent's own namespace. The child's `resolv.conf` names CIDR+3, the
//! stack's DNS forwarder, which forwards to the host's nameservers as read from
//! `/etc/resolv.conf`. `NSNET_DNS_UPSTREAM=IP:PORT` overrides them: tests point the
//! forwarder at a resolver of their own on an unprivileged port, never the machine's.

use std::net::Ipv4Addr;

use crate::LaunchError;
use crate::config::LaunchPlan;
use crate::net::{NetContext, NetworkSetup};

/// Environment variable with the DNS forwarder's upstream (`IP:PORT`), instead of the host's
/// `/etc/resolv.conf`.
pub const DNS_UPSTREAM_ENV: &str = "NSNET_DNS_UPSTREAM";

/// Errors of the builtin driver, naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    #[error("--net=builtin: {0}")]
    Tap(#[from] nsnet_netlink::Error),
    #[error("--net=builtin: {0}")]
    Stack(#[from] nsnet_stack::Error),
}

/// The stack's configuration for a plan.
pub fn stack_config(plan: &LaunchPlan) -> Result<nsnet_stack::Config, BuiltinError> {
    let mut cfg =
        nsnet_stack::Config::new(plan.cidr.network, plan.cidr.prefix)?.with_mtu(plan.mtu)?;
    cfg.disable_host_loopback = plan.disable_host_loopback;
    (cfg.gateway_host, cfg.dns_host) = plan.net.gateway_and_dns_hosts();
    // The plan refuses --ipv6 with gvisor-tap-vsock; this keeps the stack honest anyway.
    cfg.ipv6 = plan.ipv6 && plan.net != crate::config::NetDriver::GvisorTapVsock;
    cfg.nameservers = match std::env::var(DNS_UPSTREAM_ENV) {
        Ok(v) => v.split(',').filter_map(|a| a.trim().parse().ok()).collect(),
        // No readable resolv.conf means no upstream: DNS queries to CIDR+3 go unanswered,
        // as with slirp4netns.
        Err(_) => nsnet_stack::nameservers_from_resolv_conf(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
    };
    Ok(cfg)
}

pub fn start(
    plan: &LaunchPlan,
    ctx: &NetContext<'_>,
) -> Result<(NetworkSetup, nsnet_stack::Running), LaunchError> {
    let cfg = stack_config(plan)?;
    let tap = nsnet_netlink::TapConfig {
        name: if plan.ifname.is_empty() {
            "tap0".into()
        } else {
            plan.ifname.clone()
        },
        mtu: cfg.mtu,
        ipv4: Some(nsnet_netlink::TapIpv4 {
            address: cfg.guest(),
            prefix: cfg.prefix,
            gateway: cfg.gateway(),
        }),
        ipv6: cfg.ipv6.then(|| nsnet_netlink::TapIpv6 {
            address: Some(cfg.guest6()),
            prefix: 64,
            gateway: cfg.gateway6(),
        }),
        mac: None,
    };
    tracing::debug!(?tap, nameservers = ?cfg.nameservers, "builtin network");
    let fd = ctx
        .netns
        .run(move || nsnet_netlink::create_configured_tap(&tap))
        .map_err(BuiltinError::from)?;
    let dns: Ipv4Addr = cfg.dns();
    let guest = cfg.guest();
    let ipv6 = cfg.ipv6;
    let running = nsnet_stack::spawn(fd, cfg).map_err(BuiltinError::from)?;
    Ok((
        NetworkSetup {
            dns: vec![dns.to_string()],
            child_ip: Some(guest),
            ipv6,
        },
        running,
    ))
}
