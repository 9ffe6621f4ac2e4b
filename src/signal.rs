//! `Signal`: a futex word plus a waiter count, so that waking costs no syscall while
//! nobody sleeps (an eventcount).
//!
//! The side that makes a condition true (publishes data, frees space, closes) calls
//! [`Signal::notify`] after its store. The side that waits for the condition calls
//! [`Signal::wait_until`], which re-checks the condition after announcing itself. The two
//! store-load fences form a store-buffering (Dekker) pair: either the notifier sees the
//! waiter's announcement, or the waiter's re-check sees the notifier's store. The
//! notifier's fence is per message, so where the kernel allows it the waiter pays for both
//! with `membarrier` and the notifier's is a compiler fence (`atomics::membarrier`).
//! Without the fences each side can read the other's old value and the wakeup is lost;
//! the loom models
//! in `loom-tests/tests/wait_notify.rs` show it under
//! `--cfg ringport_mutant="signal_no_fence"`.
//!
//! Wakeups are level-triggered and coalesced: one epoch bump and one `FUTEX_WAKE` per
//! notify that finds a sleeper armed, however many messages it covers. Each sleeper arms
//! the signal when it announces itself, and the first notifier to see it armed disarms it
//! and wakes everyone; later notifies make no syscall until a sleeper arms it again, so
//! a burst of messages costs one wake, not one per message until the sleeper runs.

use crate::atomics::{self, Scope};
use crate::sync::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How often a sleeper on a segment wakes on its own to look for a dead peer. A killed
/// process sets no flag and sends no wake, so a bounded sleep is the only way to notice it.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(100);

/// An eventcount living in shared memory (`#[repr(C)]`, all-zero is its initial state).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// Bumped by every notify that found a waiter; sleepers futex-wait on it.
    epoch: AtomicU32,
    /// Threads (of any process) between announcing themselves and leaving `wait_until`.
    /// Only ever read to decide whether to wake; a hostile value costs a spurious
    /// syscall or a missed wake of a hostile sleeper, never memory safety.
    waiters: AtomicU32,
    /// 1 from a sleeper's announcement until a notifier takes it (swaps it to 0) and
    /// wakes everyone. A sleeper woken but not yet running still counts in `waiters`;
    /// without this flag every notify until it runs would make another wake syscall.
    /// A sleeper sets it again on each announcement, so one that missed the wake it was
    /// part of re-arms before it sleeps again. A hostile value costs a wake or delays one
    /// until the sleeper's liveness slice, as a hostile `waiters` can.
    armed: AtomicU32,
}

/// The notifier's half of the store-load pair: a compiler fence where the waiters pay for
/// both sides with `membarrier` (see `atomics::membarrier`), a `SeqCst` fence elsewhere and
/// always under loom, which models the symmetric protocol.
#[inline(always)]
fn notifier_fence() {
    if cfg!(ringport_mutant = "signal_no_fence") {
        return;
    }
    #[cfg(not(loom))]
    if atomics::membarrier::light_notify() {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        return;
    }
    fence(Ordering::SeqCst);
}

/// The waiter's half: a `SeqCst` fence, plus a barrier on every thread that may be a
/// light notifier.
fn waiter_fence(scope: Scope) {
    if cfg!(ringport_mutant = "signal_no_fence") {
        return;
    }
    fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    atomics::membarrier::heavy_barrier(scope);
    #[cfg(loom)]
    let _ = scope;
}

impl Signal {
    /// Wakes every sleeper if there is one. Call after the store that made the awaited
    /// condition true; with nobody asleep this is one fence and one load.
    #[inline]
    pub(crate) fn notify(&self, scope: Scope) {
        notifier_fence();
        if self.waiters.load(Ordering::Relaxed) != 0 && self.take_armed() {
            self.wake(scope);
        }
    }

    /// Takes the flag a sleeper armed: true for exactly one notifier after each
    /// announcement (a swap, and only when somebody waits, so never on the fast path).
    #[inline]
    fn take_armed(&self) -> bool {
        self.armed.swap(0, Ordering::Relaxed) != 0
    }

    #[cold]
    fn wake(&self, scope: Scope) {
        // Release: a sleeper that sees the new epoch also sees the condition's store.
        self.epoch.fetch_add(1, Ordering::Release);
        if !cfg!(ringport_mutant = "signal_no_notify") {
            atomics::imp::wake(&self.epoch, u32::MAX, scope);
        }
    }

    /// Sleeps until `check` returns `Some`, or until `deadline`.
    ///
    /// `check` runs before every sleep and after every wake; it must look at the
    /// condition with an `Acquire` load. `check(true)` is passed when at least
    /// [`LIVENESS_SLICE`] has passed since the last liveness look, so the caller can test
    /// whether its peer process still lives. Returns `None` on timeout, after one last
    /// check.
    pub(crate) fn wait_until<R>(
        &self,
        scope: Scope,
        deadline: Option<Instant>,
        mut check: impl FnMut(bool) -> Option<R>,
    ) -> Option<R> {
        // Loom explores schedules, not clocks: branches on time would make its executions
        // unrepeatable, so under loom a deadline never arrives.
        #[cfg(loom)]
        let deadline: Option<Instant> = deadline.and(None);
        let mut last_liveness = now();
        loop {
            let due = liveness_due(&mut last_liveness);
            if let Some(r) = check(due) {
                return Some(r);
            }
            // The epoch is read before announcing, so that a notify that takes this
            // announcement's arming bumps it afterwards, and the sleep below then returns
            // at once. Read after, it could come back already bumped by a notify for a
            // condition consumed before this round: the check would rightly fail, the
            // sleep would not return, and the notify that matters would find the signal
            // disarmed. (Loom finds that lost wakeup in the broadcast backpressure model.)
            let epoch = self.epoch.load(Ordering::Acquire);
            self.waiters.fetch_add(1, Ordering::Relaxed);
            // A swap rather than a store: arming is a read-modify-write like the
            // notifiers' disarming, so the two are totally ordered on the word (loom, with
            // a plain store here, lets a notifier's swap and this arming pass each other).
            if !cfg!(ringport_mutant = "signal_no_arm") {
                self.armed.swap(1, Ordering::Relaxed);
            }
            waiter_fence(scope);
            if let Some(r) = check(false) {
                self.waiters.fetch_sub(1, Ordering::Relaxed);
                return Some(r);
            }
            // Only a peer in another process can die without closing, so only a segment's
            // sleepers wake on their own to look; heap sleepers sleep until woken.
            let slice = match scope {
                Scope::Process => None,
                Scope::System => Some(LIVENESS_SLICE),
            };
            let timeout = match deadline {
                None => slice,
                Some(d) => {
                    let left = d.saturating_duration_since(now());
                    if left.is_zero() {
                        self.waiters.fetch_sub(1, Ordering::Relaxed);
                        return check(true);
                    }
                    Some(slice.map_or(left, |s| s.min(left)))
                }
            };
            atomics::imp::wait(&self.epoch, epoch, timeout, scope);
            self.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(not(loom))]
fn now() -> Instant {
    Instant::now()
}

/// Loom has no clock; the model never times out (see `atomics`), so any instant will do.
#[cfg(loom)]
fn now() -> Instant {
    thread_local!(static EPOCH: Instant = Instant::now());
    EPOCH.with(|e| *e)
}

fn liveness_due(last: &mut Instant) -> bool {
    let t = now();
    if t.duration_since(*last) >= LIVENESS_SLICE {
        *last = t;
        true
    } else {
        false
    }
}
