//! Typed messages: serde values over heap ports, over a named port to another process
//! (this test binary re-executed in a child role) and over broadcast channels; local
//! channels moving values serde cannot describe; and every refusal.
#![cfg(feature = "serde")]

#[path = "common/mod.rs"]
mod common;
#[path = "common/peer.rs"]
mod peer;

use common::{env_count, watchdog, Payloads};
use peer::{announce, Peer, HANG};
use ringport::broadcast::{BroadcastChannel, BroadcastOptions, ChannelError, Overflow};
use ringport::typed::{
    decode, encode, local, typed_channel, DecodeError, LocalSendError, TypedBroadcastChannel,
    TypedError, TypedPort,
};
use ringport::{MessageChannel, RecvError, SendError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ROLE_VAR: &str = "RINGPORT_TYPED_ROLE";
const NAME_VAR: &str = "RINGPORT_TYPED_NAME";

fn unique(what: &str) -> String {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "typed-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Side {
    Buy,
    Sell { limit: Option<f64> },
    Cancel(u64),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    client: String,
    side: Side,
    lines: Vec<(String, u32)>,
    note: Option<String>,
    price: f64,
    tags: BTreeMap<String, i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Msg {
    Order(Order),
    Receipt { id: u64, items: u64, by: u32 },
    Bye,
}

/// Order number `i`: every field depends on `i`, so a receiver checks what it got
/// without being told.
fn order(i: u64) -> Order {
    Order {
        id: i,
        client: format!("client-{}", i % 7),
        side: match i % 3 {
            0 => Side::Buy,
            1 => Side::Sell {
                limit: (i % 2 == 0).then_some(i as f64 / 4.0),
            },
            _ => Side::Cancel(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        },
        lines: (0..i % 5).map(|k| (format!("sku{k}"), k as u32)).collect(),
        note: (i % 4 == 0).then(|| "ünïcode ✓".repeat((i % 3) as usize)),
        price: -(i as f64) * 0.5,
        tags: (0..i % 3).map(|k| (format!("t{k}"), -(k as i64))).collect(),
    }
}

#[test]
fn values_cross_a_heap_port_in_order_both_ways() {
    let n = env_count("RINGPORT_TYPED_MESSAGES", 2000);
    let (mut main, mut worker) = typed_channel::<Msg>();
    let t = std::thread::spawn(move || {
        while let Ok(m) = worker.recv() {
            let Msg::Order(o) = m else {
                panic!("the worker got {m:?}")
            };
            let items = o.lines.len() as u64;
            worker
                .post(&Msg::Receipt {
                    id: o.id,
                    items,
                    by: 0,
                })
                .unwrap();
        }
    });
    let mut received = 0;
    for i in 0..n {
        main.post(&Msg::Order(order(i))).unwrap();
        // Keep some in flight both ways.
        if i >= 8 {
            let want = Msg::Receipt {
                id: received,
                items: received % 5,
                by: 0,
            };
            assert_eq!(main.recv().unwrap(), want);
            received += 1;
        }
    }
    while received < n {
        assert!(matches!(main.recv().unwrap(), Msg::Receipt { id, .. } if id == received));
        received += 1;
    }
    drop(main);
    t.join().unwrap();
}

#[test]
fn try_and_timeout_variants_report_empty_full_timeout_and_disconnected() {
    let ch = MessageChannel::with_capacity(256);
    let (mut a, mut b) = (
        TypedPort::<Order>::new(ch.port1),
        TypedPort::<Order>::new(ch.port2),
    );
    assert!(matches!(
        b.try_recv(),
        Err(TypedError::Recv(RecvError::Empty))
    ));
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(1)),
        Err(TypedError::Recv(RecvError::Timeout))
    ));
    let mut sent = 0;
    while a.try_post(&order(1)).is_ok() {
        sent += 1;
    }
    assert!(sent >= 1);
    assert!(matches!(
        a.try_post(&order(1)),
        Err(TypedError::Send(SendError::Full))
    ));
    assert!(matches!(
        a.post_timeout(&order(1), Duration::from_millis(1)),
        Err(TypedError::Send(SendError::Timeout))
    ));
    for _ in 0..sent {
        assert_eq!(b.try_recv().unwrap(), order(1));
    }
    a.post_timeout(&order(2), Duration::from_secs(30)).unwrap();
    drop(a);
    assert_eq!(b.recv_timeout(Duration::from_secs(30)).unwrap(), order(2));
    assert!(matches!(
        b.recv(),
        Err(TypedError::Recv(RecvError::Disconnected))
    ));
    assert!(matches!(
        b.post(&order(3)),
        Err(TypedError::Send(SendError::Disconnected))
    ));
}

#[test]
fn garbage_other_types_and_stray_bytes_are_decode_errors_and_the_port_goes_on() {
    let ch = MessageChannel::new();
    let (mut raw, mut typed) = (ch.port1, TypedPort::<Order>::new(ch.port2));
    let mut good = Vec::new();
    encode(&order(5), &mut good).unwrap();
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"??");
    let mut other_type = Vec::new();
    encode(&("not", "an", "order"), &mut other_type).unwrap();
    let frames: [&[u8]; 6] = [
        &[],
        &[0xff; 12],
        &good[..good.len() - 1],
        &trailing,
        &other_type,
        &good,
    ];
    raw.post_batch(&frames).unwrap();
    for bad in &frames[..2] {
        assert!(
            matches!(
                typed.recv(),
                Err(TypedError::Decode(DecodeError::Malformed(_)))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        typed.recv(),
        Err(TypedError::Decode(DecodeError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd
        )))
    ));
    assert!(matches!(
        typed.recv(),
        Err(TypedError::Decode(DecodeError::Trailing { extra: 2 }))
    ));
    assert!(matches!(typed.recv(), Err(TypedError::Decode(_))));
    assert_eq!(typed.recv().unwrap(), order(5));
    assert!(matches!(
        typed.try_recv(),
        Err(TypedError::Recv(RecvError::Empty))
    ));
}

#[test]
fn a_value_too_large_for_a_frame_is_refused_and_nothing_is_sent() {
    let (mut a, mut b) = typed_channel::<Order>();
    let mut big = order(3);
    big.client = "x".repeat(a.max_frame());
    let mut encoded = Vec::new();
    encode(&big, &mut encoded).unwrap();
    let max = a.max_frame();
    let err = a.post(&big).unwrap_err();
    assert!(
        matches!(err, TypedError::Send(SendError::TooLarge { len, max: m }) if len == encoded.len() && m == max),
        "{err:?}"
    );
    assert!(matches!(
        a.try_post(&big),
        Err(TypedError::Send(SendError::TooLarge { .. }))
    ));
    assert!(matches!(
        b.try_recv(),
        Err(TypedError::Recv(RecvError::Empty))
    ));
    a.post(&order(4)).unwrap();
    assert_eq!(b.recv().unwrap(), order(4));
}

#[test]
fn a_failing_serialize_is_an_encode_error() {
    struct Unsized(Vec<u8>);
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            // A filtered iterator does not know its length; postcard needs it up front.
            s.collect_seq(self.0.iter().filter(|&&b| b > 0))
        }
    }
    impl<'de> Deserialize<'de> for Unsized {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Vec::deserialize(d).map(Unsized)
        }
    }
    let (mut a, mut b) = typed_channel::<Unsized>();
    assert!(matches!(
        a.post(&Unsized(vec![1, 0, 2])),
        Err(TypedError::Encode(
            postcard::Error::SerializeSeqLengthUnknown
        ))
    ));
    assert!(matches!(
        b.try_recv(),
        Err(TypedError::Recv(RecvError::Empty))
    ));
}

/// The child: opens the parent's named channel as a typed port and answers each order
/// with a receipt, until the parent says bye.
fn play_child_role() -> bool {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return false;
    };
    let name = std::env::var(NAME_VAR).unwrap();
    match role.as_str() {
        "clerk" => {
            let mut port = TypedPort::<Msg>::new(MessageChannel::open(&name).unwrap());
            let me = std::process::id();
            let mut seen = 0u64;
            loop {
                match port.recv().unwrap() {
                    Msg::Order(o) => {
                        assert_eq!(o, order(seen));
                        seen += 1;
                        let items = o.lines.iter().map(|(_, q)| u64::from(*q)).sum();
                        port.post(&Msg::Receipt {
                            id: o.id,
                            items,
                            by: me,
                        })
                        .unwrap();
                    }
                    Msg::Bye => break,
                    other => panic!("the clerk got {other:?}"),
                }
            }
            // A frame that is no message at all, then a last good one.
            let mut raw = port.into_inner();
            raw.post_message(&[0xff; 3]).unwrap();
            let mut bye = Vec::new();
            encode(&Msg::Bye, &mut bye).unwrap();
            raw.post_message(&bye).unwrap();
            announce("CLERK-DONE", seen);
        }
        "dying-clerk" => {
            let mut port = TypedPort::<Msg>::new(MessageChannel::open(&name).unwrap());
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            let count: u64 = line.trim().parse().unwrap();
            for i in 0..count {
                port.post(&Msg::Order(order(i))).unwrap();
            }
            announce("POSTED", count);
            // Killed here, holding the port open.
            loop {
                std::thread::sleep(HANG);
            }
        }
        other => panic!("unknown role {other:?}"),
    }
    true
}

#[test]
fn typed_ports_over_a_named_channel_talk_to_another_process() {
    if play_child_role() {
        return;
    }
    let n = env_count("RINGPORT_TYPED_PROCESS_MESSAGES", 500);
    let name = unique("clerk");
    let mut port = TypedPort::<Msg>::new(MessageChannel::create(&name, 4096).unwrap());
    let mut child = Peer::spawn(
        "typed_ports_over_a_named_channel_talk_to_another_process",
        &[(ROLE_VAR, "clerk"), (NAME_VAR, &name)],
    );
    let pid = child.pid();
    for i in 0..n {
        port.post(&Msg::Order(order(i))).unwrap();
        let want: u64 = (0..i % 5).sum();
        assert_eq!(
            port.recv().unwrap(),
            Msg::Receipt {
                id: i,
                items: want,
                by: pid
            }
        );
    }
    port.post(&Msg::Bye).unwrap();
    assert_eq!(child.expect("CLERK-DONE"), n.to_string());
    assert!(matches!(
        port.recv(),
        Err(TypedError::Decode(DecodeError::Malformed(_)))
    ));
    assert_eq!(port.recv().unwrap(), Msg::Bye);
    child.finish();
    assert!(matches!(
        port.recv(),
        Err(TypedError::Recv(RecvError::Disconnected))
    ));
}

#[test]
fn a_typed_port_whose_peer_process_dies_delivers_what_it_sent_then_peer_died() {
    if play_child_role() {
        return;
    }
    let name = unique("dying");
    let mut port = TypedPort::<Msg>::new(MessageChannel::create(&name, 4096).unwrap());
    let mut child = Peer::spawn(
        "a_typed_port_whose_peer_process_dies_delivers_what_it_sent_then_peer_died",
        &[(ROLE_VAR, "dying-clerk"), (NAME_VAR, &name)],
    );
    let pid = child.pid();
    child.tell("3");
    assert_eq!(child.expect("POSTED"), "3");
    child.kill(true);
    let ((), _) = watchdog("receive from a dead peer", HANG, move || {
        for i in 0..3 {
            assert_eq!(port.recv().unwrap(), Msg::Order(order(i)));
        }
        assert!(matches!(
            port.recv(),
            Err(TypedError::Recv(RecvError::PeerDied { pid: p })) if p == pid
        ));
    });
}

#[test]
fn typed_broadcast_reaches_the_other_objects_and_refuses_what_it_must() {
    let opts = BroadcastOptions {
        overflow: Overflow::Backpressure,
        ..Default::default()
    };
    let name = unique("broadcast");
    let mut a = TypedBroadcastChannel::<Order>::with_options("tests", &name, opts).unwrap();
    let mut b = TypedBroadcastChannel::<Order>::with_options("tests", &name, opts).unwrap();
    let mut raw = BroadcastChannel::with_options("tests", &name, opts).unwrap();
    for i in 0..20 {
        a.post_message(&order(i)).unwrap();
    }
    for i in 0..20 {
        assert_eq!(b.recv().unwrap(), order(i));
        let bytes = raw.recv().unwrap();
        assert_eq!(decode::<Order>(bytes), Ok(order(i)));
    }
    assert!(matches!(
        a.try_recv(),
        Err(TypedError::Recv(RecvError::Empty))
    ));

    raw.post_message(b"\xff\xff").unwrap();
    b.post_message(&order(99)).unwrap();
    assert!(matches!(a.recv(), Err(TypedError::Decode(_))));
    assert_eq!(a.recv().unwrap(), order(99));
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(1)),
        Err(TypedError::Recv(RecvError::Timeout))
    ));

    let mut big = order(0);
    big.client = "y".repeat(64 * 1024);
    assert!(matches!(
        a.post_message(&big),
        Err(TypedError::Send(SendError::TooLarge { .. }))
    ));

    b.close();
    assert!(matches!(
        b.post_message(&order(1)),
        Err(TypedError::Channel(ChannelError::Closed))
    ));
    assert!(matches!(
        b.recv(),
        Err(TypedError::Channel(ChannelError::Closed))
    ));
}

/// Counts its drops in a shared counter.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn local_channels_move_values_serde_cannot_describe() {
    /// A closure that makes message `i`'s payload.
    type Job = Box<dyn FnOnce(&Payloads) -> Vec<u8> + Send>;
    let n = env_count("RINGPORT_TYPED_MESSAGES", 2000);
    let ((), _) = watchdog("local jobs", HANG, move || {
        let (mut jobs, mut inbox) = local::<Job>(16);
        let (mut results, mut outbox) = local::<(u64, Vec<u8>)>(16);
        let worker = std::thread::spawn(move || {
            let payloads = Payloads::new(300);
            let mut done = 0;
            while let Ok(job) = inbox.recv() {
                results.send((done, job(&payloads))).unwrap();
                done += 1;
            }
        });
        let feeder = std::thread::spawn(move || {
            for i in 0..n {
                jobs.send(Box::new(move |p: &Payloads| p.get(i).to_vec()))
                    .unwrap();
            }
        });
        let payloads = Payloads::new(300);
        for i in 0..n {
            let (done, bytes) = outbox.recv().unwrap();
            assert_eq!(done, i);
            assert_eq!(bytes, payloads.get(i));
        }
        feeder.join().unwrap();
        worker.join().unwrap();
        assert_eq!(outbox.recv(), Err(RecvError::Disconnected));
    });
}

#[test]
fn every_value_made_for_a_local_channel_is_dropped_exactly_once() {
    let rounds = env_count("RINGPORT_TYPED_DROP_ROUNDS", 50);
    let ((), _) = watchdog("local drops", HANG, move || {
        for round in 0..rounds {
            let made = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicUsize::new(0));
            let (mut tx, mut rx) = local::<Counted>(8);
            let (m, d) = (made.clone(), dropped.clone());
            // The sender keeps sending until the receiver's drop refuses it: it may be
            // waiting on a full ring, or between sends, when the receiver goes.
            let sender = std::thread::spawn(move || loop {
                m.fetch_add(1, Ordering::Relaxed);
                if let Err(LocalSendError { value, error }) = tx.send(Counted(d.clone())) {
                    assert_eq!(error, SendError::Disconnected);
                    drop(value);
                    return tx;
                }
            });
            for _ in 0..round % 20 {
                drop(rx.recv().unwrap());
            }
            drop(rx);
            let tx = sender.join().unwrap();
            drop(tx);
            assert_eq!(
                dropped.load(Ordering::Relaxed),
                made.load(Ordering::Relaxed),
                "round {round}"
            );
        }
    });
}

#[test]
fn a_local_send_that_fails_gives_its_value_back() {
    let (mut tx, mut rx) = local::<String>(1);
    let cap = tx.capacity();
    for i in 0..cap {
        tx.try_send(i.to_string()).unwrap();
    }
    let err = tx.try_send("full".into()).unwrap_err();
    assert_eq!((err.value.as_str(), err.error), ("full", SendError::Full));
    let err = tx
        .send_timeout("late".into(), Duration::from_millis(1))
        .unwrap_err();
    assert_eq!(
        (err.value.as_str(), err.error),
        ("late", SendError::Timeout)
    );
    assert_eq!(err.to_string(), SendError::Timeout.to_string());
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "0");
    drop(rx);
    let err = tx.send("gone".into()).unwrap_err();
    assert_eq!(
        (err.value.as_str(), err.error),
        ("gone", SendError::Disconnected)
    );
}
