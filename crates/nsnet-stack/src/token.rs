//! Epoll tokens of the stack's flow tables (TCP connections, UDP and ICMP flows).
//!
//! ```text
//!  63      56 55      32 31            0
//! +----------+----------+---------------+
//! |   kind   | gen & 24b|   slot index  |
//! +----------+----------+---------------+
//! ```
//!
//! A slot is reused after its flow ends; the generation, bumped at each reuse, lets an event
//! that was queued for the previous occupant be recognised and dropped.

const GEN_MASK: u64 = 0xff_ffff;

/// The token for slot `idx` of table `kind` at generation `generation`.
pub(crate) fn encode(kind: u64, generation: u32, idx: usize) -> u64 {
    (kind << 56) | ((generation as u64 & GEN_MASK) << 32) | idx as u64
}

/// The slot a token names, if `gens` (the table's generation per slot) says the token is
/// for the slot's current occupant.
pub(crate) fn current(token: u64, gens: &[u32]) -> Option<usize> {
    let idx = (token & 0xffff_ffff) as usize;
    let wanted = (token >> 32) & GEN_MASK;
    gens.get(idx)
        .is_some_and(|g| *g as u64 & GEN_MASK == wanted)
        .then_some(idx)
}

/// Claims a slot for a new flow: `reuse` (a free slot the table found) or a new one at the
/// end, with its generation bumped so that tokens of the previous occupant go stale.
pub(crate) fn claim_slot<T>(
    slots: &mut Vec<Option<T>>,
    gens: &mut Vec<u32>,
    reuse: Option<usize>,
) -> usize {
    let idx = reuse.unwrap_or_else(|| {
        slots.push(None);
        gens.push(0);
        slots.len() - 1
    });
    gens[idx] = gens[idx].wrapping_add(1);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_stale_generations() {
        let gens = [0u32, 7, 0x0100_0005];
        let t = encode(2, gens[1], 1);
        assert_eq!(t >> 56, 2);
        assert_eq!(current(t, &gens), Some(1));
        assert_eq!(current(encode(2, 6, 1), &gens), None, "stale generation");
        assert_eq!(
            current(encode(2, 5, 2), &gens),
            Some(2),
            "24-bit generation wraps"
        );
        assert_eq!(current(encode(2, 0, 9), &gens), None, "no such slot");
    }

    #[test]
    fn claimed_slots_are_reused_or_appended_with_a_new_generation() {
        let (mut slots, mut gens) = (vec![None::<u8>, Some(1)], vec![3u32, 1]);
        assert_eq!(claim_slot(&mut slots, &mut gens, Some(0)), 0);
        assert_eq!(claim_slot(&mut slots, &mut gens, None), 2);
        assert_eq!((slots.len(), gens), (3, vec![4, 1, 1]));
    }
}
