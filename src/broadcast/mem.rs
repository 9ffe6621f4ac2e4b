//! The words of a broadcast ring, in a region or (under loom) in loom's atomics.

use super::layout::{BroadcastCtrl, BroadcastGeometry, SubRecord};
use crate::atomics::Scope;
use crate::participants::Record;
use crate::sync::AtomicU64;
use crossbeam_utils::CachePadded;

#[cfg(not(loom))]
pub(crate) use std_mem::BroadcastMem;

#[cfg(loom)]
pub(crate) use loom_mem::BroadcastMem;

#[cfg(not(loom))]
mod std_mem {
    use super::*;
    use crate::region::Region;
    use crate::segment::Segment;
    use std::ptr::NonNull;
    use std::sync::Arc;

    /// A ring's control block, records and slot words inside a region.
    #[derive(Clone)]
    pub(crate) struct BroadcastMem {
        base: NonNull<u8>,
        pub(crate) geo: BroadcastGeometry,
        scope: Scope,
        region: Arc<Region>,
    }

    // SAFETY: the memory is only ever accessed through atomics.
    unsafe impl Send for BroadcastMem {}
    // SAFETY: as above.
    unsafe impl Sync for BroadcastMem {}

    impl BroadcastMem {
        /// The ring at the start of `region`, which holds at least `geo.ring_len()` bytes.
        pub(crate) fn new(region: Arc<Region>, geo: BroadcastGeometry) -> Self {
            assert!(geo.ring_len() <= region.len());
            BroadcastMem {
                base: NonNull::new(region.ptr(0)).expect("non-null"),
                geo,
                scope: region.scope(),
                region,
            }
        }

        pub(crate) fn heap(geo: BroadcastGeometry) -> Self {
            Self::new(Region::heap(geo.ring_len()), geo)
        }

        pub(crate) fn segment(&self) -> Option<&Segment> {
            self.region.segment_ref()
        }

        #[inline(always)]
        pub(crate) fn ctrl(&self) -> &BroadcastCtrl {
            // SAFETY: the region starts with the control block (checked in new), 128-byte
            // aligned; atomics only, valid for any bytes.
            unsafe { self.base.cast::<BroadcastCtrl>().as_ref() }
        }

        pub(crate) fn publishers(&self) -> &[Record] {
            // SAFETY: `publishers` records follow the control block, 8-byte aligned,
            // inside ring_len (checked in new); atomics only.
            unsafe {
                std::slice::from_raw_parts(
                    self.base
                        .as_ptr()
                        .add(std::mem::size_of::<BroadcastCtrl>())
                        .cast::<Record>(),
                    self.geo.publishers,
                )
            }
        }

        pub(crate) fn subscribers(&self) -> &[CachePadded<SubRecord>] {
            // SAFETY: `subscribers` records start at subs_off, a multiple of 128, inside
            // ring_len; atomics only.
            unsafe {
                std::slice::from_raw_parts(
                    self.base
                        .as_ptr()
                        .add(self.geo.subs_off())
                        .cast::<CachePadded<SubRecord>>(),
                    self.geo.subscribers,
                )
            }
        }

        /// The words of slot `index % capacity`.
        #[inline(always)]
        pub(crate) fn slot(&self, index: u64) -> &[AtomicU64] {
            let i = index as usize & (self.geo.capacity - 1);
            // SAFETY: slot i's words lie inside ring_len (i < capacity), 8-byte aligned;
            // atomics only.
            unsafe {
                std::slice::from_raw_parts(
                    self.base
                        .as_ptr()
                        .add(self.geo.slots_off() + i * self.geo.slot_words * 8)
                        .cast::<AtomicU64>(),
                    self.geo.slot_words,
                )
            }
        }

        #[inline(always)]
        pub(crate) fn scope(&self) -> Scope {
            self.scope
        }
    }
}

#[cfg(loom)]
mod loom_mem {
    use super::*;
    use loom::sync::Arc;

    struct Inner {
        ctrl: BroadcastCtrl,
        publishers: Box<[Record]>,
        subscribers: Box<[CachePadded<SubRecord>]>,
        words: Box<[AtomicU64]>,
    }

    /// Under loom: the same ring in loom's atomics on the heap.
    #[derive(Clone)]
    pub(crate) struct BroadcastMem {
        inner: Arc<Inner>,
        pub(crate) geo: BroadcastGeometry,
    }

    impl BroadcastMem {
        pub(crate) fn heap(geo: BroadcastGeometry) -> Self {
            BroadcastMem {
                inner: Arc::new(Inner {
                    ctrl: BroadcastCtrl::default(),
                    publishers: (0..geo.publishers).map(|_| Record::default()).collect(),
                    subscribers: (0..geo.subscribers)
                        .map(|_| CachePadded::new(SubRecord::default()))
                        .collect(),
                    words: (0..geo.capacity * geo.slot_words)
                        .map(|_| AtomicU64::new(0))
                        .collect(),
                }),
                geo,
            }
        }

        pub(crate) fn ctrl(&self) -> &BroadcastCtrl {
            &self.inner.ctrl
        }

        pub(crate) fn publishers(&self) -> &[Record] {
            &self.inner.publishers
        }

        pub(crate) fn subscribers(&self) -> &[CachePadded<SubRecord>] {
            &self.inner.subscribers
        }

        pub(crate) fn slot(&self, index: u64) -> &[AtomicU64] {
            let i = index as usize & (self.geo.capacity - 1);
            &self.inner.words[i * self.geo.slot_words..(i + 1) * self.geo.slot_words]
        }

        pub(crate) fn scope(&self) -> Scope {
            Scope::Process
        }
    }
}
