//! The parent's services while the child runs: an async runtime (two worker threads, one per
//! core here), the port driver (builtin, slirp4netns or pesto) with the ports given by `-p`,
//! and the REST API on
//! `$STATE/api.sock` (served whatever the drivers, as RootlessKit does, so `rootlessctl info`
//! always answers).
//!
//! The runtime's threads are spawned after the launcher blocked its forwarded signals, so
//! they inherit that mask and every signal still reaches the main thread's signalfd.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use nsnet_api::{Info, NetworkDriverInfo, PortDriverInfo, server};

use crate::config::drivers::{SOURCE_IP_BACKEND_NONE, SOURCE_IP_BACKEND_USED};
use nsnet_ns::netns::NetnsThread;
use nsnet_port::{NetnsThreadSockets, PortManager, PortSpecExt, Ports};

use crate::LaunchError;
use crate::config::{LaunchPlan, NetDriver, PortDriver};
use crate::net::NetworkSetup;

/// Running services; dropping them stops every listener at once.
pub struct Services {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Services {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Relays still in flight are cut: the instance is ending.
            rt.shutdown_background();
        }
    }
}

fn io_err(op: &'static str) -> impl FnOnce(std::io::Error) -> LaunchError {
    move |source| LaunchError::Io { op, source }
}

/// The implementation version in `/v1/info` and `rootlesskit --version`: the RootlessKit
/// release whose behaviour is reproduced, with nsnet's own version as build metadata.
pub fn implementation_version() -> String {
    format!(
        "{}+nsnet.{}",
        nsnet_api::ROOTLESSKIT_COMPAT_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// `portDriver` of `/v1/info`: the driver as the command line named it (the builtin driver
/// also serves `gvisor-tap-vsock`), the protos it really serves, and for the builtin driver
/// the source-IP backend in use, under RootlessKit v3's key.
fn port_driver_info(plan: &LaunchPlan, ports: &Ports, source_ip_kept: bool) -> PortDriverInfo {
    let mut extra = std::collections::BTreeMap::new();
    if plan.port_driver.builtin_served() {
        let backend = if source_ip_kept {
            SOURCE_IP_BACKEND_USED
        } else {
            SOURCE_IP_BACKEND_NONE
        };
        extra.insert(
            "sourceIPTransparentBackend".to_string(),
            backend.to_string(),
        );
    }
    PortDriverInfo {
        driver: plan.port_driver.name().into(),
        protos: Some(ports.protos()),
        disallow_loopback_child_ip: ports.disallow_loopback_child_ip(),
        extra,
    }
}

/// Starts the runtime, publishes `plan.publish`, and serves the API.
pub fn start(
    plan: &LaunchPlan,
    warn: &mut dyn FnMut(&str),
    netns: Option<Arc<NetnsThread>>,
    setup: &NetworkSetup,
    child_pid: i32,
    state: &Path,
) -> Result<Services, LaunchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("nsnet-io")
        .enable_all()
        .build()
        .map_err(io_err("start the async runtime"))?;
    let mut services = Services { runtime: None };
    // Whether published ports keep client addresses, for `portDriver.extra`.
    let mut source_ip_kept = false;
    let ports = match (plan.port_driver, netns) {
        (d, Some(netns)) if d.builtin_served() => {
            nsnet_port::raise_fd_limit();
            let mut pm = PortManager::new(
                Arc::new(NetnsThreadSockets(netns.clone())),
                runtime.handle().clone(),
            );
            if plan.source_ip_transparent {
                match netns.run(nsnet_port::source_ip::routing) {
                    Ok(()) => {
                        source_ip_kept = true;
                        pm = pm
                            .with_source_ip(nsnet_port::source_ip::MARK)
                            .with_udp_source_ip(Arc::new(nsnet_port::source_ip::NetnsReplyRoutes(
                                netns.clone(),
                            )))
                    }
                    Err(e) => warn(&format!(
                        "source IP transparent: falling back to non-transparent mode, client source IPs will not be preserved ({e})"
                    )),
                }
            }
            Some(Arc::new(Ports::Builtin(pm)))
        }
        (PortDriver::Slirp4netns, _) => {
            // The configuration allows this driver only with --net=slirp4netns, which was
            // started with its API socket here and gives the child an IPv4 address.
            let Some(child_ip) = setup.child_ip else {
                return Err(LaunchError::NoChildIp("slirp4netns"));
            };
            Some(Arc::new(Ports::Slirp4netns(
                nsnet_port::slirp4netns::Slirp4netnsPorts::new(
                    state.join(crate::external_net::SLIRP4NETNS_API_SOCKET),
                    child_ip,
                ),
            )))
        }
        (PortDriver::Pesto, _) => {
            // The configuration allows this driver only with --net=pasta, which was started
            // with its forwarding-table socket here and gives the child an IPv4 address: the
            // one pasta forwards to, and the only child IP RootlessKit's driver accepts.
            let Some(child_ip) = setup.child_ip else {
                return Err(LaunchError::NoChildIp("pasta"));
            };
            Some(Arc::new(Ports::Pesto(nsnet_port::pesto::PestoPorts::new(
                state.join(crate::external_net::PASTA_CONTROL_SOCKET),
                child_ip,
                plan.ipv6,
            ))))
        }
        _ => None,
    };
    if let Some(ports) = &ports {
        for spec in &plan.publish {
            runtime
                .block_on(ports.add(spec.clone()))
                .map_err(|source| LaunchError::Publish {
                    spec: spec.text(),
                    source,
                })?;
        }
    }

    let sock_path = state.join("api.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener =
        std::os::unix::net::UnixListener::bind(&sock_path).map_err(io_err("bind api.sock"))?;
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("restrict api.sock to its owner"))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("bind api.sock"))?;
    let listener = {
        let _g = runtime.enter();
        tokio::net::UnixListener::from_std(listener).map_err(io_err("bind api.sock"))?
    };
    let info = Info {
        api_version: nsnet_api::API_VERSION.into(),
        version: implementation_version(),
        state_dir: state.display().to_string(),
        child_pid: child_pid.into(),
        network_driver: match plan.net {
            NetDriver::Host => None,
            other => Some(NetworkDriverInfo {
                driver: other.name().into(),
                dns: setup.dns.clone(),
                child_ip: setup.child_ip.map(|ip| ip.to_string()),
                dynamic_child_ip: false,
                ipv6: setup.ipv6,
            }),
        },
        port_driver: ports
            .as_ref()
            .map(|p| port_driver_info(plan, p, source_ip_kept)),
    };
    runtime.spawn(server::serve(
        listener,
        Arc::new(server::Backend {
            info,
            ports: ports.map(|p| p as Arc<dyn nsnet_api::rest::PortBackend>),
        }),
    ));
    services.runtime = Some(runtime);
    Ok(services)
}
