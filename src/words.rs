//! Copying bytes in and out of `AtomicU64` words: how shared structures that a peer may
//! write at any moment (the state table, the broadcast ring) move values without a data
//! race. Little-endian words, zero-padded: the same bytes in every process.

use crate::sync::{AtomicU64, Ordering};

/// Word `i` of `bytes`, little-endian, zero-padded past the end.
#[inline(always)]
pub(crate) fn word_of(bytes: &[u8], i: usize) -> u64 {
    let rest = &bytes[i * 8..];
    match rest.first_chunk::<8>() {
        Some(w) => u64::from_le_bytes(*w),
        None => {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(w)
        }
    }
}

/// Stores `bytes` into the words from `w[0]`, zero-padding the last one.
#[inline]
pub(crate) fn store_bytes(w: &[AtomicU64], bytes: &[u8]) {
    // One bounds check for the whole copy; the zips below need none.
    let w = &w[..bytes.len().div_ceil(8)];
    let chunks = bytes.chunks_exact(8);
    let rest = chunks.remainder();
    for (a, c) in w.iter().zip(chunks) {
        a.store(
            u64::from_le_bytes(c.try_into().expect("chunk of 8")),
            Ordering::Relaxed,
        );
    }
    if let Some(last) = w.last().filter(|_| !rest.is_empty()) {
        last.store(word_of(rest, 0), Ordering::Relaxed);
    }
}

/// Loads words from `w[0]` into `out`. Written as a plain indexed loop: for a `Pod`
/// read, `out.len()` is a constant once inlined, and the loop unrolls into one load and
/// one store per word.
#[inline(always)]
pub(crate) fn load_bytes(w: &[AtomicU64], out: &mut [u8]) {
    let n = out.len();
    let w = &w[..n.div_ceil(8)];
    let mut i = 0;
    while i + 8 <= n {
        out[i..i + 8].copy_from_slice(&w[i / 8].load(Ordering::Relaxed).to_le_bytes());
        i += 8;
    }
    if i < n {
        let last = w[i / 8].load(Ordering::Relaxed).to_le_bytes();
        out[i..].copy_from_slice(&last[..n - i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_every_length() {
        let w: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(u64::MAX)).collect();
        for len in 0..=32 {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) | 1).collect();
            store_bytes(&w, &bytes);
            let mut out = vec![0; len];
            load_bytes(&w, &mut out);
            assert_eq!(out, bytes);
        }
    }
}
