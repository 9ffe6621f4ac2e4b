//! The MPMC algorithm: claiming slots by their state words, and recovering slots that a
//! dead process claimed.
//!
//! # Algorithm
//!
//! A bounded queue of positions `0, 1, 2, ...`; position `p` lives in slot
//! `p % capacity`, in lap `p / capacity`. Each slot's state word says which lap it is in,
//! what phase that lap has reached, and which process claimed it (see `layout`). As in
//! Vyukov's bounded MPMC queue, the slot's own word is the synchronisation point; unlike
//! it, the claim is a compare-and-swap *on the slot* that records the claimant, and the
//! shared head and tail words are only hints:
//!
//! - A producer starts at the tail hint and takes the first position whose slot is
//!   `FREE` in the position's lap, with a compare-and-swap to `WRITING` (`Acquire`: the
//!   previous lap's consumer finished reading). It skips positions already claimed in
//!   that lap. It writes the payload, stores `FULL` (`Release`), and moves the hint.
//!   A slot still in the previous lap means the ring is full there.
//! - A consumer starts at the head hint and takes the first position whose slot is
//!   `FULL` in the position's lap, with a compare-and-swap to `READING` (`Acquire`: sees
//!   the payload). It skips positions other consumers hold or finished. It reads the
//!   payload, stores `FREE` of the next lap (`Release`: its reads happen before the next
//!   producer's writes), and moves the hint. A slot `FREE` or `WRITING` in the position's
//!   lap means nothing is ready there yet: the queue stays FIFO.
//!
//! One compare-and-swap per message on each side, spread over the slots rather than
//! concentrated on one index; the hints are plain stores that may lag, costing a few
//! extra looks, never correctness.
//!
//! # Recovery
//!
//! Every claim names its claimant's participant record. When a waiter finds a slot held
//! in `WRITING` or `READING` by another process for too long, it asks whether that
//! process lives; if it died, the waiter repairs every slot the dead process held: a
//! `WRITING` slot becomes `FULL` with a skip marker (consumers pass over it: the message
//! was never sent), a `READING` slot becomes `FREE` of the next lap (the message was
//! delivered to the dead consumer and is lost with it). Then the record's handle counts
//! are cleared and the record freed. Repairs are compare-and-swaps from the exact state
//! the dead process left, so several repairers cannot conflict.

use super::layout::{
    lap_of, next_lap, owner_of, phase_of, state, FREE, FULL, READING, SKIP, WRITING,
};
use super::mem::MpmcMem;
use crate::atomics::Scope;
use crate::error::Corruption;
use crate::participants::token_died;
use crate::sync::Ordering;
use bytemuck::Pod;

/// Orders a producer's write of the value before the `FULL` that publishes it.
const PUBLISH: Ordering = if cfg!(ringport_mutant = "mpmc_publish_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::Release
};

/// Orders a consumer's read of the value before the `FREE` that hands the slot on.
const HAND_ON: Ordering = if cfg!(ringport_mutant = "mpmc_release_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::Release
};

/// Laps are 46 bits; differences are taken modulo that.
const LAP_MASK: u64 = (1 << 46) - 1;

/// Moves a hint past `pos`, unless it is already further: a plain store, since an
/// exact maximum would cost a read-modify-write per message, and a hint that goes back a
/// little only costs looks.
///
/// `Release`, paired with the `Acquire` load where a search starts: the storer has seen
/// every position before the hint claimed (it passed or claimed each, or started after
/// them at a hint it acquired), so a thread starting there sees those slots at least
/// claimed, never in a state their lap left before. Without it, a slot a lap behind the
/// position could be a stale view rather than corruption.
#[inline(always)]
fn advance(hint: &crate::sync::AtomicU64, pos: u64) {
    let next = pos.wrapping_add(1);
    if hint.load(Ordering::Relaxed).wrapping_sub(next) as i64 <= 0 {
        hint.store(next, Ordering::Release);
    }
}

/// What one attempt found, short of success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// Nothing to do now (empty for a consumer, full for a producer).
    Now,
    /// Waiting on a slot another process holds: `(position, owner)`.
    Held(u64, u64),
}

/// A ring's shared memory plus this process's record in it.
pub(crate) struct Core<T> {
    pub(crate) mem: MpmcMem<T>,
    /// This process's owner number: its record's index + 1.
    pub(crate) me: u64,
}

impl<T> Clone for Core<T> {
    fn clone(&self) -> Self {
        Core {
            mem: self.mem.clone(),
            me: self.me,
        }
    }
}

impl<T: Pod> Core<T> {
    #[inline(always)]
    fn scope(&self) -> Scope {
        self.mem.scope()
    }

    #[inline(always)]
    fn lap_of_pos(&self, pos: u64) -> u64 {
        (pos >> self.mem.geo.lap_shift()) & LAP_MASK
    }

    /// One attempt to send `value`. `fresh` (the first attempt of a call) claims the
    /// slot at the tail hint with a compare-and-swap from the state it most likely has,
    /// without loading it first: a load would fetch the line shared and the swap then
    /// fetch it again exclusive. Later attempts, which poll a slot that was not ready,
    /// load first, so that polling does not take the line from the side about to fill
    /// it.
    #[inline]
    pub(crate) fn try_send(
        &self,
        value: T,
        fresh: bool,
    ) -> Result<Result<(), Blocked>, Corruption> {
        let ctrl = self.mem.ctrl();
        // Acquire: see `advance`.
        let mut pos = ctrl.tail.load(Ordering::Acquire);
        let mut looks = 0usize;
        let mut blind = fresh;
        loop {
            looks += 1;
            if looks > 4 * self.mem.geo.capacity {
                return Err(Corruption::new("mpmc slots never offer a free position"));
            }
            let lap = self.lap_of_pos(pos);
            let word = self.mem.state(pos as usize);
            let claim = state(lap, WRITING, self.me);
            let s = if std::mem::take(&mut blind) {
                match word.compare_exchange(
                    state(lap, FREE, 0),
                    claim,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.publish(pos, lap, value);
                        return Ok(Ok(()));
                    }
                    Err(s) => s,
                }
            } else {
                word.load(Ordering::Acquire)
            };
            match lap_of(s).wrapping_sub(lap) & LAP_MASK {
                0 if phase_of(s) == FREE => {
                    if word
                        .compare_exchange(s, claim, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.publish(pos, lap, value);
                        return Ok(Ok(()));
                    }
                }
                // Claimed in this lap by another producer, or already consumed: later.
                0 | 1 => pos = pos.wrapping_add(1),
                // The previous lap's message is still there: full at this position.
                LAP_MASK => {
                    return Ok(Err(match phase_of(s) {
                        FULL => Blocked::Now,
                        WRITING | READING => Blocked::Held(pos, owner_of(s)),
                        _ => {
                            return Err(Corruption::new(
                                "mpmc slot is free in a lap before the tail",
                            ))
                        }
                    }))
                }
                ahead => pos = self.skip_laps(pos, ahead),
            }
        }
    }

    /// Where to look next when `pos`'s slot is `ahead` laps past `pos` (at least 2, or
    /// modulo 2^46 at least 2 behind).
    ///
    /// Ahead: the hint is laps behind (a claimant that slept between its claim and its
    /// hint store moved it back), and every position up to the one the slot held a lap
    /// ago was claimed, so look after it. Behind: the hint is ahead of every claim, which
    /// only a hostile or damaged hint can be; the slot's own lap is the truth, so look
    /// from the position it holds now.
    #[inline]
    fn skip_laps(&self, pos: u64, ahead: u64) -> u64 {
        let cap = self.mem.geo.capacity as u64;
        if ahead <= LAP_MASK / 2 {
            pos.wrapping_add((ahead - 1).wrapping_mul(cap))
                .wrapping_add(1)
        } else {
            pos.wrapping_sub(((LAP_MASK + 1) - ahead).wrapping_mul(cap))
        }
    }

    /// Fills the slot this thread claimed at `pos` and publishes it.
    #[inline(always)]
    fn publish(&self, pos: u64, lap: u64, value: T) {
        let ctrl = self.mem.ctrl();
        // SAFETY: this thread holds the slot in WRITING for `lap`.
        unsafe { self.mem.write(pos as usize, value) };
        self.mem
            .state(pos as usize)
            .store(state(lap, FULL, 0), PUBLISH);
        advance(&ctrl.tail, pos);
        ctrl.data.notify(self.scope());
    }

    /// One attempt to receive; `fresh` as for [`try_send`](Self::try_send).
    #[inline]
    pub(crate) fn try_recv(&self, fresh: bool) -> Result<Result<T, Blocked>, Corruption> {
        let ctrl = self.mem.ctrl();
        // Acquire: see `advance`.
        let mut pos = ctrl.head.load(Ordering::Acquire);
        let mut looks = 0usize;
        let mut blind = fresh;
        loop {
            looks += 1;
            if looks > 4 * self.mem.geo.capacity {
                return Err(Corruption::new("mpmc slots never settle at the head"));
            }
            let lap = self.lap_of_pos(pos);
            let word = self.mem.state(pos as usize);
            let claim = state(lap, READING, self.me);
            let s = if std::mem::take(&mut blind) {
                match word.compare_exchange(
                    state(lap, FULL, 0),
                    claim,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(Ok(self.consume(pos, lap))),
                    Err(s) => s,
                }
            } else {
                word.load(Ordering::Acquire)
            };
            match (lap_of(s).wrapping_sub(lap) & LAP_MASK, phase_of(s)) {
                (0, FULL) => {
                    if word
                        .compare_exchange(s, claim, Ordering::Acquire, Ordering::Relaxed)
                        .is_err()
                    {
                        continue;
                    }
                    if owner_of(s) != SKIP {
                        return Ok(Ok(self.consume(pos, lap)));
                    }
                    // A dead producer's slot: nothing to read, pass it on.
                    self.release(pos, lap);
                    pos = pos.wrapping_add(1);
                }
                (0, FREE) => return Ok(Err(Blocked::Now)),
                (0, WRITING) => return Ok(Err(Blocked::Held(pos, owner_of(s)))),
                // Another consumer holds it, or it was consumed: later.
                (0, _) | (1, _) => pos = pos.wrapping_add(1),
                // The previous lap's consumer is still reading it (slow, or dead): the
                // others went round the rest of the ring, and nothing is ready here yet.
                (LAP_MASK, READING) => return Ok(Err(Blocked::Held(pos, owner_of(s)))),
                (LAP_MASK, _) => return Err(Corruption::new("mpmc slot is a lap behind the head")),
                (ahead, _) => pos = self.skip_laps(pos, ahead),
            }
        }
    }

    /// Reads the slot this thread claimed at `pos` and hands it to the next lap.
    #[inline(always)]
    fn consume(&self, pos: u64, lap: u64) -> T {
        // SAFETY: this thread holds the slot in READING for `lap`, whose producer
        // published it with FULL and no skip marker.
        let value = unsafe { self.mem.read(pos as usize) };
        self.release(pos, lap);
        value
    }

    #[inline(always)]
    fn release(&self, pos: u64, lap: u64) {
        let ctrl = self.mem.ctrl();
        self.mem
            .state(pos as usize)
            .store(state(next_lap(lap), FREE, 0), HAND_ON);
        advance(&ctrl.head, pos);
        ctrl.space.notify(self.scope());
    }

    /// Whether any process has a live sender (`senders`) or receiver handle, by the
    /// records' counts.
    pub(crate) fn has_handles(&self, senders: bool) -> bool {
        self.mem.records().iter().any(|r| {
            r.token.load(Ordering::Acquire) != 0
                && if senders {
                    r.senders.load(Ordering::Acquire) != 0
                } else {
                    r.receivers.load(Ordering::Acquire) != 0
                }
        })
    }

    /// Repairs what the process of record `owner` held if that process died; true if it
    /// did (and its record is now free).
    pub(crate) fn reap(&self, owner: u64) -> bool {
        let Some(record) = owner
            .checked_sub(1)
            .and_then(|i| self.mem.records().get(i as usize))
        else {
            return false;
        };
        let token = record.token.load(Ordering::Acquire);
        if owner == self.me || token == 0 || !token_died(token, self.scope()) {
            return false;
        }
        self.repair_slots(owner);
        record.senders.store(0, Ordering::Relaxed);
        record.receivers.store(0, Ordering::Relaxed);
        // Release: a process that claims the record later sees it cleaned.
        let freed = record
            .token
            .compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        // Survivors may be asleep waiting for what the dead process held, or for its
        // handles to go: wake them all to look again.
        self.mem.ctrl().data.notify(self.scope());
        self.mem.ctrl().space.notify(self.scope());
        freed
    }

    /// Reaps every record whose process died; true if any did.
    pub(crate) fn reap_all(&self) -> bool {
        (1..=self.mem.records().len() as u64).fold(false, |any, owner| self.reap(owner) | any)
    }

    fn repair_slots(&self, owner: u64) {
        for index in 0..self.mem.geo.capacity {
            let word = self.mem.state(index);
            let s = word.load(Ordering::Acquire);
            if owner_of(s) != owner {
                continue;
            }
            let repaired = match phase_of(s) {
                WRITING => state(lap_of(s), FULL, SKIP),
                READING => state(next_lap(lap_of(s)), FREE, 0),
                _ => continue,
            };
            // A failure means someone else repaired it first.
            let _ = word.compare_exchange(s, repaired, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}
