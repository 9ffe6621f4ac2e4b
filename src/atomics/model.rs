//! A loom model of the futex: the kernel's hash bucket is a lock around a list of
//! sleepers, and a sleeper stays parked until a wake takes it off the list.

use super::{Scope, WaitOutcome};
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread::Thread;
use std::time::Duration;

struct Sleeper {
    addr: usize,
    thread: Thread,
    woken: Arc<AtomicBool>,
}

loom::lazy_static! {
    static ref BUCKET: Mutex<Vec<Sleeper>> = Mutex::new(Vec::new());
}

pub(crate) fn wait(
    atom: &AtomicU32,
    expected: u32,
    _timeout: Option<Duration>,
    _scope: Scope,
) -> WaitOutcome {
    let woken = Arc::new(AtomicBool::new(false));
    {
        let mut bucket = BUCKET.lock().unwrap();
        // The kernel compares under the bucket lock, as a relaxed read of the word.
        if atom.load(Ordering::Relaxed) != expected {
            return WaitOutcome::NotEqual;
        }
        bucket.push(Sleeper {
            addr: atom as *const AtomicU32 as usize,
            thread: loom::thread::current(),
            woken: woken.clone(),
        });
    }
    while !woken.load(Ordering::Acquire) {
        loom::thread::park();
    }
    WaitOutcome::Ok
}

pub(crate) fn wake(atom: &AtomicU32, count: u32, _scope: Scope) -> u32 {
    let addr = atom as *const AtomicU32 as usize;
    let mut bucket = BUCKET.lock().unwrap();
    let mut woken = 0;
    let mut i = 0;
    while i < bucket.len() && woken < count {
        if bucket[i].addr == addr {
            let s = bucket.remove(i);
            s.woken.store(true, Ordering::Release);
            s.thread.unpark();
            woken += 1;
        } else {
            i += 1;
        }
    }
    woken
}
