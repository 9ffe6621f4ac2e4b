//! Fuzz targets for ringport. Each target's logic lives in [`targets`] (those of
//! `ringport::state` in [`state`]) as a plain function of the input bytes, so
//! `tests/fuzz_replay.rs` in the main crate runs exactly the code libFuzzer runs.

pub mod state;
pub mod targets;
