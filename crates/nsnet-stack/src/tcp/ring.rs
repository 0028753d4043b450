//! The byte ring each connection keeps per direction: `ring` (read from the host socket, not
//! yet acknowledged by the guest) and `to_host` (taken from the guest, not yet taken by the
//! host socket).
//!
//! Why a ring of fixed capacity rather than a growing `Vec`: the buffer is allocated once,
//! on first use, with `calloc`-backed zeroed memory whose pages the kernel maps only when
//! first touched, and is never reallocated while the connection moves bytes. `to_host` was a
//! `Vec` with a read offset, compacted only when emptied and shrunk to 64 KiB whenever it
//! had grown past 1 MiB; at full speed it emptied and regrew several times a second, and
//! each regrowth was a fresh `mmap` whose every page faulted and was zeroed again (8.6 % of
//! the stack thread's time in page faults, 1.7 % in `clear_page`, in a `perf` profile of
//! ns → host at MTU 65520). Memory is returned by [`Ring::release_if_empty`], which the timer
//! scan calls about once a second: an idle connection holds no buffer, a busy one keeps it.

/// A fixed-capacity byte ring, allocated on first use.
pub(super) struct Ring<const CAP: usize> {
    buf: Vec<u8>,
    head: usize,
    pub(super) len: usize,
}

impl<const CAP: usize> Default for Ring<CAP> {
    fn default() -> Self {
        Ring {
            buf: Vec::new(),
            head: 0,
            len: 0,
        }
    }
}

impl<const CAP: usize> Ring<CAP> {
    pub(super) fn free(&self) -> usize {
        CAP - self.len
    }
    /// Up to `max` bytes of the free space as up to two slices, in order.
    pub(super) fn free_slices(&mut self, max: usize) -> [&mut [u8]; 2] {
        if self.buf.is_empty() {
            self.buf = vec![0; CAP];
        }
        let tail = (self.head + self.len) % CAP;
        let free = (CAP - self.len).min(max);
        let (a, b) = self.buf.split_at_mut(tail);
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
        let first = a.len();
        a.copy_from_slice(&data[..first]);
        b.copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }
    /// The bytes at logical offsets `off..off + n`, as up to two slices.
    pub(super) fn slices(&self, off: usize, n: usize) -> [&[u8]; 2] {
        if n == 0 {
            return [&[], &[]];
        }
        let start = (self.head + off) % CAP;
        if start + n <= CAP {
            [&self.buf[start..start + n], &[]]
        } else {
            let first = CAP - start;
            [&self.buf[start..], &self.buf[..n - first]]
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
        if self.len == 0 && !self.buf.is_empty() {
            self.buf = Vec::new();
            self.head = 0;
        }
    }
    /// Whether the buffer is allocated (for memory accounting in tests).
    #[cfg(test)]
    pub(super) fn allocated(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn push_wraps_and_keeps_order() {
        let mut r = Ring::<8>::default();
        assert_eq!(r.push(b"abcdef"), 6);
        r.consume(4);
        assert_eq!(r.push(b"ghijklm"), 6, "only the free room is taken");
        let [a, b] = r.slices(0, r.len);
        assert_eq!([a, b].concat(), b"efghijkl");
        assert_eq!(r.free(), 0);
        assert_eq!(r.push(b"x"), 0);
    }

    #[test]
    fn release_only_when_empty() {
        let mut r = Ring::<8>::default();
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
