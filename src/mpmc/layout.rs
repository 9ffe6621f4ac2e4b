//! Where everything of an MPMC ring lies, and how a slot's state word is encoded.
//!
//! A ring is a control block, a table of participant records, then `capacity` slots. A
//! slot is an 8-byte state word followed by the payload:
//!
//! ```text
//! state = lap << 18 | phase << 16 | owner
//! ```
//!
//! `lap` is the position's lap (`position / capacity`, 46 bits), `phase` one of
//! [`FREE`], [`WRITING`], [`FULL`], [`READING`], and `owner` the participant record
//! (index + 1) of the process that claimed the slot, or [`SKIP`] in a `FULL` slot whose
//! producer died before writing it. All-zero is `FREE` of lap 0: a fresh ring.

pub(crate) use crate::participants::Record;
use crate::signal::Signal;
use crate::sync::{AtomicU32, AtomicU64};
use crossbeam_utils::CachePadded;

/// Ready for the producer of the slot's lap.
pub(crate) const FREE: u64 = 0;
/// Claimed by a producer that is writing the payload.
pub(crate) const WRITING: u64 = 1;
/// Holds a message of the slot's lap (or a skip marker).
pub(crate) const FULL: u64 = 2;
/// Claimed by a consumer that is reading the payload.
pub(crate) const READING: u64 = 3;

/// `owner` of a `FULL` slot that carries no message: its producer died mid-write.
pub(crate) const SKIP: u64 = 0xffff;
/// Most participant records (owners 1..=MAX_RECORDS).
pub(crate) const MAX_RECORDS: usize = 4096;
const LAP_SHIFT: u32 = 18;
/// Laps wrap at 2^46; two states are compared only for equality or for a difference of
/// one lap, so the wrap is harmless.
const LAP_MASK: u64 = (1 << 46) - 1;

#[inline(always)]
pub(crate) fn state(lap: u64, phase: u64, owner: u64) -> u64 {
    ((lap & LAP_MASK) << LAP_SHIFT) | (phase << 16) | owner
}

#[inline(always)]
pub(crate) fn lap_of(s: u64) -> u64 {
    s >> LAP_SHIFT
}

#[inline(always)]
pub(crate) fn phase_of(s: u64) -> u64 {
    (s >> 16) & 3
}

#[inline(always)]
pub(crate) fn owner_of(s: u64) -> u64 {
    s & 0xffff
}

/// `lap + 1`, wrapped like the state's lap field.
#[inline(always)]
pub(crate) fn next_lap(lap: u64) -> u64 {
    (lap + 1) & LAP_MASK
}

/// The control block at the start of every MPMC ring (640 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct MpmcCtrl {
    /// A position at or before the first free one: where producers start looking. A
    /// hint, stored after each send (`Release`, loaded `Acquire`: see `core::advance`);
    /// it may lag or briefly go back, which costs a few extra looks, never correctness.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// The same for consumers: at or before the oldest unconsumed position.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Consumers sleep here waiting for messages.
    pub(crate) data: CachePadded<Signal>,
    /// Producers sleep here waiting for room.
    pub(crate) space: CachePadded<Signal>,
    /// Handles of all processes, `[senders, receivers]`: a hint read on every send, so
    /// that a send into a ring nobody receives from fails at once. The records' counts
    /// are the truth; a process that dies leaves these too high, never too low (it adds
    /// here before its record and takes away after), so a zero is always confirmed
    /// against the records.
    pub(crate) handles: CachePadded<[AtomicU32; 2]>,
}

/// The shape of a ring, computed from its options and never read back from shared
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MpmcGeometry {
    /// Slots: a power of two, at least 2.
    pub(crate) capacity: usize,
    /// Payload bytes per slot.
    pub(crate) payload: usize,
    /// Offset of the payload inside a slot: 8, or the payload's alignment if larger.
    pub(crate) payload_off: usize,
    /// Bytes per slot, a multiple of the payload's alignment and of 8.
    pub(crate) stride: usize,
    /// Participant records.
    pub(crate) records: usize,
}

impl MpmcGeometry {
    pub(crate) fn new(
        capacity: usize,
        payload: usize,
        align: usize,
        records: usize,
    ) -> Result<MpmcGeometry, &'static str> {
        if capacity == 0 || capacity > 1 << 32 {
            return Err("capacity must be between 1 and 2^32 messages");
        }
        if payload == 0 {
            return Err("zero-sized messages carry nothing");
        }
        if !align.is_power_of_two() || align > 64 {
            return Err("message alignment must be a power of two of at most 64");
        }
        if records == 0 || records > MAX_RECORDS {
            return Err("participant records must be between 1 and 4096");
        }
        let payload_off = align.max(8);
        let stride = (payload_off + payload)
            .checked_next_multiple_of(payload_off)
            .ok_or("message too large")?;
        let geo = MpmcGeometry {
            capacity: capacity.next_power_of_two().max(2),
            payload,
            payload_off,
            stride,
            records,
        };
        geo.slots_len().ok_or("ring too large")?;
        Ok(geo)
    }

    pub(crate) fn slots_len(&self) -> Option<usize> {
        let len = self.capacity.checked_mul(self.stride)?;
        (len <= 1 << 40).then_some(len)
    }

    /// Offset of the slots from the start of the ring: control block and records,
    /// rounded up to a whole line pair.
    #[cfg(not(loom))]
    pub(crate) fn slots_off(&self) -> usize {
        (std::mem::size_of::<MpmcCtrl>() + self.records * std::mem::size_of::<Record>())
            .next_multiple_of(128)
    }

    /// Bytes of the whole ring.
    #[cfg(not(loom))]
    pub(crate) fn ring_len(&self) -> usize {
        self.slots_off() + self.slots_len().expect("validated in new")
    }

    #[inline(always)]
    pub(crate) fn lap_shift(&self) -> u32 {
        self.capacity.trailing_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_fields_round_trip() {
        let s = state(12345, READING, 77);
        assert_eq!((lap_of(s), phase_of(s), owner_of(s)), (12345, READING, 77));
        assert_eq!(state(0, FREE, 0), 0);
        assert_eq!(lap_of(state(LAP_MASK, FULL, SKIP)), LAP_MASK);
        assert_eq!(next_lap(LAP_MASK), 0);
    }

    #[test]
    fn geometry() {
        let g = MpmcGeometry::new(1000, 8, 8, 16).unwrap();
        assert_eq!((g.capacity, g.stride, g.payload_off), (1024, 16, 8));
        assert_eq!(g.slots_off() % 128, 0);
        let g = MpmcGeometry::new(1, 24, 16, 1).unwrap();
        assert_eq!((g.capacity, g.stride, g.payload_off), (2, 48, 16));
        assert!(MpmcGeometry::new(0, 8, 8, 1).is_err());
        assert!(MpmcGeometry::new(8, 0, 8, 1).is_err());
        assert!(MpmcGeometry::new(8, 8, 8, 0).is_err());
    }
}
