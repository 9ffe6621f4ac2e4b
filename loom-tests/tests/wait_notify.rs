//! Loom models of waiting: the raw `Atomics.wait` / `Atomics.notify` pair, the counted
//! `WaitCell` whose notify skips the syscall when nobody sleeps, and the waiter-counting
//! signal that every blocking ring call sleeps on.
//!
//! Under loom the futex is modelled so that a sleeper nobody wakes stays parked: a lost
//! wakeup ends the execution with every thread blocked, which loom reports as a deadlock.
//! The ring models keep each end alive until the wakeup under test has happened, because
//! dropping an end notifies its peer and would wake a sleeper whose wakeup was lost.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{run, run_broken};
use ringport::atomics::{notify, wait, WaitCell};
use ringport::ring::PodRing;
use ringport::RecvError;

/// A lost wakeup in the signal, through its fences or its wake, leaves a sleeper parked.
const SIGNAL_MUTANTS: &[&str] = &["signal_no_fence", "signal_no_notify"];

/// 32 bytes after an 8-byte stamp: one slot per 64-byte block, two blocks per ring.
type Msg = [u64; 4];

#[test]
fn wait_until_flag_then_notify() {
    run(&[], || {
        let flag = Arc::new(AtomicU32::new(0));
        let waiter = {
            let flag = flag.clone();
            thread::spawn(move || {
                while flag.load(Ordering::Acquire) == 0 {
                    wait(&flag, 0, None);
                }
            })
        };
        flag.store(1, Ordering::Release);
        assert!(notify(&flag, u32::MAX) <= 1);
        waiter.join().unwrap();
    });
}

/// `WaitCell::notify` skips the wake when it sees no sleeper, so its fence and the
/// sleeper's must keep the count and the value from passing each other.
#[test]
fn wait_cell_notify_is_not_lost() {
    run(&["signal_no_fence"], || {
        let cell = Arc::new(WaitCell::new(0));
        let waiter = {
            let cell = cell.clone();
            thread::spawn(move || {
                while cell.value().load(Ordering::Acquire) == 0 {
                    cell.wait(0, None);
                }
            })
        };
        cell.value().store(1, Ordering::Release);
        cell.notify(u32::MAX);
        waiter.join().unwrap();
    });
}

/// The negative control of the raw pair, and of the futex model itself: no mutant touches
/// `wait` and `notify`, so the wakeup is left out instead, and loom must call it a
/// deadlock.
#[test]
fn wait_without_notify_is_a_deadlock() {
    run_broken("deadlock", || {
        let flag = Arc::new(AtomicU32::new(0));
        let waiter = {
            let flag = flag.clone();
            thread::spawn(move || {
                while flag.load(Ordering::Acquire) == 0 {
                    wait(&flag, 0, None);
                }
            })
        };
        flag.store(1, Ordering::Release);
        waiter.join().unwrap();
    });
}

#[test]
fn blocked_receiver_is_woken_by_a_send() {
    run(SIGNAL_MUTANTS, || {
        let (mut tx, mut rx) = PodRing::<u64>::with_capacity(1);
        let producer = thread::spawn(move || {
            tx.try_send(7).unwrap();
            tx
        });
        assert_eq!(rx.recv(), Ok(7));
        let tx = producer.join().unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));
    });
}

#[test]
fn blocked_sender_is_woken_by_a_receive() {
    run(SIGNAL_MUTANTS, || {
        let (mut tx, mut rx) = PodRing::<Msg>::with_capacity(2);
        assert_eq!(tx.capacity(), 2, "one slot per block, two blocks");
        let producer = thread::spawn(move || {
            tx.try_send([1; 4]).unwrap();
            tx.try_send([2; 4]).unwrap();
            tx.send([3; 4]).unwrap();
            tx
        });
        // Taking the first message hands its block back; nothing else may wake the
        // sender, so the join deadlocks if that wakeup is lost.
        let first = loop {
            match rx.try_recv() {
                Ok(v) => break v,
                Err(RecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("try_recv: {e}"),
            }
        };
        assert_eq!(first, [1; 4]);
        let tx = producer.join().unwrap();
        assert_eq!(rx.try_recv(), Ok([2; 4]));
        assert_eq!(rx.try_recv(), Ok([3; 4]));
        drop(tx);
    });
}
