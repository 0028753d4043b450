//! IPv4 reassembly of the guest's fragmented datagrams.
//!
//! # Theory of operation (RFC 791 section 3.2, RFC 815)
//!
//! TCP never arrives fragmented (the guest's MTU and TSO see to that), but a UDP datagram
//! larger than the MTU does, and a host socket must receive it whole. Fragments are kept per
//! (source, destination, protocol, identification) in a buffer of the datagram's size with a
//! list of the byte ranges filled (RFC 815's hole list, inverted); when the last fragment
//! (MF clear) has fixed the length and the ranges cover it, the datagram is rebuilt with a
//! plain 20-byte header and handed back to the IPv4 input. Bounds keep a hostile guest from
//! using this as a memory sink: at most 64 datagrams in reassembly, each at most 64 KiB, each
//! dropped 15 s after its first fragment.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::wire::{self, IPV4_HDR_LEN};

const MAX_PENDING: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(15);
const MAX_PAYLOAD: usize = 65535 - IPV4_HDR_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ident: u16,
}

struct Pending {
    key: Key,
    started: Instant,
    data: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    total: Option<usize>,
}

#[derive(Default)]
pub(crate) struct Reassembly {
    pending: Vec<Pending>,
}

/// One fragment's header fields.
pub(crate) struct Fragment<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ident: u16,
    /// Offset in bytes.
    pub offset: usize,
    pub more: bool,
    pub payload: &'a [u8],
}

impl Reassembly {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.len()
    }

    /// Adds a fragment; returns the whole datagram (IPv4 header included) once complete.
    pub fn add(&mut self, f: Fragment<'_>, now: Instant) -> Option<Vec<u8>> {
        self.expire(now);
        let end = f.offset + f.payload.len();
        if end > MAX_PAYLOAD
            || (f.more && !f.payload.len().is_multiple_of(8))
            || f.payload.is_empty()
        {
            return None;
        }
        let key = Key {
            src: f.src,
            dst: f.dst,
            proto: f.proto,
            ident: f.ident,
        };
        let i = match self.pending.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                if self.pending.len() >= MAX_PENDING {
                    return None;
                }
                self.pending.push(Pending {
                    key,
                    started: now,
                    data: Vec::new(),
                    ranges: Vec::new(),
                    total: None,
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[i];
        if !f.more {
            if p.total.is_some_and(|t| t != end) || p.ranges.iter().any(|r| r.1 > end) {
                self.pending.swap_remove(i);
                return None;
            }
            p.total = Some(end);
        } else if p.total.is_some_and(|t| end > t) {
            self.pending.swap_remove(i);
            return None;
        }
        if p.data.len() < end {
            p.data.resize(end, 0);
        }
        p.data[f.offset..end].copy_from_slice(f.payload);
        p.ranges.push((f.offset, end));
        let total = p.total?;
        p.ranges.sort_unstable();
        let mut covered = 0;
        for &(s, e) in &p.ranges {
            if s > covered {
                return None;
            }
            covered = covered.max(e);
        }
        if covered < total {
            return None;
        }
        let p = self.pending.swap_remove(i);
        let mut dg = vec![0u8; IPV4_HDR_LEN + total];
        let h = &mut dg[..IPV4_HDR_LEN];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((IPV4_HDR_LEN + total) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&key.ident.to_be_bytes());
        h[8] = 64;
        h[9] = key.proto;
        h[12..16].copy_from_slice(&key.src.octets());
        h[16..20].copy_from_slice(&key.dst.octets());
        let c = !wire::fold(wire::sum(0, h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        dg[IPV4_HDR_LEN..].copy_from_slice(&p.data[..total]);
        Some(dg)
    }

    pub fn expire(&mut self, now: Instant) {
        self.pending
            .retain(|p| now.saturating_duration_since(p.started) < TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(offset: usize, more: bool, payload: &[u8]) -> Fragment<'_> {
        Fragment {
            src: Ipv4Addr::new(10, 0, 2, 100),
            dst: Ipv4Addr::new(10, 0, 2, 2),
            proto: 17,
            ident: 9,
            offset,
            more,
            payload,
        }
    }

    #[test]
    fn reassembles_out_of_order_fragments() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut r = Reassembly::default();
        let now = Instant::now();
        assert!(r.add(frag(2400, false, &data[2400..]), now).is_none());
        assert!(r.add(frag(0, true, &data[..1200]), now).is_none());
        let dg = r.add(frag(1200, true, &data[1200..2400]), now).unwrap();
        assert_eq!(&dg[20..], &data[..]);
        assert_eq!(wire::fold(wire::sum(0, &dg[..20])), 0xffff);
        assert_eq!(u16::from_be_bytes([dg[2], dg[3]]), 3020);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn incomplete_datagrams_expire_and_bounds_hold() {
        let mut r = Reassembly::default();
        let now = Instant::now();
        assert!(r.add(frag(0, true, &[0; 8]), now).is_none());
        assert_eq!(r.len(), 1);
        r.expire(now + TIMEOUT);
        assert_eq!(r.len(), 0);
        // A non-final fragment whose size is not a multiple of 8, or one past 64 KiB.
        assert!(r.add(frag(0, true, &[0; 7]), now).is_none());
        assert!(r.add(frag(65528, false, &[0; 16]), now).is_none());
        assert_eq!(r.len(), 0);
        for ident in 0..100u16 {
            let mut f = frag(0, true, &[0; 8]);
            f.ident = ident;
            r.add(f, now);
        }
        assert_eq!(r.len(), MAX_PENDING);
    }

    #[test]
    fn a_conflicting_last_fragment_drops_the_datagram() {
        let mut r = Reassembly::default();
        let now = Instant::now();
        assert!(r.add(frag(8, false, &[1; 16]), now).is_none());
        assert_eq!(r.len(), 1);
        assert!(r.add(frag(8, false, &[1; 24]), now).is_none());
        assert_eq!(r.len(), 0);
    }
}
