//! UDP NAT: flows to host sockets and back, their idle expiry, port unreachable, and IPv4
//! fragmentation both ways (replies fragmented to the MTU, guest fragments reassembled).

use super::*;

#[test]
fn udp_nat_round_trip_and_idle_expiry() {
    let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
    srv.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = srv.local_addr().unwrap().port();
    let mut h = H::default();
    h.send(udp(GUEST, SocketAddrV4::new(GW, port), 5353, b"ping"));
    let mut b = [0u8; 16];
    let (n, from) = srv.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], b"ping");
    srv.send_to(b"pong", from).unwrap();
    let outs = h.wait_for(|o| o.iter().any(|o| o.proto == 17));
    let o = outs.iter().find(|o| o.proto == 17).unwrap();
    assert_eq!((o.src, o.dst), (GW, GUEST));
    let u = UdpPacket::new_checked(&o.l4[..]).unwrap();
    assert_eq!(
        (u.src_port(), u.dst_port(), u.payload()),
        (port, 5353, &b"pong"[..])
    );
    assert_eq!(h.stack.flow_counts().1, 1);
    h.advance(Duration::from_secs(59));
    assert_eq!(h.stack.flow_counts().1, 1);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.stack.flow_counts().1, 0, "idle flow expired");
}

#[test]
fn udp_to_a_closed_port_yields_port_unreachable() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut h = H::default();
    h.send(udp(GUEST, SocketAddrV4::new(GW, port), 5354, b"x"));
    let outs = h.wait_for(|o| o.iter().any(|o| o.proto == 1));
    let o = outs.iter().find(|o| o.proto == 1).unwrap();
    assert_eq!((o.l4[0], o.l4[1]), (3, 3), "port unreachable");
}

#[test]
fn large_udp_replies_are_fragmented_to_the_mtu() {
    let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
    srv.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = srv.local_addr().unwrap().port();
    let cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24)
        .unwrap()
        .with_mtu(1500)
        .unwrap();
    let mut h = H::new(cfg);
    h.send(udp(GUEST, SocketAddrV4::new(GW, port), 5355, b"q"));
    let mut b = [0u8; 4];
    let (_, from) = srv.recv_from(&mut b).unwrap();
    let big: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    srv.send_to(&big, from).unwrap();
    let outs = h.wait_for(|o| o.iter().filter(|o| o.proto == 17).count() == 3);
    let mut whole = Vec::new();
    for o in outs.iter().filter(|o| o.proto == 17) {
        assert!(o.raw.len() - VNET_HDR_LEN - 14 <= 1500);
        assert_eq!(((o.frag & 0x1fff) * 8) as usize, whole.len());
        whole.extend_from_slice(&o.l4);
    }
    assert_eq!(&whole[8..], &big[..]);
    let s = wire::pseudo_sum(GW, GUEST, 17, whole.len());
    assert_eq!(
        wire::fold(wire::sum(s, &whole)),
        0xffff,
        "checksum over the whole datagram"
    );
}

#[test]
fn fragmented_guest_datagrams_reach_the_host_whole() {
    let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
    srv.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = srv.local_addr().unwrap().port();
    let mut h = H::default();
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let whole = udp(GUEST, SocketAddrV4::new(GW, port), 6000, &data);
    let ip = &whole[VNET_HDR_LEN + 14..];
    let l4 = &ip[20..];
    // Second half first, then the first half.
    for (off, more) in [(1480usize, false), (0, true)] {
        let end = if more { 1480 } else { l4.len() };
        let mut f = frame(GUEST, GW, 17, &l4[off..end]);
        let h4 = VNET_HDR_LEN + 14;
        let fo = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
        f[h4 + 4..h4 + 6].copy_from_slice(&77u16.to_be_bytes());
        f[h4 + 6..h4 + 8].copy_from_slice(&fo.to_be_bytes());
        f[h4 + 10..h4 + 12].fill(0);
        let c = !wire::fold(wire::sum(0, &f[h4..h4 + 20]));
        f[h4 + 10..h4 + 12].copy_from_slice(&c.to_be_bytes());
        h.send(f);
    }
    let mut b = vec![0u8; 4000];
    let (n, _) = srv.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], &data[..]);
}

#[test]
fn a_tunnels_partial_inner_checksum_is_completed_before_the_payload_leaves() {
    // What a guest's VXLAN device sends: outer UDP to port 8472 whose payload is a VXLAN
    // header, an inner Ethernet frame and an inner IPv4 + TCP segment. The inner TCP
    // checksum is partial (the pseudo-header sum only) and the vnet header points at it;
    // the kernel filled the outer UDP checksum by local checksum offload.
    let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
    srv.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = srv.local_addr().unwrap().port();
    let (isrc, idst) = (Ipv4Addr::new(10, 244, 1, 0), Ipv4Addr::new(10, 244, 2, 0));
    let data = b"inner tcp payload";
    let tcp_len = 20 + data.len();
    let mut inner = vec![0x08, 0, 0, 0, 0, 0, 1, 0]; // VXLAN: I flag, VNI 1
    inner.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let mut ip4 = [0u8; 20];
    ip4[0] = 0x45;
    ip4[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
    ip4[8] = 64;
    ip4[9] = 6;
    ip4[12..16].copy_from_slice(&isrc.octets());
    ip4[16..20].copy_from_slice(&idst.octets());
    let c = !wire::fold(wire::sum(0, &ip4));
    ip4[10..12].copy_from_slice(&c.to_be_bytes());
    inner.extend_from_slice(&ip4);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&7000u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH|ACK
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    // The kernel's partial checksum: the folded pseudo-header sum, not inverted.
    let partial = wire::fold(wire::pseudo_sum(isrc, idst, 6, tcp_len));
    tcp[16..18].copy_from_slice(&partial.to_be_bytes());
    inner.extend_from_slice(&tcp);
    inner.extend_from_slice(data);
    let tcp_at = 8 + 14 + 20; // in the outer UDP payload
    let mut f = udp(GUEST, SocketAddrV4::new(GW, port), 41234, &inner);
    VnetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: 0,
        hdr_len: 0,
        gso_size: 0,
        csum_start: (14 + 20 + 8 + tcp_at) as u16,
        csum_offset: 16,
    }
    .emit(&mut f);
    let mut h = H::default();
    h.send(f);
    let mut b = vec![0u8; 200];
    let (n, _) = srv.recv_from(&mut b).unwrap();
    let got = &b[..n];
    assert_eq!(n, inner.len());
    assert_eq!(
        &got[..tcp_at + 16],
        &inner[..tcp_at + 16],
        "headers before it untouched"
    );
    assert_eq!(
        &got[tcp_at + 18..],
        &inner[tcp_at + 18..],
        "only the checksum changes"
    );
    let seg = &got[tcp_at..];
    assert_eq!(
        wire::fold(wire::sum(wire::pseudo_sum(isrc, idst, 6, tcp_len), seg)),
        0xffff,
        "the inner TCP checksum verifies at the peer"
    );
    // A partial checksum of the outer UDP header itself is not the payload's business:
    // the same datagram with csum_start on the outer header arrives byte for byte.
    let mut f = udp(GUEST, SocketAddrV4::new(GW, port), 41235, &inner);
    VnetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: 0,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 14 + 20,
        csum_offset: 6,
    }
    .emit(&mut f);
    h.send(f);
    let (n, _) = srv.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], &inner[..]);
}
