//! The rows of zero-copy transfer (issue 4): what handing a pool buffer to another thread
//! or process costs, against what a program would do instead.
//!
//! - **Cost of one transfer** (`transfer/pipelined-*`, `transfer/ping-pong-*`). A buffer
//!   of 64 B to 4 MiB is loaned from a heap [`BufferPool`], a 64-byte [`header`] carrying
//!   a sequence number is written into it, [`Buffer::into_handle`] turns it into a
//!   32-byte handle, the handle travels through a `PodPort<BufferHandle>`, and the other
//!   side accepts it, checks the header and drops the buffer, which returns it to the
//!   pool. Only the header is touched, so the cost should not depend on the buffer's
//!   size. Pipelined: a producer thread streams transfers while the consumer times
//!   batches of [`BATCH`] (nanoseconds per transfer, percentiles over batches). Ping-pong:
//!   each side in turn sends a transfer and waits for the other's, so a round trip is
//!   two transfers, one each way.
//! - **Messages in full** (`transfer/zero-copy-*`, `transfer/crossbeam-vec-*`,
//!   `transfer/frame-ring-copy-*`, and between processes `transfer/unix-socket-*` and
//!   `transfer/iceoryx2-*`). The producer writes every byte of each message and the
//!   consumer reads every byte ([`fill_message`], [`check_message`]): in a loaned buffer
//!   that only its handle then moves; in a freshly allocated `Vec<u8>` that a crossbeam
//!   channel moves; in a reused `Vec<u8>` that a `FrameRing` (or a Unix socket) copies,
//!   read in place on the other side (or into a reused buffer). Each path holds at most
//!   [`depth`] messages in transit, so none gets a deeper pipeline than another.
//!
//! Every message is checked, so a broken path cannot look fast: the consumer receives
//! exactly the plan's count, in order, each of the planned length, each header whole, and
//! each full message with its sequence number in its first and last words and the sum of
//! all its words right. The pipelined rows also check that nothing arrives after the last
//! transfer and that every buffer went back to the pool.

use crate::bench::{Ctx, Measured, Plan};
use crate::rtt::{InProcess, Link};
use crate::tput::{consume_frames, InProcessStream, NamedStream, Stream};
use crate::{watchdog, Result};
use hdrhistogram::Histogram;
use ringport::atomics::futex_syscalls;
use ringport::pool::{Buffer, BufferHandle, BufferPool, LoanError, PoolOptions};
use ringport::ring::{FrameConsumer, FrameProducer, FrameRing};
use ringport::{MessageChannel, PodPort, RecvError, SendError};
use std::hint::spin_loop;
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Instant;

/// Bytes of a transfer's header.
pub const HEADER: usize = 64;
/// Transfers per timed batch of the pipelined rows.
pub const BATCH: u64 = 64;
/// Handles the pipelined rows' ports hold: how many transfers may be in flight, whatever
/// the buffer size.
const COST_DEPTH: usize = 14;
/// Handles the ping-pong rows' ports hold (one is in flight at a time).
const PING_DEPTH: usize = 2;
/// Bytes in transit that sets each full-message path's depth (see [`depth`]).
const IN_TRANSIT: usize = 8 << 20;

/// How many messages of `size` bytes a full-message path holds in transit: 8 MiB worth,
/// at least 4 and at most 256. The crossbeam channel holds that many `Vec`s, the frame
/// ring that many frames, the port that many handles (see `buffers_for`).
pub fn depth(size: usize) -> usize {
    (IN_TRANSIT / size).clamp(4, 256)
}

/// A multiplier that spreads a sequence number over a word.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// The header of transfer `seq` in a buffer of `len` bytes: the sequence number, the
/// length, then six words derived from the sequence number, little-endian.
pub fn header(seq: u64, len: usize) -> [u8; HEADER] {
    let mut h = [0; HEADER];
    for (j, w) in h.chunks_exact_mut(8).enumerate() {
        let v = match j {
            0 => seq,
            1 => len as u64,
            _ => seq.wrapping_mul(SPREAD) ^ j as u64,
        };
        w.copy_from_slice(&v.to_le_bytes());
    }
    h
}

/// Word `j` of `bytes`, little-endian.
#[inline(always)]
fn word(bytes: &[u8], j: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&bytes[j * 8..j * 8 + 8]);
    u64::from_le_bytes(w)
}

/// The sequence number of the transfer in `bytes`, a buffer that must be `len` bytes
/// long and start with a whole [`header`].
pub fn read_header(bytes: &[u8], len: usize) -> Result<u64> {
    if bytes.len() != len {
        return Err(format!("a buffer of {} bytes instead of {len}", bytes.len()).into());
    }
    let seq = word(bytes, 0);
    if bytes[..HEADER] != header(seq, len) {
        return Err(format!("transfer {seq}: its header is damaged").into());
    }
    Ok(seq)
}

/// The byte every message `seq` is filled with: never zero, so that a `vec!` of it is
/// written rather than handed out as zeroed pages.
#[inline(always)]
pub fn fill_byte(seq: u64) -> u8 {
    0x80 | (seq & 0x7f) as u8
}

/// Writes message `seq` over all of `buf`: every byte [`fill_byte`], then `seq` in the
/// first and last words.
#[inline(always)]
pub fn fill_message(buf: &mut [u8], seq: u64) {
    buf.fill(fill_byte(seq));
    stamp(buf, seq);
}

/// Writes `seq` into the first and last words of `buf`.
#[inline(always)]
pub fn stamp(buf: &mut [u8], seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// The wrapping sum of the little-endian words of `bytes`: a read of every byte.
#[inline(always)]
fn word_sum(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).fold(0u64, |s, w| {
        let mut b = [0; 8];
        b.copy_from_slice(w);
        s.wrapping_add(u64::from_le_bytes(b))
    })
}

/// Checks that `bytes` is message `seq` of `len` bytes as [`fill_message`] wrote it,
/// reading every byte.
#[inline(always)]
pub fn check_message(bytes: &[u8], seq: u64, len: usize) -> Result<()> {
    if bytes.len() != len {
        return Err(format!("message {seq}: {} bytes instead of {len}", bytes.len()).into());
    }
    let (head, tail) = (word(bytes, 0), word(bytes, len / 8 - 1));
    if head != seq || tail != seq {
        return Err(format!("message {seq}: carries {head} (head) and {tail} (tail)").into());
    }
    let fill = u64::from(fill_byte(seq)) * 0x0101_0101_0101_0101;
    let want = fill
        .wrapping_mul(len as u64 / 8 - 2)
        .wrapping_add(seq.wrapping_mul(2));
    let sum = word_sum(bytes);
    if sum != want {
        return Err(
            format!("message {seq}: its words add up to {sum:#x} instead of {want:#x}").into(),
        );
    }
    Ok(())
}

/// Loans a buffer of `len` bytes, polling while the pool is empty.
#[inline(always)]
fn loan(pool: &BufferPool, len: usize) -> Result<Buffer> {
    loop {
        match pool.try_loan(len) {
            Ok(b) => return Ok(b),
            Err(LoanError::Empty { .. }) => spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Posts `h`, polling while the port is full.
#[inline(always)]
fn post(port: &mut PodPort<BufferHandle>, h: BufferHandle) -> Result<()> {
    loop {
        match port.try_post_message(h) {
            Ok(()) => return Ok(()),
            Err(SendError::Full) => spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits for the next handle, polling.
#[inline(always)]
fn next_handle(port: &mut PodPort<BufferHandle>) -> Result<BufferHandle> {
    loop {
        match port.try_recv() {
            Ok(h) => return Ok(h),
            Err(RecvError::Empty) => spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
}

/// How many buffers a pool needs beside a port of `capacity` handles: those, the one
/// being written and the one being read, which the other paths also hold outside their
/// queues. So a producer waits for room in the port, as on the other paths, and never
/// for a buffer: it always finds one at its first look.
fn buffers_for(capacity: usize) -> usize {
    capacity + 2
}

/// One side of a zero-copy path: the pool, and the port its handles travel through.
pub struct PoolEnd {
    pool: BufferPool,
    port: PodPort<BufferHandle>,
    /// The length of every buffer it sends.
    len: usize,
}

impl PoolEnd {
    /// Two ends of a port of `depth` handles, sharing a heap pool of buffers of `len`
    /// bytes.
    fn pair(len: usize, depth: usize) -> Result<(PoolEnd, PoolEnd)> {
        let (a, b) = MessageChannel::pod::<BufferHandle>(depth);
        let buffers = buffers_for(a.capacity());
        let pool = BufferPool::new(PoolOptions::with_classes(&[(len, buffers)]))?;
        Ok((
            PoolEnd {
                pool: pool.clone(),
                port: a,
                len,
            },
            PoolEnd { pool, port: b, len },
        ))
    }

    /// Checks, once the other side has finished, that nothing more arrived and that every
    /// buffer is back in the pool.
    fn finish(&mut self) -> Result<()> {
        match self.port.try_recv() {
            Ok(h) => Err(format!("a handle after the last transfer: {h:?}").into()),
            Err(RecvError::Empty | RecvError::Disconnected) => {
                let buffers = self.pool.classes()[0].1;
                let free = self.pool.available();
                if free == [buffers] {
                    Ok(())
                } else {
                    Err(format!("{free:?} of {buffers} buffers back in the pool").into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Link for PoolEnd {
    /// One transfer: loan, header, handle, post.
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        let mut buf = loan(&self.pool, self.len)?;
        buf[..HEADER].copy_from_slice(&header(v, self.len));
        post(&mut self.port, buf.into_handle())
    }

    /// The other half: receive, accept, read the header, release.
    #[inline]
    fn recv(&mut self) -> Result<u64> {
        let h = next_handle(&mut self.port)?;
        let buf = self.pool.accept(&h)?;
        read_header(&buf, self.len)
    }
}

/// The ping-pong rows: a round trip is a transfer there and one back, through a pool of
/// buffers of `SIZE` bytes.
pub struct PingPong<const SIZE: usize>;

impl<const SIZE: usize> InProcess for PingPong<SIZE> {
    type End = PoolEnd;

    fn pair() -> Result<(PoolEnd, PoolEnd)> {
        PoolEnd::pair(SIZE, PING_DEPTH)
    }
}

/// A histogram of picoseconds per transfer, 1 ps to 100 s.
fn per_op_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000_000, 3).expect("valid histogram bounds")
}

/// Receives the plan's batches of [`BATCH`] transfers in order, timing each; returns
/// picoseconds per transfer of the batches after the warm-up.
fn receive_batches(rx: &mut PoolEnd, plan: &Plan) -> Result<Histogram<u64>> {
    let mut hist = per_op_histogram();
    let mut seq = 0;
    for b in 0..plan.total() {
        let t0 = Instant::now();
        for _ in 0..BATCH {
            let got = rx.recv()?;
            if got != seq {
                return Err(format!("transfer {seq}: received {got}").into());
            }
            seq += 1;
        }
        let ps = t0.elapsed().as_nanos() * 1000 / u128::from(BATCH);
        if b >= plan.warm {
            hist.saturating_record(ps.try_into().unwrap_or(u64::MAX));
        }
    }
    Ok(hist)
}

/// A pipelined row: a peer thread streams transfers of `SIZE`-byte buffers; this thread
/// receives them and times batches.
pub fn pipelined<const SIZE: usize>(ctx: &Ctx) -> Result<Measured> {
    let (tx, mut rx) = PoolEnd::pair(SIZE, COST_DEPTH)?;
    let plan = ctx.plan;
    let transfers = plan.total() * BATCH;
    let futex_before = futex_syscalls();
    let peer = ctx.spawn_peer(tx, move |tx| {
        (0..transfers).try_for_each(|seq| tx.send(seq))
    });
    let hist = ctx.or_abort(receive_batches(&mut rx, &plan));
    let ((), peer_pinned) = peer.join();
    let futex = futex_syscalls() - futex_before;
    rx.finish()?;
    Ok(Measured::per_op(
        hist,
        BATCH,
        futex,
        ctx.main_pinned && peer_pinned,
    ))
}

/// Receives the plan's messages from a path of pool handles, each checked in place.
fn consume_handles(rx: &mut PoolEnd, plan: &Plan) -> Result<Vec<u64>> {
    let len = plan.frame;
    consume_frames(plan, |seq| match rx.port.try_recv() {
        Ok(h) => {
            let buf = rx.pool.accept(&h)?;
            check_message(&buf, seq, len).map(|()| true)
        }
        Err(RecvError::Empty) => Ok(false),
        Err(e) => Err(e.into()),
    })
}

/// Messages in full through pool buffers of `SIZE` bytes: the producer writes each in a
/// loaned buffer and sends its handle, the consumer reads it in place.
pub struct ZeroCopy<const SIZE: usize>;

impl<const SIZE: usize> Stream for ZeroCopy<SIZE> {
    type Tx = PoolEnd;
    type Rx = PoolEnd;

    fn produce(tx: &mut PoolEnd, plan: &Plan) -> Result<()> {
        for seq in 0..plan.total() {
            let mut buf = loan(&tx.pool, plan.frame)?;
            fill_message(&mut buf, seq);
            post(&mut tx.port, buf.into_handle())?;
        }
        Ok(())
    }

    fn consume(rx: &mut PoolEnd, plan: &Plan) -> Result<Vec<u64>> {
        consume_handles(rx, plan)
    }
}

impl<const SIZE: usize> InProcessStream for ZeroCopy<SIZE> {
    fn pair() -> Result<(PoolEnd, PoolEnd)> {
        PoolEnd::pair(SIZE, depth(SIZE))
    }
}

/// The name of the pool beside a row's port `name`.
fn pool_name(name: &str) -> String {
    format!("{name}-pool")
}

impl<const SIZE: usize> NamedStream for ZeroCopy<SIZE> {
    fn host(name: &str) -> Result<PoolEnd> {
        let port = MessageChannel::create_pod::<BufferHandle>(name, depth(SIZE))?;
        let pool_name = pool_name(name);
        watchdog::track_name(&pool_name);
        let options = PoolOptions::with_classes(&[(SIZE, buffers_for(port.capacity()))]);
        let pool = BufferPool::create(&pool_name, options)?;
        Ok(PoolEnd {
            pool,
            port,
            len: SIZE,
        })
    }

    /// The child's ready signal is an all-zero handle, which no pool ever issues.
    fn await_guest(tx: &mut PoolEnd) -> Result<()> {
        let h = next_handle(&mut tx.port)?;
        if h != BufferHandle::default() {
            return Err(format!("the child sent {h:?} instead of ready").into());
        }
        Ok(())
    }

    fn guest(name: &str) -> Result<PoolEnd> {
        Ok(PoolEnd {
            port: MessageChannel::open_pod::<BufferHandle>(name)?,
            pool: BufferPool::open(&pool_name(name))?,
            len: SIZE,
        })
    }

    fn announce(rx: &mut PoolEnd) -> Result<()> {
        Ok(rx.port.post_message(BufferHandle::default())?)
    }
}

/// Messages in full as a freshly allocated `Vec<u8>` each (`vec![byte; SIZE]`, so written
/// whole) through a bounded crossbeam channel; the consumer reads and drops them.
pub struct CrossbeamVec<const SIZE: usize>;

impl<const SIZE: usize> Stream for CrossbeamVec<SIZE> {
    type Tx = crossbeam_channel::Sender<Vec<u8>>;
    type Rx = crossbeam_channel::Receiver<Vec<u8>>;

    fn produce(tx: &mut Self::Tx, plan: &Plan) -> Result<()> {
        for seq in 0..plan.total() {
            let mut v = vec![fill_byte(seq); plan.frame];
            stamp(&mut v, seq);
            loop {
                match tx.try_send(v) {
                    Ok(()) => break,
                    Err(crossbeam_channel::TrySendError::Full(back)) => {
                        v = back;
                        spin_loop();
                    }
                    Err(e) => return Err(e.to_string().into()),
                }
            }
        }
        Ok(())
    }

    fn consume(rx: &mut Self::Rx, plan: &Plan) -> Result<Vec<u64>> {
        let len = plan.frame;
        consume_frames(plan, |seq| match rx.try_recv() {
            Ok(v) => check_message(&v, seq, len).map(|()| true),
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(false),
            Err(e) => Err(e.into()),
        })
    }
}

impl<const SIZE: usize> InProcessStream for CrossbeamVec<SIZE> {
    fn pair() -> Result<(Self::Tx, Self::Rx)> {
        Ok(crossbeam_channel::bounded(depth(SIZE)))
    }
}

/// The producing end of a copying path: the ring, and the reused buffer each message is
/// written in before the ring copies it.
pub struct CopyTx {
    ring: FrameProducer,
    scratch: Vec<u8>,
}

/// Messages in full through a `FrameRing` holding [`depth`] frames of `SIZE` bytes: the
/// producer writes each in a reused `Vec`, `try_send` copies it into the ring, and the
/// consumer reads it in place.
pub struct FrameRingCopy<const SIZE: usize>;

impl<const SIZE: usize> Stream for FrameRingCopy<SIZE> {
    type Tx = CopyTx;
    type Rx = FrameConsumer;

    fn produce(tx: &mut CopyTx, plan: &Plan) -> Result<()> {
        tx.scratch.resize(plan.frame, 0);
        for seq in 0..plan.total() {
            fill_message(&mut tx.scratch, seq);
            loop {
                match tx.ring.try_send(&tx.scratch) {
                    Ok(()) => break,
                    Err(SendError::Full) => spin_loop(),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    fn consume(rx: &mut FrameConsumer, plan: &Plan) -> Result<Vec<u64>> {
        let len = plan.frame;
        consume_frames(plan, |seq| {
            match rx.try_recv_with(|f| check_message(f, seq, len)) {
                Ok(checked) => checked.map(|()| true),
                Err(RecvError::Empty) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Frame space for [`depth`] frames of `size` bytes, each with its header and padding.
fn ring_bytes(size: usize) -> usize {
    (depth(size) * (size + 64)).next_multiple_of(64)
}

impl<const SIZE: usize> InProcessStream for FrameRingCopy<SIZE> {
    fn pair() -> Result<(CopyTx, FrameConsumer)> {
        let (ring, rx) = FrameRing::with_limits(ring_bytes(SIZE), SIZE);
        Ok((
            CopyTx {
                ring,
                scratch: Vec::new(),
            },
            rx,
        ))
    }
}

/// The parent's end of a Unix socket path: a listener on an abstract address named
/// after the row's segment, then the accepted stream, and the reused buffer each message
/// is written in before the kernel copies it.
pub struct SocketTx {
    listener: UnixListener,
    stream: Option<UnixStream>,
    scratch: Vec<u8>,
}

/// The child's end of a Unix socket path, and the reused buffer it reads messages into.
pub struct SocketRx {
    stream: UnixStream,
    scratch: Vec<u8>,
}

/// Messages in full through a Unix stream socket: the producer writes each in a reused
/// buffer and `write_all`s it, the consumer `read_exact`s it into a reused buffer.
pub struct UnixSocket<const SIZE: usize>;

/// The abstract socket address of a row's segment name: no file to clean up.
fn socket_addr(name: &str) -> Result<SocketAddr> {
    Ok(SocketAddr::from_abstract_name(name.as_bytes())?)
}

impl<const SIZE: usize> Stream for UnixSocket<SIZE> {
    type Tx = SocketTx;
    type Rx = SocketRx;

    fn produce(tx: &mut SocketTx, plan: &Plan) -> Result<()> {
        let stream = tx.stream.as_mut().ok_or("the child never connected")?;
        tx.scratch.resize(plan.frame, 0);
        for seq in 0..plan.total() {
            fill_message(&mut tx.scratch, seq);
            stream.write_all(&tx.scratch)?;
        }
        Ok(())
    }

    fn consume(rx: &mut SocketRx, plan: &Plan) -> Result<Vec<u64>> {
        let len = plan.frame;
        rx.scratch.resize(len, 0);
        consume_frames(plan, |seq| {
            rx.stream.read_exact(&mut rx.scratch)?;
            check_message(&rx.scratch, seq, len).map(|()| true)
        })
    }
}

impl<const SIZE: usize> NamedStream for UnixSocket<SIZE> {
    fn host(name: &str) -> Result<SocketTx> {
        Ok(SocketTx {
            listener: UnixListener::bind_addr(&socket_addr(name)?)?,
            stream: None,
            scratch: Vec::new(),
        })
    }

    /// The child's connection is its ready signal.
    fn await_guest(tx: &mut SocketTx) -> Result<()> {
        tx.stream = Some(tx.listener.accept()?.0);
        Ok(())
    }

    fn guest(name: &str) -> Result<SocketRx> {
        Ok(SocketRx {
            stream: UnixStream::connect_addr(&socket_addr(name)?)?,
            scratch: Vec::new(),
        })
    }

    fn announce(_rx: &mut SocketRx) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tput::Marks;
    use std::time::Duration;

    fn plan(warm: u64, count: u64, frame: usize) -> Plan {
        Plan {
            warm,
            count,
            frame,
            trials: 1,
        }
    }

    #[test]
    fn headers_round_trip_and_damage_is_caught() {
        let mut buf = vec![0u8; 4096];
        buf[..HEADER].copy_from_slice(&header(77, 4096));
        assert_eq!(read_header(&buf, 4096).unwrap(), 77);
        assert!(read_header(&buf, 8192).is_err(), "wrong length");
        assert!(
            read_header(&buf[..HEADER], 64).is_err(),
            "header names 4096 bytes"
        );
        buf[40] ^= 1;
        assert!(read_header(&buf, 4096).is_err(), "damaged word");
    }

    #[test]
    fn messages_check_out_and_every_damage_is_caught() {
        for len in [64, 4096, 1 << 20] {
            let mut buf = vec![0u8; len];
            fill_message(&mut buf, 300);
            check_message(&buf, 300, len).unwrap();
            assert!(check_message(&buf, 301, len).is_err(), "wrong sequence");
            assert!(
                check_message(&buf[..len - 8], 300, len - 8).is_err(),
                "tail"
            );
            // A byte in the middle from another message: only the sum sees it.
            let mut torn = buf.clone();
            torn[len / 2] = fill_byte(299);
            assert!(check_message(&torn, 300, len).is_err(), "torn at {len}");
            // The vec! of the crossbeam path is the same message.
            let mut v = vec![fill_byte(300); len];
            stamp(&mut v, 300);
            assert_eq!(v, buf);
        }
    }

    #[test]
    fn depths_bound_the_bytes_in_transit() {
        assert_eq!(depth(64), 256);
        assert_eq!(depth(1 << 20), 8);
        assert_eq!(depth(4 << 20), 4);
        for size in [64, 4096, 1 << 16, 1 << 20, 4 << 20] {
            // The ring takes frames of `size` and holds `depth` of them.
            let (mut tx, _rx) = FrameRing::with_limits(ring_bytes(size), size);
            let frame = vec![1u8; size];
            for k in 0..depth(size) {
                tx.try_send(&frame)
                    .unwrap_or_else(|e| panic!("{size}: frame {k}: {e}"));
            }
        }
    }

    /// Streams `plan` through `S` between two threads; returns the messages timed.
    fn stream<S: InProcessStream>(plan: Plan) -> u64 {
        crate::within(Duration::from_secs(60), move || {
            let (mut tx, mut rx) = S::pair().unwrap();
            let consumer = std::thread::spawn(move || S::consume(&mut rx, &plan).unwrap());
            S::produce(&mut tx, &plan).unwrap();
            Marks::run(&consumer.join().unwrap()).unwrap().0
        })
    }

    #[test]
    fn full_message_paths_deliver_every_message_intact() {
        assert_eq!(stream::<ZeroCopy<4096>>(plan(10, 1000, 4096)), 1000);
        assert_eq!(stream::<ZeroCopy<{ 1 << 20 }>>(plan(2, 40, 1 << 20)), 40);
        assert_eq!(stream::<CrossbeamVec<64>>(plan(10, 1000, 64)), 1000);
        assert_eq!(
            stream::<CrossbeamVec<{ 1 << 20 }>>(plan(2, 40, 1 << 20)),
            40
        );
        assert_eq!(stream::<FrameRingCopy<64>>(plan(10, 1000, 64)), 1000);
        assert_eq!(
            stream::<FrameRingCopy<{ 1 << 20 }>>(plan(2, 40, 1 << 20)),
            40
        );
    }

    #[test]
    fn named_paths_connect_and_deliver() {
        fn over<S: NamedStream>(name: &str, plan: Plan) -> u64 {
            crate::within(Duration::from_secs(60), {
                let name = name.to_owned();
                move || {
                    let mut tx = S::host(&name).unwrap();
                    let guest = {
                        let name = name.clone();
                        std::thread::spawn(move || {
                            let mut rx = S::guest(&name).unwrap();
                            S::announce(&mut rx).unwrap();
                            S::consume(&mut rx, &plan).unwrap()
                        })
                    };
                    S::await_guest(&mut tx).unwrap();
                    S::produce(&mut tx, &plan).unwrap();
                    Marks::run(&guest.join().unwrap()).unwrap().0
                }
            })
        }
        let name = format!("ringport-bench-test-transfer-{}", std::process::id());
        let p = plan(2, 30, 1 << 16);
        assert_eq!(over::<ZeroCopy<{ 1 << 16 }>>(&format!("{name}-zc"), p), 30);
        assert_eq!(
            over::<UnixSocket<{ 1 << 16 }>>(&format!("{name}-uds"), p),
            30
        );
    }

    #[test]
    fn transfers_arrive_in_order_and_every_buffer_comes_back() {
        crate::within(Duration::from_secs(60), || {
            for len in [64, 4 << 20] {
                let (mut tx, mut rx) = PoolEnd::pair(len, COST_DEPTH).unwrap();
                let p = plan(3, 20, 0);
                let n = p.total() * BATCH;
                let peer = std::thread::spawn(move || {
                    (0..n).try_for_each(|seq| tx.send(seq)).unwrap();
                });
                let hist = receive_batches(&mut rx, &p).unwrap();
                peer.join().unwrap();
                assert_eq!(hist.len(), 20);
                rx.finish().unwrap();
            }
        });
    }

    #[test]
    fn a_leaked_or_extra_transfer_fails_the_row() {
        let (mut tx, mut rx) = PoolEnd::pair(4096, 4).unwrap();
        // A port of 4 handles: 6 buffers.
        assert_eq!(rx.pool.classes(), [(4096, 6)]);
        let held = tx.pool.try_loan(1).unwrap();
        assert!(rx.finish().unwrap_err().to_string().contains("[5] of 6"));
        drop(held);
        rx.finish().unwrap();
        tx.send(9).unwrap();
        assert!(rx
            .finish()
            .unwrap_err()
            .to_string()
            .contains("after the last"));
    }

    #[test]
    fn ping_pong_echoes_in_order() {
        crate::within(Duration::from_secs(60), || {
            let (mut mine, mut theirs) = PingPong::<4096>::pair().unwrap();
            let peer = std::thread::spawn(move || crate::rtt::echo(&mut theirs, 110).unwrap());
            let hist = crate::rtt::ping(&mut mine, 10, 100).unwrap();
            peer.join().unwrap();
            assert_eq!(hist.len(), 100);
        });
    }
}
