//! A task's result on its way back: the [`Completion`] a worker fills in once, and the
//! [`TaskHandle`] that waits for it, blocking or as a `Future`.

use crate::atomics::WaitCell;
use crate::ring::ctrl::{spin_then, DEFAULT_SPIN};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a task has no result.
///
/// # Example
/// ```
/// use ringport::worker::{PoolOptions, TaskError, WorkerPool};
///
/// let pool = WorkerPool::threads(1, PoolOptions::new(), |n: u32| {
///     if n == 0 { Err("zero") } else { Ok(100 / n) }
/// });
/// assert_eq!(pool.execute(0).unwrap().wait(), Err(TaskError::Failed("zero".into())));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The handler returned an error; this is its `Display` text.
    #[error("the task failed: {0}")]
    Failed(String),
    /// The handler panicked with this message. The worker that ran it was replaced.
    #[error("the task panicked: {0}")]
    Panicked(String),
    /// The pool was terminated before the task finished.
    #[error("the worker pool was terminated")]
    Terminated,
    /// The worker process running the task died (a crash, `SIGKILL`), and the pool's
    /// [`RetryPolicy`](super::RetryPolicy) did not run the task again.
    #[error("worker process {pid} died while running the task")]
    WorkerDied {
        /// The dead worker's process id.
        pid: u32,
    },
    /// A worker process answered with bytes that are not a result of the pool's type.
    #[error("the worker's reply was not understood: {0}")]
    BadReply(String),
    /// [`TaskHandle::wait_timeout`] gave up; the task still runs and the handle can
    /// wait again.
    #[error("timed out waiting for the task")]
    Timeout,
}

/// The readiness word's values.
const PENDING: u32 = 0;
const DONE: u32 = 1;

/// The place one task's result lands: written once by whoever finishes the task (its
/// worker, or `terminate`), read once by its handle.
pub(crate) struct Completion<R> {
    /// `DONE` once `slot.result` is set. Waiters spin on it, then sleep on it; the cell
    /// makes the worker's notify free while nobody sleeps.
    ready: WaitCell,
    slot: Mutex<Slot<R>>,
    /// Where a process pool runs the task, for a [`Courier`].
    pub(crate) place: Place,
}

/// Which worker a process pool's task runs on, and whether its handle has left the
/// result to the pool's reader threads (see `process.rs`). Unused by thread pools, so
/// read by nothing in a build without process pools (feature `serde`).
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
pub(crate) struct Place {
    /// The worker's index, or [`Place::QUEUED`] until the task starts. Stored under the
    /// pool's lock; read without it as a hint of whose replies to look at.
    pub(crate) worker: AtomicUsize,
    /// Set under the pool's lock, once, by [`Courier::attend`].
    pub(crate) watched: AtomicBool,
}

impl Place {
    pub(crate) const QUEUED: usize = usize::MAX;
}

/// What a handle's waiting thread can do for its own result, where a pool lets it: a
/// process pool's waiting caller takes its worker's reply off the ring itself, so that an
/// empty task's round trip involves the caller and the worker only, not a reader thread
/// between them as well.
pub(crate) trait Courier: Send + Sync {
    /// Takes and settles the reply of the worker at `place`, if one is waiting and
    /// nobody else is taking it.
    fn pump(&self, place: &Place);
    /// Leaves the result to the pool's own threads from now on: the handle is about to
    /// sleep, is polled as a future, or is dropped.
    fn attend(&self, place: &Place);
}

struct Slot<R> {
    /// The outcome until the handle takes it.
    result: Option<Result<R, TaskError>>,
    /// Whether an outcome was set: later ones (a worker finishing a task that
    /// `terminate` already failed) are dropped.
    finished: bool,
    /// The task this handle's last poll saw pending.
    waker: Option<Waker>,
}

impl<R> Completion<R> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Completion {
            ready: WaitCell::new(PENDING),
            slot: Mutex::new(Slot {
                result: None,
                finished: false,
                waker: None,
            }),
            place: Place {
                worker: AtomicUsize::new(Place::QUEUED),
                watched: AtomicBool::new(false),
            },
        })
    }

    /// Sets the task's outcome unless it has one, and wakes whoever waits for it.
    pub(crate) fn complete(&self, outcome: Result<R, TaskError>) {
        let waker = {
            let mut slot = self.lock();
            if slot.finished {
                return;
            }
            slot.finished = true;
            slot.result = Some(outcome);
            slot.waker.take()
        };
        // Release, after the lock's own release: a waiter that sees DONE finds the result.
        self.ready.value().store(DONE, Ordering::Release);
        self.ready.notify(u32::MAX);
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.ready.value().load(Ordering::Acquire) == DONE
    }

    /// Waits until the outcome is set, or `deadline` passes; true if it is set. With a
    /// courier, the spin takes the worker's reply itself, then leaves it to the pool.
    fn wait_until(&self, deadline: Option<Instant>, courier: Option<&dyn Courier>) -> bool {
        let look = || {
            if let Some(c) = courier {
                if !self.is_done() {
                    c.pump(&self.place);
                }
            }
            self.is_done().then_some(())
        };
        if spin_then(DEFAULT_SPIN, look).is_some() {
            return true;
        }
        if let Some(c) = courier {
            c.attend(&self.place);
        }
        loop {
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return self.is_done();
                    }
                    Some(left)
                }
            };
            self.ready.wait(PENDING, timeout);
            if self.is_done() {
                return true;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<R>> {
        // Nothing panics while holding the lock, but a poisoned slot is still consistent.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the outcome, set before the call.
    ///
    /// # Panics
    /// If it was already taken.
    fn take(&self) -> Result<R, TaskError> {
        self.lock()
            .result
            .take()
            .expect("the task's result was already taken from its handle")
    }
}

/// The pending result of a task given to a [`WorkerPool`](super::WorkerPool), like the
/// promise that the web's `WorkerManager.execute` returns.
///
/// Wait for it with [`wait`](Self::wait) or [`wait_timeout`](Self::wait_timeout), or
/// `.await` it: it is a [`Future`] whose waker the worker wakes when the result lands,
/// with no runtime of its own. Dropping the handle does not cancel the task; its result
/// is dropped when it comes.
///
/// # Example
/// ```
/// use ringport::worker::{PoolOptions, WorkerPool};
///
/// let pool = WorkerPool::threads(2, PoolOptions::new(), |n: u64| Ok::<_, String>(n * 2));
/// let handles: Vec<_> = (0..4).map(|n| pool.execute(n).unwrap()).collect();
/// let doubled: Vec<u64> = handles.into_iter().map(|h| h.wait().unwrap()).collect();
/// assert_eq!(doubled, [0, 2, 4, 6]);
/// ```
#[must_use = "a task's result or error is only seen through its handle"]
pub struct TaskHandle<R> {
    done: Arc<Completion<R>>,
    courier: Option<Arc<dyn Courier>>,
}

impl<R> TaskHandle<R> {
    pub(crate) fn new(done: Arc<Completion<R>>) -> Self {
        TaskHandle {
            done,
            courier: None,
        }
    }

    /// A handle whose waits take the task's reply through `courier`.
    #[cfg(feature = "serde")]
    pub(crate) fn with_courier(done: Arc<Completion<R>>, courier: Arc<dyn Courier>) -> Self {
        TaskHandle {
            done,
            courier: Some(courier),
        }
    }

    /// Whether the result is set, after one look for it through the courier; a handle
    /// found unfinished leaves its result to the pool's threads.
    fn look(&self) -> bool {
        let Some(c) = &self.courier else {
            return self.done.is_done();
        };
        if !self.done.is_done() {
            c.pump(&self.done.place);
        }
        if self.done.is_done() {
            return true;
        }
        c.attend(&self.done.place);
        false
    }

    /// Whether the task has finished (with a result or an error), so that waiting for
    /// it returns at once. For a worker process's task, the look takes the worker's
    /// reply if it has come, and an unfinished task's reply is left to the pool from
    /// then on, so that a loop over `is_finished` sees it without waiting.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, WorkerPool};
    /// let pool = WorkerPool::threads(1, PoolOptions::new(), |()| Ok::<_, String>(()));
    /// let mut h = pool.execute(()).unwrap();
    /// h.wait_timeout(std::time::Duration::from_secs(10)).unwrap();
    /// // A result already taken leaves the handle finished, with nothing more to wait for.
    /// assert!(h.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.look()
    }

    /// Waits for the task and returns its result.
    ///
    /// # Errors
    /// The task's [`TaskError`]: `Failed`, `Panicked`, `Terminated`, `WorkerDied` or
    /// `BadReply`.
    ///
    /// # Panics
    /// If [`wait_timeout`](Self::wait_timeout) or a poll already took the result.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, WorkerPool};
    /// let pool = WorkerPool::threads(1, PoolOptions::new(), |s: String| Ok::<_, String>(s.len()));
    /// assert_eq!(pool.execute("four".into()).unwrap().wait(), Ok(4));
    /// ```
    pub fn wait(self) -> Result<R, TaskError> {
        self.done.wait_until(None, self.courier.as_deref());
        self.done.take()
    }

    /// Waits at most `timeout` for the task. On [`TaskError::Timeout`] the task goes on
    /// and the handle can wait again; any other return takes the result.
    ///
    /// # Errors
    /// [`TaskError::Timeout`], or the task's error as for [`wait`](Self::wait).
    ///
    /// # Panics
    /// If the result was already taken.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, TaskError, WorkerPool};
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    ///
    /// let (go, gate) = mpsc::channel::<()>();
    /// let gate = std::sync::Mutex::new(gate);
    /// let pool = WorkerPool::threads(1, PoolOptions::new(), move |()| {
    ///     gate.lock().unwrap().recv().map_err(|e| e.to_string())
    /// });
    /// let mut h = pool.execute(()).unwrap();
    /// assert_eq!(h.wait_timeout(Duration::from_millis(1)), Err(TaskError::Timeout));
    /// go.send(()).unwrap();
    /// assert_eq!(h.wait_timeout(Duration::from_secs(30)), Ok(()));
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<R, TaskError> {
        let deadline = Instant::now().checked_add(timeout);
        if self.done.wait_until(deadline, self.courier.as_deref()) {
            self.done.take()
        } else {
            Err(TaskError::Timeout)
        }
    }
}

impl<R> Future for TaskHandle<R> {
    type Output = Result<R, TaskError>;

    /// Ready with the task's result once the worker has set it; until then the worker
    /// holds the latest waker and wakes it when the result lands.
    ///
    /// # Panics
    /// When polled after it returned `Ready`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Before the lock: a reply taken here completes the task, which takes the lock.
        self.look();
        let mut slot = self.done.lock();
        if slot.finished {
            return Poll::Ready(
                slot.result
                    .take()
                    .expect("a TaskHandle was polled after it returned Ready"),
            );
        }
        // Checked and stored under the lock that `complete` takes: the worker either set
        // the result before this look, or finds this waker after it.
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<R> Drop for TaskHandle<R> {
    /// The task goes on; its reply, which nobody waits for now, is left to the pool.
    fn drop(&mut self) {
        if let Some(c) = &self.courier {
            if !self.done.is_done() {
                c.attend(&self.done.place);
            }
        }
    }
}

impl<R> std::fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("finished", &self.done.is_done())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_first_outcome_wins_and_wakes_the_last_waker_once() {
        let done = Completion::<u8>::new();
        let mut h = TaskHandle::new(done.clone());
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
        done.complete(Ok(7));
        done.complete(Err(TaskError::Terminated));
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(h.is_finished());
        assert_eq!(Pin::new(&mut h).poll(&mut cx), Poll::Ready(Ok(7)));
    }

    #[test]
    fn a_timed_out_wait_leaves_the_handle_usable() {
        let done = Completion::<String>::new();
        let mut h = TaskHandle::new(done.clone());
        assert_eq!(h.wait_timeout(Duration::ZERO), Err(TaskError::Timeout));
        let t = std::thread::spawn(move || done.complete(Ok("late".into())));
        assert_eq!(h.wait(), Ok("late".into()));
        t.join().unwrap();
    }
}
