//! Fuzz targets for ringport. Each target's logic lives in [`targets`] (those of
//! `ringport::state` in [`state`], of the MPMC and broadcast rings in [`mpmc`] and
//! [`broadcast`], of the request/response envelope in [`rpc`], of the buffer pool in
//! [`pool`], of transfer messages in [`transfer`], of the typed decoder in [`typed`], of
//! queue and worker-process frames in [`queue`]) as a plain function of the input bytes,
//! so `tests/fuzz_replay*.rs` in the main crate run exactly the code libFuzzer runs.

pub mod broadcast;
mod handle;
pub mod mpmc;
pub mod pool;
pub mod queue;
pub mod rpc;
pub mod state;
mod support;
pub mod targets;
pub mod transfer;
pub mod typed;
