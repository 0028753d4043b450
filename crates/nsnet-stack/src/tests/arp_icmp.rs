//! What the gateway answers itself on the link (ARP for the gateway and DNS addresses, echo
//! requests to the gateway), and echo requests to elsewhere through a host ping socket.

use super::*;

#[test]
fn arp_answers_gateway_and_dns_only() {
    let mut h = H::default();
    for (target, answered) in [(GW, true), (DNS, true), (Ipv4Addr::new(10, 0, 2, 9), false)] {
        let mut f = vec![0u8; VNET_HDR_LEN + 14 + 28];
        let mut eth = EthernetFrame::new_unchecked(&mut f[VNET_HDR_LEN..]);
        eth.set_dst_addr(EthernetAddress::BROADCAST);
        eth.set_src_addr(GUEST_MAC);
        eth.set_ethertype(EthernetProtocol::Arp);
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: GUEST_MAC,
            source_protocol_addr: GUEST,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        }
        .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        h.send(f);
        let outs = h.take();
        if !answered {
            assert!(outs.is_empty());
            continue;
        }
        assert_eq!(outs.len(), 1);
        let arp = ArpRepr::parse(&ArpPacket::new_checked(&outs[0].l4[..]).unwrap()).unwrap();
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = arp
        else {
            panic!()
        };
        assert_eq!(operation, ArpOperation::Reply);
        assert_eq!(source_protocol_addr, target);
        assert_eq!(target_protocol_addr, GUEST);
        let o = target.octets();
        assert_eq!(
            source_hardware_addr,
            EthernetAddress([0x52, 0x55, o[0], o[1], o[2], o[3]])
        );
    }
}

#[test]
fn ping_to_gateway_is_answered_even_without_host_loopback() {
    for disable in [false, true] {
        let mut cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
        cfg.disable_host_loopback = disable;
        let mut h = H::new(cfg);
        h.send(echo(GW, 0x1234));
        let outs = h.take();
        assert_eq!(outs.len(), 1);
        let o = &outs[0];
        assert_eq!((o.src, o.dst, o.proto), (GW, GUEST, 1));
        assert_eq!(o.l4[0], 0, "echo reply");
        assert_eq!(&o.l4[4..], &[0x12, 0x34, 0, 1, b'h', b'i']);
        assert_eq!(wire::fold(wire::sum(0, &o.l4)), 0xffff);
    }
}

#[test]
fn ping_elsewhere_is_forwarded_or_clearly_unreachable() {
    // Whether ping sockets work depends on net.ipv4.ping_group_range in this world: either
    // way the guest gets an answer, never silence.
    let mut h = H::default();
    h.send(echo(Ipv4Addr::new(127, 0, 0, 1), 7));
    let outs = h.wait_for(|o| !o.is_empty());
    let o = &outs[0];
    assert_eq!(o.proto, 1);
    match o.l4[0] {
        0 => assert_eq!(&o.l4[4..6], &[0, 7], "the guest's identifier restored"),
        3 => assert_eq!(o.l4[1], 1, "host unreachable"),
        t => panic!("unexpected ICMP type {t}"),
    }
}
