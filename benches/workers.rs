//! Regression benchmarks of worker pools, a compact subset of `ringport bench --only
//! workers`:
//!
//! - the round trip of one empty task (submit `v`, wait for `v + 1`) through a
//!   `WorkerPool` of 1 and of 4 threads, against a blocking `PodPort<u64>` round trip
//!   between two threads and a rayon `ThreadPool` of 1 whose task sends its result
//!   through a crossbeam channel;
//! - tiny tasks (a `u64` add) through pools of 2 threads, at most 1024 in flight, every
//!   result collected: `WorkerPool`, rayon with a crossbeam channel for the results, and
//!   two threads reading tasks from one crossbeam channel and sending results on another.
//!
//! Every result is checked. Criterion tracks each number against its last run; the
//! comparison between rows, with percentiles, placement on two CPUs and pools of worker
//! processes, is `cargo run --release -- bench --only workers`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringport::worker::{PoolOptions, TaskHandle, WorkerPool};
use ringport::{MessageChannel, PodPort};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// Worker threads of the tiny-task pools.
const WORKERS: usize = 2;
/// Tiny tasks in flight at most, on every path.
const WINDOW: u64 = 1024;
/// How long a blocked receive waits before the bench fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// The empty task.
fn successor(v: u64) -> Result<u64, Infallible> {
    Ok(v + 1)
}

/// Task `i`'s operands.
fn operands(i: u64) -> (u64, u64) {
    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), !i)
}

/// The tiny task.
fn add((a, b): (u64, u64)) -> Result<u64, Infallible> {
    Ok(a.wrapping_add(b))
}

/// Checks that task `i` gave `sum`.
fn check(i: u64, sum: u64) {
    let (a, b) = operands(i);
    assert_eq!(sum, a.wrapping_add(b), "task {i}");
}

/// `iters` round trips through `pool`, each result checked.
fn pool_round_trips(pool: &WorkerPool<u64, u64>, iters: u64) -> Duration {
    let t0 = Instant::now();
    for v in 0..iters {
        let got = pool.execute(v).expect("execute").wait().expect("wait");
        assert_eq!(got, v + 1);
    }
    t0.elapsed()
}

/// `iters` round trips through a rayon pool, each result back through `results`.
fn rayon_round_trips(
    pool: &rayon::ThreadPool,
    results: &(
        crossbeam_channel::Sender<u64>,
        crossbeam_channel::Receiver<u64>,
    ),
    iters: u64,
) -> Duration {
    let t0 = Instant::now();
    for v in 0..iters {
        let tx = results.0.clone();
        pool.spawn(move || {
            let _ = tx.send(v + 1);
        });
        assert_eq!(results.1.recv_timeout(HANG_GUARD).expect("result"), v + 1);
    }
    t0.elapsed()
}

/// A blocking port round trip's far side: echoes every value plus one until the port
/// closes.
fn echo(mut port: PodPort<u64>) {
    while let Ok(v) = port.recv() {
        if port.post_message(v + 1).is_err() {
            return;
        }
    }
}

/// `iters` blocking port round trips.
fn port_round_trips(port: &mut PodPort<u64>, iters: u64) -> Duration {
    let t0 = Instant::now();
    for v in 0..iters {
        port.post_message(v).expect("post");
        assert_eq!(port.recv_timeout(HANG_GUARD).expect("reply"), v + 1);
    }
    t0.elapsed()
}

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("empty-task-round-trip");
    g.throughput(Throughput::Elements(1));
    let (mut mine, theirs) = MessageChannel::pod::<u64>(64);
    let far = std::thread::spawn(move || echo(theirs));
    g.bench_function("port-blocking", |b| {
        b.iter_custom(|iters| port_round_trips(&mut mine, iters))
    });
    drop(mine);
    far.join().expect("echo thread");
    for workers in [1, 4] {
        let pool = WorkerPool::threads(workers, PoolOptions::new(), successor);
        g.bench_function(format!("pool-threads-{workers}w"), |b| {
            b.iter_custom(|iters| pool_round_trips(&pool, iters))
        });
        pool.terminate();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("rayon pool");
    let results = crossbeam_channel::bounded(1);
    g.bench_function("rayon-1w", |b| {
        b.iter_custom(|iters| rayon_round_trips(&pool, &results, iters))
    });
    g.finish();
}

/// `iters` tiny tasks through a `WorkerPool`, results waited in order.
fn pool_tasks(pool: &WorkerPool<(u64, u64), u64>, iters: u64) -> Duration {
    let mut in_flight: VecDeque<(u64, TaskHandle<u64>)> = VecDeque::new();
    let t0 = Instant::now();
    for i in 0..iters {
        if in_flight.len() as u64 == WINDOW {
            let (j, h) = in_flight.pop_front().expect("a task in flight");
            check(j, h.wait().expect("wait"));
        }
        in_flight.push_back((i, pool.execute(operands(i)).expect("execute")));
    }
    for (j, h) in in_flight {
        check(j, h.wait().expect("wait"));
    }
    t0.elapsed()
}

/// Collects `n` results `(i, sum)` from `rx`, checking each and that each `i` came once.
fn collect(rx: &crossbeam_channel::Receiver<(u64, u64)>, n: u64, seen: &mut [bool]) {
    for _ in 0..n {
        let (i, sum) = rx.recv_timeout(HANG_GUARD).expect("result");
        check(i, sum);
        let slot = &mut seen[i as usize];
        assert!(!*slot, "task {i} twice");
        *slot = true;
    }
}

/// `iters` tiny tasks through a channel-fed pool: `submit(i)` hands out task `i`, whose
/// result comes back on `rx`.
fn channel_tasks(
    rx: &crossbeam_channel::Receiver<(u64, u64)>,
    iters: u64,
    mut submit: impl FnMut(u64),
) -> Duration {
    let mut seen = vec![false; iters as usize];
    let t0 = Instant::now();
    let mut collected = 0;
    for i in 0..iters {
        if i - collected == WINDOW {
            collect(rx, 1, &mut seen);
            collected += 1;
        }
        submit(i);
    }
    collect(rx, iters - collected, &mut seen);
    let elapsed = t0.elapsed();
    assert!(seen.iter().all(|&s| s), "a task without a result");
    elapsed
}

fn tiny_tasks(c: &mut Criterion) {
    let mut g = c.benchmark_group("tiny-tasks");
    g.throughput(Throughput::Elements(1));

    let pool = WorkerPool::threads(WORKERS, PoolOptions::new(), add);
    g.bench_function("pool-2w", |b| {
        b.iter_custom(|iters| pool_tasks(&pool, iters))
    });
    pool.terminate();

    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("rayon pool");
    let (tx, rx) = crossbeam_channel::bounded(WINDOW as usize);
    g.bench_function("rayon-2w", |b| {
        b.iter_custom(|iters| {
            channel_tasks(&rx, iters, |i| {
                let tx = tx.clone();
                rayon.spawn(move || {
                    let sum = add(operands(i)).unwrap_or_else(|never| match never {});
                    let _ = tx.send((i, sum));
                });
            })
        })
    });

    let (tasks, inbox) = crossbeam_channel::bounded::<u64>(WINDOW as usize);
    let (tx, rx) = crossbeam_channel::bounded(WINDOW as usize);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (inbox, tx) = (inbox.clone(), tx.clone());
            std::thread::spawn(move || {
                for i in inbox {
                    let sum = add(operands(i)).unwrap_or_else(|never| match never {});
                    if tx.send((i, sum)).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    g.bench_function("crossbeam-2w", |b| {
        b.iter_custom(|iters| channel_tasks(&rx, iters, |i| tasks.send(i).expect("send")))
    });
    drop(tasks);
    for w in workers {
        w.join().expect("crossbeam worker");
    }
    g.finish();
}

/// Short runs: these benches track regressions, `ringport bench` does the comparison.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = round_trip, tiny_tasks
}
criterion_main!(benches);
