//! `Config`: the slirp4netns address plan and its errors, and the options that decide where a
//! guest flow may go (host loopback refused, CIDR+3 outside with `disable_dns`, outbound
//! addresses, IPv6 destinations).

use super::*;
use std::net::{IpAddr, SocketAddr};

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

/// Echo requests to host loopback with it disabled: "network unreachable" for 127.0.0.0/8,
/// never an echo reply, and no ping socket opened (the gateway itself still answers: see
/// arp_icmp.rs).
#[test]
fn disable_host_loopback_refuses_echo_to_host_loopback() {
    let mut cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
    cfg.disable_host_loopback = true;
    let mut h = H::new(cfg);
    for dst in [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 1, 2, 3)] {
        h.send(echo(dst, 0x4242));
        let outs = h.take();
        assert_eq!(outs.len(), 1, "{dst}: {outs:?}");
        assert_eq!(
            (outs[0].proto, outs[0].l4[0], outs[0].l4[1]),
            (1, 3, 0),
            "{dst}: network unreachable"
        );
    }
    h.send(echo(Ipv4Addr::UNSPECIFIED, 0x4243));
    h.io(50);
    let outs = h.take();
    assert!(
        outs.iter().all(|o| o.proto != 1 || o.l4[0] != 0),
        "0.0.0.0: an echo reply: {outs:?}"
    );
    assert_eq!(h.stack.flow_counts(), (0, 0, 0), "no flow opened");
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

/// pasta's model: the guest holds the host's address; the gateway maps to host loopback
/// unless disabled, `map_guest_addr` to the host's own address, `dns_forward` ports 53 and
/// 853 to the nameserver, and the rest of the host's network is reached as it is.
#[test]
fn pasta_addresses_route_as_pasta_routes_them() {
    use crate::{PastaAddrs, PastaV4};
    let v4 = PastaV4 {
        guest: Ipv4Addr::new(192, 0, 2, 1),
        prefix: 24,
        gateway: Ipv4Addr::new(192, 0, 2, 254),
        map_host_loopback: Some(Ipv4Addr::new(192, 0, 2, 254)),
        map_guest_addr: Some(Ipv4Addr::new(169, 254, 1, 2)),
        dns_forward: Some(Ipv4Addr::new(169, 254, 1, 1)),
    };
    let only4 = |v4: PastaV4| PastaAddrs {
        v4: Some(v4),
        v6: None,
    };
    let mut c = Config::pasta(only4(v4.clone())).unwrap();
    c.nameservers = vec!["198.51.100.53:53".parse().unwrap()];
    assert_eq!(
        (c.guest(), c.gateway(), c.network, c.prefix),
        (v4.guest, v4.gateway, Ipv4Addr::new(192, 0, 2, 0), 24)
    );
    let d = |s: &str| c.host_destination(s.parse::<SocketAddr>().unwrap());
    assert_eq!(d("192.0.2.254:80"), Some("127.0.0.1:80".parse().unwrap()));
    assert_eq!(d("169.254.1.2:80"), Some("192.0.2.1:80".parse().unwrap()));
    assert_eq!(
        d("169.254.1.1:53"),
        Some("198.51.100.53:53".parse().unwrap())
    );
    assert_eq!(
        d("169.254.1.1:853"),
        Some("198.51.100.53:853".parse().unwrap()),
        "DNS over TLS, as passt's is_dns_flow()"
    );
    assert_eq!(d("169.254.1.1:80"), None);
    assert_eq!(d("192.0.2.7:80"), Some("192.0.2.7:80".parse().unwrap()));
    assert_eq!(d("127.0.0.1:80"), None);
    assert_eq!(d("0.0.0.0:80"), None);
    // No IPv6 configured: every IPv6 destination is refused.
    assert_eq!(d("[2001:db8::7]:80"), None);
    assert!(c.ipv4_on() && !c.ipv6);
    assert!(c.answers_arp(Ipv4Addr::new(192, 0, 2, 7)));
    assert!(!c.answers_arp(v4.guest));
    // --no-map-gw: the gateway is just an address on the host's network.
    let c = Config::pasta(only4(PastaV4 {
        map_host_loopback: None,
        ..v4.clone()
    }))
    .unwrap();
    assert_eq!(
        c.host_destination("192.0.2.254:80".parse().unwrap()),
        Some("192.0.2.254:80".parse().unwrap())
    );
    assert!(!c.disable_dns);
    assert!(
        Config::pasta(only4(PastaV4 {
            gateway: Ipv4Addr::new(198, 51, 100, 1),
            ..v4.clone()
        }))
        .is_err()
    );
    assert!(Config::pasta(only4(PastaV4 { prefix: 32, ..v4 })).is_err());
    assert!(matches!(
        Config::pasta(PastaAddrs { v4: None, v6: None }),
        Err(crate::Error::PastaNoFamily)
    ));
}
