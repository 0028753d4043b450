//! Host forwards into the guest (slirp4netns's hostfwd): the stack opens the connection.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;

use super::*;
use crate::Forward;

fn guest_arp_reply(h: &mut H) {
    let mut f = vec![0u8; VNET_HDR_LEN + 14 + 28];
    let mut eth = EthernetFrame::new_unchecked(&mut f[VNET_HDR_LEN..]);
    eth.set_dst_addr(crate::mac_for(GW));
    eth.set_src_addr(GUEST_MAC);
    eth.set_ethertype(EthernetProtocol::Arp);
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: GUEST_MAC,
        source_protocol_addr: GUEST,
        target_hardware_addr: crate::mac_for(GW),
        target_protocol_addr: GW,
    }
    .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    h.send(f);
}

fn dport(o: &Out) -> u16 {
    u16::from_be_bytes([o.l4[2], o.l4[3]])
}

fn tcp_forward(h: &mut H, id: u32, guest_port: u16) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    h.stack
        .add_forward(Forward {
            id,
            udp: false,
            listener: OwnedFd::from(l),
            guest: SocketAddrV4::new(GUEST, guest_port).into(),
        })
        .unwrap();
    addr
}

/// Connects a host client through the forward and completes the guest's side of the
/// handshake; returns the client, the gateway port the guest sees, and our ISN + 1.
fn forwarded(h: &mut H, at: SocketAddr, isn: u32) -> (TcpStream, u16, u32) {
    let client = TcpStream::connect(at).unwrap();
    let outs = h.wait_for(|o| o.iter().any(|o| o.proto == 6));
    let syn = outs.iter().find(|o| o.proto == 6).unwrap();
    assert_eq!((syn.src, syn.dst, dport(syn)), (GW, GUEST, 8080));
    assert_eq!(syn.dst_mac, GUEST_MAC);
    let s = seg(syn);
    assert_eq!(s.flags, SYN);
    assert_eq!(s.mss, Some(65480));
    let gw_port = s.sport;
    assert!(crate::tcp::EPHEMERAL.contains(&gw_port));
    // The guest's SYN-ACK (guest port 8080 → gateway:gw_port).
    let to = SocketAddrV4::new(GW, gw_port);
    h.send(tcp(
        to,
        8080,
        isn,
        s.seq + 1,
        SYN | ACK,
        65535,
        &SYN_OPTS,
        b"",
    ));
    let ack = tcps(&h.take()).pop().expect("our ACK");
    assert_eq!((ack.flags, ack.ack, ack.seq), (ACK, isn + 1, s.seq + 1));
    (client, gw_port, s.seq + 1)
}

#[test]
fn tcp_forward_asks_arp_first_then_opens_and_relays_both_ways() {
    let mut h = H::default();
    let at = tcp_forward(&mut h, 1, 8080);
    let client = TcpStream::connect(at).unwrap();
    // The guest has sent nothing yet: its MAC is asked for first.
    let outs = h.wait_for(|o| !o.is_empty());
    assert_eq!(outs[0].proto, 0, "an ARP request: {outs:?}");
    assert_eq!(outs[0].dst_mac, EthernetAddress::BROADCAST);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(&outs[0].l4[..]).unwrap()).unwrap();
    let ArpRepr::EthernetIpv4 {
        operation,
        target_protocol_addr,
        source_protocol_addr,
        ..
    } = arp
    else {
        panic!()
    };
    assert_eq!(operation, ArpOperation::Request);
    assert_eq!((source_protocol_addr, target_protocol_addr), (GW, GUEST));
    guest_arp_reply(&mut h);
    let syn = tcps(&h.take())
        .pop()
        .expect("SYN once the guest's MAC is known");
    assert_eq!(syn.flags, SYN);
    drop(client);
    h.advance(Duration::from_millis(250));
    let again = tcps(&h.take());
    assert!(
        again.iter().any(|s| s.flags == SYN && s.seq == syn.seq),
        "SYN retransmitted on the timer: {} segments",
        again.len()
    );
}

#[test]
fn tcp_forward_round_trip_half_close_and_teardown() {
    let mut h = H::default();
    guest_arp_reply(&mut h);
    h.take();
    let at = tcp_forward(&mut h, 1, 8080);
    let (mut client, gw_port, our) = forwarded(&mut h, at, 5000);
    let to = SocketAddrV4::new(GW, gw_port);
    client.write_all(b"request").unwrap();
    let outs = h.wait_for(|o| tcps(o).iter().any(|s| !s.data.is_empty()));
    let data: Vec<u8> = tcps(&outs).iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(data, b"request");
    // The guest answers and closes; the client sees the answer and EOF.
    h.send(tcp(to, 8080, 5001, our + 7, ACK, 8192, &[], b"response"));
    h.send(tcp(to, 8080, 5009, our + 7, FIN | ACK, 8192, &[], b""));
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"response");
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let outs = h.wait_for(|o| tcps(o).iter().any(|s| s.flags & FIN != 0));
    let fin = tcps(&outs)
        .into_iter()
        .find(|s| s.flags & FIN != 0)
        .unwrap();
    assert_eq!((fin.seq, fin.ack), (our + 7, 5010));
    h.send(tcp(to, 8080, 5010, our + 8, ACK, 8192, &[], b""));
    assert_eq!(
        h.stack.flow_counts().0,
        0,
        "closed once both FINs are acked"
    );
}

#[test]
fn tcp_forward_refused_by_the_guest_resets_the_client() {
    let mut h = H::default();
    guest_arp_reply(&mut h);
    let at = tcp_forward(&mut h, 1, 8080);
    let mut client = TcpStream::connect(at).unwrap();
    let outs = h.wait_for(|o| o.iter().any(|o| o.proto == 6));
    let s = tcps(&outs).pop().unwrap();
    // A RST with a wrong ACK is ignored (RFC 9293 3.10.7.3); the right one aborts.
    let to = SocketAddrV4::new(GW, s.sport);
    h.send(tcp(to, 8080, 0, s.seq + 7, RST | ACK, 0, &[], b""));
    assert_eq!(h.stack.flow_counts().0, 1);
    h.send(tcp(to, 8080, 0, s.seq + 1, RST | ACK, 0, &[], b""));
    assert_eq!(h.stack.flow_counts().0, 0);
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut b = [0u8; 1];
    let e = client.read(&mut b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
}

#[test]
fn removing_a_tcp_forward_closes_its_port_but_keeps_open_connections() {
    let mut h = H::default();
    guest_arp_reply(&mut h);
    let at = tcp_forward(&mut h, 7, 8080);
    let (mut client, gw_port, our) = forwarded(&mut h, at, 9000);
    assert!(h.stack.remove_forward(7));
    assert!(!h.stack.remove_forward(7), "already gone");
    assert!(TcpStream::connect(at).is_err(), "port closed");
    h.send(tcp(
        SocketAddrV4::new(GW, gw_port),
        8080,
        9001,
        our,
        ACK,
        8192,
        &[],
        b"still here",
    ));
    let mut b = [0u8; 10];
    client.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"still here");
}

#[test]
fn many_forwarded_connections_get_distinct_gateway_ports() {
    let mut h = H::default();
    guest_arp_reply(&mut h);
    let at = tcp_forward(&mut h, 1, 8080);
    let clients: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(at).unwrap()).collect();
    let outs = h.wait_for(|o| tcps(o).len() >= 20);
    let mut ports: Vec<u16> = tcps(&outs).iter().map(|s| s.sport).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 20);
    assert_eq!(h.stack.flow_counts().0, 20);
    drop(clients);
}

#[test]
fn ephemeral_ports_wrap_and_skip_taken_ones() {
    let mut last = *crate::tcp::EPHEMERAL.end() - 1;
    let taken = |p: u16| p == *crate::tcp::EPHEMERAL.end() || p == 32768;
    assert_eq!(crate::tcp::next_ephemeral(&mut last, taken), Some(32769));
    let mut last = 0;
    assert_eq!(crate::tcp::next_ephemeral(&mut last, |_| true), None);
}

#[test]
fn udp_forward_round_trip_per_client_and_removal() {
    let mut h = H::default();
    guest_arp_reply(&mut h);
    let l = UdpSocket::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let at = l.local_addr().unwrap();
    h.stack
        .add_forward(Forward {
            id: 3,
            udp: true,
            listener: OwnedFd::from(l),
            guest: SocketAddrV4::new(GUEST, 5353).into(),
        })
        .unwrap();
    let mut gw_ports = Vec::new();
    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.send_to(format!("q{i}").as_bytes(), at).unwrap();
        let outs = h.wait_for(|o| o.iter().any(|o| o.proto == 17));
        let d = outs.iter().find(|o| o.proto == 17).unwrap();
        assert_eq!((d.src, d.dst, dport(d)), (GW, GUEST, 5353));
        assert_eq!(&d.l4[8..], format!("q{i}").as_bytes());
        let sport = u16::from_be_bytes([d.l4[0], d.l4[1]]);
        gw_ports.push(sport);
        // The guest's reply goes back to this client, from the forwarded address.
        h.send(udp(
            GUEST,
            SocketAddrV4::new(GW, sport),
            5353,
            format!("a{i}").as_bytes(),
        ));
        let mut b = [0u8; 8];
        let (n, from) = c.recv_from(&mut b).unwrap();
        assert_eq!((&b[..n], from), (format!("a{i}").as_bytes(), at));
    }
    assert_ne!(gw_ports[0], gw_ports[1], "a flow per client");
    assert_eq!(h.stack.flow_counts().1, 2);
    assert!(h.stack.remove_forward(3));
    assert_eq!(
        h.stack.flow_counts().1,
        0,
        "the forward's flows end with it"
    );
    UdpSocket::bind(at).expect("port released");
}

#[test]
fn duplicate_forward_id_is_refused() {
    let mut h = H::default();
    tcp_forward(&mut h, 1, 80);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let e = h
        .stack
        .add_forward(Forward {
            id: 1,
            udp: false,
            listener: OwnedFd::from(l),
            guest: SocketAddrV4::new(GUEST, 80).into(),
        })
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the guest answers a forwarded SYN with (any flags, numbers, options,
    /// payload), the stack neither panics nor leaves more than the one connection.
    #[test]
    fn random_answers_to_a_forwarded_syn_never_break_the_table(
        segs in proptest::collection::vec(
            (any::<u8>(), any::<u32>(), any::<u32>(), any::<u16>(),
             proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()),
            1..6),
    ) {
        let mut h = H::default();
        guest_arp_reply(&mut h);
        let at = tcp_forward(&mut h, 1, 8080);
        let _client = TcpStream::connect(at).unwrap();
        let outs = h.wait_for(|o| o.iter().any(|o| o.proto == 6));
        let s = tcps(&outs).pop().unwrap();
        let to = SocketAddrV4::new(GW, s.sport);
        for (flags, seq, ack, win, data, near) in segs {
            // Half the time the ACK is the right one, so the handshake paths run too.
            let ack = if near { s.seq.wrapping_add(1) } else { ack };
            h.send(tcp(to, 8080, seq, ack, flags & 0x3f, win, &SYN_OPTS[..(flags as usize % 3) * 4], &data));
            h.io(0);
            h.advance(Duration::from_millis(300));
        }
        prop_assert!(h.stack.flow_counts().0 <= 1);
    }
}
