//! Processes taking part in a shared structure: each registers a record (its
//! `ProcessId` word as a token), so that claims in shared memory can name their process
//! with a small number and survivors can ask whether that process still lives.

use crate::atomics::Scope;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::time::{Duration, Instant};

/// One process taking part in a ring (16 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// 0 (vacant), or the process's token: its `ProcessId` word in a segment, 1 on the
    /// heap.
    pub(crate) token: AtomicU64,
    /// Live `Sender` handles of that process.
    pub(crate) senders: AtomicU32,
    /// Live `Receiver` handles of that process.
    pub(crate) receivers: AtomicU32,
}

/// Registers this process in `records` (or finds its record) and returns its owner
/// number, or `None` if every record is taken by a live process.
pub(crate) fn register(records: &[Record], token: u64) -> Option<u64> {
    register_by(records, |r| &r.token, token)
}

/// [`register`] over any kind of record, `token_of` naming each one's token word.
pub(crate) fn register_by<R>(
    records: &[R],
    token_of: impl Fn(&R) -> &AtomicU64,
    token: u64,
) -> Option<u64> {
    if let Some(i) = records
        .iter()
        .position(|r| token_of(r).load(Ordering::Acquire) == token)
    {
        return Some(i as u64 + 1);
    }
    records
        .iter()
        .position(|r| {
            // Acquire: a record freed by a reaper comes with what the reaper cleared.
            token_of(r)
                .compare_exchange(0, token, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })
        .map(|i| i as u64 + 1)
}

/// Whether the process a token names has died. Only segments ask: on the heap every
/// participant is this process.
pub(crate) fn token_died(token: u64, scope: Scope) -> bool {
    #[cfg(not(loom))]
    {
        scope == Scope::System && !crate::process::ProcessId::from_word(token).is_alive()
    }
    #[cfg(loom)]
    {
        let _ = (token, scope);
        false
    }
}

/// How long a `try_` call lets one slot stay held by another process before it asks
/// whether that process died.
#[cfg(not(loom))]
const HELD_PATIENCE: Duration = Duration::from_millis(1);

/// A handle's memory of the slot it last found held by another process, so that `try_`
/// calls can tell a slot that stays held from one that keeps moving.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// The held position + 1, or 0.
    #[cfg(not(loom))]
    pos: AtomicU64,
    /// When it was first seen held, in nanoseconds since `now_ns`'s epoch.
    #[cfg(not(loom))]
    since: AtomicU64,
    /// When a `try_` call of this handle last asked about every participant.
    #[cfg(not(loom))]
    last_look: AtomicU64,
}

/// How often a handle whose `try_` calls keep finding nothing to do asks whether other
/// participants died: the liveness slice of blocked calls.
#[cfg(not(loom))]
const LOOK_EVERY: Duration = crate::signal::LIVENESS_SLICE;

#[cfg(not(loom))]
fn now_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl Watch {
    /// Records that `pos` is held; true once it has been held for [`HELD_PATIENCE`].
    pub(crate) fn held_too_long(&self, pos: u64) -> bool {
        #[cfg(not(loom))]
        {
            let now = now_ns();
            if self.pos.swap(pos.wrapping_add(1), Ordering::Relaxed) != pos.wrapping_add(1) {
                self.since.store(now, Ordering::Relaxed);
                return false;
            }
            now.saturating_sub(self.since.load(Ordering::Relaxed))
                >= HELD_PATIENCE.as_nanos() as u64
        }
        // Loom has no clock: its models reach recovery through blocking calls.
        #[cfg(loom)]
        {
            let _ = pos;
            false
        }
    }

    /// True at most once per [`LOOK_EVERY`]: time for a `try_` call that found nothing to
    /// do to look for dead participants (whose handles would otherwise keep a ring
    /// connected for ever), as a blocked call does at each liveness slice.
    pub(crate) fn look_due(&self) -> bool {
        #[cfg(not(loom))]
        {
            let now = now_ns();
            let last = self.last_look.load(Ordering::Relaxed);
            now.saturating_sub(last) >= LOOK_EVERY.as_nanos() as u64
                && self
                    .last_look
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        }
        #[cfg(loom)]
        {
            false
        }
    }
}
