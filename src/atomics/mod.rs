//! `Atomics.wait` / `Atomics.notify` for native code.
//!
//! [`wait`] blocks while a 32-bit atomic still holds an expected value; [`notify`] wakes
//! sleepers on it. Like the web's pair, they work on any `AtomicU32`: on the heap between
//! threads, or inside a shared-memory [`Segment`](crate::segment::Segment) between
//! processes. They are built on the Linux futex, in its shared (not process-private) form,
//! because a segment is mapped at different addresses in different processes and only the
//! shared futex keys on the physical page.
//!
//! On a bare atomic, `notify` makes a syscall every time, since nothing records whether
//! anyone sleeps. [`WaitCell`] is the same pair with a waiter count beside the word, so its
//! [`WaitCell::notify`] makes no syscall while nobody sleeps; ringport's own rings use the
//! same idea (see `Signal` in ARCHITECTURE.md).
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

use crate::sync::{fence, AtomicU32, Ordering};
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

/// A 32-bit atomic with `Atomics.wait` / `Atomics.notify` whose notify makes no syscall
/// while nobody sleeps.
///
/// `#[repr(C)]`: the value, then a count of sleepers; eight bytes, all-zero is a cell
/// holding 0, so it can live in a shared-memory segment and be waited on across
/// processes. The count is only ever a hint for whether to make the wake syscall; a
/// hostile count costs a spurious syscall or, for a hostile sleeper, a missed wake.
///
/// # Example
/// ```
/// use ringport::atomics::{WaitCell, WaitOutcome};
/// use std::sync::{atomic::Ordering, Arc};
///
/// let cell = Arc::new(WaitCell::new(0));
/// assert_eq!(cell.notify(1), 0); // nobody asleep: no syscall
/// let c = cell.clone();
/// let t = std::thread::spawn(move || {
///     while c.value().load(Ordering::Acquire) == 0 {
///         c.wait(0, None);
///     }
/// });
/// cell.value().store(1, Ordering::Release);
/// cell.notify(u32::MAX);
/// t.join().unwrap();
/// assert_eq!(cell.wait(0, None), WaitOutcome::NotEqual);
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct WaitCell {
    value: AtomicU32,
    waiters: AtomicU32,
}

impl WaitCell {
    /// A cell holding `value`.
    ///
    /// # Example
    /// ```
    /// let cell = ringport::atomics::WaitCell::new(7);
    /// assert_eq!(cell.value().load(std::sync::atomic::Ordering::Relaxed), 7);
    /// ```
    pub fn new(value: u32) -> Self {
        WaitCell {
            value: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
        }
    }

    /// The atomic value: store to it, then [`notify`](Self::notify).
    ///
    /// # Example
    /// ```
    /// use std::sync::atomic::Ordering;
    /// let cell = ringport::atomics::WaitCell::default();
    /// cell.value().fetch_add(1, Ordering::AcqRel);
    /// ```
    pub fn value(&self) -> &AtomicU32 {
        &self.value
    }

    /// [`wait`] on the value, counted as a sleeper.
    ///
    /// # Example
    /// ```
    /// use ringport::atomics::{WaitCell, WaitOutcome};
    /// use std::time::Duration;
    /// let cell = WaitCell::new(3);
    /// assert_eq!(cell.wait(3, Some(Duration::from_millis(1))), WaitOutcome::TimedOut);
    /// ```
    pub fn wait(&self, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `notify`: either the notifier sees this sleeper, or the
        // kernel's comparison below sees the notifier's new value.
        if !cfg!(ringport_mutant = "signal_no_fence") {
            fence(Ordering::SeqCst);
        }
        let outcome = imp::wait(&self.value, expected, timeout, Scope::System);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        outcome
    }

    /// Wakes up to `count` sleepers in [`wait`](Self::wait) and returns how many it woke;
    /// with nobody asleep, it returns 0 without a syscall. Call it after storing the new
    /// value.
    ///
    /// # Example
    /// ```
    /// let cell = ringport::atomics::WaitCell::new(0);
    /// assert_eq!(cell.notify(u32::MAX), 0);
    /// ```
    pub fn notify(&self, count: u32) -> u32 {
        if !cfg!(ringport_mutant = "signal_no_fence") {
            fence(Ordering::SeqCst);
        }
        if self.waiters.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        imp::wake(&self.value, count, Scope::System)
    }
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
