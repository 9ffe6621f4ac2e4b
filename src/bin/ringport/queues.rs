//! MPMC throughput: `P` producer threads and `C` consumer threads share one bounded queue
//! of [`SLOTS`] `u64`s.
//!
//! Producer `p` sends `p << 40 | i` for `i` in `0..total / P`; when the last producer has
//! finished, it sends one [`SENTINEL`] per consumer, and each consumer stops at the first
//! it receives. Every queue here hands out messages in the order their sends completed,
//! so no message can follow the sentinels, and every consumer checks what it received:
//! each producer's messages in increasing order, from producers that exist. Together the
//! consumers must have received every message once: the counts add up to the total and
//! the values to its checksum. A queue that loses, repeats or invents a message fails the
//! row instead of looking fast.
//!
//! A run times everything it sends, from a start signal that every thread, already
//! spawned, pinned and holding its end, waits for, to the last consumer's sentinel: one
//! fresh queue per run, no warm-up inside it. Threads take the allowed CPUs in turn,
//! producers and consumers alternating; where there are more threads than CPUs they
//! share, and the report marks the row oversubscribed. The blocking queues (ringport's
//! `send` / `recv`, crossbeam-channel's, flume's) sleep when they must wait long, which
//! an oversubscribed machine needs; the polling ones back off with crossbeam's
//! `Backoff::snooze`, which yields the CPU after a few rounds of spinning.

use crate::bench::{Ctx, Measured, Peer};
use crate::scenarios::SLOTS;
use crate::tput::now_ns;
use crate::Result;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use ringport::atomics::futex_syscalls;
use ringport::{RecvError, SendError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What each consumer stops at; never a message, whose producer bits stay below 8.
pub const SENTINEL: u64 = u64::MAX;
/// Where a message's producer number starts.
const PRODUCER_SHIFT: u32 = 40;

/// A bounded MPMC queue of `u64`, as the rows drive it.
pub trait Queue {
    /// A producer's end.
    type Tx: Clone + Send + 'static;
    /// A consumer's end.
    type Rx: Clone + Send + 'static;
    /// A queue of [`SLOTS`] messages.
    fn pair() -> (Self::Tx, Self::Rx);
    /// Sends `v`, waiting while the queue is full.
    fn send(tx: &Self::Tx, v: u64) -> Result<()>;
    /// Receives a message, waiting while the queue is empty.
    fn recv(rx: &Self::Rx) -> Result<u64>;
}

/// The reference: crossbeam's `ArrayQueue`, polled with `push` / `pop` and
/// `Backoff::snooze` between polls.
pub struct ArrayQueueSnooze;

impl Queue for ArrayQueueSnooze {
    type Tx = Arc<ArrayQueue<u64>>;
    type Rx = Arc<ArrayQueue<u64>>;

    fn pair() -> (Self::Tx, Self::Rx) {
        let q = Arc::new(ArrayQueue::new(SLOTS));
        (q.clone(), q)
    }

    #[inline]
    fn send(tx: &Self::Tx, v: u64) -> Result<()> {
        let backoff = Backoff::new();
        let mut v = v;
        while let Err(back) = tx.push(v) {
            v = back;
            backoff.snooze();
        }
        Ok(())
    }

    #[inline]
    fn recv(rx: &Self::Rx) -> Result<u64> {
        let backoff = Backoff::new();
        loop {
            if let Some(v) = rx.pop() {
                return Ok(v);
            }
            backoff.snooze();
        }
    }
}

/// `ringport::mpmc::channel::<u64>`, blocking `send` / `recv`: they poll for a while,
/// then sleep on the ring's futex.
pub struct RingportBlocking;

impl Queue for RingportBlocking {
    type Tx = ringport::mpmc::Sender<u64>;
    type Rx = ringport::mpmc::Receiver<u64>;

    fn pair() -> (Self::Tx, Self::Rx) {
        ringport::mpmc::channel(SLOTS)
    }

    #[inline]
    fn send(tx: &Self::Tx, v: u64) -> Result<()> {
        Ok(tx.send(v)?)
    }

    #[inline]
    fn recv(rx: &Self::Rx) -> Result<u64> {
        Ok(rx.recv()?)
    }
}

/// `ringport::mpmc::channel::<u64>`, polled with `try_send` / `try_recv` and
/// `Backoff::snooze` between polls, as the reference polls.
pub struct RingportSnooze;

impl Queue for RingportSnooze {
    type Tx = ringport::mpmc::Sender<u64>;
    type Rx = ringport::mpmc::Receiver<u64>;

    fn pair() -> (Self::Tx, Self::Rx) {
        ringport::mpmc::channel(SLOTS)
    }

    #[inline]
    fn send(tx: &Self::Tx, v: u64) -> Result<()> {
        let backoff = Backoff::new();
        loop {
            match tx.try_send(v) {
                Err(SendError::Full) => backoff.snooze(),
                r => return Ok(r?),
            }
        }
    }

    #[inline]
    fn recv(rx: &Self::Rx) -> Result<u64> {
        let backoff = Backoff::new();
        loop {
            match rx.try_recv() {
                Err(RecvError::Empty) => backoff.snooze(),
                r => return Ok(r?),
            }
        }
    }
}

/// A bounded crossbeam channel, blocking `send` / `recv`.
pub struct CrossbeamChannel;

impl Queue for CrossbeamChannel {
    type Tx = crossbeam_channel::Sender<u64>;
    type Rx = crossbeam_channel::Receiver<u64>;

    fn pair() -> (Self::Tx, Self::Rx) {
        crossbeam_channel::bounded(SLOTS)
    }

    #[inline]
    fn send(tx: &Self::Tx, v: u64) -> Result<()> {
        Ok(tx.send(v)?)
    }

    #[inline]
    fn recv(rx: &Self::Rx) -> Result<u64> {
        Ok(rx.recv()?)
    }
}

/// A bounded flume channel, blocking `send` / `recv`.
pub struct Flume;

impl Queue for Flume {
    type Tx = flume::Sender<u64>;
    type Rx = flume::Receiver<u64>;

    fn pair() -> (Self::Tx, Self::Rx) {
        flume::bounded(SLOTS)
    }

    #[inline]
    fn send(tx: &Self::Tx, v: u64) -> Result<()> {
        Ok(tx.send(v)?)
    }

    #[inline]
    fn recv(rx: &Self::Rx) -> Result<u64> {
        Ok(rx.recv()?)
    }
}

/// The start signal of a run: threads report ready, then wait for the go.
#[derive(Default)]
pub struct Start {
    ready: AtomicUsize,
    go: AtomicBool,
}

impl Start {
    /// Reports this thread ready and waits for the go; yields while it waits, since on
    /// an oversubscribed machine the threads still to report need the CPU.
    pub fn wait(&self) {
        self.ready.fetch_add(1, Ordering::AcqRel);
        let backoff = Backoff::new();
        while !self.go.load(Ordering::Acquire) {
            backoff.snooze();
        }
    }

    /// Waits until `threads` threads are ready, then lets them go; returns the clock
    /// reading at the go.
    pub fn go(&self, threads: usize) -> u64 {
        let backoff = Backoff::new();
        while self.ready.load(Ordering::Acquire) < threads {
            backoff.snooze();
        }
        let t0 = now_ns();
        self.go.store(true, Ordering::Release);
        t0
    }
}

/// What one consumer received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Messages, the sentinel not counted.
    pub count: u64,
    /// Their values, added up (wrapping).
    pub sum: u64,
    /// The clock reading at the sentinel.
    pub end: u64,
}

/// Checks a consumer's messages as they come: each producer's in increasing order.
pub struct OrderCheck {
    /// The next index due from each producer, at least.
    next: Vec<u64>,
    count: u64,
    sum: u64,
}

impl OrderCheck {
    /// A check of messages from `producers` producers.
    pub fn new(producers: usize) -> OrderCheck {
        OrderCheck {
            next: vec![0; producers],
            count: 0,
            sum: 0,
        }
    }

    /// Takes message `v`.
    #[inline(always)]
    pub fn take(&mut self, v: u64) -> Result<()> {
        let (p, i) = (
            (v >> PRODUCER_SHIFT) as usize,
            v & ((1 << PRODUCER_SHIFT) - 1),
        );
        let Some(next) = self.next.get_mut(p) else {
            return Err(format!("received {v:#x}: no producer {p}").into());
        };
        if i < *next {
            return Err(
                format!("producer {p}: message {i} received after a later one (or twice)").into(),
            );
        }
        *next = i + 1;
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
        Ok(())
    }

    /// The tally, with the clock reading `end`.
    pub fn finish(self, end: u64) -> Tally {
        Tally {
            count: self.count,
            sum: self.sum,
            end,
        }
    }
}

/// What `producers` producers of `per` messages each send, added up (wrapping).
pub fn checksum(producers: u64, per: u64) -> u64 {
    let indices = if per % 2 == 0 {
        (per / 2).wrapping_mul(per.wrapping_sub(1))
    } else {
        per.wrapping_mul(per.wrapping_sub(1) / 2)
    };
    let numbers = producers * producers.saturating_sub(1) / 2;
    (numbers << PRODUCER_SHIFT)
        .wrapping_mul(per)
        .wrapping_add(indices.wrapping_mul(producers))
}

/// Checks the consumers' tallies of a run that sent `per` messages from each of
/// `producers` producers: every message received once.
pub fn check_tallies(tallies: &[Tally], producers: u64, per: u64) -> Result<()> {
    let count: u64 = tallies.iter().map(|t| t.count).sum();
    let sum = tallies.iter().fold(0u64, |s, t| s.wrapping_add(t.sum));
    if count != producers * per {
        return Err(format!(
            "consumers received {count} messages instead of {}",
            producers * per
        )
        .into());
    }
    let want = checksum(producers, per);
    if sum != want {
        return Err(format!("messages add up to {sum:#x} instead of {want:#x}").into());
    }
    Ok(())
}

/// Producer `p`: sends its `per` messages, then, if it is the last of `producers` to
/// finish, one sentinel per consumer.
fn produce<Q: Queue>(
    tx: &Q::Tx,
    p: usize,
    per: u64,
    finished: &AtomicUsize,
    producers: usize,
    consumers: usize,
) -> Result<()> {
    let base = (p as u64) << PRODUCER_SHIFT;
    for i in 0..per {
        Q::send(tx, base | i)?;
    }
    if finished.fetch_add(1, Ordering::AcqRel) + 1 == producers {
        for _ in 0..consumers {
            Q::send(tx, SENTINEL)?;
        }
    }
    Ok(())
}

/// A consumer: receives and checks messages until a sentinel.
fn consume<Q: Queue>(rx: &Q::Rx, producers: usize) -> Result<Tally> {
    let mut check = OrderCheck::new(producers);
    loop {
        let v = Q::recv(rx)?;
        if v == SENTINEL {
            return Ok(check.finish(now_ns()));
        }
        check.take(v)?;
    }
}

/// One run of `total` messages over a fresh `Q`: `(messages, nanoseconds, pinned)`.
fn run<Q: Queue>(ctx: &Ctx, producers: usize, consumers: usize) -> Result<(u64, u64, bool)> {
    let total = ctx.plan.total();
    let per = total / producers as u64;
    let (tx, rx) = Q::pair();
    let start = Arc::new(Start::default());
    let finished = Arc::new(AtomicUsize::new(0));
    // Producers and consumers alternate over the CPUs, so that a machine with as many
    // CPUs as threads gives each its own and a smaller one shares them out evenly.
    let mut order = 0;
    let mut next_cpu = || {
        order += 1;
        ctx.cpus.worker(order - 1)
    };
    let mut senders: Vec<Peer<()>> = Vec::new();
    let mut receivers: Vec<Peer<Tally>> = Vec::new();
    for k in 0..producers.max(consumers) {
        if k < producers {
            let (tx, start, finished) = (tx.clone(), start.clone(), finished.clone());
            senders.push(ctx.spawn_on(next_cpu(), "producer", move || {
                start.wait();
                produce::<Q>(&tx, k, per, &finished, producers, consumers)
            }));
        }
        if k < consumers {
            let (rx, start) = (rx.clone(), start.clone());
            receivers.push(ctx.spawn_on(next_cpu(), "consumer", move || {
                start.wait();
                consume::<Q>(&rx, producers)
            }));
        }
    }
    drop((tx, rx));
    let t0 = start.go(producers + consumers);
    let mut pinned = true;
    for s in senders {
        pinned &= s.join().1;
    }
    let mut tallies = Vec::with_capacity(consumers);
    for r in receivers {
        let (tally, p) = r.join();
        pinned &= p;
        tallies.push(tally);
    }
    check_tallies(&tallies, producers as u64, per)?;
    let end = tallies.iter().map(|t| t.end).max().unwrap_or(t0);
    Ok((producers as u64 * per, end.saturating_sub(t0), pinned))
}

/// A row of `P` producers and `C` consumers over `Q`: the plan's runs.
pub fn threads<Q: Queue, const P: usize, const C: usize>(ctx: &Ctx) -> Result<Measured> {
    let mut runs = Vec::new();
    let mut pinned = true;
    let futex_before = futex_syscalls();
    for _ in 0..ctx.plan.trials {
        let (messages, nanos, p) = run::<Q>(ctx, P, C)?;
        pinned &= p;
        runs.push((messages, nanos));
    }
    let futex = futex_syscalls() - futex_before;
    Ok(Measured::throughput(runs, futex, pinned).with_threads(P + C))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Numbers, Plan};
    use crate::pin::Cpus;
    use crate::scenarios::{ParentSide, Scenario, Size};
    use std::time::Duration;

    /// Runs `run` as a row with 2 runs of `count` messages.
    fn small(count: u64, run: ParentSide) -> Measured {
        crate::within(Duration::from_secs(60), move || {
            let scenario = Scenario {
                name: "mpmc/test/threads",
                about: "",
                reference: None,
                counts_futex: true,
                size: Size::Mpmc,
                run,
                child: None,
                recheck_of: None,
                opt_in: None,
            };
            let cpus = Cpus::choose();
            let ctx = Ctx {
                scenario: &scenario,
                index: 0,
                plan: Plan {
                    warm: 0,
                    count,
                    frame: 0,
                    trials: 2,
                },
                cpus: &cpus,
                main_pinned: false,
            };
            run(&ctx).unwrap()
        })
    }

    fn messages(m: &Measured) -> u64 {
        match &m.numbers {
            Numbers::Throughput(runs) => runs.iter().map(|r| r.0).sum(),
            _ => panic!("not a throughput row"),
        }
    }

    #[test]
    fn every_queue_delivers_every_message_once() {
        let rows: [ParentSide; 10] = [
            threads::<ArrayQueueSnooze, 1, 1>,
            threads::<ArrayQueueSnooze, 2, 3>,
            threads::<RingportBlocking, 1, 1>,
            threads::<RingportBlocking, 3, 2>,
            threads::<RingportSnooze, 1, 1>,
            threads::<RingportSnooze, 2, 2>,
            threads::<CrossbeamChannel, 1, 1>,
            threads::<CrossbeamChannel, 2, 2>,
            threads::<Flume, 1, 1>,
            threads::<Flume, 2, 2>,
        ];
        for run in rows {
            let m = small(6 * 4096, run);
            assert_eq!(messages(&m), 2 * 6 * 4096);
            assert!(m.threads.is_some_and(|t| t >= 2));
        }
    }

    #[test]
    fn a_consumer_catches_reordered_repeated_or_foreign_messages() {
        let mut c = OrderCheck::new(2);
        c.take(0).unwrap();
        c.take(1 << PRODUCER_SHIFT).unwrap();
        c.take(2).unwrap();
        assert!(c.take(1).unwrap_err().to_string().contains("producer 0"));
        assert!(c.take(2).is_err(), "a repeat");
        assert!(c.take(2 << PRODUCER_SHIFT).is_err(), "no producer 2");
        c.take(3).unwrap();
    }

    #[test]
    fn tallies_catch_a_lost_or_swapped_message() {
        let tally = |values: &[u64]| {
            let mut c = OrderCheck::new(2);
            values.iter().for_each(|&v| c.take(v).unwrap());
            c.finish(0)
        };
        let p1 = 1 << PRODUCER_SHIFT;
        let whole = [tally(&[0, 1, p1 + 1, p1 + 2]), tally(&[p1, 2])];
        check_tallies(&whole, 2, 3).unwrap();
        let lost = [tally(&[0, 1, p1 + 1]), tally(&[p1, 2])];
        assert!(check_tallies(&lost, 2, 3).is_err());
        // Right count, wrong message: producer 0's 2 twice, producer 1's 2 never.
        let swapped = [tally(&[0, 1, 2, p1 + 1]), tally(&[p1, 2])];
        assert!(check_tallies(&swapped, 2, 3).is_err());
    }

    #[test]
    fn checksum_matches_adding_up() {
        for (producers, per) in [(1, 1), (1, 7), (2, 8), (3, 5), (8, 1 << 20)] {
            let direct = (0..producers).fold(0u64, |s, p| {
                (0..per).fold(s, |s, i| s.wrapping_add(p << PRODUCER_SHIFT | i))
            });
            assert_eq!(checksum(producers, per), direct, "{producers} x {per}");
        }
    }
}
