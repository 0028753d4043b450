//! # nsnet-port — the port drivers
//!
//! Layer: port publishing. Three drivers, one closed set ([`Ports`], which serves the REST API
//! as its `nsnet_api::rest::PortBackend`), and the rules of a port spec over the API's wire
//! type ([`spec`]: text form, where to listen, conflicts).
//!
//! The builtin driver ([`PortManager`], RootlessKit's `builtin`): a published port is a
//! listener in the host's network namespace; each connection (TCP) or client flow (UDP) gets a
//! socket created *inside the child's network namespace* and connected to the target there,
//! and the two are relayed. There is no user-mode TCP/IP on this path: two kernel sockets and
//! a splice(2) relay. Child-side sockets come from a [`ChildSockets`] implementation:
//! [`NetnsThreadSockets`] asks the parent's thread that lives in the child's netns
//! (`nsnet_ns::netns::NetnsThread`) for a socket — one short round trip per connection, no
//! descriptor passing — and [`HostSockets`] creates them in the caller's own netns (the
//! conformance suite's unit test runs the driver that way, on loopback).
//!
//! The slirp4netns driver ([`slirp4netns::Slirp4netnsPorts`]) asks slirp4netns for host
//! forwards over its API socket; the pesto driver ([`pesto::PestoPorts`]) adds and deletes
//! rules in a running pasta's forwarding table over its `-c` socket (pesto's protocol).
//!
//! All three keep RootlessKit's `port.Manager` contract — ids, validation rules, error
//! strings — and [`testsuite`] checks it for each. What they leave to others: the REST API
//! and the wire protocols (`nsnet-api`), when to start and stop (`nsnet-run`), how the child
//! netns is reached (`nsnet-ns`).

mod datagrams;
pub mod pasta;
pub mod pesto;
pub mod relay;
pub mod scan;
pub mod slirp4netns;
pub mod source_ip;
pub mod spec;
mod tcp;
pub mod testsuite;
mod udp;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use nsnet_api::rest::BackendError;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::oneshot;

pub use spec::{PortSpec, PortSpecExt, PortStatus, Transport};

/// Failures of the port driver; the texts are RootlessKit's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("unknown proto: {0:?}")]
    UnknownProto(String),
    #[error("{0}")]
    Syntax(String),
    #[error("invalid {which}: {port}")]
    InvalidPort { which: &'static str, port: i64 },
    #[error("invalid {0}: {1:?}")]
    InvalidIp(&'static str, String),
    #[error("parent IP {ip} does not match proto {proto}")]
    FamilyMismatch { ip: IpAddr, proto: String },
    #[error("conflict with ID {0}")]
    Conflict(u64),
    #[error("unknown id: {0}")]
    UnknownId(u64),
    /// An id the pesto driver does not know (RootlessKit's wording for that driver).
    #[error("invalid ID: {0}")]
    InvalidId(u64),
    /// The pesto driver forwards to the namespace's address only.
    #[error(
        "unsupported ChildIP {child_ip:?}: the pesto port driver only supports the namespace address {namespace:?}"
    )]
    ChildIpNotNamespace { child_ip: String, namespace: String },
    #[error("IPv6 port forwarding (proto {proto:?}, parent IP {parent_ip:?}) requires --ipv6")]
    Ipv6Disabled { proto: String, parent_ip: String },
    /// A parent IP of the other family than the proto's (the pesto driver's wording).
    #[error("unsupported IP: {0}")]
    UnsupportedIp(String),
    #[error("{0}")]
    Listen(String),
    /// The driver's backend (slirp4netns's API) failed or refused.
    #[error("{0}")]
    Backend(String),
}

/// The port driver of an instance, one of a closed set (RootlessKit's `port.ParentDriver`).
pub enum Ports {
    Builtin(PortManager),
    Slirp4netns(slirp4netns::Slirp4netnsPorts),
    Pesto(pesto::PestoPorts),
}

impl Ports {
    /// The driver's name in `GET /v1/info`.
    pub fn driver(&self) -> &'static str {
        match self {
            Ports::Builtin(_) => "builtin",
            Ports::Slirp4netns(_) => "slirp4netns",
            Ports::Pesto(_) => "pesto",
        }
    }

    /// Whether clients must dial the child's tap address rather than loopback
    /// (`disallowLoopbackChildIP`): slirp4netns forwards to the guest's address, and pasta
    /// to the namespace's address, so a loopback `childIP` cannot be reached; the builtin
    /// driver dials inside the netns.
    pub fn disallow_loopback_child_ip(&self) -> bool {
        matches!(self, Ports::Slirp4netns(_) | Ports::Pesto(_))
    }

    /// The protocols it offers, as `GET /v1/info` lists them.
    pub fn protos(&self) -> Vec<String> {
        let list: &[&str] = match self {
            Ports::Builtin(_) => &spec::PROTOS,
            Ports::Slirp4netns(_) => &slirp4netns::PROTOS,
            Ports::Pesto(d) => d.protos(),
        };
        list.iter().map(|p| p.to_string()).collect()
    }

    pub async fn add(&self, spec: PortSpec) -> Result<PortStatus, PortError> {
        match self {
            Ports::Builtin(pm) => pm.add(spec),
            Ports::Slirp4netns(d) => d.add(spec).await,
            Ports::Pesto(d) => d.add(spec).await,
        }
    }

    pub fn list(&self) -> Vec<PortStatus> {
        match self {
            Ports::Builtin(pm) => pm.list(),
            Ports::Slirp4netns(d) => d.list(),
            Ports::Pesto(d) => d.list(),
        }
    }

    pub async fn remove(&self, id: u64) -> Result<(), PortError> {
        match self {
            Ports::Builtin(pm) => pm.remove(id).await,
            Ports::Slirp4netns(d) => d.remove(id).await,
            Ports::Pesto(d) => d.remove(id).await,
        }
    }
}

impl nsnet_api::rest::PortBackend for Ports {
    fn add(
        &self,
        spec: PortSpec,
    ) -> Pin<Box<dyn Future<Output = Result<PortStatus, BackendError>> + Send + '_>> {
        Box::pin(async move { Ports::add(self, spec).await.map_err(BackendError::from) })
    }

    fn list(&self) -> Vec<PortStatus> {
        Ports::list(self)
    }

    fn remove(
        &self,
        id: u64,
    ) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + '_>> {
        Box::pin(async move { Ports::remove(self, id).await.map_err(BackendError::from) })
    }
}

/// Creates sockets inside the child's network namespace.
pub trait ChildSockets: Send + Sync + 'static {
    fn socket(&self, domain: Domain, ty: Type) -> std::io::Result<Socket>;
}

/// The child-netns routing that returns a UDP service's replies to flow sockets bound
/// transparently to their clients' addresses (see `udp.rs`). A reply datagram carries no mark
/// (a UDP service's socket is not accepted from a marked packet, unlike TCP's), so the route
/// is chosen by the service's source port instead, and for a target that is not loopback
/// (a container on a bridge inside the child's netns, whose replies arrive to be forwarded)
/// by its address as well, so the container's other traffic from that port is untouched.
pub trait ReplyRoutes: Send + Sync + 'static {
    /// Adds (or removes) the rule that delivers locally what UDP port `port` sends (from
    /// `from` only, when given).
    fn udp_source_port(
        &self,
        v6: bool,
        from: Option<IpAddr>,
        port: u16,
        add: bool,
    ) -> Result<(), String>;
}

/// A UDP reply rule: family, source address (none for loopback targets), source port.
type ReplyRuleKey = (bool, Option<IpAddr>, u16);

/// Sockets in the caller's own network namespace.
pub struct HostSockets;

impl ChildSockets for HostSockets {
    fn socket(&self, domain: Domain, ty: Type) -> std::io::Result<Socket> {
        Socket::new(domain, ty.cloexec(), None)
    }
}

/// Sockets made by the parent's thread inside the child's network namespace.
pub struct NetnsThreadSockets(pub Arc<nsnet_ns::netns::NetnsThread>);

impl ChildSockets for NetnsThreadSockets {
    fn socket(&self, domain: Domain, ty: Type) -> std::io::Result<Socket> {
        self.0.run(move || Socket::new(domain, ty.cloexec(), None))
    }
}

struct Published {
    status: PortStatus,
    /// The UDP reply rule this port holds a reference on.
    reply_rule: Option<ReplyRuleKey>,
    stop: oneshot::Sender<()>,
    /// The listener's task; it drops the listening socket when it returns.
    task: tokio::task::JoinHandle<()>,
}

struct State {
    next_id: u64,
    ports: BTreeMap<u64, Published>,
    /// References on each UDP reply rule: two published ports may share a child port.
    reply_rules: BTreeMap<ReplyRuleKey, usize>,
}

/// The set of published ports of one instance.
pub struct PortManager {
    sockets: Arc<dyn ChildSockets>,
    runtime: tokio::runtime::Handle,
    /// The firewall mark of the child's source-IP routing, when it is set up.
    source_ip_mark: Option<u32>,
    /// The UDP half of the source-IP routing, when it is set up.
    reply_routes: Option<Arc<dyn ReplyRoutes>>,
    /// Where listeners are made, when not in the caller's own network namespace.
    listen_sockets: Option<Arc<dyn ChildSockets>>,
    /// Addresses of the child's own besides loopback: TCP targets there keep the client's
    /// address too (their replies are local, so the mark route brings them back).
    local_targets: Vec<IpAddr>,
    state: Mutex<State>,
}

/// The client's address as the child should see it (an IPv4 client of a dual-stack listener
/// arrives as `::ffff:a.b.c.d`).
pub(crate) fn unmapped(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(|v4| SocketAddr::new(v4.into(), a.port()))
            .unwrap_or(a),
        _ => a,
    }
}

/// A non-blocking socket in the child bound to `source`, an address that is not the child's
/// own (IP_TRANSPARENT), so that the target sees the client. The client's port is kept when it
/// is free in the child, else any port of the client's address. `mark`, when given, is set
/// before the bind.
pub(crate) fn transparent_socket(
    sockets: &dyn ChildSockets,
    ty: Type,
    target: SocketAddr,
    source: SocketAddr,
    mark: Option<u32>,
) -> std::io::Result<Socket> {
    let s = sockets.socket(Domain::for_address(target), ty)?;
    if target.is_ipv4() {
        s.set_ip_transparent_v4(true)?;
    } else {
        s.set_ip_transparent_v6(true)?;
    }
    if let Some(mark) = mark {
        s.set_mark(mark)?;
    }
    s.set_nonblocking(true)?;
    if s.bind(&source.into()).is_err() {
        s.bind(&SocketAddr::new(source.ip(), 0).into())?;
    }
    Ok(s)
}

/// RootlessKit's `ValidatePortSpec`: the spec's own rules, then no conflict with a port
/// already published (`published`: id and spec of each).
pub(crate) fn validate<'a>(
    spec: &PortSpec,
    published: impl IntoIterator<Item = (u64, &'a PortSpec)>,
) -> Result<spec::Plan, PortError> {
    let plan = spec.plan()?;
    no_conflict(spec, published)?;
    Ok(plan)
}

/// RootlessKit's conflict rule: the same proto and parent address as a published port.
pub(crate) fn no_conflict<'a>(
    spec: &PortSpec,
    published: impl IntoIterator<Item = (u64, &'a PortSpec)>,
) -> Result<(), PortError> {
    match published.into_iter().find(|(_, p)| p.conflicts_with(spec)) {
        Some((id, _)) => Err(PortError::Conflict(id)),
        None => Ok(()),
    }
}

/// `net.ipv4.ip_unprivileged_port_start`, when readable.
fn unprivileged_port_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Go's wording of a failed listen, plus RootlessKit's advice for privileged ports.
fn listen_error(proto: &str, addr: SocketAddr, e: &std::io::Error) -> PortError {
    let errno = nix::Error::from_raw(e.raw_os_error().unwrap_or(0));
    let net = if proto.starts_with("udp") {
        "udp"
    } else {
        "tcp"
    };
    let base = format!("listen {net} {addr}: bind: {}", errno.desc().to_lowercase());
    let denied = matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM));
    match unprivileged_port_start() {
        Some(start) if denied && addr.port() < start => PortError::Listen(format!(
            "cannot expose privileged port {p}, you can add 'net.ipv4.ip_unprivileged_port_start={p}' to /etc/sysctl.conf (currently {start}), or choose a larger port number (>= {start}): {base}",
            p = addr.port()
        )),
        _ => PortError::Listen(base),
    }
}

/// The listening socket of a plan, made by `maker` (in another network namespace) or in the
/// caller's own, and bound to interface `device` when given (SO_BINDTODEVICE: unprivileged
/// on a socket not yet bound to a device, since Linux 5.7).
fn bind(
    plan: &spec::Plan,
    maker: Option<&dyn ChildSockets>,
    device: Option<&str>,
) -> std::io::Result<Socket> {
    let ty = match plan.transport {
        Transport::Tcp => Type::STREAM,
        Transport::Udp => Type::DGRAM,
    };
    let proto = match plan.transport {
        Transport::Tcp => Protocol::TCP,
        Transport::Udp => Protocol::UDP,
    };
    let domain = Domain::for_address(plan.listen);
    let s = match maker {
        Some(m) => m.socket(domain, ty)?,
        None => Socket::new(domain, ty.cloexec(), Some(proto))?,
    };
    if let Some(d) = device {
        s.bind_device(Some(d.as_bytes()))?;
    }
    if plan.listen.is_ipv6() {
        s.set_only_v6(!plan.dual_stack)?;
    }
    if plan.transport == Transport::Tcp {
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&plan.listen.into())?;
    if plan.transport == Transport::Tcp {
        // The kernel caps this at net.core.somaxconn (4096 by default): as many completed
        // handshakes as it allows wait there while the relay is at its budget.
        s.listen(4096)?;
    }
    Ok(s)
}

impl PortManager {
    /// A manager whose forwarding tasks run on `runtime`.
    pub fn new(sockets: Arc<dyn ChildSockets>, runtime: tokio::runtime::Handle) -> Self {
        PortManager {
            sockets,
            runtime,
            source_ip_mark: None,
            reply_routes: None,
            listen_sockets: None,
            local_targets: Vec::new(),
            state: Mutex::new(State {
                next_id: 1,
                ports: BTreeMap::new(),
                reply_rules: BTreeMap::new(),
            }),
        }
    }

    /// Keeps TCP clients' source addresses, given the child's routing for `mark` is in place
    /// (see `tcp.rs`).
    pub fn with_source_ip(mut self, mark: u32) -> Self {
        self.source_ip_mark = Some(mark);
        self
    }

    /// Counts `addrs` as the child's own, like its loopback, for keeping TCP clients'
    /// addresses (pasta's model, where the target is the namespace's external address).
    pub fn with_local_targets(mut self, addrs: Vec<IpAddr>) -> Self {
        self.local_targets = addrs;
        self
    }

    /// Keeps UDP clients' source addresses too, with `routes` adding the per-port reply rules.
    pub fn with_udp_source_ip(mut self, routes: Arc<dyn ReplyRoutes>) -> Self {
        self.reply_routes = Some(routes);
        self
    }

    /// Makes the listeners with `sockets` instead of in the caller's own network namespace:
    /// pasta's `-T/-U` listen inside the namespace and reach the host's loopback, the reverse
    /// of a published port, on the same relay.
    pub fn with_listen_sockets(mut self, sockets: Arc<dyn ChildSockets>) -> Self {
        self.listen_sockets = Some(sockets);
        self
    }

    /// Takes a reference on the reply rule for a UDP target, adding the rule on the first.
    /// `None` when UDP source addresses are not kept for this target (then flows use plain
    /// connected sockets and the service sees the child-side address).
    fn hold_reply_rule(&self, target: SocketAddr) -> Option<ReplyRuleKey> {
        let routes = self.reply_routes.as_ref()?;
        let target = unmapped(target);
        // A loopback target is a service of the child itself: its port says it all. Any
        // other target (a container's address) replies from that address, so the rule is
        // narrowed to it.
        let from = (!target.ip().is_loopback()).then_some(target.ip());
        let key = (target.is_ipv6(), from, target.port());
        let mut st = self.state.lock().expect("port state lock");
        let n = st.reply_rules.entry(key).or_insert(0);
        if *n == 0
            && let Err(e) = routes.udp_source_port(key.0, key.1, key.2, true)
        {
            tracing::warn!(port = key.2, "UDP source IP not kept for this port: {e}");
            st.reply_rules.remove(&key);
            return None;
        }
        *n += 1;
        Some(key)
    }

    fn release_reply_rule(&self, key: ReplyRuleKey) {
        let mut st = self.state.lock().expect("port state lock");
        let Some(n) = st.reply_rules.get_mut(&key) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            st.reply_rules.remove(&key);
            if let Some(routes) = &self.reply_routes
                && let Err(e) = routes.udp_source_port(key.0, key.1, key.2, false)
            {
                tracing::warn!(port = key.2, "removing the UDP reply rule: {e}");
            }
        }
    }

    /// Publishes a port: validates, checks conflicts, binds, starts forwarding.
    pub fn add(&self, spec: PortSpec) -> Result<PortStatus, PortError> {
        self.add_on_device(spec, None)
    }

    /// [`PortManager::add`], the listener bound to interface `device` (pasta's `ADDR%IFACE/`).
    pub fn add_on_device(
        &self,
        spec: PortSpec,
        device: Option<&str>,
    ) -> Result<PortStatus, PortError> {
        let plan = {
            let st = self.state.lock().expect("port state lock");
            validate(&spec, st.ports.iter().map(|(id, p)| (*id, &p.status.spec)))?
        };
        let sock = bind(&plan, self.listen_sockets.as_deref(), device)
            .map_err(|e| listen_error(&spec.proto, plan.listen, &e))?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let mut reply_rule = None;
        let _guard = self.runtime.enter();
        let sockets = self.sockets.clone();
        let task = match plan.transport {
            Transport::Tcp => {
                let l = tokio::net::TcpListener::from_std(sock.into())
                    .map_err(|e| listen_error(&spec.proto, plan.listen, &e))?;
                let local = plan.target.ip().is_loopback()
                    || self.local_targets.contains(&unmapped(plan.target).ip());
                self.runtime.spawn(tcp::serve(
                    l,
                    plan.target,
                    sockets,
                    self.source_ip_mark.filter(|_| local),
                    connection_budget(),
                    stop_rx,
                ))
            }
            Transport::Udp => {
                let u = tokio::net::UdpSocket::from_std(sock.into())
                    .map_err(|e| listen_error(&spec.proto, plan.listen, &e))?;
                reply_rule = self.hold_reply_rule(plan.target);
                self.runtime.spawn(udp::serve(
                    u,
                    plan.target,
                    sockets,
                    reply_rule.is_some(),
                    stop_rx,
                ))
            }
        };
        let mut st = self.state.lock().expect("port state lock");
        let id = st.next_id;
        st.next_id += 1;
        let status = PortStatus { id, spec };
        st.ports.insert(
            id,
            Published {
                status: status.clone(),
                reply_rule,
                stop: stop_tx,
                task,
            },
        );
        tracing::debug!(id, spec = %status.spec.text(), "published");
        Ok(status)
    }

    /// Every published port, by id.
    pub fn list(&self) -> Vec<PortStatus> {
        let st = self.state.lock().expect("port state lock");
        st.ports.values().map(|p| p.status.clone()).collect()
    }

    /// Stops listening on a port; when this returns the port is closed (connections already
    /// accepted keep going, as in RootlessKit).
    pub async fn remove(&self, id: u64) -> Result<(), PortError> {
        let p = {
            let mut st = self.state.lock().expect("port state lock");
            st.ports.remove(&id).ok_or(PortError::UnknownId(id))?
        };
        let _ = p.stop.send(());
        let _ = p.task.await;
        if let Some(key) = p.reply_rule {
            self.release_reply_rule(key);
        }
        Ok(())
    }
}

/// Descriptors one relayed TCP connection holds: its two sockets and a pipe (two ends) per
/// direction.
const FDS_PER_CONNECTION: u64 = 6;
/// Descriptors left for everything else: listeners, UDP flows, the API, the stack, the tap.
const FD_RESERVE: u64 = 512;

/// How many TCP connections this process relays at once, shared by every port and manager.
/// A listener takes a connection only with a place in the budget, so a burst larger than the
/// descriptor limit allows waits in the kernel — completed handshakes in the listen backlog,
/// then SYNs the client retransmits — instead of being accepted and reset when a socket or
/// a pipe cannot be made (EMFILE): under a 5,000-connection burst with the hard limit at
/// 20,000 descriptors, 404 of 5,000 connections were reset or cut short that way.
pub(crate) fn connection_budget() -> Arc<tokio::sync::Semaphore> {
    static BUDGET: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    BUDGET
        .get_or_init(|| {
            raise_fd_limit();
            let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024);
            let n = (limit.saturating_sub(FD_RESERVE) / FDS_PER_CONNECTION).max(16);
            Arc::new(tokio::sync::Semaphore::new(n.min(1 << 20) as usize))
        })
        .clone()
}

/// Raises the soft descriptor limit to the hard one: each relayed connection holds two
/// sockets and two pipes, so the usual soft limit of 1024 caps a port at ~250 connections.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
