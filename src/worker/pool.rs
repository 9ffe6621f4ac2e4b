//! [`WorkerPool`] and its options: the API both kinds of worker share.

use super::dispatch::ExecuteError;
use super::handle::TaskHandle;
#[cfg(feature = "serde")]
use super::launch::{ProcessOptions, StartError};
#[cfg(feature = "serde")]
use super::process;
use super::thread;
use std::any::Any;
use std::time::{Duration, Instant};

/// How long `submit` waits for room: `None` not at all, `Some(None)` without limit.
pub(crate) type Deadline = Option<Option<Instant>>;

/// What a [`WorkerPool`] needs of its kind of worker.
pub(crate) trait Backend<T, R>: Send + Sync {
    fn submit(&self, task: T, deadline: Deadline) -> Result<TaskHandle<R>, ExecuteError<T>>;
    fn terminate(&self);
    fn workers(&self) -> usize;
    fn replaced(&self) -> u64;
    fn pids(&self) -> Vec<u32>;
}

/// The text of a panic, as the default hook would print it.
pub(crate) fn panic_text(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "a panic with a payload that is not text".to_owned(),
        },
    }
}

/// The queue's size and other settings common to both kinds of pool.
///
/// # Example
/// ```
/// use ringport::worker::{PoolOptions, WorkerPool};
/// let pool = WorkerPool::threads(2, PoolOptions::new().queue_capacity(64), |x: i32| Ok::<_, String>(-x));
/// assert_eq!(pool.execute(5).unwrap().wait(), Ok(-5));
/// ```
#[derive(Clone, Debug)]
pub struct PoolOptions {
    queue_capacity: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            queue_capacity: 1024,
        }
    }
}

impl PoolOptions {
    /// The defaults: a queue of 1024 tasks.
    ///
    /// # Example
    /// ```
    /// let options = ringport::worker::PoolOptions::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How many tasks may wait while every worker is busy (default 1024); zero queues
    /// none, so `execute` succeeds only when a worker is idle.
    ///
    /// # Example
    /// ```
    /// let options = ringport::worker::PoolOptions::new().queue_capacity(0);
    /// ```
    pub fn queue_capacity(mut self, tasks: usize) -> Self {
        self.queue_capacity = tasks;
        self
    }
}

/// `N` workers that run tasks of type `T` and give results of type `R`, like the web's
/// `WorkerManager`. See the [module documentation](super) for the two kinds of worker.
///
/// The pool may be shared between threads (`execute` takes `&self`). Dropping it
/// terminates it.
///
/// # Example
/// ```
/// use ringport::worker::{PoolOptions, WorkerPool};
///
/// let pool = WorkerPool::threads(2, PoolOptions::new(), |words: Vec<String>| {
///     Ok::<_, String>(words.join(" "))
/// });
/// let h = pool.execute(vec!["hello".into(), "pool".into()]).unwrap();
/// assert_eq!(h.wait().unwrap(), "hello pool");
/// ```
pub struct WorkerPool<T, R> {
    backend: Box<dyn Backend<T, R>>,
}

impl<T: Send + 'static, R: Send + 'static> WorkerPool<T, R> {
    /// A pool of `workers` threads that run `handler` on each task. The handler's error
    /// comes back as [`TaskError::Failed`](super::TaskError::Failed) with its `Display` text.
    ///
    /// # Panics
    /// If `workers` is zero, or a thread cannot be started.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, TaskError, WorkerPool};
    ///
    /// let pool = WorkerPool::threads(3, PoolOptions::new(), |path: String| {
    ///     path.parse::<u16>().map_err(|e| format!("{path:?}: {e}"))
    /// });
    /// assert_eq!(pool.execute("80".into()).unwrap().wait(), Ok(80));
    /// assert!(matches!(pool.execute("x".into()).unwrap().wait(), Err(TaskError::Failed(_))));
    /// ```
    pub fn threads<E, F>(workers: usize, options: PoolOptions, handler: F) -> Self
    where
        E: std::fmt::Display,
        F: Fn(T) -> Result<R, E> + Send + Sync + 'static,
    {
        assert!(workers > 0, "a worker pool needs at least one worker");
        let handler = Box::new(move |task| handler(task).map_err(|e| e.to_string()));
        WorkerPool {
            backend: Box::new(thread::ThreadPool::new(
                workers,
                options.queue_capacity,
                handler,
            )),
        }
    }

    /// Gives `task` to an idle worker, or queues it while every worker is busy.
    ///
    /// # Errors
    /// The task back, with [`ExecuteErrorKind::QueueFull`](super::ExecuteErrorKind::QueueFull) when the queue is full,
    /// [`ExecuteErrorKind::Terminated`](super::ExecuteErrorKind::Terminated) after [`terminate`](Self::terminate), and for
    /// process workers `TooLarge` or `Encode`.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, WorkerPool};
    /// let pool = WorkerPool::threads(1, PoolOptions::new(), |n: u8| Ok::<_, String>(n + 1));
    /// assert_eq!(pool.execute(1).unwrap().wait(), Ok(2));
    /// ```
    pub fn execute(&self, task: T) -> Result<TaskHandle<R>, ExecuteError<T>> {
        self.backend.submit(task, None)
    }

    /// As [`execute`](Self::execute), but waits at most `timeout` for room in a full
    /// queue.
    ///
    /// # Errors
    /// As [`execute`](Self::execute), with [`ExecuteErrorKind::Timeout`](super::ExecuteErrorKind::Timeout) instead of
    /// `QueueFull`.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{ExecuteErrorKind, PoolOptions, WorkerPool};
    /// use std::time::Duration;
    ///
    /// let (go, gate) = std::sync::mpsc::channel::<()>();
    /// let gate = std::sync::Mutex::new(gate);
    /// let pool = WorkerPool::threads(1, PoolOptions::new().queue_capacity(0), move |()| {
    ///     gate.lock().unwrap().recv().map_err(|e| e.to_string())
    /// });
    /// let busy = pool.execute(()).unwrap();
    /// let err = pool.execute_timeout((), Duration::from_millis(1)).unwrap_err();
    /// assert_eq!(err.kind, ExecuteErrorKind::Timeout);
    /// go.send(()).unwrap();
    /// busy.wait().unwrap();
    /// ```
    pub fn execute_timeout(
        &self,
        task: T,
        timeout: Duration,
    ) -> Result<TaskHandle<R>, ExecuteError<T>> {
        self.backend
            .submit(task, Some(Instant::now().checked_add(timeout)))
    }

    /// Stops the pool: every queued or running task fails with
    /// [`TaskError::Terminated`](super::TaskError::Terminated) at once, later `execute`s are refused, and the call
    /// returns once the workers are gone. Worker processes are killed; a worker thread
    /// cannot be, so this waits for the tasks that threads are running to return (their
    /// results are dropped). Calling it again does nothing.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, TaskError, WorkerPool};
    ///
    /// let (go, gate) = std::sync::mpsc::channel::<()>();
    /// let gate = std::sync::Mutex::new(gate);
    /// let pool = WorkerPool::threads(1, PoolOptions::new(), move |n: u32| {
    ///     gate.lock().unwrap().recv().map_err(|e| e.to_string())?;
    ///     Ok::<_, String>(n)
    /// });
    /// let running = pool.execute(1).unwrap();
    /// let queued = pool.execute(2).unwrap();
    /// std::thread::scope(|s| {
    ///     let terminating = s.spawn(|| pool.terminate());
    ///     // Both fail at once, though the running task still waits at the gate...
    ///     assert_eq!(queued.wait(), Err(TaskError::Terminated));
    ///     assert_eq!(running.wait(), Err(TaskError::Terminated));
    ///     drop(go); // ...and terminate returns once that task does.
    ///     terminating.join().unwrap();
    /// });
    /// ```
    pub fn terminate(&self) {
        self.backend.terminate();
    }

    /// How many workers the pool has (replacements take their predecessor's place).
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, WorkerPool};
    /// let pool = WorkerPool::threads(3, PoolOptions::new(), |()| Ok::<_, String>(()));
    /// assert_eq!(pool.workers(), 3);
    /// ```
    pub fn workers(&self) -> usize {
        self.backend.workers()
    }

    /// How many workers were replaced so far, after a panic or a worker process's death.
    /// A thread worker's successor is counted before the panicked task's handle
    /// completes; a worker process's once it is ready, which can be after.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, TaskError, WorkerPool};
    /// let pool = WorkerPool::threads(1, PoolOptions::new(), |n: u8| {
    ///     assert!(n > 0, "no zeros");
    ///     Ok::<_, String>(n)
    /// });
    /// assert!(matches!(pool.execute(0).unwrap().wait(), Err(TaskError::Panicked(_))));
    /// assert_eq!(pool.execute(1).unwrap().wait(), Ok(1));
    /// assert_eq!(pool.replaced_workers(), 1);
    /// ```
    pub fn replaced_workers(&self) -> u64 {
        self.backend.replaced()
    }

    /// The process ids of the worker processes running now; empty for thread workers.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{PoolOptions, WorkerPool};
    /// let pool = WorkerPool::threads(2, PoolOptions::new(), |()| Ok::<_, String>(()));
    /// assert!(pool.worker_pids().is_empty());
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        self.backend.pids()
    }
}

#[cfg(feature = "serde")]
impl<T, R> WorkerPool<T, R>
where
    T: serde::Serialize + Send + 'static,
    R: serde::de::DeserializeOwned + Send + 'static,
{
    /// A pool of `workers` processes, each this program started again for
    /// `process`'s role, which it serves in [`serve_if_worker`](super::serve_if_worker). Returns once every
    /// worker said it is ready.
    ///
    /// # Errors
    /// [`StartError`]: a channel or a process could not be created, or a worker exited
    /// or stayed silent instead of getting ready (the program does not call
    /// `serve_if_worker` for the role, or not first thing), or this process is a worker
    /// that has not started serving.
    ///
    /// # Panics
    /// If `workers` is zero.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::{serve_if_worker, PoolOptions, ProcessOptions, TaskError, WorkerPool};
    ///
    /// serve_if_worker("parse", |text: String| text.trim().parse::<i64>());
    ///
    /// let pool = WorkerPool::<String, i64>::processes(2, PoolOptions::new(), ProcessOptions::new("parse"))?;
    /// assert_eq!(pool.execute(" 42 ".into()).unwrap().wait(), Ok(42));
    /// let err = pool.execute("x".into()).unwrap().wait().unwrap_err();
    /// assert_eq!(err, TaskError::Failed("invalid digit found in string".into()));
    /// assert_eq!(pool.worker_pids().len(), 2);
    /// # Ok::<(), ringport::worker::StartError>(())
    /// ```
    pub fn processes(
        workers: usize,
        options: PoolOptions,
        process: ProcessOptions,
    ) -> Result<Self, StartError> {
        assert!(workers > 0, "a worker pool needs at least one worker");
        Ok(WorkerPool {
            backend: Box::new(process::ProcessPool::<T, R>::new(
                workers,
                options.queue_capacity,
                process,
            )?),
        })
    }
}

impl<T, R> std::fmt::Debug for WorkerPool<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("workers", &self.backend.workers())
            .field("replaced_workers", &self.backend.replaced())
            .finish_non_exhaustive()
    }
}

impl<T, R> Drop for WorkerPool<T, R> {
    fn drop(&mut self) {
        self.backend.terminate();
    }
}
