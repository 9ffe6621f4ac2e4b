//! The wire format of [`CommunicationManager`](super::CommunicationManager) messages: a
//! versioned, compact binary envelope around a payload.
//!
//! ```text
//! offset  size  field
//!      0     1  version (1)
//!      1     1  kind: 1 request, 2 response, 3 error, 4 no handler, 5 notification
//!      2     1  type length n (0..=255)
//!      3     4  payload length m, little-endian
//!      7     8  correlation id, little-endian
//!     15     n  type, UTF-8
//!   15+n     m  payload
//! ```
//!
//! The payload's length is stated, not implied by the frame's end, so a frame cut short
//! or padded is caught ([`DecodeError::Truncated`], [`DecodeError::Trailing`]) instead of
//! delivering a wrong payload. Every valid envelope has exactly one encoding:
//! `encode(decode(bytes)) == bytes` whenever `decode` succeeds.
//!
//! Frames come from other processes, so [`decode`] treats them as untrusted: it checks
//! every length against the bytes present, never panics and never allocates.
//!
//! # Example
//! ```
//! use ringport::rpc::envelope::{decode, Envelope, Kind};
//!
//! let request = Envelope { kind: Kind::Request, id: 7, ty: "sum", payload: &[1, 2] };
//! let bytes = request.to_vec()?;
//! assert_eq!(bytes.len(), request.encoded_len());
//! assert_eq!(decode(&bytes), Ok(request));
//! # Ok::<(), ringport::rpc::envelope::EncodeError>(())
//! ```

use thiserror::Error;

/// The format version this module writes and reads.
pub const VERSION: u8 = 1;
/// Bytes in front of the type: version, kind, type length, payload length, id.
pub const HEADER_LEN: usize = 15;
/// The longest type in bytes.
pub const MAX_TYPE_LEN: usize = u8::MAX as usize;

/// What an envelope is.
///
/// # Example
/// ```
/// use ringport::rpc::envelope::Kind;
/// assert_eq!(Kind::from_tag(Kind::Error.tag()), Some(Kind::Error));
/// assert_eq!(Kind::from_tag(0), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Asks the handler of its type for a response with the same id.
    Request,
    /// A handler's answer; the payload is the response.
    Response,
    /// A handler's failure; the payload is its message in UTF-8.
    Error,
    /// The receiver has no handler for the request's type.
    NoHandler,
    /// A notification for the listeners of its type, which expects no answer.
    Notify,
}

impl Kind {
    /// The kind's byte on the wire.
    ///
    /// # Example
    /// ```
    /// assert_eq!(ringport::rpc::envelope::Kind::Request.tag(), 1);
    /// ```
    pub fn tag(self) -> u8 {
        match self {
            Kind::Request => 1,
            Kind::Response => 2,
            Kind::Error => 3,
            Kind::NoHandler => 4,
            Kind::Notify => 5,
        }
    }

    /// The kind of a byte on the wire, if it names one.
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::envelope::Kind;
    /// assert_eq!(Kind::from_tag(5), Some(Kind::Notify));
    /// ```
    pub fn from_tag(tag: u8) -> Option<Kind> {
        Some(match tag {
            1 => Kind::Request,
            2 => Kind::Response,
            3 => Kind::Error,
            4 => Kind::NoHandler,
            5 => Kind::Notify,
            _ => return None,
        })
    }
}

/// One message: its kind, correlation id, type and payload, borrowed from the bytes it
/// was decoded from (or from the caller, to encode).
///
/// # Example
/// ```
/// use ringport::rpc::envelope::{Envelope, Kind};
/// let e = Envelope { kind: Kind::Notify, id: 0, ty: "tick", payload: b"" };
/// assert_eq!(e.encoded_len(), 15 + 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Envelope<'a> {
    /// What the envelope is.
    pub kind: Kind,
    /// Pairs a response with its request; unique among a requester's pending requests.
    pub id: u64,
    /// The message type handlers and listeners register for; at most
    /// [`MAX_TYPE_LEN`] bytes.
    pub ty: &'a str,
    /// The message itself.
    pub payload: &'a [u8],
}

/// Why an envelope cannot be encoded.
///
/// # Example
/// ```
/// use ringport::rpc::envelope::{EncodeError, Envelope, Kind};
/// let ty = "t".repeat(256);
/// let e = Envelope { kind: Kind::Request, id: 1, ty: &ty, payload: b"" };
/// assert_eq!(e.to_vec(), Err(EncodeError::TypeTooLong { len: 256 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The type is longer than [`MAX_TYPE_LEN`] bytes.
    #[error("message type of {len} bytes exceeds the maximum of {MAX_TYPE_LEN}")]
    TypeTooLong {
        /// The type's length in bytes.
        len: usize,
    },
    /// The payload is longer than a 32-bit length can state.
    #[error("payload of {len} bytes exceeds the envelope's maximum of 4 GiB - 1")]
    PayloadTooLong {
        /// The payload's length in bytes.
        len: usize,
    },
}

/// Why bytes are not an envelope.
///
/// # Example
/// ```
/// use ringport::rpc::envelope::{decode, DecodeError};
/// assert_eq!(decode(&[]), Err(DecodeError::Truncated { len: 0, need: 15 }));
/// assert_eq!(decode(&[9; 15]), Err(DecodeError::Version { found: 9 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header or its stated lengths need.
    #[error("envelope of {len} bytes is truncated: it needs {need}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: u64,
    },
    /// Bytes after the stated payload.
    #[error("{extra} bytes follow the envelope's payload")]
    Trailing {
        /// How many.
        extra: usize,
    },
    /// A format version this build does not read.
    #[error("envelope version {found}, this build reads version {VERSION}")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// A kind byte that names no kind.
    #[error("unknown envelope kind {tag}")]
    Tag {
        /// The byte found.
        tag: u8,
    },
    /// The type is not UTF-8.
    #[error("the message type is not UTF-8 (valid up to byte {valid_up_to})")]
    TypeUtf8 {
        /// The length of its valid prefix.
        valid_up_to: usize,
    },
}

impl Envelope<'_> {
    /// The length of the envelope's encoding.
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::envelope::{Envelope, Kind, HEADER_LEN};
    /// let e = Envelope { kind: Kind::Response, id: 3, ty: "sum", payload: &[0; 10] };
    /// assert_eq!(e.encoded_len(), HEADER_LEN + 3 + 10);
    /// ```
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.ty.len() + self.payload.len()
    }

    /// Appends the envelope's encoding to `out`.
    ///
    /// # Errors
    /// [`EncodeError::TypeTooLong`], [`EncodeError::PayloadTooLong`]; `out` is unchanged.
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::envelope::{Envelope, Kind};
    /// let mut out = Vec::new();
    /// Envelope { kind: Kind::Request, id: 1, ty: "a", payload: b"x" }.encode(&mut out)?;
    /// assert_eq!(out[..3], [1, 1, 1]); // version, kind, type length
    /// # Ok::<(), ringport::rpc::envelope::EncodeError>(())
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let ty_len = u8::try_from(self.ty.len())
            .map_err(|_| EncodeError::TypeTooLong { len: self.ty.len() })?;
        let payload_len =
            u32::try_from(self.payload.len()).map_err(|_| EncodeError::PayloadTooLong {
                len: self.payload.len(),
            })?;
        out.reserve(self.encoded_len());
        out.extend_from_slice(&[VERSION, self.kind.tag(), ty_len]);
        out.extend_from_slice(&payload_len.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(self.ty.as_bytes());
        out.extend_from_slice(self.payload);
        Ok(())
    }

    /// The envelope's encoding in a new vector.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::envelope::{decode, Envelope, Kind};
    /// let e = Envelope { kind: Kind::Notify, id: 0, ty: "news", payload: b"hi" };
    /// assert_eq!(decode(&e.to_vec()?)?, e);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// Reads the envelope that `bytes` hold, exactly: no byte missing, none left over.
///
/// # Errors
/// [`DecodeError`]: `Truncated`, `Trailing`, `Version`, `Tag`, `TypeUtf8`.
///
/// # Example
/// ```
/// use ringport::rpc::envelope::{decode, DecodeError, Envelope, Kind};
/// let mut bytes = Envelope { kind: Kind::Request, id: 9, ty: "t", payload: b"p" }.to_vec()?;
/// assert_eq!(decode(&bytes)?.payload, b"p");
/// bytes.push(0);
/// assert_eq!(decode(&bytes), Err(DecodeError::Trailing { extra: 1 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let Some((header, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            need: HEADER_LEN as u64,
        });
    };
    if header[0] != VERSION {
        return Err(DecodeError::Version { found: header[0] });
    }
    let kind = Kind::from_tag(header[1]).ok_or(DecodeError::Tag { tag: header[1] })?;
    let ty_len = usize::from(header[2]);
    let payload_len = u32::from_le_bytes([header[3], header[4], header[5], header[6]]);
    let mut id = [0; 8];
    id.copy_from_slice(&header[7..]);
    // In u64, so that a huge stated length cannot overflow on any target.
    let need = (HEADER_LEN + ty_len) as u64 + u64::from(payload_len);
    let body = (ty_len as u64) + u64::from(payload_len);
    if (rest.len() as u64) < body {
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            need,
        });
    }
    if (rest.len() as u64) > body {
        return Err(DecodeError::Trailing {
            extra: (rest.len() as u64 - body) as usize,
        });
    }
    let (ty, payload) = rest.split_at(ty_len);
    let ty = std::str::from_utf8(ty).map_err(|e| DecodeError::TypeUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    Ok(Envelope {
        kind,
        id: u64::from_le_bytes(id),
        ty,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [Kind; 5] = [
        Kind::Request,
        Kind::Response,
        Kind::Error,
        Kind::NoHandler,
        Kind::Notify,
    ];

    #[test]
    fn every_kind_round_trips_and_every_other_tag_is_refused() {
        for tag in 0..=u8::MAX {
            match Kind::from_tag(tag) {
                Some(kind) => assert_eq!(kind.tag(), tag),
                None => assert!(KINDS.iter().all(|k| k.tag() != tag)),
            }
        }
        for kind in KINDS {
            let e = Envelope {
                kind,
                id: u64::MAX - 1,
                ty: "é",
                payload: &[0, 255],
            };
            assert_eq!(decode(&e.to_vec().unwrap()), Ok(e));
        }
    }

    #[test]
    fn every_cut_is_truncated_and_every_extension_trails() {
        let e = Envelope {
            kind: Kind::Response,
            id: 42,
            ty: "type",
            payload: b"payload",
        };
        let bytes = e.to_vec().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                matches!(decode(&bytes[..cut]), Err(DecodeError::Truncated { len, .. }) if len == cut),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 3]);
        assert_eq!(decode(&longer), Err(DecodeError::Trailing { extra: 3 }));
    }

    #[test]
    fn hostile_lengths_and_bytes_are_typed_errors() {
        let mut bytes = Envelope {
            kind: Kind::Request,
            id: 1,
            ty: "ab",
            payload: b"",
        }
        .to_vec()
        .unwrap();
        bytes[3..7].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::Truncated {
                len: 17,
                need: 17 + u64::from(u32::MAX)
            })
        );
        bytes[3..7].copy_from_slice(&0u32.to_le_bytes());
        bytes[15] = 0xff;
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::TypeUtf8 { valid_up_to: 0 })
        );
        bytes[1] = 0;
        assert_eq!(decode(&bytes), Err(DecodeError::Tag { tag: 0 }));
    }

    #[test]
    fn the_longest_type_fits_and_one_more_byte_does_not() {
        let ty = "x".repeat(MAX_TYPE_LEN);
        let e = Envelope {
            kind: Kind::Notify,
            id: 0,
            ty: &ty,
            payload: b"",
        };
        assert_eq!(decode(&e.to_vec().unwrap()), Ok(e));
        let ty = "x".repeat(MAX_TYPE_LEN + 1);
        let mut out = vec![7];
        let e = Envelope { ty: &ty, ..e };
        assert_eq!(
            e.encode(&mut out),
            Err(EncodeError::TypeTooLong { len: 256 })
        );
        assert_eq!(out, [7]);
    }
}
