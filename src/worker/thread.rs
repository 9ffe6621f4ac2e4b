//! Thread workers: tasks of any `T: Send` moved to worker threads, no serialisation.
//!
//! Each worker thread owns the receiving end of a private [`local`] channel (capacity
//! one: a worker is given a task only while idle). The thread runs the task, fills in its
//! [`Completion`] itself (no hop back through a channel: the result is already where the
//! handle reads it), then takes the queue's oldest task under the pool's lock and runs it
//! at once, or goes idle and waits on its channel. No other thread is involved: the
//! caller of `execute` dispatches, and the workers drain the queue.
//!
//! A task that panics is reported as [`TaskError::Panicked`], and its thread hands its
//! place to a fresh thread (with a fresh channel) before it exits, so a handler's
//! thread-local state does not outlive a panic. Should the new thread fail to start, the
//! old one serves on in its place.

use super::dispatch::{Dispatcher, ExecuteError, Link};
use super::handle::{Completion, TaskError, TaskHandle};
use super::pool::{Backend, Deadline};
use crate::typed::{local, LocalReceiver, LocalSender};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What a task's handler returns, its error already in text.
pub(crate) type Handler<T, R> = dyn Fn(T) -> Result<R, String> + Send + Sync;

/// A task on its way to a worker thread, with the place its result goes.
pub(crate) struct Job<T, R> {
    task: T,
    done: Arc<Completion<R>>,
}

/// A worker thread as the dispatcher sees it.
pub(crate) struct ThreadLink<T, R> {
    /// `None` once the pool is terminated: the thread sees its channel close.
    tx: Option<LocalSender<Job<T, R>>>,
    /// The task this worker runs, so that `terminate` can fail it.
    current: Option<Arc<Completion<R>>>,
    thread: Option<JoinHandle<()>>,
    /// Threads this worker's slot had before a panic replaced them, still to be joined.
    retired: Vec<JoinHandle<()>>,
}

impl<T: Send, R: Send> Link<Job<T, R>> for ThreadLink<T, R> {
    fn start(&mut self, job: Job<T, R>) {
        self.current = Some(job.done.clone());
        if let Some(tx) = &mut self.tx {
            // An idle worker's channel is empty and its thread alive (a thread leaves
            // only once its channel is closed, or after installing its successor's), so
            // this only fails for a worker that terminate already stopped.
            if let Err(refused) = tx.try_send(job) {
                refused.value.done.complete(Err(TaskError::Terminated));
            }
        }
    }
}

/// What the pool and its worker threads share.
pub(crate) struct Shared<T, R> {
    dispatcher: Dispatcher<Job<T, R>, ThreadLink<T, R>>,
    handler: Box<Handler<T, R>>,
    replaced: AtomicU64,
}

/// The thread-worker pool behind a [`WorkerPool`](super::WorkerPool).
pub(crate) struct ThreadPool<T, R> {
    shared: Arc<Shared<T, R>>,
}

impl<T: Send + 'static, R: Send + 'static> ThreadPool<T, R> {
    pub(crate) fn new(workers: usize, queue_capacity: usize, handler: Box<Handler<T, R>>) -> Self {
        let mut receivers = Vec::with_capacity(workers);
        let links = (0..workers)
            .map(|_| {
                let (tx, rx) = local(1);
                receivers.push(rx);
                ThreadLink {
                    tx: Some(tx),
                    current: None,
                    thread: None,
                    retired: Vec::new(),
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            dispatcher: Dispatcher::new(links, queue_capacity),
            handler,
            replaced: AtomicU64::new(0),
        });
        for (i, rx) in receivers.into_iter().enumerate() {
            let thread = spawn_worker(&shared, i, rx).expect("spawn a worker thread");
            shared.dispatcher.lock().links[i].thread = Some(thread);
        }
        ThreadPool { shared }
    }
}

fn spawn_worker<T: Send + 'static, R: Send + 'static>(
    shared: &Arc<Shared<T, R>>,
    i: usize,
    rx: LocalReceiver<Job<T, R>>,
) -> std::io::Result<JoinHandle<()>> {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("ringport-worker-{i}"))
        .spawn(move || serve(&shared, i, rx))
}

/// A worker thread's life: run what it is given, then what the queue holds, until its
/// channel closes or a panic hands its place to a successor.
fn serve<T: Send + 'static, R: Send + 'static>(
    shared: &Arc<Shared<T, R>>,
    i: usize,
    mut rx: LocalReceiver<Job<T, R>>,
) {
    let mut next = rx.recv().ok();
    while let Some(Job { task, done }) = next {
        if done.is_done() {
            // Failed by terminate while it waited in this worker's channel: not worth
            // running, and terminate is waiting for this thread.
            drop(task);
            next = take_next(shared, i).or_else(|| rx.recv().ok());
            continue;
        }
        let outcome = match catch_unwind(AssertUnwindSafe(|| (shared.handler)(task))) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(text)) => Err(TaskError::Failed(text)),
            Err(payload) => {
                let text = super::pool::panic_text(payload);
                // The successor first, so that the panic's report finds it in place.
                let replaced = hand_over(shared, i);
                done.complete(Err(TaskError::Panicked(text)));
                if replaced {
                    return;
                }
                next = take_next(shared, i).or_else(|| rx.recv().ok());
                continue;
            }
        };
        done.complete(outcome);
        next = take_next(shared, i).or_else(|| rx.recv().ok());
    }
}

/// Worker `i`'s next task from the queue, or none, and then the worker is idle.
fn take_next<T: Send, R: Send>(shared: &Shared<T, R>, i: usize) -> Option<Job<T, R>> {
    let mut d = shared.dispatcher.lock();
    let (job, room) = d.next_for(i);
    d.links[i].current = job.as_ref().map(|j| j.done.clone());
    drop(d);
    if room {
        shared.dispatcher.room_freed();
    }
    job
}

/// Starts a successor in worker `i`'s slot, after a panic; it takes the queue's next
/// task. False if the pool is closed or no thread could be started: then the calling
/// thread serves on.
fn hand_over<T: Send + 'static, R: Send + 'static>(shared: &Arc<Shared<T, R>>, i: usize) -> bool {
    let mut d = shared.dispatcher.lock();
    d.links[i].current = None;
    if d.is_closed() {
        return false;
    }
    let (tx, successor_rx) = local(1);
    let Ok(successor) = spawn_worker(shared, i, successor_rx) else {
        return false;
    };
    let link = &mut d.links[i];
    link.tx = Some(tx);
    link.retired.retain(|t| !t.is_finished());
    link.retired.extend(link.thread.replace(successor));
    shared.replaced.fetch_add(1, Ordering::Relaxed);
    shared.dispatcher.give_next(d, i);
    true
}

impl<T: Send + 'static, R: Send + 'static> Backend<T, R> for ThreadPool<T, R> {
    fn submit(&self, task: T, deadline: Deadline) -> Result<TaskHandle<R>, ExecuteError<T>> {
        let done = Completion::new();
        let job = Job {
            task,
            done: done.clone(),
        };
        match self.shared.dispatcher.submit(job, deadline) {
            Ok(()) => Ok(TaskHandle::new(done)),
            Err((job, kind)) => Err(ExecuteError {
                task: job.task,
                kind,
            }),
        }
    }

    fn terminate(&self) {
        let (mut d, queued) = self.shared.dispatcher.close();
        let mut running = Vec::new();
        let mut threads = Vec::new();
        for link in &mut d.links {
            running.extend(link.current.take());
            link.tx = None;
            threads.extend(link.thread.take());
            threads.append(&mut link.retired);
        }
        drop(d);
        // Outside the lock: waking a waiter, and dropping a task, may run anything.
        for done in running {
            done.complete(Err(TaskError::Terminated));
        }
        for job in queued {
            job.done.complete(Err(TaskError::Terminated));
        }
        let me = std::thread::current().id();
        for t in threads {
            // A handler that terminates its own pool cannot wait for itself.
            if t.thread().id() != me {
                // A worker never unwinds out of `serve` (handlers run in catch_unwind).
                let _ = t.join();
            }
        }
    }

    fn workers(&self) -> usize {
        self.shared.dispatcher.lock().links.len()
    }

    fn replaced(&self) -> u64 {
        self.shared.replaced.load(Ordering::Relaxed)
    }

    fn pids(&self) -> Vec<u32> {
        Vec::new()
    }
}
