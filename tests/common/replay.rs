//! The harness shared by the `tests/fuzz_replay*.rs` files, which replay the fuzz targets
//! of `fuzz/` on stable Rust: each file's committed corpus, then
//! `RINGPORT_FUZZ_REPLAY_RANDOM` (default 2000) rounds of pseudo-random inputs from a fixed
//! seed, every input named (corpus file) or printed in hex (random input) when a check
//! inside the target fails, so that it can be saved under `fuzz/corpus/<target>/` and
//! replayed here and under `cargo fuzz run`.
//!
//! Each file keeps what is particular to its target (its seeds, the encodings it damages,
//! its own ways of damaging them); what is here replays the same inputs for all of them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Bounds a hung target: the replay fails loudly instead of stalling the test run.
const HANG_LIMIT: Duration = Duration::from_secs(300);

/// How many rounds of random inputs a replay runs: `RINGPORT_FUZZ_REPLAY_RANDOM`, so that
/// a soak run raises it without editing the tests.
pub fn random_count() -> usize {
    match std::env::var("RINGPORT_FUZZ_REPLAY_RANDOM") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("RINGPORT_FUZZ_REPLAY_RANDOM={v:?} is not a count")),
        Err(_) => 2000,
    }
}

/// xorshift64*: reproducible inputs without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// `fuzz/corpus/<target>/`, where libFuzzer and these replays find the target's seeds.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs every seed file of `target`, sorted by name, and returns their bytes in that
/// order for the replays that go on to damage them.
pub fn replay_corpus(target: &str, mut run: impl FnMut(&[u8])) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seeds", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data =
                fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let _current = Current(path.display().to_string());
            run(&data);
            data
        })
        .collect()
}

/// Runs the generated input `data`, printed as `<what> #<round>, hex <bytes>` if it fails.
pub fn run_input(what: &str, round: usize, data: &[u8], run: impl FnOnce(&[u8])) {
    let _current = Current(format!("{what} #{round}, hex {}", hex(data)));
    run(data);
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
pub fn bounded(what: &str, work: impl FnOnce() + Send + 'static) {
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

/// `seed` with one to four changes after its first `keep` bytes (which a target may read
/// as a choice worth keeping, such as a reader): a flipped byte, a random byte, a few
/// random bytes inserted, a cut, or the tail of `other` (past its first `keep` bytes)
/// spliced in.
///
/// `seed` and `other` must hold at least `keep` bytes each.
pub fn mutate_seed(rng: &mut Rng, seed: &[u8], other: &[u8], keep: usize) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = keep + rng.below(data.len() + 1 - keep);
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
                let from = keep + rng.below(other.len() + 1 - keep);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

/// Replays the corpus of `target`, then random inputs from `seed`, on a bounded thread:
/// half of them random bytes (up to 1 KiB), half of them seeds damaged by [`mutate_seed`],
/// for the targets that random bytes seldom drive deep.
pub fn bytes_and_seeds(target: &'static str, run: fn(&[u8]), seed: u64) {
    bounded(target, move || {
        let seeds = replay_corpus(target, run);
        let mut rng = Rng(seed);
        for i in 0..random_count() {
            let data = if i % 2 == 0 {
                let len = rng.below(1024);
                rng.bytes(len)
            } else {
                let seed = &seeds[rng.below(seeds.len())];
                let other = &seeds[rng.below(seeds.len())];
                mutate_seed(&mut rng, seed, other, 0)
            };
            run_input("random input", i, &data, run);
        }
    });
}
