//! The tiny-task throughput rows (issue 6): a submitting thread hands out tasks that each
//! add two `u64`s, to a pool of [`WORKERS`] threads, and collects every result.
//!
//! Three pools: ringport's [`WorkerPool`] (a [`TaskHandle`] per task, waited in order),
//! rayon's `ThreadPool::spawn` with each result sent back through a crossbeam channel,
//! and the pool one builds from crossbeam-channel alone (workers reading tasks from one
//! channel and sending results on another). Each keeps at most [`WINDOW`] tasks in
//! flight: the submitter waits for a result before it submits beyond that, so no path
//! gets a deeper pipeline than another, and ringport's queue (1024 by default) never
//! refuses a task.
//!
//! Every result is checked: task `i` adds `i * SPREAD` and `!i`, and must come back with
//! that sum; the channel paths, whose two workers may finish out of order, also send `i`
//! and must deliver every `i` exactly once. A run is timed from the moment the warm-up's
//! results have been collected to the last result, on a fresh pool.
//!
//! The submitter and the workers run on every allowed CPU, as a program's would: the
//! scheduler places them, and with the submitter that is one thread more than two CPUs,
//! which the report marks.

use crate::bench::{Ctx, Measured, Plan};
use crate::pin::unpin_current;
use crate::tput::Marks;
use crate::Result;
use ringport::atomics::futex_syscalls;
use ringport::worker::{PoolOptions, TaskHandle, WorkerPool};
use std::collections::VecDeque;
use std::convert::Infallible;

/// Worker threads of every pool.
pub const WORKERS: usize = 2;
/// Tasks in flight at most, on every path.
pub const WINDOW: usize = 1024;
/// A multiplier that spreads task numbers over a word.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Task `i`'s two operands.
#[inline(always)]
fn operands(i: u64) -> (u64, u64) {
    (i.wrapping_mul(SPREAD), !i)
}

/// The tiny task.
#[inline(always)]
pub fn add((a, b): (u64, u64)) -> std::result::Result<u64, Infallible> {
    Ok(a.wrapping_add(b))
}

/// Checks that task `i` gave `sum`.
#[inline(always)]
fn check(i: u64, sum: u64) -> Result<()> {
    let (a, b) = operands(i);
    if sum != a.wrapping_add(b) {
        return Err(format!(
            "task {i}: result {sum:#x} instead of {:#x}",
            a.wrapping_add(b)
        )
        .into());
    }
    Ok(())
}

/// A pool under test, as the submitter drives it.
pub trait TaskPool: Sized {
    /// A fresh pool of [`WORKERS`] threads, for a run of `total` tasks.
    fn start(total: u64) -> Result<Self>;
    /// Submits task `i`.
    fn submit(&mut self, i: u64) -> Result<()>;
    /// Waits for a result and checks it; returns how many results it collected.
    fn collect(&mut self) -> Result<u64>;
    /// Checks that nothing more arrived, and stops the pool.
    fn finish(self) -> Result<()>;
}

/// Runs the plan's tasks through `pool`, at most [`WINDOW`] in flight; returns the
/// [`Marks`] readings.
pub fn drive<P: TaskPool>(pool: &mut P, plan: &Plan) -> Result<Vec<u64>> {
    let total = plan.total();
    let mut marks = Marks::new(plan);
    marks.passed(0);
    let (mut submitted, mut collected) = (0u64, 0u64);
    while collected < total {
        if submitted < total && submitted - collected < WINDOW as u64 {
            pool.submit(submitted)?;
            submitted += 1;
        } else {
            collected += pool.collect()?;
            marks.passed(collected);
        }
    }
    Ok(marks.finish())
}

/// Which task numbers came back, for paths that may deliver out of order.
pub struct Seen {
    words: Vec<u64>,
    total: u64,
}

impl Seen {
    /// None of `total` seen yet.
    pub fn new(total: u64) -> Seen {
        Seen {
            words: vec![0; total.div_ceil(64) as usize],
            total,
        }
    }

    /// Records `i`, failing if it is out of range or came before.
    #[inline(always)]
    pub fn record(&mut self, i: u64) -> Result<()> {
        if i >= self.total {
            return Err(format!("a result for task {i}, which was never submitted").into());
        }
        let (word, bit) = (&mut self.words[(i / 64) as usize], 1 << (i % 64));
        if *word & bit != 0 {
            return Err(format!("task {i}: a second result").into());
        }
        *word |= bit;
        Ok(())
    }
}

/// ringport's [`WorkerPool`] of threads; results waited in submission order.
pub struct Ringport {
    pool: WorkerPool<(u64, u64), u64>,
    in_flight: VecDeque<(u64, TaskHandle<u64>)>,
}

impl TaskPool for Ringport {
    fn start(_total: u64) -> Result<Self> {
        Ok(Ringport {
            pool: WorkerPool::threads(WORKERS, PoolOptions::new(), add),
            in_flight: VecDeque::with_capacity(WINDOW),
        })
    }

    #[inline]
    fn submit(&mut self, i: u64) -> Result<()> {
        let handle = self.pool.execute(operands(i))?;
        self.in_flight.push_back((i, handle));
        Ok(())
    }

    #[inline]
    fn collect(&mut self) -> Result<u64> {
        let (i, handle) = self
            .in_flight
            .pop_front()
            .ok_or("a wait with no task in flight")?;
        check(i, handle.wait()?)?;
        Ok(1)
    }

    fn finish(self) -> Result<()> {
        if !self.in_flight.is_empty() {
            return Err(format!("{} tasks still in flight", self.in_flight.len()).into());
        }
        self.pool.terminate();
        Ok(())
    }
}

/// Results of the channel paths: task number and sum.
type Results = (
    crossbeam_channel::Sender<(u64, u64)>,
    crossbeam_channel::Receiver<(u64, u64)>,
);

/// Receives one `(i, sum)` from `rx` and checks it against `seen`.
#[inline(always)]
fn collect_one(rx: &crossbeam_channel::Receiver<(u64, u64)>, seen: &mut Seen) -> Result<u64> {
    let (i, sum) = rx.recv()?;
    seen.record(i)?;
    check(i, sum)?;
    Ok(1)
}

/// Fails if a result is waiting on `rx`.
fn nothing_more(rx: &crossbeam_channel::Receiver<(u64, u64)>) -> Result<()> {
    match rx.try_recv() {
        Ok((i, _)) => Err(format!("a result for task {i} after the last").into()),
        Err(_) => Ok(()),
    }
}

/// A rayon `ThreadPool` whose tasks send their results through a crossbeam channel.
pub struct Rayon {
    pool: rayon::ThreadPool,
    results: Results,
    seen: Seen,
}

impl TaskPool for Rayon {
    fn start(total: u64) -> Result<Self> {
        Ok(Rayon {
            pool: crate::pools::rayon_pool(WORKERS)?,
            results: crossbeam_channel::bounded(WINDOW),
            seen: Seen::new(total),
        })
    }

    #[inline]
    fn submit(&mut self, i: u64) -> Result<()> {
        let tx = self.results.0.clone();
        self.pool.spawn(move || {
            let sum = add(operands(i)).unwrap_or_else(|never| match never {});
            // Only a run that already failed drops the receiver.
            let _ = tx.send((i, sum));
        });
        Ok(())
    }

    #[inline]
    fn collect(&mut self) -> Result<u64> {
        collect_one(&self.results.1, &mut self.seen)
    }

    fn finish(self) -> Result<()> {
        nothing_more(&self.results.1)
    }
}

/// The crossbeam-channel pool: [`WORKERS`] threads receive task numbers from one channel
/// and send `(i, sum)` on another.
pub struct Crossbeam {
    tasks: Option<crossbeam_channel::Sender<u64>>,
    results: crossbeam_channel::Receiver<(u64, u64)>,
    workers: Vec<std::thread::JoinHandle<()>>,
    seen: Seen,
}

impl TaskPool for Crossbeam {
    fn start(total: u64) -> Result<Self> {
        let (tasks, inbox) = crossbeam_channel::bounded::<u64>(WINDOW);
        let (tx, results) = crossbeam_channel::bounded(WINDOW);
        let workers = (0..WORKERS)
            .map(|k| {
                let (inbox, tx) = (inbox.clone(), tx.clone());
                std::thread::Builder::new()
                    .name(format!("crossbeam-worker-{k}"))
                    .spawn(move || {
                        for i in inbox {
                            let sum = add(operands(i)).unwrap_or_else(|never| match never {});
                            if tx.send((i, sum)).is_err() {
                                return;
                            }
                        }
                    })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Crossbeam {
            tasks: Some(tasks),
            results,
            workers,
            seen: Seen::new(total),
        })
    }

    #[inline]
    fn submit(&mut self, i: u64) -> Result<()> {
        let tasks = self.tasks.as_ref().ok_or("the pool is stopped")?;
        Ok(tasks.send(i)?)
    }

    #[inline]
    fn collect(&mut self) -> Result<u64> {
        collect_one(&self.results, &mut self.seen)
    }

    fn finish(mut self) -> Result<()> {
        // Closing the task channel ends the workers' loops.
        self.tasks = None;
        for w in self.workers.drain(..) {
            w.join().map_err(|_| "a crossbeam worker panicked")?;
        }
        nothing_more(&self.results)
    }
}

/// A tiny-task row over `P`: the plan's runs, each on a fresh pool, all on a thread free
/// to run on every CPU.
pub fn threads<P: TaskPool + 'static>(ctx: &Ctx) -> Result<Measured> {
    let plan = ctx.plan;
    let cpus = ctx.cpus.clone();
    let futex_before = futex_syscalls();
    let (runs, _) = ctx
        .spawn_on(None, "submitter", move || {
            unpin_current(&cpus);
            let mut runs = Vec::new();
            for _ in 0..plan.trials {
                let mut pool = P::start(plan.total())?;
                let readings = drive(&mut pool, &plan)?;
                pool.finish()?;
                runs.push(Marks::run(&readings)?);
            }
            Ok(runs)
        })
        .join();
    let futex = futex_syscalls() - futex_before;
    Ok(Measured::throughput(runs, futex, false).with_threads(WORKERS + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn plan(warm: u64, count: u64) -> Plan {
        Plan {
            warm,
            count,
            frame: 0,
            trials: 1,
        }
    }

    fn run<P: TaskPool>(p: Plan) -> u64 {
        crate::within(Duration::from_secs(60), move || {
            let mut pool = P::start(p.total()).unwrap();
            let readings = drive(&mut pool, &p).unwrap();
            pool.finish().unwrap();
            Marks::run(&readings).unwrap().0
        })
    }

    #[test]
    fn every_pool_returns_every_sum() {
        let p = plan(300, 5000);
        assert_eq!(run::<Ringport>(p), 5000);
        assert_eq!(run::<Rayon>(p), 5000);
        assert_eq!(run::<Crossbeam>(p), 5000);
    }

    #[test]
    fn a_wrong_repeated_or_unknown_result_fails() {
        assert!(check(5, 0).is_err());
        let (a, b) = operands(5);
        check(5, a.wrapping_add(b)).unwrap();
        let mut seen = Seen::new(100);
        seen.record(99).unwrap();
        assert!(seen.record(99).unwrap_err().to_string().contains("second"));
        assert!(seen.record(100).unwrap_err().to_string().contains("never"));
    }
}
