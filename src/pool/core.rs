//! The ownership protocol of a pool's buffers: every change of hands is one
//! compare-and-swap of the buffer's state word.
//!
//! ```text
//! FREE(g) ──loan──▶ HELD(g, me) ──send──▶ SENT(g, me) ──accept──▶ HELD(g, them)
//!    ▲                 │  │                                         │
//!    └──── release ────┘  └──share──▶ SHARED(g, me, 1 + readers) ───┘ … ─▶ FREE(g + 1)
//! ```
//!
//! Why not a free list: a Treiber stack moves a buffer out of the list with one CAS on
//! the head and records its new owner with another store, and a process killed between
//! the two leaves the buffer in neither place, lost for good. Here the claim *is* the
//! record of ownership, so a reaper that finds a dead owner's number in a state word
//! knows exactly what that process held. Loans find a free word by scanning from a
//! per-class cursor that the last loan left just past its buffer, so a pool that is not
//! nearly exhausted finds one at the first look.
//!
//! ABA: a buffer's generation is bumped each time it goes back to the pool, so a handle
//! (index, generation) names one loan. A replayed or stale handle's CAS expects an old
//! generation and fails; the negative control `pool_no_generation` shows loom catching a
//! stale release that frees someone else's loan without it.

use super::layout::{
    gen_of, held_entry, held_of, kind_of, owner_of, refs_of, word, FREE, HELD, MAX_REFS, SENT,
    SHARED,
};
use super::mem::PoolMem;
use super::TransferError;
use crate::atomics::Scope;
use crate::participants::token_died;
use crate::sync::Ordering;

/// A loan acquires the previous holder's writes to the bytes (its release is `Release`),
/// so two holders' accesses never overlap.
const LOAN: Ordering = if cfg!(ringport_mutant = "pool_loan_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::Acquire
};
/// Returning a buffer publishes the holder's accesses to the next one.
const RELEASE: Ordering = if cfg!(ringport_mutant = "pool_loan_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::Release
};
/// Dropping a reference to a shared buffer: `AcqRel`, so that the last one to drop (who
/// frees it) has seen every reader's reads finish, as `Arc` does.
const UNREF: Ordering = if cfg!(ringport_mutant = "pool_unref_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::AcqRel
};

/// The generation a buffer gets when it goes back to the pool.
#[inline(always)]
fn next_gen(gen: u32) -> u32 {
    if cfg!(ringport_mutant = "pool_no_generation") {
        gen
    } else {
        gen.wrapping_add(1)
    }
}

/// A reserved entry of a record's shared-reference table: taken, but its reference not yet
/// counted. A reaper skips it: a process killed in that window leaks one reference rather
/// than have it dropped twice.
const RESERVED: u64 = 1;

/// One process's view of a pool: the memory, and this process's owner number.
pub(crate) struct PoolCore {
    pub(crate) mem: PoolMem,
    /// This process's record index + 1.
    pub(crate) me: u64,
    /// This process's token, as written in its record.
    pub(crate) token: u64,
    /// Distinguishes this pool's handles from another pool's.
    pub(crate) id: u64,
}

impl PoolCore {
    fn scope(&self) -> Scope {
        self.mem.scope()
    }

    /// Whether shared references are recorded per process, so that a dead reader's can
    /// be dropped: only in a segment, where readers can die apart.
    fn tracks_readers(&self) -> bool {
        self.scope() == Scope::System && self.mem.geo.shared_per_process > 0
    }

    /// Claims a free buffer of `class` for this process: `(index, generation)`.
    #[inline]
    pub(crate) fn loan(&self, class: usize) -> Option<(u32, u32)> {
        let c = self.mem.geo.classes[class];
        let cursor = &self.mem.ctrl().cursors[class];
        let start = (cursor.load(Ordering::Relaxed) % c.count as u64) as usize;
        for k in 0..c.count {
            let i = (start + k) % c.count;
            let index = c.first + i;
            let state = self.mem.state(index);
            let s = state.load(Ordering::Relaxed);
            if kind_of(s) != FREE {
                continue;
            }
            if state
                .compare_exchange(
                    s,
                    word(gen_of(s), HELD, self.me, 0),
                    LOAN,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                cursor.store((i + 1) as u64, Ordering::Relaxed);
                return Some((index as u32, gen_of(s)));
            }
        }
        None
    }

    /// Returns a held buffer to the pool; false if it was not held by this process under
    /// this generation (the word was damaged, or a reaper took it from a process that
    /// was presumed dead).
    #[inline]
    pub(crate) fn release(&self, index: u32, gen: u32) -> bool {
        let freed = self
            .mem
            .state(index as usize)
            .compare_exchange(
                word(gen, HELD, self.me, 0),
                word(next_gen(gen), FREE, 0, 0),
                RELEASE,
                Ordering::Relaxed,
            )
            .is_ok();
        if freed {
            self.mem.ctrl().space.notify(self.scope());
        }
        freed
    }

    /// Marks a held buffer in flight from this process.
    #[inline]
    pub(crate) fn send(&self, index: u32, gen: u32) -> bool {
        self.mem
            .state(index as usize)
            .compare_exchange(
                word(gen, HELD, self.me, 0),
                word(gen, SENT, self.me, 0),
                RELEASE,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Takes a buffer `sender` sent; the handle was range-checked by the caller.
    pub(crate) fn accept(&self, index: u32, gen: u32, sender: u64) -> Result<(), TransferError> {
        let state = self.mem.state(index as usize);
        let expected = word(gen, SENT, sender, 0);
        match state.compare_exchange(
            expected,
            word(gen, HELD, self.me, 0),
            LOAN,
            Ordering::Relaxed,
        ) {
            Ok(_) => Ok(()),
            Err(found) => Err(classify(index, gen, sender, found, SENT, self.me)),
        }
    }

    /// Makes a held buffer shared, with this process holding the anchor reference.
    pub(crate) fn share(&self, index: u32, gen: u32) -> bool {
        self.mem
            .state(index as usize)
            .compare_exchange(
                word(gen, HELD, self.me, 0),
                word(gen, SHARED, self.me, 1),
                RELEASE,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Takes a reference to a shared buffer. Returns the entry of this process's table that
    /// records it (`usize::MAX` where readers are not tracked).
    pub(crate) fn acquire(&self, index: u32, gen: u32) -> Result<usize, TransferError> {
        let slot = if self.tracks_readers() {
            let table = self.mem.held(self.me as usize - 1);
            let Some(j) = table.iter().position(|e| {
                e.compare_exchange(0, RESERVED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            }) else {
                return Err(TransferError::SharedLimit {
                    limit: self.mem.geo.shared_per_process,
                });
            };
            j
        } else {
            usize::MAX
        };
        let state = self.mem.state(index as usize);
        let mut s = state.load(Ordering::Relaxed);
        let r = loop {
            if kind_of(s) != SHARED || gen_of(s) != gen || refs_of(s) == 0 {
                break Err(classify(index, gen, owner_of(s), s, SHARED, self.me));
            }
            if refs_of(s) == MAX_REFS {
                break Err(TransferError::SharedLimit {
                    limit: MAX_REFS as usize,
                });
            }
            match state.compare_exchange_weak(s, s + 1, LOAN, Ordering::Relaxed) {
                Ok(_) => break Ok(slot),
                Err(now) => s = now,
            }
        };
        if slot != usize::MAX {
            let entry = &self.mem.held(self.me as usize - 1)[slot];
            match r {
                Ok(_) => entry.store(held_entry(index, gen), Ordering::Relaxed),
                Err(_) => entry.store(0, Ordering::Relaxed),
            }
        }
        r
    }

    /// Drops a reference taken by [`PoolCore::acquire`].
    pub(crate) fn unref(&self, index: u32, gen: u32, slot: usize) {
        if slot != usize::MAX {
            // Before the count: a process killed in between leaks the reference rather
            // than have a reaper drop it a second time.
            self.mem.held(self.me as usize - 1)[slot].store(0, Ordering::Relaxed);
        }
        self.drop_ref(index, gen, false);
    }

    /// Drops this process's anchor reference to a buffer it shared.
    pub(crate) fn retire(&self, index: u32, gen: u32) {
        self.drop_ref(index, gen, true);
    }

    /// One reference fewer (the anchor, clearing the owner, when `anchor`); the last frees
    /// the buffer.
    fn drop_ref(&self, index: u32, gen: u32, anchor: bool) {
        let state = self.mem.state(index as usize);
        let mut s = state.load(Ordering::Relaxed);
        loop {
            if kind_of(s) != SHARED || gen_of(s) != gen || refs_of(s) == 0 {
                // Damaged, or already reclaimed: nothing of ours to drop.
                return;
            }
            let owner = if anchor { 0 } else { owner_of(s) };
            let next = if refs_of(s) == 1 {
                word(next_gen(gen), FREE, 0, 0)
            } else {
                word(gen, SHARED, owner, refs_of(s) - 1)
            };
            match state.compare_exchange_weak(s, next, UNREF, Ordering::Relaxed) {
                Ok(_) => {
                    if kind_of(next) == FREE {
                        self.mem.ctrl().space.notify(self.scope());
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Returns to the pool everything that processes which died held, sent, or shared,
    /// and frees their records. Returns how many buffers came back. Only segments have
    /// other processes; on the heap this does nothing.
    pub(crate) fn reclaim(&self) -> usize {
        if self.scope() != Scope::System {
            return 0;
        }
        let mut back = 0;
        for (r, record) in self.mem.records().iter().enumerate() {
            let token = record.token.load(Ordering::Acquire);
            if token == 0 || token == self.token || !token_died(token, self.scope()) {
                continue;
            }
            let reaper = record.reaper.load(Ordering::Acquire);
            if reaper != 0 && (reaper == self.token || !token_died(reaper, self.scope())) {
                continue;
            }
            if record
                .reaper
                .compare_exchange(reaper, self.token, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if record.token.load(Ordering::Acquire) == token {
                back += self.sweep(r as u64 + 1);
                // Release: whoever registers here next sees the swept words.
                let _ =
                    record
                        .token
                        .compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed);
            }
            record.reaper.store(0, Ordering::Release);
        }
        if back > 0 {
            self.mem.ctrl().space.notify(self.scope());
        }
        back
    }

    /// Frees what owner `dead` held or sent, drops its anchors and the references its
    /// table records. The caller holds the record's reaper lock.
    fn sweep(&self, dead: u64) -> usize {
        let mut back = 0;
        for index in 0..self.mem.geo.total {
            let state = self.mem.state(index);
            let mut s = state.load(Ordering::Acquire);
            while owner_of(s) == dead {
                let next = match kind_of(s) {
                    HELD | SENT => word(next_gen(gen_of(s)), FREE, 0, 0),
                    SHARED if refs_of(s) > 1 => word(gen_of(s), SHARED, 0, refs_of(s) - 1),
                    SHARED => word(next_gen(gen_of(s)), FREE, 0, 0),
                    _ => break,
                };
                match state.compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        back += usize::from(kind_of(next) == FREE);
                        break;
                    }
                    Err(now) => s = now,
                }
            }
        }
        if self.mem.geo.shared_per_process > 0 {
            for entry in self.mem.held(dead as usize - 1) {
                let e = entry.swap(0, Ordering::Acquire);
                if let Some((index, gen)) = held_of(e) {
                    if (index as usize) < self.mem.geo.total {
                        let before =
                            kind_of(self.mem.state(index as usize).load(Ordering::Relaxed));
                        self.drop_ref(index, gen, false);
                        let after = kind_of(self.mem.state(index as usize).load(Ordering::Relaxed));
                        back += usize::from(before == SHARED && after == FREE);
                    }
                }
            }
        }
        back
    }

    /// How many buffers of `class` are free right now (a snapshot).
    pub(crate) fn free_in(&self, class: usize) -> usize {
        let c = self.mem.geo.classes[class];
        (c.first..c.first + c.count)
            .filter(|&i| kind_of(self.mem.state(i).load(Ordering::Relaxed)) == FREE)
            .count()
    }
}

/// Why a handle's CAS failed, from the word it found.
fn classify(index: u32, gen: u32, sender: u64, found: u64, want: u64, me: u64) -> TransferError {
    let (kind, owner) = (kind_of(found), owner_of(found));
    if gen_of(found) != gen || kind == FREE {
        TransferError::Stale { index }
    } else if kind == HELD && owner == me {
        TransferError::AlreadyReceived { index }
    } else if kind != want && kind != HELD {
        TransferError::WrongKind { index }
    } else if kind == HELD || owner != sender {
        TransferError::NotOwned { index }
    } else {
        TransferError::Stale { index }
    }
}
