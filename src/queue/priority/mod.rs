//! `PriorityMessageQueue`: messages at several priority levels, with deadlines.
//!
//! # Delivery order
//!
//! Level 0 is the highest. Each receive takes the message that comes first in this
//! order, among the oldest unreceived message of every level (the queue is FIFO within a
//! level, so only those can be next):
//!
//! 1. the lowest *effective level*: without aging, the message's level; with
//!    [`aging`](PriorityOptions::aging) `= Some(a)`, its level minus one for every whole
//!    `a` it has waited since it was sent, down to 0 (with `a` zero, every message is at
//!    effective level 0);
//! 2. then the message that has waited longest.
//!
//! Without aging that is strict priority: a message is received only when every higher
//! level is empty. With aging, a low message that keeps losing climbs one level per `a`,
//! and once its effective level equals a busy level's, it is served before that level's
//! younger messages, so it waits at most about `level × a` plus the time to serve the
//! higher-level messages sent before it. Aging only reorders what is received; a message
//! still expires by its own level's deadline.
//!
//! # Deadlines
//!
//! Every level has a deadline (by default 5, 10 and 30 s). The sender stamps each message
//! with the time of the send call and that time plus its level's deadline. A message
//! whose deadline has passed when the receiver comes to it is not delivered: the
//! receiver sends it back on the report ring and the sender reads it as an [`Expired`]
//! report ([`PrioritySender::try_recv_expired`] and friends), with its payload and how
//! long it waited. Nothing is dropped silently, with one exception: once the sender has
//! closed or died there is nobody to report to. While the report ring is full, an
//! expired message waits at the head of its level (and that level delivers nothing), so
//! a sender that never reads its reports is eventually held back by
//! [`SendError::Full`] rather than the receiver growing a backlog.
//!
//! Timestamps come from `CLOCK_MONOTONIC`, which is one clock for every process on the
//! machine.
//!
//! # Transport and wakeups
//!
//! One byte-frame ring per level carries messages; one more carries reports back. The
//! receiver keeps one look-ahead message per level, copied out of its ring, so that it
//! can compare the heads of all levels. A blocked receiver sleeps on a doorbell (an
//! eventcount, the rings' own `Signal`) that every send rings after publishing, so it
//! wakes for a message at any level; while it is awake it never sleeps before looking at
//! every level, so a high-priority message waits at most for the receive in progress,
//! not behind a flood of lower ones. Ringing costs a fence and a load while the receiver
//! is awake.
//!
//! Between processes, [`PriorityMessageQueue::create`] makes the named segments
//! `"{name}-p{level}"` (one channel per level), `"{name}-r"` (reports) and `"{name}-b"`
//! (the doorbell, made last, which also records the number of levels and the aging);
//! [`PriorityMessageQueue::open`] joins them from another process. The sender owns the
//! names and unlinks them when it drops. A receiver sees a dead sender as
//! [`RecvError::PeerDied`](crate::RecvError::PeerDied) within about 100 ms, after
//! receiving everything it sent.

mod bell;
mod receiver;
mod sender;
mod wire;

use self::bell::Bell;
use crate::error::SendError;
use crate::ring::FrameRing;
#[cfg(not(loom))]
use crate::segment::{SegmentError, PARAMS};
#[cfg(not(loom))]
use crate::{ConnectError, MessageChannel, DEFAULT_FRAME_CAPACITY};
pub use receiver::{Delivery, PriorityReceiver};
pub use sender::PrioritySender;
use std::fmt;
use std::time::Duration;
use thiserror::Error;
use wire::{MESSAGE_HEADER, REPORT_HEADER};

/// The most levels a queue may have.
pub const MAX_LEVELS: usize = 32;

/// A priority level: 0 is the highest.
///
/// # Example
/// ```
/// use ringport::queue::Level;
/// assert!(Level::HIGH < Level::LOW);
/// assert_eq!(Level::MEDIUM, Level(1));
/// assert_eq!(Level::LOW.to_string(), "low");
/// assert_eq!(Level(5).to_string(), "level 5");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(pub u8);

impl Level {
    /// Level 0, the highest of the default three.
    pub const HIGH: Level = Level(0);
    /// Level 1.
    pub const MEDIUM: Level = Level(1);
    /// Level 2, the lowest of the default three.
    pub const LOW: Level = Level(2);
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Level::HIGH => f.write_str("high"),
            Level::MEDIUM => f.write_str("medium"),
            Level::LOW => f.write_str("low"),
            Level(n) => write!(f, "level {n}"),
        }
    }
}

/// The shape of a priority queue.
///
/// # Example
/// ```
/// use ringport::queue::PriorityOptions;
/// use std::time::Duration;
///
/// let opts = PriorityOptions {
///     aging: Some(Duration::from_millis(100)),
///     ..PriorityOptions::default()
/// };
/// assert_eq!(opts.deadlines.len(), 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityOptions {
    /// One deadline per level, highest level first; their number is the number of levels
    /// (1 to [`MAX_LEVELS`]). Default: 5, 10 and 30 s.
    pub deadlines: Vec<Duration>,
    /// Promote a waiting message one level per this much waiting (see the
    /// [module documentation](self)). Default: `None`, strict priority.
    pub aging: Option<Duration>,
    /// Bytes of each level's ring (default
    /// [`DEFAULT_FRAME_CAPACITY`]); a message
    /// takes its length plus 24 bytes.
    pub capacity: usize,
}

// Under loom there are no ports and so no default capacity, and a model picks the
// smallest rings anyway.
#[cfg(not(loom))]
impl Default for PriorityOptions {
    fn default() -> Self {
        PriorityOptions {
            deadlines: vec![
                Duration::from_secs(5),
                Duration::from_secs(10),
                Duration::from_secs(30),
            ],
            aging: None,
            capacity: DEFAULT_FRAME_CAPACITY,
        }
    }
}

impl PriorityOptions {
    fn levels(&self) -> usize {
        let n = self.deadlines.len();
        assert!(
            (1..=MAX_LEVELS).contains(&n),
            "a priority queue has 1 to {MAX_LEVELS} levels, not {n}"
        );
        n
    }

    /// The report ring must carry any level's largest message plus the report header.
    fn report_capacity(&self) -> usize {
        self.capacity.max(128) + 2 * (REPORT_HEADER - MESSAGE_HEADER) + 64
    }
}

/// Why a message was not sent.
///
/// # Example
/// ```
/// use ringport::queue::{Level, PriorityError, PriorityMessageQueue, PriorityOptions};
///
/// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
/// assert_eq!(
///     q.sender.try_send(Level(7), b"?"),
///     Err(PriorityError::InvalidLevel { level: Level(7), levels: 3 })
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PriorityError {
    /// The queue has no such level.
    #[error("{level} is not a level of this queue, which has levels 0 to {}", .levels - 1)]
    InvalidLevel {
        /// The level asked for.
        level: Level,
        /// How many levels the queue has.
        levels: usize,
    },
    /// The level's ring refused the message: `Full`, `Timeout`, `TooLarge` (the limit is
    /// [`PrioritySender::max_message`]), `Disconnected`, `PeerDied` or `Corrupt`.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// A message that passed its deadline before it was received, reported back to its
/// sender.
///
/// # Example
/// ```
/// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
/// use std::time::Duration;
///
/// let short = Duration::from_millis(1);
/// let opts = PriorityOptions { deadlines: vec![short; 3], ..PriorityOptions::default() };
/// let PriorityMessageQueue { mut sender, mut receiver } = PriorityMessageQueue::new(opts);
/// sender.send(Level::LOW, b"too late").unwrap();
/// std::thread::sleep(short * 2);
/// assert!(receiver.try_recv().is_err()); // not delivered: reported
/// let expired = sender.try_recv_expired().unwrap();
/// assert_eq!((expired.level, &expired.payload[..]), (Level::LOW, &b"too late"[..]));
/// assert!(expired.waited >= short);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The level it was sent at.
    pub level: Level,
    /// Its payload.
    pub payload: Vec<u8>,
    /// From the send call until the receiver found it expired.
    pub waited: Duration,
}

/// Factory of a [`PrioritySender`] and [`PriorityReceiver`] pair, like
/// [`MessageChannel`] for ports.
///
/// # Example
/// ```
/// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
///
/// let PriorityMessageQueue { mut sender, mut receiver } =
///     PriorityMessageQueue::new(PriorityOptions::default());
/// sender.send(Level::LOW, b"report").unwrap();
/// sender.send(Level::MEDIUM, b"update").unwrap();
/// sender.send(Level::HIGH, b"alert").unwrap();
/// let order: Vec<Vec<u8>> = (0..3).map(|_| receiver.recv().unwrap().payload.to_vec()).collect();
/// assert_eq!(order, [&b"alert"[..], b"update", b"report"]);
/// ```
pub struct PriorityMessageQueue {
    /// The sending end.
    pub sender: PrioritySender,
    /// The receiving end.
    pub receiver: PriorityReceiver,
}

#[cfg(not(loom))]
fn level_name(name: &str, level: usize) -> String {
    format!("{name}-p{level}")
}

#[cfg(not(loom))]
fn report_name(name: &str) -> String {
    format!("{name}-r")
}

#[cfg(not(loom))]
fn bell_name(name: &str) -> String {
    format!("{name}-b")
}

fn aging_nanos(aging: Option<Duration>) -> Option<u64> {
    aging.map(|a| u64::try_from(a.as_nanos()).unwrap_or(u64::MAX))
}

impl PriorityMessageQueue {
    /// A sender and a receiver in this process. The same constructor builds the queue
    /// under `--cfg loom`, where its doorbell is model-checked.
    ///
    /// # Panics
    /// If `options.deadlines` has no entry or more than [`MAX_LEVELS`], or the capacity
    /// exceeds what [`FrameRing::with_capacity`] takes.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// let q = PriorityMessageQueue::new(PriorityOptions::default());
    /// assert_eq!(q.sender.levels(), 3);
    /// assert_eq!(q.receiver.levels(), 3);
    /// ```
    pub fn new(options: PriorityOptions) -> PriorityMessageQueue {
        let levels = options.levels();
        let (txs, rxs) = (0..levels)
            .map(|_| FrameRing::with_capacity(options.capacity))
            .unzip();
        let (report_tx, report_rx) = FrameRing::with_capacity(options.report_capacity());
        let bell = Bell::heap();
        let sender = PrioritySender::new(txs, &options.deadlines, report_rx, bell.clone());
        let aging = aging_nanos(options.aging);
        let receiver = PriorityReceiver::new(rxs, report_tx, bell, aging);
        PriorityMessageQueue { sender, receiver }
    }

    /// Creates the named queue `name` (the segments listed in the
    /// [module documentation](self)) for another process to [`open`](Self::open), and
    /// returns its sender.
    ///
    /// # Errors
    /// As [`MessageChannel::create`], for any of the segments.
    ///
    /// # Panics
    /// As [`new`](Self::new).
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
    ///
    /// let name = format!("doc-prio-{}", std::process::id());
    /// let mut sender = PriorityMessageQueue::create(&name, PriorityOptions::default())?;
    /// let mut receiver = PriorityMessageQueue::open(&name)?; // usually another process
    /// sender.send(Level::HIGH, b"hello")?;
    /// assert_eq!(receiver.recv()?.payload, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create(name: &str, options: PriorityOptions) -> Result<PrioritySender, ConnectError> {
        let levels = options.levels();
        let mut txs = Vec::with_capacity(levels);
        for level in 0..levels {
            let port = MessageChannel::create(&level_name(name, level), options.capacity)?;
            txs.push(port.split().0);
        }
        let reports = MessageChannel::create(&report_name(name), options.report_capacity())?;
        // The doorbell's parameters: levels, then aging as a flag and nanoseconds.
        let aging = aging_nanos(options.aging);
        let mut params = [0; PARAMS];
        params[0] = levels as u64;
        params[1] = u64::from(aging.is_some());
        params[2] = aging.unwrap_or(0);
        // Last: a receiver that finds the doorbell finds every ring.
        let bell = Bell::create(&bell_name(name), params)?;
        Ok(PrioritySender::new(
            txs,
            &options.deadlines,
            reports.split().1,
            bell,
        ))
    }

    /// Joins the named queue `name` made by [`create`](Self::create), as its receiver.
    ///
    /// # Errors
    /// As [`MessageChannel::open`]: `NotFound` until the sender has made every segment,
    /// `Busy` if the queue already has a receiver; `Corrupt` if the recorded shape is
    /// impossible.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::PriorityMessageQueue;
    /// use ringport::{segment::SegmentError, ConnectError};
    ///
    /// let r = PriorityMessageQueue::open("no-such-queue");
    /// assert!(matches!(r, Err(ConnectError::Segment(SegmentError::NotFound { .. }))));
    /// ```
    #[cfg(not(loom))]
    pub fn open(name: &str) -> Result<PriorityReceiver, ConnectError> {
        let bell_name = bell_name(name);
        let corrupt = |reason: &str| SegmentError::Corrupt {
            name: bell_name.clone(),
            reason: reason.to_owned(),
        };
        let (bell, params) = Bell::open(&bell_name)?;
        let levels = match usize::try_from(params[0]) {
            Ok(n) if (1..=MAX_LEVELS).contains(&n) => n,
            _ => return Err(corrupt("number of levels out of range").into()),
        };
        let aging = match params[1] {
            0 => None,
            1 => Some(params[2]),
            _ => return Err(corrupt("unknown aging flag").into()),
        };
        let mut rxs = Vec::with_capacity(levels);
        for level in 0..levels {
            rxs.push(MessageChannel::open(&level_name(name, level))?.split().1);
        }
        let reports = MessageChannel::open(&report_name(name))?.split().0;
        let largest = rxs.iter().map(|rx| rx.max_frame()).max().unwrap_or(0);
        if reports.max_frame() < largest.saturating_sub(MESSAGE_HEADER) + REPORT_HEADER {
            return Err(corrupt("report ring smaller than the level rings").into());
        }
        Ok(PriorityReceiver::new(rxs, reports, bell, aging))
    }
}
