//! Where everything of a buffer pool lies, and how a buffer's state word is encoded.
//!
//! A pool is a control block, a table of participant records, each record's table of
//! shared references, one 64-byte descriptor per buffer, then the buffers of each size
//! class:
//!
//! ```text
//! ctrl | records[processes] | held[processes × shared_per_process] | desc[total] | class 0 data | class 1 data | …
//! ```
//!
//! A descriptor is one state word, alone on its cache line so that two buffers used by
//! two threads never share a line:
//!
//! ```text
//! state = gen << 32 | kind << 30 | owner << 16 | refs
//! ```
//!
//! `gen` (32 bits) counts how often the buffer went back to the pool, so a handle names
//! one loan of one buffer; `kind` is [`FREE`], [`HELD`], [`SENT`] or [`SHARED`]; `owner`
//! is the participant record (index + 1) of the process that holds it, sent it, or (for
//! `SHARED`) holds its anchor reference, 0 for none; `refs` counts the references to a
//! `SHARED` buffer. All-zero is `FREE` of generation 0: a fresh pool.

use crate::signal::Signal;
use crate::sync::AtomicU64;
use crossbeam_utils::CachePadded;

/// In the pool, ready to loan.
pub(crate) const FREE: u64 = 0;
/// Loaned to, or received by, `owner`, who may write it.
pub(crate) const HELD: u64 = 1;
/// Sent by `owner` and not yet received: in flight.
pub(crate) const SENT: u64 = 2;
/// Read-only and reference-counted; `owner` holds the anchor reference, if any.
pub(crate) const SHARED: u64 = 3;

/// Most size classes: each fits one geometry word of the segment header.
pub const MAX_CLASSES: usize = 5;
/// Most participant records: owners are 14 bits, and 0 means none.
pub(crate) const MAX_PROCESSES: usize = (1 << 14) - 1;
/// Most references to one shared buffer.
pub(crate) const MAX_REFS: u64 = 0xffff;
/// Largest buffer of a class: the size field of a class word is 40 bits.
const MAX_SIZE: usize = (1 << 40) - 64;
/// Most buffers of a class: the count field of a class word is 24 bits.
const MAX_COUNT: usize = (1 << 24) - 1;
/// Most buffers of a pool: indexes travel as `u32`.
const MAX_TOTAL: usize = 1 << 31;
/// Where each class's buffers start: a page, so large buffers start on one.
const DATA_ALIGN: usize = 4096;

#[inline(always)]
pub(crate) fn word(gen: u32, kind: u64, owner: u64, refs: u64) -> u64 {
    (u64::from(gen) << 32) | (kind << 30) | (owner << 16) | refs
}

#[inline(always)]
pub(crate) fn gen_of(s: u64) -> u32 {
    (s >> 32) as u32
}

#[inline(always)]
pub(crate) fn kind_of(s: u64) -> u64 {
    (s >> 30) & 3
}

#[inline(always)]
pub(crate) fn owner_of(s: u64) -> u64 {
    (s >> 16) & 0x3fff
}

#[inline(always)]
pub(crate) fn refs_of(s: u64) -> u64 {
    s & 0xffff
}

/// An entry of a record's table of shared references: buffer index + 1 and generation.
#[inline(always)]
pub(crate) fn held_entry(index: u32, gen: u32) -> u64 {
    (u64::from(index) + 1) << 32 | u64::from(gen)
}

/// The `(index, gen)` an entry names, or `None` for an empty entry.
#[inline(always)]
pub(crate) fn held_of(e: u64) -> Option<(u32, u32)> {
    let i = (e >> 32) as u32;
    (i != 0).then(|| (i - 1, e as u32))
}

/// The control block at the start of every pool (128 bytes per line used).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct PoolCtrl {
    /// Loans wait here for a buffer to come back; every return notifies.
    pub(crate) space: CachePadded<Signal>,
    /// Per class: where the next loan starts looking. A hint, stored after each loan; a
    /// stale or hostile value costs extra looks, never correctness (it is reduced modulo
    /// the class's count before use).
    pub(crate) cursors: [CachePadded<AtomicU64>; MAX_CLASSES],
}

/// One process taking part in a pool (16 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct PoolRecord {
    /// 0 (vacant) or the process's token: its `ProcessId` word in a segment, 1 on the heap.
    pub(crate) token: AtomicU64,
    /// 0, or the token of the process reclaiming this record's buffers: only it sweeps,
    /// so a record is vacated (and its owner number reused) only after one whole sweep.
    pub(crate) reaper: AtomicU64,
}

/// One descriptor: the buffer's state word, alone on a cache line.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct Desc {
    pub(crate) state: AtomicU64,
}

/// One size class: `count` buffers of `size` bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClassGeometry {
    pub(crate) size: usize,
    pub(crate) count: usize,
    /// Index of its first buffer among all of the pool's.
    pub(crate) first: usize,
    /// Offset of its first buffer's bytes.
    pub(crate) data_off: usize,
}

/// A pool's sizes and offsets. Computed by the creator, recomputed and checked by openers,
/// and never read from shared memory after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub(crate) classes: [ClassGeometry; MAX_CLASSES],
    pub(crate) n_classes: usize,
    pub(crate) processes: usize,
    pub(crate) shared_per_process: usize,
    pub(crate) total: usize,
    pub(crate) records_off: usize,
    pub(crate) held_off: usize,
    pub(crate) descs_off: usize,
    pub(crate) len: usize,
}

impl PoolGeometry {
    /// Lays out `classes` (`(size, count)`, sizes ascending and multiples of 64).
    pub(crate) fn new(
        classes: &[(usize, usize)],
        processes: usize,
        shared_per_process: usize,
    ) -> Result<PoolGeometry, &'static str> {
        if classes.is_empty() || classes.len() > MAX_CLASSES {
            return Err("a pool has 1 to 5 size classes");
        }
        if processes == 0 || processes > MAX_PROCESSES {
            return Err("a pool has 1 to 16383 participant records");
        }
        if shared_per_process > 0xffff {
            return Err("a process holds at most 65535 shared references");
        }
        let mut geo = PoolGeometry {
            classes: [ClassGeometry::default(); MAX_CLASSES],
            n_classes: classes.len(),
            processes,
            shared_per_process,
            total: 0,
            records_off: std::mem::size_of::<PoolCtrl>(),
            held_off: 0,
            descs_off: 0,
            len: 0,
        };
        geo.held_off = geo.records_off + processes * std::mem::size_of::<PoolRecord>();
        geo.descs_off = (geo.held_off + processes * shared_per_process * 8).next_multiple_of(64);
        let mut prev = 0;
        for &(size, count) in classes {
            if size == 0 || size % 64 != 0 || size > MAX_SIZE {
                return Err("a buffer size is a non-zero multiple of 64 below 2^40");
            }
            if size <= prev {
                return Err("size classes are strictly ascending");
            }
            if count == 0 || count > MAX_COUNT {
                return Err("a size class has 1 to 2^24 - 1 buffers");
            }
            prev = size;
            geo.total += count;
        }
        if geo.total > MAX_TOTAL {
            return Err("a pool has at most 2^31 buffers");
        }
        let mut off = geo.descs_off + geo.total * std::mem::size_of::<Desc>();
        let mut first = 0;
        for (c, &(size, count)) in classes.iter().enumerate() {
            off = off.next_multiple_of(DATA_ALIGN);
            geo.classes[c] = ClassGeometry {
                size,
                count,
                first,
                data_off: off,
            };
            off = size
                .checked_mul(count)
                .and_then(|n| n.checked_add(off))
                .ok_or("the pool does not fit the address space")?;
            first += count;
        }
        if off > isize::MAX as usize {
            return Err("the pool does not fit the address space");
        }
        geo.len = off;
        Ok(geo)
    }

    /// The class of the smallest buffers that hold `len` bytes.
    #[inline]
    pub(crate) fn class_for(&self, len: usize) -> Option<usize> {
        self.classes[..self.n_classes]
            .iter()
            .position(|c| c.size >= len)
    }

    /// The class of buffer `index` (which the caller checked is below `total`).
    #[inline]
    pub(crate) fn class_of(&self, index: usize) -> usize {
        self.classes[..self.n_classes]
            .iter()
            .rposition(|c| c.first <= index)
            .unwrap_or(0)
    }

    #[cfg(not(loom))]
    /// Offset of buffer `index`'s bytes.
    #[inline]
    pub(crate) fn data_off(&self, index: usize) -> usize {
        let c = &self.classes[self.class_of(index)];
        c.data_off + (index - c.first) * c.size
    }

    #[cfg(not(loom))]
    /// The six header words that describe this geometry, with `nonce` in the spare bits
    /// of the first.
    pub(crate) fn params(&self, nonce: u32) -> [u64; 6] {
        let mut p = [0u64; 6];
        p[0] = self.n_classes as u64
            | (self.processes as u64) << 8
            | (self.shared_per_process as u64) << 24
            | u64::from(nonce & 0xff_ffff) << 40;
        for (c, class) in self.classes[..self.n_classes].iter().enumerate() {
            p[c + 1] = class.size as u64 | (class.count as u64) << 40;
        }
        p
    }

    #[cfg(not(loom))]
    /// The geometry and nonce that six header words describe.
    pub(crate) fn from_params(p: [u64; 6]) -> Result<(PoolGeometry, u32), &'static str> {
        let n = (p[0] & 0xff) as usize;
        if n == 0 || n > MAX_CLASSES {
            return Err("class count out of range");
        }
        let processes = ((p[0] >> 8) & 0xffff) as usize;
        let shared = ((p[0] >> 24) & 0xffff) as usize;
        let nonce = (p[0] >> 40) as u32;
        let mut classes = [(0usize, 0usize); MAX_CLASSES];
        for (c, class) in classes.iter_mut().enumerate().take(n) {
            let w = p[c + 1];
            let size = usize::try_from(w & ((1 << 40) - 1)).map_err(|_| "size too large")?;
            *class = (size, (w >> 40) as usize);
        }
        Ok((PoolGeometry::new(&classes[..n], processes, shared)?, nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words_round_trip() {
        let s = word(u32::MAX, SHARED, MAX_PROCESSES as u64, MAX_REFS);
        assert_eq!(gen_of(s), u32::MAX);
        assert_eq!(kind_of(s), SHARED);
        assert_eq!(owner_of(s), MAX_PROCESSES as u64);
        assert_eq!(refs_of(s), MAX_REFS);
        assert_eq!(word(0, FREE, 0, 0), 0);
        assert_eq!(held_of(held_entry(7, 9)), Some((7, 9)));
        assert_eq!(held_of(0), None);
    }

    #[test]
    fn geometry_lays_out_classes_and_round_trips() {
        let geo = PoolGeometry::new(&[(64, 3), (4096, 2)], 4, 2).unwrap();
        assert_eq!(geo.total, 5);
        assert_eq!(geo.class_for(1), Some(0));
        assert_eq!(geo.class_for(65), Some(1));
        assert_eq!(geo.class_for(4097), None);
        assert_eq!(geo.class_of(2), 0);
        assert_eq!(geo.class_of(3), 1);
        assert_eq!(geo.data_off(4), geo.classes[1].data_off + 4096);
        assert_eq!(geo.classes[1].data_off % DATA_ALIGN, 0);
        assert_eq!(geo.len, geo.classes[1].data_off + 2 * 4096);
        assert_eq!(PoolGeometry::from_params(geo.params(77)), Ok((geo, 77)));
    }

    #[test]
    fn geometry_rejects_bad_classes() {
        assert!(PoolGeometry::new(&[], 1, 0).is_err());
        assert!(PoolGeometry::new(&[(100, 1)], 1, 0).is_err());
        assert!(PoolGeometry::new(&[(128, 1), (64, 1)], 1, 0).is_err());
        assert!(PoolGeometry::new(&[(64, 0)], 1, 0).is_err());
        assert!(PoolGeometry::new(&[(64, 1)], 0, 0).is_err());
        assert!(PoolGeometry::new(&[(MAX_SIZE, MAX_COUNT)], 1, 0).is_err());
        assert!(PoolGeometry::from_params([0; 6]).is_err());
        assert!(PoolGeometry::from_params([6, 0, 0, 0, 0, 0]).is_err());
    }
}
