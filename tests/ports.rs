//! `MessageChannel` ports between threads of one process: order, close, timeouts, sizes,
//! in-place reads, batches, and a stress run of blocking calls on tiny rings.
//!
//! Every call that could block forever runs under a watchdog, so a lost wakeup or a
//! missed close fails the test instead of hanging it. Heap-placed rings sleep without a
//! timeout, so in this process a lost wakeup is a real hang, not a slow message. Stress
//! sizes come from `RINGPORT_STRESS_MESSAGES` (default 200 000).

mod common;

use bytemuck::{Pod, Zeroable};
use common::{env_count, watchdog, Payloads};
use ringport::atomics::futex_syscalls;
use ringport::{MessageChannel, MessagePort, PodPort, RecvError, SendError};
use std::thread;
use std::time::Duration;

/// Far above any plausible duration of a blocking call here: only a hang reaches it.
const HANG: Duration = Duration::from_secs(5);
/// The same for whole stress runs.
const STRESS_HANG: Duration = Duration::from_secs(60);

fn stress_messages() -> u64 {
    env_count("RINGPORT_STRESS_MESSAGES", 200_000)
}

/// A short pause so that a thread about to block has most likely gone to sleep; the
/// tests pass whether or not it has.
fn let_it_sleep() {
    thread::sleep(Duration::from_millis(20));
}

/// Sends `n` values `base + i` and receives `n` values `peer_base + i` at the same time,
/// with non-blocking calls only: two ports that both blocked on a full ring would wait for
/// each other forever.
fn exchange_pod(port: &mut PodPort<u64>, n: u64, base: u64, peer_base: u64) {
    let (mut sent, mut got) = (0, 0);
    let mut chunk: Vec<u64> = Vec::new();
    let mut inbox = [0u64; 16];
    while sent < n || got < n {
        let mut progress = false;
        if sent < n {
            // Both publishing paths: single stores and batches of up to 9.
            let k = (sent % 10).min(n - sent);
            let r = if k <= 1 {
                port.try_post_message(base + sent).map(|()| 1)
            } else {
                chunk.clear();
                chunk.extend((sent..sent + k).map(|i| base + i));
                port.try_post_batch(&chunk)
            };
            match r {
                Ok(k) => {
                    sent += k as u64;
                    progress = true;
                }
                Err(SendError::Full) => {}
                Err(e) => panic!("send {sent}: {e}"),
            }
        }
        let r = if got % 3 == 0 {
            port.try_recv_batch(&mut inbox[..(got % 16 + 1) as usize])
        } else {
            port.try_recv().map(|v| {
                inbox[0] = v;
                1
            })
        };
        match r {
            Ok(k) => {
                for &v in &inbox[..k] {
                    assert_eq!(v, peer_base + got, "receive {got}");
                    got += 1;
                }
                progress = true;
            }
            Err(RecvError::Empty) => {}
            Err(e) => panic!("receive {got}: {e}"),
        }
        if !progress {
            thread::yield_now();
        }
    }
}

#[test]
fn pod_ports_are_fifo_both_ways_under_load() {
    let n = stress_messages() / 2;
    let (mut a, mut b) = MessageChannel::pod::<u64>(64);
    let ((a, mut b), took) = watchdog("pod exchange", STRESS_HANG, move || {
        thread::scope(|s| {
            s.spawn(|| exchange_pod(&mut a, n, 0, 1 << 40));
            s.spawn(|| exchange_pod(&mut b, n, 1 << 40, 0));
        });
        (a, b)
    });
    eprintln!("pod exchange: {n} messages each way in {took:?}");
    a.close();
    assert_eq!(b.try_recv(), Err(RecvError::Disconnected));
}

/// As [`exchange_pod`], for frames `payloads.get(base + i)`.
fn exchange_frames(port: &mut MessagePort, payloads: &Payloads, n: u64, base: u64, peer_base: u64) {
    let (mut sent, mut got) = (0, 0);
    while sent < n || got < n {
        let mut progress = false;
        if sent < n {
            let r = port.try_post_message(payloads.get(base + sent));
            match r {
                Ok(()) => {
                    sent += 1;
                    progress = true;
                }
                Err(SendError::Full) => {}
                Err(e) => panic!("send {sent}: {e}"),
            }
        }
        let r = if got % 2 == 0 {
            let mut k = 0;
            let r = port.try_recv_batch(7, |f| {
                assert_eq!(f, payloads.get(peer_base + got + k), "receive {}", got + k);
                k += 1;
            });
            r.map(|n| {
                assert_eq!(n as u64, k);
                k
            })
        } else {
            port.try_recv().map(|f| {
                assert_eq!(&*f, payloads.get(peer_base + got), "receive {got}");
                1
            })
        };
        match r {
            Ok(k) => {
                got += k;
                progress = true;
            }
            Err(RecvError::Empty) => {}
            Err(e) => panic!("receive {got}: {e}"),
        }
        if !progress {
            thread::yield_now();
        }
    }
}

#[test]
fn frame_ports_are_fifo_both_ways_under_load() {
    let n = stress_messages() / 4;
    let ch = MessageChannel::with_capacity(4096);
    let payloads = Payloads::new(300);
    let (mut a, mut b) = (ch.port1, ch.port2);
    let (_, took) = watchdog("frame exchange", STRESS_HANG, move || {
        thread::scope(|s| {
            s.spawn(|| exchange_frames(&mut a, &payloads, n, 0, 1 << 40));
            s.spawn(|| exchange_frames(&mut b, &payloads, n, 1 << 40, 0));
        });
    });
    eprintln!("frame exchange: {n} frames each way in {took:?}");
}

#[test]
fn close_drains_then_disconnects() {
    watchdog("close_drains_then_disconnects", HANG, || {
        let (mut a, mut b) = MessageChannel::pod::<u32>(32);
        a.post_batch(&[1, 2, 3]).unwrap();
        a.post_message(4).unwrap();
        a.close();
        let mut out = [0; 2];
        assert_eq!(b.recv_batch(&mut out), Ok(2));
        assert_eq!(out, [1, 2]);
        assert_eq!(b.try_recv(), Ok(3));
        assert_eq!(b.recv(), Ok(4));
        assert_eq!(b.recv(), Err(RecvError::Disconnected));
        assert_eq!(b.try_recv(), Err(RecvError::Disconnected));
        assert_eq!(b.recv_timeout(HANG), Err(RecvError::Disconnected));
        assert_eq!(b.recv_batch(&mut out), Err(RecvError::Disconnected));
        assert_eq!(b.try_recv_batch(&mut out), Err(RecvError::Disconnected));
        assert_eq!(b.post_message(5), Err(SendError::Disconnected));

        let ch = MessageChannel::with_capacity(1024);
        let (mut a, mut b) = (ch.port1, ch.port2);
        a.post_batch(&[&b"one"[..], b"", b"three"]).unwrap();
        a.post_message(b"four").unwrap();
        drop(a);
        assert_eq!(&*b.recv().unwrap(), b"one");
        assert_eq!(b.try_recv().unwrap().len(), 0);
        let mut rest = Vec::new();
        assert_eq!(b.recv_batch(8, |f| rest.push(f.to_vec())), Ok(2));
        assert_eq!(rest, [b"three".to_vec(), b"four".to_vec()]);
        assert_eq!(b.recv().err(), Some(RecvError::Disconnected));
        assert_eq!(b.try_recv().err(), Some(RecvError::Disconnected));
        assert_eq!(b.recv_timeout(HANG).err(), Some(RecvError::Disconnected));
        assert_eq!(b.recv_batch(8, |_| ()), Err(RecvError::Disconnected));
        assert_eq!(b.try_recv_batch(8, |_| ()), Err(RecvError::Disconnected));
    });
}

#[test]
fn sending_to_a_closed_port_is_disconnected() {
    watchdog("sending_to_a_closed_port_is_disconnected", HANG, || {
        let (mut a, b) = MessageChannel::pod::<u64>(1);
        while a.try_post_message(0).is_ok() {}
        b.close();
        // Disconnected wins over Full: the values can never be received.
        assert_eq!(a.try_post_message(1), Err(SendError::Disconnected));
        assert_eq!(a.post_message(1), Err(SendError::Disconnected));
        assert_eq!(
            a.post_message_timeout(1, HANG),
            Err(SendError::Disconnected)
        );
        assert_eq!(a.post_batch(&[1, 2]), Err(SendError::Disconnected));
        assert_eq!(a.try_post_batch(&[1, 2]), Err(SendError::Disconnected));
        assert_eq!(a.recv(), Err(RecvError::Disconnected));

        let ch = MessageChannel::with_capacity(256);
        let (mut a, b) = (ch.port1, ch.port2);
        a.post_message(b"unread").unwrap();
        drop(b);
        assert_eq!(a.try_post_message(b"x"), Err(SendError::Disconnected));
        assert_eq!(a.post_message(b"x"), Err(SendError::Disconnected));
        assert_eq!(
            a.post_message_timeout(b"x", HANG),
            Err(SendError::Disconnected)
        );
        assert_eq!(a.post_pod(&7u64), Err(SendError::Disconnected));
        assert_eq!(a.post_batch(&[b"x"]), Err(SendError::Disconnected));
        assert_eq!(a.recv().err(), Some(RecvError::Disconnected));
    });
}

#[test]
fn timeouts_on_full_and_empty() {
    let short = Duration::from_millis(30);
    let (mut a, mut b) = MessageChannel::pod::<u64>(10);
    assert_eq!(b.recv_timeout(short), Err(RecvError::Timeout));
    let mut fitted = 0;
    while a.try_post_message(fitted).is_ok() {
        fitted += 1;
    }
    assert_eq!(fitted, a.capacity() as u64);
    assert_eq!(a.post_message_timeout(99, short), Err(SendError::Timeout));
    for i in 0..fitted {
        assert_eq!(b.recv_timeout(short), Ok(i));
    }
    // The timed-out value was not delivered.
    assert_eq!(b.recv_timeout(short), Err(RecvError::Timeout));
    a.post_message_timeout(100, short).unwrap();
    assert_eq!(b.recv_timeout(short), Ok(100));

    let ch = MessageChannel::with_capacity(256);
    let (mut a, mut b) = (ch.port1, ch.port2);
    assert_eq!(b.recv_timeout(short).err(), Some(RecvError::Timeout));
    let mut fitted = 0u8;
    while a.try_post_message(&[fitted; 20]).is_ok() {
        fitted += 1;
    }
    assert_eq!(
        a.post_message_timeout(&[99; 20], short),
        Err(SendError::Timeout)
    );
    for i in 0..fitted {
        assert_eq!(&*b.recv_timeout(short).unwrap(), &[i; 20]);
    }
    assert_eq!(b.recv_timeout(short).err(), Some(RecvError::Timeout));
}

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Quote {
    id: u64,
    price: f64,
    qty: u32,
    side: u32,
}

#[test]
fn pod_frames_are_read_in_place() {
    watchdog("pod_frames_are_read_in_place", HANG, || {
        let ch = MessageChannel::with_capacity(512);
        let (mut a, mut b) = (ch.port1, ch.port2);
        // Odd-length frames in between shift later frames around the ring; payloads stay
        // 8-aligned wherever they land, including just after a wrap.
        for id in 0..200u64 {
            let q = Quote {
                id,
                price: id as f64 * 0.25,
                qty: id as u32 * 3,
                side: id as u32 % 2,
            };
            a.post_pod(&q).unwrap();
            a.post_message(&vec![id as u8; id as usize % 13]).unwrap();
            let f = b.recv().unwrap();
            let view: &Quote = f.as_pod().expect("a whole, aligned Quote");
            assert_eq!(*view, q);
            assert!(
                std::ptr::eq(f.as_bytes().as_ptr(), (view as *const Quote).cast()),
                "as_pod borrows the frame's bytes instead of copying them"
            );
            assert_eq!(f.read_pod::<Quote>(), Some(q));
            assert_eq!(f.as_pod::<u64>(), None, "wrong size");
            assert_eq!(f.read_pod::<[u8; 3]>(), None, "wrong size");
            drop(f);
            let odd = b.recv().unwrap();
            assert_eq!(odd.len(), id as usize % 13);
            assert_eq!(odd.as_pod::<Quote>(), None);
        }
        a.post_pod(&[1.5f64, -2.0]).unwrap();
        assert_eq!(b.recv().unwrap().as_pod::<[f64; 2]>(), Some(&[1.5, -2.0]));
        a.post_pod(&u128::MAX).unwrap();
        assert_eq!(b.recv().unwrap().read_pod::<u128>(), Some(u128::MAX));
    });
}

#[test]
fn oversized_frames_are_refused_whole() {
    watchdog("oversized_frames_are_refused_whole", HANG, || {
        let ch = MessageChannel::with_capacity(1024);
        let (mut a, mut b) = (ch.port1, ch.port2);
        let max = a.max_frame();
        assert_eq!(max, 1024 / 2 - 16);
        let too_large = SendError::TooLarge { len: max + 1, max };
        let big = vec![7u8; max + 1];
        assert_eq!(a.post_message(&big), Err(too_large));
        assert_eq!(a.try_post_message(&big), Err(too_large));
        assert_eq!(a.post_message_timeout(&big, HANG), Err(too_large));
        assert_eq!(
            a.post_pod(&[0u64; 64]),
            Err(SendError::TooLarge { len: 512, max })
        );
        assert_eq!(
            b.try_recv().err(),
            Some(RecvError::Empty),
            "nothing was delivered"
        );

        // Frames before the oversized one in a batch are sent, none after it.
        assert_eq!(
            a.post_batch(&[&b"before"[..], &big[..], &b"after"[..]]),
            Err(too_large)
        );
        assert_eq!(&*b.try_recv().unwrap(), b"before");
        assert_eq!(b.try_recv().err(), Some(RecvError::Empty));

        // The largest frame passes, repeatedly, wherever the ring happens to be.
        for i in 0..10u8 {
            a.post_message(&[i; 5]).unwrap();
            a.post_message(&vec![i; max]).unwrap();
            assert_eq!(&*b.recv().unwrap(), &[i; 5]);
            assert_eq!(&*b.recv().unwrap(), &vec![i; max][..]);
        }
        assert_eq!(b.try_recv().err(), Some(RecvError::Empty));
    });
}

#[test]
fn batches_cross_small_rings_in_order() {
    let n = stress_messages();
    let (mut a, mut b) = MessageChannel::pod::<u64>(20);
    let (got, took) = watchdog("pod batches", STRESS_HANG, move || {
        thread::scope(|s| {
            s.spawn(move || {
                let values: Vec<u64> = (0..n).collect();
                // Batches from 1 to 97 values, many larger than the ring.
                let mut at = 0;
                while at < n {
                    let k = (at % 97 + 1).min(n - at);
                    a.post_batch(&values[at as usize..(at + k) as usize])
                        .unwrap();
                    at += k;
                }
            });
            let mut next = 0;
            let mut buf = [0u64; 50];
            loop {
                let room = (next % 50 + 1) as usize;
                match b.recv_batch(&mut buf[..room]) {
                    Ok(k) => {
                        for &v in &buf[..k] {
                            assert_eq!(v, next);
                            next += 1;
                        }
                    }
                    Err(RecvError::Disconnected) => break next,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    });
    assert_eq!(got, n);
    eprintln!("pod batches: {n} values in {took:?}");

    let n = stress_messages() / 4;
    let ch = MessageChannel::with_capacity(1024);
    let (mut a, mut b) = (ch.port1, ch.port2);
    let payloads = Payloads::new(a.max_frame());
    let (got, took) = watchdog("frame batches", STRESS_HANG, move || {
        thread::scope(|s| {
            let payloads = &payloads;
            s.spawn(move || {
                let mut at = 0;
                while at < n {
                    let k = (at % 13 + 1).min(n - at);
                    let frames: Vec<&[u8]> = (at..at + k).map(|i| payloads.get(i)).collect();
                    a.post_batch(&frames).unwrap();
                    at += k;
                }
            });
            let mut next = 0;
            loop {
                let r = b.recv_batch((next % 9 + 1) as usize, |f| {
                    assert_eq!(f, payloads.get(next), "frame {next}");
                    next += 1;
                });
                match r {
                    Ok(_) => {}
                    Err(RecvError::Disconnected) => break next,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    });
    assert_eq!(got, n);
    eprintln!("frame batches: {n} frames in {took:?}");
}

#[test]
fn blocked_receivers_wake_when_the_peer_closes() {
    let (a, mut b) = MessageChannel::pod::<u64>(8);
    let closer = thread::spawn(move || {
        let_it_sleep();
        a.close();
    });
    let (r, _) = watchdog("pod recv", HANG, move || b.recv());
    assert_eq!(r, Err(RecvError::Disconnected));
    closer.join().unwrap();

    let ch = MessageChannel::with_capacity(256);
    let (a, mut b) = (ch.port1, ch.port2);
    let closer = thread::spawn(move || {
        let_it_sleep();
        a.close();
    });
    let (r, _) = watchdog("frame recv", HANG, move || b.recv().map(|f| f.len()));
    assert_eq!(r, Err(RecvError::Disconnected));
    closer.join().unwrap();
}

#[test]
fn blocked_senders_wake_when_the_peer_closes() {
    let (mut a, b) = MessageChannel::pod::<u64>(8);
    while a.try_post_message(0).is_ok() {}
    let closer = thread::spawn(move || {
        let_it_sleep();
        b.close();
    });
    let (r, _) = watchdog("pod send", HANG, move || a.post_message(1));
    assert_eq!(r, Err(SendError::Disconnected));
    closer.join().unwrap();

    let ch = MessageChannel::with_capacity(256);
    let (mut a, b) = (ch.port1, ch.port2);
    while a.try_post_message(&[0; 30]).is_ok() {}
    let closer = thread::spawn(move || {
        let_it_sleep();
        b.close();
    });
    let (r, _) = watchdog("frame send", HANG, move || a.post_message(&[1; 30]));
    assert_eq!(r, Err(SendError::Disconnected));
    closer.join().unwrap();
}

/// Irregular pauses on one side of a stream: now and then long enough for the other side
/// to run out of messages or room and go to sleep, often a yield or a short spin that
/// moves where the two sides meet inside the announce-recheck-sleep window.
struct Jitter(u64);

impl Jitter {
    fn pause(&mut self) {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        match *x % 1024 {
            0..=1 => thread::sleep(Duration::from_micros(300)),
            2..=40 => thread::yield_now(),
            41..=80 => (0..(*x >> 20) % 500).for_each(|_| std::hint::spin_loop()),
            _ => {}
        }
    }
}

/// Reports how many futex syscalls a stress run made: evidence that it exercised sleeping
/// and waking, not only spinning. Process-wide, so tests running beside it add to it.
fn report(what: &str, n: u64, took: Duration, futex_before: u64) {
    let futex = futex_syscalls() - futex_before;
    eprintln!("{what}: {n} in {took:?}, {futex} futex syscalls in the process meanwhile");
}

// Blocking sends and receives through rings of two blocks (pod: 14 values) and 128 bytes
// (frames: at most two 48-byte frames), so both sides sleep and wake all the time. A lost
// wakeup leaves a side asleep for good, which the watchdog reports.

#[test]
fn stress_pod_stream_on_a_tiny_ring() {
    let n = stress_messages();
    let (mut a, mut b) = MessageChannel::pod::<u64>(1);
    assert_eq!(a.capacity(), 14);
    let before = futex_syscalls();
    let (got, took) = watchdog("pod stream", STRESS_HANG, move || {
        let sender = thread::spawn(move || {
            let mut jitter = Jitter(1);
            for i in 0..n {
                a.post_message(i).unwrap();
                jitter.pause();
            }
        });
        let mut jitter = Jitter(2);
        let mut next = 0;
        loop {
            match b.recv() {
                Ok(v) => {
                    assert_eq!(v, next);
                    next += 1;
                }
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("{e}"),
            }
            jitter.pause();
        }
        sender.join().unwrap();
        next
    });
    assert_eq!(got, n);
    report("pod stream", n, took, before);
}

#[test]
fn stress_frame_stream_on_a_tiny_ring() {
    let n = stress_messages();
    let ch = MessageChannel::with_capacity(128);
    let (mut a, mut b) = (ch.port1, ch.port2);
    assert_eq!(a.max_frame(), 48);
    let payloads = Payloads::new(a.max_frame());
    let before = futex_syscalls();
    let (got, took) = watchdog("frame stream", STRESS_HANG, move || {
        thread::scope(|s| {
            let payloads = &payloads;
            s.spawn(move || {
                let mut jitter = Jitter(3);
                for i in 0..n {
                    a.post_message(payloads.get(i)).unwrap();
                    jitter.pause();
                }
            });
            let mut jitter = Jitter(4);
            let mut next = 0;
            loop {
                match b.recv() {
                    Ok(f) => {
                        assert_eq!(&*f, payloads.get(next), "frame {next}");
                        next += 1;
                    }
                    Err(RecvError::Disconnected) => break next,
                    Err(e) => panic!("{e}"),
                }
                jitter.pause();
            }
        })
    });
    assert_eq!(got, n);
    report("frame stream", n, took, before);
}

/// Every message waits for its reply, so a pause on either side puts the other to sleep.
#[test]
fn stress_ping_pong_on_tiny_rings() {
    let rounds = stress_messages() / 4;
    let (mut a, mut b) = MessageChannel::pod::<u64>(1);
    let before = futex_syscalls();
    let (_, took) = watchdog("ping-pong", STRESS_HANG, move || {
        let echo = thread::spawn(move || {
            let mut jitter = Jitter(5);
            while let Ok(v) = b.recv() {
                jitter.pause();
                b.post_message(v + 1).unwrap();
            }
        });
        let mut jitter = Jitter(6);
        for i in 0..rounds {
            a.post_message(i * 2).unwrap();
            assert_eq!(a.recv(), Ok(i * 2 + 1));
            jitter.pause();
        }
        drop(a);
        echo.join().unwrap();
    });
    report("ping-pong round trips", rounds, took, before);
}
