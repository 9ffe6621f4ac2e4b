//! The pool fuzz targets of `fuzz/` as ordinary tests on stable Rust.
//!
//! Their logic lives in `fuzz/src/pool.rs`, which libFuzzer drives through
//! `fuzz/fuzz_targets/pool_*.rs` and which this file includes as a module. Each test
//! replays every file of `fuzz/corpus/<target>/`, then `RINGPORT_FUZZ_REPLAY_RANDOM`
//! (default 2000) pseudo-random inputs from a fixed seed, as `tests/fuzz_replay_rings.rs`
//! does for the rings: half of them random bytes, half of them seeds damaged as a mutator
//! would, since random bytes seldom send a buffer and then present its handle again.
//!
//! A failing input is named (corpus file) or printed in hex (random input); saved as a
//! file under `fuzz/corpus/<target>/`, it replays here and under `cargo fuzz run`.

#[path = "../fuzz/src/handle.rs"]
mod handle;
#[path = "../fuzz/src/pool.rs"]
mod pool;
#[path = "../fuzz/src/support.rs"]
mod support;

#[path = "common/replay.rs"]
mod replay;

#[test]
fn pool_ops_replay() {
    replay::bytes_and_seeds("pool_ops", pool::pool_ops, 0xB0FF_0B5E_0000_000B);
}

#[test]
fn pool_handles_replay() {
    replay::bytes_and_seeds("pool_handles", pool::pool_handles, 0xB0FF_4A7D_0000_000C);
}
