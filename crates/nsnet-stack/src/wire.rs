//! The formats the stack needs beyond `smoltcp::wire`: the `virtio_net_hdr` that precedes
//! every frame on an `IFF_VNET_HDR` tap, and the emitters for the headers of frames we send.
//!
//! # Theory of operation
//!
//! With `IFF_VNET_HDR` each tap read or write carries a 10-byte `struct virtio_net_hdr`
//! (virtio spec 1.1 section 5.1.6, "legacy" layout, host byte order, which is little-endian
//! on every machine we run on) before the Ethernet frame:
//!
//! ```text
//!  0      1         2          4          6            8             10
//!  flags  gso_type  hdr_len    gso_size   csum_start   csum_offset
//! ```
//!
//! - `flags & NEEDS_CSUM`: the L4 checksum is partial: the checksum field holds only the
//!   pseudo-header sum, and the bytes from `csum_start` on are to be summed into
//!   `csum_start + csum_offset`. The guest kernel sends TCP and UDP this way once
//!   `TUNSETOFFLOAD` enabled `TUN_F_CSUM`; we do not verify such checksums (the kernel that
//!   made the frame is the only source on the link). We *send* TCP data the same way, so
//!   nobody sums 64 KiB in software.
//! - `gso_type` TCPV4 with `gso_size` = MSS: the frame is one TSO super-segment of up to
//!   64 KiB that the kernel may split into MSS-sized segments. This is what lets MTU 1500 move
//!   64 KiB per system call in both directions.
//!
//! Frames we build are a header block (vnet header, Ethernet, IPv4, L4 header) plus payload
//! slices, written with one `writev`, so payload bytes are never copied into a frame buffer.

use std::net::IpAddr;

use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// Size of the legacy `virtio_net_hdr` (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
pub const ETH_HDR_LEN: usize = 14;
pub const IPV4_HDR_LEN: usize = 20;
pub const IPV6_HDR_LEN: usize = 40;
pub const TCP_HDR_LEN: usize = 20;
pub const UDP_HDR_LEN: usize = 8;

pub const VNET_F_NEEDS_CSUM: u8 = 1;
pub const VNET_F_DATA_VALID: u8 = 2;
pub const VNET_GSO_NONE: u8 = 0;
pub const VNET_GSO_TCPV4: u8 = 1;
pub const VNET_GSO_TCPV6: u8 = 4;

/// A zero-copy view of a `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the header in front of a frame; `None` if the buffer is too short.
    pub fn parse(buf: &[u8]) -> Option<VnetHdr> {
        let b = buf.get(..VNET_HDR_LEN)?;
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = self.flags;
        buf[1] = self.gso_type;
        buf[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        buf[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        buf[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        buf[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// Whether the L4 checksum of the frame is known good or left for offload.
    pub fn checksum_trusted(&self) -> bool {
        self.flags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID) != 0
    }
}

/// One's-complement sum of `data` added to `acc` (not folded, not inverted).
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes(c.try_into().expect("8 bytes"));
        let (s, carry) = acc.overflowing_add(v);
        acc = s + carry as u64;
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    let v = u64::from_be_bytes(tail);
    let (s, carry) = acc.overflowing_add(v);
    s + carry as u64
}

/// Folds a 64-bit one's-complement accumulator to 16 bits (not inverted).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The IPv4 pseudo-header sum for an L4 segment of `len` bytes.
pub fn pseudo_sum(src: Ipv4Address, dst: Ipv4Address, proto: u8, len: usize) -> u64 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + proto as u64 + len as u64
}

/// The pseudo-header sum for an L4 segment of `len` bytes over IPv4 (RFC 793) or IPv6
/// (RFC 8200 section 8.1); both addresses must be of one family.
pub fn pseudo_sum_ip(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u64 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_sum(s, d, proto, len),
        _ => {
            let mut acc = sum(0, &ip_octets(src));
            acc = sum(acc, &ip_octets(dst));
            acc + proto as u64 + len as u64
        }
    }
}

/// The 16 bytes of an IPv6 address (IPv4 as mapped, only for mixed-up callers).
fn ip_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// The length of the Ethernet + IP header block for `ip`'s family.
pub fn eth_ip_hdr_len(ip: IpAddr) -> usize {
    ETH_HDR_LEN
        + match ip {
            IpAddr::V4(_) => IPV4_HDR_LEN,
            IpAddr::V6(_) => IPV6_HDR_LEN,
        }
}

/// Writes Ethernet + IPv4 or IPv6 headers into `buf` (see [`emit_eth_ipv4`]; IPv6 with hop
/// limit 255, which neighbour discovery requires and nothing else minds). Returns their
/// length.
#[allow(clippy::too_many_arguments)]
pub fn emit_eth_ip(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4_len: usize,
    ident: u16,
) -> usize {
    if let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) {
        emit_eth_ipv4(buf, src_mac, dst_mac, s, d, proto, l4_len, ident);
        return ETH_HDR_LEN + IPV4_HDR_LEN;
    }
    buf[0..6].copy_from_slice(dst_mac.as_bytes());
    buf[6..12].copy_from_slice(src_mac.as_bytes());
    buf[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut buf[ETH_HDR_LEN..ETH_HDR_LEN + IPV6_HDR_LEN];
    ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
    ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    ip[6] = proto;
    ip[7] = 255;
    ip[8..24].copy_from_slice(&ip_octets(src));
    ip[24..40].copy_from_slice(&ip_octets(dst));
    ETH_HDR_LEN + IPV6_HDR_LEN
}

/// Writes Ethernet + IPv4 headers (no options, DF set, TTL 64) into `buf`, with the IPv4
/// header checksum; `l4_len` is the length of everything after the IPv4 header.
#[allow(clippy::too_many_arguments)]
pub fn emit_eth_ipv4(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv4Address,
    dst: Ipv4Address,
    proto: u8,
    l4_len: usize,
    ident: u16,
) {
    buf[0..6].copy_from_slice(dst_mac.as_bytes());
    buf[6..12].copy_from_slice(src_mac.as_bytes());
    buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut buf[ETH_HDR_LEN..ETH_HDR_LEN + IPV4_HDR_LEN];
    let total = (IPV4_HDR_LEN + l4_len) as u16;
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = !fold(sum(0, ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{EthernetFrame, Ipv4Packet};

    #[test]
    fn vnet_header_round_trips_over_junk() {
        let h = VnetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut buf = [0xa5u8; 12];
        h.emit(&mut buf);
        assert_eq!(VnetHdr::parse(&buf), Some(h));
        assert_eq!(&buf[..10], &[1, 1, 54, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        assert_eq!(VnetHdr::parse(&buf[..9]), None);
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        assert_eq!(
            fold(sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
        // Odd length: the last byte is padded with zero.
        assert_eq!(fold(sum(0, &[0x01])), 0x0100);
    }

    #[test]
    fn emitted_ipv4_header_is_valid_for_smoltcp() {
        let mut buf = [0xffu8; 34 + 8];
        emit_eth_ipv4(
            &mut buf,
            EthernetAddress([0x52, 0x55, 10, 0, 2, 2]),
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            Ipv4Address::new(10, 0, 2, 2),
            Ipv4Address::new(10, 0, 2, 100),
            17,
            8,
            7,
        );
        let eth = EthernetFrame::new_checked(&buf[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len(), 28);
        assert_eq!(ip.dst_addr(), Ipv4Address::new(10, 0, 2, 100));
        assert!(ip.dont_frag());
    }
}
