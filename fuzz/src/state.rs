//! The fuzz targets of `ringport::state`, shared like [`targets`](crate::targets) with
//! `tests/fuzz_replay.rs`, which includes this file with `#[path]`. Self-contained for
//! that reason: it uses only ringport's public API, `arbitrary`, `bytemuck` and std.
//!
//! - [`state_ops`]: operation sequences on a small heap table, through two handles and
//!   through [`Entry`] handles held across removals, checked against a map model.
//! - [`state_hostile`]: the same operations on a named table while a "peer" writes
//!   arbitrary words into its shared memory between them.
//!
//! No call here can block on the input: waits use a zero timeout, and the hostile
//! target's handles have a patience of 2 ms, so a lock word that names a live process
//! (our own, or pid 1) costs an operation (an iterator, each slot) one patience and
//! ends as `Contended`.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::Arbitrary;

use crate::support::{decode, own_token, payload, unique_name, Step, Unlink};
use bytemuck::Pod;
use ringport::segment::Segment;
use ringport::state::{Entry, SharedState, StateEntry, StateError, StateOptions, Versioned};

/// Segment kind of a named state table, `"STAT"`.
const KIND_STATE: u32 = u32::from_le_bytes(*b"STAT");
/// Every table's longest key.
const MAX_KEY_LEN: usize = 8;
/// The keys operations pick from: the empty key, short ones, one of exactly
/// [`MAX_KEY_LEN`] bytes and one too long. More valid keys than the largest capacity, so
/// `TableFull` is reachable.
const KEYS: [&str; 6] = ["", "a", "b", "counter", "exactly8", "too-long!"];
/// Entry handles an input can hold at once.
const ENTRIES: usize = 3;
/// Ops beyond these are ignored, so one input cannot run for long. The hostile target's
/// ops can each wait out a patience, hence its smaller limit.
const MAX_OPS: usize = 512;
const MAX_HOSTILE_OPS: usize = 128;
/// How long a hostile-target handle waits for a slot that looks busy.
const HOSTILE_PATIENCE: Duration = Duration::from_millis(2);

/// Bytes of a table's header, before its slots.
const HEADER_LEN: usize = 384;
/// `META` bit of a value copy: the slot holds a live key.
const LIVE: u64 = 1 << 63;

#[derive(Arbitrary, Debug)]
struct Setup {
    /// Selects 1 to 4 keys.
    capacity: u8,
    /// Selects a maximum value of 0 to 24 bytes.
    max_value: u8,
}

impl Setup {
    fn options(&self) -> StateOptions {
        StateOptions {
            capacity: 1 + usize::from(self.capacity % 4),
            max_key_len: MAX_KEY_LEN,
            max_value_len: usize::from(self.max_value % 25),
        }
    }
}

/// The version a `compare_and_set` expects, relative to what the model knows.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Expect {
    /// The key's version (0 if absent).
    Current,
    /// 0: only if absent.
    Absent,
    /// One less than the key's version (`u64::MAX` if absent).
    Stale,
    Other(u64),
}

/// A value for `set_pod`; `Wide` never fits.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum PodValue {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Triple([u16; 3]),
    Wide([u64; 4]),
}

/// A type for `get_pod`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum PodKind {
    U8,
    U16,
    U32,
    U64,
    Triple,
    Wide,
}

/// One operation on one key.
#[derive(Arbitrary, Debug)]
enum Action {
    Get,
    /// `get_into` with a buffer of `buf % (max_value_len + 2)` bytes.
    GetInto {
        buf: u8,
    },
    GetPod(PodKind),
    /// `set` of a fresh value of `len % (max_value_len + 3)` bytes.
    Set {
        len: u8,
    },
    SetPod(PodValue),
    CompareAndSet {
        expect: Expect,
        len: u8,
    },
    Remove,
    /// The key's `wait_for_change` from `back` below the table version, with a zero
    /// timeout (by key: through a fresh entry).
    WaitFor {
        back: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// An action by key through handle 0 or 1 (clones in `state_ops`, the creator and an
    /// opener in `state_hostile`).
    ByKey {
        second: bool,
        key: u8,
        action: Action,
    },
    /// An action through entry `n % ENTRIES`, if one is open.
    ByEntry {
        n: u8,
        action: Action,
    },
    /// Opens entry `n % ENTRIES`, replacing the one there.
    Open {
        second: bool,
        n: u8,
        key: u8,
    },
    Snapshot {
        second: bool,
    },
    /// Reads the first `take` items of an iterator, or all of them if `take` is large.
    Iter {
        second: bool,
        take: u8,
    },
    /// The table's `wait_for_change` from `back` below its version, zero timeout.
    Wait {
        second: bool,
        back: u8,
    },
    Len {
        second: bool,
    },
}

/// Where a key operation goes.
enum On<'h, 'e> {
    Key(&'h SharedState, &'static str),
    Entry(&'e Entry<'h>),
}

impl On<'_, '_> {
    fn key(&self) -> &str {
        match self {
            On::Key(_, key) => key,
            On::Entry(e) => e.key(),
        }
    }

    fn get(&self) -> Result<Option<Versioned<Vec<u8>>>, StateError> {
        match self {
            On::Key(s, key) => s.get(key),
            On::Entry(e) => e.get(),
        }
    }

    fn get_into(&self, buf: &mut [u8]) -> Result<Option<Versioned<usize>>, StateError> {
        match self {
            On::Key(s, key) => s.get_into(key, buf),
            On::Entry(e) => e.get_into(buf),
        }
    }

    fn get_pod<T: Pod>(&self) -> Result<Option<Versioned<T>>, StateError> {
        match self {
            On::Key(s, key) => s.get_pod(key),
            On::Entry(e) => e.get_pod(),
        }
    }

    fn set(&self, value: &[u8]) -> Result<u64, StateError> {
        match self {
            On::Key(s, key) => s.set(key, value),
            On::Entry(e) => e.set(value),
        }
    }

    /// Stores `value` with `set_pod`, and returns its bytes with the result.
    fn set_pod<T: Pod>(&self, value: T) -> (Vec<u8>, Result<u64, StateError>) {
        let r = match self {
            On::Key(s, key) => s.set_pod(key, &value),
            On::Entry(e) => e.set_pod(&value),
        };
        (bytemuck::bytes_of(&value).to_vec(), r)
    }

    fn compare_and_set(&self, expected: u64, value: &[u8]) -> Result<u64, StateError> {
        match self {
            On::Key(s, key) => s.compare_and_set(key, expected, value),
            On::Entry(e) => e.compare_and_set(expected, value),
        }
    }

    fn remove(&self) -> Result<Option<u64>, StateError> {
        match self {
            On::Key(s, key) => s.remove(key),
            On::Entry(e) => e.remove(),
        }
    }

    fn wait_for_change(&self, since: u64) -> Result<u64, StateError> {
        match self {
            On::Key(s, key) => s
                .entry(key)
                .and_then(|e| e.wait_for_change(since, Duration::ZERO)),
            On::Entry(e) => e.wait_for_change(since, Duration::ZERO),
        }
    }
}

/// What the table must hold while nobody has damaged it, and the bounds every result
/// must respect even after.
struct Model {
    options: StateOptions,
    slots: usize,
    /// No scribble yet: results must agree with the model exactly. Afterwards they only
    /// have to stay within the table's bounds, and errors must be documented ones.
    clean: bool,
    map: HashMap<String, (Vec<u8>, u64)>,
    /// The table version: the number of successful writes.
    version: u64,
    next_id: u64,
}

impl Model {
    fn new(options: StateOptions) -> Model {
        Model {
            options,
            slots: (2 * options.capacity).next_power_of_two(),
            clean: true,
            map: HashMap::new(),
            version: 0,
            next_id: 0,
        }
    }

    fn max_value(&self) -> usize {
        self.options.max_value_len
    }

    /// A fresh value, sometimes too large.
    fn value(&mut self, len: u8) -> Vec<u8> {
        self.next_id += 1;
        payload(self.next_id, usize::from(len) % (self.max_value() + 3))
    }

    fn expected(&self, key: &str, expect: Expect) -> u64 {
        let current = self.map.get(key).map_or(0, |e| e.1);
        match expect {
            Expect::Current => current,
            Expect::Absent => 0,
            Expect::Stale => current.wrapping_sub(1),
            Expect::Other(v) => v,
        }
    }

    /// An error that only damaged memory explains.
    fn damage(&self, e: StateError, op: &str) {
        match e {
            StateError::Contended => {}
            StateError::Corrupt(c) => assert!(!c.what().is_empty()),
            other => panic!("{op} failed with {other:?}"),
        }
        assert!(!self.clean, "{op} failed with {e:?} on an undamaged table");
        assert!(!e.to_string().is_empty());
    }

    /// Handles `KeyTooLong`, which a key op reports exactly when its key is too long,
    /// before it looks at the table; returns whether the op is done with.
    fn key_checked<T: Debug>(&self, key: &str, r: &Result<T, StateError>) -> bool {
        let too_long = key.len() > MAX_KEY_LEN;
        match r {
            Err(StateError::KeyTooLong { len, max }) => {
                assert!(
                    too_long,
                    "KeyTooLong for the {}-byte key {key:?}",
                    key.len()
                );
                assert_eq!((*len, *max), (key.len(), MAX_KEY_LEN));
                true
            }
            r => {
                assert!(!too_long, "{r:?} for the too long key {key:?}");
                false
            }
        }
    }

    fn check_write(
        &mut self,
        key: &str,
        value: &[u8],
        expect: Option<u64>,
        r: Result<u64, StateError>,
    ) {
        let too_large = value.len() > self.max_value();
        // Both limits are checked before the table is touched; which one a write that
        // breaks both reports is not part of the contract.
        if let Err(StateError::ValueTooLarge { len, max }) = r {
            assert!(too_large, "ValueTooLarge for {} bytes", value.len());
            assert_eq!((len, max), (value.len(), self.max_value()));
            return;
        }
        if too_large && key.len() > MAX_KEY_LEN {
            assert!(matches!(r, Err(StateError::KeyTooLong { .. })), "{r:?}");
            return;
        }
        assert!(!too_large, "{r:?} for a {}-byte value", value.len());
        if self.key_checked(key, &r) {
            return;
        }
        let capacity = self.options.capacity;
        if !self.clean {
            match r {
                Ok(_) => {}
                Err(StateError::TableFull { capacity: c }) => assert_eq!(c, capacity),
                Err(StateError::VersionMismatch { expected, .. }) => {
                    assert_eq!(Some(expected), expect, "VersionMismatch from a plain set")
                }
                Err(e) => self.damage(e, "a write"),
            }
            return;
        }
        let current = self.map.get(key).map(|e| e.1);
        let want = match (expect, current) {
            (Some(expected), Some(found)) if expected != found => {
                Err(StateError::VersionMismatch { expected, found })
            }
            (Some(expected), None) if expected != 0 => {
                Err(StateError::VersionMismatch { expected, found: 0 })
            }
            (_, None) if self.map.len() >= capacity => Err(StateError::TableFull { capacity }),
            _ => Ok(self.version + 1),
        };
        assert_eq!(r, want, "writing {key:?} (expecting {expect:?})");
        if let Ok(v) = r {
            self.version = v;
            self.map.insert(key.to_owned(), (value.to_vec(), v));
        }
    }

    fn check_remove(&mut self, key: &str, r: Result<Option<u64>, StateError>) {
        if self.key_checked(key, &r) {
            return;
        }
        if !self.clean {
            if let Err(e) = r {
                self.damage(e, "remove");
            }
            return;
        }
        let want = self.map.contains_key(key).then_some(self.version + 1);
        assert_eq!(r, Ok(want), "removing {key:?}");
        if let Some(v) = want {
            self.version = v;
            self.map.remove(key);
        }
    }

    fn check_get(&self, key: &str, r: Result<Option<Versioned<Vec<u8>>>, StateError>) {
        if self.key_checked(key, &r) {
            return;
        }
        match &r {
            Ok(Some(got)) => assert!(got.value.len() <= self.max_value()),
            Ok(None) => {}
            Err(e) => return self.damage(*e, "get"),
        }
        if self.clean {
            let want = self.map.get(key).map(|(value, version)| Versioned {
                value: value.clone(),
                version: *version,
            });
            assert_eq!(r, Ok(want), "reading {key:?}");
        }
    }

    fn check_get_into(
        &self,
        key: &str,
        buf: &[u8],
        r: Result<Option<Versioned<usize>>, StateError>,
    ) {
        if self.key_checked(key, &r) {
            return;
        }
        match r {
            Ok(Some(got)) => assert!(got.value <= buf.len() && got.value <= self.max_value()),
            Ok(None) => {}
            Err(StateError::BufferTooSmall { len, capacity }) => {
                assert_eq!(capacity, buf.len());
                assert!(len > capacity && len <= self.max_value());
            }
            Err(e) => return self.damage(e, "get_into"),
        }
        if !self.clean {
            return;
        }
        let want = self.map.get(key).map(|(value, version)| {
            if value.len() > buf.len() {
                Err(StateError::BufferTooSmall {
                    len: value.len(),
                    capacity: buf.len(),
                })
            } else {
                Ok(Versioned {
                    value: value.len(),
                    version: *version,
                })
            }
        });
        assert_eq!(
            r,
            want.transpose(),
            "reading {key:?} into {} bytes",
            buf.len()
        );
        if let Ok(Some(got)) = r {
            assert_eq!(&buf[..got.value], &self.map[key].0[..]);
        }
    }

    fn check_get_pod<T: Pod + Debug>(
        &self,
        key: &str,
        r: Result<Option<Versioned<T>>, StateError>,
    ) {
        if self.key_checked(key, &r) {
            return;
        }
        let size = std::mem::size_of::<T>();
        match r {
            Ok(_) => {}
            Err(StateError::WrongSize { expected, found }) => {
                assert_eq!(expected, size);
                assert!(found != size && found <= self.max_value());
            }
            Err(e) => return self.damage(e, "get_pod"),
        }
        if !self.clean {
            return;
        }
        let got = r.map(|o| o.map(|v| (bytemuck::bytes_of(&v.value).to_vec(), v.version)));
        let want = self.map.get(key).map(|(value, version)| {
            if value.len() == size {
                Ok((value.clone(), *version))
            } else {
                Err(StateError::WrongSize {
                    expected: size,
                    found: value.len(),
                })
            }
        });
        assert_eq!(got, want.transpose(), "reading {key:?} as {size} bytes");
    }

    fn check_wait_for(&self, key: &str, since: u64, r: Result<u64, StateError>) {
        if self.key_checked(key, &r) {
            return;
        }
        match r {
            Ok(v) => assert!(v > since, "woke for version {v}, waiting past {since}"),
            Err(StateError::Timeout) => {}
            Err(e) => return self.damage(e, "wait_for_change"),
        }
        if self.clean {
            let want = match self.map.get(key) {
                Some(&(_, v)) if v > since => Ok(v),
                _ => Err(StateError::Timeout),
            };
            assert_eq!(r, want, "waiting for {key:?} past {since}");
        }
    }

    /// Checks entries read from the table: within its bounds always, and while clean,
    /// exactly the model's (all of them if `complete`).
    fn check_entries(&self, entries: &[StateEntry], complete: bool) {
        assert!(
            entries.len() <= self.slots,
            "{} entries in {} slots",
            entries.len(),
            self.slots
        );
        for e in entries {
            assert!(e.key.len() <= MAX_KEY_LEN && e.value.len() <= self.max_value());
        }
        if !self.clean {
            return;
        }
        let mut seen = HashSet::new();
        for e in entries {
            assert!(seen.insert(&e.key), "key {:?} listed twice", e.key);
            let want = self.map.get(&e.key);
            assert_eq!(
                Some((&e.value, &e.version)),
                want.map(|(v, n)| (v, n)),
                "listed entry {:?}",
                e.key
            );
        }
        if complete {
            assert_eq!(
                entries.len(),
                self.map.len(),
                "entries missing from a listing"
            );
        }
    }

    fn check_len(&self, state: &SharedState) {
        let len = state.len();
        assert!(len <= self.options.capacity);
        assert_eq!(state.is_empty(), len == 0);
        if self.clean {
            assert_eq!(len, self.map.len());
            assert_eq!(state.version(), self.version);
        }
    }

    fn run_action(&mut self, on: &On<'_, '_>, action: &Action) {
        let key = on.key().to_owned();
        match action {
            Action::Get => self.check_get(&key, on.get()),
            Action::GetInto { buf } => {
                let mut buf = vec![0xA5; usize::from(*buf) % (self.max_value() + 2)];
                let r = on.get_into(&mut buf);
                self.check_get_into(&key, &buf, r);
            }
            Action::GetPod(kind) => match kind {
                PodKind::U8 => self.check_get_pod(&key, on.get_pod::<u8>()),
                PodKind::U16 => self.check_get_pod(&key, on.get_pod::<u16>()),
                PodKind::U32 => self.check_get_pod(&key, on.get_pod::<u32>()),
                PodKind::U64 => self.check_get_pod(&key, on.get_pod::<u64>()),
                PodKind::Triple => self.check_get_pod(&key, on.get_pod::<[u16; 3]>()),
                PodKind::Wide => self.check_get_pod(&key, on.get_pod::<[u64; 4]>()),
            },
            Action::Set { len } => {
                let value = self.value(*len);
                let r = on.set(&value);
                self.check_write(&key, &value, None, r);
            }
            Action::SetPod(value) => {
                let (bytes, r) = match *value {
                    PodValue::U8(v) => on.set_pod(v),
                    PodValue::U16(v) => on.set_pod(v),
                    PodValue::U32(v) => on.set_pod(v),
                    PodValue::U64(v) => on.set_pod(v),
                    PodValue::Triple(v) => on.set_pod(v),
                    PodValue::Wide(v) => on.set_pod(v),
                };
                self.check_write(&key, &bytes, None, r);
            }
            Action::CompareAndSet { expect, len } => {
                let expected = self.expected(&key, *expect);
                let value = self.value(*len);
                let r = on.compare_and_set(expected, &value);
                self.check_write(&key, &value, Some(expected), r);
            }
            Action::Remove => self.check_remove(&key, on.remove()),
            Action::WaitFor { back } => {
                let since = self.version.saturating_sub(u64::from(*back));
                self.check_wait_for(&key, since, on.wait_for_change(since));
            }
        }
    }

    /// Runs `op` on `handles` and the entries opened from them.
    fn run<'h>(
        &mut self,
        handles: &'h [SharedState; 2],
        entries: &mut [Option<Entry<'h>>; ENTRIES],
        op: &Op,
    ) {
        let handle = |second: bool| &handles[usize::from(second)];
        match op {
            Op::ByKey {
                second,
                key,
                action,
            } => {
                let key = KEYS[usize::from(*key) % KEYS.len()];
                self.run_action(&On::Key(handle(*second), key), action);
            }
            Op::ByEntry { n, action } => {
                if let Some(entry) = &entries[usize::from(*n) % ENTRIES] {
                    self.run_action(&On::Entry(entry), action);
                }
            }
            Op::Open { second, n, key } => {
                let key = KEYS[usize::from(*key) % KEYS.len()];
                let r = handle(*second).entry(key);
                if !self.key_checked(key, &r) {
                    let entry = r.expect("entry fails only for a too long key");
                    assert_eq!(entry.key(), key);
                    entries[usize::from(*n) % ENTRIES] = Some(entry);
                }
            }
            Op::Snapshot { second } => match handle(*second).snapshot() {
                Ok(snap) => {
                    self.check_entries(&snap.entries, true);
                    if self.clean {
                        assert_eq!(snap.version, self.version);
                    }
                }
                Err(e) => self.damage(e, "snapshot"),
            },
            Op::Iter { second, take } => {
                // One more than the slots: an iterator must end by itself.
                let limit = usize::from(*take).min(self.slots + 1);
                let mut listed = Vec::new();
                let mut failed = false;
                let mut items = 0;
                for item in handle(*second).iter().take(limit) {
                    items += 1;
                    match item {
                        Ok(e) => listed.push(e),
                        Err(e) => {
                            self.damage(e, "iter");
                            failed = true;
                        }
                    }
                }
                assert!(
                    items <= self.slots,
                    "an iterator went past the table's slots"
                );
                self.check_entries(&listed, items < limit && !failed);
            }
            Op::Wait { second, back } => {
                let since = self.version.saturating_sub(u64::from(*back));
                match handle(*second).wait_for_change(since, Duration::ZERO) {
                    Ok(v) => {
                        assert!(v > since, "woke for version {v}, waiting past {since}");
                        if self.clean {
                            assert_eq!(v, self.version);
                        }
                    }
                    Err(StateError::Timeout) => {
                        assert!(!self.clean || self.version <= since, "missed a change")
                    }
                    Err(e) => panic!("wait_for_change failed with {e:?}"),
                }
            }
            Op::Len { second } => self.check_len(handle(*second)),
        }
    }
}

/// Checks the sizes a handle reports against the options it was made with.
fn check_handle(state: &SharedState, options: &StateOptions) {
    assert_eq!(
        (state.capacity(), state.max_key_len(), state.max_value_len()),
        (options.capacity, options.max_key_len, options.max_value_len)
    );
}

// ---------------------------------------------------------------------------------------
// state_ops
// ---------------------------------------------------------------------------------------

/// Runs operations on a heap table of 1 to 4 keys through two clones and three entry
/// handles, and checks every result against a map: values and versions exactly (each
/// successful write takes the next version, a failed one none), `TableFull` exactly when
/// a new key meets a full table, `VersionMismatch` with the key's version, `BufferTooSmall`
/// and `WrongSize` with the right sizes, and listings equal to the map.
pub fn state_ops(data: &[u8]) {
    let Some((setup, ops)) = decode::<Setup, Op>(data, MAX_OPS) else {
        return;
    };
    let options = setup.options();
    let state = SharedState::new(options);
    check_handle(&state, &options);
    assert!(state.segment().is_none());
    let handles = [state.clone(), state];
    let mut entries = [None, None, None];
    let mut model = Model::new(options);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        model.run(&handles, &mut entries, op);
        assert_eq!(handles[0].version(), model.version, "versions drifted");
        assert_eq!(handles[1].version(), model.version, "clones disagree");
    }
    model.run(&handles, &mut entries, &Op::Snapshot { second: true });
}

// ---------------------------------------------------------------------------------------
// state_hostile
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum HostileOp {
    Op(Op),
    Scribble(Scribble),
    /// Opens the table again by name and reads a key through the new handle.
    Reopen {
        key: u8,
    },
}

/// A word the hostile peer writes into the table.
#[derive(Arbitrary, Debug)]
enum Scribble {
    Header {
        field: HeaderField,
        value: Value,
    },
    Slot {
        slot: u8,
        field: SlotField,
        value: Value,
    },
    /// Any 8-byte word of the table, `index` wrapping around its words.
    Raw {
        index: u16,
        value: Value,
    },
    /// Copies every word of one slot over another: two slots holding one key.
    CloneSlot {
        from: u8,
        to: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum HeaderField {
    Version,
    MembersLock,
    Len,
    MaxProbe,
    /// The change signal's `{epoch u32, waiters u32}`.
    Signal,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SlotField {
    Seq,
    Lock,
    Incarnation,
    KeyMeta,
    Key(u8),
    /// A value copy's `META` (`LIVE` | length); `true` is copy 1.
    Meta(bool),
    Version(bool),
    ValueWord(bool, u8),
}

/// What to write, from the word's current value.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Value {
    Raw(u64),
    /// A small number: lengths, counts, distances.
    Small(u8),
    /// `LIVE | n`: a live value copy of `n` bytes.
    LiveLen(u8),
    /// Flips one bit: `WRITING` and the active copy in `SEQ`, `LIVE` in `META`.
    Flip(u8),
    Add(i8),
    /// Our own lock token: a holder that stays alive.
    Mine,
    /// Pid 1 with an unknown start time (also the heap's token): alive too.
    Init,
}

/// Where the words of a table lie (see `ringport::state`'s layout).
struct Layout {
    slots: usize,
    key_words: usize,
    value_words: usize,
    slot_words: usize,
}

impl Layout {
    fn of(options: &StateOptions) -> Layout {
        let key_words = options.max_key_len.div_ceil(8);
        let value_words = options.max_value_len.div_ceil(8);
        Layout {
            slots: (2 * options.capacity).next_power_of_two(),
            key_words,
            value_words,
            slot_words: (4 + key_words + 2 * (2 + value_words)).next_multiple_of(8),
        }
    }

    fn words(&self) -> usize {
        HEADER_LEN / 8 + self.slots * self.slot_words
    }

    /// Word index of `field` in slot `slot` (wrapping).
    fn slot_word(&self, slot: u8, field: SlotField) -> usize {
        let copy = |second: bool| 4 + self.key_words + usize::from(second) * (2 + self.value_words);
        let within = match field {
            SlotField::Seq => 0,
            SlotField::Lock => 1,
            SlotField::Incarnation => 2,
            SlotField::KeyMeta => 3,
            SlotField::Key(i) => 4 + usize::from(i) % self.key_words,
            SlotField::Meta(second) => copy(second),
            SlotField::Version(second) => copy(second) + 1,
            SlotField::ValueWord(second, i) => {
                copy(second) + 2 + usize::from(i) % self.value_words.max(1)
            }
        };
        HEADER_LEN / 8 + usize::from(slot) % self.slots * self.slot_words + within
    }
}

/// The hostile peer: the table's segment, mapped again as another process would.
struct Peer {
    segment: Segment,
    layout: Layout,
    token: u64,
}

impl Peer {
    fn word(&self, index: usize) -> &AtomicU64 {
        let index = index % self.layout.words();
        // SAFETY: the payload holds `layout.words()` 8-byte words (checked when the peer
        // was made) and starts 128-byte aligned, so the word is in bounds and aligned; it
        // stays mapped while `self.segment` lives, and every access to it, the table's
        // and ours, is atomic.
        unsafe { AtomicU64::from_ptr(self.segment.payload().as_ptr().add(index * 8).cast()) }
    }

    fn write(&self, index: usize, value: Value) {
        let word = self.word(index);
        let old = word.load(Ordering::Relaxed);
        let new = match value {
            Value::Raw(v) => v,
            Value::Small(n) => u64::from(n),
            Value::LiveLen(n) => LIVE | u64::from(n),
            Value::Flip(bit) => old ^ (1 << (bit % 64)),
            Value::Add(d) => old.wrapping_add_signed(i64::from(d)),
            Value::Mine => self.token,
            Value::Init => 1,
        };
        word.store(new, Ordering::Relaxed);
    }

    fn apply(&self, s: &Scribble) {
        match s {
            Scribble::Header { field, value } => {
                let offset = match field {
                    HeaderField::Version => 0,
                    HeaderField::MembersLock => 128,
                    HeaderField::Len => 136,
                    HeaderField::MaxProbe => 144,
                    HeaderField::Signal => 256,
                };
                self.write(offset / 8, *value);
            }
            Scribble::Slot { slot, field, value } => {
                self.write(self.layout.slot_word(*slot, *field), *value)
            }
            Scribble::Raw { index, value } => self.write(usize::from(*index), *value),
            Scribble::CloneSlot { from, to } => {
                let from = self.layout.slot_word(*from, SlotField::Seq);
                let to = self.layout.slot_word(*to, SlotField::Seq);
                for i in 0..self.layout.slot_words {
                    let v = self.word(from + i).load(Ordering::Relaxed);
                    self.word(to + i).store(v, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Creates a named table and opens it twice (as a table, and as raw memory), then runs
/// the ops. Until the first scribble the table must agree with the model exactly, as in
/// [`state_ops`]; after it, every call must return promptly (within about a patience)
/// with `Ok` or a documented error, values and keys must stay within the table's
/// limits, and listings must end within its slot count.
pub fn state_hostile(data: &[u8]) {
    let Some((setup, ops)) = decode::<Setup, HostileOp>(data, MAX_HOSTILE_OPS) else {
        return;
    };
    let options = setup.options();
    let name = unique_name("state");
    let _unlink = Unlink(name.clone());
    let mut creator =
        SharedState::create(&name, options).unwrap_or_else(|e| panic!("create {name}: {e}"));
    let mut opener = SharedState::open(&name).unwrap_or_else(|e| panic!("open {name}: {e}"));
    for state in [&mut creator, &mut opener] {
        check_handle(state, &options);
        state.set_patience(HOSTILE_PATIENCE);
        assert_eq!(state.patience(), HOSTILE_PATIENCE);
    }
    assert!(creator.segment().is_some_and(Segment::is_owner));
    assert!(opener.segment().is_some_and(|s| !s.is_owner()));
    let segment = Segment::open(&name, KIND_STATE).unwrap_or_else(|e| panic!("map {name}: {e}"));
    let layout = Layout::of(&options);
    assert_eq!(
        segment.payload_len(),
        layout.words() * 8,
        "unexpected table layout"
    );
    let peer = Peer {
        segment,
        layout,
        token: own_token(),
    };
    let handles = [creator, opener];
    let mut entries = [None, None, None];
    let mut model = Model::new(options);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        match op {
            HostileOp::Op(op) => model.run(&handles, &mut entries, op),
            HostileOp::Scribble(s) => {
                model.clean = false;
                peer.apply(s);
            }
            HostileOp::Reopen { key } => {
                let mut state =
                    SharedState::open(&name).unwrap_or_else(|e| panic!("reopen {name}: {e}"));
                check_handle(&state, &options);
                state.set_patience(HOSTILE_PATIENCE);
                let key = KEYS[usize::from(*key) % KEYS.len()];
                model.check_get(key, state.get(key));
            }
        }
    }
    for second in [false, true] {
        model.run(&handles, &mut entries, &Op::Snapshot { second });
        model.run(&handles, &mut entries, &Op::Len { second });
    }
}
