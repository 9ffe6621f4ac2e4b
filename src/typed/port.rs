//! `TypedPort`: a [`MessagePort`] that carries values of one type.

use super::codec::{decode, encode_frame};
use super::{DecodeError, TypedError};
use crate::port::{MessageChannel, MessagePort};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::time::Duration;

/// A port that sends and receives `T`s, one encoded value per frame, over a heap or a
/// named [`MessagePort`].
///
/// Sending encodes into a buffer the port keeps, so a steady stream allocates nothing
/// for its frames. Receiving decodes the frame where it lies in a heap channel; from a
/// named channel, whose memory another process can write, it first copies the frame
/// into that buffer, so that a peer rewriting a frame it already sent cannot change
/// bytes between their validation and their use (a string checked as UTF-8, then
/// copied, for one).
///
/// # Example
/// ```
/// use ringport::typed::TypedPort;
/// use ringport::MessageChannel;
///
/// let name = format!("doc-typed-port-{}", std::process::id());
/// let mut a = TypedPort::<(u32, String)>::new(MessageChannel::create(&name, 4096)?);
/// let mut b = TypedPort::<(u32, String)>::new(MessageChannel::open(&name)?); // another process
/// a.post(&(7, "seven".into()))?;
/// assert_eq!(b.recv()?, (7, "seven".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedPort<T> {
    port: MessagePort,
    /// Encodings on the way out; copies of shared frames on the way in.
    buf: Vec<u8>,
    /// Whether another process may write the frames this port receives.
    shared: bool,
    // Values cross as bytes, never as `T`: the port is Send and Sync whatever `T` is.
    _t: PhantomData<fn(T) -> T>,
}

/// Two entangled typed ports in this process, each way with
/// [`DEFAULT_FRAME_CAPACITY`](crate::DEFAULT_FRAME_CAPACITY) bytes of frames. For
/// another capacity, or between processes, wrap the ports of a [`MessageChannel`] with
/// [`TypedPort::new`].
///
/// # Example
/// ```
/// let (mut main, mut worker) = ringport::typed::typed_channel::<Vec<u64>>();
/// let t = std::thread::spawn(move || {
///     while let Ok(v) = worker.recv() {
///         worker.post(&v.iter().map(|x| x * 2).collect()).unwrap();
///     }
/// });
/// main.post(&vec![1, 2, 3]).unwrap();
/// assert_eq!(main.recv().unwrap(), [2, 4, 6]);
/// drop(main);
/// t.join().unwrap();
/// ```
pub fn typed_channel<T: Serialize + DeserializeOwned>() -> (TypedPort<T>, TypedPort<T>) {
    let ch = MessageChannel::new();
    (TypedPort::new(ch.port1), TypedPort::new(ch.port2))
}

impl<T: Serialize + DeserializeOwned> TypedPort<T> {
    /// Carries `T`s over `port`, heap or named; its peer should carry `T`s too.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::with_capacity(1 << 20);
    /// let big = ringport::typed::TypedPort::<String>::new(ch.port1);
    /// assert!(big.max_frame() > 400_000);
    /// ```
    pub fn new(port: MessagePort) -> Self {
        let shared = port.is_named();
        TypedPort {
            port,
            buf: Vec::new(),
            shared,
            _t: PhantomData,
        }
    }

    /// The longest encoding this port sends, in bytes.
    ///
    /// # Example
    /// ```
    /// let (a, _b) = ringport::typed::typed_channel::<u8>();
    /// assert_eq!(a.max_frame(), ringport::MessageChannel::new().port1.max_frame());
    /// ```
    pub fn max_frame(&self) -> usize {
        self.port.max_frame()
    }

    /// Sends `value`, waiting while the channel is full.
    ///
    /// # Errors
    /// [`TypedError::Encode`]; [`TypedError::Send`] with `TooLarge` (the encoding exceeds
    /// [`max_frame`](Self::max_frame)), `Disconnected`, `PeerDied` or `Corrupt`.
    ///
    /// # Example
    /// ```
    /// let (mut a, mut b) = ringport::typed::typed_channel::<Option<i64>>();
    /// a.post(&Some(-1)).unwrap();
    /// assert_eq!(b.recv().unwrap(), Some(-1));
    /// ```
    pub fn post(&mut self, value: &T) -> Result<(), TypedError> {
        encode_frame(value, &mut self.buf, self.port.max_frame())?;
        Ok(self.port.post_message(&self.buf)?)
    }

    /// Sends `value` if there is room, without waiting.
    ///
    /// # Errors
    /// As [`post`](Self::post), plus `Send(Full)`.
    ///
    /// # Example
    /// ```
    /// use ringport::{typed::{TypedError, TypedPort}, MessageChannel, SendError};
    /// let ch = MessageChannel::with_capacity(128);
    /// let (mut a, _b) = (TypedPort::<[u64; 4]>::new(ch.port1), ch.port2);
    /// while a.try_post(&[u64::MAX; 4]).is_ok() {}
    /// assert!(matches!(a.try_post(&[u64::MAX; 4]), Err(TypedError::Send(SendError::Full))));
    /// ```
    pub fn try_post(&mut self, value: &T) -> Result<(), TypedError> {
        encode_frame(value, &mut self.buf, self.port.max_frame())?;
        Ok(self.port.try_post_message(&self.buf)?)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`post`](Self::post), plus `Send(Timeout)`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let (mut a, _b) = ringport::typed::typed_channel::<String>();
    /// a.post_timeout(&"soon".into(), Duration::from_secs(1)).unwrap();
    /// ```
    pub fn post_timeout(&mut self, value: &T, timeout: Duration) -> Result<(), TypedError> {
        encode_frame(value, &mut self.buf, self.port.max_frame())?;
        Ok(self.port.post_message_timeout(&self.buf, timeout)?)
    }

    /// Waits for the next message and decodes it.
    ///
    /// # Errors
    /// [`TypedError::Recv`] with `Disconnected` once the peer closed and everything it
    /// sent was received, `PeerDied` or `Corrupt`; [`TypedError::Decode`] for a message
    /// that is not an encoded `T` (it is consumed: the next call goes on after it).
    ///
    /// # Example
    /// ```
    /// use ringport::typed::{TypedError, TypedPort};
    /// let ch = ringport::MessageChannel::new();
    /// let (mut raw, mut typed) = (ch.port1, TypedPort::<bool>::new(ch.port2));
    /// raw.post_message(&[2]).unwrap(); // not a bool
    /// raw.post_message(&[1]).unwrap();
    /// assert!(matches!(typed.recv(), Err(TypedError::Decode(_))));
    /// assert!(typed.recv().unwrap());
    /// ```
    pub fn recv(&mut self) -> Result<T, TypedError> {
        let frame = self.port.recv()?;
        Ok(decode_from(&frame, self.shared, &mut self.buf)?)
    }

    /// The next message if one is waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus `Recv(Empty)`.
    ///
    /// # Example
    /// ```
    /// use ringport::{typed::TypedError, RecvError};
    /// let (_a, mut b) = ringport::typed::typed_channel::<u8>();
    /// assert!(matches!(b.try_recv(), Err(TypedError::Recv(RecvError::Empty))));
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TypedError> {
        let frame = self.port.try_recv()?;
        Ok(decode_from(&frame, self.shared, &mut self.buf)?)
    }

    /// Waits at most `timeout` for the next message.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus `Recv(Timeout)`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use ringport::{typed::TypedError, RecvError};
    /// let (_a, mut b) = ringport::typed::typed_channel::<u8>();
    /// let r = b.recv_timeout(Duration::from_millis(1));
    /// assert!(matches!(r, Err(TypedError::Recv(RecvError::Timeout))));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, TypedError> {
        let frame = self.port.recv_timeout(timeout)?;
        Ok(decode_from(&frame, self.shared, &mut self.buf)?)
    }

    /// The byte-frame port underneath, for its batches, its spin budget, a transfer
    /// list, or another message type.
    ///
    /// # Example
    /// ```
    /// let (a, mut b) = ringport::typed::typed_channel::<u16>();
    /// let mut raw = a.into_inner();
    /// raw.post_message(&[0xff, 0x03]).unwrap(); // the varint 511
    /// assert_eq!(b.recv().unwrap(), 511);
    /// ```
    pub fn into_inner(self) -> MessagePort {
        self.port
    }
}

impl<T: Serialize + DeserializeOwned> From<MessagePort> for TypedPort<T> {
    fn from(port: MessagePort) -> Self {
        TypedPort::new(port)
    }
}

/// Decodes `frame`: in place, or from a private copy in `scratch` when another process
/// can write it.
fn decode_from<T: DeserializeOwned>(
    frame: &[u8],
    shared: bool,
    scratch: &mut Vec<u8>,
) -> Result<T, DecodeError> {
    if !shared {
        return decode(frame);
    }
    scratch.clear();
    scratch.extend_from_slice(frame);
    decode(scratch)
}
