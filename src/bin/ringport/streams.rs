//! Throughput paths built on ringport's rings and ports and on peer queues.
//!
//! `u64` queues hold [`SLOTS`] messages, byte rings [`FRAME_RING`] bytes (ringport rounds
//! pod rings up to whole blocks). All ends poll with the non-blocking calls and
//! `std::hint::spin_loop()`, except the row named "blocking".

use crate::bench::Plan;
use crate::scenarios::{FRAME_RING, SLOTS};
use crate::tput::{
    check_frame, consume_chunks, consume_each, consume_frames, gather, produce_chunks,
    produce_each, produce_frames, InProcessStream, NamedStream, Stream,
};
use crate::Result;
use crossbeam_queue::ArrayQueue;
use ringport::ring::{FrameConsumer, FrameProducer, FrameRing, PodConsumer, PodProducer, PodRing};
use ringport::{MessageChannel, MessagePort, PodPort, RecvError, SendError};
use std::hint::spin_loop;
use std::mem::MaybeUninit;
use std::sync::{mpsc, Arc};

/// `Ok(false)` for a full ring, so the caller polls again.
#[inline(always)]
fn sent(r: std::result::Result<(), SendError>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(SendError::Full) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `Ok(0)` for a full ring.
#[inline(always)]
fn sent_n(r: std::result::Result<usize, SendError>) -> Result<usize> {
    match r {
        Err(SendError::Full) => Ok(0),
        r => Ok(r?),
    }
}

/// `Ok(None)` for an empty ring.
#[inline(always)]
fn received<T>(r: std::result::Result<T, RecvError>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(RecvError::Empty) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `Ok(0)` for an empty ring.
#[inline(always)]
fn received_n(r: std::result::Result<usize, RecvError>) -> Result<usize> {
    match r {
        Err(RecvError::Empty) => Ok(0),
        r => Ok(r?),
    }
}

/// What a child posts back when it is ready to receive.
const READY: u64 = u64::MAX;

/// Waits for the child's [`READY`] on the port's incoming direction.
fn await_ready(port: &mut PodPort<u64>) -> Result<()> {
    loop {
        match port.try_recv() {
            Ok(READY) => return Ok(()),
            Ok(v) => return Err(format!("the child said {v} instead of ready").into()),
            Err(RecvError::Empty) => spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
}

/// `PodRing<u64>`, one message per `try_send` / `try_recv`.
pub struct PodRingOne;

impl Stream for PodRingOne {
    type Tx = PodProducer<u64>;
    type Rx = PodConsumer<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_each(plan, |v| sent(tx.try_send(v)))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_each(plan, || received(rx.try_recv()))
    }
}

impl InProcessStream for PodRingOne {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(PodRing::with_capacity(SLOTS))
    }
}

/// `PodRing<u64>` with `try_send_batch` / `try_recv_batch` of [`CHUNK`](crate::tput::CHUNK).
pub struct PodRingBatch;

impl Stream for PodRingBatch {
    type Tx = PodProducer<u64>;
    type Rx = PodConsumer<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_chunks(plan, |vs| sent_n(tx.try_send_batch(vs)))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_chunks(plan, |out| received_n(rx.try_recv_batch(out)))
    }
}

impl InProcessStream for PodRingBatch {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(PodRing::with_capacity(SLOTS))
    }
}

/// A named `PodPort<u64>` channel, one message per call.
pub struct PodPortOne;

impl Stream for PodPortOne {
    type Tx = PodPort<u64>;
    type Rx = PodPort<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_each(plan, |v| sent(tx.try_post_message(v)))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_each(plan, || received(rx.try_recv()))
    }
}

impl NamedStream for PodPortOne {
    fn host(name: &str) -> Result<Self::Tx> {
        Ok(MessageChannel::create_pod(name, SLOTS)?)
    }

    fn await_guest(tx: &mut Self::Tx) -> Result<()> {
        await_ready(tx)
    }

    fn guest(name: &str) -> Result<Self::Rx> {
        Ok(MessageChannel::open_pod(name)?)
    }

    fn announce(rx: &mut Self::Rx) -> Result<()> {
        Ok(rx.post_message(READY)?)
    }
}

/// A named `PodPort<u64>` channel, batches of [`CHUNK`](crate::tput::CHUNK).
pub struct PodPortBatch;

impl Stream for PodPortBatch {
    type Tx = PodPort<u64>;
    type Rx = PodPort<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_chunks(plan, |vs| sent_n(tx.try_post_batch(vs)))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_chunks(plan, |out| received_n(rx.try_recv_batch(out)))
    }
}

impl NamedStream for PodPortBatch {
    fn host(name: &str) -> Result<Self::Tx> {
        PodPortOne::host(name)
    }

    fn await_guest(tx: &mut Self::Tx) -> Result<()> {
        await_ready(tx)
    }

    fn guest(name: &str) -> Result<Self::Rx> {
        PodPortOne::guest(name)
    }

    fn announce(rx: &mut Self::Rx) -> Result<()> {
        PodPortOne::announce(rx)
    }
}

/// An in-process `PodPort<u64>` pair with blocking `post_message` / `recv`.
pub struct PodPortBlocking;

impl Stream for PodPortBlocking {
    type Tx = PodPort<u64>;
    type Rx = PodPort<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_each(plan, |v| {
            tx.post_message(v)?;
            Ok(true)
        })
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_each(plan, || Ok(Some(rx.recv()?)))
    }
}

impl InProcessStream for PodPortBlocking {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(MessageChannel::pod(SLOTS))
    }
}

/// `rtrb`, one message per `push` / `pop`.
pub struct RtrbOne;

impl Stream for RtrbOne {
    type Tx = rtrb::Producer<u64>;
    type Rx = rtrb::Consumer<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_each(plan, |v| Ok(tx.push(v).is_ok()))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_each(plan, || Ok(rx.pop().ok()))
    }
}

impl InProcessStream for RtrbOne {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(rtrb::RingBuffer::new(SLOTS))
    }
}

/// `rtrb` through its chunk API (`push_partial_slice` / `pop_partial_slice`, which
/// copy through `write_chunk_uninit` / `read_chunk`), chunks of [`CHUNK`](crate::tput::CHUNK).
pub struct RtrbChunks;

impl Stream for RtrbChunks {
    type Tx = rtrb::Producer<u64>;
    type Rx = rtrb::Consumer<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_chunks(plan, |vs| Ok(tx.push_partial_slice(vs).0.len()))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_chunks(plan, |out| Ok(rx.pop_partial_slice(out).0.len()))
    }
}

impl InProcessStream for RtrbChunks {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(rtrb::RingBuffer::new(SLOTS))
    }
}

/// crossbeam `ArrayQueue`, one message per `push` / `pop`.
pub struct ArrayQueueOne;

impl Stream for ArrayQueueOne {
    type Tx = Arc<ArrayQueue<u64>>;
    type Rx = Arc<ArrayQueue<u64>>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_each(plan, |v| Ok(tx.push(v).is_ok()))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_each(plan, || Ok(rx.pop()))
    }
}

impl InProcessStream for ArrayQueueOne {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        let q = Arc::new(ArrayQueue::new(SLOTS));
        Ok((q.clone(), q))
    }
}

/// A bounded crossbeam channel, `try_send` / `try_recv`.
pub struct ChannelOne;

impl Stream for ChannelOne {
    type Tx = crossbeam_channel::Sender<u64>;
    type Rx = crossbeam_channel::Receiver<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_each(plan, |v| match tx.try_send(v) {
            Err(crossbeam_channel::TrySendError::Full(_)) => Ok(false),
            r => r.map(|()| true).map_err(Into::into),
        })
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_each(plan, || match rx.try_recv() {
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(None),
            r => r.map(Some).map_err(Into::into),
        })
    }
}

impl InProcessStream for ChannelOne {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(crossbeam_channel::bounded(SLOTS))
    }
}

/// `std::sync::mpsc::sync_channel`, `try_send` / `try_recv`.
pub struct MpscOne;

impl Stream for MpscOne {
    type Tx = mpsc::SyncSender<u64>;
    type Rx = mpsc::Receiver<u64>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_each(plan, |v| match tx.try_send(v) {
            Err(mpsc::TrySendError::Full(_)) => Ok(false),
            r => r.map(|()| true).map_err(Into::into),
        })
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        consume_each(plan, || match rx.try_recv() {
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            r => r.map(Some).map_err(Into::into),
        })
    }
}

impl InProcessStream for MpscOne {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(mpsc::sync_channel(SLOTS))
    }
}

/// `FrameRing`, one frame per `try_send` / `try_recv_with`, checked in place.
pub struct FrameRingFrames;

impl Stream for FrameRingFrames {
    type Tx = FrameProducer;
    type Rx = FrameConsumer;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_frames(plan, |f| sent(tx.try_send(f)))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        let len = plan.frame;
        consume_frames(plan, |seq| {
            match received(rx.try_recv_with(|f| check_frame(f, &[], 0, len, seq)))? {
                Some(checked) => checked.map(|()| true),
                None => Ok(false),
            }
        })
    }
}

impl InProcessStream for FrameRingFrames {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(FrameRing::with_capacity(FRAME_RING))
    }
}

/// A named `MessagePort` channel, one frame per `try_post_message` / `try_recv`.
pub struct FramePortFrames;

impl Stream for FramePortFrames {
    type Tx = MessagePort;
    type Rx = MessagePort;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        produce_frames(plan, |f| sent(tx.try_post_message(f)))
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        let len = plan.frame;
        consume_frames(plan, |seq| match rx.try_recv() {
            Ok(frame) => check_frame(&frame, &[], 0, len, seq).map(|()| true),
            Err(RecvError::Empty) => Ok(false),
            Err(e) => Err(e.into()),
        })
    }
}

impl NamedStream for FramePortFrames {
    fn host(name: &str) -> Result<Self::Tx> {
        Ok(MessageChannel::create(name, FRAME_RING)?)
    }

    fn await_guest(tx: &mut Self::Tx) -> Result<()> {
        loop {
            match tx.try_recv() {
                Ok(frame) if &*frame == b"ready" => return Ok(()),
                Ok(frame) => {
                    return Err(format!("the child said {:?} instead of ready", &*frame).into())
                }
                Err(RecvError::Empty) => spin_loop(),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn guest(name: &str) -> Result<Self::Rx> {
        Ok(MessageChannel::open(name)?)
    }

    fn announce(rx: &mut Self::Rx) -> Result<()> {
        Ok(rx.post_message(b"ready")?)
    }
}

/// `rtrb<u8>` as a byte ring: each frame is a `u32` length then the payload, written with
/// one `write_chunk_uninit` and read in place with `read_chunk`, the two pieces of a
/// wrapped frame included.
pub struct RtrbBytes;

/// Bytes of the length prefix.
const PREFIX: usize = 4;

/// Copies `src` to the front of `first`, the rest to the front of `second` (a wrapped
/// chunk's two pieces), and moves both fronts past what was written.
///
/// # Panics
/// If the pieces together hold less than `src`.
fn put(first: &mut &mut [MaybeUninit<u8>], second: &mut &mut [MaybeUninit<u8>], src: &[u8]) {
    let n = src.len().min(first.len());
    let (head, rest) = std::mem::take(first).split_at_mut(n);
    copy_uninit(head, &src[..n]);
    *first = rest;
    let (head, rest) = std::mem::take(second).split_at_mut(src.len() - n);
    copy_uninit(head, &src[n..]);
    *second = rest;
}

/// `dst.copy_from_slice(src)` for uninitialized bytes: one `memcpy`, as rtrb's own
/// slice methods do, so the peer is not slowed by a byte loop.
fn copy_uninit(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: both are valid for src.len() bytes (checked above); MaybeUninit<u8> has the
    // layout of u8; a shared and an exclusive slice cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len()) }
}

impl Stream for RtrbBytes {
    type Tx = rtrb::Producer<u8>;
    type Rx = rtrb::Consumer<u8>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        let prefix = u32::try_from(plan.frame)?.to_le_bytes();
        produce_frames(plan, |f| {
            let Ok(mut chunk) = tx.write_chunk_uninit(PREFIX + f.len()) else {
                return Ok(false);
            };
            let (mut first, mut second) = chunk.as_mut_slices();
            put(&mut first, &mut second, &prefix);
            put(&mut first, &mut second, f);
            // SAFETY: the two puts wrote PREFIX + f.len() bytes, every slot of the
            // chunk's two pieces.
            unsafe { chunk.commit_all() };
            Ok(true)
        })
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        let len = plan.frame;
        consume_frames(plan, |seq| {
            let got = match rx.read_chunk(PREFIX) {
                Ok(head) => {
                    let (first, second) = head.as_slices();
                    u32::from_le_bytes(gather(first, second, 0)) as usize
                }
                Err(_) => return Ok(false),
            };
            // The producer commits prefix and payload together: a visible prefix means a
            // whole frame.
            let chunk = rx
                .read_chunk(PREFIX + got)
                .map_err(|e| format!("frame {seq}: prefix says {got} bytes: {e}"))?;
            let (first, second) = chunk.as_slices();
            check_frame(first, second, PREFIX, len, seq)?;
            chunk.commit_all();
            Ok(true)
        })
    }
}

impl InProcessStream for RtrbBytes {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(rtrb::RingBuffer::new(FRAME_RING))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_fills_both_pieces_in_order() {
        let src: Vec<u8> = (1..=10).collect();
        for split in 0..=10 {
            let mut buf = [MaybeUninit::new(0u8); 10];
            let (a, b) = buf.split_at_mut(split);
            let (mut first, mut second) = (a, b);
            put(&mut first, &mut second, &src[..4]);
            put(&mut first, &mut second, &src[4..]);
            assert!(first.is_empty() && second.is_empty());
            // SAFETY: every byte was initialized, by the array's initializer and by put.
            let got: Vec<u8> = buf.iter().map(|b| unsafe { b.assume_init() }).collect();
            assert_eq!(got, src, "split at {split}");
        }
    }
}
