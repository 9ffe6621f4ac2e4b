//! `PodRing`: an SPSC ring of fixed-size `T: bytemuck::Pod` slots.
//!
//! # Algorithm
//!
//! The ring is an array of *blocks*. A block is one cache line (more for large `T`): a
//! 32-bit *stamp* followed by as many slots as fit (seven `u64`s in 64 bytes). The stamp
//! says which lap of the ring the block's contents belong to and how many of its slots
//! are filled: `stamp = lap << 8 | count`.
//!
//! - The producer writes a slot, then stores the block's stamp with `Release`. A
//!   consumer that waits spins on the stamp of the block it reads, which lives in the very
//!   line that carries the data: one line moves per message, the floor for a one-way
//!   queue (the sequence-per-slot idea of Vyukov's bounded queue and of the Disruptor, at
//!   block rather than slot granularity so that several messages share a line).
//! - The consumer loads the stamp with `Acquire` and reads every slot it covers in one
//!   pass, then moves on. It hands whole blocks back by storing the count of finished
//!   blocks into `released`, lazily: when a quarter of the ring is pending, when it finds
//!   the ring empty, before it sleeps, and once per batch.
//! - The producer re-reads `released` only when entering a block its cached copy says
//!   is still in use: once per block, not per message.
//!
//! Every stamp and `released` value read from shared memory is validated against what
//! the reader knows: a stamp must carry the current or the previous lap and a count that
//! never exceeds the block or goes backwards; `released` must lie between its last value
//! and the number of blocks written. Anything else is [`Corruption`].

use super::ctrl::{spin_then, RingCtrl, CONSUMER, DEFAULT_SPIN, PRODUCER};
use crate::atomics::Scope;
use crate::error::{Corruption, RecvError, SendError};
use crate::sync::{AtomicU32, Ordering};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// Orders a slot's bytes before the stamp that publishes it.
const PUBLISH: Ordering = if cfg!(ringport_mutant = "typed_publish_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::Release
};

/// Orders the consumer's reads of a block before the producer's next writes into it.
const RELEASE_BLOCKS: Ordering = if cfg!(ringport_mutant = "typed_release_relaxed") {
    Ordering::Relaxed
} else {
    Ordering::Release
};

const LAP_MASK: u32 = (1 << 24) - 1;

fn stamp(lap: u32, count: usize) -> u32 {
    (lap << 8) | count as u32
}

/// Where the slots of a `PodRing` lie. Computed from the element type and the requested
/// capacity, never read back from shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PodGeometry {
    /// Bytes per block: a multiple of 64.
    pub(crate) block_bytes: usize,
    /// Offset of slot 0 inside a block (after the stamp, aligned for `T`).
    pub(crate) slot_off: usize,
    /// Slot size, `size_of::<T>()`.
    pub(crate) slot_size: usize,
    /// Slots per block, 1..=56.
    pub(crate) per_block: usize,
    /// Number of blocks, at least 2.
    pub(crate) blocks: usize,
}

/// Slots per block for messages of `size` bytes aligned to `align`: as many as fit in a
/// line after the stamp, or one. A function of the type alone, so batch copies of a whole
/// block have a constant length.
const fn slots_per_block(size: usize, align: usize) -> usize {
    let slot_off = if align > 8 { align } else { 8 };
    if slot_off + size <= 64 {
        (64 - slot_off) / size
    } else {
        1
    }
}

/// Copies `n` slots; a whole block, the common case of a batch, with a constant count so
/// the compiler inlines it rather than calling `memmove` once per block.
///
/// # Safety
/// As for `ptr::copy_nonoverlapping`.
#[cfg(not(loom))]
#[inline(always)]
unsafe fn copy_slots<T: Pod>(src: *const T, dst: *mut T, n: usize) {
    let full = const { slots_per_block(std::mem::size_of::<T>(), std::mem::align_of::<T>()) };
    // SAFETY: forwarded to the caller.
    unsafe {
        if n == full {
            std::ptr::copy_nonoverlapping(src, dst, full)
        } else {
            std::ptr::copy_nonoverlapping(src, dst, n)
        }
    }
}

impl PodGeometry {
    /// The geometry for `capacity` (at least) messages of `size` bytes aligned to `align`.
    pub(crate) fn new(size: usize, align: usize, capacity: usize) -> Result<Self, &'static str> {
        if size == 0 {
            return Err("zero-sized messages carry nothing");
        }
        if !align.is_power_of_two() || align > 64 {
            return Err("message alignment must be a power of two of at most 64");
        }
        let slot_off = align.max(8);
        let per_block = slots_per_block(size, align);
        let block_bytes = (slot_off + per_block * size)
            .checked_next_multiple_of(64)
            .ok_or("message too large")?;
        let blocks = capacity.div_ceil(per_block).max(2);
        let geo = PodGeometry {
            block_bytes,
            slot_off,
            slot_size: size,
            per_block,
            blocks,
        };
        geo.data_len().ok_or("ring too large")?;
        Ok(geo)
    }

    /// Messages the ring holds when full.
    pub(crate) fn capacity(&self) -> usize {
        self.blocks * self.per_block
    }

    /// Bytes of the block array.
    pub(crate) fn data_len(&self) -> Option<usize> {
        let len = self.blocks.checked_mul(self.block_bytes)?;
        (len <= isize::MAX as usize / 2).then_some(len)
    }

    /// Bytes of the whole ring: control block plus blocks.
    #[cfg(not(loom))]
    pub(crate) fn ring_len(&self) -> usize {
        std::mem::size_of::<RingCtrl>() + self.data_len().expect("validated in new")
    }

    #[inline]
    fn release_batch(&self) -> u64 {
        (self.blocks as u64 / 4).max(1)
    }
}

#[cfg(not(loom))]
mod mem {
    use super::*;
    use crate::region::Region;
    use std::ptr::NonNull;
    use std::sync::Arc;

    /// A pod ring's control block and blocks inside a region.
    pub(crate) struct PodMem<T> {
        ctrl: NonNull<RingCtrl>,
        data: NonNull<u8>,
        pub(crate) geo: PodGeometry,
        scope: Scope,
        _region: Arc<Region>,
        _t: PhantomData<T>,
    }

    // SAFETY: the memory is shared through atomics and the SPSC protocol; T is Pod.
    unsafe impl<T: Pod + Send> Send for PodMem<T> {}
    // SAFETY: as above.
    unsafe impl<T: Pod + Sync> Sync for PodMem<T> {}

    impl<T: Pod> PodMem<T> {
        /// The ring at `offset` of `region`; `offset + geo.ring_len() <= region.len()`.
        pub(crate) fn new(region: Arc<Region>, offset: usize, geo: PodGeometry) -> Self {
            assert!(offset % crate::region::REGION_ALIGN == 0);
            assert!(offset + geo.ring_len() <= region.len());
            let ctrl = NonNull::new(region.ptr(offset) as *mut RingCtrl).expect("non-null");
            let data = NonNull::new(region.ptr(offset + std::mem::size_of::<RingCtrl>()))
                .expect("non-null");
            PodMem {
                ctrl,
                data,
                geo,
                scope: region.scope(),
                _region: region,
                _t: PhantomData,
            }
        }

        pub(crate) fn heap(geo: PodGeometry) -> (Self, Self) {
            let region = Region::heap(geo.ring_len());
            (Self::new(region.clone(), 0, geo), Self::new(region, 0, geo))
        }

        #[inline(always)]
        pub(crate) fn ctrl(&self) -> &RingCtrl {
            // SAFETY: in bounds and aligned (checked in new); RingCtrl is atomics only,
            // valid for any bytes.
            unsafe { self.ctrl.as_ref() }
        }

        #[inline(always)]
        pub(crate) fn scope(&self) -> Scope {
            self.scope
        }

        #[inline(always)]
        fn slot(&self, block: usize, i: usize) -> *mut T {
            debug_assert!(block < self.geo.blocks && i < self.geo.per_block);
            let off = block * self.geo.block_bytes + self.geo.slot_off + i * self.geo.slot_size;
            // SAFETY: block < blocks and i < per_block keep the slot inside the data array.
            unsafe { self.data.as_ptr().add(off) as *mut T }
        }

        #[inline(always)]
        pub(crate) fn stamp(&self, block: usize) -> &AtomicU32 {
            debug_assert!(block < self.geo.blocks);
            // SAFETY: block < blocks; a block starts on a 64-byte boundary; AtomicU32 is
            // valid for any bytes.
            unsafe { &*(self.data.as_ptr().add(block * self.geo.block_bytes) as *const AtomicU32) }
        }

        /// # Safety
        /// The caller owns the slot: the producer, for a slot the consumer released.
        #[inline(always)]
        pub(crate) unsafe fn write(&self, block: usize, i: usize, v: T) {
            // SAFETY: in bounds and aligned for T (slot_off and slot_size are multiples of
            // align_of::<T>()); exclusive per the caller.
            unsafe { self.slot(block, i).write(v) }
        }

        /// # Safety
        /// The slot was published to the caller, the consumer, and not yet released.
        #[inline(always)]
        pub(crate) unsafe fn read(&self, block: usize, i: usize) -> T {
            // SAFETY: in bounds and aligned; the producer does not write it until released.
            unsafe { self.slot(block, i).read() }
        }

        /// # Safety
        /// As for `read`, for slots `i..i + n`.
        #[inline(always)]
        pub(crate) unsafe fn read_into(&self, block: usize, i: usize, out: &mut [T]) {
            debug_assert!(i + out.len() <= self.geo.per_block);
            // SAFETY: slots of a block are contiguous; as for `read`.
            unsafe { copy_slots(self.slot(block, i), out.as_mut_ptr(), out.len()) }
        }

        /// # Safety
        /// As for `write`, for slots `i..i + vals.len()`.
        #[inline(always)]
        pub(crate) unsafe fn write_from(&self, block: usize, i: usize, vals: &[T]) {
            debug_assert!(i + vals.len() <= self.geo.per_block);
            // SAFETY: as for `write`; slots of a block are contiguous.
            unsafe { copy_slots(vals.as_ptr(), self.slot(block, i), vals.len()) }
        }
    }
}

#[cfg(loom)]
mod mem {
    use super::*;
    use crate::sync::UnsafeCell;
    use loom::sync::Arc;

    struct Inner<T> {
        ctrl: RingCtrl,
        stamps: Box<[AtomicU32]>,
        slots: Box<[UnsafeCell<T>]>,
    }

    /// Under loom: the same ring with loom atomics and race-tracked cells on the heap.
    pub(crate) struct PodMem<T> {
        inner: Arc<Inner<T>>,
        pub(crate) geo: PodGeometry,
    }

    impl<T: Pod> PodMem<T> {
        pub(crate) fn heap(geo: PodGeometry) -> (Self, Self) {
            let inner = Arc::new(Inner {
                ctrl: RingCtrl::default(),
                stamps: (0..geo.blocks).map(|_| AtomicU32::new(0)).collect(),
                slots: (0..geo.capacity())
                    .map(|_| UnsafeCell::new(T::zeroed()))
                    .collect(),
            });
            (
                PodMem {
                    inner: inner.clone(),
                    geo,
                },
                PodMem { inner, geo },
            )
        }

        pub(crate) fn ctrl(&self) -> &RingCtrl {
            &self.inner.ctrl
        }

        pub(crate) fn scope(&self) -> Scope {
            Scope::Process
        }

        pub(crate) fn stamp(&self, block: usize) -> &AtomicU32 {
            &self.inner.stamps[block]
        }

        fn cell(&self, block: usize, i: usize) -> &UnsafeCell<T> {
            &self.inner.slots[block * self.geo.per_block + i]
        }

        pub(crate) unsafe fn write(&self, block: usize, i: usize, v: T) {
            // SAFETY: loom checks the exclusivity the caller promises.
            self.cell(block, i).with_mut(|p| unsafe { p.write(v) })
        }

        pub(crate) unsafe fn read(&self, block: usize, i: usize) -> T {
            // SAFETY: loom checks that no write races with this read.
            self.cell(block, i).with(|p| unsafe { p.read() })
        }

        pub(crate) unsafe fn read_into(&self, block: usize, i: usize, out: &mut [T]) {
            for (k, o) in out.iter_mut().enumerate() {
                // SAFETY: as for `read`.
                *o = unsafe { self.read(block, i + k) };
            }
        }

        pub(crate) unsafe fn write_from(&self, block: usize, i: usize, vals: &[T]) {
            for (k, v) in vals.iter().enumerate() {
                // SAFETY: as for `write`.
                unsafe { self.write(block, i + k, *v) };
            }
        }
    }
}

pub(crate) use mem::PodMem;

/// Constructors of heap-placed pod rings. Ports place the same ring in a segment.
///
/// # Example
/// ```
/// use ringport::ring::PodRing;
///
/// let (mut tx, mut rx) = PodRing::<u64>::with_capacity(1024);
/// let t = std::thread::spawn(move || {
///     for i in 0..10_000u64 {
///         tx.send(i).unwrap();
///     }
/// });
/// for i in 0..10_000u64 {
///     assert_eq!(rx.recv().unwrap(), i);
/// }
/// t.join().unwrap();
/// ```
pub struct PodRing<T>(PhantomData<T>);

impl<T: Pod + Send> PodRing<T> {
    /// A ring on the heap that holds at least `capacity` messages (rounded up to whole
    /// blocks, and to at least two blocks).
    ///
    /// # Panics
    /// If `T` is zero-sized, aligned to more than 64 bytes, or the ring would not fit in
    /// the address space.
    ///
    /// # Example
    /// ```
    /// let (tx, _rx) = ringport::ring::PodRing::<u32>::with_capacity(100);
    /// assert!(tx.capacity() >= 100);
    /// ```
    pub fn with_capacity(capacity: usize) -> (PodProducer<T>, PodConsumer<T>) {
        let geo = PodGeometry::new(
            std::mem::size_of::<T>(),
            std::mem::align_of::<T>(),
            capacity,
        )
        .unwrap_or_else(|e| panic!("PodRing::with_capacity: {e}"));
        let (a, b) = PodMem::heap(geo);
        a.ctrl().ends[PRODUCER].attach(0, 0);
        a.ctrl().ends[CONSUMER].attach(0, 0);
        (PodProducer::new(a), PodConsumer::new(b))
    }
}

struct ProdState {
    /// How long blocking calls poll before sleeping.
    spin: Duration,
    block: usize,
    lap: u32,
    /// Slots filled in `block`; `per_block` means the producer must enter the next block.
    off: usize,
    /// Blocks entered so far, minus one: the global index of `block`.
    gblock: u64,
    /// Last `released` value read; stale low, never high.
    released: u64,
}

/// The sending end of a [`PodRing`].
pub struct PodProducer<T: Pod> {
    mem: PodMem<T>,
    st: ProdState,
}

impl<T: Pod> PodProducer<T> {
    pub(crate) fn new(mem: PodMem<T>) -> Self {
        PodProducer {
            mem,
            st: ProdState {
                spin: DEFAULT_SPIN,
                block: 0,
                lap: 0,
                off: 0,
                gblock: 0,
                released: 0,
            },
        }
    }

    /// Messages the ring holds when full.
    ///
    /// # Example
    /// ```
    /// let (tx, _rx) = ringport::ring::PodRing::<u64>::with_capacity(7);
    /// assert_eq!(tx.capacity(), 14); // two blocks of seven
    /// ```
    pub fn capacity(&self) -> usize {
        self.mem.geo.capacity()
    }

    /// Sets how long this end's blocking calls poll before they sleep on a futex (default
    /// 20 µs). A longer budget trades CPU for latency when replies are slow; zero sleeps
    /// after a single look, for a thread that must not spin.
    ///
    /// # Example
    /// ```
    /// let (mut tx, _rx) = ringport::ring::PodRing::<u64>::with_capacity(8);
    /// tx.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.st.spin = budget;
    }

    /// Whether the consumer has closed or been dropped.
    ///
    /// # Example
    /// ```
    /// let (tx, rx) = ringport::ring::PodRing::<u64>::with_capacity(8);
    /// assert!(!tx.is_disconnected());
    /// drop(rx);
    /// assert!(tx.is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.mem.ctrl().ends[CONSUMER].is_closed()
    }

    /// Sends `value` if there is room, without blocking.
    ///
    /// # Errors
    /// [`SendError::Full`], [`SendError::Disconnected`] or [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::PodRing::<[u8; 3]>::with_capacity(4);
    /// tx.try_send([1, 2, 3]).unwrap();
    /// assert_eq!(rx.try_recv().unwrap(), [1, 2, 3]);
    /// ```
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<(), SendError> {
        Self::try_send_in(&self.mem, &mut self.st, value)
    }

    #[inline(always)]
    fn try_send_in(mem: &PodMem<T>, st: &mut ProdState, value: T) -> Result<(), SendError> {
        if mem.ctrl().ends[CONSUMER].is_closed() {
            return Err(SendError::Disconnected);
        }
        if st.off == mem.geo.per_block {
            Self::enter_next(mem, st)?;
        }
        // SAFETY: entering the block proved the consumer released it, and slots past
        // `off` are not yet published.
        unsafe { mem.write(st.block, st.off, value) };
        st.off += 1;
        mem.stamp(st.block).store(stamp(st.lap, st.off), PUBLISH);
        mem.ctrl().data.notify(mem.scope());
        Ok(())
    }

    /// Moves to the next block if the consumer has released the previous lap of it.
    fn enter_next(mem: &PodMem<T>, st: &mut ProdState) -> Result<(), SendError> {
        let next = st.gblock + 1;
        let blocks = mem.geo.blocks as u64;
        if next >= blocks {
            let need = next + 1 - blocks;
            if st.released < need {
                let r = mem.ctrl().released.load(Ordering::Acquire);
                // The consumer cannot have released more blocks than were completed
                // (gblock + 1) nor fewer than it already had.
                if r < st.released || r > st.gblock + 1 {
                    return Err(
                        Corruption::new("released block count outside what was written").into(),
                    );
                }
                st.released = r;
                if r < need {
                    return Err(SendError::Full);
                }
            }
        }
        st.gblock = next;
        st.off = 0;
        st.block += 1;
        if st.block == mem.geo.blocks {
            st.block = 0;
            st.lap = st.lap.wrapping_add(1);
        }
        Ok(())
    }

    /// Sends the longest prefix of `values` that fits, with one publishing store and at
    /// most one wake for the whole batch. Returns how many were sent.
    ///
    /// # Errors
    /// [`SendError::Full`] if none fit (an empty batch sends nothing and succeeds),
    /// [`SendError::Disconnected`] or [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::PodRing::<u64>::with_capacity(64);
    /// assert_eq!(tx.try_send_batch(&[1, 2, 3]).unwrap(), 3);
    /// let mut out = [0; 8];
    /// assert_eq!(rx.try_recv_batch(&mut out).unwrap(), 3);
    /// assert_eq!(&out[..3], &[1, 2, 3]);
    /// ```
    pub fn try_send_batch(&mut self, values: &[T]) -> Result<usize, SendError> {
        Self::try_send_batch_in(&self.mem, &mut self.st, values)
    }

    fn try_send_batch_in(
        mem: &PodMem<T>,
        st: &mut ProdState,
        values: &[T],
    ) -> Result<usize, SendError> {
        if mem.ctrl().ends[CONSUMER].is_closed() {
            return Err(SendError::Disconnected);
        }
        let pb = mem.geo.per_block;
        let mut sent = 0;
        // The first block's stamp is stored last, with Release: a consumer can only reach
        // the later blocks through it, so it publishes the whole batch.
        let mut first: Option<(usize, u32)> = None;
        while sent < values.len() {
            if st.off == pb {
                match Self::enter_next(mem, st) {
                    Ok(()) => {}
                    Err(e) if sent == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            let take = (pb - st.off).min(values.len() - sent);
            // SAFETY: as in try_send, for slots off..off + take of an entered block.
            unsafe { mem.write_from(st.block, st.off, &values[sent..sent + take]) };
            st.off += take;
            sent += take;
            let s = stamp(st.lap, st.off);
            match first {
                None => first = Some((st.block, s)),
                Some(_) => mem.stamp(st.block).store(s, Ordering::Relaxed),
            }
        }
        if let Some((block, s)) = first {
            mem.stamp(block).store(s, PUBLISH);
            mem.ctrl().data.notify(mem.scope());
        }
        Ok(sent)
    }

    /// Sends `value`, waiting for room. Spins briefly, then sleeps on a futex.
    ///
    /// # Errors
    /// [`SendError::Disconnected`], [`SendError::PeerDied`] (noticed within about 100 ms
    /// of the death) or [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::PodRing::<u64>::with_capacity(1);
    /// let t = std::thread::spawn(move || (0..100).map(|_| rx.recv().unwrap()).sum::<u64>());
    /// for i in 0..100 {
    ///     tx.send(i).unwrap();
    /// }
    /// assert_eq!(t.join().unwrap(), 4950);
    /// ```
    pub fn send(&mut self, value: T) -> Result<(), SendError> {
        self.send_until(value, None)
    }

    /// Like [`send`](Self::send), but gives up with [`SendError::Timeout`] after `timeout`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use ringport::SendError;
    /// let (mut tx, _rx) = ringport::ring::PodRing::<u64>::with_capacity(1);
    /// while tx.try_send(0).is_ok() {}
    /// assert_eq!(tx.send_timeout(1, Duration::from_millis(5)), Err(SendError::Timeout));
    /// ```
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendError> {
        self.send_until(value, Instant::now().checked_add(timeout))
    }

    fn send_until(&mut self, value: T, deadline: Option<Instant>) -> Result<(), SendError> {
        let (mem, st) = (&self.mem, &mut self.st);
        Self::block_on(mem, st, deadline, |mem, st| {
            Self::try_send_in(mem, st, value)
        })
    }

    fn block_on<R>(
        mem: &PodMem<T>,
        st: &mut ProdState,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&PodMem<T>, &mut ProdState) -> Result<R, SendError>,
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

    /// Sends all of `values`, waiting for room as needed; each chunk that fits is
    /// published with one store and at most one wake.
    ///
    /// # Errors
    /// As [`send`](Self::send); messages before the failure point were sent.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::PodRing::<u32>::with_capacity(8);
    /// let t = std::thread::spawn(move || {
    ///     let mut buf = [0u32; 1000];
    ///     let mut got = 0;
    ///     while got < 1000 {
    ///         got += rx.recv_batch(&mut buf[got..]).unwrap();
    ///     }
    ///     buf.iter().map(|&x| x as u64).sum::<u64>()
    /// });
    /// let data: Vec<u32> = (0..1000).collect();
    /// tx.send_batch(&data).unwrap();
    /// assert_eq!(t.join().unwrap(), 499_500);
    /// ```
    pub fn send_batch(&mut self, values: &[T]) -> Result<(), SendError> {
        let mut done = 0;
        while done < values.len() {
            let (mem, st) = (&self.mem, &mut self.st);
            let rest = &values[done..];
            done += Self::block_on(mem, st, None, |mem, st| {
                Self::try_send_batch_in(mem, st, rest)
            })?;
        }
        Ok(())
    }
}

impl<T: Pod> Drop for PodProducer<T> {
    fn drop(&mut self) {
        let ctrl = self.mem.ctrl();
        ctrl.ends[PRODUCER].close();
        ctrl.data.notify(self.mem.scope());
    }
}

struct ConsState {
    /// How long blocking calls poll before sleeping.
    spin: Duration,
    block: usize,
    lap: u32,
    /// Slots of `block` already read.
    off: usize,
    /// Slots of `block` known to be published (from the last stamp read); `off <= known`.
    known: usize,
    /// Blocks finished so far.
    finished: u64,
    /// Blocks finished but not yet handed back through `released`.
    pending: u64,
}

/// The receiving end of a [`PodRing`].
pub struct PodConsumer<T: Pod> {
    mem: PodMem<T>,
    st: ConsState,
}

impl<T: Pod> PodConsumer<T> {
    pub(crate) fn new(mem: PodMem<T>) -> Self {
        PodConsumer {
            mem,
            st: ConsState {
                spin: DEFAULT_SPIN,
                block: 0,
                lap: 0,
                off: 0,
                known: 0,
                finished: 0,
                pending: 0,
            },
        }
    }

    /// Messages the ring holds when full.
    ///
    /// # Example
    /// ```
    /// let (_tx, rx) = ringport::ring::PodRing::<u64>::with_capacity(100);
    /// assert!(rx.capacity() >= 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.mem.geo.capacity()
    }

    /// Sets how long this end's blocking calls poll before they sleep on a futex (default
    /// 20 µs). A longer budget trades CPU for latency when replies are slow; zero sleeps
    /// after a single look, for a thread that must not spin.
    ///
    /// # Example
    /// ```
    /// let (_tx, mut rx) = ringport::ring::PodRing::<u64>::with_capacity(8);
    /// rx.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.st.spin = budget;
    }

    /// Reads the stamp of the current block; `Ok(true)` if more slots are readable.
    #[inline]
    fn refresh(mem: &PodMem<T>, st: &mut ConsState) -> Result<bool, RecvError> {
        let s = mem.stamp(st.block).load(Ordering::Acquire);
        let lap = s >> 8;
        let count = (s & 0xff) as usize;
        if lap == st.lap & LAP_MASK {
            if count > mem.geo.per_block || count < st.known {
                return Err(Corruption::new("block stamp count out of range").into());
            }
            st.known = count;
        } else if lap != st.lap.wrapping_sub(1) & LAP_MASK {
            return Err(Corruption::new("block stamp from an unexpected lap").into());
        }
        Ok(st.known > st.off)
    }

    /// Refreshes; on empty, hands back pending blocks and tells empty from closed.
    #[inline]
    fn fill(mem: &PodMem<T>, st: &mut ConsState) -> Result<(), RecvError> {
        if Self::refresh(mem, st)? {
            return Ok(());
        }
        Self::release(mem, st);
        if mem.ctrl().ends[PRODUCER].is_closed() {
            // The close was stored after the producer's last publish: look once more.
            if Self::refresh(mem, st)? {
                return Ok(());
            }
            return Err(RecvError::Disconnected);
        }
        Err(RecvError::Empty)
    }

    #[inline(always)]
    fn finish_block(mem: &PodMem<T>, st: &mut ConsState) {
        st.off = 0;
        st.known = 0;
        st.block += 1;
        if st.block == mem.geo.blocks {
            st.block = 0;
            st.lap = st.lap.wrapping_add(1);
        }
        st.finished += 1;
        st.pending += 1;
    }

    fn release(mem: &PodMem<T>, st: &mut ConsState) {
        if st.pending != 0 {
            st.pending = 0;
            mem.ctrl().released.store(st.finished, RELEASE_BLOCKS);
            mem.ctrl().space.notify(mem.scope());
        }
    }

    /// Receives one message if one is waiting, without blocking.
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Disconnected`] once the producer closed and
    /// everything it sent was received, or [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::PodRing::<i32>::with_capacity(4);
    /// tx.try_send(-5).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(-5));
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, RecvError> {
        Self::try_recv_in(&self.mem, &mut self.st)
    }

    #[inline(always)]
    fn try_recv_in(mem: &PodMem<T>, st: &mut ConsState) -> Result<T, RecvError> {
        if st.off == st.known {
            Self::fill(mem, st)?;
        }
        // SAFETY: off < known, so the slot was published by a stamp we acquired, and it
        // stays ours until its block is released.
        let v = unsafe { mem.read(st.block, st.off) };
        st.off += 1;
        if st.off == mem.geo.per_block {
            Self::finish_block(mem, st);
            if st.pending >= mem.geo.release_batch() {
                Self::release(mem, st);
            }
        }
        Ok(v)
    }

    /// Receives up to `out.len()` waiting messages into `out` in one pass, handing the
    /// space back with a single store. Returns how many it received.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), only when nothing was received.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::PodRing::<u16>::with_capacity(32);
    /// tx.try_send_batch(&[1, 2, 3, 4]).unwrap();
    /// let mut out = [0u16; 3];
    /// assert_eq!(rx.try_recv_batch(&mut out), Ok(3));
    /// assert_eq!(rx.try_recv(), Ok(4));
    /// ```
    pub fn try_recv_batch(&mut self, out: &mut [T]) -> Result<usize, RecvError> {
        Self::try_recv_batch_in(&self.mem, &mut self.st, out)
    }

    fn try_recv_batch_in(
        mem: &PodMem<T>,
        st: &mut ConsState,
        out: &mut [T],
    ) -> Result<usize, RecvError> {
        let mut n = 0;
        while n < out.len() {
            if st.off == st.known {
                if n == 0 {
                    Self::fill(mem, st)?;
                } else if !matches!(Self::refresh(mem, st), Ok(true)) {
                    // Deliver what was read; an error shows again on the next call.
                    break;
                }
            }
            let take = (st.known - st.off).min(out.len() - n);
            // SAFETY: slots off..off + take were published by an acquired stamp.
            unsafe { mem.read_into(st.block, st.off, &mut out[n..n + take]) };
            n += take;
            st.off += take;
            if st.off == mem.geo.per_block {
                Self::finish_block(mem, st);
            }
        }
        Self::release(mem, st);
        Ok(n)
    }

    /// Receives a message, waiting for one. Spins briefly, then sleeps on a futex.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`], [`RecvError::PeerDied`] (noticed within about 100 ms
    /// of the death) or [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::PodRing::<u64>::with_capacity(8);
    /// std::thread::spawn(move || tx.send(42).unwrap());
    /// assert_eq!(rx.recv(), Ok(42));
    /// ```
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.recv_until(None)
    }

    /// Like [`recv`](Self::recv), but gives up with [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let (_tx, mut rx) = ringport::ring::PodRing::<u64>::with_capacity(8);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<T, RecvError> {
        let (mem, st) = (&self.mem, &mut self.st);
        Self::block_on(mem, deadline, |st| Self::try_recv_in(mem, st), st)
    }

    /// Receives at least one message into `out`, waiting for the first; then as
    /// [`try_recv_batch`](Self::try_recv_batch).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::ring::PodRing::<u64>::with_capacity(8);
    /// std::thread::spawn(move || tx.send_batch(&[1, 2]).unwrap());
    /// let mut out = [0; 4];
    /// let n = rx.recv_batch(&mut out).unwrap();
    /// assert!(n >= 1 && out[0] == 1);
    /// ```
    pub fn recv_batch(&mut self, out: &mut [T]) -> Result<usize, RecvError> {
        let (mem, st) = (&self.mem, &mut self.st);
        Self::block_on(mem, None, |st| Self::try_recv_batch_in(mem, st, out), st)
    }

    fn block_on<R>(
        mem: &PodMem<T>,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut ConsState) -> Result<R, RecvError>,
        st: &mut ConsState,
    ) -> Result<R, RecvError> {
        let mut poll = |st: &mut ConsState| match attempt(st) {
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
                    // Everything published before the death stays receivable: look once
                    // more before reporting it.
                    poll(st).or(Some(Err(RecvError::PeerDied { pid })))
                })
            })
            .unwrap_or(Err(RecvError::Timeout))
    }
}

impl<T: Pod> Drop for PodConsumer<T> {
    fn drop(&mut self) {
        let ctrl = self.mem.ctrl();
        ctrl.ends[CONSUMER].close();
        ctrl.space.notify(self.mem.scope());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_packs_u64_seven_to_a_line() {
        let g = PodGeometry::new(8, 8, 100).unwrap();
        assert_eq!((g.block_bytes, g.slot_off, g.per_block), (64, 8, 7));
        assert_eq!(g.blocks, 15);
    }

    #[test]
    fn geometry_large_and_aligned_types() {
        let g = PodGeometry::new(100, 4, 3).unwrap();
        assert_eq!((g.block_bytes, g.per_block, g.blocks), (128, 1, 3));
        let g = PodGeometry::new(16, 16, 1).unwrap();
        assert_eq!((g.slot_off, g.per_block), (16, 3));
        assert!(PodGeometry::new(0, 1, 1).is_err());
        assert!(PodGeometry::new(8, 128, 1).is_err());
        assert!(PodGeometry::new(8, 8, usize::MAX).is_err());
    }

    #[test]
    fn wraps_many_laps_in_order() {
        let (mut tx, mut rx) = PodRing::<u64>::with_capacity(7);
        let mut next = 0u64;
        for i in 0..10_000u64 {
            tx.try_send(i).unwrap();
            if i % 3 == 2 {
                while let Ok(v) = rx.try_recv() {
                    assert_eq!(v, next);
                    next += 1;
                }
            }
        }
        while let Ok(v) = rx.try_recv() {
            assert_eq!(v, next);
            next += 1;
        }
        assert_eq!(next, 10_000);
    }

    #[test]
    fn fills_to_capacity_exactly() {
        let (mut tx, mut rx) = PodRing::<u32>::with_capacity(30);
        let cap = tx.capacity();
        for i in 0..cap as u32 {
            tx.try_send(i).unwrap();
        }
        assert_eq!(tx.try_send(0), Err(SendError::Full));
        for i in 0..cap as u32 {
            assert_eq!(rx.try_recv(), Ok(i));
        }
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        tx.try_send(9).unwrap();
        assert_eq!(rx.try_recv(), Ok(9));
    }

    #[test]
    fn batch_send_spanning_blocks_is_received_whole() {
        let (mut tx, mut rx) = PodRing::<u64>::with_capacity(64);
        let data: Vec<u64> = (0..40).collect();
        assert_eq!(tx.try_send_batch(&data), Ok(40));
        let mut out = vec![0u64; 64];
        assert_eq!(rx.try_recv_batch(&mut out), Ok(40));
        assert_eq!(&out[..40], &data[..]);
    }

    #[test]
    fn corrupt_stamp_is_an_error_not_a_read() {
        let (mut tx, mut rx) = PodRing::<u64>::with_capacity(14);
        tx.try_send(1).unwrap();
        rx.mem.stamp(0).store(stamp(0, 200), Ordering::Relaxed);
        assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt(_))));
        rx.mem.stamp(0).store(stamp(7, 1), Ordering::Relaxed);
        assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt(_))));
    }

    #[test]
    fn corrupt_released_is_an_error() {
        let (mut tx, _rx) = PodRing::<u64>::with_capacity(14);
        for i in 0..14 {
            tx.try_send(i).unwrap();
        }
        tx.mem.ctrl().released.store(1 << 40, Ordering::Relaxed);
        assert!(matches!(tx.try_send(0), Err(SendError::Corrupt(_))));
    }

    #[test]
    fn timeouts_fire() {
        let (mut tx, mut rx) = PodRing::<u64>::with_capacity(1);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(2)),
            Err(RecvError::Timeout)
        );
        while tx.try_send(0).is_ok() {}
        assert_eq!(
            tx.send_timeout(0, Duration::from_millis(2)),
            Err(SendError::Timeout)
        );
    }

    #[test]
    fn zero_spin_budget_sleeps_and_is_woken() {
        let (mut tx, mut rx) = PodRing::<u64>::with_capacity(1);
        tx.set_spin_budget(Duration::ZERO);
        rx.set_spin_budget(Duration::ZERO);
        let t = std::thread::spawn(move || {
            for i in 0..2000u64 {
                tx.send(i).unwrap();
            }
        });
        for i in 0..2000u64 {
            assert_eq!(rx.recv(), Ok(i));
        }
        t.join().unwrap();
    }

    #[test]
    fn blocked_receiver_wakes_on_close() {
        let (tx, mut rx) = PodRing::<u64>::with_capacity(8);
        let t = std::thread::spawn(move || rx.recv());
        std::thread::sleep(Duration::from_millis(20));
        drop(tx);
        assert_eq!(t.join().unwrap(), Err(RecvError::Disconnected));
    }
}
