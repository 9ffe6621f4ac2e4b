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

// Inputs are made and damaged here on the test's thread: no bound, no seed mutator.
#[allow(dead_code)]
#[path = "common/replay.rs"]
mod replay;

use replay::{random_count, replay_corpus, run_input, Rng};
use ringport::rpc::envelope::{Envelope, Kind};

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
    replay_corpus("rpc_envelope", rpc::rpc_envelope);
    let mut rng = Rng(0x29C0_E4E1_0000_0007);
    for i in 0..random_count() {
        let len = rng.below(512);
        run_input("random input", i, &rng.bytes(len), rpc::rpc_envelope);

        let encoding = random_encoding(&mut rng);
        let data = mutate(&mut rng, encoding);
        run_input("damaged encoding", i, &data, rpc::rpc_envelope);
    }
}
