//! IPv6 (`Config::ipv6`): neighbour discovery and echo for the gateway, TCP and UDP over
//! IPv6 to host `::1` through fd00::2, and host loopback refused when disabled; then pasta's
//! IPv6 (`Config::pasta` with `PastaV6`): the host's address and gateway instead of fd00::,
//! its destinations, neighbour discovery for every address but the guest's, and `-6`.

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
    tcp6_from(GUEST6, dst, sport, seq, ack, flags, data)
}

fn tcp6_from(
    src: Ipv6Addr,
    dst: SocketAddrV6,
    sport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dst.port().to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(data);
    let t = with_checksum(t, 16, src, *dst.ip(), 6);
    frame6(src, *dst.ip(), 6, &t)
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

/// UDP and echo to every IPv6 address that maps to host loopback, with it disabled: "no
/// route" (ICMPv6 type 1 code 0) for UDP, never an echo reply from `::1` (the gateway itself
/// answers echo, as slirp4netns's does), nothing at the host's socket.
#[test]
fn ipv6_host_loopback_is_refused_when_disabled_for_udp_and_echo() {
    let srv = UdpSocket::bind("[::1]:0").unwrap();
    srv.set_nonblocking(true).unwrap();
    let port = srv.local_addr().unwrap().port();
    let mut h = h6(true);
    let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
    for dst in [GW6, Ipv6Addr::LOCALHOST, mapped] {
        let mut l4 = vec![0u8; 8];
        l4.extend_from_slice(b"sealed");
        let src = SocketAddr::V6(SocketAddrV6::new(GUEST6, 5001, 0, 0));
        crate::udp::emit_udp(
            &mut l4,
            src,
            SocketAddr::V6(SocketAddrV6::new(dst, port, 0, 0)),
        );
        h.send(frame6(GUEST6, dst, 17, &l4));
        let out = take6(&mut h);
        assert_eq!(out.len(), 1, "{dst}: {out:?}");
        assert_eq!(
            (out[0].2, out[0].3[0], out[0].3[1]),
            (58, 1, 0),
            "{dst}: no route"
        );
    }
    for dst in [Ipv6Addr::LOCALHOST, mapped] {
        let echo = with_checksum(vec![128, 0, 0, 0, 0, 9, 0, 1, b'x'], 2, GUEST6, dst, 58);
        h.send(frame6(GUEST6, dst, 58, &echo));
        h.io(50);
        let out = take6(&mut h);
        assert!(
            out.iter().all(|(_, _, p, l4)| *p != 58 || l4[0] != 129),
            "{dst}: an echo reply: {out:?}"
        );
    }
    assert!(
        srv.recv(&mut [0u8; 16]).is_err(),
        "nothing reached the host's ::1"
    );
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

// pasta's model: the world's 2001:db8::1/64 with gateway 2001:db8::fe, and 192.0.2.1/24.
const P_GUEST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const P_GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);

fn pasta_v4() -> crate::PastaV4 {
    crate::PastaV4 {
        guest: Ipv4Addr::new(192, 0, 2, 1),
        prefix: 24,
        gateway: Ipv4Addr::new(192, 0, 2, 254),
        map_host_loopback: Some(Ipv4Addr::new(192, 0, 2, 254)),
        map_guest_addr: None,
        dns_forward: None,
    }
}

fn pasta_v6() -> crate::PastaV6 {
    crate::PastaV6 {
        guest: Some(P_GUEST6),
        prefix: 64,
        gateway: P_GW6,
        map_host_loopback: Some(P_GW6),
        map_guest_addr: Some("2001:db8:ffff::2".parse().unwrap()),
        dns_forward: Some("2001:db8:ffff::53".parse().unwrap()),
        dns_host: None,
    }
}

fn pasta_cfg(v4: Option<crate::PastaV4>, v6: crate::PastaV6) -> Config {
    Config::pasta(crate::PastaAddrs { v4, v6: Some(v6) }).unwrap()
}

/// A neighbour solicitation for `target` from `src` (to the solicited-node address).
fn solicitation(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut ns = vec![0u8; 24];
    ns[0] = 135;
    ns[8..24].copy_from_slice(&target.octets());
    let o = target.octets();
    let solicited = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    );
    let ns = with_checksum(ns, 2, src, solicited, 58);
    frame6(src, solicited, 58, &ns)
}

/// passt's nat_outbound()/fwd_nat_from_tap() for IPv6: the gateway is host `::1`, the
/// mapped guest address the host's own, `--dns-forward` ports 53 and 853 the nameserver; the
/// guest's own address, loopback, link-local, multicast and IPv4-mapped destinations never
/// leave; the rest of the host's network (the guest's prefix too) is reached as it is.
#[test]
fn pasta6_destinations_follow_passts_outbound_translation() {
    let mut c = pasta_cfg(Some(pasta_v4()), pasta_v6());
    c.nameservers = vec!["198.51.100.53:53".parse().unwrap()];
    assert!(c.ipv6 && c.ipv4_on());
    assert_eq!(
        (c.guest6(), c.gateway6(), c.prefix6()),
        (P_GUEST6, P_GW6, 64)
    );
    let d = |s: &str| c.host_destination(s.parse::<SocketAddr>().unwrap());
    let some = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
    assert_eq!(d("[2001:db8::fe]:80"), some("[::1]:80"));
    assert_eq!(d("[2001:db8:ffff::2]:80"), some("[2001:db8::1]:80"));
    assert_eq!(d("[2001:db8:ffff::53]:53"), some("198.51.100.53:53"));
    assert_eq!(d("[2001:db8:ffff::53]:853"), some("198.51.100.53:853"));
    assert_eq!(d("[2001:db8:ffff::53]:80"), None);
    assert_eq!(d("[2001:db8::7]:80"), some("[2001:db8::7]:80"));
    assert_eq!(d("[2001:db8:1::7]:80"), some("[2001:db8:1::7]:80"));
    for refused in [
        "[2001:db8::1]:80",
        "[::1]:80",
        "[::]:80",
        "[fe80::7]:80",
        "[ff02::1]:80",
        "[::ffff:192.0.2.7]:80",
    ] {
        assert_eq!(d(refused), None, "{refused}");
    }
    // An IPv6 nameserver of the host's (`--dns-host`, resolv.conf) is used as such.
    let c = pasta_cfg(
        None,
        crate::PastaV6 {
            dns_host: Some("2001:db8:53::1".parse().unwrap()),
            ..pasta_v6()
        },
    );
    assert_eq!(
        c.host_destination("[2001:db8:ffff::53]:53".parse().unwrap()),
        Some("[2001:db8:53::1]:53".parse().unwrap())
    );
    assert!(!c.disable_dns, "IPv6's --dns-forward alone is DNS");
    // --no-map-gw: the gateway is an address of the host's network; local mode (no global
    // address): --map-guest-addr has no host address to stand for.
    let c = pasta_cfg(
        Some(pasta_v4()),
        crate::PastaV6 {
            guest: None,
            gateway: "fe80::1".parse().unwrap(),
            map_host_loopback: None,
            ..pasta_v6()
        },
    );
    assert_eq!(c.guest6(), Ipv6Addr::UNSPECIFIED);
    assert_eq!(
        c.host_destination("[2001:db8::fe]:80".parse().unwrap()),
        Some("[2001:db8::fe]:80".parse().unwrap())
    );
    assert_eq!(
        c.host_destination("[2001:db8:ffff::2]:80".parse().unwrap()),
        None
    );
    // And the checks on what the front end hands over.
    let bad = |v6: crate::PastaV6| {
        Config::pasta(crate::PastaAddrs {
            v4: None,
            v6: Some(v6),
        })
    };
    assert!(matches!(
        bad(crate::PastaV6 {
            prefix: 0,
            ..pasta_v6()
        }),
        Err(crate::Error::PastaPrefix6(_))
    ));
    for gw in ["2001:db8::1", "::", "::1", "ff02::2"] {
        assert!(
            matches!(
                bad(crate::PastaV6 {
                    gateway: gw.parse().unwrap(),
                    ..pasta_v6()
                }),
                Err(crate::Error::Gateway6(_))
            ),
            "{gw}"
        );
    }
}

/// The guest's network is the host's: every address but the guest's own is answered (the
/// gateway, a neighbour, a link-local gateway), while duplicate address detection (from `::`)
/// is never answered, or the guest's tentative link-local address would fail.
#[test]
fn pasta6_neighbour_discovery_answers_all_but_the_guest_and_dad() {
    let mut h = H::new(pasta_cfg(Some(pasta_v4()), pasta_v6()));
    let neighbour: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let ll_gw: Ipv6Addr = "fe80::1".parse().unwrap();
    for target in [P_GW6, neighbour, ll_gw] {
        h.send(solicitation(P_GUEST6, target));
        let out = take6(&mut h);
        assert_eq!(out.len(), 1, "{target}");
        let (s, d, p, na) = &out[0];
        assert_eq!((*s, *d, *p, na[0]), (target, P_GUEST6, 58, 136), "{target}");
        assert_eq!(&na[8..24], &target.octets());
    }
    let guest_ll: Ipv6Addr = "fe80::200:ff:fe00:1".parse().unwrap();
    h.send(solicitation(P_GUEST6, P_GUEST6));
    h.send(solicitation(Ipv6Addr::UNSPECIFIED, guest_ll));
    h.send(solicitation(Ipv6Addr::UNSPECIFIED, P_GW6));
    assert!(take6(&mut h).is_empty());
}

/// TCP over IPv6 from the host's own address to the host's gateway reaches the host's `::1`,
/// and the answer comes from the gateway.
#[test]
fn pasta6_tcp_to_the_gateway_reaches_host_ipv6_loopback() {
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let dst = SocketAddrV6::new(P_GW6, port, 0, 0);
    let mut h = H::new(pasta_cfg(Some(pasta_v4()), pasta_v6()));
    h.send(tcp6_from(P_GUEST6, dst, 42000, 100, 0, SYN, b""));
    let out = wait6(&mut h, |o| !o.is_empty());
    assert_eq!((out[0].0, out[0].1), (P_GW6, P_GUEST6));
    let syn_ack = TcpPacket::new_checked(&out[0].3[..]).unwrap();
    assert!(syn_ack.syn() && syn_ack.ack());
    let our = syn_ack.seq_number().0 as u32 + 1;
    let (mut host, peer) = l.accept().unwrap();
    assert!(peer.ip().is_loopback());
    h.send(tcp6_from(P_GUEST6, dst, 42000, 101, our, ACK, b"pasta v6"));
    let mut b = [0u8; 8];
    host.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pasta v6");
}

/// `--dns-forward ADDR6`: a query to ADDR6 port 53 reaches the host's (IPv4) nameserver and
/// the answer comes back from ADDR6.
#[test]
fn pasta6_dns_forward_reaches_the_nameserver() {
    let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
    srv.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut cfg = pasta_cfg(Some(pasta_v4()), pasta_v6());
    cfg.nameservers = vec![match srv.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        _ => unreachable!(),
    }];
    let dns6 = pasta_v6().dns_forward.unwrap();
    let mut h = H::new(cfg);
    let mut l4 = vec![0u8; 8];
    l4.extend_from_slice(b"query");
    let src = SocketAddr::V6(SocketAddrV6::new(P_GUEST6, 5353, 0, 0));
    let dst = SocketAddr::V6(SocketAddrV6::new(dns6, 53, 0, 0));
    crate::udp::emit_udp(&mut l4, src, dst);
    h.send(frame6(P_GUEST6, dns6, 17, &l4));
    let mut b = [0u8; 16];
    let (n, from) = srv.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], b"query");
    srv.send_to(b"answer", from).unwrap();
    let out = wait6(&mut h, |o| !o.is_empty());
    assert_eq!((out[0].0, out[0].1, out[0].2), (dns6, P_GUEST6, 17));
    assert_eq!(&out[0].3[0..2], &53u16.to_be_bytes());
    assert_eq!(&out[0].3[8..], b"answer");
}

/// pasta's `-6`: no IPv4 at all — ARP and IPv4 go unanswered — while IPv6 works.
#[test]
fn pasta_ipv6_only_ignores_ipv4() {
    let mut h = H::new(pasta_cfg(None, pasta_v6()));
    assert!(!h.stack.config().ipv4_on());
    assert!(!h.stack.config().answers_arp(Ipv4Addr::new(192, 0, 2, 254)));
    let mut f = vec![0u8; VNET_HDR_LEN + 14 + 28];
    let mut eth = EthernetFrame::new_unchecked(&mut f[VNET_HDR_LEN..]);
    eth.set_dst_addr(EthernetAddress::BROADCAST);
    eth.set_src_addr(GUEST_MAC);
    eth.set_ethertype(EthernetProtocol::Arp);
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: GUEST_MAC,
        source_protocol_addr: Ipv4Addr::new(192, 0, 2, 1),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Addr::new(192, 0, 2, 254),
    }
    .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    h.send(f);
    assert!(h.sink.0.lock().unwrap().is_empty(), "ARP unanswered");
    assert!(h.stack.stats.dropped_unsupported > 0);
    h.send(solicitation(P_GUEST6, P_GW6));
    assert_eq!(take6(&mut h).len(), 1, "IPv6 answered");
}
