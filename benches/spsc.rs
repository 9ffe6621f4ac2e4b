//! Regression benchmarks of the SPSC paths, a compact subset of `ringport bench`:
//! round trips of a busy-polled `PodPort<u64>` against two rtrb rings and against the
//! two-line floor, and `u64` throughput of `PodRing` against rtrb, one message per call
//! and in chunks of 256. Between two threads, pinned to two CPUs where there are two.
//!
//! Criterion tracks each number against its last run; the comparison between rows
//! (ratios to the floor and to rtrb, with percentiles and checks of every message) is
//! `cargo run --release -- bench`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringport::ring::PodRing;
use ringport::{MessageChannel, PodPort, RecvError, SendError};
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Messages each queue holds, ringport's and rtrb's alike.
const SLOTS: usize = 4096;
/// Messages per chunk in the batched benches.
const CHUNK: usize = 256;
/// Tells an echo thread to stop; never a ping value, which is odd.
const STOP: u64 = u64::MAX - 1;

/// The first two CPUs this process may use: the measuring thread's and the peer's.
/// Read once, before the measuring thread pins itself and narrows its own affinity.
fn cpus() -> Option<(usize, usize)> {
    static CPUS: OnceLock<Option<(usize, usize)>> = OnceLock::new();
    *CPUS.get_or_init(|| {
        let set = sched_getaffinity(None).ok()?;
        let mut it = (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c));
        Some((it.next()?, it.next()?))
    })
}

/// Pins the calling thread; unpinned numbers are still numbers, so failure is ignored.
fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = CpuSet::new();
        set.set(cpu);
        let _ = sched_setaffinity(None, &set);
    }
}

/// Whether a ringport send went through; false if the ring was full; a panic on any
/// other error, which would otherwise spin forever.
#[inline]
fn sent(r: Result<(), SendError>) -> bool {
    match r {
        Ok(()) => true,
        Err(SendError::Full) => false,
        Err(e) => panic!("send: {e}"),
    }
}

/// What a ringport receive got; `None` if the ring was empty; a panic on any other error.
#[inline]
fn received<T>(r: Result<T, RecvError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(RecvError::Empty) => None,
        Err(e) => panic!("receive: {e}"),
    }
}

/// One end of a two-way path of `u64`s, busy-polled.
trait End: Send + 'static {
    /// Sends `v`, spinning while the path is full.
    fn send(&mut self, v: u64);
    /// Spins until a value arrives.
    fn recv(&mut self) -> u64;
}

/// A `PodPort<u64>`, polled with `try_post_message` / `try_recv`.
struct Pod(PodPort<u64>);

impl End for Pod {
    #[inline]
    fn send(&mut self, v: u64) {
        while !sent(self.0.try_post_message(v)) {
            spin_loop();
        }
    }

    #[inline]
    fn recv(&mut self) -> u64 {
        loop {
            if let Some(v) = received(self.0.try_recv()) {
                return v;
            }
            spin_loop();
        }
    }
}

/// Two rtrb rings, this end's producer and consumer.
struct Rtrb(rtrb::Producer<u64>, rtrb::Consumer<u64>);

impl End for Rtrb {
    #[inline]
    fn send(&mut self, v: u64) {
        while self.0.push(v).is_err() {
            spin_loop();
        }
    }

    #[inline]
    fn recv(&mut self) -> u64 {
        loop {
            if let Ok(v) = self.1.pop() {
                return v;
            }
            spin_loop();
        }
    }
}

/// An `AtomicU64` alone in a 128-byte line; the floor uses one per direction.
#[repr(C, align(128))]
#[derive(Default)]
struct Line(AtomicU64);

/// One end of the two-line floor: writes `lines[side]`, reads the other.
struct Floor {
    lines: Arc<[Line; 2]>,
    side: usize,
    seen: u64,
}

impl End for Floor {
    #[inline]
    fn send(&mut self, v: u64) {
        self.lines[self.side].0.store(v, Ordering::Release);
    }

    #[inline]
    fn recv(&mut self) -> u64 {
        loop {
            let v = self.lines[1 - self.side].0.load(Ordering::Acquire);
            if v != self.seen {
                self.seen = v;
                return v;
            }
            spin_loop();
        }
    }
}

/// Round trips over `mine`, with `theirs` echoing on a peer thread until told to stop.
/// Every reply is checked.
fn ping_pong<E: End>(c: &mut Criterion, name: &str, (mut mine, mut theirs): (E, E)) {
    let peer_cpu = cpus().map(|p| p.1);
    let peer = std::thread::spawn(move || {
        pin(peer_cpu);
        loop {
            let v = theirs.recv();
            if v == STOP {
                break;
            }
            theirs.send(v + 1);
        }
    });
    // Ping values keep rising across samples: the floor tells a new message by its value.
    let mut next = 1u64;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            for _ in 0..iters {
                mine.send(next);
                let reply = mine.recv();
                assert_eq!(reply, next + 1, "{name}: wrong reply");
                next += 2;
            }
            t0.elapsed()
        })
    });
    mine.send(STOP);
    peer.join().expect("echo thread");
}

/// Round trips: the two-line floor, a busy `PodPort<u64>`, busy rtrb.
fn round_trips(c: &mut Criterion) {
    pin(cpus().map(|p| p.0));
    let lines = Arc::new(<[Line; 2]>::default());
    ping_pong(
        c,
        "rtt/floor-two-line",
        (
            Floor {
                lines: lines.clone(),
                side: 0,
                seen: 0,
            },
            Floor {
                lines,
                side: 1,
                seen: 0,
            },
        ),
    );
    let (a, b) = MessageChannel::pod::<u64>(SLOTS);
    ping_pong(c, "rtt/pod-port-busy", (Pod(a), Pod(b)));
    let (tx_ab, rx_ab) = rtrb::RingBuffer::new(SLOTS);
    let (tx_ba, rx_ba) = rtrb::RingBuffer::new(SLOTS);
    ping_pong(c, "rtt/rtrb-busy", (Rtrb(tx_ab, rx_ba), Rtrb(tx_ba, rx_ab)));
}

/// Streams `0..iters` from `produce` (this thread) to `consume` (a pinned peer thread)
/// and times it; `consume` checks order and count.
fn stream<P, C>(iters: u64, produce: P, consume: C) -> Duration
where
    P: FnOnce(u64),
    C: FnOnce(u64) + Send,
{
    let peer_cpu = cpus().map(|p| p.1);
    std::thread::scope(|s| {
        let peer = s.spawn(move || {
            pin(peer_cpu);
            consume(iters);
        });
        let t0 = Instant::now();
        produce(iters);
        peer.join().expect("consumer thread");
        t0.elapsed()
    })
}

/// Sends `0..n` in chunks through `try_send`, which returns how many it took.
fn send_chunks(n: u64, mut try_send: impl FnMut(&[u64]) -> usize) {
    let mut buf = [0u64; CHUNK];
    let mut next = 0;
    while next < n {
        let len = (n - next).min(CHUNK as u64) as usize;
        for (k, slot) in buf[..len].iter_mut().enumerate() {
            *slot = next + k as u64;
        }
        let mut sent = 0;
        while sent < len {
            match try_send(&buf[sent..len]) {
                0 => spin_loop(),
                k => sent += k,
            }
        }
        next += len as u64;
    }
}

/// Receives `n` values through `try_recv` (how many it wrote) and checks they are `0..n`.
fn recv_chunks(n: u64, mut try_recv: impl FnMut(&mut [u64]) -> usize) {
    let mut buf = [0u64; CHUNK];
    let mut next = 0;
    while next < n {
        let want = (n - next).min(CHUNK as u64) as usize;
        let got = try_recv(&mut buf[..want]);
        if got == 0 {
            spin_loop();
        }
        for (k, &v) in buf[..got].iter().enumerate() {
            assert_eq!(v, next + k as u64, "message out of order");
        }
        next += got as u64;
    }
}

/// `u64` throughput: `PodRing` against rtrb, one per call and in chunks.
fn throughput(c: &mut Criterion) {
    pin(cpus().map(|p| p.0));
    let mut g = c.benchmark_group("tput-u64");
    g.throughput(Throughput::Elements(1));

    let (mut tx, mut rx) = PodRing::<u64>::with_capacity(SLOTS);
    g.bench_function("pod-ring", |b| {
        b.iter_custom(|iters| {
            stream(
                iters,
                |n| {
                    for i in 0..n {
                        while !sent(tx.try_send(i)) {
                            spin_loop();
                        }
                    }
                },
                |n| {
                    for i in 0..n {
                        let v = loop {
                            match received(rx.try_recv()) {
                                Some(v) => break v,
                                None => spin_loop(),
                            }
                        };
                        assert_eq!(v, i, "message out of order");
                    }
                },
            )
        })
    });

    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(SLOTS);
    g.bench_function("rtrb", |b| {
        b.iter_custom(|iters| {
            stream(
                iters,
                |n| {
                    for i in 0..n {
                        while tx.push(i).is_err() {
                            spin_loop();
                        }
                    }
                },
                |n| {
                    for i in 0..n {
                        let v = loop {
                            match rx.pop() {
                                Ok(v) => break v,
                                Err(_) => spin_loop(),
                            }
                        };
                        assert_eq!(v, i, "message out of order");
                    }
                },
            )
        })
    });

    let (mut tx, mut rx) = PodRing::<u64>::with_capacity(SLOTS);
    g.bench_function("pod-ring-batch256", |b| {
        b.iter_custom(|iters| {
            stream(
                iters,
                |n| {
                    send_chunks(n, |vs| match tx.try_send_batch(vs) {
                        Err(SendError::Full) => 0,
                        r => r.expect("send batch"),
                    })
                },
                |n| recv_chunks(n, |out| received(rx.try_recv_batch(out)).unwrap_or(0)),
            )
        })
    });

    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(SLOTS);
    g.bench_function("rtrb-chunks256", |b| {
        b.iter_custom(|iters| {
            stream(
                iters,
                |n| send_chunks(n, |vs| tx.push_partial_slice(vs).0.len()),
                |n| recv_chunks(n, |out| rx.pop_partial_slice(out).0.len()),
            )
        })
    });
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
    targets = round_trips, throughput
}
criterion_main!(benches);
