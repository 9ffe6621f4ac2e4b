//! The web's `PriorityMessageQueue` pattern: messages carry a priority (`high`,
//! `medium`, `low`), the worker always takes the most urgent one first, and each
//! priority has a deadline after which a message is no longer worth delivering.
//!
//! ```js
//! queue = new PriorityMessageQueue(worker, { deadlines: { high: 5000, medium: 10000, low: 30000 } });
//! queue.send({ type: 'click' }, 'high');
//! queue.onexpired = (msg, priority, waited) => retryLater(msg);
//! ```
//!
//! Here every level has its own ring, the receiver compares the oldest message of each
//! level, and a message found past its deadline goes back to the sender as an `Expired`
//! report instead of being dropped. The example shows:
//!
//! 1. strict priority while a background flood fills the low level: the high-priority
//!    messages keep a short wait (with the flood's effect on it, measured);
//! 2. deadlines: prefetch requests that wait past their deadline come back to the sender;
//! 3. aging: a low message behind a stream of high ones is served after about two aging
//!    steps instead of last;
//! 4. between processes: the example re-executes itself as `--child <name>` to receive
//!    from a named queue, with an expiry reported back across the process boundary.
//!
//! Run with `cargo run --release --example priority_queue`.

use ringport::queue::{Level, PriorityMessageQueue, PriorityOptions};
use ringport::RecvError;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

const PATIENCE: Duration = Duration::from_secs(10);

fn p99(mut waits: Vec<Duration>) -> Duration {
    waits.sort();
    waits
        .get(waits.len() * 99 / 100)
        .copied()
        .unwrap_or_default()
}

/// Sends 200 high-priority "clicks", one every 200 µs, optionally while another thread
/// floods the low level, and returns the clicks' p99 wait and how many lows the worker
/// handled meanwhile.
fn clicks(flood: bool) -> Result<(Duration, usize), Error> {
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(PriorityOptions::default());
    let worker = thread::spawn(move || {
        let (mut waits, mut lows) = (Vec::new(), 0);
        loop {
            match receiver.recv_timeout(PATIENCE) {
                Ok(msg) if msg.level == Level::HIGH => waits.push(msg.waited),
                Ok(_) => lows += 1,
                Err(RecvError::Disconnected) => return (waits, lows),
                Err(e) => panic!("worker: {e}"),
            }
        }
    });
    // The flood shares the sender: one thread sends both, a low burst between clicks.
    for i in 0..200u32 {
        if flood {
            for _ in 0..20 {
                // Dropped on Full: the flood is only there to keep the low ring busy.
                let _ = sender.try_send(Level::LOW, b"thumbnail");
            }
        }
        sender.send(Level::HIGH, &i.to_le_bytes())?;
        thread::sleep(Duration::from_micros(200));
    }
    drop(sender);
    let (waits, lows) = worker.join().expect("worker");
    assert_eq!(waits.len(), 200, "every click arrives");
    Ok((p99(waits), lows))
}

fn strict_priority() -> Result<(), Error> {
    println!("1. strict priority under a low-priority flood");
    let (quiet, _) = clicks(false)?;
    let (flooded, lows) = clicks(true)?;
    println!("   high p99 wait without flood: {quiet:?}");
    println!("   high p99 wait with flood:    {flooded:?} ({lows} low messages handled too)");
    Ok(())
}

fn deadlines() -> Result<(), Error> {
    println!("2. deadlines");
    let options = PriorityOptions {
        deadlines: vec![
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_millis(50),
        ],
        ..PriorityOptions::default()
    };
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(options);
    for i in 0..3 {
        sender.send(Level::LOW, format!("prefetch {i}").as_bytes())?;
    }
    sender.send(Level::HIGH, b"render")?;
    // The worker is busy with the render for longer than a prefetch may wait.
    let msg = receiver.recv()?;
    println!(
        "   worker: {} {:?}",
        msg.level,
        String::from_utf8_lossy(&msg)
    );
    thread::sleep(Duration::from_millis(80));
    match receiver.try_recv() {
        Err(RecvError::Empty) => println!("   worker: nothing left worth doing"),
        other => println!("   worker: {other:?}"),
    }
    let mut expired_count = 0;
    while let Ok(expired) = sender.try_recv_expired() {
        expired_count += 1;
        println!(
            "   sender: {} {:?} expired after {:?}",
            expired.level,
            String::from_utf8_lossy(&expired.payload),
            expired.waited
        );
    }
    assert_eq!(expired_count, 3, "every prefetch is reported");
    Ok(())
}

/// The position at which the worker, spending 1 ms per message, handles one low message
/// sent before 60 high ones.
fn low_position(aging: Option<Duration>) -> Result<usize, Error> {
    let options = PriorityOptions {
        aging,
        ..PriorityOptions::default()
    };
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(options);
    sender.send(Level::LOW, b"background sync")?;
    thread::sleep(Duration::from_millis(1));
    for i in 0..60u32 {
        sender.send(Level::HIGH, &i.to_le_bytes())?;
    }
    for position in 1.. {
        if receiver.recv_timeout(PATIENCE)?.level == Level::LOW {
            return Ok(position);
        }
        thread::sleep(Duration::from_millis(1));
    }
    unreachable!()
}

fn aging() -> Result<(), Error> {
    println!("3. aging");
    let starved = low_position(None)?;
    println!("   without aging, the worker handles the low message as message {starved} of 61");
    let aged = low_position(Some(Duration::from_millis(10)))?;
    println!("   with aging every 10 ms, as message {aged}");
    assert!(starved == 61 && aged < 61);
    Ok(())
}

fn parent() -> Result<(), Error> {
    println!("4. between processes");
    let name = format!("pq-example-{}", std::process::id());
    let options = PriorityOptions {
        deadlines: vec![PATIENCE, PATIENCE, Duration::from_millis(20)],
        ..PriorityOptions::default()
    };
    let mut sender = PriorityMessageQueue::create(&name, options)?;
    sender.send(Level::LOW, b"stale prefetch")?;
    sender.send(Level::LOW, b"stale analytics")?;
    thread::sleep(Duration::from_millis(30)); // past the low deadline
    sender.send(Level::MEDIUM, b"autosave")?;
    sender.send(Level::HIGH, b"keypress")?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", &name])
        .spawn()?;
    for _ in 0..2 {
        let expired = sender.recv_expired_timeout(PATIENCE)?;
        println!(
            "   parent: {} {:?} expired in the child after {:?}",
            expired.level,
            String::from_utf8_lossy(&expired.payload),
            expired.waited
        );
    }
    drop(sender); // the child drains, then sees Disconnected
    let status = child.wait()?;
    assert!(status.success(), "child failed: {status}");
    Ok(())
}

fn child(name: &str) -> Result<(), Error> {
    let mut receiver = PriorityMessageQueue::open(name)?;
    let me = std::process::id();
    let mut got = Vec::new();
    loop {
        match receiver.recv_timeout(PATIENCE) {
            Ok(msg) => {
                let text = String::from_utf8_lossy(&msg).into_owned();
                println!("   child {me}: {} {text:?}", msg.level);
                got.push(text);
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("   child {me}: the sender closed");
    assert_eq!(
        got,
        ["keypress", "autosave"],
        "priority order, nothing stale"
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
    let start = Instant::now();
    strict_priority()?;
    deadlines()?;
    aging()?;
    parent()?;
    println!("done in {:?}", start.elapsed());
    Ok(())
}
