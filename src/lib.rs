//! Lock-free shared-memory messaging between threads and processes, with the web
//! platform's inter-thread model: `MessageChannel` and its ports, `Atomics.wait` and
//! `Atomics.notify`, and shared memory that a peer process may have scribbled on.
//!
//! # The contract
//!
//! - **Ports** ([`MessageChannel`]) are two entangled ends; each carries messages in FIFO
//!   order to the other. A [`MessagePort`] carries byte frames (read in place, Pod values
//!   included); a [`PodPort<T>`] carries `T: bytemuck::Pod` values in packed slots. Every
//!   operation comes as `try_` (never blocks), blocking, and `_timeout`, plus batches
//!   that publish with one store and wake at most once.
//! - **Closing**: when one end closes or drops, the other receives what was already sent,
//!   then [`RecvError::Disconnected`]; its sends fail with [`SendError::Disconnected`].
//!   When the other end's process dies, blocked calls return `PeerDied` within about
//!   100 ms; `try_` calls never block and do not look.
//! - **Placement**: the same layouts live on the heap ([`MessageChannel::new`],
//!   [`ring::PodRing`], [`ring::FrameRing`]) or in a named shared-memory
//!   [`segment::Segment`] ([`MessageChannel::create`] / [`MessageChannel::open`]).
//! - **Untrusted memory**: every index, length and count read from shared memory is
//!   validated before use; a corrupt segment gives [`Corruption`], never undefined
//!   behaviour, a panic, or an out-of-bounds access.
//! - **Wait/notify**: [`atomics::wait`] and [`atomics::notify`] have `Atomics.wait` /
//!   `Atomics.notify` semantics on any `AtomicU32`, across processes too. The rings' own
//!   wakeups make no syscall while nobody sleeps.
//!
//! # Example
//!
//! ```
//! use ringport::MessageChannel;
//!
//! let ch = MessageChannel::new();
//! let (mut main, mut worker) = (ch.port1, ch.port2);
//! let t = std::thread::spawn(move || {
//!     // Until `main` closes: then recv_with drains and reports Disconnected.
//!     while let Ok(n) = worker.recv_with(bytemuck::pod_read_unaligned::<u64>) {
//!         worker.post_pod(&(n * 2)).unwrap();
//!     }
//! });
//! for n in 0..100u64 {
//!     main.post_pod(&n).unwrap();
//!     assert_eq!(main.recv().unwrap().read_pod::<u64>(), Some(n * 2));
//! }
//! main.close();
//! t.join().unwrap();
//! ```
//!
//! Under `RUSTFLAGS="--cfg loom"` the rings run on loom's atomics and a modelled futex
//! (see `loom-tests/`); segments and ports are then unavailable.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod atomics;
pub mod broadcast;
mod error;
pub mod mpmc;
mod participants;
pub mod pool;
#[cfg(not(loom))]
mod port;
#[cfg(not(loom))]
pub mod process;
pub mod queue;
#[cfg(not(loom))]
mod region;
pub mod ring;
#[cfg(not(loom))]
pub mod rpc;
#[cfg(not(loom))]
pub mod segment;
mod signal;
pub mod state;
mod sync;
#[cfg(not(loom))]
pub mod transfer;
#[cfg(not(loom))]
pub mod typed;
mod words;
pub mod worker;

pub use error::{Corruption, RecvError, SendError};
#[cfg(not(loom))]
pub use port::{
    ConnectError, MessageChannel, MessagePort, PodPort, DEFAULT_FRAME_CAPACITY,
    DEFAULT_POD_CAPACITY,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
