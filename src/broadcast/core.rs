//! The broadcast algorithm: publishers claim positions on the slots, every subscriber
//! reads every position with its own cursor, and torn reads are caught by the slot's
//! state word, as in a seqlock.
//!
//! # Algorithm
//!
//! - **Publish.** Starting at the tail hint, a publisher takes the first position whose
//!   slot is free for it: never written (first lap), or holding the position one lap
//!   earlier, committed or skipped. The claim is a compare-and-swap of the state word to
//!   `WRITING(position, owner)` (`Acquire`). A `Release` fence follows, then the length
//!   and data words (`Relaxed` stores), then `COMMITTED(position)` (`Release`). Under
//!   backpressure the publisher first checks that every live subscriber's cursor has
//!   passed the position the claim would overwrite.
//! - **Receive.** A subscriber at cursor `c` loads the state of `c`'s slot (`Acquire`):
//!   `COMMITTED(c)` → it copies the length and data words (`Relaxed` loads), issues an
//!   `Acquire` fence and loads the state again: unchanged means the copy is one whole
//!   message. A newer position in the slot, or a state that changed during the copy,
//!   means the subscriber was lapped: it jumps to the oldest position still kept and
//!   reports how many it missed. `WRITING(c)` or an older position means nothing is
//!   ready at `c` yet.
//!
//! The fence pair is the seqlock's: a subscriber that copies any word of the next
//! occupant of the slot sees that occupant's claim in its second load (mutant
//! `broadcast_writer_no_fence` removes the publisher's fence; loom then finds a torn
//! message).
//!
//! # Recovery
//!
//! A publisher killed after its claim leaves `WRITING(position, owner)`. Subscribers
//! waiting at that position, and publishers waiting to reuse its slot, ask whether the
//! owner's process lives (as in the MPMC ring); if it died, every slot it held becomes
//! `SKIPPED(position)`, which subscribers pass over, and its record is freed. Under
//! backpressure, a subscriber whose process died is removed by the first publisher it
//! blocks.

use super::layout::{
    ahead, is_behind, owner_of, phase_of, pos_of, state, Overflow, COMMITTED, POS_MASK, SKIPPED,
    WRITING,
};
use super::mem::BroadcastMem;
use crate::atomics::Scope;
use crate::error::Corruption;
use crate::participants::token_died;
use crate::sync::{fence, AtomicU64, Ordering};
use crate::words::{load_bytes, store_bytes};

/// Orders the claim before the message's words (see the module docs).
const WRITER_FENCE: bool = !cfg!(ringport_mutant = "broadcast_writer_no_fence");

/// What one attempt found, short of success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// Nothing to do now (nothing new for a subscriber; the slowest subscriber a ring
    /// behind, under backpressure, for a publisher).
    Now,
    /// Waiting on a slot another process holds: `(position, owner)`.
    Held(u64, u64),
    /// The subscriber was lapped; it now stands at the oldest message kept, this many
    /// positions further on.
    Lagged(u64),
}

/// A ring's shared memory plus this process's publisher record in it.
#[derive(Clone)]
pub(crate) struct Core {
    pub(crate) mem: BroadcastMem,
    /// This process's owner number (publisher record index + 1).
    pub(crate) me: u64,
}

impl Core {
    #[inline(always)]
    pub(crate) fn scope(&self) -> Scope {
        self.mem.scope()
    }

    #[inline(always)]
    fn cap(&self) -> u64 {
        self.mem.geo.capacity as u64
    }

    /// One attempt to publish `bytes` (at most `max_message` long). `room` caches the
    /// lowest subscriber cursor a backpressure check last found.
    pub(crate) fn publish(
        &self,
        bytes: &[u8],
        room: &AtomicU64,
    ) -> Result<Result<u64, Blocked>, Corruption> {
        debug_assert!(bytes.len() <= self.mem.geo.max_message);
        let ctrl = self.mem.ctrl();
        let cap = self.cap();
        // Acquire: see `advance`.
        let mut pos = ctrl.tail.load(Ordering::Acquire);
        for _ in 0..4 * cap {
            let w = self.mem.slot(pos);
            let s = w[0].load(Ordering::Acquire);
            let d = ahead(pos_of(s), pos);
            let first_lap = s == 0 && pos < cap;
            let settled = matches!(phase_of(s), COMMITTED | SKIPPED);
            if first_lap || (d == POS_MASK + 1 - cap && settled) {
                if self.mem.geo.overflow == Overflow::Backpressure
                    && pos >= cap
                    && !self.room_for(pos, room)
                {
                    return Ok(Err(Blocked::Now));
                }
                let claim = state(pos, WRITING, self.me);
                if w[0]
                    .compare_exchange(s, claim, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                if WRITER_FENCE {
                    fence(Ordering::Release);
                }
                w[1].store(bytes.len() as u64, Ordering::Relaxed);
                store_bytes(&w[2..], bytes);
                w[0].store(state(pos, COMMITTED, 0), Ordering::Release);
                advance(&ctrl.tail, pos);
                ctrl.data.notify(self.scope());
                // A publisher that found this slot `Held` on its way to the next lap
                // sleeps on `space`, and only this commit frees the slot for it.
                ctrl.space.notify(self.scope());
                return Ok(Ok(pos));
            }
            if s != 0 && d == 0 {
                // Claimed by another publisher: the next position.
                pos = pos.wrapping_add(1);
            } else if s != 0 && !is_behind(d) {
                // The slot already holds a later position: this hint is at least a lap
                // behind; every position up to the slot's previous occupant was claimed.
                pos = pos.wrapping_add(d.saturating_sub(cap)).wrapping_add(1);
            } else if s != 0 && d == POS_MASK + 1 - cap && phase_of(s) == WRITING {
                // Its previous occupant is still being written.
                return Ok(Err(Blocked::Held(pos, owner_of(s))));
            } else {
                return Err(Corruption::new(
                    "broadcast slot holds a position more than a lap before the tail",
                ));
            }
        }
        Err(Corruption::new(
            "broadcast slots never offer a free position",
        ))
    }

    /// Whether every live subscriber has read the position that publishing `pos`
    /// overwrites.
    fn room_for(&self, pos: u64, room: &AtomicU64) -> bool {
        let need = pos - self.cap() + 1;
        if room.load(Ordering::Relaxed) >= need {
            return true;
        }
        let lowest = self.lowest_cursor();
        // A subscriber that joins later starts at `pos - history` or after, maybe below
        // every cursor found now (or there is none yet): the cache promises no more room
        // than such a joiner leaves.
        let history = self.mem.geo.history as u64;
        room.store(lowest.min(pos.saturating_sub(history)), Ordering::Relaxed);
        lowest >= need
    }

    /// The lowest cursor of any subscriber (`u64::MAX` if none).
    pub(crate) fn lowest_cursor(&self) -> u64 {
        self.mem
            .subscribers()
            .iter()
            .filter(|r| r.token.load(Ordering::Acquire) != 0)
            // Acquire: the subscriber's reads of what it passed happen before a
            // publisher overwrites it. A claimed record still showing the vacant cursor
            // belongs to a subscriber that is joining (or leaving) and has not stored its
            // start yet: hold publishers back until it has (it wakes them when it does).
            .map(|r| match r.cursor.load(Ordering::Acquire) {
                u64::MAX => 0,
                cursor => cursor,
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// One attempt to receive at `*cursor` into `out`; moves the cursor past what it
    /// delivered or skipped.
    pub(crate) fn recv(
        &self,
        cursor: &mut u64,
        out: &mut Vec<u8>,
    ) -> Result<Result<(), Blocked>, Corruption> {
        let cap = self.cap();
        let start = *cursor;
        loop {
            let c = *cursor;
            if c.wrapping_sub(start) > 4 * cap {
                return Err(Corruption::new("broadcast slots skip without end"));
            }
            let w = self.mem.slot(c);
            let s = w[0].load(Ordering::Acquire);
            let d = ahead(pos_of(s), c);
            if s == 0 || is_behind(d) {
                return Ok(Err(Blocked::Now));
            }
            if d == 0 {
                match phase_of(s) {
                    COMMITTED => {
                        let len = w[1].load(Ordering::Relaxed);
                        let fits = len <= self.mem.geo.max_message as u64;
                        if fits {
                            out.resize(len as usize, 0);
                            load_bytes(&w[2..], out);
                        }
                        fence(Ordering::Acquire);
                        if w[0].load(Ordering::Relaxed) == s {
                            if !fits {
                                return Err(Corruption::new(
                                    "broadcast message longer than the ring's maximum",
                                ));
                            }
                            *cursor = c.wrapping_add(1);
                            return Ok(Ok(()));
                        }
                        // Overwritten while it was being copied: lapped.
                    }
                    SKIPPED => {
                        *cursor = c.wrapping_add(1);
                        continue;
                    }
                    WRITING => return Ok(Err(Blocked::Held(c, owner_of(s)))),
                    _ => return Err(Corruption::new("broadcast slot in an unknown phase")),
                }
            }
            // Lapped: go on from the oldest position still kept, which is a ring behind
            // the newest one claimed (the tail hint, or this slot's, if further).
            let newest = self
                .mem
                .ctrl()
                .tail
                .load(Ordering::Relaxed)
                .max(c.wrapping_add(d).wrapping_add(1));
            let oldest = newest.saturating_sub(cap).max(c.wrapping_add(1));
            *cursor = oldest;
            // Wrapping: a hostile tail hint can put the cursor at the end of the range.
            return Ok(Err(Blocked::Lagged(oldest.wrapping_sub(start))));
        }
    }

    /// Repairs what the publisher process of record `owner` held if that process died;
    /// true if it did.
    pub(crate) fn reap(&self, owner: u64) -> bool {
        let Some(record) = owner
            .checked_sub(1)
            .and_then(|i| self.mem.publishers().get(i as usize))
        else {
            return false;
        };
        let token = record.token.load(Ordering::Acquire);
        if owner == self.me || token == 0 || !token_died(token, self.scope()) {
            return false;
        }
        for index in 0..self.cap() {
            let word = &self.mem.slot(index)[0];
            let s = word.load(Ordering::Acquire);
            if owner_of(s) == owner && phase_of(s) == WRITING {
                let skipped = state(pos_of(s), SKIPPED, 0);
                // A failure means someone else repaired it first.
                let _ = word.compare_exchange(s, skipped, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
        record.senders.store(0, Ordering::Relaxed);
        record.receivers.store(0, Ordering::Relaxed);
        let freed = record
            .token
            .compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        self.wake_all();
        freed
    }

    /// Removes every subscriber whose process died, and repairs every dead publisher's
    /// slots; true if anything was removed.
    pub(crate) fn reap_all(&self) -> bool {
        let mut any = false;
        for r in self.mem.subscribers() {
            let token = r.token.load(Ordering::Acquire);
            if token != 0 && token_died(token, self.scope()) {
                r.cursor.store(u64::MAX, Ordering::Relaxed);
                any |= r
                    .token
                    .compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed)
                    .is_ok();
            }
        }
        for owner in 1..=self.mem.publishers().len() as u64 {
            any |= self.reap(owner);
        }
        if any {
            self.wake_all();
        }
        any
    }

    fn wake_all(&self) {
        self.mem.ctrl().data.notify(self.scope());
        self.mem.ctrl().space.notify(self.scope());
    }

    /// Whether any process has a live publisher handle, by the records' counts.
    pub(crate) fn has_publishers(&self) -> bool {
        self.mem
            .publishers()
            .iter()
            .any(|r| r.token.load(Ordering::Acquire) != 0 && r.senders.load(Ordering::Acquire) != 0)
    }
}

/// Moves a hint past `pos` unless it is already further (see the MPMC ring's). `Release`,
/// paired with the `Acquire` load where a publisher starts: the storer saw every position
/// before the hint claimed, so a publisher starting there never takes a stale view of an
/// older lap for corruption.
#[inline(always)]
fn advance(hint: &AtomicU64, pos: u64) {
    let next = pos.wrapping_add(1);
    if hint.load(Ordering::Relaxed).wrapping_sub(next) as i64 <= 0 {
        hint.store(next, Ordering::Release);
    }
}
