//! Worker pools on processes: this test binary re-executed as its workers (the
//! `worker_role` test serves tasks there), results, errors and panics, a worker process
//! killed with SIGKILL mid-task under each retry policy, terminate, and refusals; who
//! takes a reply: the waiting caller, a future's reader thread, the pool for tasks that
//! nobody waits for, and a worker that dies while idle.
//!
//! Sizes: `RINGPORT_WORKER_PROCESS_TASKS` (default 300) tasks in the runs that count
//! results.
#![cfg(feature = "serde")]

// Shared by the test binaries; this one uses part of it.
#[allow(dead_code)]
mod common;
#[path = "common/executor.rs"]
mod executor;

use common::{env_count, watchdog};
use executor::block_on;
use ringport::process::ProcessId;
use ringport::worker::{
    serve_if_worker, ExecuteErrorKind, PoolOptions, ProcessOptions, RetryPolicy, StartError,
    TaskError, WorkerPool,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A hang detector only, far above any plausible run time.
const HANG: Duration = Duration::from_secs(60);
const ROLE: &str = "worker-process-test";

#[derive(Serialize, Deserialize, Debug)]
enum Task {
    Double(u64),
    Fail(String),
    Panic(String),
    /// A result of this many bytes.
    Bytes(usize),
    /// Writes a file named after the worker's pid into this directory, then blocks
    /// until killed.
    Hang(PathBuf),
    /// As `Hang` if the directory is empty; else returns the value.
    HangOnce(PathBuf, u64),
    /// Returns the value after this many milliseconds: longer than a waiting caller polls.
    Sleep(u64, u64),
}

/// What the worker processes run.
fn run(task: Task) -> Result<Vec<u8>, String> {
    match task {
        Task::Double(n) => Ok((n * 2).to_le_bytes().to_vec()),
        Task::Fail(text) => Err(text),
        Task::Panic(text) => panic!("{text}"),
        Task::Bytes(n) => Ok(vec![7; n]),
        Task::Sleep(ms, value) => {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(value.to_le_bytes().to_vec())
        }
        Task::HangOnce(dir, value) if std::fs::read_dir(&dir).unwrap().next().is_some() => {
            Ok(value.to_le_bytes().to_vec())
        }
        Task::Hang(dir) | Task::HangOnce(dir, _) => {
            let me = std::process::id();
            // Written whole under another name, then renamed: the test never reads half.
            let tmp = dir.with_extension(format!("{me}.tmp"));
            std::fs::write(&tmp, b"").unwrap();
            std::fs::rename(&tmp, dir.join(me.to_string())).unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
}

/// The worker processes' entry point: a no-op in an ordinary test run.
#[test]
fn worker_role() {
    serve_if_worker(ROLE, run);
}

fn options() -> ProcessOptions {
    ProcessOptions::new(ROLE).args(["worker_role", "--exact", "--nocapture", "--quiet"])
}

fn pool(workers: usize, process: ProcessOptions) -> WorkerPool<Task, Vec<u8>> {
    WorkerPool::processes(workers, PoolOptions::new().queue_capacity(64), process).unwrap()
}

fn number(bytes: Vec<u8>) -> u64 {
    u64::from_le_bytes(bytes.try_into().unwrap())
}

/// A fresh, empty directory for a hanging task's pid files.
fn scratch_dir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringport-worker-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until a worker announces in `dir` that it is running a hanging task, other than
/// the `known` ones, and returns its pid.
fn next_hanging(dir: &Path, known: &[u32]) -> u32 {
    loop {
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            let pid: u32 = name.to_str().unwrap().parse().unwrap();
            if !known.contains(&pid) {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sigkill(pid: u32) {
    use rustix::process::{kill_process, Pid, Signal};
    kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::KILL).unwrap();
}

#[test]
fn worker_processes_give_every_task_its_result() {
    let n = env_count("RINGPORT_WORKER_PROCESS_TASKS", 300);
    let ((), _) = watchdog("results", HANG, move || {
        let pool = pool(3, options());
        let mut pids = pool.worker_pids();
        pids.sort();
        pids.dedup();
        assert_eq!(pids.len(), 3);
        assert!(!pids.contains(&std::process::id()));
        // Past the queue's capacity, waits for room while the workers drain it.
        let handles: Vec<_> = (0..n)
            .map(|i| pool.execute_timeout(Task::Double(i), HANG).unwrap())
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(number(h.wait().unwrap()), i as u64 * 2);
        }
        pool.terminate();
        for pid in pids {
            assert_eq!(ProcessId::of(pid), None, "worker {pid} is gone and reaped");
        }
    });
}

/// Waits for one task on each of `pool`'s workers at a time, so that their reader
/// threads, with nothing in flight, go off duty and leave the next replies to callers.
fn settle_in(pool: &WorkerPool<Task, Vec<u8>>) {
    let both: Vec<_> = (0..pool.workers() as u64)
        .map(|i| pool.execute(Task::Double(i)).unwrap())
        .collect();
    both.into_iter().for_each(|h| drop(h.wait().unwrap()));
    std::thread::sleep(Duration::from_millis(10));
}

/// Replies that no handle waits for are taken by the pool, which is how the queue moves:
/// only the last task is waited for, and it starts only once every earlier one has
/// started and all but the other worker's task in flight have finished.
#[test]
fn the_queue_moves_while_nobody_waits_and_dropped_handles_lose_nothing() {
    let ((), _) = watchdog("unwatched", HANG, || {
        let pool = pool(2, options());
        settle_in(&pool);
        let mut handles: Vec<_> = (0..12)
            .map(|i| pool.execute(Task::Sleep(2, i)).unwrap())
            .collect();
        // Dropped while queued or running: their tasks still run, in order.
        handles.drain(..6);
        let last = handles.pop().unwrap();
        assert_eq!(number(last.wait().unwrap()), 11);
        let running = handles.iter().filter(|h| !h.is_finished()).count();
        assert!(
            running <= 1,
            "{running} earlier tasks unfinished on 2 workers"
        );
        for (h, i) in handles.into_iter().zip(6..) {
            assert_eq!(number(h.wait().unwrap()), i);
        }
        // The workers are still in step: one task each, replies to their own callers.
        for i in 0..4 {
            assert_eq!(
                number(pool.execute(Task::Double(i)).unwrap().wait().unwrap()),
                i * 2
            );
        }
    });
}

/// A handle polled as a future, for a task longer than a caller polls, is woken by the
/// worker's reader thread; so is a blocking wait that went to sleep.
#[test]
fn handles_are_futures_and_long_waits_sleep_until_the_reply() {
    let ((), _) = watchdog("futures", HANG, || {
        let pool = pool(2, options());
        settle_in(&pool);
        for round in 0..3 {
            let a = pool.execute(Task::Sleep(20, round)).unwrap();
            let b = pool.execute(Task::Sleep(5, round + 100)).unwrap();
            assert_eq!(number(block_on(a).unwrap()), round);
            assert_eq!(number(b.wait().unwrap()), round + 100);
        }
        let quick = pool.execute(Task::Double(21)).unwrap();
        assert_eq!(number(block_on(quick).unwrap()), 42);
    });
}

/// A worker that dies with no task in flight, while its reader is off duty, is found by
/// the reader's own liveness look and replaced before anyone gives it a task.
#[test]
fn a_worker_killed_while_idle_is_replaced_unasked() {
    let ((), _) = watchdog("idle death", HANG, || {
        let pool = pool(1, options());
        // A task first, so that the reader has gone off duty.
        assert_eq!(
            number(pool.execute(Task::Double(1)).unwrap().wait().unwrap()),
            2
        );
        let pid = pool.worker_pids()[0];
        sigkill(pid);
        while pool.replaced_workers() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_ne!(pool.worker_pids(), [pid]);
        assert_eq!(
            number(pool.execute(Task::Double(2)).unwrap().wait().unwrap()),
            4
        );
    });
}

#[test]
fn errors_and_panics_come_back_and_a_panicked_worker_is_replaced() {
    let ((), _) = watchdog("errors", HANG, || {
        let pool = pool(1, options());
        let first = pool.worker_pids();
        let failed = pool.execute(Task::Fail("bad input".into())).unwrap().wait();
        assert_eq!(failed, Err(TaskError::Failed("bad input".into())));
        assert_eq!(pool.worker_pids(), first, "an error keeps the worker");
        let panicked = pool.execute(Task::Panic("oh no".into())).unwrap().wait();
        assert_eq!(panicked, Err(TaskError::Panicked("oh no".into())));
        // The one slot runs this only once its replacement started.
        assert_eq!(
            number(pool.execute(Task::Double(4)).unwrap().wait().unwrap()),
            8
        );
        assert_eq!(pool.replaced_workers(), 1);
        assert_ne!(pool.worker_pids(), first);
        assert_eq!(ProcessId::of(first[0]), None);
    });
}

#[test]
fn a_worker_killed_mid_task_fails_it_with_worker_died_and_is_replaced() {
    let ((), _) = watchdog("sigkill fail", HANG, || {
        let dir = scratch_dir("fail");
        let pool = pool(2, options());
        let doomed = pool.execute(Task::Hang(dir.clone())).unwrap();
        let pid = next_hanging(&dir, &[]);
        assert!(pool.worker_pids().contains(&pid));
        sigkill(pid);
        assert_eq!(doomed.wait(), Err(TaskError::WorkerDied { pid }));
        let handles: Vec<_> = (0..10)
            .map(|i| pool.execute(Task::Double(i)).unwrap())
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(number(h.wait().unwrap()), i as u64 * 2);
        }
        // The other worker may have run them all; the replacement is in by now or soon.
        let ((), _) = watchdog("replacement", HANG, move || {
            while pool.replaced_workers() == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert_eq!(pool.worker_pids().len(), 2);
            assert!(!pool.worker_pids().contains(&pid));
        });
        std::fs::remove_dir_all(dir).unwrap();
    });
}

#[test]
fn a_worker_killed_mid_task_under_retry_runs_the_task_again() {
    let ((), _) = watchdog("sigkill retry", HANG, || {
        let dir = scratch_dir("retry");
        let retry = RetryPolicy::Retry { max_retries: 1 };
        let pool = pool(1, options().retry(retry));
        let task = pool.execute(Task::HangOnce(dir.clone(), 77)).unwrap();
        let pid = next_hanging(&dir, &[]);
        sigkill(pid);
        assert_eq!(number(task.wait().unwrap()), 77);
        assert_eq!(pool.replaced_workers(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    });
}

#[test]
fn a_task_that_kills_every_attempt_fails_once_its_retries_are_spent() {
    let ((), _) = watchdog("sigkill retries spent", HANG, || {
        let dir = scratch_dir("spent");
        let retry = RetryPolicy::Retry { max_retries: 1 };
        let pool = pool(1, options().retry(retry));
        let task = pool.execute(Task::Hang(dir.clone())).unwrap();
        let first = next_hanging(&dir, &[]);
        sigkill(first);
        let second = next_hanging(&dir, &[first]);
        sigkill(second);
        assert_eq!(task.wait(), Err(TaskError::WorkerDied { pid: second }));
        assert_eq!(
            number(pool.execute(Task::Double(1)).unwrap().wait().unwrap()),
            2
        );
        assert_eq!(pool.replaced_workers(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    });
}

#[test]
fn terminate_fails_every_task_and_kills_the_workers() {
    let ((), _) = watchdog("terminate", HANG, || {
        let dir = scratch_dir("terminate");
        let pool = pool(2, options());
        let pids = pool.worker_pids();
        let running: Vec<_> = (0..2)
            .map(|_| pool.execute(Task::Hang(dir.clone())).unwrap())
            .collect();
        let first = next_hanging(&dir, &[]);
        next_hanging(&dir, &[first]);
        let queued: Vec<_> = (0..3)
            .map(|i| pool.execute(Task::Double(i)).unwrap())
            .collect();
        pool.terminate();
        for h in running.into_iter().chain(queued) {
            assert_eq!(h.wait(), Err(TaskError::Terminated));
        }
        for pid in pids {
            assert_eq!(ProcessId::of(pid), None, "worker {pid} is gone and reaped");
        }
        let err = pool.execute(Task::Double(1)).unwrap_err();
        assert_eq!(err.kind, ExecuteErrorKind::Terminated);
        assert!(matches!(err.task, Task::Double(1)));
        std::fs::remove_dir_all(dir).unwrap();
    });
}

#[test]
fn oversized_tasks_are_refused_and_oversized_results_fail() {
    let ((), _) = watchdog("sizes", HANG, || {
        let pool = pool(1, options().channel_capacity(4096));
        let err = pool.execute(Task::Fail("x".repeat(5000))).unwrap_err();
        assert!(matches!(err.kind, ExecuteErrorKind::TooLarge { len, max } if len > max));
        assert!(matches!(err.task, Task::Fail(_)));
        let small = pool.execute(Task::Bytes(100)).unwrap().wait().unwrap();
        assert_eq!(small, vec![7; 100]);
        let big = pool.execute(Task::Bytes(5000)).unwrap().wait();
        assert!(
            matches!(&big, Err(TaskError::Failed(text)) if text.contains("exceeds")),
            "{big:?}"
        );
    });
}

#[test]
fn a_worker_for_another_role_never_gets_ready() {
    let ((), _) = watchdog("wrong role", HANG, || {
        let process =
            ProcessOptions::new("nobody-serves-this").args(["worker_role", "--exact", "--quiet"]);
        let err =
            WorkerPool::<Task, Vec<u8>>::processes(1, PoolOptions::new(), process).unwrap_err();
        assert!(
            matches!(&err, StartError::Exited { role, .. } if role == "nobody-serves-this"),
            "{err}"
        );
    });
}
