//! The web's `MessageChannel` between two threads: the pattern of a page that creates
//! `new MessageChannel()`, keeps `port1` and hands `port2` to a worker, then talks to it
//! with `postMessage` and `onmessage`.
//!
//! The worker answers requests, the main thread sends a burst of notes without waiting
//! and closes its port; the worker still receives everything that was sent before the
//! close (the drain), then learns the channel is closed. Last, a `Pod` value crosses as
//! a frame and is read in place, the zero-copy cousin of structured clone.
//!
//! Run with `cargo run --release --example message_channel`.

use ringport::{MessageChannel, MessagePort, RecvError, SendError};
use std::thread;

/// What the worker saw before its port reported the close.
struct Summary {
    requests: u32,
    notes: u32,
    after_close: Result<(), SendError>,
}

/// The worker's `onmessage`: `add <id> <a> <b>` gets the reply `sum <id> <a+b>`; a
/// `note ...` gets none. It runs until the other port closes and everything it sent has
/// been received.
fn worker(mut port: MessagePort) -> Summary {
    let (mut requests, mut notes) = (0, 0);
    loop {
        let text = match port.recv() {
            Ok(frame) => String::from_utf8_lossy(&frame).into_owned(),
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("worker: {e}"),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["add", id, a, b] => {
                let sum: i64 = a.parse::<i64>().unwrap() + b.parse::<i64>().unwrap();
                port.post_message(format!("sum {id} {sum}").as_bytes())
                    .unwrap();
                requests += 1;
            }
            ["note", ..] => notes += 1,
            _ => panic!("worker: unexpected message {text:?}"),
        }
    }
    // Like posting to a closed port on the web, except that here the sender is told.
    let after_close = port.post_message(b"anyone there?");
    Summary {
        requests,
        notes,
        after_close,
    }
}

#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    price: f64,
    qty: u32,
    side: u32,
}

fn main() {
    let MessageChannel { mut port1, port2 } = MessageChannel::new();
    let worker = thread::spawn(move || worker(port2));

    // Request and reply: each request waits for its answer.
    for (id, (a, b)) in [(2, 3), (40, 2), (-7, 7)].into_iter().enumerate() {
        port1
            .post_message(format!("add {id} {a} {b}").as_bytes())
            .unwrap();
        let reply = port1.recv().unwrap();
        println!("main: add {a} {b} -> {}", String::from_utf8_lossy(&reply));
    }

    // Fire and forget, then close: the worker drains all of it before it sees the close.
    for i in 0..1000 {
        port1.post_message(format!("note {i}").as_bytes()).unwrap();
    }
    port1.close();

    let summary = worker.join().unwrap();
    println!(
        "worker: answered {} requests, drained {} notes, then saw the close",
        summary.requests, summary.notes
    );
    println!("worker: posting after the close: {:?}", summary.after_close);
    assert_eq!((summary.requests, summary.notes), (3, 1000));
    assert_eq!(summary.after_close, Err(SendError::Disconnected));

    // A Pod value is sent as its bytes and read in place, without a copy.
    let MessageChannel {
        mut port1,
        mut port2,
    } = MessageChannel::with_capacity(4096);
    let tick = Tick {
        price: 101.25,
        qty: 300,
        side: 1,
    };
    port1.post_pod(&tick).unwrap();
    let frame = port2.recv().unwrap();
    let seen: &Tick = frame.as_pod().expect("a whole Tick, 8-aligned");
    println!("port2: {seen:?}, read in place from the ring");
}
