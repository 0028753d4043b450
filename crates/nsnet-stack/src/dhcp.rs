//! The DHCP server, for guests that do not configure their address statically.
//!
//! # Theory of operation (RFC 2131, options in RFC 2132)
//!
//! Leases come from CIDR+15 to CIDR+30 (slirp4netns's pool; the first lease is CIDR+15), one
//! per client MAC, for a day, and are never taken back while the stack runs (sixteen
//! clients is all slirp offers too). DISCOVER gets an OFFER; REQUEST for the client's lease
//! (option 50, or `ciaddr` when renewing) gets an ACK, any other address a NAK. Replies carry
//! the router (gateway), the DNS address, the subnet mask, the interface MTU (option 26) and
//! the server identifier (the gateway), and go to the broadcast address, which every client
//! accepts before it has an address.

use std::net::Ipv4Addr;

use smoltcp::wire::{
    DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress, Ipv4Address, UdpPacket,
};

use crate::stack::Ctx;
use crate::wire::UDP_HDR_LEN;

const POOL: u32 = 16;
const LEASE_SECS: u32 = 86400;

pub(crate) fn is_dhcp_request(l4: &[u8]) -> bool {
    l4.len() >= UDP_HDR_LEN && l4[2..4] == 67u16.to_be_bytes()
}

pub(crate) struct Dhcp {
    leases: Vec<(EthernetAddress, Ipv4Addr)>,
    first: Ipv4Addr,
}

impl Dhcp {
    pub fn new(cfg: &crate::Config) -> Dhcp {
        Dhcp {
            leases: Vec::new(),
            first: cfg.dhcp_start(),
        }
    }

    fn lease(&mut self, mac: EthernetAddress) -> Option<Ipv4Addr> {
        if let Some((_, ip)) = self.leases.iter().find(|(m, _)| *m == mac) {
            return Some(*ip);
        }
        let n = self.leases.len() as u32;
        if n >= POOL {
            return None;
        }
        let ip = Ipv4Addr::from(u32::from(self.first) + n);
        self.leases.push((mac, ip));
        Some(ip)
    }

    pub fn handle(&mut self, ctx: &mut Ctx<'_>, l4: &[u8]) {
        let Ok(udp) = UdpPacket::new_checked(l4) else {
            return;
        };
        let Ok(pkt) = DhcpPacket::new_checked(udp.payload()) else {
            return;
        };
        let Ok(req) = DhcpRepr::parse(&pkt) else {
            return;
        };
        let mac = req.client_hardware_address;
        let Some(lease) = self.lease(mac) else { return };
        let kind = match req.message_type {
            DhcpMessageType::Discover => DhcpMessageType::Offer,
            DhcpMessageType::Request => {
                let asked = req.requested_ip.unwrap_or(req.client_ip);
                if asked == lease {
                    DhcpMessageType::Ack
                } else {
                    DhcpMessageType::Nak
                }
            }
            _ => return,
        };
        let cfg = ctx.cfg;
        let gw = cfg.gateway();
        let dns = cfg.dns().octets();
        let mtu = (cfg.mtu.min(65535) as u16).to_be_bytes();
        let extra = [
            DhcpOption {
                kind: 6,
                data: &dns,
            },
            DhcpOption {
                kind: 26,
                data: &mtu,
            },
        ];
        let nak = kind == DhcpMessageType::Nak;
        let reply = DhcpRepr {
            message_type: kind,
            transaction_id: req.transaction_id,
            secs: 0,
            client_hardware_address: mac,
            client_ip: Ipv4Address::UNSPECIFIED,
            your_ip: if nak { Ipv4Address::UNSPECIFIED } else { lease },
            server_ip: gw,
            router: (!nak).then_some(gw),
            subnet_mask: (!nak).then_some(cfg.netmask()),
            relay_agent_ip: Ipv4Address::UNSPECIFIED,
            broadcast: true,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(gw),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: (!nak).then_some(LEASE_SECS),
            renew_duration: None,
            rebind_duration: None,
            additional_options: if nak { &[] } else { &extra },
        };
        let mut l4 = vec![0u8; UDP_HDR_LEN + reply.buffer_len()];
        let mut pkt = DhcpPacket::new_unchecked(&mut l4[UDP_HDR_LEN..]);
        if reply.emit(&mut pkt).is_err() {
            return;
        }
        let src = std::net::SocketAddr::from((gw, 67));
        let dst = std::net::SocketAddr::from((Ipv4Addr::BROADCAST, 68));
        crate::udp::emit_udp(&mut l4, src, dst);
        ctx.send_ipv4(gw, Ipv4Addr::BROADCAST, 17, &l4);
    }
}
