//! The typed messages' codec: one postcard-encoded value per message, nothing after it.

use super::TypedError;
use crate::error::SendError;
use postcard::ser_flavors::Flavor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// Why bytes are not the encoding of a value of the expected type.
///
/// # Example
/// ```
/// use ringport::typed::{decode, encode, DecodeError};
///
/// let mut bytes = Vec::new();
/// encode(&(1u8, true), &mut bytes).unwrap();
/// bytes.push(0);
/// assert_eq!(decode::<(u8, bool)>(&bytes), Err(DecodeError::Trailing { extra: 1 }));
/// assert!(matches!(decode::<(u8, bool)>(&[1, 7]), Err(DecodeError::Malformed(_))));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end early or hold something the type cannot take: a bad varint, bool,
    /// option or enum tag, invalid UTF-8, or a value the type's `Deserialize` rejects.
    #[error("malformed message: {0}")]
    Malformed(#[source] postcard::Error),
    /// A whole value decoded, and bytes were left after it: the sender wrote another
    /// type, or more than one value, into the message.
    #[error("{extra} bytes left after the message's value")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

/// Appends the encoding of `value` to `buf`.
///
/// # Errors
/// The `postcard::Error` of a failed `Serialize` implementation; `buf` is then as it was.
///
/// # Example
/// ```
/// let mut buf = vec![0xff];
/// ringport::typed::encode(&(300u32, "hi"), &mut buf).unwrap();
/// assert_eq!(buf, [0xff, 0xac, 0x02, 2, b'h', b'i']); // varint 300, then length and bytes
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), postcard::Error> {
    encode_capped(value, buf, usize::MAX).map(drop)
}

/// Appends the encoding of `value` to `buf` if it is at most `max` bytes long, and
/// returns its length either way.
///
/// An encoding over `max` is counted to its end but not kept, so a value too large for
/// a frame costs no more memory than a frame.
fn encode_capped<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<usize, postcard::Error> {
    let start = buf.len();
    let flavor = Capped {
        buf: &mut *buf,
        start,
        max,
        len: 0,
    };
    postcard::serialize_with_flavor(value, flavor).inspect_err(|_| buf.truncate(start))
}

/// Encodes `value` as the one frame in `buf` (cleared first), for a ring whose frames
/// are at most `max` bytes.
///
/// # Errors
/// [`TypedError::Encode`], or [`TypedError::Send`] with [`SendError::TooLarge`].
pub(crate) fn encode_frame<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<(), TypedError> {
    buf.clear();
    let len = encode_capped(value, buf, max).map_err(TypedError::Encode)?;
    if len > max {
        buf.clear();
        return Err(SendError::TooLarge { len, max }.into());
    }
    Ok(())
}

/// Decodes the one value that `bytes` hold.
///
/// # Errors
/// [`DecodeError::Malformed`] if `bytes` do not begin with an encoded `T`;
/// [`DecodeError::Trailing`] if bytes are left after it.
///
/// # Example
/// ```
/// use ringport::typed::{decode, DecodeError};
///
/// assert_eq!(decode::<Option<String>>(&[1, 2, b'o', b'k']), Ok(Some("ok".to_owned())));
/// assert!(matches!(decode::<String>(&[5, b'a']), Err(DecodeError::Malformed(_))));
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing { extra: rest.len() });
    }
    Ok(value)
}

/// A postcard output that appends to a `Vec` until the encoding passes `max` bytes, then
/// only counts.
struct Capped<'a> {
    buf: &'a mut Vec<u8>,
    /// Where this encoding began in `buf`.
    start: usize,
    max: usize,
    /// Bytes of the encoding so far, kept or not.
    len: usize,
}

impl Flavor for Capped<'_> {
    type Output = usize;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.len = self.len.saturating_add(data.len());
        if self.len <= self.max {
            self.buf.extend_from_slice(data);
        } else {
            self.buf.truncate(self.start);
        }
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Shape {
        Dot,
        Circle { r: f64 },
        Poly(Vec<(i32, i32)>),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Drawing {
        id: u64,
        title: String,
        shapes: Vec<Shape>,
        note: Option<String>,
        layers: BTreeMap<String, u8>,
    }

    fn drawing() -> Drawing {
        Drawing {
            id: 1 << 40,
            title: "héllo".into(),
            shapes: vec![
                Shape::Dot,
                Shape::Circle { r: -2.5 },
                Shape::Poly(vec![(0, 0), (-1, 7)]),
            ],
            note: None,
            layers: [("bg".to_owned(), 0), ("fg".to_owned(), 9)].into(),
        }
    }

    #[test]
    fn values_round_trip_and_appending_keeps_what_was_there() {
        let mut buf = b"head".to_vec();
        encode(&drawing(), &mut buf).unwrap();
        assert_eq!(&buf[..4], b"head");
        assert_eq!(decode::<Drawing>(&buf[4..]), Ok(drawing()));
    }

    #[test]
    fn every_cut_of_an_encoding_ends_early_and_stray_bytes_are_trailing() {
        let mut buf = Vec::new();
        encode(&drawing(), &mut buf).unwrap();
        for cut in 0..buf.len() {
            assert_eq!(
                decode::<Drawing>(&buf[..cut]),
                Err(DecodeError::Malformed(
                    postcard::Error::DeserializeUnexpectedEnd
                )),
                "cut at {cut}"
            );
        }
        buf.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            decode::<Drawing>(&buf),
            Err(DecodeError::Trailing { extra: 3 })
        );
    }

    #[test]
    fn a_capped_encoding_counts_its_whole_length_but_keeps_nothing() {
        let value = vec![7u8; 100];
        let mut buf = vec![1, 2];
        assert_eq!(encode_capped(&value, &mut buf, 50), Ok(101));
        assert_eq!(buf, [1, 2]);
        assert_eq!(encode_capped(&value, &mut buf, 101), Ok(101));
        assert_eq!(buf.len(), 103);
        let err = encode_frame(&value, &mut buf, 100).unwrap_err();
        assert!(matches!(
            err,
            TypedError::Send(SendError::TooLarge { len: 101, max: 100 })
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_failing_serialize_leaves_the_buffer_as_it_was() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::{Error, SerializeTuple};
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&"written first")?;
                Err(S::Error::custom("refused"))
            }
        }
        let mut buf = vec![9];
        assert_eq!(
            encode(&Refuses, &mut buf),
            Err(postcard::Error::SerdeSerCustom)
        );
        assert_eq!(buf, [9]);
    }
}
