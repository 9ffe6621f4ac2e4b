//! Process workers, the parent's side: handing them tasks, reading their replies, and
//! replacing the ones that die. (Starting one is in `launch`.)
//!
//! A reader thread per worker waits on the worker's replies. It completes each reply's
//! handle and hands the worker the queue's oldest task. When the worker dies (its channel
//! reports `PeerDied`, or `Disconnected` if it exited) or reports a panic (after which it
//! exits), the reader reaps it, applies the [`RetryPolicy`] to its task in flight, and
//! starts a replacement in its slot. A replacement that fails to start is tried again
//! every second, while the queue holds the slot's share of the tasks. A task handed to
//! a worker that has died but whose death its reader has not seen yet counts as in
//! flight on it, and the policy applies to it too.

use super::dispatch::{Dispatcher, ExecuteError, ExecuteErrorKind, Link};
use super::handle::{Completion, TaskError, TaskHandle};
use super::launch::{
    await_ready, launch, reap, ProcessOptions, Readiness, StartError, Started, LOOK,
};
use super::serve;
use super::{Backend, Deadline};
use crate::ring::{FrameConsumer, FrameProducer};
use crate::typed::{decode, encode, DecodeError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a slot whose replacement failed to start waits before the next try.
const RESPAWN_PAUSE: Duration = Duration::from_secs(1);

/// What happens to the task in flight on a worker process that dies.
///
/// # Example
/// ```
/// use ringport::worker::{ProcessOptions, RetryPolicy};
/// let options = ProcessOptions::new("hash").retry(RetryPolicy::Retry { max_retries: 2 });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryPolicy {
    /// The task fails with [`TaskError::WorkerDied`] (the default).
    #[default]
    Fail,
    /// The task runs again, first in line, up to `max_retries` more times; a task whose
    /// every attempt killed its worker then fails with [`TaskError::WorkerDied`].
    Retry {
        /// Attempts after the first.
        max_retries: u32,
    },
}

/// A task, encoded, on its way to a worker process, with the place its result goes.
pub(crate) struct Job<R> {
    bytes: Vec<u8>,
    done: Arc<Completion<R>>,
    /// Attempts so far after the first.
    retries: u32,
}

/// A worker process as the dispatcher sees it.
pub(crate) struct ProcessLink<R> {
    /// `None` while the slot's worker is being replaced, and once the pool is terminated.
    tx: Option<FrameProducer>,
    /// The task this worker runs: failed or retried if the worker dies.
    current: Option<Job<R>>,
    /// `None` while the slot's worker is being replaced, and once the pool is terminated.
    child: Option<Child>,
    reader: Option<JoinHandle<()>>,
}

impl<R> Link<Job<R>> for ProcessLink<R> {
    fn start(&mut self, job: Job<R>) {
        if let Some(tx) = &mut self.tx {
            // The task fits (checked at submit) and the ring is empty (a worker releases
            // a task's frame before it replies), so this fails only for a dead worker:
            // its reader then applies the retry policy to this job.
            let _ = tx.try_send(&job.bytes);
        }
        self.current = Some(job);
    }
}

/// What the pool and its reader threads share.
pub(crate) struct Shared<R> {
    dispatcher: Dispatcher<Job<R>, ProcessLink<R>>,
    options: ProcessOptions,
    /// Set first thing by `terminate`, so that a reader starting a replacement gives up.
    stopping: AtomicBool,
    replaced: AtomicU64,
}

/// The process-worker pool behind a [`WorkerPool`](super::WorkerPool).
pub(crate) struct ProcessPool<T, R> {
    shared: Arc<Shared<R>>,
    /// The longest task encoding a worker's channel takes.
    max_frame: usize,
    _task: PhantomData<fn(T)>,
}

impl<T, R> ProcessPool<T, R>
where
    T: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(
        workers: usize,
        queue_capacity: usize,
        options: ProcessOptions,
    ) -> Result<Self, StartError> {
        if let Some(role) = serve::unserved_role() {
            return Err(StartError::NotServing { role });
        }
        // Started together, then awaited: the workers boot in parallel.
        let mut launched = Vec::with_capacity(workers);
        for _ in 0..workers {
            match launch(&options) {
                Ok(l) => launched.push(l),
                Err(e) => {
                    launched.into_iter().for_each(|(_, child)| reap(child));
                    return Err(e);
                }
            }
        }
        let never = AtomicBool::new(false);
        let mut started = Vec::with_capacity(workers);
        let mut failure = None;
        for (port, child) in launched {
            if failure.is_some() {
                reap(child);
                continue;
            }
            match await_ready(port, child, &options, &never) {
                Readiness::Ready(s) => started.push(s),
                Readiness::Failed(e) => failure = Some(e),
                Readiness::Stopped => unreachable!("nobody stops a pool that is not built"),
            }
        }
        if let Some(e) = failure {
            started.into_iter().for_each(|s| reap(s.child));
            return Err(e);
        }
        let max_frame = started.first().map_or(0, |s| s.tx.max_frame());
        let mut readers = Vec::with_capacity(workers);
        let links = started
            .into_iter()
            .map(|s| {
                readers.push(s.rx);
                ProcessLink {
                    tx: Some(s.tx),
                    current: None,
                    child: Some(s.child),
                    reader: None,
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            dispatcher: Dispatcher::new(links, queue_capacity),
            options,
            stopping: AtomicBool::new(false),
            replaced: AtomicU64::new(0),
        });
        let pool = ProcessPool {
            shared,
            max_frame,
            _task: PhantomData,
        };
        for (i, rx) in readers.into_iter().enumerate() {
            let shared = pool.shared.clone();
            let reader = std::thread::Builder::new()
                .name(format!("ringport-worker-reader-{i}"))
                .spawn(move || read_replies(&shared, i, rx))
                .map_err(|e| {
                    pool.terminate();
                    StartError::Spawn(e)
                })?;
            pool.shared.dispatcher.lock().links[i].reader = Some(reader);
        }
        Ok(pool)
    }
}

/// A worker's reply, as its handle will see it.
enum Reply<R> {
    /// The task's outcome; the worker goes on.
    Outcome(Result<R, TaskError>),
    /// The task panicked; the worker exits after this reply.
    Panicked(String),
}

fn parse<R: DeserializeOwned>(bytes: &[u8]) -> Reply<R> {
    let bad = |what: &str| Reply::Outcome(Err(TaskError::BadReply(what.to_owned())));
    match serve::Reply::parse(bytes) {
        Some(serve::Reply::Done(encoded)) => Reply::Outcome(
            decode(encoded).map_err(|e: DecodeError| TaskError::BadReply(e.to_string())),
        ),
        Some(serve::Reply::Failed(text)) => Reply::Outcome(Err(TaskError::Failed(text))),
        Some(serve::Reply::Panicked(text)) => Reply::Panicked(text),
        Some(serve::Reply::Ready) => bad("a second ready message"),
        None => bad("an unknown message"),
    }
}

/// A reader thread's life: complete the replies of worker `i`, replace it when it dies,
/// until the pool stops.
fn read_replies<R: DeserializeOwned + Send + 'static>(
    shared: &Shared<R>,
    i: usize,
    mut rx: FrameConsumer,
) {
    let mut scratch = Vec::new();
    loop {
        let reply = match rx.recv() {
            // Copied out first: the worker's process could rewrite the frame in place.
            Ok(frame) => {
                scratch.clear();
                scratch.extend_from_slice(&frame);
                drop(frame);
                Some(parse::<R>(&scratch))
            }
            // PeerDied, or Disconnected from a worker that exited by itself.
            Err(_) => None,
        };
        match reply {
            Some(Reply::Outcome(outcome)) => finish(shared, i, outcome),
            Some(Reply::Panicked(text)) => {
                let job = shared.dispatcher.lock().links[i].current.take();
                if let Some(job) = job {
                    job.done.complete(Err(TaskError::Panicked(text)));
                }
                match replace(shared, i) {
                    Some(next) => rx = next,
                    None => return,
                }
            }
            None => match replace(shared, i) {
                Some(next) => rx = next,
                None => return,
            },
        }
    }
}

/// Completes worker `i`'s task with `outcome` and gives the worker its next task.
fn finish<R>(shared: &Shared<R>, i: usize, outcome: Result<R, TaskError>) {
    let mut d = shared.dispatcher.lock();
    // A reply with no task in flight (a confused worker) must not make the worker idle
    // twice.
    let Some(job) = d.links[i].current.take() else {
        return;
    };
    let (next, room) = d.next_for(i);
    if let Some(next) = next {
        d.links[i].start(next);
    }
    drop(d);
    if room {
        shared.dispatcher.room_freed();
    }
    job.done.complete(outcome);
}

/// Replaces worker `i`, which died or is exiting: reaps it, settles its task in flight
/// per the retry policy, and starts its successor. Returns the successor's receiving end,
/// or `None` when the pool is stopping.
fn replace<R>(shared: &Shared<R>, i: usize) -> Option<FrameConsumer> {
    let (job, child) = {
        let mut d = shared.dispatcher.lock();
        if d.is_closed() {
            return None;
        }
        d.take_out(i);
        let link = &mut d.links[i];
        link.tx = None;
        (link.current.take(), link.child.take())
    };
    let pid = child.as_ref().map_or(0, Child::id);
    if let Some(child) = child {
        reap(child);
    }
    if let Some(mut job) = job {
        match shared.options.retry {
            RetryPolicy::Retry { max_retries } if job.retries < max_retries => {
                job.retries += 1;
                let refused = shared.dispatcher.lock().put_first(job);
                if let Err(job) = refused {
                    job.done.complete(Err(TaskError::Terminated));
                }
            }
            _ => job.done.complete(Err(TaskError::WorkerDied { pid })),
        }
    }
    loop {
        let attempt = match launch(&shared.options) {
            Ok((port, child)) => await_ready(port, child, &shared.options, &shared.stopping),
            Err(e) => Readiness::Failed(e),
        };
        match attempt {
            Readiness::Ready(started) => return install(shared, i, started),
            Readiness::Stopped => return None,
            Readiness::Failed(_) => {
                let until = Instant::now() + RESPAWN_PAUSE;
                while Instant::now() < until {
                    if shared.stopping.load(Ordering::Relaxed) {
                        return None;
                    }
                    std::thread::sleep(LOOK);
                }
            }
        }
    }
}

/// Puts a started successor in slot `i` and gives it the queue's oldest task.
fn install<R>(shared: &Shared<R>, i: usize, started: Started) -> Option<FrameConsumer> {
    let Started { tx, rx, child } = started;
    let mut d = shared.dispatcher.lock();
    if d.is_closed() {
        drop(d);
        reap(child);
        return None;
    }
    let link = &mut d.links[i];
    link.tx = Some(tx);
    link.child = Some(child);
    shared.replaced.fetch_add(1, Ordering::Relaxed);
    let (next, room) = d.next_for(i);
    if let Some(next) = next {
        d.links[i].start(next);
    }
    drop(d);
    if room {
        shared.dispatcher.room_freed();
    }
    Some(rx)
}

impl<T, R> Backend<T, R> for ProcessPool<T, R>
where
    T: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    fn submit(&self, task: T, deadline: Deadline) -> Result<TaskHandle<R>, ExecuteError<T>> {
        let mut bytes = Vec::new();
        if let Err(e) = encode(&task, &mut bytes) {
            return Err(ExecuteError {
                task,
                kind: ExecuteErrorKind::Encode(e.to_string()),
            });
        }
        if bytes.len() > self.max_frame {
            let (len, max) = (bytes.len(), self.max_frame);
            return Err(ExecuteError {
                task,
                kind: ExecuteErrorKind::TooLarge { len, max },
            });
        }
        let done = Completion::new();
        let job = Job {
            bytes,
            done: done.clone(),
            retries: 0,
        };
        match self.shared.dispatcher.submit(job, deadline) {
            Ok(()) => Ok(TaskHandle::new(done)),
            Err((_, kind)) => Err(ExecuteError { task, kind }),
        }
    }

    fn terminate(&self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        let (mut d, queued) = self.shared.dispatcher.close();
        let mut running = Vec::new();
        let mut children = Vec::new();
        let mut readers = Vec::new();
        for link in &mut d.links {
            running.extend(link.current.take());
            link.tx = None;
            children.extend(link.child.take());
            readers.extend(link.reader.take());
        }
        drop(d);
        for job in running.into_iter().chain(queued) {
            job.done.complete(Err(TaskError::Terminated));
        }
        children.into_iter().for_each(reap);
        // Each reader sees its worker's death, finds the pool closed, and returns.
        for reader in readers {
            let _ = reader.join();
        }
    }

    fn workers(&self) -> usize {
        self.shared.dispatcher.lock().links.len()
    }

    fn replaced(&self) -> u64 {
        self.shared.replaced.load(Ordering::Relaxed)
    }

    fn pids(&self) -> Vec<u32> {
        let d = self.shared.dispatcher.lock();
        d.links
            .iter()
            .filter_map(|l| l.child.as_ref().map(Child::id))
            .collect()
    }
}
