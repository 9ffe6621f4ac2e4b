//! Typed messages: Rust values instead of byte frames.
//!
//! Two ways to carry a value, for two situations:
//!
//! - **Serialised**, with the `serde` feature (on by default): any
//!   `T: Serialize + DeserializeOwned` over a port ([`TypedPort`], [`typed_channel`]) or a
//!   broadcast channel ([`TypedBroadcastChannel`]), on the heap or between processes.
//!   The codec is [postcard](https://docs.rs/postcard): compact (varints, no field names,
//!   no padding), stable across its 1.x releases, and strict about what it accepts. A
//!   message is one frame holding exactly one encoded value; [`encode`] and [`decode`]
//!   are the codec on its own.
//! - **Moved**, in one process: [`local`] channels carry any `T: Send` by moving a box,
//!   with no serialisation at all, so values serde cannot describe travel too (closures,
//!   channels, file handles).
//!
//! # Bytes from another process
//!
//! A port's peer may be another process, buggy or hostile. Decoding what it wrote is
//! safe: malformed input, a value followed by stray bytes, or a frame of another type
//! gives [`TypedError::Decode`], never a panic or undefined behaviour, and the port goes
//! on with the next message. A frame in shared memory is copied out before it is
//! decoded, so a peer that rewrites a frame it already sent cannot change bytes between
//! their validation and their use. A length inside a message reserves at most 1 MiB per
//! collection before the bytes that back it have been read (serde's cautious
//! preallocation), so a short frame claiming a huge vector costs little. A message type
//! that nests recursively (a tree of enums) nests as deep as a frame's bytes allow, and
//! the decoder recurses as deep: receive such types from trusted peers, or over ports
//! with small frames.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use ringport::typed::typed_channel;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! enum Job {
//!     Double(u64),
//!     Greet { name: String },
//! }
//!
//! let (mut main, mut worker) = typed_channel::<Job>();
//! main.post(&Job::Greet { name: "web".into() }).unwrap();
//! assert_eq!(worker.recv().unwrap(), Job::Greet { name: "web".into() });
//! # }
//! ```

#[cfg(feature = "serde")]
mod broadcast;
#[cfg(feature = "serde")]
mod codec;
mod local;
#[cfg(feature = "serde")]
mod port;

#[cfg(feature = "serde")]
pub use broadcast::TypedBroadcastChannel;
#[cfg(feature = "serde")]
pub use codec::{decode, encode, DecodeError};
pub use local::{local, LocalReceiver, LocalSendError, LocalSender};
#[cfg(feature = "serde")]
pub use port::{typed_channel, TypedPort};

#[cfg(feature = "serde")]
use crate::broadcast::ChannelError;
#[cfg(feature = "serde")]
use crate::error::{RecvError, SendError};

/// Why a typed message was not sent or received.
///
/// # Example
/// ```
/// use ringport::typed::{typed_channel, TypedError};
/// use ringport::SendError;
///
/// let (mut a, _b) = typed_channel::<Vec<u8>>();
/// let max = a.max_frame();
/// let err = a.post(&vec![0; max]).unwrap_err(); // the length prefix makes it too long
/// assert!(matches!(err, TypedError::Send(SendError::TooLarge { .. })));
/// ```
#[cfg(feature = "serde")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedError {
    /// The value's `Serialize` implementation failed (a custom error, or a sequence of
    /// unknown length). Nothing was sent.
    #[error("could not encode the message: {0}")]
    Encode(#[source] postcard::Error),
    /// A message arrived that is not an encoded `T`; it was consumed, and the next
    /// receive goes on with the message after it.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Sending failed as for byte frames: `TooLarge` (the encoding exceeds the port's
    /// or ring's maximum), `Full`, `Timeout`, `Disconnected`, `PeerDied`, `Corrupt`.
    #[error(transparent)]
    Send(#[from] SendError),
    /// Receiving failed as for byte frames: `Empty`, `Timeout`, `Disconnected`,
    /// `PeerDied`, `Lagged`, `Corrupt`.
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// A broadcast channel refused for a reason of its own: closed, no subscriber slot
    /// left, or its segment. (Its send and receive failures are `Send` and `Recv`.)
    #[error(transparent)]
    Channel(ChannelError),
}
