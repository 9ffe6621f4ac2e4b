//! The table's operations on slots: lookup by linear probing, update in place, insert and
//! remove under the membership lock.
//!
//! # Membership
//!
//! A key lives in the first free slot at or after its home slot (`hash % slots`) when it
//! is inserted, and stays there until removed. Lookups never lock: they scan from home up
//! to `max_probe` slots further, the farthest any insert has ever gone, comparing the
//! published copy of each slot. Inserts and removes hold the table's membership lock, so
//! that two inserts of one key cannot pick different free slots and the live-key count is
//! exact; updates of existing keys take only their slot's lock. A slot freed by a remove
//! is reused by later inserts; its incarnation changes, which is how an `Entry` handle
//! notices that its slot now holds another key.

use super::layout::{Geometry, TableHeader};
use super::mem::TableMem;
use super::seqlock::{take, Ctx, Key, NewKey, Once, Patience, Slot, View};
use super::StateError;
use crate::error::Corruption;
use crate::sync::Ordering;
use std::time::Instant;

/// A table: its memory and its geometry.
#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) mem: TableMem,
    pub(crate) geo: Geometry,
    me: u64,
}

/// Where a key lives and a write's version: `(slot, incarnation, version)`.
pub(crate) type Placed = (usize, u64, u64);

/// What an update found under its slot's lock.
pub(crate) enum Update {
    Written(u64),
    /// The slot no longer holds the key: look it up again.
    Moved,
}

impl Table {
    pub(crate) fn new(mem: TableMem, geo: Geometry) -> Table {
        #[cfg(not(loom))]
        let me = match mem.scope() {
            crate::atomics::Scope::System => crate::process::ProcessId::current().to_word(),
            crate::atomics::Scope::Process => 1,
        };
        #[cfg(loom)]
        let me = 1;
        Table { mem, geo, me }
    }

    #[inline]
    pub(crate) fn ctx(&self) -> Ctx {
        Ctx {
            scope: self.mem.scope(),
            me: self.me,
        }
    }

    #[inline]
    fn header(&self) -> &TableHeader {
        self.mem.header()
    }

    #[inline]
    pub(crate) fn slot(&self, index: usize) -> Slot<'_> {
        Slot::new(self.mem.words(), &self.geo, index)
    }

    /// The table version: the latest write's.
    pub(crate) fn version(&self) -> u64 {
        self.header().version.load(Ordering::Acquire)
    }

    /// Live keys.
    pub(crate) fn len(&self) -> Result<usize, Corruption> {
        let len = self.header().members.len.load(Ordering::Relaxed);
        if len > self.geo.capacity as u64 {
            return Err(Corruption::new(
                "state table holds more keys than its capacity",
            ));
        }
        Ok(len as usize)
    }

    fn max_probe(&self) -> Result<usize, Corruption> {
        // Acquire: a key placed this far from home was published after this value.
        let d = self.header().members.max_probe.load(Ordering::Acquire);
        if d >= self.geo.slots as u64 {
            return Err(Corruption::new("state probe distance exceeds the table"));
        }
        Ok(d as usize)
    }

    #[inline]
    fn home(&self, key: &Key<'_>) -> usize {
        key.hash as usize & (self.geo.slots - 1)
    }

    /// Finds `key` and runs `f` on its published copy inside the same consistent read:
    /// `(slot, incarnation, f's result)`, or `None` if the key is absent.
    #[inline]
    pub(crate) fn lookup<R>(
        &self,
        key: &Key<'_>,
        ctx: &Ctx,
        patience: &mut Patience,
        mut f: impl FnMut(&View<'_>) -> R,
    ) -> Result<Option<(usize, u64, R)>, StateError> {
        let home = self.home(key);
        for d in 0..=self.max_probe()? {
            let index = (home + d) & (self.geo.slots - 1);
            let found = self.slot(index).read(
                ctx,
                patience,
                #[inline(always)]
                |v| {
                    if v.is_live() && v.holds(key) {
                        Some((v.incarnation(), f(v)))
                    } else {
                        None
                    }
                },
            )?;
            if let Some((inc, r)) = found {
                return Ok(Some((index, inc, r)));
            }
        }
        Ok(None)
    }

    /// The hot path of a typed lookup by key: `Some(found)` if one closure-free attempt
    /// per probed slot settled it, `None` if the general path must.
    #[inline(always)]
    pub(crate) fn lookup_pod_once<T: bytemuck::Pod>(
        &self,
        key: &Key<'_>,
    ) -> Option<Option<(T, u64)>> {
        let home = self.home(key);
        for d in 0..=self.max_probe().ok()? {
            let index = (home + d) & (self.geo.slots - 1);
            match self.slot(index).read_pod_keyed_once::<T>(key) {
                Once::Hit(value, version) => return Some(Some((value, version))),
                Once::Miss => continue,
                Once::Unsure => return None,
            }
        }
        Some(None)
    }

    /// Runs `f` on `slot`'s published copy if it still holds incarnation `inc`.
    #[inline]
    pub(crate) fn read_at<'t, R>(
        slot: Slot<'t>,
        inc: u64,
        ctx: &Ctx,
        patience: &mut Patience,
        mut f: impl FnMut(&View<'t>) -> R,
    ) -> Result<Option<R>, StateError> {
        // Forced inline: called from two paths, the closure would otherwise stay a call,
        // and the value it reads would go through memory instead of registers.
        slot.read(
            ctx,
            patience,
            #[inline(always)]
            |v| {
                if v.is_live() && v.incarnation() == inc {
                    Some(f(v))
                } else {
                    None
                }
            },
        )
    }

    /// Runs `f` on slot `index`'s published copy if it is live (for iteration).
    pub(crate) fn read_live<R>(
        &self,
        index: usize,
        ctx: &Ctx,
        patience: &mut Patience,
        mut f: impl FnMut(&View<'_>) -> R,
    ) -> Result<Option<R>, StateError> {
        self.slot(index)
            .read(ctx, patience, |v| v.is_live().then(|| f(v)))
    }

    /// Overwrites the value in slot `index` if it still holds incarnation `inc` and, with
    /// `expect`, its version is the expected one.
    pub(crate) fn update(
        &self,
        index: usize,
        inc: u64,
        expect: Option<u64>,
        value: &[u8],
        ctx: &Ctx,
        patience: &mut Patience,
    ) -> Result<Update, StateError> {
        let held = self.slot(index).lock(ctx, patience)?;
        let current = held.published();
        if !current.is_live() || current.incarnation() != inc {
            return Ok(Update::Moved);
        }
        if let Some(expected) = expect {
            let found = current.version();
            if found != expected {
                return Err(StateError::VersionMismatch { expected, found });
            }
        }
        let v = held.write(&self.header().version, None, true, value);
        self.notify();
        Ok(Update::Written(v))
    }

    /// Inserts `key` with `value` unless it is present, in which case nothing is written
    /// and its `(slot, incarnation, version)` is returned as `Err`.
    pub(crate) fn insert(
        &self,
        key: &Key<'_>,
        value: &[u8],
        ctx: &Ctx,
        patience: &mut Patience,
    ) -> Result<Result<Placed, Placed>, StateError> {
        let _members = self.lock_members(ctx, patience)?;
        // Another insert of the same key may have finished before we took the lock.
        if let Some(found) = self.lookup(key, ctx, patience, |v| v.version())? {
            return Ok(Err(found));
        }
        let len = self.len()?;
        if len >= self.geo.capacity {
            return Err(StateError::TableFull {
                capacity: self.geo.capacity,
            });
        }
        let home = self.home(key);
        for d in 0..self.geo.slots {
            let index = (home + d) & (self.geo.slots - 1);
            // Under the membership lock no slot changes between free and live, so a look
            // without the slot's lock is enough to pass live slots by; a free one may
            // still be held briefly by an updater that lost a race with its remove.
            let slot = self.slot(index);
            if slot.read(ctx, patience, |v| v.is_live())? {
                continue;
            }
            let held = slot.lock(ctx, patience)?;
            if held.published().is_live() {
                return Err(
                    Corruption::new("state slot became live under the membership lock").into(),
                );
            }
            let members = &self.header().members;
            if d > self.max_probe()? {
                // Release, and before the key is published: a lookup that reads this
                // distance scans far enough to see the key once it is there.
                members.max_probe.store(d as u64, Ordering::Release);
            }
            let inc = held.published().incarnation().wrapping_add(1);
            let new_key = NewKey {
                key: *key,
                incarnation: inc,
            };
            let v = held.write(&self.header().version, Some(new_key), true, value);
            members.len.store(len as u64 + 1, Ordering::Relaxed);
            self.notify();
            return Ok(Ok((index, inc, v)));
        }
        Err(Corruption::new("state table has no free slot below its capacity").into())
    }

    /// Removes `key`; the removal's version, or `None` if it was absent.
    pub(crate) fn remove(
        &self,
        key: &Key<'_>,
        ctx: &Ctx,
        patience: &mut Patience,
    ) -> Result<Option<u64>, StateError> {
        let _members = self.lock_members(ctx, patience)?;
        let Some((index, inc, ())) = self.lookup(key, ctx, patience, |_| ())? else {
            return Ok(None);
        };
        let held = self.slot(index).lock(ctx, patience)?;
        let current = held.published();
        if !current.is_live() || current.incarnation() != inc {
            // Only inserts and removes change membership, and we hold their lock.
            return Err(Corruption::new("state slot changed key under the membership lock").into());
        }
        let len = self.len()?;
        let v = held.write(&self.header().version, None, false, &[]);
        self.header()
            .members
            .len
            .store(len.saturating_sub(1) as u64, Ordering::Relaxed);
        self.notify();
        Ok(Some(v))
    }

    /// Takes the membership lock. Taken from a dead holder, the live-key count may be off
    /// by the holder's unfinished insert or remove, so it is counted again.
    fn lock_members(
        &self,
        ctx: &Ctx,
        patience: &mut Patience,
    ) -> Result<MembersGuard<'_>, StateError> {
        let members = &self.header().members;
        let stolen = take(&members.lock, ctx, patience)?;
        let guard = MembersGuard(self);
        if stolen {
            let mut live = 0u64;
            for index in 0..self.geo.slots {
                let slot = self.slot(index);
                if slot.read(ctx, patience, |v| v.is_live())? {
                    live += 1;
                }
            }
            members.len.store(live, Ordering::Relaxed);
        }
        Ok(guard)
    }

    fn notify(&self) {
        self.header().changes.notify(self.mem.scope());
    }

    /// Sleeps until `check` returns `Some`, or until `deadline`.
    pub(crate) fn wait_for<R>(
        &self,
        deadline: Option<Instant>,
        mut check: impl FnMut() -> Option<R>,
    ) -> Option<R> {
        self.header()
            .changes
            .wait_until(self.mem.scope(), deadline, |_| check())
    }
}

/// Holds the membership lock; dropping it releases the lock.
struct MembersGuard<'a>(&'a Table);

impl Drop for MembersGuard<'_> {
    fn drop(&mut self) {
        // Release: the next inserter sees this one's slot, count and probe distance.
        self.0.header().members.lock.store(0, Ordering::Release);
    }
}
