//! The byte ring each connection keeps per direction: `ring` (read from the host socket, not
//! yet acknowledged by the guest) and `to_host` (taken from the guest, not yet taken by the
//! host socket).
//!
//! Why a ring of fixed capacity rather than a growing `Vec`: the buffer is mapped once, on
//! first use, and never reallocated while the connection moves bytes. `to_host` was a
//! `Vec` with a read offset, compacted only when emptied and shrunk to 64 KiB whenever it
//! had grown past 1 MiB; at full speed it emptied and regrew several times a second, and
//! each regrowth was a fresh `mmap` whose every page faulted and was zeroed again (8.6 % of
//! the stack thread's time in page faults, 1.7 % in `clear_page`, in a `perf` profile of
//! ns → host at MTU 65520). Memory is returned by [`Ring::release_if_empty`], which the timer
//! tick calls about once a second on the connections that have a ring mapped (`timers.rs`):
//! an idle connection holds no buffer, a busy one keeps it.
//!
//! Why `mmap` by hand rather than `vec![0; CAP]`: the allocator serves a 4 MiB zeroed
//! request from its heap once it has seen such blocks freed (glibc raises its mmap threshold
//! to the size of a freed mapped block), and zeroes a reused block with `memset`, touching
//! every page; freed heap blocks stay resident. Measured with 10,000 connections that had
//! each carried 64 bytes: 1.0 GB resident. An anonymous mapping of our own has only the
//! pages that bytes were written to resident, and `munmap` returns them at once.

use std::ptr::NonNull;

/// `len` bytes of private anonymous memory, zero until written, unmapped on drop.
struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapped {
    /// `None` when the kernel has no address space left: the ring then takes nothing (the
    /// guest's bytes are not acknowledged, a host read resets the connection) rather than
    /// the stack aborting.
    fn new(len: usize) -> Option<Mapped> {
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Mapped {
            ptr: NonNull::new(p.cast())?,
            len,
        })
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is len bytes, readable, and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, writable, and borrowed mutably through self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

// SAFETY: the mapping is owned memory like a Box<[u8]>; nothing else refers to it.
unsafe impl Send for Mapped {}

/// A fixed-capacity byte ring, mapped on first use.
pub(super) struct Ring<const CAP: usize> {
    buf: Option<Mapped>,
    head: usize,
    pub(super) len: usize,
}

impl<const CAP: usize> Default for Ring<CAP> {
    fn default() -> Self {
        Ring {
            buf: None,
            head: 0,
            len: 0,
        }
    }
}

impl<const CAP: usize> Ring<CAP> {
    pub(super) fn free(&self) -> usize {
        CAP - self.len
    }
    /// Up to `max` bytes of the free space as up to two slices, in order (none if the
    /// buffer cannot be mapped).
    pub(super) fn free_slices(&mut self, max: usize) -> [&mut [u8]; 2] {
        if self.buf.is_none() {
            self.buf = Mapped::new(CAP);
        }
        let tail = (self.head + self.len) % CAP;
        let free = (CAP - self.len).min(max);
        let Some(buf) = self.buf.as_mut() else {
            return [&mut [], &mut []];
        };
        let (a, b) = buf.bytes_mut().split_at_mut(tail);
        if tail + free <= CAP {
            [&mut b[..free], &mut []]
        } else {
            let first = CAP - tail;
            [b, &mut a[..free - first]]
        }
    }
    /// Appends as much of `data` as fits; returns how much that was.
    pub(super) fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        let [a, b] = self.free_slices(n);
        let (first, second) = (a.len(), b.len());
        a.copy_from_slice(&data[..first]);
        b.copy_from_slice(&data[first..first + second]);
        self.len += first + second;
        first + second
    }
    /// The bytes at logical offsets `off..off + n`, as up to two slices.
    pub(super) fn slices(&self, off: usize, n: usize) -> [&[u8]; 2] {
        if n == 0 {
            return [&[], &[]];
        }
        let Some(buf) = self.buf.as_ref() else {
            return [&[], &[]];
        };
        let buf = buf.bytes();
        let start = (self.head + off) % CAP;
        if start + n <= CAP {
            [&buf[start..start + n], &[]]
        } else {
            let first = CAP - start;
            [&buf[start..], &buf[..n - first]]
        }
    }
    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % CAP;
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }
    /// Frees the buffer when it holds nothing (the next use allocates it again).
    pub(super) fn release_if_empty(&mut self) {
        if self.len == 0 && self.buf.is_some() {
            self.buf = None;
            self.head = 0;
        }
    }
    /// Whether the buffer is mapped (a mapped ring is listed for release, `timers.rs`).
    pub(super) fn allocated(&self) -> bool {
        self.buf.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn push_wraps_and_keeps_order() {
        let mut r = Ring::<4096>::default();
        let data: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
        assert_eq!(r.push(&data[..3000]), 3000);
        r.consume(2000);
        // 3096 bytes free, the last 1096 of them before the wrap point.
        assert_eq!(r.push(&data[3000..]), 3096, "only the free room is taken");
        let [a, b] = r.slices(0, r.len);
        assert_eq!((a.len(), b.len()), (1096 + 1000, 2000));
        assert_eq!([a, b].concat(), &data[2000..6096]);
        assert_eq!(r.free(), 0);
        assert_eq!(r.push(b"x"), 0);
    }

    #[test]
    fn release_only_when_empty() {
        let mut r = Ring::<4096>::default();
        assert!(!r.allocated());
        r.push(b"ab");
        r.release_if_empty();
        assert!(r.allocated(), "bytes still held");
        r.consume(2);
        r.release_if_empty();
        assert!(!r.allocated());
        assert_eq!(r.push(b"cd"), 2);
        assert_eq!(r.slices(0, 2)[0], b"cd");
    }
}
