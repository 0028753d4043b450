//! The fake guest link every test drives: [`H`] holds a [`Stack`] whose guest side is a
//! [`Sink`] (frames collected, partial checksums completed as the kernel would) and a virtual
//! clock. The builders craft the guest's frames (`frame`, `tcp`, `udp`, `echo`, `dhcp`);
//! [`parse_out`] reads the stack's, checking the IPv4 header checksum and, on unfragmented
//! TCP and UDP, the L4 checksum, and [`seg`] the TCP header of one.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Ipv4Address, Ipv4Packet, TcpPacket,
};

use crate::wire::{self, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, VnetHdr};
use crate::{Config, GuestTx, Stack};

/// MSS 1460, window scale 7.
pub(super) const SYN_OPTS: [u8; 8] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];

pub(super) const GUEST_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
pub(super) const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
pub(super) const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub(super) const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

#[derive(Clone, Default)]
pub(super) struct Sink(pub(super) Arc<Mutex<Vec<Vec<u8>>>>);

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

pub(super) struct H {
    pub(super) stack: Stack,
    pub(super) sink: Sink,
    pub(super) now: Instant,
}

/// A parsed frame from the stack.
#[derive(Debug)]
pub(super) struct Out {
    pub(super) dst_mac: EthernetAddress,
    pub(super) src: Ipv4Addr,
    pub(super) dst: Ipv4Addr,
    pub(super) proto: u8,
    pub(super) frag: u16,
    pub(super) l4: Vec<u8>,
    pub(super) raw: Vec<u8>,
}

impl H {
    pub(super) fn new(cfg: Config) -> H {
        let sink = Sink::default();
        H {
            stack: Stack::new(cfg, Box::new(sink.clone())).unwrap(),
            sink,
            now: Instant::now(),
        }
    }
    pub(super) fn default() -> H {
        H::new(Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap())
    }
    pub(super) fn send(&mut self, frame: Vec<u8>) {
        self.stack.receive(&frame, self.now);
        self.stack.flush(self.now);
    }
    /// Waits up to `ms` for host socket events and dispatches them.
    pub(super) fn io(&mut self, ms: i32) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: evs is a valid buffer.
        let n = unsafe { libc::epoll_wait(self.stack.epoll_fd(), evs.as_mut_ptr(), 64, ms) };
        for e in &evs[..n.max(0) as usize] {
            let (t, b) = (e.u64, e.events);
            self.stack.socket_ready(t, b, self.now);
        }
        self.stack.flush(self.now);
    }
    pub(super) fn advance(&mut self, d: Duration) {
        self.now += d;
        self.stack.poll_timers(self.now);
    }
    pub(super) fn take(&mut self) -> Vec<Out> {
        let frames = std::mem::take(&mut *self.sink.0.lock().unwrap());
        frames.into_iter().map(parse_out).collect()
    }
    /// Runs I/O until `pred` holds for the frames collected so far (max 2 s).
    pub(super) fn wait_for(&mut self, pred: impl Fn(&[Out]) -> bool) -> Vec<Out> {
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

pub(super) fn parse_out(raw: Vec<u8>) -> Out {
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

pub(super) fn frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
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

pub(super) const FIN: u8 = 1;
pub(super) const SYN: u8 = 2;
pub(super) const RST: u8 = 4;
pub(super) const ACK: u8 = 16;

#[allow(clippy::too_many_arguments)]
pub(super) fn tcp(
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

pub(super) fn udp(src: Ipv4Addr, dst: SocketAddrV4, sport: u16, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4.extend_from_slice(data);
    crate::udp::emit_udp(&mut l4, SocketAddrV4::new(src, sport).into(), dst.into());
    frame(src, *dst.ip(), 17, &l4)
}

pub(super) struct Seg {
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) flags: u8,
    pub(super) win: u16,
    pub(super) sport: u16,
    pub(super) data: Vec<u8>,
    pub(super) mss: Option<u16>,
}

pub(super) fn seg(o: &Out) -> Seg {
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

pub(super) fn tcps(outs: &[Out]) -> Vec<Seg> {
    outs.iter().filter(|o| o.proto == 6).map(seg).collect()
}

pub(super) fn echo(dst: Ipv4Addr, ident: u16) -> Vec<u8> {
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

pub(super) fn dhcp(
    kind: DhcpMessageType,
    mac: EthernetAddress,
    requested: Option<Ipv4Addr>,
) -> Vec<u8> {
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
