//! Worker pools on threads: results, FIFO order of queued tasks, backpressure, errors and
//! panics (the worker replaced, the pool working on), terminate, timeouts, and handles
//! awaited as futures with a hand-written executor.
//!
//! Sizes: `RINGPORT_WORKER_TASKS` (default 2 000) tasks in the runs that count results.

// Shared by the test binaries; this one uses part of it.
#[allow(dead_code)]
mod common;
#[path = "common/executor.rs"]
mod executor;

use common::{env_count, watchdog};
use executor::block_on;
use ringport::worker::{ExecuteErrorKind, PoolOptions, TaskError, TaskHandle, WorkerPool};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};
use std::time::Duration;

/// A hang detector only, far above any plausible run time.
const HANG: Duration = Duration::from_secs(60);

fn tasks() -> u64 {
    env_count("RINGPORT_WORKER_TASKS", 2_000)
}

/// A task type that only moves: channels, closures, boxes.
enum Job {
    /// Waits until the sender sends or drops, then returns 0.
    Gate(Receiver<()>),
    /// Appends its number to the shared log, and returns it.
    Log(u64),
    /// Returns an error with this text.
    Fail(String),
    /// Panics with this text.
    Panic(&'static str),
    /// Runs the closure.
    Run(Box<dyn FnOnce() -> u64 + Send>),
}

/// A pool running [`Job`]s, with the log that `Log` jobs append to.
fn job_pool(workers: usize, options: PoolOptions) -> (WorkerPool<Job, u64>, Arc<Mutex<Vec<u64>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let pool = WorkerPool::threads(workers, options, move |job: Job| match job {
        Job::Gate(rx) => {
            let _ = rx.recv();
            Ok(0)
        }
        Job::Log(n) => {
            l.lock().unwrap().push(n);
            Ok(n)
        }
        Job::Fail(text) => Err(text),
        Job::Panic(text) => panic!("{text}"),
        Job::Run(f) => Ok(f()),
    });
    (pool, log)
}

/// Occupies a worker until the returned sender sends or drops.
fn gate(pool: &WorkerPool<Job, u64>) -> (Sender<()>, TaskHandle<u64>) {
    let (open, rx) = mpsc::channel();
    (open, pool.execute(Job::Gate(rx)).unwrap())
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn every_task_gives_its_own_result() {
    let n = tasks();
    let ((), _) = watchdog("doubling", HANG, move || {
        let options = PoolOptions::new().queue_capacity(n as usize);
        let pool = WorkerPool::threads(4, options, |x: u64| Ok::<_, String>(x * 2));
        let handles: Vec<_> = (0..n).map(|i| pool.execute(i).unwrap()).collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.wait(), Ok(i as u64 * 2));
        }
    });
}

#[test]
fn queued_tasks_start_in_the_order_they_were_given() {
    let n = tasks();
    let ((), _) = watchdog("fifo", HANG, move || {
        let (pool, log) = job_pool(1, PoolOptions::new().queue_capacity(n as usize));
        let (open, gated) = gate(&pool);
        let handles: Vec<_> = (0..n).map(|i| pool.execute(Job::Log(i)).unwrap()).collect();
        assert!(log.lock().unwrap().is_empty(), "nothing ran past the gate");
        drop(open);
        assert_eq!(gated.wait(), Ok(0));
        for h in handles {
            h.wait().unwrap();
        }
        assert_eq!(*log.lock().unwrap(), (0..n).collect::<Vec<_>>());
    });
}

#[test]
fn a_full_queue_refuses_and_gives_the_task_back_then_takes_more_once_drained() {
    let ((), _) = watchdog("backpressure", HANG, || {
        let (pool, log) = job_pool(2, PoolOptions::new().queue_capacity(3));
        let gates: Vec<_> = (0..2).map(|_| gate(&pool)).collect();
        let queued: Vec<_> = (0..3).map(|i| pool.execute(Job::Log(i)).unwrap()).collect();
        let err = pool.execute(Job::Log(99)).unwrap_err();
        assert_eq!(err.kind, ExecuteErrorKind::QueueFull);
        assert!(matches!(err.task, Job::Log(99)));
        let err = pool
            .execute_timeout(Job::Log(98), Duration::from_millis(5))
            .unwrap_err();
        assert_eq!(err.kind, ExecuteErrorKind::Timeout);
        for (open, h) in gates {
            drop(open);
            h.wait().unwrap();
        }
        for h in queued {
            h.wait().unwrap();
        }
        assert_eq!(*log.lock().unwrap(), [0, 1, 2]);
        assert_eq!(pool.execute(Job::Log(3)).unwrap().wait(), Ok(3));
    });
}

#[test]
fn a_timed_execute_gets_in_when_a_worker_frees_a_place() {
    let ((), _) = watchdog("execute_timeout", HANG, || {
        let (pool, _log) = job_pool(1, PoolOptions::new().queue_capacity(0));
        let (open, gated) = gate(&pool);
        thread::scope(|s| {
            let waiter = s.spawn(|| pool.execute_timeout(Job::Log(7), HANG).map_err(|e| e.kind));
            // Whether the waiter is asleep yet or not, it gets in once the gate opens.
            drop(open);
            assert_eq!(waiter.join().unwrap().unwrap().wait(), Ok(7));
        });
        assert_eq!(gated.wait(), Ok(0));
    });
}

#[test]
fn errors_and_panics_come_back_and_the_pool_keeps_its_workers() {
    let ((), _) = watchdog("errors", HANG, || {
        const WORKERS: usize = 3;
        let (pool, _log) = job_pool(WORKERS, PoolOptions::new());
        assert_eq!(
            pool.execute(Job::Fail("no such file".into()))
                .unwrap()
                .wait(),
            Err(TaskError::Failed("no such file".into()))
        );
        let panics: Vec<_> = (0..WORKERS * 2)
            .map(|_| pool.execute(Job::Panic("boom")).unwrap())
            .collect();
        for h in panics {
            assert_eq!(h.wait(), Err(TaskError::Panicked("boom".into())));
        }
        assert_eq!(pool.replaced_workers(), WORKERS as u64 * 2);
        assert_eq!(pool.workers(), WORKERS);
        // All the workers at once: each task waits for the others, so this finishes only
        // if every slot has a live worker.
        let all = Arc::new(Barrier::new(WORKERS));
        let handles: Vec<_> = (0..WORKERS)
            .map(|i| {
                let all = all.clone();
                let run = move || {
                    all.wait();
                    i as u64
                };
                pool.execute(Job::Run(Box::new(run))).unwrap()
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.wait(), Ok(i as u64));
        }
    });
}

#[test]
fn a_panicked_worker_is_a_new_thread_with_fresh_thread_locals() {
    thread_local!(static RUNS: Cell<u64> = const { Cell::new(0) });
    let ((), _) = watchdog("replaced", HANG, || {
        let ids = Arc::new(Mutex::new(Vec::<ThreadId>::new()));
        let seen = ids.clone();
        let pool = WorkerPool::threads(1, PoolOptions::new(), move |panic: bool| {
            seen.lock().unwrap().push(thread::current().id());
            let runs = RUNS.with(|r| {
                r.set(r.get() + 1);
                r.get()
            });
            assert!(!panic, "asked to");
            Ok::<_, String>(runs)
        });
        assert_eq!(pool.execute(false).unwrap().wait(), Ok(1));
        assert_eq!(pool.execute(false).unwrap().wait(), Ok(2));
        assert!(matches!(
            pool.execute(true).unwrap().wait(),
            Err(TaskError::Panicked(_))
        ));
        assert_eq!(pool.execute(false).unwrap().wait(), Ok(1), "a fresh thread");
        let ids = ids.lock().unwrap();
        assert_eq!(ids[0], ids[2]);
        assert_ne!(ids[2], ids[3]);
    });
}

/// Counts, when its thread exits, that the thread exited.
struct ExitCounter(Arc<AtomicUsize>);

impl Drop for ExitCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local!(static ON_EXIT: RefCell<Option<ExitCounter>> = const { RefCell::new(None) });

#[test]
fn terminate_fails_running_and_queued_tasks_and_joins_the_workers() {
    let ((), _) = watchdog("terminate", HANG, || {
        const WORKERS: usize = 2;
        let exited = Arc::new(AtomicUsize::new(0));
        let (pool, _log) = job_pool(WORKERS, PoolOptions::new());
        // Every worker registers for its exit, then blocks at a gate.
        let registered = Arc::new(Barrier::new(WORKERS + 1));
        let mut gates = Vec::new();
        let mut running = Vec::new();
        for _ in 0..WORKERS {
            let (open, rx) = mpsc::channel::<()>();
            let (exited, registered) = (exited.clone(), registered.clone());
            let run = move || {
                ON_EXIT.with(|slot| *slot.borrow_mut() = Some(ExitCounter(exited)));
                registered.wait();
                let _ = rx.recv();
                1
            };
            gates.push(open);
            running.push(pool.execute(Job::Run(Box::new(run))).unwrap());
        }
        registered.wait();
        let queued: Vec<_> = (0..5).map(|i| pool.execute(Job::Log(i)).unwrap()).collect();
        thread::scope(|s| {
            let terminating = s.spawn(|| pool.terminate());
            // Failed at once, while the running tasks still block.
            for h in queued.into_iter().chain(running) {
                assert_eq!(h.wait(), Err(TaskError::Terminated));
            }
            assert_eq!(exited.load(Ordering::SeqCst), 0);
            drop(gates);
            terminating.join().unwrap();
        });
        assert_eq!(exited.load(Ordering::SeqCst), WORKERS, "joined");
        let err = pool.execute(Job::Log(9)).unwrap_err();
        assert_eq!(err.kind, ExecuteErrorKind::Terminated);
        pool.terminate();
    });
}

#[test]
fn dropping_the_pool_terminates_it() {
    let ((), _) = watchdog("drop", HANG, || {
        let (pool, _log) = job_pool(1, PoolOptions::new());
        let (open, gated) = gate(&pool);
        let queued = pool.execute(Job::Log(1)).unwrap();
        drop(open);
        drop(pool);
        assert!(matches!(gated.wait(), Ok(0) | Err(TaskError::Terminated)));
        assert!(matches!(queued.wait(), Ok(1) | Err(TaskError::Terminated)));
    });
}

#[test]
fn a_timed_wait_gives_up_and_the_handle_waits_again() {
    let ((), _) = watchdog("wait_timeout", HANG, || {
        let (pool, _log) = job_pool(1, PoolOptions::new());
        let (open, mut gated) = gate(&pool);
        assert_eq!(
            gated.wait_timeout(Duration::from_millis(5)),
            Err(TaskError::Timeout)
        );
        assert!(!gated.is_finished());
        open.send(()).unwrap();
        assert_eq!(gated.wait_timeout(HANG), Ok(0));
        assert!(gated.is_finished());
    });
}

#[test]
fn handles_are_futures_that_the_worker_wakes() {
    let n = tasks();
    let ((), _) = watchdog("future", HANG, move || {
        let (pool, _log) = job_pool(2, PoolOptions::new());
        // Polled before the gate opens, so the result can only come by the waker.
        let (open, mut gated) = gate(&pool);
        let woken = Arc::new(Counter::default());
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(pin!(&mut gated).poll(&mut cx).is_pending());
        open.send(()).unwrap();
        while woken.0.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        assert_eq!(pin!(&mut gated).poll(&mut cx), Poll::Ready(Ok(0)));
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        let sum = block_on(async {
            let mut sum = 0;
            for i in 0..n {
                sum += pool.execute(Job::Log(i)).unwrap().await.unwrap();
            }
            sum
        });
        assert_eq!(sum, n * (n - 1) / 2);
        let failed = block_on(pool.execute(Job::Fail("async".into())).unwrap());
        assert_eq!(failed, Err(TaskError::Failed("async".into())));
    });
}

#[test]
fn many_threads_share_one_pool() {
    let n = tasks();
    let ((), _) = watchdog("shared", HANG, move || {
        let pool = WorkerPool::threads(3, PoolOptions::new().queue_capacity(8), |s: String| {
            Ok::<_, String>(s.len())
        });
        thread::scope(|s| {
            for t in 0..4 {
                let pool = &pool;
                s.spawn(move || {
                    for i in 0..n / 4 {
                        let text = "x".repeat((t * 1000 + i) as usize % 50);
                        let want = text.len();
                        // A small queue: wait for room rather than fail.
                        let h = pool.execute_timeout(text, HANG).unwrap();
                        assert_eq!(h.wait(), Ok(want));
                    }
                });
            }
        });
    });
}
