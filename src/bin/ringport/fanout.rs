//! Broadcast fan-out: one publisher thread, `N` subscriber threads, `u64` messages, each
//! delivered to every subscriber.
//!
//! The publisher (the measuring thread) publishes `0..total` as fast as the path takes
//! them. Every subscriber checks every message: the number due, which starts at 0 and
//! goes up by one per message, and by `n` after a reported lag of `n` messages. Lossless
//! paths (ringport under backpressure, a crossbeam channel per subscriber) must never
//! lag; overwriting ones (ringport under overwrite, tokio's broadcast channel) report
//! each loss exactly, so the count still holds. A subscriber stops at the last message,
//! which no later one can overwrite, and its deliveries and losses must add up to the
//! total. Losses are reported beside the rate.
//!
//! A run times from a start signal that the subscribers, already spawned, pinned and
//! subscribed, wait for, to the last subscriber's last message; its rate is messages
//! delivered (all subscribers together) per second. One fresh path per run. Subscribers
//! receive with the blocking calls, since on a small machine they share CPUs: the
//! publisher keeps the first CPU and the subscribers take the others in turn.
//!
//! The publish-time rows time the publisher instead, in batches of [`state::BATCH`]
//! publishes under overwrite, while the subscribers read: what subscribers reading the
//! ring cost a publisher that never waits for them.

use crate::bench::{Ctx, Measured, Peer};
use crate::queues::Start;
use crate::scenarios::SLOTS;
use crate::state::BATCH;
use crate::tput::now_ns;
use crate::Result;
use hdrhistogram::Histogram;
use ringport::atomics::futex_syscalls;
use ringport::broadcast::{self, BroadcastOptions, Overflow, Publisher, Subscriber};
use ringport::RecvError;
use std::sync::Arc;
use std::time::Instant;

/// What a subscriber's receive got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Got {
    /// A message.
    Message(u64),
    /// The path overwrote this many messages before the subscriber read them.
    Lagged(u64),
}

/// A one-to-many path of `u64` messages, as the rows drive it.
pub trait Fanout {
    /// The publishing end.
    type Pub: Send + 'static;
    /// A subscribing end.
    type Sub: Send + 'static;
    /// Whether the path may overwrite messages a subscriber has not read.
    const LOSSY: bool;
    /// A path of [`SLOTS`] messages with `subscribers` subscribers.
    fn make(subscribers: usize) -> Result<(Self::Pub, Vec<Self::Sub>)>;
    /// Publishes `v` to every subscriber.
    fn publish(p: &mut Self::Pub, v: u64) -> Result<()>;
    /// The next message, or a lag, waiting while there is none.
    fn recv(s: &mut Self::Sub) -> Result<Got>;
}

/// A ringport broadcast ring of [`SLOTS`] messages of 8 bytes under `overflow`, with
/// `subscribers` subscribers.
fn ring(overflow: Overflow, subscribers: usize) -> Result<(Publisher, Vec<Subscriber>)> {
    let p = broadcast::channel(BroadcastOptions {
        capacity: SLOTS,
        max_message: 8,
        overflow,
        ..Default::default()
    });
    let subs = (0..subscribers)
        .map(|_| p.subscribe())
        .collect::<std::result::Result<_, _>>()?;
    Ok((p, subs))
}

/// Receives from a ringport subscriber.
#[inline(always)]
fn ring_recv(s: &mut Subscriber) -> Result<Got> {
    match s.recv() {
        Ok(bytes) => Ok(Got::Message(u64::from_le_bytes(
            bytes.try_into().map_err(|_| "message is not 8 bytes")?,
        ))),
        Err(RecvError::Lagged(n)) => Ok(Got::Lagged(n)),
        Err(e) => Err(e.into()),
    }
}

/// `ringport::broadcast` under [`Overflow::Overwrite`]: the publisher never waits.
pub struct RingOverwrite;

impl Fanout for RingOverwrite {
    type Pub = Publisher;
    type Sub = Subscriber;
    const LOSSY: bool = true;

    fn make(subscribers: usize) -> Result<(Publisher, Vec<Subscriber>)> {
        ring(Overflow::Overwrite, subscribers)
    }

    #[inline]
    fn publish(p: &mut Publisher, v: u64) -> Result<()> {
        p.publish(&v.to_le_bytes())?;
        Ok(())
    }

    #[inline]
    fn recv(s: &mut Subscriber) -> Result<Got> {
        ring_recv(s)
    }
}

/// `ringport::broadcast` under [`Overflow::Backpressure`]: the publisher waits for the
/// slowest subscriber.
pub struct RingBackpressure;

impl Fanout for RingBackpressure {
    type Pub = Publisher;
    type Sub = Subscriber;
    const LOSSY: bool = false;

    fn make(subscribers: usize) -> Result<(Publisher, Vec<Subscriber>)> {
        ring(Overflow::Backpressure, subscribers)
    }

    #[inline]
    fn publish(p: &mut Publisher, v: u64) -> Result<()> {
        p.publish(&v.to_le_bytes())?;
        Ok(())
    }

    #[inline]
    fn recv(s: &mut Subscriber) -> Result<Got> {
        ring_recv(s)
    }
}

/// The reference: `tokio::sync::broadcast` of [`SLOTS`] messages, `send` and
/// `blocking_recv` (no runtime). It overwrites, as ringport's overwrite ring does.
pub struct Tokio;

impl Fanout for Tokio {
    type Pub = tokio::sync::broadcast::Sender<u64>;
    type Sub = tokio::sync::broadcast::Receiver<u64>;
    const LOSSY: bool = true;

    fn make(subscribers: usize) -> Result<(Self::Pub, Vec<Self::Sub>)> {
        let (tx, first) = tokio::sync::broadcast::channel(SLOTS);
        let mut subs = vec![first];
        subs.extend((1..subscribers).map(|_| tx.subscribe()));
        Ok((tx, subs))
    }

    #[inline]
    fn publish(p: &mut Self::Pub, v: u64) -> Result<()> {
        p.send(v)?;
        Ok(())
    }

    #[inline]
    fn recv(s: &mut Self::Sub) -> Result<Got> {
        use tokio::sync::broadcast::error::RecvError;
        match s.blocking_recv() {
            Ok(v) => Ok(Got::Message(v)),
            Err(RecvError::Lagged(n)) => Ok(Got::Lagged(n)),
            Err(e) => Err(e.into()),
        }
    }
}

/// One bounded crossbeam channel of [`SLOTS`] messages per subscriber; the publisher
/// sends each message to every channel in turn, waiting where one is full.
pub struct CrossbeamChannels;

impl Fanout for CrossbeamChannels {
    type Pub = Vec<crossbeam_channel::Sender<u64>>;
    type Sub = crossbeam_channel::Receiver<u64>;
    const LOSSY: bool = false;

    fn make(subscribers: usize) -> Result<(Self::Pub, Vec<Self::Sub>)> {
        Ok((0..subscribers)
            .map(|_| crossbeam_channel::bounded(SLOTS))
            .unzip())
    }

    #[inline]
    fn publish(p: &mut Self::Pub, v: u64) -> Result<()> {
        for tx in p.iter() {
            tx.send(v)?;
        }
        Ok(())
    }

    #[inline]
    fn recv(s: &mut Self::Sub) -> Result<Got> {
        Ok(Got::Message(s.recv()?))
    }
}

/// What one subscriber received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Messages delivered.
    pub delivered: u64,
    /// Messages lost to lags.
    pub lost: u64,
    /// The clock reading at the last message.
    pub end: u64,
}

/// Checks a subscriber's messages as they come.
pub struct SeqCheck {
    /// The number due next.
    next: u64,
    total: u64,
    lossy: bool,
    delivered: u64,
    lost: u64,
}

impl SeqCheck {
    /// A check of `0..total` on a path that may overwrite if `lossy`.
    pub fn new(total: u64, lossy: bool) -> SeqCheck {
        SeqCheck {
            next: 0,
            total,
            lossy,
            delivered: 0,
            lost: 0,
        }
    }

    /// Takes what a receive got; true once the last message has arrived.
    #[inline(always)]
    pub fn take(&mut self, got: Got) -> Result<bool> {
        match got {
            Got::Message(v) if v == self.next => {
                self.next += 1;
                self.delivered += 1;
                Ok(self.next == self.total)
            }
            Got::Message(v) => Err(format!("received {v} where {} was due", self.next).into()),
            Got::Lagged(n) if self.lossy && n > 0 && self.next + n < self.total => {
                self.next += n;
                self.lost += n;
                Ok(false)
            }
            Got::Lagged(n) => Err(format!(
                "lagged {n} messages at {} of {} on a {} path",
                self.next,
                self.total,
                if self.lossy { "lossy" } else { "lossless" }
            )
            .into()),
        }
    }

    /// What the subscriber received, with the clock reading `end`.
    pub fn finish(&self, end: u64) -> Received {
        Received {
            delivered: self.delivered,
            lost: self.lost,
            end,
        }
    }
}

/// A subscriber: receives and checks `0..total`.
fn subscriber<F: Fanout>(s: &mut F::Sub, total: u64) -> Result<Received> {
    let mut check = SeqCheck::new(total, F::LOSSY);
    while !check.take(F::recv(s)?)? {}
    Ok(check.finish(now_ns()))
}

/// Starts a subscriber thread per end, each waiting for `start` and then receiving
/// `0..total`; the subscribers take every CPU but the publisher's in turn.
fn spawn_subscribers<F: Fanout>(
    ctx: &Ctx,
    subs: Vec<F::Sub>,
    start: &Arc<Start>,
    total: u64,
) -> Vec<Peer<Received>> {
    subs.into_iter()
        .enumerate()
        .map(|(k, mut s)| {
            let start = start.clone();
            ctx.spawn_on(ctx.cpus.beside_a(k), "subscriber", move || {
                start.wait();
                subscriber::<F>(&mut s, total)
            })
        })
        .collect()
}

/// Waits for the subscribers; checks that each accounted for all `total` messages.
fn join_subscribers(subs: Vec<Peer<Received>>, total: u64) -> Result<(Vec<Received>, bool)> {
    let mut pinned = true;
    let mut got = Vec::with_capacity(subs.len());
    for s in subs {
        let (r, p) = s.join();
        if r.delivered + r.lost != total {
            return Err(format!(
                "a subscriber received {} and lost {} of {total} messages",
                r.delivered, r.lost
            )
            .into());
        }
        pinned &= p;
        got.push(r);
    }
    Ok((got, pinned))
}

/// A fan-out row over `F` with `N` subscribers: the plan's runs, each timed from the
/// start signal to the last subscriber's last message, counting deliveries.
pub fn threads<F: Fanout, const N: usize>(ctx: &Ctx) -> Result<Measured> {
    let total = ctx.plan.total();
    let mut runs = Vec::new();
    let mut lost = 0;
    let mut pinned = ctx.main_pinned;
    let futex_before = futex_syscalls();
    for _ in 0..ctx.plan.trials {
        let (mut publisher, subs) = F::make(N)?;
        let start = Arc::new(Start::default());
        let subs = spawn_subscribers::<F>(ctx, subs, &start, total);
        let t0 = start.go(N);
        for v in 0..total {
            ctx.or_abort(F::publish(&mut publisher, v));
        }
        let (got, p) = join_subscribers(subs, total)?;
        drop(publisher);
        pinned &= p;
        let end = got.iter().map(|r| r.end).max().unwrap_or(t0);
        runs.push((
            got.iter().map(|r| r.delivered).sum(),
            end.saturating_sub(t0),
        ));
        lost += got.iter().map(|r| r.lost).sum::<u64>();
    }
    let futex = futex_syscalls() - futex_before;
    Ok(Measured::throughput(runs, futex, pinned)
        .with_threads(N + 1)
        .with_lost(lost))
}

/// A histogram of picoseconds per publish, 1 ps to 100 s.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000_000, 3).expect("valid histogram bounds")
}

/// A publish-time row: ringport under overwrite with `N` subscribers reading; the
/// publisher times the plan's batches of [`BATCH`] publishes, the warm-up's unrecorded.
pub fn publish_time<const N: usize>(ctx: &Ctx) -> Result<Measured> {
    let plan = ctx.plan;
    let total = plan.total() * BATCH as u64;
    let (mut publisher, subs) = RingOverwrite::make(N)?;
    let start = Arc::new(Start::default());
    let futex_before = futex_syscalls();
    let subs = spawn_subscribers::<RingOverwrite>(ctx, subs, &start, total);
    start.go(N);
    let mut hist = histogram();
    let mut v = 0;
    for b in 0..plan.total() {
        let t0 = Instant::now();
        for _ in 0..BATCH {
            ctx.or_abort(RingOverwrite::publish(&mut publisher, v));
            v += 1;
        }
        let ps = t0.elapsed().as_nanos() * 1000 / BATCH as u128;
        if b >= plan.warm {
            hist.saturating_record(ps.try_into().unwrap_or(u64::MAX));
        }
    }
    let (got, pinned) = join_subscribers(subs, total)?;
    drop(publisher);
    let futex = futex_syscalls() - futex_before;
    Ok(
        Measured::per_op(hist, BATCH as u64, futex, ctx.main_pinned && pinned)
            .with_threads(N + 1)
            .with_lost(got.iter().map(|r| r.lost).sum()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Numbers, Plan};
    use crate::pin::Cpus;
    use crate::scenarios::{ParentSide, Scenario, Size};
    use std::time::Duration;

    /// Runs `run` as a row of `plan`.
    fn small(plan: Plan, run: ParentSide) -> Measured {
        crate::within(Duration::from_secs(60), move || {
            let scenario = Scenario {
                name: "broadcast/test/threads",
                about: "",
                reference: None,
                counts_futex: true,
                size: Size::Fanout(1),
                run,
                child: None,
                recheck_of: None,
                opt_in: None,
            };
            let cpus = Cpus::choose();
            let ctx = Ctx {
                scenario: &scenario,
                index: 0,
                plan,
                cpus: &cpus,
                main_pinned: false,
            };
            run(&ctx).unwrap()
        })
    }

    #[test]
    fn every_path_delivers_or_accounts_for_every_message() {
        let plan = Plan {
            warm: 0,
            count: 5 * 4096,
            frame: 0,
            trials: 2,
        };
        let rows: [(ParentSide, u64, bool); 8] = [
            (threads::<Tokio, 1>, 1, true),
            (threads::<Tokio, 3>, 3, true),
            (threads::<RingOverwrite, 1>, 1, true),
            (threads::<RingOverwrite, 3>, 3, true),
            (threads::<RingBackpressure, 1>, 1, false),
            (threads::<RingBackpressure, 3>, 3, false),
            (threads::<CrossbeamChannels, 1>, 1, false),
            (threads::<CrossbeamChannels, 3>, 3, false),
        ];
        for (run, subs, lossy) in rows {
            let m = small(plan, run);
            let Numbers::Throughput(runs) = &m.numbers else {
                panic!("not a throughput row")
            };
            let delivered: u64 = runs.iter().map(|r| r.0).sum();
            let lost = m.lost.unwrap();
            assert_eq!(delivered + lost, 2 * 5 * 4096 * subs);
            if !lossy {
                assert_eq!(lost, 0);
            }
            assert_eq!(m.threads, Some(subs as usize + 1));
        }
    }

    #[test]
    fn publish_time_rows_time_every_batch() {
        let plan = Plan {
            warm: 10,
            count: 100,
            frame: 0,
            trials: 1,
        };
        for run in [publish_time::<1>, publish_time::<3>] {
            let m = small(plan, run);
            let Numbers::PerOp { hist, batch } = &m.numbers else {
                panic!("not a per-operation row")
            };
            assert_eq!((hist.len(), *batch), (100, BATCH as u64));
        }
    }

    #[test]
    fn subscribers_catch_gaps_repeats_and_lags_where_none_may_be() {
        let mut c = SeqCheck::new(10, true);
        assert!(!c.take(Got::Message(0)).unwrap());
        assert!(!c.take(Got::Lagged(3)).unwrap());
        assert!(c.take(Got::Message(3)).is_err(), "a lag of 3 skips to 4");
        let mut c = SeqCheck::new(10, true);
        c.take(Got::Message(0)).unwrap();
        c.take(Got::Lagged(3)).unwrap();
        c.take(Got::Message(4)).unwrap();
        assert!(c.take(Got::Message(4)).is_err(), "a repeat");
        assert!(c.take(Got::Message(6)).is_err(), "a gap");
        assert!(c.take(Got::Lagged(9)).is_err(), "past the last message");
        assert!(c.take(Got::Lagged(0)).is_err(), "an empty lag");
        for v in 5..9 {
            assert!(!c.take(Got::Message(v)).unwrap());
        }
        assert!(c.take(Got::Message(9)).unwrap());
        let r = c.finish(0);
        assert_eq!((r.delivered, r.lost), (7, 3));
        let mut c = SeqCheck::new(10, false);
        c.take(Got::Message(0)).unwrap();
        assert!(c.take(Got::Lagged(1)).is_err(), "lossless paths never lag");
    }
}
