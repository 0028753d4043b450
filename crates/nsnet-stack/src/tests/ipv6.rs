//! IPv6 (`Config::ipv6`): neighbour discovery and echo for the gateway, TCP and UDP over
//! IPv6 to host `::1` through fd00::2, and host loopback refused when disabled.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, UdpSocket};

use super::*;

const GUEST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn h6(disable_host_loopback: bool) -> H {
    let mut cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
    cfg.ipv6 = true;
    cfg.disable_host_loopback = disable_host_loopback;
    H::new(cfg)
}

fn frame6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN + 54];
    wire::emit_eth_ip(
        &mut f[VNET_HDR_LEN..],
        GUEST_MAC,
        crate::mac_for(GW),
        IpAddr::V6(src),
        IpAddr::V6(dst),
        proto,
        l4.len(),
        0,
    );
    f.extend_from_slice(l4);
    f
}

fn with_checksum(mut l4: Vec<u8>, at: usize, src: Ipv6Addr, dst: Ipv6Addr, proto: u8) -> Vec<u8> {
    l4[at..at + 2].fill(0);
    let s = wire::pseudo_sum_ip(IpAddr::V6(src), IpAddr::V6(dst), proto, l4.len());
    let c = !wire::fold(wire::sum(s, &l4));
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    l4
}

/// Parses an IPv6 frame from the stack: (src, dst, next header, L4 bytes), checksum checked.
fn parse6(raw: &[u8]) -> (Ipv6Addr, Ipv6Addr, u8, Vec<u8>) {
    let eth = EthernetFrame::new_checked(&raw[VNET_HDR_LEN..]).unwrap();
    assert_eq!(eth.ethertype(), EthernetProtocol::Ipv6);
    assert_eq!(eth.dst_addr(), GUEST_MAC);
    let ip = smoltcp::wire::Ipv6Packet::new_checked(eth.payload()).unwrap();
    let (s, d, p) = (ip.src_addr(), ip.dst_addr(), u8::from(ip.next_header()));
    assert_eq!(ip.hop_limit(), 255);
    let l4 = ip.payload().to_vec();
    let sum = wire::pseudo_sum_ip(IpAddr::V6(s), IpAddr::V6(d), p, l4.len());
    assert_eq!(wire::fold(wire::sum(sum, &l4)), 0xffff, "L4 checksum");
    (s, d, p, l4)
}

fn take6(h: &mut H) -> Vec<(Ipv6Addr, Ipv6Addr, u8, Vec<u8>)> {
    std::mem::take(&mut *h.sink.0.lock().unwrap())
        .iter()
        .map(|f| parse6(f))
        .collect()
}

fn wait6(
    h: &mut H,
    pred: impl Fn(&[(Ipv6Addr, Ipv6Addr, u8, Vec<u8>)]) -> bool,
) -> Vec<(Ipv6Addr, Ipv6Addr, u8, Vec<u8>)> {
    let mut got = Vec::new();
    for _ in 0..200 {
        got.extend(take6(h));
        if pred(&got) {
            return got;
        }
        h.io(10);
    }
    panic!("condition not met: {got:?}");
}

#[test]
fn neighbour_solicitation_for_the_gateway_is_advertised() {
    let mut h = h6(false);
    let mut ns = vec![0u8; 32];
    ns[0] = 135;
    ns[8..24].copy_from_slice(&GW6.octets());
    ns[24] = 1;
    ns[25] = 1;
    ns[26..32].copy_from_slice(GUEST_MAC.as_bytes());
    let solicited = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);
    let ns = with_checksum(ns, 2, GUEST6, solicited, 58);
    h.send(frame6(GUEST6, solicited, 58, &ns));
    let out = take6(&mut h);
    assert_eq!(out.len(), 1);
    let (s, d, p, na) = &out[0];
    assert_eq!((*s, *d, *p), (GW6, GUEST6, 58));
    assert_eq!(na[0], 136);
    assert_eq!(na[4] & 0x60, 0x60, "solicited and override");
    assert_eq!(&na[8..24], &GW6.octets());
    assert_eq!(&na[24..26], &[2, 1]);
    assert_eq!(&na[26..32], crate::mac_for_ip(IpAddr::V6(GW6)).as_bytes());
    // Not for another address.
    let mut other = ns.clone();
    other[8..24].copy_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9).octets());
    let other = with_checksum(other, 2, GUEST6, solicited, 58);
    h.send(frame6(GUEST6, solicited, 58, &other));
    assert!(take6(&mut h).is_empty());
}

#[test]
fn echo6_to_the_gateway_is_answered() {
    let mut h = h6(true);
    let echo = with_checksum(vec![128, 0, 0, 0, 0, 7, 0, 1, b'x'], 2, GUEST6, GW6, 58);
    h.send(frame6(GUEST6, GW6, 58, &echo));
    let out = take6(&mut h);
    assert_eq!(out[0].3[0], 129);
    assert_eq!(&out[0].3[4..], &[0, 7, 0, 1, b'x']);
}

fn tcp6(dst: SocketAddrV6, sport: u16, seq: u32, ack: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dst.port().to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(data);
    let t = with_checksum(t, 16, GUEST6, *dst.ip(), 6);
    frame6(GUEST6, *dst.ip(), 6, &t)
}

#[test]
fn tcp6_through_the_gateway_reaches_host_ipv6_loopback() {
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let dst = SocketAddrV6::new(GW6, port, 0, 0);
    let mut h = h6(false);
    h.send(tcp6(dst, 41000, 100, 0, SYN, b""));
    let out = wait6(&mut h, |o| !o.is_empty());
    let syn_ack = TcpPacket::new_checked(&out[0].3[..]).unwrap();
    assert!(syn_ack.syn() && syn_ack.ack());
    assert_eq!(
        syn_ack.options_summary().unwrap().max_segment_size,
        Some(65520 - 60),
        "IPv6 MSS"
    );
    let our = syn_ack.seq_number().0 as u32 + 1;
    let (mut host, _) = l.accept().unwrap();
    h.send(tcp6(dst, 41000, 101, our, ACK, b"over v6"));
    let mut b = [0u8; 7];
    host.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"over v6");
    host.write_all(b"back").unwrap();
    let out = wait6(&mut h, |o| o.iter().any(|x| x.3.len() > 20));
    let seg = out.iter().find(|x| x.3.len() > 20).unwrap();
    assert_eq!(seg.0, GW6);
    assert_eq!(&seg.3[20..], b"back");
}

#[test]
fn ipv6_host_loopback_is_refused_when_disabled() {
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut h = h6(true);
    for dst in [
        GW6,
        Ipv6Addr::LOCALHOST,
        "::ffff:127.0.0.1".parse().unwrap(),
    ] {
        h.send(tcp6(
            SocketAddrV6::new(dst, port, 0, 0),
            41001,
            1,
            0,
            SYN,
            b"",
        ));
        let out = take6(&mut h);
        assert_eq!(out.len(), 1, "{dst}");
        assert_eq!(
            (out[0].2, out[0].3[0], out[0].3[1]),
            (58, 1, 0),
            "{dst}: no route"
        );
    }
    l.set_nonblocking(true).unwrap();
    assert!(l.accept().is_err());
}

#[test]
fn udp6_round_trips_through_the_gateway() {
    let srv = UdpSocket::bind("[::1]:0").unwrap();
    srv.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = srv.local_addr().unwrap().port();
    let mut h = h6(false);
    let mut l4 = vec![0u8; 8];
    l4.extend_from_slice(b"ping6");
    let src = SocketAddr::V6(SocketAddrV6::new(GUEST6, 5000, 0, 0));
    let dst = SocketAddr::V6(SocketAddrV6::new(GW6, port, 0, 0));
    crate::udp::emit_udp(&mut l4, src, dst);
    h.send(frame6(GUEST6, GW6, 17, &l4));
    let mut b = [0u8; 16];
    let (n, from) = srv.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], b"ping6");
    srv.send_to(b"pong6", from).unwrap();
    let out = wait6(&mut h, |o| !o.is_empty());
    assert_eq!((out[0].0, out[0].2), (GW6, 17));
    assert_eq!(&out[0].3[8..], b"pong6");
}

#[test]
fn ipv6_frames_are_ignored_unless_enabled() {
    let mut h = H::default();
    let echo = with_checksum(vec![128, 0, 0, 0, 0, 7, 0, 1], 2, GUEST6, GW6, 58);
    h.send(frame6(GUEST6, GW6, 58, &echo));
    assert!(h.sink.0.lock().unwrap().is_empty());
}
