//! Throughput: one side streams messages as fast as the path takes them, the other
//! receives and checks every one.
//!
//! Message `i` of a `u64` row is `i`; the consumer fails the row at the first value out
//! of order and receives exactly the plan's total. A frame row's frame `i` carries `i` in
//! its first and last 8 bytes and must have the planned length.
//!
//! A row is [`TRIALS`] independent runs, each on a fresh path with fresh threads (or a
//! fresh child), each timed by the consumer (`CLOCK_MONOTONIC`, so a child's readings are
//! comparable) from the moment it has received the `warm` messages of the warm-up to its
//! last message. The row reports the median run, with the slowest and fastest: an SPSC
//! stream settles into one of several regimes (a consumer that keeps up pulls every line
//! across as it is written; one that lags reads many at once) and mostly stays there, so
//! one long run would report whichever regime it happened to enter.

use crate::bench::{Ctx, Measured, Plan};
use crate::child::{or_exit, ChildArgs};
use crate::Result;
use ringport::atomics::futex_syscalls;
use rustix::time::{clock_gettime, ClockId};
use std::hint::spin_loop;
use std::process::Stdio;

/// Messages per chunk in batched rows.
pub const CHUNK: usize = 256;

/// Independent runs per throughput row.
pub const TRIALS: u64 = 5;

/// A one-way path measured for throughput: how to drive each end.
pub trait Stream {
    /// The sending end.
    type Tx: Send + 'static;
    /// The receiving end.
    type Rx: Send + 'static;
    /// Sends the plan's messages.
    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()>;
    /// Receives and checks the plan's messages; returns the [`Marks`] readings.
    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>>;
}

/// A [`Stream`] between two threads.
pub trait InProcessStream: Stream {
    /// A connected pair of ends.
    fn pair() -> Result<(Self::Tx, Self::Rx)>;
}

/// A [`Stream`] from this process to a child, through a named segment.
pub trait NamedStream: Stream {
    /// Creates the segment `name`; the parent's end.
    fn host(name: &str) -> Result<Self::Tx>;
    /// Waits until the child has joined and is ready to receive.
    fn await_guest(tx: &mut Self::Tx) -> Result<()>;
    /// Opens the segment `name`; the child's end.
    fn guest(name: &str) -> Result<Self::Rx>;
    /// Tells the parent the child is ready.
    fn announce(rx: &mut Self::Rx) -> Result<()>;
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for both processes of a row.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The consumer's clock readings: when the warm-up has been received, and at the end.
pub struct Marks {
    /// The received count at which the first reading is due; `u64::MAX` once taken.
    due: u64,
    /// Messages received when the first reading was taken (a batch may end past `warm`).
    from: u64,
    start: u64,
    total: u64,
}

impl Marks {
    /// No readings yet.
    pub fn new(plan: &Plan) -> Marks {
        Marks {
            due: plan.warm,
            from: 0,
            start: 0,
            total: plan.total(),
        }
    }

    /// Takes the first reading once `received` messages have arrived.
    #[inline(always)]
    pub fn passed(&mut self, received: u64) {
        if received >= self.due {
            self.start = now_ns();
            self.from = received;
            self.due = u64::MAX;
        }
    }

    /// Takes the last reading; returns `[first reading, last reading, messages between]`,
    /// what a child reports.
    pub fn finish(self) -> Vec<u64> {
        vec![self.start, now_ns(), self.total - self.from]
    }

    /// `(messages, nanoseconds)` of a run, from what [`finish`](Self::finish) returned.
    pub fn run(readings: &[u64]) -> Result<(u64, u64)> {
        match *readings {
            [start, end, messages] => Ok((messages, end.saturating_sub(start))),
            _ => Err(format!("{} clock readings instead of 3", readings.len()).into()),
        }
    }
}

/// Sends `0..total` one at a time; `try_send` returns false when the path is full.
#[inline(always)]
pub fn produce_each(plan: &Plan, mut try_send: impl FnMut(u64) -> Result<bool>) -> Result<()> {
    for i in 0..plan.total() {
        while !try_send(i)? {
            spin_loop();
        }
    }
    Ok(())
}

/// Receives `total` messages one at a time; `try_recv` returns `None` when the path is
/// empty.
#[inline(always)]
pub fn consume_each(
    plan: &Plan,
    mut try_recv: impl FnMut() -> Result<Option<u64>>,
) -> Result<Vec<u64>> {
    let mut marks = Marks::new(plan);
    marks.passed(0);
    for i in 0..plan.total() {
        let v = loop {
            match try_recv()? {
                Some(v) => break v,
                None => spin_loop(),
            }
        };
        if v != i {
            return Err(out_of_order(i, v));
        }
        marks.passed(i + 1);
    }
    Ok(marks.finish())
}

/// Sends `0..total` in chunks of [`CHUNK`]; `try_send` returns how many of the slice it
/// took (0 when the path is full).
#[inline(always)]
pub fn produce_chunks(
    plan: &Plan,
    mut try_send: impl FnMut(&[u64]) -> Result<usize>,
) -> Result<()> {
    let mut buf = [0u64; CHUNK];
    let mut next = 0;
    while next < plan.total() {
        let n = (plan.total() - next).min(CHUNK as u64) as usize;
        for (k, slot) in buf[..n].iter_mut().enumerate() {
            *slot = next + k as u64;
        }
        let mut sent = 0;
        while sent < n {
            match try_send(&buf[sent..n])? {
                0 => spin_loop(),
                k => sent += k,
            }
        }
        next += n as u64;
    }
    Ok(())
}

/// Receives `total` messages into a [`CHUNK`]-sized buffer; `try_recv` returns how many
/// it wrote (0 when the path is empty).
#[inline(always)]
pub fn consume_chunks(
    plan: &Plan,
    mut try_recv: impl FnMut(&mut [u64]) -> Result<usize>,
) -> Result<Vec<u64>> {
    let mut marks = Marks::new(plan);
    marks.passed(0);
    let mut buf = [0u64; CHUNK];
    let mut next = 0;
    while next < plan.total() {
        let want = (plan.total() - next).min(CHUNK as u64) as usize;
        let n = try_recv(&mut buf[..want])?;
        if n == 0 {
            spin_loop();
            continue;
        }
        for (k, &v) in buf[..n].iter().enumerate() {
            if v != next + k as u64 {
                return Err(out_of_order(next + k as u64, v));
            }
        }
        next += n as u64;
        marks.passed(next);
    }
    Ok(marks.finish())
}

/// Sends `total` frames of `plan.frame` bytes, frame `i` carrying `i` at both ends;
/// `try_send` returns false when the path is full.
#[inline(always)]
pub fn produce_frames(plan: &Plan, mut try_send: impl FnMut(&[u8]) -> Result<bool>) -> Result<()> {
    let len = plan.frame;
    let mut frame = vec![0xa5u8; len];
    for i in 0..plan.total() {
        frame[..8].copy_from_slice(&i.to_le_bytes());
        frame[len - 8..].copy_from_slice(&i.to_le_bytes());
        while !try_send(&frame)? {
            spin_loop();
        }
    }
    Ok(())
}

/// Receives `total` frames; `try_recv(i)` checks frame `i` in place with [`check_frame`]
/// and returns false when the path is empty.
#[inline(always)]
pub fn consume_frames(
    plan: &Plan,
    mut try_recv: impl FnMut(u64) -> Result<bool>,
) -> Result<Vec<u64>> {
    let mut marks = Marks::new(plan);
    marks.passed(0);
    for i in 0..plan.total() {
        while !try_recv(i)? {
            spin_loop();
        }
        marks.passed(i + 1);
    }
    Ok(marks.finish())
}

/// Checks that the payload at `skip` of the bytes `first` then `second` (a ring's two
/// pieces; `second` is empty where frames are contiguous) is frame `seq` of `len` bytes.
#[inline(always)]
pub fn check_frame(first: &[u8], second: &[u8], skip: usize, len: usize, seq: u64) -> Result<()> {
    let got = first.len() + second.len() - skip;
    if got != len {
        return Err(format!("frame {seq}: {got} bytes instead of {len}").into());
    }
    let head = u64::from_le_bytes(gather(first, second, skip));
    let tail = u64::from_le_bytes(gather(first, second, skip + len - 8));
    if head != seq || tail != seq {
        return Err(format!("frame {seq}: carries {head} (head) and {tail} (tail)").into());
    }
    Ok(())
}

/// `N` bytes at `at` of `first` followed by `second`.
#[inline(always)]
pub fn gather<const N: usize>(first: &[u8], second: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(bytes) = first.get(at..at + N) {
        out.copy_from_slice(bytes);
        return out;
    }
    for (k, b) in out.iter_mut().enumerate() {
        let p = at + k;
        *b = if p < first.len() {
            first[p]
        } else {
            second[p - first.len()]
        };
    }
    out
}

/// The error of a consumer that received `got` where `expected` was due.
fn out_of_order(expected: u64, got: u64) -> crate::Error {
    format!("message {expected}: received {got}").into()
}

/// A throughput row between the main thread (producer) and a peer thread (consumer).
pub fn threads<S: InProcessStream>(ctx: &Ctx) -> Result<Measured> {
    let plan = ctx.plan;
    let mut runs = Vec::new();
    let mut futex = 0;
    let mut pinned = ctx.main_pinned;
    for _ in 0..plan.trials {
        let (mut tx, rx) = S::pair()?;
        let futex_before = futex_syscalls();
        let peer = ctx.spawn_peer(rx, move |rx| S::consume(rx, &plan));
        ctx.or_abort(S::produce(&mut tx, &plan));
        let (readings, peer_pinned) = peer.join();
        futex += futex_syscalls() - futex_before;
        pinned &= peer_pinned;
        runs.push(Marks::run(&readings)?);
    }
    Ok(Measured::throughput(runs, futex, pinned))
}

/// A throughput row from this process (producer) to a child process (consumer).
pub fn processes<S: NamedStream>(ctx: &Ctx) -> Result<Measured> {
    let mut runs = Vec::new();
    let mut futex = 0;
    let mut pinned = ctx.main_pinned;
    for trial in 0..ctx.plan.trials {
        let name = ctx.segment_name(trial);
        let mut tx = S::host(&name)?;
        let child = ctx.spawn_child(&name, Stdio::null())?;
        ctx.or_abort(S::await_guest(&mut tx));
        let futex_before = futex_syscalls();
        ctx.or_abort(S::produce(&mut tx, &ctx.plan));
        futex += futex_syscalls() - futex_before;
        let report = child.finish()?;
        drop(tx);
        futex += report.futex;
        pinned &= report.pinned;
        runs.push(Marks::run(&report.marks)?);
    }
    Ok(Measured::throughput(runs, futex, pinned))
}

/// The child side of [`processes`], one run: returns the [`Marks`] readings.
pub fn guest<S: NamedStream>(args: &ChildArgs) -> Result<Vec<u64>> {
    let mut rx = S::guest(&args.name)?;
    or_exit(args, S::announce(&mut rx));
    Ok(or_exit(args, S::consume(&mut rx, &args.plan())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::{FrameRingFrames, PodRingBatch, PodRingOne, RtrbBytes, RtrbChunks};
    use std::time::Duration;

    fn plan(warm: u64, count: u64, frame: usize) -> Plan {
        Plan {
            warm,
            count,
            frame,
            trials: 1,
        }
    }

    /// Frame `seq` of `len` bytes as the producer lays it out.
    fn frame(seq: u64, len: usize) -> Vec<u8> {
        let mut f = vec![0xa5; len];
        f[..8].copy_from_slice(&seq.to_le_bytes());
        f[len - 8..].copy_from_slice(&seq.to_le_bytes());
        f
    }

    #[test]
    fn gather_reads_across_the_two_pieces() {
        let bytes: Vec<u8> = (0..12).collect();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(
                gather::<8>(a, b, 3),
                [3, 4, 5, 6, 7, 8, 9, 10],
                "split at {split}"
            );
        }
    }

    #[test]
    fn check_frame_accepts_its_frame_wherever_it_wraps() {
        let f = frame(77, 64);
        let mut prefixed = vec![9, 9, 9, 9];
        prefixed.extend_from_slice(&f);
        for split in 0..=prefixed.len() {
            let (a, b) = prefixed.split_at(split);
            check_frame(a, b, 4, 64, 77).unwrap();
        }
    }

    #[test]
    fn check_frame_rejects_wrong_sequence_or_length() {
        let f = frame(5, 64);
        assert!(check_frame(&f, &[], 0, 64, 6).is_err());
        assert!(check_frame(&f, &[], 0, 72, 5).is_err());
        let mut torn = f.clone();
        torn[63] ^= 1;
        assert!(check_frame(&torn, &[], 0, 64, 5).is_err());
    }

    #[test]
    fn consumers_fail_on_a_lost_or_reordered_message() {
        let mut values = [0, 1, 3].into_iter();
        let r = consume_each(&plan(0, 3, 0), || Ok(values.next()));
        assert!(r.unwrap_err().to_string().contains("message 2"));

        let mut batches = vec![vec![0, 1], vec![2, 4]].into_iter();
        let r = consume_chunks(&plan(0, 4, 0), |out| {
            let b = batches.next().unwrap_or_default();
            out[..b.len()].copy_from_slice(&b);
            Ok(b.len())
        });
        assert!(r.unwrap_err().to_string().contains("message 3"));
    }

    #[test]
    fn marks_time_from_the_end_of_the_warm_up() {
        let mut marks = Marks::new(&plan(256, 1024, 0));
        marks.passed(0);
        marks.passed(200);
        marks.passed(300);
        marks.passed(400);
        let readings = marks.finish();
        assert_eq!(readings[2], 1280 - 300);
        assert_eq!(Marks::run(&readings).unwrap().0, 980);
        assert!(Marks::run(&readings[..2]).is_err());
    }

    /// Streams `plan` through `S` between two threads and returns the messages timed.
    fn stream<S: InProcessStream>(plan: Plan) -> u64 {
        crate::within(Duration::from_secs(60), move || {
            let (mut tx, mut rx) = S::pair().unwrap();
            let consumer = std::thread::spawn(move || S::consume(&mut rx, &plan).unwrap());
            S::produce(&mut tx, &plan).unwrap();
            Marks::run(&consumer.join().unwrap()).unwrap().0
        })
    }

    #[test]
    fn streams_deliver_every_message_in_order() {
        assert_eq!(stream::<PodRingOne>(plan(512, 10_240, 0)), 10_240);
        assert_eq!(stream::<PodRingBatch>(plan(512, 10_240, 0)), 10_240);
        assert_eq!(stream::<RtrbChunks>(plan(512, 10_240, 0)), 10_240);
    }

    #[test]
    fn frame_streams_wrap_their_rings_intact() {
        // 4 KiB frames lap a 256 KiB ring every 64 frames; the rtrb byte ring's frames
        // also split across its end, through both pieces of a chunk.
        assert_eq!(stream::<RtrbBytes>(plan(0, 300, 4096)), 300);
        assert_eq!(stream::<RtrbBytes>(plan(0, 3000, 100)), 3000);
        assert_eq!(stream::<FrameRingFrames>(plan(0, 300, 4096)), 300);
    }
}
