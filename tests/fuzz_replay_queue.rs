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

// Two sorts of input a round, made here: the shared half-and-half replay goes unused.
#[allow(dead_code)]
#[path = "common/replay.rs"]
mod replay;

use replay::{bounded, mutate_seed, random_count, replay_corpus, run_input, Rng};

#[test]
fn queue_frames_replay() {
    bounded("queue_frames", || {
        let mut seeds = replay_corpus("queue_frames", queue::queue_frames);
        // The damage keeps a seed's first byte (its reader), so there has to be one.
        seeds.retain(|seed| !seed.is_empty());
        let mut rng = Rng(0x51E0_F3E2_0000_0006);
        for i in 0..random_count() {
            let len = rng.below(512);
            run_input("random input", i, &rng.bytes(len), queue::queue_frames);

            let seed = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            let data = mutate_seed(&mut rng, seed, other, 1);
            run_input("damaged seed", i, &data, queue::queue_frames);
        }
    });
}
