//! The control block every ring starts with, and the endpoint records in it.

use crate::signal::Signal;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use std::time::Duration;

/// Endpoint states. Zero is the initial state of fresh memory.
#[cfg(not(loom))]
pub(crate) const VACANT: u32 = 0;
pub(crate) const ATTACHED: u32 = 1;
pub(crate) const CLOSED: u32 = 2;
/// Claimed by an opener that is still writing its pid.
pub(crate) const CLAIMING: u32 = 3;
/// Sent to a new holder that has not taken it yet (a transferred port). The pid fields
/// still name the holder that sent it: until it is taken, that process's death is this
/// end's, as an in-flight buffer belongs to its sender.
pub(crate) const HANDOVER: u32 = 4;

/// Who holds one end of a ring. Written when the end attaches and when it closes.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Endpoint {
    /// VACANT → (CLAIMING →) ATTACHED (→ HANDOVER → CLAIMING → ATTACHED)* → CLOSED. Stored with Release after the pid fields, so a reader
    /// that sees ATTACHED (Acquire) sees the pid of this attachment. CLOSED is stored
    /// with Release after the end's last publish, so a receiver that sees it and then
    /// finds the ring empty has drained everything.
    pub(crate) state: AtomicU32,
    /// The holder's pid, or 0 for a holder in the same process (no liveness to check).
    pub(crate) pid: AtomicU32,
    /// The holder's start time (see `process::ProcessId`), so a reused pid is not alive.
    pub(crate) start_time: AtomicU64,
}

/// The shared control block at the start of every ring (512 bytes, four 128-byte lines).
///
/// Each field sits on its own pair of cache lines so that the only line that moves on the
/// hot path is the data itself: `released` is written by the consumer and read by the
/// producer only when its cached copy says full; each signal's waiter count is written
/// only by sleepers, so the per-message check stays a shared-line hit.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RingCtrl {
    /// How much the consumer has handed back: whole blocks for a pod ring, bytes for a
    /// frame ring. Monotonic; the producer validates it against what it has written.
    pub(crate) released: CachePadded<AtomicU64>,
    /// The consumer sleeps here waiting for data; the producer notifies after publishing.
    pub(crate) data: CachePadded<Signal>,
    /// The producer sleeps here waiting for space; the consumer notifies after releasing.
    pub(crate) space: CachePadded<Signal>,
    /// `[producer, consumer]`.
    pub(crate) ends: CachePadded<[Endpoint; 2]>,
}

pub(crate) const PRODUCER: usize = 0;
pub(crate) const CONSUMER: usize = 1;

impl Endpoint {
    /// Records the calling process as the holder. `pid` 0 means "same process as the peer".
    pub(crate) fn attach(&self, pid: u32, start_time: u64) {
        self.pid.store(pid, Ordering::Relaxed);
        self.start_time.store(start_time, Ordering::Relaxed);
        self.state.store(ATTACHED, Ordering::Release);
    }

    /// Attaches the calling process if nobody holds this end yet; false if somebody does
    /// (or did: a closed end is never reused).
    #[cfg(not(loom))]
    pub(crate) fn claim(&self, pid: u32, start_time: u64) -> bool {
        if self
            .state
            .compare_exchange(VACANT, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.attach(pid, start_time);
        true
    }

    /// Marks the end handed over to a holder yet to come. `Release`, after the end's last
    /// publish or release, which the new holder acquires when it takes the end over. The
    /// peer never sees the end closed on the way, so it neither stops sending nor draining.
    pub(crate) fn hand_over(&self) {
        if cfg!(ringport_mutant = "port_handover_closes") {
            self.state.store(CLOSED, Ordering::Release);
        }
        self.state.store(HANDOVER, Ordering::Release);
    }

    /// Takes a handed-over end for the calling process; false if it is not handed over
    /// (already taken: a replayed transfer).
    pub(crate) fn take_over(&self, pid: u32, start_time: u64) -> bool {
        if self
            .state
            .compare_exchange(HANDOVER, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.attach(pid, start_time);
        true
    }

    /// Marks the end closed (idempotent).
    pub(crate) fn close(&self) {
        self.state.store(CLOSED, Ordering::Release);
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// The pid of a holder that attached from another process and has since died.
    pub(crate) fn dead_holder(&self) -> Option<u32> {
        #[cfg(not(loom))]
        {
            if !matches!(self.state.load(Ordering::Acquire), ATTACHED | HANDOVER) {
                return None;
            }
            let pid = self.pid.load(Ordering::Relaxed);
            if pid == 0 {
                return None;
            }
            let id = crate::process::ProcessId {
                pid,
                start_time: self.start_time.load(Ordering::Relaxed),
            };
            (!id.is_alive()).then_some(pid)
        }
        #[cfg(loom)]
        {
            None
        }
    }
}

/// How long a blocking call polls before it sleeps, unless its handle was given another
/// budget. A futex sleep and wake costs tens of microseconds on a VM, so a reply that
/// comes within this budget is cheaper to catch awake; longer waits pay at most this much
/// extra CPU.
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// Polls until `poll` returns `Some` or `budget` is spent, then yields a few times (in
/// case the peer waits for this very CPU), then gives up so the caller can sleep. It polls
/// on every iteration: an exponential backoff would notice a reply late. A zero budget
/// polls once.
#[inline]
pub(crate) fn spin_then<R>(budget: Duration, mut poll: impl FnMut() -> Option<R>) -> Option<R> {
    #[cfg(not(loom))]
    if !budget.is_zero() {
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        loop {
            if let Some(r) = poll() {
                return Some(r);
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            // Reading the clock costs about as much as a poll: look every 64 polls.
            if spins % 64 == 0 && start.elapsed() >= budget {
                break;
            }
        }
        for _ in 0..4 {
            if let Some(r) = poll() {
                return Some(r);
            }
            std::thread::yield_now();
        }
    }
    #[cfg(loom)]
    let _ = budget;
    poll()
}
