//! The `queue_frames` fuzz target as an ordinary test on stable Rust.
//!
//! Its logic lives in `fuzz/src/queue.rs`, which libFuzzer drives through
//! `fuzz/fuzz_targets/queue_frames.rs` and which this file includes as a module. The test
//! replays every file of `fuzz/corpus/queue_frames/`, then `RINGPORT_FUZZ_REPLAY_RANDOM`
//! (default 2000) pseudo-random inputs of each sort: random bytes (a random reader, a
//! random recipe), and seeds damaged as a mutator would, which keep their reader and
//! most of their recipe.
//!
//! A failing input is named (corpus file) or printed in hex (random input); saved as a
//! file under `fuzz/corpus/queue_frames/`, it replays here and under `cargo fuzz run`.
#![cfg(feature = "serde")]

#[path = "../fuzz/src/queue.rs"]
mod queue;

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

/// The seed files, sorted by name.
fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/queue_frames");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seeds", dir.display());
    files
}

/// `seed` with one to four changes after its first byte (the reader): a flipped byte, a
/// random byte, a few random bytes inserted, a cut, or the tail of `other` spliced in.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = 1 + rng.below(data.len());
        match rng.below(5) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next() as u8,
            2 => {
                let extra = rng.below(16);
                let bytes = rng.bytes(extra);
                data.splice(at..at, bytes);
            }
            3 => data.truncate(at),
            _ => {
                let from = 1 + rng.below(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

fn replay() {
    let mut seeds = Vec::new();
    for path in corpus() {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let _current = Current(path.display().to_string());
        queue::queue_frames(&data);
        if !data.is_empty() {
            seeds.push(data);
        }
    }
    let mut rng = Rng(0x51E0_F3E2_0000_0006);
    for i in 0..random_count() {
        let len = rng.below(512);
        let data = rng.bytes(len);
        let _current = Current(format!("random input #{i}, hex {}", hex(&data)));
        queue::queue_frames(&data);

        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let data = mutate(&mut rng, seed, other);
        let _current = Current(format!("damaged seed #{i}, hex {}", hex(&data)));
        queue::queue_frames(&data);
    }
}

#[test]
fn queue_frames_replay() {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("queue_frames".to_owned())
        .spawn(move || {
            replay();
            let _ = done.send(());
        })
        .expect("spawning the replay thread");
    match finished.recv_timeout(HANG_LIMIT) {
        Ok(()) => worker.join().expect("the replay finished"),
        Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("queue_frames still running after {HANG_LIMIT:?}: the target hangs")
        }
    }
}
