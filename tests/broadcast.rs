//! Broadcast rings and `BroadcastChannel` in one process: exact `Lagged(n)` counts and
//! resumption under overwrite, history for late joiners, a stress of many publishers and
//! subscribers on the heap and in a segment, backpressure that loses nothing and blocks
//! exactly when the slowest subscriber is a ring behind, disconnection, limits, damaged
//! geometry, and hostile words written into a named ring at the offsets ARCHITECTURE.md
//! documents ("Broadcast ring"). Then the web-style channel between threads: never to
//! its sender, to every other object of its namespace and name, `close()`, removal of
//! the name by its last user, and join/leave churn that must never split the channel.
//!
//! Sizes: `RINGPORT_STRESS` (default 2 000) messages per publisher in the stresses (the
//! keep-up stress sizes its ring to hold them all, about 200 bytes a message), and
//! `RINGPORT_HOSTILE_ROUNDS` (default 300) rounds of scribbling per policy.

mod common;

use common::{env_count, watchdog, Payloads};
use ringport::broadcast::{
    self, BroadcastChannel, BroadcastOptions, ChannelError, Overflow, Publisher, SubscribeError,
    Subscriber,
};
use ringport::process::ProcessId;
use ringport::segment::{Segment, SegmentError, PARAMS};
use ringport::{RecvError, SendError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

/// A hang detector for blocking calls and thread joins, far above any plausible time.
const HANG: Duration = Duration::from_secs(30);

const KIND_BROADCAST: u32 = u32::from_le_bytes(*b"BCST");

fn stress() -> u64 {
    env_count("RINGPORT_STRESS", 2_000)
}

/// A hang detector for a stress of `messages` in all, however large the soak.
fn stress_limit(messages: u64) -> Duration {
    HANG + Duration::from_micros(100 * messages)
}

/// A ring or channel name no other test, and no concurrent run of this binary, uses.
fn unique(test: &str) -> String {
    format!("rp-bc-{}-{test}", std::process::id())
}

/// splitmix64's finaliser: the check word of a message, and a source of test choices.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A message that proves it arrived whole: its publisher and sequence number up front,
/// then a length (16 to `max` bytes) and body that both follow from them, so a copy
/// that mixes two messages or cuts one short differs from the expected one.
fn stamped(who: u64, seq: u64, max: usize) -> Vec<u8> {
    let h = mix((who << 40) ^ seq);
    let len = 16 + (h % (max as u64 - 15)) as usize;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&who.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((16..len).map(|i| (h >> (i % 8 * 8)) as u8 ^ (i / 8) as u8));
    m
}

/// Checks a message made by [`stamped`] and returns its publisher and sequence number.
fn check(m: &[u8], max: usize) -> (u64, u64) {
    assert!(m.len() >= 16, "a {}-byte message", m.len());
    let who = u64::from_le_bytes(m[..8].try_into().unwrap());
    let seq = u64::from_le_bytes(m[8..16].try_into().unwrap());
    assert!(m == stamped(who, seq, max), "torn message {who} #{seq}");
    (who, seq)
}

/// Where a ring lives: the tests that care run on both.
#[derive(Clone, Copy, Debug)]
enum Place {
    Heap,
    Named,
}

const PLACES: [Place; 2] = [Place::Heap, Place::Named];

fn ring(place: Place, test: &str, options: BroadcastOptions) -> Publisher {
    match place {
        Place::Heap => broadcast::channel(options),
        Place::Named => broadcast::create(&unique(test), options).unwrap(),
    }
}

fn small(overflow: Overflow, capacity: usize) -> BroadcastOptions {
    BroadcastOptions {
        capacity,
        max_message: 8,
        overflow,
        ..Default::default()
    }
}

/// Publishes `values` as 8-byte messages, checking that each takes the next position.
fn publish_all(p: &Publisher, values: std::ops::Range<u64>) {
    for v in values {
        assert_eq!(p.publish(&v.to_le_bytes()).unwrap(), v);
    }
}

fn value(m: &[u8]) -> u64 {
    u64::from_le_bytes(m.try_into().expect("an 8-byte message"))
}

/// Receives `values` with `try_recv`, in order, then finds nothing.
fn expect_values(s: &mut Subscriber, values: std::ops::Range<u64>) {
    for v in values {
        assert_eq!(s.try_recv().map(value), Ok(v));
    }
    assert_eq!(s.try_recv(), Err(RecvError::Empty));
}

// ---------------------------------------------------------------------------------------
// Overwrite: lag counts, resumption, history.

/// On a fresh ring positions equal the values published, so every lag is known exactly:
/// a subscriber at cursor `c` behind a tail `t` loses `t - capacity - c` and goes on at
/// `t - capacity`, whichever receive call finds it.
#[test]
fn overwrite_counts_lag_exactly_and_resumes_at_the_oldest_kept() {
    for place in PLACES {
        let p = ring(place, "lag", small(Overflow::Overwrite, 8));
        let mut s = p.subscribe().unwrap();
        let mut idle = p.subscribe().unwrap();
        publish_all(&p, 0..3);
        expect_values(&mut s, 0..3);

        publish_all(&p, 3..23);
        assert_eq!(s.try_recv(), Err(RecvError::Lagged(12)), "{place:?}");
        expect_values(&mut s, 15..23);

        // Lapped again straight away, seen by a blocking receive this time.
        publish_all(&p, 23..40);
        assert_eq!(s.recv(), Err(RecvError::Lagged(9)));
        expect_values(&mut s, 32..40);

        // Exactly a ring ahead is no loss; one more is a loss of one.
        publish_all(&p, 40..48);
        expect_values(&mut s, 40..48);
        publish_all(&p, 48..57);
        assert_eq!(
            s.recv_timeout(HANG).map(value),
            Err(RecvError::Lagged(1)),
            "{place:?}"
        );
        expect_values(&mut s, 49..57);

        // A subscriber that never read lost all but the last ring.
        assert_eq!(idle.try_recv(), Err(RecvError::Lagged(57 - 8)));
        expect_values(&mut idle, 49..57);
    }
}

#[test]
fn history_gives_late_joiners_the_last_messages() {
    for place in PLACES {
        let test = format!("history-{place:?}");
        let with_history = |history| BroadcastOptions {
            history,
            ..small(Overflow::Overwrite, 8)
        };
        let p = ring(place, &format!("{test}-3"), with_history(3));
        publish_all(&p, 0..10);
        expect_values(&mut p.subscribe().unwrap(), 7..10);

        // Fewer published than the history: all of them.
        let p = ring(place, &format!("{test}-few"), with_history(5));
        publish_all(&p, 0..2);
        expect_values(&mut p.subscribe().unwrap(), 0..2);

        // A whole ring of history.
        let p = ring(place, &format!("{test}-all"), with_history(8));
        publish_all(&p, 0..20);
        let mut s = p.subscribe().unwrap();
        expect_values(&mut s, 12..20);
        publish_all(&p, 20..21);
        expect_values(&mut s, 20..21);
    }
}

#[test]
fn late_joiner_starts_at_the_newest() {
    for place in PLACES {
        let p = ring(place, "late-joiner", small(Overflow::Overwrite, 8));
        publish_all(&p, 0..13);
        let mut late = p.subscribe().unwrap();
        assert_eq!(late.try_recv(), Err(RecvError::Empty));
        publish_all(&p, 13..15);
        expect_values(&mut late, 13..15);
    }
    // A joiner through another handle of a named ring, too.
    let name = unique("late-joiner-opened");
    let p = broadcast::create(&name, small(Overflow::Overwrite, 4)).unwrap();
    publish_all(&p, 0..6);
    let mut late = broadcast::open(&name).unwrap().subscribe().unwrap();
    assert_eq!(late.try_recv(), Err(RecvError::Empty));
    publish_all(&p, 6..7);
    expect_values(&mut late, 6..7);
}

// ---------------------------------------------------------------------------------------
// Stress: many publishers, many subscribers.

/// What one subscriber saw of a stress run.
#[derive(Debug, Default)]
struct Seen {
    received: u64,
    lagged: u64,
    /// Per publisher: the next sequence number expected (contiguous delivery), or one
    /// past the last seen (with lags).
    next: HashMap<u64, u64>,
}

/// Receives until the ring disconnects, checking every message whole and each
/// publisher's messages in order: contiguous unless `lossy`, and then only increasing.
/// `pause` runs after every message, to make a subscriber slow.
fn drain(s: &mut Subscriber, max: usize, lossy: bool, mut pause: impl FnMut(u64)) -> Seen {
    let mut seen = Seen::default();
    loop {
        match s.recv_timeout(HANG) {
            Ok(m) => {
                let (who, seq) = check(m, max);
                let next = seen.next.entry(who).or_insert(0);
                if lossy {
                    assert!(seq >= *next, "publisher {who}: #{seq} after #{}", *next - 1);
                } else {
                    assert_eq!(seq, *next, "publisher {who}: a message lost or repeated");
                }
                *next = seq + 1;
                seen.received += 1;
                pause(seen.received);
            }
            Err(RecvError::Lagged(n)) if lossy => seen.lagged += n,
            Err(RecvError::Disconnected) => return seen,
            Err(e) => panic!("after {} messages: {e}", seen.received),
        }
    }
}

/// Starts `publishers` threads that each publish `per` stamped messages, and drops `p`.
fn run_publishers(
    p: Publisher,
    publishers: u64,
    per: u64,
    max: usize,
) -> Vec<thread::JoinHandle<()>> {
    let handles = (0..publishers)
        .map(|who| {
            let p = p.clone();
            thread::spawn(move || {
                for seq in 0..per {
                    p.publish(&stamped(who, seq, max)).unwrap();
                }
            })
        })
        .collect();
    drop(p);
    handles
}

/// Three publishers, three subscribers, a ring large enough that nobody can lag: every
/// subscriber receives every message exactly once, whole, each publisher's in order.
#[test]
fn stress_overwrite_subscribers_that_keep_up_see_everything_once() {
    for place in PLACES {
        let (publishers, per, max) = (3, stress(), 200);
        let total = publishers * per;
        let options = BroadcastOptions {
            capacity: (total as usize).next_power_of_two(),
            max_message: max,
            ..Default::default()
        };
        let p = ring(place, "stress-keep-up", options);
        let ((), took) = watchdog("stress-keep-up", stress_limit(total), move || {
            let subs: Vec<_> = (0..3)
                .map(|_| {
                    let mut s = p.subscribe().unwrap();
                    thread::spawn(move || drain(&mut s, max, false, |_| {}))
                })
                .collect();
            for t in run_publishers(p, publishers, per, max) {
                t.join().unwrap();
            }
            for t in subs {
                let seen = t.join().unwrap();
                assert_eq!((seen.received, seen.lagged), (total, 0));
                assert!(seen.next.values().all(|&n| n == per), "{:?}", seen.next);
            }
        });
        eprintln!("{place:?}: {total} messages to 3 subscribers in {took:?}");
    }
}

/// A small ring and subscribers of varied slowness, one of which reads only after the
/// publishers finished: whatever each receives is whole and in order per publisher, and
/// what it received plus what it was told it lost adds up to what was published. The
/// publishers lap each other too, often finding a slot whose previous message another
/// publisher is still writing; they must wake when it is committed.
#[test]
fn stress_overwrite_slow_subscribers_account_for_every_loss() {
    for place in PLACES {
        let (publishers, per, max, capacity) = (3, stress(), 512, 16);
        let total = publishers * per;
        let options = BroadcastOptions {
            capacity,
            max_message: max,
            ..Default::default()
        };
        let p = ring(place, "stress-slow", options);
        let (lagged, took) = watchdog("stress-slow", stress_limit(total), move || {
            let subs: Vec<_> = (0..3u64)
                .map(|k| {
                    let mut s = p.subscribe().unwrap();
                    thread::spawn(move || {
                        drain(&mut s, max, true, |n| {
                            for _ in 0..k * (n % 7) {
                                thread::yield_now();
                            }
                        })
                    })
                })
                .collect();
            let mut sleeper = p.subscribe().unwrap();
            for t in run_publishers(p, publishers, per, max) {
                t.join().unwrap();
            }
            let mut lagged = Vec::new();
            for t in subs {
                let seen = t.join().unwrap();
                assert_eq!(seen.received + seen.lagged, total, "{seen:?}");
                lagged.push(seen.lagged);
            }
            // Only the last ring is left for the sleeper (in one lag or several: the tail
            // hint may trail the last position).
            let seen = drain(&mut sleeper, max, true, |_| {});
            let kept = capacity as u64;
            assert_eq!((seen.received, seen.lagged), (kept, total - kept));
            lagged
        });
        eprintln!("{place:?}: {total} messages, lost by the readers {lagged:?}, in {took:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Backpressure.

fn backpressure(capacity: usize, max_message: usize) -> BroadcastOptions {
    BroadcastOptions {
        capacity,
        max_message,
        overflow: Overflow::Backpressure,
        ..Default::default()
    }
}

/// Two publishers, three subscribers (one much slower), a ring of 8: every subscriber
/// receives every message, each publisher's contiguous, none lost.
#[test]
fn backpressure_slow_subscribers_lose_nothing() {
    for place in PLACES {
        let (publishers, per, max) = (2, stress(), 100);
        let p = ring(place, "bp-no-loss", backpressure(8, max));
        let ((), took) = watchdog("bp-no-loss", stress_limit(publishers * per), move || {
            let subs: Vec<_> = (0..3u64)
                .map(|k| {
                    let mut s = p.subscribe().unwrap();
                    thread::spawn(move || {
                        drain(&mut s, max, false, |n| {
                            if k == 2 && n % 16 == 0 {
                                thread::sleep(Duration::from_micros(50));
                            }
                        })
                    })
                })
                .collect();
            for t in run_publishers(p, publishers, per, max) {
                t.join().unwrap();
            }
            for t in subs {
                let seen = t.join().unwrap();
                assert_eq!(seen.received, publishers * per);
                assert!(seen.next.values().all(|&n| n == per));
            }
        });
        eprintln!(
            "{place:?}: {} messages under backpressure in {took:?}",
            2 * per
        );
    }
}

/// A publisher thread publishes into a ring of 4 that one subscriber reads: before the
/// subscriber's `i`th read the publisher has published exactly `i + 4` (it filled the
/// ring and blocked: `try_publish` is `Full`, `publish_timeout` times out), and each read
/// lets it go on by exactly one.
#[test]
fn backpressure_blocks_publishers_at_a_full_ring_and_resumes_them() {
    for place in PLACES {
        let p = ring(place, "bp-blocks", backpressure(4, 8));
        let mut slow = p.subscribe().unwrap();
        let published = Arc::new(AtomicU64::new(0));
        let count = 12u64;
        let ((), _) = watchdog("bp-blocks", HANG, move || {
            let writer = {
                let (p, published) = (p.clone(), published.clone());
                thread::spawn(move || {
                    for i in 0..count {
                        p.publish(&i.to_le_bytes()).unwrap();
                        published.store(i + 1, Ordering::SeqCst);
                    }
                })
            };
            for i in 0..count {
                let full = (i + 4).min(count);
                while published.load(Ordering::SeqCst) < full {
                    thread::yield_now();
                }
                assert_eq!(published.load(Ordering::SeqCst), full);
                if full == i + 4 {
                    assert_eq!(p.try_publish(b"extra"), Err(SendError::Full));
                    let r = p.publish_timeout(b"extra", Duration::from_millis(2));
                    assert_eq!(r, Err(SendError::Timeout));
                    assert_eq!(
                        published.load(Ordering::SeqCst),
                        full,
                        "published past a full ring"
                    );
                }
                assert_eq!(slow.recv_timeout(HANG).map(value), Ok(i));
            }
            writer.join().unwrap();
            assert_eq!(slow.try_recv(), Err(RecvError::Empty));
            // With the ring drained there is room again.
            p.try_publish(b"room").unwrap();
        });
    }
}

/// A subscriber that never reads holds a blocked publisher back until it is dropped;
/// then the publisher finishes and the other subscriber gets everything.
#[test]
fn dropping_the_slowest_subscriber_unblocks_publishers() {
    for place in PLACES {
        let p = ring(place, "bp-drop-slow", backpressure(4, 8));
        let slow = p.subscribe().unwrap();
        let mut fast = p.subscribe().unwrap();
        let count = 20;
        let ((), _) = watchdog("bp-drop-slow", HANG, move || {
            let writer = thread::spawn(move || publish_all(&p, 0..count));
            for i in 0..4 {
                assert_eq!(fast.recv_timeout(HANG).map(value), Ok(i));
            }
            // The ring is full for `slow`: nothing more can come until it goes.
            assert_eq!(
                fast.recv_timeout(Duration::from_millis(20)),
                Err(RecvError::Timeout)
            );
            drop(slow);
            for i in 4..count {
                assert_eq!(fast.recv_timeout(HANG).map(value), Ok(i));
            }
            writer.join().unwrap();
            assert_eq!(fast.recv_timeout(HANG), Err(RecvError::Disconnected));
        });
    }
}

/// A subscriber that joins after a publisher found nobody to wait for still holds that
/// publisher back a ring later.
#[test]
fn backpressure_holds_for_a_subscriber_that_joins_after_publishing_began() {
    for place in PLACES {
        let p = ring(place, "bp-joins-later", backpressure(4, 8));
        publish_all(&p, 0..6);
        let mut s = p.subscribe().unwrap();
        publish_all(&p, 6..10);
        assert_eq!(p.try_publish(b"lost?"), Err(SendError::Full), "{place:?}");
        expect_values(&mut s, 6..10);
        publish_all(&p, 10..14);
        assert_eq!(p.try_publish(b"lost?"), Err(SendError::Full));
    }
}

/// History is protected under backpressure: a joiner's history holds publishers back
/// until it has read it.
#[test]
fn backpressure_keeps_a_joiners_history() {
    let p = broadcast::channel(BroadcastOptions {
        history: 4,
        ..backpressure(4, 8)
    });
    // Nobody subscribed: nothing holds the publisher back.
    publish_all(&p, 0..10);
    let mut s = p.subscribe().unwrap();
    assert_eq!(p.try_publish(&10u64.to_le_bytes()), Err(SendError::Full));
    assert_eq!(s.try_recv().map(value), Ok(6));
    publish_all(&p, 10..11);
    expect_values(&mut s, 7..11);

    // A joiner's history lies behind the cursors the publisher last saw, all caught up.
    let p = broadcast::channel(BroadcastOptions {
        history: 2,
        ..backpressure(4, 8)
    });
    let mut first = p.subscribe().unwrap();
    // The publisher looks at the cursors once a ring (at 4 and 8), last with `first`
    // caught up at 8: above where the joiner's history starts.
    for v in 0..9 {
        publish_all(&p, v..v + 1);
        expect_values(&mut first, v..v + 1);
    }
    let mut joiner = p.subscribe().unwrap();
    publish_all(&p, 9..11);
    assert_eq!(p.try_publish(&11u64.to_le_bytes()), Err(SendError::Full));
    expect_values(&mut joiner, 7..11);
    expect_values(&mut first, 9..11);
    publish_all(&p, 11..12);
}

// ---------------------------------------------------------------------------------------
// Disconnection.

#[test]
fn last_publisher_gone_drains_then_disconnects() {
    for place in PLACES {
        let p = ring(place, "disconnect", small(Overflow::Overwrite, 8));
        let p2 = p.clone();
        let p3 = match place {
            Place::Heap => p.clone(),
            Place::Named => broadcast::open(&unique("disconnect")).unwrap(),
        };
        let mut s = p.subscribe().unwrap();
        publish_all(&p, 0..1);
        drop(p);
        publish_all(&p2, 1..2);
        drop(p2);
        publish_all(&p3, 2..3);
        assert_eq!(s.try_recv().map(value), Ok(0));
        assert_eq!(s.try_recv().map(value), Ok(1));
        drop(p3);
        assert_eq!(s.try_recv().map(value), Ok(2));
        assert_eq!(s.try_recv(), Err(RecvError::Disconnected), "{place:?}");
        assert_eq!(s.recv(), Err(RecvError::Disconnected));
        assert_eq!(s.recv_timeout(HANG), Err(RecvError::Disconnected));
    }
}

/// Subscribers asleep in `recv` wake when the last publisher drops.
#[test]
fn blocked_receivers_wake_when_the_last_publisher_leaves() {
    for place in PLACES {
        let p = ring(place, "disconnect-wakes", small(Overflow::Backpressure, 8));
        let ((), _) = watchdog("disconnect-wakes", HANG, move || {
            let started = Arc::new(Barrier::new(4));
            let subs: Vec<_> = (0..3)
                .map(|_| {
                    let mut s = p.subscribe().unwrap();
                    let started = started.clone();
                    thread::spawn(move || {
                        started.wait();
                        s.recv().map(value)
                    })
                })
                .collect();
            started.wait();
            // Give them time to fall asleep; they must wake whether they did or not.
            thread::sleep(Duration::from_millis(20));
            drop(p);
            for t in subs {
                assert_eq!(t.join().unwrap(), Err(RecvError::Disconnected));
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// Limits.

#[test]
fn subscriber_limit_and_records_freed_by_drop() {
    for place in PLACES {
        let p = ring(
            place,
            "sub-limit",
            BroadcastOptions {
                max_subscribers: 3,
                ..small(Overflow::Backpressure, 4)
            },
        );
        let other = match place {
            Place::Heap => p.clone(),
            Place::Named => broadcast::open(&unique("sub-limit")).unwrap(),
        };
        let mut subs = vec![p.subscribe().unwrap(), other.subscribe().unwrap()];
        subs.push(p.subscribe().unwrap());
        let full = Err(SubscribeError::TooManySubscribers { max: 3 });
        assert_eq!(p.subscribe().map(|_| ()), full);
        assert_eq!(other.subscribe().map(|_| ()), full);
        // Records are reused, many times over, and a new one starts at the newest.
        for round in 0..100u64 {
            subs.remove((round % 3) as usize);
            publish_all(&p, round..round + 1);
            for s in &mut subs {
                assert_eq!(s.try_recv().map(value), Ok(round));
            }
            let mut joiner = other.subscribe().unwrap();
            assert_eq!(joiner.try_recv(), Err(RecvError::Empty));
            subs.push(joiner);
            assert_eq!(p.subscribe().map(|_| ()), full);
        }
    }
}

#[test]
fn too_large_messages_are_refused_and_publish_nothing() {
    for place in PLACES {
        let p = ring(
            place,
            "too-large",
            BroadcastOptions {
                max_message: 100,
                ..Default::default()
            },
        );
        let mut s = p.subscribe().unwrap();
        let too_large = Err(SendError::TooLarge { len: 101, max: 100 });
        assert_eq!(p.publish(&[7; 101]), too_large);
        assert_eq!(p.try_publish(&[7; 101]), too_large);
        assert_eq!(p.publish_timeout(&[7; 101], HANG), too_large);
        assert_eq!(s.try_recv(), Err(RecvError::Empty));
        assert_eq!(p.publish(&[9; 100]), Ok(0));
        assert_eq!(p.publish(&[]), Ok(1));
        assert_eq!(s.try_recv().unwrap(), [9; 100]);
        assert_eq!(s.try_recv().unwrap(), []);
    }
}

#[test]
#[should_panic(expected = "broadcast::channel")]
fn a_heap_ring_with_options_out_of_range_panics() {
    broadcast::channel(BroadcastOptions {
        history: 2000,
        ..Default::default()
    });
}

#[test]
fn create_refuses_options_out_of_range() {
    let bad = [
        BroadcastOptions {
            capacity: 0,
            ..Default::default()
        },
        BroadcastOptions {
            history: 9,
            capacity: 8,
            ..Default::default()
        },
        BroadcastOptions {
            max_subscribers: 0,
            ..Default::default()
        },
        BroadcastOptions {
            max_publisher_processes: 5000,
            ..Default::default()
        },
    ];
    for (i, options) in bad.into_iter().enumerate() {
        let name = unique(&format!("bad-options-{i}"));
        let r = broadcast::create(&name, options);
        assert!(
            matches!(r, Err(SegmentError::Incompatible { .. })),
            "{options:?}"
        );
        assert!(matches!(
            broadcast::open(&name),
            Err(SegmentError::NotFound { .. })
        ));
    }
}

/// Offsets of a ring's parts (ARCHITECTURE.md, "Broadcast ring").
#[derive(Clone, Copy, Debug)]
struct Layout {
    capacity: usize,
    max_message: usize,
    publishers: usize,
    subscribers: usize,
}

const CTRL: usize = 512;
const PUB_RECORD: usize = 16;
const SUB_RECORD: usize = 128;

impl Layout {
    fn of(o: &BroadcastOptions) -> Layout {
        Layout {
            capacity: o.capacity.next_power_of_two().max(2),
            max_message: o.max_message,
            publishers: o.max_publisher_processes,
            subscribers: o.max_subscribers,
        }
    }

    fn slot_words(&self) -> usize {
        2 + self.max_message.div_ceil(8)
    }

    fn subs_off(&self) -> usize {
        (CTRL + self.publishers * PUB_RECORD).next_multiple_of(128)
    }

    fn slots_off(&self) -> usize {
        self.subs_off() + self.subscribers * SUB_RECORD
    }

    fn len(&self) -> usize {
        self.slots_off() + self.capacity * self.slot_words() * 8
    }

    fn slot(&self, index: u64, word: usize) -> usize {
        self.slots_off() + (index as usize % self.capacity) * self.slot_words() * 8 + word * 8
    }
}

/// A segment of kind `BCST` with these parameters and payload length, made by hand.
fn crafted(name: &str, params: [u64; PARAMS], len: usize) -> Segment {
    Segment::create(name, KIND_BROADCAST, params, len).unwrap()
}

fn params_of(l: &Layout, overflow: u64, history: u64) -> [u64; PARAMS] {
    [
        l.capacity as u64,
        l.max_message as u64,
        l.publishers as u64,
        l.subscribers as u64,
        overflow,
        history,
    ]
}

/// `open` rebuilds the geometry from the header and refuses any that the creator could
/// not have made, or whose payload length disagrees.
#[test]
fn open_refuses_damaged_or_mismatched_geometry() {
    let good = Layout::of(&BroadcastOptions {
        capacity: 16,
        max_message: 40,
        max_publisher_processes: 3,
        max_subscribers: 5,
        ..Default::default()
    });
    // A positive control: the layout is computed as the ring computes it.
    let name = unique("crafted-good");
    let _seg = crafted(&name, params_of(&good, 1, 2), good.len());
    let p = broadcast::open(&name).unwrap();
    assert_eq!((p.capacity(), p.max_message()), (16, 40));
    let mut s = p.subscribe().unwrap();
    p.publish(b"works").unwrap();
    assert_eq!(s.try_recv().unwrap(), b"works");
    drop((s, p));

    let with = |i: usize, v: u64| {
        let mut params = params_of(&good, 0, 0);
        params[i] = v;
        params
    };
    let cases: [(&str, [u64; PARAMS], usize); 12] = [
        ("short", params_of(&good, 0, 0), good.len() - 8),
        ("long", params_of(&good, 0, 0), good.len() + 128),
        ("capacity-not-pow2", with(0, 12), good.len()),
        ("capacity-zero", with(0, 0), good.len()),
        ("capacity-huge", with(0, u64::MAX), good.len()),
        ("max-message-huge", with(1, 1 << 40), good.len()),
        ("no-publishers", with(2, 0), good.len()),
        ("too-many-subscribers", with(3, 5000), good.len()),
        ("overflow-unknown", with(4, 2), good.len()),
        ("overflow-huge", with(4, u64::MAX), good.len()),
        ("history-over-capacity", with(5, 17), good.len()),
        ("other-sizes", with(1, 48), good.len()),
    ];
    for (what, params, len) in cases {
        let name = unique(&format!("crafted-{what}"));
        let _seg = crafted(&name, params, len);
        match broadcast::open(&name) {
            Err(SegmentError::Corrupt { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{what}: {other:?}"),
        }
    }
    // Another kind under the name is not a broadcast ring at all.
    let name = unique("crafted-kind");
    let _seg = Segment::create(&name, u32::from_le_bytes(*b"MPMC"), [0; PARAMS], 4096).unwrap();
    assert!(matches!(
        broadcast::open(&name),
        Err(SegmentError::Incompatible { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Hostile words.

/// A raw mapping of a named ring, to write what a buggy or hostile process might.
struct Raw {
    seg: Segment,
    layout: Layout,
}

impl Raw {
    fn open(name: &str, options: &BroadcastOptions) -> Raw {
        let seg = Segment::open(name, KIND_BROADCAST).unwrap();
        let layout = Layout::of(options);
        assert_eq!(seg.payload_len(), layout.len());
        Raw { seg, layout }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.seg.payload_len());
        // SAFETY: the offset is 8-aligned and inside the payload (checked above), which
        // is mapped for as long as `self.seg` lives; every access to it is atomic.
        unsafe { AtomicU64::from_ptr(self.seg.payload().as_ptr().add(offset).cast()) }
    }

    fn set(&self, offset: usize, v: u64) {
        self.word(offset).store(v, Ordering::Release);
    }
}

/// splitmix64 as a generator of test choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A slot state word: `position << 18 | phase << 16 | owner`.
fn state(pos: u64, phase: u64, owner: u64) -> u64 {
    ((pos & ((1 << 46) - 1)) << 18) | (phase << 16) | owner
}

/// A process token that names no live process: whatever runs under its pid did not
/// start 5 clock ticks after boot.
const DEAD_TOKEN: u64 = (5 << 22) | ((1 << 22) - 1);

/// A value worth writing into a word of `raw`: small, huge, random, plausible.
fn hostile(rng: &mut Rng, raw: &Raw) -> u64 {
    let tail = raw.word(0).load(Ordering::Relaxed);
    let cap = raw.layout.capacity as u64;
    let near = tail.wrapping_add(rng.below(4 * cap)).wrapping_sub(2 * cap);
    match rng.below(10) {
        0 => 0,
        1 => u64::MAX,
        2 => rng.next(),
        3 => rng.below(3 * cap),
        4 | 5 => state(near, rng.below(4), rng.below(6)),
        6 => state(rng.next(), rng.below(4), rng.below(1 << 16)),
        7 => near,
        8 => 1 << rng.below(64),
        _ => [DEAD_TOKEN, my_token(), u64::MAX - 1][rng.below(3) as usize],
    }
}

fn my_token() -> u64 {
    let me = ProcessId::current();
    (me.start_time << 22) | u64::from(me.pid)
}

/// Writes one hostile word somewhere in the ring: mostly slot states and lengths, also
/// the tail hint, signals, handle counts and both kinds of records.
fn scribble(rng: &mut Rng, raw: &Raw) {
    let l = raw.layout;
    let v = hostile(rng, raw);
    let slot = rng.below(l.capacity as u64);
    let offset = match rng.below(20) {
        0..=6 => l.slot(slot, 0),
        7..=9 => l.slot(slot, 1),
        10 => l.slot(slot, 2 + rng.below(l.slot_words() as u64 - 2) as usize),
        11 | 12 => 0,
        13 => [128, 256][rng.below(2) as usize],
        14 => 384 + 8 * rng.below(2) as usize,
        15 | 16 => {
            CTRL + PUB_RECORD * rng.below(l.publishers as u64) as usize + 8 * rng.below(2) as usize
        }
        _ => {
            l.subs_off()
                + SUB_RECORD * rng.below(l.subscribers as u64) as usize
                + 8 * rng.below(2) as usize
        }
    };
    raw.set(offset, v);
}

/// What one hostile run saw: every outcome is a typed value; counted to show the run
/// reached the interesting ones.
#[derive(Debug, Default)]
struct Outcomes {
    published: u64,
    received: u64,
    refused: HashMap<String, u64>,
}

impl Outcomes {
    fn refused(&mut self, what: impl std::fmt::Debug) {
        let key = format!("{what:?}");
        let key = key.split(['(', ' ']).next().unwrap().to_owned();
        *self.refused.entry(key).or_default() += 1;
    }
}

/// Runs random operations on a ring whose words are scribbled over, between operations
/// (`concurrent` false) or all the time by another thread: every call returns a typed
/// result in bounded time, and every message delivered fits the ring.
fn hostile_run(overflow: Overflow, concurrent: bool) -> Outcomes {
    let rounds = env_count("RINGPORT_HOSTILE_ROUNDS", 300);
    let options = BroadcastOptions {
        capacity: 8,
        max_message: 40,
        overflow,
        history: 2,
        max_subscribers: 4,
        max_publisher_processes: 3,
    };
    let name = unique(&format!("hostile-{overflow:?}-{concurrent}"));
    let p = broadcast::create(&name, options).unwrap();
    let raw = Raw::open(&name, &options);
    let seed = seed();
    eprintln!("hostile {overflow:?} concurrent={concurrent}: seed {seed}");
    let mut rng = Rng(seed);
    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = concurrent.then(|| {
        let (raw, stop) = (Raw::open(&name, &options), stop.clone());
        let mut rng = Rng(seed ^ 1);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                scribble(&mut rng, &raw);
                thread::yield_now();
            }
        })
    });
    let mut subs: Vec<Subscriber> = Vec::new();
    let mut pubs = vec![p];
    let mut out = Outcomes::default();
    let short = Duration::from_millis(2);
    for round in 0..rounds {
        if round % 10 == 9 {
            // Heal the slots now and then, so that later rounds start from real states.
            for i in 0..options.capacity as u64 {
                raw.set(raw.layout.slot(i, 0), 0);
            }
            raw.set(0, 0);
        }
        if !concurrent {
            for _ in 0..1 + rng.below(3) {
                scribble(&mut rng, &raw);
            }
        }
        for _ in 0..8 {
            let p = &pubs[rng.below(pubs.len() as u64) as usize];
            let message = vec![round as u8; rng.below(41) as usize];
            match rng.below(8) {
                0 | 1 => match p.try_publish(&message) {
                    Ok(_) => out.published += 1,
                    Err(e @ (SendError::Full | SendError::Corrupt(_))) => out.refused(e),
                    Err(e) => panic!("try_publish: {e:?}"),
                },
                2 => match p.publish_timeout(&message, short) {
                    Ok(_) => out.published += 1,
                    Err(e @ (SendError::Timeout | SendError::Corrupt(_))) => out.refused(e),
                    Err(e) => panic!("publish_timeout: {e:?}"),
                },
                3..=5 if !subs.is_empty() => {
                    let i = rng.below(subs.len() as u64) as usize;
                    let r = if rng.below(2) == 0 {
                        subs[i].try_recv().map(<[u8]>::len)
                    } else {
                        subs[i].recv_timeout(short).map(<[u8]>::len)
                    };
                    match r {
                        Ok(len) => {
                            assert!(len <= options.max_message, "a {len}-byte message");
                            out.received += 1;
                        }
                        Err(
                            e @ (RecvError::Empty
                            | RecvError::Timeout
                            | RecvError::Lagged(_)
                            | RecvError::Disconnected
                            | RecvError::Corrupt(_)),
                        ) => out.refused(e),
                        Err(e) => panic!("receive: {e:?}"),
                    }
                }
                6 => match p.subscribe() {
                    Ok(s) if subs.len() < 3 => subs.push(s),
                    Ok(_) => {}
                    Err(e) => out.refused(e),
                },
                _ => {
                    if !subs.is_empty() && rng.below(2) == 0 {
                        subs.swap_remove(rng.below(subs.len() as u64) as usize);
                    } else if pubs.len() > 1 && rng.below(2) == 0 {
                        pubs.swap_remove(1 + rng.below(pubs.len() as u64 - 1) as usize);
                    } else {
                        match broadcast::open(&name) {
                            Ok(q) if pubs.len() < 3 => pubs.push(q),
                            Ok(_) => {}
                            Err(e) => out.refused(e),
                        }
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = scribbler {
        t.join().unwrap();
    }
    out
}

/// Hostile words in a named ring's slots, hint, signals, counts and records give typed
/// errors (or messages that fit), never a panic or a hang.
#[test]
fn hostile_words_give_typed_results_never_a_panic_or_hang() {
    for overflow in [Overflow::Overwrite, Overflow::Backpressure] {
        for concurrent in [false, true] {
            let what = format!("hostile {overflow:?} concurrent={concurrent}");
            let limit =
                HANG + Duration::from_millis(20 * env_count("RINGPORT_HOSTILE_ROUNDS", 300));
            let (out, took) = watchdog(&what, limit, move || hostile_run(overflow, concurrent));
            eprintln!("{what}: {out:?} in {took:?}");
            // Between operations the ring heals often enough that messages get through;
            // under a scribbler that never stops, a run may deliver nothing, and what it
            // must show is that the damage was met and refused by type.
            let reached = if concurrent {
                out.refused.contains_key("Corrupt")
            } else {
                out.published > 0 && out.received > 0
            };
            assert!(reached, "{what}: {out:?}");
        }
    }
}

/// Hand-picked hostile states at the edges of the position arithmetic: a tail hint at the
/// end of the 64-bit range, cursors and slot positions that wrap, every phase held by
/// this process or by a vacant publisher record, and lengths over the maximum.
#[test]
fn hostile_edge_states_give_typed_results() {
    let options = BroadcastOptions {
        capacity: 4,
        max_message: 16,
        history: 1,
        ..Default::default()
    };
    let pos_mask = (1u64 << 46) - 1;
    let tails = [
        u64::MAX,
        u64::MAX - 1,
        u64::MAX - 4,
        1 << 46,
        pos_mask,
        (1 << 63) + 3,
    ];
    for (i, &tail) in tails.iter().enumerate() {
        for phase in 0..4 {
            let name = unique(&format!("edge-{i}-{phase}"));
            let p = broadcast::create(&name, options).unwrap();
            let raw = Raw::open(&name, &options);
            let l = raw.layout;
            raw.set(0, tail);
            // Every slot claims a position around the tail, in the phase under test.
            for k in 0..4u64 {
                let pos = tail.wrapping_sub(2).wrapping_add(k);
                raw.set(l.slot(pos, 0), state(pos, phase, 1 + k % 2));
                raw.set(l.slot(pos, 1), if k == 3 { 17 } else { 5 });
            }
            let ((), _) = watchdog(&name, HANG, move || {
                let mut s = p.subscribe().unwrap();
                let mut t = p.subscribe().unwrap();
                for round in 0..12u8 {
                    match p.publish_timeout(&[round; 3], Duration::from_millis(2)) {
                        Ok(_) | Err(SendError::Timeout | SendError::Corrupt(_)) => {}
                        Err(e) => panic!("publish: {e:?}"),
                    }
                    for s in [&mut s, &mut t] {
                        match s.try_recv().map(<[u8]>::len) {
                            Ok(len) => assert!(len <= 16),
                            Err(
                                RecvError::Empty
                                | RecvError::Lagged(_)
                                | RecvError::Disconnected
                                | RecvError::Corrupt(_),
                            ) => {}
                            Err(e) => panic!("try_recv: {e:?}"),
                        }
                    }
                }
                drop((s, t));
                drop(p);
            });
        }
    }
}

// ---------------------------------------------------------------------------------------
// BroadcastChannel.

/// This process's namespace for the channel tests: unique, so no other run meets it.
fn namespace(test: &str) -> String {
    format!("rpt{}-{test}", std::process::id())
}

fn shm_file(namespace: &str, name: &str) -> std::path::PathBuf {
    format!("/dev/shm/bc-{namespace}-{name}").into()
}

fn join(namespace: &str, name: &str) -> BroadcastChannel {
    BroadcastChannel::with_options(namespace, name, BroadcastOptions::default()).unwrap()
}

fn text(r: Result<&[u8], ChannelError>) -> String {
    String::from_utf8(r.expect("a message").to_vec()).unwrap()
}

fn is_empty(r: Result<&[u8], ChannelError>) -> bool {
    matches!(r, Err(ChannelError::Recv(RecvError::Empty)))
}

#[test]
fn channel_never_delivers_to_its_sender() {
    let name = unique("ch-sender");
    let mut a = BroadcastChannel::new(&name).unwrap();
    let mut b = BroadcastChannel::new(&name).unwrap();
    for i in 0..10 {
        a.post_message(format!("a{i}").as_bytes()).unwrap();
    }
    b.post_message(b"b0").unwrap();
    assert_eq!(text(a.try_recv()), "b0");
    assert!(is_empty(a.try_recv()));
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(5)),
        Err(ChannelError::Recv(RecvError::Timeout))
    ));
    for i in 0..10 {
        assert_eq!(text(b.recv_timeout(HANG)), format!("a{i}"));
    }
    // b skips its own "b0".
    assert!(is_empty(b.try_recv()));
    // `new` joins the namespace of RINGPORT_NAMESPACE, or `default`.
    let ns = std::env::var("RINGPORT_NAMESPACE").unwrap_or_else(|_| "default".into());
    let mut c = join(&ns, &name);
    c.post_message(b"c").unwrap();
    assert_eq!(text(a.try_recv()), "c");
    assert_eq!(text(b.try_recv()), "c");
}

/// Four objects in four threads, all open before anyone posts: each receives every
/// other object's messages, whole and in each sender's order, and none of its own.
#[test]
fn channel_delivers_to_every_other_object_across_threads() {
    let (ns, name) = (namespace("every-other"), unique("ch-every-other"));
    let (objects, per) = (4u64, 100u64);
    let ((), _) = watchdog("every-other", HANG, move || {
        let all_open = Arc::new(Barrier::new(objects as usize));
        let threads: Vec<_> = (0..objects)
            .map(|me| {
                let (ns, name, all_open) = (ns.clone(), name.clone(), all_open.clone());
                thread::spawn(move || {
                    let mut ch = join(&ns, &name);
                    all_open.wait();
                    let payloads = Payloads::new(200);
                    for i in 0..per {
                        let mut m = vec![me as u8, i as u8];
                        m.extend_from_slice(payloads.get(me << 16 | i));
                        ch.post_message(&m).unwrap();
                    }
                    let mut next = vec![0u64; objects as usize];
                    for _ in 0..(objects - 1) * per {
                        let m = ch.recv_timeout(HANG).unwrap();
                        let (from, i) = (m[0] as usize, u64::from(m[1]));
                        assert_ne!(from as u64, me, "delivered to its sender");
                        assert_eq!(i, next[from]);
                        assert_eq!(&m[2..], payloads.get((from as u64) << 16 | i));
                        next[from] += 1;
                    }
                    assert!(is_empty(ch.try_recv()));
                    // Every object stays open until all have received.
                    all_open.wait();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    assert!(!shm_file(&namespace("every-other"), &unique("ch-every-other")).exists());
}

#[test]
fn channel_namespaces_do_not_meet() {
    let name = unique("ch-origins");
    let (ns_a, ns_b) = (namespace("origin-a"), namespace("origin-b"));
    let mut a1 = join(&ns_a, &name);
    let mut a2 = join(&ns_a, &name);
    let mut b1 = join(&ns_b, &name);
    a1.post_message(b"for a").unwrap();
    b1.post_message(b"for b").unwrap();
    assert_eq!(text(a2.try_recv()), "for a");
    assert!(is_empty(a2.try_recv()));
    assert!(is_empty(b1.try_recv()));
    assert!(shm_file(&ns_a, &name).exists() && shm_file(&ns_b, &name).exists());
    drop(b1);
    assert!(!shm_file(&ns_b, &name).exists());
    assert!(shm_file(&ns_a, &name).exists());
}

#[test]
fn channel_close_refuses_posts_and_the_last_close_removes_the_name() {
    let (ns, name) = (namespace("close"), unique("ch-close"));
    let file = shm_file(&ns, &name);
    let mut a = join(&ns, &name);
    let mut b = join(&ns, &name);
    let mut c = join(&ns, &name);
    assert!(file.exists());
    a.close();
    a.close();
    assert_eq!(a.name(), name);
    assert!(matches!(a.post_message(b"x"), Err(ChannelError::Closed)));
    assert!(matches!(a.recv(), Err(ChannelError::Closed)));
    assert!(matches!(a.try_recv(), Err(ChannelError::Closed)));
    assert!(matches!(a.recv_timeout(HANG), Err(ChannelError::Closed)));
    // The others still meet.
    b.post_message(b"still here").unwrap();
    assert_eq!(text(c.try_recv()), "still here");
    b.close();
    assert!(file.exists(), "c is still open");
    drop(c);
    assert!(!file.exists(), "the last close removes the name");

    // A fresh ring afterwards: nothing of the old one comes back.
    let mut d = join(&ns, &name);
    let mut e = join(&ns, &name);
    assert!(is_empty(e.try_recv()));
    d.post_message(b"fresh").unwrap();
    assert_eq!(text(e.try_recv()), "fresh");
    assert!(is_empty(d.try_recv()));
    drop((d, e));
    assert!(!file.exists());
}

#[test]
fn channel_limits_subscribers_message_size_and_reports_lag() {
    let (ns, name) = (namespace("limits"), unique("ch-limits"));
    let options = BroadcastOptions {
        max_subscribers: 2,
        ..Default::default()
    };
    let mut a = BroadcastChannel::with_options(&ns, &name, options).unwrap();
    let mut b = BroadcastChannel::with_options(&ns, &name, options).unwrap();
    // The creator's options hold for every later object, whatever it passes.
    let full = BroadcastChannel::with_options(&ns, &name, BroadcastOptions::default());
    assert!(matches!(
        full,
        Err(ChannelError::Subscribe(
            SubscribeError::TooManySubscribers { max: 2 }
        ))
    ));
    b.close();
    let mut c = BroadcastChannel::with_options(&ns, &name, options).unwrap();

    // 256 bytes a message, 8 of them the sender id.
    assert!(matches!(
        a.post_message(&[0; 249]),
        Err(ChannelError::Send(SendError::TooLarge {
            len: 249,
            max: 248
        }))
    ));
    a.post_message(&[1; 248]).unwrap();
    assert_eq!(c.try_recv().unwrap(), [1; 248]);

    // A ring and a half behind: lagged by half a ring, then the oldest kept.
    for i in 0..1536u32 {
        a.post_message(&i.to_le_bytes()).unwrap();
    }
    assert!(matches!(
        c.try_recv(),
        Err(ChannelError::Recv(RecvError::Lagged(512)))
    ));
    assert_eq!(c.try_recv().unwrap(), 512u32.to_le_bytes());
    drop((a, c));
    assert!(!shm_file(&ns, &name).exists());
}

/// A listener open throughout hears every message of objects that join, post and close
/// as fast as they can, from several threads: each exactly once.
#[test]
fn channel_churn_is_heard_by_a_stable_listener() {
    let (ns, name) = (namespace("churn-listener"), unique("ch-churn-listener"));
    let (threads, per) = (4u64, (stress() / 10).max(1));
    let options = BroadcastOptions {
        capacity: (threads * per) as usize,
        ..Default::default()
    };
    let mut listener = BroadcastChannel::with_options(&ns, &name, options).unwrap();
    let ((), took) = watchdog("churn-listener", HANG, move || {
        let churners: Vec<_> = (0..threads)
            .map(|t| {
                let (ns, name) = (ns.clone(), name.clone());
                thread::spawn(move || {
                    for i in 0..per {
                        let mut ch = BroadcastChannel::with_options(&ns, &name, options).unwrap();
                        ch.post_message(&(t << 32 | i).to_le_bytes()).unwrap();
                        if i % 2 == 0 {
                            ch.close();
                        }
                    }
                })
            })
            .collect();
        let mut next = vec![0; threads as usize];
        for _ in 0..threads * per {
            let m = value(listener.recv_timeout(HANG).unwrap());
            let (t, i) = ((m >> 32) as usize, m & 0xffff_ffff);
            assert_eq!(i, next[t], "from thread {t}");
            next[t] += 1;
        }
        for c in churners {
            c.join().unwrap();
        }
        assert!(is_empty(listener.try_recv()));
    });
    eprintln!("{} churned posts in {took:?}", threads * per);
}

/// Threads that each open two objects, post from one and hear it on the other, then
/// close both, all at once: the ring's name keeps being removed and made anew, and two
/// objects open at the same time must always be on the same ring.
#[test]
fn channel_churn_never_splits_objects_open_together() {
    let (ns, name) = (namespace("churn-pairs"), unique("ch-churn-pairs"));
    let (threads, per) = (4u64, (stress() / 10).max(1));
    let ((), took) = watchdog("churn-pairs", HANG, move || {
        let pairs: Vec<_> = (0..threads)
            .map(|t| {
                let (ns, name) = (ns.clone(), name.clone());
                thread::spawn(move || {
                    for i in 0..per {
                        let mut x = join(&ns, &name);
                        let mut y = join(&ns, &name);
                        let tag = (t << 32 | i).to_le_bytes();
                        x.post_message(&tag).unwrap();
                        // Other pairs' messages may come first; ours must come.
                        loop {
                            match y.recv_timeout(HANG) {
                                Ok(m) if m == tag => break,
                                Ok(_) => {}
                                Err(e) => panic!("thread {t} pair {i}: {e}"),
                            }
                        }
                        if i % 2 == 0 {
                            drop((x, y));
                        } else {
                            drop((y, x));
                        }
                    }
                })
            })
            .collect();
        for p in pairs {
            p.join().unwrap();
        }
    });
    eprintln!("{} pairs churned in {took:?}", threads * per);
    assert!(!shm_file(&namespace("churn-pairs"), &unique("ch-churn-pairs")).exists());
}

/// Handles counted in the control block and freed records stay consistent across many
/// joins and leaves: a ring with room for 2 objects takes 2 again after each churn.
#[test]
fn channel_records_are_freed_by_close() {
    let (ns, name) = (namespace("records"), unique("ch-records"));
    let options = BroadcastOptions {
        max_subscribers: 2,
        ..Default::default()
    };
    let keeper = BroadcastChannel::with_options(&ns, &name, options).unwrap();
    for _ in 0..50 {
        let mut x = BroadcastChannel::with_options(&ns, &name, options).unwrap();
        assert!(BroadcastChannel::with_options(&ns, &name, options).is_err());
        x.close();
    }
    drop(keeper);
    assert!(!shm_file(&ns, &name).exists());
}
