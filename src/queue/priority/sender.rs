//! The sending end of a priority queue: stamps messages into their level's ring and
//! reads expiry reports.

use super::bell::Bell;
use super::wire::{self, Stamp, MESSAGE_HEADER};
use super::{Expired, Level, PriorityError};
use crate::error::{Corruption, RecvError, SendError};
use crate::ring::{FrameConsumer, FrameProducer};
use std::time::Duration;

struct LevelTx {
    tx: FrameProducer,
    deadline: Duration,
}

/// Sends messages at a priority [`Level`] to a [`PriorityReceiver`](super::PriorityReceiver)
/// and receives the [`Expired`] reports of those that missed their deadline. Dropping it
/// closes every level: the receiver receives what was sent, then
/// [`RecvError::Disconnected`].
///
/// # Example
/// ```
/// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
///
/// let PriorityMessageQueue { mut sender, mut receiver } =
///     PriorityMessageQueue::new(PriorityOptions::default());
/// let worker = std::thread::spawn(move || {
///     let mut seen = Vec::new();
///     while let Ok(msg) = receiver.recv() {
///         seen.push(msg.level);
///     }
///     seen
/// });
/// sender.send(Level::LOW, b"later").unwrap();
/// sender.send(Level::HIGH, b"now").unwrap();
/// drop(sender);
/// assert_eq!(worker.join().unwrap().len(), 2);
/// ```
pub struct PrioritySender {
    levels: Vec<LevelTx>,
    reports: FrameConsumer,
    /// The frame being sent: stamp and payload.
    frame: Vec<u8>,
    /// Last, so that it drops last: see [`Closer`].
    bell: Closer,
}

/// Rings the bell when the sender drops, after every ring end has closed (fields drop in
/// declaration order). A receiver asleep with nothing to deliver must wake to see the
/// levels closed, and one holding back an expired message for lack of report room must
/// wake to find the report ring closed, so that it stops holding it.
struct Closer(Bell);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.ring();
    }
}

impl PrioritySender {
    pub(super) fn new(
        txs: Vec<FrameProducer>,
        deadlines: &[Duration],
        reports: FrameConsumer,
        bell: Bell,
    ) -> Self {
        PrioritySender {
            levels: txs
                .into_iter()
                .zip(deadlines)
                .map(|(tx, &deadline)| LevelTx { tx, deadline })
                .collect(),
            reports,
            frame: Vec::new(),
            bell: Closer(bell),
        }
    }

    /// How many levels the queue has.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// use std::time::Duration;
    /// let opts = PriorityOptions { deadlines: vec![Duration::from_secs(1); 5], ..Default::default() };
    /// assert_eq!(PriorityMessageQueue::new(opts).sender.levels(), 5);
    /// ```
    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    /// The deadline of `level`, if the queue has it.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
    /// use std::time::Duration;
    /// let q = PriorityMessageQueue::new(PriorityOptions::default());
    /// assert_eq!(q.sender.deadline(Level::MEDIUM), Some(Duration::from_secs(10)));
    /// assert_eq!(q.sender.deadline(Level(3)), None);
    /// ```
    pub fn deadline(&self, level: Level) -> Option<Duration> {
        self.levels.get(usize::from(level.0)).map(|l| l.deadline)
    }

    /// The longest message the queue carries at any level.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// let opts = PriorityOptions { capacity: 4096, ..Default::default() };
    /// assert_eq!(PriorityMessageQueue::new(opts).sender.max_message(), 2048 - 16 - 16);
    /// ```
    pub fn max_message(&self) -> usize {
        self.levels
            .iter()
            .map(|l| l.tx.max_frame().saturating_sub(MESSAGE_HEADER))
            .min()
            .unwrap_or(0)
    }

    /// Sends `msg` at `level`, waiting while that level's ring is full. Its deadline runs
    /// from this call.
    ///
    /// # Errors
    /// [`PriorityError::InvalidLevel`]; [`PriorityError::Send`] with `TooLarge`,
    /// `Disconnected` (the receiver closed), `PeerDied` or `Corrupt`.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
    /// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
    /// q.sender.send(Level::MEDIUM, b"x").unwrap();
    /// assert_eq!(q.receiver.recv().unwrap().level, Level::MEDIUM);
    /// ```
    pub fn send(&mut self, level: Level, msg: &[u8]) -> Result<(), PriorityError> {
        self.send_with(level, msg, |tx, frame| tx.send(frame))
    }

    /// Sends `msg` at `level` if its ring has room.
    ///
    /// # Errors
    /// As [`send`](Self::send), plus `Send(Full)`.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{Level, PriorityError, PriorityMessageQueue, PriorityOptions};
    /// use ringport::SendError;
    /// let opts = PriorityOptions { capacity: 256, ..Default::default() };
    /// let mut q = PriorityMessageQueue::new(opts);
    /// while q.sender.try_send(Level::LOW, &[0; 64]).is_ok() {}
    /// assert_eq!(q.sender.try_send(Level::LOW, &[0; 64]), Err(PriorityError::Send(SendError::Full)));
    /// q.sender.try_send(Level::HIGH, &[0; 64]).unwrap(); // another ring
    /// ```
    pub fn try_send(&mut self, level: Level, msg: &[u8]) -> Result<(), PriorityError> {
        self.send_with(level, msg, |tx, frame| tx.try_send(frame))
    }

    /// Sends `msg` at `level`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`send`](Self::send), plus `Send(Timeout)`.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
    /// use std::time::Duration;
    /// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
    /// q.sender.send_timeout(Level::HIGH, b"x", Duration::from_millis(10)).unwrap();
    /// ```
    pub fn send_timeout(
        &mut self,
        level: Level,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<(), PriorityError> {
        self.send_with(level, msg, |tx, frame| tx.send_timeout(frame, timeout))
    }

    fn send_with(
        &mut self,
        level: Level,
        msg: &[u8],
        send: impl FnOnce(&mut FrameProducer, &[u8]) -> Result<(), SendError>,
    ) -> Result<(), PriorityError> {
        let levels = self.levels.len();
        let lv = self
            .levels
            .get_mut(usize::from(level.0))
            .ok_or(PriorityError::InvalidLevel { level, levels })?;
        let max = lv.tx.max_frame().saturating_sub(MESSAGE_HEADER);
        if msg.len() > max {
            return Err(SendError::TooLarge {
                len: msg.len(),
                max,
            }
            .into());
        }
        let now = wire::monotonic_ns();
        let stamp = Stamp {
            enqueued: now,
            deadline: wire::after(now, lv.deadline),
        };
        wire::encode_message(&mut self.frame, stamp, msg);
        send(&mut lv.tx, &self.frame)?;
        if !cfg!(ringport_mutant = "priority_bell_unrung") {
            self.bell.0.ring();
        }
        Ok(())
    }

    /// The next expiry report, if one is waiting.
    ///
    /// # Errors
    /// [`RecvError::Empty`]; [`RecvError::Disconnected`] once the receiver closed and
    /// every report was read; [`RecvError::Corrupt`].
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
    /// assert_eq!(q.sender.try_recv_expired(), Err(ringport::RecvError::Empty));
    /// ```
    pub fn try_recv_expired(&mut self) -> Result<Expired, RecvError> {
        let levels = self.levels.len();
        let report = self
            .reports
            .try_recv_with(|f| wire::decode_report(f, levels));
        self.reported(report)
    }

    /// Waits for the next expiry report.
    ///
    /// # Errors
    /// As [`try_recv_expired`](Self::try_recv_expired), with `PeerDied` instead of
    /// `Empty`.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
    /// use std::time::Duration;
    /// let opts = PriorityOptions { deadlines: vec![Duration::ZERO], ..Default::default() };
    /// let PriorityMessageQueue { mut sender, mut receiver } = PriorityMessageQueue::new(opts);
    /// sender.send(Level::HIGH, b"stale").unwrap();
    /// assert!(receiver.try_recv().is_err());
    /// assert_eq!(sender.recv_expired().unwrap().payload, b"stale");
    /// ```
    pub fn recv_expired(&mut self) -> Result<Expired, RecvError> {
        let levels = self.levels.len();
        let report = self.reports.recv_with(|f| wire::decode_report(f, levels));
        self.reported(report)
    }

    /// Waits at most `timeout` for the next expiry report.
    ///
    /// # Errors
    /// As [`recv_expired`](Self::recv_expired), plus [`RecvError::Timeout`].
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{PriorityMessageQueue, PriorityOptions};
    /// use std::time::Duration;
    /// let mut q = PriorityMessageQueue::new(PriorityOptions::default());
    /// let r = q.sender.recv_expired_timeout(Duration::from_millis(1));
    /// assert_eq!(r, Err(ringport::RecvError::Timeout));
    /// ```
    // It reads the report as a `Frame`, which does not exist under loom.
    #[cfg(not(loom))]
    pub fn recv_expired_timeout(&mut self, timeout: Duration) -> Result<Expired, RecvError> {
        let levels = self.levels.len();
        let report = match self.reports.recv_timeout(timeout) {
            Ok(frame) => Ok(wire::decode_report(&frame, levels)),
            Err(e) => Err(e),
        };
        self.reported(report)
    }

    fn reported(
        &self,
        report: Result<Result<Expired, Corruption>, RecvError>,
    ) -> Result<Expired, RecvError> {
        // Reading reports may have freed report-ring room that a receiver holding back an
        // expired message waits for.
        self.bell.0.ring();
        Ok(report??)
    }
}
