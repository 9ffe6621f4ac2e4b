//! `MessageChannel` and its entangled ports, between threads or between processes.
//!
//! A channel is two SPSC rings, one per direction; each port is the producer of one and
//! the consumer of the other. Messages arrive in FIFO order in each direction. Closing a
//! port (or dropping it, or its process dying) lets the other side drain what was already
//! sent, then see [`RecvError::Disconnected`] (or [`RecvError::PeerDied`]).
//!
//! Two message kinds:
//! - [`MessagePort`] carries byte frames; a frame holding a Pod value is read in place
//!   with [`Frame::as_pod`](crate::ring::Frame::as_pod) (payloads are 8-aligned);
//! - [`PodPort<T>`] carries `T: Pod` values in packed slots, for the highest rates.
//!
//! # Between processes
//!
//! [`MessageChannel::create`] makes a named segment holding both rings and returns the
//! first port; another process calls [`MessageChannel::open`] with the same name and gets
//! the second. A channel has exactly two ends: a second `open` gets
//! [`ConnectError::Busy`]. The creator owns the name and unlinks it when its port drops;
//! an opener's mapping stays valid after that. A creator that crashes leaves the name
//! behind; [`Segment::remove_if_stale`](crate::segment::Segment::remove_if_stale) removes
//! it.

use crate::error::{RecvError, SendError};
use crate::process::ProcessId;
use crate::region::{Region, REGION_ALIGN};
use crate::ring::ctrl::{Endpoint, RingCtrl, CONSUMER, PRODUCER};
use crate::ring::frame::{FrameGeometry, FrameMem};
use crate::ring::pod::{PodGeometry, PodMem};
use crate::ring::{Frame, FrameConsumer, FrameProducer, PodConsumer, PodProducer};
use crate::segment::{Segment, SegmentError, PARAMS};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Segment kind of a named channel (`"PORT"`).
const KIND_PORT: u32 = u32::from_le_bytes(*b"PORT");
const FLAVOR_FRAMES: u64 = 1;
const FLAVOR_POD: u64 = 2;

/// Default bytes of frame space in each direction of a [`MessagePort`] channel.
pub const DEFAULT_FRAME_CAPACITY: usize = 64 * 1024;
/// Default number of messages in each direction of a [`PodPort`] channel.
pub const DEFAULT_POD_CAPACITY: usize = 1024;

/// Why a named channel could not be joined.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The segment could not be created or opened, or failed validation.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// Both ends of the channel are already taken.
    #[error("channel {name:?} already has both ends attached")]
    Busy {
        /// The channel's name.
        name: String,
    },
}

/// Factory of entangled port pairs, like the web's `new MessageChannel()`.
///
/// # Example
/// ```
/// use ringport::MessageChannel;
///
/// let ch = MessageChannel::new();
/// let (mut a, mut b) = (ch.port1, ch.port2);
/// a.post_message(b"ping").unwrap();
/// assert_eq!(&*b.recv().unwrap(), b"ping");
/// b.post_message(b"pong").unwrap();
/// assert_eq!(&*a.recv().unwrap(), b"pong");
/// ```
pub struct MessageChannel {
    /// One end.
    pub port1: MessagePort,
    /// The other end.
    pub port2: MessagePort,
}

/// Where each direction's ring lies in a channel's memory.
pub(crate) struct Layout {
    /// Offset of ring 1→2 (0) and ring 2→1.
    second: usize,
    total: usize,
}

impl Layout {
    fn new(ring_len: usize) -> Layout {
        let second = ring_len.next_multiple_of(REGION_ALIGN);
        Layout {
            second,
            total: second + ring_len,
        }
    }

    /// `(outgoing ring, incoming ring)` offsets for side 1 or 2.
    pub(crate) fn rings(&self, side: Side) -> (usize, usize) {
        match side {
            Side::First => (0, self.second),
            Side::Second => (self.second, 0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    First,
    Second,
}

/// Records this process as producer of `out` and consumer of `inc`; false if either end
/// was already taken.
fn claim(out: &RingCtrl, inc: &RingCtrl, side: Side, cross_process: bool) -> bool {
    let (pid, start) = if cross_process {
        let me = ProcessId::current();
        (me.pid, me.start_time)
    } else {
        (0, 0)
    };
    let (tx, rx): (&Endpoint, &Endpoint) = (&out.ends[PRODUCER], &inc.ends[CONSUMER]);
    match side {
        Side::First => {
            tx.attach(pid, start);
            rx.attach(pid, start);
            true
        }
        // The first claim admits one opener; the second can only fail on a segment left
        // half-claimed by a crash or a hostile writer. Then the channel is broken: close
        // the end just claimed so the creator sees Disconnected rather than a live peer.
        Side::Second => {
            if !tx.claim(pid, start) {
                return false;
            }
            if !rx.claim(pid, start) {
                tx.close();
                return false;
            }
            true
        }
    }
}

fn corrupt(segment: &Segment, reason: impl Into<String>) -> SegmentError {
    SegmentError::Corrupt {
        name: segment.name().to_owned(),
        reason: reason.into(),
    }
}

fn incompatible(segment: &Segment, reason: impl Into<String>) -> SegmentError {
    SegmentError::Incompatible {
        name: segment.name().to_owned(),
        reason: reason.into(),
    }
}

impl MessageChannel {
    /// Two entangled byte-frame ports in this process, each direction with
    /// [`DEFAULT_FRAME_CAPACITY`] bytes.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// assert_eq!(ch.port1.max_frame(), 32 * 1024 - 16);
    /// ```
    #[allow(clippy::new_without_default)]
    pub fn new() -> MessageChannel {
        Self::with_capacity(DEFAULT_FRAME_CAPACITY)
    }

    /// Two entangled byte-frame ports in this process with `capacity` bytes each way
    /// (rounded up to a multiple of 64, at least 128); frames up to `capacity / 2 - 16`.
    ///
    /// # Panics
    /// If the capacity exceeds 1 TiB.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::with_capacity(1 << 20);
    /// assert!(ch.port2.max_frame() >= 4096);
    /// ```
    pub fn with_capacity(capacity: usize) -> MessageChannel {
        let capacity = capacity.max(128).next_multiple_of(64);
        let geo = FrameGeometry::new(capacity, FrameGeometry::max_frame_for(capacity))
            .unwrap_or_else(|e| panic!("MessageChannel::with_capacity: {e}"));
        let layout = Layout::new(geo.ring_len());
        let region = Region::heap(layout.total);
        let port1 = MessagePort::attach(&region, &layout, geo, Side::First);
        let port2 = MessagePort::attach(&region, &layout, geo, Side::Second);
        MessageChannel {
            port1: port1.expect("fresh memory has free ends"),
            port2: port2.expect("fresh memory has free ends"),
        }
    }

    /// Creates the named channel `name` for another process to [`open`](Self::open), with
    /// `capacity` bytes each way, and returns this side's port.
    ///
    /// # Errors
    /// [`ConnectError::Segment`] with `AlreadyExists`, `InvalidName`, `NoSpace`, ...
    ///
    /// # Example
    /// ```
    /// use ringport::MessageChannel;
    /// let name = format!("doc-create-{}", std::process::id());
    /// let mut a = MessageChannel::create(&name, 4096).unwrap();
    /// let mut b = MessageChannel::open(&name).unwrap(); // usually in another process
    /// a.post_message(b"hello").unwrap();
    /// assert_eq!(&*b.recv().unwrap(), b"hello");
    /// ```
    pub fn create(name: &str, capacity: usize) -> Result<MessagePort, ConnectError> {
        let capacity = capacity.max(128).next_multiple_of(64);
        let max_frame = FrameGeometry::max_frame_for(capacity);
        let geo = FrameGeometry::new(capacity, max_frame).map_err(|reason| {
            SegmentError::Incompatible {
                name: name.to_owned(),
                reason: reason.to_owned(),
            }
        })?;
        let layout = Layout::new(geo.ring_len());
        let mut params = [0; PARAMS];
        params[0] = FLAVOR_FRAMES;
        params[1] = capacity as u64;
        params[2] = max_frame as u64;
        let segment = Segment::create(name, KIND_PORT, params, layout.total)?;
        let region = Region::segment(segment);
        Ok(MessagePort::attach(&region, &layout, geo, Side::First).expect("fresh segment"))
    }

    /// Joins the named channel `name` made by [`create`](Self::create), as its second port.
    ///
    /// # Errors
    /// [`ConnectError::Busy`] if it already has two ends; [`ConnectError::Segment`] with
    /// `NotFound`, `Incompatible` (not a byte-frame channel), `Corrupt`,
    /// `PermissionDenied` or `InvalidName`.
    ///
    /// # Example
    /// ```
    /// use ringport::{segment::SegmentError, ConnectError, MessageChannel};
    /// let r = MessageChannel::open("no-such-channel");
    /// assert!(matches!(r, Err(ConnectError::Segment(SegmentError::NotFound { .. }))));
    /// ```
    pub fn open(name: &str) -> Result<MessagePort, ConnectError> {
        let (region, layout, geo) = Self::open_frames(name)?;
        MessagePort::attach(&region, &layout, geo, Side::Second).ok_or(ConnectError::Busy {
            name: name.to_owned(),
        })
    }

    /// Opens and validates the named byte-frame channel `name`.
    pub(crate) fn open_frames(
        name: &str,
    ) -> Result<(Arc<Region>, Layout, FrameGeometry), SegmentError> {
        let segment = Segment::open(name, KIND_PORT)?;
        let p = segment.params();
        if p[0] != FLAVOR_FRAMES {
            return Err(incompatible(&segment, "not a byte-frame channel"));
        }
        let (Ok(capacity), Ok(max_frame)) = (usize::try_from(p[1]), usize::try_from(p[2])) else {
            return Err(corrupt(&segment, "ring size does not fit this machine"));
        };
        let geo = FrameGeometry::new(capacity, max_frame).map_err(|e| corrupt(&segment, e))?;
        let layout = Layout::new(geo.ring_len());
        if layout.total != segment.payload_len() {
            return Err(corrupt(
                &segment,
                "payload length does not match the ring sizes",
            ));
        }
        Ok((Region::segment(segment), layout, geo))
    }

    /// Two entangled [`PodPort`]s in this process, each way holding at least `capacity`
    /// messages.
    ///
    /// # Panics
    /// As [`PodRing::with_capacity`](crate::ring::PodRing::with_capacity).
    ///
    /// # Example
    /// ```
    /// let (mut a, mut b) = ringport::MessageChannel::pod::<u64>(64);
    /// a.post_message(5).unwrap();
    /// assert_eq!(b.recv(), Ok(5));
    /// ```
    pub fn pod<T: Pod + Send>(capacity: usize) -> (PodPort<T>, PodPort<T>) {
        let geo =
            pod_geometry::<T>(capacity).unwrap_or_else(|e| panic!("MessageChannel::pod: {e}"));
        let layout = Layout::new(geo.ring_len());
        let region = Region::heap(layout.total);
        let a = PodPort::attach(&region, &layout, geo, Side::First);
        let b = PodPort::attach(&region, &layout, geo, Side::Second);
        (a.expect("fresh memory"), b.expect("fresh memory"))
    }

    /// Creates the named channel `name` of `T` values, each way holding at least
    /// `capacity` messages, and returns this side's port.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    ///
    /// # Example
    /// ```
    /// use ringport::MessageChannel;
    /// let name = format!("doc-create-pod-{}", std::process::id());
    /// let mut a = MessageChannel::create_pod::<u32>(&name, 128).unwrap();
    /// let mut b = MessageChannel::open_pod::<u32>(&name).unwrap();
    /// b.post_message(9).unwrap();
    /// assert_eq!(a.recv(), Ok(9));
    /// ```
    pub fn create_pod<T: Pod + Send>(
        name: &str,
        capacity: usize,
    ) -> Result<PodPort<T>, ConnectError> {
        let geo = pod_geometry::<T>(capacity).map_err(|reason| SegmentError::Incompatible {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })?;
        let layout = Layout::new(geo.ring_len());
        let mut params = [0; PARAMS];
        params[0] = FLAVOR_POD;
        params[1] = capacity as u64;
        params[2] = std::mem::size_of::<T>() as u64;
        params[3] = std::mem::align_of::<T>() as u64;
        let segment = Segment::create(name, KIND_PORT, params, layout.total)?;
        let region = Region::segment(segment);
        Ok(PodPort::attach(&region, &layout, geo, Side::First).expect("fresh segment"))
    }

    /// Joins the named channel `name` made by [`create_pod`](Self::create_pod) with the
    /// same `T` (checked by size and alignment), as its second port.
    ///
    /// # Errors
    /// As [`open`](Self::open); `Incompatible` if `T`'s size or alignment differ.
    ///
    /// # Example
    /// ```
    /// use ringport::MessageChannel;
    /// let name = format!("doc-open-pod-{}", std::process::id());
    /// let _a = MessageChannel::create_pod::<u64>(&name, 16).unwrap();
    /// assert!(MessageChannel::open_pod::<u32>(&name).is_err()); // wrong type
    /// assert!(MessageChannel::open_pod::<u64>(&name).is_ok());
    /// ```
    pub fn open_pod<T: Pod + Send>(name: &str) -> Result<PodPort<T>, ConnectError> {
        let segment = Segment::open(name, KIND_PORT)?;
        let p = segment.params();
        if p[0] != FLAVOR_POD {
            return Err(incompatible(&segment, "not a pod channel").into());
        }
        if p[2] != std::mem::size_of::<T>() as u64 || p[3] != std::mem::align_of::<T>() as u64 {
            return Err(incompatible(
                &segment,
                format!(
                    "message type is {} bytes aligned to {}, the channel carries {} aligned to {}",
                    std::mem::size_of::<T>(),
                    std::mem::align_of::<T>(),
                    p[2],
                    p[3]
                ),
            )
            .into());
        }
        let Ok(capacity) = usize::try_from(p[1]) else {
            return Err(corrupt(&segment, "ring size does not fit this machine").into());
        };
        let geo = pod_geometry::<T>(capacity).map_err(|e| corrupt(&segment, e))?;
        let layout = Layout::new(geo.ring_len());
        if layout.total != segment.payload_len() {
            return Err(corrupt(&segment, "payload length does not match the ring sizes").into());
        }
        let name = segment.name().to_owned();
        let region = Region::segment(segment);
        PodPort::attach(&region, &layout, geo, Side::Second).ok_or(ConnectError::Busy { name })
    }
}

fn pod_geometry<T: Pod>(capacity: usize) -> Result<PodGeometry, &'static str> {
    PodGeometry::new(
        std::mem::size_of::<T>(),
        std::mem::align_of::<T>(),
        capacity,
    )
}

/// One end of a byte-frame channel: sends frames to its entangled port and receives the
/// frames it sends. Dropping it closes it.
pub struct MessagePort {
    pub(crate) tx: FrameProducer,
    pub(crate) rx: FrameConsumer,
}

impl MessagePort {
    fn attach(
        region: &Arc<Region>,
        layout: &Layout,
        geo: FrameGeometry,
        side: Side,
    ) -> Option<Self> {
        let (out, inc) = layout.rings(side);
        let out = FrameMem::new(region.clone(), out, geo);
        let inc = FrameMem::new(region.clone(), inc, geo);
        claim(out.ctrl(), inc.ctrl(), side, region.segment_ref().is_some()).then(|| MessagePort {
            tx: FrameProducer::new(out),
            rx: FrameConsumer::new(inc),
        })
    }

    /// The largest frame this port sends.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::with_capacity(4096);
    /// assert_eq!(ch.port1.max_frame(), 2048 - 16);
    /// ```
    pub fn max_frame(&self) -> usize {
        self.tx.max_frame()
    }

    /// Sets how long this port's blocking sends and receives poll before they sleep on a
    /// futex (default 20 µs); zero sleeps after a single look.
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.set_spin_budget(std::time::Duration::from_micros(100));
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.tx.set_spin_budget(budget);
        self.rx.set_spin_budget(budget);
    }

    /// Sends a frame, waiting while the channel is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], [`SendError::Disconnected`], [`SendError::PeerDied`] or
    /// [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.post_message(b"hi").unwrap();
    /// ```
    pub fn post_message(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.tx.send(bytes)
    }

    /// Sends a frame if there is room, without waiting.
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message), plus [`SendError::Full`].
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::with_capacity(128);
    /// while ch.port1.try_post_message(&[0; 40]).is_ok() {}
    /// assert_eq!(ch.port1.try_post_message(&[0; 40]), Err(ringport::SendError::Full));
    /// ```
    pub fn try_post_message(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.tx.try_send(bytes)
    }

    /// Sends a frame, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message), plus [`SendError::Timeout`].
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.post_message_timeout(b"x", std::time::Duration::from_secs(1)).unwrap();
    /// ```
    pub fn post_message_timeout(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.tx.send_timeout(bytes, timeout)
    }

    /// Sends a Pod value as a frame of its bytes; the receiver reads it in place with
    /// [`Frame::as_pod`].
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message).
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.post_pod(&[1u32, 2, 3]).unwrap();
    /// assert_eq!(ch.port2.recv().unwrap().as_pod::<[u32; 3]>(), Some(&[1, 2, 3]));
    /// ```
    pub fn post_pod<T: Pod>(&mut self, value: &T) -> Result<(), SendError> {
        self.tx.send(bytemuck::bytes_of(value))
    }

    /// Sends every frame, publishing each chunk that fits with one store and at most one
    /// wake.
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message); frames before the failing one were sent.
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.post_batch(&[&b"a"[..], b"b"]).unwrap();
    /// assert_eq!(ch.port2.try_recv_batch(8, |_| ()), Ok(2));
    /// ```
    pub fn post_batch<B: AsRef<[u8]>>(&mut self, frames: &[B]) -> Result<(), SendError> {
        self.tx.send_batch(frames)
    }

    /// Sends the longest prefix of `frames` that fits, with one publishing store and at
    /// most one wake. Returns how many were sent.
    ///
    /// # Errors
    /// As [`try_post_message`](Self::try_post_message), only when no frame was sent.
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::with_capacity(256);
    /// let sent = ch.port1.try_post_batch(&[[0u8; 40]; 10]).unwrap();
    /// assert!(sent >= 1 && sent < 10);
    /// ```
    pub fn try_post_batch<B: AsRef<[u8]>>(&mut self, frames: &[B]) -> Result<usize, SendError> {
        self.tx.try_send_batch(frames)
    }

    /// Waits for the next frame and returns it, read in place.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once the other port closed and everything it sent was
    /// received; [`RecvError::PeerDied`]; [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port2.post_message(b"x").unwrap();
    /// assert_eq!(&*ch.port1.recv().unwrap(), b"x");
    /// ```
    pub fn recv(&mut self) -> Result<Frame<'_>, RecvError> {
        self.rx.recv()
    }

    /// Waits for the next frame, calls `f` on it in place and consumes it. Unlike
    /// [`recv`](Self::recv), nothing borrows the port after it returns.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.post_pod(&41u32).unwrap();
    /// let n: u32 = ch.port2.recv_with(bytemuck::pod_read_unaligned).unwrap();
    /// ch.port2.post_pod(&(n + 1)).unwrap();
    /// ```
    pub fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        self.rx.recv_with(f)
    }

    /// Calls `f` on the next frame in place, if one is waiting, and consumes it.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.post_message(b"abc").unwrap();
    /// assert_eq!(ch.port2.try_recv_with(|f| f.len()), Ok(3));
    /// ```
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        self.rx.try_recv_with(f)
    }

    /// The next frame if one is waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Empty`].
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// assert_eq!(ch.port1.try_recv().err(), Some(ringport::RecvError::Empty));
    /// ```
    pub fn try_recv(&mut self) -> Result<Frame<'_>, RecvError> {
        self.rx.try_recv()
    }

    /// Waits at most `timeout` for the next frame.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Timeout`].
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let mut ch = ringport::MessageChannel::new();
    /// assert_eq!(ch.port1.recv_timeout(Duration::from_millis(1)).err(), Some(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame<'_>, RecvError> {
        self.rx.recv_timeout(timeout)
    }

    /// Calls `f` on up to `max` waiting frames in place and releases them with one store.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), only when no frame was waiting.
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.post_message(b"abc").unwrap();
    /// let mut n = 0;
    /// ch.port2.try_recv_batch(16, |f| n += f.len()).unwrap();
    /// assert_eq!(n, 3);
    /// ```
    pub fn try_recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.rx.try_recv_batch(max, f)
    }

    /// Waits for frames, then as [`try_recv_batch`](Self::try_recv_batch).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Example
    /// ```
    /// let mut ch = ringport::MessageChannel::new();
    /// ch.port1.post_message(b"abc").unwrap();
    /// assert_eq!(ch.port2.recv_batch(16, |f| assert_eq!(f, b"abc")), Ok(1));
    /// ```
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.rx.recv_batch(max, f)
    }

    /// Closes the port: the other side receives what was already sent, then
    /// [`RecvError::Disconnected`]; its sends fail with [`SendError::Disconnected`].
    /// Dropping the port does the same.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let (mut a, mut b) = (ch.port1, ch.port2);
    /// a.post_message(b"bye").unwrap();
    /// a.close();
    /// assert_eq!(&*b.recv().unwrap(), b"bye");
    /// assert_eq!(b.recv().err(), Some(ringport::RecvError::Disconnected));
    /// ```
    pub fn close(self) {}

    /// Splits the port into its sending and its receiving half, so that one thread can
    /// wait for frames while others send. The halves are the two rings' ends: dropping
    /// the sender does what closing does to the other side's receives (it drains, then
    /// sees [`RecvError::Disconnected`]); dropping the receiver makes the other side's
    /// sends fail with [`SendError::Disconnected`].
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let (mut tx, mut rx) = ch.port1.split();
    /// let mut peer = ch.port2;
    /// let echo = std::thread::spawn(move || {
    ///     while let Ok(n) = peer.recv_with(|f| f.len()) {
    ///         peer.post_message(&vec![0; n]).unwrap();
    ///     }
    /// });
    /// tx.send(b"four").unwrap();
    /// assert_eq!(rx.recv().unwrap().len(), 4);
    /// drop(tx);
    /// echo.join().unwrap();
    /// ```
    pub fn split(self) -> (FrameProducer, FrameConsumer) {
        (self.tx, self.rx)
    }
}

/// One end of a channel of `T: Pod` values. Dropping it closes it.
///
/// # Example
/// ```
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Tick { price: f64, qty: u32, side: u32 }
///
/// let (mut a, mut b) = ringport::MessageChannel::pod::<Tick>(256);
/// a.post_message(Tick { price: 1.5, qty: 10, side: 0 }).unwrap();
/// assert_eq!(b.recv().unwrap().qty, 10);
/// ```
pub struct PodPort<T: Pod> {
    tx: PodProducer<T>,
    rx: PodConsumer<T>,
    _t: PhantomData<T>,
}

impl<T: Pod + Send> PodPort<T> {
    fn attach(region: &Arc<Region>, layout: &Layout, geo: PodGeometry, side: Side) -> Option<Self> {
        let (out, inc) = layout.rings(side);
        let out = PodMem::new(region.clone(), out, geo);
        let inc = PodMem::new(region.clone(), inc, geo);
        claim(out.ctrl(), inc.ctrl(), side, region.segment_ref().is_some()).then(|| PodPort {
            tx: PodProducer::new(out),
            rx: PodConsumer::new(inc),
            _t: PhantomData,
        })
    }

    /// Messages each direction holds when full.
    ///
    /// # Example
    /// ```
    /// let (a, _b) = ringport::MessageChannel::pod::<u64>(100);
    /// assert!(a.capacity() >= 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    /// Sets how long this port's blocking sends and receives poll before they sleep on a
    /// futex (default 20 µs); zero sleeps after a single look.
    ///
    /// # Example
    /// ```
    /// let (mut a, _b) = ringport::MessageChannel::pod::<u64>(8);
    /// a.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.tx.set_spin_budget(budget);
        self.rx.set_spin_budget(budget);
    }

    /// Sends `value`, waiting while the channel is full.
    ///
    /// # Errors
    /// [`SendError::Disconnected`], [`SendError::PeerDied`] or [`SendError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut a, mut b) = ringport::MessageChannel::pod::<u8>(8);
    /// a.post_message(1).unwrap();
    /// assert_eq!(b.try_recv(), Ok(1));
    /// ```
    pub fn post_message(&mut self, value: T) -> Result<(), SendError> {
        self.tx.send(value)
    }

    /// Sends `value` if there is room, without waiting.
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message), plus [`SendError::Full`].
    ///
    /// # Example
    /// ```
    /// let (mut a, _b) = ringport::MessageChannel::pod::<u64>(1);
    /// while a.try_post_message(0).is_ok() {}
    /// assert_eq!(a.try_post_message(0), Err(ringport::SendError::Full));
    /// ```
    pub fn try_post_message(&mut self, value: T) -> Result<(), SendError> {
        self.tx.try_send(value)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message), plus [`SendError::Timeout`].
    ///
    /// # Example
    /// ```
    /// let (mut a, _b) = ringport::MessageChannel::pod::<u64>(8);
    /// a.post_message_timeout(3, std::time::Duration::from_secs(1)).unwrap();
    /// ```
    pub fn post_message_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendError> {
        self.tx.send_timeout(value, timeout)
    }

    /// Sends all of `values`; each chunk that fits is published with one store and at
    /// most one wake.
    ///
    /// # Errors
    /// As [`post_message`](Self::post_message); values before the failure were sent.
    ///
    /// # Example
    /// ```
    /// let (mut a, mut b) = ringport::MessageChannel::pod::<u64>(64);
    /// a.post_batch(&[1, 2, 3]).unwrap();
    /// let mut out = [0; 3];
    /// assert_eq!(b.recv_batch(&mut out), Ok(3));
    /// ```
    pub fn post_batch(&mut self, values: &[T]) -> Result<(), SendError> {
        self.tx.send_batch(values)
    }

    /// Sends the longest prefix of `values` that fits, with one publishing store.
    ///
    /// # Errors
    /// As [`try_post_message`](Self::try_post_message), only when none fit.
    ///
    /// # Example
    /// ```
    /// let (mut a, _b) = ringport::MessageChannel::pod::<u64>(14);
    /// assert_eq!(a.try_post_batch(&[0; 100]), Ok(14));
    /// ```
    pub fn try_post_batch(&mut self, values: &[T]) -> Result<usize, SendError> {
        self.tx.try_send_batch(values)
    }

    /// Waits for the next value.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once the other port closed and everything it sent was
    /// received; [`RecvError::PeerDied`]; [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// let (mut a, mut b) = ringport::MessageChannel::pod::<i64>(8);
    /// b.post_message(-1).unwrap();
    /// assert_eq!(a.recv(), Ok(-1));
    /// ```
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.rx.recv()
    }

    /// The next value if one is waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Empty`].
    ///
    /// # Example
    /// ```
    /// let (mut a, _b) = ringport::MessageChannel::pod::<u64>(8);
    /// assert_eq!(a.try_recv(), Err(ringport::RecvError::Empty));
    /// ```
    pub fn try_recv(&mut self) -> Result<T, RecvError> {
        self.rx.try_recv()
    }

    /// Waits at most `timeout` for the next value.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Timeout`].
    ///
    /// # Example
    /// ```
    /// let (mut a, _b) = ringport::MessageChannel::pod::<u64>(8);
    /// let r = a.recv_timeout(std::time::Duration::from_millis(1));
    /// assert_eq!(r, Err(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.rx.recv_timeout(timeout)
    }

    /// Receives up to `out.len()` waiting values with one release.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), only when none was waiting.
    ///
    /// # Example
    /// ```
    /// let (mut a, mut b) = ringport::MessageChannel::pod::<u64>(64);
    /// a.post_batch(&[4, 5]).unwrap();
    /// let mut out = [0; 8];
    /// assert_eq!(b.try_recv_batch(&mut out), Ok(2));
    /// ```
    pub fn try_recv_batch(&mut self, out: &mut [T]) -> Result<usize, RecvError> {
        self.rx.try_recv_batch(out)
    }

    /// Waits for values, then as [`try_recv_batch`](Self::try_recv_batch).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Example
    /// ```
    /// let (mut a, mut b) = ringport::MessageChannel::pod::<u64>(64);
    /// a.post_message(4).unwrap();
    /// let mut out = [0; 8];
    /// assert_eq!(b.recv_batch(&mut out), Ok(1));
    /// ```
    pub fn recv_batch(&mut self, out: &mut [T]) -> Result<usize, RecvError> {
        self.rx.recv_batch(out)
    }

    /// Closes the port: the other side receives what was already sent, then
    /// [`RecvError::Disconnected`]. Dropping the port does the same.
    ///
    /// # Example
    /// ```
    /// let (a, mut b) = ringport::MessageChannel::pod::<u64>(8);
    /// a.close();
    /// assert_eq!(b.recv(), Err(ringport::RecvError::Disconnected));
    /// assert_eq!(b.post_message(1), Err(ringport::SendError::Disconnected));
    /// ```
    pub fn close(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_are_fifo() {
        let (mut a, mut b) = MessageChannel::pod::<u32>(16);
        let t = std::thread::spawn(move || {
            for i in 0..10_000 {
                assert_eq!(b.recv(), Ok(i));
                b.post_message(i * 2).unwrap();
            }
        });
        for i in 0..10_000 {
            a.post_message(i).unwrap();
            assert_eq!(a.recv(), Ok(i * 2));
        }
        t.join().unwrap();
    }

    #[test]
    fn second_open_is_busy() {
        let name = format!("port-busy-{}", std::process::id());
        let _a = MessageChannel::create(&name, 1024).unwrap();
        let _b = MessageChannel::open(&name).unwrap();
        assert!(matches!(
            MessageChannel::open(&name),
            Err(ConnectError::Busy { .. })
        ));
    }

    #[test]
    fn flavors_do_not_mix() {
        let name = format!("port-flavor-{}", std::process::id());
        let _a = MessageChannel::create(&name, 1024).unwrap();
        assert!(matches!(
            MessageChannel::open_pod::<u64>(&name),
            Err(ConnectError::Segment(SegmentError::Incompatible { .. }))
        ));
    }
}
