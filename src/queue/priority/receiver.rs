//! The receiving end of a priority queue: one look-ahead per level, the choice among
//! them, expiry reports, and sleeping on the doorbell.

use super::bell::Bell;
use super::wire::{self, Stamp};
use super::Level;
use crate::error::{Corruption, RecvError, SendError};
use crate::ring::ctrl::{spin_then, DEFAULT_SPIN};
use crate::ring::{FrameConsumer, FrameProducer};
use std::time::{Duration, Instant};

/// A received message, read from the receiver's look-ahead buffer.
///
/// # Example
/// ```
/// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
///
/// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
/// q.sender.send(Level::HIGH, b"ping").unwrap();
/// let msg = q.receiver.recv().unwrap();
/// assert_eq!((msg.level, &*msg), (Level::HIGH, &b"ping"[..]));
/// assert!(msg.waited < std::time::Duration::from_secs(5));
/// ```
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The level it was sent at.
    pub level: Level,
    /// From the send call until it was chosen.
    pub waited: Duration,
    /// Its payload.
    pub payload: &'a [u8],
}

impl std::ops::Deref for Delivery<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.payload
    }
}

struct LevelRx {
    rx: FrameConsumer,
    /// The look-ahead: the stamp of the level's oldest unreceived message, whose payload
    /// is in `payload`.
    head: Option<Stamp>,
    payload: Vec<u8>,
    /// The ring reported `Disconnected`: the sender closed and it is drained.
    closed: bool,
}

/// What to do with an expired look-ahead.
enum Reported {
    /// Reported, or nobody is left to report to: drop it and look at the next.
    Done,
    /// The report ring is full: keep it, and deliver nothing from this level for now.
    HeldBack,
}

/// The receiver's state apart from the doorbell, so that a wait on the bell can poll it.
struct Levels {
    levels: Vec<LevelRx>,
    reports: FrameProducer,
    report: Vec<u8>,
    aging_ns: Option<u64>,
}

/// The look-ahead chosen for delivery.
struct Pick {
    level: usize,
    waited_ns: u64,
}

impl Levels {
    /// Refills every empty look-ahead, reports the expired ones, and picks the next
    /// message in delivery order (see the module documentation).
    ///
    /// `Ok(None)`: nothing to deliver now. `Err(Disconnected)`: every level is closed and
    /// drained.
    fn poll(&mut self) -> Result<Option<Pick>, RecvError> {
        let now = wire::monotonic_ns();
        // (effective level, sent at, level) of the best look-ahead so far.
        let mut best: Option<(u64, u64, usize)> = None;
        let mut waiting = false;
        for (i, lv) in self.levels.iter_mut().enumerate() {
            loop {
                let stamp = match lv.head {
                    Some(stamp) => stamp,
                    None if lv.closed => break,
                    None => {
                        let payload = &mut lv.payload;
                        match lv.rx.try_recv_with(|f| wire::decode_message(f, payload)) {
                            Ok(stamp) => *lv.head.insert(stamp?),
                            Err(RecvError::Empty) => break,
                            Err(RecvError::Disconnected) => {
                                lv.closed = true;
                                break;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                };
                if now >= stamp.deadline {
                    let level = u8::try_from(i).expect("at most MAX_LEVELS levels");
                    match report(
                        &mut self.reports,
                        &mut self.report,
                        level,
                        stamp,
                        &lv.payload,
                        now,
                    )? {
                        Reported::Done => {
                            lv.head = None;
                            continue;
                        }
                        Reported::HeldBack => {
                            waiting = true;
                            break;
                        }
                    }
                }
                waiting = true;
                let level = i as u64;
                let waited = now.saturating_sub(stamp.enqueued);
                let effective = match self.aging_ns {
                    None => level,
                    Some(0) => 0,
                    Some(a) => level.saturating_sub(waited / a),
                };
                let key = (effective, stamp.enqueued, i);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
                break;
            }
        }
        match best {
            Some((_, enqueued, level)) => Ok(Some(Pick {
                level,
                waited_ns: now.saturating_sub(enqueued),
            })),
            None if waiting => Ok(None),
            None if self.levels.iter().all(|lv| lv.closed) => Err(RecvError::Disconnected),
            None => Ok(None),
        }
    }
}

/// Sends an expired message back to the sender.
fn report(
    reports: &mut FrameProducer,
    frame: &mut Vec<u8>,
    level: u8,
    stamp: Stamp,
    payload: &[u8],
    now: u64,
) -> Result<Reported, RecvError> {
    wire::encode_report(frame, level, stamp.enqueued, now, payload);
    match reports.try_send(frame) {
        Ok(()) => Ok(Reported::Done),
        Err(SendError::Full) => Ok(Reported::HeldBack),
        // The sender closed or died: there is nobody left to tell.
        Err(SendError::Disconnected | SendError::PeerDied { .. }) => Ok(Reported::Done),
        Err(SendError::Corrupt(c)) => Err(c.into()),
        // Only a report ring smaller than its creator promised (checked on open) or a
        // future error: refuse to go on rather than drop the message.
        Err(_) => Err(Corruption::new("an expired message does not fit the report ring").into()),
    }
}

/// Receives the messages of a [`PrioritySender`](super::PrioritySender) in priority
/// order (see the [module documentation](super) for the exact order, deadlines and
/// aging). Dropping it closes the queue: the sender's sends fail with
/// [`SendError::Disconnected`].
///
/// # Example
/// ```
/// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
///
/// let PriorityMessageQueue { mut sender, mut receiver } =
///     PriorityMessageQueue::new(PriorityOptions::default());
/// for i in 0..3u8 {
///     sender.send(Level::LOW, &[i]).unwrap();
///     sender.send(Level::HIGH, &[10 + i]).unwrap();
/// }
/// let got: Vec<u8> = (0..6).map(|_| receiver.recv().unwrap().payload[0]).collect();
/// assert_eq!(got, [10, 11, 12, 0, 1, 2]);
/// ```
pub struct PriorityReceiver {
    levels: Levels,
    bell: Bell,
    /// The payload of the last delivery (swapped out of its level's look-ahead).
    current: Vec<u8>,
    spin: Duration,
}

impl PriorityReceiver {
    pub(super) fn new(
        rxs: Vec<FrameConsumer>,
        reports: FrameProducer,
        bell: Bell,
        aging_ns: Option<u64>,
    ) -> Self {
        PriorityReceiver {
            levels: Levels {
                levels: rxs
                    .into_iter()
                    .map(|rx| LevelRx {
                        rx,
                        head: None,
                        payload: Vec::new(),
                        closed: false,
                    })
                    .collect(),
                reports,
                report: Vec::new(),
                aging_ns,
            },
            bell,
            current: Vec::new(),
            spin: DEFAULT_SPIN,
        }
    }

    /// How many levels the queue has.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// assert_eq!(PriorityMessageQueue::new(PriorityOptions::default()).receiver.levels(), 3);
    /// ```
    pub fn levels(&self) -> usize {
        self.levels.levels.len()
    }

    /// Sets how long blocking receives poll before they sleep (default 20 µs); zero
    /// sleeps after a single look.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
    /// q.receiver.set_spin_budget(std::time::Duration::ZERO);
    /// ```
    pub fn set_spin_budget(&mut self, budget: Duration) {
        self.spin = budget;
    }

    /// The next message in priority order, if one is waiting. Expired messages met on
    /// the way are reported to the sender.
    ///
    /// # Errors
    /// [`RecvError::Empty`]; [`RecvError::Disconnected`] once the sender closed and
    /// everything it sent was received or reported; [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
    /// assert_eq!(q.receiver.try_recv().err(), Some(ringport::RecvError::Empty));
    /// ```
    pub fn try_recv(&mut self) -> Result<Delivery<'_>, RecvError> {
        match self.levels.poll()? {
            Some(pick) => Ok(self.deliver(pick)),
            None => Err(RecvError::Empty),
        }
    }

    /// Waits for the next message in priority order.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), with [`RecvError::PeerDied`] (noticed within
    /// about 100 ms of the sender's death) instead of `Empty`.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
    /// let PriorityMessageQueue { mut sender, mut receiver } =
    ///     PriorityMessageQueue::new(PriorityOptions::default());
    /// std::thread::spawn(move || sender.send(Level::LOW, b"eventually").unwrap());
    /// assert_eq!(receiver.recv().unwrap().payload, b"eventually");
    /// ```
    pub fn recv(&mut self) -> Result<Delivery<'_>, RecvError> {
        self.recv_until(None)
    }

    /// Waits at most `timeout` for the next message in priority order.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Timeout`].
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// use std::time::Duration;
    /// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
    /// let r = q.receiver.recv_timeout(Duration::from_millis(1));
    /// assert_eq!(r.err(), Some(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Delivery<'_>, RecvError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Delivery<'_>, RecvError> {
        let (levels, bell) = (&mut self.levels, &self.bell);
        let found = spin_then(self.spin, || levels.poll().transpose()).or_else(|| {
            bell.signal()
                .wait_until(bell.scope(), deadline, |liveness_due| {
                    levels.poll().transpose().or_else(|| {
                        let pid = liveness_due.then(|| bell.dead_sender())??;
                        // It died after its last publish: take what it left first.
                        levels
                            .poll()
                            .transpose()
                            .or(Some(Err(RecvError::PeerDied { pid })))
                    })
                })
        });
        match found {
            Some(pick) => Ok(self.deliver(pick?)),
            None => Err(RecvError::Timeout),
        }
    }

    fn deliver(&mut self, pick: Pick) -> Delivery<'_> {
        let lv = &mut self.levels.levels[pick.level];
        lv.head = None;
        std::mem::swap(&mut self.current, &mut lv.payload);
        Delivery {
            level: Level(u8::try_from(pick.level).expect("at most MAX_LEVELS levels")),
            waited: Duration::from_nanos(pick.waited_ns),
            payload: &self.current,
        }
    }
}
