//! Frames as they come: a frame captured from a kernel guest (a partial checksum trusted
//! through the vnet header, and dropped without it), and random or mutated frames that must
//! never panic the stack (proptest; seeds in `proptest-regressions/tests/frames.txt`).

use super::*;

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
/// network namespace holding nothing but `lo` and scripts/test's veth pair (one per test binary), where
/// no connect() can leave the machine.
fn assert_isolated_world() {
    let mut links = nsnet_ns::netns::interface_names().expect("read /proc/net/dev");
    links.sort();
    // lo alone (`unshare --net`), or scripts/test's world: lo and a veth pair whose both ends
    // are here, holding 192.0.2.10 and no route out.
    assert!(
        links == ["lo"] || links == ["lo", "nsw0", "nsw1"],
        "run the stack's property tests with scripts/test: {links:?}"
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
