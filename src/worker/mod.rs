//! Worker pools: the web's `WorkerManager` pattern, on threads or on processes.
//!
//! A [`WorkerPool`] owns `N` workers, each with a private channel of its own.
//! [`execute`](WorkerPool::execute) hands a task to an idle worker at once; while every
//! worker is busy, tasks wait in a bounded FIFO queue
//! ([`queue_capacity`](PoolOptions::queue_capacity)), and beyond that `execute` refuses
//! with [`ExecuteErrorKind::QueueFull`] ([`execute_timeout`](WorkerPool::execute_timeout)
//! waits for room instead). Each task gives a [`TaskHandle`]: wait for it blocking, with
//! a timeout, or `.await` it. A task's error comes back as [`TaskError::Failed`], a panic
//! as [`TaskError::Panicked`], and the worker that panicked is replaced.
//! [`terminate`](WorkerPool::terminate) (or dropping the pool) fails every unfinished
//! task with [`TaskError::Terminated`] and joins the workers.
//!
//! # Two kinds of worker, one API
//!
//! - [`WorkerPool::threads`]: worker threads run a handler on any `T: Send`, moved to
//!   them with no serialisation over a [`typed::local`](crate::typed::local) channel.
//! - [`WorkerPool::processes`] (feature `serde`): worker processes started from this very
//!   program, each with a private named [`MessageChannel`](crate::MessageChannel); tasks
//!   and results cross as postcard encodings (the frames are in [`wire`]). The program
//!   calls [`serve_if_worker`] first thing in `main`: in a worker process it serves
//!   tasks and never returns. A worker process that dies (a crash, `SIGKILL`) is
//!   replaced, and its task in flight fails with [`TaskError::WorkerDied`] or runs
//!   again, as the [`RetryPolicy`] says.
//!
//! # Threads, and why
//!
//! There is no dispatcher thread: `execute` dispatches on the caller's thread, under the
//! pool's lock, straight into the idle worker's channel, so an empty task costs one hop
//! there and one back. The most recently idle worker is picked first, since it is the
//! likeliest to be still polling its channel rather than asleep.
//! - A thread worker fills in its task's result itself, then takes the queue's oldest
//!   task and runs it without a hop through its channel.
//! - A process pool's caller, waiting for its task, takes the worker's reply off the
//!   worker's channel itself while it polls, so an empty task's round trip involves the
//!   caller and the worker process only. Each worker also has a reader thread in the
//!   parent, which takes the replies that nobody waits for (tasks whose handles sleep,
//!   are futures or were dropped; those the queue moves on), gives the worker the
//!   queue's oldest task, notices the worker's death, and starts its replacement. With
//!   nothing left to it, it sleeps off duty and the worker's replies wake nobody. The
//!   worker process itself is one thread: receive, run, reply.
//!
//! # Example
//!
//! The web example: four workers doubling numbers.
//!
//! ```
//! use ringport::worker::{PoolOptions, WorkerPool};
//!
//! let pool = WorkerPool::threads(4, PoolOptions::new(), |n: u64| Ok::<_, String>(n * 2));
//! let handles: Vec<_> = (1..=8).map(|n| pool.execute(n).unwrap()).collect();
//! let results: Vec<u64> = handles.into_iter().map(|h| h.wait().unwrap()).collect();
//! assert_eq!(results, [2, 4, 6, 8, 10, 12, 14, 16]);
//! pool.terminate();
//! ```
//!
//! Under loom only the duty word of a process pool's reader threads (`duty.rs`) is
//! built, for its model.

#[cfg(not(loom))]
mod dispatch;
#[cfg(any(loom, feature = "serde"))]
mod duty;
#[cfg(not(loom))]
mod handle;
#[cfg(all(not(loom), feature = "serde"))]
mod launch;
#[cfg(not(loom))]
mod pool;
#[cfg(all(not(loom), feature = "serde"))]
mod process;
#[cfg(all(not(loom), feature = "serde"))]
mod serve;
#[cfg(not(loom))]
mod thread;

#[cfg(not(loom))]
pub use dispatch::{ExecuteError, ExecuteErrorKind};
#[cfg(loom)]
pub use duty::Duty;
#[cfg(not(loom))]
pub use handle::{TaskError, TaskHandle};
#[cfg(all(not(loom), feature = "serde"))]
pub use launch::{ProcessOptions, StartError};
#[cfg(not(loom))]
pub use pool::{PoolOptions, WorkerPool};
#[cfg(all(not(loom), feature = "serde"))]
pub use process::RetryPolicy;
#[cfg(all(not(loom), feature = "serde"))]
pub use serve::serve_if_worker;

#[cfg(all(not(loom), feature = "serde"))]
pub mod wire {
    //! The frames between a process pool and its workers. Each worker has a private
    //! named channel, so its frames come from another process and are read as untrusted.
    //!
    //! The pool sends each task as one frame holding its postcard encoding (see
    //! [`typed`](crate::typed)). The worker answers each with one frame: a tag byte, then
    //!
    //! ```text
    //! READY    (nothing)          once, when the worker has opened its channel
    //! DONE     encoded result     the handler returned Ok
    //! FAILED   UTF-8 text         the handler returned Err (its Display), or the task or
    //!                             the result could not be decoded or encoded
    //! PANICKED UTF-8 text         the handler panicked; the worker exits after this reply
    //! ```
    //!
    //! The pool fails the task in flight with
    //! [`TaskError::BadReply`](crate::worker::TaskError::BadReply) for a frame that
    //! [`Reply::parse`] refuses, for a second `READY`, and for a `DONE` whose result does
    //! not decode.
    //!
    //! # Example
    //! ```
    //! use ringport::worker::wire::{Reply, DONE, PANICKED};
    //!
    //! assert_eq!(Reply::parse(&[DONE]), Some(Reply::Done(&[])));
    //! assert_eq!(Reply::parse(b"\x03boom"), Some(Reply::Panicked("boom".into())));
    //! assert_eq!(PANICKED, 3);
    //! ```

    pub use super::serve::{Reply, DONE, FAILED, PANICKED, READY};
}
