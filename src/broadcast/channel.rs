//! `BroadcastChannel` with the web's semantics, on a named broadcast ring.
//!
//! Every channel object with the same namespace and name, in any thread or process,
//! joins one named ring: it publishes there and subscribes there. A message carries its
//! sender object's id, and each object skips its own messages, so `post_message` reaches
//! every *other* object with the name, as on the web.
//!
//! The ring's segment is shared by its users: the first object creates it, later ones
//! open it, and the last one to leave removes the name. A leaver that finds no publisher
//! left sets the ring's `closing` flag and removes the name; a joiner checks the flag
//! after it has registered, and starts over (creating a fresh ring) if it was set. A
//! joiner that registered before the flag was set makes the leaver's second look find a
//! publisher, and the leaver clears the flag instead.

use super::{
    create_with, open, BroadcastOptions, Publisher, SubscribeError, Subscriber, CLOSING, PUBLISHERS,
};
use crate::error::{RecvError, SendError};
use crate::segment::SegmentError;
use crate::sync::{AtomicU32, Ordering};
use std::time::Duration;
use thiserror::Error;

/// Bytes of the sender id in front of every message.
const ID_LEN: usize = 8;
/// Joins that found their ring closing start over this many times, a millisecond apart,
/// before reporting the name busy.
const JOIN_ATTEMPTS: usize = 1000;

/// Why a [`BroadcastChannel`] operation failed.
///
/// # Example
/// ```
/// use ringport::broadcast::{BroadcastChannel, ChannelError};
/// let name = format!("doc-channel-error-{}", std::process::id());
/// let mut ch = BroadcastChannel::new(&name)?;
/// ch.close();
/// assert!(matches!(ch.post_message(b"x"), Err(ChannelError::Closed)));
/// # Ok::<(), ChannelError>(())
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The channel object was closed.
    #[error("the broadcast channel is closed")]
    Closed,
    /// Publishing failed: `TooLarge`, `Timeout`, `Full` (backpressure), `Corrupt`.
    #[error(transparent)]
    Send(#[from] SendError),
    /// Receiving failed: `Empty`, `Timeout`, `Lagged`, `Corrupt`.
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// The ring already has its maximum of subscribers.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// Creating or opening the ring's segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
}

/// A named channel to every other channel object with the same name, like the web's
/// `new BroadcastChannel(name)`: in other threads and in other processes.
///
/// Objects with the same name in different namespaces (the web's origins) do not meet;
/// [`new`](Self::new) uses the namespace in `RINGPORT_NAMESPACE`, or `default`.
///
/// # Example
/// ```
/// use ringport::broadcast::BroadcastChannel;
///
/// let name = format!("doc-channel-{}", std::process::id());
/// let mut a = BroadcastChannel::new(&name)?;
/// let mut b = BroadcastChannel::new(&name)?; // usually another thread or process
/// a.post_message(b"hello")?;
/// assert_eq!(b.recv()?, b"hello");
/// assert!(a.try_recv().is_err()); // never delivered to its sender
/// # Ok::<(), ringport::broadcast::ChannelError>(())
/// ```
pub struct BroadcastChannel {
    name: String,
    /// This object's id, in front of every message it posts.
    id: u64,
    /// `None` once closed.
    open: Option<(Publisher, Subscriber)>,
}

impl std::fmt::Debug for BroadcastChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastChannel")
            .field("name", &self.name)
            .field("closed", &self.open.is_none())
            .finish_non_exhaustive()
    }
}

/// The default options of a channel: a 1024-message overwrite ring of messages up to
/// 4 KiB, 64 objects at once.
fn default_options() -> BroadcastOptions {
    BroadcastOptions {
        capacity: 1024,
        max_message: 4096 + ID_LEN,
        ..Default::default()
    }
}

/// A segment name for `namespace` and `name`: kept readable where the characters allow,
/// hashed where they do not (or are too long), since channel names are arbitrary strings.
fn segment_name(namespace: &str, name: &str) -> String {
    let part = |s: &str| {
        let plain = !s.is_empty()
            && s.len() <= 60
            && !s.starts_with('.')
            && !s.contains("..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if plain {
            s.to_owned()
        } else {
            // FNV-1a: a fixed hash, the same in every process.
            let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("h{h:016x}")
        }
    };
    format!("bc-{}-{}", part(namespace), part(name))
}

/// A process-unique id for a new channel object: pid in the high half, a counter below.
fn next_id() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    (u64::from(std::process::id()) << 32) | u64::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl BroadcastChannel {
    /// Joins the channel `name` in the namespace of `RINGPORT_NAMESPACE` (or `default`),
    /// creating its ring with the default options if no object has it open.
    ///
    /// # Errors
    /// [`ChannelError::Subscribe`] when the ring has its maximum of subscribers;
    /// [`ChannelError::Segment`] when the ring cannot be created or opened (for example
    /// `Incompatible`: the name holds something else).
    ///
    /// # Example
    /// ```
    /// let ch = ringport::broadcast::BroadcastChannel::new("doc-new")?;
    /// assert_eq!(ch.name(), "doc-new");
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn new(name: &str) -> Result<BroadcastChannel, ChannelError> {
        let namespace = std::env::var("RINGPORT_NAMESPACE").unwrap_or_else(|_| "default".into());
        Self::with_options(&namespace, name, default_options())
    }

    /// Joins the channel `name` in `namespace`; `options` are used if this object creates
    /// the ring (its first user does), and otherwise ignored. `max_message` counts 8 bytes
    /// of sender id in front of every message.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// # Example
    /// ```
    /// use ringport::broadcast::{BroadcastChannel, BroadcastOptions, Overflow};
    /// let opts = BroadcastOptions { overflow: Overflow::Backpressure, ..Default::default() };
    /// let name = format!("doc-with-options-{}", std::process::id());
    /// let mut a = BroadcastChannel::with_options("tests", &name, opts)?;
    /// let mut b = BroadcastChannel::with_options("tests", &name, opts)?;
    /// let mut other_origin = BroadcastChannel::with_options("elsewhere", &name, opts)?;
    /// a.post_message(b"x")?;
    /// assert_eq!(b.recv()?, b"x");
    /// assert!(other_origin.try_recv().is_err());
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn with_options(
        namespace: &str,
        name: &str,
        options: BroadcastOptions,
    ) -> Result<BroadcastChannel, ChannelError> {
        let segment = segment_name(namespace, name);
        for _ in 0..JOIN_ATTEMPTS {
            let publisher = match open(&segment) {
                Ok(p) => p,
                Err(SegmentError::NotFound { .. }) => match create_with(&segment, options, true) {
                    Ok(p) => p,
                    // Another object created it first: open theirs.
                    Err(SegmentError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            };
            if closing(&publisher).load(Ordering::Acquire) != 0 {
                // Its last user is removing it: wait for the name to go, then make anew.
                drop(publisher);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let subscriber = publisher.subscribe()?;
            return Ok(BroadcastChannel {
                name: name.to_owned(),
                id: next_id(),
                open: Some((publisher, subscriber)),
            });
        }
        Err(SegmentError::Io {
            name: segment,
            source: std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                "the channel's ring kept closing under this join",
            ),
        }
        .into())
    }

    /// The channel's name.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::broadcast::BroadcastChannel::new("doc-name")?;
    /// assert_eq!(ch.name(), "doc-name");
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `bytes` to every other open channel object with this name.
    ///
    /// # Errors
    /// [`ChannelError::Closed`] after [`close`](Self::close); [`ChannelError::Send`] with
    /// `TooLarge` for a message over the ring's maximum (less 8 bytes), or under
    /// backpressure whatever waiting for the slowest subscriber gives.
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::broadcast::BroadcastChannel::new("doc-post")?;
    /// ch.post_message(b"anyone there?")?; // nobody else listens: the message is dropped
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn post_message(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        let (publisher, _) = self.open.as_ref().ok_or(ChannelError::Closed)?;
        publisher.publish(&framed(publisher, self.id, bytes)?)?;
        Ok(())
    }

    /// Receives the next message from another object, waiting as long as it takes.
    ///
    /// # Errors
    /// [`ChannelError::Closed`]; [`ChannelError::Recv`] with `Lagged(n)` when this object
    /// fell a ring behind under overwrite (it goes on from the oldest message kept), or
    /// `Corrupt`.
    ///
    /// # Example
    /// ```
    /// let name = format!("doc-recv-{}", std::process::id());
    /// let mut a = ringport::broadcast::BroadcastChannel::new(&name)?;
    /// let mut b = ringport::broadcast::BroadcastChannel::new(&name)?;
    /// std::thread::spawn(move || a.post_message(b"from a thread").unwrap());
    /// assert_eq!(b.recv()?, b"from a thread");
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn recv(&mut self) -> Result<&[u8], ChannelError> {
        self.recv_with(|s| s.recv().map(|m| m.len()))
    }

    /// Receives the next message from another object if one is ready now.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), and `Recv(Empty)`.
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::broadcast::BroadcastChannel::new("doc-try-recv")?;
    /// assert!(ch.try_recv().is_err());
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<&[u8], ChannelError> {
        self.recv_with(|s| s.try_recv().map(|m| m.len()))
    }

    /// Receives the next message from another object, waiting at most `timeout` (in
    /// total, however many of its own messages it skips).
    ///
    /// # Errors
    /// As [`recv`](Self::recv), and `Recv(Timeout)`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let mut ch = ringport::broadcast::BroadcastChannel::new("doc-recv-timeout")?;
    /// assert!(ch.recv_timeout(Duration::from_millis(1)).is_err());
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8], ChannelError> {
        let deadline = std::time::Instant::now().checked_add(timeout);
        self.recv_with(|s| {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(std::time::Instant::now())
            });
            s.recv_timeout(left).map(|m| m.len())
        })
    }

    /// Receives with `step` until a message from another object arrives, and lends its
    /// payload.
    fn recv_with(
        &mut self,
        step: impl FnMut(&mut Subscriber) -> Result<usize, RecvError>,
    ) -> Result<&[u8], ChannelError> {
        let (_, subscriber) = self.open.as_mut().ok_or(ChannelError::Closed)?;
        recv_from_others(self.id, subscriber, step)
    }

    /// Closes this object, like the web's `close()`: it receives nothing more, posting
    /// fails with [`ChannelError::Closed`], and if it was the ring's last user the name
    /// is removed. Dropping the object closes it.
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::broadcast::BroadcastChannel::new("doc-close")?;
    /// ch.close();
    /// assert!(ch.recv().is_err());
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn close(&mut self) {
        let Some((publisher, subscriber)) = self.open.take() else {
            return;
        };
        drop(subscriber);
        let core = publisher.core.clone();
        drop(publisher);
        leave_ring(&core);
    }

    /// Splits this object into a sending and a receiving half, so that one thread can
    /// wait for messages while others post. The halves act as the object did: messages
    /// posted through the sender never reach the receiver, and once both halves have
    /// dropped the object has left the channel (the last user removes the name).
    ///
    /// # Errors
    /// [`ChannelError::Closed`] if the object was closed.
    ///
    /// # Example
    /// ```
    /// use ringport::broadcast::BroadcastChannel;
    /// let name = format!("doc-split-{}", std::process::id());
    /// let (tx, mut rx) = BroadcastChannel::new(&name)?.split()?;
    /// let mut other = BroadcastChannel::new(&name)?;
    /// std::thread::spawn(move || tx.post_message(b"from the sending half").unwrap());
    /// assert_eq!(other.recv()?, b"from the sending half");
    /// other.post_message(b"reply")?;
    /// assert_eq!(rx.recv()?, b"reply");
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn split(mut self) -> Result<(ChannelSender, ChannelReceiver), ChannelError> {
        let (publisher, subscriber) = self.open.take().ok_or(ChannelError::Closed)?;
        let ring = std::sync::Arc::new(RingUse(publisher.core.clone()));
        Ok((
            ChannelSender {
                publisher,
                id: self.id,
                _ring: ring.clone(),
            },
            ChannelReceiver {
                subscriber,
                id: self.id,
                _ring: ring,
            },
        ))
    }
}

/// Leaves the ring of `core` once this object's publisher and subscriber have dropped:
/// if no publisher is left, removes the name (see the module's notes on joiners).
fn leave_ring(core: &super::Core) {
    let ctrl = core.mem.ctrl();
    // The total is exact unless a process died holding handles; then the records,
    // once the dead are reaped, decide.
    let nobody = |core: &super::Core| {
        ctrl.handles[PUBLISHERS].load(Ordering::Acquire) == 0 || {
            core.reap_all();
            !core.has_publishers()
        }
    };
    if !nobody(core) {
        return;
    }
    let flag = &ctrl.handles[CLOSING];
    if flag
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    // A joiner that registered before the flag went up is seen here; one that
    // registers after it sees the flag and starts over.
    if nobody(core) {
        if let Some(segment) = core.mem.segment() {
            segment.unlink_if_same();
        }
    } else {
        flag.store(0, Ordering::Release);
    }
}

impl Drop for BroadcastChannel {
    fn drop(&mut self) {
        self.close();
    }
}

fn closing(publisher: &Publisher) -> &AtomicU32 {
    &publisher.core.mem.ctrl().handles[CLOSING]
}

/// `bytes` behind this object's id, checked against the ring's maximum less the id.
fn framed(publisher: &Publisher, id: u64, bytes: &[u8]) -> Result<Vec<u8>, ChannelError> {
    let max = publisher.max_message() - ID_LEN;
    if bytes.len() > max {
        return Err(SendError::TooLarge {
            len: bytes.len(),
            max,
        }
        .into());
    }
    let mut message = Vec::with_capacity(ID_LEN + bytes.len());
    message.extend_from_slice(&id.to_le_bytes());
    message.extend_from_slice(bytes);
    Ok(message)
}

/// Receives with `step` until a message from an object other than `id` arrives, and
/// lends its payload.
fn recv_from_others(
    id: u64,
    subscriber: &mut Subscriber,
    mut step: impl FnMut(&mut Subscriber) -> Result<usize, RecvError>,
) -> Result<&[u8], ChannelError> {
    loop {
        step(subscriber)?;
        let message = subscriber.buf.as_slice();
        // A message too short for a sender id came from no channel object: skip it.
        let Some((sender, _)) = message.split_first_chunk::<ID_LEN>() else {
            continue;
        };
        if u64::from_le_bytes(*sender) != id {
            break;
        }
    }
    Ok(&subscriber.buf[ID_LEN..])
}

/// The ring that the halves of a split object share: when the second half drops (after
/// its publisher or subscriber, declared before it), the object leaves the ring.
struct RingUse(super::Core);

impl Drop for RingUse {
    fn drop(&mut self) {
        leave_ring(&self.0);
    }
}

/// The sending half of a [`BroadcastChannel`] made by [`split`](BroadcastChannel::split).
/// It posts through `&self`, so threads can share it.
///
/// # Example
/// ```
/// use ringport::broadcast::BroadcastChannel;
/// let name = format!("doc-sender-{}", std::process::id());
/// let (tx, _rx) = BroadcastChannel::new(&name)?.split()?;
/// let mut other = BroadcastChannel::new(&name)?;
/// std::thread::scope(|s| {
///     s.spawn(|| tx.post_message(b"one").unwrap());
///     s.spawn(|| tx.post_message(b"two").unwrap());
/// });
/// let mut got = [other.recv()?.to_vec(), other.recv()?.to_vec()];
/// got.sort();
/// assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
/// # Ok::<(), ringport::broadcast::ChannelError>(())
/// ```
pub struct ChannelSender {
    publisher: Publisher,
    id: u64,
    _ring: std::sync::Arc<RingUse>,
}

impl std::fmt::Debug for ChannelSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSender").finish_non_exhaustive()
    }
}

impl ChannelSender {
    /// The longest message this half posts: the ring's maximum less the 8-byte id.
    ///
    /// # Example
    /// ```
    /// let name = format!("doc-sender-max-{}", std::process::id());
    /// let (tx, _rx) = ringport::broadcast::BroadcastChannel::new(&name)?.split()?;
    /// assert_eq!(tx.max_message(), 4096);
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn max_message(&self) -> usize {
        self.publisher.max_message() - ID_LEN
    }

    /// As [`BroadcastChannel::post_message`].
    ///
    /// # Errors
    /// [`ChannelError::Send`] with `TooLarge`, or under backpressure whatever waiting for
    /// the slowest subscriber gives.
    ///
    /// # Example
    /// ```
    /// let name = format!("doc-sender-post-{}", std::process::id());
    /// let (tx, _rx) = ringport::broadcast::BroadcastChannel::new(&name)?.split()?;
    /// tx.post_message(b"to nobody")?;
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn post_message(&self, bytes: &[u8]) -> Result<(), ChannelError> {
        self.publisher
            .publish(&framed(&self.publisher, self.id, bytes)?)?;
        Ok(())
    }

    /// Posts `bytes` if it can without waiting (it always can under overwrite).
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message), and `Send(Full)` under backpressure when
    /// the slowest subscriber is a ring behind.
    ///
    /// # Example
    /// ```
    /// let name = format!("doc-sender-try-{}", std::process::id());
    /// let (tx, _rx) = ringport::broadcast::BroadcastChannel::new(&name)?.split()?;
    /// tx.try_post_message(b"now")?;
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn try_post_message(&self, bytes: &[u8]) -> Result<(), ChannelError> {
        self.publisher
            .try_publish(&framed(&self.publisher, self.id, bytes)?)?;
        Ok(())
    }

    /// Posts `bytes`, waiting at most `timeout` for room (backpressure only).
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message), and `Send(Timeout)`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let name = format!("doc-sender-timeout-{}", std::process::id());
    /// let (tx, _rx) = ringport::broadcast::BroadcastChannel::new(&name)?.split()?;
    /// tx.post_message_timeout(b"soon", Duration::from_secs(1))?;
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn post_message_timeout(
        &self,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), ChannelError> {
        self.publisher
            .publish_timeout(&framed(&self.publisher, self.id, bytes)?, timeout)?;
        Ok(())
    }
}

/// The receiving half of a [`BroadcastChannel`] made by
/// [`split`](BroadcastChannel::split): it receives what other objects post, never what
/// its own sending half posts.
///
/// # Example
/// ```
/// use ringport::broadcast::BroadcastChannel;
/// let name = format!("doc-receiver-{}", std::process::id());
/// let (tx, mut rx) = BroadcastChannel::new(&name)?.split()?;
/// let mut other = BroadcastChannel::new(&name)?;
/// tx.post_message(b"mine")?;
/// other.post_message(b"theirs")?;
/// assert_eq!(rx.recv()?, b"theirs");
/// # Ok::<(), ringport::broadcast::ChannelError>(())
/// ```
pub struct ChannelReceiver {
    subscriber: Subscriber,
    id: u64,
    _ring: std::sync::Arc<RingUse>,
}

impl std::fmt::Debug for ChannelReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelReceiver").finish_non_exhaustive()
    }
}

impl ChannelReceiver {
    /// As [`BroadcastChannel::recv`].
    ///
    /// # Errors
    /// [`ChannelError::Recv`] with `Lagged(n)` under overwrite, `Corrupt`.
    ///
    /// # Example
    /// ```
    /// let name = format!("doc-receiver-recv-{}", std::process::id());
    /// let (_tx, mut rx) = ringport::broadcast::BroadcastChannel::new(&name)?.split()?;
    /// let mut other = ringport::broadcast::BroadcastChannel::new(&name)?;
    /// other.post_message(b"x")?;
    /// assert_eq!(rx.recv()?, b"x");
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn recv(&mut self) -> Result<&[u8], ChannelError> {
        recv_from_others(self.id, &mut self.subscriber, |s| s.recv().map(|m| m.len()))
    }

    /// As [`BroadcastChannel::try_recv`].
    ///
    /// # Errors
    /// As [`recv`](Self::recv), and `Recv(Empty)`.
    ///
    /// # Example
    /// ```
    /// let name = format!("doc-receiver-try-{}", std::process::id());
    /// let (_tx, mut rx) = ringport::broadcast::BroadcastChannel::new(&name)?.split()?;
    /// assert!(rx.try_recv().is_err());
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<&[u8], ChannelError> {
        recv_from_others(self.id, &mut self.subscriber, |s| {
            s.try_recv().map(|m| m.len())
        })
    }

    /// As [`BroadcastChannel::recv_timeout`].
    ///
    /// # Errors
    /// As [`recv`](Self::recv), and `Recv(Timeout)`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let name = format!("doc-receiver-timeout-{}", std::process::id());
    /// let (_tx, mut rx) = ringport::broadcast::BroadcastChannel::new(&name)?.split()?;
    /// assert!(rx.recv_timeout(Duration::from_millis(1)).is_err());
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8], ChannelError> {
        let deadline = std::time::Instant::now().checked_add(timeout);
        recv_from_others(self.id, &mut self.subscriber, |s| {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(std::time::Instant::now())
            });
            s.recv_timeout(left).map(|m| m.len())
        })
    }
}
