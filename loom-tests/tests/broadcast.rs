//! Loom models of the broadcast ring: a subscriber's seqlock-checked copy racing the
//! publisher that overwrites the slot, blocking publishers under backpressure, several
//! publishers claiming positions, and disconnection.
//!
//! Every ring is the smallest that shows the behaviour: two slots of 16-byte messages,
//! so that a message is two data words (a copy can tear between them) and the third
//! position reuses slot 0. A message is sixteen equal bytes `[n; 16]`, so a copy that
//! mixes two messages shows as unequal bytes.
//!
//! Receives and backpressured publishes block rather than spin: loom must try every
//! thread at every spin, and a spinner waiting for a thread that must run first makes
//! the exploration explode; a blocking call sleeps on the modelled futex instead.
#![cfg(loom)]

use loom::thread;
use loom_tests::run;
use ringport::broadcast::{self, BroadcastOptions, Overflow, Publisher, Subscriber};
use ringport::RecvError;

/// A lost wakeup in the signal, through its fences or its wake, leaves a sleeper parked.
const SIGNAL_MUTANTS: &[&str] = &["signal_no_fence", "signal_no_notify", "signal_no_arm"];

fn ring(overflow: Overflow) -> Publisher {
    broadcast::channel(BroadcastOptions {
        capacity: 2,
        max_message: 16,
        overflow,
        max_subscribers: 2,
        max_publisher_processes: 1,
        history: 0,
    })
}

fn message(n: u8) -> [u8; 16] {
    [n; 16]
}

/// Receives until `positions` positions are accounted for (each message one, each lag
/// its count), checking every message is whole, and returns the messages' numbers.
fn drain(s: &mut Subscriber, positions: u64) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut accounted = 0;
    while accounted < positions {
        match s.recv() {
            Ok(m) => {
                assert!(m.len() == 16 && m.iter().all(|&b| b == m[0]), "torn: {m:?}");
                seen.push(m[0]);
                accounted += 1;
            }
            Err(RecvError::Lagged(n)) => accounted += n,
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seen:?}"
    );
    seen
}

/// A second publisher overwrites slot 0 (position 2) while the subscriber copies the
/// message at position 0 from it. The subscriber must deliver position 0 whole or report
/// a lag, never a mix. The overwriting publisher is a fresh thread that has issued no
/// fence of its own (the main thread's publishes notify, and a notifier's fence would do
/// the missing fence's work), so only the publisher's `Release` fence after its claim
/// orders its claim before its words.
#[test]
fn a_subscriber_never_delivers_a_message_overwritten_under_it() {
    run(&["broadcast_writer_no_fence"], || {
        let publisher = ring(Overflow::Overwrite);
        let mut s = publisher.subscribe().unwrap();
        publisher.publish(&message(1)).unwrap();
        publisher.publish(&message(2)).unwrap();
        let second = publisher.clone();
        let t = thread::spawn(move || {
            second.publish(&message(3)).unwrap();
        });
        let seen = drain(&mut s, 3);
        t.join().unwrap();
        assert!(
            seen.last() == Some(&3),
            "the newest message is kept: {seen:?}"
        );
        drop(publisher);
    });
}

/// Under backpressure a publisher of three messages into two slots waits for the
/// subscriber, which receives all three, in order.
#[test]
fn backpressure_loses_nothing_and_wakes_both_sides() {
    run(SIGNAL_MUTANTS, || {
        let publisher = ring(Overflow::Backpressure);
        let mut s = publisher.subscribe().unwrap();
        let t = thread::spawn(move || {
            for n in 1..=3 {
                publisher.publish(&message(n)).unwrap();
            }
        });
        assert_eq!(drain(&mut s, 3), [1, 2, 3]);
        t.join().unwrap();
    });
}

/// Two publishers claim positions at once; the subscriber receives each message once,
/// in the order of the positions they claimed, and then sees the ring disconnected.
#[test]
fn two_publishers_each_message_once_then_disconnected() {
    run(SIGNAL_MUTANTS, || {
        let publisher = ring(Overflow::Overwrite);
        let mut s = publisher.subscribe().unwrap();
        let other = publisher.clone();
        let t = thread::spawn(move || {
            other.publish(&message(2)).unwrap();
        });
        publisher.publish(&message(1)).unwrap();
        drop(publisher);
        let mut got = Vec::new();
        loop {
            match s.recv() {
                Ok(m) => {
                    assert!(m.iter().all(|&b| b == m[0]), "torn: {m:?}");
                    got.push(m[0]);
                }
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        t.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, [1, 2], "each message exactly once");
    });
}
