//! `MessageQueue`: the web's batching queue over a port.
//!
//! # Who publishes
//!
//! The ring producer is handed around as a baton inside the queue's lock. The thread
//! that seals a batch publishes it itself with a non-blocking send when the baton is
//! there and the ring has room, so a full batch costs no thread handoff. When the ring
//! is full, the queue's flusher thread takes the baton out of the lock and blocks for
//! room, in slices, while `enqueue` keeps accepting messages up to `max_queue_size`;
//! sealed batches wait in FIFO order and only the baton's holder publishes them, so
//! batches arrive in the order they were sealed.
//!
//! # The timer
//!
//! A partial batch must go out `batch_delay` after its first message even if the caller
//! never calls the queue again, and nothing but another thread can act without being
//! called: the flusher sleeps on a condition variable until the oldest partial batch is
//! due (or without a deadline when there is none), and is woken only when that changes
//! (a new partial batch while it sleeps without a deadline, a full ring, a close). The
//! flusher holds no lock while it waits for ring room.

use super::batch::{BatchBuilder, Sealed, BATCH_HEADER, ENTRY_HEADER};
use crate::error::SendError;
use crate::ring::FrameProducer;
use crate::MessagePort;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The longest a flusher blocks on a full ring before it looks at the queue again (for a
/// close whose deadline is nearer, or a partial batch that came due).
const SEND_SLICE: Duration = Duration::from_millis(50);
/// Sealed batches' buffers kept for reuse.
const SPARE_BUFFERS: usize = 4;

/// The knobs of a [`MessageQueue`], named after the web pattern's `batchSize`,
/// `batchDelay` and `maxQueueSize`.
///
/// # Example
/// ```
/// use ringport::queue::QueueOptions;
/// use std::time::Duration;
///
/// let opts = QueueOptions {
///     batch_size: 100,
///     batch_delay: Duration::from_millis(1),
///     ..QueueOptions::default()
/// };
/// assert_eq!(opts.max_queue_size, 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    /// A batch is sent as soon as it holds this many messages (default 16). A batch is
    /// also sealed early when the next message would not fit the port's largest frame.
    pub batch_size: usize,
    /// A partial batch is sent this long after its first message was enqueued (default
    /// 5 ms). Zero sends every message at once, as a batch of one, unless the ring is
    /// full.
    pub batch_delay: Duration,
    /// The most messages accepted but not yet published, in the partial batch and in
    /// sealed batches waiting for ring room (default 1024). At least `batch_size`.
    pub max_queue_size: usize,
    /// How long dropping the queue waits for ring room to publish what it still holds
    /// (default 1 s). What is left after that is lost; [`MessageQueue::close`] says how
    /// much.
    pub close_timeout: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            batch_size: 16,
            batch_delay: Duration::from_millis(5),
            max_queue_size: 1024,
            close_timeout: Duration::from_secs(1),
        }
    }
}

/// Why a message was not accepted, or not every message was published.
///
/// # Example
/// ```
/// use ringport::queue::{MessageQueue, QueueError, QueueOptions};
///
/// let ch = ringport::MessageChannel::with_capacity(256);
/// let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
/// assert!(matches!(queue.enqueue(&[0; 1000]), Err(QueueError::TooLarge { .. })));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue holds `max_queue_size` unpublished messages (from `enqueue`).
    #[error("the queue holds its maximum of unpublished messages")]
    Full,
    /// The queue stayed full until the timeout (from `enqueue_timeout`).
    #[error("timed out waiting for room in the queue")]
    Timeout,
    /// The message cannot fit a frame of the port, even alone in a batch.
    #[error("message of {len} bytes exceeds the queue's maximum of {max}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The longest message the port's frames carry.
        max: usize,
    },
    /// A flush or close ran out of time with this many messages still unpublished.
    #[error("{unpublished} messages were not published in time")]
    Unflushed {
        /// Messages accepted but not published.
        unpublished: usize,
    },
    /// The port failed (the receiver closed or died, or the ring is corrupt). Messages
    /// not yet published then are lost, and every later call reports this.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Why a [`MessageQueue`] could not be made.
///
/// # Example
/// ```
/// use ringport::queue::{MessageQueue, QueueOptions, QueueSetupError};
///
/// let ch = ringport::MessageChannel::new();
/// let opts = QueueOptions { batch_size: 0, ..QueueOptions::default() };
/// let r = MessageQueue::new(ch.port1, opts);
/// assert!(matches!(r, Err(QueueSetupError::InvalidOptions(_))));
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum QueueSetupError {
    /// The options contradict each other.
    #[error("invalid queue options: {0}")]
    InvalidOptions(&'static str),
    /// The flusher thread could not be started.
    #[error("could not start the queue's flusher thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// The web's `MessageQueue`: collects messages into batches and sends each batch through
/// a port as one frame; the other port's [`BatchReceiver`](super::BatchReceiver) receives
/// whole batches. See the [module documentation](super) for when a batch goes out.
///
/// Dropping the queue flushes it, waiting at most
/// [`close_timeout`](QueueOptions::close_timeout) for ring room, then closes the port.
///
/// # Example
/// ```
/// use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
/// use ringport::MessageChannel;
/// use std::time::Duration;
///
/// let ch = MessageChannel::new();
/// let opts = QueueOptions {
///     batch_size: 10,
///     batch_delay: Duration::from_secs(60),
///     ..QueueOptions::default()
/// };
/// let mut queue = MessageQueue::new(ch.port1, opts)?;
/// let mut rx = BatchReceiver::new(ch.port2);
/// for i in 0..25u8 {
///     queue.enqueue(&[i])?;
/// }
/// // Two full batches went out at once; the last five wait for the delay or a flush.
/// assert_eq!(queue.queued(), 5);
/// queue.flush()?;
/// let sizes: Vec<usize> = (0..3).map(|_| rx.recv().unwrap().len()).collect();
/// assert_eq!(sizes, [10, 10, 5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MessageQueue {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// The flusher sleeps here.
    work: Condvar,
    /// `enqueue_timeout`, `flush` and `close` sleep here until batches are published.
    progress: Condvar,
    options: QueueOptions,
    max_frame: usize,
}

struct State {
    /// The baton: `None` while the flusher blocks on a full ring with it.
    producer: Option<FrameProducer>,
    pending: BatchBuilder,
    /// When the partial batch's first message came.
    pending_since: Option<Instant>,
    /// Sealed batches in the order they must be published.
    ready: VecDeque<Sealed>,
    spare: Vec<Vec<u8>>,
    /// Messages accepted and not yet published or lost.
    queued: usize,
    failed: Option<SendError>,
    /// The flusher sleeps with no deadline: a new partial batch must wake it.
    flusher_idle: bool,
    /// A caller sleeps on `progress`.
    awaiting_progress: bool,
    /// A close is under way: seal at once, and block on the ring no longer than this.
    closing_by: Option<Instant>,
    shutdown: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // The lock guards no invariant a panicking holder could break halfway that the queue
    // relies on for memory safety; keep going rather than poison the sender's Drop.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn seal(&mut self) {
        if self.pending.count() == 0 {
            return;
        }
        let fresh = BatchBuilder::new(self.spare.pop().unwrap_or_default());
        let full = std::mem::replace(&mut self.pending, fresh);
        self.ready.push_back(full.seal());
        self.pending_since = None;
    }

    fn published(&mut self, batch: Sealed) {
        self.queued -= batch.count;
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(batch.bytes);
        }
    }

    /// The port is gone for good: everything unpublished is lost.
    fn fail(&mut self, e: SendError) {
        self.failed = Some(e);
        self.ready.clear();
        self.pending.clear();
        self.pending_since = None;
        self.queued = 0;
    }
}

impl Shared {
    /// Publishes sealed batches from this thread while the ring has room. On a full ring
    /// the flusher takes over.
    fn publish_now(&self, st: &mut State) {
        let Some(mut producer) = st.producer.take() else {
            return; // the flusher holds the baton and publishes what is ready
        };
        while let Some(front) = st.ready.front() {
            match producer.try_send(&front.bytes) {
                Ok(()) => {
                    let batch = st.ready.pop_front().expect("front exists");
                    st.published(batch);
                }
                Err(SendError::Full) => {
                    self.work.notify_one();
                    break;
                }
                Err(e) => {
                    st.fail(e);
                    break;
                }
            }
        }
        st.producer = Some(producer);
    }

    fn wake_waiter(&self, st: &State) {
        if st.awaiting_progress {
            self.progress.notify_all();
        }
    }
}

impl MessageQueue {
    /// A queue sending its batches through `port`. The queue only sends: the port's
    /// receiving half is closed.
    ///
    /// # Errors
    /// [`QueueSetupError::InvalidOptions`] if `batch_size` or `max_queue_size` is zero or
    /// `max_queue_size < batch_size`; [`QueueSetupError::Spawn`].
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{MessageQueue, QueueOptions};
    /// let name = format!("doc-queue-{}", std::process::id());
    /// let port = ringport::MessageChannel::create(&name, 1 << 16)?;
    /// let queue = MessageQueue::new(port, QueueOptions::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(port: MessagePort, options: QueueOptions) -> Result<Self, QueueSetupError> {
        if options.batch_size == 0 {
            return Err(QueueSetupError::InvalidOptions("batch_size is zero"));
        }
        if options.max_queue_size < options.batch_size {
            return Err(QueueSetupError::InvalidOptions(
                "max_queue_size is smaller than batch_size",
            ));
        }
        let (producer, _) = port.split();
        let shared = Arc::new(Shared {
            max_frame: producer.max_frame(),
            state: Mutex::new(State {
                producer: Some(producer),
                pending: BatchBuilder::new(Vec::new()),
                pending_since: None,
                ready: VecDeque::new(),
                spare: Vec::new(),
                queued: 0,
                failed: None,
                flusher_idle: false,
                awaiting_progress: false,
                closing_by: None,
                shutdown: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            options,
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("ringport-queue".into())
                .spawn(move || flusher(&shared))?
        };
        Ok(MessageQueue {
            shared,
            flusher: Some(flusher),
        })
    }

    /// The options the queue was made with.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{MessageQueue, QueueOptions};
    /// let ch = ringport::MessageChannel::new();
    /// let queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// assert_eq!(queue.options().batch_size, 16);
    /// ```
    pub fn options(&self) -> &QueueOptions {
        &self.shared.options
    }

    /// The longest message the queue accepts: the port's largest frame less the batch
    /// and message headers.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{MessageQueue, QueueOptions};
    /// let ch = ringport::MessageChannel::with_capacity(4096);
    /// let queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// assert_eq!(queue.max_message(), 2048 - 16 - 12);
    /// ```
    pub fn max_message(&self) -> usize {
        self.shared.max_frame - BATCH_HEADER - ENTRY_HEADER
    }

    /// Messages accepted and not yet published.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{MessageQueue, QueueOptions};
    /// let ch = ringport::MessageChannel::new();
    /// let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// queue.enqueue(b"a").unwrap();
    /// assert!(queue.queued() <= 1); // 0 once the batch delay has passed
    /// ```
    pub fn queued(&self) -> usize {
        lock(&self.shared.state).queued
    }

    /// Adds a message to the current batch, sending the batch if it is now full.
    ///
    /// # Errors
    /// [`QueueError::Full`] at `max_queue_size`; [`QueueError::TooLarge`];
    /// [`QueueError::Send`] once the port failed.
    ///
    /// # Example
    /// ```
    /// use ringport::queue::{MessageQueue, QueueError, QueueOptions};
    /// use std::time::Duration;
    ///
    /// let ch = ringport::MessageChannel::new();
    /// let opts = QueueOptions {
    ///     batch_size: 2,
    ///     max_queue_size: 2,
    ///     batch_delay: Duration::from_secs(60),
    ///     ..QueueOptions::default()
    /// };
    /// let mut queue = MessageQueue::new(ch.port1, opts).unwrap();
    /// queue.enqueue(b"1").unwrap();
    /// queue.enqueue(b"2").unwrap(); // a full batch: published
    /// assert_eq!(queue.queued(), 0);
    /// ```
    pub fn enqueue(&mut self, msg: &[u8]) -> Result<(), QueueError> {
        self.enqueue_until(msg, Some(Instant::now()))
    }

    /// As [`enqueue`](Self::enqueue), but waits at most `timeout` for room in the queue.
    ///
    /// # Errors
    /// As [`enqueue`](Self::enqueue), with [`QueueError::Timeout`] instead of `Full`.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{MessageQueue, QueueOptions};
    /// use std::time::Duration;
    /// let ch = ringport::MessageChannel::new();
    /// let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// queue.enqueue_timeout(b"x", Duration::from_millis(10)).unwrap();
    /// ```
    pub fn enqueue_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), QueueError> {
        self.enqueue_until(msg, Instant::now().checked_add(timeout))
    }

    /// `deadline` `None` waits without limit; an instant already past never waits and
    /// reports `Full`.
    fn enqueue_until(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), QueueError> {
        let shared = &*self.shared;
        let max = self.max_message();
        if msg.len() > max {
            return Err(QueueError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        let mut st = lock(&shared.state);
        let mut waited = false;
        loop {
            if let Some(e) = st.failed {
                return Err(e.into());
            }
            if st.queued < shared.options.max_queue_size {
                break;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(if waited {
                    QueueError::Timeout
                } else {
                    QueueError::Full
                });
            }
            waited = true;
            st = wait_progress(shared, st, left);
        }
        if st.pending.len_with(msg.len()) > shared.max_frame {
            st.seal();
        }
        st.pending.push(msg);
        st.queued += 1;
        if st.pending.count() >= shared.options.batch_size || shared.options.batch_delay.is_zero() {
            st.seal();
            shared.publish_now(&mut st);
        } else if st.pending.count() == 1 {
            st.pending_since = Some(Instant::now());
            if st.flusher_idle {
                shared.work.notify_one();
            }
        }
        Ok(())
    }

    /// Sends the partial batch now and waits until every accepted message is published
    /// (waiting for ring room as long as it takes).
    ///
    /// # Errors
    /// [`QueueError::Send`] if the port failed.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
    /// let ch = ringport::MessageChannel::new();
    /// let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// let mut rx = BatchReceiver::new(ch.port2);
    /// queue.enqueue(b"now").unwrap();
    /// queue.flush().unwrap();
    /// assert_eq!(queue.queued(), 0);
    /// assert_eq!(rx.try_recv().unwrap().len(), 1);
    /// ```
    pub fn flush(&mut self) -> Result<(), QueueError> {
        self.flush_until(None)
    }

    /// As [`flush`](Self::flush), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`flush`](Self::flush), plus [`QueueError::Unflushed`] with the count still
    /// waiting (they stay queued).
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{MessageQueue, QueueOptions};
    /// use std::time::Duration;
    /// let ch = ringport::MessageChannel::new();
    /// let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// queue.enqueue(b"x").unwrap();
    /// queue.flush_timeout(Duration::from_secs(1)).unwrap();
    /// ```
    pub fn flush_timeout(&mut self, timeout: Duration) -> Result<(), QueueError> {
        self.flush_until(Instant::now().checked_add(timeout))
    }

    fn flush_until(&self, deadline: Option<Instant>) -> Result<(), QueueError> {
        let shared = &*self.shared;
        let mut st = lock(&shared.state);
        st.seal();
        shared.publish_now(&mut st);
        loop {
            if let Some(e) = st.failed {
                return Err(e.into());
            }
            if st.queued == 0 {
                return Ok(());
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(QueueError::Unflushed {
                    unpublished: st.queued,
                });
            }
            st = wait_progress(shared, st, left);
        }
    }

    /// Flushes, waiting at most [`close_timeout`](QueueOptions::close_timeout), then
    /// closes the port: the receiver gets every published batch, then
    /// [`RecvError::Disconnected`](crate::RecvError::Disconnected). Dropping the queue does
    /// the same without the report.
    ///
    /// # Errors
    /// [`QueueError::Unflushed`] with how many messages were lost for lack of ring room;
    /// [`QueueError::Send`] if the port failed.
    ///
    /// # Example
    /// ```
    /// # use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
    /// let ch = ringport::MessageChannel::new();
    /// let mut queue = MessageQueue::new(ch.port1, QueueOptions::default()).unwrap();
    /// let mut rx = BatchReceiver::new(ch.port2);
    /// queue.enqueue(b"last").unwrap();
    /// queue.close().unwrap();
    /// assert_eq!(rx.recv().unwrap().len(), 1);
    /// assert!(rx.recv().is_err());
    /// ```
    pub fn close(mut self) -> Result<(), QueueError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), QueueError> {
        let Some(flusher) = self.flusher.take() else {
            return Ok(());
        };
        let deadline = Instant::now().checked_add(self.shared.options.close_timeout);
        lock(&self.shared.state).closing_by = deadline;
        let result = self.flush_until(deadline);
        lock(&self.shared.state).shutdown = true;
        self.shared.work.notify_one();
        // The flusher never panics; if it did, the queue is closing anyway.
        let _ = flusher.join();
        result
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        // Nobody to report to: what could not be published in time is lost, as
        // documented on `close_timeout`.
        let _ = self.finish();
    }
}

/// Sleeps on `progress` for at most `left` (`None`: without limit).
fn wait_progress<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    left: Option<Duration>,
) -> MutexGuard<'a, State> {
    st.awaiting_progress = true;
    let mut st = match left {
        None => shared
            .progress
            .wait(st)
            .unwrap_or_else(PoisonError::into_inner),
        Some(left) => {
            shared
                .progress
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
    };
    st.awaiting_progress = false;
    st
}

/// The flusher thread: seals partial batches when they come due and publishes sealed
/// batches the enqueuing thread could not, blocking on the ring without the lock.
fn flusher(shared: &Shared) {
    let delay = shared.options.batch_delay;
    let mut st = lock(&shared.state);
    loop {
        if st.shutdown {
            return;
        }
        let now = Instant::now();
        // A delay too long to add to an instant never comes due.
        let due = st.pending_since.and_then(|since| since.checked_add(delay));
        if st.closing_by.is_some() || due.is_some_and(|d| d <= now) {
            st.seal();
        }
        if st.failed.is_none() && !st.ready.is_empty() {
            if let Some(mut producer) = st.producer.take() {
                let batch = st.ready.pop_front().expect("not empty");
                let slice = st.closing_by.map_or(SEND_SLICE, |by| {
                    by.saturating_duration_since(now).min(SEND_SLICE)
                });
                drop(st);
                let sent = producer.send_timeout(&batch.bytes, slice);
                st = lock(&shared.state);
                st.producer = Some(producer);
                match sent {
                    Ok(()) => st.published(batch),
                    // Still full; the batch keeps its place at the front.
                    Err(SendError::Timeout) => {
                        st.ready.push_front(batch);
                        if st.closing_by.is_some_and(|by| by <= Instant::now()) {
                            // The closer gives up at its deadline and then shuts us down
                            // (perhaps already, while we were sending).
                            while !st.shutdown {
                                st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                            }
                        }
                    }
                    Err(e) => st.fail(e),
                }
                shared.wake_waiter(&st);
                continue;
            }
        }
        // Nothing to publish now: sleep until the partial batch is due or a caller wakes us.
        let due = st.pending_since.and_then(|since| since.checked_add(delay));
        st.flusher_idle = due.is_none();
        st = match due {
            None => shared.work.wait(st).unwrap_or_else(PoisonError::into_inner),
            Some(due) => {
                shared
                    .work
                    .wait_timeout(st, due.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        st.flusher_idle = false;
    }
}
