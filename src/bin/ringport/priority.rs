//! The priority rows (issue 6): the latency of HIGH messages sent at a steady rate through
//! a [`PriorityMessageQueue`], alone and while the same sender floods the LOW level.
//!
//! Every row is two parties, each on a CPU of its own: one sending thread, which owns the
//! [`PrioritySender`], and the measuring thread, which receives. The sender sends HIGH
//! message `i` every [`TICK`], carrying `i` and the `CLOCK_MONOTONIC` time taken right
//! before its send; the receiver records, per HIGH message, the time from that stamp to
//! its receive returning. Between two HIGH sends the sender of a flood row sends LOW
//! messages of [`LOW_BYTES`] as fast as the LOW ring takes them, so the receiver always
//! has LOW messages waiting and is in the middle of delivering one when a HIGH arrives;
//! the sender of an alone row busy-waits on the clock instead. Both rows thus run the same
//! two threads, neither ever sleeps, and they differ only by the flood, so the ratio shows
//! what the flood costs a HIGH message. A third thread, or two senders sharing the queue
//! behind a lock, would put two threads on one of the two CPUs here and make the ratio
//! measure the scheduler and the lock. The sender reads the clock after every LOW send
//! (a vDSO call, tens of nanoseconds), so a HIGH message is at most one LOW send late,
//! which its stamp, taken after, does not count.
//!
//! The receiver polls for up to [`SPIN`] before it sleeps, more than a tick, so that it
//! never sleeps in either row and the ratio shows what the flood costs a HIGH message
//! rather than what a wake-up costs; the `-sleep` row keeps the default budget (20 µs),
//! as a program that leaves it alone gets, where every HIGH message of a quiet queue
//! wakes the receiver.
//!
//! The receiver's own share of the row spent waiting for a CPU is reported beside its
//! numbers: a spinning receiver that other processes keep off its CPU makes HIGH messages
//! wait for the scheduler, not for the queue.
//!
//! Every message is checked: the HIGH ones arrive in order, each once, exactly the plan's
//! count; the LOW ones in order, as many as the flood sent; none expired (deadlines are a
//! minute, and the sender's report ring must be empty).

use crate::bench::{Ctx, Measured};
use crate::machine::ThreadSched;
use crate::tput::now_ns;
use crate::Result;
use hdrhistogram::Histogram;
use ringport::atomics::futex_syscalls;
use ringport::queue::{
    Level, PriorityError, PriorityMessageQueue, PriorityOptions, PrioritySender,
};
use ringport::{RecvError, SendError};
use std::hint::spin_loop;
use std::time::Duration;

/// Time between two HIGH messages.
pub const TICK: Duration = Duration::from_micros(100);
/// [`TICK`] in nanoseconds, as [`now_ns`] counts.
const TICK_NS: u64 = TICK.as_nanos() as u64;
/// The receiver's spin budget in the rows whose receiver never sleeps.
pub const SPIN: Duration = Duration::from_millis(1);
/// Bytes of a LOW message.
pub const LOW_BYTES: usize = 64;
/// Every level's deadline: far beyond a row, so nothing expires.
const DEADLINE: Duration = Duration::from_secs(60);

/// HIGH message `i`, stamped `at`.
fn high(i: u64, at: u64) -> [u8; 16] {
    let mut m = [0; 16];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m[8..].copy_from_slice(&at.to_le_bytes());
    m
}

/// LOW message `i`: `i`, then its low byte over the rest.
fn low(i: u64) -> [u8; LOW_BYTES] {
    let mut m = [i as u8; LOW_BYTES];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m
}

/// The word at `at` of `bytes`, little-endian.
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// How a row drives the queue.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Whether the sender floods the LOW level between HIGH messages.
    pub flood: bool,
    /// The receiver's spin budget.
    pub spin: Duration,
}

/// Sends `total` HIGH messages one [`TICK`] apart and, between them if `flood`, LOW
/// messages as fast as the LOW ring takes them; returns how many LOW messages it sent.
fn send(sender: &mut PrioritySender, flood: bool, total: u64) -> Result<u64> {
    let mut lows = 0;
    let mut due = now_ns();
    for i in 0..total {
        due += TICK_NS;
        while now_ns() < due {
            if !flood {
                spin_loop();
                continue;
            }
            match sender.try_send(Level::LOW, &low(lows)) {
                Ok(()) => lows += 1,
                Err(PriorityError::Send(SendError::Full)) => spin_loop(),
                Err(e) => return Err(e.into()),
            }
        }
        sender.send(Level::HIGH, &high(i, now_ns()))?;
    }
    Ok(lows)
}

/// The sending side: sends as [`send`] does, checks that nothing expired and drops the
/// sender, which ends the receiver's loop. Returns the LOW messages sent.
fn send_all(mut sender: PrioritySender, flood: bool, total: u64) -> Result<u64> {
    let lows = send(&mut sender, flood, total)?;
    match sender.try_recv_expired() {
        Err(RecvError::Empty) => Ok(lows),
        Ok(x) => Err(format!("a {} message expired after {:?}", x.level, x.waited).into()),
        Err(e) => Err(e.into()),
    }
}

/// What the receiver saw: HIGH latencies and the LOW messages received, with how long
/// the flood lasted.
pub struct Received {
    /// Nanoseconds from each recorded HIGH message's stamp to its receive.
    pub hist: Histogram<u64>,
    /// LOW messages received.
    pub lows: u64,
    /// Nanoseconds from the first message received to the last HIGH one.
    pub span_ns: u64,
}

/// Receives until the sender closes, checking every message; records the latency of the
/// HIGH messages after the first `warm`.
pub fn receive(
    rx: &mut ringport::queue::PriorityReceiver,
    warm: u64,
    total: u64,
) -> Result<Received> {
    let mut hist = Histogram::new_with_bounds(1, 100_000_000_000, 3)?;
    let (mut highs, mut lows) = (0u64, 0u64);
    let (mut first, mut last_high) = (None, 0);
    loop {
        let d = match rx.recv() {
            Ok(d) => d,
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        };
        let now = now_ns();
        first.get_or_insert(now);
        match d.level {
            Level::HIGH => {
                let (seq, at) = (word(d.payload, 0), word(d.payload, 8));
                if d.payload.len() != 16 || seq != highs {
                    return Err(format!("HIGH message {highs}: received {:02x?}", d.payload).into());
                }
                if highs >= warm {
                    hist.saturating_record(now.saturating_sub(at));
                }
                highs += 1;
                last_high = now;
            }
            Level::LOW => {
                if d.payload != low(lows) {
                    return Err(format!("LOW message {lows}: received {:02x?}", d.payload).into());
                }
                lows += 1;
            }
            other => return Err(format!("a message at {other}, which nobody sends").into()),
        }
    }
    if highs != total {
        return Err(format!("{highs} HIGH messages instead of {total}").into());
    }
    let span_ns = last_high.saturating_sub(first.unwrap_or(last_high));
    Ok(Received {
        hist,
        lows,
        span_ns,
    })
}

/// A priority queue of the default three levels, every deadline a minute.
fn queue() -> PriorityMessageQueue {
    PriorityMessageQueue::new(PriorityOptions {
        deadlines: vec![DEADLINE; 3],
        ..PriorityOptions::default()
    })
}

/// A priority row: the sender on the other CPU, the receiver here.
pub fn threads(ctx: &Ctx, setup: Setup) -> Result<Measured> {
    let PriorityMessageQueue {
        sender,
        mut receiver,
    } = queue();
    receiver.set_spin_budget(setup.spin);
    let (plan, cpu) = (ctx.plan, ctx.cpus.b());
    let futex_before = futex_syscalls();
    let senders = ctx.spawn_on(cpu, "sender", move || {
        send_all(sender, setup.flood, plan.total())
    });
    let sched = ThreadSched::now();
    let got = ctx.or_abort(receive(&mut receiver, plan.warm, plan.total()));
    let cpu_wait = sched
        .zip(ThreadSched::now())
        .and_then(|(a, b)| a.waiting_share_since(&b));
    let (flooded, pinned) = senders.join();
    let futex = futex_syscalls() - futex_before;
    if got.lows != flooded {
        return Err(format!("{} LOW messages received of {flooded} sent", got.lows).into());
    }
    let m = Measured::latency(got.hist, futex, ctx.main_pinned && pinned)
        .with_cpu_wait(cpu_wait)
        .with_threads(2);
    Ok(if setup.flood {
        m.with_peer_rate(got.lows as f64 * 1e9 / got.span_ns.max(1) as f64)
    } else {
        m
    })
}

/// HIGH messages alone, the receiver never asleep.
pub fn alone(ctx: &Ctx) -> Result<Measured> {
    threads(
        ctx,
        Setup {
            flood: false,
            spin: SPIN,
        },
    )
}

/// HIGH messages beside a LOW flood, the receiver never asleep.
pub fn flooded(ctx: &Ctx) -> Result<Measured> {
    threads(
        ctx,
        Setup {
            flood: true,
            spin: SPIN,
        },
    )
}

/// HIGH messages alone, the receiver with its default spin budget.
pub fn alone_sleeping(ctx: &Ctx) -> Result<Measured> {
    threads(
        ctx,
        Setup {
            flood: false,
            spin: Duration::from_micros(20),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(flood: bool, total: u64) -> (u64, u64) {
        crate::within(Duration::from_secs(60), move || {
            let PriorityMessageQueue {
                sender,
                mut receiver,
            } = queue();
            let senders = std::thread::spawn(move || send_all(sender, flood, total).unwrap());
            let got = receive(&mut receiver, 10, total).unwrap();
            assert_eq!(got.lows, senders.join().unwrap());
            (got.hist.len(), got.lows)
        })
    }

    #[test]
    fn every_high_message_is_timed_and_every_low_one_arrives() {
        assert_eq!(run(false, 200), (190, 0));
        let (timed, lows) = run(true, 200);
        assert_eq!(timed, 190);
        assert!(lows > 0);
    }

    #[test]
    fn a_lost_high_message_fails_the_row() {
        let PriorityMessageQueue {
            mut sender,
            mut receiver,
        } = queue();
        for i in [0, 2] {
            sender.send(Level::HIGH, &high(i, now_ns())).unwrap();
        }
        drop(sender);
        let e = receive(&mut receiver, 0, 3).err().unwrap();
        assert!(e.to_string().contains("HIGH message 1"), "{e}");
    }

    #[test]
    fn low_messages_out_of_order_fail_the_row() {
        let PriorityMessageQueue {
            mut sender,
            mut receiver,
        } = queue();
        sender.send(Level::LOW, &low(1)).unwrap();
        drop(sender);
        let e = receive(&mut receiver, 0, 0).err().unwrap();
        assert!(e.to_string().contains("LOW message 0"), "{e}");
    }
}
