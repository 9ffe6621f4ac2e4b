//! Where everything of a state table lies: its geometry, its header, the words of a slot,
//! and how the words encode a slot's state.
//!
//! A table is a header followed by `slots` slots of `slot_words` 64-bit words each, every
//! word an `AtomicU64`, so that every access to shared memory is atomic whatever a peer
//! writes concurrently. A slot is:
//!
//! | word | content |
//! | --- | --- |
//! | `SEQ` | seqlock word: `counter << 2 \| active << 1 \| writing` |
//! | `LOCK` | 0, or the token of the writer that holds the slot |
//! | `INCARNATION` | bumped each time a key is inserted into the slot |
//! | `KEY_META` | `tag << 32 \| key_len`, tag = high half of the key's hash |
//! | `KEY..` | the key's bytes, `key_words` words, zero-padded |
//! | copy 0, copy 1 | each `META` (`LIVE` bit \| value length), `VERSION`, `value_words` words |
//!
//! The `active` bit of `SEQ` says which copy is published; a writer fills the other one
//! and flips the bit, so the published copy is never overwritten in place.

use crate::signal::Signal;
use crate::sync::AtomicU64;
use crossbeam_utils::CachePadded;

/// Longest key a table can be configured for.
pub(crate) const MAX_KEY_LEN: usize = 1024;
/// Largest value a table can be configured for (16 MiB).
pub(crate) const MAX_VALUE_LEN: usize = 1 << 24;
/// Most keys a table can be configured for.
pub(crate) const MAX_CAPACITY: usize = 1 << 24;
/// Largest table, in words (1 TiB), whatever the options multiply to.
const MAX_TABLE_WORDS: u64 = 1 << 37;

pub(crate) const SEQ: usize = 0;
pub(crate) const LOCK: usize = 1;
pub(crate) const INCARNATION: usize = 2;
pub(crate) const KEY_META: usize = 3;
pub(crate) const KEY: usize = 4;

/// Word offsets inside a copy.
pub(crate) const META: usize = 0;
pub(crate) const VERSION: usize = 1;
pub(crate) const VALUE: usize = 2;

/// `SEQ` bit: a writer is filling the inactive copy.
pub(crate) const WRITING: u64 = 1;
/// `SEQ` bit: which copy is published.
const ACTIVE: u64 = 2;
/// `META` bit: the copy holds a live key (clear: the slot is free).
pub(crate) const LIVE: u64 = 1 << 63;

/// The copy a `SEQ` value publishes.
#[inline(always)]
pub(crate) fn active(seq: u64) -> usize {
    ((seq & ACTIVE) >> 1) as usize
}

/// The `SEQ` value that publishes the other copy: one more in the counter, active
/// flipped, writing clear.
#[inline(always)]
pub(crate) fn flipped(seq: u64) -> u64 {
    ((seq >> 2).wrapping_add(1) << 2) | ((seq & ACTIVE) ^ ACTIVE)
}

/// The `SEQ` value that abandons a dead writer's half-written copy: one more in the
/// counter, the same copy still active, writing clear.
#[inline(always)]
pub(crate) fn abandoned(seq: u64) -> u64 {
    ((seq >> 2).wrapping_add(1) << 2) | (seq & ACTIVE)
}

/// `KEY_META` for a key of `len` bytes with `hash`.
#[inline(always)]
pub(crate) fn key_meta(len: usize, hash: u64) -> u64 {
    (hash & 0xffff_ffff_0000_0000) | len as u64
}

/// The key's length recorded in a `KEY_META` word (unvalidated).
#[inline(always)]
pub(crate) fn key_len_of(meta: u64) -> u64 {
    meta & 0xffff_ffff
}

/// The shared header at the start of every table (384 bytes). Each group sits on its
/// own pair of lines: `version` is written by every write, the membership words only by
/// inserts and removes, and the signal's waiter count only by sleepers, so readers of
/// the membership words (every lookup) hit a line that rarely moves.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct TableHeader {
    /// The table version: the version of the latest write that began. Every write takes
    /// the next value while holding its slot, after marking the slot as being written.
    pub(crate) version: CachePadded<AtomicU64>,
    /// Which keys occupy which slots.
    pub(crate) members: CachePadded<Members>,
    /// Writers notify after every write; `wait_for_change` sleeps here.
    pub(crate) changes: CachePadded<Signal>,
}

/// Words guarded by the membership lock.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Members {
    /// 0, or the token of the inserter or remover that holds it.
    pub(crate) lock: AtomicU64,
    /// Live keys. Written under the lock; validated against the capacity when read.
    pub(crate) len: AtomicU64,
    /// The farthest any key has ever been placed from its home slot. Only grows, and
    /// grows before the key that needs it is published, so a lookup that scans this far
    /// from home finds every key. Validated against the slot count when read.
    pub(crate) max_probe: AtomicU64,
}

/// The shape of a table, computed from its options and never read back from shared
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Most live keys.
    pub(crate) capacity: usize,
    /// Slots: a power of two of at least twice the capacity, so probes stay short.
    pub(crate) slots: usize,
    pub(crate) max_key: usize,
    pub(crate) max_value: usize,
    pub(crate) key_words: usize,
    pub(crate) value_words: usize,
    /// Words per slot, a multiple of 8 so that slots start on cache lines.
    pub(crate) slot_words: usize,
}

impl Geometry {
    pub(crate) fn new(
        capacity: usize,
        max_key: usize,
        max_value: usize,
    ) -> Result<Geometry, &'static str> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err("capacity must be between 1 and 2^24 keys");
        }
        if max_key == 0 || max_key > MAX_KEY_LEN {
            return Err("maximum key length must be between 1 and 1024 bytes");
        }
        if max_value > MAX_VALUE_LEN {
            return Err("maximum value length must be at most 16 MiB");
        }
        let key_words = max_key.div_ceil(8);
        let value_words = max_value.div_ceil(8);
        let slot_words = (KEY + key_words + 2 * (VALUE + value_words)).next_multiple_of(8);
        let geo = Geometry {
            capacity,
            slots: (capacity * 2).next_power_of_two(),
            max_key,
            max_value,
            key_words,
            value_words,
            slot_words,
        };
        match geo.slots.checked_mul(slot_words) {
            Some(words) if words as u64 <= MAX_TABLE_WORDS => Ok(geo),
            _ => Err("table larger than 1 TiB"),
        }
    }

    /// First word of copy 0 or 1 inside a slot.
    #[inline(always)]
    pub(crate) fn copy_base(&self, copy: usize) -> usize {
        KEY + self.key_words + copy * (VALUE + self.value_words)
    }

    /// Words of all slots.
    pub(crate) fn words(&self) -> usize {
        self.slots * self.slot_words
    }

    /// Bytes of the whole table: header plus slots.
    #[cfg(not(loom))]
    pub(crate) fn table_len(&self) -> usize {
        std::mem::size_of::<TableHeader>() + self.words() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_transitions() {
        let s = 0;
        assert_eq!(active(s), 0);
        let w = s | WRITING;
        assert_eq!(active(w), 0);
        let p = flipped(w);
        assert_eq!((active(p), p & WRITING), (1, 0));
        assert_ne!(p, s);
        let a = abandoned(p | WRITING);
        assert_eq!((active(a), a & WRITING), (1, 0));
        assert_ne!(a, p);
    }

    #[test]
    fn geometry_bounds() {
        let g = Geometry::new(100, 32, 64).unwrap();
        assert_eq!(g.slots, 256);
        assert_eq!(g.slot_words % 8, 0);
        assert!(g.copy_base(1) + VALUE + g.value_words <= g.slot_words);
        assert!(Geometry::new(0, 8, 8).is_err());
        assert!(Geometry::new(1, 0, 8).is_err());
        assert!(Geometry::new(1, 8, MAX_VALUE_LEN + 1).is_err());
        assert!(Geometry::new(MAX_CAPACITY, MAX_KEY_LEN, MAX_VALUE_LEN).is_err());
        assert_eq!(std::mem::size_of::<TableHeader>() % 128, 0);
    }
}
