//! The words and bytes of a buffer pool, in a region or (under loom) in loom's atomics and
//! race-tracked cells.

use super::layout::{PoolCtrl, PoolGeometry, PoolRecord};
use crate::atomics::Scope;
use crate::sync::AtomicU64;

#[cfg(not(loom))]
pub(crate) use std_mem::PoolMem;

#[cfg(loom)]
pub(crate) use loom_mem::PoolMem;

#[cfg(not(loom))]
mod std_mem {
    use super::*;
    use crate::pool::layout::Desc;
    use crate::region::Region;
    use std::ptr::NonNull;
    use std::sync::Arc;

    /// A pool's control block, records, descriptors and buffers inside a region.
    #[derive(Clone)]
    pub(crate) struct PoolMem {
        base: NonNull<u8>,
        pub(crate) geo: PoolGeometry,
        scope: Scope,
        /// Keeps the memory allocated or mapped while any handle lives.
        _region: Arc<Region>,
    }

    // SAFETY: the control memory is atomics only; buffer bytes are reached only by the
    // process that holds the buffer, per the state-word protocol.
    unsafe impl Send for PoolMem {}
    // SAFETY: as above.
    unsafe impl Sync for PoolMem {}

    impl PoolMem {
        /// The pool at the start of `region`, which holds at least `geo.len` bytes.
        pub(crate) fn new(region: Arc<Region>, geo: PoolGeometry) -> Self {
            assert!(geo.len <= region.len());
            let base = NonNull::new(region.ptr(0)).expect("non-null");
            PoolMem {
                base,
                geo,
                scope: region.scope(),
                _region: region,
            }
        }

        pub(crate) fn heap(geo: PoolGeometry) -> Self {
            Self::new(Region::heap(geo.len), geo)
        }

        #[inline(always)]
        pub(crate) fn ctrl(&self) -> &PoolCtrl {
            // SAFETY: the region starts with the control block (len checked in new), is
            // 128-byte aligned, and PoolCtrl is atomics only, valid for any bytes.
            unsafe { self.base.cast::<PoolCtrl>().as_ref() }
        }

        #[inline]
        pub(crate) fn records(&self) -> &[PoolRecord] {
            // SAFETY: `processes` records lie at records_off (8-aligned, inside len);
            // atomics only.
            unsafe {
                std::slice::from_raw_parts(
                    self.base.as_ptr().add(self.geo.records_off).cast(),
                    self.geo.processes,
                )
            }
        }

        /// Record `record`'s table of shared references (`record < processes`).
        #[inline]
        pub(crate) fn held(&self, record: usize) -> &[AtomicU64] {
            let n = self.geo.shared_per_process;
            assert!(record < self.geo.processes);
            // SAFETY: the tables lie at held_off, `n` words per record, inside len;
            // atomics only.
            unsafe {
                std::slice::from_raw_parts(
                    self.base
                        .as_ptr()
                        .add(self.geo.held_off + record * n * 8)
                        .cast(),
                    n,
                )
            }
        }

        /// Buffer `index`'s state word.
        #[inline(always)]
        pub(crate) fn state(&self, index: usize) -> &AtomicU64 {
            assert!(index < self.geo.total);
            // SAFETY: index < total, so the descriptor lies inside the table at
            // descs_off (64-aligned); atomics only.
            unsafe {
                &(*self
                    .base
                    .as_ptr()
                    .add(self.geo.descs_off)
                    .cast::<Desc>()
                    .add(index))
                .state
            }
        }

        /// Buffer `index`'s first byte; its class's size bytes follow.
        #[inline(always)]
        pub(crate) fn data(&self, index: usize) -> NonNull<u8> {
            assert!(index < self.geo.total);
            // SAFETY: data_off(index) + size <= len for every index below total.
            unsafe { NonNull::new_unchecked(self.base.as_ptr().add(self.geo.data_off(index))) }
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

    struct Inner {
        ctrl: PoolCtrl,
        records: Box<[PoolRecord]>,
        held: Box<[AtomicU64]>,
        states: Box<[AtomicU64]>,
        data: Box<[UnsafeCell<Vec<u8>>]>,
    }

    /// Under loom: the same pool with loom atomics and race-tracked buffers on the heap.
    #[derive(Clone)]
    pub(crate) struct PoolMem {
        inner: Arc<Inner>,
        pub(crate) geo: PoolGeometry,
    }

    impl PoolMem {
        pub(crate) fn heap(geo: PoolGeometry) -> Self {
            let data = (0..geo.total)
                .map(|i| UnsafeCell::new(vec![0u8; geo.classes[geo.class_of(i)].size]))
                .collect();
            PoolMem {
                inner: Arc::new(Inner {
                    ctrl: PoolCtrl::default(),
                    records: (0..geo.processes).map(|_| PoolRecord::default()).collect(),
                    held: (0..geo.processes * geo.shared_per_process)
                        .map(|_| AtomicU64::new(0))
                        .collect(),
                    states: (0..geo.total).map(|_| AtomicU64::new(0)).collect(),
                    data,
                }),
                geo,
            }
        }

        pub(crate) fn ctrl(&self) -> &PoolCtrl {
            &self.inner.ctrl
        }

        pub(crate) fn records(&self) -> &[PoolRecord] {
            &self.inner.records
        }

        pub(crate) fn held(&self, record: usize) -> &[AtomicU64] {
            let n = self.geo.shared_per_process;
            &self.inner.held[record * n..(record + 1) * n]
        }

        pub(crate) fn state(&self, index: usize) -> &AtomicU64 {
            &self.inner.states[index]
        }

        /// Runs `f` on buffer `index`'s bytes, which loom checks nobody writes meanwhile.
        pub(crate) fn with_data<R>(&self, index: usize, f: impl FnOnce(&[u8]) -> R) -> R {
            // SAFETY: loom checks the exclusivity the state protocol promises.
            self.inner.data[index].with(|p| f(unsafe { &*p }))
        }

        /// Runs `f` on buffer `index`'s bytes, which loom checks nobody else touches.
        pub(crate) fn with_data_mut<R>(&self, index: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
            // SAFETY: loom checks the exclusivity the state protocol promises.
            self.inner.data[index].with_mut(|p| f(unsafe { &mut *p }))
        }

        pub(crate) fn scope(&self) -> Scope {
            Scope::Process
        }
    }
}
