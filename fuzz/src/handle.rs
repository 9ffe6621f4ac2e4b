//! A buffer handle's fields, read from and written into its 32 bytes, for the targets
//! that build handles by hand (forged, replayed, damaged) and check the ones they get.
//! Included by the fuzz crate and, through `#[path]`, by the replay tests.

use ringport::pool::BufferHandle;

/// A handle's fields, read from its 32 bytes (`pool u64, len u64, index u32, gen u32,
/// sender u32, flags u32`, in native byte order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) pool: u64,
    pub(crate) len: u64,
    pub(crate) index: u32,
    pub(crate) gen: u32,
    pub(crate) sender: u32,
    pub(crate) flags: u32,
}

impl Fields {
    pub(crate) fn of(h: &BufferHandle) -> Fields {
        let b = bytemuck::bytes_of(h);
        let u64_at = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let f = Fields {
            pool: u64_at(0),
            len: u64_at(8),
            index: u32_at(16),
            gen: u32_at(20),
            sender: u32_at(24),
            flags: u32_at(28),
        };
        assert_eq!(
            (
                h.pool_id(),
                h.len(),
                h.index(),
                h.generation(),
                h.is_shared()
            ),
            (f.pool, f.len, f.index, f.gen, f.flags & SHARED_FLAG != 0),
            "unexpected handle layout"
        );
        f
    }

    pub(crate) fn handle(self) -> BufferHandle {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.pool.to_ne_bytes());
        b[8..16].copy_from_slice(&self.len.to_ne_bytes());
        b[16..20].copy_from_slice(&self.index.to_ne_bytes());
        b[20..24].copy_from_slice(&self.gen.to_ne_bytes());
        b[24..28].copy_from_slice(&self.sender.to_ne_bytes());
        b[28..32].copy_from_slice(&self.flags.to_ne_bytes());
        bytemuck::pod_read_unaligned(&b)
    }
}

/// The flag of a shared buffer's handle.
pub(crate) const SHARED_FLAG: u32 = 1;
