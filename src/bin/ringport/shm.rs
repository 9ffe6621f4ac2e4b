//! Memory both sides of a floor share: on the heap between threads, in a named segment
//! between processes, with the same layout in both.

use crate::Result;
use ringport::segment::Segment;
use std::ptr::NonNull;
use std::sync::Arc;

/// Segment kind of the floors' shared lines (`"BNCH"`), so a port never opens them.
const KIND_BENCH: u32 = u32::from_le_bytes(*b"BNCH");

/// A type that may live in memory another process writes at any time.
///
/// # Safety
/// Every bit pattern, zero included, is a valid value, all mutation goes through atomics
/// (so shared references may alias across processes), and the alignment is at most 128,
/// the alignment of a segment's payload.
pub unsafe trait AtomicOnly: Default + Sync + Send + 'static {}

/// One side's handle on a shared block of `T`.
pub struct Shared<T: AtomicOnly> {
    ptr: NonNull<T>,
    /// What keeps the memory alive: an `Arc<T>` or the `Segment`.
    _keep: Box<dyn Send>,
}

// SAFETY: `T: AtomicOnly` is Send + Sync and only touched through shared references; the
// keep-alive is Send.
unsafe impl<T: AtomicOnly> Send for Shared<T> {}

impl<T: AtomicOnly> Shared<T> {
    /// Two handles on one zeroed block on the heap.
    pub fn heap_pair() -> (Shared<T>, Shared<T>) {
        let block = Arc::new(T::default());
        let ptr = NonNull::from(&*block);
        (
            Shared {
                ptr,
                _keep: Box::new(block.clone()),
            },
            Shared {
                ptr,
                _keep: Box::new(block),
            },
        )
    }

    /// Creates the segment `name` holding a zeroed block; its drop unlinks the name.
    pub fn create(name: &str) -> Result<Shared<T>> {
        let segment = Segment::create(name, KIND_BENCH, [0; 6], std::mem::size_of::<T>())?;
        Ok(Self::from_segment(segment))
    }

    /// Opens the segment `name` made by [`create`](Self::create).
    pub fn open(name: &str) -> Result<Shared<T>> {
        let segment = Segment::open(name, KIND_BENCH)?;
        if segment.payload_len() < std::mem::size_of::<T>() {
            return Err(format!("segment {name} is too small for the floor's lines").into());
        }
        Ok(Self::from_segment(segment))
    }

    /// The block at the start of `segment`'s payload.
    fn from_segment(segment: Segment) -> Shared<T> {
        Shared {
            ptr: segment.payload().cast(),
            _keep: Box::new(segment),
        }
    }
}

impl<T: AtomicOnly> std::ops::Deref for Shared<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: `ptr` points into memory `_keep` holds alive, at least size_of::<T>()
        // bytes (checked at open), aligned (segment payloads are 128-aligned, T needs at
        // most that), and T is valid for any bytes and mutated only through atomics.
        unsafe { self.ptr.as_ref() }
    }
}
