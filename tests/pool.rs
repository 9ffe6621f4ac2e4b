//! Buffer pools between threads, on the heap and in a named segment: size classes and
//! their fallback, `TooLarge` and `Empty`, loans that wait for a release from another
//! thread or time out, transfers of a handle through an MPMC ring and through a port with
//! the bytes staying in place, every way a handle is refused, shared buffers over a
//! broadcast ring (one copy for every subscriber, back in the pool only once the last
//! reference and the publisher's anchor are gone, under both overflow policies), and a
//! stress of threads loaning, sending, accepting and releasing on a small pool that must
//! end with every buffer back.
//!
//! Sizes: `RINGPORT_POOL_STRESS` (default 3 000) operations per thread in the stress.

mod common;
#[path = "common/raw_handle.rs"]
mod raw_handle;

use common::{env_count, watchdog, Payloads};
use raw_handle::forge;
use ringport::broadcast::{self, BroadcastOptions, Overflow};
use ringport::mpmc;
use ringport::pool::{
    BufferHandle, BufferPool, BufferPublisher, BufferRecvError, BufferSendError, BufferSubscriber,
    LoanError, PoolError, PoolOptions, TransferError, MAX_CLASSES,
};
use ringport::{MessageChannel, RecvError, SendError};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A hang detector for blocking calls and thread joins, far above any plausible time
/// (miri interprets every step, and runs some of these tests for a minute).
const HANG: Duration = Duration::from_secs(if cfg!(miri) { 600 } else { 30 });

/// A pool name no other test, and no concurrent run of this binary, uses.
fn unique(test: &str) -> String {
    format!("rp-pool-{}-{test}", std::process::id())
}

/// The same pool layout on the heap and in a named segment, so that each behaviour is
/// checked in both memories. Miri cannot map segments, so there only the heap pool.
fn pools(test: &str, options: PoolOptions) -> Vec<BufferPool> {
    let mut pools = vec![BufferPool::new(options.clone()).unwrap()];
    if !cfg!(miri) {
        pools.push(BufferPool::create(&unique(test), options).unwrap());
    }
    pools
}

/// Every buffer of every class free: the pool is whole.
fn full(pool: &BufferPool) -> Vec<usize> {
    pool.classes().iter().map(|&(_, count)| count).collect()
}

/// Writes `tag` and then the frame it determines: a receiver can check every byte from
/// the buffer alone.
fn stamp(buf: &mut [u8], tag: u64, payloads: &Payloads) {
    let frame = payloads.get(tag);
    buf[..8].copy_from_slice(&tag.to_le_bytes());
    buf[8..8 + frame.len()].copy_from_slice(frame);
}

/// The length a [`stamp`] of `tag` needs.
fn stamp_len(tag: u64, payloads: &Payloads) -> usize {
    8 + payloads.get(tag).len()
}

/// Checks a buffer made by [`stamp`] and returns its tag.
fn check_stamp(buf: &[u8], payloads: &Payloads) -> u64 {
    let tag = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert_eq!(buf.len(), stamp_len(tag, payloads), "tag {tag:#x}: length");
    assert!(
        buf[8..] == *payloads.get(tag),
        "tag {tag:#x}: torn or foreign contents"
    );
    tag
}

#[test]
fn options_round_sort_and_reject_bad_layouts() {
    let o = PoolOptions::with_classes(&[(4096, 2), (100, 3), (1, 1)]);
    assert_eq!(o.classes(), &[(64, 1), (128, 3), (4096, 2)]);
    let pool = BufferPool::new(o).unwrap();
    assert_eq!(pool.classes(), vec![(64, 1), (128, 3), (4096, 2)]);
    assert_eq!(pool.available(), vec![1, 3, 2]);

    let bad = |classes: &[(usize, usize)]| {
        matches!(
            BufferPool::new(PoolOptions::with_classes(classes)),
            Err(PoolError::Options(_))
        )
    };
    assert!(bad(&[]), "no class");
    assert!(
        bad(&[(64, 1), (60, 1)]),
        "two classes of one size after rounding"
    );
    assert!(bad(&[(64, 0)]), "an empty class");
    let six: Vec<(usize, usize)> = (1..=MAX_CLASSES + 1).map(|i| (i * 64, 1)).collect();
    assert!(bad(&six), "more than MAX_CLASSES");
    assert!(matches!(
        BufferPool::new(PoolOptions::default().processes(0)),
        Err(PoolError::Options(_))
    ));
}

#[test]
fn loans_take_the_smallest_class_that_fits_and_fall_back_to_larger_ones() {
    for pool in pools("classes", PoolOptions::with_classes(&[(64, 2), (1024, 2)])) {
        let a = pool.try_loan(10).unwrap();
        assert_eq!((a.len(), a.capacity()), (10, 64));
        // Smallest that fits: 65 bytes skips the 64-byte class although it has room.
        let big = pool.try_loan(65).unwrap();
        assert_eq!(big.capacity(), 1024);
        assert_eq!(pool.available(), vec![1, 1]);
        let b = pool.try_loan(64).unwrap();
        assert_eq!(b.capacity(), 64);
        // The small class is empty: a small loan spills into the large one.
        let spill = pool.try_loan(0).unwrap();
        assert_eq!((spill.len(), spill.capacity()), (0, 1024));
        assert_eq!(pool.available(), vec![0, 0]);
        assert_eq!(pool.try_loan(1).unwrap_err(), LoanError::Empty { len: 1 });
        assert_eq!(
            pool.try_loan(1024).unwrap_err(),
            LoanError::Empty { len: 1024 }
        );
        // Too large wins over empty: no buffer of this pool could ever hold it.
        assert_eq!(
            pool.try_loan(1025).unwrap_err(),
            LoanError::TooLarge {
                len: 1025,
                max: 1024
            }
        );
        assert_eq!(
            pool.loan_timeout(1 << 20, HANG).unwrap_err(),
            LoanError::TooLarge {
                len: 1 << 20,
                max: 1024
            }
        );
        // Released, that buffer is the only free one of its class: the next loan gets it,
        // under a new generation.
        let h = a.into_handle();
        drop(pool.accept(&h).unwrap());
        let again = pool.try_loan(1).unwrap().into_handle();
        assert_eq!(again.index(), h.index());
        assert_eq!(again.generation(), h.generation().wrapping_add(1));
        drop(pool.accept(&again).unwrap());
        drop((big, b, spill));
        assert_eq!(pool.available(), full(&pool));
    }
}

#[test]
fn buffer_lengths_and_contents_stay_in_place() {
    for pool in pools("in-place", PoolOptions::with_classes(&[(4096, 1)])) {
        let mut b = pool.try_loan(3).unwrap();
        let at = b.as_ptr();
        b.copy_from_slice(b"abc");
        b.set_len(4096);
        assert_eq!(&b[..3], b"abc");
        b.set_len(2);
        assert_eq!(&*b, b"ab");
        assert_eq!(b.pool().id(), pool.id());
        let h = b.into_handle();
        assert_eq!((h.len(), h.is_empty(), h.is_shared()), (2, false, false));
        let back = pool.accept(&h).unwrap();
        assert_eq!((back.as_ptr(), &*back), (at, &b"ab"[..]));
    }
}

#[test]
#[should_panic(expected = "exceeds its capacity")]
fn set_len_beyond_capacity_panics() {
    let pool = BufferPool::new(PoolOptions::with_classes(&[(64, 1)])).unwrap();
    pool.try_loan(1).unwrap().set_len(65);
}

#[test]
fn a_waiting_loan_wakes_when_another_thread_releases() {
    for pool in pools("wake", PoolOptions::with_classes(&[(64, 1)])) {
        let held = pool.try_loan(8).unwrap();
        let (about_to_wait, waiting) = mpsc::channel();
        let p = pool.clone();
        let ((), _) = watchdog("loan_timeout wake", HANG * 2, move || {
            let waiter = thread::spawn(move || {
                // Proves the pool is empty from here, so the loan below must wait.
                assert_eq!(p.try_loan(8).unwrap_err(), LoanError::Empty { len: 8 });
                about_to_wait.send(()).unwrap();
                let b = p.loan_timeout(8, HANG).unwrap();
                b[..].to_vec()
            });
            waiting.recv().unwrap();
            // Gives the waiter time to fall asleep (not a bound: it passes either way).
            thread::sleep(Duration::from_millis(20));
            let mut held = held;
            held.copy_from_slice(b"released");
            drop(held);
            // The buffer's contents travel with it: the release published them.
            assert_eq!(waiter.join().unwrap(), b"released");
        });
        assert_eq!(pool.available(), vec![1]);
    }
}

#[test]
fn two_threads_hand_one_buffer_back_and_forth_through_waiting_loans() {
    let rounds = env_count("RINGPORT_POOL_STRESS", 3_000) / 3;
    for pool in pools("ping", PoolOptions::with_classes(&[(64, 1)])) {
        let ((), _) = watchdog("ping-pong loans", HANG * 2, move || {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let pool = pool.clone();
                    thread::spawn(move || {
                        for _ in 0..rounds {
                            // A count in the buffer: a loan that did not see the previous
                            // holder's write would lose an increment.
                            let mut b = pool.loan_timeout(8, HANG).unwrap();
                            let n = u64::from_le_bytes(b[..8].try_into().unwrap());
                            b.copy_from_slice(&(n + 1).to_le_bytes());
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let b = pool.try_loan(8).unwrap();
            assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), 2 * rounds);
            drop(b);
            assert_eq!(pool.available(), vec![1]);
        });
    }
}

#[test]
fn a_loan_that_no_release_answers_times_out() {
    for pool in pools("timeout", PoolOptions::with_classes(&[(64, 1), (128, 1)])) {
        let _a = pool.try_loan(1).unwrap();
        let _b = pool.try_loan(1).unwrap();
        let ((), _) = watchdog("loan timeout", HANG, move || {
            assert_eq!(
                pool.loan_timeout(1, Duration::from_millis(10)).unwrap_err(),
                LoanError::Timeout { len: 1 }
            );
            assert_eq!(
                pool.loan_timeout(100, Duration::ZERO).unwrap_err(),
                LoanError::Timeout { len: 100 }
            );
        });
    }
}

#[test]
fn handles_move_buffers_through_an_mpmc_ring_without_copying() {
    let payloads = Arc::new(Payloads::new(4000));
    for pool in pools("mpmc", PoolOptions::with_classes(&[(256, 4), (4096, 4)])) {
        let (tx, rx) = mpmc::channel::<BufferHandle>(4);
        let (back_tx, back_rx) = mpmc::channel::<BufferHandle>(4);
        // Miri checks every byte it copies: fewer messages show the same there.
        let count = if cfg!(miri) { 20 } else { 200u64 };
        let p = pool.clone();
        let pl = payloads.clone();
        let payloads = payloads.clone();
        let ((), _) = watchdog("mpmc transfer", HANG * 2, move || {
            let receiver = thread::spawn(move || {
                for expected in 0..count {
                    let h = rx.recv().unwrap();
                    let mut b = p.accept(&h).unwrap();
                    assert_eq!(check_stamp(&b, &pl), expected);
                    // The receiver owns it now: it writes where it read (its address of
                    // the bytes, for the sender to compare with its own) and sends on.
                    let at = b.as_ptr() as u64;
                    b[..8].copy_from_slice(&at.to_le_bytes());
                    back_tx.send(b.into_handle()).unwrap();
                }
            });
            for tag in 0..count {
                let mut b = pool.loan_timeout(stamp_len(tag, &payloads), HANG).unwrap();
                stamp(&mut b, tag, &payloads);
                let at = b.as_ptr();
                tx.send(b.into_handle()).unwrap();
                let back = pool.accept(&back_rx.recv().unwrap()).unwrap();
                assert_eq!(back.as_ptr(), at, "the same bytes came back");
                assert_eq!(
                    u64::from_le_bytes(back[..8].try_into().unwrap()),
                    at as u64,
                    "the receiver saw them at the same address"
                );
                assert!(back[8..] == *payloads.get(tag), "the bytes were not copied");
            }
            receiver.join().unwrap();
            assert_eq!(pool.available(), full(&pool));
        });
    }
}

#[test]
fn handles_move_buffers_through_a_message_port() {
    // Miri checks every byte it touches: a smaller buffer shows the same there.
    let len = if cfg!(miri) { 4096 } else { 1 << 16 };
    for pool in pools("port", PoolOptions::with_classes(&[(len, 2)])) {
        let MessageChannel {
            port1: mut here,
            port2: mut there,
        } = MessageChannel::new();
        let mut b = pool.try_loan(len).unwrap();
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        let at = b.as_ptr() as u64;
        here.post_pod(&b.into_handle()).unwrap();
        let p = pool.clone();
        let ((), _) = watchdog("port transfer", HANG, move || {
            let peer = thread::spawn(move || {
                let h: BufferHandle = there.recv_with(bytemuck::pod_read_unaligned).unwrap();
                let mut b = p.accept(&h).unwrap();
                assert_eq!(b.as_ptr() as u64, at, "the receiver sees the same bytes");
                assert!(b.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
                b.set_len(5);
                b.copy_from_slice(b"reply");
                there.post_pod(&b.into_handle()).unwrap();
            });
            let h: BufferHandle = here.recv_with(bytemuck::pod_read_unaligned).unwrap();
            let reply = pool.accept(&h).unwrap();
            assert_eq!((reply.as_ptr() as u64, &*reply), (at, &b"reply"[..]));
            peer.join().unwrap();
        });
    }
}

#[test]
fn refused_handles_name_their_fault_and_move_nothing() {
    for pool in pools(
        "refused",
        PoolOptions::with_classes(&[(64, 2), (4096, 1)]).processes(2),
    ) {
        let other = BufferPool::new(PoolOptions::with_classes(&[(64, 2), (4096, 1)])).unwrap();
        let mut b = pool.try_loan(4).unwrap();
        b.copy_from_slice(b"mine");
        let index = b.index();
        let h = b.into_handle();

        // Another pool's handle.
        assert_eq!(
            other.accept(&h).unwrap_err(),
            TransferError::ForeignPool {
                expected: other.id(),
                found: pool.id()
            }
        );
        // Out of range: an index past the pool, a length past the buffer, a sender that
        // is no participant.
        for bad in [
            forge(&h, |r| r.index = 3),
            forge(&h, |r| r.index = u32::MAX),
            forge(&h, |r| r.len = 65),
            forge(&h, |r| r.sender = 0),
            forge(&h, |r| r.sender = 3),
        ] {
            assert!(
                matches!(pool.accept(&bad), Err(TransferError::OutOfRange(_))),
                "{bad:?}"
            );
        }
        // A generation the buffer does not have: a replay of an older or later loan.
        for gen in [h.generation().wrapping_sub(1), h.generation() + 1] {
            assert_eq!(
                pool.accept(&forge(&h, |r| r.gen = gen)).unwrap_err(),
                TransferError::Stale { index }
            );
        }
        // A sender that did not send it: participant 2 never held this buffer.
        assert_eq!(
            pool.accept(&forge(&h, |r| r.sender = 2)).unwrap_err(),
            TransferError::NotOwned { index }
        );
        // Unknown flag bits, and an exclusive handle presented as shared.
        assert_eq!(
            pool.accept(&forge(&h, |r| r.flags = 2)).unwrap_err(),
            TransferError::WrongKind { index }
        );
        assert_eq!(
            pool.accept_shared(&h).unwrap_err(),
            TransferError::WrongKind { index }
        );
        // A forged shared handle naming an exclusive buffer in flight.
        assert_eq!(
            pool.accept_shared(&forge(&h, |r| r.flags = 1)).unwrap_err(),
            TransferError::WrongKind { index }
        );

        // None of that moved the buffer: the real handle still works, once.
        let got = pool.accept(&h).unwrap();
        assert_eq!(&*got, b"mine");
        assert_eq!(
            pool.accept(&h).unwrap_err(),
            TransferError::AlreadyReceived { index }
        );
        // A forgery naming the buffer this process holds is refused the same way, and
        // the holder keeps it.
        assert_eq!(
            pool.accept(&forge(&h, |r| r.len = 0)).unwrap_err(),
            TransferError::AlreadyReceived { index }
        );
        assert_eq!(&*got, b"mine");
        drop(got);
        // Released: the handle is stale now, and stays so when the buffer is loaned again.
        assert_eq!(pool.accept(&h).unwrap_err(), TransferError::Stale { index });
        let again = pool.try_loan(64).unwrap();
        let again2 = pool.try_loan(64).unwrap();
        assert!(again.index() == index || again2.index() == index);
        assert_eq!(pool.accept(&h).unwrap_err(), TransferError::Stale { index });
        drop((again, again2));
        assert_eq!(pool.available(), full(&pool));
        assert_eq!(other.available(), full(&other));
    }
}

#[test]
fn shared_handles_are_refused_as_exclusive_ones() {
    let pool = BufferPool::new(PoolOptions::with_classes(&[(64, 2)])).unwrap();
    let ring = broadcast::channel(BroadcastOptions {
        capacity: 4,
        max_message: 32,
        ..Default::default()
    });
    // A raw subscriber sees the handle a buffer subscriber would take a reference with.
    let mut raw = ring.subscribe().unwrap();
    let mut publisher = BufferPublisher::new(ring, pool.clone());
    let mut b = pool.try_loan(5).unwrap();
    b.copy_from_slice(b"share");
    let index = b.index();
    publisher.publish(b).unwrap();
    let h: BufferHandle = bytemuck::pod_read_unaligned(raw.try_recv().unwrap());
    assert!(h.is_shared());
    assert_eq!(
        pool.accept(&h).unwrap_err(),
        TransferError::WrongKind { index }
    );
    // Clearing the flag does not make it exclusive either: the buffer is shared.
    assert_eq!(
        pool.accept(&forge(&h, |r| r.flags = 0)).unwrap_err(),
        TransferError::WrongKind { index }
    );
    let shared = pool.accept_shared(&h).unwrap();
    assert_eq!(&*shared, b"share");
    drop(publisher);
    assert_eq!(pool.available(), vec![1]);
    drop(shared);
    assert_eq!(pool.available(), vec![2]);
}

#[test]
fn a_process_holds_at_most_its_share_of_shared_buffers_in_a_segment() {
    if cfg!(miri) {
        return;
    }
    let pool = BufferPool::create(
        &unique("shared-limit"),
        PoolOptions::with_classes(&[(64, 4)]).shared_per_process(2),
    )
    .unwrap();
    let mut publisher = BufferPublisher::new(broadcast::channel(Default::default()), pool.clone());
    let mut sub = publisher.subscribe().unwrap();
    for _ in 0..3 {
        publisher.publish(pool.try_loan(1).unwrap()).unwrap();
    }
    let first = sub.try_recv().unwrap();
    let second = sub.try_recv().unwrap();
    assert_eq!(
        sub.try_recv().unwrap_err(),
        BufferRecvError::Transfer(TransferError::SharedLimit { limit: 2 })
    );
    drop((first, second));
    drop(publisher);
    assert_eq!(pool.available(), vec![4]);
}

#[test]
fn publishing_another_pools_buffer_is_refused_and_returns_it() {
    let pool = BufferPool::new(PoolOptions::with_classes(&[(64, 1)])).unwrap();
    let other = BufferPool::new(PoolOptions::with_classes(&[(64, 1)])).unwrap();
    let mut publisher = BufferPublisher::new(broadcast::channel(Default::default()), pool.clone());
    let err = publisher.publish(other.try_loan(1).unwrap()).unwrap_err();
    assert_eq!(
        err,
        BufferSendError::Transfer(TransferError::ForeignPool {
            expected: pool.id(),
            found: other.id()
        })
    );
    assert_eq!(other.available(), vec![1]);
}

fn backpressure(capacity: usize, history: usize) -> broadcast::Publisher {
    broadcast::channel(BroadcastOptions {
        capacity,
        max_message: 32,
        overflow: Overflow::Backpressure,
        history,
        ..Default::default()
    })
}

#[test]
fn every_subscriber_reads_one_copy_that_returns_after_the_last_reference_and_the_anchor() {
    for pool in pools("shared", PoolOptions::with_classes(&[(4096, 2)])) {
        let mut publisher = BufferPublisher::new(backpressure(8, 0), pool.clone());
        let mut subs: Vec<BufferSubscriber> =
            (0..4).map(|_| publisher.subscribe().unwrap()).collect();

        // First: the anchor goes before the last reference.
        let mut b = pool.try_loan(4096).unwrap();
        b.fill(0x5a);
        let at = b.as_ptr();
        publisher.publish(b).unwrap();
        let mut got: Vec<_> = subs.iter_mut().map(|s| s.recv().unwrap()).collect();
        for g in &got {
            assert_eq!(g.as_ptr(), at, "one copy of the bytes");
            assert!(g.iter().all(|&x| x == 0x5a));
        }
        assert_eq!(pool.available(), vec![1]);
        let last = got.pop().unwrap();
        drop(got);
        assert_eq!(pool.available(), vec![1], "one reference left");
        // Every subscriber passed it: the anchor goes.
        publisher.retire();
        assert_eq!(pool.available(), vec![1], "one reference left");
        drop(last);
        assert_eq!(pool.available(), vec![2]);

        // Then: every reference goes before the anchor.
        publisher.publish(pool.try_loan(1).unwrap()).unwrap();
        for s in &mut subs {
            drop(s.recv().unwrap());
        }
        assert_eq!(pool.available(), vec![1], "the publisher's anchor holds it");
        publisher.retire();
        assert_eq!(pool.available(), vec![2]);

        // A subscriber that stays behind keeps the anchor in place.
        publisher.publish(pool.try_loan(1).unwrap()).unwrap();
        for s in &mut subs[1..] {
            drop(s.recv().unwrap());
        }
        publisher.retire();
        assert_eq!(pool.available(), vec![1], "subscriber 0 has yet to read it");
        drop(subs[0].recv().unwrap());
        publisher.retire();
        assert_eq!(pool.available(), vec![2]);
    }
}

#[test]
fn under_overwrite_an_anchor_goes_when_the_ring_laps_it() {
    for pool in pools("lapped", PoolOptions::with_classes(&[(64, 8)])) {
        let ring = broadcast::channel(BroadcastOptions {
            capacity: 4,
            max_message: 32,
            ..Default::default()
        });
        let mut publisher = BufferPublisher::new(ring, pool.clone());
        let mut sub = publisher.subscribe().unwrap();
        for i in 0..4u8 {
            let mut b = pool.try_loan(1).unwrap();
            b[0] = i;
            publisher.publish(b).unwrap();
        }
        let kept = sub.recv().unwrap();
        assert_eq!(kept[0], 0);
        for i in 1..4u8 {
            assert_eq!(sub.recv().unwrap()[0], i);
        }
        // Read and dropped, but the ring still holds their handles: anchors stay.
        publisher.retire();
        assert_eq!(pool.available(), vec![4]);
        // The fifth lands on the first one's slot: its anchor goes, but a reference
        // keeps it out of the pool.
        publisher.publish(pool.try_loan(1).unwrap()).unwrap();
        assert_eq!(pool.available(), vec![3]);
        assert_eq!(kept[0], 0);
        drop(kept);
        assert_eq!(pool.available(), vec![4]);
        // From now on each publication laps one that nobody holds.
        for _ in 0..10 {
            publisher.publish(pool.try_loan(1).unwrap()).unwrap();
            assert_eq!(pool.available(), vec![4]);
        }
        drop(publisher);
        assert_eq!(pool.available(), vec![8]);
        drop(sub);
    }
}

#[test]
fn a_subscriber_that_comes_to_a_retired_buffer_reads_lagged_one() {
    for pool in pools("late", PoolOptions::with_classes(&[(64, 2)])) {
        // A history of the whole ring: a late subscriber starts at handles whose buffers
        // may be gone.
        let mut publisher = BufferPublisher::new(backpressure(4, 4), pool.clone());
        let mut early = publisher.subscribe().unwrap();
        let mut b = pool.try_loan(1).unwrap();
        b[0] = 1;
        publisher.publish(b).unwrap();
        drop(early.recv().unwrap());
        publisher.retire();
        assert_eq!(pool.available(), vec![2]);
        let mut late = publisher.subscribe().unwrap();
        assert_eq!(
            late.try_recv().unwrap_err(),
            BufferRecvError::Recv(RecvError::Lagged(1))
        );
        let mut b = pool.try_loan(1).unwrap();
        b[0] = 2;
        publisher.publish(b).unwrap();
        assert_eq!(late.try_recv().unwrap()[0], 2);
        assert_eq!(early.try_recv().unwrap()[0], 2);
        publisher.retire();
        assert_eq!(pool.available(), vec![2]);
    }
}

#[test]
fn dropping_the_publisher_retires_its_anchors() {
    for pool in pools("publisher-drop", PoolOptions::with_classes(&[(64, 4)])) {
        let mut publisher = BufferPublisher::new(backpressure(8, 0), pool.clone());
        let (mut a, mut b) = (
            publisher.subscribe().unwrap(),
            publisher.subscribe().unwrap(),
        );
        for i in 0..3u8 {
            let mut buf = pool.try_loan(1).unwrap();
            buf[0] = i;
            publisher.publish(buf).unwrap();
        }
        let held = a.recv().unwrap();
        assert_eq!(pool.available(), vec![1]);
        drop(publisher);
        // The anchors went; only `held`'s reference keeps a buffer out.
        assert_eq!(pool.available(), vec![3]);
        assert_eq!(a.recv().unwrap_err(), RecvError::Lagged(1).into());
        assert_eq!(a.recv().unwrap_err(), RecvError::Lagged(1).into());
        assert_eq!(a.recv().unwrap_err(), RecvError::Disconnected.into());
        // `b` comes to the first while `held` still keeps it: a reference is still to
        // be had. The others are gone.
        let second_ref = b.recv().unwrap();
        assert_eq!((second_ref.as_ptr(), second_ref[0]), (held.as_ptr(), 0));
        assert_eq!(b.recv().unwrap_err(), RecvError::Lagged(1).into());
        assert_eq!(b.recv().unwrap_err(), RecvError::Lagged(1).into());
        assert_eq!(b.recv().unwrap_err(), RecvError::Disconnected.into());
        drop(held);
        assert_eq!(pool.available(), vec![3]);
        drop(second_ref);
        assert_eq!(pool.available(), vec![4]);
    }
}

/// One stress worker's part: loans, sends, accepts and releases, checking every buffer it
/// accepts. Returns (sent, accepted).
fn stress_worker(
    me: u64,
    ops: u64,
    pool: BufferPool,
    tx: mpmc::Sender<BufferHandle>,
    rx: mpmc::Receiver<BufferHandle>,
    payloads: Arc<Payloads>,
) -> (u64, u64) {
    let mut rng = me.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut held = Vec::new();
    let (mut sent, mut accepted) = (0u64, 0u64);
    for seq in 0..ops {
        let tag = me << 48 | seq;
        match next() % 4 {
            // Loan and write, then keep it or send it.
            0 | 1 => match pool.try_loan(stamp_len(tag, &payloads)) {
                Ok(mut b) => {
                    stamp(&mut b, tag, &payloads);
                    held.push(b);
                }
                Err(LoanError::Empty { .. }) => {}
                Err(e) => panic!("worker {me}: {e}"),
            },
            // Send the oldest held buffer; if the ring is full, take it back.
            2 if !held.is_empty() => {
                let h = held.remove(0).into_handle();
                match tx.try_send(h) {
                    Ok(()) => sent += 1,
                    Err(SendError::Full) => held.push(pool.accept(&h).unwrap()),
                    Err(e) => panic!("worker {me}: {e}"),
                }
            }
            // Receive one, check it, and rewrite it as this worker's (or drop it).
            _ => match rx.try_recv() {
                Ok(h) => {
                    let mut b = pool.accept(&h).unwrap();
                    accepted += 1;
                    check_stamp(&b, &payloads);
                    if next() % 2 == 0 && b.capacity() >= stamp_len(tag, &payloads) {
                        b.set_len(stamp_len(tag, &payloads));
                        stamp(&mut b, tag, &payloads);
                        held.push(b);
                    }
                }
                Err(RecvError::Empty) => {}
                Err(e) => panic!("worker {me}: {e}"),
            },
        }
        // Never hold more than a few, so that others find buffers to loan.
        while held.len() > 2 {
            let b = held.remove(0);
            check_stamp(&b, &payloads);
        }
    }
    for b in held {
        check_stamp(&b, &payloads);
    }
    (sent, accepted)
}

#[test]
fn threads_loaning_sending_accepting_and_releasing_lose_nothing() {
    let ops = env_count("RINGPORT_POOL_STRESS", 3_000);
    let payloads = Arc::new(Payloads::new(3000));
    for pool in pools(
        "stress",
        PoolOptions::with_classes(&[(64, 3), (1024, 3), (4096, 2)]),
    ) {
        let payloads = payloads.clone();
        let limit = HANG + Duration::from_micros(200 * ops);
        let ((), _) = watchdog("pool stress", limit, move || {
            let (tx, rx) = mpmc::channel::<BufferHandle>(4);
            let workers: Vec<_> = (0..4u64)
                .map(|me| {
                    let (pool, tx, rx, pl) =
                        (pool.clone(), tx.clone(), rx.clone(), payloads.clone());
                    thread::spawn(move || stress_worker(me + 1, ops, pool, tx, rx, pl))
                })
                .collect();
            let (mut sent, mut accepted) = (0, 0);
            for w in workers {
                let (s, a) = w.join().unwrap();
                sent += s;
                accepted += a;
            }
            // What is still in flight is whole too.
            while let Ok(h) = rx.try_recv() {
                check_stamp(&pool.accept(&h).unwrap(), &payloads);
                accepted += 1;
            }
            assert_eq!(sent, accepted, "every handle sent was accepted once");
            assert!(sent > 0, "the stress moved buffers");
            eprintln!("{sent} buffers moved between 4 threads");
            assert_eq!(pool.available(), full(&pool), "nothing lost");
        });
    }
}
