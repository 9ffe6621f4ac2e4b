//! The consuming side of a [`MessageQueue`](super::MessageQueue): whole batches, in place.

use super::batch::Batch;
use crate::error::RecvError;
use crate::ring::Frame;
use crate::MessagePort;
use std::time::Duration;

/// Receives the batches a [`MessageQueue`](super::MessageQueue) sends through the other
/// end of its port, each as one [`Batch`] read in place.
///
/// A frame that is not a well-formed batch (written by a buggy or hostile process, or
/// sent on the port by something other than a queue) is consumed and reported as
/// [`RecvError::Corrupt`]; the next call receives the next frame. A corrupt *ring*
/// reports `Corrupt` on every call.
///
/// # Example
/// ```
/// use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
/// use ringport::{MessageChannel, RecvError};
///
/// let ch = MessageChannel::new();
/// let mut rx = BatchReceiver::new(ch.port2);
/// let producer = std::thread::spawn(move || {
///     let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
///     for i in 0..100u32 {
///         queue.enqueue(&i.to_le_bytes()).unwrap();
///     }
///     // Dropping the queue flushes it and closes the port.
/// });
/// let mut next = 0u32;
/// loop {
///     match rx.recv() {
///         Ok(batch) => {
///             for msg in &batch {
///                 assert_eq!(msg, next.to_le_bytes());
///                 next += 1;
///             }
///         }
///         Err(RecvError::Disconnected) => break,
///         Err(e) => panic!("{e}"),
///     }
/// }
/// assert_eq!(next, 100);
/// producer.join().unwrap();
/// ```
pub struct BatchReceiver {
    port: MessagePort,
}

impl BatchReceiver {
    /// Receives batches from `port`, whose other end a `MessageQueue` sends on.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let _rx = ringport::queue::BatchReceiver::new(ch.port2);
    /// ```
    pub fn new(port: MessagePort) -> Self {
        BatchReceiver { port }
    }

    /// Waits for the next batch.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once the queue was closed and every batch received;
    /// [`RecvError::PeerDied`]; [`RecvError::Corrupt`] for a frame that is not a batch.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
    /// let ch = ringport::MessageChannel::new();
    /// let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// let mut rx = BatchReceiver::new(ch.port2);
    /// queue.enqueue(b"hi").unwrap();
    /// drop(queue); // flushes
    /// assert_eq!(rx.recv().unwrap().len(), 1);
    /// assert_eq!(rx.recv().err(), Some(ringport::RecvError::Disconnected));
    /// ```
    pub fn recv(&mut self) -> Result<Batch<'_>, RecvError> {
        batch(self.port.recv())
    }

    /// The next batch if one is waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Empty`].
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let mut rx = ringport::queue::BatchReceiver::new(ch.port2);
    /// assert_eq!(rx.try_recv().err(), Some(ringport::RecvError::Empty));
    /// ```
    pub fn try_recv(&mut self) -> Result<Batch<'_>, RecvError> {
        batch(self.port.try_recv())
    }

    /// Waits at most `timeout` for the next batch.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Timeout`].
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let ch = ringport::MessageChannel::new();
    /// let mut rx = ringport::queue::BatchReceiver::new(ch.port2);
    /// let r = rx.recv_timeout(Duration::from_millis(1));
    /// assert_eq!(r.err(), Some(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Batch<'_>, RecvError> {
        batch(self.port.recv_timeout(timeout))
    }
}

fn batch(frame: Result<Frame<'_>, RecvError>) -> Result<Batch<'_>, RecvError> {
    Ok(Batch::new(frame?)?)
}
