//! Fuzz targets for ringport. Each target's logic lives in [`targets`] as a plain
//! function of the input bytes, so `tests/fuzz_replay.rs` in the main crate runs exactly
//! the code libFuzzer runs.

pub mod targets;
