//! Asymmetric store-load fences with `membarrier(2)`.
//!
//! A `Signal` needs a store-load fence on both sides: the notifier between publishing and
//! reading the waiter count, the waiter between announcing itself and re-checking. The
//! notifier runs once per message; a `SeqCst` fence there halves a ring's throughput. So
//! the notifier's fence is only a compiler fence, and the waiter, which is about to sleep
//! anyway, pays for both with `membarrier`: it makes every running thread of every
//! registered process execute a full barrier before it returns, which orders each
//! notifier's publish before its load, or its load after the waiter's announcement.
//!
//! A process may take the light path only once it is registered for the expedited
//! barriers (`light_notify`); registration is kept across `fork` and reset by `exec`, as is
//! this module's memory. A waiter issues the barrier whenever the kernel offers it
//! (`heavy_barrier`), since a notifier in another process may be registered even when the
//! waiter's own process is not. Where membarrier is missing or refused (old kernels,
//! seccomp), notifiers keep the `SeqCst` fence and nothing changes.

use super::Scope;
use rustix::thread::{membarrier, membarrier_query, MembarrierCommand, MembarrierQuery};
use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const UNAVAILABLE: u8 = 1;
const REGISTERED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether this process's notifiers may order their publish and their waiter check with
/// a compiler fence alone.
#[inline(always)]
pub(crate) fn light_notify() -> bool {
    match STATE.load(Ordering::Relaxed) {
        REGISTERED => true,
        UNAVAILABLE => false,
        _ => register(),
    }
}

#[cold]
fn register() -> bool {
    let needed = MembarrierQuery::PRIVATE_EXPEDITED
        | MembarrierQuery::REGISTER_PRIVATE_EXPEDITED
        | MembarrierQuery::GLOBAL_EXPEDITED
        | MembarrierQuery::REGISTER_GLOBAL_EXPEDITED;
    // Miri interprets no membarrier: there the symmetric fences stay, as under loom.
    let ok = !cfg!(miri)
        && membarrier_query().contains(needed)
        && membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
        && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok();
    STATE.store(if ok { REGISTERED } else { UNAVAILABLE }, Ordering::Relaxed);
    ok
}

/// Executes a full barrier on every running thread that might notify a waiter in
/// `scope`: this process's threads for heap memory, every registered process's for a
/// segment. If the kernel refuses, a light notifier in another process could be missed
/// until the waiter's next liveness slice; nothing else can be done about it here.
pub(crate) fn heavy_barrier(scope: Scope) {
    match scope {
        // Heap memory has notifiers only in this process, light only if registered.
        Scope::Process => {
            if light_notify() {
                let _ = membarrier(MembarrierCommand::PrivateExpedited);
            }
        }
        Scope::System => {
            light_notify();
            let _ = membarrier(MembarrierCommand::GlobalExpedited);
        }
    }
}
