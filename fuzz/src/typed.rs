//! The fuzz target of `ringport::typed`'s decoder, shared like
//! [`targets`](crate::targets) with `tests/fuzz_replay_typed.rs`, which includes this
//! file with `#[path]`. Self-contained for that reason: it uses only ringport's public
//! API, `arbitrary`, `serde` and std.
//!
//! [`typed_decode`] reads its input twice:
//! - as bytes a peer sent, decoded as an [`Order`] (a struct with strings, a vector, an
//!   enum, options, integers, floats, a bool and a map): `decode` never panics; a
//!   `TypedPort` receiving the same bytes as a frame decides the same; what decodes
//!   re-encodes to a canonical form that decodes back to itself. Postcard accepts a few
//!   other spellings of a value: over-long varints, and map keys repeated (the last
//!   wins) or out of order. So the check is not "re-encodes to the same bytes" but: the
//!   canonical form is never longer than the input, and when it is as long, it holds the
//!   same bytes (only map entries moved).
//! - as the recipe of an order: `decode(encode(o))` is `o`; every cut of the encoding
//!   ends early, and bytes after it are `Trailing`.

use arbitrary::{Arbitrary, Unstructured};
use ringport::typed::{decode, encode, DecodeError, TypedError, TypedPort};
use ringport::MessageChannel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an order does.
#[derive(Arbitrary, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Side {
    /// At any price.
    Buy,
    /// At a limit, or at any price.
    Sell {
        /// The lowest price.
        limit: Option<f64>,
    },
    /// Cancels an earlier order, for a reason.
    Cancel(u64, String),
}

/// The nested message the target decodes.
#[derive(Arbitrary, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Order {
    /// Its number.
    pub id: u64,
    /// Who placed it.
    pub client: String,
    /// What it does.
    pub side: Side,
    /// Items and quantities.
    pub lines: Vec<(String, i32)>,
    /// A free-form note.
    pub note: Option<String>,
    /// Its price.
    pub price: f64,
    /// Labels and their weights.
    pub tags: BTreeMap<String, i64>,
    /// A flag.
    pub urgent: bool,
}

/// An order to encode, with the damage to do to its encoding.
#[derive(Arbitrary, Debug)]
struct Recipe {
    order: Order,
    /// Where to cut the encoding, modulo its length.
    cut: u16,
    /// Bytes to append to it.
    extra: Vec<u8>,
}

/// The target: see the module's documentation.
pub fn typed_decode(data: &[u8]) {
    check_decode(data);
    if let Ok(recipe) = Recipe::arbitrary(&mut Unstructured::new(data)) {
        check_recipe(&recipe);
    }
}

fn encoded(order: &Order) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(order, &mut bytes).expect("an order always encodes");
    bytes
}

/// `bytes` as a peer's message.
fn check_decode(bytes: &[u8]) {
    let decoded = decode::<Order>(bytes);
    check_port_agrees(bytes, &decoded);
    let Ok(order) = decoded else { return };
    let canonical = encoded(&order);
    assert!(
        canonical.len() <= bytes.len(),
        "{} bytes re-encode to {} for {order:?}",
        bytes.len(),
        canonical.len()
    );
    let again = decode::<Order>(&canonical).expect("a canonical encoding decodes");
    // Compared as bytes, which also compares floats bit for bit (NaN included).
    assert_eq!(encoded(&again), canonical, "not a fixed point: {order:?}");
    if canonical.len() == bytes.len() {
        // Over-long varints and repeated keys shrink; what is left is map entries out of
        // order, the same bytes in another arrangement.
        let (mut a, mut b) = (canonical, bytes.to_vec());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "same length, other bytes: {order:?}");
    }
}

/// A typed port that receives `bytes` as a frame decides as `decode` did.
fn check_port_agrees(bytes: &[u8], decoded: &Result<Order, DecodeError>) {
    let ch = MessageChannel::with_capacity(2 * (bytes.len() + 64));
    let (mut raw, mut port) = (ch.port1, TypedPort::<Order>::new(ch.port2));
    raw.try_post_message(bytes).expect("the frame fits");
    match (port.try_recv(), decoded) {
        (Ok(got), Ok(want)) => assert_eq!(encoded(&got), encoded(want)),
        (Err(TypedError::Decode(got)), Err(want)) => assert_eq!(&got, want),
        (got, want) => panic!("the port got {got:?}, decode {want:?}"),
    }
}

/// The order `recipe` describes, through encoding, decoding and damage.
fn check_recipe(recipe: &Recipe) {
    let bytes = encoded(&recipe.order);
    let back = decode::<Order>(&bytes).expect("an encoding decodes");
    assert_eq!(encoded(&back), bytes);
    if !has_nan(&recipe.order) {
        assert_eq!(back, recipe.order);
    }
    let cut = usize::from(recipe.cut) % bytes.len();
    let ends_early = decode::<Order>(&[]);
    assert!(matches!(ends_early, Err(DecodeError::Malformed(_))));
    assert_eq!(
        decode::<Order>(&bytes[..cut]),
        ends_early,
        "cut at {cut} of {}",
        bytes.len()
    );
    if !recipe.extra.is_empty() {
        let longer = [&bytes[..], &recipe.extra].concat();
        assert_eq!(
            decode::<Order>(&longer),
            Err(DecodeError::Trailing {
                extra: recipe.extra.len()
            })
        );
    }
}

/// NaN is unequal to itself, so such orders are compared by their encodings alone.
fn has_nan(order: &Order) -> bool {
    order.price.is_nan() || matches!(order.side, Side::Sell { limit: Some(l) } if l.is_nan())
}
