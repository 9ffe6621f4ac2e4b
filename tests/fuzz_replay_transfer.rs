//! The `transfer_wire` fuzz target as an ordinary test on stable Rust.
//!
//! Its logic lives in `fuzz/src/transfer.rs`, which libFuzzer drives through
//! `fuzz/fuzz_targets/transfer_wire.rs` and which this file includes as a module. The
//! test replays every file of `fuzz/corpus/transfer_wire/`, then
//! `RINGPORT_FUZZ_REPLAY_RANDOM` (default 2000) pseudo-random inputs of each sort: random
//! bytes (read as recipes, and mostly refused at the magic as a peer's bytes), seeds
//! damaged as a mutator would, and damaged encodings of random messages, which the
//! decoder reads further before it refuses them, or reads as other messages.
//!
//! A failing input is named (corpus file) or printed in hex (random input); saved as a
//! file under `fuzz/corpus/transfer_wire/`, it replays here and under `cargo fuzz run`.

#[path = "../fuzz/src/handle.rs"]
mod handle;
#[path = "../fuzz/src/support.rs"]
mod support;
#[path = "../fuzz/src/transfer.rs"]
mod transfer;

// Three sorts of input a round, made here: the shared half-and-half replay goes unused.
#[allow(dead_code)]
#[path = "common/replay.rs"]
mod replay;

use replay::{bounded, mutate_seed, random_count, replay_corpus, run_input, Rng};
use ringport::transfer::wire::{encode, EndPosition, PortTicket, WireMessage};

/// The encoding of a random message: up to 40 bytes of data, 3 handles and 3 tickets,
/// small numbers mostly, so that two handles or tickets sometimes name one thing.
fn random_encoding(rng: &mut Rng) -> Vec<u8> {
    let data_len = rng.below(40);
    let data = rng.bytes(data_len);
    let buffers = (0..rng.below(4))
        .map(|_| {
            let mut raw = rng.bytes(32);
            raw[16..20].copy_from_slice(&(rng.below(4) as u32).to_le_bytes());
            bytemuck::pod_read_unaligned(&raw)
        })
        .collect();
    let position = |rng: &mut Rng| EndPosition {
        pos: rng.below(3) as u64 * 8,
        count: rng.below(3) as u64 * 8,
        seq: rng.below(3) as u32,
    };
    let ports = (0..rng.below(4))
        .map(|_| match rng.below(2) {
            0 => PortTicket::InProcess {
                process: rng.below(2) as u64,
                key: rng.below(3) as u64,
            },
            _ => PortTicket::Named {
                name: ["a", "channel", "é☃", &"n".repeat(200)][rng.below(4)].to_owned(),
                side: 1 + rng.below(2) as u8,
                owner: rng.below(2) == 1,
                send: position(rng),
                recv: position(rng),
            },
        })
        .collect();
    encode(&WireMessage {
        data,
        buffers,
        ports,
    })
}

#[test]
fn transfer_wire_replay() {
    bounded("transfer_wire", || {
        let seeds = replay_corpus("transfer_wire", transfer::transfer_wire);
        let mut rng = Rng(0x7A45_F3E2_0000_000D);
        for i in 0..random_count() {
            let len = rng.below(1024);
            run_input("random input", i, &rng.bytes(len), transfer::transfer_wire);

            let seed = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            let data = mutate_seed(&mut rng, seed, other, 0);
            run_input("damaged seed", i, &data, transfer::transfer_wire);

            let encoding = random_encoding(&mut rng);
            let other = rng.bytes(64);
            let data = mutate_seed(&mut rng, &encoding, &other, 0);
            run_input("damaged encoding", i, &data, transfer::transfer_wire);
        }
    });
}
