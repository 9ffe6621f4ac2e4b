//! The `rpc_envelope` fuzz target as an ordinary test on stable Rust.
//!
//! Its logic lives in `fuzz/src/rpc.rs`, which libFuzzer drives through
//! `fuzz/fuzz_targets/rpc_envelope.rs` and which this file includes as a module. The
//! test replays every file of `fuzz/corpus/rpc_envelope/`, then
//! `RINGPORT_FUZZ_REPLAY_RANDOM` (default 2000) pseudo-random inputs of each sort:
//! random bytes (mostly refused at the version byte, and read as recipes), and damaged
//! encodings of random envelopes, which get past the header.
//!
//! A failing input is named (corpus file) or printed in hex (random input); saved as a
//! file under `fuzz/corpus/rpc_envelope/`, it replays here and under `cargo fuzz run`.

#[path = "../fuzz/src/rpc.rs"]
mod rpc;

use ringport::rpc::envelope::{Envelope, Kind};
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/rpc_envelope");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seeds", dir.display());
    files
}

/// The encoding of a random envelope: any kind, a type of 0 to 300 bytes (valid UTF-8
/// or not, once damaged), a payload of 0 to 300.
fn random_encoding(rng: &mut Rng) -> Vec<u8> {
    let kinds = [
        Kind::Request,
        Kind::Response,
        Kind::Error,
        Kind::NoHandler,
        Kind::Notify,
    ];
    let ty: String = (0..rng.below(256))
        .map(|_| ['a', 'é', '☃', '_'][rng.below(4)])
        .collect::<String>()
        .chars()
        .scan(0, |len, c| {
            *len += c.len_utf8();
            (*len <= 255).then_some(c)
        })
        .collect();
    let payload_len = rng.below(300);
    let payload = rng.bytes(payload_len);
    Envelope {
        kind: kinds[rng.below(kinds.len())],
        id: rng.next(),
        ty: &ty,
        payload: &payload,
    }
    .to_vec()
    .expect("types are cut to 255 bytes")
}

/// Damages an encoding as a mutator would: flipped bytes (half of them in the header,
/// where the lengths and tags are), a cut, extra bytes, or a forged payload length.
fn mutate(rng: &mut Rng, mut data: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.below(4) {
        if data.is_empty() {
            break;
        }
        match rng.below(8) {
            0..=2 => {
                let at = rng.below(data.len().min(16));
                data[at] ^= 1 + rng.below(255) as u8;
            }
            3 | 4 => {
                let at = rng.below(data.len());
                data[at] ^= 1 + rng.below(255) as u8;
            }
            5 => data.truncate(rng.below(data.len() + 1)),
            6 => {
                let extra = rng.below(20);
                data.extend(rng.bytes(extra));
            }
            _ if data.len() >= 7 => {
                let len = (rng.next() as u32) >> (8 * rng.below(4));
                data[3..7].copy_from_slice(&len.to_le_bytes());
            }
            _ => {}
        }
    }
    data
}

#[test]
fn rpc_envelope_replay() {
    for path in corpus() {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let _current = Current(path.display().to_string());
        rpc::rpc_envelope(&data);
    }
    let mut rng = Rng(0x29C0_E4E1_0000_0007);
    for i in 0..random_count() {
        let len = rng.below(512);
        let data = rng.bytes(len);
        let _current = Current(format!("random input #{i}, hex {}", hex(&data)));
        rpc::rpc_envelope(&data);

        let encoding = random_encoding(&mut rng);
        let data = mutate(&mut rng, encoding);
        let _current = Current(format!("damaged encoding #{i}, hex {}", hex(&data)));
        rpc::rpc_envelope(&data);
    }
}
