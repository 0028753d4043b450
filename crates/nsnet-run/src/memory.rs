//! Giving back the start-up code's page mappings once an instance is serving.
//!
//! Both stages of the launcher run a lot of code once — flag parsing, namespace and
//! network set-up, the API server's start — and then, for the instance's whole life, very
//! little: the child waits for its command, the parent forwards signals while its stack and
//! API threads serve. Every page of executable text touched at start-up stays mapped, and
//! counts in the process's RSS (5.3 MB of the binary's text in the parent, 3.3 MB in the
//! child, measured at idle), although nothing will run it again.
//!
//! [`release_startup_text`] drops the page-table entries of the process's read-only file
//! mappings (code, and read-only data such as `.rodata` and unwind tables) with
//! `madvise(MADV_DONTNEED)`. For a private file mapping that was never written
//! this loses nothing: the pages stay in the page cache (shared with every other process
//! running the same files), and code that does run again faults its page back in (a minor
//! fault, no I/O). What stays mapped afterwards is the working set of the serving instance.
//! Only mappings that are not writable and hold no anonymous (copy-on-write) page are
//! touched: discarding a written page of a private mapping would silently bring back the
//! file's bytes, so `.data` and relocated read-only data (`.data.rel.ro`, written by the
//! dynamic loader before it was made read-only, hence anonymous) are never advised. The
//! page cache keeps every released page (reclaimable, shared); RSS and PSS then show the
//! serving instance's working set rather than its start-up.

use std::io;

/// Drops the mapped pages of every read-only file mapping that holds no written page;
/// returns the kilobytes of RSS that were mapped there.
pub fn release_startup_text() -> io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = 0;
    for m in read_only_file_mappings(&smaps) {
        // SAFETY: the range is a whole mapping of this process, read from its own smaps; for a
        // clean private file mapping MADV_DONTNEED only unmaps pages that fault back in from
        // the page cache.
        if unsafe { libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED) } == 0 {
            released += m.rss_kb;
        }
    }
    Ok(released)
}

#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    len: usize,
    rss_kb: u64,
}

/// The `r--p` and `r-xp` mappings of files (not `[vdso]` and the like) with
/// `Anonymous: 0 kB`.
fn read_only_file_mappings(smaps: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut cur: Option<(Mapping, bool)> = None;
    let mut finish = |cur: &mut Option<(Mapping, bool)>| {
        if let Some((m, clean)) = cur.take()
            && clean
        {
            out.push(m);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            finish(&mut cur);
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            if (perms == "r-xp" || perms == "r--p") && path.starts_with('/') {
                cur = Some((
                    Mapping {
                        start: a,
                        len: b.saturating_sub(a),
                        rss_kb: 0,
                    },
                    true,
                ));
            }
            continue;
        }
        let Some((m, clean)) = cur.as_mut() else {
            continue;
        };
        let kb = f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match first {
            "Rss:" => m.rss_kb = kb,
            "Anonymous:" if kb > 0 => *clean = false,
            _ => {}
        }
    }
    finish(&mut cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5573-5575 r--p 00000000 fe:00 5317407 /usr/bin/nsnet
Rss:                  8 kB
Anonymous:            0 kB
5576-5577 r--p 00000000 fe:00 5317407 /usr/bin/nsnet
Rss:                384 kB
Anonymous:          384 kB
5577-5580 r-xp 00274000 fe:00 5317407 /usr/bin/nsnet
Size:                44 kB
Rss:               5344 kB
Anonymous:            0 kB
5580-5582 r-xp 00000000 fe:00 1 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:               1532 kB
Anonymous:            4 kB
5590-5592 rw-p 00000000 00:00 0 [heap]
Rss:                248 kB
Anonymous:          248 kB
7ffd-7ffe r-xp 00000000 00:00 0 [vdso]
Rss:                  4 kB
Anonymous:            0 kB
";

    #[test]
    fn only_clean_read_only_file_mappings() {
        assert_eq!(
            read_only_file_mappings(SMAPS),
            vec![
                Mapping {
                    start: 0x5573,
                    len: 2,
                    rss_kb: 8
                },
                Mapping {
                    start: 0x5577,
                    len: 9,
                    rss_kb: 5344
                }
            ]
        );
    }

    #[test]
    fn releasing_keeps_the_process_running() {
        let released = release_startup_text().expect("smaps readable");
        // The test binary's own code ran to get here, so some text was mapped.
        assert!(released > 0);
        // And it still runs (its pages fault back in).
        assert_eq!(read_only_file_mappings(SMAPS).len(), 2);
    }
}
