//! The seqlock of one slot: consistent lock-free reads, serialised writes, and recovery
//! from a writer that died holding the slot.
//!
//! # Algorithm
//!
//! A two-copy seqlock (the "latch" variant of Linux's `seqcount_latch`, with a lock for
//! writers). The `SEQ` word says which of the slot's two copies is published and whether
//! a writer is filling the other one.
//!
//! - **Write.** Take `LOCK` with a compare-and-swap from 0 to the writer's token. Set
//!   `WRITING` in `SEQ`, take the next table version (`AcqRel`), issue a `Release` fence,
//!   fill the inactive copy (and, for an insert, the key) with `Relaxed` stores, then
//!   store `SEQ` with the copies flipped and `WRITING` clear (`Release`), and clear `LOCK`
//!   (`Release`).
//! - **Read.** Load `SEQ` (`Acquire`). While `WRITING` is set, wait (see below). Read the
//!   published copy with `Relaxed` loads, issue an `Acquire` fence, and load `SEQ` again:
//!   if its counter and active copy are unchanged, what was read is one committed write;
//!   otherwise retry. Every load is atomic, so a concurrent writer, or a hostile process,
//!   can make a read fail validation but never make it a data race.
//!
//! The fences are the two halves of Boehm's seqlock argument: if a read sees any store
//! of a later writer (which fills the copy the reader is reading only after a commit
//! flipped the copies), the writer's `Release` fence and the reader's `Acquire` fence
//! make that commit visible to the second `SEQ` load, and the read retries. Without
//! either fence loom finds a torn read (`--cfg ringport_mutant="state_writer_no_fence"`
//! and `"state_reader_no_fence"`).
//!
//! **Why readers wait for `WRITING`.** The published copy stays intact during a write, so
//! a reader could always go ahead. It waits so that a version is never ahead of the data:
//! a writer marks its slot before it takes its version (the `AcqRel` increment orders the
//! mark first), so whoever has seen table version `v` and then reads any slot finds
//! every write up to `v` either committed or marked, and waits for the marked ones. This
//! is what lets `wait_for_change` and `snapshot` promise that nothing is missed
//! (`--cfg ringport_mutant="state_version_relaxed"` breaks it, and loom sees a stale read).
//!
//! # A writer that dies
//!
//! A writer killed while holding `LOCK` leaves its token there and possibly `WRITING` set
//! with a half-filled inactive copy. The published copy is untouched, so nothing
//! committed is lost. Anybody who has waited for the slot longer than a few
//! microseconds asks, at most once a millisecond, whether the holder's process still
//! lives (tokens are `ProcessId` words: pid plus start time). If it died, the waiter
//! takes `LOCK` over with a compare-and-swap from the dead token: a writer then simply
//! writes (its flip discards the half-filled copy); a reader clears `WRITING` and bumps
//! the counter without flipping, and releases the lock. Liveness is only asked in
//! segments; threads of one process die together.

use super::layout::{
    abandoned, active, flipped, key_len_of, Geometry, INCARNATION, KEY, KEY_META, LIVE, LOCK, META,
    SEQ, VALUE, VERSION, WRITING,
};
use super::StateError;
use crate::atomics::Scope;
use crate::error::Corruption;
use crate::sync::{fence, AtomicU64, Ordering};
use crate::words::{load_bytes, store_bytes, word_of};
use std::time::Duration;

/// Orders the `WRITING` mark and the version before the new copy's words.
const WRITER_FENCE: bool = !cfg!(ringport_mutant = "state_writer_no_fence");
/// Orders a read's word loads before its validating `SEQ` load.
const READER_FENCE: bool = !cfg!(ringport_mutant = "state_reader_no_fence");
/// Orders the `WRITING` mark before the version that announces the write.
const TAKE_VERSION: Ordering = if cfg!(ringport_mutant = "state_version_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::AcqRel
};

/// Who is operating on a table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    pub(crate) scope: Scope,
    /// The lock token of this process: its `ProcessId` word in a segment, 1 on the heap.
    pub(crate) me: u64,
}

impl Ctx {
    /// Whether `owner`, a token read from a lock word, names a process that has died.
    fn holder_died(&self, owner: u64) -> bool {
        #[cfg(not(loom))]
        {
            self.scope == Scope::System
                && owner != self.me
                && !crate::process::ProcessId::from_word(owner).is_alive()
        }
        #[cfg(loom)]
        {
            let _ = (owner, self.scope);
            false
        }
    }
}

/// Spins, then yields, then sleeps in short naps, until `limit` has passed since the
/// first yield; then the operation reports [`StateError::Contended`].
pub(crate) struct Patience {
    limit: Duration,
    steps: u32,
    #[cfg(not(loom))]
    start: Option<std::time::Instant>,
    #[cfg(not(loom))]
    next_look: Duration,
}

/// Spin steps before the first yield (each spins `min(step, 16)` times).
#[cfg(not(loom))]
const SPIN_STEPS: u32 = 32;
/// How often a waiter asks whether the holder it waits for died.
#[cfg(not(loom))]
const LOOK_EVERY: Duration = Duration::from_millis(1);
/// After this long a waiter naps instead of yielding, so a long wait burns little CPU.
#[cfg(not(loom))]
const NAP_AFTER: Duration = Duration::from_millis(1);
#[cfg(not(loom))]
const NAP: Duration = Duration::from_micros(50);
/// Loom explores schedules, not time: a waiter yields to the model a few times and then
/// gives up, which keeps every spin loop finite.
#[cfg(loom)]
const LOOM_STEPS: u32 = 3;

impl Patience {
    pub(crate) fn new(limit: Duration) -> Patience {
        Patience {
            limit,
            steps: 0,
            #[cfg(not(loom))]
            start: None,
            #[cfg(not(loom))]
            next_look: Duration::ZERO,
        }
    }

    /// Waits one step for another participant. `Ok(true)` means it is time to ask
    /// whether the participant waited for has died.
    pub(crate) fn snooze(&mut self) -> Result<bool, StateError> {
        self.steps = self.steps.saturating_add(1);
        #[cfg(loom)]
        {
            let _ = self.limit;
            loom::thread::yield_now();
            if self.steps > LOOM_STEPS {
                return Err(StateError::Contended);
            }
            Ok(true)
        }
        #[cfg(not(loom))]
        {
            if self.steps <= SPIN_STEPS {
                for _ in 0..self.steps.min(16) {
                    std::hint::spin_loop();
                }
                return Ok(false);
            }
            let waited = self
                .start
                .get_or_insert_with(std::time::Instant::now)
                .elapsed();
            if waited >= self.limit {
                return Err(StateError::Contended);
            }
            if waited >= NAP_AFTER {
                std::thread::sleep(NAP);
            } else {
                std::thread::yield_now();
            }
            if waited >= self.next_look {
                self.next_look = waited + LOOK_EVERY;
                return Ok(true);
            }
            Ok(false)
        }
    }
}

/// A key being looked up or written: its bytes and hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key<'k> {
    pub(crate) bytes: &'k [u8],
    pub(crate) hash: u64,
}

impl<'k> Key<'k> {
    #[inline(always)]
    pub(crate) fn new(bytes: &'k [u8]) -> Key<'k> {
        Key {
            bytes,
            hash: hash(bytes),
        }
    }

    #[inline]
    fn meta(&self) -> u64 {
        super::layout::key_meta(self.bytes.len(), self.hash)
    }
}

/// A fixed, process-independent hash of a key (every process must place a key in the
/// same slot): a multiply-rotate over its words, then the MurmurHash3 finaliser so that
/// the low bits (the home slot) and the high bits (the tag) both depend on every byte.
/// Not keyed, so not resistant to chosen-key flooding; a flood lengthens probes, which
/// stay bounded by the table size.
#[inline]
pub(crate) fn hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (key.len() as u64).wrapping_mul(K);
    for i in 0..key.len().div_ceil(8) {
        h = (h ^ word_of(key, i)).wrapping_mul(K).rotate_left(31);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// One slot of a table.
#[derive(Clone, Copy)]
pub(crate) struct Slot<'a> {
    w: &'a [AtomicU64],
    geo: &'a Geometry,
    /// `geo.copy_base(0)` and `(1)`: kept here so that a read through an `Entry`'s cached
    /// slot picks its copy without loading the geometry.
    bases: [usize; 2],
}

/// The published copy of a slot, seen from inside a read. Everything read through it is
/// unvalidated until the read returns; lengths are checked against the geometry first,
/// so even a torn or hostile value never indexes out of the slot.
pub(crate) struct View<'a> {
    w: &'a [AtomicU64],
    base: usize,
    geo: &'a Geometry,
}

impl View<'_> {
    #[inline(always)]
    pub(crate) fn is_live(&self) -> bool {
        self.w[self.base + META].load(Ordering::Relaxed) & LIVE != 0
    }

    #[inline(always)]
    pub(crate) fn version(&self) -> u64 {
        self.w[self.base + VERSION].load(Ordering::Relaxed)
    }

    #[inline(always)]
    pub(crate) fn incarnation(&self) -> u64 {
        self.w[INCARNATION].load(Ordering::Relaxed)
    }

    /// Whether the slot holds `key` (the caller checked `is_live`).
    #[inline(always)]
    pub(crate) fn holds(&self, key: &Key<'_>) -> bool {
        if self.w[KEY_META].load(Ordering::Relaxed) != key.meta() {
            return false;
        }
        (0..key.bytes.len().div_ceil(8))
            .all(|i| self.w[KEY + i].load(Ordering::Relaxed) == word_of(key.bytes, i))
    }

    #[inline(always)]
    pub(crate) fn value_len(&self) -> Result<usize, Corruption> {
        let len = self.w[self.base + META].load(Ordering::Relaxed) & !LIVE;
        if len > self.geo.max_value as u64 {
            return Err(Corruption::new(
                "state value length exceeds the table's maximum",
            ));
        }
        Ok(len as usize)
    }

    /// Copies the value into `out`, whose length is the validated `value_len`.
    #[inline(always)]
    pub(crate) fn read_value(&self, out: &mut [u8]) {
        debug_assert!(out.len() <= self.geo.max_value);
        load_bytes(&self.w[self.base + VALUE..], out);
    }

    /// The key's bytes; not yet checked to be UTF-8.
    pub(crate) fn read_key(&self, out: &mut Vec<u8>) -> Result<(), Corruption> {
        let len = key_len_of(self.w[KEY_META].load(Ordering::Relaxed));
        if len > self.geo.max_key as u64 {
            return Err(Corruption::new(
                "state key length exceeds the table's maximum",
            ));
        }
        out.resize(len as usize, 0);
        load_bytes(&self.w[KEY..], out);
        Ok(())
    }
}

/// What one closure-free attempt at a keyed read found.
pub(crate) enum Once<T> {
    Hit(T, u64),
    Miss,
    Unsure,
}

/// A new key written by an insert.
pub(crate) struct NewKey<'k> {
    pub(crate) key: Key<'k>,
    pub(crate) incarnation: u64,
}

impl<'a> Slot<'a> {
    #[inline]
    pub(crate) fn new(words: &'a [AtomicU64], geo: &'a Geometry, index: usize) -> Slot<'a> {
        let base = index * geo.slot_words;
        Slot {
            w: &words[base..base + geo.slot_words],
            geo,
            bases: [geo.copy_base(0), geo.copy_base(1)],
        }
    }

    /// Reads the published copy with `body`, and returns what `body` returned for a copy
    /// that no write changed while it ran.
    #[inline(always)]
    pub(crate) fn read<R>(
        &self,
        ctx: &Ctx,
        patience: &mut Patience,
        mut body: impl FnMut(&View<'a>) -> R,
    ) -> Result<R, StateError> {
        // The first attempt is inline and almost always succeeds; the waiting is not.
        let seq = self.w[SEQ].load(Ordering::Acquire);
        if seq & WRITING == 0 {
            if let Some(r) = self.attempt(seq, &mut body) {
                return Ok(r);
            }
        }
        self.read_contended(ctx, patience, body)
    }

    /// The hot path of a handle's typed read, with no closure in it: one attempt that
    /// returns `(value, version)` only if the slot still holds incarnation `inc` with a
    /// value of exactly `size_of::<T>()` bytes and no write was published meanwhile.
    /// Anything else (a write in the way, a moved key, a wrong size, a corrupt length) is
    /// `None`, and the caller takes the general path, which waits and reports.
    #[inline(always)]
    pub(crate) fn read_pod_once<T: bytemuck::Pod>(&self, inc: u64) -> Option<(T, u64)> {
        let seq = self.w[SEQ].load(Ordering::Acquire);
        if seq & WRITING != 0 {
            return None;
        }
        let size = std::mem::size_of::<T>();
        let base = self.bases[active(seq)];
        let meta = self.w[base + META].load(Ordering::Relaxed);
        if meta != LIVE | size as u64
            || size > self.geo.max_value
            || self.w[INCARNATION].load(Ordering::Relaxed) != inc
        {
            return None;
        }
        let mut value = T::zeroed();
        load_bytes(&self.w[base + VALUE..], bytemuck::bytes_of_mut(&mut value));
        let version = self.w[base + VERSION].load(Ordering::Relaxed);
        if READER_FENCE {
            fence(Ordering::Acquire);
        }
        (self.w[SEQ].load(Ordering::Relaxed) & !WRITING == seq).then_some((value, version))
    }

    /// [`read_pod_once`](Self::read_pod_once) for a lookup by key: a hit, a certain
    /// miss (the slot holds no key or another one), or `Unsure`, for the general path.
    #[inline(always)]
    pub(crate) fn read_pod_keyed_once<T: bytemuck::Pod>(&self, key: &Key<'_>) -> Once<T> {
        let seq = self.w[SEQ].load(Ordering::Acquire);
        if seq & WRITING != 0 {
            return Once::Unsure;
        }
        let size = std::mem::size_of::<T>();
        let view = View {
            w: self.w,
            base: self.bases[active(seq)],
            geo: self.geo,
        };
        let meta = self.w[view.base + META].load(Ordering::Relaxed);
        let found = if meta & LIVE == 0 || !view.holds(key) {
            None
        } else if meta != LIVE | size as u64 || size > self.geo.max_value {
            return Once::Unsure;
        } else {
            let mut value = T::zeroed();
            load_bytes(
                &self.w[view.base + VALUE..],
                bytemuck::bytes_of_mut(&mut value),
            );
            Some((value, view.version()))
        };
        if READER_FENCE {
            fence(Ordering::Acquire);
        }
        if self.w[SEQ].load(Ordering::Relaxed) & !WRITING != seq {
            return Once::Unsure;
        }
        match found {
            Some((value, version)) => Once::Hit(value, version),
            None => Once::Miss,
        }
    }

    /// One read of the copy `seq` publishes: `None` if a write was published meanwhile.
    #[inline(always)]
    fn attempt<R>(&self, seq: u64, body: &mut impl FnMut(&View<'a>) -> R) -> Option<R> {
        let view = View {
            w: self.w,
            base: self.bases[active(seq)],
            geo: self.geo,
        };
        let r = body(&view);
        if READER_FENCE {
            fence(Ordering::Acquire);
        }
        (self.w[SEQ].load(Ordering::Relaxed) & !WRITING == seq).then_some(r)
    }

    #[cold]
    #[inline(never)]
    fn read_contended<R>(
        &self,
        ctx: &Ctx,
        patience: &mut Patience,
        mut body: impl FnMut(&View<'a>) -> R,
    ) -> Result<R, StateError> {
        loop {
            let seq = self.w[SEQ].load(Ordering::Acquire);
            if seq & WRITING != 0 {
                if patience.snooze()? {
                    self.rescue(ctx);
                }
                continue;
            }
            if let Some(r) = self.attempt(seq, &mut body) {
                return Ok(r);
            }
            patience.snooze()?;
        }
    }

    /// Clears a `WRITING` mark left by a writer that died, so that readers go on with
    /// the copy it left published.
    #[cold]
    fn rescue(&self, ctx: &Ctx) {
        let lock = &self.w[LOCK];
        let owner = lock.load(Ordering::Relaxed);
        if owner != 0 && !ctx.holder_died(owner) {
            return;
        }
        if lock
            .compare_exchange(owner, ctx.me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        // The mark may have been cleared by a writer that finished meanwhile: look again
        // now that nobody else can write.
        let seq = self.w[SEQ].load(Ordering::Relaxed);
        if seq & WRITING != 0 {
            self.w[SEQ].store(abandoned(seq), Ordering::Release);
        }
        lock.store(0, Ordering::Release);
    }

    /// Takes the slot's writer lock, from a dead holder if need be.
    pub(crate) fn lock(&self, ctx: &Ctx, patience: &mut Patience) -> Result<Held<'a>, StateError> {
        let lock = &self.w[LOCK];
        // A lock taken from a dead holder needs no repair: the write flips past the
        // copy it left half-filled.
        take(lock, ctx, patience)?;
        Ok(Held {
            slot: *self,
            seq: self.w[SEQ].load(Ordering::Relaxed),
        })
    }
}

/// Takes a lock word: a compare-and-swap from 0 to `ctx.me`, or from the token of a
/// holder that died. Returns whether it was taken from a dead holder.
pub(crate) fn take(
    lock: &AtomicU64,
    ctx: &Ctx,
    patience: &mut Patience,
) -> Result<bool, StateError> {
    loop {
        // Acquire: the previous holder's writes, released by its unlock, are ours to see.
        let owner = match lock.compare_exchange(0, ctx.me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Ok(false),
            Err(owner) => owner,
        };
        if patience.snooze()?
            && ctx.holder_died(owner)
            && lock
                .compare_exchange(owner, ctx.me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Ok(true);
        }
    }
}

/// A slot whose writer lock this thread holds; dropping it releases the lock.
pub(crate) struct Held<'a> {
    slot: Slot<'a>,
    /// `SEQ` when the lock was taken; nobody else changes it while the lock is held.
    seq: u64,
}

impl<'a> Held<'a> {
    /// The published copy. Stable while the lock is held, so it needs no validation.
    pub(crate) fn published(&self) -> View<'a> {
        View {
            w: self.slot.w,
            base: self.slot.bases[active(self.seq)],
            geo: self.slot.geo,
        }
    }

    /// Publishes a new copy: `value` if `live`, a free slot otherwise, and for an insert
    /// the new key. Returns the write's version, taken from `version`.
    pub(crate) fn write(
        self,
        version: &AtomicU64,
        new_key: Option<NewKey<'_>>,
        live: bool,
        value: &[u8],
    ) -> u64 {
        let w = self.slot.w;
        debug_assert!(value.len() <= self.slot.geo.max_value);
        w[SEQ].store(self.seq | WRITING, Ordering::Relaxed);
        let v = version.fetch_add(1, TAKE_VERSION).wrapping_add(1);
        if WRITER_FENCE {
            fence(Ordering::Release);
        }
        if let Some(k) = new_key {
            debug_assert!(k.key.bytes.len() <= self.slot.geo.max_key);
            w[INCARNATION].store(k.incarnation, Ordering::Relaxed);
            w[KEY_META].store(k.key.meta(), Ordering::Relaxed);
            store_bytes(&w[KEY..], k.key.bytes);
        }
        let base = self.slot.bases[1 - active(self.seq)];
        let meta = if live { LIVE | value.len() as u64 } else { 0 };
        w[base + META].store(meta, Ordering::Relaxed);
        w[base + VERSION].store(v, Ordering::Relaxed);
        store_bytes(&w[base + VALUE..], value);
        w[SEQ].store(flipped(self.seq), Ordering::Release);
        v
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Release: the next holder sees everything this one wrote.
        self.slot.w[LOCK].store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_byte_and_the_length() {
        let base = hash(b"temperature.sensor.01");
        assert_ne!(base, hash(b"temperature.sensor.02"));
        assert_ne!(base, hash(b"Temperature.sensor.01"));
        assert_ne!(hash(b"a"), hash(b"a\0"));
        assert_ne!(hash(b""), hash(b"\0"));
    }
}
