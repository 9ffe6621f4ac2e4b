//! The round-trip rows of worker pools (issue 6): one empty task there and its result
//! back, against a blocking port round trip and against rayon with a channel for the
//! result.
//!
//! The task is the successor function, so the rows reuse [`rtt::ping`]'s check: the
//! measuring thread submits `2i + 1` and must get `2i + 2` back. One task is in flight at
//! a time, so a pool of 4 workers measures the same hop as one of 1 plus the choice of
//! worker.
//!
//! Placement, as in every round-trip row: the measuring thread on CPU `a`, the other side
//! on `b`. A pool's threads (ringport's workers, rayon's) inherit the CPUs of the thread
//! that makes the pool, so pools are made on a thread pinned to `b`. A pool of worker
//! processes also has a reader thread per worker in this process; it starts pinned like
//! the thread that makes the pool (`a`), and so does the worker process, which is then
//! moved to `b`. The reader takes no part in these rows: the measuring thread, waiting
//! for its task, takes the worker's reply itself, and the reader, with no task left in
//! flight that nobody waits for, sleeps off duty.

use crate::bench::{Ctx, Measured};
use crate::rtt::{self, Link};
use crate::Result;
use ringport::atomics::futex_syscalls;
use ringport::worker::{PoolOptions, TaskHandle, WorkerPool};
use std::convert::Infallible;

/// The role of the bench's worker processes (see [`serve_if_worker`]).
#[cfg(feature = "serde")]
pub const ROLE: &str = "ringport-bench-successor";

/// The empty task: its input's successor, so that every result can be checked.
pub fn successor(v: u64) -> std::result::Result<u64, Infallible> {
    Ok(v + 1)
}

/// Serves the process rows' tasks if this process is one of their workers, and never
/// returns then; returns at once in any other process. First thing in `main`.
pub fn serve_if_worker() {
    #[cfg(feature = "serde")]
    ringport::worker::serve_if_worker(ROLE, successor);
}

/// A worker pool as one end of a round trip: `send` submits the task, `recv` waits for
/// its result.
pub struct PoolLink {
    pool: WorkerPool<u64, u64>,
    in_flight: Option<TaskHandle<u64>>,
}

impl PoolLink {
    /// A link over `pool`.
    pub fn new(pool: WorkerPool<u64, u64>) -> PoolLink {
        PoolLink {
            pool,
            in_flight: None,
        }
    }
}

impl Link for PoolLink {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        self.in_flight = Some(self.pool.execute(v)?);
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        let task = self.in_flight.take().ok_or("a wait without a task")?;
        Ok(task.wait()?)
    }
}

/// A rayon pool as one end of a round trip: `send` spawns the task, which sends its
/// result through a crossbeam channel; `recv` waits on the channel.
pub struct RayonLink {
    pool: rayon::ThreadPool,
    tx: crossbeam_channel::Sender<u64>,
    rx: crossbeam_channel::Receiver<u64>,
}

impl RayonLink {
    /// A link over `pool`.
    pub fn new(pool: rayon::ThreadPool) -> RayonLink {
        let (tx, rx) = crossbeam_channel::bounded(1);
        RayonLink { pool, tx, rx }
    }
}

impl Link for RayonLink {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        let tx = self.tx.clone();
        self.pool.spawn(move || {
            // Only a row that already failed drops the receiver.
            let _ = tx.send(successor(v).unwrap_or_else(|never| match never {}));
        });
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        Ok(self.rx.recv()?)
    }
}

/// A rayon pool of `workers` threads.
pub fn rayon_pool(workers: usize) -> Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|k| format!("rayon-{k}"))
        .build()?)
}

/// The value `make` returns on a thread pinned to `cpu`, and whether it ran pinned: what
/// `make` starts inherits the pinning.
fn made_on<T: Send + 'static>(
    ctx: &Ctx,
    cpu: Option<usize>,
    make: impl FnOnce() -> Result<T> + Send + 'static,
) -> (T, bool) {
    ctx.spawn_on(cpu, "pool-maker", make).join()
}

/// The measuring side's round trips over `link`, with the futex syscalls made meanwhile.
fn ping_row<L: Link>(ctx: &Ctx, link: &mut L, pinned: bool) -> Result<Measured> {
    let futex_before = futex_syscalls();
    let hist = ctx.or_abort(rtt::ping(link, ctx.plan.warm, ctx.plan.count));
    Ok(Measured::latency(
        hist,
        futex_syscalls() - futex_before,
        ctx.main_pinned && pinned,
    ))
}

/// Round trips through a pool of `WORKERS` worker threads on CPU `b`.
pub fn threads<const WORKERS: usize>(ctx: &Ctx) -> Result<Measured> {
    let (pool, pinned) = made_on(ctx, ctx.cpus.b(), || {
        Ok(WorkerPool::threads(WORKERS, PoolOptions::new(), successor))
    });
    let mut link = PoolLink::new(pool);
    let m = ping_row(ctx, &mut link, pinned)?;
    link.pool.terminate();
    Ok(m.with_threads(WORKERS + 1))
}

/// Round trips through a rayon pool of `WORKERS` threads on CPU `b`, each result back
/// through a crossbeam channel.
pub fn rayon<const WORKERS: usize>(ctx: &Ctx) -> Result<Measured> {
    let (pool, pinned) = made_on(ctx, ctx.cpus.b(), || rayon_pool(WORKERS));
    let m = ping_row(ctx, &mut RayonLink::new(pool), pinned)?;
    Ok(m.with_threads(WORKERS + 1))
}

/// Round trips through a pool of one worker process, pinned to CPU `b`; the measuring
/// thread on `a` takes each reply itself (see the module documentation).
#[cfg(feature = "serde")]
pub fn processes(ctx: &Ctx) -> Result<Measured> {
    use crate::pin::pin_process;
    use ringport::worker::ProcessOptions;

    let pool = WorkerPool::<u64, u64>::processes(1, PoolOptions::new(), ProcessOptions::new(ROLE))?;
    let pids = pool.worker_pids();
    let pinned = !pids.is_empty() && pids.iter().all(|&pid| pin_process(pid, ctx.cpus.b()));
    let mut link = PoolLink::new(pool);
    let m = ping_row(ctx, &mut link, pinned)?;
    if link.pool.replaced_workers() != 0 {
        return Err("a worker process died during the row".into());
    }
    link.pool.terminate();
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pools_echo_the_successor_in_order() {
        crate::within(Duration::from_secs(60), || {
            let pool = WorkerPool::threads(4, PoolOptions::new(), successor);
            let hist = rtt::ping(&mut PoolLink::new(pool), 10, 300).unwrap();
            assert_eq!(hist.len(), 300);
            let hist = rtt::ping(&mut RayonLink::new(rayon_pool(2).unwrap()), 10, 300).unwrap();
            assert_eq!(hist.len(), 300);
        });
    }

    #[test]
    fn a_wait_without_a_task_fails() {
        let pool = WorkerPool::threads(1, PoolOptions::new(), successor);
        let e = PoolLink::new(pool).recv().unwrap_err();
        assert!(e.to_string().contains("without a task"), "{e}");
    }
}
