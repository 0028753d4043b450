//! The out-of-order queue of one connection's guest → host data.
//!
//! Forwarded traffic (a container behind a bridge and veth) reaches the tap reordered by a
//! segment or two whenever the sender moves between CPUs (veth's per-CPU backlogs). Dropping
//! such a segment costs the guest a retransmission and, without SACK, a halved window; so
//! segments ahead of `rcv_nxt` are kept here until the hole before them is filled.
//!
//! Design: a short sorted list of runs of contiguous bytes, keyed by absolute sequence
//! number and compared relative to `rcv_nxt` (always within 2^31, so wrapping arithmetic is
//! exact). A segment that continues the last run, the usual case behind a hole, only extends
//! that run; runs are merged when a segment touches or overlaps them, so runs never overlap
//! or touch. Nothing is allocated until a segment arrives out of order. Only bytes inside
//! the window we advertise are kept, so at most the window's worth (`TO_HOST_CAP`) is held
//! and every held byte fits into `to_host` when the hole fills; the number of runs (holes)
//! is capped so a hostile guest cannot make the list long.

/// Most runs (separate holes) kept; a segment that would open another one is dropped.
const MAX_RUNS: usize = 64;

struct Run {
    seq: u32,
    data: Vec<u8>,
}

#[derive(Default)]
pub(super) struct OutOfOrder {
    runs: Vec<Run>,
}

impl OutOfOrder {
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Bytes held.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.runs.iter().map(|r| r.data.len()).sum()
    }

    /// Drops everything and frees the memory.
    pub(super) fn clear(&mut self) {
        self.runs = Vec::new();
    }

    /// Keeps `data`, which starts at `seq` after `rcv_nxt`, as far as it lies inside the
    /// window `rcv_nxt..rcv_nxt + wnd`; bytes already held are not stored twice.
    pub(super) fn insert(&mut self, rcv_nxt: u32, wnd: usize, seq: u32, data: &[u8]) {
        let so = seq.wrapping_sub(rcv_nxt) as usize;
        if so == 0 || so >= wnd.min(1 << 30) || data.is_empty() {
            return;
        }
        let data = &data[..data.len().min(wnd - so)];
        let eo = so + data.len();
        let off = |r: &Run| r.seq.wrapping_sub(rcv_nxt) as usize;
        // Runs i..j touch or overlap [so, eo).
        let i = self.runs.partition_point(|r| off(r) + r.data.len() < so);
        let j = self.runs.partition_point(|r| off(r) <= eo);
        if i >= j {
            if self.runs.len() < MAX_RUNS {
                let data = data.to_vec();
                self.runs.insert(i, Run { seq, data });
            }
            return;
        }
        let first = off(&self.runs[i]);
        if j == i + 1 && first <= so {
            // Continues (or lies inside) one run: append what is new.
            let r = &mut self.runs[i];
            let end = first + r.data.len();
            if eo > end {
                r.data.extend_from_slice(&data[end - so..]);
            }
            return;
        }
        // Fills holes between runs or extends one to the left: rebuild the merged run. Where
        // bytes overlap, the held ones are kept (a sane guest resends the same bytes).
        let last = &self.runs[j - 1];
        let (ns, ne) = (first.min(so), (off(last) + last.data.len()).max(eo));
        let mut buf = vec![0; ne - ns];
        buf[so - ns..eo - ns].copy_from_slice(data);
        for r in &self.runs[i..j] {
            let o = off(r) - ns;
            buf[o..o + r.data.len()].copy_from_slice(&r.data);
        }
        let seq = rcv_nxt.wrapping_add(ns as u32);
        self.runs.splice(i..j, [Run { seq, data: buf }]);
    }

    /// The held bytes that continue the stream at `rcv_nxt`, if the first run reaches it.
    pub(super) fn ready(&self, rcv_nxt: u32) -> Option<&[u8]> {
        let r = self.runs.first()?;
        let skip = rcv_nxt.wrapping_sub(r.seq);
        if (skip as i32) < 0 || skip as usize >= r.data.len() {
            return None;
        }
        Some(&r.data[skip as usize..])
    }

    /// Forgets the bytes before `rcv_nxt` (taken into the stream, or superseded).
    pub(super) fn trim(&mut self, rcv_nxt: u32) {
        let mut gone = 0;
        for r in &mut self.runs {
            let skip = rcv_nxt.wrapping_sub(r.seq);
            if (skip as i32) <= 0 {
                break;
            }
            if skip as usize >= r.data.len() {
                gone += 1;
                continue;
            }
            r.data.drain(..skip as usize);
            r.seq = rcv_nxt;
            break;
        }
        self.runs.drain(..gone);
        if self.runs.is_empty() {
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Takes everything ready at `rcv_nxt` the way the connection does; returns the bytes.
    fn drain(q: &mut OutOfOrder, rcv_nxt: &mut u32) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(d) = q.ready(*rcv_nxt) {
            out.extend_from_slice(d);
            *rcv_nxt = rcv_nxt.wrapping_add(d.len() as u32);
        }
        q.trim(*rcv_nxt);
        out
    }

    #[test]
    fn appends_merge_and_wrap_around_zero() {
        let base = u32::MAX - 3;
        let mut q = OutOfOrder::default();
        q.insert(base, 100, base.wrapping_add(4), b"efgh");
        q.insert(base, 100, base.wrapping_add(8), b"ij");
        assert_eq!(
            (q.runs.len(), q.held()),
            (1, 6),
            "a continuation extends the run"
        );
        q.insert(base, 100, base.wrapping_add(12), b"mn");
        q.insert(base, 100, base.wrapping_add(5), b"fg");
        assert_eq!(
            (q.runs.len(), q.held()),
            (2, 8),
            "bytes already held are ignored"
        );
        q.insert(base, 100, base.wrapping_add(9), b"jkl");
        assert_eq!(
            (q.runs.len(), q.held()),
            (1, 10),
            "a hole filled merges two runs"
        );
        let mut nxt = base;
        assert!(q.ready(nxt).is_none());
        assert!(drain(&mut q, &mut nxt).is_empty());
        nxt = base.wrapping_add(4);
        assert_eq!(drain(&mut q, &mut nxt), b"efghijklmn");
        assert_eq!(nxt, base.wrapping_add(14));
        assert!(q.is_empty());
        assert_eq!(q.runs.capacity(), 0, "memory freed once empty");
    }

    #[test]
    fn only_the_window_is_kept_and_holes_are_capped() {
        let mut q = OutOfOrder::default();
        q.insert(1000, 10, 1010, b"x");
        q.insert(1000, 10, 1000, b"at rcv_nxt is not out of order");
        assert!(q.is_empty());
        q.insert(1000, 10, 1008, b"abcd");
        assert_eq!(q.held(), 2, "trimmed at the right edge");
        let mut q = OutOfOrder::default();
        for k in 0..MAX_RUNS as u32 + 5 {
            q.insert(0, 1 << 20, 1 + 2 * k, b"z");
        }
        assert_eq!(q.runs.len(), MAX_RUNS);
    }

    #[test]
    fn trim_keeps_the_part_past_rcv_nxt() {
        let mut q = OutOfOrder::default();
        q.insert(0, 100, 10, b"abcdef");
        q.insert(0, 100, 20, b"gh");
        q.trim(13);
        assert_eq!(q.ready(13), Some(&b"def"[..]));
        q.trim(25);
        assert!(q.is_empty());
    }

    proptest! {
        /// Against a model (one optional byte per sequence offset): whatever the order and
        /// overlap of segments, every byte in the window comes out once, in order.
        #[test]
        fn matches_a_byte_model(
            base in any::<u32>(),
            segs in proptest::collection::vec((0usize..300, 1usize..40), 1..40),
        ) {
            let wnd = 256;
            let stream: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
            let mut q = OutOfOrder::default();
            let mut nxt = base;
            let mut got = Vec::new();
            let mut model = vec![false; 400];
            for (start, len) in segs {
                let done = nxt.wrapping_sub(base) as usize;
                let end = (start + len).min(stream.len());
                if start < done {
                    // The connection trims the old part of a segment before anything else.
                    if end > done {
                        got.extend_from_slice(&stream[done..end]);
                        nxt = base.wrapping_add(end as u32);
                        got.extend(drain(&mut q, &mut nxt));
                    }
                } else if start == done {
                    got.extend_from_slice(&stream[start..end]);
                    nxt = base.wrapping_add(end as u32);
                    got.extend(drain(&mut q, &mut nxt));
                } else {
                    q.insert(nxt, wnd, base.wrapping_add(start as u32), &stream[start..end]);
                    for b in model.iter_mut().take(end.min(done + wnd)).skip(start) {
                        *b = true;
                    }
                }
                let done = nxt.wrapping_sub(base) as usize;
                prop_assert_eq!(&got[..], &stream[..done]);
                // Everything the model holds past rcv_nxt is held, nothing more.
                let held = model.iter().skip(done).filter(|b| **b).count();
                prop_assert_eq!(q.held(), held);
                prop_assert!(q.runs.len() <= MAX_RUNS);
            }
        }
    }
}
