//! Shared buffers over a broadcast ring: one copy of the bytes, a reference per
//! subscriber.
//!
//! The publisher shares a buffer (its state word becomes `SHARED` with one reference, the
//! *anchor*, that the publisher holds) and publishes the 32-byte handle. A subscriber that
//! reads the handle takes its own reference with a compare-and-swap that insists on the
//! handle's generation and on at least one reference left, so it can never revive a
//! buffer that went back to the pool. The publisher drops each anchor once nobody can
//! still read its handle: under backpressure when every subscriber's cursor has passed it,
//! under overwrite when the ring has lapped it. A subscriber that reads a handle whose
//! buffer is already gone gets `Lagged(1)`: it was too late for that message, as with any
//! other it missed.

use super::{Buffer, BufferHandle, BufferPool, SharedBuffer, TransferError};
use crate::broadcast::{Overflow, Publisher, SubscribeError, Subscriber};
use crate::error::{Corruption, RecvError, SendError};
use std::collections::VecDeque;
use std::time::Duration;
use thiserror::Error;

/// Why a [`BufferSubscriber`] (or a port's buffer receive) returned no buffer.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BufferRecvError {
    /// The ring's own error (`Empty`, `Disconnected`, `Lagged`, …).
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// The handle received was refused.
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

/// Why a buffer was not sent; the buffer went back to its pool.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BufferSendError {
    /// The ring's own error.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The buffer cannot travel there.
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

/// Publishes pool buffers to every subscriber of a broadcast ring, zero-copy.
///
/// Anchors: each published buffer stays out of the pool until every subscriber has had
/// the chance to take its reference (see the module docs), so under
/// [`Overflow::Overwrite`] size the pool for the ring's capacity plus what subscribers
/// hold. Dropping the publisher drops its anchors: messages nobody received yet then
/// read as lagged.
///
/// # Example
/// ```
/// use ringport::pool::{BufferPool, BufferPublisher, PoolOptions};
/// let pool = BufferPool::new(PoolOptions::with_classes(&[(1 << 20, 4)]))?;
/// let mut publisher = BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool.clone());
/// let mut sub = publisher.subscribe()?;
/// let mut frame = pool.try_loan(1 << 20)?;
/// frame.fill(7);
/// publisher.publish(frame)?;
/// let seen = sub.recv()?;
/// assert!(seen.iter().all(|&b| b == 7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BufferPublisher {
    publisher: Publisher,
    pool: BufferPool,
    /// Handles whose anchor this publisher still holds, with their ring positions.
    anchors: VecDeque<(u64, BufferHandle)>,
}

impl std::fmt::Debug for BufferPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPublisher")
            .field("anchors", &self.anchors.len())
            .finish_non_exhaustive()
    }
}

impl BufferPublisher {
    /// Publishes `pool`'s buffers through `publisher`'s ring.
    ///
    /// # Panics
    /// If the ring's messages are shorter than a handle (32 bytes).
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let p = ringport::pool::BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool);
    /// # drop(p);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(publisher: Publisher, pool: BufferPool) -> BufferPublisher {
        assert!(
            publisher.max_message() >= std::mem::size_of::<BufferHandle>(),
            "broadcast messages must hold a 32-byte buffer handle"
        );
        BufferPublisher {
            publisher,
            pool,
            anchors: VecDeque::new(),
        }
    }

    /// A subscriber that receives every buffer published from now on.
    ///
    /// # Errors
    /// As [`Publisher::subscribe`].
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let p = ringport::pool::BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool);
    /// let _s = p.subscribe()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribe(&self) -> Result<BufferSubscriber, SubscribeError> {
        Ok(BufferSubscriber::new(
            self.publisher.subscribe()?,
            self.pool.clone(),
        ))
    }

    /// Shares `buf` read-only with every subscriber and returns its ring position. Blocks
    /// under backpressure as [`Publisher::publish`] does.
    ///
    /// # Errors
    /// [`TransferError::ForeignPool`] for another pool's buffer, or the ring's
    /// [`SendError`] (only `Corrupt`: a handle always fits).
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let mut p = ringport::pool::BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool.clone());
    /// assert_eq!(p.publish(pool.try_loan(1)?).unwrap(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn publish(&mut self, buf: Buffer) -> Result<u64, BufferSendError> {
        if buf.shared.core.id != self.pool.id() {
            // Subscribers of this pool could not take it; dropped, it goes back to its own.
            return Err(TransferError::ForeignPool {
                expected: self.pool.id(),
                found: buf.shared.core.id,
            }
            .into());
        }
        let handle = buf.share().map_err(|_| {
            BufferSendError::Send(SendError::Corrupt(Corruption::new(
                "buffer state word damaged",
            )))
        })?;
        match self.publisher.publish(bytemuck::bytes_of(&handle)) {
            Ok(pos) => {
                self.anchors.push_back((pos, handle));
                self.retire_passed(pos);
                Ok(pos)
            }
            Err(e) => {
                // Nothing was published: the anchor is the only reference.
                self.pool.retire(&handle);
                Err(e.into())
            }
        }
    }

    /// Drops the anchors nobody can still need: positions every subscriber has passed
    /// (backpressure) or the ring has lapped (either policy). `publish` calls this; call
    /// it when publishing pauses to return buffers early.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(ringport::pool::PoolOptions::with_classes(&[(64, 1)]))?;
    /// let p = ringport::broadcast::channel(ringport::broadcast::BroadcastOptions {
    ///     overflow: ringport::broadcast::Overflow::Backpressure,
    ///     ..Default::default()
    /// });
    /// let mut p = ringport::pool::BufferPublisher::new(p, pool.clone());
    /// let mut s = p.subscribe()?;
    /// p.publish(pool.try_loan(1)?)?;
    /// drop(s.recv()?);
    /// p.retire();
    /// assert_eq!(pool.available(), vec![1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retire(&mut self) {
        if let Some(&(pos, _)) = self.anchors.back() {
            self.retire_passed(pos);
        }
    }

    fn retire_passed(&mut self, newest: u64) {
        let capacity = self.publisher.capacity() as u64;
        let mut lowest = None;
        while let Some(&(pos, handle)) = self.anchors.front() {
            let lapped = pos + capacity <= newest;
            let passed = !lapped
                && self.publisher.overflow() == Overflow::Backpressure
                && pos < *lowest.get_or_insert_with(|| self.publisher.lowest_cursor());
            if !(lapped || passed) {
                break;
            }
            self.pool.retire(&handle);
            self.anchors.pop_front();
        }
    }
}

impl Drop for BufferPublisher {
    fn drop(&mut self) {
        for (_, handle) in self.anchors.drain(..) {
            self.pool.retire(&handle);
        }
    }
}

/// Receives the buffers a [`BufferPublisher`] shares, as read-only [`SharedBuffer`]s.
///
/// # Example
/// ```
/// use ringport::pool::{BufferPool, BufferPublisher, BufferRecvError};
/// use ringport::RecvError;
/// let pool = BufferPool::new(Default::default())?;
/// let p = BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool);
/// let mut s = p.subscribe()?;
/// assert_eq!(s.try_recv().unwrap_err(), BufferRecvError::Recv(RecvError::Empty));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BufferSubscriber {
    subscriber: Subscriber,
    pool: BufferPool,
}

impl std::fmt::Debug for BufferSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferSubscriber").finish_non_exhaustive()
    }
}

impl BufferSubscriber {
    /// Receives `pool`'s shared buffers through `subscriber` (for a subscriber of a ring
    /// that another process's [`BufferPublisher`] publishes to).
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let p = ringport::broadcast::channel(Default::default());
    /// let s = ringport::pool::BufferSubscriber::new(p.subscribe()?, pool);
    /// # drop(s);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(subscriber: Subscriber, pool: BufferPool) -> BufferSubscriber {
        BufferSubscriber { subscriber, pool }
    }

    fn take(pool: &BufferPool, bytes: &[u8]) -> Result<SharedBuffer, BufferRecvError> {
        let handle: BufferHandle = bytemuck::try_pod_read_unaligned(bytes).map_err(|_| {
            RecvError::Corrupt(Corruption::new("broadcast message is not a buffer handle"))
        })?;
        match pool.accept_shared(&handle) {
            Ok(b) => Ok(b),
            // Its publisher retired it before this subscriber came to it.
            Err(TransferError::Stale { .. }) => Err(RecvError::Lagged(1).into()),
            Err(e) => Err(e.into()),
        }
    }

    /// The next shared buffer, if one is ready now. A handle that is refused (for
    /// example with [`TransferError::SharedLimit`]) uses its message up: the subscriber
    /// has moved past it.
    ///
    /// # Errors
    /// The ring's errors (`Empty`, `Lagged(n)`: `n` buffers missed, `Disconnected`,
    /// `Corrupt`) as [`BufferRecvError::Recv`]; a refused handle as
    /// [`BufferRecvError::Transfer`].
    ///
    /// # Example
    /// ```
    /// # let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// # let mut p = ringport::pool::BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool.clone());
    /// let mut s = p.subscribe()?;
    /// p.publish(pool.try_loan(3)?)?;
    /// assert_eq!(s.try_recv()?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<SharedBuffer, BufferRecvError> {
        let bytes = self.subscriber.try_recv()?;
        Self::take(&self.pool, bytes)
    }

    /// The next shared buffer, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), except `Empty`.
    ///
    /// # Example
    /// ```
    /// # let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// # let mut p = ringport::pool::BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool.clone());
    /// let mut s = p.subscribe()?;
    /// p.publish(pool.try_loan(3)?)?;
    /// assert_eq!(s.recv()?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Result<SharedBuffer, BufferRecvError> {
        let bytes = self.subscriber.recv()?;
        Self::take(&self.pool, bytes)
    }

    /// The next shared buffer, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus `Timeout`.
    ///
    /// # Example
    /// ```
    /// # let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// # let p = ringport::pool::BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool.clone());
    /// let mut s = p.subscribe()?;
    /// let r = s.recv_timeout(std::time::Duration::from_millis(1));
    /// assert_eq!(r.unwrap_err(), ringport::RecvError::Timeout.into());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<SharedBuffer, BufferRecvError> {
        let bytes = self.subscriber.recv_timeout(timeout)?;
        Self::take(&self.pool, bytes)
    }
}
