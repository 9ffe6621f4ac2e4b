//! The words of a table, on the heap, in a segment, or (under loom) in loom's atomics.

use super::layout::{Geometry, TableHeader};
use crate::atomics::Scope;
use crate::sync::AtomicU64;

#[cfg(not(loom))]
pub(crate) use std_mem::TableMem;

#[cfg(loom)]
pub(crate) use loom_mem::TableMem;

#[cfg(not(loom))]
mod std_mem {
    use super::*;
    use crate::region::Region;
    use crate::segment::Segment;
    use std::ptr::NonNull;
    use std::sync::Arc;

    /// A table's header and slot words inside a region.
    #[derive(Clone)]
    pub(crate) struct TableMem {
        header: NonNull<TableHeader>,
        words: NonNull<AtomicU64>,
        n_words: usize,
        scope: Scope,
        region: Arc<Region>,
    }

    // SAFETY: the memory is only ever accessed through atomics.
    unsafe impl Send for TableMem {}
    // SAFETY: as above.
    unsafe impl Sync for TableMem {}

    impl TableMem {
        /// The table at the start of `region`, which holds at least `geo.table_len()` bytes.
        pub(crate) fn new(region: Arc<Region>, geo: &Geometry) -> TableMem {
            assert!(geo.table_len() <= region.len());
            let header = NonNull::new(region.ptr(0).cast()).expect("non-null");
            let words = NonNull::new(region.ptr(std::mem::size_of::<TableHeader>()).cast())
                .expect("non-null");
            TableMem {
                header,
                words,
                n_words: geo.words(),
                scope: region.scope(),
                region,
            }
        }

        pub(crate) fn heap(geo: &Geometry) -> TableMem {
            TableMem::new(Region::heap(geo.table_len()), geo)
        }

        #[inline(always)]
        pub(crate) fn header(&self) -> &TableHeader {
            // SAFETY: the region is 128-byte aligned and holds the header (checked in
            // new); TableHeader is atomics only, valid for any bytes.
            unsafe { self.header.as_ref() }
        }

        /// Every slot word, as one slice: indexing it bounds-checks every access.
        #[inline(always)]
        pub(crate) fn words(&self) -> &[AtomicU64] {
            // SAFETY: n_words words follow the header inside the region (checked in new),
            // 8-byte aligned; AtomicU64 is valid for any bytes and only accessed
            // atomically; the region lives as long as self.
            unsafe { std::slice::from_raw_parts(self.words.as_ptr(), self.n_words) }
        }

        #[inline(always)]
        pub(crate) fn scope(&self) -> Scope {
            self.scope
        }

        pub(crate) fn segment(&self) -> Option<&Segment> {
            self.region.segment_ref()
        }
    }
}

#[cfg(loom)]
mod loom_mem {
    use super::*;
    use loom::sync::Arc;

    struct Inner {
        header: TableHeader,
        words: Box<[AtomicU64]>,
    }

    /// Under loom: the same table in loom's atomics on the heap.
    #[derive(Clone)]
    pub(crate) struct TableMem {
        inner: Arc<Inner>,
    }

    impl TableMem {
        pub(crate) fn heap(geo: &Geometry) -> TableMem {
            TableMem {
                inner: Arc::new(Inner {
                    header: TableHeader::default(),
                    words: (0..geo.words()).map(|_| AtomicU64::new(0)).collect(),
                }),
            }
        }

        pub(crate) fn header(&self) -> &TableHeader {
            &self.inner.header
        }

        pub(crate) fn words(&self) -> &[AtomicU64] {
            &self.inner.words
        }

        pub(crate) fn scope(&self) -> Scope {
            Scope::Process
        }
    }
}
