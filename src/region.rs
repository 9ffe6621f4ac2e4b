//! Where a shared layout lives: heap memory for threads, or a mapped segment for processes.
//!
//! Every shared structure is a `#[repr(C)]` layout at a fixed offset of a `Region` and is
//! reached through a reference into it. The all-zero bytes are every layout's initial
//! state, so a fresh heap allocation and a fresh segment need no constructor.

use crate::atomics::Scope;
use crate::segment::Segment;
use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::Arc;

/// Alignment of every region, and of every layout's offset inside one: two cache lines,
/// since adjacent-line prefetch pairs lines on x86.
pub(crate) const REGION_ALIGN: usize = 128;

#[derive(Debug)]
enum Backing {
    Heap(Layout),
    Segment(Segment),
}

/// Zeroed memory that outlives every handle holding an `Arc` to it.
#[derive(Debug)]
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: a Region is plain memory; all shared mutation inside it goes through atomics or
// through cells whose exclusive access the ring protocols guarantee.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// Allocates `len` zeroed bytes on the heap.
    pub(crate) fn heap(len: usize) -> Arc<Region> {
        let layout = Layout::from_size_align(len.max(REGION_ALIGN), REGION_ALIGN)
            .expect("region size overflows isize");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Arc::new(Region {
            base,
            len,
            backing: Backing::Heap(layout),
        })
    }

    /// Wraps a mapped segment's payload.
    pub(crate) fn segment(segment: Segment) -> Arc<Region> {
        Arc::new(Region {
            base: segment.payload(),
            len: segment.payload_len(),
            backing: Backing::Segment(segment),
        })
    }

    /// The futex namespace that reaches every user of this memory.
    pub(crate) fn scope(&self) -> Scope {
        match self.backing {
            Backing::Heap(_) => Scope::Process,
            Backing::Segment(_) => Scope::System,
        }
    }

    /// The segment behind this region, if any.
    pub(crate) fn segment_ref(&self) -> Option<&Segment> {
        match &self.backing {
            Backing::Heap(_) => None,
            Backing::Segment(s) => Some(s),
        }
    }

    /// The region's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A pointer `offset` bytes in. The caller keeps its accesses inside `len`.
    #[inline(always)]
    pub(crate) fn ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= self.len);
        // SAFETY: offset <= len, so the result stays inside (or one past) the allocation.
        unsafe { self.base.as_ptr().add(offset) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Backing::Heap(layout) = self.backing {
            // SAFETY: allocated in `heap` with this very layout, freed once.
            unsafe { alloc::dealloc(self.base.as_ptr(), layout) };
        }
    }
}
