//! Loom models of the SPSC pod ring: publication through block stamps, block hand-back
//! through `released`, wrap-around into a second lap, batches, blocking and close.
//!
//! The message type fills a block by itself, so a ring of two blocks holds two messages
//! and the third one re-enters block 0 on lap 1: the producer must acquire the
//! consumer's release of that block before overwriting it, and the consumer must tell
//! the lap-1 stamp from the stale lap-0 one.
#![cfg(loom)]

use loom::thread;
use loom_tests::run;
use ringport::ring::{PodConsumer, PodProducer, PodRing};
use ringport::{RecvError, SendError};

/// 32 bytes after an 8-byte stamp: one slot per 64-byte block.
type Msg = [u64; 4];

/// One more than the ring holds, so every model wraps.
const MESSAGES: usize = 3;

/// Weakened orderings of the pod ring itself: every model here wraps, so each reads a
/// slot published by a stamp and overwrites a slot handed back through `released`.
const RING_MUTANTS: &[&str] = &["typed_publish_relaxed", "typed_release_relaxed"];

/// Models that sleep in a blocking call also depend on the signal's fences and wake.
const BLOCKING_MUTANTS: &[&str] = &[
    "typed_publish_relaxed",
    "typed_release_relaxed",
    "signal_no_fence",
    "signal_no_notify",
];

/// Distinct words in every message, so a slot read from the wrong lap or block differs.
fn msg(i: usize) -> Msg {
    let i = i as u64;
    [4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4]
}

fn ring() -> (PodProducer<Msg>, PodConsumer<Msg>) {
    let (tx, rx) = PodRing::<Msg>::with_capacity(2);
    assert_eq!(tx.capacity(), 2, "one slot per block, two blocks");
    (tx, rx)
}

fn send_spinning(tx: &mut PodProducer<Msg>, value: Msg) {
    loop {
        match tx.try_send(value) {
            Ok(()) => return,
            Err(SendError::Full) => thread::yield_now(),
            Err(e) => panic!("try_send: {e}"),
        }
    }
}

fn recv_spinning(rx: &mut PodConsumer<Msg>) -> Msg {
    loop {
        match rx.try_recv() {
            Ok(v) => return v,
            Err(RecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("try_recv: {e}"),
        }
    }
}

#[test]
fn try_send_try_recv_wraps_in_order() {
    run(RING_MUTANTS, || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            for i in 0..MESSAGES {
                send_spinning(&mut tx, msg(i));
            }
        });
        for i in 0..MESSAGES {
            assert_eq!(recv_spinning(&mut rx), msg(i));
        }
        producer.join().unwrap();
    });
}

#[test]
fn batches_wrap_in_order() {
    run(RING_MUTANTS, || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            let all: Vec<Msg> = (0..MESSAGES).map(msg).collect();
            let mut sent = 0;
            while sent < all.len() {
                match tx.try_send_batch(&all[sent..]) {
                    Ok(n) => sent += n,
                    Err(SendError::Full) => thread::yield_now(),
                    Err(e) => panic!("try_send_batch: {e}"),
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < MESSAGES {
            let mut buf = [Msg::default(); MESSAGES];
            let want = MESSAGES - got.len();
            match rx.try_recv_batch(&mut buf[..want]) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(RecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("try_recv_batch: {e}"),
            }
        }
        assert_eq!(got, (0..MESSAGES).map(msg).collect::<Vec<_>>());
        producer.join().unwrap();
    });
}

#[test]
fn blocking_send_on_full_and_blocking_recv() {
    run(BLOCKING_MUTANTS, || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            for i in 0..MESSAGES {
                tx.send(msg(i)).unwrap();
            }
        });
        for i in 0..MESSAGES {
            let got = rx.recv().unwrap_or_else(|e| panic!("recv: {e}"));
            assert_eq!(got, msg(i));
        }
        producer.join().unwrap();
    });
}

#[test]
fn close_is_seen_after_everything_sent() {
    run(BLOCKING_MUTANTS, || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            let all: Vec<Msg> = (0..MESSAGES).map(msg).collect();
            tx.send_batch(&all).unwrap();
            drop(tx);
        });
        let mut got = Vec::new();
        let mut buf = [Msg::default(); 2];
        loop {
            match rx.recv_batch(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("recv_batch: {e}"),
            }
        }
        assert_eq!(got, (0..MESSAGES).map(msg).collect::<Vec<_>>());
        producer.join().unwrap();
    });
}
