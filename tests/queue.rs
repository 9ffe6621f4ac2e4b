//! Batching and priority queues between threads: whole batches with one frame each, the
//! delay that sends a partial batch on its own, backpressure (`Full`, timeouts), the
//! flush on drop, typed errors for corrupt batch frames; strict priority and FIFO within
//! a level, invalid levels, deadlines reported back with their payload (and held back,
//! not dropped, while the report ring is full), aging, and closing either end.
//!
//! Sizes: `RINGPORT_QUEUE_STRESS` (default 20 000) messages through a queue with a
//! small ring.

#[allow(dead_code)]
mod common;

use common::{env_count, watchdog};
use ringport::queue::{
    BatchReceiver, Level, MessageQueue, PriorityError, PriorityMessageQueue, PriorityOptions,
    QueueError, QueueOptions, QueueSetupError,
};
use ringport::segment::{Segment, SegmentError};
use ringport::{ConnectError, MessageChannel, RecvError, SendError};
use std::thread;
use std::time::Duration;

/// A hang detector for blocking calls, far above any plausible time.
const HANG: Duration = Duration::from_secs(30);
/// A batch delay no test waits for: batches go out only when full or flushed.
const NEVER: Duration = Duration::from_secs(3600);

fn unique(test: &str) -> String {
    format!("rp-queue-{}-{test}", std::process::id())
}

fn opts(batch_size: usize, max_queue_size: usize) -> QueueOptions {
    QueueOptions {
        batch_size,
        max_queue_size,
        batch_delay: NEVER,
        ..QueueOptions::default()
    }
}

/// The sizes of the batches waiting at `rx`, and their messages in order.
fn drain(rx: &mut BatchReceiver) -> (Vec<usize>, Vec<Vec<u8>>) {
    let (mut sizes, mut msgs) = (Vec::new(), Vec::new());
    while let Ok(batch) = rx.try_recv() {
        sizes.push(batch.len());
        msgs.extend(batch.iter().map(<[u8]>::to_vec));
    }
    (sizes, msgs)
}

fn numbered(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| i.to_le_bytes().to_vec()).collect()
}

#[test]
fn full_batches_go_out_at_once_each_as_one_frame() {
    let ch = MessageChannel::new();
    let mut queue = MessageQueue::new(ch.port1, opts(16, 1024)).unwrap();
    let mut rx = BatchReceiver::new(ch.port2);
    for i in 0..100u32 {
        queue.enqueue(&i.to_le_bytes()).unwrap();
    }
    // Six full batches were published by enqueue itself; four wait for the delay.
    assert_eq!(queue.queued(), 4);
    let (sizes, msgs) = drain(&mut rx);
    assert_eq!(sizes, [16; 6]);
    assert_eq!(msgs, numbered(0..96));
    queue.flush().unwrap();
    let (sizes, msgs) = drain(&mut rx);
    assert_eq!(sizes, [4]);
    assert_eq!(msgs, numbered(96..100));
    assert_eq!(rx.try_recv().err(), Some(RecvError::Empty));
}

#[test]
fn a_partial_batch_goes_out_after_the_delay_without_another_call() {
    let ch = MessageChannel::new();
    let options = QueueOptions {
        batch_size: 16,
        batch_delay: Duration::from_millis(10),
        ..QueueOptions::default()
    };
    let mut queue = MessageQueue::new(ch.port1, options).unwrap();
    let mut rx = BatchReceiver::new(ch.port2);
    for i in 0..3u32 {
        queue.enqueue(&i.to_le_bytes()).unwrap();
    }
    // Usually one batch of three; two if this thread was held up longer than the delay.
    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = rx.recv_timeout(HANG).unwrap();
        got.extend(batch.iter().map(<[u8]>::to_vec));
    }
    assert_eq!(got, numbered(0..3));
    // And again for the next partial batch: the timer re-arms.
    queue.enqueue(b"again").unwrap();
    assert_eq!(rx.recv_timeout(HANG).unwrap().len(), 1);
}

#[test]
fn a_zero_delay_sends_every_message_alone() {
    let ch = MessageChannel::new();
    let options = QueueOptions {
        batch_delay: Duration::ZERO,
        ..QueueOptions::default()
    };
    let mut queue = MessageQueue::new(ch.port1, options).unwrap();
    let mut rx = BatchReceiver::new(ch.port2);
    for i in 0..5u32 {
        queue.enqueue(&i.to_le_bytes()).unwrap();
    }
    let (sizes, msgs) = drain(&mut rx);
    assert_eq!(sizes, [1; 5]);
    assert_eq!(msgs, numbered(0..5));
}

#[test]
fn a_batch_is_sealed_early_when_the_next_message_would_not_fit_a_frame() {
    // 256-byte rings carry frames of up to 112 bytes: 8 of header and three 30-byte
    // messages with their 4-byte prefixes make 110.
    let ch = MessageChannel::with_capacity(256);
    let mut queue = MessageQueue::new(ch.port1, opts(100, 100)).unwrap();
    assert_eq!(queue.max_message(), 100);
    let mut rx = BatchReceiver::new(ch.port2);
    // The ring holds two such frames: receive while the queue sends.
    let receiver = thread::spawn(move || {
        let mut sizes = Vec::new();
        while let Ok(batch) = rx.recv() {
            sizes.push(batch.len());
        }
        sizes
    });
    for i in 0..10u8 {
        queue.enqueue(&[i; 30]).unwrap();
    }
    queue.close().unwrap();
    assert_eq!(receiver.join().unwrap(), [3, 3, 3, 1]);
}

#[test]
fn at_capacity_enqueue_is_full_and_enqueue_timeout_waits_for_room() {
    // Batches of two 40-byte messages (96-byte frames): the 256-byte ring holds two
    // batches, the queue four more messages.
    let ch = MessageChannel::with_capacity(256);
    let mut queue = MessageQueue::new(ch.port1, opts(2, 4)).unwrap();
    let mut rx = BatchReceiver::new(ch.port2);
    let mut accepted = 0u8;
    let full = loop {
        match queue.enqueue(&[accepted; 40]) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "the queue never filled");
    };
    assert_eq!(full, QueueError::Full);
    assert_eq!(queue.queued(), 4);
    assert_eq!(
        queue.enqueue_timeout(&[0; 40], Duration::from_millis(20)),
        Err(QueueError::Timeout)
    );
    // Receiving frees ring room; the flusher publishes, and room in the queue follows.
    let receiver = thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            match rx.recv() {
                Ok(batch) => got.extend(batch.iter().map(<[u8]>::to_vec)),
                Err(RecvError::Disconnected) => return got,
                Err(e) => panic!("{e}"),
            }
        }
    });
    queue.enqueue_timeout(&[accepted; 40], HANG).unwrap();
    accepted += 1;
    queue.close().unwrap();
    let got = receiver.join().unwrap();
    let expected: Vec<Vec<u8>> = (0..accepted).map(|i| vec![i; 40]).collect();
    assert_eq!(got, expected);
}

#[test]
fn dropping_the_queue_flushes_it_then_closes_the_port() {
    let ch = MessageChannel::new();
    let mut queue = MessageQueue::new(ch.port1, opts(16, 1024)).unwrap();
    let mut rx = BatchReceiver::new(ch.port2);
    for i in 0..5u32 {
        queue.enqueue(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(rx.try_recv().err(), Some(RecvError::Empty));
    drop(queue);
    let (sizes, msgs) = drain(&mut rx);
    assert_eq!(sizes, [5]);
    assert_eq!(msgs, numbered(0..5));
    assert_eq!(rx.recv().err(), Some(RecvError::Disconnected));
}

#[test]
fn close_reports_what_a_stalled_receiver_left_unpublished() {
    let ch = MessageChannel::with_capacity(256);
    let options = QueueOptions {
        close_timeout: Duration::from_millis(20),
        ..opts(2, 4)
    };
    let mut queue = MessageQueue::new(ch.port1, options).unwrap();
    let _stalled = BatchReceiver::new(ch.port2);
    while queue.enqueue(&[0; 40]).is_ok() {}
    assert_eq!(queue.close(), Err(QueueError::Unflushed { unpublished: 4 }));
}

#[test]
fn a_flush_timeout_keeps_what_it_could_not_publish() {
    let ch = MessageChannel::with_capacity(256);
    let mut queue = MessageQueue::new(ch.port1, opts(2, 4)).unwrap();
    let mut rx = BatchReceiver::new(ch.port2);
    let mut accepted = 0;
    while queue.enqueue(&[7; 40]).is_ok() {
        accepted += 1;
    }
    assert_eq!(
        queue.flush_timeout(Duration::from_millis(10)),
        Err(QueueError::Unflushed { unpublished: 4 })
    );
    let receiver = thread::spawn(move || {
        let mut n = 0;
        while let Ok(batch) = rx.recv() {
            n += batch.len();
        }
        n
    });
    queue.flush().unwrap();
    assert_eq!(queue.queued(), 0);
    drop(queue);
    assert_eq!(receiver.join().unwrap(), accepted);
}

#[test]
fn oversized_messages_are_refused_and_the_largest_fits() {
    let ch = MessageChannel::with_capacity(1024);
    let mut queue = MessageQueue::new(ch.port1, opts(4, 4)).unwrap();
    let mut rx = BatchReceiver::new(ch.port2);
    let max = queue.max_message();
    assert_eq!(
        queue.enqueue(&vec![0; max + 1]),
        Err(QueueError::TooLarge { len: max + 1, max })
    );
    queue.enqueue(&vec![9; max]).unwrap();
    queue.flush().unwrap();
    let batch = rx.recv().unwrap();
    assert_eq!(batch.iter().next().map(<[u8]>::len), Some(max));
}

#[test]
fn a_closed_receiver_fails_the_queue_for_good() {
    let ch = MessageChannel::new();
    let mut queue = MessageQueue::new(ch.port1, opts(16, 1024)).unwrap();
    drop(ch.port2);
    queue.enqueue(b"lost").unwrap();
    assert_eq!(
        queue.flush(),
        Err(QueueError::Send(SendError::Disconnected))
    );
    assert_eq!(queue.queued(), 0);
    assert_eq!(
        queue.enqueue(b"x"),
        Err(QueueError::Send(SendError::Disconnected))
    );
    assert_eq!(
        queue.close(),
        Err(QueueError::Send(SendError::Disconnected))
    );
}

#[test]
fn contradictory_options_are_refused() {
    for (batch_size, max_queue_size) in [(0, 10), (10, 5)] {
        let ch = MessageChannel::new();
        let r = MessageQueue::new(ch.port1, opts(batch_size, max_queue_size));
        assert!(matches!(r, Err(QueueSetupError::InvalidOptions(_))));
    }
}

/// A batch frame by hand, as another process might write it.
fn raw_batch<const N: usize>(count: u32, msgs: &[&[u8; N]]) -> Vec<u8> {
    let mut frame = b"MQB1".to_vec();
    frame.extend_from_slice(&count.to_le_bytes());
    for m in msgs {
        frame.extend_from_slice(&(m.len() as u32).to_le_bytes());
        frame.extend_from_slice(m.as_slice());
    }
    frame
}

#[test]
fn corrupt_batch_frames_are_typed_errors_and_the_next_batch_still_arrives() {
    let ch = MessageChannel::new();
    let (mut tx, mut rx) = (ch.port1, BatchReceiver::new(ch.port2));
    let mut long_len = raw_batch(1, &[b"ab"]);
    long_len[8] = 200;
    let bad = [
        b"short".to_vec(),
        b"XXXX\0\0\0\0".to_vec(),
        raw_batch(2, &[b"one"]),
        raw_batch(1, &[b"one", b"two"]),
        raw_batch(u32::MAX, &[b"x"]),
        long_len,
    ];
    for frame in &bad {
        tx.post_message(frame).unwrap();
        tx.post_message(&raw_batch(1, &[b"ok"])).unwrap();
    }
    for _ in &bad {
        assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt(_))));
        let batch = rx.try_recv().unwrap();
        assert_eq!(batch.iter().collect::<Vec<_>>(), [b"ok"]);
    }
    // An empty batch is well-formed, though a queue never sends one.
    tx.post_message(&raw_batch::<0>(0, &[])).unwrap();
    assert!(rx.try_recv().unwrap().is_empty());
}

#[test]
fn a_stream_through_a_small_ring_arrives_complete_and_in_order() {
    let n = env_count("RINGPORT_QUEUE_STRESS", 20_000) as u32;
    let ch = MessageChannel::with_capacity(1024);
    let mut rx = BatchReceiver::new(ch.port2);
    let producer = thread::spawn(move || {
        let options = QueueOptions {
            batch_size: 8,
            batch_delay: Duration::from_micros(50),
            max_queue_size: 64,
            ..QueueOptions::default()
        };
        let mut queue = MessageQueue::new(ch.port1, options).unwrap();
        for i in 0..n {
            // Lengths vary so that batches fill frames unevenly.
            let mut msg = i.to_le_bytes().to_vec();
            msg.resize(4 + (i % 23) as usize, i as u8);
            queue.enqueue_timeout(&msg, HANG).unwrap();
        }
    });
    let mut next = 0u32;
    loop {
        match rx.recv_timeout(HANG) {
            Ok(batch) => {
                assert!((1..=8).contains(&batch.len()));
                for msg in &batch {
                    assert_eq!(msg[..4], next.to_le_bytes());
                    assert_eq!(msg.len(), 4 + (next % 23) as usize);
                    next += 1;
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(next, n);
}

// ---- PriorityMessageQueue ----

fn deadlines(d: [Duration; 3]) -> PriorityOptions {
    PriorityOptions {
        deadlines: d.to_vec(),
        ..PriorityOptions::default()
    }
}

fn text(payload: &[u8]) -> String {
    String::from_utf8(payload.to_vec()).unwrap()
}

#[test]
fn strict_priority_across_levels_and_fifo_within_each() {
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(PriorityOptions::default());
    let plan = [
        (Level::LOW, "l0"),
        (Level::MEDIUM, "m0"),
        (Level::LOW, "l1"),
        (Level::HIGH, "h0"),
        (Level::MEDIUM, "m1"),
        (Level::HIGH, "h1"),
        (Level::LOW, "l2"),
        (Level::HIGH, "h2"),
    ];
    for (level, msg) in plan {
        sender.send(level, msg.as_bytes()).unwrap();
    }
    let mut got = Vec::new();
    while let Ok(msg) = receiver.try_recv() {
        got.push((msg.level, text(msg.payload)));
    }
    let expected: Vec<(Level, String)> = [
        (Level::HIGH, "h0"),
        (Level::HIGH, "h1"),
        (Level::HIGH, "h2"),
        (Level::MEDIUM, "m0"),
        (Level::MEDIUM, "m1"),
        (Level::LOW, "l0"),
        (Level::LOW, "l1"),
        (Level::LOW, "l2"),
    ]
    .map(|(l, m)| (l, m.to_owned()))
    .to_vec();
    assert_eq!(got, expected);
}

#[test]
fn a_higher_message_overtakes_lower_ones_already_waiting() {
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(PriorityOptions::default());
    for i in 0..10u8 {
        sender.send(Level::LOW, &[i]).unwrap();
    }
    assert_eq!(receiver.try_recv().unwrap().payload, [0]);
    sender.send(Level::HIGH, b"urgent").unwrap();
    assert_eq!(receiver.try_recv().unwrap().payload, b"urgent");
    assert_eq!(receiver.try_recv().unwrap().payload, [1]);
}

#[test]
fn an_invalid_level_is_a_typed_error() {
    let mut q = PriorityMessageQueue::new(PriorityOptions::default());
    let invalid = PriorityError::InvalidLevel {
        level: Level(3),
        levels: 3,
    };
    assert_eq!(q.sender.send(Level(3), b"x"), Err(invalid));
    assert_eq!(q.sender.try_send(Level(3), b"x"), Err(invalid));
    assert_eq!(q.sender.send_timeout(Level(3), b"x", HANG), Err(invalid));
    assert_eq!(
        invalid.to_string(),
        "level 3 is not a level of this queue, which has levels 0 to 2"
    );
    let five = PriorityOptions {
        deadlines: vec![HANG; 5],
        ..PriorityOptions::default()
    };
    let mut q = PriorityMessageQueue::new(five);
    q.sender.send(Level(4), b"lowest").unwrap();
    assert_eq!(q.receiver.try_recv().unwrap().level, Level(4));
}

#[test]
fn each_level_has_its_own_backpressure() {
    let options = PriorityOptions {
        capacity: 512,
        ..PriorityOptions::default()
    };
    let mut q = PriorityMessageQueue::new(options);
    let max = q.sender.max_message();
    assert_eq!(
        q.sender.try_send(Level::LOW, &vec![0; max + 1]),
        Err(PriorityError::Send(SendError::TooLarge {
            len: max + 1,
            max
        }))
    );
    let mut sent = 0;
    while q.sender.try_send(Level::LOW, &[sent; 50]).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    assert_eq!(
        q.sender.try_send(Level::LOW, &[0; 50]),
        Err(PriorityError::Send(SendError::Full))
    );
    assert_eq!(
        q.sender
            .send_timeout(Level::LOW, &[0; 50], Duration::from_millis(10)),
        Err(PriorityError::Send(SendError::Timeout))
    );
    q.sender.try_send(Level::HIGH, b"still room here").unwrap();
    assert_eq!(q.receiver.try_recv().unwrap().level, Level::HIGH);
    for i in 0..sent {
        assert_eq!(q.receiver.try_recv().unwrap().payload, [i; 50]);
    }
}

#[test]
fn expired_messages_are_reported_to_the_sender_with_their_payload() {
    let short = Duration::from_millis(20);
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(deadlines([HANG, HANG, short]));
    sender.send(Level::LOW, b"stale 1").unwrap();
    sender.send(Level::LOW, b"stale 2").unwrap();
    sender.send(Level::HIGH, b"fresh").unwrap();
    thread::sleep(short * 2);
    sender.send(Level::MEDIUM, b"in time").unwrap();
    assert_eq!(receiver.try_recv().unwrap().payload, b"fresh");
    assert_eq!(receiver.try_recv().unwrap().payload, b"in time");
    assert_eq!(receiver.try_recv().err(), Some(RecvError::Empty));
    for payload in [&b"stale 1"[..], b"stale 2"] {
        let expired = sender.try_recv_expired().unwrap();
        assert_eq!(expired.level, Level::LOW);
        assert_eq!(expired.payload, payload);
        assert!(expired.waited >= short);
    }
    assert_eq!(sender.try_recv_expired(), Err(RecvError::Empty));
}

#[test]
fn expired_messages_wait_for_report_room_rather_than_vanish() {
    let short = Duration::from_millis(5);
    let options = PriorityOptions {
        capacity: 512,
        ..deadlines([HANG, short, short])
    };
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(options);
    let mut sent = Vec::new();
    for level in [Level::MEDIUM, Level::LOW] {
        for i in 0..3u8 {
            let payload = vec![level.0 * 10 + i; 100];
            sender.try_send(level, &payload).unwrap();
            sent.push((level, payload));
        }
    }
    thread::sleep(short * 4);
    assert_eq!(receiver.try_recv().err(), Some(RecvError::Empty));
    let mut reported = Vec::new();
    while let Ok(e) = sender.try_recv_expired() {
        reported.push((e.level, e.payload));
    }
    assert!(
        reported.len() < sent.len(),
        "the report ring was expected to fill"
    );
    // The receiver held the rest back; now that there is room it reports them.
    while reported.len() < sent.len() {
        assert_eq!(receiver.try_recv().err(), Some(RecvError::Empty));
        let before = reported.len();
        while let Ok(e) = sender.try_recv_expired() {
            reported.push((e.level, e.payload));
        }
        assert!(reported.len() > before, "no progress");
    }
    assert_eq!(reported, sent);
}

#[test]
fn a_receiver_holding_back_expired_messages_sees_the_sender_close() {
    let short = Duration::from_millis(5);
    let options = PriorityOptions {
        capacity: 512,
        ..deadlines([HANG, short, short])
    };
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(options);
    for level in [Level::MEDIUM, Level::LOW] {
        for _ in 0..3 {
            sender.try_send(level, &[0; 100]).unwrap();
        }
    }
    thread::sleep(short * 4);
    // More expired messages than report room: the receiver holds some back and sleeps
    // without a deadline; the sender's close must wake it.
    let closer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(sender);
    });
    let (end, _) = watchdog("receiver", HANG, move || receiver.recv().err());
    assert_eq!(end, Some(RecvError::Disconnected));
    closer.join().unwrap();
}

#[test]
fn a_sleeping_receiver_reports_held_back_messages_once_there_is_room() {
    let short = Duration::from_millis(5);
    let options = PriorityOptions {
        capacity: 512,
        ..deadlines([HANG, short, short])
    };
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(options);
    for level in [Level::MEDIUM, Level::LOW] {
        for i in 0..3 {
            sender.try_send(level, &[i; 100]).unwrap();
        }
    }
    thread::sleep(short * 4);
    // Four reports fill the report ring; the receiver holds the other two back.
    assert_eq!(receiver.try_recv().err(), Some(RecvError::Empty));
    receiver.set_spin_budget(Duration::ZERO);
    let t = thread::spawn(move || receiver.recv().map(|m| m.payload.to_vec()));
    // Most likely asleep by now (either way the reports must all come).
    thread::sleep(Duration::from_millis(20));
    // Every report, read with blocking calls: those held back come only if reading the
    // first ones wakes the sleeping receiver.
    let (reports, _) = watchdog("sender", HANG, move || {
        let reports: Vec<_> = (0..6).map(|_| sender.recv_expired().unwrap()).collect();
        sender.send(Level::HIGH, b"done").unwrap();
        reports
    });
    assert_eq!(reports.len(), 6);
    assert_eq!(t.join().unwrap(), Ok(b"done".to_vec()));
}

#[test]
fn aging_serves_a_starving_message_before_younger_higher_ones() {
    let step = Duration::from_millis(10);
    for aging in [None, Some(step)] {
        let options = PriorityOptions {
            aging,
            ..PriorityOptions::default()
        };
        let PriorityMessageQueue {
            mut sender,
            mut receiver,
        } = PriorityMessageQueue::new(options);
        sender.send(Level::LOW, b"old low").unwrap();
        // Two steps: the low message now counts as high, and it is older.
        thread::sleep(step * 3);
        sender.send(Level::HIGH, b"young high").unwrap();
        sender.send(Level::MEDIUM, b"young medium").unwrap();
        let order: Vec<String> = (0..3)
            .map(|_| text(receiver.try_recv().unwrap().payload))
            .collect();
        let expected = match aging {
            None => ["young high", "young medium", "old low"],
            Some(_) => ["old low", "young high", "young medium"],
        };
        assert_eq!(order, expected, "aging {aging:?}");
    }
}

#[test]
fn zero_aging_serves_every_level_in_order_of_age() {
    let options = PriorityOptions {
        aging: Some(Duration::ZERO),
        ..PriorityOptions::default()
    };
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(options);
    for (level, msg) in [(Level::LOW, "a"), (Level::HIGH, "b"), (Level::MEDIUM, "c")] {
        sender.send(level, msg.as_bytes()).unwrap();
        // Distinct send times, so that age alone decides.
        thread::sleep(Duration::from_millis(1));
    }
    let order: Vec<String> = (0..3)
        .map(|_| text(receiver.try_recv().unwrap().payload))
        .collect();
    assert_eq!(order, ["a", "b", "c"]);
}

#[test]
fn a_blocked_receiver_wakes_for_a_message_at_any_level() {
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(PriorityOptions::default());
    receiver.set_spin_budget(Duration::ZERO);
    let (go, gone) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            go.send(()).unwrap();
            match receiver.recv_timeout(HANG) {
                Ok(msg) => got.push(msg.level),
                Err(RecvError::Disconnected) => return got,
                Err(e) => panic!("{e}"),
            }
        }
    });
    for level in [Level::LOW, Level::MEDIUM, Level::HIGH] {
        gone.recv().unwrap();
        // Likely asleep by now; either way the message must arrive.
        thread::sleep(Duration::from_millis(2));
        sender.send(level, b"wake up").unwrap();
    }
    gone.recv().unwrap();
    drop(sender);
    assert_eq!(t.join().unwrap(), [Level::LOW, Level::MEDIUM, Level::HIGH]);
}

#[test]
fn closing_either_end_is_seen_by_the_other() {
    let PriorityMessageQueue {
        mut sender,
        mut receiver,
    } = PriorityMessageQueue::new(PriorityOptions::default());
    sender.send(Level::LOW, b"last words").unwrap();
    drop(sender);
    assert_eq!(receiver.recv().unwrap().payload, b"last words");
    assert_eq!(receiver.recv().err(), Some(RecvError::Disconnected));

    let PriorityMessageQueue {
        mut sender,
        receiver,
    } = PriorityMessageQueue::new(PriorityOptions::default());
    drop(receiver);
    assert_eq!(
        sender.send(Level::HIGH, b"anyone?"),
        Err(PriorityError::Send(SendError::Disconnected))
    );
    assert_eq!(sender.recv_expired(), Err(RecvError::Disconnected));
}

#[test]
fn a_named_queue_refuses_a_second_receiver_and_cleans_up() {
    let name = unique("named");
    let mut sender = PriorityMessageQueue::create(&name, PriorityOptions::default()).unwrap();
    let mut receiver = PriorityMessageQueue::open(&name).unwrap();
    assert!(matches!(
        PriorityMessageQueue::open(&name),
        Err(ConnectError::Busy { .. })
    ));
    sender.send(Level::MEDIUM, b"over shm").unwrap();
    assert_eq!(receiver.recv_timeout(HANG).unwrap().payload, b"over shm");
    drop(sender);
    assert_eq!(receiver.recv().err(), Some(RecvError::Disconnected));
    assert!(matches!(
        PriorityMessageQueue::open(&name),
        Err(ConnectError::Segment(SegmentError::NotFound { .. }))
    ));
}

/// A fake sender: the segments a `PriorityMessageQueue::create` makes, written by hand
/// as another process might.
struct FakeSender {
    levels: Vec<ringport::MessagePort>,
    _reports: ringport::MessagePort,
    _bell: Segment,
}

fn fake_sender(name: &str, params: [u64; 6]) -> FakeSender {
    let levels = (0..3)
        .map(|l| MessageChannel::create(&format!("{name}-p{l}"), 4096).unwrap())
        .collect();
    let reports = MessageChannel::create(&format!("{name}-r"), 8192).unwrap();
    let bell = Segment::create(
        &format!("{name}-b"),
        u32::from_le_bytes(*b"PRIQ"),
        params,
        64,
    )
    .unwrap();
    FakeSender {
        levels,
        _reports: reports,
        _bell: bell,
    }
}

#[test]
fn frames_and_shapes_written_by_another_process_are_checked() {
    let name = unique("forged");
    let mut fake = fake_sender(&name, [3, 0, 0, 0, 0, 0]);
    let mut receiver = PriorityMessageQueue::open(&name).unwrap();
    fake.levels[0].post_message(b"too short").unwrap();
    assert!(matches!(receiver.try_recv(), Err(RecvError::Corrupt(_))));
    let mut frame = 0u64.to_le_bytes().to_vec();
    frame.extend_from_slice(&u64::MAX.to_le_bytes());
    frame.extend_from_slice(b"well formed");
    fake.levels[1].post_message(&frame).unwrap();
    let msg = receiver.try_recv().unwrap();
    assert_eq!(
        (msg.level, msg.payload),
        (Level::MEDIUM, &b"well formed"[..])
    );
    drop(receiver);
    drop(fake);

    for (bad, params) in [
        ("no levels", [0, 0, 0, 0, 0, 0]),
        ("too many levels", [99, 0, 0, 0, 0, 0]),
        ("aging flag", [3, 7, 0, 0, 0, 0]),
    ] {
        let name = unique(&bad.replace(' ', "-"));
        let _fake = fake_sender(&name, params);
        assert!(
            matches!(
                PriorityMessageQueue::open(&name),
                Err(ConnectError::Segment(SegmentError::Corrupt { .. }))
            ),
            "{bad}"
        );
    }
}
