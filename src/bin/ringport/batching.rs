//! The batching rows (issue 6): a [`MessageQueue`] of batch size `B` streams messages to a
//! [`BatchReceiver`] on the other CPU, at `B` of 1, 16 and 100.
//!
//! The producer enqueues the plan's messages of [`MESSAGE`] bytes, waiting with
//! `enqueue_timeout` while the queue is full, and closes the queue (which flushes it);
//! the batch delay is long enough that every batch fills up but the last. The consumer
//! receives whole batches, each one frame and so one publish, and checks every message:
//! message `i` carries `i` and `!i`, in order, exactly the plan's count, no batch larger
//! than `B`, and nothing after the last. The rate counts messages delivered, timed by
//! the consumer from the end of the warm-up; the report shows the messages each frame
//! carried (`B` when every batch was full).

use crate::bench::{Ctx, Measured, Plan};
use crate::tput::Marks;
use crate::Result;
use ringport::atomics::futex_syscalls;
use ringport::queue::{BatchReceiver, MessageQueue, QueueOptions};
use ringport::{MessageChannel, RecvError};
use std::time::Duration;

/// Bytes per message.
pub const MESSAGE: usize = 16;
/// The batch delay: far longer than a run, so only `B` messages (or the close) send a
/// batch.
const DELAY: Duration = Duration::from_secs(10);
/// How long an `enqueue` waits for room before the row fails.
const STALL: Duration = Duration::from_secs(30);

/// Message `i`.
#[inline(always)]
fn message(i: u64) -> [u8; MESSAGE] {
    let mut m = [0; MESSAGE];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m[8..].copy_from_slice(&(!i).to_le_bytes());
    m
}

/// The options of a queue of batch size `batch`.
fn options(batch: usize) -> QueueOptions {
    QueueOptions {
        batch_size: batch,
        batch_delay: DELAY,
        max_queue_size: QueueOptions::default().max_queue_size.max(batch),
        ..QueueOptions::default()
    }
}

/// Enqueues the plan's messages and closes the queue.
pub fn produce(mut queue: MessageQueue, plan: &Plan) -> Result<()> {
    for i in 0..plan.total() {
        queue.enqueue_timeout(&message(i), STALL)?;
    }
    Ok(queue.close()?)
}

/// What a consumer saw: the [`Marks`] readings and the frames (batches) it received.
pub struct Consumed {
    /// The [`Marks`] readings.
    pub readings: Vec<u64>,
    /// Frames received.
    pub frames: u64,
}

/// Receives and checks the plan's messages in batches of at most `batch`.
pub fn consume(rx: &mut BatchReceiver, plan: &Plan, batch: usize) -> Result<Consumed> {
    let total = plan.total();
    let mut marks = Marks::new(plan);
    marks.passed(0);
    let (mut next, mut frames) = (0u64, 0u64);
    while next < total {
        let b = rx.recv()?;
        frames += 1;
        if b.is_empty() || b.len() > batch {
            return Err(format!("frame {frames}: a batch of {} messages", b.len()).into());
        }
        for msg in &b {
            if msg != message(next) {
                return Err(format!("message {next}: received {msg:02x?}").into());
            }
            next += 1;
        }
        marks.passed(next);
    }
    let readings = marks.finish();
    match rx.recv() {
        Err(RecvError::Disconnected) => Ok(Consumed { readings, frames }),
        Ok(b) => Err(format!("a batch of {} messages after the last", b.len()).into()),
        Err(e) => Err(e.into()),
    }
}

/// A batching row: `B` messages per batch, producer on this thread, consumer on the other
/// CPU; reports the messages per frame beside the rate.
pub fn threads<const B: usize>(ctx: &Ctx) -> Result<Measured> {
    let plan = ctx.plan;
    let (mut runs, mut futex, mut pinned) = (Vec::new(), 0, ctx.main_pinned);
    let (mut messages, mut frames) = (0, 0);
    for _ in 0..plan.trials {
        let ch = MessageChannel::new();
        let queue = MessageQueue::new(ch.port1, options(B))?;
        let futex_before = futex_syscalls();
        let peer = ctx.spawn_peer(BatchReceiver::new(ch.port2), move |rx| {
            consume(rx, &plan, B)
        });
        ctx.or_abort(produce(queue, &plan));
        let (consumed, peer_pinned) = peer.join();
        futex += futex_syscalls() - futex_before;
        pinned &= peer_pinned;
        runs.push(Marks::run(&consumed.readings)?);
        messages += plan.total();
        frames += consumed.frames;
    }
    Ok(Measured::throughput(runs, futex, pinned).with_per_frame(messages as f64 / frames as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(warm: u64, count: u64) -> Plan {
        Plan {
            warm,
            count,
            frame: 0,
            trials: 1,
        }
    }

    /// Streams `p` through a queue of batch size `batch`; returns (messages timed,
    /// frames).
    fn stream(p: Plan, batch: usize) -> (u64, u64) {
        crate::within(std::time::Duration::from_secs(60), move || {
            let ch = MessageChannel::new();
            let queue = MessageQueue::new(ch.port1, options(batch)).unwrap();
            let mut rx = BatchReceiver::new(ch.port2);
            let consumer = std::thread::spawn(move || consume(&mut rx, &p, batch).unwrap());
            produce(queue, &p).unwrap();
            let c = consumer.join().unwrap();
            (Marks::run(&c.readings).unwrap().0, c.frames)
        })
    }

    #[test]
    fn every_message_arrives_in_order_in_full_batches() {
        assert_eq!(stream(plan(100, 1000), 1), (1000, 1100));
        // 1100 messages: 68 batches of 16, then the close sends the last 12.
        assert_eq!(stream(plan(100, 1000), 16).1, 69);
        assert_eq!(stream(plan(100, 1000), 100).1, 11);
    }

    #[test]
    fn a_missing_message_fails_the_row() {
        let ch = MessageChannel::new();
        let mut queue = MessageQueue::new(ch.port1, options(4)).unwrap();
        let mut rx = BatchReceiver::new(ch.port2);
        for i in [0, 1, 3] {
            queue.enqueue(&message(i)).unwrap();
        }
        queue.close().unwrap();
        let e = consume(&mut rx, &plan(0, 3), 4).err().unwrap();
        assert!(e.to_string().contains("message 2"), "{e}");
    }
}
