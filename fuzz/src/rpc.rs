//! The fuzz target of `ringport::rpc`'s envelope, shared like
//! [`targets`](crate::targets) with `tests/fuzz_replay_rpc.rs`, which includes this file
//! with `#[path]`. Self-contained for that reason: it uses only ringport's public API,
//! `arbitrary` and std.
//!
//! [`rpc_envelope`] reads its input twice:
//! - as bytes a peer sent: `decode` never panics; what it accepts re-encodes to exactly
//!   the same bytes (decode → encode → decode is stable), and what it refuses, it
//!   refuses for a reason the bytes show;
//! - as the recipe of an envelope: `decode(encode(e)) == e`, every cut of the encoding
//!   is `Truncated`, bytes after it are `Trailing`, and a type over 255 bytes is refused
//!   when encoding.

use arbitrary::{Arbitrary, Unstructured};
use ringport::rpc::envelope::{
    decode, DecodeError, EncodeError, Envelope, Kind, HEADER_LEN, MAX_TYPE_LEN, VERSION,
};

/// An envelope to build, with the damage to do to its encoding.
#[derive(Arbitrary, Debug)]
struct Recipe {
    /// Picks the kind: every value names one.
    kind: u8,
    id: u64,
    /// May be longer than the format allows.
    ty: String,
    /// Repeats `ty` this many times more, to reach and pass the longest type.
    ty_repeat: u8,
    payload: Vec<u8>,
    /// Where to cut the encoding, modulo its length.
    cut: u16,
    /// Bytes to append to it.
    extra: Vec<u8>,
}

const KINDS: [Kind; 5] = [
    Kind::Request,
    Kind::Response,
    Kind::Error,
    Kind::NoHandler,
    Kind::Notify,
];

/// The target: see the module's documentation.
pub fn rpc_envelope(data: &[u8]) {
    check_decode(data);
    if let Ok(recipe) = Recipe::arbitrary(&mut Unstructured::new(data)) {
        check_recipe(&recipe);
    }
}

/// `bytes` as a peer's frame.
fn check_decode(bytes: &[u8]) {
    match decode(bytes) {
        Ok(e) => {
            assert!(e.ty.len() <= MAX_TYPE_LEN, "type of {} bytes", e.ty.len());
            assert_eq!(e.encoded_len(), bytes.len(), "{e:?}");
            let again = e.to_vec().expect("a decoded envelope encodes");
            assert_eq!(again, bytes, "the encoding is not canonical for {e:?}");
            assert_eq!(decode(&again), Ok(e));
        }
        Err(DecodeError::Truncated { len, need }) => {
            assert_eq!(len, bytes.len());
            assert!(need > len as u64, "need {need} of {len}");
        }
        Err(DecodeError::Trailing { extra }) => {
            assert!(
                extra > 0 && extra <= bytes.len() - HEADER_LEN,
                "extra {extra}"
            );
        }
        Err(DecodeError::Version { found }) => {
            assert_eq!(bytes[0], found);
            assert_ne!(found, VERSION);
        }
        Err(DecodeError::Tag { tag }) => {
            assert_eq!(bytes[1], tag);
            assert_eq!(Kind::from_tag(tag), None);
        }
        Err(DecodeError::TypeUtf8 { valid_up_to }) => {
            let ty = &bytes[HEADER_LEN..HEADER_LEN + usize::from(bytes[2])];
            assert!(std::str::from_utf8(ty).is_err());
            assert!(valid_up_to < ty.len());
        }
        Err(other) => panic!("an error this target does not know: {other:?}"),
    }
}

/// The envelope `recipe` describes, through encoding, decoding and damage.
fn check_recipe(recipe: &Recipe) {
    let ty = recipe.ty.repeat(1 + usize::from(recipe.ty_repeat));
    let e = Envelope {
        kind: KINDS[usize::from(recipe.kind) % KINDS.len()],
        id: recipe.id,
        ty: &ty,
        payload: &recipe.payload,
    };
    let mut bytes = vec![0xAA];
    match e.encode(&mut bytes) {
        Err(EncodeError::TypeTooLong { len }) => {
            assert!(len > MAX_TYPE_LEN && len == ty.len());
            assert_eq!(bytes, [0xAA], "a failed encode appended");
            return;
        }
        Err(other) => panic!("{other:?} for {e:?}"),
        Ok(()) => assert!(ty.len() <= MAX_TYPE_LEN),
    }
    let bytes = &bytes[1..];
    assert_eq!(bytes.len(), e.encoded_len());
    assert_eq!(decode(bytes), Ok(e));
    let cut = usize::from(recipe.cut) % bytes.len();
    assert!(
        matches!(decode(&bytes[..cut]), Err(DecodeError::Truncated { len, .. }) if len == cut),
        "cut at {cut} of {}",
        bytes.len()
    );
    if !recipe.extra.is_empty() {
        let longer = [bytes, &recipe.extra].concat();
        assert_eq!(
            decode(&longer),
            Err(DecodeError::Trailing {
                extra: recipe.extra.len()
            })
        );
    }
}
