//! MPMC rings in one process: FIFO order, exact Full and Empty, a stress of many producers
//! and consumers on the heap and in a segment, timeouts, disconnection, named rings, and
//! the ring's behaviour when its shared memory is written by someone else: damaged
//! geometry, hostile slot states and hints, and slots left mid-write or mid-read by a
//! dead process. Those tests poke the segment's words directly, at the offsets
//! ARCHITECTURE.md documents ("MPMC ring"), to play the other process.
//!
//! Sizes: `RINGPORT_STRESS` (default 10 000) messages per producer in the stress, and the
//! rounds of random scribbling scale with it.

mod common;

use common::{env_count, watchdog, Payloads};
use ringport::mpmc::{self, Receiver, Sender, DEFAULT_PROCESSES};
use ringport::process::ProcessId;
use ringport::segment::{Segment, SegmentError, PARAMS};
use ringport::{RecvError, SendError};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A hang detector for blocking calls and thread joins, far above any plausible time.
const HANG: Duration = Duration::from_secs(30);

const KIND_MPMC: u32 = u32::from_le_bytes(*b"MPMC");

fn stress() -> u64 {
    env_count("RINGPORT_STRESS", 10_000)
}

/// A ring name no other test, and no concurrent run of this binary, uses.
fn unique(test: &str) -> String {
    format!("rp-mpmc-{}-{test}", std::process::id())
}

/// splitmix64's finaliser: the check word of a message, and a source of test choices.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A message that proves it arrived whole: a tag and its check word.
fn stamp(tag: u64) -> [u64; 2] {
    [tag, mix(tag)]
}

fn check(v: [u64; 2]) -> u64 {
    assert_eq!(v[1], mix(v[0]), "torn or foreign message {v:x?}");
    v[0]
}

/// Where a ring lives: each test that cares runs on both.
#[derive(Clone, Copy, Debug)]
enum Place {
    Heap,
    Named,
}

const PLACES: [Place; 2] = [Place::Heap, Place::Named];

fn ring<T: bytemuck::Pod + Send>(
    place: Place,
    test: &str,
    capacity: usize,
) -> (Sender<T>, Receiver<T>) {
    match place {
        Place::Heap => mpmc::channel(capacity),
        Place::Named => mpmc::create(&unique(test), capacity).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// The raw layout, to play a hostile or dead peer.

const TAIL: usize = 0;
const HEAD: usize = 128;
const HANDLES: usize = 512;
const RECORDS: usize = 640;
const RECORD_BYTES: usize = 16;

const FREE: u64 = 0;
const WRITING: u64 = 1;
const FULL: u64 = 2;
const READING: u64 = 3;
const SKIP: u64 = 0xffff;
const LAP_MASK: u64 = (1 << 46) - 1;

fn state(lap: u64, phase: u64, owner: u64) -> u64 {
    ((lap & LAP_MASK) << 18) | (phase << 16) | owner
}

/// A second mapping of a named ring of `u64`s, to read and write its words as another
/// process would.
struct Raw {
    seg: Segment,
    capacity: usize,
    records: usize,
    slots_off: usize,
}

/// Bytes per slot of a `u64` ring: the state word, then the value.
const STRIDE: usize = 16;

impl Raw {
    fn open(name: &str) -> Raw {
        let seg = Segment::open(name, KIND_MPMC).unwrap();
        let p = seg.params();
        assert_eq!(p[1..3], [8, 8], "a ring of u64");
        let (capacity, records) = (p[0] as usize, p[3] as usize);
        assert_eq!(records, DEFAULT_PROCESSES);
        let slots_off = (RECORDS + RECORD_BYTES * records).next_multiple_of(128);
        assert_eq!(
            seg.payload_len(),
            slots_off + capacity * STRIDE,
            "the payload is laid out as documented"
        );
        Raw {
            seg,
            capacity,
            records,
            slots_off,
        }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.seg.payload_len());
        // SAFETY: the offset is 8-aligned and inside the payload (checked above), which
        // is 128-aligned and mapped for as long as `self.seg` lives; every access to it,
        // here and in the ring, is atomic.
        unsafe { AtomicU64::from_ptr(self.seg.payload().as_ptr().add(offset).cast()) }
    }

    fn half(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.seg.payload_len());
        // SAFETY: as for `word`, for a 4-aligned 32-bit word.
        unsafe { AtomicU32::from_ptr(self.seg.payload().as_ptr().add(offset).cast()) }
    }

    fn tail(&self) -> &AtomicU64 {
        self.word(TAIL)
    }

    fn head(&self) -> &AtomicU64 {
        self.word(HEAD)
    }

    /// `[senders, receivers]` totals.
    fn handles(&self, which: usize) -> &AtomicU32 {
        self.half(HANDLES + 4 * which)
    }

    fn token(&self, record: usize) -> &AtomicU64 {
        assert!(record < self.records);
        self.word(RECORDS + RECORD_BYTES * record)
    }

    fn senders(&self, record: usize) -> &AtomicU32 {
        assert!(record < self.records);
        self.half(RECORDS + RECORD_BYTES * record + 8)
    }

    fn receivers(&self, record: usize) -> &AtomicU32 {
        assert!(record < self.records);
        self.half(RECORDS + RECORD_BYTES * record + 12)
    }

    /// The state word of the slot of position `pos`.
    fn slot(&self, pos: usize) -> &AtomicU64 {
        self.word(self.slots_off + (pos % self.capacity) * STRIDE)
    }

    fn value(&self, pos: usize) -> &AtomicU64 {
        self.word(self.slots_off + (pos % self.capacity) * STRIDE + 8)
    }

    fn set(&self, pos: usize, s: u64) {
        self.slot(pos).store(s, Ordering::Release);
    }

    fn get(&self, pos: usize) -> u64 {
        self.slot(pos).load(Ordering::Acquire)
    }

    /// Plays a process that joined with `senders` and `receivers` handles in record
    /// `record` (owner `record + 1`).
    fn fake_member(&self, record: usize, token: u64, senders: u32, receivers: u32) -> u64 {
        self.senders(record).store(senders, Ordering::Relaxed);
        self.receivers(record).store(receivers, Ordering::Relaxed);
        self.handles(0).fetch_add(senders, Ordering::Relaxed);
        self.handles(1).fetch_add(receivers, Ordering::Relaxed);
        self.token(record).store(token, Ordering::Release);
        record as u64 + 1
    }
}

/// The record token of `id`: pid in the low 22 bits, start time above.
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

/// Polls `f` until it returns something other than `retry`, failing after [`HANG`].
fn poll_until<R: PartialEq + std::fmt::Debug>(retry: R, mut f: impl FnMut() -> R) -> R {
    let start = Instant::now();
    loop {
        let r = f();
        if r != retry {
            return r;
        }
        assert!(start.elapsed() < HANG, "still {retry:?} after {HANG:?}");
        thread::yield_now();
    }
}

fn is_corrupt_recv<T>(r: &Result<T, RecvError>) -> bool {
    matches!(r, Err(RecvError::Corrupt(_)))
}

// ---------------------------------------------------------------------------------------
// Order, Full and Empty.

/// One producer and one consumer: every value in order, over many laps of a small ring,
/// in batches of every size, and between two threads.
#[test]
fn fifo_one_producer_one_consumer_over_many_laps() {
    for place in PLACES {
        let (tx, rx) = ring::<u64>(place, "fifo", 4);
        let mut next_in = 0;
        let mut next_out = 0;
        for batch in (1..=4).cycle().take(200) {
            for _ in 0..batch {
                tx.try_send(next_in).unwrap();
                next_in += 1;
            }
            for _ in 0..batch {
                assert_eq!(rx.try_recv(), Ok(next_out), "{place:?}");
                next_out += 1;
            }
            assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        }

        let n = 20_000u64;
        let producer = thread::spawn(move || (0..n).for_each(|i| tx.send(i).unwrap()));
        let ((), _) = watchdog("fifo consumer", HANG, move || {
            for i in 0..n {
                assert_eq!(rx.recv(), Ok(i), "{place:?}");
            }
            assert_eq!(rx.recv(), Err(RecvError::Disconnected));
        });
        producer.join().unwrap();
    }
}

/// A ring holds exactly its capacity (the request rounded up to a power of two, at least
/// 2): one more is `Full` until one is received.
#[test]
fn full_and_empty_are_exact_at_capacity() {
    for place in PLACES {
        for (asked, cap) in [(1, 2), (2, 2), (3, 4), (4, 4), (5, 8), (9, 16), (100, 128)] {
            let test = format!("exact-{asked}");
            let (tx, rx) = ring::<u32>(place, &test, asked);
            assert_eq!((tx.capacity(), rx.capacity()), (cap, cap));
            for round in 0..3u32 {
                let base = round * 1000;
                assert_eq!(rx.try_recv(), Err(RecvError::Empty));
                for i in 0..cap as u32 {
                    tx.try_send(base + i).unwrap();
                }
                assert_eq!(tx.try_send(7), Err(SendError::Full), "{place:?} {asked}");
                assert_eq!(tx.send_timeout(7, Duration::ZERO), Err(SendError::Timeout));
                assert_eq!(rx.try_recv(), Ok(base));
                tx.try_send(base + cap as u32).unwrap();
                assert_eq!(tx.try_send(7), Err(SendError::Full));
                for i in 1..=cap as u32 {
                    assert_eq!(rx.try_recv(), Ok(base + i));
                }
                assert_eq!(rx.try_recv(), Err(RecvError::Empty));
                assert_eq!(rx.recv_timeout(Duration::ZERO), Err(RecvError::Timeout));
            }
        }
    }
}

/// `_timeout` calls give `Timeout` on a full or empty ring, and succeed once possible.
#[test]
fn timeouts_return_timeout() {
    for place in PLACES {
        let (tx, rx) = ring::<u64>(place, "timeouts", 2);
        let short = Duration::from_millis(5);
        assert_eq!(rx.recv_timeout(short), Err(RecvError::Timeout));
        tx.send_timeout(1, short).unwrap();
        tx.send_timeout(2, short).unwrap();
        assert_eq!(tx.send_timeout(3, short), Err(SendError::Timeout));
        assert_eq!(rx.recv_timeout(short), Ok(1));
        assert_eq!(tx.send_timeout(3, short), Ok(()));
        assert_eq!(rx.recv_timeout(short), Ok(2));
        assert_eq!(rx.recv_timeout(short), Ok(3));
        assert_eq!(rx.recv_timeout(short), Err(RecvError::Timeout));
        // A deadline beyond any clock is no deadline at all: a peer's message ends it.
        let tx2 = tx.clone();
        let waker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            tx2.send(4).unwrap();
        });
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok(4));
        waker.join().unwrap();
    }
}

/// Messages of odd sizes and of alignments above 8 (whose slots put the value after
/// padding) arrive byte for byte, lap after lap, in order.
#[test]
fn messages_of_any_size_and_alignment_arrive_whole() {
    fn run<T: bytemuck::Pod + Send + PartialEq + std::fmt::Debug>(place: Place, test: &str) {
        let payloads = Payloads::new(std::mem::size_of::<T>());
        let message = |i: u64| {
            let mut v = T::zeroed();
            let frame = payloads.get(i);
            bytemuck::bytes_of_mut(&mut v)[..frame.len()].copy_from_slice(frame);
            v
        };
        let (tx, rx) = ring::<T>(place, test, 4);
        for round in 0..50u64 {
            for i in 0..3 {
                tx.try_send(message(round * 3 + i)).unwrap();
            }
            for i in 0..3 {
                assert_eq!(
                    rx.try_recv(),
                    Ok(message(round * 3 + i)),
                    "{place:?} {test}"
                );
            }
        }
    }
    for place in PLACES {
        run::<[u8; 3]>(place, "bytes-3");
        run::<[u8; 48]>(place, "bytes-48");
        run::<[u128; 3]>(place, "u128-3");
        run::<[u64; 17]>(place, "u64-17");
    }
}

// ---------------------------------------------------------------------------------------
// Stress.

/// How a thread of the stress waits.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Blocking,
    TryLoop,
    Timeout,
}

const MODES: [Mode; 3] = [Mode::Blocking, Mode::TryLoop, Mode::Timeout];

fn produce(tx: &Sender<[u64; 2]>, mode: Mode, tag: u64) {
    let v = stamp(tag);
    match mode {
        Mode::Blocking => tx.send(v).unwrap(),
        Mode::TryLoop => loop {
            match tx.try_send(v) {
                Ok(()) => break,
                Err(SendError::Full) => thread::yield_now(),
                Err(e) => panic!("try_send: {e}"),
            }
        },
        Mode::Timeout => loop {
            match tx.send_timeout(v, Duration::from_micros(500)) {
                Ok(()) => break,
                Err(SendError::Timeout) => {}
                Err(e) => panic!("send_timeout: {e}"),
            }
        },
    }
}

/// Receives until disconnected; `None` at the end.
fn consume(rx: &Receiver<[u64; 2]>, mode: Mode) -> Option<[u64; 2]> {
    loop {
        let r = match mode {
            Mode::Blocking => rx.recv(),
            Mode::TryLoop => rx.try_recv(),
            Mode::Timeout => rx.recv_timeout(Duration::from_micros(500)),
        };
        match r {
            Ok(v) => return Some(v),
            Err(RecvError::Disconnected) => return None,
            Err(RecvError::Empty) => thread::yield_now(),
            Err(RecvError::Timeout) => {}
            Err(e) => panic!("{mode:?} receive: {e}"),
        }
    }
}

/// Producers each send an increasing sequence, with every way of waiting; consumers
/// receive with every way of waiting, some sharing one `Receiver` by reference. Every
/// message arrives once and whole, and each consumer sees each producer's messages in
/// order.
fn stress_run(place: Place, producers: u64, consumers: usize, capacity: usize) {
    let per = stress();
    let test = format!("stress-{producers}x{consumers}-{capacity}");
    let (tx, rx) = ring::<[u64; 2]>(place, &test, capacity);
    let what = format!("{place:?} {producers}x{consumers} capacity {capacity}");
    let ((), took) = watchdog(&what.clone(), HANG, move || {
        let got: Vec<Vec<u64>> = thread::scope(|s| {
            for p in 0..producers {
                let tx = tx.clone();
                s.spawn(move || {
                    for i in 0..per {
                        produce(&tx, MODES[(p as usize + i as usize / 100) % 3], p << 32 | i);
                    }
                });
            }
            drop(tx);
            let rx = &rx;
            let handles: Vec<_> = (0..consumers)
                .map(|c| {
                    // Even consumers clone, odd ones share the original by reference.
                    let own = (c % 2 == 0).then(|| rx.clone());
                    s.spawn(move || {
                        let rx = own.as_ref().unwrap_or(rx);
                        let mut last = vec![None::<u64>; producers as usize];
                        let mut got = Vec::new();
                        while let Some(v) = consume(rx, MODES[c % 3]) {
                            let tag = check(v);
                            let (p, i) = ((tag >> 32) as usize, tag & 0xffff_ffff);
                            assert!(
                                last[p].is_none_or(|l| l < i),
                                "consumer {c} got {i} of producer {p} after {:?}",
                                last[p]
                            );
                            last[p] = Some(i);
                            got.push(tag);
                        }
                        got
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = got.iter().flatten().copied().collect();
        let checksum = all.iter().fold(0u64, |a, &t| a.wrapping_add(mix(t)));
        let expected: Vec<u64> = (0..producers)
            .flat_map(|p| (0..per).map(move |i| p << 32 | i))
            .collect();
        assert_eq!(
            checksum,
            expected.iter().fold(0u64, |a, &t| a.wrapping_add(mix(t)))
        );
        all.sort_unstable();
        assert_eq!(all.len(), expected.len(), "messages lost or duplicated");
        assert!(all == expected, "messages lost or duplicated");
    });
    eprintln!("{what}: {} messages in {took:?}", producers * per);
}

#[test]
fn stress_every_message_once_and_in_producer_order() {
    for place in PLACES {
        stress_run(place, 3, 3, 8);
        stress_run(place, 2, 2, 2);
        stress_run(place, 1, 4, 64);
    }
}

// ---------------------------------------------------------------------------------------
// Disconnection.

/// The last sender dropped: receivers drain what is left, then get `Disconnected` from
/// every kind of call. A clone kept it alive until then.
#[test]
fn last_sender_gone_drains_then_disconnects() {
    for place in PLACES {
        let (tx, rx) = ring::<u64>(place, "sender-gone", 8);
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
        // The clone still lives.
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvError::Timeout)
        );
        tx2.send(3).unwrap();
        tx2.send(4).unwrap();
        drop(tx2);
        let rx2 = rx.clone();
        assert_eq!(rx.recv(), Ok(3));
        assert_eq!(rx2.recv_timeout(HANG), Ok(4));
        assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));
        assert_eq!(rx.recv(), Err(RecvError::Disconnected));
        assert_eq!(rx2.recv_timeout(HANG), Err(RecvError::Disconnected));
    }
}

/// The last receiver dropped: sends fail with `Disconnected`, with room or without. A
/// clone kept it alive until then.
#[test]
fn last_receiver_gone_disconnects_senders() {
    for place in PLACES {
        let (tx, rx) = ring::<u64>(place, "receiver-gone", 2);
        let rx2 = rx.clone();
        drop(rx);
        tx.send(1).unwrap();
        assert_eq!(rx2.recv(), Ok(1));
        drop(rx2);
        assert_eq!(tx.try_send(2), Err(SendError::Disconnected));
        assert_eq!(tx.send(2), Err(SendError::Disconnected));
        assert_eq!(tx.send_timeout(2, HANG), Err(SendError::Disconnected));

        let (tx, rx) = ring::<u64>(place, "receiver-gone-full", 2);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(rx);
        let tx2 = tx.clone();
        assert_eq!(tx.try_send(3), Err(SendError::Disconnected));
        assert_eq!(tx2.send(3), Err(SendError::Disconnected));
    }
}

/// A receiver asleep on an empty ring wakes when the last sender is dropped, and a
/// sender asleep on a full ring when the last receiver is.
#[test]
fn blocked_calls_wake_on_disconnection() {
    for place in PLACES {
        let (tx, rx) = ring::<u64>(place, "wake-recv", 4);
        let tx2 = tx.clone();
        let sleeper = thread::spawn(move || rx.recv());
        // Time for the receiver to fall asleep; the outcome does not depend on it.
        thread::sleep(Duration::from_millis(20));
        drop(tx);
        drop(tx2);
        let (r, _) = watchdog("woken receiver", HANG, move || sleeper.join().unwrap());
        assert_eq!(r, Err(RecvError::Disconnected), "{place:?}");

        let (tx, rx) = ring::<u64>(place, "wake-send", 2);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        let sleeper = thread::spawn(move || (tx.send(3), tx.send_timeout(4, HANG)));
        thread::sleep(Duration::from_millis(20));
        drop(rx);
        let (r, _) = watchdog("woken sender", HANG, move || sleeper.join().unwrap());
        assert_eq!(
            r,
            (Err(SendError::Disconnected), Err(SendError::Disconnected)),
            "{place:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Named rings.

/// A ring made by `create` and opened by name: the ends of both share the messages, the
/// name is taken once, and it goes when the creator's handles are gone while the opened
/// ends keep working.
#[test]
fn named_ring_create_and_open() {
    let name = unique("create-open");
    let (tx, rx) = mpmc::create::<u64>(&name, 10).unwrap();
    assert!(matches!(
        mpmc::create::<u64>(&name, 10),
        Err(SegmentError::AlreadyExists { .. })
    ));
    let (tx2, rx2) = mpmc::open::<u64>(&name).unwrap();
    assert_eq!((tx2.capacity(), rx2.capacity()), (16, 16));
    assert!(format!("{tx2:?} {rx2:?}").contains("capacity: 16"));
    tx.send(1).unwrap();
    tx2.send(2).unwrap();
    assert_eq!(rx2.recv(), Ok(1));
    assert_eq!(rx.recv(), Ok(2));
    let tx3 = tx.clone();
    drop((tx, rx));
    // A clone of the creator's handle keeps the name.
    assert!(mpmc::open::<u64>(&name).is_ok());
    drop(tx3);
    assert!(matches!(
        mpmc::open::<u64>(&name),
        Err(SegmentError::NotFound { .. })
    ));
    tx2.send(3).unwrap();
    assert_eq!(rx2.recv(), Ok(3));
    drop(tx2);
    assert_eq!(rx2.recv(), Err(RecvError::Disconnected));
    assert!(matches!(
        mpmc::open::<u64>("rp-mpmc-no-such-ring"),
        Err(SegmentError::NotFound { .. })
    ));
}

fn incompatible<T>(r: Result<T, SegmentError>) -> String {
    match r {
        Err(SegmentError::Incompatible { reason, .. }) => reason,
        other => panic!("expected Incompatible, got {:?}", other.map(drop)),
    }
}

/// A ring of one type opened as another (by size or alignment), or a segment of another
/// kind: `Incompatible`.
#[test]
fn open_with_another_type_is_incompatible() {
    let name = unique("wrong-type");
    let _ring = mpmc::create::<u64>(&name, 8).unwrap();
    let reason = incompatible(mpmc::open::<u32>(&name));
    assert!(reason.contains("4 bytes"), "{reason}");
    incompatible(mpmc::open::<[u8; 8]>(&name));
    incompatible(mpmc::open::<[u32; 2]>(&name));
    incompatible(mpmc::open::<[u64; 2]>(&name));
    let other = unique("other-kind");
    let _seg = Segment::create(&other, 0x1234, [0; PARAMS], 4096).unwrap();
    incompatible(mpmc::open::<u64>(&other));
    // Same size and alignment is the same message as far as the ring can tell.
    assert!(mpmc::open::<i64>(&name).is_ok());
    // A type the ring cannot carry at all.
    #[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
    #[repr(C, align(128))]
    struct Wide([u8; 128]);
    incompatible(mpmc::create::<Wide>(&unique("wide"), 8));
}

/// The bytes of a ring of `capacity` u64s with `records` records.
fn ring_len(capacity: usize, records: usize) -> usize {
    (RECORDS + RECORD_BYTES * records).next_multiple_of(128) + capacity * STRIDE
}

/// Segments of kind `MPMC` whose parameters cannot describe a ring, or whose payload
/// does not match them: `Corrupt`, never a panic or an access out of bounds.
#[test]
fn mismatched_params_or_payload_are_corrupt() {
    let records = DEFAULT_PROCESSES as u64;
    let good = ring_len(8, DEFAULT_PROCESSES);
    let cases: &[([u64; 4], usize)] = &[
        // Capacity not a power of two, zero, or beyond 2^32.
        ([6, 8, 8, records], good),
        ([0, 8, 8, records], good),
        ([1 << 33, 8, 8, records], good),
        ([u64::MAX, 8, 8, records], good),
        // No records, too many, or more than the address space.
        ([8, 8, 8, 0], good),
        ([8, 8, 8, 5000], good),
        ([8, 8, 8, u64::MAX], good),
        // The payload is shorter or longer than the ring.
        ([8, 8, 8, records], good - 16),
        ([8, 8, 8, records], good + 16),
        ([8, 8, 8, records], 0),
        ([16, 8, 8, records], good),
        ([8, 8, 8, 1], good),
    ];
    for (i, (p, len)) in cases.iter().enumerate() {
        let name = unique(&format!("corrupt-{i}"));
        let params = [p[0], p[1], p[2], p[3], 0, 0];
        let _seg = Segment::create(&name, KIND_MPMC, params, *len).unwrap();
        match mpmc::open::<u64>(&name) {
            Err(SegmentError::Corrupt { .. }) => {}
            other => panic!("{p:?} {len}: expected Corrupt, got {:?}", other.map(drop)),
        }
    }
    // The same crafted way, but right: it opens.
    let name = unique("crafted-good");
    let _seg = Segment::create(&name, KIND_MPMC, [8, 8, 8, records, 0, 0], good).unwrap();
    let (tx, rx) = mpmc::open::<u64>(&name).unwrap();
    tx.send(5).unwrap();
    assert_eq!(rx.recv(), Ok(5));
}

// ---------------------------------------------------------------------------------------
// Hostile memory.

/// A slot a lap behind where the hints say the ring is cannot happen (the ring never
/// gets past a slot it has not finished): `Corrupt` for both sides.
#[test]
fn slot_a_lap_behind_is_corrupt() {
    let name = unique("lap-behind");
    let (tx, rx) = mpmc::create::<u64>(&name, 4).unwrap();
    let raw = Raw::open(&name);
    for i in 0..4 {
        tx.send(i).unwrap();
        assert_eq!(rx.recv(), Ok(i));
    }
    // Head and tail are at position 4 (lap 1), every slot FREE of lap 1.
    assert_eq!(raw.get(0), state(1, FREE, 0));
    raw.set(0, state(0, FULL, 0));
    assert!(is_corrupt_recv(&rx.try_recv()));
    assert!(is_corrupt_recv(&rx.recv_timeout(HANG)));
    assert!(is_corrupt_recv(&rx.recv()));
    raw.set(0, state(0, FREE, 0));
    assert!(matches!(tx.try_send(9), Err(SendError::Corrupt(_))));
    assert!(matches!(
        tx.send_timeout(9, HANG),
        Err(SendError::Corrupt(_))
    ));
    // Put right, the ring goes on.
    raw.set(0, state(1, FREE, 0));
    tx.send(4).unwrap();
    assert_eq!(rx.recv(), Ok(4));
}

/// Owners that name no record, a record that is vacant, or this very process, and skip
/// markers where they cannot be: the ring waits (bounded by the timeout), passes over
/// or reports, but never panics, reads out of bounds, or repairs what nobody proved dead.
#[test]
fn hostile_owners_never_panic_or_hang() {
    let name = unique("owners");
    let (tx, rx) = mpmc::create::<u64>(&name, 4).unwrap();
    let raw = Raw::open(&name);
    let me = 1; // the creator's record
    let short = Duration::from_millis(5);
    for owner in [0, me, 7, DEFAULT_PROCESSES as u64 + 1, 4096, SKIP - 1] {
        // A producer holding position 0 that no one can reap.
        raw.set(0, state(0, WRITING, owner));
        assert_eq!(rx.try_recv(), Err(RecvError::Empty), "owner {owner}");
        assert_eq!(rx.recv_timeout(short), Err(RecvError::Timeout));
        assert_eq!(
            raw.get(0),
            state(0, WRITING, owner),
            "nobody proved it dead"
        );
        // A message with a strange owner is still a message.
        raw.value(0).store(40 + owner, Ordering::Relaxed);
        raw.set(0, state(0, FULL, owner));
        assert_eq!(rx.recv_timeout(short), Ok(40 + owner));
        // A consumer holding it (still in lap 0) blocks the producer of position 4.
        for i in 1..4 {
            tx.send(i).unwrap();
        }
        raw.set(0, state(0, READING, owner));
        assert_eq!(tx.try_send(9), Err(SendError::Full), "owner {owner}");
        assert_eq!(tx.send_timeout(9, short), Err(SendError::Timeout));
        for i in 1..4 {
            assert_eq!(rx.recv(), Ok(i));
        }
        // Reset to a fresh ring.
        for pos in 0..4 {
            raw.set(pos, 0);
        }
        raw.tail().store(0, Ordering::Relaxed);
        raw.head().store(0, Ordering::Relaxed);
    }
    // A skip marker in a WRITING or READING slot is an owner like any other.
    raw.set(0, state(0, WRITING, SKIP));
    assert_eq!(rx.recv_timeout(short), Err(RecvError::Timeout));
    // A skip marker in a FULL slot is passed over.
    raw.set(0, state(0, FULL, SKIP));
    tx.send(5).unwrap();
    assert_eq!(rx.recv(), Ok(5));
    assert_eq!(raw.get(0), state(1, FREE, 0));
}

/// Hints anywhere: far ahead, at the end of the position space, or laps behind. Either
/// the ring finds its way (a lagging hint costs looks, never correctness), or it
/// reports `Corrupt`; it never panics or hangs.
#[test]
fn hostile_hints_are_survived_or_reported() {
    let name = unique("hints");
    let (tx, rx) = mpmc::create::<u64>(&name, 4).unwrap();
    let raw = Raw::open(&name);
    let short = Duration::from_millis(5);
    // Laps behind: a hint stored late by a process that was descheduled meanwhile. The
    // ring must carry on.
    let mut next = 0;
    for laps_behind in [1u64, 2, 3, 5, 20] {
        for _ in 0..4 * (laps_behind + 1) {
            tx.send(next).unwrap();
            assert_eq!(rx.recv(), Ok(next));
            next += 1;
        }
        let stale = next - 4 * laps_behind;
        raw.tail().store(stale, Ordering::Relaxed);
        raw.head().store(stale, Ordering::Relaxed);
        assert_eq!(rx.try_recv(), Err(RecvError::Empty), "{laps_behind} laps");
        tx.try_send(next)
            .unwrap_or_else(|e| panic!("{laps_behind} laps: {e}"));
        raw.head().store(stale, Ordering::Relaxed);
        assert_eq!(rx.try_recv(), Ok(next), "{laps_behind} laps");
        next += 1;
    }
    // Far ahead, or anywhere: a typed answer.
    for hint in [
        1 << 40,
        u64::MAX,
        u64::MAX - 3,
        1 << 63,
        next + 5,
        next + 4 * 7,
    ] {
        raw.tail().store(hint, Ordering::Relaxed);
        match tx.try_send(1) {
            Ok(()) | Err(SendError::Full | SendError::Corrupt(_)) => {}
            Err(e) => panic!("tail {hint:#x}: {e}"),
        }
        match tx.send_timeout(1, short) {
            Ok(()) | Err(SendError::Timeout | SendError::Corrupt(_)) => {}
            Err(e) => panic!("tail {hint:#x}: {e}"),
        }
        raw.head().store(hint, Ordering::Relaxed);
        for _ in 0..3 {
            match rx.recv_timeout(short) {
                Ok(_) | Err(RecvError::Timeout | RecvError::Corrupt(_)) => {}
                Err(e) => panic!("head {hint:#x}: {e}"),
            }
        }
    }
}

/// Random words written over a ring in use, many times (each time starting again from
/// a sound ring with a few messages in it): every call returns a typed answer within its
/// timeout; nothing panics.
#[test]
fn random_scribbles_never_panic_or_hang() {
    let name = unique("scribbles");
    let (mut tx, mut rx) = mpmc::create::<u64>(&name, 8).unwrap();
    tx.set_spin_budget(Duration::ZERO);
    rx.set_spin_budget(Duration::ZERO);
    let raw = Raw::open(&name);
    let words = raw.seg.payload_len() / 8;
    let sound: Vec<u64> = (0..words)
        .map(|i| raw.word(i * 8).load(Ordering::Relaxed))
        .collect();
    let rounds = stress() / 20;
    let mut seed = u64::from(std::process::id());
    let mut rand = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(seed)
    };
    let ((), took) = watchdog("scribbles", HANG, move || {
        let short = Duration::from_micros(200);
        // [sends failed, sent, receives failed, received]
        let mut answers = [0u64; 4];
        for _ in 0..rounds {
            for (i, &w) in sound.iter().enumerate() {
                raw.word(i * 8).store(w, Ordering::Relaxed);
            }
            for _ in 0..rand() % 12 {
                let _ = tx.try_send(rand());
            }
            for _ in 0..rand() % 6 {
                let _ = rx.try_recv();
            }
            for _ in 0..1 + rand() % 3 {
                // Mostly the words that matter: hints, handle totals, records, states.
                let offset = match rand() % 4 {
                    0 => [TAIL, HEAD, HANDLES][rand() as usize % 3],
                    1 => RECORDS + 8 * (rand() as usize % (2 * raw.records)),
                    2 => raw.slots_off + STRIDE * (rand() as usize % raw.capacity),
                    _ => 8 * (rand() as usize % words),
                };
                // Plausible words (near laps, small owners) as well as noise.
                let word = match rand() % 4 {
                    0 => rand(),
                    1 => state(rand() % 8, rand() % 4, rand() % 40),
                    2 => rand() % 64,
                    _ => 0,
                };
                raw.word(offset).store(word, Ordering::Release);
            }
            let sends = [tx.try_send(rand()), tx.send_timeout(rand(), short)];
            let recvs = [rx.try_recv(), rx.recv_timeout(short)];
            for r in sends {
                answers[usize::from(r.is_ok())] += 1;
            }
            for r in recvs {
                answers[2 + usize::from(r.is_ok())] += 1;
            }
        }
        eprintln!(
            "{rounds} scribbles: sends failed, sent, receives failed, received = {answers:?}"
        );
    });
    eprintln!("scribbles took {took:?}");
}

// ---------------------------------------------------------------------------------------
// Dead and live holders.

/// A producer that died between claiming a slot and publishing it: consumers pass over
/// the slot (its message was never sent) once they find its process dead, whether they
/// block or poll with `try_recv`. Its record is freed, and with it its sender handle.
#[test]
fn dead_producer_mid_write_is_skipped() {
    for blocking in [true, false] {
        let name = unique(&format!("dead-writer-{blocking}"));
        let (tx, rx) = mpmc::create::<u64>(&name, 4).unwrap();
        let raw = Raw::open(&name);
        let dead = raw.fake_member(1, dead_token(), 1, 0);
        // It claimed position 0; the next send goes after it.
        raw.set(0, state(0, WRITING, dead));
        tx.send(10).unwrap();
        tx.send(11).unwrap();
        let first = if blocking {
            rx.recv_timeout(HANG)
        } else {
            poll_until(Err(RecvError::Empty), || rx.try_recv())
        };
        assert_eq!(first, Ok(10), "blocking {blocking}");
        assert_eq!(raw.get(0), state(1, FREE, 0), "the skip was passed on");
        assert_eq!(raw.token(1).load(Ordering::Acquire), 0, "record freed");
        assert_eq!(rx.try_recv(), Ok(11));
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        // The dead process's sender no longer counts.
        drop(tx);
        assert_eq!(rx.recv_timeout(HANG), Err(RecvError::Disconnected));
    }
}

/// A consumer that died between claiming a message and finishing with it: the message
/// is lost with it, and producers get past the slot once they find its process dead,
/// whether they block or poll with `try_send`. Meanwhile other consumers pass over it.
#[test]
fn dead_consumer_mid_read_lets_producers_pass() {
    for blocking in [true, false] {
        let name = unique(&format!("dead-reader-{blocking}"));
        let (tx, rx) = mpmc::create::<u64>(&name, 4).unwrap();
        let raw = Raw::open(&name);
        for i in 0..4 {
            tx.send(i).unwrap();
        }
        let dead = raw.fake_member(1, dead_token(), 0, 1);
        // It took message 0 and died reading it.
        raw.set(0, state(0, READING, dead));
        let sent = if blocking {
            tx.send_timeout(4, HANG)
        } else {
            poll_until(Err(SendError::Full), || tx.try_send(4))
        };
        assert_eq!(sent, Ok(()), "blocking {blocking}");
        assert_eq!(raw.token(1).load(Ordering::Acquire), 0, "record freed");
        for i in 1..=4 {
            assert_eq!(rx.try_recv(), Ok(i), "blocking {blocking}");
        }
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    }
}

/// The same dead consumer, found first by the other consumers: having received
/// everything else, they find the ring empty (not corrupt) at the dead one's slot a lap
/// on, and the ring goes on once it is repaired.
#[test]
fn dead_consumer_mid_read_is_passed_by_consumers() {
    for blocking in [true, false] {
        let name = unique(&format!("dead-reader-first-{blocking}"));
        let (tx, rx) = mpmc::create::<u64>(&name, 4).unwrap();
        let raw = Raw::open(&name);
        for i in 0..4 {
            tx.send(i).unwrap();
        }
        let dead = raw.fake_member(1, dead_token(), 0, 1);
        raw.set(0, state(0, READING, dead));
        for i in 1..4 {
            assert_eq!(rx.try_recv(), Ok(i), "blocking {blocking}");
        }
        // Position 4 is the dead consumer's slot, a lap on: nothing there yet.
        let r = if blocking {
            rx.recv_timeout(Duration::from_millis(300))
        } else {
            rx.try_recv()
        };
        assert!(
            matches!(r, Err(RecvError::Empty | RecvError::Timeout)),
            "blocking {blocking}: {r:?}"
        );
        tx.send_timeout(4, HANG).unwrap();
        assert_eq!(rx.recv_timeout(HANG), Ok(4));
    }
}

/// A slot held by a live process is waited for, never repaired, by either side; once
/// that process dies it is.
#[test]
fn live_holder_is_waited_for_then_repaired_when_dead() {
    let name = unique("live-holder");
    let (tx, rx) = mpmc::create::<u64>(&name, 4).unwrap();
    let raw = Raw::open(&name);
    let short = Duration::from_millis(250); // past one liveness slice
    let mut writer = Sleeper::spawn();
    let mut reader = Sleeper::spawn();
    let w = raw.fake_member(1, writer.token(), 1, 0);
    let r = raw.fake_member(2, reader.token(), 0, 1);

    raw.set(0, state(0, WRITING, w));
    assert_eq!(rx.recv_timeout(short), Err(RecvError::Timeout));
    for _ in 0..50 {
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        thread::sleep(Duration::from_micros(100));
    }
    assert_eq!(raw.get(0), state(0, WRITING, w));
    writer.kill_and_reap();
    tx.send(1).unwrap();
    assert_eq!(rx.recv_timeout(HANG), Ok(1));

    // On to position 8 (slot 0, lap 2), which the live reader takes; 9..=11 wait.
    for i in 2..=7 {
        tx.send(i).unwrap();
        assert_eq!(rx.recv(), Ok(i));
    }
    raw.set(8, state(2, READING, r));
    raw.head().store(9, Ordering::Relaxed);
    raw.tail().store(9, Ordering::Relaxed);
    for i in 9..=11 {
        tx.send(i).unwrap();
    }
    assert_eq!(tx.send_timeout(12, short), Err(SendError::Timeout));
    for _ in 0..50 {
        assert_eq!(tx.try_send(12), Err(SendError::Full));
        thread::sleep(Duration::from_micros(100));
    }
    for i in 9..=11 {
        assert_eq!(rx.recv(), Ok(i));
    }
    // Other consumers, done with the rest, wait at the live reader's slot a lap on.
    assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    assert_eq!(rx.recv_timeout(short), Err(RecvError::Timeout));
    assert_eq!(raw.get(8), state(2, READING, r));
    reader.kill_and_reap();
    assert_eq!(tx.send_timeout(12, HANG), Ok(()));
    assert_eq!(rx.recv_timeout(HANG), Ok(12));
}

/// A dead process's sender handle keeps receivers waiting only until a blocked receiver
/// looks; a dead process's receiver handle, until a blocked sender does.
#[test]
fn dead_members_handles_stop_counting() {
    let name = unique("dead-handles");
    let (tx, rx) = mpmc::create::<u64>(&name, 2).unwrap();
    let raw = Raw::open(&name);
    raw.fake_member(1, dead_token(), 1, 1);
    drop(tx);
    let (r, _) = watchdog("receiver", HANG, move || (rx.recv(), rx));
    assert_eq!(r.0, Err(RecvError::Disconnected));
    drop(r.1);

    let name = unique("dead-handles-2");
    let (tx, rx) = mpmc::create::<u64>(&name, 2).unwrap();
    let raw = Raw::open(&name);
    raw.fake_member(1, dead_token(), 1, 1);
    drop(rx);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    let (r, _) = watchdog("sender", HANG, move || tx.send(3));
    assert_eq!(r, Err(SendError::Disconnected));
}

/// With every participant record held by a live process, `open` fails with `Io`
/// (`QuotaExceeded`); once one of them dies, its record is reclaimed and `open` works.
#[test]
fn record_exhaustion_until_a_holder_dies() {
    let name = unique("records");
    let records = DEFAULT_PROCESSES;
    let _seg = Segment::create(
        &name,
        KIND_MPMC,
        [8, 8, 8, records as u64, 0, 0],
        ring_len(8, records),
    )
    .unwrap();
    let raw = Raw::open(&name);
    let mut sleepers: Vec<Sleeper> = (0..records).map(|_| Sleeper::spawn()).collect();
    for (i, s) in sleepers.iter().enumerate() {
        raw.fake_member(i, s.token(), 1, 1);
    }
    match mpmc::open::<u64>(&name) {
        Err(SegmentError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::QuotaExceeded)
        }
        other => panic!("expected Io, got {:?}", other.map(drop)),
    }
    sleepers[5].kill_and_reap();
    let (tx, rx) = mpmc::open::<u64>(&name).unwrap();
    assert_eq!(
        raw.token(5).load(Ordering::Acquire),
        token(ProcessId::current()),
        "the dead holder's record is this process's now"
    );
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
    // Opening again from this process reuses its record.
    let _again = mpmc::open::<u64>(&name).unwrap();
}
