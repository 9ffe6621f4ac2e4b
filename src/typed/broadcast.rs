//! `TypedBroadcastChannel`: a [`BroadcastChannel`] that carries values of one type.

use super::codec::{decode, encode_frame};
use super::TypedError;
use crate::broadcast::{BroadcastChannel, BroadcastOptions, ChannelError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::time::Duration;

/// A named channel to every other channel object with the same name, in any thread or
/// process, carrying `T`s: the web's `BroadcastChannel` with structured values.
///
/// Each message is one encoded value. A broadcast subscriber receives a private copy of
/// every message (it must, to detect a publisher overwriting the slot), so values are
/// decoded from that copy.
///
/// # Example
/// ```
/// use ringport::typed::TypedBroadcastChannel;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Presence { user: String, online: bool }
///
/// let name = format!("doc-typed-broadcast-{}", std::process::id());
/// let mut a = TypedBroadcastChannel::<Presence>::new(&name)?;
/// let mut b = TypedBroadcastChannel::<Presence>::new(&name)?; // usually another process
/// a.post_message(&Presence { user: "ada".into(), online: true })?;
/// assert_eq!(b.recv()?, Presence { user: "ada".into(), online: true });
/// # Ok::<(), ringport::typed::TypedError>(())
/// ```
pub struct TypedBroadcastChannel<T> {
    channel: BroadcastChannel,
    /// Encodings on the way out.
    buf: Vec<u8>,
    // Values cross as bytes, never as `T`: the channel is Send and Sync whatever `T` is.
    _t: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for TypedBroadcastChannel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypedBroadcastChannel")
            .field(&self.channel)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> TypedBroadcastChannel<T> {
    /// Joins the channel `name`, as [`BroadcastChannel::new`].
    ///
    /// # Errors
    /// As [`BroadcastChannel::new`], as [`TypedError::Channel`].
    ///
    /// # Example
    /// ```
    /// let ch = ringport::typed::TypedBroadcastChannel::<u32>::new("doc-typed-new")?;
    /// assert_eq!(ch.name(), "doc-typed-new");
    /// # Ok::<(), ringport::typed::TypedError>(())
    /// ```
    pub fn new(name: &str) -> Result<Self, TypedError> {
        Ok(BroadcastChannel::new(name)?.into())
    }

    /// Joins the channel `name` in `namespace`, as [`BroadcastChannel::with_options`].
    ///
    /// # Errors
    /// As [`BroadcastChannel::with_options`], as [`TypedError::Channel`].
    ///
    /// # Example
    /// ```
    /// use ringport::broadcast::{BroadcastOptions, Overflow};
    /// use ringport::typed::TypedBroadcastChannel;
    /// let opts = BroadcastOptions { overflow: Overflow::Backpressure, ..Default::default() };
    /// let name = format!("doc-typed-options-{}", std::process::id());
    /// let mut a = TypedBroadcastChannel::<i8>::with_options("tests", &name, opts)?;
    /// let mut b = TypedBroadcastChannel::<i8>::with_options("tests", &name, opts)?;
    /// a.post_message(&-3)?;
    /// assert_eq!(b.recv()?, -3);
    /// # Ok::<(), ringport::typed::TypedError>(())
    /// ```
    pub fn with_options(
        namespace: &str,
        name: &str,
        options: BroadcastOptions,
    ) -> Result<Self, TypedError> {
        Ok(BroadcastChannel::with_options(namespace, name, options)?.into())
    }

    /// The channel's name.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::typed::TypedBroadcastChannel::<()>::new("doc-typed-name")?;
    /// assert_eq!(ch.name(), "doc-typed-name");
    /// # Ok::<(), ringport::typed::TypedError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.channel.name()
    }

    /// Sends `value` to every other open channel object with this name.
    ///
    /// # Errors
    /// [`TypedError::Encode`]; [`TypedError::Channel`] with `Closed` after
    /// [`close`](Self::close); [`TypedError::Send`] with `TooLarge` for an encoding over
    /// the ring's maximum message (less 8 bytes), or under backpressure whatever waiting
    /// for the slowest subscriber gives.
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::typed::TypedBroadcastChannel::<String>::new("doc-typed-post")?;
    /// ch.post_message(&"anyone there?".into())?; // nobody else listens: dropped
    /// # Ok::<(), ringport::typed::TypedError>(())
    /// ```
    pub fn post_message(&mut self, value: &T) -> Result<(), TypedError> {
        // The ring checks the length; its maximum is a few KiB, so encoding a value that
        // is too long costs little.
        encode_frame(value, &mut self.buf, usize::MAX)?;
        Ok(self.channel.post_message(&self.buf)?)
    }

    /// Receives the next value from another object, waiting as long as it takes.
    ///
    /// # Errors
    /// [`TypedError::Channel`] with `Closed`; [`TypedError::Recv`] with `Lagged(n)` when
    /// this object fell a ring behind (it goes on from the oldest message kept), or
    /// `Corrupt`; [`TypedError::Decode`] for a message that is not an encoded `T` (it is
    /// consumed).
    ///
    /// # Example
    /// ```
    /// use ringport::typed::TypedBroadcastChannel;
    /// let name = format!("doc-typed-recv-{}", std::process::id());
    /// let mut a = TypedBroadcastChannel::<Vec<u8>>::new(&name)?;
    /// let mut b = TypedBroadcastChannel::<Vec<u8>>::new(&name)?;
    /// std::thread::spawn(move || a.post_message(&vec![1, 2]).unwrap());
    /// assert_eq!(b.recv()?, [1, 2]);
    /// # Ok::<(), ringport::typed::TypedError>(())
    /// ```
    pub fn recv(&mut self) -> Result<T, TypedError> {
        Ok(decode(self.channel.recv()?)?)
    }

    /// Receives the next value from another object if one is ready now.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), and `Recv(Empty)`.
    ///
    /// # Example
    /// ```
    /// use ringport::{typed::{TypedBroadcastChannel, TypedError}, RecvError};
    /// let mut ch = TypedBroadcastChannel::<u8>::new("doc-typed-try-recv")?;
    /// assert!(matches!(ch.try_recv(), Err(TypedError::Recv(RecvError::Empty))));
    /// # Ok::<(), TypedError>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TypedError> {
        Ok(decode(self.channel.try_recv()?)?)
    }

    /// Receives the next value from another object, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), and `Recv(Timeout)`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use ringport::{typed::{TypedBroadcastChannel, TypedError}, RecvError};
    /// let mut ch = TypedBroadcastChannel::<u8>::new("doc-typed-recv-timeout")?;
    /// let r = ch.recv_timeout(Duration::from_millis(1));
    /// assert!(matches!(r, Err(TypedError::Recv(RecvError::Timeout))));
    /// # Ok::<(), TypedError>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, TypedError> {
        Ok(decode(self.channel.recv_timeout(timeout)?)?)
    }

    /// Closes this object, as [`BroadcastChannel::close`]; dropping it does the same.
    ///
    /// # Example
    /// ```
    /// use ringport::broadcast::ChannelError;
    /// use ringport::typed::{TypedBroadcastChannel, TypedError};
    /// let mut ch = TypedBroadcastChannel::<u8>::new("doc-typed-close")?;
    /// ch.close();
    /// assert!(matches!(ch.post_message(&1), Err(TypedError::Channel(ChannelError::Closed))));
    /// # Ok::<(), TypedError>(())
    /// ```
    pub fn close(&mut self) {
        self.channel.close();
    }

    /// The byte channel underneath.
    ///
    /// # Example
    /// ```
    /// use ringport::typed::TypedBroadcastChannel;
    /// let name = format!("doc-typed-into-inner-{}", std::process::id());
    /// let mut raw = TypedBroadcastChannel::<u8>::new(&name)?.into_inner();
    /// let mut typed = TypedBroadcastChannel::<u8>::new(&name)?;
    /// raw.post_message(&[42]).unwrap();
    /// assert_eq!(typed.recv()?, 42);
    /// # Ok::<(), ringport::typed::TypedError>(())
    /// ```
    pub fn into_inner(self) -> BroadcastChannel {
        self.channel
    }
}

impl<T: Serialize + DeserializeOwned> From<BroadcastChannel> for TypedBroadcastChannel<T> {
    fn from(channel: BroadcastChannel) -> Self {
        TypedBroadcastChannel {
            channel,
            buf: Vec::new(),
            _t: PhantomData,
        }
    }
}

impl From<ChannelError> for TypedError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Send(e) => TypedError::Send(e),
            ChannelError::Recv(e) => TypedError::Recv(e),
            other => TypedError::Channel(other),
        }
    }
}
