//! A blocking peer that holds a process of the code under test at a real point of an
//! operation, so a test can kill it there: nsnet-bridge runs `nft -j -f -` from PATH and waits
//! for it once the bridge exists and the address is recorded (fixtures/nft_gate.sh).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::wait_for_file;

const NFT_GATE: &str = include_str!("../fixtures/nft_gate.sh");

/// A directory to put first on PATH, holding an `nft` that holds the first caller whose
/// command line contains `who` (fixtures/nft_gate.sh).
pub fn nft_gate(dir: &Path, who: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let gate = dir.join("gate");
    std::fs::create_dir(&gate).unwrap();
    let nft = gate.join("nft");
    let script = NFT_GATE
        .replace("@GATE@", gate.to_str().unwrap())
        .replace("@WHO@", who);
    std::fs::write(&nft, script).unwrap();
    std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
    gate
}

/// Waits (bounded) until the gate holds its caller: (the held nft's PID, the caller's PID).
pub fn held(gate: &Path) -> (i32, i32) {
    let nft: i32 = wait_for_file(&gate.join("held"), Duration::from_secs(30))
        .trim()
        .parse()
        .unwrap();
    // The gate writes its PID, then execs `sleep infinity`: wait for the exec.
    let t0 = std::time::Instant::now();
    loop {
        let cmdline = std::fs::read(format!("/proc/{nft}/cmdline")).unwrap_or_default();
        if cmdline == b"sleep\0infinity\0" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "PID {nft} is not the held nft (a PID namespace between?): {}",
            String::from_utf8_lossy(&cmdline)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = std::fs::read_to_string(format!("/proc/{nft}/status")).unwrap();
    let caller = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (nft, caller)
}
