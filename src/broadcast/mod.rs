//! Broadcast rings: many publishers, many subscribers, every subscriber receives every
//! message with its own cursor. On the heap or in a named segment shared by processes.
//!
//! # The contract
//!
//! - **Delivery.** Every subscriber receives the messages published after it subscribed
//!   (or the last [`BroadcastOptions::history`] before, too), in position order: the
//!   order in which publishers claimed their positions.
//! - **Overflow** ([`Overflow`]): under [`Overwrite`](Overflow::Overwrite) publishers
//!   never wait; a subscriber a whole ring behind gets [`RecvError::Lagged`] with the
//!   number of messages it lost and goes on from the oldest one kept. Under
//!   [`Backpressure`](Overflow::Backpressure) nothing is lost: publishers wait for the
//!   slowest live subscriber, and a subscriber whose process died is removed.
//! - **Torn reads** cannot be delivered: messages are copied with atomic loads between
//!   two loads of the slot's state, and a copy that a publisher overwrote is discarded
//!   (as a lag).
//! - **Disconnection.** Once no publisher is left (dropped, or its process died), a
//!   subscriber receives what is left, then [`RecvError::Disconnected`].
//! - **Crashes.** A publisher killed mid-write leaves its position skipped; survivors
//!   waiting on it recover within a few milliseconds, as in the MPMC ring.
//!
//! # Example
//!
//! ```
//! use ringport::broadcast::{self, BroadcastOptions};
//!
//! let publisher = broadcast::channel(BroadcastOptions::default());
//! let mut a = publisher.subscribe().unwrap();
//! let mut b = publisher.subscribe().unwrap();
//! publisher.publish(b"tick").unwrap();
//! assert_eq!(a.recv().unwrap(), b"tick");
//! assert_eq!(b.recv().unwrap(), b"tick");
//! ```

#[cfg(not(loom))]
mod channel;
mod core;
mod layout;
mod mem;

#[cfg(not(loom))]
pub use channel::{BroadcastChannel, ChannelError, ChannelReceiver, ChannelSender};

pub use layout::Overflow;

use self::core::{Blocked, Core};
use crate::error::{RecvError, SendError};
use crate::participants::{register, Watch};
use crate::ring::ctrl::{spin_then, DEFAULT_SPIN};
use crate::sync::{AtomicU64, Ordering};
use layout::{ahead, pos_of, BroadcastGeometry, SubRecord};
use mem::BroadcastMem;
use std::time::{Duration, Instant};
use thiserror::Error;

#[cfg(not(loom))]
use crate::segment::{Segment, SegmentError, PARAMS};

#[cfg(not(loom))]
const KIND_BROADCAST: u32 = u32::from_le_bytes(*b"BCST");

const PUBLISHERS: usize = 0;
const SUBSCRIBERS: usize = 1;
/// Index of the `closing` flag among the control block's handle words.
#[cfg(not(loom))]
const CLOSING: usize = 2;

/// The sizes and policy of a broadcast ring, fixed when it is created.
///
/// # Example
/// ```
/// use ringport::broadcast::{BroadcastOptions, Overflow};
/// let opts = BroadcastOptions { overflow: Overflow::Backpressure, ..Default::default() };
/// assert_eq!(opts.capacity, 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// Messages the ring keeps (rounded up to a power of two; default 1024).
    pub capacity: usize,
    /// Longest message in bytes (default 256).
    pub max_message: usize,
    /// What publishers do when the slowest subscriber is a ring behind (default
    /// [`Overflow::Overwrite`]).
    pub overflow: Overflow,
    /// Messages before the newest that a new subscriber also receives (default 0: only
    /// what is published after it subscribes); at most the capacity.
    pub history: usize,
    /// Most subscribers at once (default 64).
    pub max_subscribers: usize,
    /// Most processes that publish at once (default 32).
    pub max_publisher_processes: usize,
}

impl Default for BroadcastOptions {
    fn default() -> Self {
        BroadcastOptions {
            capacity: 1024,
            max_message: 256,
            overflow: Overflow::Overwrite,
            history: 0,
            max_subscribers: 64,
            max_publisher_processes: 32,
        }
    }
}

impl BroadcastOptions {
    fn geometry(&self) -> Result<BroadcastGeometry, &'static str> {
        BroadcastGeometry::new(
            self.capacity,
            self.max_message,
            self.max_publisher_processes,
            self.max_subscribers,
            self.overflow,
            self.history,
        )
    }
}

/// Why a subscription failed.
///
/// # Example
/// ```
/// use ringport::broadcast::{self, BroadcastOptions, SubscribeError};
/// let p = broadcast::channel(BroadcastOptions { max_subscribers: 1, ..Default::default() });
/// let _s = p.subscribe().unwrap();
/// assert_eq!(p.subscribe().unwrap_err(), SubscribeError::TooManySubscribers { max: 1 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Every subscriber record is held by a live subscriber.
    #[error("the ring already has its maximum of {max} subscribers")]
    TooManySubscribers {
        /// The ring's limit.
        max: usize,
    },
}

/// A broadcast ring on the heap for threads of this process.
///
/// # Panics
/// If an option is out of range (capacity 0 or over 2^32, a history over the capacity,
/// no subscriber or publisher records, a ring over 1 TiB).
///
/// # Example
/// ```
/// let p = ringport::broadcast::channel(Default::default());
/// let mut s = p.subscribe().unwrap();
/// p.publish(&[1, 2, 3]).unwrap();
/// assert_eq!(s.try_recv().unwrap(), [1, 2, 3]);
/// ```
pub fn channel(options: BroadcastOptions) -> Publisher {
    let geo = options
        .geometry()
        .unwrap_or_else(|e| panic!("broadcast::channel: {e}"));
    let mem = BroadcastMem::heap(geo);
    let me = register(mem.publishers(), 1).expect("a fresh ring has a free record");
    Publisher::new(Core { mem, me }, 1)
}

/// Creates the named broadcast ring `name` for other processes to [`open`].
///
/// # Errors
/// As [`Segment::create`]; `Incompatible` for options out of range.
///
/// # Example
/// ```
/// use ringport::broadcast;
/// let name = format!("doc-bcast-{}", std::process::id());
/// let p = broadcast::create(&name, Default::default())?;
/// let mut s = broadcast::open(&name)?.subscribe().unwrap(); // usually another process
/// p.publish(b"hi").unwrap();
/// assert_eq!(s.recv().unwrap(), b"hi");
/// # Ok::<(), ringport::segment::SegmentError>(())
/// ```
#[cfg(not(loom))]
pub fn create(name: &str, options: BroadcastOptions) -> Result<Publisher, SegmentError> {
    create_with(name, options, false)
}

/// [`create`], keeping the name when the creator's handle drops if `persist`.
#[cfg(not(loom))]
fn create_with(
    name: &str,
    options: BroadcastOptions,
    persist: bool,
) -> Result<Publisher, SegmentError> {
    let geo = options
        .geometry()
        .map_err(|reason| SegmentError::Incompatible {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })?;
    let mut params = [0; PARAMS];
    params[0] = geo.capacity as u64;
    params[1] = geo.max_message as u64;
    params[2] = geo.publishers as u64;
    params[3] = geo.subscribers as u64;
    params[4] = match geo.overflow {
        Overflow::Overwrite => 0,
        Overflow::Backpressure => 1,
    };
    params[5] = geo.history as u64;
    let mut segment = Segment::create(name, KIND_BROADCAST, params, geo.ring_len())?;
    if persist {
        segment.persist();
    }
    attach(segment, geo)
}

/// Opens the named broadcast ring `name` made by [`create`].
///
/// # Errors
/// As [`Segment::open`]; `Corrupt` if its sizes do not add up; `Io` with
/// `QuotaExceeded` if every publisher record is held by a live process.
///
/// # Example
/// ```
/// let r = ringport::broadcast::open("no-such-broadcast");
/// assert!(matches!(r, Err(ringport::segment::SegmentError::NotFound { .. })));
/// ```
#[cfg(not(loom))]
pub fn open(name: &str) -> Result<Publisher, SegmentError> {
    let segment = Segment::open(name, KIND_BROADCAST)?;
    let p = segment.params();
    let corrupt = |reason: &str| SegmentError::Corrupt {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let words: Vec<usize> = p
        .iter()
        .map(|&v| usize::try_from(v))
        .collect::<Result<_, _>>()
        .map_err(|_| corrupt("ring sizes do not fit this machine"))?;
    let overflow = match p[4] {
        0 => Overflow::Overwrite,
        1 => Overflow::Backpressure,
        _ => return Err(corrupt("unknown overflow policy")),
    };
    let geo = BroadcastGeometry::new(words[0], words[1], words[2], words[3], overflow, words[5])
        .map_err(corrupt)?;
    if geo.capacity != words[0] || geo.ring_len() != segment.payload_len() {
        return Err(corrupt("payload length does not match the ring's sizes"));
    }
    attach(segment, geo)
}

#[cfg(not(loom))]
fn attach(segment: Segment, geo: BroadcastGeometry) -> Result<Publisher, SegmentError> {
    let name = segment.name().to_owned();
    let mem = BroadcastMem::new(crate::region::Region::segment(segment), geo);
    let token = crate::process::ProcessId::current().to_word();
    let me = match register(mem.publishers(), token) {
        Some(me) => me,
        None => {
            Core {
                mem: mem.clone(),
                me: 0,
            }
            .reap_all();
            register(mem.publishers(), token).ok_or_else(|| SegmentError::Io {
                name,
                source: std::io::Error::new(
                    std::io::ErrorKind::QuotaExceeded,
                    "every publisher record of the ring is held by a live process",
                ),
            })?
        }
    };
    Ok(Publisher::new(Core { mem, me }, token))
}

/// Adds a handle: to the total first, then to the record (see the MPMC ring's `join`).
fn join(core: &Core, which: usize) {
    core.mem.ctrl().handles[which].fetch_add(1, Ordering::AcqRel);
    if which == PUBLISHERS {
        publisher_record(core)
            .senders
            .fetch_add(1, Ordering::AcqRel);
    }
}

/// Takes a handle away: from the record first, then from the total, never below zero.
fn leave(core: &Core, which: usize) {
    let total = &core.mem.ctrl().handles[which];
    let counts = if which == PUBLISHERS {
        vec![&publisher_record(core).senders, total]
    } else {
        vec![total]
    };
    for count in counts {
        let _ = count.fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

fn publisher_record(core: &Core) -> &crate::participants::Record {
    &core.mem.publishers()[core.me as usize - 1]
}

/// Publishes to a broadcast ring, and makes subscribers. Clones publish into the same
/// ring; subscribers see the ring disconnected when the last publisher is gone.
///
/// # Example
/// ```
/// let p = ringport::broadcast::channel(Default::default());
/// let p2 = p.clone();
/// let mut s = p.subscribe().unwrap();
/// p2.publish(b"from a clone").unwrap();
/// drop((p, p2));
/// assert_eq!(s.recv().unwrap(), b"from a clone");
/// assert_eq!(s.recv(), Err(ringport::RecvError::Disconnected));
/// ```
pub struct Publisher {
    core: Core,
    /// This process's token, for the subscribers it makes.
    token: u64,
    /// The lowest subscriber cursor the last backpressure check found.
    room: AtomicU64,
    watch: Watch,
    spin: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("capacity", &self.capacity())
            .field("max_message", &self.max_message())
            .field("overflow", &self.core.mem.geo.overflow)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    fn new(core: Core, token: u64) -> Publisher {
        join(&core, PUBLISHERS);
        Publisher {
            core,
            token,
            room: AtomicU64::new(0),
            watch: Watch::default(),
            spin: DEFAULT_SPIN,
        }
    }

    /// Messages the ring keeps.
    ///
    /// # Example
    /// ```
    /// use ringport::broadcast::{self, BroadcastOptions};
    /// let p = broadcast::channel(BroadcastOptions { capacity: 100, ..Default::default() });
    /// assert_eq!(p.capacity(), 128);
    /// ```
    pub fn capacity(&self) -> usize {
        self.core.mem.geo.capacity
    }

    /// Where every live subscriber has read up to, under backpressure (`u64::MAX` with
    /// none); under overwrite subscribers do not publish their cursors and this says
    /// nothing.
    #[cfg(not(loom))]
    pub(crate) fn lowest_cursor(&self) -> u64 {
        self.core.lowest_cursor()
    }

    /// Whether publishers wait for subscribers.
    #[cfg(not(loom))]
    pub(crate) fn overflow(&self) -> Overflow {
        self.core.mem.geo.overflow
    }

    /// Longest message in bytes.
    ///
    /// # Example
    /// ```
    /// assert_eq!(ringport::broadcast::channel(Default::default()).max_message(), 256);
    /// ```
    pub fn max_message(&self) -> usize {
        self.core.mem.geo.max_message
    }

    /// The segment behind a named ring.
    ///
    /// # Example
    /// ```
    /// assert!(ringport::broadcast::channel(Default::default()).segment().is_none());
    /// ```
    #[cfg(not(loom))]
    pub fn segment(&self) -> Option<&Segment> {
        self.core.mem.segment()
    }

    /// Sets how long blocking publishes poll before they sleep (backpressure only; 20 µs
    /// unless set).
    ///
    /// # Example
    /// ```
    /// let mut p = ringport::broadcast::channel(Default::default());
    /// p.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.spin = budget;
    }

    fn check(&self, bytes: &[u8]) -> Result<(), SendError> {
        let max = self.core.mem.geo.max_message;
        if bytes.len() > max {
            return Err(SendError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        Ok(())
    }

    fn poll(&self, bytes: &[u8], look: bool) -> Option<Result<u64, SendError>> {
        match self.core.publish(bytes, &self.room) {
            Err(c) => Some(Err(c.into())),
            Ok(Ok(pos)) => Some(Ok(pos)),
            Ok(Err(blocked)) => {
                let reaped = match blocked {
                    Blocked::Held(pos, owner) if look || self.watch.held_too_long(pos) => {
                        self.core.reap(owner)
                    }
                    _ if look || self.watch.look_due() => self.core.reap_all(),
                    _ => false,
                };
                if reaped {
                    self.room.store(0, Ordering::Relaxed);
                    return self.poll(bytes, false);
                }
                None
            }
        }
    }

    /// Publishes `bytes` to every subscriber, and returns its position. Under
    /// [`Overflow::Overwrite`] this never waits; under backpressure it waits for the
    /// slowest live subscriber.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let p = ringport::broadcast::channel(Default::default());
    /// let first = p.publish(b"a").unwrap();
    /// assert_eq!(p.publish(b"b").unwrap(), first + 1);
    /// ```
    pub fn publish(&self, bytes: &[u8]) -> Result<u64, SendError> {
        self.publish_until(bytes, None)
    }

    /// Publishes `bytes` if it can without waiting.
    ///
    /// # Errors
    /// [`SendError::Full`] when, under backpressure, the slowest subscriber is a ring
    /// behind, or (under either policy) when the slot it needs is still being written
    /// by another publisher a lap earlier; [`SendError::TooLarge`], [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// use ringport::broadcast::{self, BroadcastOptions, Overflow};
    /// let p = broadcast::channel(BroadcastOptions {
    ///     capacity: 2,
    ///     overflow: Overflow::Backpressure,
    ///     ..Default::default()
    /// });
    /// let _slow = p.subscribe().unwrap();
    /// p.try_publish(b"1").unwrap();
    /// p.try_publish(b"2").unwrap();
    /// assert_eq!(p.try_publish(b"3"), Err(ringport::SendError::Full));
    /// ```
    pub fn try_publish(&self, bytes: &[u8]) -> Result<u64, SendError> {
        self.check(bytes)?;
        self.poll(bytes, false).unwrap_or(Err(SendError::Full))
    }

    /// Publishes `bytes`, waiting at most `timeout` for room (backpressure only).
    ///
    /// # Errors
    /// [`SendError::Timeout`], and those of [`publish`](Self::publish).
    ///
    /// # Example
    /// ```
    /// use ringport::broadcast::{self, BroadcastOptions, Overflow};
    /// use std::time::Duration;
    /// let p = broadcast::channel(BroadcastOptions {
    ///     capacity: 2,
    ///     overflow: Overflow::Backpressure,
    ///     ..Default::default()
    /// });
    /// let _slow = p.subscribe().unwrap();
    /// p.publish(b"1").unwrap();
    /// p.publish(b"2").unwrap();
    /// let r = p.publish_timeout(b"3", Duration::from_millis(1));
    /// assert_eq!(r, Err(ringport::SendError::Timeout));
    /// ```
    pub fn publish_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<u64, SendError> {
        self.publish_until(bytes, Instant::now().checked_add(timeout))
    }

    fn publish_until(&self, bytes: &[u8], deadline: Option<Instant>) -> Result<u64, SendError> {
        self.check(bytes)?;
        if let Some(r) = spin_then(self.spin, || self.poll(bytes, false)) {
            return r;
        }
        self.core
            .mem
            .ctrl()
            .space
            .wait_until(self.core.scope(), deadline, |look| self.poll(bytes, look))
            .unwrap_or(Err(SendError::Timeout))
    }

    /// A new subscriber, which receives what is published from now on (and the last
    /// [`BroadcastOptions::history`] messages before).
    ///
    /// # Errors
    /// [`SubscribeError::TooManySubscribers`] when every subscriber record is held by a
    /// live subscriber.
    ///
    /// # Example
    /// ```
    /// let p = ringport::broadcast::channel(Default::default());
    /// p.publish(b"before").unwrap();
    /// let mut late = p.subscribe().unwrap();
    /// p.publish(b"after").unwrap();
    /// assert_eq!(late.recv().unwrap(), b"after");
    /// ```
    pub fn subscribe(&self) -> Result<Subscriber, SubscribeError> {
        let max = self.core.mem.geo.subscribers;
        let claim = || {
            self.core.mem.subscribers().iter().position(|r| {
                r.token
                    .compare_exchange(0, self.token, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
        };
        let index = match claim() {
            Some(i) => i,
            None => {
                self.core.reap_all();
                claim().ok_or(SubscribeError::TooManySubscribers { max })?
            }
        };
        let cursor = self
            .newest_end()
            .saturating_sub(self.core.mem.geo.history as u64);
        let record = &self.core.mem.subscribers()[index];
        record.cursor.store(cursor, Ordering::Release);
        join(&self.core, SUBSCRIBERS);
        self.core.mem.ctrl().space.notify(self.core.scope());
        Ok(Subscriber {
            core: self.core.clone(),
            index,
            cursor,
            watch: Watch::default(),
            spin: DEFAULT_SPIN,
            buf: Vec::new(),
        })
    }

    /// The first position not yet claimed: the tail hint, moved past positions already
    /// claimed (the hint may lag by a few).
    fn newest_end(&self) -> u64 {
        let mut pos = self.core.mem.ctrl().tail.load(Ordering::Acquire);
        for _ in 0..self.capacity() {
            let s = self.core.mem.slot(pos)[0].load(Ordering::Acquire);
            if s == 0 || ahead(pos_of(s), pos) != 0 {
                break;
            }
            pos = pos.wrapping_add(1);
        }
        pos
    }
}

impl Clone for Publisher {
    fn clone(&self) -> Self {
        let mut p = Publisher::new(self.core.clone(), self.token);
        p.spin = self.spin;
        p
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        leave(&self.core, PUBLISHERS);
        self.core.mem.ctrl().data.notify(self.core.scope());
    }
}

/// Receives every message of a broadcast ring, from its own cursor. Dropping it frees
/// its record (and, under backpressure, stops holding publishers back).
///
/// # Example
/// ```
/// let p = ringport::broadcast::channel(Default::default());
/// let mut s = p.subscribe().unwrap();
/// for i in 0..3u8 {
///     p.publish(&[i]).unwrap();
/// }
/// let got: Vec<u8> = (0..3).map(|_| s.recv().unwrap()[0]).collect();
/// assert_eq!(got, [0, 1, 2]);
/// ```
pub struct Subscriber {
    core: Core,
    index: usize,
    /// The next position to read.
    cursor: u64,
    watch: Watch,
    spin: Duration,
    /// The last message received, for [`recv`](Self::recv) to lend out.
    buf: Vec<u8>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    fn record(&self) -> &SubRecord {
        &self.core.mem.subscribers()[self.index]
    }

    /// Sets how long blocking receives poll before they sleep (20 µs unless set).
    ///
    /// # Example
    /// ```
    /// let p = ringport::broadcast::channel(Default::default());
    /// let mut s = p.subscribe().unwrap();
    /// s.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.spin = budget;
    }

    fn poll(&mut self, look: bool) -> Option<Result<(), RecvError>> {
        let mut cursor = self.cursor;
        let r = self.core.recv(&mut cursor, &mut self.buf);
        let moved = cursor != self.cursor;
        self.cursor = cursor;
        if moved && self.core.mem.geo.overflow == Overflow::Backpressure {
            // Release: this subscriber's reads happen before a publisher overwrites them.
            self.record().cursor.store(cursor, Ordering::Release);
            self.core.mem.ctrl().space.notify(self.core.scope());
        }
        match r {
            Err(c) => Some(Err(c.into())),
            Ok(Ok(())) => Some(Ok(())),
            Ok(Err(Blocked::Lagged(n))) => Some(Err(RecvError::Lagged(n))),
            Ok(Err(blocked)) => {
                let reaped = match blocked {
                    Blocked::Held(pos, owner) if look || self.watch.held_too_long(pos) => {
                        self.core.reap(owner)
                    }
                    _ if look || self.watch.look_due() => self.core.reap_all(),
                    _ => false,
                };
                if reaped {
                    return self.poll(false);
                }
                let ctrl = self.core.mem.ctrl();
                if ctrl.handles[PUBLISHERS].load(Ordering::Acquire) == 0
                    || !self.core.has_publishers()
                {
                    // A publisher may have published and then dropped since the look
                    // above; its count was released after, so one more look finds it.
                    return Some(match self.core.recv(&mut self.cursor, &mut self.buf) {
                        Err(c) => Err(c.into()),
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(Blocked::Lagged(n))) => Err(RecvError::Lagged(n)),
                        Ok(Err(_)) => Err(RecvError::Disconnected),
                    });
                }
                None
            }
        }
    }

    /// Receives the next message if one is ready now; the bytes are lent until the next
    /// call.
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Lagged`] (then the next call goes on from the
    /// oldest message kept), [`RecvError::Disconnected`], [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let p = ringport::broadcast::channel(Default::default());
    /// let mut s = p.subscribe().unwrap();
    /// assert_eq!(s.try_recv(), Err(ringport::RecvError::Empty));
    /// ```
    pub fn try_recv(&mut self) -> Result<&[u8], RecvError> {
        self.poll(false).unwrap_or(Err(RecvError::Empty))?;
        Ok(&self.buf)
    }

    /// Receives the next message, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), except `Empty`.
    ///
    /// # Example
    /// ```
    /// let p = ringport::broadcast::channel(Default::default());
    /// let mut s = p.subscribe().unwrap();
    /// std::thread::spawn(move || p.publish(b"later").unwrap());
    /// assert_eq!(s.recv().unwrap(), b"later");
    /// ```
    pub fn recv(&mut self) -> Result<&[u8], RecvError> {
        self.recv_until(None)?;
        Ok(&self.buf)
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], and those of [`recv`](Self::recv).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let p = ringport::broadcast::channel(Default::default());
    /// let mut s = p.subscribe().unwrap();
    /// assert_eq!(s.recv_timeout(Duration::from_millis(1)), Err(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8], RecvError> {
        self.recv_until(Instant::now().checked_add(timeout))?;
        Ok(&self.buf)
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<(), RecvError> {
        let spin = self.spin;
        if let Some(r) = spin_then(spin, || self.poll(false)) {
            return r;
        }
        let core = self.core.clone();
        core.mem
            .ctrl()
            .data
            .wait_until(core.scope(), deadline, |look| self.poll(look))
            .unwrap_or(Err(RecvError::Timeout))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let record = self.record();
        record.cursor.store(u64::MAX, Ordering::Relaxed);
        // Release: the cursor is set aside before the record can be claimed again.
        record.token.store(0, Ordering::Release);
        leave(&self.core, SUBSCRIBERS);
        self.core.mem.ctrl().space.notify(self.core.scope());
    }
}

/// Heap-placed tests, small enough for Miri (`cargo +nightly miri test --lib broadcast::`).
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn small(overflow: Overflow) -> Publisher {
        channel(BroadcastOptions {
            capacity: 4,
            max_message: 16,
            overflow,
            ..Default::default()
        })
    }

    #[test]
    fn overwrite_reports_the_loss_and_goes_on_from_the_oldest_kept() {
        let p = small(Overflow::Overwrite);
        let mut s = p.subscribe().unwrap();
        for i in 0..10u8 {
            p.publish(&[i]).unwrap();
        }
        assert_eq!(s.try_recv(), Err(RecvError::Lagged(6)));
        let rest: Vec<u8> = (0..4).map(|_| s.try_recv().unwrap()[0]).collect();
        assert_eq!(rest, [6, 7, 8, 9]);
        assert_eq!(s.try_recv(), Err(RecvError::Empty));
    }

    #[test]
    fn backpressure_waits_for_the_slowest_and_loses_nothing() {
        let p = small(Overflow::Backpressure);
        let mut fast = p.subscribe().unwrap();
        let mut slow = p.subscribe().unwrap();
        for i in 0..4u8 {
            p.try_publish(&[i]).unwrap();
        }
        assert_eq!(p.try_publish(&[4]), Err(SendError::Full));
        for i in 0..4u8 {
            assert_eq!(fast.try_recv().unwrap(), [i]);
        }
        assert_eq!(p.try_publish(&[4]), Err(SendError::Full));
        assert_eq!(slow.try_recv().unwrap(), [0]);
        p.try_publish(&[4]).unwrap();
        drop(slow);
        p.try_publish(&[5]).unwrap();
        assert_eq!(fast.try_recv().unwrap(), [4]);
    }

    #[test]
    fn history_and_too_large() {
        let p = channel(BroadcastOptions {
            capacity: 8,
            max_message: 4,
            history: 2,
            ..Default::default()
        });
        for i in 0..5u8 {
            p.publish(&[i]).unwrap();
        }
        let mut s = p.subscribe().unwrap();
        assert_eq!(s.try_recv().unwrap(), [3]);
        assert_eq!(s.try_recv().unwrap(), [4]);
        assert_eq!(
            p.publish(&[0; 5]),
            Err(SendError::TooLarge { len: 5, max: 4 })
        );
    }

    /// Publishers write messages whose bytes all equal one counter byte; every
    /// subscriber must see whole messages, each publisher's in order, or a reported lag.
    #[test]
    fn concurrent_publishers_and_subscribers_see_whole_messages() {
        let per = if cfg!(miri) { 20 } else { 5000 };
        let p = channel(BroadcastOptions {
            capacity: 8,
            max_message: 24,
            ..Default::default()
        });
        let subs: Vec<_> = (0..2)
            .map(|_| {
                let mut s = p.subscribe().unwrap();
                std::thread::spawn(move || {
                    let mut last = [None::<u8>; 2];
                    let mut got = 0;
                    loop {
                        match s.recv() {
                            Ok(m) => {
                                let (who, n) = (m[0] as usize, m[1]);
                                assert!(m[1..].iter().all(|&b| b == n), "torn: {m:?}");
                                assert!(last[who].is_none_or(|l| l != n), "repeated");
                                last[who] = Some(n);
                                got += 1;
                            }
                            Err(RecvError::Lagged(_)) => {}
                            Err(RecvError::Disconnected) => return got,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        let pubs: Vec<_> = (0..2u8)
            .map(|who| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        let n = (i % 251) as u8;
                        let mut m = vec![n; 2 + i % 22];
                        m[0] = who;
                        p.publish(&m).unwrap();
                    }
                })
            })
            .collect();
        drop(p);
        pubs.into_iter().for_each(|t| t.join().unwrap());
        for s in subs {
            assert!(s.join().unwrap() > 0);
        }
    }
}
