//! Model-based tests of the two SPSC rings: random sequences of non-blocking operations
//! from one thread, checked against a `VecDeque` model.
//!
//! Beyond FIFO order, no loss and no duplication, the model predicts every `Full` exactly.
//! That needs the rings' lazy release rules (module docs of `ring::pod` and `ring::frame`):
//! the consumer hands space back only when a quarter of the ring is pending, when it finds
//! the ring empty, and once per batch receive, and the producer re-reads the consumer's
//! release count only when its cached copy says the ring is full. So a ring can refuse a
//! message while it holds fewer than `capacity`, but never once the consumer has seen it
//! empty and nothing was sent since.
//!
//! Case counts follow `PROPTEST_CASES` (proptest's default, 256, otherwise).

use proptest::prelude::*;
use ringport::ring::{FrameConsumer, FrameProducer, FrameRing, PodConsumer, PodProducer, PodRing};
use ringport::{RecvError, SendError};
use std::collections::VecDeque;

/// `u64`s per 64-byte block: an 8-byte stamp, then seven slots (see `ring::pod`).
const U64_PER_BLOCK: u64 = 7;

#[derive(Clone, Debug)]
enum Op {
    Send,
    SendBatch(usize),
    Recv,
    RecvBatch(usize),
    DropProducer,
    DropConsumer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => Just(Op::Send),
        12 => (0..24usize).prop_map(Op::SendBatch),
        30 => Just(Op::Recv),
        12 => (0..24usize).prop_map(Op::RecvBatch),
        1 => Just(Op::DropProducer),
        1 => Just(Op::DropConsumer),
    ]
}

/// What the consumer has handed back, as the documented release rules predict it.
struct Released {
    /// Blocks (pod) or bytes (frames) stored in the ring's `released` word.
    value: u64,
    /// Pending amount at which a single receive hands back: a quarter of the ring.
    quarter: u64,
}

impl Released {
    /// After one message: hand back if a quarter of the ring is pending.
    fn after_single(&mut self, finished: u64) {
        if finished - self.value >= self.quarter {
            self.value = finished;
        }
    }

    /// On finding the ring empty, and at the end of every batch receive.
    fn all(&mut self, finished: u64) {
        self.value = finished;
    }
}

struct PodModel {
    tx: Option<PodProducer<u64>>,
    rx: Option<PodConsumer<u64>>,
    queue: VecDeque<u64>,
    blocks: u64,
    sent: u64,
    received: u64,
    released: Released,
    /// The consumer found the ring empty and nothing was received since.
    saw_empty: bool,
}

impl PodModel {
    fn new(requested: usize) -> Self {
        let (tx, rx) = PodRing::<u64>::with_capacity(requested);
        let blocks = (requested as u64).div_ceil(U64_PER_BLOCK).max(2);
        assert_eq!(tx.capacity() as u64, blocks * U64_PER_BLOCK);
        assert_eq!(rx.capacity(), tx.capacity());
        PodModel {
            tx: Some(tx),
            rx: Some(rx),
            queue: VecDeque::new(),
            blocks,
            sent: 0,
            received: 0,
            released: Released {
                value: 0,
                quarter: (blocks / 4).max(1),
            },
            saw_empty: false,
        }
    }

    /// Slots the producer may still fill: it enters a block only once the consumer has
    /// handed back that block's previous lap.
    fn room(&self) -> u64 {
        (self.released.value + self.blocks) * U64_PER_BLOCK - self.sent
    }

    fn finished_blocks(&self) -> u64 {
        self.received / U64_PER_BLOCK
    }

    fn expect_not_full_when_empty(&self, r: &Result<usize, SendError>) {
        assert!(
            !(r == &Err(SendError::Full) && self.queue.is_empty() && self.saw_empty),
            "Full although the consumer saw the ring empty and nothing was sent since"
        );
    }

    fn send(&mut self, count: usize) {
        let values: Vec<u64> = (self.sent..self.sent + count as u64).collect();
        let expect = if self.rx.is_none() {
            Err(SendError::Disconnected)
        } else {
            let n = self.room().min(count as u64) as usize;
            if n == 0 && count > 0 {
                Err(SendError::Full)
            } else {
                Ok(n)
            }
        };
        let Some(tx) = self.tx.as_mut() else { return };
        let got = if count == 1 {
            tx.try_send(values[0]).map(|()| 1)
        } else {
            tx.try_send_batch(&values)
        };
        self.expect_not_full_when_empty(&got);
        assert_eq!(
            got,
            expect,
            "send of {count} with {} queued",
            self.queue.len()
        );
        if let Ok(n) = got {
            self.queue.extend(&values[..n]);
            self.sent += n as u64;
        }
    }

    fn recv(&mut self, batch: Option<usize>) {
        let Some(rx) = self.rx.as_mut() else { return };
        if batch == Some(0) {
            assert_eq!(rx.try_recv_batch(&mut []), Ok(0));
            self.released.all(self.received / U64_PER_BLOCK);
            return;
        }
        if self.queue.is_empty() {
            let expect = if self.tx.is_none() {
                RecvError::Disconnected
            } else {
                RecvError::Empty
            };
            let got = match batch {
                None => rx.try_recv().map(|v| vec![v]),
                Some(k) => {
                    let mut out = vec![0; k];
                    rx.try_recv_batch(&mut out).map(|n| out[..n].to_vec())
                }
            };
            assert_eq!(got, Err(expect));
            self.released.all(self.finished_blocks());
            self.saw_empty = true;
            return;
        }
        match batch {
            None => {
                let want = self.queue.pop_front();
                assert_eq!(rx.try_recv().ok(), want);
                self.received += 1;
                if self.received % U64_PER_BLOCK == 0 {
                    self.released.after_single(self.finished_blocks());
                }
            }
            Some(k) => {
                let mut out = vec![0; k];
                let n = rx.try_recv_batch(&mut out).expect("messages are waiting");
                let want: Vec<u64> = self.queue.drain(..k.min(self.queue.len())).collect();
                assert_eq!(&out[..n], &want[..]);
                self.received += n as u64;
                self.released.all(self.finished_blocks());
            }
        }
        self.saw_empty = false;
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Send => self.send(1),
            Op::SendBatch(k) => self.send(k),
            Op::Recv => self.recv(None),
            Op::RecvBatch(k) => self.recv(Some(k)),
            Op::DropProducer => self.tx = None,
            Op::DropConsumer => self.rx = None,
        }
    }

    /// Closes the producer and receives everything left: exactly the model's queue, then
    /// `Disconnected`.
    fn drain(mut self) {
        self.tx = None;
        let Some(mut rx) = self.rx.take() else { return };
        for want in self.queue {
            assert_eq!(rx.try_recv(), Ok(want));
        }
        assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));
        assert_eq!(rx.try_recv_batch(&mut [0; 4]), Err(RecvError::Disconnected));
    }
}

/// A frame ring's byte stream as the model sees it: frames, and the pads the producer
/// writes where a frame would cross the end of the ring.
enum Item {
    Frame(Vec<u8>),
    Pad(u64),
}

struct FrameModel {
    tx: Option<FrameProducer>,
    rx: Option<FrameConsumer>,
    queue: VecDeque<Item>,
    capacity: u64,
    max_frame: usize,
    /// Bytes written and consumed since creation, pads included, as the rings count them.
    tail: u64,
    head: u64,
    released: Released,
    saw_empty: bool,
    frames_sent: u64,
}

const HEADER: u64 = 8;

fn frame_size(len: usize) -> u64 {
    HEADER + (len as u64).next_multiple_of(8)
}

/// Deterministic, position-dependent content, so that a frame delivered whole but from
/// the wrong place or the wrong lap is caught.
fn content(id: u64, len: usize) -> Vec<u8> {
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

impl FrameModel {
    fn new(capacity: usize, limit: Option<usize>) -> Self {
        let (tx, rx) = match limit {
            None => FrameRing::with_capacity(capacity),
            Some(max) => FrameRing::with_limits(capacity, max),
        };
        let max_frame = tx.max_frame();
        assert_eq!(max_frame, limit.unwrap_or(capacity / 2 - 16));
        assert_eq!(rx.max_frame(), max_frame);
        FrameModel {
            tx: Some(tx),
            rx: Some(rx),
            queue: VecDeque::new(),
            capacity: capacity as u64,
            max_frame,
            tail: 0,
            head: 0,
            released: Released {
                value: 0,
                quarter: capacity as u64 / 4,
            },
            saw_empty: false,
            frames_sent: 0,
        }
    }

    /// Whether `need` more bytes fit: the producer also keeps the header slot after the
    /// frame free, to zero it.
    fn fits(&self, need: u64) -> bool {
        self.tail + need + HEADER - self.released.value <= self.capacity
    }

    /// One frame as the producer writes it. A pad that fits is written even when the
    /// frame after it then does not: it is part of the stream either way.
    fn write(&mut self, frame: Vec<u8>) -> Result<(), SendError> {
        if frame.len() > self.max_frame {
            return Err(SendError::TooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        let size = frame_size(frame.len());
        let pos = self.tail % self.capacity;
        if pos + size > self.capacity {
            let pad = self.capacity - pos;
            if !self.fits(pad) {
                return Err(SendError::Full);
            }
            self.queue.push_back(Item::Pad(pad));
            self.tail += pad;
        }
        if !self.fits(size) {
            return Err(SendError::Full);
        }
        self.queue.push_back(Item::Frame(frame));
        self.tail += size;
        Ok(())
    }

    fn frames_for(&self, picks: &[usize]) -> Vec<Vec<u8>> {
        picks
            .iter()
            .enumerate()
            .map(|(i, pick)| {
                let len = pick % (self.max_frame + 9);
                content(self.frames_sent + i as u64, len)
            })
            .collect()
    }

    fn send(&mut self, picks: &[usize], batch: bool) {
        let frames = self.frames_for(picks);
        let all_fit_when_empty =
            self.queue.iter().all(|i| matches!(i, Item::Pad(_))) && self.saw_empty;
        let Some(tx) = self.tx.as_mut() else { return };
        let got = if batch {
            tx.try_send_batch(&frames)
        } else {
            tx.try_send(&frames[0]).map(|()| 1)
        };
        let expect = if batch && self.rx.is_none() {
            Err(SendError::Disconnected)
        } else if frames.is_empty() {
            Ok(0)
        } else if self.rx.is_none() && frames[0].len() <= self.max_frame {
            Err(SendError::Disconnected)
        } else {
            let mut sent = 0;
            let mut failure = None;
            for f in frames {
                if let Err(e) = self.write(f) {
                    failure = Some(e);
                    break;
                }
                sent += 1;
            }
            match failure {
                Some(e) if sent == 0 => Err(e),
                _ => Ok(sent),
            }
        };
        if all_fit_when_empty {
            assert_ne!(
                got,
                Err(SendError::Full),
                "Full although the consumer saw the ring empty"
            );
        }
        assert_eq!(got, expect, "send of {} frames", picks.len());
        if let Ok(n) = got {
            self.frames_sent += n as u64;
        }
    }

    /// What the consumer skips on its way to the next frame.
    fn skip_pads(&mut self) {
        while let Some(Item::Pad(p)) = self.queue.front() {
            self.head += p;
            self.queue.pop_front();
        }
    }

    fn pop_frame(&mut self) -> Option<Vec<u8>> {
        match self.queue.pop_front()? {
            Item::Frame(f) => {
                self.head += frame_size(f.len());
                Some(f)
            }
            Item::Pad(_) => unreachable!("pads are skipped before a frame is taken"),
        }
    }

    fn expect_nothing(&mut self, got: RecvError) {
        let expect = if self.tx.is_none() {
            RecvError::Disconnected
        } else {
            RecvError::Empty
        };
        assert_eq!(got, expect);
        self.released.all(self.head);
        self.saw_empty = true;
    }

    /// One frame, in place through `try_recv` or through `try_recv_with`.
    fn recv_one(&mut self, in_place: bool) {
        let Some(rx) = self.rx.as_mut() else { return };
        let got = if in_place {
            rx.try_recv().map(|f| f.to_vec())
        } else {
            rx.try_recv_with(<[u8]>::to_vec)
        };
        self.skip_pads();
        match self.pop_frame() {
            None => self.expect_nothing(got.expect_err("the model is empty")),
            Some(want) => {
                assert_eq!(got, Ok(want));
                self.released.after_single(self.head);
                self.saw_empty = false;
            }
        }
    }

    fn recv_batch(&mut self, max: usize) {
        let Some(rx) = self.rx.as_mut() else { return };
        let mut got = Vec::new();
        let r = rx.try_recv_batch(max, |f| got.push(f.to_vec()));
        if max == 0 {
            assert_eq!(r, Ok(0));
            self.released.all(self.head);
            return;
        }
        let mut want = Vec::new();
        while want.len() < max {
            self.skip_pads();
            match self.pop_frame() {
                Some(f) => want.push(f),
                None => break,
            }
        }
        if want.is_empty() {
            assert!(got.is_empty());
            return self.expect_nothing(r.expect_err("the model is empty"));
        }
        assert_eq!(r, Ok(want.len()));
        assert_eq!(got, want);
        self.released.all(self.head);
        self.saw_empty = false;
    }

    fn apply(&mut self, op: &FrameOp) {
        match op {
            FrameOp::Send(pick) => self.send(&[*pick], false),
            FrameOp::SendBatch(picks) => self.send(picks, true),
            FrameOp::Recv { in_place } => self.recv_one(*in_place),
            FrameOp::RecvBatch(max) => self.recv_batch(*max),
            FrameOp::DropProducer => self.tx = None,
            FrameOp::DropConsumer => self.rx = None,
        }
    }

    fn drain(mut self) {
        self.tx = None;
        let Some(mut rx) = self.rx.take() else { return };
        for item in self.queue {
            if let Item::Frame(want) = item {
                assert_eq!(rx.try_recv().map(|f| f.to_vec()), Ok(want));
            }
        }
        assert_eq!(rx.try_recv().err(), Some(RecvError::Disconnected));
        assert_eq!(rx.try_recv_batch(4, |_| ()), Err(RecvError::Disconnected));
    }
}

#[derive(Clone, Debug)]
enum FrameOp {
    /// A length selector, reduced modulo `max_frame + 9` so that some frames are too large.
    Send(usize),
    SendBatch(Vec<usize>),
    Recv {
        in_place: bool,
    },
    RecvBatch(usize),
    DropProducer,
    DropConsumer,
}

fn length_pick() -> impl Strategy<Value = usize> {
    prop_oneof![0..24usize, any::<usize>()]
}

fn frame_op() -> impl Strategy<Value = FrameOp> {
    prop_oneof![
        30 => length_pick().prop_map(FrameOp::Send),
        12 => prop::collection::vec(length_pick(), 0..12).prop_map(FrameOp::SendBatch),
        30 => any::<bool>().prop_map(|in_place| FrameOp::Recv { in_place }),
        12 => (0..16usize).prop_map(FrameOp::RecvBatch),
        1 => Just(FrameOp::DropProducer),
        1 => Just(FrameOp::DropConsumer),
    ]
}

/// A frame ring's capacity and, for `with_limits`, a lower maximum frame.
fn frame_geometry() -> impl Strategy<Value = (usize, Option<usize>)> {
    prop::sample::select(vec![128usize, 192, 256, 320, 512, 1024, 4096])
        .prop_flat_map(|cap| (Just(cap), prop::option::of(0..=cap / 2 - 16)))
}

proptest! {
    #[test]
    fn pod_ring_matches_a_fifo_model(
        capacity in 1..64usize,
        ops in prop::collection::vec(op(), 0..400),
    ) {
        let mut model = PodModel::new(capacity);
        for op in &ops {
            model.apply(op);
        }
        model.drain();
    }

    #[test]
    fn frame_ring_matches_a_fifo_model(
        (capacity, limit) in frame_geometry(),
        ops in prop::collection::vec(frame_op(), 0..400),
    ) {
        let mut model = FrameModel::new(capacity, limit);
        for op in &ops {
            model.apply(op);
        }
        model.drain();
    }
}

/// Long runs that stay near full: the exact `Full` prediction over many laps, where
/// random sequences rarely get.
#[test]
fn rings_at_the_edge_of_full_over_many_laps() {
    let mut pod = PodModel::new(20);
    let mut frames = FrameModel::new(256, None);
    for i in 0..20_000usize {
        let burst = i % 5 + 1;
        pod.apply(&Op::SendBatch(burst * 3));
        pod.apply(&Op::Send);
        frames.apply(&FrameOp::Send(i * 37));
        frames.apply(&FrameOp::SendBatch(vec![i % 50, i * 11, 3]));
        for _ in 0..burst {
            pod.apply(&Op::Recv);
            frames.apply(&FrameOp::Recv {
                in_place: i % 2 == 0,
            });
        }
        if i % 7 == 0 {
            pod.apply(&Op::RecvBatch(i % 30));
            frames.apply(&FrameOp::RecvBatch(i % 4));
        }
    }
    pod.drain();
    frames.drain();
}
