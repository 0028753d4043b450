//! Every committed corpus file of `fuzz/corpus/TARGET/` through its target, as CI's replay:
//! an input that once crashed a target (kept there when it was fixed) must never again.
//! `frames` and `rest_api` open real sockets, so this runs only in a world of its own (a
//! network namespace holding only `lo`: scripts/test makes one per integration test).

use std::path::PathBuf;

fn world() {
    let mut links = nsnet_ns::netns::interface_names().expect("read /proc/net/dev");
    links.sort();
    // lo alone (`unshare --net`), or scripts/test's world: lo and a veth pair whose both ends
    // are here, holding 192.0.2.10 and no route out.
    assert!(
        links == ["lo"] || links == ["lo", "nsw0", "nsw1"],
        "the corpus replay must run in a fresh network namespace holding only lo (and scripts/test's nsw0/nsw1 pair); run it with scripts/test: {links:?}"
    );
}

fn replay(target: &str, run: fn(&[u8])) {
    world();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let done = std::panic::catch_unwind(|| run(&data));
        assert!(done.is_ok(), "{} crashes {target}", path.display());
        n += 1;
    }
    assert!(n > 0, "{} holds no seed", dir.display());
}

#[test]
fn frames_corpus() {
    replay("frames", nsnet_fuzz::frames);
}

#[test]
fn rest_api_corpus() {
    replay("rest_api", nsnet_fuzz::rest_api);
}

#[test]
fn slirp4netns_api_corpus() {
    replay("slirp4netns_api", nsnet_fuzz::slirp4netns_api);
}

#[test]
fn pesto_conf_corpus() {
    replay("pesto_conf", nsnet_fuzz::pesto_conf);
}

#[test]
fn pesto_spec_corpus() {
    replay("pesto_spec", nsnet_fuzz::pesto_spec);
}

#[test]
fn launcher_flags_corpus() {
    replay("launcher_flags", nsnet_fuzz::launcher_flags);
}
