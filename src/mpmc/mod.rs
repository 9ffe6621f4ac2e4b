//! Multi-producer multi-consumer rings of `Pod` values, on the heap or in a named segment
//! shared by any number of processes.
//!
//! # The contract
//!
//! - **Values.** Any `T: bytemuck::Pod`, copied into a slot; byte frames of varying
//!   length as [`Frame<N>`].
//! - **Bounded FIFO.** [`channel`] (threads) and [`create`] / [`open`] (processes) give a
//!   [`Sender`] and a [`Receiver`]; both are `Clone` and `Sync`, and any number of each
//!   may exist in any number of processes. Each message is received once, in the order
//!   the sends completed their claims.
//! - **Every operation** comes as `try_` (never blocks), blocking, and `_timeout`.
//! - **Disconnection.** When the last sender is gone (dropped, or its process died),
//!   receivers get what is left, then [`RecvError::Disconnected`]; when the last receiver
//!   is gone, sends fail with [`SendError::Disconnected`].
//! - **Crashes.** A process killed between claiming a slot and finishing with it does not
//!   wedge the others: a producer's half-written message is skipped (it was never sent),
//!   a consumer's half-read one is lost with it. Survivors that wait on such a slot
//!   recover it within a few milliseconds: blocked calls when they next look (at least
//!   every 100 ms), `try_` calls once they have found the same slot held for a
//!   millisecond. A dead process's handles stop counting once someone looks for dead
//!   participants: blocked calls at every look, `try_` calls that find nothing to do at
//!   most every 100 ms. See the module `core` and ARCHITECTURE.md.
//! - **Untrusted memory.** Slot states are validated; a ring whose positions cannot add
//!   up gives `Corrupt`, never an out-of-bounds access.
//!
//! # Example
//!
//! ```
//! let (tx, rx) = ringport::mpmc::channel::<u64>(1024);
//! let producers: Vec<_> = (0..2)
//!     .map(|p| {
//!         let tx = tx.clone();
//!         std::thread::spawn(move || (0..1000).for_each(|i| tx.send(p * 1000 + i).unwrap()))
//!     })
//!     .collect();
//! drop(tx);
//! let consumers: Vec<_> = (0..2)
//!     .map(|_| {
//!         let rx = rx.clone();
//!         std::thread::spawn(move || std::iter::from_fn(|| rx.recv().ok()).sum::<u64>())
//!     })
//!     .collect();
//! producers.into_iter().for_each(|p| p.join().unwrap());
//! let total: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
//! assert_eq!(total, (0..2000).sum());
//! ```

mod core;
mod frame;
mod layout;
mod mem;

pub use frame::Frame;

use self::core::{Blocked, Core};
use crate::error::{RecvError, SendError};
use crate::participants::{register, Watch};
use crate::ring::ctrl::{spin_then, DEFAULT_SPIN};
use crate::sync::Ordering;
use bytemuck::Pod;
use layout::MpmcGeometry;
use mem::MpmcMem;
use std::time::{Duration, Instant};

#[cfg(not(loom))]
use crate::segment::{Segment, SegmentError, PARAMS};

/// Participant records of a ring made by [`channel`] or [`create`]: how many processes
/// can take part at once.
pub const DEFAULT_PROCESSES: usize = 32;

#[cfg(not(loom))]
const KIND_MPMC: u32 = u32::from_le_bytes(*b"MPMC");

/// A ring on the heap for threads of this process, holding at least `capacity` messages
/// (rounded up to a power of two).
///
/// # Panics
/// If `T` is zero-sized or aligned to more than 64 bytes, or the ring is over 1 TiB.
///
/// # Example
/// ```
/// let (tx, rx) = ringport::mpmc::channel::<u32>(8);
/// tx.send(1).unwrap();
/// assert_eq!(rx.recv(), Ok(1));
/// ```
pub fn channel<T: Pod + Send>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let geo = geometry::<T>(capacity, 1).unwrap_or_else(|e| panic!("mpmc::channel: {e}"));
    let mem = MpmcMem::heap(geo);
    let me = register(mem.records(), 1).expect("a fresh ring has a free record");
    let core = Core { mem, me };
    (Sender::new(core.clone()), Receiver::new(core))
}

fn geometry<T: Pod>(capacity: usize, records: usize) -> Result<MpmcGeometry, &'static str> {
    MpmcGeometry::new(
        capacity,
        std::mem::size_of::<T>(),
        std::mem::align_of::<T>(),
        records,
    )
}

/// Creates the named ring `name` of `T` values, holding at least `capacity` messages,
/// for up to [`DEFAULT_PROCESSES`] processes at once, and returns this process's ends.
///
/// # Errors
/// As [`Segment::create`]; `Incompatible` for a `T` or capacity it cannot hold.
///
/// # Example
/// ```
/// let name = format!("doc-mpmc-create-{}", std::process::id());
/// let (tx, _rx) = ringport::mpmc::create::<u64>(&name, 64)?;
/// let (_tx2, rx2) = ringport::mpmc::open::<u64>(&name)?; // usually another process
/// tx.send(7).unwrap();
/// assert_eq!(rx2.recv(), Ok(7));
/// # Ok::<(), ringport::segment::SegmentError>(())
/// ```
#[cfg(not(loom))]
pub fn create<T: Pod + Send>(
    name: &str,
    capacity: usize,
) -> Result<(Sender<T>, Receiver<T>), SegmentError> {
    let geo = geometry::<T>(capacity, DEFAULT_PROCESSES).map_err(|reason| {
        SegmentError::Incompatible {
            name: name.to_owned(),
            reason: reason.to_owned(),
        }
    })?;
    let mut params = [0; PARAMS];
    params[0] = geo.capacity as u64;
    params[1] = std::mem::size_of::<T>() as u64;
    params[2] = std::mem::align_of::<T>() as u64;
    params[3] = geo.records as u64;
    let segment = Segment::create(name, KIND_MPMC, params, geo.ring_len())?;
    attach(segment, geo)
}

/// Opens the named ring `name` made by [`create`] with the same `T` (checked by size and
/// alignment), and returns this process's ends.
///
/// # Errors
/// As [`Segment::open`]; `Incompatible` if `T` differs, `Corrupt` if the sizes do not
/// add up, `Io` (with `ErrorKind::QuotaExceeded`) if every participant record is taken
/// by a live process.
///
/// # Example
/// ```
/// let r = ringport::mpmc::open::<u64>("no-such-ring");
/// assert!(matches!(r, Err(ringport::segment::SegmentError::NotFound { .. })));
/// ```
#[cfg(not(loom))]
pub fn open<T: Pod + Send>(name: &str) -> Result<(Sender<T>, Receiver<T>), SegmentError> {
    let segment = Segment::open(name, KIND_MPMC)?;
    let p = segment.params();
    let err = |corrupt: bool, reason: String| {
        let name = name.to_owned();
        if corrupt {
            SegmentError::Corrupt { name, reason }
        } else {
            SegmentError::Incompatible { name, reason }
        }
    };
    if p[1] != std::mem::size_of::<T>() as u64 || p[2] != std::mem::align_of::<T>() as u64 {
        return Err(err(
            false,
            format!(
                "message type is {} bytes aligned to {}, the ring carries {} aligned to {}",
                std::mem::size_of::<T>(),
                std::mem::align_of::<T>(),
                p[1],
                p[2]
            ),
        ));
    }
    let (Ok(capacity), Ok(records)) = (usize::try_from(p[0]), usize::try_from(p[3])) else {
        return Err(err(true, "ring sizes do not fit this machine".into()));
    };
    let geo = geometry::<T>(capacity, records).map_err(|e| err(true, e.into()))?;
    if geo.capacity != capacity || geo.ring_len() != segment.payload_len() {
        return Err(err(
            true,
            "payload length does not match the ring sizes".into(),
        ));
    }
    attach(segment, geo)
}

#[cfg(not(loom))]
fn attach<T: Pod + Send>(
    segment: Segment,
    geo: MpmcGeometry,
) -> Result<(Sender<T>, Receiver<T>), SegmentError> {
    let name = segment.name().to_owned();
    let mem = MpmcMem::<T>::new(crate::region::Region::segment(segment), geo);
    let token = crate::process::ProcessId::current().to_word();
    let me = match register(mem.records(), token) {
        Some(me) => me,
        None => {
            // Records of dead processes come back once what they held is repaired.
            let probe = Core {
                mem: mem.clone(),
                me: 0,
            };
            probe.reap_all();
            register(mem.records(), token).ok_or_else(|| SegmentError::Io {
                name,
                source: std::io::Error::new(
                    std::io::ErrorKind::QuotaExceeded,
                    "every participant record of the ring is held by a live process",
                ),
            })?
        }
    };
    let core = Core { mem, me };
    Ok((Sender::new(core.clone()), Receiver::new(core)))
}

/// The sending end of an MPMC ring. Clones send into the same ring; the ring is
/// disconnected for receivers when the last one is dropped.
///
/// # Example
/// ```
/// let (tx, rx) = ringport::mpmc::channel::<u8>(2);
/// tx.try_send(1).unwrap();
/// tx.try_send(2).unwrap();
/// assert_eq!(tx.try_send(3), Err(ringport::SendError::Full));
/// # drop(rx);
/// ```
pub struct Sender<T: Pod> {
    core: Core<T>,
    watch: Watch,
    spin: Duration,
}

/// The receiving end of an MPMC ring. Clones share the messages: each is received by one
/// of them.
///
/// # Example
/// ```
/// let (tx, rx) = ringport::mpmc::channel::<u8>(4);
/// let rx2 = rx.clone();
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// assert_eq!(rx2.recv(), Ok(1));
/// assert_eq!(rx.recv(), Ok(2));
/// ```
pub struct Receiver<T: Pod> {
    core: Core<T>,
    watch: Watch,
    spin: Duration,
}

impl<T: Pod> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.capacity())
            .field("process", &self.core.me)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.capacity())
            .field("process", &self.core.me)
            .finish_non_exhaustive()
    }
}

const SENDERS: usize = 0;
const RECEIVERS: usize = 1;

/// Adds a handle of kind `which`: to the ring's total first, then to this process's
/// record, so that a crash in between leaves the total too high, never too low.
fn join<T: Pod>(core: &Core<T>, which: usize) {
    core.mem.ctrl().handles[which].fetch_add(1, Ordering::AcqRel);
    let r = record(core);
    [&r.senders, &r.receivers][which].fetch_add(1, Ordering::AcqRel);
}

/// Takes a handle of kind `which` away: from the record first, then from the total
/// (`Release`: a peer that sees it gone sees everything the handle did), never below
/// zero (a count in shared memory may have been cleared by someone who wrongly judged
/// this process dead).
fn leave<T: Pod>(core: &Core<T>, which: usize) {
    let r = record(core);
    for count in [
        [&r.senders, &r.receivers][which],
        &core.mem.ctrl().handles[which],
    ] {
        let _ = count.fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

fn record<T: Pod>(core: &Core<T>) -> &layout::Record {
    &core.mem.records()[core.me as usize - 1]
}

impl<T: Pod> Sender<T> {
    fn new(core: Core<T>) -> Self {
        join(&core, SENDERS);
        Sender {
            core,
            watch: Watch::default(),
            spin: DEFAULT_SPIN,
        }
    }

    /// Messages the ring holds when full.
    ///
    /// # Example
    /// ```
    /// let (tx, _rx) = ringport::mpmc::channel::<u64>(100);
    /// assert_eq!(tx.capacity(), 128);
    /// ```
    pub fn capacity(&self) -> usize {
        self.core.mem.geo.capacity
    }

    /// Sets how long blocking sends poll before they sleep (20 µs unless set; zero
    /// sleeps after one look).
    ///
    /// # Example
    /// ```
    /// let (mut tx, _rx) = ringport::mpmc::channel::<u64>(8);
    /// tx.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.spin = budget;
    }

    /// One look at the ring: `None` to keep waiting, else the outcome. `look` asks
    /// whether holders of slots in the way died.
    fn poll(&self, value: T, fresh: bool, look: bool) -> Option<Result<(), SendError>> {
        if self.core.mem.ctrl().handles[RECEIVERS].load(Ordering::Acquire) == 0
            && !self.core.has_handles(false)
        {
            return Some(Err(SendError::Disconnected));
        }
        match self.core.try_send(value, fresh) {
            Err(c) => Some(Err(c.into())),
            Ok(Ok(())) => Some(Ok(())),
            Ok(Err(blocked)) => {
                if !self.core.has_handles(false) {
                    return Some(Err(SendError::Disconnected));
                }
                let reaped = match blocked {
                    Blocked::Held(pos, owner) if look || self.watch.held_too_long(pos) => {
                        self.core.reap(owner)
                    }
                    _ if look || self.watch.look_due() => self.core.reap_all(),
                    _ => false,
                };
                // What was repaired may have made room: look once more now.
                reaped.then(|| self.poll(value, false, false)).flatten()
            }
        }
    }

    /// Sends `value` if there is room now.
    ///
    /// # Errors
    /// [`SendError::Full`], [`SendError::Disconnected`] when no receiver is left,
    /// [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (tx, rx) = ringport::mpmc::channel::<u64>(8);
    /// tx.try_send(5).unwrap();
    /// drop(rx);
    /// assert_eq!(tx.try_send(6), Err(ringport::SendError::Disconnected));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), SendError> {
        self.poll(value, true, false)
            .unwrap_or(Err(SendError::Full))
    }

    /// Sends `value`, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`SendError::Disconnected`], [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (tx, rx) = ringport::mpmc::channel::<u64>(2);
    /// let t = std::thread::spawn(move || (0..100).for_each(|i| tx.send(i).unwrap()));
    /// assert_eq!((0..100).map(|_| rx.recv().unwrap()).sum::<u64>(), 4950);
    /// t.join().unwrap();
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError> {
        self.send_until(value, None)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`SendError::Timeout`], and those of [`send`](Self::send).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = ringport::mpmc::channel::<u64>(2);
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// let r = tx.send_timeout(3, Duration::from_millis(1));
    /// assert_eq!(r, Err(ringport::SendError::Timeout));
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError> {
        self.send_until(value, Instant::now().checked_add(timeout))
    }

    fn send_until(&self, value: T, deadline: Option<Instant>) -> Result<(), SendError> {
        let mut fresh = true;
        let spun = spin_then(self.spin, || {
            self.poll(value, std::mem::take(&mut fresh), false)
        });
        if let Some(r) = spun {
            return r;
        }
        self.core
            .mem
            .ctrl()
            .space
            .wait_until(self.core.mem.scope(), deadline, |look| {
                self.poll(value, false, look)
            })
            .unwrap_or(Err(SendError::Timeout))
    }
}

impl<T: Pod> Receiver<T> {
    fn new(core: Core<T>) -> Self {
        join(&core, RECEIVERS);
        Receiver {
            core,
            watch: Watch::default(),
            spin: DEFAULT_SPIN,
        }
    }

    /// Messages the ring holds when full.
    ///
    /// # Example
    /// ```
    /// let (_tx, rx) = ringport::mpmc::channel::<u64>(3);
    /// assert_eq!(rx.capacity(), 4);
    /// ```
    pub fn capacity(&self) -> usize {
        self.core.mem.geo.capacity
    }

    /// Sets how long blocking receives poll before they sleep (20 µs unless set; zero
    /// sleeps after one look).
    ///
    /// # Example
    /// ```
    /// let (_tx, mut rx) = ringport::mpmc::channel::<u64>(8);
    /// rx.set_spin_budget(std::time::Duration::from_micros(100));
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.spin = budget;
    }

    fn poll(&self, fresh: bool, look: bool) -> Option<Result<T, RecvError>> {
        match self.core.try_recv(fresh) {
            Err(c) => Some(Err(c.into())),
            Ok(Ok(v)) => Some(Ok(v)),
            Ok(Err(blocked)) => {
                let reaped = match blocked {
                    Blocked::Held(pos, owner) if look || self.watch.held_too_long(pos) => {
                        self.core.reap(owner)
                    }
                    _ if look || self.watch.look_due() => self.core.reap_all(),
                    _ => false,
                };
                if reaped {
                    return self.poll(false, false);
                }
                if !self.core.has_handles(true) {
                    // A sender may have sent and then dropped since the look above; its
                    // count was released after its sends, so one more look finds them.
                    return Some(match self.core.try_recv(false) {
                        Err(c) => Err(c.into()),
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(_)) => Err(RecvError::Disconnected),
                    });
                }
                None
            }
        }
    }

    /// Receives a message if one is ready now.
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Disconnected`] once no sender is left and the
    /// ring is drained, [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (tx, rx) = ringport::mpmc::channel::<u64>(8);
    /// assert_eq!(rx.try_recv(), Err(ringport::RecvError::Empty));
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx.try_recv(), Err(ringport::RecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, RecvError> {
        self.poll(true, false).unwrap_or(Err(RecvError::Empty))
    }

    /// Receives a message, waiting as long as it takes.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`], [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (tx, rx) = ringport::mpmc::channel::<u64>(8);
    /// std::thread::spawn(move || tx.send(9).unwrap());
    /// assert_eq!(rx.recv(), Ok(9));
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None)
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], and those of [`recv`](Self::recv).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let (_tx, rx) = ringport::mpmc::channel::<u64>(8);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvError> {
        let mut fresh = true;
        if let Some(r) = spin_then(self.spin, || self.poll(std::mem::take(&mut fresh), false)) {
            return r;
        }
        self.core
            .mem
            .ctrl()
            .data
            .wait_until(self.core.mem.scope(), deadline, |look| {
                self.poll(false, look)
            })
            .unwrap_or(Err(RecvError::Timeout))
    }
}

impl<T: Pod> Clone for Sender<T> {
    fn clone(&self) -> Self {
        let mut s = Sender::new(self.core.clone());
        s.spin = self.spin;
        s
    }
}

impl<T: Pod> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        let mut r = Receiver::new(self.core.clone());
        r.spin = self.spin;
        r
    }
}

impl<T: Pod> Drop for Sender<T> {
    fn drop(&mut self) {
        leave(&self.core, SENDERS);
        self.core.mem.ctrl().data.notify(self.core.mem.scope());
    }
}

impl<T: Pod> Drop for Receiver<T> {
    fn drop(&mut self) {
        leave(&self.core, RECEIVERS);
        self.core.mem.ctrl().space.notify(self.core.mem.scope());
    }
}

/// Heap-placed tests, small enough for Miri (`cargo +nightly miri test --lib mpmc::`).
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_empty() {
        let (tx, rx) = channel::<u32>(4);
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        for i in 0..4 {
            tx.try_send(i).unwrap();
        }
        assert_eq!(tx.try_send(4), Err(SendError::Full));
        for lap in 0..3 {
            for i in 0..4 {
                assert_eq!(rx.try_recv(), Ok(lap * 4 + i));
                tx.try_send((lap + 1) * 4 + i).unwrap();
            }
        }
    }

    #[test]
    fn disconnection_both_ways() {
        let (tx, rx) = channel::<u8>(2);
        tx.send(1).unwrap();
        let tx2 = tx.clone();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        drop(tx2);
        assert_eq!(rx.recv(), Err(RecvError::Disconnected));
        let (tx, rx) = channel::<u8>(2);
        drop(rx);
        assert_eq!(tx.send(1), Err(SendError::Disconnected));
    }

    /// Each producer sends its own increasing sequence; every consumer must see each
    /// producer's messages in order, and together they must see every message once.
    #[test]
    fn producers_and_consumers_lose_nothing_and_keep_order() {
        let per = if cfg!(miri) { 50 } else { 20_000 };
        let (tx, rx) = channel::<u64>(16);
        let producers: Vec<_> = (0..3u64)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        tx.send(p << 32 | i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut last = [None::<u64>; 3];
                    let mut got = 0u64;
                    while let Ok(v) = rx.recv() {
                        let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                        assert!(last[p].is_none_or(|l| l < i), "producer {p} out of order");
                        last[p] = Some(i);
                        got += 1;
                    }
                    got
                })
            })
            .collect();
        drop(rx);
        producers.into_iter().for_each(|p| p.join().unwrap());
        let got: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(got, 3 * per);
    }
}
