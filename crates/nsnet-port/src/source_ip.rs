//! The child-netns routing that lets published ports keep their clients' addresses: the relay
//! binds its child-side socket to the client's address (IP_TRANSPARENT) and the routing here
//! brings the target's replies to that address back to it.
//!
//! `ip rule add fwmark MARK lookup MARK`, `ip route add local default dev lo table MARK`
//! (IPv4; IPv6 where the kernel has it), and `net.ipv4.tcp_fwmark_accept=1` so a server's
//! accepted socket carries the mark of the SYN (RootlessKit v3's `--source-ip-transparent`
//! does the same with iptables; the targets are sockets local to the child, which need no
//! connmark, so netlink alone does). UDP replies carry no mark: [`NetnsReplyRoutes`] adds a
//! rule per published UDP target (its port, and its address when it is not loopback).
//! Shared by the launcher's builtin driver and the pasta personality.

use std::sync::Arc;

use nsnet_ns::netns::NetnsThread;

/// Firewall mark and routing table (RootlessKit's 100).
pub const MARK: u32 = 100;

/// Priority of the UDP reply rules (after the TCP fwmark rule's 100).
const UDP_REPLY_RULE_PRIORITY: u32 = 101;

/// Sets up the routing in the calling thread's network namespace (run it on the thread
/// that lives there).
pub fn routing() -> Result<(), String> {
    std::fs::write("/proc/sys/net/ipv4/tcp_fwmark_accept", "1")
        .map_err(|e| format!("net.ipv4.tcp_fwmark_accept: {e}"))?;
    let lo = nsnet_netlink::link_index("lo").map_err(|e| e.to_string())?;
    let mut nl = nsnet_netlink::Netlink::open().map_err(|e| e.to_string())?;
    nl.add_fwmark_rule(false, MARK, MARK, 100)
        .map_err(|e| e.to_string())?;
    nl.add_local_default_route(false, lo, MARK)
        .map_err(|e| e.to_string())?;
    if nl.add_fwmark_rule(true, MARK, MARK, 100).is_ok() {
        let _ = nl.add_local_default_route(true, lo, MARK);
    }
    Ok(())
}

/// The UDP reply rules, added and removed by the thread that lives in the child's netns.
pub struct NetnsReplyRoutes(pub Arc<NetnsThread>);

impl crate::ReplyRoutes for NetnsReplyRoutes {
    fn udp_source_port(
        &self,
        v6: bool,
        from: Option<std::net::IpAddr>,
        port: u16,
        add: bool,
    ) -> Result<(), String> {
        self.0.run(move || {
            let mut nl = nsnet_netlink::Netlink::open().map_err(|e| e.to_string())?;
            nl.udp_sport_rule(add, v6, from, port, MARK, UDP_REPLY_RULE_PRIORITY)
                .map_err(|e| e.to_string())
        })
    }
}
