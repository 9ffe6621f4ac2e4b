//! The pool fuzz targets of `fuzz/` as ordinary tests on stable Rust.
//!
//! Their logic lives in `fuzz/src/pool.rs`, which libFuzzer drives through
//! `fuzz/fuzz_targets/pool_*.rs` and which this file includes as a module. Each test
//! replays every file of `fuzz/corpus/<target>/`, then `RINGPORT_FUZZ_REPLAY_RANDOM`
//! (default 2000) pseudo-random inputs from a fixed seed, as `tests/fuzz_replay_rings.rs`
//! does for the rings.
//!
//! A failing input is named (corpus file) or printed in hex (random input); saved as a
//! file under `fuzz/corpus/<target>/`, it replays here and under `cargo fuzz run`.

#[path = "../fuzz/src/pool.rs"]
mod pool;
#[path = "../fuzz/src/support.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Bounds a hung target: the replay fails loudly instead of stalling the test run.
const HANG_LIMIT: Duration = Duration::from_secs(300);

fn random_count() -> usize {
    match std::env::var("RINGPORT_FUZZ_REPLAY_RANDOM") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("RINGPORT_FUZZ_REPLAY_RANDOM={v:?} is not a count")),
        Err(_) => 2000,
    }
}

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// The seed files of `target`, sorted by name.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seeds", dir.display());
    files
}

/// Names the input being run when a check inside the target fails.
struct Current(String);

impl Drop for Current {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("failing input: {}", self.0);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `work` on its own thread and fails if it neither finishes nor panics in time.
fn bounded(what: &str, work: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            work();
            let _ = done.send(());
        })
        .expect("spawning a replay thread");
    match finished.recv_timeout(HANG_LIMIT) {
        Ok(()) => worker.join().expect("the replay finished"),
        Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("{what} still running after {HANG_LIMIT:?}: a target hangs")
        }
    }
}

/// Replays the corpus of `target`, then random inputs from `seed`: half of them random
/// bytes (up to 1 KiB), half of them seeds damaged the ways a mutator would, since random
/// bytes seldom send a buffer and then present its handle again.
fn replay(target: &'static str, run: fn(&[u8]), seed: u64) {
    bounded(target, move || {
        let mut seeds = Vec::new();
        for path in corpus(target) {
            let data =
                fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let _current = Current(path.display().to_string());
            run(&data);
            seeds.push(data);
        }
        let mut rng = Rng(seed);
        for i in 0..random_count() {
            let data = if i % 2 == 0 {
                let len = rng.below(1024);
                rng.bytes(len)
            } else {
                let seed = &seeds[rng.below(seeds.len())];
                let other = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, seed, other)
            };
            let _current = Current(format!("random input #{i}, hex {}", hex(&data)));
            run(&data);
        }
    });
}

/// `seed` with one to four changes: a flipped byte, a random byte, a few random bytes
/// inserted, a cut, or the tail of `other` spliced in.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(5) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next() as u8,
            2 => {
                let extra = rng.below(16);
                let bytes = rng.bytes(extra);
                data.splice(at..at, bytes);
            }
            3 => data.truncate(at.max(1)),
            _ => {
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

#[test]
fn pool_ops_replay() {
    replay("pool_ops", pool::pool_ops, 0xB0FF_0B5E_0000_000B);
}

#[test]
fn pool_handles_replay() {
    replay("pool_handles", pool::pool_handles, 0xB0FF_4A7D_0000_000C);
}
