//! The rows of [`SharedState`] (issue 5), against what a program would use instead and
//! against the floors of copying a value and of waking a sleeper.
//!
//! - **Uncontended operations.** One thread runs batches of [`BATCH`] operations on a
//!   table of [`KEYS`] keys named like `sensor.0042.temperature`, each with a 64-byte
//!   value, and visits the keys in one fixed shuffled order: every row, references
//!   included, looks up the same keys in the same order, so hashing, branches and caches
//!   meet the same pattern. A single operation takes nanoseconds, below what one clock
//!   read resolves, so each batch is timed and the row reports picoseconds per operation
//!   with percentiles over batches. Every value read is checked: the first and last
//!   words of all values read must add up to what the known values give, so a read that
//!   returns the wrong key, or nothing, fails the row. Every write's version is checked
//!   (one writer: consecutive versions), and the table must hold the written values
//!   afterwards.
//! - **Read throughput beside a writer.** One thread reads [`READ_KEYS`] keys by name
//!   round-robin while a thread on the other CPU rewrites all of them continuously. Each
//!   value carries its key, a generation and its word index in every word, so the reader
//!   checks that what it read is one committed write of that key (not torn, not another
//!   key's) and that a key's generations never go back. The row also reports the
//!   writer's rate: a lock whose readers starve its writer reads as if nobody wrote (std's
//!   `RwLock` does, in some runs), and the timed reads go on until the writer has
//!   finished at least one generation.
//! - **Wake-ups.** One side sleeps in [`SharedState::wait_for_change`]; the other stamps
//!   `CLOCK_MONOTONIC` into a value and sets it. The sample is the time from that stamp
//!   to the moment the woken side holds the value: one way, set to wake. The woken side
//!   replies the same way, and the stamping side lets it fall asleep again before the
//!   next sample. The reference does the same over a raw futex word with the stamp
//!   beside it. Every wake is checked to carry the sequence number due.

use crate::bench::{Ctx, Measured};
use crate::child::{or_exit, ChildArgs};
use crate::shm::{AtomicOnly, Shared};
use crate::tput::now_ns;
use crate::Result;
use hdrhistogram::Histogram;
use ringport::atomics::{futex_syscalls, notify, wait};
use ringport::state::{SharedState, StateOptions};
use std::collections::HashMap;
use std::hint::{black_box, spin_loop};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Keys of the uncontended rows' tables (a power of two).
pub const KEYS: usize = 1024;
/// Operations per timed batch.
pub const BATCH: usize = 256;
/// Keys the read-throughput rows read and rewrite.
pub const READ_KEYS: usize = 64;
/// Bytes of every value.
const VALUE: usize = 64;
/// Longest key of the rows' tables; `sensor.0042.temperature` is 23 bytes.
const MAX_KEY: usize = 32;
/// How long a wake-up row waits for one change before it fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(10);
/// How long the stamping side of a wake-up row lets the woken side go back to sleep
/// before the next signal, so that a sample is a sleeper's wake-up, not a set that
/// found the other side still on its way into the wait (which costs no wake at all).
const SETTLE_NS: u64 = 50_000;

/// A value of the rows' tables.
type Value = [u8; VALUE];

/// Word `j` of `v`.
#[inline(always)]
fn word(v: &Value, j: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&v[j * 8..j * 8 + 8]);
    u64::from_le_bytes(w)
}

/// What every read adds to its row's checksum: the value's first and last words.
#[inline(always)]
fn fingerprint(v: &Value) -> u64 {
    word(v, 0).wrapping_add(word(v, VALUE / 8 - 1))
}

/// The name of key `id`.
fn key_name(id: usize) -> String {
    format!("sensor.{id:04}.temperature")
}

/// The value of key `id` in the uncontended rows: distinct words, distinct per key.
fn key_value(id: usize) -> Value {
    let mut v = [0; VALUE];
    for (j, w) in v.chunks_exact_mut(8).enumerate() {
        let x = (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ j as u64;
        w.copy_from_slice(&x.to_le_bytes());
    }
    v
}

/// The keys of an uncontended row in visiting order: position `p` is key `order[p]`.
struct Keys {
    order: Vec<usize>,
    names: Vec<String>,
    values: Vec<Value>,
}

impl Keys {
    /// The [`KEYS`] keys in a fixed shuffled order (Fisher-Yates over a xorshift), the
    /// same for every row and every run.
    fn new() -> Keys {
        let mut order: Vec<usize> = (0..KEYS).collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in (1..KEYS).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        Keys {
            names: order.iter().map(|&id| key_name(id)).collect(),
            values: order.iter().map(|&id| key_value(id)).collect(),
            order,
        }
    }

    /// The checksum of `ops` reads in visiting order from position 0.
    fn expected(&self, ops: u64) -> u64 {
        let sum = |values: &[Value]| {
            values
                .iter()
                .fold(0u64, |s, v| s.wrapping_add(fingerprint(v)))
        };
        let rounds = ops / KEYS as u64;
        let rest = (ops % KEYS as u64) as usize;
        sum(&self.values)
            .wrapping_mul(rounds)
            .wrapping_add(sum(&self.values[..rest]))
    }

    /// A heap table holding every key with `value(position)`.
    fn table(&self, value: impl Fn(usize) -> Value) -> Result<SharedState> {
        let state = SharedState::new(StateOptions {
            capacity: KEYS,
            max_key_len: MAX_KEY,
            max_value_len: VALUE,
        });
        for (p, name) in self.names.iter().enumerate() {
            state.set(name, &value(p))?;
        }
        Ok(state)
    }

    /// A std map holding every key with `value(position)`.
    fn map(&self, value: impl Fn(usize) -> Value) -> HashMap<String, Value> {
        self.names
            .iter()
            .enumerate()
            .map(|(p, name)| (name.clone(), value(p)))
            .collect()
    }

    /// Checks that `read(position)` gives every key's value in the uncontended rows.
    fn check_holds(&self, mut read: impl FnMut(usize) -> Result<Option<Value>>) -> Result<()> {
        for (p, want) in self.values.iter().enumerate() {
            if read(p)?.as_ref() != Some(want) {
                return Err(
                    format!("after the row, {} does not hold its value", self.names[p]).into(),
                );
            }
        }
        Ok(())
    }
}

/// A histogram of picoseconds per operation, 1 ps to 100 s.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs the plan's batches of `op(position)`, visiting positions in order, the last
/// `count` timed; returns picoseconds per operation of each batch and the sum of what
/// `op` returned over all operations, warm-up included.
#[inline(always)]
fn batches(ctx: &Ctx, mut op: impl FnMut(usize) -> Result<u64>) -> Result<(Histogram<u64>, u64)> {
    let mut hist = histogram();
    let mut sum = 0u64;
    let mut pos = 0;
    for b in 0..ctx.plan.total() {
        let t0 = Instant::now();
        for _ in 0..BATCH {
            sum = sum.wrapping_add(op(pos)?);
            pos = (pos + 1) % KEYS;
        }
        let ps = t0.elapsed().as_nanos() * 1000 / BATCH as u128;
        if b >= ctx.plan.warm {
            hist.saturating_record(ps.try_into().unwrap_or(u64::MAX));
        }
    }
    Ok((hist, sum))
}

/// Operations a row of `ctx`'s plan runs, warm-up included.
fn ops(ctx: &Ctx) -> u64 {
    ctx.plan.total() * BATCH as u64
}

/// A row of reads visiting every key: times `op`, whose results must add up to the
/// keys' checksum.
#[inline(always)]
fn read_row(ctx: &Ctx, keys: &Keys, op: impl FnMut(usize) -> Result<u64>) -> Result<Measured> {
    checked_reads(ctx, keys.expected(ops(ctx)), op)
}

/// A row of reads of the first key only: times `op`, whose results must add up to that
/// key's fingerprint times the operations.
#[inline(always)]
fn hot_row(ctx: &Ctx, keys: &Keys, mut op: impl FnMut() -> Result<u64>) -> Result<Measured> {
    let want = fingerprint(&keys.values[0]).wrapping_mul(ops(ctx));
    checked_reads(ctx, want, |_| op())
}

/// A row of reads: times `op`, whose results must add up to `want`.
#[inline(always)]
fn checked_reads(ctx: &Ctx, want: u64, op: impl FnMut(usize) -> Result<u64>) -> Result<Measured> {
    let futex = futex_syscalls();
    let (hist, sum) = batches(ctx, op)?;
    let futex = futex_syscalls() - futex;
    if sum != want {
        return Err(format!("reads add up to {sum:#x} instead of {want:#x}").into());
    }
    Ok(Measured::per_op(hist, BATCH as u64, futex, ctx.main_pinned))
}

/// The reference of the by-key rows: an unsynchronised `HashMap<String, [u8; 64]>`
/// lookup and a copy of the value.
pub fn hashmap_get(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let map = keys.map(|p| keys.values[p]);
    read_row(ctx, &keys, |p| {
        let v: Value = *map.get(&keys.names[p]).ok_or("key missing")?;
        Ok(fingerprint(&black_box(v)))
    })
}

/// `RwLock<HashMap>`: read lock, lookup, copy.
pub fn rwlock_get(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let map = RwLock::new(keys.map(|p| keys.values[p]));
    read_row(ctx, &keys, |p| {
        let v: Value = *map
            .read()
            .map_err(|_| "lock poisoned")?
            .get(&keys.names[p])
            .ok_or("key missing")?;
        Ok(fingerprint(&black_box(v)))
    })
}

/// `SharedState::get_pod::<[u8; 64]>` by key.
pub fn get_pod(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let state = keys.table(|p| keys.values[p])?;
    read_row(ctx, &keys, |p| {
        let got = state
            .get_pod::<Value>(&keys.names[p])?
            .ok_or("key missing")?;
        Ok(fingerprint(&black_box(got.value)))
    })
}

/// `SharedState::get_into` by key, into a 64-byte buffer.
pub fn get_into(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let state = keys.table(|p| keys.values[p])?;
    let mut buf: Value = [0; VALUE];
    read_row(ctx, &keys, |p| {
        let got = state
            .get_into(&keys.names[p], &mut buf)?
            .ok_or("key missing")?;
        if got.value != VALUE {
            return Err(format!("read {} bytes instead of {VALUE}", got.value).into());
        }
        Ok(fingerprint(black_box(&buf)))
    })
}

/// The reference of the entry rows: a copy of a 64-byte value from a table of them,
/// through `black_box` so that the compiler neither hoists nor drops it.
pub fn plain_copy(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let mut by_id = vec![[0; VALUE]; KEYS];
    for (p, &id) in keys.order.iter().enumerate() {
        by_id[id] = keys.values[p];
    }
    read_row(ctx, &keys, |p| {
        let v: Value = *black_box(&by_id[keys.order[p]]);
        Ok(fingerprint(&black_box(v)))
    })
}

/// `Entry::get_pod::<[u8; 64]>` through handles resolved before the row.
pub fn entry_get_pod(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let state = keys.table(|p| keys.values[p])?;
    let entries = keys
        .names
        .iter()
        .map(|k| state.entry(k))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    read_row(ctx, &keys, |p| {
        let got = entries[p].get_pod::<Value>()?.ok_or("key missing")?;
        Ok(fingerprint(&black_box(got.value)))
    })
}

/// The reference of the hot entry row: a copy of one 64-byte value, through
/// `black_box` so that the compiler neither hoists nor drops it.
pub fn plain_copy_hot(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let value = keys.values[0];
    hot_row(ctx, &keys, || {
        let v: Value = *black_box(&value);
        Ok(fingerprint(&black_box(v)))
    })
}

/// `Entry::get_pod::<[u8; 64]>` of one key, again and again: a hot path's read.
pub fn entry_get_pod_hot(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let state = keys.table(|p| keys.values[p])?;
    let entry = state.entry(&keys.names[0])?;
    hot_row(ctx, &keys, || {
        let got = entry.get_pod::<Value>()?.ok_or("key missing")?;
        Ok(fingerprint(&black_box(got.value)))
    })
}

/// A row of writes over a table of zeros: times `op`, whose results must add up to
/// `want(operations)`; `read` must then find every key's value.
#[inline(always)]
fn write_row(
    ctx: &Ctx,
    keys: &Keys,
    op: impl FnMut(usize) -> Result<u64>,
    want: impl FnOnce(u64) -> u64,
    read: impl FnMut(usize) -> Result<Option<Value>>,
) -> Result<Measured> {
    let futex = futex_syscalls();
    let (hist, sum) = batches(ctx, op)?;
    let futex = futex_syscalls() - futex;
    let want = want(ops(ctx));
    if sum != want {
        return Err(format!("writes add up to {sum} instead of {want}").into());
    }
    keys.check_holds(read)?;
    Ok(Measured::per_op(hist, BATCH as u64, futex, ctx.main_pinned))
}

/// The reference of the write rows: `RwLock<HashMap>` write lock, lookup, overwrite. The
/// synchronised map a program would otherwise share with readers, and the reference of
/// the read-throughput rows too.
pub fn rwlock_set(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let map = RwLock::new(keys.map(|_| [0; VALUE]));
    write_row(
        ctx,
        &keys,
        |p| {
            let mut map = map.write().map_err(|_| "lock poisoned")?;
            *map.get_mut(&keys.names[p]).ok_or("key missing")? = keys.values[p];
            Ok(1)
        },
        |ops| ops,
        |p| {
            Ok(map
                .read()
                .map_err(|_| "lock poisoned")?
                .get(&keys.names[p])
                .copied())
        },
    )
}

/// What `ops` consecutive versions after `v0` add up to.
fn versions_after(v0: u64, ops: u64) -> u64 {
    let triangle = if ops % 2 == 0 {
        (ops / 2).wrapping_mul(ops.wrapping_add(1))
    } else {
        ops.wrapping_mul(ops.wrapping_add(1) / 2)
    };
    v0.wrapping_mul(ops).wrapping_add(triangle)
}

/// `SharedState::set` of a 64-byte value by key.
pub fn set(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let state = keys.table(|_| [0; VALUE])?;
    let v0 = state.version();
    write_row(
        ctx,
        &keys,
        |p| Ok(state.set(&keys.names[p], &keys.values[p])?),
        |ops| versions_after(v0, ops),
        |p| Ok(state.get_pod::<Value>(&keys.names[p])?.map(|g| g.value)),
    )
}

/// `Entry::set` of a 64-byte value through handles resolved before the row.
pub fn entry_set(ctx: &Ctx) -> Result<Measured> {
    let keys = Keys::new();
    let state = keys.table(|_| [0; VALUE])?;
    let entries = keys
        .names
        .iter()
        .map(|k| state.entry(k))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let v0 = state.version();
    write_row(
        ctx,
        &keys,
        |p| Ok(entries[p].set(&keys.values[p])?),
        |ops| versions_after(v0, ops),
        |p| Ok(state.get_pod::<Value>(&keys.names[p])?.map(|g| g.value)),
    )
}

/// A table the read-throughput rows share between their reader and their writer.
pub trait ReadTable: Clone + Send + 'static {
    /// A table holding the [`READ_KEYS`] keys at generation 0.
    fn new() -> Result<Self>;
    /// Key `k`'s value, by name.
    fn read(&self, k: usize) -> Result<Value>;
    /// Overwrites key `k`'s value, by name.
    fn write(&self, k: usize, v: &Value) -> Result<()>;
}

/// Generation `gen` of key `k` in the read-throughput rows: word `j` is
/// `gen << 16 | k << 8 | j`.
fn generation(k: usize, gen: u64) -> Value {
    let mut v = [0; VALUE];
    for (j, w) in v.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(gen << 16 | (k as u64) << 8 | j as u64).to_le_bytes());
    }
    v
}

/// Checks that `v`, read from key `k`, is one whole generation of `k` no older than
/// `last`, the newest read before; records its generation there.
#[inline(always)]
fn check_generation(k: usize, v: &Value, last: &mut u64) -> Result<()> {
    let w0 = word(v, 0);
    let whole = (1..VALUE / 8).all(|j| word(v, j) == w0 | j as u64);
    let gen = w0 >> 16;
    if !whole || w0 & 0xffff != (k as u64) << 8 || gen < *last {
        return Err(format!(
            "key {k} read as {:x?} after generation {last}: torn, another key's, or older",
            v.chunks_exact(8).map(|w| w[0]).collect::<Vec<_>>()
        )
        .into());
    }
    *last = gen;
    Ok(())
}

/// The names of the read-throughput rows' keys.
fn read_names() -> Arc<[String]> {
    (0..READ_KEYS).map(key_name).collect()
}

/// [`SharedState`] in the read-throughput rows.
#[derive(Clone)]
pub struct StateReads {
    state: SharedState,
    names: Arc<[String]>,
}

impl ReadTable for StateReads {
    fn new() -> Result<Self> {
        let state = SharedState::new(StateOptions {
            capacity: READ_KEYS,
            max_key_len: MAX_KEY,
            max_value_len: VALUE,
        });
        let names = read_names();
        for (k, name) in names.iter().enumerate() {
            state.set(name, &generation(k, 0))?;
        }
        Ok(StateReads { state, names })
    }

    #[inline(always)]
    fn read(&self, k: usize) -> Result<Value> {
        Ok(self
            .state
            .get_pod::<Value>(&self.names[k])?
            .ok_or("key missing")?
            .value)
    }

    #[inline(always)]
    fn write(&self, k: usize, v: &Value) -> Result<()> {
        self.state.set(&self.names[k], v)?;
        Ok(())
    }
}

/// `RwLock<HashMap>` in the read-throughput rows: the reader read-locks, the writer
/// write-locks.
#[derive(Clone)]
pub struct RwLockReads {
    map: Arc<RwLock<HashMap<String, Value>>>,
    names: Arc<[String]>,
}

impl ReadTable for RwLockReads {
    fn new() -> Result<Self> {
        let names = read_names();
        let map = names
            .iter()
            .enumerate()
            .map(|(k, name)| (name.clone(), generation(k, 0)))
            .collect();
        Ok(RwLockReads {
            map: Arc::new(RwLock::new(map)),
            names,
        })
    }

    #[inline(always)]
    fn read(&self, k: usize) -> Result<Value> {
        Ok(*self
            .map
            .read()
            .map_err(|_| "lock poisoned")?
            .get(&self.names[k])
            .ok_or("key missing")?)
    }

    #[inline(always)]
    fn write(&self, k: usize, v: &Value) -> Result<()> {
        *self
            .map
            .write()
            .map_err(|_| "lock poisoned")?
            .get_mut(&self.names[k])
            .ok_or("key missing")? = *v;
        Ok(())
    }
}

/// The writer of a read-throughput run: rewrites every key, generation after
/// generation, publishing each finished generation in `done`, until `stop`.
fn rewrite<T: ReadTable>(table: &T, done: &AtomicU64, stop: &AtomicBool) -> Result<()> {
    for gen in 1.. {
        for k in 0..READ_KEYS {
            table.write(k, &generation(k, gen))?;
        }
        done.store(gen, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(())
}

/// The reader of a read-throughput run: `warm` checked reads round-robin, then at least
/// `count` timed ones, and more until the writer has finished a generation since the
/// timing began (a window without writes would measure uncontended reads); returns
/// `(reads timed, nanoseconds, writes finished meanwhile)`.
fn read_beside<T: ReadTable>(
    table: &T,
    warm: u64,
    count: u64,
    done: &AtomicU64,
) -> Result<(u64, u64, u64)> {
    let mut last = [0u64; READ_KEYS];
    let mut k = 0;
    let mut read = |k: usize| -> Result<()> {
        let v = table.read(k)?;
        check_generation(k, &v, &mut last[k])
    };
    for _ in 0..warm {
        read(k)?;
        k = (k + 1) % READ_KEYS;
    }
    let start = (now_ns(), done.load(Ordering::Relaxed));
    let mut reads = 0;
    while reads < count || done.load(Ordering::Relaxed) == start.1 {
        read(k)?;
        k = (k + 1) % READ_KEYS;
        reads += 1;
    }
    let end = (now_ns(), done.load(Ordering::Relaxed));
    let writes = (end.1 - start.1) * READ_KEYS as u64;
    Ok((reads, end.0.saturating_sub(start.0), writes))
}

/// A read-throughput row: the plan's runs, each on a fresh table with a fresh writer on
/// the other CPU, which has finished a generation before the reader starts. The row
/// also reports the writer's rate (the median run's): readers that starved the writer
/// would look fast.
pub fn reads<T: ReadTable>(ctx: &Ctx) -> Result<Measured> {
    let plan = ctx.plan;
    let mut runs = Vec::new();
    let mut writer_rates = Vec::new();
    let mut futex = 0;
    let mut pinned = ctx.main_pinned;
    for _ in 0..plan.trials {
        let table = T::new()?;
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let futex_before = futex_syscalls();
        let writer = {
            let (done, stop) = (done.clone(), stop.clone());
            ctx.spawn_peer(table.clone(), move |t| rewrite(t, &done, &stop))
        };
        while done.load(Ordering::Relaxed) == 0 {
            spin_loop();
        }
        let (reads, nanos, writes) =
            ctx.or_abort(read_beside(&table, plan.warm, plan.count, &done));
        stop.store(true, Ordering::Relaxed);
        let ((), writer_pinned) = writer.join();
        futex += futex_syscalls() - futex_before;
        pinned &= writer_pinned;
        runs.push((reads, nanos));
        writer_rates.push(writes as f64 * 1e9 / nanos.max(1) as f64);
    }
    writer_rates.sort_by(f64::total_cmp);
    let writer_rate = writer_rates.get(writer_rates.len() / 2).copied();
    let measured = Measured::throughput(runs, futex, pinned);
    Ok(match writer_rate {
        Some(rate) => measured.with_peer_rate(rate),
        None => measured,
    })
}

/// One end of a wake-up path: it signals the other end and sleeps until signalled.
pub trait Wake: Send + Sized + 'static {
    /// Two connected ends in this process: the measuring end first.
    fn pair() -> Result<(Self, Self)>;
    /// Creates the segment `name`; the measuring end.
    fn create(name: &str) -> Result<Self>;
    /// Opens the segment `name`; the other end.
    fn open(name: &str) -> Result<Self>;
    /// Publishes `seq` with `stamp` and wakes the other end.
    fn signal(&mut self, seq: u64, stamp: u64) -> Result<()>;
    /// Sleeps until the other end has signalled `seq`; returns its stamp.
    fn await_signal(&mut self, seq: u64) -> Result<u64>;
}

/// A histogram of nanoseconds, 1 ns to 100 s.
fn wake_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// The measuring end: `warm + count` wakes by signals `1, 3, 5, ...`, the last `count`
/// recorded (stamp to woken, in nanoseconds), each answered with the next even number.
pub fn woken<W: Wake>(end: &mut W, warm: u64, count: u64) -> Result<Histogram<u64>> {
    let mut hist = wake_histogram();
    for i in 0..warm + count {
        let stamp = end.await_signal(2 * i + 1)?;
        let dt = now_ns().saturating_sub(stamp);
        if i >= warm {
            hist.saturating_record(dt);
        }
        end.signal(2 * i + 2, 0)?;
    }
    Ok(hist)
}

/// The stamping end: `total` signals `1, 3, 5, ...`, each stamped just before it is
/// sent, each awaiting its answer, and each sent [`SETTLE_NS`] after that answer.
pub fn waker<W: Wake>(end: &mut W, total: u64) -> Result<()> {
    for i in 0..total {
        let settled = now_ns() + SETTLE_NS;
        while now_ns() < settled {
            spin_loop();
        }
        end.signal(2 * i + 1, now_ns())?;
        end.await_signal(2 * i + 2)?;
    }
    Ok(())
}

/// The error of an end that found `got` where `seq` or the one before it was due.
fn out_of_turn(seq: u64, got: u64) -> crate::Error {
    format!("woken for signal {got} while awaiting {seq}").into()
}

/// A futex word and a stamp, alone in a 128-byte line.
#[repr(C, align(128))]
#[derive(Default)]
pub struct WakeLine {
    word: AtomicU32,
    stamp: AtomicU64,
}

/// One [`WakeLine`] per direction.
#[repr(C)]
#[derive(Default)]
pub struct WakeLines([WakeLine; 2]);

// SAFETY: atomics only, valid for any bytes; aligned to 128.
unsafe impl AtomicOnly for WakeLines {}

/// The reference: a raw futex word per direction, the stamp beside it. Signal: store
/// the stamp, store the sequence number's low 32 bits, `notify`. Await: `wait` on the
/// word until the number arrives.
pub struct FutexWake {
    mem: Shared<WakeLines>,
    side: usize,
    /// The last number received.
    seen: u32,
}

impl FutexWake {
    fn new(mem: Shared<WakeLines>, side: usize) -> FutexWake {
        FutexWake { mem, side, seen: 0 }
    }
}

impl Wake for FutexWake {
    fn pair() -> Result<(Self, Self)> {
        let (a, b) = Shared::heap_pair();
        Ok((FutexWake::new(a, 0), FutexWake::new(b, 1)))
    }

    fn create(name: &str) -> Result<Self> {
        Ok(FutexWake::new(Shared::create(name)?, 0))
    }

    fn open(name: &str) -> Result<Self> {
        Ok(FutexWake::new(Shared::open(name)?, 1))
    }

    #[inline]
    fn signal(&mut self, seq: u64, stamp: u64) -> Result<()> {
        let line = &self.mem.0[self.side];
        line.stamp.store(stamp, Ordering::Relaxed);
        line.word.store(seq as u32, Ordering::Release);
        notify(&line.word, 1);
        Ok(())
    }

    #[inline]
    fn await_signal(&mut self, seq: u64) -> Result<u64> {
        let line = &self.mem.0[1 - self.side];
        loop {
            let v = line.word.load(Ordering::Acquire);
            if v == seq as u32 {
                self.seen = v;
                return Ok(line.stamp.load(Ordering::Relaxed));
            }
            if v != self.seen {
                return Err(out_of_turn(seq, v.into()));
            }
            wait(&line.word, v, None);
        }
    }
}

/// The row: a table of two keys, `ping` (measuring end's) and `pong`. Signal: set one's
/// own key to `[seq, stamp, 0...]`. Await: `wait_for_change` from one's own last write,
/// then read the other key.
pub struct StateWake {
    state: SharedState,
    mine: &'static str,
    theirs: &'static str,
    /// The table version to wait past: one's own last write's.
    since: u64,
    /// The last number received.
    seen: u64,
}

/// The wake-up rows' table.
const WAKE_TABLE: StateOptions = StateOptions {
    capacity: 2,
    max_key_len: 8,
    max_value_len: VALUE,
};

impl StateWake {
    /// The measuring end (awaits `ping`) if `measuring`, else the other.
    fn new(state: SharedState, measuring: bool) -> StateWake {
        let (mine, theirs) = if measuring {
            ("pong", "ping")
        } else {
            ("ping", "pong")
        };
        StateWake {
            since: state.version(),
            state,
            mine,
            theirs,
            seen: 0,
        }
    }
}

impl Wake for StateWake {
    fn pair() -> Result<(Self, Self)> {
        let state = SharedState::new(WAKE_TABLE);
        Ok((
            StateWake::new(state.clone(), true),
            StateWake::new(state, false),
        ))
    }

    fn create(name: &str) -> Result<Self> {
        Ok(StateWake::new(SharedState::create(name, WAKE_TABLE)?, true))
    }

    fn open(name: &str) -> Result<Self> {
        Ok(StateWake::new(SharedState::open(name)?, false))
    }

    #[inline]
    fn signal(&mut self, seq: u64, stamp: u64) -> Result<()> {
        let mut v = [0u64; VALUE / 8];
        v[0] = seq;
        v[1] = stamp;
        self.since = self.state.set_pod(self.mine, &v)?;
        Ok(())
    }

    #[inline]
    fn await_signal(&mut self, seq: u64) -> Result<u64> {
        loop {
            self.since = self.state.wait_for_change(self.since, HANG_GUARD)?;
            let got = self.state.get_pod::<[u64; VALUE / 8]>(self.theirs)?;
            let (got, stamp) = got.map_or((0, 0), |g| (g.value[0], g.value[1]));
            if got == seq {
                self.seen = got;
                return Ok(stamp);
            }
            if got != self.seen {
                return Err(out_of_turn(seq, got));
            }
        }
    }
}

/// A wake-up row between the main thread (woken, measuring) and a peer thread.
pub fn wake_threads<W: Wake>(ctx: &Ctx) -> Result<Measured> {
    let (mut mine, theirs) = W::pair()?;
    let plan = ctx.plan;
    let futex_before = futex_syscalls();
    let peer = ctx.spawn_peer(theirs, move |end| waker(end, plan.total()));
    let hist = ctx.or_abort(woken(&mut mine, plan.warm, plan.count));
    let ((), peer_pinned) = peer.join();
    Ok(Measured::latency(
        hist,
        futex_syscalls() - futex_before,
        ctx.main_pinned && peer_pinned,
    ))
}

/// A wake-up row between this process (woken, measuring) and a child process.
pub fn wake_processes<W: Wake>(ctx: &Ctx) -> Result<Measured> {
    let name = ctx.segment_name(0);
    let mut mine = W::create(&name)?;
    let child = ctx.spawn_child(&name, Stdio::null())?;
    let futex_before = futex_syscalls();
    let hist = ctx.or_abort(woken(&mut mine, ctx.plan.warm, ctx.plan.count));
    let futex = futex_syscalls() - futex_before;
    let report = child.finish()?;
    drop(mine);
    Ok(Measured::latency(
        hist,
        futex + report.futex,
        ctx.main_pinned && report.pinned,
    ))
}

/// The child side of [`wake_processes`].
pub fn wake_guest<W: Wake>(args: &ChildArgs) -> Result<Vec<u64>> {
    let mut end = W::open(&args.name)?;
    or_exit(args, waker(&mut end, args.plan().total()));
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Numbers, Plan};
    use crate::pin::Cpus;
    use crate::scenarios::{Scenario, Size};

    /// Runs `run` as a row of `size` with a small plan: 20 warm and 200 measured batches,
    /// wakes or reads (2 runs of 2560 reads).
    fn small(size: Size, run: fn(&Ctx) -> Result<Measured>) -> Measured {
        crate::within(Duration::from_secs(60), move || {
            let scenario = Scenario {
                name: "state/test/threads",
                about: "",
                reference: None,
                counts_futex: true,
                size,
                run,
                child: None,
                recheck_of: None,
                opt_in: None,
            };
            let plan = match size {
                Size::Reads => Plan {
                    warm: 256,
                    count: 2560,
                    frame: 0,
                    trials: 2,
                },
                _ => Plan {
                    warm: 20,
                    count: 200,
                    frame: 0,
                    trials: 1,
                },
            };
            let cpus = Cpus {
                pair: None,
                problem: String::new(),
                all: Vec::new(),
            };
            let ctx = Ctx {
                scenario: &scenario,
                index: 0,
                plan,
                cpus: &cpus,
                main_pinned: false,
            };
            run(&ctx).unwrap()
        })
    }

    /// Samples of a per-operation or wake-up row.
    fn samples(m: &Measured) -> u64 {
        match &m.numbers {
            Numbers::PerOp { hist, .. } | Numbers::Latency(hist) => hist.len(),
            Numbers::Throughput(runs) => runs.iter().map(|r| r.0).sum(),
        }
    }

    #[test]
    fn every_uncontended_row_checks_out() {
        let rows: [fn(&Ctx) -> Result<Measured>; 11] = [
            hashmap_get,
            rwlock_get,
            get_pod,
            get_into,
            plain_copy,
            entry_get_pod,
            plain_copy_hot,
            entry_get_pod_hot,
            rwlock_set,
            set,
            entry_set,
        ];
        for run in rows {
            let m = small(Size::Ops, run);
            assert_eq!(samples(&m), 200);
            // Nobody sleeps on these tables, so a write's notify makes no syscall.
            assert_eq!(m.futex, 0);
        }
    }

    #[test]
    fn read_throughput_rows_check_out() {
        for run in [reads::<StateReads>, reads::<RwLockReads>] {
            let m = small(Size::Reads, run);
            assert!(samples(&m) >= 2 * 2560);
            assert!(m.peer_rate.is_some_and(|r| r > 0.0));
        }
    }

    #[test]
    fn wake_rows_check_out() {
        for run in [wake_threads::<FutexWake>, wake_threads::<StateWake>] {
            let m = small(Size::Wakes, run);
            assert_eq!(samples(&m), 200);
        }
    }

    #[test]
    fn named_wake_paths_connect_through_their_segment() {
        crate::within(Duration::from_secs(60), || {
            fn over<W: Wake>(name: &str) -> u64 {
                let mut mine = W::create(name).unwrap();
                let mut theirs = W::open(name).unwrap();
                let peer = std::thread::spawn(move || waker(&mut theirs, 60).unwrap());
                let hist = woken(&mut mine, 10, 50).unwrap();
                peer.join().unwrap();
                hist.len()
            }
            let name = format!("ringport-bench-test-wake-{}", std::process::id());
            assert_eq!(over::<FutexWake>(&format!("{name}-futex")), 50);
            assert_eq!(over::<StateWake>(&format!("{name}-state")), 50);
        });
    }

    #[test]
    fn expected_checksum_matches_reading_in_order() {
        let keys = Keys::new();
        let mut sorted = keys.order.clone();
        sorted.sort_unstable();
        assert!(sorted.iter().copied().eq(0..KEYS), "a permutation");
        for ops in [0, 1, 5, KEYS as u64, 3 * KEYS as u64 + 17] {
            let direct = (0..ops).fold(0u64, |s, i| {
                s.wrapping_add(fingerprint(&keys.values[i as usize % KEYS]))
            });
            assert_eq!(keys.expected(ops), direct, "{ops} reads");
        }
    }

    #[test]
    fn version_sums_match_counting() {
        for (v0, ops) in [(0, 0), (0, 1), (5, 4), (1024, 7), (u64::MAX - 3, 9)] {
            let direct = (1..=ops).fold(0u64, |s, i| s.wrapping_add(v0.wrapping_add(i)));
            assert_eq!(versions_after(v0, ops), direct, "{v0} + {ops}");
        }
    }

    #[test]
    fn a_wrong_read_fails_the_row() {
        let keys = Keys::new();
        let mut ops = 0u64;
        // One read in the whole row returns another key's value.
        let sum = (0..3 * KEYS).fold(0u64, |s, p| {
            ops += 1;
            let p = if p == 100 { 101 } else { p % KEYS };
            s.wrapping_add(fingerprint(&keys.values[p]))
        });
        assert_ne!(sum, keys.expected(ops));
    }

    #[test]
    fn torn_foreign_or_older_values_are_caught() {
        let mut last = 0;
        check_generation(3, &generation(3, 7), &mut last).unwrap();
        assert_eq!(last, 7);
        check_generation(3, &generation(3, 7), &mut last).unwrap();
        assert!(check_generation(3, &generation(3, 6), &mut last).is_err());
        assert!(check_generation(3, &generation(4, 8), &mut last).is_err());
        let mut torn = generation(3, 9);
        torn[VALUE - 8..].copy_from_slice(&generation(3, 8)[VALUE - 8..]);
        assert!(check_generation(3, &torn, &mut last).is_err());
        assert_eq!(last, 7);
    }

    #[test]
    fn an_out_of_turn_wake_fails_the_row() {
        fn skipped<W: Wake>() -> String {
            let (mut mine, mut theirs) = W::pair().unwrap();
            // Signal 3 arrives where 1 is due: a lost or repeated wake.
            theirs.signal(3, 0).unwrap();
            woken(&mut mine, 0, 5).unwrap_err().to_string()
        }
        for e in [skipped::<FutexWake>(), skipped::<StateWake>()] {
            assert!(e.contains("signal 3 while awaiting 1"), "{e}");
        }
    }
}
