//! The services on the guest's network: the DNS forwarder at CIDR+3 (and the resolv.conf
//! parsing that feeds it) and DHCP leases from CIDR+15.

use super::*;

#[test]
fn dns_forwarder_reaches_a_loopback_resolver_even_without_host_loopback() {
    let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
    resolver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
    cfg.disable_host_loopback = true;
    cfg.nameservers = crate::nameservers_from_resolv_conf(
        "# test\nsearch example\nnameserver 127.0.0.1\nnameserver ::1\n",
    )
    .into_iter()
    .map(|_| match resolver.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        _ => unreachable!(),
    })
    .collect();
    assert_eq!(cfg.nameservers.len(), 1, "IPv6 nameservers are skipped");
    let mut h = H::new(cfg);
    let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04test\x00\x00\x01\x00\x01";
    h.send(udp(GUEST, SocketAddrV4::new(DNS, 53), 33333, query));
    let mut b = [0u8; 512];
    let (n, from) = resolver.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], query);
    let mut answer = query.to_vec();
    answer[2] = 0x81;
    resolver.send_to(&answer, from).unwrap();
    let outs = h.wait_for(|o| o.iter().any(|o| o.proto == 17));
    let o = outs.iter().find(|o| o.proto == 17).unwrap();
    assert_eq!(o.src, DNS);
    let u = UdpPacket::new_checked(&o.l4[..]).unwrap();
    assert_eq!((u.src_port(), u.payload()), (53, &answer[..]));
    // Other ports on the DNS address go nowhere.
    h.send(udp(GUEST, SocketAddrV4::new(DNS, 54), 33334, b"x"));
    assert_eq!(h.take()[0].l4[0..2], [3, 0]);
}

#[test]
fn resolv_conf_parsing_keeps_ipv4_nameservers_in_order() {
    let ns = crate::nameservers_from_resolv_conf(
        "nameserver 127.0.0.53\n  nameserver   10.9.9.9 # x\nnameserverx 1.1.1.1\nnameserver bogus\n",
    );
    assert_eq!(
        ns,
        vec![
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 53), 53),
            SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 53)
        ]
    );
}

fn dhcp_reply(h: &mut H, mac: EthernetAddress) -> (DhcpMessageType, Ipv4Addr, Vec<u8>) {
    let outs = h.take();
    assert_eq!(outs.len(), 1);
    let o = &outs[0];
    assert_eq!((o.src, o.dst), (GW, Ipv4Addr::BROADCAST));
    assert_eq!(o.dst_mac, mac, "to the client's MAC");
    let u = UdpPacket::new_checked(&o.l4[..]).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (67, 68));
    let p = DhcpPacket::new_checked(u.payload()).unwrap();
    let r = DhcpRepr::parse(&p).unwrap();
    if r.message_type != DhcpMessageType::Nak {
        assert_eq!(r.router, Some(GW));
        assert_eq!(r.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(r.server_identifier, Some(GW));
        assert_eq!(r.dns_servers.as_deref(), Some(&[DNS][..]));
    }
    (r.message_type, r.your_ip, u.payload().to_vec())
}

#[test]
fn dhcp_leases_from_cidr_plus_15() {
    let mut h = H::default();
    let a = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    let b = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
    h.send(dhcp(DhcpMessageType::Discover, a, None));
    let (k, ip, _) = dhcp_reply(&mut h, a);
    assert_eq!(
        (k, ip),
        (DhcpMessageType::Offer, Ipv4Addr::new(10, 0, 2, 15))
    );
    h.send(dhcp(DhcpMessageType::Request, a, Some(ip)));
    assert_eq!(dhcp_reply(&mut h, a).0, DhcpMessageType::Ack);
    h.send(dhcp(DhcpMessageType::Discover, b, None));
    assert_eq!(dhcp_reply(&mut h, b).1, Ipv4Addr::new(10, 0, 2, 16));
    h.send(dhcp(
        DhcpMessageType::Request,
        b,
        Some(Ipv4Addr::new(10, 0, 2, 15)),
    ));
    assert_eq!(
        dhcp_reply(&mut h, b).0,
        DhcpMessageType::Nak,
        "another client's lease"
    );
    h.send(dhcp(DhcpMessageType::Discover, a, None));
    assert_eq!(
        dhcp_reply(&mut h, a).1,
        Ipv4Addr::new(10, 0, 2, 15),
        "stable per MAC"
    );
}
