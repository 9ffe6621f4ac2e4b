//! Pieces every target of the newer rings and tables shares: decoding an input into a
//! setup and operations, naming and cleaning up segments, and reporting the failing step.
//! Included by the fuzz crate and, through `#[path]`, by the replay tests.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::{Arbitrary, Unstructured};
use ringport::process::ProcessId;
use ringport::segment::Segment;

/// Removes a segment name however the target leaves it, panics included.
pub(crate) struct Unlink(pub(crate) String);

impl Drop for Unlink {
    fn drop(&mut self) {
        // NotFound is the usual answer: the creator unlinks its own name.
        let _ = Segment::unlink(&self.0);
    }
}

/// Prints which step was running when a check fails, so a replayed input explains itself.
pub(crate) struct Step<'a, T: Debug>(pub(crate) usize, pub(crate) &'a T);

impl<T: Debug> Drop for Step<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("while running op #{}: {:?}", self.0, self.1);
        }
    }
}

/// Decodes a setup `S`, then operations until the input runs out or `max_ops` (see
/// `targets::decode` for why not `Vec`'s own encoding).
pub(crate) fn decode<'a, S: Arbitrary<'a>, Op: Arbitrary<'a>>(
    data: &'a [u8],
    max_ops: usize,
) -> Option<(S, Vec<Op>)> {
    let mut u = Unstructured::new(data);
    let setup = S::arbitrary(&mut u).ok()?;
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < max_ops {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    Some((setup, ops))
}

/// Deterministic bytes, distinct for each `id`.
pub(crate) fn payload(id: u64, len: usize) -> Vec<u8> {
    let seed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| (seed.rotate_left(i as u32 % 64) as u8) ^ (i as u8))
        .collect()
}

/// This process's lock and record token: its `ProcessId` packed as pid in the low 22
/// bits, start time above (unknown if it does not fit).
pub(crate) fn own_token() -> u64 {
    let me = ProcessId::current();
    let start = if me.start_time >> 42 == 0 {
        me.start_time
    } else {
        0
    };
    (start << 22) | u64::from(me.pid)
}

/// A segment name no other input of this process, or other process, uses.
pub(crate) fn unique_name(kind: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("rpfz-{}-{n}-{kind}", std::process::id())
}
