//! The `typed_decode` fuzz target as an ordinary test on stable Rust.
//!
//! Its logic lives in `fuzz/src/typed.rs`, which libFuzzer drives through
//! `fuzz/fuzz_targets/typed_decode.rs` and which this file includes as a module. The
//! test replays every file of `fuzz/corpus/typed_decode/`, then
//! `RINGPORT_FUZZ_REPLAY_RANDOM` (default 2000) pseudo-random inputs of each sort:
//! random bytes (mostly refused early, and read as recipes), and damaged encodings of
//! random orders, which decode further before they fail, or decode as another order.
//!
//! A failing input is named (corpus file) or printed in hex (random input); saved as a
//! file under `fuzz/corpus/typed_decode/`, it replays here and under `cargo fuzz run`.
#![cfg(feature = "serde")]

#[path = "../fuzz/src/typed.rs"]
mod typed;

use arbitrary::{Arbitrary, Unstructured};
use std::fs;
use std::path::{Path, PathBuf};

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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/typed_decode");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seeds", dir.display());
    files
}

/// The encoding of a random order.
fn random_encoding(rng: &mut Rng) -> Vec<u8> {
    let len = 64 + rng.below(512);
    let seed = rng.bytes(len);
    let order = typed::Order::arbitrary(&mut Unstructured::new(&seed))
        .expect("arbitrary fills what the bytes do not");
    let mut bytes = Vec::new();
    ringport::typed::encode(&order, &mut bytes).unwrap();
    bytes
}

/// Damages an encoding as a mutator would: flipped bytes, a cut, extra bytes, or a
/// byte spelt as an over-long varint (where a varint ends, postcard still accepts it).
fn mutate(rng: &mut Rng, mut data: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.below(4) {
        if data.is_empty() {
            break;
        }
        match rng.below(6) {
            0 | 1 => {
                let at = rng.below(data.len());
                data[at] ^= 1 + rng.below(255) as u8;
            }
            2 => data.truncate(rng.below(data.len() + 1)),
            3 => {
                let extra = rng.below(20);
                data.extend(rng.bytes(extra));
            }
            _ => {
                let at = rng.below(data.len());
                if data[at] < 0x80 {
                    data[at] |= 0x80;
                    data.insert(at + 1, 0);
                }
            }
        }
    }
    data
}

#[test]
fn typed_decode_replay() {
    for path in corpus() {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let _current = Current(path.display().to_string());
        typed::typed_decode(&data);
    }
    let mut rng = Rng(0x7E9E_D0DE_C0DE_0006);
    for i in 0..random_count() {
        let len = rng.below(512);
        let data = rng.bytes(len);
        let _current = Current(format!("random input #{i}, hex {}", hex(&data)));
        typed::typed_decode(&data);

        let encoding = random_encoding(&mut rng);
        let data = mutate(&mut rng, encoding);
        let _current = Current(format!("damaged encoding #{i}, hex {}", hex(&data)));
        typed::typed_decode(&data);
    }
}
