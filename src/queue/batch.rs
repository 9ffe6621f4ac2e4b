//! The batch frame: many messages in one ring frame, and its validating decoder.

use crate::error::Corruption;
use crate::ring::Frame;

/// First four bytes of every batch frame, so that a stray frame of another protocol on
/// the same port is refused rather than misread.
const MAGIC: [u8; 4] = *b"MQB1";
/// Magic and message count.
pub(crate) const BATCH_HEADER: usize = 8;
/// Each message's length prefix.
pub(crate) const ENTRY_HEADER: usize = 4;

/// A batch being filled: a frame under construction.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    bytes: Vec<u8>,
    count: u32,
}

/// A batch that takes no more messages, waiting to be published.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) bytes: Vec<u8>,
    pub(crate) count: usize,
}

impl BatchBuilder {
    /// An empty batch reusing `buf`'s allocation.
    pub(crate) fn new(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&0u32.to_le_bytes());
        BatchBuilder {
            bytes: buf,
            count: 0,
        }
    }

    /// Drops every message, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        self.bytes.truncate(BATCH_HEADER);
        self.count = 0;
    }

    pub(crate) fn count(&self) -> usize {
        self.count as usize
    }

    /// The frame length once `len` more bytes of message are added.
    pub(crate) fn len_with(&self, len: usize) -> usize {
        self.bytes.len() + ENTRY_HEADER + len
    }

    /// Appends a message; the caller has checked that it fits a frame, so its length
    /// fits the u32 prefix.
    pub(crate) fn push(&mut self, msg: &[u8]) {
        let len = u32::try_from(msg.len()).expect("checked against the frame limit");
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(msg);
        self.count += 1;
    }

    /// Writes the count into the header and hands the frame over.
    pub(crate) fn seal(mut self) -> Sealed {
        self.bytes[4..BATCH_HEADER].copy_from_slice(&self.count.to_le_bytes());
        Sealed {
            bytes: self.bytes,
            count: self.count as usize,
        }
    }
}

/// Checks a whole batch frame and returns its message count. Each message takes at least
/// its 4-byte prefix, so a hostile count ends the walk after at most `len / 4` steps.
pub(crate) fn validate(frame: &[u8]) -> Result<usize, Corruption> {
    let Some((header, mut rest)) = frame.split_first_chunk::<BATCH_HEADER>() else {
        return Err(Corruption::new("batch frame shorter than its header"));
    };
    if header[..4] != MAGIC {
        return Err(Corruption::new("not a batch frame"));
    }
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    for _ in 0..count {
        let Some((len, after)) = rest.split_first_chunk::<ENTRY_HEADER>() else {
            return Err(Corruption::new("batch holds fewer messages than it counts"));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > after.len() {
            return Err(Corruption::new("batch message runs past the frame"));
        }
        rest = &after[len..];
    }
    if !rest.is_empty() {
        return Err(Corruption::new("bytes after the batch's last message"));
    }
    Ok(count as usize)
}

/// One batch, read in place from the ring; its space goes back to the sender when it
/// drops. Every length in it was checked when it was received.
///
/// # Example
/// ```
/// use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
/// use std::time::Duration;
///
/// let ch = ringport::MessageChannel::new();
/// // A delay long enough that only the flush below sends the batch.
/// let opts = QueueOptions { batch_delay: Duration::from_secs(60), ..QueueOptions::default() };
/// let mut queue = MessageQueue::new(ch.port1, opts).unwrap();
/// let mut rx = BatchReceiver::new(ch.port2);
/// queue.enqueue(b"one").unwrap();
/// queue.enqueue(b"two").unwrap();
/// queue.flush().unwrap();
/// let batch = rx.recv().unwrap();
/// assert_eq!(batch.len(), 2);
/// assert_eq!(batch.iter().collect::<Vec<_>>(), [&b"one"[..], b"two"]);
/// ```
pub struct Batch<'a> {
    frame: Frame<'a>,
    count: usize,
}

impl<'a> Batch<'a> {
    /// Checks `frame` and wraps it; a frame that is not a well-formed batch is consumed.
    pub(crate) fn new(frame: Frame<'a>) -> Result<Self, Corruption> {
        let count = validate(&frame)?;
        Ok(Batch { frame, count })
    }

    /// How many messages the batch holds.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
    /// # let ch = ringport::MessageChannel::new();
    /// # let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// # let mut rx = BatchReceiver::new(ch.port2);
    /// queue.enqueue(b"x").unwrap();
    /// queue.flush().unwrap();
    /// assert_eq!(rx.recv().unwrap().len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch holds no message (a sender never publishes one, but a peer
    /// process may).
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
    /// # let ch = ringport::MessageChannel::new();
    /// # let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// # let mut rx = BatchReceiver::new(ch.port2);
    /// queue.enqueue(b"x").unwrap();
    /// queue.flush().unwrap();
    /// assert!(!rx.recv().unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The messages in the order they were enqueued, each a slice of the ring.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
    /// # let ch = ringport::MessageChannel::new();
    /// # let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// # let mut rx = BatchReceiver::new(ch.port2);
    /// queue.enqueue(&7u32.to_le_bytes()).unwrap();
    /// queue.flush().unwrap();
    /// let batch = rx.recv().unwrap();
    /// let sum: u32 = batch
    ///     .iter()
    ///     .map(|m| u32::from_le_bytes(m.try_into().unwrap()))
    ///     .sum();
    /// assert_eq!(sum, 7);
    /// ```
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            rest: &self.frame[BATCH_HEADER..],
            left: self.count,
        }
    }

    /// The whole frame, header included.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
    /// # let ch = ringport::MessageChannel::new();
    /// # let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// # let mut rx = BatchReceiver::new(ch.port2);
    /// queue.enqueue(b"abc").unwrap();
    /// queue.flush().unwrap();
    /// assert_eq!(rx.recv().unwrap().as_bytes().len(), 8 + 4 + 3);
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.frame
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("len", &self.count)
            .field("bytes", &self.frame.len())
            .finish()
    }
}

impl<'b> IntoIterator for &'b Batch<'_> {
    type Item = &'b [u8];
    type IntoIter = BatchIter<'b>;

    fn into_iter(self) -> BatchIter<'b> {
        self.iter()
    }
}

/// The messages of a [`Batch`], in order.
///
/// # Example
/// ```
/// # use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
/// # let ch = ringport::MessageChannel::new();
/// # let opts = QueueOptions {
/// #     batch_delay: std::time::Duration::from_secs(60),
/// #     ..QueueOptions::default()
/// # };
/// # let mut queue = MessageQueue::new(ch.port1, opts).unwrap();
/// # let mut rx = BatchReceiver::new(ch.port2);
/// queue.enqueue(b"a").unwrap();
/// queue.enqueue(b"bc").unwrap();
/// queue.flush().unwrap();
/// let batch = rx.recv().unwrap();
/// let mut it = batch.iter();
/// assert_eq!(it.len(), 2);
/// assert_eq!(it.next(), Some(&b"a"[..]));
/// ```
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // The frame was validated; the checked splits only keep a bug from becoming a
        // panic.
        if self.left == 0 {
            return None;
        }
        let (len, after) = self.rest.split_first_chunk::<ENTRY_HEADER>()?;
        let (msg, rest) = after.split_at_checked(u32::from_le_bytes(*len) as usize)?;
        self.rest = rest;
        self.left -= 1;
        Some(msg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for BatchIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(msgs: &[&[u8]]) -> Vec<u8> {
        let mut b = BatchBuilder::new(Vec::new());
        for m in msgs {
            b.push(m);
        }
        b.seal().bytes
    }

    #[test]
    fn built_batches_validate_with_their_count() {
        assert_eq!(validate(&built(&[])), Ok(0));
        assert_eq!(validate(&built(&[b"a", b"", b"xyz"])), Ok(3));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let good = built(&[b"hello", b"world!"]);
        for cut in 0..good.len() {
            assert!(validate(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(validate(&long).is_err());
    }

    #[test]
    fn hostile_counts_and_lengths_are_refused() {
        let mut huge_count = built(&[b"a"]);
        huge_count[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(validate(&huge_count).is_err());
        let mut huge_len = built(&[b"a"]);
        huge_len[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(validate(&huge_len).is_err());
        let mut magic = built(&[b"a"]);
        magic[0] = b'X';
        assert!(validate(&magic).is_err());
    }
}
