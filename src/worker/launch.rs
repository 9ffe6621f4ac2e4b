//! Starting a worker process: its options, its channel, its command line, and the
//! wait for its ready message.
//!
//! The worker is this program started again (`std::env::current_exe()`) with two
//! environment variables: its role and the name of a channel that the parent created
//! for it. The worker opens the channel in [`serve_if_worker`](super::serve_if_worker)
//! and says it is ready; only then does the pool count it as started. Until the worker
//! has opened the channel, a receive on it cannot tell that the worker died, so the wait
//! looks at the process itself between short receives.

use super::process::RetryPolicy;
use super::serve::{self, CHANNEL_VAR, ROLE_VAR};
use crate::ring::{FrameConsumer, FrameProducer};
use crate::segment::Segment;
use crate::{ConnectError, MessageChannel, MessagePort, RecvError, DEFAULT_FRAME_CAPACITY};
use std::ffi::OsString;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// How often a wait for a starting worker looks at whether it exited, or the pool stops.
pub(super) const LOOK: Duration = Duration::from_millis(20);

/// How to start worker processes: the role they serve, extra arguments, the size of
/// their channels, and what to do when one dies.
///
/// # Example
/// ```
/// use ringport::worker::{ProcessOptions, RetryPolicy};
/// use std::time::Duration;
///
/// let options = ProcessOptions::new("resize")
///     .arg("--quiet")
///     .channel_capacity(1 << 20)
///     .start_timeout(Duration::from_secs(5))
///     .retry(RetryPolicy::Retry { max_retries: 1 });
/// ```
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    role: String,
    args: Vec<OsString>,
    channel_capacity: usize,
    start_timeout: Duration,
    pub(super) retry: RetryPolicy,
}

impl ProcessOptions {
    /// Workers for `role`: the worker process serves it in
    /// [`serve_if_worker(role, ..)`](super::serve_if_worker). No extra arguments,
    /// channels of [`DEFAULT_FRAME_CAPACITY`] bytes each way, a start timeout of 10 s,
    /// and [`RetryPolicy::Fail`].
    ///
    /// # Example
    /// ```
    /// let options = ringport::worker::ProcessOptions::new("double");
    /// ```
    pub fn new(role: impl Into<String>) -> Self {
        ProcessOptions {
            role: role.into(),
            args: Vec::new(),
            channel_capacity: DEFAULT_FRAME_CAPACITY,
            start_timeout: Duration::from_secs(10),
            retry: RetryPolicy::Fail,
        }
    }

    /// Adds an argument to the worker's command line (a test binary, for one, needs the
    /// name of the test that calls `serve_if_worker`).
    ///
    /// # Example
    /// ```
    /// let options = ringport::worker::ProcessOptions::new("double").arg("--worker");
    /// ```
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments to the worker's command line.
    ///
    /// # Example
    /// ```
    /// let options = ringport::worker::ProcessOptions::new("t")
    ///     .args(["child_role", "--exact", "--nocapture"]);
    /// ```
    pub fn args<I: IntoIterator<Item = A>, A: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Bytes of each worker's channel, each way (default [`DEFAULT_FRAME_CAPACITY`]).
    /// A task's or a result's encoding may take up to about half of it.
    ///
    /// # Example
    /// ```
    /// let options = ringport::worker::ProcessOptions::new("t").channel_capacity(1 << 20);
    /// ```
    pub fn channel_capacity(mut self, bytes: usize) -> Self {
        self.channel_capacity = bytes;
        self
    }

    /// How long a starting worker may take to say it is ready (default 10 s).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let options = ringport::worker::ProcessOptions::new("t").start_timeout(Duration::from_secs(2));
    /// ```
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// What happens to the task of a worker that dies (default [`RetryPolicy::Fail`]).
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{ProcessOptions, RetryPolicy};
    /// let options = ProcessOptions::new("t").retry(RetryPolicy::Retry { max_retries: 3 });
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
}

/// Why a pool of worker processes did not start.
///
/// # Example
/// ```
/// use ringport::worker::{PoolOptions, ProcessOptions, StartError, WorkerPool};
/// use std::time::Duration;
///
/// // This doctest never calls serve_if_worker("nobody"): the worker it starts runs the
/// // doctest again, finds no serve_if_worker for its role, and is refused its own pool.
/// let options = ProcessOptions::new("nobody").start_timeout(Duration::from_secs(30));
/// match WorkerPool::<u8, u8>::processes(1, PoolOptions::new(), options) {
///     Err(StartError::NotServing { role }) => assert_eq!(role, "nobody"), // in the worker
///     Err(StartError::Exited { .. }) => {} // in the parent
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// A worker's channel could not be created.
    #[error("could not create a worker's channel: {0}")]
    Channel(#[from] ConnectError),
    /// The worker process could not be started.
    #[error("could not start a worker process: {0}")]
    Spawn(#[from] std::io::Error),
    /// The worker process exited before it said it was ready.
    #[error(
        "worker process for {role:?} exited ({status}) before it was ready; does the program \
         call serve_if_worker({role:?}, ..) first thing in main?"
    )]
    Exited {
        /// The role it was started for.
        role: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// The worker process did not say it was ready within
    /// [`start_timeout`](ProcessOptions::start_timeout); it was killed.
    #[error("worker process for {role:?} was not ready within {timeout:?}")]
    Timeout {
        /// The role it was started for.
        role: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The worker process sent something else before saying it was ready.
    #[error("worker process for {role:?} did not start with the ready message")]
    Handshake {
        /// The role it was started for.
        role: String,
    },
    /// This process is itself a worker for `role`, started by a pool, but it is making a
    /// pool of its own before `serve_if_worker(role, ..)` ran: without this refusal each
    /// worker would start workers of its own.
    #[error(
        "this process was started as a worker for {role:?} but creates a pool before \
         serve_if_worker({role:?}, ..) ran"
    )]
    NotServing {
        /// The role in this process's environment.
        role: String,
    },
}

/// A worker process that said it is ready.
pub(super) struct Started {
    pub(super) tx: FrameProducer,
    pub(super) rx: FrameConsumer,
    pub(super) child: Child,
}

/// How waiting for a starting worker ended.
pub(super) enum Readiness {
    Ready(Started),
    Failed(StartError),
    /// The pool is stopping; the worker was killed.
    Stopped,
}

/// A fresh name for a worker's channel.
fn channel_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "ringport-worker-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a worker's channel and starts its process.
pub(super) fn launch(options: &ProcessOptions) -> Result<(MessagePort, Child), StartError> {
    let name = channel_name();
    // Left behind by a crashed process that had this pid before: not ours to keep.
    let _ = Segment::remove_if_stale(&name);
    let port = MessageChannel::create(&name, options.channel_capacity)?;
    let child = Command::new(std::env::current_exe()?)
        .args(&options.args)
        .env(ROLE_VAR, &options.role)
        .env(CHANNEL_VAR, &name)
        .stdin(Stdio::null())
        .spawn()?;
    Ok((port, child))
}

/// Waits for a launched worker's ready message.
pub(super) fn await_ready(
    mut port: MessagePort,
    mut child: Child,
    options: &ProcessOptions,
    stopping: &AtomicBool,
) -> Readiness {
    let role = || options.role.clone();
    let deadline = Instant::now() + options.start_timeout;
    loop {
        // Until the worker opens the channel, a receive cannot tell that it died: look
        // at the process itself between short waits.
        match port.recv_timeout(LOOK) {
            Ok(frame) if serve::is_ready(&frame) => break,
            Ok(_) => {
                reap(child);
                return Readiness::Failed(StartError::Handshake { role: role() });
            }
            Err(RecvError::Timeout) => {}
            // The worker attached and then died or closed: as an exit, below.
            Err(_) => {}
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                return Readiness::Failed(StartError::Exited {
                    role: role(),
                    status,
                })
            }
            Ok(None) => {}
            Err(e) => {
                reap(child);
                return Readiness::Failed(StartError::Spawn(e));
            }
        }
        if stopping.load(Ordering::Relaxed) {
            reap(child);
            return Readiness::Stopped;
        }
        if Instant::now() >= deadline {
            reap(child);
            return Readiness::Failed(StartError::Timeout {
                role: role(),
                timeout: options.start_timeout,
            });
        }
    }
    let (tx, rx) = port.split();
    Readiness::Ready(Started { tx, rx, child })
}

/// Kills a worker process, if it still runs, and waits for it.
pub(super) fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}
