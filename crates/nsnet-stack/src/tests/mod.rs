//! Unit tests of the whole stack against a fake guest link: frames are crafted here (the
//! "guest"), the host side is real sockets on this test world's loopback, and the clock is
//! virtual wherever a timer matters.
//!
//! `harness.rs` holds the link ([`H`], [`Sink`]) and the frame builders and readers; each
//! other file is one subject and starts with `use super::*`, which brings in the harness
//! and the imports below.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::time::Duration;

use proptest::prelude::*;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    EthernetFrame, EthernetProtocol, TcpPacket, UdpPacket,
};

use crate::Config;
use crate::wire::{self, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, VnetHdr};

mod harness;
use harness::*;

mod arp_icmp;
mod config;
mod dns_dhcp;
mod forward;
mod frames;
mod ipv6;
mod tcp;
mod udp;
