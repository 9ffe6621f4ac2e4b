//! Loom models of the buffer pool's ownership protocol: every change of hands is one
//! compare-and-swap of a buffer's state word, and that word's orderings are all that
//! orders one holder's accesses to the bytes before the next holder's.
//!
//! Every pool has one class of one 64-byte buffer, so that each loan after the first
//! reuses the bytes that another thread has just written or read. The bytes live in a
//! loom cell: a holder that touches them without having acquired the previous holder's
//! release is reported as a causality violation. Handles cross between threads outside
//! the pool's memory, published by a `Relaxed` flag, so that nothing but the pool orders
//! the bytes.
//!
//! A thread that waits for the buffer to come back sleeps in a blocking loan, and at most
//! one thread of a model polls (for a handle): a sleeper costs loom far fewer branches
//! than a poller (see `mpmc.rs`).
#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use ringport::pool::{BufferHandle, BufferPool, PoolOptions, TransferError};
use std::sync::OnceLock;
use std::time::Duration;

/// Never reached under loom, whose modelled futex never times out: a blocking loan ends
/// only when a returned buffer wakes it.
const FOREVER: Duration = Duration::from_secs(3600);

/// How many bytes each holder writes and reads.
const LEN: usize = 8;

/// A pool of one 64-byte buffer.
fn pool() -> BufferPool {
    let pool = BufferPool::new(PoolOptions::with_classes(&[(64, 1)])).expect("pool");
    assert_eq!(pool.classes(), [(64, 1)]);
    pool
}

/// Passes a handle from one thread to another. The handle lies in a std cell, which loom
/// does not see, and its arrival is announced by a `Relaxed` store of a loom atomic, so
/// that neither orders the sender's accesses to the bytes before the receiver's: only
/// the pool's send and accept may.
#[derive(Clone)]
struct Mailbox {
    handle: std::sync::Arc<OnceLock<BufferHandle>>,
    posted: Arc<AtomicU64>,
}

impl Mailbox {
    fn new() -> Self {
        Mailbox {
            handle: std::sync::Arc::new(OnceLock::new()),
            posted: Arc::new(AtomicU64::new(0)),
        }
    }

    fn post(&self, h: BufferHandle) {
        self.handle.set(h).expect("one handle per mailbox");
        self.posted.store(1, Ordering::Relaxed);
    }

    /// Polls, yielding, until the handle is posted.
    fn wait(&self) -> BufferHandle {
        while self.posted.load(Ordering::Relaxed) == 0 {
            thread::yield_now();
        }
        *self.handle.get().expect("posted after set")
    }
}

/// Asserts that the bytes are `LEN` copies of `byte`, written by `who`.
fn assert_bytes(got: &[u8], byte: u8, who: &str) {
    assert_eq!(got, [byte; LEN], "the bytes {who} wrote");
}

/// A buffer changes hands twice: its sender writes it and sends it, a receiver accepts
/// it, reads the sender's bytes, writes its own and returns it to the pool, and the
/// sender's next loan, which waits for that return, writes it again. The receiver's
/// accept must acquire the send, and the second loan the receiver's return, or two
/// holders' accesses overlap. The receiver may find the handle before or after the
/// sender has begun waiting for the buffer.
#[test]
fn a_sent_buffer_has_one_holder_at_a_time() {
    loom_tests::run(&["pool_loan_relaxed"], || {
        let pool = pool();
        let mailbox = Mailbox::new();
        let receiver = {
            let (pool, mailbox) = (pool.clone(), mailbox.clone());
            thread::spawn(move || {
                let mut buf = pool
                    .accept(&mailbox.wait())
                    .expect("accept the sent buffer");
                buf.with_bytes(|b| assert_bytes(b, 0xa1, "the sender"));
                buf.with_bytes_mut(|b| b.fill(0xb1));
            })
        };
        let mut buf = pool.try_loan(LEN).expect("the only buffer");
        buf.with_bytes_mut(|b| b.fill(0xa1));
        mailbox.post(buf.into_handle());
        let mut again = pool
            .loan_timeout(LEN, FOREVER)
            .expect("the buffer comes back");
        again.with_bytes(|b| assert_bytes(b, 0xb1, "the receiver"));
        again.with_bytes_mut(|b| b.fill(0xa2));
        drop(again);
        receiver.join().unwrap();
        assert_eq!(pool.available(), [1]);
    });
}

/// ABA: a receiver accepts a handle and returns the buffer, then presents the same
/// handle again, while another thread loans the buffer, writes it, sends it and accepts
/// its own handle back. The replayed handle names the first loan, which is over: it must
/// be refused as stale however the two interleave, and in particular while the second
/// loan is in flight, when the state word differs from the one the first handle named in
/// nothing but the generation. The second loan's own handle must then reach it intact.
#[test]
fn a_replayed_handle_never_takes_a_later_loan() {
    loom_tests::run(&["pool_no_generation", "pool_loan_relaxed"], || {
        let pool = pool();
        let mut first = pool.try_loan(LEN).expect("the only buffer");
        first.with_bytes_mut(|b| b.fill(0xa1));
        let h1 = first.into_handle();
        let replayer = {
            let pool = pool.clone();
            thread::spawn(move || {
                let buf = pool.accept(&h1).expect("accept the first loan");
                buf.with_bytes(|b| assert_bytes(b, 0xa1, "the first holder"));
                drop(buf);
                match pool.accept(&h1) {
                    Err(TransferError::Stale { .. }) => {}
                    Err(e) => panic!("a replayed handle was refused, but not as stale: {e}"),
                    Ok(stolen) => panic!(
                        "a replayed handle of generation {} took the buffer {stolen:?}",
                        h1.generation()
                    ),
                }
            })
        };
        let mut second = pool
            .loan_timeout(LEN, FOREVER)
            .expect("the buffer comes back");
        second.with_bytes_mut(|b| b.fill(0xc1));
        let h2 = second.into_handle();
        let back = pool
            .accept(&h2)
            .unwrap_or_else(|e| panic!("the second loan's handle was refused: {e}"));
        back.with_bytes(|b| assert_bytes(b, 0xc1, "the second holder"));
        drop(back);
        replayer.join().unwrap();
        assert_eq!(pool.available(), [1]);
    });
}

/// A publisher shares a buffer it wrote; two readers take references, read its bytes and
/// drop them, while the publisher retires its anchor and then loans the buffer again
/// (waiting until the last reference is gone) and writes it. A reader that comes after
/// the buffer went back finds its handle stale, which is fine; a reader that took a
/// reference must read the publisher's bytes, and its read must be over before the
/// publisher's next write: the last reference dropped, a reader's or the anchor, frees
/// the buffer with `AcqRel`, acquiring every earlier reader's drop. The buffer goes back
/// exactly once.
#[test]
fn a_shared_buffer_goes_back_after_its_last_reader() {
    loom_tests::run(&["pool_unref_relaxed", "pool_loan_relaxed"], || {
        let pool = pool();
        let mut buf = pool.try_loan(LEN).expect("the only buffer");
        buf.with_bytes_mut(|b| b.fill(0x5a));
        let h = pool.share_for_model(buf);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || match pool.accept_shared(&h) {
                    Ok(shared) => shared.with_bytes(|b| assert_bytes(b, 0x5a, "the publisher")),
                    Err(TransferError::Stale { .. }) => {}
                    Err(e) => panic!("accept_shared: {e}"),
                })
            })
            .collect();
        pool.retire_for_model(&h);
        let mut next = pool
            .loan_timeout(LEN, FOREVER)
            .expect("the buffer comes back");
        next.with_bytes_mut(|b| b.fill(0x77));
        drop(next);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(pool.available(), [1]);
    });
}
