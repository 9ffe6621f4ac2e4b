//! Regression benchmarks of zero-copy transfer, a compact subset of `ringport bench --only
//! transfer`:
//!
//! - the cost of one transfer (loan a buffer, write a 64-byte header, `into_handle`, post
//!   the handle through a `PodPort<BufferHandle>` to another thread, accept, check the
//!   header, drop), pipelined with buffers of 64 B, 4 KiB and 4 MiB, and in ping-pong
//!   (a transfer there and one back) with 4 KiB and 4 MiB: flat, whatever the size;
//! - 1 MiB messages in full (the producer writes every byte, the consumer reads every
//!   byte) between two threads: pool buffers whose handles travel, against a
//!   crossbeam-channel carrying a fresh `Vec<u8>` per message and a copy through a
//!   `FrameRing`, each holding at most 8 messages in transit.
//!
//! Every path blocks where it must wait (a busy machine would otherwise measure spinning
//! threads starving each other). Every transfer and message is checked (order, header, first and last words, the sum of
//! all words), and every pool must be whole afterwards. Criterion tracks each number
//! against its last run; the comparison between rows, with percentiles, the full 64 B to
//! 4 MiB sweep and the rows between processes, is `cargo run --release -- bench --only
//! transfer`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringport::pool::{Buffer, BufferHandle, BufferPool, PoolOptions};
use ringport::ring::{FrameConsumer, FrameProducer, FrameRing};
use ringport::{MessageChannel, PodPort};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Handles the transfer-cost ports hold: transfers in flight at most.
const COST_DEPTH: usize = 14;
/// Bytes of a full message.
const MESSAGE: usize = 1 << 20;
/// Full messages in transit at most, whatever the path.
const DEPTH: usize = 8;

/// How long a blocked call waits before the bench fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// Loans a buffer of `len` bytes, waiting while the pool is empty.
fn loan(pool: &BufferPool, len: usize) -> Buffer {
    pool.loan_timeout(len, HANG_GUARD).expect("loan")
}

/// Posts `h`, waiting while the port is full.
fn post(port: &mut PodPort<BufferHandle>, h: BufferHandle) {
    port.post_message(h).expect("post");
}

/// The next handle.
fn next(port: &mut PodPort<BufferHandle>) -> BufferHandle {
    port.recv_timeout(HANG_GUARD).expect("recv")
}

/// Word `j` of transfer `seq`'s 64-byte header.
fn header_word(seq: u64, j: u64) -> u64 {
    seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ j
}

/// Word `j` of `bytes`.
fn word(bytes: &[u8], j: usize) -> u64 {
    u64::from_le_bytes(bytes[j * 8..j * 8 + 8].try_into().expect("8 bytes"))
}

/// One transfer of a `len`-byte buffer whose header carries `seq`.
fn send(pool: &BufferPool, port: &mut PodPort<BufferHandle>, len: usize, seq: u64) {
    let mut buf = loan(pool, len);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    for j in 1..8 {
        buf[j * 8..j * 8 + 8].copy_from_slice(&header_word(seq, j as u64).to_le_bytes());
    }
    post(port, buf.into_handle());
}

/// The other half of a transfer: accept, check the header, drop; returns its `seq`.
fn recv(pool: &BufferPool, port: &mut PodPort<BufferHandle>, len: usize) -> u64 {
    let buf = pool.accept(&next(port)).expect("accept");
    assert_eq!(buf.len(), len, "buffer length");
    let seq = word(&buf, 0);
    for j in 1..8 {
        assert_eq!(
            word(&buf, j),
            header_word(seq, j as u64),
            "transfer {seq}: header"
        );
    }
    seq
}

/// A zero-copy path: a port pair for `depth` handles and a heap pool of buffers of `len`
/// bytes, one for each handle in the port, the one being written and the one being read,
/// so that the producer waits for room in the port, as the other paths do, never for a
/// buffer. Made once per benchmark: a pool of 4 MiB buffers takes longer to make (and
/// zero) than many transfers.
struct Path {
    pool: BufferPool,
    a: PodPort<BufferHandle>,
    b: PodPort<BufferHandle>,
    len: usize,
}

impl Path {
    fn new(len: usize, depth: usize) -> Path {
        let (a, b) = MessageChannel::pod::<BufferHandle>(depth);
        let buffers = a.capacity() + 2;
        let pool = BufferPool::new(PoolOptions::with_classes(&[(len, buffers)])).expect("pool");
        Path { pool, a, b, len }
    }

    /// Checks that every buffer is back in the pool.
    fn whole(&self) {
        let buffers = self.pool.classes()[0].1;
        assert_eq!(
            self.pool.available(),
            [buffers],
            "a buffer was not returned"
        );
    }
}

/// Runs `other` on a scoped thread and `mine` on this one from a common start; the time
/// `mine` took. The thread's start-up is not timed.
fn timed(other: impl FnOnce() + Send, mine: impl FnOnce()) -> Duration {
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            start.wait();
            other();
        });
        start.wait();
        let t0 = Instant::now();
        mine();
        let dt = t0.elapsed();
        t.join().expect("the other thread");
        dt
    })
}

/// `n` transfers streamed from a producer thread; the time this thread took to receive
/// them all.
fn pipelined(p: &mut Path, n: u64) -> Duration {
    let (pool, len) = (&p.pool, p.len);
    let (tx, rx) = (&mut p.a, &mut p.b);
    let dt = timed(
        || (0..n).for_each(|seq| send(pool, tx, len, seq)),
        || {
            for seq in 0..n {
                assert_eq!(recv(pool, rx, len), seq, "out of order");
            }
        },
    );
    p.whole();
    dt
}

/// `n` round trips, each a transfer there and one back.
fn ping_pong(p: &mut Path, n: u64) -> Duration {
    let (pool, len) = (&p.pool, p.len);
    let (mine, theirs) = (&mut p.a, &mut p.b);
    let dt = timed(
        || {
            for i in 0..n {
                let seq = recv(pool, theirs, len);
                assert_eq!(seq, 2 * i + 1, "out of order");
                send(pool, theirs, len, seq + 1);
            }
        },
        || {
            for i in 0..n {
                send(pool, mine, len, 2 * i + 1);
                assert_eq!(recv(pool, mine, len), 2 * i + 2, "out of order");
            }
        },
    );
    p.whole();
    dt
}

/// The cost of one transfer by buffer size, pipelined and in ping-pong.
fn transfer_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("transfer-cost");
    g.throughput(Throughput::Elements(1));
    for (label, len) in [("64B", 64), ("4KiB", 4096), ("4MiB", 4 << 20)] {
        let mut path = Path::new(len, COST_DEPTH);
        g.bench_function(format!("pipelined-{label}"), |b| {
            b.iter_custom(|iters| pipelined(&mut path, iters))
        });
    }
    for (label, len) in [("4KiB", 4096), ("4MiB", 4 << 20)] {
        let mut path = Path::new(len, 2);
        g.bench_function(format!("ping-pong-{label}"), |b| {
            b.iter_custom(|iters| ping_pong(&mut path, iters))
        });
    }
    g.finish();
}

/// Writes message `seq` over all of `buf`: a fill byte that is never zero, `seq` in the
/// first and last words.
fn fill(buf: &mut [u8], seq: u64) {
    buf.fill(0x80 | (seq & 0x7f) as u8);
    stamp(buf, seq);
}

/// Writes `seq` into the first and last words of `buf`.
fn stamp(buf: &mut [u8], seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// Checks message `seq`, reading every byte.
fn check(bytes: &[u8], seq: u64) {
    assert_eq!(bytes.len(), MESSAGE, "message {seq}: length");
    let words = MESSAGE as u64 / 8;
    assert_eq!(word(bytes, 0), seq, "message {seq}: head");
    assert_eq!(word(bytes, words as usize - 1), seq, "message {seq}: tail");
    let sum = bytes.chunks_exact(8).fold(0u64, |s, w| {
        s.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")))
    });
    let fill = u64::from(0x80 | (seq & 0x7f) as u8) * 0x0101_0101_0101_0101;
    let want = fill
        .wrapping_mul(words - 2)
        .wrapping_add(seq.wrapping_mul(2));
    assert_eq!(sum, want, "message {seq}: contents");
}

/// `n` 1 MiB messages through pool buffers: written in a loaned buffer, read in place.
fn zero_copy(p: &mut Path, n: u64) -> Duration {
    let pool = &p.pool;
    let (tx, rx) = (&mut p.a, &mut p.b);
    let dt = timed(
        || {
            for seq in 0..n {
                let mut buf = loan(pool, MESSAGE);
                fill(&mut buf, seq);
                post(tx, buf.into_handle());
            }
        },
        || {
            for seq in 0..n {
                check(&pool.accept(&next(rx)).expect("accept"), seq);
            }
        },
    );
    p.whole();
    dt
}

/// `n` 1 MiB messages as fresh `Vec`s through a bounded crossbeam channel.
fn crossbeam_vec(
    (tx, rx): &(
        crossbeam_channel::Sender<Vec<u8>>,
        crossbeam_channel::Receiver<Vec<u8>>,
    ),
    n: u64,
) -> Duration {
    timed(
        || {
            for seq in 0..n {
                let mut v = vec![0x80 | (seq & 0x7f) as u8; MESSAGE];
                stamp(&mut v, seq);
                tx.send(v).expect("send");
            }
        },
        || {
            for seq in 0..n {
                check(&rx.recv().expect("recv"), seq);
            }
        },
    )
}

/// `n` 1 MiB messages written in a reused `Vec`, copied into a `FrameRing`, read in place.
fn frame_ring_copy(
    (tx, rx, scratch): &mut (FrameProducer, FrameConsumer, Vec<u8>),
    n: u64,
) -> Duration {
    timed(
        || {
            for seq in 0..n {
                fill(scratch, seq);
                tx.send(scratch).expect("send");
            }
        },
        || {
            for seq in 0..n {
                rx.recv_with(|f| check(f, seq)).expect("recv");
            }
        },
    )
}

/// 1 MiB messages in full between two threads, by path.
fn full_messages(c: &mut Criterion) {
    let mut g = c.benchmark_group("message-1MiB-in-full");
    g.throughput(Throughput::Bytes(MESSAGE as u64));
    let channel = crossbeam_channel::bounded::<Vec<u8>>(DEPTH);
    g.bench_function("crossbeam-vec", |b| {
        b.iter_custom(|iters| crossbeam_vec(&channel, iters))
    });
    let mut path = Path::new(MESSAGE, DEPTH);
    g.bench_function("zero-copy", |b| {
        b.iter_custom(|iters| zero_copy(&mut path, iters))
    });
    let capacity = (DEPTH * (MESSAGE + 64)).next_multiple_of(64);
    let (tx, rx) = FrameRing::with_limits(capacity, MESSAGE);
    let mut ring = (tx, rx, vec![0u8; MESSAGE]);
    g.bench_function("frame-ring-copy", |b| {
        b.iter_custom(|iters| frame_ring_copy(&mut ring, iters))
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
    targets = transfer_cost, full_messages
}
criterion_main!(benches);
