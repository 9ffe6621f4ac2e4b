//! Loom models of the SPSC frame ring at its minimum capacity: 128 bytes of frame space
//! and frames of up to 48 bytes.
//!
//! The frame lengths are chosen so that every model crosses the end of the ring:
//!
//! | frame | length | size with header | at | zeroes the header at |
//! | --- | --- | --- | --- | --- |
//! | 0 | 40 | 48 | 0 | 48 |
//! | 1 | 34 | 48 | 48 | 96 |
//! | pad | 24 | 32 | 96 | 0 |
//! | 2 | 37 | 48 | 0 (lap 1) | 48 |
//! | 3 | 36 | 48 | 48 (lap 1) | 96 |
//!
//! Frame 2 cannot fit before the end, so the producer writes a pad first, and it can only
//! do so once the consumer has handed frame 0 back; the pad may be published alone while
//! frame 2 still waits for frame 1's space. Frame 3 needs the space of the pad and frame
//! 2, so it is never published together with them, whatever the batching. On lap 1 the
//! consumer therefore looks at the header slots at 0, 48 and 96 a second time, each
//! before the producer has written it again: frame 0's, frame 1's and the pad's headers
//! of lap 0 are still there unless the producer zeroed each slot before publishing the
//! frame in front of it, and the consumer must find zero (nothing yet, or nothing more
//! after the close) rather than a stale header.
#![cfg(loom)]

use loom::thread;
use loom_tests::run;
use ringport::ring::{FrameConsumer, FrameProducer, FrameRing};
use ringport::{RecvError, SendError};

const LENGTHS: [usize; 4] = [40, 34, 37, 36];

/// Weakened publication and header hygiene of the frame ring itself.
const RING_MUTANTS: &[&str] = &["frame_publish_relaxed", "frame_skip_zero_next"];

/// Models that sleep in a blocking call also depend on the signal's fences and wake.
const BLOCKING_MUTANTS: &[&str] = &[
    "frame_publish_relaxed",
    "frame_skip_zero_next",
    "signal_no_fence",
    "signal_no_notify",
];

/// Frame `i`: distinct bytes in every position of every frame.
fn frame(i: usize) -> Vec<u8> {
    (0..LENGTHS[i]).map(|k| (i * 64 + k) as u8).collect()
}

fn frames() -> Vec<Vec<u8>> {
    (0..LENGTHS.len()).map(frame).collect()
}

fn ring() -> (FrameProducer, FrameConsumer) {
    let (tx, rx) = FrameRing::with_capacity(128);
    assert_eq!(tx.max_frame(), 48, "the smallest ring");
    (tx, rx)
}

fn send_spinning(tx: &mut FrameProducer, bytes: &[u8]) {
    loop {
        match tx.try_send(bytes) {
            Ok(()) => return,
            Err(SendError::Full) => thread::yield_now(),
            Err(e) => panic!("try_send: {e}"),
        }
    }
}

#[test]
fn frames_pad_and_wrap_in_order() {
    run(RING_MUTANTS, || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            for f in frames() {
                send_spinning(&mut tx, &f);
            }
        });
        for want in frames() {
            loop {
                match rx.try_recv_with(|f| f.to_vec()) {
                    Ok(got) => {
                        assert_eq!(got, want);
                        break;
                    }
                    Err(RecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("try_recv_with: {e}"),
                }
            }
        }
        producer.join().unwrap();
    });
}

#[test]
fn batches_pad_and_wrap_in_order() {
    run(RING_MUTANTS, || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            let all = frames();
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
        while got.len() < LENGTHS.len() {
            match rx.try_recv_batch(LENGTHS.len(), |f| got.push(f.to_vec())) {
                Ok(_) => {}
                Err(RecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("try_recv_batch: {e}"),
            }
        }
        assert_eq!(got, frames());
        producer.join().unwrap();
        assert_eq!(
            rx.try_recv_batch(LENGTHS.len(), |_| ()),
            Err(RecvError::Disconnected)
        );
    });
}

#[test]
fn close_drains_then_disconnects() {
    run(RING_MUTANTS, || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            for f in frames() {
                send_spinning(&mut tx, &f);
            }
            drop(tx);
        });
        let mut got = Vec::new();
        loop {
            match rx.try_recv_with(|f| f.to_vec()) {
                Ok(f) => got.push(f),
                Err(RecvError::Empty) => thread::yield_now(),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("try_recv_with: {e}"),
            }
        }
        assert_eq!(got, frames());
        producer.join().unwrap();
    });
}

/// Blocking models send frames 0 to 2 only: that still pads, wraps and reads a stale
/// slot (at 0, behind a pad published alone), while frame 3 would multiply the
/// executions by six, every send and receive being able to sleep.
const BLOCKING_FRAMES: usize = 3;

#[test]
fn blocking_send_and_recv() {
    run(BLOCKING_MUTANTS, || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            for f in &frames()[..BLOCKING_FRAMES] {
                tx.send(f).unwrap();
            }
        });
        for want in &frames()[..BLOCKING_FRAMES] {
            let got = rx
                .recv_with(|f| f.to_vec())
                .unwrap_or_else(|e| panic!("recv_with: {e}"));
            assert_eq!(&got, want);
        }
        producer.join().unwrap();
    });
}
