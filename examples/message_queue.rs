//! The web's `MessageQueue` pattern: instead of one `postMessage` per small message, the
//! sender collects messages and posts them in batches, sent when `batchSize` messages
//! are waiting or `batchDelay` after the first of them, with at most `maxQueueSize`
//! waiting; the worker's `onmessage` gets whole batches.
//!
//! ```js
//! queue = new MessageQueue(worker, { batchSize: 10, batchDelay: 16, maxQueueSize: 1000 });
//! queue.send(event);                 // throws 'Queue full' at maxQueueSize
//! // worker: onmessage = e => e.data.messages.forEach(handle);
//! ```
//!
//! Here a batch is one ring frame: one publish and at most one wake of the receiver,
//! however many messages it holds. The example runs the pattern three times:
//!
//! 1. between threads: 1 000 analytics events in batches of 10, then three stragglers
//!    that go out on their own after the batch delay;
//! 2. backpressure: with nobody reading, `enqueue` says `Full` once the ring and the
//!    queue are full, and `enqueue_timeout` gives up after its timeout;
//! 3. between processes: the example re-executes itself as `--child <name>`; the child
//!    opens a named port and sends 20 000 numbered messages through its own queue in
//!    batches of 100, and the parent checks that every one arrived, in order, in whole
//!    batches.
//!
//! Run with `cargo run --release --example message_queue`.

use ringport::queue::{BatchReceiver, MessageQueue, QueueError, QueueOptions};
use ringport::{MessageChannel, RecvError};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

/// How long either process waits for the other before it gives up.
const PATIENCE: Duration = Duration::from_secs(10);
const CHILD_MESSAGES: u32 = 20_000;
const CHILD_BATCH: usize = 100;

/// The worker's `onmessage`: counts batches and messages until the queue closes.
fn worker(mut rx: BatchReceiver) -> (usize, usize, Vec<String>) {
    let (mut batches, mut messages, mut last) = (0, 0, Vec::new());
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(batch) => {
                batches += 1;
                messages += batch.len();
                last = batch
                    .iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect();
            }
            Err(RecvError::Disconnected) => return (batches, messages, last),
            Err(e) => panic!("worker: {e}"),
        }
    }
}

fn between_threads() -> Result<(), Error> {
    println!("1. between threads");
    let ch = MessageChannel::new();
    let options = QueueOptions {
        batch_size: 10,
        batch_delay: Duration::from_millis(16),
        max_queue_size: 1000,
        ..QueueOptions::default()
    };
    let mut queue = MessageQueue::new(ch.port1, options)?;
    let rx = BatchReceiver::new(ch.port2);
    let handle = thread::spawn(move || worker(rx));
    for i in 0..1000 {
        queue.enqueue(format!("click {i}").as_bytes())?;
    }
    // Three stragglers: no tenth message comes, so the batch delay sends them.
    for what in ["scroll", "hover", "blur"] {
        queue.enqueue(what.as_bytes())?;
    }
    let start = Instant::now();
    while queue.queued() > 0 {
        thread::sleep(Duration::from_millis(1));
    }
    println!(
        "   the 3 stragglers went out {:?} after they were enqueued (batch delay 16 ms)",
        start.elapsed()
    );
    drop(queue); // flushes (nothing left) and closes the port
    let (batches, messages, last) = handle.join().expect("worker");
    println!("   worker got {messages} messages in {batches} batches; the last: {last:?}");
    // A thread preempted for longer than the delay may see an extra, partial batch.
    assert!(messages == 1003 && batches >= 101);
    Ok(())
}

fn backpressure() -> Result<(), Error> {
    println!("2. backpressure, with nobody reading");
    let ch = MessageChannel::with_capacity(1024);
    let options = QueueOptions {
        batch_size: 4,
        max_queue_size: 8,
        close_timeout: Duration::from_millis(10),
        ..QueueOptions::default()
    };
    let mut queue = MessageQueue::new(ch.port1, options)?;
    let _idle = ch.port2;
    let mut accepted = 0;
    let refusal = loop {
        match queue.enqueue(&[0; 64]) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
    };
    println!("   {accepted} accepted (the ring's worth, then 8 queued), then: {refusal}");
    assert_eq!(refusal, QueueError::Full);
    let waited = queue.enqueue_timeout(&[0; 64], Duration::from_millis(20));
    println!("   enqueue_timeout(20 ms): {}", waited.unwrap_err());
    assert_eq!(waited, Err(QueueError::Timeout));
    let closed = queue.close();
    println!("   close: {}", closed.unwrap_err());
    assert_eq!(closed, Err(QueueError::Unflushed { unpublished: 8 }));
    Ok(())
}

fn parent() -> Result<(), Error> {
    println!("3. between processes");
    let name = format!("mq-example-{}", std::process::id());
    let port = MessageChannel::create(&name, 64 * 1024)?;
    let mut rx = BatchReceiver::new(port);
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", &name])
        .spawn()?;
    let start = Instant::now();
    let (mut next, mut batches) = (0u32, 0);
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(batch) => {
                batches += 1;
                assert_eq!(batch.len(), CHILD_BATCH, "batches arrive whole");
                for msg in &batch {
                    assert_eq!(msg, next.to_le_bytes(), "messages arrive in order");
                    next += 1;
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let elapsed = start.elapsed();
    let status = child.wait()?;
    assert!(status.success(), "child failed: {status}");
    println!(
        "   parent got {next} messages from child {} in {batches} frames ({:.1} M messages/s)",
        child.id(),
        f64::from(next) / elapsed.as_secs_f64() / 1e6
    );
    Ok(())
}

fn child(name: &str) -> Result<(), Error> {
    let port = MessageChannel::open(name)?;
    let options = QueueOptions {
        batch_size: CHILD_BATCH,
        max_queue_size: 4 * CHILD_BATCH,
        // Only full batches, so that the parent can check that each arrives whole even
        // if this process is held up mid-batch.
        batch_delay: Duration::from_secs(60),
        ..QueueOptions::default()
    };
    let mut queue = MessageQueue::new(port, options)?;
    for i in 0..CHILD_MESSAGES {
        queue.enqueue_timeout(&i.to_le_bytes(), PATIENCE)?;
    }
    queue.close()?;
    println!(
        "   child {} sent {CHILD_MESSAGES} messages",
        std::process::id()
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, name] = args.as_slice() {
        if flag == "--child" {
            return child(name);
        }
    }
    between_threads()?;
    backpressure()?;
    parent()
}
