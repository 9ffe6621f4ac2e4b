//! Loom models of the priority queue's doorbell: one `Signal` that every send rings after
//! publishing into its level's ring, on which a blocked receiver sleeps for all the level
//! rings at once, re-checking every one of them after it announces itself.
//!
//! The queue is ringport's own [`PriorityMessageQueue`], built by the constructor that
//! production uses, with three levels of the smallest frame ring: loom runs the real
//! publish-then-ring of `PrioritySender::send` and the real poll-then-sleep of
//! `PriorityReceiver::recv`. Loom has no clock, so every stamp is taken at one instant
//! (see `queue/priority/wire.rs`): nothing expires and nothing ages.
//!
//! A wakeup lost between a send and a receiver about to sleep leaves the receiver parked
//! for ever, which loom reports as a deadlock. The models keep the sender alive until the
//! receiver has what it waits for, because dropping the sender rings the bell too and
//! would wake a receiver whose wakeup was lost. The control `priority_bell_unrung` sends
//! without ringing; the signal's own mutants lose the wake inside the bell.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_tests::run;
use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
use ringport::RecvError;
use std::time::Duration;

/// A bell whose signal loses the wake leaves the receiver asleep.
const SIGNAL_MUTANTS: &[&str] = &["signal_no_fence", "signal_no_notify", "signal_no_arm"];

/// So does a send that does not ring.
const SEND_MUTANTS: &[&str] = &[
    "priority_bell_unrung",
    "signal_no_fence",
    "signal_no_notify",
    "signal_no_arm",
];

/// Three levels, as by default: a message at [`Level::LOW`] is found only by a poll that
/// got past two empty higher levels.
fn queue() -> PriorityMessageQueue {
    PriorityMessageQueue::new(PriorityOptions {
        deadlines: vec![Duration::from_secs(3600); 3],
        aging: None,
        capacity: 128,
    })
}

#[test]
fn a_lower_level_send_wakes_a_receiver_about_to_sleep() {
    run(SEND_MUTANTS, || {
        let PriorityMessageQueue {
            mut sender,
            mut receiver,
        } = queue();
        let sending = thread::spawn(move || {
            sender.send(Level::LOW, b"low").unwrap();
            sender
        });
        let msg = receiver.recv().expect("the receiver wakes for the send");
        assert_eq!((msg.level, msg.payload), (Level::LOW, &b"low"[..]));
        drop(sending.join().unwrap());
        assert_eq!(receiver.recv().err(), Some(RecvError::Disconnected));
    });
}

/// The sender sends the low message first, so a receiver that delivered in arrival
/// order would fail the priority check whenever it sees both.
#[test]
fn a_receiver_waits_for_two_levels_and_takes_the_higher_first_when_both_are_in() {
    run(SEND_MUTANTS, || {
        let PriorityMessageQueue {
            mut sender,
            mut receiver,
        } = queue();
        let both_sent = Arc::new(AtomicBool::new(false));
        let sending = {
            let both_sent = both_sent.clone();
            thread::spawn(move || {
                sender.send(Level::LOW, b"low").unwrap();
                sender.send(Level::HIGH, b"high").unwrap();
                both_sent.store(true, Ordering::Release);
                sender
            })
        };
        let both_in = both_sent.load(Ordering::Acquire);
        let mut got = Vec::new();
        for i in 0..2 {
            let msg = receiver
                .recv()
                .unwrap_or_else(|e| panic!("the receiver's receive {i}: {e}"));
            got.push((msg.level, msg.payload.to_vec()));
        }
        if both_in {
            assert_eq!(got[0].0, Level::HIGH, "both were in, but {got:?}");
        }
        got.sort();
        assert_eq!(
            got,
            [
                (Level::HIGH, b"high".to_vec()),
                (Level::LOW, b"low".to_vec())
            ]
        );
        drop(sending.join().unwrap());
    });
}

/// Dropping the sender closes its level rings and then rings the bell, so a receiver that
/// drained the queue and sleeps sees the close. The send's own ring is not what wakes it
/// here, so this model is no control for `priority_bell_unrung`.
#[test]
fn a_closing_sender_wakes_a_receiver_that_drained_the_queue() {
    run(SIGNAL_MUTANTS, || {
        let PriorityMessageQueue {
            mut sender,
            mut receiver,
        } = queue();
        let sending = thread::spawn(move || {
            sender.send(Level::MEDIUM, b"last").unwrap();
        });
        let msg = receiver.recv().expect("the message sent before the close");
        assert_eq!((msg.level, msg.payload), (Level::MEDIUM, &b"last"[..]));
        assert_eq!(receiver.recv().err(), Some(RecvError::Disconnected));
        sending.join().unwrap();
    });
}
