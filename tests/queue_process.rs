//! Both queues between real processes (this test binary re-executed in a child role):
//! a `MessageQueue` in a child delivering whole batches through a named port, and its
//! death seen as `PeerDied`; a `PriorityMessageQueue` whose receiver is a child, with
//! strict priority, an expiry reported back across the process boundary and a wakeup of
//! the sleeping child; and a sender killed mid-stream, seen as `PeerDied` after its
//! messages.
//!
//! Sizes: `RINGPORT_QUEUE_PROCESS_MESSAGES` (default 5 000) messages from the child's
//! batching queue.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/peer.rs"]
mod peer;

use common::env_count;
use peer::{announce, Peer, HANG};
use ringport::queue::{
    BatchReceiver, Level, MessageQueue, PriorityMessageQueue, PriorityOptions, QueueOptions,
};
use ringport::segment::Segment;
use ringport::{MessageChannel, RecvError};
use std::time::Duration;

const ROLE_VAR: &str = "RINGPORT_QUEUE_ROLE";
const NAME_VAR: &str = "RINGPORT_QUEUE_NAME";
const COUNT_VAR: &str = "RINGPORT_QUEUE_COUNT";
const BATCH: usize = 10;

fn unique(what: &str) -> String {
    format!("rp-qproc-{what}-{}", std::process::id())
}

/// The child's side of every test; false in the parent.
fn play_child_role() -> bool {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return false;
    };
    let name = std::env::var(NAME_VAR).unwrap();
    match role.as_str() {
        "batcher" => {
            let count: u32 = std::env::var(COUNT_VAR).unwrap().parse().unwrap();
            let port = MessageChannel::open(&name).unwrap();
            let options = QueueOptions {
                batch_size: BATCH,
                batch_delay: Duration::from_secs(3600),
                close_timeout: HANG,
                ..QueueOptions::default()
            };
            let mut queue = MessageQueue::new(port, options).unwrap();
            for i in 0..count {
                queue.enqueue_timeout(&i.to_le_bytes(), HANG).unwrap();
            }
            queue.close().unwrap();
            announce("BATCHER-DONE", count);
        }
        "stuck-batcher" => {
            let port = MessageChannel::open(&name).unwrap();
            let mut queue = MessageQueue::new(port, QueueOptions::default()).unwrap();
            queue.enqueue(b"before the end").unwrap();
            queue.flush().unwrap();
            announce("FLUSHED", "");
            loop {
                std::thread::sleep(HANG); // killed here
            }
        }
        "priority-receiver" => {
            let mut receiver = PriorityMessageQueue::open(&name).unwrap();
            receiver.set_spin_budget(Duration::ZERO);
            let order: Vec<String> = (0..6)
                .map(|_| String::from_utf8(receiver.recv().unwrap().payload.to_vec()).unwrap())
                .collect();
            announce("ORDER", order.join(","));
            // Asleep on the doorbell until the parent sends again.
            let msg = receiver.recv().unwrap();
            announce(
                "WOKE",
                format!("{} {}", msg.level, String::from_utf8_lossy(&msg)),
            );
            let end = receiver.recv().err();
            announce("END", format!("{end:?}"));
        }
        "priority-sender" => {
            let mut sender =
                PriorityMessageQueue::create(&name, PriorityOptions::default()).unwrap();
            sender.send(Level::LOW, b"low before dying").unwrap();
            sender.send(Level::HIGH, b"high before dying").unwrap();
            announce("SENT", "");
            loop {
                std::thread::sleep(HANG); // killed here
            }
        }
        other => panic!("unknown role {other:?}"),
    }
    true
}

#[test]
fn a_message_queue_in_a_child_process_delivers_whole_batches_in_order() {
    if play_child_role() {
        return;
    }
    let count =
        env_count("RINGPORT_QUEUE_PROCESS_MESSAGES", 5_000) as u32 / BATCH as u32 * BATCH as u32;
    let name = unique("batch");
    // A small ring, so that the child's queue fills and waits for the parent.
    let port = MessageChannel::create(&name, 4096).unwrap();
    let mut rx = BatchReceiver::new(port);
    let mut child = Peer::spawn(
        "a_message_queue_in_a_child_process_delivers_whole_batches_in_order",
        &[
            (ROLE_VAR, "batcher"),
            (NAME_VAR, &name),
            (COUNT_VAR, &count.to_string()),
        ],
    );
    let (mut next, mut frames) = (0u32, 0u32);
    loop {
        match rx.recv_timeout(HANG) {
            Ok(batch) => {
                frames += 1;
                assert_eq!(batch.len(), BATCH, "a batch arrived split");
                for msg in &batch {
                    assert_eq!(msg, next.to_le_bytes());
                    next += 1;
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(child.expect("BATCHER-DONE"), count.to_string());
    child.finish();
    assert_eq!(next, count);
    assert_eq!(frames, count / BATCH as u32);
}

#[test]
fn a_batch_receiver_sees_a_killed_queue_process_as_peer_died() {
    if play_child_role() {
        return;
    }
    let name = unique("killed-batcher");
    let port = MessageChannel::create(&name, 4096).unwrap();
    let mut rx = BatchReceiver::new(port);
    let mut child = Peer::spawn(
        "a_batch_receiver_sees_a_killed_queue_process_as_peer_died",
        &[(ROLE_VAR, "stuck-batcher"), (NAME_VAR, &name)],
    );
    child.expect("FLUSHED");
    child.kill(true);
    let batch = rx.recv_timeout(HANG).unwrap();
    assert_eq!(batch.iter().collect::<Vec<_>>(), [b"before the end"]);
    drop(batch);
    assert!(matches!(
        rx.recv_timeout(HANG),
        Err(RecvError::PeerDied { .. })
    ));
}

#[test]
fn a_priority_queue_serves_a_child_process_in_priority_order() {
    if play_child_role() {
        return;
    }
    let name = unique("prio");
    let short = Duration::from_millis(20);
    let options = PriorityOptions {
        deadlines: vec![HANG * 2, HANG * 2, short],
        ..PriorityOptions::default()
    };
    let mut sender = PriorityMessageQueue::create(&name, options).unwrap();
    sender.send(Level::LOW, b"stale").unwrap();
    for i in 0..3 {
        sender
            .send(Level::MEDIUM, format!("m{i}").as_bytes())
            .unwrap();
        sender
            .send(Level::HIGH, format!("h{i}").as_bytes())
            .unwrap();
    }
    // Past the low deadline before the child can look.
    std::thread::sleep(short * 2);
    let mut child = Peer::spawn(
        "a_priority_queue_serves_a_child_process_in_priority_order",
        &[(ROLE_VAR, "priority-receiver"), (NAME_VAR, &name)],
    );
    assert_eq!(child.expect("ORDER"), "h0,h1,h2,m0,m1,m2");
    let expired = sender.recv_expired_timeout(HANG).unwrap();
    assert_eq!(
        (expired.level, &expired.payload[..]),
        (Level::LOW, &b"stale"[..])
    );
    assert!(expired.waited >= short);
    sender.send(Level::LOW, b"wake up").unwrap();
    assert_eq!(child.expect("WOKE"), "low wake up");
    drop(sender);
    assert_eq!(child.expect("END"), "Some(Disconnected)");
    child.finish();
}

#[test]
fn a_priority_receiver_sees_a_killed_sender_after_its_messages() {
    if play_child_role() {
        return;
    }
    let name = unique("prio-killed");
    let mut child = Peer::spawn(
        "a_priority_receiver_sees_a_killed_sender_after_its_messages",
        &[(ROLE_VAR, "priority-sender"), (NAME_VAR, &name)],
    );
    child.expect("SENT");
    let mut receiver = PriorityMessageQueue::open(&name).unwrap();
    child.kill(true);
    assert_eq!(
        receiver.recv_timeout(HANG).unwrap().payload,
        b"high before dying"
    );
    assert_eq!(
        receiver.recv_timeout(HANG).unwrap().payload,
        b"low before dying"
    );
    assert!(matches!(
        receiver.recv_timeout(HANG),
        Err(RecvError::PeerDied { .. })
    ));
    // The dead sender left its names behind.
    for suffix in ["-p0", "-p1", "-p2", "-r", "-b"] {
        assert!(
            matches!(
                Segment::remove_if_stale(&format!("{name}{suffix}")),
                Ok(true)
            ),
            "{suffix}"
        );
    }
}
