//! The duty word of a process pool's reader threads (`ringport::worker::Duty`): a reader
//! that goes off duty while nothing is left to it, and a handle that leaves its reply to
//! the reader (it stops waiting, or its task is queued) at the same moment.
//!
//! The duty word's contract puts half of the protocol in the pool: the reader goes off
//! only under the pool's lock, having seen nothing in flight that only it would take, and
//! whoever leaves a reply to it does so under that lock, then calls it. These models play
//! that half with a loom mutex around the pool's flag, as `worker/process.rs` does with
//! its dispatcher lock, and drive the real `Duty` for the rest. A call that finds the
//! reader off but does not wake it leaves the reader asleep with the reply untaken: a
//! deadlock. (The real reader also wakes every 100 ms to look; under loom a timed sleep
//! never times out, so the model sees the lost call that would cost that latency.)
#![cfg(loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_tests::run;
use ringport::worker::Duty;

/// The pool's state behind its lock, as the contract sees it.
#[derive(Default)]
struct Pool {
    /// Replies left to the reader and not yet taken.
    left: u32,
    /// Replies the reader took.
    taken: u32,
}

/// The reader: takes what is left to it while on duty, goes off duty under the lock when
/// nothing is, sleeps while off; returns once it has taken `expect` replies.
fn reader(duty: &Duty, pool: &Mutex<Pool>, expect: u32) {
    loop {
        if !duty.is_on() {
            duty.sleep(None);
            continue;
        }
        let mut p = pool.lock().unwrap();
        if p.left > 0 {
            p.taken += p.left;
            p.left = 0;
            if p.taken == expect {
                return;
            }
            continue;
        }
        // Failing means a call came since the look above: look again.
        duty.try_go_off();
    }
}

/// Leaves one reply to the reader, under the lock, then calls it.
fn leave(duty: &Duty, pool: &Mutex<Pool>) {
    pool.lock().unwrap().left += 1;
    duty.call();
}

/// A handle stops waiting while the reader, finding nothing left to it, goes off duty.
#[test]
fn a_reply_left_to_the_reader_is_taken_though_it_was_going_off_duty() {
    run(&["worker_duty_call_silent", "signal_no_fence"], || {
        let duty = Arc::new(Duty::default());
        let pool = Arc::new(Mutex::new(Pool::default()));
        let r = {
            let (duty, pool) = (duty.clone(), pool.clone());
            thread::spawn(move || reader(&duty, &pool, 1))
        };
        leave(&duty, &pool);
        r.join().unwrap();
        assert_eq!(pool.lock().unwrap().taken, 1);
    });
}

/// Two callers (a handle that stops waiting, a task entering the queue) leave replies at
/// once; the reader may go off between them and must be called back for the second.
#[test]
fn two_callers_and_a_reader_that_goes_off_between_them() {
    run(&["worker_duty_call_silent", "signal_no_fence"], || {
        let duty = Arc::new(Duty::default());
        let pool = Arc::new(Mutex::new(Pool::default()));
        let r = {
            let (duty, pool) = (duty.clone(), pool.clone());
            thread::spawn(move || reader(&duty, &pool, 2))
        };
        let other = {
            let (duty, pool) = (duty.clone(), pool.clone());
            thread::spawn(move || leave(&duty, &pool))
        };
        leave(&duty, &pool);
        other.join().unwrap();
        r.join().unwrap();
        assert_eq!(pool.lock().unwrap().taken, 2);
    });
}
