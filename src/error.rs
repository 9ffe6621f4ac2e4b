//! Errors of rings and ports.

use thiserror::Error;

/// A ring's shared memory held a value its protocol cannot produce: a peer is buggy or
/// hostile, or the segment was overwritten. The ring refuses to go on rather than read
/// out of bounds; messages received before it stay valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[error("shared memory is corrupt: {what}")]
pub struct Corruption {
    what: &'static str,
}

impl Corruption {
    pub(crate) const fn new(what: &'static str) -> Self {
        Corruption { what }
    }

    /// Which check failed.
    ///
    /// # Example
    /// ```
    /// # use ringport::{RecvError, Corruption};
    /// fn explain(e: RecvError) -> Option<&'static str> {
    ///     match e {
    ///         RecvError::Corrupt(c) => Some(c.what()),
    ///         _ => None,
    ///     }
    /// }
    /// assert_eq!(explain(RecvError::Empty), None);
    /// ```
    pub fn what(&self) -> &'static str {
        self.what
    }
}

/// Why a message was not sent. Nothing of a message that failed was published.
///
/// # Example
/// ```
/// use ringport::{ring::PodRing, SendError};
///
/// let (mut tx, rx) = PodRing::<u64>::with_capacity(1);
/// let cap = tx.capacity();
/// for i in 0..cap as u64 {
///     tx.try_send(i).unwrap();
/// }
/// assert_eq!(tx.try_send(0), Err(SendError::Full));
/// drop(rx);
/// assert_eq!(tx.try_send(0), Err(SendError::Disconnected));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The ring has no room (only from `try_` variants).
    #[error("ring is full")]
    Full,
    /// The ring stayed full until the timeout (only from `_timeout` variants).
    #[error("timed out waiting for room in the ring")]
    Timeout,
    /// The receiving side closed or was dropped.
    #[error("the receiving side is closed")]
    Disconnected,
    /// The receiving process died without closing.
    #[error("the receiving process {pid} died")]
    PeerDied {
        /// Its process id.
        pid: u32,
    },
    /// A frame longer than the ring's stated maximum.
    #[error("frame of {len} bytes exceeds the ring's maximum of {max}")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The ring's maximum frame length.
        max: usize,
    },
    /// The ring's shared memory failed validation.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
}

/// Why nothing was received.
///
/// # Example
/// ```
/// use ringport::{ring::PodRing, RecvError};
///
/// let (mut tx, mut rx) = PodRing::<u64>::with_capacity(8);
/// assert_eq!(rx.try_recv(), Err(RecvError::Empty));
/// tx.try_send(7).unwrap();
/// drop(tx);
/// assert_eq!(rx.try_recv(), Ok(7)); // what was sent is drained first
/// assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing is waiting (only from `try_` variants).
    #[error("ring is empty")]
    Empty,
    /// Nothing arrived before the timeout (only from `_timeout` variants).
    #[error("timed out waiting for a message")]
    Timeout,
    /// The sending side closed and everything it sent has been received.
    #[error("the sending side is closed")]
    Disconnected,
    /// The sending process died without closing; everything it published was received.
    #[error("the sending process {pid} died")]
    PeerDied {
        /// Its process id.
        pid: u32,
    },
    /// A broadcast subscriber fell a whole ring behind: this many messages were
    /// overwritten before it read them. It now stands at the oldest message still kept.
    #[error("lagged: {0} messages were overwritten before they were read")]
    Lagged(u64),
    /// The ring's shared memory failed validation.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
}
