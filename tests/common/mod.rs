//! Helpers shared by the integration tests that move messages between threads or
//! processes: sizes from the environment, and a watchdog that turns a hang into a failure.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A count from the environment variable `var`, or `default` when it is unset. CI keeps
/// the defaults; a soak run raises them without editing the tests.
pub fn env_count(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|e| panic!("{var}={text:?} is not a count: {e}")),
        Err(_) => default,
    }
}

/// Runs `f` on its own thread and returns its result with the time it took, failing the
/// test if it has not finished after `limit`.
///
/// A blocking call that never returns (a lost wakeup, a missed peer death) would otherwise
/// hang the whole test binary. The limit is a hang detector, never a performance bound:
/// set it far above any plausible run time. On expiry the stuck thread is left behind;
/// the test fails and the harness exits regardless.
pub fn watchdog<R: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> (R, Duration) {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            let start = Instant::now();
            let r = f();
            let _ = done.send(start.elapsed());
            r
        })
        .expect("spawn the watched thread");
    match finished.recv_timeout(limit) {
        Ok(took) => (thread.join().expect("the watched thread returned"), took),
        // The sender dropped without sending: `f` panicked; show its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Ok(_) => unreachable!("the thread sends before it returns"),
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still blocked after {limit:?}, presumably hung")
        }
    }
}

/// Frames of varied length and content, reproducible on both sides of a channel from the
/// frame's index alone, so a receiver checks every byte without being told what was sent.
///
/// Each frame is a slice of one pseudo-random pool at an index-dependent offset: a frame
/// delivered from the wrong place, twice, or out of order differs from the expected one
/// (and a comparison is a `memcmp`, cheap even in a debug build).
pub struct Payloads {
    pool: Vec<u8>,
    max_len: usize,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: neighbouring indices get unrelated lengths and offsets.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Payloads {
    /// Frames of 0 to `max_len` bytes.
    pub fn new(max_len: usize) -> Payloads {
        let pool = (0..(64 << 10) + max_len as u64)
            .map(|i| mix(i) as u8)
            .collect();
        Payloads { pool, max_len }
    }

    /// Frame number `i`.
    pub fn get(&self, i: u64) -> &[u8] {
        let h = mix(i);
        let len = (h % (self.max_len as u64 + 1)) as usize;
        let off = ((h >> 32) % (self.pool.len() - self.max_len) as u64) as usize;
        &self.pool[off..off + len]
    }
}
