//! TCP termination against real host sockets on this world's loopback.

use super::*;

/// Opens a guest connection to 10.0.2.2:`port` (host 127.0.0.1) and returns the host side
/// of it and our ISN + 1.
fn handshake(h: &mut H, l: &TcpListener, sport: u16) -> (std::net::TcpStream, u32) {
    let port = l.local_addr().unwrap().port();
    let dst = SocketAddrV4::new(GW, port);
    h.send(tcp(dst, sport, 1000, 0, SYN, 65535, &SYN_OPTS, b""));
    let outs = h.wait_for(|o| o.iter().any(|o| o.proto == 6));
    let s = tcps(&outs).pop().unwrap();
    assert_eq!(s.flags, SYN | ACK);
    assert_eq!(s.ack, 1001);
    assert_eq!(s.sport, port);
    assert_eq!(s.mss, Some(65480), "MSS from the MTU (65520 - 40)");
    let (host, _) = l.accept().unwrap();
    h.send(tcp(dst, sport, 1001, s.seq + 1, ACK, 8192, &[], b""));
    (host, s.seq + 1)
}

#[test]
fn tcp_connect_transfer_and_half_close_both_ways() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    let (mut host, our) = handshake(&mut h, &l, 40000);
    // guest → host
    h.send(tcp(dst, 40000, 1001, our, ACK, 8192, &[], b"hello"));
    let acks = tcps(&h.take());
    assert_eq!(
        acks.last().unwrap().ack,
        1006,
        "data acknowledged once written"
    );
    let mut buf = [0u8; 5];
    host.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    // host → guest, then host closes its side
    host.write_all(b"world").unwrap();
    host.shutdown(std::net::Shutdown::Write).unwrap();
    let outs = h.wait_for(|o| tcps(o).iter().any(|s| s.flags & FIN != 0));
    let segs = tcps(&outs);
    let data: Vec<u8> = segs.iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(data, b"world");
    let fin = segs.iter().find(|s| s.flags & FIN != 0).unwrap();
    assert_eq!(fin.seq, our + 5);
    // The guest can still send after the host's FIN (half-close), then closes too.
    h.send(tcp(dst, 40000, 1006, our + 6, ACK, 8192, &[], b"more"));
    h.send(tcp(dst, 40000, 1010, our + 6, FIN | ACK, 8192, &[], b""));
    let last = tcps(&h.take());
    assert_eq!(last.last().unwrap().ack, 1011, "guest FIN acknowledged");
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"more", "guest FIN became shutdown(SHUT_WR)");
    assert_eq!(
        h.stack.flow_counts().0,
        0,
        "connection gone once both FINs are acked"
    );
}

#[test]
fn tcp_refused_by_host_is_reset() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut h = H::default();
    h.send(tcp(
        SocketAddrV4::new(GW, port),
        40001,
        5,
        0,
        SYN,
        65535,
        &SYN_OPTS,
        b"",
    ));
    let outs = h.wait_for(|o| !o.is_empty());
    let s = seg(&outs[0]);
    assert_eq!(s.flags, RST | ACK);
    assert_eq!(s.ack, 6);
    assert_eq!(h.stack.flow_counts().0, 0);
}

#[test]
fn segments_for_unknown_connections_are_reset() {
    let mut h = H::default();
    h.send(tcp(
        SocketAddrV4::new(GW, 9),
        40002,
        5,
        777,
        ACK,
        100,
        &[],
        b"x",
    ));
    let s = seg(&h.take()[0]);
    assert_eq!((s.flags, s.seq), (RST, 777));
    h.send(tcp(
        SocketAddrV4::new(GW, 9),
        40002,
        5,
        0,
        RST,
        100,
        &[],
        b"",
    ));
    assert!(h.take().is_empty(), "never a RST for a RST");
}

/// Everything the host socket has received so far (waits briefly for in-flight bytes).
fn host_bytes(host: &mut std::net::TcpStream) -> Vec<u8> {
    host.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 1 << 16];
    loop {
        match host.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("host read: {e}"),
        }
    }
    all
}

/// The ACK numbers of the stack's segments since the last call.
fn acks(h: &mut H) -> Vec<u32> {
    tcps(&h.take()).iter().map(|s| s.ack).collect()
}

#[test]
fn out_of_order_data_is_held_acked_as_duplicate_and_delivered_once_in_order() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    let (mut host, our) = handshake(&mut h, &l, 40004);
    // Segments 2, 1: 2 is held and answered by a duplicate ACK at once; 1 releases both,
    // under one ACK.
    h.send(tcp(dst, 40004, 1003, our, ACK, 8192, &[], b"cd"));
    assert_eq!(acks(&mut h), [1001], "duplicate ACK for the hole");
    assert!(host_bytes(&mut host).is_empty(), "nothing past the hole");
    h.send(tcp(dst, 40004, 1001, our, ACK, 8192, &[], b"ab"));
    assert_eq!(acks(&mut h), [1005], "one ACK covers the held segment");
    // A retransmission overlapping what was taken only adds the new bytes.
    h.send(tcp(dst, 40004, 1002, our, ACK, 8192, &[], b"bcde"));
    assert_eq!(acks(&mut h), [1006]);
    assert_eq!(host_bytes(&mut host), b"abcde");

    // Segments 3, 1, 2 (with a duplicate of 3 and one overlapping 2 and 3).
    h.send(tcp(dst, 40004, 1010, our, ACK, 8192, &[], b"jkl"));
    h.send(tcp(dst, 40004, 1010, our, ACK, 8192, &[], b"jkl"));
    h.send(tcp(dst, 40004, 1008, our, ACK, 8192, &[], b"hij"));
    assert_eq!(acks(&mut h), [1006, 1006, 1006]);
    h.send(tcp(dst, 40004, 1006, our, ACK, 8192, &[], b"fg"));
    assert_eq!(acks(&mut h), [1013]);
    assert_eq!(
        host_bytes(&mut host),
        b"fghijkl",
        "each byte exactly once, in order"
    );

    // A retransmission of everything is old news: re-acknowledged, not delivered again.
    h.send(tcp(dst, 40004, 1001, our, ACK, 8192, &[], b"abcdefghijkl"));
    assert_eq!(acks(&mut h), [1013]);
    // A FIN ahead of the stream is not taken; data held before it is, and the FIN counts
    // once the guest resends it in order.
    h.send(tcp(dst, 40004, 1015, our, FIN | ACK, 8192, &[], b"o"));
    h.send(tcp(dst, 40004, 1013, our, ACK, 8192, &[], b"mn"));
    assert_eq!(acks(&mut h), [1013, 1016], "the FIN is not acknowledged");
    assert!(host_bytes(&mut host) == b"mno");
    h.send(tcp(dst, 40004, 1016, our, FIN | ACK, 8192, &[], b""));
    assert_eq!(acks(&mut h), [1017]);
    let mut rest = Vec::new();
    host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    host.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "EOF after the FIN, nothing else: {rest:?}");
}

#[test]
fn out_of_order_data_beyond_the_window_is_not_held() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    // No window scaling: our window is 65535 bytes, 1001..66536.
    h.send(tcp(dst, 40011, 1000, 0, SYN, 65535, &[2, 4, 5, 0xb4], b""));
    let s = tcps(&h.wait_for(|o| !o.is_empty())).pop().unwrap();
    assert_eq!((s.flags, s.win), (SYN | ACK, 65535));
    let (mut host, _) = l.accept().unwrap();
    let our = s.seq + 1;
    h.send(tcp(dst, 40011, 1001, our, ACK, 8192, &[], b""));
    // Wholly beyond the right edge: dropped. Straddling it: only the byte inside is held.
    h.send(tcp(dst, 40011, 66536, our, ACK, 8192, &[], b"X"));
    h.send(tcp(dst, 40011, 66535, our, ACK, 8192, &[], b"yz"));
    assert_eq!(acks(&mut h), [1001, 1001]);
    let data: Vec<u8> = (0..65534u32).map(|i| (i % 253) as u8).collect();
    h.send(tcp(dst, 40011, 1001, our, ACK, 8192, &[], &data[..40000]));
    h.send(tcp(dst, 40011, 41001, our, ACK, 8192, &[], &data[40000..]));
    assert_eq!(
        acks(&mut h),
        [41001, 66536],
        "the hole filled up to the right edge, no further"
    );
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; 65535];
        host.read_exact(&mut got).unwrap();
        (got, host_bytes(&mut host))
    });
    let (got, extra) = reader.join().unwrap();
    assert_eq!(&got[..65534], &data[..]);
    assert_eq!(got[65534], b'y');
    assert!(extra.is_empty(), "nothing past the window: {extra:?}");
}

#[test]
fn unacknowledged_data_is_retransmitted_on_the_virtual_clock() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let (mut host, our) = handshake(&mut h, &l, 40005);
    host.write_all(b"abc").unwrap();
    let first = tcps(&h.wait_for(|o| tcps(o).iter().any(|s| !s.data.is_empty())));
    let d = first.iter().find(|s| !s.data.is_empty()).unwrap();
    assert_eq!((d.seq, d.data.as_slice()), (our, &b"abc"[..]));
    h.advance(Duration::from_millis(100));
    assert!(h.take().is_empty(), "not before the RTO");
    h.advance(Duration::from_millis(150));
    let again = tcps(&h.take());
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].seq, again[0].data.as_slice()), (our, &b"abc"[..]));
}

#[test]
fn three_duplicate_acks_retransmit_from_the_hole() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    let (mut host, our) = handshake(&mut h, &l, 40006);
    host.write_all(&[7u8; 3000]).unwrap();
    let got = h.wait_for(|o| tcps(o).iter().map(|s| s.data.len()).sum::<usize>() == 3000);
    assert!(
        tcps(&got).iter().all(|s| s.data.len() <= 1460 * 44),
        "within TSO size"
    );
    for _ in 0..3 {
        h.send(tcp(dst, 40006, 1001, our, ACK, 8192, &[], b""));
    }
    let re = tcps(&h.take());
    assert_eq!(re.first().map(|s| s.seq), Some(our), "go back to snd_una");
}

#[test]
fn zero_window_from_the_guest_stops_data_and_is_probed() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    let port = dst.port();
    let sport = 40007;
    h.send(tcp(dst, sport, 1000, 0, SYN, 0, &[2, 4, 5, 0xb4], b""));
    let s = tcps(&h.wait_for(|o| !o.is_empty())).pop().unwrap();
    let (mut host, _) = l.accept().unwrap();
    let our = s.seq + 1;
    let _ = port;
    h.send(tcp(dst, sport, 1001, our, ACK, 0, &[], b""));
    host.write_all(b"blocked").unwrap();
    h.io(50);
    h.io(50);
    assert!(
        tcps(&h.take()).iter().all(|s| s.data.is_empty()),
        "no data into a zero window"
    );
    h.advance(Duration::from_millis(250));
    let probe = tcps(&h.take());
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].seq, our.wrapping_sub(1), "window probe");
    h.send(tcp(dst, sport, 1001, our, ACK, 100, &[], b""));
    let d = tcps(&h.take());
    assert_eq!(d[0].data, b"blocked");
}

#[test]
fn guest_reset_aborts_the_host_connection() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    let (mut host, our) = handshake(&mut h, &l, 40008);
    h.send(tcp(dst, 40008, 1001, our, RST | ACK, 0, &[], b""));
    assert_eq!(h.stack.flow_counts().0, 0);
    let mut b = [0u8; 1];
    let e = host.read(&mut b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
}

#[test]
fn host_reset_resets_the_guest() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let (host, _) = handshake(&mut h, &l, 40009);
    // Close with data unread makes the kernel send RST.
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    let our = h.stack.flow_counts().0;
    assert_eq!(our, 1);
    let _ = dst;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&host);
    crate::sys::set_linger_zero(fd);
    drop(host);
    let outs = h.wait_for(|o| tcps(o).iter().any(|s| s.flags & RST != 0));
    assert!(!outs.is_empty());
    assert_eq!(h.stack.flow_counts().0, 0);
}

#[test]
fn backpressure_from_a_slow_host_closes_the_window_and_loses_nothing() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    let (mut host, our) = handshake(&mut h, &l, 40010);
    // Push 12 MiB without the host reading: the socket fills, then our 4 MiB buffer; the
    // window must reach zero and nothing beyond it may be taken.
    let chunk: Vec<u8> = (0..60000u32).map(|i| (i % 251) as u8).collect();
    let mut seq = 1001u32;
    let mut sent = 0usize;
    let mut window_closed = false;
    for _ in 0..200 {
        h.send(tcp(dst, 40010, seq, our, ACK, 8192, &[], &chunk));
        let last = tcps(&h.take()).pop().unwrap();
        let taken = last.ack.wrapping_sub(seq) as usize;
        seq = last.ack;
        sent += taken;
        if last.win == 0 {
            window_closed = true;
            break;
        }
    }
    assert!(window_closed, "window reached zero after {sent} bytes");
    // Now the host reads everything; the stack flushes and reopens the window.
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while all.len() < sent {
            let n = host.read(&mut buf).unwrap();
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    let mut reopened = false;
    while !reader.is_finished() {
        h.io(10);
        reopened |= tcps(&h.take()).iter().any(|s| s.win > 0);
    }
    assert!(reopened, "a window update once the host drained the buffer");
    let all = reader.join().unwrap();
    assert_eq!(all.len(), sent);
    // The stream is the chunk's bytes in order, cut wherever acks fell.
    let mut off = 0;
    let mut expect_pos = 0usize;
    while off < all.len() {
        assert_eq!(all[off], chunk[expect_pos % chunk.len()], "byte {off}");
        off += 1;
        expect_pos += 1;
        if expect_pos == chunk.len() {
            expect_pos = 0;
        }
    }
}

#[test]
fn connections_gone_idle_leave_the_timer_lists() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = H::default();
    let dst = SocketAddrV4::new(GW, l.local_addr().unwrap().port());
    let mut hosts = Vec::new();
    for sport in 41000..41020 {
        let (mut host, our) = handshake(&mut h, &l, sport);
        h.send(tcp(dst, sport, 1001, our, ACK, 8192, &[], b"ping"));
        let mut buf = [0u8; 4];
        host.read_exact(&mut buf).unwrap();
        host.write_all(b"pong").unwrap();
        let outs = h.wait_for(|o| tcps(o).iter().any(|s| !s.data.is_empty()));
        let d = tcps(&outs)
            .into_iter()
            .find(|s| !s.data.is_empty())
            .unwrap();
        assert_eq!(d.data, b"pong");
        hosts.push(host);
        let (armed, mapped) = h.stack.tcp_timer_lists();
        assert!(
            armed >= 1 && mapped >= 1,
            "unacked bytes: a timer and a ring"
        );
        h.send(tcp(dst, sport, 1005, our + 4, ACK, 8192, &[], b""));
    }
    // Everything acknowledged both ways: the next ticks (a ring release among them) drop
    // every connection from both lists, and they stay open.
    h.advance(Duration::from_millis(1100));
    h.advance(Duration::from_millis(1100));
    assert_eq!(h.stack.tcp_timer_lists(), (0, 0));
    assert_eq!(h.stack.flow_counts().0, 20);
    // A connection that gets busy again is listed again, and its timer still fires.
    hosts[3].write_all(b"again").unwrap();
    let outs = h.wait_for(|o| tcps(o).iter().any(|s| !s.data.is_empty()));
    let d = tcps(&outs)
        .into_iter()
        .find(|s| !s.data.is_empty())
        .unwrap();
    assert_eq!(h.stack.tcp_timer_lists().0, 1);
    h.advance(Duration::from_millis(250));
    let again = tcps(&h.take());
    assert_eq!(again.len(), 1, "retransmitted on the timer");
    assert_eq!(
        (again[0].seq, again[0].data.as_slice()),
        (d.seq, &b"again"[..])
    );
}
