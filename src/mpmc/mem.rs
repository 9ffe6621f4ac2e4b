//! The words and payloads of an MPMC ring, in a region or (under loom) in loom's atomics
//! and race-tracked cells.

use super::layout::{MpmcCtrl, MpmcGeometry, Record};
use crate::atomics::Scope;
use crate::sync::AtomicU64;
use bytemuck::Pod;

#[cfg(not(loom))]
pub(crate) use std_mem::MpmcMem;

#[cfg(loom)]
pub(crate) use loom_mem::MpmcMem;

#[cfg(not(loom))]
mod std_mem {
    use super::*;
    use crate::region::Region;
    use std::marker::PhantomData;
    use std::ptr::NonNull;
    use std::sync::Arc;

    /// A ring's control block, records and slots inside a region.
    pub(crate) struct MpmcMem<T> {
        base: NonNull<u8>,
        pub(crate) geo: MpmcGeometry,
        scope: Scope,
        region: Arc<Region>,
        _t: PhantomData<T>,
    }

    impl<T> Clone for MpmcMem<T> {
        fn clone(&self) -> Self {
            MpmcMem {
                base: self.base,
                geo: self.geo,
                scope: self.scope,
                region: self.region.clone(),
                _t: PhantomData,
            }
        }
    }

    // SAFETY: the memory is shared through atomics and the slot protocol; T is Pod.
    unsafe impl<T: Pod + Send> Send for MpmcMem<T> {}
    // SAFETY: as above.
    unsafe impl<T: Pod + Send> Sync for MpmcMem<T> {}

    impl<T: Pod> MpmcMem<T> {
        /// The ring at the start of `region`, which holds at least `geo.ring_len()` bytes.
        pub(crate) fn new(region: Arc<Region>, geo: MpmcGeometry) -> Self {
            assert!(geo.ring_len() <= region.len());
            assert_eq!(geo.payload, std::mem::size_of::<T>());
            let base = NonNull::new(region.ptr(0)).expect("non-null");
            MpmcMem {
                base,
                geo,
                scope: region.scope(),
                region,
                _t: PhantomData,
            }
        }

        pub(crate) fn heap(geo: MpmcGeometry) -> Self {
            Self::new(Region::heap(geo.ring_len()), geo)
        }

        #[inline(always)]
        pub(crate) fn ctrl(&self) -> &MpmcCtrl {
            // SAFETY: the region starts with the control block (checked in new), is
            // 128-byte aligned, and MpmcCtrl is atomics only, valid for any bytes.
            unsafe { self.base.cast::<MpmcCtrl>().as_ref() }
        }

        /// Every participant record.
        #[inline]
        pub(crate) fn records(&self) -> &[Record] {
            // SAFETY: `records` records follow the control block (ring_len covers them),
            // 8-byte aligned; atomics only.
            unsafe {
                std::slice::from_raw_parts(
                    self.base
                        .as_ptr()
                        .add(std::mem::size_of::<MpmcCtrl>())
                        .cast::<Record>(),
                    self.geo.records,
                )
            }
        }

        #[inline(always)]
        fn slot(&self, index: usize) -> *mut u8 {
            let index = index & (self.geo.capacity - 1);
            // SAFETY: index < capacity, so the slot lies inside slots_len (checked in new).
            unsafe {
                self.base
                    .as_ptr()
                    .add(self.geo.slots_off() + index * self.geo.stride)
            }
        }

        /// The state word of slot `index % capacity`.
        #[inline(always)]
        pub(crate) fn state(&self, index: usize) -> &AtomicU64 {
            // SAFETY: the slot starts with its 8-byte-aligned state word; atomics are
            // valid for any bytes.
            unsafe { &*self.slot(index).cast::<AtomicU64>() }
        }

        /// # Safety
        /// The caller holds the slot in `WRITING` for the current lap.
        #[inline(always)]
        pub(crate) unsafe fn write(&self, index: usize, value: T) {
            // SAFETY: the payload is inside the slot and aligned for T (payload_off and
            // stride are multiples of its alignment); exclusive per the caller.
            unsafe {
                self.slot(index)
                    .add(self.geo.payload_off)
                    .cast::<T>()
                    .write(value)
            }
        }

        /// # Safety
        /// The caller holds the slot in `READING` for a lap whose producer wrote it.
        #[inline(always)]
        pub(crate) unsafe fn read(&self, index: usize) -> T {
            // SAFETY: as for write; nobody writes the payload while the slot is READING.
            unsafe {
                self.slot(index)
                    .add(self.geo.payload_off)
                    .cast::<T>()
                    .read()
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
    use crate::sync::UnsafeCell;
    use loom::sync::Arc;

    struct Inner<T> {
        ctrl: MpmcCtrl,
        records: Box<[Record]>,
        states: Box<[AtomicU64]>,
        payloads: Box<[UnsafeCell<T>]>,
    }

    /// Under loom: the same ring with loom atomics and race-tracked cells on the heap.
    pub(crate) struct MpmcMem<T> {
        inner: Arc<Inner<T>>,
        pub(crate) geo: MpmcGeometry,
    }

    impl<T> Clone for MpmcMem<T> {
        fn clone(&self) -> Self {
            MpmcMem {
                inner: self.inner.clone(),
                geo: self.geo,
            }
        }
    }

    impl<T: Pod> MpmcMem<T> {
        pub(crate) fn heap(geo: MpmcGeometry) -> Self {
            MpmcMem {
                inner: Arc::new(Inner {
                    ctrl: MpmcCtrl::default(),
                    records: (0..geo.records).map(|_| Record::default()).collect(),
                    states: (0..geo.capacity).map(|_| AtomicU64::new(0)).collect(),
                    payloads: (0..geo.capacity)
                        .map(|_| UnsafeCell::new(T::zeroed()))
                        .collect(),
                }),
                geo,
            }
        }

        pub(crate) fn ctrl(&self) -> &MpmcCtrl {
            &self.inner.ctrl
        }

        pub(crate) fn records(&self) -> &[Record] {
            &self.inner.records
        }

        pub(crate) fn state(&self, index: usize) -> &AtomicU64 {
            &self.inner.states[index & (self.geo.capacity - 1)]
        }

        pub(crate) unsafe fn write(&self, index: usize, value: T) {
            let cell = &self.inner.payloads[index & (self.geo.capacity - 1)];
            // SAFETY: loom checks the exclusivity the caller promises.
            cell.with_mut(|p| unsafe { p.write(value) })
        }

        pub(crate) unsafe fn read(&self, index: usize) -> T {
            let cell = &self.inner.payloads[index & (self.geo.capacity - 1)];
            // SAFETY: loom checks that no write races with this read.
            cell.with(|p| unsafe { p.read() })
        }

        pub(crate) fn scope(&self) -> Scope {
            Scope::Process
        }
    }
}
