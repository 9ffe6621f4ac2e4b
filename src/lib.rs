//! ringport: lock-free shared-memory messaging between threads and processes.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod atomics;
mod error;
#[cfg(not(loom))]
mod port;
#[cfg(not(loom))]
pub mod process;
#[cfg(not(loom))]
mod region;
pub mod ring;
#[cfg(not(loom))]
pub mod segment;
mod signal;
mod sync;

pub use error::{Corruption, RecvError, SendError};
#[cfg(not(loom))]
pub use port::{
    ConnectError, MessageChannel, MessagePort, PodPort, DEFAULT_FRAME_CAPACITY, DEFAULT_POD_CAPACITY,
};
