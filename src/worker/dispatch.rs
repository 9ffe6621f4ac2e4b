//! Who runs what next: idle workers and the bounded FIFO queue, behind one lock.
//!
//! A task goes straight to an idle worker's private channel when there is one (the most
//! recently idle first: it is likeliest to be still polling its channel, so the hand-over
//! needs no wake). Only when every worker is busy does the task wait in the queue, and a
//! worker that finishes takes the queue's oldest task before it goes idle. So a task is
//! queued only while no worker is idle, and tasks start in the order they were given.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use thiserror::Error;

/// Why [`WorkerPool::execute`](super::WorkerPool::execute) refused a task.
///
/// # Example
/// ```
/// use ringport::worker::{ExecuteErrorKind, PoolOptions, WorkerPool};
///
/// let pool = WorkerPool::threads(1, PoolOptions::new(), |n: u8| Ok::<_, String>(n));
/// pool.terminate();
/// assert_eq!(pool.execute(1).unwrap_err().kind, ExecuteErrorKind::Terminated);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ExecuteErrorKind {
    /// Every worker is busy and the queue holds
    /// [`queue_capacity`](super::PoolOptions::queue_capacity) tasks.
    #[error("every worker is busy and the task queue is full")]
    QueueFull,
    /// The queue stayed full for the whole timeout of
    /// [`execute_timeout`](super::WorkerPool::execute_timeout).
    #[error("the task queue stayed full until the timeout")]
    Timeout,
    /// The pool was terminated.
    #[error("the worker pool was terminated")]
    Terminated,
    /// The task's encoding is longer than a worker process's channel takes (see
    /// [`ProcessOptions::channel_capacity`](super::ProcessOptions::channel_capacity)).
    #[error("the task's encoding of {len} bytes exceeds the worker channel's maximum of {max}")]
    TooLarge {
        /// The encoding's length.
        len: usize,
        /// The longest frame a worker's channel carries.
        max: usize,
    },
    /// The task's `Serialize` implementation failed (process workers only).
    #[error("could not encode the task: {0}")]
    Encode(String),
}

/// A task the pool did not take, given back with the reason.
///
/// # Example
/// ```
/// use ringport::worker::{ExecuteErrorKind, PoolOptions, WorkerPool};
/// use std::sync::mpsc;
///
/// let (go, gate) = mpsc::channel::<()>();
/// let gate = std::sync::Mutex::new(gate);
/// let options = PoolOptions::new().queue_capacity(0);
/// let pool = WorkerPool::threads(1, options, move |s: String| {
///     gate.lock().unwrap().recv().map_err(|e| e.to_string())?;
///     Ok::<_, String>(s)
/// });
/// let running = pool.execute("first".into()).unwrap();
/// let err = pool.execute("second".into()).unwrap_err();
/// assert_eq!((err.task.as_str(), err.kind), ("second", ExecuteErrorKind::QueueFull));
/// go.send(()).unwrap();
/// assert_eq!(running.wait().unwrap(), "first");
/// ```
#[derive(Error)]
#[error("{kind}")]
pub struct ExecuteError<T> {
    /// The task, not run.
    pub task: T,
    /// Why.
    pub kind: ExecuteErrorKind,
}

impl<T> std::fmt::Debug for ExecuteError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A worker's private channel, as the dispatcher sees it.
pub(crate) trait Link<J> {
    /// Hands `job` to this worker, which is idle, and records it as the worker's task in
    /// flight.
    fn start(&mut self, job: J);

    /// A task now waits in the queue for this worker, which is busy: its reply must be
    /// taken soon even if nobody waits for the task it answers, since the queue moves
    /// only as replies come in.
    fn queue_waits(&mut self) {}
}

/// The scheduling state: what [`Dispatcher`] guards.
pub(crate) struct Dispatch<J, L> {
    queue: VecDeque<J>,
    capacity: usize,
    /// Indices into `links`, most recently idle last.
    idle: Vec<usize>,
    /// One per worker, by index.
    pub(crate) links: Vec<L>,
    closed: bool,
    /// Callers of `submit` asleep until a task leaves the queue or a worker goes idle.
    waiting_for_room: usize,
}

impl<J, L: Link<J>> Dispatch<J, L> {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next job for worker `i`, which just finished one: the queue's oldest, or none,
    /// and then the worker is idle. Returns whether a submitter may now find room.
    pub(crate) fn next_for(&mut self, i: usize) -> (Option<J>, bool) {
        if self.closed {
            return (None, false);
        }
        let job = self.queue.pop_front();
        if job.is_none() {
            self.idle.push(i);
        }
        (job, self.waiting_for_room > 0)
    }

    /// Takes worker `i` out of the idle ones, if it is there: it died, and waits for
    /// its replacement. (Only a worker process dies.)
    #[cfg(feature = "serde")]
    pub(crate) fn take_out(&mut self, i: usize) {
        self.idle.retain(|&w| w != i);
    }

    /// Puts `job` first in line: on an idle worker now, or at the queue's head, even past
    /// its capacity (the job was accepted once). Gives it back if the pool is closed.
    /// (Only a worker process's task is retried.)
    #[cfg(feature = "serde")]
    pub(crate) fn put_first(&mut self, job: J) -> Result<(), J> {
        if self.closed {
            return Err(job);
        }
        match self.idle.pop() {
            Some(i) => self.links[i].start(job),
            None => {
                self.queue.push_front(job);
                self.links.iter_mut().for_each(Link::queue_waits);
            }
        }
        Ok(())
    }
}

/// [`Dispatch`] behind its lock, with the condition variable that `execute_timeout`
/// sleeps on.
pub(crate) struct Dispatcher<J, L> {
    state: Mutex<Dispatch<J, L>>,
    room: Condvar,
}

impl<J, L: Link<J>> Dispatcher<J, L> {
    /// Every worker starts idle.
    pub(crate) fn new(links: Vec<L>, capacity: usize) -> Self {
        Dispatcher {
            state: Mutex::new(Dispatch {
                queue: VecDeque::with_capacity(capacity.min(1024)),
                capacity,
                idle: (0..links.len()).rev().collect(),
                links,
                closed: false,
                waiting_for_room: 0,
            }),
            room: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Dispatch<J, L>> {
        // The state is changed only by code that cannot panic halfway (handlers run
        // outside the lock), so a poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes submitters waiting for room, after [`Dispatch::next_for`] said there may be
    /// some.
    pub(crate) fn room_freed(&self) {
        self.room.notify_all();
    }

    /// Starts the queue's oldest task on worker `i`, which is free, or makes it idle;
    /// then releases the lock `d` and wakes submitters waiting for room.
    pub(crate) fn give_next(&self, mut d: MutexGuard<'_, Dispatch<J, L>>, i: usize) {
        let (next, room) = d.next_for(i);
        if let Some(next) = next {
            d.links[i].start(next);
        }
        drop(d);
        if room {
            self.room_freed();
        }
    }

    /// Starts `job` on an idle worker or queues it. `deadline` is how long to wait for
    /// room: `None` not at all, `Some(None)` without limit.
    pub(crate) fn submit(
        &self,
        job: J,
        deadline: Option<Option<Instant>>,
    ) -> Result<(), (J, ExecuteErrorKind)> {
        let mut d = self.lock();
        loop {
            if d.closed {
                return Err((job, ExecuteErrorKind::Terminated));
            }
            if let Some(i) = d.idle.pop() {
                d.links[i].start(job);
                return Ok(());
            }
            if d.queue.len() < d.capacity {
                d.queue.push_back(job);
                d.links.iter_mut().for_each(Link::queue_waits);
                return Ok(());
            }
            let wait = match deadline {
                None => return Err((job, ExecuteErrorKind::QueueFull)),
                Some(None) => None,
                Some(Some(at)) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err((job, ExecuteErrorKind::Timeout)),
                },
            };
            d.waiting_for_room += 1;
            d = match wait {
                None => self.room.wait(d).unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    let slept = self.room.wait_timeout(d, left);
                    slept.unwrap_or_else(PoisonError::into_inner).0
                }
            };
            d.waiting_for_room -= 1;
        }
    }

    /// Closes the pool to new tasks and returns the queued ones; the caller fails them
    /// and stops the workers, whose links it reaches through the returned guard.
    pub(crate) fn close(&self) -> (MutexGuard<'_, Dispatch<J, L>>, Vec<J>) {
        let mut d = self.lock();
        d.closed = true;
        let queued = d.queue.drain(..).collect();
        self.room.notify_all();
        (d, queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what each worker was given.
    #[derive(Default)]
    struct Log(Vec<u32>);

    impl Link<u32> for Log {
        fn start(&mut self, job: u32) {
            self.0.push(job);
        }
    }

    fn two_workers(capacity: usize) -> Dispatcher<u32, Log> {
        Dispatcher::new(vec![Log::default(), Log::default()], capacity)
    }

    #[test]
    fn idle_workers_first_then_the_queue_in_order_then_full() {
        let p = two_workers(2);
        for job in 0..4 {
            p.submit(job, None).unwrap();
        }
        assert_eq!(p.submit(4, None), Err((4, ExecuteErrorKind::QueueFull)));
        let mut d = p.lock();
        assert_eq!(
            (d.links[0].0.clone(), d.links[1].0.clone()),
            (vec![0], vec![1])
        );
        assert_eq!(d.next_for(1), (Some(2), false));
        assert_eq!(d.next_for(0), (Some(3), false));
        assert_eq!(d.next_for(0), (None, false));
        drop(d);
        p.submit(5, None).unwrap();
        assert_eq!(
            p.lock().links[0].0,
            [0, 5],
            "the idle worker got it at once"
        );
    }

    #[test]
    #[cfg(feature = "serde")]
    fn a_job_put_first_jumps_the_queue_and_closing_returns_the_rest() {
        let p = two_workers(1);
        for job in 0..3 {
            p.submit(job, None).unwrap();
        }
        p.lock().put_first(9).unwrap();
        let (mut d, queued) = p.close();
        assert_eq!(queued, [9, 2]);
        assert_eq!(d.put_first(10), Err(10));
        assert_eq!(d.next_for(0), (None, false));
        drop(d);
        assert_eq!(p.submit(3, None), Err((3, ExecuteErrorKind::Terminated)));
    }

    #[test]
    fn a_timed_submit_waits_for_room_or_gives_up() {
        let p = std::sync::Arc::new(two_workers(0));
        p.submit(0, None).unwrap();
        p.submit(1, None).unwrap();
        let past = Some(Some(Instant::now()));
        assert_eq!(p.submit(2, past), Err((2, ExecuteErrorKind::Timeout)));
        let q = p.clone();
        let t = std::thread::spawn(move || q.submit(3, Some(None)));
        // Until the submitter sleeps, finishing finds nobody to wake: wait for it.
        while p.lock().waiting_for_room == 0 {
            std::thread::yield_now();
        }
        let (job, room) = p.lock().next_for(1);
        assert_eq!((job, room), (None, true));
        p.room_freed();
        t.join().unwrap().unwrap();
        assert_eq!(p.lock().links[1].0, [1, 3]);
    }
}
