//! # nsnet-fuzz — what the fuzzers feed, and to which code
//!
//! Layer: test support, above every library crate. Each `pub fn` here takes arbitrary bytes
//! and drives one input surface of a running instance with them, as the real front end does;
//! it must never panic, hang or grow without bound, whatever the bytes. The cargo-fuzz
//! targets in `fuzz/` are one line each over these (plus isolating themselves in a new
//! network namespace first), and `tests/replay.rs` runs every committed corpus file through
//! them in CI, so a crash once found stays fixed.
//!
//! | target | surface |
//! |---|---|
//! | [`frames`] | the stack's guest frame path (tap frames, timers between them) |
//! | [`rest_api`] | `api.sock`: RootlessKit's REST routes, JSON bodies and ids, over the real builtin port driver |
//! | [`slirp4netns_api`] | slirp4netns's JSON API (`add_hostfwd`, `list_hostfwd`, `remove_hostfwd`) |
//! | [`pesto_conf`] | pasta's `-c` socket: the forwarding-table protocol's server side |
//! | [`pesto_spec`] | the `-t/-u/-T/-U` spec grammar (pasta's and pesto's command lines) |
//! | [`launcher_flags`] | the launcher's command line (RootlessKit's flags) and its validation |
//!
//! `frames` and `rest_api` open real sockets: call them only inside a network namespace of
//! your own (the fuzz targets make one; the replay runs in scripts/test's fresh world).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tap frames, each prefixed by one byte giving its length in units of 3, with 250 ms of the
/// stack's clock between them. Whatever the stack sends back must be a sane frame.
pub fn frames(data: &[u8]) {
    use nsnet_stack::{Config, GuestTx, Stack};
    struct Check;
    impl GuestTx for Check {
        fn send(&mut self, parts: &[&[u8]]) {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            assert!(
                len >= 10 + 14,
                "a frame holds a vnet and an Ethernet header"
            );
            assert!(len <= 10 + 14 + 65535, "no frame exceeds 64 KiB of IP");
        }
    }
    let mut cfg = Config::new(Ipv4Addr::new(10, 0, 2, 0), 24).expect("the default network");
    cfg.ipv6 = true;
    let Ok(mut stack) = Stack::new(cfg, Box::new(Check)) else {
        return;
    };
    let mut now = Instant::now();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize * 3).min(tail.len());
        let (frame, tail) = tail.split_at(n);
        stack.receive(frame, now);
        stack.flush(now);
        now += Duration::from_millis(250);
        stack.poll_timers(now);
        rest = tail;
    }
}

/// Requests to the REST API, one per line: `METHOD PATH BODY…` (the body is the rest of the
/// line), served by the real router over a real builtin port driver whose child side is
/// this namespace. Every answer must be a 2xx, 4xx or 404, never a 5xx.
pub fn rest_api(data: &[u8]) {
    use axum::body::Body;
    use axum::http::{Method, Request};
    use tower::ServiceExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ports = Arc::new(nsnet_port::Ports::Builtin(nsnet_port::PortManager::new(
        Arc::new(nsnet_port::HostSockets),
        rt.handle().clone(),
    )));
    let backend = Arc::new(nsnet_api::rest::server::Backend {
        info: nsnet_api::rest::types::Info {
            api_version: "1.1.2".into(),
            version: "fuzz".into(),
            state_dir: "/nonexistent".into(),
            child_pid: 1,
            network_driver: None,
            port_driver: None,
        },
        ports: Some(ports),
    });
    let router = nsnet_api::rest::server::router(backend);
    rt.block_on(async {
        for line in data.split(|b| *b == b'\n').take(64) {
            let text = String::from_utf8_lossy(line);
            let mut parts = text.splitn(3, ' ');
            let method = match parts.next().unwrap_or("") {
                "POST" => Method::POST,
                "DELETE" => Method::DELETE,
                "PUT" => Method::PUT,
                _ => Method::GET,
            };
            let path = parts.next().unwrap_or("/");
            let body = parts.next().unwrap_or("").to_string();
            let Ok(req) = Request::builder()
                .method(method)
                .uri(format!("http://rootlesskit{path}"))
                .body(Body::from(body))
            else {
                continue;
            };
            let resp = router.clone().oneshot(req).await.expect("infallible");
            assert!(
                !resp.status().is_server_error(),
                "{text}: {}",
                resp.status()
            );
        }
    });
}

/// Requests to slirp4netns's JSON API, one per line, against an in-memory backend.
pub fn slirp4netns_api(data: &[u8]) {
    struct Forwards(Vec<u32>);
    impl nsnet_api::slirp4netns::proto::Backend for Forwards {
        fn add(&mut self, id: u32, _udp: bool, _h: SocketAddrV4, _g: SocketAddrV4) -> bool {
            self.0.push(id);
            self.0.len() < 1000
        }
        fn remove(&mut self, id: u32) {
            self.0.retain(|i| *i != id);
        }
    }
    let mut api =
        nsnet_api::slirp4netns::proto::Api::new(Forwards(Vec::new()), Ipv4Addr::new(10, 0, 2, 100));
    for line in data.split(|b| *b == b'\n').take(256) {
        let reply = api.handle(line);
        assert!(
            reply.starts_with('{'),
            "every reply is a JSON object: {reply}"
        );
    }
}

/// One client's bytes on pasta's `-c` socket (after the server's hello and tables), served
/// by the protocol's real server over a table backend that accepts what it is sent.
pub fn pesto_conf(data: &[u8]) {
    use nsnet_api::pesto::proto::{PIF_HOST, PIF_SPLICE, handle};
    use nsnet_api::pesto::spec::{CAP_IPV4, CAP_IPV6, CAP_SCAN, CAP_TCP, CAP_UDP, Table};
    use nsnet_api::pesto::{Backend, PifTable};
    use std::io::Write;
    struct Tables(Vec<PifTable>);
    impl Backend for Tables {
        fn tables(&self) -> Vec<PifTable> {
            self.0.clone()
        }
        fn replace(&mut self, new: Vec<PifTable>) -> Result<(), String> {
            self.0 = new;
            Ok(())
        }
    }
    let caps = CAP_IPV4 | CAP_IPV6 | CAP_TCP | CAP_UDP | CAP_SCAN;
    let mut tables = Tables(vec![
        PifTable {
            pif: PIF_HOST,
            name: "HOST".into(),
            table: Table::new(caps),
        },
        PifTable {
            pif: PIF_SPLICE,
            name: "SPLICE".into(),
            table: Table::new(caps),
        },
    ]);
    let (mut client, mut server) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    // The client's bytes, then EOF: written first (a socket pair buffers well over what the
    // fuzzer sends; longer inputs are cut), so the server never waits on a live peer.
    let _ = client.set_nonblocking(true);
    let _ = client.write_all(&data[..data.len().min(64 * 1024)]);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = server.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = handle(&mut server, &mut tables);
    drop(client);
}

/// A `-t/-u/-T/-U` spec: the option is chosen by the first byte, the spec is the rest; added,
/// then deleted, from one table.
pub fn pesto_spec(data: &[u8]) {
    use nsnet_api::pesto::spec::{CAP_IFNAME, CAP_IPV4, CAP_IPV6, CAP_SCAN, CAP_TCP, CAP_UDP};
    use nsnet_api::pesto::spec::{Parser, Table};
    let Some((&o, spec)) = data.split_first() else {
        return;
    };
    let opt = ['t', 'u', 'T', 'U'][o as usize % 4];
    let spec = String::from_utf8_lossy(spec);
    let p = Parser {
        ephemeral: (32768, 60999),
    };
    let mut t = Table::new(CAP_IPV4 | CAP_IPV6 | CAP_TCP | CAP_UDP | CAP_SCAN | CAP_IFNAME);
    if p.parse(opt, false, &spec, &mut t).is_ok() {
        let _ = p.parse(opt, true, &spec, &mut t);
    }
}

/// The launcher's command line: NUL-separated words after `rootlesskit`, parsed by the
/// flags' clap declaration and checked by the launcher's validation.
pub fn launcher_flags(data: &[u8]) {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        raw: nsnet_run::RawOptions,
    }
    let words = std::iter::once("rootlesskit".to_string()).chain(
        data.split(|b| *b == 0)
            .take(64)
            .map(|w| String::from_utf8_lossy(w).into_owned()),
    );
    if let Ok(cli) = Cli::try_parse_from(words) {
        let _ = nsnet_run::LaunchPlan::from_raw(cli.raw, nsnet_run::Personality::Rootlesskit);
    }
}
