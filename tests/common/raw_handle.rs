//! A buffer handle's fields as the documented 32-byte layout has them, for the pool
//! tests that read a handle's sender and forge handles the way a hostile peer could.

use bytemuck::{Pod, Zeroable};
use ringport::pool::BufferHandle;

/// A handle's fields, in the handle's layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RawHandle {
    pub pool: u64,
    pub len: u64,
    pub index: u32,
    pub gen: u32,
    pub sender: u32,
    pub flags: u32,
}

pub fn raw(h: &BufferHandle) -> RawHandle {
    let r: RawHandle = bytemuck::cast(*h);
    // The mirror must match the real layout, or the forgeries below test nothing.
    assert_eq!(
        (r.pool, r.len, r.index, r.gen),
        (h.pool_id(), h.len(), h.index(), h.generation())
    );
    r
}

pub fn forge(h: &BufferHandle, edit: impl FnOnce(&mut RawHandle)) -> BufferHandle {
    let mut r = raw(h);
    edit(&mut r);
    bytemuck::cast(r)
}
