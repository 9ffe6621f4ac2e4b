//! [`SharedState`]: a versioned key/value table in shared memory, the web's SharedState
//! pattern (`setState`, `getState`, `requestSync`) for threads and processes.
//!
//! # The contract
//!
//! - **Fixed capacity.** A table holds at most [`StateOptions::capacity`] keys, each a
//!   string of at most [`StateOptions::max_key_len`] bytes with a value of at most
//!   [`StateOptions::max_value_len`] bytes (or a `bytemuck::Pod` value that fits). All of
//!   its memory is allocated when it is created; exceeding a limit is a typed error.
//! - **Versions.** Every write ([`set`](SharedState::set),
//!   [`compare_and_set`](SharedState::compare_and_set), [`remove`](SharedState::remove))
//!   takes the next value of one table-wide counter, so versions order all writes, a
//!   key's versions only grow, and the higher version is the newer state.
//! - **Readers never block writers, and never see a torn value.** Each key's slot is a
//!   two-copy seqlock: a write fills the unpublished copy and then publishes it, a read
//!   copies the published one with atomic loads and retries if a write was published
//!   meanwhile. Readers take no lock and write nothing.
//! - **Writers of one key serialise** on that key's slot lock; writers of different keys
//!   do not meet. Inserting or removing a key also takes a table-wide membership lock.
//! - **Nothing is missed.** A reader that has seen table version `v` (from
//!   [`version`](SharedState::version), [`wait_for_change`](SharedState::wait_for_change)
//!   or a [`Snapshot`]) sees every write up to `v` in any later read.
//! - **Bounded waiting.** A reader that keeps losing to writers, or a writer waiting for
//!   a key's lock, gives up with [`StateError::Contended`] after the handle's
//!   [patience](SharedState::set_patience) (100 ms by default) instead of spinning for
//!   ever.
//! - **Crashes.** A process killed in the middle of a write loses that write and nothing
//!   else: the key keeps its previous value, and the slot is freed for other writers as
//!   soon as one of them has waited a few microseconds and found the holder dead (it asks
//!   at most once a millisecond). See ARCHITECTURE.md.
//! - **Untrusted memory.** Every length, distance and count read from the table is
//!   checked before use; a damaged table gives [`StateError::Corrupt`].
//!
//! # Example
//!
//! ```
//! use ringport::state::{SharedState, StateOptions};
//!
//! let state = SharedState::new(StateOptions::default());
//! let v1 = state.set("mode", b"idle")?;
//! let v2 = state.set("mode", b"running")?;
//! assert!(v2 > v1);
//! let got = state.get("mode")?.expect("present");
//! assert_eq!((got.value.as_slice(), got.version), (&b"running"[..], v2));
//!
//! // Optimistic concurrency: a stale version loses.
//! assert!(state.compare_and_set("mode", v1, b"stopped").is_err());
//! state.compare_and_set("mode", v2, b"stopped")?;
//! # Ok::<(), ringport::state::StateError>(())
//! ```

mod layout;
mod mem;
mod seqlock;
mod table;

use crate::error::Corruption;
use bytemuck::Pod;
use seqlock::{Ctx, Key, Patience, Slot, View};
use std::cell::Cell;
use std::time::{Duration, Instant};
use table::{Table, Update};
use thiserror::Error;

#[cfg(not(loom))]
use crate::segment::{Segment, SegmentError, PARAMS};

/// How long an operation waits for other participants before it reports
/// [`StateError::Contended`], unless its handle was given another patience.
pub const DEFAULT_PATIENCE: Duration = Duration::from_millis(100);

#[cfg(not(loom))]
const KIND_STATE: u32 = u32::from_le_bytes(*b"STAT");

/// Why a state operation failed. Nothing was written by an operation that failed.
///
/// # Example
/// ```
/// use ringport::state::{SharedState, StateError, StateOptions};
///
/// let state = SharedState::new(StateOptions { max_value_len: 4, ..Default::default() });
/// assert_eq!(
///     state.set("k", b"too long"),
///     Err(StateError::ValueTooLarge { len: 8, max: 4 })
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum StateError {
    /// The key is longer than the table allows.
    #[error("key of {len} bytes exceeds the table's maximum of {max}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The table's maximum.
        max: usize,
    },
    /// The value is larger than the table allows.
    #[error("value of {len} bytes exceeds the table's maximum of {max}")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The table's maximum.
        max: usize,
    },
    /// Inserting a new key would exceed the table's capacity.
    #[error("the table already holds its capacity of {capacity} keys")]
    TableFull {
        /// The table's capacity in keys.
        capacity: usize,
    },
    /// `compare_and_set` found another version (0 means the key is absent).
    #[error("expected version {expected}, found {found}")]
    VersionMismatch {
        /// The version the caller expected.
        expected: u64,
        /// The key's current version, or 0 if it is absent.
        found: u64,
    },
    /// A typed read found a value of another size.
    #[error("the value is {found} bytes, the type read is {expected}")]
    WrongSize {
        /// The size of the type read.
        expected: usize,
        /// The stored value's length.
        found: usize,
    },
    /// `get_into` was given a buffer smaller than the value.
    #[error("the value is {len} bytes, the buffer holds {capacity}")]
    BufferTooSmall {
        /// The stored value's length.
        len: usize,
        /// The buffer's length.
        capacity: usize,
    },
    /// Other participants kept the key busy for longer than the handle's patience: a
    /// reader kept losing to writers, or a live writer held the key's lock.
    #[error("gave up waiting for other participants (contention)")]
    Contended,
    /// No change arrived before the timeout.
    #[error("timed out waiting for a change")]
    Timeout,
    /// The table's shared memory failed validation.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
}

/// The sizes of a table, fixed when it is created.
///
/// # Example
/// ```
/// use ringport::state::{SharedState, StateOptions};
///
/// let state = SharedState::new(StateOptions {
///     capacity: 16,
///     max_key_len: 32,
///     max_value_len: 1024,
/// });
/// assert_eq!(state.capacity(), 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateOptions {
    /// Most keys the table holds at once, 1 to 2^24 (default 1024). The table has twice
    /// as many slots, so that lookups stay short.
    pub capacity: usize,
    /// Longest key in bytes, 1 to 1024 (default 64).
    pub max_key_len: usize,
    /// Largest value in bytes, up to 16 MiB (default 256). Each key's slot holds two
    /// copies of this size.
    pub max_value_len: usize,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            capacity: 1024,
            max_key_len: 64,
            max_value_len: 256,
        }
    }
}

impl StateOptions {
    fn geometry(&self) -> Result<layout::Geometry, &'static str> {
        layout::Geometry::new(self.capacity, self.max_key_len, self.max_value_len)
    }
}

/// A value read from the table, with the version of the write that stored it.
///
/// # Example
/// ```
/// use ringport::state::{SharedState, StateOptions};
///
/// let state = SharedState::new(StateOptions::default());
/// let v = state.set_pod("count", &7u32)?;
/// let got = state.get_pod::<u32>("count")?.unwrap();
/// assert_eq!((got.value, got.version), (7, v));
/// # Ok::<(), ringport::state::StateError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Versioned<T> {
    /// The value (or, from `get_into`, its length).
    pub value: T,
    /// The version of the write that stored it.
    pub version: u64,
}

/// One key of a [`Snapshot`] or of [`SharedState::iter`].
///
/// # Example
/// ```
/// use ringport::state::{SharedState, StateOptions};
///
/// let state = SharedState::new(StateOptions::default());
/// state.set("a", b"1")?;
/// let e = state.iter().next().unwrap()?;
/// assert_eq!((e.key.as_str(), e.value.as_slice()), ("a", &b"1"[..]));
/// # Ok::<(), ringport::state::StateError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateEntry {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
    /// The version of the write that stored the value.
    pub version: u64,
}

/// Every key of a table, for a late joiner (the web's `requestSync`).
///
/// Each entry is one committed write. Every write up to [`Snapshot::version`] is
/// reflected (by its own value or a later one); writes after it may be too. Waiting with
/// [`SharedState::wait_for_change`] from `version` then misses nothing.
///
/// # Example
/// ```
/// use ringport::state::{SharedState, StateOptions};
///
/// let state = SharedState::new(StateOptions::default());
/// state.set("x", b"1")?;
/// state.set("y", b"2")?;
/// let snap = state.snapshot()?;
/// assert_eq!(snap.entries.len(), 2);
/// assert_eq!(snap.version, state.version());
/// # Ok::<(), ringport::state::StateError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// The table version when the snapshot began.
    pub version: u64,
    /// The live keys, in the table's slot order.
    pub entries: Vec<StateEntry>,
}

/// A versioned key/value table on the heap (threads) or in a named segment (processes).
///
/// A `SharedState` is a handle: clones share the same table, like clones of a
/// `SharedArrayBuffer` posted to workers, and every operation takes `&self`. See the
/// [module documentation](self) for the contract.
///
/// # Example
/// ```
/// use ringport::state::{SharedState, StateOptions};
///
/// let state = SharedState::new(StateOptions::default());
/// let worker = state.clone();
/// let t = std::thread::spawn(move || worker.set("progress", b"done").unwrap());
/// let v = t.join().unwrap();
/// assert_eq!(state.get("progress")?.unwrap().version, v);
/// # Ok::<(), ringport::state::StateError>(())
/// ```
#[derive(Clone)]
pub struct SharedState {
    table: Table,
    patience: Duration,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("capacity", &self.table.geo.capacity)
            .field("max_key_len", &self.table.geo.max_key)
            .field("max_value_len", &self.table.geo.max_value)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl SharedState {
    /// A table on the heap, for the threads of this process.
    ///
    /// # Panics
    /// If an option is out of its documented range.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// assert!(state.is_empty());
    /// ```
    pub fn new(options: StateOptions) -> SharedState {
        let geo = options
            .geometry()
            .unwrap_or_else(|e| panic!("SharedState::new: {e}"));
        Self::from_table(Table::new(mem::TableMem::heap(&geo), geo))
    }

    fn from_table(table: Table) -> SharedState {
        SharedState {
            table,
            patience: DEFAULT_PATIENCE,
        }
    }

    /// Creates the named table `name` for other processes to [`open`](Self::open).
    ///
    /// # Errors
    /// [`SegmentError::Incompatible`] for options out of range; otherwise as
    /// [`Segment::create`]: `AlreadyExists`, `InvalidName`, `NoSpace`, ...
    ///
    /// # Example
    /// ```
    /// use ringport::state::{SharedState, StateOptions};
    /// let name = format!("doc-state-create-{}", std::process::id());
    /// let a = SharedState::create(&name, StateOptions::default())?;
    /// let b = SharedState::open(&name)?; // usually in another process
    /// a.set("k", b"v").unwrap();
    /// assert_eq!(b.get("k").unwrap().unwrap().value, b"v");
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create(name: &str, options: StateOptions) -> Result<SharedState, SegmentError> {
        let geo = options
            .geometry()
            .map_err(|reason| SegmentError::Incompatible {
                name: name.to_owned(),
                reason: reason.to_owned(),
            })?;
        let mut params = [0; PARAMS];
        params[0] = geo.capacity as u64;
        params[1] = geo.max_key as u64;
        params[2] = geo.max_value as u64;
        let segment = Segment::create(name, KIND_STATE, params, geo.table_len())?;
        let region = crate::region::Region::segment(segment);
        Ok(Self::from_table(Table::new(
            mem::TableMem::new(region, &geo),
            geo,
        )))
    }

    /// Opens the named table `name` made by [`create`](Self::create). Any number of
    /// processes may open it.
    ///
    /// # Errors
    /// As [`Segment::open`]: `NotFound`, `Incompatible` (not a state table),
    /// `Corrupt` (sizes that do not match the segment), `PermissionDenied`, ...
    ///
    /// # Example
    /// ```
    /// use ringport::{segment::SegmentError, state::SharedState};
    /// let r = SharedState::open("no-such-state");
    /// assert!(matches!(r, Err(SegmentError::NotFound { .. })));
    /// ```
    #[cfg(not(loom))]
    pub fn open(name: &str) -> Result<SharedState, SegmentError> {
        let segment = Segment::open(name, KIND_STATE)?;
        let p = segment.params();
        let corrupt = |reason: &str| SegmentError::Corrupt {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let (Ok(capacity), Ok(max_key), Ok(max_value)) = (
            usize::try_from(p[0]),
            usize::try_from(p[1]),
            usize::try_from(p[2]),
        ) else {
            return Err(corrupt("table sizes do not fit this machine"));
        };
        let geo = layout::Geometry::new(capacity, max_key, max_value).map_err(corrupt)?;
        if geo.table_len() != segment.payload_len() {
            return Err(corrupt("payload length does not match the table's sizes"));
        }
        let region = crate::region::Region::segment(segment);
        Ok(Self::from_table(Table::new(
            mem::TableMem::new(region, &geo),
            geo,
        )))
    }

    /// The segment behind a named table, to [`persist`](Segment::persist) or inspect.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// assert!(state.segment().is_none());
    /// ```
    #[cfg(not(loom))]
    pub fn segment(&self) -> Option<&Segment> {
        self.table.mem.segment()
    }

    /// Sets how long this handle's operations wait for other participants before
    /// reporting [`StateError::Contended`] ([`DEFAULT_PATIENCE`] unless set).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let mut state = ringport::state::SharedState::new(Default::default());
    /// state.set_patience(Duration::from_secs(1));
    /// assert_eq!(state.patience(), Duration::from_secs(1));
    /// ```
    pub fn set_patience(&mut self, patience: Duration) {
        self.patience = patience;
    }

    /// This handle's patience (see [`set_patience`](Self::set_patience)).
    ///
    /// # Example
    /// ```
    /// use ringport::state::{SharedState, DEFAULT_PATIENCE};
    /// assert_eq!(SharedState::new(Default::default()).patience(), DEFAULT_PATIENCE);
    /// ```
    pub fn patience(&self) -> Duration {
        self.patience
    }

    /// Most keys the table holds.
    ///
    /// # Example
    /// ```
    /// use ringport::state::{SharedState, StateOptions};
    /// assert_eq!(SharedState::new(StateOptions::default()).capacity(), 1024);
    /// ```
    pub fn capacity(&self) -> usize {
        self.table.geo.capacity
    }

    /// Longest key, in bytes.
    ///
    /// # Example
    /// ```
    /// assert_eq!(ringport::state::SharedState::new(Default::default()).max_key_len(), 64);
    /// ```
    pub fn max_key_len(&self) -> usize {
        self.table.geo.max_key
    }

    /// Largest value, in bytes.
    ///
    /// # Example
    /// ```
    /// assert_eq!(ringport::state::SharedState::new(Default::default()).max_value_len(), 256);
    /// ```
    pub fn max_value_len(&self) -> usize {
        self.table.geo.max_value
    }

    /// Keys in the table now (at most [`capacity`](Self::capacity), even if the shared
    /// count was damaged).
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// state.set("a", b"").unwrap();
    /// assert_eq!(state.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.table.len().unwrap_or(self.table.geo.capacity)
    }

    /// Whether the table holds no key.
    ///
    /// # Example
    /// ```
    /// assert!(ringport::state::SharedState::new(Default::default()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table version: the version of the latest write that began (0 before any).
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// assert_eq!(state.version(), 0);
    /// let v = state.set("a", b"1").unwrap();
    /// assert_eq!(state.version(), v);
    /// ```
    pub fn version(&self) -> u64 {
        self.table.version()
    }

    fn ctx(&self) -> (Ctx, Patience) {
        (self.table.ctx(), Patience::new(self.patience))
    }

    #[inline(always)]
    fn key<'k>(&self, key: &'k str) -> Result<Key<'k>, StateError> {
        if key.len() > self.table.geo.max_key {
            return Err(StateError::KeyTooLong {
                len: key.len(),
                max: self.table.geo.max_key,
            });
        }
        Ok(Key::new(key.as_bytes()))
    }

    fn check_value(&self, value: &[u8]) -> Result<(), StateError> {
        if value.len() > self.table.geo.max_value {
            return Err(StateError::ValueTooLarge {
                len: value.len(),
                max: self.table.geo.max_value,
            });
        }
        Ok(())
    }

    /// Stores `value` under `key`, inserting the key if it is new, and returns the
    /// write's version (the web's `setState`).
    ///
    /// # Errors
    /// [`StateError::KeyTooLong`], [`StateError::ValueTooLarge`],
    /// [`StateError::TableFull`] for a new key in a full table, [`StateError::Contended`],
    /// [`StateError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let v = state.set("user.42.name", "Ada".as_bytes())?;
    /// assert_eq!(state.get("user.42.name")?.unwrap().version, v);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn set(&self, key: &str, value: &[u8]) -> Result<u64, StateError> {
        self.check_value(value)?;
        let key = self.key(key)?;
        let (ctx, mut patience) = self.ctx();
        self.write(&key, None, value, &ctx, &mut patience)
            .map(|(_, _, v)| v)
    }

    /// Stores the bytes of a `Pod` value under `key` (see [`set`](Self::set)).
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// state.set_pod("pos", &[1.5f64, -2.0])?;
    /// assert_eq!(state.get_pod::<[f64; 2]>("pos")?.unwrap().value, [1.5, -2.0]);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn set_pod<T: Pod>(&self, key: &str, value: &T) -> Result<u64, StateError> {
        self.set(key, bytemuck::bytes_of(value))
    }

    /// Stores `value` under `key` only if the key's version is `expected_version` (0:
    /// only if the key is absent), and returns the new version.
    ///
    /// # Errors
    /// [`StateError::VersionMismatch`] with the current version (0 if absent), and the
    /// errors of [`set`](Self::set).
    ///
    /// # Example
    /// ```
    /// use ringport::state::{SharedState, StateError};
    /// let state = SharedState::new(Default::default());
    /// let v = state.compare_and_set("leader", 0, b"node-a")?; // create if absent
    /// let lost = state.compare_and_set("leader", 0, b"node-b");
    /// assert_eq!(lost, Err(StateError::VersionMismatch { expected: 0, found: v }));
    /// # Ok::<(), StateError>(())
    /// ```
    pub fn compare_and_set(
        &self,
        key: &str,
        expected_version: u64,
        value: &[u8],
    ) -> Result<u64, StateError> {
        self.check_value(value)?;
        let key = self.key(key)?;
        let (ctx, mut patience) = self.ctx();
        self.write(&key, Some(expected_version), value, &ctx, &mut patience)
            .map(|(_, _, v)| v)
    }

    /// The common path of every write by key: `(slot, incarnation, version)`.
    fn write(
        &self,
        key: &Key<'_>,
        expect: Option<u64>,
        value: &[u8],
        ctx: &Ctx,
        patience: &mut Patience,
    ) -> Result<(usize, u64, u64), StateError> {
        loop {
            if let Some((index, inc, ())) = self.table.lookup(key, ctx, patience, |_| ())? {
                match self
                    .table
                    .update(index, inc, expect, value, ctx, patience)?
                {
                    Update::Written(v) => return Ok((index, inc, v)),
                    Update::Moved => {
                        patience.snooze()?;
                        continue;
                    }
                }
            }
            match expect {
                Some(expected) if expected != 0 => {
                    return Err(StateError::VersionMismatch { expected, found: 0 })
                }
                _ => {}
            }
            match self.table.insert(key, value, ctx, patience)? {
                Ok(placed) => return Ok(placed),
                Err((_, _, found)) if expect.is_some() => {
                    return Err(StateError::VersionMismatch { expected: 0, found })
                }
                // Inserted by someone else meanwhile: update it.
                Err(_) => continue,
            }
        }
    }

    /// Removes `key`; returns the removal's version, or `None` if the key was absent.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// state.set("tmp", b"x")?;
    /// assert!(state.remove("tmp")?.is_some());
    /// assert_eq!(state.remove("tmp")?, None);
    /// assert_eq!(state.get("tmp")?, None);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn remove(&self, key: &str) -> Result<Option<u64>, StateError> {
        let key = self.key(key)?;
        let (ctx, mut patience) = self.ctx();
        self.table.remove(&key, &ctx, &mut patience)
    }

    /// The value of `key` and its version, or `None` if absent (the web's `getState`).
    ///
    /// # Errors
    /// [`StateError::KeyTooLong`], [`StateError::Contended`], [`StateError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// assert_eq!(state.get("missing")?, None);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn get(&self, key: &str) -> Result<Option<Versioned<Vec<u8>>>, StateError> {
        let key = self.key(key)?;
        let (ctx, mut patience) = self.ctx();
        let found = self.table.lookup(&key, &ctx, &mut patience, read_vec)?;
        found.map(|(_, _, r)| r).transpose()
    }

    /// Copies the value of `key` into `buf` without allocating; returns its length and
    /// version, or `None` if absent.
    ///
    /// # Errors
    /// [`StateError::BufferTooSmall`] if `buf` is shorter than the value, and the errors
    /// of [`get`](Self::get).
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// state.set("greeting", b"hello")?;
    /// let mut buf = [0u8; 64];
    /// let got = state.get_into("greeting", &mut buf)?.unwrap();
    /// assert_eq!(&buf[..got.value], b"hello");
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn get_into(
        &self,
        key: &str,
        buf: &mut [u8],
    ) -> Result<Option<Versioned<usize>>, StateError> {
        let key = self.key(key)?;
        let (ctx, mut patience) = self.ctx();
        let found = self
            .table
            .lookup(&key, &ctx, &mut patience, |v| copy_value(v, buf))?;
        let read = found.map(|(_, _, r)| r).transpose()?;
        Ok(read.map(|(len, version)| Versioned {
            value: len,
            version,
        }))
    }

    /// The value of `key` as a `T`, or `None` if absent.
    ///
    /// # Errors
    /// [`StateError::WrongSize`] if the stored value is not `size_of::<T>()` bytes, and
    /// the errors of [`get`](Self::get).
    ///
    /// # Example
    /// ```
    /// use ringport::state::StateError;
    /// let state = ringport::state::SharedState::new(Default::default());
    /// state.set_pod("n", &5u64)?;
    /// assert_eq!(state.get_pod::<u64>("n")?.unwrap().value, 5);
    /// assert_eq!(state.get_pod::<u32>("n"), Err(StateError::WrongSize { expected: 4, found: 8 }));
    /// # Ok::<(), StateError>(())
    /// ```
    #[inline(always)]
    pub fn get_pod<T: Pod>(&self, key: &str) -> Result<Option<Versioned<T>>, StateError> {
        let key = self.key(key)?;
        if let Some(found) = self.table.lookup_pod_once::<T>(&key) {
            return Ok(found.map(|(value, version)| Versioned { value, version }));
        }
        self.get_pod_contended(&key)
    }

    /// The rest of [`get_pod`](Self::get_pod), out of line so that the first attempt
    /// inlines into its caller.
    #[inline(never)]
    fn get_pod_contended<T: Pod>(&self, key: &Key<'_>) -> Result<Option<Versioned<T>>, StateError> {
        let (ctx, mut patience) = self.ctx();
        let found = self
            .table
            .lookup(key, &ctx, &mut patience, copy_pod_inline::<T>())?;
        found.map(|(_, _, r)| r).transpose()
    }

    /// A handle on `key` that resolves its slot once, so that repeated reads and writes
    /// skip the lookup. The key need not exist yet.
    ///
    /// # Errors
    /// [`StateError::KeyTooLong`].
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let price = state.entry("price")?;
    /// price.set_pod(&101.5f64)?;
    /// for _ in 0..3 {
    ///     assert_eq!(price.get_pod::<f64>()?.unwrap().value, 101.5);
    /// }
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn entry(&self, key: &str) -> Result<Entry<'_>, StateError> {
        let k = self.key(key)?;
        Ok(Entry {
            state: self,
            key: key.into(),
            hash: k.hash,
            cached: Cell::new(None),
        })
    }

    /// Every key with its value and version, each entry consistent (the web's
    /// `requestSync`). See [`Snapshot`] for what it promises.
    ///
    /// # Errors
    /// [`StateError::Contended`], [`StateError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// state.set("a", b"1")?;
    /// let snap = state.snapshot()?;
    /// assert_eq!(snap.entries[0].key, "a");
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn snapshot(&self) -> Result<Snapshot, StateError> {
        let version = self.version();
        let entries = self.iter().collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot { version, entries })
    }

    /// Iterates over the live keys in slot order, reading each when it is reached.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// for k in ["a", "b", "c"] {
    ///     state.set(k, k.as_bytes())?;
    /// }
    /// let mut keys: Vec<String> = state.iter().map(|e| e.map(|e| e.key)).collect::<Result<_, _>>()?;
    /// keys.sort();
    /// assert_eq!(keys, ["a", "b", "c"]);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            state: self,
            index: 0,
        }
    }

    /// Sleeps until the table version exceeds `since`, and returns it; wakes for every
    /// write, from any thread or process (`Atomics.wait` on the version).
    ///
    /// # Errors
    /// [`StateError::Timeout`] if no write came within `timeout`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let since = state.version();
    /// let writer = state.clone();
    /// std::thread::spawn(move || writer.set("k", b"v").unwrap());
    /// let v = state.wait_for_change(since, Duration::from_secs(10))?;
    /// assert!(v > since);
    /// assert_eq!(state.get("k")?.unwrap().value, b"v"); // the change is visible
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64, StateError> {
        let deadline = Instant::now().checked_add(timeout);
        self.table
            .wait_for(deadline, || {
                let v = self.table.version();
                (v > since).then_some(v)
            })
            .ok_or(StateError::Timeout)
    }
}

fn read_vec(v: &View<'_>) -> Result<Versioned<Vec<u8>>, StateError> {
    let len = v.value_len()?;
    let mut value = vec![0; len];
    v.read_value(&mut value);
    Ok(Versioned {
        value,
        version: v.version(),
    })
}

/// Copies the value of a published copy into the front of `out`: `(length, version)`.
/// Small results and a caller's buffer, so the hot path moves no value through its
/// `Result`s.
#[inline(always)]
fn copy_value(v: &View<'_>, out: &mut [u8]) -> Result<(usize, u64), StateError> {
    let len = v.value_len()?;
    let capacity = out.len();
    let Some(dst) = out.get_mut(..len) else {
        return Err(StateError::BufferTooSmall { len, capacity });
    };
    v.read_value(dst);
    Ok((len, v.version()))
}

/// Reads a published copy as a `T`. Generic over `T`, so the copy's length is a
/// constant and it unrolls into one load and one store per word.
#[inline(always)]
fn copy_pod<T: Pod>(v: &View<'_>) -> Result<Versioned<T>, StateError> {
    let len = v.value_len()?;
    let expected = std::mem::size_of::<T>();
    if len != expected {
        return Err(StateError::WrongSize {
            expected,
            found: len,
        });
    }
    let mut value = T::zeroed();
    v.read_value(bytemuck::bytes_of_mut(&mut value));
    Ok(Versioned {
        value,
        version: v.version(),
    })
}

/// [`copy_pod`] as a closure forced inline: a function item passed as `impl Fn` is
/// called through a `call_mut` shim that the optimiser does not always inline, and then
/// the value leaves the hot path through memory.
#[inline(always)]
fn copy_pod_inline<T: Pod>() -> impl Fn(&View<'_>) -> Result<Versioned<T>, StateError> + Copy {
    #[inline(always)]
    |v| copy_pod::<T>(v)
}

/// Where an [`Entry`]'s key was last found: its slot (kept as the slot's words, so a read
/// starts one pointer away from the data) and the slot's incarnation then.
#[derive(Clone, Copy)]
struct Resolved<'s> {
    slot: Slot<'s>,
    index: usize,
    inc: u64,
}

/// A key resolved to its slot once (see [`SharedState::entry`]). If the key is removed
/// and inserted again, possibly elsewhere, the handle notices and resolves it again.
///
/// # Example
/// ```
/// let state = ringport::state::SharedState::new(Default::default());
/// let e = state.entry("volume")?;
/// assert_eq!(e.get()?, None);
/// e.set(&[7])?;
/// assert_eq!(e.get()?.unwrap().value, [7]);
/// # Ok::<(), ringport::state::StateError>(())
/// ```
pub struct Entry<'s> {
    state: &'s SharedState,
    key: Box<str>,
    hash: u64,
    /// Where the key was last found.
    cached: Cell<Option<Resolved<'s>>>,
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("slot", &self.cached.get().map(|c| c.index))
            .finish_non_exhaustive()
    }
}

impl<'s> Entry<'s> {
    /// The key.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// assert_eq!(state.entry("k")?.key(), "k");
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    fn k(&self) -> Key<'_> {
        Key {
            bytes: self.key.as_bytes(),
            hash: self.hash,
        }
    }

    fn resolved(&self, index: usize, inc: u64) -> Resolved<'s> {
        Resolved {
            slot: self.state.table.slot(index),
            index,
            inc,
        }
    }

    /// Reads through the cached slot, or looks the key up again if it moved. `f` is
    /// `Copy` (a function, or a closure that captures nothing) and is passed by value to
    /// both paths, so the hot one inlines it whole.
    #[inline(always)]
    fn read<R>(
        &self,
        f: impl Fn(&View<'_>) -> Result<R, StateError> + Copy,
    ) -> Result<Option<R>, StateError> {
        let (ctx, mut patience) = self.state.ctx();
        if let Some(c) = self.cached.get() {
            if let Some(r) = Table::read_at(c.slot, c.inc, &ctx, &mut patience, f)? {
                return r.map(Some);
            }
            self.cached.set(None);
        }
        match self.state.table.lookup(&self.k(), &ctx, &mut patience, f)? {
            Some((index, inc, r)) => {
                self.cached.set(Some(self.resolved(index, inc)));
                r.map(Some)
            }
            None => Ok(None),
        }
    }

    /// [`read`](Self::read) for a closure that borrows the caller's buffer, which is not
    /// `Copy`.
    #[inline(always)]
    fn read_bytes(&self, out: &mut [u8]) -> Result<Option<(usize, u64)>, StateError> {
        let (ctx, mut patience) = self.state.ctx();
        if let Some(c) = self.cached.get() {
            let dst = &mut *out;
            let read = Table::read_at(c.slot, c.inc, &ctx, &mut patience, move |v| {
                copy_value(v, dst)
            })?;
            if let Some(r) = read {
                return r.map(Some);
            }
            self.cached.set(None);
        }
        let found = self
            .state
            .table
            .lookup(&self.k(), &ctx, &mut patience, |v| copy_value(v, out))?;
        match found {
            Some((index, inc, r)) => {
                self.cached.set(Some(self.resolved(index, inc)));
                r.map(Some)
            }
            None => Ok(None),
        }
    }

    /// As [`SharedState::get`], without the lookup.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// state.set("k", b"v")?;
    /// assert_eq!(state.entry("k")?.get()?.unwrap().value, b"v");
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn get(&self) -> Result<Option<Versioned<Vec<u8>>>, StateError> {
        self.read(read_vec)
    }

    /// As [`SharedState::get_into`], without the lookup.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let e = state.entry("k")?;
    /// e.set(b"abc")?;
    /// let mut buf = [0; 8];
    /// assert_eq!(e.get_into(&mut buf)?.unwrap().value, 3);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn get_into(&self, buf: &mut [u8]) -> Result<Option<Versioned<usize>>, StateError> {
        let read = self.read_bytes(buf)?;
        Ok(read.map(|(len, version)| Versioned {
            value: len,
            version,
        }))
    }

    /// As [`SharedState::get_pod`], without the lookup.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let e = state.entry("k")?;
    /// e.set_pod(&3u16)?;
    /// assert_eq!(e.get_pod::<u16>()?.unwrap().value, 3);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    #[inline(always)]
    pub fn get_pod<T: Pod>(&self) -> Result<Option<Versioned<T>>, StateError> {
        if let Some(c) = self.cached.get() {
            if let Some((value, version)) = c.slot.read_pod_once::<T>(c.inc) {
                return Ok(Some(Versioned { value, version }));
            }
        }
        self.get_pod_contended()
    }

    /// The rest of [`get_pod`](Self::get_pod), out of line so that the first attempt
    /// inlines into its caller.
    #[inline(never)]
    fn get_pod_contended<T: Pod>(&self) -> Result<Option<Versioned<T>>, StateError> {
        self.read(copy_pod_inline::<T>())
    }

    fn write(&self, expect: Option<u64>, value: &[u8]) -> Result<u64, StateError> {
        self.state.check_value(value)?;
        let (ctx, mut patience) = self.state.ctx();
        if let Some(c) = self.cached.get() {
            match self
                .state
                .table
                .update(c.index, c.inc, expect, value, &ctx, &mut patience)?
            {
                Update::Written(v) => return Ok(v),
                Update::Moved => self.cached.set(None),
            }
        }
        let (index, inc, v) = self
            .state
            .write(&self.k(), expect, value, &ctx, &mut patience)?;
        self.cached.set(Some(self.resolved(index, inc)));
        Ok(v)
    }

    /// As [`SharedState::set`], without the lookup.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let e = state.entry("k")?;
    /// let v = e.set(b"1")?;
    /// assert!(e.set(b"2")? > v);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn set(&self, value: &[u8]) -> Result<u64, StateError> {
        self.write(None, value)
    }

    /// As [`SharedState::set_pod`], without the lookup.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let e = state.entry("k")?;
    /// e.set_pod(&[1u8, 2])?;
    /// assert_eq!(e.get()?.unwrap().value, [1, 2]);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn set_pod<T: Pod>(&self, value: &T) -> Result<u64, StateError> {
        self.write(None, bytemuck::bytes_of(value))
    }

    /// As [`SharedState::compare_and_set`], without the lookup.
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let e = state.entry("k")?;
    /// let v = e.compare_and_set(0, b"first")?;
    /// assert!(e.compare_and_set(v, b"second").is_ok());
    /// assert!(e.compare_and_set(v, b"third").is_err());
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn compare_and_set(&self, expected_version: u64, value: &[u8]) -> Result<u64, StateError> {
        self.write(Some(expected_version), value)
    }

    /// As [`SharedState::remove`].
    ///
    /// # Example
    /// ```
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let e = state.entry("k")?;
    /// e.set(b"x")?;
    /// assert!(e.remove()?.is_some());
    /// assert_eq!(e.get()?, None);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn remove(&self) -> Result<Option<u64>, StateError> {
        self.cached.set(None);
        let (ctx, mut patience) = self.state.ctx();
        self.state.table.remove(&self.k(), &ctx, &mut patience)
    }

    /// Sleeps until this key holds a version greater than `since`, and returns that
    /// version. Wakes on every write to the table and re-reads the key; a removal alone
    /// does not end the wait.
    ///
    /// # Errors
    /// [`StateError::Timeout`], and the errors of [`get`](Self::get).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let state = ringport::state::SharedState::new(Default::default());
    /// let e = state.entry("k")?;
    /// let writer = state.clone();
    /// std::thread::spawn(move || writer.set("k", b"v").unwrap());
    /// let v = e.wait_for_change(0, Duration::from_secs(10))?;
    /// assert_eq!(e.get()?.unwrap().version, v);
    /// # Ok::<(), ringport::state::StateError>(())
    /// ```
    pub fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64, StateError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut failure = None;
        let woke = self
            .state
            .table
            .wait_for(deadline, || match self.read(|v| Ok(v.version())) {
                Ok(Some(v)) if v > since => Some(v),
                Ok(_) => None,
                Err(e) => {
                    failure = Some(e);
                    Some(0)
                }
            });
        match (failure, woke) {
            (Some(e), _) => Err(e),
            (None, Some(v)) => Ok(v),
            (None, None) => Err(StateError::Timeout),
        }
    }
}

/// Iterator over a table's live keys (see [`SharedState::iter`]).
///
/// # Example
/// ```
/// let state = ringport::state::SharedState::new(Default::default());
/// state.set("only", b"1")?;
/// assert_eq!(state.iter().count(), 1);
/// # Ok::<(), ringport::state::StateError>(())
/// ```
#[derive(Debug)]
pub struct Iter<'s> {
    state: &'s SharedState,
    index: usize,
}

impl Iterator for Iter<'_> {
    type Item = Result<StateEntry, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        let table = &self.state.table;
        while self.index < table.geo.slots {
            let index = self.index;
            self.index += 1;
            let (ctx, mut patience) = self.state.ctx();
            let mut key = Vec::new();
            let read = table.read_live(index, &ctx, &mut patience, |v| {
                v.read_key(&mut key)?;
                read_vec(v)
            });
            match read {
                Ok(None) => continue,
                Ok(Some(Ok(Versioned { value, version }))) => {
                    let Ok(key) = String::from_utf8(key) else {
                        return Some(Err(Corruption::new("state key is not UTF-8").into()));
                    };
                    return Some(Ok(StateEntry {
                        key,
                        value,
                        version,
                    }));
                }
                Ok(Some(Err(e))) | Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}

/// Heap-placed tests, small enough for Miri (`cargo +nightly miri test --lib state::`).
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn small() -> SharedState {
        SharedState::new(StateOptions {
            capacity: 4,
            max_key_len: 12,
            max_value_len: 24,
        })
    }

    #[test]
    fn writes_take_consecutive_versions_and_failures_take_none() {
        let s = small();
        assert_eq!(s.set("a", b"1"), Ok(1));
        assert_eq!(s.set("b", b"2"), Ok(2));
        assert!(s.compare_and_set("a", 2, b"x").is_err());
        assert_eq!(
            s.set("a", &[0; 25]),
            Err(StateError::ValueTooLarge { len: 25, max: 24 })
        );
        assert_eq!(s.remove("a"), Ok(Some(3)));
        assert_eq!(s.remove("a"), Ok(None));
        assert_eq!(s.version(), 3);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn full_table_refuses_new_keys_until_one_is_removed() {
        let s = small();
        for k in ["a", "b", "c", "d"] {
            s.set(k, k.as_bytes()).unwrap();
        }
        assert_eq!(s.set("e", b""), Err(StateError::TableFull { capacity: 4 }));
        s.set("d", b"updated").unwrap();
        s.remove("b").unwrap();
        s.set("e", b"e").unwrap();
        let mut keys: Vec<_> = s.iter().map(|e| e.unwrap().key).collect();
        keys.sort();
        assert_eq!(keys, ["a", "c", "d", "e"]);
    }

    #[test]
    fn entry_follows_its_key_through_remove_and_reinsert() {
        let s = small();
        let e = s.entry("k").unwrap();
        e.set(b"one").unwrap();
        s.remove("k").unwrap();
        // Fill the table so that "k" comes back wherever a slot is free.
        for k in ["w", "x", "y"] {
            s.set(k, b"").unwrap();
        }
        s.set("k", b"two").unwrap();
        assert_eq!(e.get().unwrap().unwrap().value, b"two");
        e.set(b"three").unwrap();
        assert_eq!(s.get("k").unwrap().unwrap().value, b"three");
    }

    /// Values whose bytes all equal their first: a torn read would mix two of them.
    #[test]
    fn concurrent_readers_see_only_whole_values() {
        let s = small();
        let rounds = if cfg!(miri) { 30 } else { 3000 };
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let b = (i % 250) as u8 + 1;
                    s.set("k", &vec![b; 8 + i % 17]).unwrap();
                    if i % 7 == 0 {
                        s.remove("j").unwrap();
                    } else {
                        s.set("j", &[b; 24]).unwrap();
                    }
                }
            })
        };
        let mut last = 0;
        while !writer.is_finished() {
            for key in ["k", "j"] {
                if let Some(v) = s.get(key).unwrap() {
                    assert!(
                        v.value.iter().all(|&b| b == v.value[0]),
                        "torn: {:?}",
                        v.value
                    );
                    if key == "k" {
                        assert!(v.version >= last);
                        last = v.version;
                    }
                }
            }
        }
        writer.join().unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.entries.len(), s.len());
    }
}
