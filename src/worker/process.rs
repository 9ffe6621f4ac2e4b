//! Process workers, the parent's side: handing them tasks, taking their replies, and
//! replacing the ones that die. (Starting one is in `launch`.)
//!
//! # Who takes a reply
//!
//! Each worker's replies arrive in its [`Inbox`]: the ring, behind a lock that whoever
//! takes a reply holds while it settles it (completes the task's handle and hands the
//! worker the queue's oldest task). Two kinds of thread take replies:
//! - the caller waiting for the task: [`TaskHandle`]'s wait polls the inbox itself for
//!   the spin budget (through [`Courier::pump`]), so that an empty task costs the caller
//!   and the worker only. With a reader thread between them, three threads took part in
//!   every round trip, and on two CPUs one of them was always asleep or preempted: 50 µs
//!   instead of a port round trip's fraction of one;
//! - the worker's reader thread, which is on duty (polling, then asleep on the ring's
//!   data signal) or off it (asleep on its [`Duty`] word, looking at the inbox and the
//!   worker's liveness every [`LIVENESS_SLICE`]). Off duty, the worker's notifies find no
//!   sleeper on the ring and cost nothing.
//!
//! The reader goes off duty only when its worker has no task in flight (checked under the
//! pool's lock). It is called back on duty ([`Duty::call`]) whenever a reply may be left
//! with nobody else to take it: a handle stops polling to sleep, is polled as a future,
//! is dropped, or finds its task unfinished (`Courier::attend`, which marks the task
//! watched); a watched task starts on the worker; a task waits in the queue (which moves
//! only as replies come in); a caller finds the ring broken; the pool terminates. A task
//! that nobody has waited for yet may have its reply sit in the ring until its handle
//! looks: only that handle can observe it.
//!
//! # Deaths and panics
//!
//! When the worker dies (its ring reports `PeerDied`, or `Disconnected` if it exited) or
//! reports a panic (after which it exits), its reader reaps it, applies the
//! [`RetryPolicy`] to its task in flight, and starts a replacement in its slot. A
//! replacement that fails to start is tried again every second, while the queue holds the
//! slot's share of the tasks. A task handed to a worker that has died but whose death its
//! reader has not seen yet counts as in flight on it, and the policy applies to it too.

use super::dispatch::{Dispatcher, ExecuteError, ExecuteErrorKind, Link};
use super::duty::Duty;
use super::handle::{Completion, Courier, Place, TaskError, TaskHandle};
use super::launch::{
    await_ready, launch, reap, ProcessOptions, Readiness, StartError, Started, LOOK,
};
use super::pool::{Backend, Deadline};
use super::serve;
use crate::ring::ctrl::{spin_then, DEFAULT_SPIN};
use crate::ring::frame::DataWatch;
use crate::ring::{FrameConsumer, FrameProducer};
use crate::signal::LIVENESS_SLICE;
use crate::typed::{decode, encode, DecodeError};
use crate::RecvError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a slot whose replacement failed to start waits before the next try.
const RESPAWN_PAUSE: Duration = Duration::from_secs(1);

/// A worker's replies, for its reader thread and the callers waiting for its tasks.
pub(crate) struct Inbox {
    taking: Mutex<Taking>,
    /// Whether the reader thread watches the ring (see the module docs).
    duty: Duty,
    /// A panic reply was settled: the worker exits, and the reader replaces it.
    doomed: AtomicBool,
}

struct Taking {
    /// `None` while the worker is being replaced.
    rx: Option<FrameConsumer>,
    /// A reply is copied here before it is decoded: the worker's process could rewrite
    /// the frame in place.
    scratch: Vec<u8>,
}

impl Inbox {
    fn new(rx: FrameConsumer) -> Inbox {
        Inbox {
            taking: Mutex::new(Taking {
                rx: Some(rx),
                scratch: Vec::new(),
            }),
            duty: Duty::default(),
            doomed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Taking> {
        // A decoder that panicked leaves the ring and the scratch consistent.
        self.taking.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next reply of worker `i` and settles it, unless there is none or another
    /// thread is taking one. Returns the ring's error: the worker is dead or broken.
    ///
    /// The reply is settled with the lock held, so that nobody sees the worker's exit
    /// (the ring's `Disconnected`) before its last reply has been settled.
    fn take<R: DeserializeOwned>(&self, shared: &Shared<R>, i: usize) -> Result<(), RecvError> {
        let mut guard = match self.taking.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        let Taking { rx, scratch } = &mut *guard;
        let Some(rx) = rx else {
            return Ok(());
        };
        let copied = rx.try_recv_with(|frame| {
            scratch.clear();
            scratch.extend_from_slice(frame);
        });
        match copied {
            Ok(()) => {
                settle(shared, i, parse(scratch));
                Ok(())
            }
            Err(RecvError::Empty) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

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
    /// Its index among the pool's workers.
    index: usize,
    inbox: Arc<Inbox>,
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
        let place = &job.done.place;
        place.worker.store(self.index, Ordering::Relaxed);
        if place.watched.load(Ordering::Relaxed) {
            self.inbox.duty.call();
        }
        self.current = Some(job);
    }

    fn queue_waits(&mut self) {
        self.inbox.duty.call();
    }
}

/// What the pool, its reader threads and its tasks' handles share.
pub(crate) struct Shared<R> {
    dispatcher: Dispatcher<Job<R>, ProcessLink<R>>,
    /// One per worker, by index.
    inboxes: Vec<Arc<Inbox>>,
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
        let mut watches = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        let links = started
            .into_iter()
            .enumerate()
            .map(|(index, s)| {
                watches.push(s.rx.watch());
                let inbox = Arc::new(Inbox::new(s.rx));
                inboxes.push(inbox.clone());
                ProcessLink {
                    index,
                    inbox,
                    tx: Some(s.tx),
                    current: None,
                    child: Some(s.child),
                    reader: None,
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            dispatcher: Dispatcher::new(links, queue_capacity),
            inboxes,
            options,
            stopping: AtomicBool::new(false),
            replaced: AtomicU64::new(0),
        });
        let pool = ProcessPool {
            shared,
            max_frame,
            _task: PhantomData,
        };
        for (i, watch) in watches.into_iter().enumerate() {
            let shared = pool.shared.clone();
            let reader = std::thread::Builder::new()
                .name(format!("ringport-worker-reader-{i}"))
                .spawn(move || read_replies(&shared, i, watch))
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

/// What a reader thread found.
enum Event {
    /// The worker died, is broken, or exits after a panic: replace it.
    Died,
    /// The pool is terminated.
    Stop,
}

/// A reader thread's life: take worker `i`'s replies when on duty, replace the worker
/// when it dies, until the pool stops.
fn read_replies<R: DeserializeOwned + Send + 'static>(
    shared: &Shared<R>,
    i: usize,
    mut watch: DataWatch,
) {
    let inbox = &shared.inboxes[i];
    loop {
        let event = if !inbox.duty.is_on() {
            inbox.duty.sleep(Some(LIVENESS_SLICE));
            look(shared, i, &watch, true)
        } else {
            on_duty(shared, i, &watch)
        };
        match event {
            None => {}
            Some(Event::Stop) => return,
            Some(Event::Died) => match replace(shared, i) {
                Some(next) => watch = next,
                None => return,
            },
        }
    }
}

/// Takes worker `i`'s replies until it dies or the pool stops (`Some`), or until the
/// worker has no task in flight, when the reader goes off duty (`None`).
fn on_duty<R: DeserializeOwned>(shared: &Shared<R>, i: usize, watch: &DataWatch) -> Option<Event> {
    // Polled first, as a blocking receive would: a reply coming soon costs no wake.
    if let Some(event) = spin_then(DEFAULT_SPIN, || look(shared, i, watch, false)) {
        return Some(event);
    }
    watch
        .wait_until(|liveness_due| match look(shared, i, watch, liveness_due) {
            Some(event) => Some(Some(event)),
            None => go_off_duty(shared, i).then_some(None),
        })
        .flatten()
}

/// One look at worker `i`: settles a reply if one is there; says whether the worker must
/// be replaced or the pool stopped.
fn look<R: DeserializeOwned>(
    shared: &Shared<R>,
    i: usize,
    watch: &DataWatch,
    liveness_due: bool,
) -> Option<Event> {
    if shared.stopping.load(Ordering::Relaxed) {
        return Some(Event::Stop);
    }
    let inbox = &shared.inboxes[i];
    if inbox.doomed.load(Ordering::Relaxed) && inbox.doomed.swap(false, Ordering::Relaxed) {
        return Some(Event::Died);
    }
    if inbox.take(shared, i).is_err() {
        return Some(Event::Died);
    }
    (liveness_due && watch.dead_producer().is_some()).then_some(Event::Died)
}

/// Puts worker `i`'s reader off duty if the worker has no task in flight, so that no
/// reply can come that nobody takes.
fn go_off_duty<R>(shared: &Shared<R>, i: usize) -> bool {
    let d = shared.dispatcher.lock();
    let link = &d.links[i];
    if link.current.is_some() || link.tx.is_none() {
        return false;
    }
    shared.inboxes[i].duty.try_go_off()
}

/// Settles a reply of worker `i`, taken by whoever holds its inbox.
fn settle<R>(shared: &Shared<R>, i: usize, reply: Reply<R>) {
    match reply {
        Reply::Outcome(outcome) => finish(shared, i, outcome),
        Reply::Panicked(text) => {
            // The worker exits after this reply: no task may start on it meanwhile, and
            // its reader replaces it.
            let job = {
                let mut d = shared.dispatcher.lock();
                d.take_out(i);
                let link = &mut d.links[i];
                link.tx = None;
                link.current.take()
            };
            let inbox = &shared.inboxes[i];
            inbox.doomed.store(true, Ordering::Relaxed);
            inbox.duty.call();
            if let Some(job) = job {
                job.done.complete(Err(TaskError::Panicked(text)));
            }
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
    shared.dispatcher.give_next(d, i);
    job.done.complete(outcome);
}

/// Replaces worker `i`, which died or is exiting: reaps it, settles its task in flight
/// per the retry policy, and starts its successor. Returns a watch on the successor's
/// replies, or `None` when the pool is stopping.
fn replace<R>(shared: &Shared<R>, i: usize) -> Option<DataWatch> {
    // Nobody takes from the dead worker's ring any more.
    let dead = shared.inboxes[i].lock().rx.take();
    drop(dead);
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
fn install<R>(shared: &Shared<R>, i: usize, started: Started) -> Option<DataWatch> {
    let Started { tx, rx, child } = started;
    let watch = rx.watch();
    let inbox = &shared.inboxes[i];
    // Before the worker can be given a task: its reply must find the ring in the inbox.
    inbox.lock().rx = Some(rx);
    inbox.doomed.store(false, Ordering::Relaxed);
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
    shared.dispatcher.give_next(d, i);
    Some(watch)
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
            Ok(()) => Ok(TaskHandle::with_courier(done, self.shared.clone())),
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
        self.shared
            .inboxes
            .iter()
            .for_each(|inbox| inbox.duty.call());
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

impl<R: DeserializeOwned + Send + 'static> Courier for Shared<R> {
    fn pump(&self, place: &Place) {
        let i = place.worker.load(Ordering::Relaxed);
        if let Some(inbox) = self.inboxes.get(i) {
            if inbox.take(self, i).is_err() {
                inbox.duty.call();
            }
        }
    }

    fn attend(&self, place: &Place) {
        if place.watched.load(Ordering::Relaxed) {
            return;
        }
        // Under the lock that starting a task takes: the task's worker read here is the
        // one it runs on, or the task starts later and finds itself watched.
        let d = self.dispatcher.lock();
        place.watched.store(true, Ordering::Relaxed);
        let i = place.worker.load(Ordering::Relaxed);
        drop(d);
        if let Some(inbox) = self.inboxes.get(i) {
            inbox.duty.call();
        }
    }
}
