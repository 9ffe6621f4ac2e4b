//! The one place that decides between std and loom.
//!
//! Every algorithm in the crate reaches its atomics and cells through this module
//! (and its futex calls through `atomics::imp`), so the same code runs on the heap, in a shared-memory segment
//! and under loom's model checker (built with `RUSTFLAGS="--cfg loom"`).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A cell whose accesses loom tracks for data races. Only the loom placement of the
/// rings uses it: the std placement addresses raw bytes of a region.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
