//! Loom models of the MPMC ring: slots claimed by compare-and-swap on their state words,
//! payloads published by `FULL` and handed to the next lap by `FREE`, the head and tail
//! hints where searches start, the signals behind blocking calls, and disconnection.
//!
//! Every ring has the smallest capacity, two slots, and every model but the last sends
//! three messages, so that slot 0 is reused in lap 1: its producer must acquire the
//! lap-0 consumer's `FREE` before overwriting the payload, and its consumer must acquire
//! the lap-1 `FULL` before reading it. Messages are distinct and non-zero, so a payload
//! read from the wrong slot or lap, or never written, differs from every message sent.
//!
//! At most one thread of a model polls with `try_` calls, the others block: two pollers
//! waiting for a third can take turns for ever without loom running the third, and a
//! sleeper costs loom far fewer branches than a poller.
#![cfg(loom)]

use loom::thread;
use loom_tests::run;
use ringport::mpmc::{channel, Receiver, Sender};
use ringport::{RecvError, SendError};

/// A model that reuses a slot reads a payload published by `FULL` and overwrites one
/// handed back by `FREE`; every model has threads waiting in blocking calls, so each
/// depends on the signal's fences and wake.
const RING_MUTANTS: &[&str] = &[
    "mpmc_publish_relaxed",
    "mpmc_release_relaxed",
    "signal_no_fence",
    "signal_no_notify",
];

/// The model that reuses no slot still reads published payloads, and sleeps.
const NO_REUSE_MUTANTS: &[&str] = &[
    "mpmc_publish_relaxed",
    "signal_no_fence",
    "signal_no_notify",
];

/// Message `i` of producer `p`.
fn msg(p: u64, i: u64) -> u64 {
    (p + 1) * 100 + i
}

fn ring() -> (Sender<u64>, Receiver<u64>) {
    let (tx, rx) = channel::<u64>(2);
    assert_eq!(tx.capacity(), 2);
    (tx, rx)
}

/// Receives `n` messages with blocking calls.
fn recv_n(rx: &Receiver<u64>, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| rx.recv().unwrap_or_else(|e| panic!("recv: {e}")))
        .collect()
}

/// Receives with blocking calls until the ring is disconnected.
fn drain(rx: &Receiver<u64>) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match rx.recv() {
            Ok(v) => got.push(v),
            Err(RecvError::Disconnected) => return got,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Receives `n` messages with `try_recv`, yielding while the ring is empty.
fn try_recv_n(rx: &Receiver<u64>, n: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < n {
        match rx.try_recv() {
            Ok(v) => got.push(v),
            Err(RecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("try_recv: {e}"),
        }
    }
    got
}

/// Sends `value` with `try_send`, yielding while the ring is full.
fn try_send_until_sent(tx: &Sender<u64>, value: u64) {
    loop {
        match tx.try_send(value) {
            Ok(()) => return,
            Err(SendError::Full) => thread::yield_now(),
            Err(e) => panic!("try_send({value}): {e}"),
        }
    }
}

/// Two producers, blocking, send three messages, two of them from one producer, to a
/// polling consumer: every message arrives once, and that producer's two in the order it
/// sent them (the consumer takes positions in order, and a producer's later send claims
/// a later position). The producers race for each position and for slot 0 in lap 1.
#[test]
fn two_producers_one_consumer_keep_each_order() {
    run(RING_MUTANTS, || {
        let (tx, rx) = ring();
        let producers: Vec<_> = [2, 1]
            .into_iter()
            .enumerate()
            .map(|(p, count)| {
                let tx = tx.clone();
                thread::spawn(move || {
                    for i in 0..count {
                        tx.send(msg(p as u64, i)).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let got = try_recv_n(&rx, 3);
        let first: Vec<u64> = got.iter().copied().filter(|&v| v / 100 == 1).collect();
        assert_eq!(first, [msg(0, 0), msg(0, 1)], "all: {got:?}");
        assert!(got.contains(&msg(1, 0)), "all: {got:?}");
        producers.into_iter().for_each(|p| p.join().unwrap());
        assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));
    });
}

/// Two blocking consumers take one and two of three messages: the first two filled the
/// ring before they started, and a polling producer sends the third into slot 0 once it
/// is free. Together they receive each message once, and each its share in the order
/// sent (a consumer never passes a message that is ready and unclaimed). Either consumer
/// may be lapped while it reads slot 0: the other takes slot 1 and finds slot 0 a lap
/// behind, still being read.
#[test]
fn one_producer_two_consumers_lose_nothing() {
    run(RING_MUTANTS, || {
        let (tx, rx) = ring();
        for i in 0..2 {
            tx.try_send(msg(0, i)).unwrap();
        }
        let producer = thread::spawn(move || try_send_until_sent(&tx, msg(0, 2)));
        let other = {
            let rx = rx.clone();
            thread::spawn(move || recv_n(&rx, 1))
        };
        let mine = recv_n(&rx, 2);
        assert!(mine[0] < mine[1], "out of order: {mine:?}");
        let mut all = [mine, other.join().unwrap()].concat();
        all.sort_unstable();
        assert_eq!(all, [msg(0, 0), msg(0, 1), msg(0, 2)]);
        producer.join().unwrap();
    });
}

/// The third blocking send finds the ring full unless the consumer has taken a message,
/// and the consumer's blocking receives find it empty unless the producer is ahead: each
/// side sleeps on its signal, and the other's notify must wake it.
#[test]
fn blocking_send_on_full_and_blocking_recv() {
    run(RING_MUTANTS, || {
        let (tx, rx) = ring();
        let producer = thread::spawn(move || {
            for i in 0..3 {
                tx.send(msg(0, i)).unwrap();
            }
            tx
        });
        for i in 0..3 {
            assert_eq!(rx.recv(), Ok(msg(0, i)));
        }
        let tx = producer.join().unwrap();
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        drop(tx);
    });
}

/// A producer sends three messages and drops its sender; a blocking consumer receives
/// all three, in order, and then `Disconnected`, never before the last message.
#[test]
fn disconnection_is_seen_after_everything_sent() {
    run(RING_MUTANTS, || {
        let (tx, rx) = ring();
        let producer = thread::spawn(move || {
            for i in 0..3 {
                tx.send(msg(0, i)).unwrap();
            }
        });
        assert_eq!(drain(&rx), [msg(0, 0), msg(0, 1), msg(0, 2)]);
        producer.join().unwrap();
    });
}

/// One thread sends two messages, trying to receive each right after sending it, while a
/// blocking consumer drains the ring until it is disconnected: together they receive
/// each message once. The blocking consumer's first look may find slot 0 being read and
/// slot 1 untouched, and its next look start at the head hint that the other thread left
/// after going round to position 2, in slot 0's second lap. What it sees of slot 0 then
/// must be no older than what the hint's writer saw, or slot 0 is a lap behind the hint,
/// which the ring reports as corruption: the hint is stored `Release` and loaded
/// `Acquire` for this. Two messages suffice, and no slot is reused, so of the ring's
/// mutants only the publishing one applies.
#[test]
fn consumer_starting_at_anothers_hint_sees_its_slots() {
    run(NO_REUSE_MUTANTS, || {
        let (tx, rx) = ring();
        let other = {
            let rx = rx.clone();
            thread::spawn(move || drain(&rx))
        };
        let mut mine = Vec::new();
        for i in 0..2 {
            tx.send(msg(0, i)).unwrap();
            match rx.try_recv() {
                Ok(v) => mine.push(v),
                Err(RecvError::Empty) => {}
                Err(e) => panic!("try_recv: {e}"),
            }
        }
        drop((tx, rx));
        let theirs = other.join().unwrap();
        let mut all = [mine, theirs].concat();
        all.sort_unstable();
        assert_eq!(all, [msg(0, 0), msg(0, 1)]);
    });
}
