//! What every target does first: fuzzed inputs can name any destination and the targets
//! open real sockets, so the process moves into new user and network namespaces holding
//! only a down `lo` before the first input (as root, where a new user namespace is refused
//! once libFuzzer has started its threads, a new network namespace alone), and no connect()
//! or sendto() can leave it.

pub use libfuzzer_sys;

pub fn isolate() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain syscalls at start-up.
        let r = unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
                0
            } else {
                libc::unshare(libc::CLONE_NEWNET)
            }
        };
        assert_eq!(r, 0, "a fuzz target must isolate itself in a new network namespace");
    });
}

/// `fuzz_target!` over `f`, isolated first.
#[macro_export]
macro_rules! fuzz_target_isolated {
    ($f:path) => {
        $crate::libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            $crate::isolate();
            $f(data);
        });
    };
}
