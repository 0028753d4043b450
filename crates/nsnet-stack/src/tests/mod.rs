//! Unit tests of the whole stack against a fake guest link: frames are crafted here (the
//! "guest"), the host side is real sockets on this test world's loopback, and the clock is
//! virtual wherever a timer matters.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    EthernetFrame, EthernetProtocol, Ipv4Address, Ipv4Packet, TcpPacket, UdpPacket,
};

use crate::wire::{self, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, VnetHdr};
use crate::{Config, GuestTx, Stack};

mod forward;
mod ipv6;
mod tcp;

/// MSS 1460, window scale 7.
const SYN_OPTS: [u8; 8] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];

const GUEST_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

impl GuestTx for Sink {
    fn send(&mut self, parts: &[&[u8]]) {
        let mut f = Vec::new();
        for p in parts {
            f.extend_from_slice(p);
        }
        // Complete a partial checksum as the kernel would, so tests can verify it.
        let v = VnetHdr::parse(&f).expect("vnet header");
        if v.flags & VNET_F_NEEDS_CSUM != 0 {
            let start = VNET_HDR_LEN + v.csum_start as usize;
            let at = start + v.csum_offset as usize;
            let c = !wire::fold(wire::sum(0, &f[start..]));
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        self.0.lock().unwrap().push(f);
    }
}

struct H {
    stack: Stack,
    sink: Sink,
    now: Instant,
}

/// A parsed frame from the stack.
#[derive(Debug)]
struct Out {
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    frag: u16,
    l4: Vec<u8>,
    raw: Vec<u8>,
}

impl H {
    fn new(cfg: Config) -> H {
        let sink = Sink::default();
        H {
            stack: Stack::new(cfg, Box::new(sink.clone())).unwrap(),
            sink,
            now: Instant::now(),
        }
    }
    fn default() -> H {
        H::new(Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap())
    }
    fn send(&mut self, frame: Vec<u8>) {
        self.stack.receive(&frame, self.now);
        self.stack.flush(self.now);
    }
    /// Waits up to `ms` for host socket events and dispatches them.
    fn io(&mut self, ms: i32) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: evs is a valid buffer.
        let n = unsafe { libc::epoll_wait(self.stack.epoll_fd(), evs.as_mut_ptr(), 64, ms) };
        for e in &evs[..n.max(0) as usize] {
            let (t, b) = (e.u64, e.events);
            self.stack.socket_ready(t, b, self.now);
        }
        self.stack.flush(self.now);
    }
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.stack.poll_timers(self.now);
    }
    fn take(&mut self) -> Vec<Out> {
        let frames = std::mem::take(&mut *self.sink.0.lock().unwrap());
        frames.into_iter().map(parse_out).collect()
    }
    /// Runs I/O until `pred` holds for the frames collected so far (max 2 s).
    fn wait_for(&mut self, pred: impl Fn(&[Out]) -> bool) -> Vec<Out> {
        let mut got = Vec::new();
        for _ in 0..200 {
            got.extend(self.take());
            if pred(&got) {
                return got;
            }
            self.io(10);
        }
        panic!("condition not met; frames: {got:#?}");
    }
}

fn parse_out(raw: Vec<u8>) -> Out {
    let eth = EthernetFrame::new_checked(&raw[VNET_HDR_LEN..]).expect("ethernet");
    let dst_mac = eth.dst_addr();
    let ethertype = eth.ethertype();
    if ethertype != EthernetProtocol::Ipv4 {
        assert_eq!(ethertype, EthernetProtocol::Arp);
        return Out {
            dst_mac,
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
            proto: 0,
            frag: 0,
            l4: eth.payload().to_vec(),
            raw: raw.clone(),
        };
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    let frag = u16::from_be_bytes([eth.payload()[6], eth.payload()[7]]);
    let l4 = ip.payload().to_vec();
    if frag & 0x3fff == 0 {
        let p: u8 = ip.next_header().into();
        if p == 6 || p == 17 {
            let s = wire::pseudo_sum(ip.src_addr(), ip.dst_addr(), p, l4.len());
            assert_eq!(wire::fold(wire::sum(s, &l4)), 0xffff, "L4 checksum");
        }
    }
    Out {
        dst_mac,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto: ip.next_header().into(),
        frag,
        l4,
        raw: raw.clone(),
    }
}

fn frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN + 34];
    wire::emit_eth_ipv4(
        &mut f[VNET_HDR_LEN..],
        GUEST_MAC,
        crate::mac_for(GW),
        src,
        dst,
        proto,
        l4.len(),
        1,
    );
    f.extend_from_slice(l4);
    f
}

const FIN: u8 = 1;
const SYN: u8 = 2;
const RST: u8 = 4;
const ACK: u8 = 16;

#[allow(clippy::too_many_arguments)]
fn tcp(
    dst: SocketAddrV4,
    sport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    opts: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let hl = 20 + opts.len();
    let mut t = vec![0u8; hl];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dst.port().to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((hl / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&win.to_be_bytes());
    t[20..].copy_from_slice(opts);
    t.extend_from_slice(data);
    let s = wire::pseudo_sum(GUEST, *dst.ip(), 6, t.len());
    let c = !wire::fold(wire::sum(s, &t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    frame(GUEST, *dst.ip(), 6, &t)
}

fn udp(src: Ipv4Addr, dst: SocketAddrV4, sport: u16, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4.extend_from_slice(data);
    crate::udp::emit_udp(&mut l4, SocketAddrV4::new(src, sport).into(), dst.into());
    frame(src, *dst.ip(), 17, &l4)
}

struct Seg {
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    sport: u16,
    data: Vec<u8>,
    mss: Option<u16>,
}

fn seg(o: &Out) -> Seg {
    let p = TcpPacket::new_checked(&o.l4[..]).unwrap();
    let flags = o.l4[13];
    Seg {
        seq: p.seq_number().0 as u32,
        ack: p.ack_number().0 as u32,
        flags,
        win: p.window_len(),
        sport: p.src_port(),
        data: p.payload().to_vec(),
        mss: p.options_summary().ok().and_then(|s| s.max_segment_size),
    }
}

fn tcps(outs: &[Out]) -> Vec<Seg> {
    outs.iter().filter(|o| o.proto == 6).map(seg).collect()
}

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

fn echo(dst: Ipv4Addr, ident: u16) -> Vec<u8> {
    let mut l4 = vec![
        8,
        0,
        0,
        0,
        (ident >> 8) as u8,
        ident as u8,
        0,
        1,
        b'h',
        b'i',
    ];
    let c = !wire::fold(wire::sum(0, &l4));
    l4[2..4].copy_from_slice(&c.to_be_bytes());
    frame(GUEST, dst, 1, &l4)
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

#[test]
fn disable_host_loopback_refuses_every_path_to_host_loopback() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_nonblocking(true).unwrap();
    let uport = u.local_addr().unwrap().port();
    let mut cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
    cfg.disable_host_loopback = true;
    let mut h = H::new(cfg);
    for dst in [GW, Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 1, 2, 3)] {
        h.send(tcp(
            SocketAddrV4::new(dst, port),
            40003,
            5,
            0,
            SYN,
            65535,
            &[],
            b"",
        ));
        h.send(udp(GUEST, SocketAddrV4::new(dst, uport), 40003, b"x"));
        let outs = h.take();
        assert_eq!(outs.len(), 2, "{dst}: {outs:?}");
        for o in &outs {
            assert_eq!(
                (o.proto, o.l4[0], o.l4[1]),
                (1, 3, 0),
                "{dst}: network unreachable"
            );
        }
    }
    // 0.0.0.0 (which Linux connects to loopback) is never routed.
    h.send(tcp(
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
        40003,
        5,
        0,
        SYN,
        65535,
        &[],
        b"",
    ));
    h.io(50);
    l.set_nonblocking(true).unwrap();
    assert!(l.accept().is_err(), "nothing reached the host listener");
    let mut b = [0u8; 8];
    assert!(
        u.recv(&mut b).is_err(),
        "nothing reached the host UDP socket"
    );
    assert_eq!(h.stack.flow_counts(), (0, 0, 0));
}

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

fn dhcp(kind: DhcpMessageType, mac: EthernetAddress, requested: Option<Ipv4Addr>) -> Vec<u8> {
    let repr = DhcpRepr {
        message_type: kind,
        transaction_id: 0xabcd,
        secs: 0,
        client_hardware_address: mac,
        client_ip: Ipv4Address::UNSPECIFIED,
        your_ip: Ipv4Address::UNSPECIFIED,
        server_ip: Ipv4Address::UNSPECIFIED,
        router: None,
        subnet_mask: None,
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: false,
        requested_ip: requested,
        client_identifier: Some(mac),
        server_identifier: None,
        parameter_request_list: Some(&[1, 3, 6]),
        dns_servers: None,
        max_size: None,
        lease_duration: None,
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let mut payload = vec![0u8; repr.buffer_len()];
    repr.emit(&mut DhcpPacket::new_unchecked(&mut payload[..]))
        .unwrap();
    let mut f = udp(
        Ipv4Addr::UNSPECIFIED,
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        68,
        &payload,
    );
    f[VNET_HDR_LEN + 6..VNET_HDR_LEN + 12].copy_from_slice(mac.as_bytes());
    f
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

// gvisor-tap-vsock's plan: one address is gateway and DNS; port 53 there is the forwarder,
// every other port host loopback (unless disabled), as that network maps 10.0.2.1.
#[test]
fn config_with_gateway_and_dns_on_one_address() {
    let mut c = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
    (c.gateway_host, c.dns_host) = (1, 1);
    c.nameservers = vec!["192.0.2.53:5353".parse().unwrap()];
    let gw = Ipv4Addr::new(10, 0, 2, 1);
    assert_eq!(
        (c.gateway(), c.dns(), c.guest()),
        (gw, gw, Ipv4Addr::new(10, 0, 2, 100))
    );
    let to = |port| c.host_destination(SocketAddr::new(IpAddr::V4(gw), port));
    assert_eq!(to(53), Some("192.0.2.53:5353".parse().unwrap()));
    assert_eq!(to(8080), Some("127.0.0.1:8080".parse().unwrap()));
    c.disable_host_loopback = true;
    let to = |port| c.host_destination(SocketAddr::new(IpAddr::V4(gw), port));
    assert_eq!(to(8080), None);
    assert!(to(53).is_some());
    // .2 and .3 are nobody in this plan: inside the guest's network, never routed.
    let two = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)), 80);
    assert_eq!(c.host_destination(two), None);
}

#[test]
fn config_follows_slirp4netns_addresses_and_errors() {
    let c = Config::new(Ipv4Addr::new(10, 0, 135, 128), 25).unwrap();
    assert_eq!(c.guest(), Ipv4Addr::new(10, 0, 135, 228));
    assert_eq!(c.gateway(), Ipv4Addr::new(10, 0, 135, 130));
    assert_eq!(c.dns(), Ipv4Addr::new(10, 0, 135, 131));
    assert!(matches!(
        Config::new(Ipv4Addr::new(10, 0, 2, 100), 24),
        Err(crate::Error::NotNetwork(_))
    ));
    assert!(matches!(
        Config::new(Ipv4Addr::new(10, 0, 0, 0), 26),
        Err(crate::Error::Prefix(_))
    ));
    assert!(c.clone().with_mtu(65522).is_err());
    assert!(c.with_mtu(65521).is_ok());
}

#[test]
fn captured_frames_of_a_kernel_guest_parse() {
    // A SYN captured from a Linux 6.x guest on tap0 (vnet header with NEEDS_CSUM, partial
    // checksum in the TCP header): the stack must take it without verifying the checksum.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut f = tcp(
        SocketAddrV4::new(GW, port),
        41000,
        1,
        0,
        SYN,
        64240,
        &SYN_OPTS,
        b"",
    );
    let v = VnetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: 0,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 34,
        csum_offset: 16,
    };
    v.emit(&mut f);
    let t = VNET_HDR_LEN + 34 + 16;
    f[t..t + 2].copy_from_slice(&[0xde, 0xad]); // partial, not a valid full checksum
    let mut h = H::default();
    h.send(f.clone());
    let outs = h.wait_for(|o| !o.is_empty());
    assert_eq!(seg(&outs[0]).flags, SYN | ACK);
    // Without the vnet flag the same bad checksum is dropped.
    let mut h = H::default();
    f[..VNET_HDR_LEN].fill(0);
    h.send(f);
    h.io(20);
    assert!(h.take().is_empty());
    assert_eq!(h.stack.stats.dropped_malformed, 1);
}

/// A valid guest frame of each kind, for mutation.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        tcp(SocketAddrV4::new(GW, 9), 1, 1, 0, SYN, 100, &SYN_OPTS, b""),
        tcp(
            SocketAddrV4::new(GW, 9),
            1,
            1,
            5,
            ACK | FIN,
            100,
            &[],
            b"data",
        ),
        udp(GUEST, SocketAddrV4::new(DNS, 53), 9, b"\0\0\0\0"),
        echo(GW, 1),
        dhcp(DhcpMessageType::Discover, GUEST_MAC, None),
        dhcp(
            DhcpMessageType::Request,
            GUEST_MAC,
            Some(Ipv4Addr::new(10, 0, 2, 15)),
        ),
    ]
}

/// Random frames may name any destination: like the integration tests, they only run in a
/// network namespace holding nothing but `lo` (scripts/test makes one per test binary), where
/// no connect() can leave the machine.
fn assert_isolated_world() {
    let dev = std::fs::read_to_string("/proc/net/dev").expect("read /proc/net/dev");
    let links: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(
        links,
        vec!["lo"],
        "run the stack's property tests with scripts/test"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        assert_isolated_world();
        let mut h = H::default();
        h.send(bytes);
        h.advance(Duration::from_secs(1));
    }

    #[test]
    fn mutated_frames_never_panic(
        which in 0usize..6,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        assert_isolated_world();
        let mut f = seeds().swap_remove(which);
        for (pos, val) in flips {
            let i = pos % f.len();
            f[i] = val;
        }
        f.truncate(cut % (f.len() + 1));
        let mut h = H::default();
        h.send(f);
        h.advance(Duration::from_secs(1));
        h.advance(Duration::from_secs(100));
    }
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
fn disable_dns_makes_cidr_plus_3_an_outside_address() {
    use std::net::{Ipv6Addr, SocketAddr};
    let mut c = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
    c.ipv6 = true;
    c.nameservers = vec![SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 53), 53)];
    let dns = SocketAddr::from((Ipv4Addr::new(10, 0, 2, 3), 53));
    let dns6 = SocketAddr::from((Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3), 53));
    let ns = Some(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 53), 53)));
    assert_eq!(
        (c.host_destination(dns), c.host_destination(dns6)),
        (ns, ns)
    );
    let other_port = SocketAddr::from((Ipv4Addr::new(10, 0, 2, 3), 80));
    assert_eq!(c.host_destination(other_port), None);
    c.disable_dns = true;
    assert_eq!(c.host_destination(dns), Some(dns));
    assert_eq!(c.host_destination(dns6), Some(dns6));
    assert_eq!(c.host_destination(other_port), Some(other_port));
    // The rest of the guest's network stays unrouted.
    let neighbour = SocketAddr::from((Ipv4Addr::new(10, 0, 2, 4), 53));
    assert_eq!(c.host_destination(neighbour), None);
}

#[test]
fn outbound_addresses_bind_every_flow_of_their_family() {
    use std::net::{IpAddr, Ipv6Addr, SocketAddr};
    let mut c = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
    let v4 = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 80));
    let v6 = SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 80));
    assert_eq!(c.outbound_for(v4), None);
    c.outbound_addr = Some(Ipv4Addr::new(192, 0, 2, 9));
    c.outbound_addr6 = Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9));
    assert_eq!(
        c.outbound_for(v4),
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)))
    );
    assert_eq!(
        c.outbound_for(v6),
        Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)))
    );
    // The gateway's flows to host loopback are bound too (slirp4netns binds every socket).
    assert_eq!(
        c.outbound_for(SocketAddr::from((Ipv4Addr::LOCALHOST, 80))),
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)))
    );
    assert_eq!(
        c.outbound_for(SocketAddr::from((Ipv6Addr::LOCALHOST, 80))),
        Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)))
    );
    // IPv6 destinations are refused unless IPv6 is on.
    assert_eq!(c.host_destination(v6), None);
    c.ipv6 = true;
    assert_eq!(c.host_destination(v6), Some(v6));
    let link_local = SocketAddr::from((Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 80));
    assert_eq!(c.host_destination(link_local), None);
}

/// pasta's model: the guest holds the host's address; the gateway maps to host loopback
/// unless disabled, `map_guest_addr` to the host's own address, `dns_forward` port 53 to the
/// nameserver, and the rest of the host's network is reached as it is.
#[test]
fn pasta_addresses_route_as_pasta_routes_them() {
    use crate::PastaAddrs;
    use std::net::SocketAddr;
    let addrs = PastaAddrs {
        guest: Ipv4Addr::new(192, 0, 2, 1),
        gateway: Ipv4Addr::new(192, 0, 2, 254),
        map_host_loopback: Some(Ipv4Addr::new(192, 0, 2, 254)),
        map_guest_addr: Some(Ipv4Addr::new(169, 254, 1, 2)),
        dns_forward: Some(Ipv4Addr::new(169, 254, 1, 1)),
    };
    let mut c = Config::pasta(24, addrs.clone()).unwrap();
    c.nameservers = vec!["198.51.100.53:53".parse().unwrap()];
    assert_eq!(
        (c.guest(), c.gateway(), c.network),
        (addrs.guest, addrs.gateway, Ipv4Addr::new(192, 0, 2, 0))
    );
    let d = |s: &str| c.host_destination(s.parse::<SocketAddr>().unwrap());
    assert_eq!(d("192.0.2.254:80"), Some("127.0.0.1:80".parse().unwrap()));
    assert_eq!(d("169.254.1.2:80"), Some("192.0.2.1:80".parse().unwrap()));
    assert_eq!(
        d("169.254.1.1:53"),
        Some("198.51.100.53:53".parse().unwrap())
    );
    assert_eq!(d("169.254.1.1:80"), None);
    assert_eq!(d("192.0.2.7:80"), Some("192.0.2.7:80".parse().unwrap()));
    assert_eq!(d("127.0.0.1:80"), None);
    assert_eq!(d("0.0.0.0:80"), None);
    assert!(c.answers_arp(Ipv4Addr::new(192, 0, 2, 7)));
    assert!(!c.answers_arp(addrs.guest));
    // --no-map-gw: the gateway is just an address on the host's network.
    let c = Config::pasta(
        24,
        PastaAddrs {
            map_host_loopback: None,
            ..addrs.clone()
        },
    )
    .unwrap();
    assert_eq!(
        c.host_destination("192.0.2.254:80".parse().unwrap()),
        Some("192.0.2.254:80".parse().unwrap())
    );
    assert!(!c.disable_dns);
    assert!(
        Config::pasta(
            24,
            PastaAddrs {
                gateway: Ipv4Addr::new(198, 51, 100, 1),
                ..addrs.clone()
            }
        )
        .is_err()
    );
    assert!(Config::pasta(32, addrs).is_err());
}
