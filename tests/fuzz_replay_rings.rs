//! The MPMC and broadcast fuzz targets of `fuzz/` as ordinary tests on stable Rust.
//!
//! Their logic lives in `fuzz/src/mpmc.rs` and `fuzz/src/broadcast.rs`, which libFuzzer
//! drives through `fuzz/fuzz_targets/` and which this file includes as modules. Each test
//! replays every file of `fuzz/corpus/<target>/`, then `RINGPORT_FUZZ_REPLAY_RANDOM`
//! (default 2000) pseudo-random inputs from a fixed seed, as `tests/fuzz_replay.rs` does
//! for the other targets: half of them random bytes, half of them seeds damaged as a
//! mutator would, since random bytes seldom keep a ring's handles alive for long.
//!
//! A failing input is named (corpus file) or printed in hex (random input); saved as a
//! file under `fuzz/corpus/<target>/`, it replays here and under `cargo fuzz run`.

#[path = "../fuzz/src/mpmc.rs"]
mod mpmc;
#[path = "../fuzz/src/support.rs"]
mod support;

#[path = "../fuzz/src/broadcast.rs"]
mod broadcast;

#[path = "common/replay.rs"]
mod replay;

#[test]
fn mpmc_ops_replay() {
    replay::bytes_and_seeds("mpmc_ops", mpmc::mpmc_ops, 0x3D3C_0B5E_0000_0007);
}

#[test]
fn mpmc_hostile_replay() {
    replay::bytes_and_seeds("mpmc_hostile", mpmc::mpmc_hostile, 0x3D3C_4057_0000_0008);
}

#[test]
fn broadcast_ops_replay() {
    replay::bytes_and_seeds(
        "broadcast_ops",
        broadcast::broadcast_ops,
        0xBCA5_70B5_0000_0009,
    );
}

#[test]
fn broadcast_hostile_replay() {
    replay::bytes_and_seeds(
        "broadcast_hostile",
        broadcast::broadcast_hostile,
        0xBCA5_4057_0000_000A,
    );
}
