//! `FrameRing`: an SPSC ring of variable-length byte frames.
//!
//! # Algorithm
//!
//! The data area is `capacity` bytes. A frame is an 8-byte header followed by its payload,
//! padded to 8 bytes, and never crosses the end of the area: when it would, the producer
//! first writes a *pad* frame that covers the rest of the lap. Frames can therefore be
//! read in place as one slice.
//!
//! The header is one `AtomicU64` and is also the frame's publication flag:
//! `COMMITTED (bit 56) | PAD (bit 57) | seq (24 bits) << 32 | len (32 bits)`. The producer
//! writes the payload, then the header with `Release`; the consumer loads the header at its
//! position with `Acquire`. Zero is never a valid header, and before publishing a frame the
//! producer zeroes the header slot that follows it, so the consumer's next look finds
//! either zero or a fresh header, never a stale one or payload bytes of an older lap. The
//! 24-bit sequence number double-checks that.
//!
//! A batch defers the first header and stores the others with `Relaxed`: the consumer can
//! only reach them through the first, so one `Release` store publishes the batch.
//!
//! The consumer hands bytes back by storing its monotonic position into `released`,
//! lazily: when a quarter of the ring is pending, when it finds the ring empty, before it
//! sleeps, and once per batch. The producer re-reads `released` only when its cached copy
//! says the frame does not fit.
//!
//! Every header is validated before use: the sequence number must be the expected one, the
//! flags known, a data frame's length at most `max_frame` and inside the area, a pad frame
//! must end exactly at the end of the area and never start at 0. `released` must lie
//! between its last value and the producer's position.

use super::ctrl::{spin_then, RingCtrl, CONSUMER, DEFAULT_SPIN, PRODUCER};
use crate::atomics::Scope;
use crate::error::{Corruption, RecvError, SendError};
use crate::sync::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const COMMITTED: u64 = 1 << 56;
const PAD: u64 = 1 << 57;
const SEQ_MASK: u32 = (1 << 24) - 1;
const HEADER: usize = 8;

/// Orders a frame's payload (and the zeroed next header) before its header.
const PUBLISH: Ordering = if cfg!(ringport_mutant = "frame_publish_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::Release
};

fn header(seq: u32, len: usize, pad: bool) -> u64 {
    COMMITTED | if pad { PAD } else { 0 } | (u64::from(seq & SEQ_MASK) << 32) | len as u64
}

fn frame_size(len: usize) -> usize {
    HEADER + len.next_multiple_of(8)
}

/// A frame ring's size and frame limit. Computed by the creator and validated by openers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameGeometry {
    /// Bytes of the data area: a multiple of 64, at least 128.
    pub(crate) capacity: usize,
    /// Largest payload: at most `capacity / 2 - 16`, so a frame, its pad and a quarter of
    /// the ring awaiting release always fit together.
    pub(crate) max_frame: usize,
}

impl FrameGeometry {
    pub(crate) fn new(capacity: usize, max_frame: usize) -> Result<Self, &'static str> {
        if !(128..=1 << 40).contains(&capacity) || capacity % 64 != 0 {
            return Err("frame ring capacity must be a multiple of 64 between 128 bytes and 1 TiB");
        }
        if max_frame > capacity / 2 - 16 {
            return Err("max_frame must be at most capacity / 2 - 16");
        }
        Ok(FrameGeometry {
            capacity,
            max_frame,
        })
    }

    /// The default limit for a capacity: the largest allowed.
    pub(crate) fn max_frame_for(capacity: usize) -> usize {
        (capacity / 2).saturating_sub(16)
    }

    #[cfg(not(loom))]
    pub(crate) fn ring_len(&self) -> usize {
        std::mem::size_of::<RingCtrl>() + self.capacity
    }

    fn release_batch(&self) -> u64 {
        (self.capacity / 4) as u64
    }
}

#[cfg(not(loom))]
mod mem {
    use super::*;
    use crate::region::Region;
    use std::ptr::NonNull;
    use std::sync::Arc;

    /// A frame ring's control block and data area inside a region.
    pub(crate) struct FrameMem {
        ctrl: NonNull<RingCtrl>,
        data: NonNull<u8>,
        pub(crate) geo: FrameGeometry,
        scope: Scope,
        region: Arc<Region>,
    }

    // SAFETY: shared through atomics and the SPSC protocol; payload is plain bytes.
    unsafe impl Send for FrameMem {}
    // SAFETY: as above.
    unsafe impl Sync for FrameMem {}

    impl FrameMem {
        pub(crate) fn new(region: Arc<Region>, offset: usize, geo: FrameGeometry) -> Self {
            assert!(offset % crate::region::REGION_ALIGN == 0);
            assert!(offset + geo.ring_len() <= region.len());
            let ctrl = NonNull::new(region.ptr(offset) as *mut RingCtrl).expect("non-null");
            let data = NonNull::new(region.ptr(offset + std::mem::size_of::<RingCtrl>()))
                .expect("non-null");
            FrameMem {
                ctrl,
                data,
                geo,
                scope: region.scope(),
                region,
            }
        }

        /// The memory the ring lives in.
        pub(crate) fn region(&self) -> &Arc<Region> {
            &self.region
        }

        /// Where the ring starts in its region.
        pub(crate) fn offset(&self) -> usize {
            self.ctrl.as_ptr() as usize - self.region.ptr(0) as usize
        }

        pub(crate) fn heap(geo: FrameGeometry) -> (Self, Self) {
            let region = Region::heap(geo.ring_len());
            (Self::new(region.clone(), 0, geo), Self::new(region, 0, geo))
        }

        #[inline(always)]
        pub(crate) fn ctrl(&self) -> &RingCtrl {
            // SAFETY: in bounds and aligned (checked in new); atomics only.
            unsafe { self.ctrl.as_ref() }
        }

        #[inline(always)]
        pub(crate) fn scope(&self) -> Scope {
            self.scope
        }

        #[inline(always)]
        pub(crate) fn header(&self, pos: usize) -> &AtomicU64 {
            debug_assert!(pos % 8 == 0 && pos + HEADER <= self.geo.capacity);
            // SAFETY: pos is 8-aligned and the header lies inside the area; AtomicU64 is
            // valid for any bytes.
            unsafe { &*(self.data.as_ptr().add(pos) as *const AtomicU64) }
        }

        /// # Safety
        /// The producer owns `pos..pos + bytes.len()` (released, unpublished).
        #[inline(always)]
        pub(crate) unsafe fn write(&self, pos: usize, bytes: &[u8]) {
            debug_assert!(pos + bytes.len() <= self.geo.capacity);
            // SAFETY: inside the area; exclusive per the caller.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.data.as_ptr().add(pos),
                    bytes.len(),
                )
            }
        }

        /// # Safety
        /// The consumer was published `pos..pos + len` and has not released it.
        #[inline(always)]
        pub(crate) unsafe fn bytes(&self, pos: usize, len: usize) -> &[u8] {
            debug_assert!(pos + len <= self.geo.capacity);
            // SAFETY: inside the area; the producer does not write it until released.
            unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(pos), len) }
        }

        /// # Safety
        /// As for `bytes`.
        #[inline(always)]
        pub(crate) unsafe fn with_bytes<R>(
            &self,
            pos: usize,
            len: usize,
            f: impl FnOnce(&[u8]) -> R,
        ) -> R {
            // SAFETY: forwarded.
            f(unsafe { self.bytes(pos, len) })
        }
    }
}

#[cfg(loom)]
mod mem {
    use super::*;
    use crate::sync::UnsafeCell;
    use loom::sync::Arc;

    struct Inner {
        ctrl: RingCtrl,
        headers: Box<[AtomicU64]>,
        words: Box<[UnsafeCell<u64>]>,
    }

    /// Under loom: an atomic and a race-tracked cell per 8-byte word of the area.
    pub(crate) struct FrameMem {
        inner: Arc<Inner>,
        pub(crate) geo: FrameGeometry,
    }

    impl FrameMem {
        pub(crate) fn heap(geo: FrameGeometry) -> (Self, Self) {
            let words = geo.capacity / 8;
            let inner = Arc::new(Inner {
                ctrl: RingCtrl::default(),
                headers: (0..words).map(|_| AtomicU64::new(0)).collect(),
                words: (0..words).map(|_| UnsafeCell::new(0)).collect(),
            });
            (
                FrameMem {
                    inner: inner.clone(),
                    geo,
                },
                FrameMem { inner, geo },
            )
        }

        pub(crate) fn ctrl(&self) -> &RingCtrl {
            &self.inner.ctrl
        }

        pub(crate) fn scope(&self) -> Scope {
            Scope::Process
        }

        pub(crate) fn header(&self, pos: usize) -> &AtomicU64 {
            &self.inner.headers[pos / 8]
        }

        pub(crate) unsafe fn write(&self, pos: usize, bytes: &[u8]) {
            for (i, chunk) in bytes.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                // SAFETY: loom checks the exclusivity the caller promises.
                self.inner.words[pos / 8 + i].with_mut(|p| unsafe { *p = u64::from_ne_bytes(w) });
            }
        }

        pub(crate) unsafe fn with_bytes<R>(
            &self,
            pos: usize,
            len: usize,
            f: impl FnOnce(&[u8]) -> R,
        ) -> R {
            let mut buf = Vec::with_capacity(len.next_multiple_of(8));
            for i in 0..len.div_ceil(8) {
                // SAFETY: loom checks that no write races with this read.
                let w = self.inner.words[pos / 8 + i].with(|p| unsafe { *p });
                buf.extend_from_slice(&w.to_ne_bytes());
            }
            f(&buf[..len])
        }
    }
}

pub(crate) use mem::FrameMem;

/// Constructors of heap-placed frame rings. Ports place the same ring in a segment.
///
/// # Example
/// ```
/// use ringport::ring::FrameRing;
///
/// let (mut tx, mut rx) = FrameRing::with_capacity(4096);
/// tx.try_send(b"hello").unwrap();
/// tx.try_send(b"").unwrap();
/// assert_eq!(&*rx.try_recv().unwrap(), b"hello");
/// assert_eq!(rx.try_recv().unwrap().len(), 0);
/// ```
pub struct FrameRing(());

impl FrameRing {
    /// A ring on the heap with `capacity` bytes of frame space (rounded up to a multiple of
    /// 64, at least 128) and the largest maximum frame length that capacity allows,
    /// `capacity / 2 - 16`.
    ///
    /// # Panics
    /// If the capacity exceeds 1 TiB.
    ///
    /// # Example
    /// ```
    /// let (tx, _rx) = ringport::ring::FrameRing::with_capacity(1000);
    /// assert_eq!(tx.max_frame(), 1024 / 2 - 16);
    /// ```
    pub fn with_capacity(capacity: usize) -> (FrameProducer, FrameConsumer) {
        let capacity = capacity.max(128).next_multiple_of(64);
        Self::with_limits(capacity, FrameGeometry::max_frame_for(capacity))
    }

    /// A ring on the heap with `capacity` bytes of frame space and frames of at most
    /// `max_frame` bytes.
    ///
    /// # Panics
    /// If `capacity` is not a multiple of 64 between 128 bytes and 1 TiB, or `max_frame`
    /// exceeds `capacity / 2 - 16`.
    ///
    /// # Example
    /// ```
    /// let (mut tx, _rx) = ringport::ring::FrameRing::with_limits(1024, 100);
    /// assert!(tx.try_send(&[0u8; 101]).is_err());
    /// ```
    pub fn with_limits(capacity: usize, max_frame: usize) -> (FrameProducer, FrameConsumer) {
        let geo = FrameGeometry::new(capacity, max_frame)
            .unwrap_or_else(|e| panic!("FrameRing::with_limits: {e}"));
        let (a, b) = FrameMem::heap(geo);
        a.ctrl().ends[PRODUCER].attach(0, 0);
        a.ctrl().ends[CONSUMER].attach(0, 0);
        (FrameProducer::new(a), FrameConsumer::new(b))
    }
}

pub(crate) struct ProdState {
    /// How long blocking calls poll before sleeping.
    pub(crate) spin: Duration,
    /// Where the next frame's header goes; its header slot is zero.
    pub(crate) pos: usize,
    /// Bytes written since creation (monotonic), pads included.
    pub(crate) tail: u64,
    pub(crate) seq: u32,
    /// Last `released` value read; stale low, never high.
    pub(crate) released: u64,
}

/// The sending end of a [`FrameRing`].
pub struct FrameProducer {
    pub(crate) mem: FrameMem,
    pub(crate) st: ProdState,
}

/// A header whose store is deferred so one `Release` store publishes a batch.
type Deferred = Option<(usize, u64)>;

impl FrameProducer {
    pub(crate) fn new(mem: FrameMem) -> Self {
        FrameProducer {
            mem,
            st: ProdState {
                spin: DEFAULT_SPIN,
                pos: 0,
                tail: 0,
                seq: 0,
                released: 0,
            },
        }
    }

    /// The largest payload this ring carries.
    ///
    /// # Example
    /// ```
    /// let (tx, _rx) = ringport::ring::FrameRing::with_limits(4096, 512);
    /// assert_eq!(tx.max_frame(), 512);
    /// ```
    pub fn max_frame(&self) -> usize {
        self.mem.geo.max_frame
    }

    /// Sets how long this end's blocking calls poll before they sleep on a futex (default
    /// 20 µs). A longer budget trades CPU for latency when replies are slow; zero sleeps
    /// after a single look, for a thread that must not spin.
    ///
    /// # Example
    /// ```
    /// let (mut tx, _rx) = ringport::ring::FrameRing::with_capacity(256);
    /// tx.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.st.spin = budget;
    }

    /// Whether the consumer has closed or been dropped.
    ///
    /// # Example
    /// ```
    /// let (tx, rx) = ringport::ring::FrameRing::with_capacity(256);
    /// drop(rx);
    /// assert!(tx.is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.mem.ctrl().ends[CONSUMER].is_closed()
    }

    fn reserve(mem: &FrameMem, st: &mut ProdState, need: usize) -> Result<(), SendError> {
        let cap = mem.geo.capacity as u64;
        if st.tail + need as u64 - st.released > cap {
            let r = mem.ctrl().released.load(Ordering::Acquire);
            if r < st.released || r > st.tail {
                return Err(Corruption::new("released byte count outside what was written").into());
            }
            st.released = r;
            if st.tail + need as u64 - r > cap {
                return Err(SendError::Full);
            }
        }
        Ok(())
    }

    fn publish_or_defer(mem: &FrameMem, pos: usize, h: u64, first: &mut Deferred) {
        match first {
            None => *first = Some((pos, h)),
            Some(_) => mem.header(pos).store(h, Ordering::Relaxed),
        }
    }

    fn zero_next(mem: &FrameMem, pos: usize) {
        if !cfg!(ringport_mutant = "frame_skip_zero_next") {
            mem.header(pos).store(0, Ordering::Relaxed);
        }
    }

    /// Writes one frame (and a pad before it if it would cross the end), deferring the
    /// first header of the batch into `first`.
    fn write_frame(
        mem: &FrameMem,
        st: &mut ProdState,
        bytes: &[u8],
        first: &mut Deferred,
    ) -> Result<(), SendError> {
        let cap = mem.geo.capacity;
        let size = frame_size(bytes.len());
        if st.pos + size > cap {
            let pad = cap - st.pos;
            // Room for the pad, and for the zeroed header it leaves at 0.
            Self::reserve(mem, st, pad + HEADER)?;
            Self::zero_next(mem, 0);
            Self::publish_or_defer(mem, st.pos, header(st.seq, pad - HEADER, true), first);
            st.seq = st.seq.wrapping_add(1);
            st.tail += pad as u64;
            st.pos = 0;
        }
        Self::reserve(mem, st, size + HEADER)?;
        // SAFETY: reserve proved pos..pos + size + 8 is released and unpublished.
        unsafe { mem.write(st.pos + HEADER, bytes) };
        let next = if st.pos + size == cap {
            0
        } else {
            st.pos + size
        };
        Self::zero_next(mem, next);
        Self::publish_or_defer(mem, st.pos, header(st.seq, bytes.len(), false), first);
        st.seq = st.seq.wrapping_add(1);
        st.tail += size as u64;
        st.pos = next;
        Ok(())
    }

    fn flush(mem: &FrameMem, first: Deferred) {
        if let Some((pos, h)) = first {
            mem.header(pos).store(h, PUBLISH);
            mem.ctrl().data.notify(mem.scope());
        }
    }

    fn try_send_in(mem: &FrameMem, st: &mut ProdState, bytes: &[u8]) -> Result<(), SendError> {
        if bytes.len() > mem.geo.max_frame {
            return Err(SendError::TooLarge {
                len: bytes.len(),
                max: mem.geo.max_frame,
            });
        }
        if mem.ctrl().ends[CONSUMER].is_closed() {
            return Err(SendError::Disconnected);
        }
        let mut first = None;
        let r = Self::write_frame(mem, st, bytes, &mut first);
        // A pad may have been written before a Full: publish it, it is part of the stream.
        Self::flush(mem, first);
        r
    }

    /// Sends one frame if there is room, without blocking.
    ///
    /// # Errors
    /// [`SendError::Full`], [`SendError::TooLarge`], [`SendError::Disconnected`] or
    /// [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// tx.try_send(&[1, 2, 3]).unwrap();
    /// assert_eq!(&*rx.try_recv().unwrap(), &[1, 2, 3]);
    /// ```
    pub fn try_send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        Self::try_send_in(&self.mem, &mut self.st, bytes)
    }

    fn try_send_batch_in<B: AsRef<[u8]>>(
        mem: &FrameMem,
        st: &mut ProdState,
        frames: &[B],
    ) -> Result<usize, SendError> {
        if mem.ctrl().ends[CONSUMER].is_closed() {
            return Err(SendError::Disconnected);
        }
        let mut first = None;
        let mut sent = 0;
        let mut result = Ok(());
        for f in frames {
            let bytes = f.as_ref();
            let r = if bytes.len() > mem.geo.max_frame {
                Err(SendError::TooLarge {
                    len: bytes.len(),
                    max: mem.geo.max_frame,
                })
            } else {
                Self::write_frame(mem, st, bytes, &mut first)
            };
            if let Err(e) = r {
                result = Err(e);
                break;
            }
            sent += 1;
        }
        Self::flush(mem, first);
        match result {
            Err(e) if sent == 0 => Err(e),
            _ => Ok(sent),
        }
    }

    /// Sends the longest prefix of `frames` that fits, with one publishing store and at
    /// most one wake. Returns how many were sent.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), only when no frame was sent.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(4096);
    /// assert_eq!(tx.try_send_batch(&[&b"a"[..], b"bc", b"def"]), Ok(3));
    /// let mut got = Vec::new();
    /// rx.try_recv_batch(10, |f| got.push(f.to_vec())).unwrap();
    /// assert_eq!(got, vec![b"a".to_vec(), b"bc".to_vec(), b"def".to_vec()]);
    /// ```
    pub fn try_send_batch<B: AsRef<[u8]>>(&mut self, frames: &[B]) -> Result<usize, SendError> {
        Self::try_send_batch_in(&self.mem, &mut self.st, frames)
    }

    /// Sends one frame, waiting for room. Spins briefly, then sleeps on a futex.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], [`SendError::Disconnected`], [`SendError::PeerDied`]
    /// (noticed within about 100 ms of the death) or [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// let t = std::thread::spawn(move || {
    ///     (0..100).map(|_| rx.recv().unwrap().len()).sum::<usize>()
    /// });
    /// for i in 0..100 {
    ///     tx.send(&vec![0u8; i]).unwrap();
    /// }
    /// assert_eq!(t.join().unwrap(), 4950);
    /// ```
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.send_until(bytes, None)
    }

    /// Like [`send`](Self::send), but gives up with [`SendError::Timeout`] after `timeout`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let (mut tx, _rx) = ringport::ring::FrameRing::with_capacity(128);
    /// while tx.try_send(&[0; 40]).is_ok() {}
    /// assert_eq!(tx.send_timeout(&[0; 40], Duration::from_millis(5)), Err(ringport::SendError::Timeout));
    /// ```
    pub fn send_timeout(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.send_until(bytes, Instant::now().checked_add(timeout))
    }

    fn send_until(&mut self, bytes: &[u8], deadline: Option<Instant>) -> Result<(), SendError> {
        let (mem, st) = (&self.mem, &mut self.st);
        Self::block_on(mem, st, deadline, |mem, st| {
            Self::try_send_in(mem, st, bytes)
        })
    }

    /// Sends every frame of `frames`, waiting for room as needed; each chunk that fits is
    /// published with one store and at most one wake.
    ///
    /// # Errors
    /// As [`send`](Self::send); frames before the failing one were sent.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// let t = std::thread::spawn(move || {
    ///     let mut n = 0;
    ///     while n < 50 {
    ///         n += rx.recv_batch(16, |f| assert_eq!(f, b"xyz")).unwrap();
    ///     }
    /// });
    /// tx.send_batch(&vec![b"xyz"; 50]).unwrap();
    /// t.join().unwrap();
    /// ```
    pub fn send_batch<B: AsRef<[u8]>>(&mut self, frames: &[B]) -> Result<(), SendError> {
        let mut done = 0;
        while done < frames.len() {
            let (mem, st) = (&self.mem, &mut self.st);
            let rest = &frames[done..];
            done += Self::block_on(mem, st, None, |mem, st| {
                Self::try_send_batch_in(mem, st, rest)
            })?;
        }
        Ok(())
    }

    fn block_on<R>(
        mem: &FrameMem,
        st: &mut ProdState,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&FrameMem, &mut ProdState) -> Result<R, SendError>,
    ) -> Result<R, SendError> {
        let mut poll = |st: &mut ProdState| match attempt(mem, st) {
            Err(SendError::Full) => None,
            r => Some(r),
        };
        if let Some(r) = spin_then(st.spin, || poll(st)) {
            return r;
        }
        mem.ctrl()
            .space
            .wait_until(mem.scope(), deadline, |liveness_due| {
                poll(st).or_else(|| {
                    let pid = liveness_due.then(|| mem.ctrl().ends[CONSUMER].dead_holder())??;
                    Some(Err(SendError::PeerDied { pid }))
                })
            })
            .unwrap_or(Err(SendError::Timeout))
    }
}

impl Drop for FrameProducer {
    fn drop(&mut self) {
        let ctrl = self.mem.ctrl();
        ctrl.ends[PRODUCER].close();
        ctrl.data.notify(self.mem.scope());
    }
}

pub(crate) struct ConsState {
    /// How long blocking calls poll before sleeping.
    pub(crate) spin: Duration,
    /// Where the next header is.
    pub(crate) pos: usize,
    /// Bytes consumed since creation (monotonic), pads included.
    pub(crate) head: u64,
    pub(crate) seq: u32,
    /// The last value stored into `released`.
    pub(crate) released: u64,
}

/// The receiving end of a [`FrameRing`].
pub struct FrameConsumer {
    pub(crate) mem: FrameMem,
    pub(crate) st: ConsState,
}

impl FrameConsumer {
    pub(crate) fn new(mem: FrameMem) -> Self {
        FrameConsumer {
            mem,
            st: ConsState {
                spin: DEFAULT_SPIN,
                pos: 0,
                head: 0,
                seq: 0,
                released: 0,
            },
        }
    }

    /// The largest payload this ring carries.
    ///
    /// # Example
    /// ```
    /// let (_tx, rx) = ringport::ring::FrameRing::with_limits(4096, 512);
    /// assert_eq!(rx.max_frame(), 512);
    /// ```
    pub fn max_frame(&self) -> usize {
        self.mem.geo.max_frame
    }

    /// Sets how long this end's blocking calls poll before they sleep on a futex (default
    /// 20 µs). A longer budget trades CPU for latency when replies are slow; zero sleeps
    /// after a single look, for a thread that must not spin.
    ///
    /// # Example
    /// ```
    /// let (_tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// rx.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.st.spin = budget;
    }

    /// The next published frame as (payload position, length), skipping a pad.
    fn peek(mem: &FrameMem, st: &mut ConsState) -> Result<Option<(usize, usize)>, RecvError> {
        let cap = mem.geo.capacity;
        loop {
            let h = mem.header(st.pos).load(Ordering::Acquire);
            if h & COMMITTED == 0 {
                return Ok(None);
            }
            if h >> 56 & !0b11 != 0 {
                return Err(Corruption::new("unknown frame header flags").into());
            }
            if (h >> 32) as u32 & SEQ_MASK != st.seq & SEQ_MASK {
                return Err(Corruption::new("frame sequence number out of order").into());
            }
            let len = (h & 0xffff_ffff) as usize;
            if h & PAD != 0 {
                if st.pos == 0 || st.pos + HEADER + len != cap {
                    return Err(
                        Corruption::new("pad frame does not fill the rest of the ring").into(),
                    );
                }
                st.head += (cap - st.pos) as u64;
                st.pos = 0;
                st.seq = st.seq.wrapping_add(1);
                continue;
            }
            if len > mem.geo.max_frame || st.pos + frame_size(len) > cap {
                return Err(Corruption::new("frame length out of bounds").into());
            }
            return Ok(Some((st.pos + HEADER, len)));
        }
    }

    /// The next frame, or why there is none.
    fn next(mem: &FrameMem, st: &mut ConsState) -> Result<(usize, usize), RecvError> {
        if let Some(f) = Self::peek(mem, st)? {
            return Ok(f);
        }
        Self::release(mem, st);
        if mem.ctrl().ends[PRODUCER].is_closed() {
            // The close was stored after the producer's last publish: look once more.
            return Self::peek(mem, st)?.ok_or(RecvError::Disconnected);
        }
        Err(RecvError::Empty)
    }

    fn advance(mem: &FrameMem, st: &mut ConsState, len: usize) {
        let size = frame_size(len);
        st.head += size as u64;
        st.pos += size;
        if st.pos == mem.geo.capacity {
            st.pos = 0;
        }
        st.seq = st.seq.wrapping_add(1);
    }

    fn advance_and_maybe_release(mem: &FrameMem, st: &mut ConsState, len: usize) {
        Self::advance(mem, st, len);
        if st.head - st.released >= mem.geo.release_batch() {
            Self::release(mem, st);
        }
    }

    pub(crate) fn release(mem: &FrameMem, st: &mut ConsState) {
        if st.head != st.released {
            st.released = st.head;
            mem.ctrl().released.store(st.head, Ordering::Release);
            mem.ctrl().space.notify(mem.scope());
        }
    }

    /// Calls `f` on the next frame, in place, if one is waiting, then consumes it.
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Disconnected`] once the producer closed and
    /// everything it sent was received, or [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// tx.try_send(b"abc").unwrap();
    /// assert_eq!(rx.try_recv_with(|f| f.len()), Ok(3));
    /// ```
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        Self::recv_with_in(&self.mem, &mut self.st, f)
    }

    fn recv_with_in<R>(
        mem: &FrameMem,
        st: &mut ConsState,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvError> {
        let (pos, len) = Self::next(mem, st)?;
        // SAFETY: the frame was published to us and is released only after `f` returns.
        let r = unsafe { mem.with_bytes(pos, len, f) };
        Self::advance_and_maybe_release(mem, st, len);
        Ok(r)
    }

    /// Calls `f` on up to `max` waiting frames, in place, and hands their space back with a
    /// single store. Returns how many frames it consumed.
    ///
    /// # Errors
    /// As [`try_recv_with`](Self::try_recv_with), only when no frame was consumed.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(1024);
    /// tx.try_send_batch(&[b"one", b"two"]).unwrap();
    /// let mut total = 0;
    /// assert_eq!(rx.try_recv_batch(8, |f| total += f.len()), Ok(2));
    /// assert_eq!(total, 6);
    /// ```
    pub fn try_recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        Self::recv_batch_in(&self.mem, &mut self.st, max, f)
    }

    fn recv_batch_in(
        mem: &FrameMem,
        st: &mut ConsState,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, RecvError> {
        let mut n = 0;
        while n < max {
            let next = if n == 0 {
                Self::next(mem, st)?
            } else {
                match Self::peek(mem, st) {
                    Ok(Some(frame)) => frame,
                    // Deliver what was read; an error shows again on the next call.
                    _ => break,
                }
            };
            // SAFETY: published to us; released below, after `f` returns.
            unsafe { mem.with_bytes(next.0, next.1, &mut f) };
            Self::advance(mem, st, next.1);
            n += 1;
        }
        Self::release(mem, st);
        Ok(n)
    }

    /// Waits for a frame, then calls `f` on it in place and consumes it. Spins briefly,
    /// then sleeps on a futex.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`], [`RecvError::PeerDied`] (noticed within about 100 ms
    /// of the death) or [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// std::thread::spawn(move || tx.send(b"ping").unwrap());
    /// assert_eq!(rx.recv_with(|f| f.to_vec()).unwrap(), b"ping");
    /// ```
    pub fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        let (pos, len) = self.wait_next(None)?;
        // SAFETY: published to us; released after `f` returns.
        let r = unsafe { self.mem.with_bytes(pos, len, f) };
        Self::advance_and_maybe_release(&self.mem, &mut self.st, len);
        Ok(r)
    }

    /// Waits for frames, then as [`try_recv_batch`](Self::try_recv_batch).
    ///
    /// # Errors
    /// As [`recv_with`](Self::recv_with).
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// std::thread::spawn(move || tx.send(b"x").unwrap());
    /// assert_eq!(rx.recv_batch(4, |f| assert_eq!(f, b"x")), Ok(1));
    /// ```
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.wait_next(None)?;
        Self::recv_batch_in(&self.mem, &mut self.st, max, f)
    }

    /// Waits until a frame is ready (or an error), without consuming it.
    fn wait_next(&mut self, deadline: Option<Instant>) -> Result<(usize, usize), RecvError> {
        let (mem, st) = (&self.mem, &mut self.st);
        let poll = |st: &mut ConsState| match Self::next(mem, st) {
            Err(RecvError::Empty) => None,
            r => Some(r),
        };
        if let Some(r) = spin_then(st.spin, || poll(st)) {
            return r;
        }
        mem.ctrl()
            .data
            .wait_until(mem.scope(), deadline, |liveness_due| {
                poll(st).or_else(|| {
                    let pid = liveness_due.then(|| mem.ctrl().ends[PRODUCER].dead_holder())??;
                    poll(st).or(Some(Err(RecvError::PeerDied { pid })))
                })
            })
            .unwrap_or(Err(RecvError::Timeout))
    }
}

#[cfg(not(loom))]
impl FrameConsumer {
    /// The next frame, read in place, if one is waiting. It is consumed when the returned
    /// [`Frame`] drops.
    ///
    /// # Errors
    /// As [`try_recv_with`](Self::try_recv_with).
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// tx.try_send(&7u64.to_ne_bytes()).unwrap();
    /// let frame = rx.try_recv().unwrap();
    /// assert_eq!(frame.as_pod::<u64>(), Some(&7));
    /// ```
    pub fn try_recv(&mut self) -> Result<Frame<'_>, RecvError> {
        let (pos, len) = Self::next(&self.mem, &mut self.st)?;
        Ok(Frame {
            consumer: self,
            pos,
            len,
        })
    }

    /// Waits for the next frame and returns it, read in place.
    ///
    /// # Errors
    /// As [`recv_with`](Self::recv_with).
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// std::thread::spawn(move || tx.send(b"hi").unwrap());
    /// assert_eq!(&*rx.recv().unwrap(), b"hi");
    /// ```
    pub fn recv(&mut self) -> Result<Frame<'_>, RecvError> {
        let (pos, len) = self.wait_next(None)?;
        Ok(Frame {
            consumer: self,
            pos,
            len,
        })
    }

    /// Like [`recv`](Self::recv), but gives up with [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let (_tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)).err(), Some(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame<'_>, RecvError> {
        let (pos, len) = self.wait_next(Instant::now().checked_add(timeout))?;
        Ok(Frame {
            consumer: self,
            pos,
            len,
        })
    }
}

/// A ring's data signal and producer end, apart from its consumer: lets a thread sleep
/// until the producer publishes or dies while another thread, which holds the consumer
/// behind a lock, may take the frames (see `worker::process`).
#[cfg(all(not(loom), feature = "serde"))]
pub(crate) struct DataWatch {
    mem: FrameMem,
}

#[cfg(all(not(loom), feature = "serde"))]
impl DataWatch {
    /// Sleeps on the data signal until `check` returns something; `check` is told when a
    /// liveness look at the producer is due.
    pub(crate) fn wait_until<R>(&self, check: impl FnMut(bool) -> Option<R>) -> Option<R> {
        self.mem
            .ctrl()
            .data
            .wait_until(self.mem.scope(), None, check)
    }

    /// The producer's pid, if it attached from another process and died without closing.
    pub(crate) fn dead_producer(&self) -> Option<u32> {
        self.mem.ctrl().ends[PRODUCER].dead_holder()
    }
}

#[cfg(all(not(loom), feature = "serde"))]
impl FrameConsumer {
    /// A watch on this ring's data signal.
    pub(crate) fn watch(&self) -> DataWatch {
        DataWatch {
            mem: FrameMem::new(self.mem.region().clone(), self.mem.offset(), self.mem.geo),
        }
    }
}

impl Drop for FrameConsumer {
    fn drop(&mut self) {
        let ctrl = self.mem.ctrl();
        ctrl.ends[CONSUMER].close();
        ctrl.space.notify(self.mem.scope());
    }
}

/// A received frame, read in place from the ring. Its space goes back to the producer
/// when it drops.
///
/// # Example
/// ```
/// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
/// tx.try_send(&[1, 0, 0, 0, 2, 0, 0, 0]).unwrap();
/// let f = rx.try_recv().unwrap();
/// assert_eq!(f.len(), 8);
/// assert_eq!(f.as_pod::<[u32; 2]>().map(|a| a[1]), Some(2u32.to_le()));
/// ```
#[cfg(not(loom))]
pub struct Frame<'a> {
    consumer: &'a mut FrameConsumer,
    pos: usize,
    len: usize,
}

#[cfg(not(loom))]
impl Frame<'_> {
    /// The payload.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// tx.try_send(b"abc").unwrap();
    /// assert_eq!(rx.try_recv().unwrap().as_bytes(), b"abc");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: published to the consumer, which this frame borrows exclusively until
        // it drops and releases the bytes.
        unsafe { self.consumer.mem.bytes(self.pos, self.len) }
    }

    /// The payload as a `&T`, in place, if its length is `size_of::<T>()` and it is
    /// aligned for `T` (payloads start 8-aligned, so any `T` aligned to 8 or less is).
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// tx.try_send(bytemuck::bytes_of(&[1.5f64, 2.5])).unwrap();
    /// assert_eq!(rx.try_recv().unwrap().as_pod::<[f64; 2]>(), Some(&[1.5, 2.5]));
    /// ```
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Option<&T> {
        bytemuck::try_from_bytes(self.as_bytes()).ok()
    }

    /// A copy of the payload as a `T`, at any alignment, if its length is `size_of::<T>()`.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::FrameRing::with_capacity(256);
    /// tx.try_send(&5u128.to_ne_bytes()).unwrap();
    /// assert_eq!(rx.try_recv().unwrap().read_pod::<u128>(), Some(5));
    /// ```
    pub fn read_pod<T: bytemuck::Pod>(&self) -> Option<T> {
        bytemuck::try_pod_read_unaligned(self.as_bytes()).ok()
    }
}

#[cfg(not(loom))]
impl std::ops::Deref for Frame<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(not(loom))]
impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame").field("len", &self.len).finish()
    }
}

#[cfg(not(loom))]
impl Drop for Frame<'_> {
    fn drop(&mut self) {
        FrameConsumer::advance_and_maybe_release(
            &self.consumer.mem,
            &mut self.consumer.st,
            self.len,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_wrap_with_pads_and_stay_in_order() {
        let (mut tx, mut rx) = FrameRing::with_capacity(256);
        let mut next_rx = 0u32;
        for i in 0..5000u32 {
            let len = (i as usize * 7) % 100;
            let mut payload = vec![(i % 251) as u8; len];
            if len >= 4 {
                payload[..4].copy_from_slice(&i.to_le_bytes());
            }
            loop {
                match tx.try_send(&payload) {
                    Ok(()) => break,
                    Err(SendError::Full) => {
                        let f = rx.try_recv().unwrap();
                        let l = (next_rx as usize * 7) % 100;
                        assert_eq!(f.len(), l);
                        if l >= 4 {
                            assert_eq!(&f[..4], &next_rx.to_le_bytes());
                        }
                        next_rx += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        while let Ok(f) = rx.try_recv() {
            assert_eq!(f.len(), (next_rx as usize * 7) % 100);
            next_rx += 1;
        }
        assert_eq!(next_rx, 5000);
    }

    #[test]
    fn largest_frame_always_fits_an_empty_ring() {
        let (mut tx, mut rx) = FrameRing::with_capacity(256);
        let max = tx.max_frame();
        for shift in 0..40 {
            tx.try_send(&vec![1u8; shift * 3 % 50]).unwrap();
            drop(rx.try_recv().unwrap());
            // Finding the ring empty hands the consumed bytes back.
            assert_eq!(rx.try_recv().err(), Some(RecvError::Empty));
            tx.try_send(&vec![2u8; max]).unwrap();
            assert_eq!(rx.try_recv().unwrap().len(), max);
        }
        assert_eq!(
            tx.try_send(&vec![0; max + 1]),
            Err(SendError::TooLarge { len: max + 1, max })
        );
    }

    #[test]
    fn corrupt_headers_are_errors() {
        for bad in [
            header(0, 1 << 20, false),
            header(5, 4, false),
            header(0, 4, true),
            COMMITTED | (1 << 60),
        ] {
            let (mut tx, mut rx) = FrameRing::with_capacity(256);
            tx.try_send(b"ok").unwrap();
            rx.mem.header(0).store(bad, Ordering::Relaxed);
            assert!(
                matches!(rx.try_recv(), Err(RecvError::Corrupt(_))),
                "{bad:#x}"
            );
        }
    }

    #[test]
    fn close_drains_then_disconnects() {
        let (mut tx, mut rx) = FrameRing::with_capacity(256);
        tx.try_send(b"last").unwrap();
        drop(tx);
        assert_eq!(&*rx.try_recv().unwrap(), b"last");
        assert_eq!(rx.try_recv().err(), Some(RecvError::Disconnected));
    }

    #[test]
    fn batch_is_published_once_and_read_whole() {
        let (mut tx, mut rx) = FrameRing::with_capacity(512);
        let frames: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i]).collect();
        let sent = tx.try_send_batch(&frames).unwrap();
        assert!(sent > 5);
        let mut got = Vec::new();
        assert_eq!(rx.try_recv_batch(100, |f| got.push(f.to_vec())), Ok(sent));
        assert_eq!(&got[..], &frames[..sent]);
    }
}
