//! The duty word of a process worker's reader thread: whether it watches its worker's
//! replies, or sleeps and leaves them to the callers waiting for their tasks (see
//! `process.rs`), and how it is called back.
//!
//! The contract, which the pool keeps and the loom model `worker_duty` checks:
//! - the reader goes off duty ([`Duty::try_go_off`]) only under the pool's lock, having
//!   seen there that nothing is in flight that only it would take;
//! - whoever makes such a thing exist (a handle that stops waiting, a queued task) does
//!   so under the same lock, then calls the reader ([`Duty::call`]).
//!
//! A call reads the word first, and a caller that finds the reader on duty writes
//! nothing: the pool calls on every queued task, for every worker, and a swap there
//! would take each worker's duty line away from its reader. Reading is enough because of
//! the contract: a reader that goes off after this read does so under the lock, after the
//! caller's work became visible there, and so sees the work and stays; one that went off
//! before it is seen `OFF` (the lock orders its swap before the read). A caller that finds
//! `OFF` swaps in `ON` and wakes the reader; a reader that went off but has not yet slept
//! is not lost, because its sleep ([`Duty::sleep`]) compares the word with `OFF` in the
//! kernel.

use crate::atomics::WaitCell;
use crate::sync::Ordering;
use std::time::Duration;

/// The reader watches the ring.
const ON: u32 = 0;
/// The reader sleeps on the word.
const OFF: u32 = 1;

/// A reader thread's duty word (see the [module documentation](self)); it starts on
/// duty. Public under loom only, for its model.
#[derive(Default)]
pub struct Duty {
    word: WaitCell,
}

impl Duty {
    /// Whether the reader is on duty.
    pub fn is_on(&self) -> bool {
        self.word.value().load(Ordering::Acquire) == ON
    }

    /// Puts the reader on duty, and wakes it if it was off.
    pub fn call(&self) {
        let word = self.word.value();
        if word.load(Ordering::Acquire) == OFF
            && word.swap(ON, Ordering::AcqRel) == OFF
            && !cfg!(ringport_mutant = "worker_duty_call_silent")
        {
            self.word.notify(1);
        }
    }

    /// Goes off duty, unless a call came since the reader last looked. Only under the
    /// pool's lock, having seen nothing in flight that only the reader would take.
    pub fn try_go_off(&self) -> bool {
        let word = self.word.value();
        word.compare_exchange(ON, OFF, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Sleeps while off duty, until called or `timeout` passes (loom: until called).
    pub fn sleep(&self, timeout: Option<Duration>) {
        self.word.wait(OFF, timeout);
    }
}
