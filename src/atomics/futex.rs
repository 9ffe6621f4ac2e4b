//! The Linux futex behind `wait` and `notify`.

use super::{Scope, WaitOutcome};
use rustix::io::Errno;
use rustix::thread::futex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(super) static SYSCALLS: AtomicU64 = AtomicU64::new(0);

fn flags(scope: Scope) -> futex::Flags {
    match scope {
        Scope::Process => futex::Flags::PRIVATE,
        Scope::System => futex::Flags::empty(),
    }
}

pub(crate) fn wait(
    atom: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
    scope: Scope,
) -> WaitOutcome {
    if scope == Scope::Process && timeout.is_none() {
        // atomic-wait is the private, untimed futex; it cannot tell NotEqual from a wake,
        // so look first (the kernel compares again under its lock).
        if atom.load(Ordering::Acquire) != expected {
            return WaitOutcome::NotEqual;
        }
        SYSCALLS.fetch_add(1, Ordering::Relaxed);
        atomic_wait::wait(atom, expected);
        return WaitOutcome::Ok;
    }
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let remaining = match deadline {
            None => None,
            // A timeout too large to represent is no timeout.
            Some(None) => None,
            Some(Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return WaitOutcome::TimedOut;
                }
                Some(left)
            }
        };
        let ts = remaining.map(|d| futex::Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: d.subsec_nanos().into(),
        });
        SYSCALLS.fetch_add(1, Ordering::Relaxed);
        match futex::wait(atom, flags(scope), expected, ts.as_ref()) {
            Ok(()) => return WaitOutcome::Ok,
            Err(Errno::AGAIN) => return WaitOutcome::NotEqual,
            Err(Errno::TIMEDOUT) => return WaitOutcome::TimedOut,
            // A signal interrupted the sleep: sleep again for what is left.
            Err(Errno::INTR) => continue,
            Err(e) => unreachable!("FUTEX_WAIT on a valid, aligned word failed: {e}"),
        }
    }
}

pub(crate) fn wake(atom: &AtomicU32, count: u32, scope: Scope) -> u32 {
    SYSCALLS.fetch_add(1, Ordering::Relaxed);
    // The kernel takes a signed count; larger means "all".
    let count = count.min(i32::MAX as u32);
    match futex::wake(atom, flags(scope), count) {
        Ok(n) => n as u32,
        Err(e) => unreachable!("FUTEX_WAKE on a valid, aligned word failed: {e}"),
    }
}
