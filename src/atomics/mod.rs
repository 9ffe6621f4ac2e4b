//! `Atomics.wait` / `Atomics.notify` for native code.
//!
//! [`wait`] blocks while a 32-bit atomic still holds an expected value; [`notify`] wakes
//! sleepers on it. Like the web's pair, they work on any `AtomicU32`: on the heap between
//! threads, or inside a shared-memory [`Segment`](crate::segment::Segment) between
//! processes. They are built on the Linux futex, in its shared (not process-private) form,
//! because a segment is mapped at different addresses in different processes and only the
//! shared futex keys on the physical page.
//!
//! `notify` makes a syscall every time, exactly like `Atomics.notify`. Ringport's own rings
//! never call it blindly: they keep a waiter count beside the word (see `Signal` in
//! ARCHITECTURE.md), so a notify with nobody asleep costs no syscall.
//! [`futex_syscalls`] counts every futex syscall this process made, so a benchmark can
//! print syscalls per message.
//!
//! Under `--cfg loom` both functions are replaced by a model of the kernel's futex (a
//! table of sleepers behind one lock, as in the kernel's hash bucket): a sleeper nobody
//! wakes stays parked, so a lost wakeup is reported by loom as a deadlock. Timed waits
//! never time out under loom, which keeps that property for timed callers too.

#[cfg(not(loom))]
pub(crate) mod futex;
#[cfg(not(loom))]
pub(crate) mod membarrier;
#[cfg(loom)]
pub(crate) mod model;

use crate::sync::AtomicU32;
use std::time::Duration;

/// What [`wait`] saw, as `Atomics.wait` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitOutcome {
    /// The thread slept and was woken by a [`notify`] (or, rarely, spuriously: callers
    /// re-check their condition, as with every futex).
    Ok,
    /// The atomic did not hold `expected`, so the thread did not sleep.
    NotEqual,
    /// The timeout passed before anyone woke the thread.
    TimedOut,
}

/// Which futex namespace a word lives in.
///
/// The private futex is cheaper (no page lookup) but only reaches threads of this
/// process; memory in a segment needs the shared one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Heap memory: threads of this process only.
    Process,
    /// Shared-memory segment: any process that maps it.
    System,
}

/// Sleeps while `atom` holds `expected`, until [`notify`] or the timeout.
///
/// Returns [`WaitOutcome::NotEqual`] at once if the value differs; the comparison and the
/// decision to sleep are atomic with respect to `notify`, so a notify that follows a
/// change of the value can never be missed. `None` waits without limit. Works between
/// processes when `atom` lives in a shared-memory segment.
///
/// # Example
/// ```
/// use ringport::atomics::{notify, wait, WaitOutcome};
/// use std::sync::{atomic::{AtomicU32, Ordering}, Arc};
/// use std::time::Duration;
///
/// let flag = Arc::new(AtomicU32::new(0));
/// assert_eq!(wait(&flag, 1, None), WaitOutcome::NotEqual);
/// assert_eq!(wait(&flag, 0, Some(Duration::from_millis(1))), WaitOutcome::TimedOut);
///
/// let f = flag.clone();
/// let t = std::thread::spawn(move || {
///     while f.load(Ordering::Acquire) == 0 {
///         wait(&f, 0, None);
///     }
/// });
/// flag.store(1, Ordering::Release);
/// notify(&flag, u32::MAX);
/// t.join().unwrap();
/// ```
pub fn wait(atom: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
    imp::wait(atom, expected, timeout, Scope::System)
}

/// Wakes up to `count` threads (of any process) sleeping in [`wait`] on `atom`, and
/// returns how many it woke.
///
/// # Example
/// ```
/// use ringport::atomics::notify;
/// use std::sync::atomic::AtomicU32;
///
/// let word = AtomicU32::new(0);
/// assert_eq!(notify(&word, 1), 0); // nobody was asleep
/// ```
pub fn notify(atom: &AtomicU32, count: u32) -> u32 {
    imp::wake(atom, count, Scope::System)
}

/// The number of futex syscalls (waits and wakes) this process has made through ringport.
///
/// # Example
/// ```
/// use ringport::atomics::{futex_syscalls, notify};
/// use std::sync::atomic::AtomicU32;
///
/// let before = futex_syscalls();
/// notify(&AtomicU32::new(0), 1);
/// assert!(futex_syscalls() > before);
/// ```
#[cfg(not(loom))]
pub fn futex_syscalls() -> u64 {
    futex::SYSCALLS.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(not(loom))]
pub(crate) use futex as imp;
#[cfg(loom)]
pub(crate) use model as imp;
