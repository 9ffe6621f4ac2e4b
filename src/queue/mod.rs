//! Queues built on ports: batching ([`MessageQueue`]) and priorities
//! ([`PriorityMessageQueue`]), the two web patterns of the same names.
//!
//! # Batching
//!
//! A [`MessageQueue`] wraps the sending side of a [`MessagePort`](crate::MessagePort).
//! [`enqueue`](MessageQueue::enqueue) collects messages into a batch; a batch is sent as
//! **one frame** when it holds [`batch_size`](QueueOptions::batch_size) messages, when
//! [`batch_delay`](QueueOptions::batch_delay) has passed since its first message, on
//! [`flush`](MessageQueue::flush), and when the queue is closed or dropped. One frame
//! costs one publishing store and at most one wake of the receiver, whatever the number
//! of messages in it. [`max_queue_size`](QueueOptions::max_queue_size) bounds the messages
//! accepted but not yet published; at that bound `enqueue` returns
//! [`QueueError::Full`] and [`enqueue_timeout`](MessageQueue::enqueue_timeout) waits.
//!
//! The other port's [`BatchReceiver`] receives whole batches, each read in place. The
//! frame layout (all integers little-endian):
//!
//! ```text
//! "MQB1" | count: u32 | count × (len: u32 | len bytes)
//! ```
//!
//! A frame written by another process is untrusted: the receiver checks every length
//! against the frame before it hands out a batch, and a frame that does not parse is
//! consumed and reported as [`RecvError::Corrupt`](crate::RecvError::Corrupt); the next
//! call receives the next batch.
//!
//! # Priorities
//!
//! A [`PriorityMessageQueue`] carries messages at `N` levels (by default
//! [`Level::HIGH`], [`Level::MEDIUM`] and [`Level::LOW`]) from one
//! [`PrioritySender`] to one [`PriorityReceiver`], in strict priority, with a deadline per
//! level. A message whose deadline passes before it is received is not delivered: it goes
//! back to the sender as an [`Expired`] report. See [`priority`] for the order of
//! delivery, aging, and how the receiver sleeps on several rings.
//!
//! Both queues work between threads (on the heap) and between processes (in named
//! shared-memory segments).
//!
//! Under `--cfg loom` only the priority queue exists, on the heap: its doorbell is a
//! wait/notify protocol over several rings, which the loom models check. The batching
//! queue coordinates with a std `Mutex` and `Condvar` around a port, and ports do not
//! exist under loom.

#[cfg(not(loom))]
mod batch;
#[cfg(not(loom))]
mod message_queue;
pub mod priority;
#[cfg(not(loom))]
mod receiver;

#[cfg(not(loom))]
pub use batch::{Batch, BatchIter};
#[cfg(not(loom))]
pub use message_queue::{MessageQueue, QueueError, QueueOptions, QueueSetupError};
pub use priority::{
    Delivery, Expired, Level, PriorityError, PriorityMessageQueue, PriorityOptions,
    PriorityReceiver, PrioritySender,
};
#[cfg(not(loom))]
pub use receiver::BatchReceiver;
