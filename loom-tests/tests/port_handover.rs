//! Loom models of a port's handover: one end of a frame ring leaves its holder in the
//! middle of a stream and is taken by another thread, as a transferred port's ends are,
//! while the peer at the other end keeps going.
//!
//! The handover object moves to the new holder with the spawn of its thread, as a ticket
//! moves with the message that carries it. What the models check is what the peer sees
//! meanwhile: every frame exactly once and in order, and never the end closed on its way
//! between holders. The control `port_handover_closes` lets the end pass through
//! `CLOSED` before `HANDOVER`: the peer, reading the end in that window, gives up (a
//! sender gets `Disconnected`, a receiver that finds the ring empty reads the end as
//! gone), and the model fails.
#![cfg(loom)]

use loom::thread;
use loom_tests::run;
use ringport::ring::{FrameConsumer, FrameProducer, FrameRing};
use ringport::RecvError;

const CONTROLS: &[&str] = &["port_handover_closes"];

fn frame(i: u8) -> Vec<u8> {
    vec![i; 8 + usize::from(i)]
}

fn ring() -> (FrameProducer, FrameConsumer) {
    FrameRing::with_capacity(128)
}

#[test]
fn a_receiving_end_changes_holders_mid_stream() {
    run(CONTROLS, || {
        let (mut tx, mut rx) = ring();
        let peer = thread::spawn(move || {
            for i in 0..2 {
                tx.send(&frame(i))
                    .unwrap_or_else(|e| panic!("the peer's send {i}: {e}"));
            }
        });
        assert_eq!(rx.recv_with(<[u8]>::to_vec), Ok(frame(0)));
        let handover = rx.hand_over_for_model();
        let taker = thread::spawn(move || {
            let mut rx = handover
                .into_consumer()
                .expect("the end waits for its taker");
            for i in 1..2 {
                assert_eq!(rx.recv_with(<[u8]>::to_vec), Ok(frame(i)));
            }
            rx
        });
        peer.join().unwrap();
        let mut rx = taker.join().unwrap();
        assert_eq!(rx.try_recv_with(|_| ()), Err(RecvError::Disconnected));
    });
}

#[test]
fn a_sending_end_changes_holders_mid_stream() {
    run(CONTROLS, || {
        let (mut tx, mut rx) = ring();
        let peer = thread::spawn(move || {
            let got: Vec<Vec<u8>> = (0..2)
                .map(|i| {
                    rx.recv_with(<[u8]>::to_vec)
                        .unwrap_or_else(|e| panic!("the peer's receive {i}: {e}"))
                })
                .collect();
            (got, rx)
        });
        tx.send(&frame(0)).unwrap();
        let handover = tx.hand_over_for_model();
        let taker = thread::spawn(move || {
            let mut tx = handover
                .into_producer()
                .expect("the end waits for its taker");
            for i in 1..2 {
                tx.send(&frame(i)).unwrap();
            }
        });
        taker.join().unwrap();
        let (got, mut rx) = peer.join().unwrap();
        assert_eq!(got, [frame(0), frame(1)]);
        // The taker dropped the end: now, and only now, it is closed.
        assert_eq!(rx.try_recv_with(|_| ()), Err(RecvError::Disconnected));
    });
}
