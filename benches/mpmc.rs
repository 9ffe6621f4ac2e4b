//! Regression benchmarks of the MPMC and broadcast rings, a compact subset of `ringport
//! bench --only mpmc/ --only broadcast/`: `u64` throughput of `mpmc::channel` (blocking
//! `send` / `recv`) against crossbeam's `ArrayQueue` polled with `Backoff::snooze`, with
//! one producer and one consumer and with two of each; and fan-out of `u64`s from one
//! publisher to one and four subscribers through `broadcast::channel` under overwrite
//! against `tokio::sync::broadcast`. Queues hold 4096 messages.
//!
//! Every message is checked: consumers see each producer's messages in order and all of
//! them add up; subscribers see an increasing sequence whose gaps are the lags reported.
//! A fan-out bench's throughput is messages times subscribers, lost ones included: the
//! time is what the last subscriber took to reach the last message.
//! Criterion tracks each number against its last run; the comparison between rows (with
//! deliveries and losses counted, the scaling run, backpressure and per-subscriber
//! channels) is `cargo run --release -- bench`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use ringport::broadcast::{self, BroadcastOptions, Overflow};
use ringport::RecvError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Messages each queue holds.
const SLOTS: usize = 4096;
/// Where a message's producer number starts.
const SHIFT: u32 = 40;
/// What each consumer stops at.
const SENTINEL: u64 = u64::MAX;

/// A bounded MPMC queue of `u64`, both ends in one cloneable handle.
trait Queue: Clone + Send + 'static {
    fn send(&self, v: u64);
    fn recv(&self) -> u64;
}

/// `ringport::mpmc`, blocking calls.
#[derive(Clone)]
struct Ringport(ringport::mpmc::Sender<u64>, ringport::mpmc::Receiver<u64>);

impl Queue for Ringport {
    fn send(&self, v: u64) {
        self.0.send(v).expect("send");
    }

    fn recv(&self) -> u64 {
        self.1.recv().expect("recv")
    }
}

/// `ArrayQueue`, polled with `Backoff::snooze`.
#[derive(Clone)]
struct Snooze(Arc<ArrayQueue<u64>>);

impl Queue for Snooze {
    fn send(&self, v: u64) {
        let backoff = Backoff::new();
        let mut v = v;
        while let Err(back) = self.0.push(v) {
            v = back;
            backoff.snooze();
        }
    }

    fn recv(&self) -> u64 {
        let backoff = Backoff::new();
        loop {
            if let Some(v) = self.0.pop() {
                return v;
            }
            backoff.snooze();
        }
    }
}

/// Sends `n` messages (rounded down to a multiple of `producers`) through `q` from
/// `producers` threads to `consumers` threads, and times them from a common start to
/// the last consumer's sentinel; checks every message.
fn mpmc_run<Q: Queue>(q: &Q, n: u64, producers: usize, consumers: usize) -> Duration {
    let per = (n / producers as u64).max(1);
    let start = Arc::new(Barrier::new(producers + consumers + 1));
    let finished = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..producers)
        .map(|p| {
            let (q, start, finished) = (q.clone(), start.clone(), finished.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..per {
                    q.send((p as u64) << SHIFT | i);
                }
                // The last producer to finish tells every consumer to stop.
                if finished.fetch_add(1, Ordering::AcqRel) + 1 == producers {
                    (0..consumers).for_each(|_| q.send(SENTINEL));
                }
            })
        })
        .collect();
    let receivers: Vec<_> = (0..consumers)
        .map(|_| {
            let (q, start) = (q.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut next = vec![0u64; producers];
                let mut count = 0u64;
                loop {
                    let v = q.recv();
                    if v == SENTINEL {
                        return (count, Instant::now());
                    }
                    let (p, i) = ((v >> SHIFT) as usize, v & ((1 << SHIFT) - 1));
                    assert!(i >= next[p], "producer {p}: message {i} out of order");
                    next[p] = i + 1;
                    count += 1;
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    senders
        .into_iter()
        .for_each(|s| s.join().expect("producer"));
    let mut count = 0;
    let mut end = t0;
    for r in receivers {
        let (c, e) = r.join().expect("consumer");
        count += c;
        end = end.max(e);
    }
    assert_eq!(count, per * producers as u64, "messages lost or repeated");
    end - t0
}

/// MPMC `u64` throughput, 1P/1C and 2P/2C.
fn mpmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpmc-u64");
    g.throughput(Throughput::Elements(1));
    for (p, n) in [(1, "1p1c"), (2, "2p2c")] {
        g.bench_function(format!("arrayqueue-snooze-{n}"), |b| {
            b.iter_custom(|iters| {
                let q = Snooze(Arc::new(ArrayQueue::new(SLOTS)));
                mpmc_run(&q, iters, p, p)
            })
        });
        g.bench_function(format!("ringport-blocking-{n}"), |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = ringport::mpmc::channel(SLOTS);
                mpmc_run(&Ringport(tx, rx), iters, p, p)
            })
        });
    }
    g.finish();
}

/// Publishes `0..n` from this thread to `subs` subscriber threads, each calling `recv`
/// (a message, or `Err(lag)`); times them from a common start to the last subscriber's
/// last message and checks that each saw every message or a lag reported for it.
fn fanout_run<S: Send + 'static>(
    n: u64,
    subs: Vec<S>,
    recv: fn(&mut S) -> Result<u64, u64>,
    mut publish: impl FnMut(u64),
) -> Duration {
    let go = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            let go = go.clone();
            std::thread::spawn(move || {
                while !go.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                let mut next = 0;
                while next < n {
                    match recv(&mut s) {
                        Ok(v) => {
                            assert_eq!(v, next, "message out of order");
                            next += 1;
                        }
                        Err(lag) => next += lag,
                    }
                }
                assert_eq!(next, n, "lagged past the last message");
                Instant::now()
            })
        })
        .collect();
    let t0 = Instant::now();
    go.store(true, Ordering::Release);
    (0..n).for_each(&mut publish);
    let end = threads
        .into_iter()
        .map(|t| t.join().expect("subscriber"))
        .max()
        .unwrap_or(t0);
    end - t0
}

/// Fan-out of `u64`s to 1 and 4 subscribers: ringport overwrite against tokio.
fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast-u64");
    for subs in [1usize, 4] {
        g.throughput(Throughput::Elements(subs as u64));
        g.bench_function(format!("tokio-{subs}sub"), |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = tokio::sync::broadcast::channel::<u64>(SLOTS);
                let mut rxs = vec![rx];
                rxs.extend((1..subs).map(|_| tx.subscribe()));
                fanout_run(
                    iters,
                    rxs,
                    |rx| {
                        use tokio::sync::broadcast::error::RecvError;
                        match rx.blocking_recv() {
                            Ok(v) => Ok(v),
                            Err(RecvError::Lagged(n)) => Err(n),
                            Err(e) => panic!("tokio recv: {e}"),
                        }
                    },
                    |v| {
                        tx.send(v).expect("send");
                    },
                )
            })
        });
        g.bench_function(format!("ringport-overwrite-{subs}sub"), |b| {
            b.iter_custom(|iters| {
                let p = broadcast::channel(BroadcastOptions {
                    capacity: SLOTS,
                    max_message: 8,
                    overflow: Overflow::Overwrite,
                    ..Default::default()
                });
                let subscribers = (0..subs)
                    .map(|_| p.subscribe().expect("subscribe"))
                    .collect();
                fanout_run(
                    iters,
                    subscribers,
                    |s| match s.recv() {
                        Ok(bytes) => Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes"))),
                        Err(RecvError::Lagged(n)) => Err(n),
                        Err(e) => panic!("ringport recv: {e}"),
                    },
                    |v| {
                        p.publish(&v.to_le_bytes()).expect("publish");
                    },
                )
            })
        });
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
    targets = mpmc, fanout
}
criterion_main!(benches);
