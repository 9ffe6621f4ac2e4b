//! [`Frame<N>`]: a byte frame of up to `N` bytes that fits an MPMC slot, so that the
//! rings carry variable-length messages as well as fixed `Pod` values.

use crate::error::SendError;
use bytemuck::{Pod, Zeroable};

/// Up to `N` bytes and their length, as one `Pod` value: `mpmc::channel::<Frame<N>>`
/// carries byte frames. All bytes (the length is stored as 8 little-endian bytes), so it
/// has no padding for any `N`.
///
/// A frame read from shared memory may carry any length; [`Frame::bytes`] clamps it to
/// `N`, so a hostile peer can garble a frame but never make a reader read past it.
///
/// # Example
/// ```
/// use ringport::mpmc::{self, Frame};
///
/// let (tx, rx) = mpmc::channel::<Frame<64>>(16);
/// tx.send(Frame::new(b"order 42: buy").unwrap()).unwrap();
/// assert_eq!(rx.recv().unwrap().bytes(), b"order 42: buy");
/// assert!(Frame::<64>::new(&[0; 65]).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Frame<const N: usize> {
    len: [u8; 8],
    data: [u8; N],
}

// SAFETY: `Frame` is `repr(C)` and made of byte arrays only (alignment 1), so it has no
// padding and every bit pattern is valid; all zeros is a valid (empty) frame.
unsafe impl<const N: usize> Zeroable for Frame<N> {}
// SAFETY: as above; it is `Copy + 'static`.
unsafe impl<const N: usize> Pod for Frame<N> {}

impl<const N: usize> Frame<N> {
    /// A frame holding `bytes`.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if `bytes` is longer than `N`.
    ///
    /// # Example
    /// ```
    /// let f = ringport::mpmc::Frame::<8>::new(b"hi").unwrap();
    /// assert_eq!(f.bytes(), b"hi");
    /// ```
    pub fn new(bytes: &[u8]) -> Result<Self, SendError> {
        if bytes.len() > N {
            return Err(SendError::TooLarge {
                len: bytes.len(),
                max: N,
            });
        }
        let mut frame = Self::zeroed();
        frame.data[..bytes.len()].copy_from_slice(bytes);
        frame.len = (bytes.len() as u64).to_le_bytes();
        Ok(frame)
    }

    /// The frame's bytes (a length over `N`, which only a damaged frame can carry, is
    /// clamped to `N`).
    ///
    /// # Example
    /// ```
    /// let f = ringport::mpmc::Frame::<16>::new(&[1, 2, 3]).unwrap();
    /// assert_eq!(f.bytes(), [1, 2, 3]);
    /// ```
    pub fn bytes(&self) -> &[u8] {
        let len = usize::try_from(u64::from_le_bytes(self.len)).map_or(N, |l| l.min(N));
        &self.data[..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_lengths_are_clamped() {
        let mut f = Frame::<8>::new(b"abc").unwrap();
        f.len = [0xff; 8];
        assert_eq!(f.bytes().len(), 8);
        assert_eq!(std::mem::size_of::<Frame<5>>(), 13);
    }
}
