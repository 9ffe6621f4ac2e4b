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

// Inputs are made and damaged here on the test's thread: no bound, no seed mutator.
#[allow(dead_code)]
#[path = "common/replay.rs"]
mod replay;

use arbitrary::{Arbitrary, Unstructured};
use replay::{random_count, replay_corpus, run_input, Rng};

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
    replay_corpus("typed_decode", typed::typed_decode);
    let mut rng = Rng(0x7E9E_D0DE_C0DE_0006);
    for i in 0..random_count() {
        let len = rng.below(512);
        run_input("random input", i, &rng.bytes(len), typed::typed_decode);

        let encoding = random_encoding(&mut rng);
        let data = mutate(&mut rng, encoding);
        run_input("damaged encoding", i, &data, typed::typed_decode);
    }
}
