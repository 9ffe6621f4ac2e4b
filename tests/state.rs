//! `SharedState` in one process: the API's semantics on heap and segment tables, entry
//! handles, snapshots and `wait_for_change`, a multi-threaded stress, and the table's
//! behaviour when its shared memory is written by someone else: a lock held by a live or a
//! dead process, a stuck write mark, damaged lengths. Those tests poke the segment's words
//! directly, at the offsets ARCHITECTURE.md documents, to play the other process.
//!
//! Sizes: `RINGPORT_STRESS` (default 2 000) writes per writer thread in the stress test,
//! and the churn and hostile-peer rounds scale with it.

mod common;

use common::{env_count, watchdog, Payloads};
use ringport::process::ProcessId;
use ringport::segment::{Segment, SegmentError, PARAMS};
use ringport::state::{SharedState, StateError, StateOptions, Versioned, DEFAULT_PATIENCE};
use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

/// A hang detector for blocking calls and thread joins, far above any plausible time.
const HANG: Duration = Duration::from_secs(30);
/// Patience for tests that expect `Contended`: short, so they stay fast.
const SHORT: Duration = Duration::from_millis(20);

const KIND_STATE: u32 = u32::from_le_bytes(*b"STAT");

fn stress() -> u64 {
    env_count("RINGPORT_STRESS", 2_000)
}

/// A table name no other test, and no concurrent run of this binary, uses.
fn unique(test: &str) -> String {
    format!("rp-state-{}-{test}", std::process::id())
}

fn opts(capacity: usize, max_key_len: usize, max_value_len: usize) -> StateOptions {
    StateOptions {
        capacity,
        max_key_len,
        max_value_len,
    }
}

fn value(state: &SharedState, key: &str) -> Option<Vec<u8>> {
    state.get(key).unwrap().map(|v| v.value)
}

/// splitmix64: a reproducible stream of test choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------
// The documented layout, for playing a hostile or crashed peer.
// ---------------------------------------------------------------------------------------

/// Bytes of the table header in front of the slots.
const HEADER_BYTES: usize = 384;
const MEMBERS_LOCK: usize = 128;
const MEMBERS_LEN: usize = 136;
const MAX_PROBE: usize = 144;
/// Slot words.
const SEQ: usize = 0;
const LOCK: usize = 1;
const KEY_META: usize = 3;
const KEY: usize = 4;
/// Words of a copy.
const META: usize = 0;
const VERSION: usize = 1;
const VALUE: usize = 2;
const WRITING: u64 = 1;
const LIVE: u64 = 1 << 63;

/// The table's hash, copied from `src/state/seqlock.rs`: a test that needs two keys in
/// the same home slot picks them with it (and `Raw::find` confirms where they landed).
fn hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        let rest = &key[i * 8..];
        let n = rest.len().min(8);
        w[..n].copy_from_slice(&rest[..n]);
        u64::from_le_bytes(w)
    };
    let mut h = (key.len() as u64).wrapping_mul(K);
    for i in 0..key.len().div_ceil(8) {
        h = (h ^ word(i)).wrapping_mul(K).rotate_left(31);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A second mapping of a named table, to read and write its words as another process
/// would.
struct Raw {
    seg: Segment,
    slots: usize,
    slot_words: usize,
    key_words: usize,
    value_words: usize,
}

impl Raw {
    fn open(state: &SharedState) -> Raw {
        let name = state.segment().expect("a named table").name();
        let seg = Segment::open(name, KIND_STATE).unwrap();
        let key_words = state.max_key_len().div_ceil(8);
        let value_words = state.max_value_len().div_ceil(8);
        let slot_words = (KEY + key_words + 2 * (VALUE + value_words)).next_multiple_of(8);
        let slots = (state.capacity() * 2).next_power_of_two();
        assert_eq!(
            seg.params()[..3],
            [
                state.capacity() as u64,
                state.max_key_len() as u64,
                state.max_value_len() as u64
            ]
        );
        assert_eq!(
            seg.payload_len(),
            HEADER_BYTES + slots * slot_words * 8,
            "the payload is laid out as documented"
        );
        Raw {
            seg,
            slots,
            slot_words,
            key_words,
            value_words,
        }
    }

    /// The word at byte `offset` of the payload.
    fn at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.seg.payload_len());
        // SAFETY: the offset is 8-aligned and inside the payload (checked above), which
        // is 128-aligned and mapped for as long as `self.seg` lives; every access to it,
        // here and in the table, is atomic.
        unsafe { AtomicU64::from_ptr(self.seg.payload().as_ptr().add(offset).cast()) }
    }

    fn slot(&self, index: usize, word: usize) -> &AtomicU64 {
        assert!(index < self.slots && word < self.slot_words);
        self.at(HEADER_BYTES + (index * self.slot_words + word) * 8)
    }

    /// First word of copy 0 or 1.
    fn copy(&self, copy: usize) -> usize {
        KEY + self.key_words + copy * (VALUE + self.value_words)
    }

    fn published(&self, index: usize) -> usize {
        self.copy(((self.slot(index, SEQ).load(Ordering::Acquire) >> 1) & 1) as usize)
    }

    fn unpublished(&self, index: usize) -> usize {
        self.copy(1 - ((self.slot(index, SEQ).load(Ordering::Acquire) >> 1) & 1) as usize)
    }

    fn home(&self, key: &str) -> usize {
        hash(key.as_bytes()) as usize & (self.slots - 1)
    }

    /// The slot whose published copy holds `key`, if any.
    fn find(&self, key: &str) -> Option<usize> {
        let k = key.as_bytes();
        (0..self.slots).find(|&i| {
            let meta = self
                .slot(i, self.published(i) + META)
                .load(Ordering::Acquire);
            let key_meta = self.slot(i, KEY_META).load(Ordering::Acquire);
            meta & LIVE != 0
                && key_meta == (hash(k) & 0xffff_ffff_0000_0000) | k.len() as u64
                && k.chunks(8).enumerate().all(|(w, chunk)| {
                    let mut b = [0u8; 8];
                    b[..chunk.len()].copy_from_slice(chunk);
                    self.slot(i, KEY + w).load(Ordering::Acquire) == u64::from_le_bytes(b)
                })
        })
    }
}

/// The lock token of `id`: pid in the low 22 bits, start time above.
fn token(id: ProcessId) -> u64 {
    (id.start_time << 22) | u64::from(id.pid)
}

/// The token of a process that has exited and been reaped.
fn dead_token() -> u64 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    // A start time no later process with this pid can have: dead even if the pid is
    // reused meanwhile.
    token(ProcessId { pid, start_time: 1 })
}

/// Another process that lives until dropped (or killed by the test).
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Sleeper {
        Sleeper(Command::new("sleep").arg("60").spawn().unwrap())
    }

    fn token(&self) -> u64 {
        token(ProcessId::of(self.0.id()).expect("the sleeper runs"))
    }

    fn kill_and_reap(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Basic semantics.
// ---------------------------------------------------------------------------------------

#[test]
fn set_get_and_versions_strictly_increase() {
    let state = SharedState::new(StateOptions::default());
    assert_eq!(state.version(), 0);
    assert_eq!(state.get("a").unwrap(), None);
    let mut last = 0;
    for round in 0..5u8 {
        for key in ["a", "b", "c"] {
            let v = state.set(key, &[round; 3]).unwrap();
            assert!(v > last, "{v} after {last}");
            assert_eq!(state.version(), v);
            last = v;
            let got = state.get(key).unwrap().unwrap();
            assert_eq!(
                got,
                Versioned {
                    value: vec![round; 3],
                    version: v
                }
            );
        }
    }
    assert_eq!(last, 15, "one table-wide counter, one step per write");
    assert_eq!(state.len(), 3);
    assert!(!state.is_empty());
}

#[test]
fn get_into_needs_a_buffer_as_long_as_the_value() {
    let state = SharedState::new(StateOptions::default());
    let mut buf = [0u8; 5];
    assert_eq!(state.get_into("k", &mut buf).unwrap(), None);
    let v = state.set("k", b"hello").unwrap();
    assert_eq!(
        state.get_into("k", &mut buf).unwrap(),
        Some(Versioned {
            value: 5,
            version: v
        })
    );
    assert_eq!(&buf, b"hello");
    let mut big = [0xaa; 9];
    assert_eq!(state.get_into("k", &mut big).unwrap().unwrap().value, 5);
    assert_eq!(
        &big, b"hello\xaa\xaa\xaa\xaa",
        "bytes past the value are untouched"
    );
    let mut small = [0u8; 4];
    assert_eq!(
        state.get_into("k", &mut small),
        Err(StateError::BufferTooSmall {
            len: 5,
            capacity: 4
        })
    );
    assert_eq!(
        state.entry("k").unwrap().get_into(&mut small),
        Err(StateError::BufferTooSmall {
            len: 5,
            capacity: 4
        })
    );
    state.set("empty", b"").unwrap();
    assert_eq!(state.get_into("empty", &mut []).unwrap().unwrap().value, 0);
}

#[test]
fn get_pod_checks_the_size() {
    let state = SharedState::new(StateOptions::default());
    assert_eq!(state.get_pod::<u64>("n").unwrap(), None);
    let v = state.set_pod("n", &0x0102_0304_0506_0708u64).unwrap();
    assert_eq!(
        state.get_pod::<u64>("n").unwrap(),
        Some(Versioned {
            value: 0x0102_0304_0506_0708,
            version: v
        })
    );
    assert_eq!(
        state.get("n").unwrap().unwrap().value,
        0x0102_0304_0506_0708u64.to_ne_bytes()
    );
    assert_eq!(
        state.get_pod::<u32>("n"),
        Err(StateError::WrongSize {
            expected: 4,
            found: 8
        })
    );
    assert_eq!(
        state.get_pod::<[u64; 2]>("n"),
        Err(StateError::WrongSize {
            expected: 16,
            found: 8
        })
    );
    state.set_pod("pair", &[1.5f32, -2.0]).unwrap();
    assert_eq!(
        state.get_pod::<[f32; 2]>("pair").unwrap().unwrap().value,
        [1.5, -2.0]
    );
    let e = state.entry("pair").unwrap();
    assert_eq!(
        e.get_pod::<u8>(),
        Err(StateError::WrongSize {
            expected: 1,
            found: 8
        })
    );
}

#[test]
fn compare_and_set_creates_if_absent_and_reports_what_it_found() {
    let state = SharedState::new(StateOptions::default());
    assert_eq!(
        state.compare_and_set("k", 7, b"x"),
        Err(StateError::VersionMismatch {
            expected: 7,
            found: 0
        })
    );
    assert_eq!(state.version(), 0, "a failed write takes no version");
    let v1 = state.compare_and_set("k", 0, b"first").unwrap();
    assert_eq!(
        state.compare_and_set("k", 0, b"again"),
        Err(StateError::VersionMismatch {
            expected: 0,
            found: v1
        })
    );
    assert_eq!(
        state.compare_and_set("k", v1 + 100, b"stale"),
        Err(StateError::VersionMismatch {
            expected: v1 + 100,
            found: v1
        })
    );
    assert_eq!(state.version(), v1);
    let v2 = state.compare_and_set("k", v1, b"second").unwrap();
    assert!(v2 > v1);
    assert_eq!(
        state.compare_and_set("k", v1, b"lost"),
        Err(StateError::VersionMismatch {
            expected: v1,
            found: v2
        })
    );
    assert_eq!(value(&state, "k").unwrap(), b"second");
    // Once removed, the key is absent again: only 0 matches.
    state.remove("k").unwrap();
    assert_eq!(
        state.compare_and_set("k", v2, b"x"),
        Err(StateError::VersionMismatch {
            expected: v2,
            found: 0
        })
    );
    let v3 = state.compare_and_set("k", 0, b"reborn").unwrap();
    assert_eq!(state.get("k").unwrap().unwrap().version, v3);
}

#[test]
fn compare_and_set_counter_loses_no_increment() {
    let state = SharedState::new(StateOptions::default());
    state.set_pod("counter", &0u64).unwrap();
    let per_thread = stress() / 2;
    let threads = 3;
    let start = Arc::new(Barrier::new(threads as usize));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (state, start) = (state.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut conflicts = 0u64;
                for i in 0..per_thread {
                    loop {
                        let cur = state.get_pod::<u64>("counter").unwrap().unwrap();
                        if i % 4 == 0 {
                            // Invites another thread in between the read and the CAS.
                            thread::yield_now();
                        }
                        match state.compare_and_set(
                            "counter",
                            cur.version,
                            &(cur.value + 1).to_ne_bytes(),
                        ) {
                            Ok(v) => {
                                assert!(v > cur.version);
                                break;
                            }
                            Err(StateError::VersionMismatch { expected, found }) => {
                                assert_eq!(expected, cur.version);
                                assert!(found > expected, "versions only grow");
                                conflicts += 1;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let (conflicts, _) = watchdog("cas counter", HANG, move || {
        workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
    });
    let total = state.get_pod::<u64>("counter").unwrap().unwrap();
    assert_eq!(total.value, per_thread * threads);
    assert_eq!(
        total.version,
        1 + per_thread * threads,
        "only successful CAS write"
    );
    eprintln!(
        "{} increments, {conflicts} lost races retried",
        per_thread * threads
    );
}

#[test]
fn remove_takes_a_version_and_the_key_can_return() {
    let state = SharedState::new(StateOptions::default());
    assert_eq!(state.remove("k").unwrap(), None);
    assert_eq!(state.version(), 0, "removing an absent key writes nothing");
    let v1 = state.set("k", b"1").unwrap();
    state.set("other", b"o").unwrap();
    assert_eq!(state.len(), 2);
    let vr = state.remove("k").unwrap().unwrap();
    assert!(vr > v1);
    assert_eq!(state.version(), vr);
    assert_eq!(state.len(), 1);
    assert_eq!(state.get("k").unwrap(), None);
    assert_eq!(state.remove("k").unwrap(), None);
    let v2 = state.set("k", b"2").unwrap();
    assert!(v2 > vr);
    assert_eq!(
        state.get("k").unwrap().unwrap(),
        Versioned {
            value: b"2".to_vec(),
            version: v2
        }
    );
    assert_eq!(value(&state, "other").unwrap(), b"o");
    assert_eq!(state.len(), 2);
}

#[test]
fn key_and_value_limits_are_inclusive() {
    let state = SharedState::new(opts(4, 8, 16));
    let key8 = "12345678";
    let key9 = "123456789";
    state.set(key8, &[1; 16]).unwrap();
    assert_eq!(value(&state, key8).unwrap(), [1; 16]);
    let too_long = Err(StateError::KeyTooLong { len: 9, max: 8 });
    assert_eq!(state.set(key9, b"v").map(drop), too_long);
    assert_eq!(state.get(key9).map(drop), too_long);
    assert_eq!(state.get_into(key9, &mut [0; 4]).map(drop), too_long);
    assert_eq!(state.get_pod::<u8>(key9).map(drop), too_long);
    assert_eq!(state.compare_and_set(key9, 0, b"v").map(drop), too_long);
    assert_eq!(state.remove(key9).map(drop), too_long);
    assert_eq!(state.entry(key9).map(drop), too_long);
    let too_large = Err(StateError::ValueTooLarge { len: 17, max: 16 });
    assert_eq!(state.set(key8, &[2; 17]), too_large);
    assert_eq!(state.set("new", &[2; 17]), too_large);
    assert_eq!(state.set_pod(key8, &[2u8; 17]), too_large);
    assert_eq!(state.compare_and_set(key8, 1, &[2; 17]), too_large);
    assert_eq!(state.entry(key8).unwrap().set(&[2; 17]), too_large);
    assert_eq!(
        state.entry("new").unwrap().set_pod(&[0u64; 3]),
        Err(StateError::ValueTooLarge { len: 24, max: 16 })
    );
    assert_eq!(
        value(&state, key8).unwrap(),
        [1; 16],
        "a rejected write changes nothing"
    );
    assert_eq!(state.get("new").unwrap(), None);
    assert_eq!(state.version(), 1);
    assert_eq!(
        (state.capacity(), state.max_key_len(), state.max_value_len()),
        (4, 8, 16)
    );
}

#[test]
fn table_full_at_capacity_and_removal_frees_room() {
    let state = SharedState::new(opts(4, 8, 8));
    for k in ["a", "b", "c", "d"] {
        state.set(k, k.as_bytes()).unwrap();
    }
    assert_eq!(state.len(), 4);
    assert_eq!(
        state.set("e", b"e"),
        Err(StateError::TableFull { capacity: 4 })
    );
    assert_eq!(
        state.compare_and_set("e", 0, b"e"),
        Err(StateError::TableFull { capacity: 4 })
    );
    assert_eq!(
        state.entry("e").unwrap().set(b"e"),
        Err(StateError::TableFull { capacity: 4 })
    );
    // Existing keys still update in a full table.
    state.set("a", b"A").unwrap();
    assert_eq!(state.len(), 4);
    state.remove("c").unwrap();
    state.set("e", b"e").unwrap();
    assert_eq!(state.len(), 4);
    assert_eq!(
        state.set("f", b"f"),
        Err(StateError::TableFull { capacity: 4 })
    );
    let mut keys: Vec<String> = state.iter().map(|e| e.unwrap().key).collect();
    keys.sort();
    assert_eq!(keys, ["a", "b", "d", "e"]);
}

/// Thousands of distinct keys through a capacity-8 table: slots are reused, the count
/// stays exact, and lookups of absent keys end even after every slot has held a key.
#[test]
fn churn_of_distinct_keys_reuses_slots() {
    let state = SharedState::new(opts(8, 16, 16));
    let mut model: BTreeMap<String, (Vec<u8>, u64)> = BTreeMap::new();
    let mut rng = Rng(7);
    let mut next_key = 0u64;
    let mut gone: Vec<String> = Vec::new();
    let payloads = Payloads::new(16);
    let mut full = 0;
    for step in 0..stress() * 2 {
        // Inserts outnumber removals, so the table often fills up.
        if model.len() < 8 && (model.is_empty() || rng.below(5) < 3) {
            let key = format!("key-{next_key}");
            next_key += 1;
            let val = payloads.get(step).to_vec();
            let v = state.set(&key, &val).unwrap();
            model.insert(key, (val, v));
        } else {
            let i = rng.below(model.len() as u64) as usize;
            let key = model.keys().nth(i).unwrap().clone();
            let v = state.remove(&key).unwrap().expect("present");
            assert!(v > model[&key].1);
            model.remove(&key);
            gone.push(key);
        }
        if model.len() == 8 {
            full += 1;
            assert_eq!(
                state.set("overflow", b"x"),
                Err(StateError::TableFull { capacity: 8 })
            );
        }
        assert_eq!(state.len(), model.len(), "step {step}");
        if let Some(key) = gone.get(rng.below(gone.len() as u64 + 1) as usize) {
            assert_eq!(state.get(key).unwrap(), None, "{key} was removed");
        }
        assert_eq!(state.get(&format!("never-{step}")).unwrap(), None);
    }
    assert!(next_key > 100, "the churn inserted many distinct keys");
    assert!(full > 10, "the table was often full");
    for (key, (val, v)) in &model {
        assert_eq!(
            state.get(key).unwrap().unwrap(),
            Versioned {
                value: val.clone(),
                version: *v
            }
        );
    }
    let snap = state.snapshot().unwrap();
    let listed: BTreeMap<String, (Vec<u8>, u64)> = snap
        .entries
        .into_iter()
        .map(|e| (e.key, (e.value, e.version)))
        .collect();
    assert_eq!(listed, model);
}

#[test]
fn empty_utf8_and_longest_keys() {
    let state = SharedState::new(opts(16, 12, 8));
    let keys = [
        "",
        "a",
        "\0",
        "ключ",
        "🦀🦀🦀",     // 12 bytes: exactly the maximum
        "日本語です", // 15 bytes: too long
        "abcdefghijkl",
        "abcdefghijk",
        "abcdefghijk\0",
    ];
    let mut stored = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let r = state.set(key, &[i as u8]);
        if key.len() > 12 {
            assert_eq!(
                r,
                Err(StateError::KeyTooLong {
                    len: key.len(),
                    max: 12
                })
            );
        } else {
            r.unwrap();
            stored.insert(key.to_string(), vec![i as u8]);
        }
    }
    for (key, val) in &stored {
        assert_eq!(&value(&state, key).unwrap(), val, "{key:?}");
        assert_eq!(
            &state.entry(key).unwrap().get().unwrap().unwrap().value,
            val
        );
    }
    // Keys that share a prefix, or differ only by a trailing NUL, stay distinct.
    assert_eq!(state.get("abcdefghij").unwrap(), None);
    assert_eq!(state.get("\0\0").unwrap(), None);
    let listed: BTreeMap<String, Vec<u8>> = state
        .iter()
        .map(|e| e.map(|e| (e.key, e.value)))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(listed, stored);
    state.remove("").unwrap();
    assert_eq!(state.get("").unwrap(), None);
}

#[test]
fn values_of_every_length_round_trip() {
    let max = 75;
    let state = SharedState::new(opts(4, 8, max));
    let e = state.entry("e").unwrap();
    // Longest first: a shorter value must not show the tail of a longer one.
    for len in (0..=max).rev().chain(0..=max) {
        let val: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ len as u8)
            .collect();
        let v = state.set("k", &val).unwrap();
        assert_eq!(
            state.get("k").unwrap().unwrap(),
            Versioned {
                value: val.clone(),
                version: v
            }
        );
        let mut buf = vec![0xee; max + 3];
        let got = state.get_into("k", &mut buf).unwrap().unwrap();
        assert_eq!((&buf[..got.value], got.version), (&val[..], v));
        assert!(buf[len..].iter().all(|&b| b == 0xee));
        let ve = e.set(&val).unwrap();
        assert_eq!(
            e.get().unwrap().unwrap(),
            Versioned {
                value: val.clone(),
                version: ve
            }
        );
    }
}

// ---------------------------------------------------------------------------------------
// Entry handles.
// ---------------------------------------------------------------------------------------

#[test]
fn entry_handle_sees_every_update() {
    let state = SharedState::new(StateOptions::default());
    let e = state.entry("k").unwrap();
    assert_eq!(e.key(), "k");
    for i in 0..20u32 {
        let v = if i % 2 == 0 {
            state.set_pod("k", &i).unwrap()
        } else {
            e.set_pod(&i).unwrap()
        };
        assert_eq!(
            e.get_pod::<u32>().unwrap(),
            Some(Versioned {
                value: i,
                version: v
            })
        );
        assert_eq!(state.get_pod::<u32>("k").unwrap().unwrap().version, v);
    }
    let v = e.get().unwrap().unwrap().version;
    let v2 = e.compare_and_set(v, b"cas").unwrap();
    assert_eq!(
        e.compare_and_set(v, b"stale"),
        Err(StateError::VersionMismatch {
            expected: v,
            found: v2
        })
    );
    assert_eq!(e.remove().unwrap(), Some(v2 + 1));
    assert_eq!(e.get().unwrap(), None);
    assert_eq!(e.remove().unwrap(), None);
}

#[test]
fn entry_on_an_absent_key_works_once_it_is_set() {
    let state = SharedState::new(StateOptions::default());
    let e = state.entry("later").unwrap();
    assert_eq!(e.get().unwrap(), None);
    assert_eq!(e.get_pod::<u16>().unwrap(), None);
    assert_eq!(e.get_into(&mut [0; 4]).unwrap(), None);
    let v = state.set("later", b"now").unwrap();
    assert_eq!(
        e.get().unwrap().unwrap(),
        Versioned {
            value: b"now".to_vec(),
            version: v
        }
    );
    // And an entry that creates its key.
    let f = state.entry("fresh").unwrap();
    let v = f.compare_and_set(0, b"made").unwrap();
    assert_eq!(state.get("fresh").unwrap().unwrap().version, v);
}

/// A handle whose key was removed and inserted again into another slot, while a
/// different key took the old one, reads and writes its own key.
#[test]
fn entry_handle_follows_its_key_to_another_slot() {
    let name = unique("entry-moves");
    // Capacity 2: four slots.
    let state = SharedState::create(&name, opts(2, 8, 16)).unwrap();
    let raw = Raw::open(&state);
    let a = "alpha";
    let home = raw.home(a);
    let b = (0..)
        .map(|i| format!("b{i}"))
        .find(|k| raw.home(k) == home)
        .unwrap();

    state.set(a, b"A1").unwrap();
    assert_eq!(
        raw.find(a),
        Some(home),
        "the copied hash agrees with the table"
    );
    let e = state.entry(a).unwrap();
    assert_eq!(e.get().unwrap().unwrap().value, b"A1");

    state.remove(a).unwrap();
    assert_eq!(e.get().unwrap(), None);
    state.set(&b, b"B").unwrap();
    assert_eq!(
        raw.find(&b),
        Some(home),
        "the other key took the freed slot"
    );
    assert_eq!(e.get().unwrap(), None, "the slot now holds another key");

    let v = state.set(a, b"A2").unwrap();
    let moved = (home + 1) % 4;
    assert_eq!(raw.find(a), Some(moved));
    assert_eq!(
        e.get().unwrap().unwrap(),
        Versioned {
            value: b"A2".to_vec(),
            version: v
        }
    );

    // Swapping the two keys' slots leaves the handle's cache pointing at the other key,
    // under a new incarnation; every access through it must notice.
    let swap = |round: u8| {
        state.remove(a).unwrap();
        state.remove(&b).unwrap();
        let (first, second) = if round % 2 == 0 {
            (a, &b[..])
        } else {
            (&b[..], a)
        };
        state.set(first, &[first.as_bytes()[0], round]).unwrap();
        state.set(second, &[second.as_bytes()[0], round]).unwrap();
        assert_eq!(raw.find(first), Some(home));
        assert_eq!(raw.find(second), Some(moved));
    };
    swap(0);
    assert_eq!(e.get().unwrap().unwrap().value, b"a\0");
    swap(1);
    let mut buf = [0; 16];
    assert_eq!(e.get_into(&mut buf).unwrap().unwrap().value, 2);
    assert_eq!(&buf[..2], b"a\x01");
    swap(2);
    assert_eq!(e.get_pod::<[u8; 2]>().unwrap().unwrap().value, *b"a\x02");
    swap(3);
    let v = e.set(b"A4").unwrap();
    assert_eq!(value(&state, &b).unwrap(), b"b\x03");
    assert_eq!(
        state.get(a).unwrap().unwrap(),
        Versioned {
            value: b"A4".to_vec(),
            version: v
        }
    );
    swap(4);
    assert_eq!(
        e.compare_and_set(v, b"A5"),
        Err(StateError::VersionMismatch {
            expected: v,
            found: v + 3
        })
    );
    assert_eq!(e.get().unwrap().unwrap().value, b"a\x04");
    assert_eq!(state.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Snapshots and waiting for changes.
// ---------------------------------------------------------------------------------------

#[test]
fn snapshot_lists_every_entry_with_its_version() {
    let state = SharedState::new(opts(64, 16, 16));
    let mut expected = BTreeMap::new();
    for i in 0..40u64 {
        let key = format!("k{}", i % 30);
        let v = state.set_pod(&key, &i).unwrap();
        expected.insert(key, (i.to_ne_bytes().to_vec(), v));
    }
    state.remove("k3").unwrap();
    expected.remove("k3");
    let snap = state.snapshot().unwrap();
    assert_eq!(snap.version, state.version());
    let listed: BTreeMap<String, (Vec<u8>, u64)> = snap
        .entries
        .iter()
        .map(|e| (e.key.clone(), (e.value.clone(), e.version)))
        .collect();
    assert_eq!(listed.len(), snap.entries.len(), "each key listed once");
    assert_eq!(listed, expected);
    assert_eq!(state.iter().count(), state.len());
    assert_eq!(
        SharedState::new(opts(4, 4, 4)).snapshot().unwrap().entries,
        []
    );
}

/// The latest write of key `i` with a version of at most `v`, when one writer writes
/// rounds `1..` of keys `0..n` in order on a fresh table: `(round, version)`.
fn latest_write(i: u64, n: u64, v: u64) -> Option<(u64, u64)> {
    let round = v.checked_sub(i + 1)? / n + 1;
    Some((round, (round - 1) * n + i + 1))
}

/// A late joiner takes a snapshot while a writer runs, then follows with
/// `wait_for_change` from the snapshot's version: at every step it sees every write up
/// to the version it was told about, and it ends with every final value.
#[test]
fn snapshot_then_wait_for_change_misses_nothing() {
    let keys = 16u64;
    let rounds = (stress() / 20).max(10);
    let state = SharedState::new(opts(32, 8, 8));
    let start = Arc::new(Barrier::new(2));
    let writer = {
        let state = state.clone();
        let start = start.clone();
        thread::spawn(move || {
            for round in 1..=rounds {
                if round == 2 {
                    start.wait();
                }
                for i in 0..keys {
                    let v = state.set_pod(&format!("k{i}"), &round).unwrap();
                    assert_eq!(v, (round - 1) * keys + i + 1);
                    // Lets the joiner in between writes (more wakes, not correctness).
                    thread::yield_now();
                }
            }
        })
    };
    let final_version = keys * rounds;
    let check = move |key: u64, seen: u64, got: Option<(u64, u64)>| {
        let Some((round, want)) = latest_write(key, keys, seen) else {
            return;
        };
        let (val, version) = got.unwrap_or_else(|| panic!("k{key} missing after {seen}"));
        assert!(
            version >= want,
            "k{key}: version {version} after seeing {seen}"
        );
        assert!(val >= round);
        assert_eq!(
            latest_write(key, keys, version),
            Some((val, version)),
            "k{key}: value and version belong to one write"
        );
    };
    let (wakes, _) = watchdog("late joiner", HANG, move || {
        start.wait();
        let snap = state.snapshot().unwrap();
        let mut got: HashMap<u64, (u64, u64)> = HashMap::new();
        for e in &snap.entries {
            let key: u64 = e.key[1..].parse().unwrap();
            let val = u64::from_ne_bytes(e.value[..].try_into().unwrap());
            assert!(got.insert(key, (val, e.version)).is_none());
        }
        for i in 0..keys {
            check(i, snap.version, got.get(&i).copied());
        }
        let mut seen = snap.version;
        let mut wakes = 0;
        while seen < final_version {
            seen = state.wait_for_change(seen, HANG).unwrap();
            wakes += 1;
            for i in 0..keys {
                let now = state.get_pod::<u64>(&format!("k{i}")).unwrap();
                check(i, seen, now.map(|v| (v.value, v.version)));
            }
        }
        for i in 0..keys {
            assert_eq!(
                state
                    .get_pod::<u64>(&format!("k{i}"))
                    .unwrap()
                    .unwrap()
                    .value,
                rounds
            );
        }
        wakes
    });
    writer.join().unwrap();
    eprintln!(
        "late joiner followed {} writes with {wakes} wakes",
        keys * rounds
    );
}

#[test]
fn wait_for_change_times_out_when_nothing_happens() {
    let state = SharedState::new(StateOptions::default());
    assert_eq!(
        state.wait_for_change(0, Duration::from_millis(10)),
        Err(StateError::Timeout)
    );
    let v = state.set("k", b"v").unwrap();
    assert_eq!(
        state.wait_for_change(v, Duration::ZERO),
        Err(StateError::Timeout)
    );
    assert_eq!(
        state.wait_for_change(v, Duration::from_millis(10)),
        Err(StateError::Timeout)
    );
    // A change already past `since` returns at once, even with no time to wait.
    assert_eq!(state.wait_for_change(v - 1, Duration::ZERO), Ok(v));
    let e = state.entry("k").unwrap();
    assert_eq!(
        e.wait_for_change(v, Duration::from_millis(10)),
        Err(StateError::Timeout)
    );
    assert_eq!(e.wait_for_change(0, Duration::ZERO), Ok(v));
    // Writes to other keys do not end an entry's wait.
    state.set("other", b"o").unwrap();
    assert_eq!(
        e.wait_for_change(v, Duration::from_millis(10)),
        Err(StateError::Timeout)
    );
}

#[test]
fn wait_for_change_wakes_on_a_set_from_another_thread() {
    let state = SharedState::new(StateOptions::default());
    let (ready, go) = std::sync::mpsc::channel();
    let writer = {
        let state = state.clone();
        thread::spawn(move || {
            go.recv().unwrap();
            state.set("k", b"v").unwrap()
        })
    };
    let since = state.version();
    let (woke, _) = watchdog("waiter", HANG, move || {
        ready.send(()).unwrap();
        let v = state.wait_for_change(since, HANG).unwrap();
        assert_eq!(
            state.get("k").unwrap().unwrap().version,
            v,
            "the change is visible"
        );
        v
    });
    assert_eq!(woke, writer.join().unwrap());
}

#[test]
fn entry_wait_for_change_waits_for_its_own_key() {
    let state = SharedState::new(StateOptions::default());
    let v1 = state.set("k", b"1").unwrap();
    let writer = {
        let state = state.clone();
        thread::spawn(move || {
            // Neither a removal nor writes to other keys end the wait.
            state.remove("k").unwrap();
            for i in 0..5u8 {
                state.set("noise", &[i]).unwrap();
            }
            state.set("k", b"2").unwrap()
        })
    };
    let (woke, _) = watchdog("entry waiter", HANG, move || {
        let e = state.entry("k").unwrap();
        let v = e.wait_for_change(v1, HANG).unwrap();
        assert_eq!(e.get().unwrap().unwrap().value, b"2");
        v
    });
    assert_eq!(woke, writer.join().unwrap());
}

// ---------------------------------------------------------------------------------------
// Concurrency.
// ---------------------------------------------------------------------------------------

const STRESS_MAX: usize = 200;

/// A value that proves it was written whole: its stamp `c` in the first 8 bytes, a length
/// that `c` determines, and every other byte `c as u8`.
fn stamped(c: u64, max: usize) -> Vec<u8> {
    let len = 8 + (c % (max as u64 - 7)) as usize;
    let mut v = vec![c as u8; len];
    v[..8].copy_from_slice(&c.to_le_bytes());
    v
}

/// The stamp of a value made by [`stamped`]; panics on a torn one.
fn check_stamped(key: &str, v: &[u8], max: usize) -> u64 {
    assert!(v.len() >= 8, "{key}: {} bytes", v.len());
    let c = u64::from_le_bytes(v[..8].try_into().unwrap());
    assert_eq!(v, stamped(c, max), "{key}: torn value");
    c
}

/// Two writers and two readers on one key of big values: a reader that is slow, or
/// preempted, in the middle of a copy while writes are published must retry, never return
/// a mix of two writes.
#[test]
fn readers_of_a_hot_key_never_see_a_torn_value() {
    const MAX: usize = 4096;
    let state = SharedState::new(opts(1, 4, MAX));
    state.set("hot", &stamped(0, MAX)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let state = state.clone();
            thread::spawn(move || {
                for i in 1..=stress() {
                    state.set("hot", &stamped(i * 2 + w, MAX)).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (state, done) = (state.clone(), done.clone());
            thread::spawn(move || {
                let e = state.entry("hot").unwrap();
                let mut buf = vec![0u8; MAX];
                let (mut reads, mut last) = (0u64, 0);
                while !done.load(Ordering::Relaxed) || reads == 0 {
                    let got = if r == 0 {
                        state.get_into("hot", &mut buf).unwrap().unwrap()
                    } else {
                        e.get_into(&mut buf).unwrap().unwrap()
                    };
                    check_stamped("hot", &buf[..got.value], MAX);
                    assert!(got.version >= last);
                    last = got.version;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let (reads, _) = watchdog("hot key", HANG, move || {
        writers.into_iter().for_each(|w| w.join().unwrap());
        done.store(true, Ordering::Relaxed);
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    eprintln!("{} writes of one key, reads {reads:?}", 2 * stress());
}

/// Writers on overlapping keys, a churn thread removing and re-inserting keys, and
/// readers (by key, into a buffer, through entry handles, and by snapshot) that check
/// every value they see is whole and that each key's version never goes back.
#[test]
fn concurrent_writers_readers_and_churn_stay_consistent() {
    let writes = stress();
    let stable: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let churned: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
    let all: Vec<String> = stable.iter().chain(&churned).cloned().collect();
    let state = SharedState::new(opts(12, 8, STRESS_MAX));
    let done = Arc::new(AtomicBool::new(false));
    let writers = 3u64;
    let mut threads = Vec::new();
    for w in 0..writers {
        let (state, stable) = (state.clone(), stable.clone());
        threads.push(thread::spawn(move || {
            let mut rng = Rng(w + 1);
            for i in 0..writes {
                let key = &stable[rng.below(stable.len() as u64) as usize];
                let v = state
                    .set(key, &stamped(i * writers + w, STRESS_MAX))
                    .unwrap();
                assert!(v > 0);
            }
            0
        }));
    }
    let churn = {
        let (state, churned, done) = (state.clone(), churned.clone(), done.clone());
        thread::spawn(move || {
            let mut rng = Rng(99);
            let mut cycles = 0u64;
            while !done.load(Ordering::Relaxed) || cycles < 10 {
                let key = &churned[rng.below(churned.len() as u64) as usize];
                if rng.below(2) == 0 {
                    state.remove(key).unwrap();
                } else {
                    state
                        .set(key, &stamped(rng.next() >> 8, STRESS_MAX))
                        .unwrap();
                }
                cycles += 1;
            }
            cycles
        })
    };
    let mut readers = Vec::new();
    for r in 0..3u64 {
        let (state, all, done) = (state.clone(), all.clone(), done.clone());
        readers.push(thread::spawn(move || {
            let entries: Vec<_> = all.iter().map(|k| state.entry(k).unwrap()).collect();
            let mut last = vec![0u64; all.len()];
            let mut buf = vec![0u8; STRESS_MAX];
            let mut reads = 0u64;
            let mut see = |i: usize, key: &str, got: Option<(Vec<u8>, u64)>| {
                if let Some((val, version)) = got {
                    check_stamped(key, &val, STRESS_MAX);
                    let prev = std::mem::replace(&mut last[i], version);
                    assert!(version >= prev, "{key}: version {version} after {prev}");
                }
            };
            while !done.load(Ordering::Relaxed) {
                for (i, key) in all.iter().enumerate() {
                    let got = match (r + reads) % 3 {
                        0 => state.get(key).unwrap().map(|v| (v.value, v.version)),
                        1 => state
                            .get_into(key, &mut buf)
                            .unwrap()
                            .map(|v| (buf[..v.value].to_vec(), v.version)),
                        _ => entries[i].get().unwrap().map(|v| (v.value, v.version)),
                    };
                    see(i, key, got);
                    reads += 1;
                }
                if reads % 64 < all.len() as u64 {
                    let snap = state.snapshot().unwrap();
                    let mut keys: Vec<&str> = snap.entries.iter().map(|e| &e.key[..]).collect();
                    keys.sort();
                    keys.dedup();
                    assert_eq!(keys.len(), snap.entries.len(), "a key listed twice");
                    for e in snap.entries {
                        assert!(e.version <= state.version());
                        check_stamped(&e.key, &e.value, STRESS_MAX);
                    }
                }
            }
            reads
        }));
    }
    let (counts, _) = watchdog("stress", HANG, move || {
        let mut counts: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        counts.push(churn.join().unwrap());
        counts.extend(readers.into_iter().map(|t| t.join().unwrap()));
        counts
    });
    let snap = state.snapshot().unwrap();
    let present = all
        .iter()
        .filter(|k| state.get(k).unwrap().is_some())
        .count();
    assert_eq!(state.len(), snap.entries.len());
    assert_eq!(state.len(), present);
    for key in &stable {
        check_stamped(key, &value(&state, key).unwrap(), STRESS_MAX);
    }
    assert!(
        state.version() >= writers * writes,
        "every write took its own version"
    );
    eprintln!(
        "{} writes by {writers} writers, {} churn ops, reads {:?}",
        writers * writes,
        counts[writers as usize],
        &counts[writers as usize + 1..]
    );
}

// ---------------------------------------------------------------------------------------
// Another process's locks and marks, played by writing the table's words.
// ---------------------------------------------------------------------------------------

/// A named table with key `k` set to `old`, and a raw view of it.
fn poked_table(test: &str, patience: Duration) -> (SharedState, Raw, usize, u64) {
    let mut state = SharedState::create(&unique(test), opts(4, 8, 32)).unwrap();
    state.set_patience(patience);
    state.set("other", b"o").unwrap();
    let v = state.set("k", b"old").unwrap();
    let raw = Raw::open(&state);
    let slot = raw.find("k").unwrap();
    (state, raw, slot, v)
}

fn assert_untouched(state: &SharedState, version: u64) {
    assert_eq!(
        state.get("k").unwrap().unwrap(),
        Versioned {
            value: b"old".to_vec(),
            version
        }
    );
}

#[test]
fn slot_lock_held_by_a_live_process_makes_writers_contended() {
    let (state, raw, slot, _) = poked_table("live-lock", SHORT);
    let mut sleeper = Sleeper::spawn();
    // This process (whose own lock it is, so never dead) and another live process.
    for holder in [token(ProcessId::current()), sleeper.token()] {
        let v = state.get("k").unwrap().unwrap().version;
        raw.slot(slot, LOCK).store(holder, Ordering::Release);
        assert_eq!(state.set("k", b"new"), Err(StateError::Contended));
        assert_eq!(
            state.compare_and_set("k", v, b"new"),
            Err(StateError::Contended)
        );
        assert_eq!(
            state.entry("k").unwrap().set(b"new"),
            Err(StateError::Contended)
        );
        assert_eq!(
            state.version(),
            v,
            "a write that could not lock took no version"
        );
        // Readers take no lock, and other keys are not affected.
        assert_untouched(&state, v);
        let v2 = state.set("other", b"o2").unwrap();
        assert_eq!(v2, v + 1);
        raw.slot(slot, LOCK).store(0, Ordering::Release);
        assert_eq!(state.set("k", b"old").unwrap(), v2 + 1);
    }
    // The same token once its process has died: the next writer takes the lock over.
    raw.slot(slot, LOCK)
        .store(sleeper.token(), Ordering::Release);
    sleeper.kill_and_reap();
    let v3 = state.set("k", b"after").unwrap();
    assert_eq!(
        state.get("k").unwrap().unwrap(),
        Versioned {
            value: b"after".to_vec(),
            version: v3
        }
    );
    assert_eq!(raw.slot(slot, LOCK).load(Ordering::Acquire), 0);
}

#[test]
fn stuck_write_mark_of_a_live_writer_makes_readers_contended() {
    let (state, raw, slot, v) = poked_table("live-writing", SHORT);
    let seq = raw.slot(slot, SEQ).load(Ordering::Acquire);
    raw.slot(slot, LOCK)
        .store(token(ProcessId::current()), Ordering::Release);
    raw.slot(slot, SEQ).store(seq | WRITING, Ordering::Release);
    assert_eq!(state.get("k"), Err(StateError::Contended));
    assert_eq!(state.get_pod::<u8>("k"), Err(StateError::Contended));
    assert_eq!(state.entry("k").unwrap().get(), Err(StateError::Contended));
    assert_eq!(state.snapshot(), Err(StateError::Contended));
    assert_eq!(state.set("k", b"new"), Err(StateError::Contended));
    // A lookup that passes the slot for another key waits too, unless the key lives
    // before it on its probe path; either way it does not return a wrong answer.
    assert!(matches!(
        state.get("other"),
        Ok(Some(_)) | Err(StateError::Contended)
    ));
    // The live writer finishes without publishing anything.
    raw.slot(slot, SEQ).store(seq, Ordering::Release);
    raw.slot(slot, LOCK).store(0, Ordering::Release);
    assert_untouched(&state, v);
    assert_eq!(state.snapshot().unwrap().entries.len(), 2);
}

#[test]
fn write_mark_without_a_holder_is_cleared_by_a_reader() {
    let (state, raw, slot, v) = poked_table("orphan-writing", SHORT);
    let seq = raw.slot(slot, SEQ).load(Ordering::Acquire);
    raw.slot(slot, SEQ).store(seq | WRITING, Ordering::Release);
    assert_untouched(&state, v);
    let after = raw.slot(slot, SEQ).load(Ordering::Acquire);
    assert_eq!(after & WRITING, 0);
    assert_eq!(after & 2, seq & 2, "the same copy stays published");
    assert_ne!(after, seq, "the counter moved past the abandoned write");
    assert_eq!(raw.slot(slot, LOCK).load(Ordering::Acquire), 0);
}

/// What a writer killed half-way through leaves: its token in `LOCK`, `WRITING` set, a
/// half-filled unpublished copy. The next reader or writer takes over.
fn leave_half_written(raw: &Raw, slot: usize) {
    let copy = raw.unpublished(slot);
    raw.slot(slot, copy + META)
        .store(LIVE | 1_000_000, Ordering::Relaxed);
    raw.slot(slot, copy + VERSION)
        .store(u64::MAX, Ordering::Relaxed);
    raw.slot(slot, copy + VALUE)
        .store(0xdead_beef, Ordering::Relaxed);
    raw.slot(slot, LOCK).store(dead_token(), Ordering::Release);
    let seq = raw.slot(slot, SEQ).load(Ordering::Acquire);
    raw.slot(slot, SEQ).store(seq | WRITING, Ordering::Release);
}

#[test]
fn dead_slot_holder_is_recovered_by_readers_and_writers() {
    // Recovery comes within the default patience: these operations would report
    // `Contended` otherwise.
    let (state, raw, slot, v) = poked_table("dead-slot", DEFAULT_PATIENCE);
    // A reader: gets the last committed value and clears the dead writer's mark.
    leave_half_written(&raw, slot);
    assert_untouched(&state, v);
    assert_eq!(raw.slot(slot, SEQ).load(Ordering::Acquire) & WRITING, 0);
    assert_eq!(raw.slot(slot, LOCK).load(Ordering::Acquire), 0);
    // A writer: takes the lock over and publishes past the half-filled copy.
    leave_half_written(&raw, slot);
    let v2 = state.set("k", b"new").unwrap();
    assert!(v2 > v);
    assert_eq!(
        state.get("k").unwrap().unwrap(),
        Versioned {
            value: b"new".to_vec(),
            version: v2
        }
    );
    // A snapshot, and a dead holder that died before marking anything.
    leave_half_written(&raw, slot);
    let snap = state.snapshot().unwrap();
    assert!(snap
        .entries
        .iter()
        .any(|e| e.key == "k" && e.value == b"new"));
    raw.slot(slot, LOCK).store(dead_token(), Ordering::Release);
    let v3 = state
        .entry("k")
        .unwrap()
        .compare_and_set(v2, b"cas")
        .unwrap();
    assert_eq!(state.get("k").unwrap().unwrap().version, v3);
    assert_eq!(state.len(), 2);
}

#[test]
fn dead_membership_holder_is_recovered_and_the_count_recounted() {
    let (mut state, raw, _, v) = poked_table("dead-members", SHORT);
    let lock = raw.at(MEMBERS_LOCK);
    let len = raw.at(MEMBERS_LEN);
    // A live holder blocks inserts and removes, not updates.
    lock.store(token(ProcessId::current()), Ordering::Release);
    assert_eq!(state.set("new", b"n"), Err(StateError::Contended));
    assert_eq!(state.remove("k"), Err(StateError::Contended));
    let v2 = state.set("k", b"update").unwrap();
    assert!(v2 > v);
    assert_eq!(state.len(), 2);
    // The holder dies half-way through an insert, its count not yet written.
    state.set_patience(DEFAULT_PATIENCE);
    lock.store(dead_token(), Ordering::Release);
    len.store(0, Ordering::Relaxed);
    state.set("new", b"n").unwrap();
    assert_eq!(state.len(), 3, "recounted from the slots, plus the insert");
    assert_eq!(lock.load(Ordering::Acquire), 0);
    // Or half-way through a remove.
    lock.store(dead_token(), Ordering::Release);
    len.store(3 + 1, Ordering::Relaxed);
    assert!(state.remove("other").unwrap().is_some());
    assert_eq!(state.len(), 2);
    assert_eq!(state.snapshot().unwrap().entries.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Named tables: opening, and damaged contents.
// ---------------------------------------------------------------------------------------

#[test]
fn create_and_open_share_one_table() {
    let name = unique("share");
    let a = SharedState::create(&name, opts(8, 16, 40)).unwrap();
    let b = SharedState::open(&name).unwrap();
    assert_eq!(
        (b.capacity(), b.max_key_len(), b.max_value_len()),
        (8, 16, 40)
    );
    assert!(a.segment().unwrap().is_owner());
    assert!(!b.segment().unwrap().is_owner());
    let v = a.set("k", b"from a").unwrap();
    assert_eq!(
        b.get("k").unwrap().unwrap(),
        Versioned {
            value: b"from a".to_vec(),
            version: v
        }
    );
    let v2 = b.set("k", b"from b").unwrap();
    assert_eq!(a.version(), v2);
    assert_eq!(value(&a, "k").unwrap(), b"from b");
    let since = a.version();
    b.set("j", b"j").unwrap();
    assert_eq!(a.wait_for_change(since, HANG).unwrap(), since + 1);
    assert_eq!(a.snapshot().unwrap(), b.snapshot().unwrap());
    assert!(matches!(
        SharedState::create(&name, opts(8, 16, 40)),
        Err(SegmentError::AlreadyExists { .. })
    ));
    assert!(matches!(
        SharedState::create(&unique("bad-opts"), opts(0, 16, 40)),
        Err(SegmentError::Incompatible { .. })
    ));
    assert!(matches!(
        SharedState::create(&unique("bad-opts"), opts(1, 2000, 40)),
        Err(SegmentError::Incompatible { .. })
    ));
    assert!(matches!(
        SharedState::open(&unique("absent")),
        Err(SegmentError::NotFound { .. })
    ));
}

#[test]
fn open_rejects_other_kinds_and_inconsistent_sizes() {
    let good_len = |capacity: usize, key: usize, value: usize| {
        let slot_words =
            (KEY + key.div_ceil(8) + 2 * (VALUE + value.div_ceil(8))).next_multiple_of(8);
        HEADER_BYTES + (capacity * 2).next_power_of_two() * slot_words * 8
    };
    let params = |p: [u64; 3]| {
        let mut all = [0; PARAMS];
        all[..3].copy_from_slice(&p);
        all
    };
    let name = unique("other-kind");
    let _seg = Segment::create(&name, 0x1234, params([4, 8, 8]), good_len(4, 8, 8)).unwrap();
    assert!(matches!(
        SharedState::open(&name),
        Err(SegmentError::Incompatible { .. })
    ));

    // A consistent hand-made STAT segment opens: the test's layout is the table's.
    let name = unique("hand-made");
    let _seg = Segment::create(&name, KIND_STATE, params([4, 8, 8]), good_len(4, 8, 8)).unwrap();
    let state = SharedState::open(&name).unwrap();
    state.set("k", b"v").unwrap();
    assert_eq!(value(&state, "k").unwrap(), b"v");

    let cases: [([u64; 3], usize); 6] = [
        ([4, 8, 8], good_len(4, 8, 8) - 8),
        ([4, 8, 8], good_len(4, 8, 8) + 64),
        ([4, 8, 8], good_len(8, 8, 8)),
        ([0, 8, 8], good_len(4, 8, 8)),
        ([4, 0, 8], good_len(4, 8, 8)),
        ([4, 8, u64::MAX], good_len(4, 8, 8)),
    ];
    for (i, (p, len)) in cases.into_iter().enumerate() {
        let name = unique(&format!("bad-sizes-{i}"));
        let _seg = Segment::create(&name, KIND_STATE, params(p), len).unwrap();
        match SharedState::open(&name) {
            Err(SegmentError::Corrupt { .. }) => {}
            other => panic!("params {p:?}, payload {len}: {other:?}"),
        }
    }
}

fn assert_corrupt<T: std::fmt::Debug>(what: &str, r: Result<T, StateError>) {
    match r {
        Err(StateError::Corrupt(c)) => assert!(!c.what().is_empty()),
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

#[test]
fn damaged_header_words_are_reported_as_corrupt() {
    let (state, raw, _, v) = poked_table("bad-header", SHORT);
    let max_probe = raw.at(MAX_PROBE);
    let saved = max_probe.load(Ordering::Acquire);
    for bad in [raw.slots as u64, u64::MAX] {
        max_probe.store(bad, Ordering::Release);
        assert_corrupt("get", state.get("k"));
        assert_corrupt("get absent", state.get("absent"));
        assert_corrupt("set", state.set("k", b"x"));
        assert_corrupt("insert", state.set("new", b"x"));
        assert_corrupt("remove", state.remove("k"));
        assert_corrupt("entry", state.entry("k").unwrap().get());
    }
    max_probe.store(saved, Ordering::Release);
    assert_untouched(&state, v);

    let len = raw.at(MEMBERS_LEN);
    len.store(5, Ordering::Relaxed);
    assert_eq!(
        state.len(),
        state.capacity(),
        "len() stays within the capacity"
    );
    assert_corrupt("insert", state.set("new", b"x"));
    assert_corrupt("remove", state.remove("k"));
    state.set("k", b"old").unwrap(); // updates do not need the count
    len.store(2, Ordering::Relaxed);
    state.set("new", b"x").unwrap();
    assert_eq!(state.len(), 3);
}

#[test]
fn damaged_slot_words_are_reported_as_corrupt() {
    let (state, raw, slot, _) = poked_table("bad-slot", SHORT);
    // A handle that has already found the key reads through its cached slot.
    let cached = state.entry("k").unwrap();
    assert_eq!(cached.get().unwrap().unwrap().value, b"old");
    let meta = raw.slot(slot, raw.published(slot) + META);
    let good = meta.load(Ordering::Acquire);
    meta.store(LIVE | 33, Ordering::Release); // max_value_len is 32
    assert_corrupt("cached get", cached.get());
    assert_corrupt("cached get_pod", cached.get_pod::<[u8; 32]>());
    assert_corrupt("cached get_into", cached.get_into(&mut [0; 64]));
    assert_corrupt("get", state.get("k"));
    assert_corrupt("get_into", state.get_into("k", &mut [0; 64]));
    assert_corrupt("get_pod", state.get_pod::<u64>("k"));
    assert_corrupt("entry", state.entry("k").unwrap().get());
    assert_corrupt("snapshot", state.snapshot());
    assert_corrupt("iter", state.iter().find(|e| e.is_err()).unwrap());
    // A length that matches the type read, but not the table.
    meta.store(LIVE | 40, Ordering::Release);
    assert_corrupt("cached get_pod", cached.get_pod::<[u64; 5]>());
    assert_corrupt("get_pod", state.get_pod::<[u64; 5]>("k"));
    meta.store(LIVE | u64::MAX >> 1, Ordering::Release);
    assert_corrupt("get", state.get("k"));
    meta.store(good, Ordering::Release);
    assert_eq!(value(&state, "k").unwrap(), b"old");

    // A key length past the maximum: lookups by key no longer match the slot, listing
    // reports it.
    let key_meta = raw.slot(slot, KEY_META);
    let good = key_meta.load(Ordering::Acquire);
    key_meta.store((good & !0xffff_ffff) | 9, Ordering::Release);
    assert_eq!(state.get("k").unwrap(), None);
    assert_corrupt("snapshot", state.snapshot());
    // A key that is not UTF-8.
    key_meta.store(good, Ordering::Release);
    let key0 = raw.slot(slot, KEY);
    key0.store(0xff, Ordering::Release);
    assert_corrupt("snapshot", state.snapshot());
    key0.store(u64::from(b'k'), Ordering::Release);
    assert_eq!(state.snapshot().unwrap().entries.len(), 2);
}

/// Random words of a table overwritten between operations, as a hostile peer might: every
/// operation returns, with a value or an error, within its patience.
#[test]
fn hostile_writes_never_panic_or_hang() {
    let mut state = SharedState::create(&unique("hostile"), opts(4, 8, 24)).unwrap();
    state.set_patience(Duration::from_millis(2));
    let raw = Raw::open(&state);
    let words = raw.seg.payload_len() / 8;
    let rounds = stress() / 10;
    let mut rng = Rng(2024);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let ((), _) = watchdog("hostile", HANG, move || {
        for round in 0..rounds {
            for k in ["a", "b", "c"] {
                let _ = state.set(k, &[round as u8; 5]);
            }
            for _ in 0..1 + rng.below(3) {
                let word = raw.at(rng.below(words as u64) as usize * 8);
                let bad = match rng.below(5) {
                    0 => rng.next(),
                    1 => rng.below(64),
                    2 => LIVE | rng.below(64),
                    3 => u64::MAX,
                    _ => 0,
                };
                word.store(bad, Ordering::Relaxed);
            }
            let mut note = |what: &str, r: Result<(), StateError>| {
                let kind = match r {
                    Ok(()) => "ok".to_owned(),
                    Err(StateError::Corrupt(_)) => "corrupt".to_owned(),
                    Err(e) => format!("{e:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                };
                *outcomes.entry(format!("{what}: {kind}")).or_default() += 1;
            };
            for k in ["a", "b", "c", "d"] {
                note("get", state.get(k).map(drop));
                note("get_pod", state.get_pod::<[u8; 5]>(k).map(drop));
                note("set", state.set(k, b"xyz").map(drop));
            }
            note("remove", state.remove("b").map(drop));
            note("snapshot", state.snapshot().map(drop));
            note("cas", state.compare_and_set("c", 1, b"z").map(drop));
            let _ = state.len();
            // Repair the table now and then, so later rounds start from a usable one.
            if round % 8 == 7 {
                for w in 0..words {
                    raw.at(w * 8).store(0, Ordering::Relaxed);
                }
            }
        }
        eprintln!("{outcomes:#?}");
    });
}
