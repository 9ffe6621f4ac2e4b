//! The machine's floors: the least any message path between two CPUs can cost.
//!
//! - One line: a single `AtomicU64` bounced between the sides. A stores `2k + 1`, B waits
//!   for it and stores `2k + 2`, A waits for that. One cache line moves each way.
//! - Two lines: one `AtomicU64` per direction, each in its own 128-byte line (two lines,
//!   so the adjacent-line prefetcher does not pair them). The floor for any pair of
//!   one-way queues, so the reference of every round-trip row.
//! - Futex sleep: one `AtomicU32` per direction; the receiver sleeps in
//!   `ringport::atomics::wait` until the sender's store and `notify`. What a round trip
//!   costs when both sides really sleep.
//!
//! Between threads the words are on the heap; between processes in a segment.

use crate::rtt::{InProcess, Link, Named};
use crate::shm::{AtomicOnly, Shared};
use crate::Result;
use ringport::atomics::{notify, wait};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A 64-bit word alone in a 128-byte line.
#[repr(C, align(128))]
#[derive(Default)]
pub struct Line64(AtomicU64);

/// One word per direction, each in its own line.
#[repr(C)]
#[derive(Default)]
pub struct Lines64([Line64; 2]);

/// A 32-bit futex word alone in a 128-byte line.
#[repr(C, align(128))]
#[derive(Default)]
pub struct Line32(AtomicU32);

/// One futex word per direction, each in its own line.
#[repr(C)]
#[derive(Default)]
pub struct Lines32([Line32; 2]);

// SAFETY: atomics only, valid for any bytes; aligned to 128.
unsafe impl AtomicOnly for Line64 {}
// SAFETY: as for Line64.
unsafe impl AtomicOnly for Lines64 {}
// SAFETY: as for Line64.
unsafe impl AtomicOnly for Lines32 {}

/// One end of the one-line floor.
pub struct OneLine {
    mem: Shared<Line64>,
    /// The last value this end stored; the other end's reply is any other value.
    mine: u64,
}

impl Link for OneLine {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        self.mem.0.store(v, Ordering::Release);
        self.mine = v;
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        loop {
            let v = self.mem.0.load(Ordering::Acquire);
            if v != self.mine {
                return Ok(v);
            }
            spin_loop();
        }
    }
}

impl InProcess for OneLine {
    type End = OneLine;

    fn pair() -> Result<(OneLine, OneLine)> {
        let (a, b) = Shared::heap_pair();
        Ok((OneLine { mem: a, mine: 0 }, OneLine { mem: b, mine: 0 }))
    }
}

impl Named for OneLine {
    fn create(name: &str) -> Result<Self> {
        Ok(OneLine {
            mem: Shared::create(name)?,
            mine: 0,
        })
    }

    fn open(name: &str) -> Result<Self> {
        Ok(OneLine {
            mem: Shared::open(name)?,
            mine: 0,
        })
    }
}

/// One end of the two-line floor: writes line `side`, reads the other.
pub struct TwoLine {
    mem: Shared<Lines64>,
    side: usize,
    /// The last value read from the other line.
    seen: u64,
}

impl TwoLine {
    /// The end that writes line `side` of `mem`.
    fn new(mem: Shared<Lines64>, side: usize) -> TwoLine {
        TwoLine { mem, side, seen: 0 }
    }
}

impl Link for TwoLine {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        self.mem.0[self.side].0.store(v, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        let line = &self.mem.0[1 - self.side].0;
        loop {
            let v = line.load(Ordering::Acquire);
            if v != self.seen {
                self.seen = v;
                return Ok(v);
            }
            spin_loop();
        }
    }
}

impl InProcess for TwoLine {
    type End = TwoLine;

    fn pair() -> Result<(TwoLine, TwoLine)> {
        let (a, b) = Shared::heap_pair();
        Ok((TwoLine::new(a, 0), TwoLine::new(b, 1)))
    }
}

impl Named for TwoLine {
    fn create(name: &str) -> Result<Self> {
        Ok(TwoLine::new(Shared::create(name)?, 0))
    }

    fn open(name: &str) -> Result<Self> {
        Ok(TwoLine::new(Shared::open(name)?, 1))
    }
}

/// One end of the futex ping-pong: stores and wakes on word `side`, sleeps on the other.
///
/// Values travel as their low 32 bits; a round-trip row would need 2^31 round trips to
/// wrap, far beyond what a row of sleeping round trips does.
pub struct FutexSleep {
    mem: Shared<Lines32>,
    side: usize,
    /// The last value read from the other word.
    seen: u32,
}

impl FutexSleep {
    /// The end that stores and wakes on word `side` of `mem`.
    fn new(mem: Shared<Lines32>, side: usize) -> FutexSleep {
        FutexSleep { mem, side, seen: 0 }
    }
}

impl Link for FutexSleep {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        let word = &self.mem.0[self.side].0;
        word.store(v as u32, Ordering::Release);
        notify(word, 1);
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        let word = &self.mem.0[1 - self.side].0;
        loop {
            let v = word.load(Ordering::Acquire);
            if v != self.seen {
                self.seen = v;
                return Ok(v.into());
            }
            wait(word, self.seen, None);
        }
    }
}

impl InProcess for FutexSleep {
    type End = FutexSleep;

    fn pair() -> Result<(FutexSleep, FutexSleep)> {
        let (a, b) = Shared::heap_pair();
        Ok((FutexSleep::new(a, 0), FutexSleep::new(b, 1)))
    }
}

impl Named for FutexSleep {
    fn create(name: &str) -> Result<Self> {
        Ok(FutexSleep::new(Shared::create(name)?, 0))
    }

    fn open(name: &str) -> Result<Self> {
        Ok(FutexSleep::new(Shared::open(name)?, 1))
    }
}
