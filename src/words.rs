//! Copying bytes in and out of `AtomicU64` words: how shared structures that a peer may
//! write at any moment (the state table, the broadcast ring) move values without a data
//! race. Little-endian words, zero-padded: the same bytes in every process.

use crate::sync::{AtomicU64, Ordering};

/// Word `i` of `bytes`, little-endian, zero-padded past the end. A partial last word of
/// a slice of at least 8 bytes is one overlapping load, shifted: no byte-wise copy on the
/// path that hashes and compares every key.
#[inline(always)]
pub(crate) fn word_of(bytes: &[u8], i: usize) -> u64 {
    let start = i * 8;
    if let Some(w) = bytes.get(start..start + 8) {
        return u64::from_le_bytes(w.try_into().expect("8 bytes"));
    }
    let rest = bytes.get(start..).unwrap_or(&[]);
    if rest.is_empty() {
        return 0;
    }
    match bytes.last_chunk::<8>() {
        Some(tail) => u64::from_le_bytes(*tail) >> (8 * (8 - rest.len())),
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
/// read, `out.len()` is a constant once inlined, and the loop unrolls.
///
/// On x86-64 the words are stored two at a time as one 16-byte vector. Eight-byte stores
/// read back by the caller's 16-byte loads (how a copied value usually moves on) defeat
/// store-to-load forwarding and stall each load until the stores retire, which cost more
/// than the whole atomic copy.
#[inline(always)]
pub(crate) fn load_bytes(w: &[AtomicU64], out: &mut [u8]) {
    let n = out.len();
    let w = &w[..n.div_ceil(8)];
    let mut i = 0;
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    while i + 16 <= n {
        use std::arch::x86_64::{__m128i, _mm_set_epi64x, _mm_storeu_si128};
        let lo = w[i / 8].load(Ordering::Relaxed) as i64;
        let hi = w[i / 8 + 1].load(Ordering::Relaxed) as i64;
        let dst = out[i..i + 16].as_mut_ptr().cast::<__m128i>();
        // SAFETY: SSE2 is part of the x86-64 baseline; `dst` points at 16 bytes of `out`
        // (sliced just above), and the store is the unaligned one.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_storeu_si128(dst, _mm_set_epi64x(hi, lo))
        };
        i += 16;
    }
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
    fn word_of_pads_every_partial_word() {
        let bytes: Vec<u8> = (1..=20).collect();
        for len in 0..=20 {
            for i in 0..3 {
                let mut want = [0u8; 8];
                for (k, b) in want.iter_mut().enumerate() {
                    *b = bytes[..len].get(i * 8 + k).copied().unwrap_or(0);
                }
                assert_eq!(
                    word_of(&bytes[..len], i),
                    u64::from_le_bytes(want),
                    "{len} {i}"
                );
            }
        }
    }

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
