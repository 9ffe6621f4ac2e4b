//! `SharedState` between really separate processes: writers killed with SIGKILL in the
//! middle of an update (of a value, or of the table's membership), and wakeups and a
//! late joiner's snapshot across processes.
//!
//! A test that needs a peer re-executes this test binary as
//! `<exe> <test> --exact --nocapture` with `ROLE_VAR` set; every test first calls
//! [`play_child_role`], which plays that role and tells the test to return.
//!
//! Sizes: `RINGPORT_KILL_ROUNDS` (default 20) kills of a writer and of an inserter (at
//! least 20 of those), and `RINGPORT_STATE_PINGS` (default 200) round trips.

mod common;
#[path = "common/peer.rs"]
mod peer;

use common::{env_count, watchdog, Payloads};
use peer::{announce, Peer, HANG};
use ringport::process::ProcessId;
use ringport::segment::Segment;
use ringport::state::{SharedState, StateError, StateOptions, DEFAULT_PATIENCE};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "RINGPORT_STATE_ROLE";
const NAME_VAR: &str = "RINGPORT_STATE_NAME";
const COUNT_VAR: &str = "RINGPORT_STATE_COUNT";

/// Keys the killed writers update.
/// Their lengths differ, which is how [`Raw::slot_of`] tells their slots apart.
const KEYS: [&str; 3] = ["up", "down", "strange"];
/// Big values, so that a writer spends most of its time in the middle of a write.
const MAX_VALUE: usize = 64 << 10;

fn kill_rounds() -> u64 {
    env_count("RINGPORT_KILL_ROUNDS", 20)
}

fn pings() -> u64 {
    env_count("RINGPORT_STATE_PINGS", 200)
}

/// A table name no other test, and no concurrent run of this binary, uses.
fn unique(test: &str) -> String {
    format!("rp-state-xproc-{}-{test}", std::process::id())
}

fn spawn(test: &str, role: &str, name: &str, count: u64) -> Peer {
    let count = count.to_string();
    Peer::spawn(
        test,
        &[(ROLE_VAR, role), (NAME_VAR, name), (COUNT_VAR, &count)],
    )
}

/// A value that proves it was written whole: stamp `c` and the key's index up front,
/// a length that `c` determines, and every other byte `c as u8`.
fn stamped(c: u64, key: usize) -> Vec<u8> {
    let len = MAX_VALUE / 2 + (c as usize % (MAX_VALUE / 16)) * 8;
    let mut v = vec![c as u8; len];
    v[..8].copy_from_slice(&c.to_le_bytes());
    v[8..16].copy_from_slice(&(key as u64).to_le_bytes());
    v
}

/// Checks a value made by [`stamped`] for `key` and returns its stamp.
fn check_stamped(key: usize, v: &[u8]) -> u64 {
    assert!(v.len() >= 16, "{}: {} bytes", KEYS[key], v.len());
    let c = u64::from_le_bytes(v[..8].try_into().unwrap());
    assert_eq!(
        u64::from_le_bytes(v[8..16].try_into().unwrap()),
        key as u64,
        "{}: another key's value",
        KEYS[key]
    );
    assert_eq!(v.len(), stamped(c, key).len(), "{}: torn length", KEYS[key]);
    assert!(
        v[16..].iter().all(|&b| b == c as u8),
        "{}: torn value",
        KEYS[key]
    );
    c
}

/// Blocks until the parent writes a line.
fn await_parent() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// If this process is a child, plays its role and returns true: the test function must
/// then return without doing its own part.
fn play_child_role() -> bool {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return false;
    };
    let name = std::env::var(NAME_VAR).expect("a child gets a name");
    let count: u64 = std::env::var(COUNT_VAR)
        .expect("a child gets a count")
        .parse()
        .unwrap();
    let state = SharedState::open(&name).unwrap();
    match role.as_str() {
        "writer" => writer_child(&state),
        "inserter" => inserter_child(&state),
        "ponger" => ponger_child(&state, count),
        "late-joiner" => late_joiner_child(&state, count),
        other => panic!("unknown child role {other:?}"),
    }
    true
}

/// Writes big stamped values to every key until killed. Its first writes may have to
/// take a key over from the writer killed before it.
fn writer_child(state: &SharedState) -> ! {
    let entries: Vec<_> = KEYS.iter().map(|k| state.entry(k).unwrap()).collect();
    let base = u64::from(std::process::id()) << 32;
    for c in base.. {
        for (i, key) in KEYS.iter().enumerate() {
            let value = stamped(c, i);
            // Both paths: by key, and through a handle.
            if c % 2 == 0 {
                state.set(key, &value).unwrap();
            } else {
                entries[i].set(&value).unwrap();
            }
        }
        if c == base {
            announce("@@WRITING@@", "");
        }
    }
    unreachable!()
}

/// Inserts and removes keys of its own until killed, so that it nearly always holds the
/// membership lock.
fn inserter_child(state: &SharedState) -> ! {
    let pid = std::process::id();
    for i in 0u64.. {
        let key = format!("m{pid}-{i}");
        state.set(&key, &i.to_le_bytes()).unwrap();
        assert!(state.remove(&key).unwrap().is_some());
        if i == 0 {
            announce("@@CHURNING@@", "");
        }
    }
    unreachable!()
}

/// splitmix64, seeded from the clock: where in a write each kill lands.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// A raw second mapping of the table, to see what a killed writer left behind before
/// anyone touches it. Offsets are ARCHITECTURE.md's.
struct Raw {
    seg: Segment,
    slot_bytes: usize,
    slots: usize,
}

const HEADER_BYTES: usize = 384;
const MEMBERS_LOCK: usize = 128;
const SEQ: usize = 0;
const LOCK: usize = 1;
const KEY_META: usize = 3;
const WRITING: u64 = 1;

impl Raw {
    fn open(state: &SharedState) -> Raw {
        let seg = Segment::open(
            state.segment().unwrap().name(),
            u32::from_le_bytes(*b"STAT"),
        )
        .unwrap();
        let words =
            4 + state.max_key_len().div_ceil(8) + 2 * (2 + state.max_value_len().div_ceil(8));
        let slots = (state.capacity() * 2).next_power_of_two();
        let slot_bytes = words.next_multiple_of(8) * 8;
        assert_eq!(seg.payload_len(), HEADER_BYTES + slots * slot_bytes);
        Raw {
            seg,
            slot_bytes,
            slots,
        }
    }

    fn at(&self, offset: usize) -> u64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.seg.payload_len());
        // SAFETY: the offset is 8-aligned and inside the payload (checked above), which
        // is mapped for as long as `self.seg` lives; every access to it is atomic.
        let word = unsafe { AtomicU64::from_ptr(self.seg.payload().as_ptr().add(offset).cast()) };
        word.load(Ordering::Acquire)
    }

    fn slot(&self, index: usize, word: usize) -> u64 {
        self.at(HEADER_BYTES + index * self.slot_bytes + word * 8)
    }

    /// The slot of `key`, known by its length alone.
    fn slot_of(&self, key: &str) -> usize {
        let found: Vec<usize> = (0..self.slots)
            .filter(|&i| self.slot(i, KEY_META) & 0xffff_ffff == key.len() as u64)
            .collect();
        assert_eq!(found.len(), 1, "{key}");
        found[0]
    }
}

/// SIGKILLs the child and returns once it is dead: reaped, or (to check that a zombie
/// counts as dead) left a zombie.
fn kill(peer: &mut Peer, reap: bool) {
    peer.kill(reap);
    if !reap {
        let start = Instant::now();
        while proc_state(peer.pid()) != Some('Z') {
            assert!(
                start.elapsed() < HANG,
                "the killed child never became a zombie"
            );
            thread::sleep(Duration::from_micros(100));
        }
    }
}

/// The process state letter from `/proc/<pid>/stat`, if the process still exists.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn token(id: ProcessId) -> u64 {
    (id.start_time << 22) | u64::from(id.pid)
}

/// What each kill interrupted.
#[derive(Debug, Default)]
struct Caught {
    /// Kills that left a key's lock held by the dead writer.
    locked: u64,
    /// Kills that left a key marked as being written.
    writing: u64,
}

/// A writer of big values is killed at a random moment, many times. Right after each
/// kill every key still reads as one whole committed value, its version never goes
/// back, and every key can be written again within the default patience: by the parent
/// (after reading, or straight away) or by the next writer.
#[test]
fn sigkilled_writer_loses_only_its_unfinished_write() {
    if play_child_role() {
        return;
    }
    let test = "sigkilled_writer_loses_only_its_unfinished_write";
    let name = unique("killed-writer");
    let options = StateOptions {
        capacity: 4,
        max_key_len: 8,
        max_value_len: MAX_VALUE,
    };
    let state = SharedState::create(&name, options).unwrap();
    assert_eq!(state.patience(), DEFAULT_PATIENCE);
    let rounds = kill_rounds();
    let limit = HANG + Duration::from_secs(rounds);
    let (caught, _) = watchdog(test, limit, move || {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mut rng = Rng(seed);
        let mut raw = None;
        let mut last_version = [0u64; KEYS.len()];
        let mut caught = Caught::default();
        let mut slowest = Duration::ZERO;
        for round in 0..rounds {
            let mut peer = spawn(test, "writer", &name, 0);
            let child = token(ProcessId::of(peer.pid()).expect("the child runs"));
            peer.expect("@@WRITING@@");
            thread::sleep(Duration::from_micros(rng.below(2000)));
            kill(&mut peer, round % 2 == 0);

            let raw = raw.get_or_insert_with(|| Raw::open(&state));
            for key in KEYS {
                let slot = raw.slot_of(key);
                caught.locked += u64::from(raw.slot(slot, LOCK) == child);
                caught.writing += u64::from(raw.slot(slot, SEQ) & WRITING != 0);
            }

            let start = Instant::now();
            let read_first = round % 2 == 0 || round % 3 == 2;
            if read_first {
                // Readers clear what the dead writer left, and see its last whole write.
                for (i, key) in KEYS.iter().enumerate() {
                    let got = state.get(key).unwrap().expect("written before the kill");
                    check_stamped(i, &got.value);
                    assert!(got.version >= last_version[i], "{key} went back");
                    last_version[i] = got.version;
                }
            }
            if round % 3 != 2 {
                // Writers take the keys over (when the reads above did not already).
                for (i, key) in KEYS.iter().enumerate() {
                    let v = state
                        .set(key, &stamped(round, i))
                        .unwrap_or_else(|e| panic!("round {round}: {key}: {e}"));
                    assert!(v > last_version[i]);
                    last_version[i] = v;
                }
                for (i, key) in KEYS.iter().enumerate() {
                    let got = state.get(key).unwrap().unwrap();
                    assert_eq!(
                        (check_stamped(i, &got.value), got.version),
                        (round, last_version[i])
                    );
                }
            }
            // Otherwise the next writer takes the keys over: it announces only after a
            // successful write of every key.
            slowest = slowest.max(start.elapsed());
            assert_eq!(state.len(), KEYS.len());
        }
        let snap = state.snapshot().unwrap();
        assert_eq!(snap.entries.len(), KEYS.len());
        for e in &snap.entries {
            let i = KEYS.iter().position(|k| *k == e.key).unwrap();
            check_stamped(i, &e.value);
        }
        eprintln!("{rounds} kills: {caught:?}; slowest recovery of all keys {slowest:?}");
        caught
    });
    // The child is inside a write most of the time (about 70 % of kills in a release
    // build): with a handful of rounds, some kill surely lands inside one.
    if rounds >= 10 {
        assert!(
            caught.locked + caught.writing > 0,
            "no kill landed inside a write in {rounds} rounds"
        );
    }
}

/// A process killed while it inserts and removes keys, nearly always holding the
/// membership lock: the next insert takes the lock over and recounts the keys.
#[test]
fn sigkilled_inserter_leaves_membership_recoverable() {
    if play_child_role() {
        return;
    }
    let test = "sigkilled_inserter_leaves_membership_recoverable";
    let name = unique("killed-inserter");
    let options = StateOptions {
        capacity: 16,
        max_key_len: 32,
        max_value_len: 8,
    };
    let state = SharedState::create(&name, options).unwrap();
    state.set("stays", b"here").unwrap();
    // The child holds the lock a third (release) to two thirds (debug) of the time:
    // enough rounds that some kill surely lands inside it.
    let rounds = kill_rounds().max(20);
    let (caught, _) = watchdog(test, HANG + Duration::from_secs(rounds), move || {
        let raw = Raw::open(&state);
        let mut rng = Rng(u64::from(std::process::id()));
        let mut caught = 0;
        for round in 0..rounds {
            let mut peer = spawn(test, "inserter", &name, 0);
            let child = token(ProcessId::of(peer.pid()).expect("the child runs"));
            peer.expect("@@CHURNING@@");
            thread::sleep(Duration::from_micros(rng.below(2000)));
            kill(&mut peer, round % 2 == 0);
            caught += u64::from(raw.at(MEMBERS_LOCK) == child);

            state.set(&format!("p{round}"), b"parent").unwrap();
            let snap = state.snapshot().unwrap();
            assert_eq!(state.len(), snap.entries.len(), "the count was recounted");
            let mut parents = 0;
            for e in &snap.entries {
                if let Some(i) = e.key.strip_prefix('m').and_then(|k| k.split_once('-')) {
                    // The dead child's last key: whole, or absent.
                    let i: u64 = i.1.parse().unwrap();
                    assert_eq!(e.value, i.to_le_bytes());
                    let removed = state.remove(&e.key).unwrap();
                    assert_eq!(removed, Some(state.version()));
                } else if e.key.starts_with('p') {
                    assert_eq!(e.value, b"parent");
                    parents += 1;
                } else {
                    assert_eq!(
                        (e.key.as_str(), e.value.as_slice()),
                        ("stays", &b"here"[..])
                    );
                }
            }
            assert_eq!(parents, 1 + u64::from(round > 0));
            if round > 0 {
                state.remove(&format!("p{}", round - 1)).unwrap().unwrap();
            }
            assert_eq!(state.len(), 2);
        }
        eprintln!("{rounds} kills, {caught} holding the membership lock");
        caught
    });
    assert!(
        caught > 0,
        "no kill landed while the child held the membership lock"
    );
}

/// Waits for each ping, answers with a pong.
fn ponger_child(state: &SharedState, count: u64) {
    let ping = state.entry("ping").unwrap();
    announce("@@READY@@", "");
    let mut since = 0;
    for i in 0..count {
        since = ping.wait_for_change(since, HANG).unwrap();
        let got = ping.get_pod::<u64>().unwrap().unwrap();
        assert_eq!((got.value, got.version), (i, since));
        state.set_pod("pong", &i).unwrap();
    }
}

/// Syncs from a snapshot, checks it against what the parent wrote, then waits for one
/// more change.
fn late_joiner_child(state: &SharedState, count: u64) {
    let payloads = Payloads::new(64);
    let snap = state.snapshot().unwrap();
    for e in &snap.entries {
        match e.key.strip_prefix("init-") {
            Some(i) => assert_eq!(e.value, payloads.get(i.parse().unwrap()), "{}", e.key),
            None => {
                assert!(e.key == "ping" || e.key == "pong", "{}", e.key);
                assert_eq!(e.value, (count - 1).to_ne_bytes());
            }
        }
    }
    announce(
        "@@SNAPSHOT@@",
        format!("{} {}", snap.entries.len(), snap.version),
    );
    assert_eq!(await_parent(), "go");
    let v = state.wait_for_change(snap.version, HANG).unwrap();
    assert_eq!(state.get("bye").unwrap().unwrap().version, v);
    announce("@@BYE@@", v);
}

/// Two processes take turns through `wait_for_change`, each waking the other; then a
/// third process joins late, syncs from a snapshot that holds every key, and is woken by
/// the next write.
#[test]
fn wakeups_and_late_joiner_across_processes() {
    if play_child_role() {
        return;
    }
    let test = "wakeups_and_late_joiner_across_processes";
    let name = unique("ping-pong");
    let keys = 50;
    let options = StateOptions {
        capacity: 64,
        max_key_len: 16,
        max_value_len: 64,
    };
    let state = SharedState::create(&name, options).unwrap();
    let payloads = Payloads::new(64);
    for i in 0..keys {
        state.set(&format!("init-{i}"), payloads.get(i)).unwrap();
    }
    let n = pings();
    let ((), took) = watchdog(test, HANG + Duration::from_millis(n * 10), move || {
        let mut ponger = spawn(test, "ponger", &name, n);
        ponger.expect("@@READY@@");
        let pong = state.entry("pong").unwrap();
        let mut since = 0;
        for i in 0..n {
            let sent = state.set_pod("ping", &i).unwrap();
            since = pong.wait_for_change(since, HANG).unwrap();
            assert!(since > sent);
            assert_eq!(pong.get_pod::<u64>().unwrap().unwrap().value, i);
        }
        ponger.finish();

        let mut joiner = spawn(test, "late-joiner", &name, n);
        let synced = joiner.expect("@@SNAPSHOT@@");
        assert_eq!(synced, format!("{} {}", keys + 2, state.version()));
        joiner.tell("go");
        let v = state.set("bye", b"!").unwrap();
        assert_eq!(joiner.expect("@@BYE@@"), v.to_string());
        joiner.finish();
        assert!(matches!(state.get("bye"), Ok(Some(_))));
        assert_eq!(
            state.wait_for_change(v, Duration::ZERO),
            Err(StateError::Timeout)
        );
    });
    eprintln!("{n} cross-process round trips and a late join in {took:?}");
}
