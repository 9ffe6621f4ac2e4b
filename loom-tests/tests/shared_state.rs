//! Loom models of `SharedState`: the two-copy seqlock of a slot (no torn or stale read),
//! the table version that announces a write before its data, the wakeup of
//! `wait_for_change`, and the membership of a key racing between insert and remove.
//!
//! Every table is the smallest that shows the behaviour: one or two keys, an 8-byte key
//! limit and a 16-byte value limit, so that a value is two words and a read can tear
//! between them. Values are two equal words `[n, n]`, so any read that mixes two writes
//! shows as unequal words, and each write's `n` differs from the others'.
//!
//! Loom has no clock, so a state operation that waits for another participant yields to
//! the model a few times and then reports `StateError::Contended` (see `Patience` in
//! `src/state/seqlock.rs`). A model therefore accepts `Contended` from any operation that
//! can wait, and checks everything else: a value read must be one that was written, with
//! the version its write returned.
#![cfg(loom)]

use loom::thread;
use loom_tests::run;
use ringport::state::{Entry, SharedState, StateError, StateOptions, Versioned};
use std::time::Duration;

/// A value: two words, so that a torn read shows as unequal halves.
type Value = [u64; 2];

/// The seqlock's fences: without either, a reader can accept a copy that a later write
/// was overwriting.
const SEQLOCK_MUTANTS: &[&str] = &["state_writer_no_fence", "state_reader_no_fence"];

/// A lost wakeup in the signal, through its fences or its wake, leaves a sleeper parked.
const SIGNAL_MUTANTS: &[&str] = &["signal_no_fence", "signal_no_notify"];

/// Never reached under loom, whose modelled futex never times out: a wait ends only when
/// it is woken, and a lost wakeup is a deadlock.
const FOREVER: Duration = Duration::from_secs(3600);

fn table(capacity: usize) -> SharedState {
    SharedState::new(StateOptions {
        capacity,
        max_key_len: 8,
        max_value_len: 16,
    })
}

fn value(n: u64) -> Value {
    [n, n]
}

/// What a read of the write of `[n, n]` at `version` returns.
fn versioned(n: u64, version: u64) -> Versioned<Value> {
    Versioned {
        value: value(n),
        version,
    }
}

/// Reads `key` as a [`Value`]: `Ok(None)` if absent, `Err(())` if the read gave up on
/// contention; any other error fails the model.
fn read(state: &SharedState, key: &str) -> Result<Option<Versioned<Value>>, ()> {
    match state.get_pod::<Value>(key) {
        Ok(got) => Ok(got),
        Err(StateError::Contended) => Err(()),
        Err(e) => panic!("get_pod({key:?}): {e}"),
    }
}

/// Reads through an entry handle, whose cached slot takes the handle's own fast path.
fn read_entry(entry: &Entry<'_>) -> Result<Option<Versioned<Value>>, ()> {
    match entry.get_pod::<Value>() {
        Ok(got) => Ok(got),
        Err(StateError::Contended) => Err(()),
        Err(e) => panic!("entry get_pod: {e}"),
    }
}

/// Writes `[n, n]` to `key`: its version, or `None` if the write gave up on contention.
fn write(state: &SharedState, key: &str, n: u64) -> Option<u64> {
    match state.set_pod(key, &value(n)) {
        Ok(v) => Some(v),
        Err(StateError::Contended) => None,
        Err(e) => panic!("set_pod({key:?}, {n}): {e}"),
    }
}

/// Asserts that `got` is untorn and is the write of `[n, n]`, which returned
/// `versions[n]` (`None`: that write gave up, so nothing may show it).
fn assert_written(got: Versioned<Value>, versions: &[Option<u64>]) {
    let [a, b] = got.value;
    assert_eq!(a, b, "torn read: {got:?}");
    let written = usize::try_from(a)
        .ok()
        .and_then(|n| versions.get(n).copied());
    let Some(Some(version)) = written else {
        panic!("a value nobody wrote: {got:?}");
    };
    assert_eq!(
        got.version, version,
        "torn read: one write's value, another's version"
    );
}

/// The write of `[n, n]` with the highest version among those that happened: the value
/// a key must end with.
fn newest(versions: &[Option<u64>]) -> Versioned<Value> {
    let (version, n) = (0u64..)
        .zip(versions)
        .filter_map(|(n, v)| v.map(|v| (v, n)))
        .max()
        .expect("the first write happened");
    versioned(n, version)
}

/// One writer updates a key twice while a reader reads it twice. The second write fills
/// the copy that was published before the first, so a reader still copying that copy
/// sees the words of two writes unless its validation catches the overwrite.
///
/// Not a control of `state_writer_no_fence`: between its two writes the writer notifies,
/// and the notifier's `SeqCst` fence is a release fence that orders the first write's
/// flip before the second write's words, doing the missing fence's work. Only a second
/// writer thread, which has issued no fence, shows that mutant (next model).
#[test]
fn reader_never_sees_a_torn_value() {
    run(&["state_reader_no_fence"], || {
        let state = table(1);
        let v0 = write(&state, "k", 0).expect("no contention yet");
        // Resolved before the writer starts, so its reads below take the handle's path.
        let entry = state.entry("k").expect("a short key");
        assert!(read_entry(&entry).expect("no contention yet").is_some());
        let writer = {
            let state = state.clone();
            // A reader that saw the slot marked may hold its lock for a moment (see
            // `rescue` in src/state/seqlock.rs), so even the only writer may give up.
            thread::spawn(move || [1, 2].map(|n| write(&state, "k", n)))
        };
        let reads = [read(&state, "k"), read_entry(&entry)];
        let [v1, v2] = writer.join().unwrap();
        let versions = [Some(v0), v1, v2];
        let taken: Vec<u64> = versions.iter().flatten().copied().collect();
        assert!(
            taken.windows(2).all(|w| w[0] < w[1]),
            "versions {versions:?} out of order"
        );
        let mut last = 0;
        for got in reads.into_iter().flatten() {
            let got = got.expect("the key is never removed");
            assert_written(got, &versions);
            assert!(got.version >= last, "a read went back in time: {got:?}");
            last = got.version;
        }
        let end = read(&state, "k").expect("no writer left");
        assert_eq!(end, Some(newest(&versions)));
    });
}

/// Two writers update one key while a reader reads it. The writers serialise on the
/// slot's lock, so their versions differ and the later one's value stays; whichever
/// writes second fills the copy the reader may still be copying, and, having issued no
/// fence of its own before, relies on the writer's `Release` fence alone to make its
/// words imply the first writer's flip.
#[test]
fn writers_of_one_key_serialise_and_readers_see_whole_values() {
    run(SEQLOCK_MUTANTS, || {
        let state = table(1);
        let v0 = write(&state, "k", 0).expect("no contention yet");
        let writers = [1, 2].map(|n| {
            let state = state.clone();
            thread::spawn(move || write(&state, "k", n))
        });
        let seen = read(&state, "k");
        let [v1, v2] = writers.map(|w| w.join().unwrap());
        let versions = [Some(v0), v1, v2];
        if let (Some(a), Some(b)) = (v1, v2) {
            assert_ne!(a, b, "two writes took one version");
        }
        if let Ok(got) = seen {
            assert_written(got.expect("the key is never removed"), &versions);
        }
        let end = read(&state, "k").expect("no writer left");
        assert_eq!(end, Some(newest(&versions)));
    });
}

/// A reader that has seen the table version of an update reads the key: it must get
/// that update (or give up on contention while the update is still being written),
/// never the value before it. The update marks its slot before it takes its version,
/// and the version's `AcqRel` increment carries the mark to whoever sees the version.
#[test]
fn a_reader_that_saw_an_update_version_sees_the_update() {
    run(&["state_version_relaxed"], || {
        let state = table(1);
        let v0 = write(&state, "k", 0).expect("no contention yet");
        let writer = {
            let state = state.clone();
            thread::spawn(move || write(&state, "k", 1).expect("the only writer"))
        };
        let seen = state.version();
        let got = (seen > v0).then(|| read(&state, "k"));
        let v1 = writer.join().unwrap();
        assert!(seen == v0 || seen == v1, "table version {seen} of no write");
        if let Some(Ok(got)) = got {
            let got = got.expect("the key is never removed");
            assert_eq!(got, versioned(1, v1), "a stale read");
        }
    });
}

/// As above for an insert: a reader that has seen the insert's version must find the
/// key, through the membership words as well as the slot.
#[test]
fn a_reader_that_saw_an_insert_version_finds_the_key() {
    run(&["state_version_relaxed"], || {
        let state = table(1);
        let writer = {
            let state = state.clone();
            thread::spawn(move || write(&state, "k", 1).expect("the only writer"))
        };
        let seen = state.version();
        let got = (seen > 0).then(|| read(&state, "k"));
        let v1 = writer.join().unwrap();
        assert!(seen == 0 || seen == v1, "table version {seen} of no write");
        if let Some(Ok(got)) = got {
            let got = got.expect("a key whose insert's version was seen is absent");
            assert_eq!(got, versioned(1, v1), "a stale read");
        }
    });
}

/// `wait_for_change` sleeps on the table's signal until a write: the writer's notify
/// must wake it, and what it returns is a version whose write the next read shows.
#[test]
fn wait_for_change_is_woken_by_a_write() {
    run(SIGNAL_MUTANTS, || {
        let state = table(1);
        let v0 = write(&state, "k", 0).expect("no contention yet");
        let writer = {
            let state = state.clone();
            thread::spawn(move || write(&state, "k", 1).expect("the only writer"))
        };
        let woke = state.wait_for_change(v0, FOREVER).expect("never times out");
        let got = read(&state, "k");
        let v1 = writer.join().unwrap();
        assert_eq!(woke, v1, "woken with the version of no write");
        if let Ok(got) = got {
            let got = got.expect("the key is never removed");
            assert_eq!(got, versioned(1, v1), "a stale read");
        }
    });
}

/// `Entry::wait_for_change` wakes on every write to the table but returns only for its
/// own key: a write to another key wakes it to re-read its key and sleep again, and the
/// write to its key must then wake it a second time.
#[test]
fn entry_wait_for_change_waits_for_its_own_key() {
    run(SIGNAL_MUTANTS, || {
        let state = table(2);
        let v0 = write(&state, "k", 0).expect("no contention yet");
        let writer = {
            let state = state.clone();
            thread::spawn(move || {
                let other = write(&state, "other", 7).expect("no other writer");
                let v1 = write(&state, "k", 1).expect("no other writer");
                (other, v1)
            })
        };
        let entry = state.entry("k").expect("a short key");
        let woke = entry.wait_for_change(v0, FOREVER);
        let (other, v1) = writer.join().unwrap();
        assert!(other < v1);
        match woke {
            Ok(v) => assert_eq!(v, v1, "woken by a write to another key"),
            Err(StateError::Contended) => {}
            Err(e) => panic!("wait_for_change: {e}"),
        }
    });
}

/// A remove and a set of one key race: each takes a version, the later one decides
/// whether the key stays, and the live-key count agrees with the key's presence.
#[test]
fn remove_and_set_of_one_key_agree_with_the_count() {
    run(&[], || {
        let state = table(1);
        let v0 = write(&state, "k", 0).expect("no contention yet");
        let remover = {
            let state = state.clone();
            thread::spawn(move || match state.remove("k") {
                Ok(removed) => Some(removed.expect("present until removed")),
                Err(StateError::Contended) => None,
                Err(e) => panic!("remove: {e}"),
            })
        };
        let set = write(&state, "k", 1);
        let removed = remover.join().unwrap();
        let end = read(&state, "k").expect("no writer left");
        assert_eq!(
            state.len(),
            usize::from(end.is_some()),
            "count {} vs {end:?}",
            state.len()
        );
        let mut last = (v0, Some(value(0)));
        for (v, now) in [(set, Some(value(1))), (removed, None)] {
            if let Some(v) = v {
                assert_ne!(v, last.0, "two writes took one version");
                if v > last.0 {
                    last = (v, now);
                }
            }
        }
        let expected = last.1.map(|value| Versioned {
            value,
            version: last.0,
        });
        assert_eq!(
            end, expected,
            "the later write did not decide (set {set:?}, remove {removed:?})"
        );
    });
}
