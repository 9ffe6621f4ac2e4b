//! Where everything of a broadcast ring lies, and how a slot's state word is encoded.
//!
//! A ring is a control block, publisher records, subscriber records, then `capacity`
//! slots. A slot is all 64-bit words, so that a subscriber can copy a message with
//! atomic loads while a publisher may be overwriting it:
//!
//! ```text
//! [state] [length] [data words ...]
//! state = position << 18 | phase << 16 | owner
//! ```
//!
//! `position` is the message's position (46 bits, wrapping), `phase` one of
//! [`WRITING`], [`COMMITTED`], [`SKIPPED`], and `owner` the publishing process's record
//! (index + 1). All-zero means "never written", which no other state equals.

use crate::signal::Signal;
use crate::sync::{AtomicU32, AtomicU64};
use crossbeam_utils::CachePadded;

/// Claimed by a publisher that is writing the message.
pub(crate) const WRITING: u64 = 1;
/// Holds the message of its position.
pub(crate) const COMMITTED: u64 = 2;
/// Its publisher died while writing: no message at this position.
pub(crate) const SKIPPED: u64 = 3;

/// Positions in a state word are 46 bits; comparisons are taken modulo that.
pub(crate) const POS_MASK: u64 = (1 << 46) - 1;
const POS_SHIFT: u32 = 18;

#[inline(always)]
pub(crate) fn state(pos: u64, phase: u64, owner: u64) -> u64 {
    ((pos & POS_MASK) << POS_SHIFT) | (phase << 16) | owner
}

#[inline(always)]
pub(crate) fn pos_of(s: u64) -> u64 {
    s >> POS_SHIFT
}

#[inline(always)]
pub(crate) fn phase_of(s: u64) -> u64 {
    (s >> 16) & 3
}

#[inline(always)]
pub(crate) fn owner_of(s: u64) -> u64 {
    s & 0xffff
}

/// How far position `a` is ahead of `b`, modulo the state's position width: small for
/// ahead, close to `POS_MASK` for behind.
#[inline(always)]
pub(crate) fn ahead(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b) & POS_MASK
}

/// Whether a distance from [`ahead`] means "behind".
#[inline(always)]
pub(crate) fn is_behind(d: u64) -> bool {
    d > POS_MASK / 2
}

/// What publishers do when the slowest subscriber is a whole ring behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Publishers never wait: they overwrite the oldest message, and a subscriber that
    /// falls behind gets `Lagged(n)` and goes on from the oldest message still kept.
    Overwrite,
    /// Publishers wait until the slowest live subscriber has read the message they would
    /// overwrite. A subscriber whose process died is removed, so it never blocks them
    /// for good.
    Backpressure,
}

/// The control block at the start of every broadcast ring (512 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BroadcastCtrl {
    /// A position at or before the first unclaimed one; a hint, as in the MPMC ring.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// Subscribers sleep here waiting for messages.
    pub(crate) data: CachePadded<Signal>,
    /// Publishers sleep here waiting for the slowest subscriber (backpressure only).
    pub(crate) space: CachePadded<Signal>,
    /// Handles of all processes, `[publishers, subscribers]`: a hint, too high after a
    /// crash, never too low (see the MPMC ring's `handles`); then the `closing` flag a
    /// named `BroadcastChannel` sets while its last user removes the name.
    pub(crate) handles: CachePadded<[AtomicU32; 3]>,
}

/// A subscriber's record: one per subscriber handle, on its own line pair, since its
/// cursor is written after every message under backpressure.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SubRecord {
    /// 0 (vacant), or the subscribing process's token.
    pub(crate) token: AtomicU64,
    /// The next position the subscriber will read; `u64::MAX` while vacant or leaving.
    /// Fresh memory says 0, which only delays a publisher until the joiner's first store.
    pub(crate) cursor: AtomicU64,
}

/// The shape of a ring, computed from its options and never read back from shared
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BroadcastGeometry {
    /// Slots: a power of two, at least 2.
    pub(crate) capacity: usize,
    /// Longest message in bytes.
    pub(crate) max_message: usize,
    /// Words per slot: state, length, data.
    pub(crate) slot_words: usize,
    /// Publisher process records.
    pub(crate) publishers: usize,
    /// Subscriber records: most subscribers at once.
    pub(crate) subscribers: usize,
    pub(crate) overflow: Overflow,
    /// Messages a new subscriber starts behind the newest (at most `capacity`).
    pub(crate) history: usize,
}

/// Most publisher processes or subscribers a ring can be configured for.
pub(crate) const MAX_RECORDS: usize = 4096;

impl BroadcastGeometry {
    pub(crate) fn new(
        capacity: usize,
        max_message: usize,
        publishers: usize,
        subscribers: usize,
        overflow: Overflow,
        history: usize,
    ) -> Result<BroadcastGeometry, &'static str> {
        if capacity == 0 || capacity > 1 << 32 {
            return Err("capacity must be between 1 and 2^32 messages");
        }
        if max_message > 1 << 30 {
            return Err("messages must be at most 1 GiB");
        }
        if publishers == 0 || publishers > MAX_RECORDS {
            return Err("publisher processes must be between 1 and 4096");
        }
        if subscribers == 0 || subscribers > MAX_RECORDS {
            return Err("subscribers must be between 1 and 4096");
        }
        let capacity = capacity.next_power_of_two().max(2);
        if history > capacity {
            return Err("history cannot exceed the capacity");
        }
        let geo = BroadcastGeometry {
            capacity,
            max_message,
            slot_words: 2 + max_message.div_ceil(8),
            publishers,
            subscribers,
            overflow,
            history,
        };
        match geo.capacity.checked_mul(geo.slot_words) {
            Some(words) if words as u64 <= 1 << 37 => Ok(geo),
            _ => Err("ring larger than 1 TiB"),
        }
    }

    /// Offset of the subscriber records: after the control block and publisher records.
    #[cfg(not(loom))]
    pub(crate) fn subs_off(&self) -> usize {
        (std::mem::size_of::<BroadcastCtrl>()
            + self.publishers * std::mem::size_of::<crate::participants::Record>())
        .next_multiple_of(128)
    }

    /// Offset of the slots.
    #[cfg(not(loom))]
    pub(crate) fn slots_off(&self) -> usize {
        self.subs_off() + self.subscribers * std::mem::size_of::<CachePadded<SubRecord>>()
    }

    /// Bytes of the whole ring.
    #[cfg(not(loom))]
    pub(crate) fn ring_len(&self) -> usize {
        self.slots_off() + self.capacity * self.slot_words * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_fields_and_distances() {
        let s = state(POS_MASK, COMMITTED, 9);
        assert_eq!(
            (pos_of(s), phase_of(s), owner_of(s)),
            (POS_MASK, COMMITTED, 9)
        );
        assert_eq!(ahead(0, POS_MASK), 1);
        assert!(is_behind(ahead(POS_MASK, 0)));
        assert_ne!(state(0, WRITING, 0), 0);
    }

    #[test]
    fn geometry() {
        let g = BroadcastGeometry::new(100, 60, 4, 8, Overflow::Overwrite, 0).unwrap();
        assert_eq!((g.capacity, g.slot_words), (128, 10));
        assert!(BroadcastGeometry::new(4, 8, 1, 1, Overflow::Overwrite, 5).is_err());
        assert!(BroadcastGeometry::new(4, 8, 0, 1, Overflow::Overwrite, 0).is_err());
    }
}
