//! The fuzz targets' logic, shared by the libFuzzer binaries in `fuzz/fuzz_targets/` and by
//! `tests/fuzz_replay.rs` in the main crate, which includes this file with `#[path]` and
//! replays the seed corpus and pseudo-random inputs on stable Rust.
//!
//! Each target takes raw bytes and must never panic: every `assert!` below states a
//! property ringport documents, so a panic is a ringport bug, never a bad input. The
//! targets use only ringport's public API, `arbitrary`, `bytemuck` and std, and only
//! calls that cannot block on the input (`try_` variants, zero or 100 µs timeouts, and
//! blocking calls only where the model proves they return at once).
//!
//! - [`segment_open`]: the input is a whole segment file, hostile from its first byte.
//! - [`frame_ops`] and [`pod_ops`]: operation sequences on heap rings, checked against a
//!   queue model.
//! - [`hostile_peer`]: a live named channel whose shared memory a "peer" scribbles on
//!   between legitimate port operations.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytemuck::Pod;
use ringport::ring::{
    Frame, FrameConsumer, FrameProducer, FrameRing, PodConsumer, PodProducer, PodRing,
};
use ringport::segment::{Segment, SegmentError};
use ringport::{ConnectError, MessageChannel, MessagePort, PodPort, RecvError, SendError};

/// Segment kind of a named channel, `"PORT"` (see the port module's docs).
const KIND_PORT: u32 = u32::from_le_bytes(*b"PORT");
/// The segment header; the payload starts right after it.
const HEADER_LEN: usize = 128;
/// Each ring's control block, before its data area.
const CTRL_LEN: usize = 512;
/// Ops beyond this are ignored, so one input cannot run for long.
const MAX_OPS: usize = 512;
/// A short wait that still reaches the futex sleep, well under a millisecond.
const SHORT_WAIT: Duration = Duration::from_micros(100);

/// Removes a segment name however the target leaves it, panics included.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        // NotFound is the usual answer: a channel's creator unlinks its own name.
        let _ = Segment::unlink(&self.0);
    }
}

/// A segment name no other process, iteration or target uses.
fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("rpfz-{}-{n}-{tag}", std::process::id())
}

fn shm_path(name: &str) -> String {
    format!("/dev/shm/{name}")
}

/// Prints which step was running when a check fails, so a replayed input explains itself.
struct Step<'a, T: Debug>(usize, &'a T);

impl<T: Debug> Drop for Step<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("while running op #{}: {:?}", self.0, self.1);
        }
    }
}

/// Decodes a setup `S`, then operations until the input runs out. `Vec`'s own encoding
/// would end the list at the first clear "more" bit, so random bytes would make lists of
/// one or two operations; this way every byte of the input drives the target.
fn decode<'a, S: Arbitrary<'a>, Op: Arbitrary<'a>>(data: &'a [u8]) -> Option<(S, Vec<Op>)> {
    let mut u = Unstructured::new(data);
    let setup = S::arbitrary(&mut u).ok()?;
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    Some((setup, ops))
}

/// Whether an op that ends something (drops a ring end, closes a port) takes effect.
/// Only one in 32 does: ending early leaves the rest of an input nothing to test, and
/// random inputs would otherwise end within a few ops.
fn armed(byte: u8) -> bool {
    byte % 32 == 0
}

/// CRC-32 (IEEE), the segment header's checksum, so a forger can refresh it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `data` with the header fields a blind mutator can hardly get right (the lengths, which
/// must match the file size, and the checksum) made consistent again, as a deliberate
/// forger would; `None` when `data` is not a ringport header or is already consistent.
pub fn forge_header(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < HEADER_LEN || &data[..8] != b"RINGPORT" {
        return None;
    }
    let mut forged = data.to_vec();
    let total = data.len() as u64;
    forged[24..32].copy_from_slice(&total.to_le_bytes());
    forged[40..48].copy_from_slice(&(total - HEADER_LEN as u64).to_le_bytes());
    let sum = crc32(&forged[..112]);
    forged[112..116].copy_from_slice(&sum.to_le_bytes());
    (forged != data).then_some(forged)
}

/// Deterministic, per-message distinct payload bytes.
fn payload(id: u64, len: usize) -> Vec<u8> {
    let seed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| (seed.rotate_left(i as u32 % 64) as u8) ^ (i as u8))
        .collect()
}

/// Which flavour of a call produced an error, since each error is documented for some.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    Try,
    Timeout,
    Blocking,
}

fn check_recv_error(e: RecvError, how: How) {
    match e {
        RecvError::Empty => assert_eq!(how, How::Try, "Empty from a {how:?} receive"),
        RecvError::Timeout => assert_eq!(how, How::Timeout, "Timeout from a {how:?} receive"),
        RecvError::Disconnected => {}
        RecvError::PeerDied { pid } => assert_ne!(pid, 0, "PeerDied names no process"),
        RecvError::Corrupt(c) => assert!(!c.what().is_empty()),
        other => panic!("unknown RecvError {other:?}: teach the fuzz targets about it"),
    }
    assert!(!e.to_string().is_empty());
}

fn check_send_error(e: SendError, how: How, len: usize, max: usize) {
    match e {
        SendError::Full => assert_eq!(how, How::Try, "Full from a {how:?} send"),
        SendError::Timeout => assert_eq!(how, How::Timeout, "Timeout from a {how:?} send"),
        SendError::Disconnected => {}
        SendError::PeerDied { pid } => assert_ne!(pid, 0, "PeerDied names no process"),
        SendError::TooLarge { len: l, max: m } => {
            assert_eq!(
                (l, m),
                (len, max),
                "TooLarge reports another frame or limit"
            );
            assert!(len > max, "a {len}-byte frame refused as larger than {max}");
        }
        SendError::Corrupt(c) => assert!(!c.what().is_empty()),
        other => panic!("unknown SendError {other:?}: teach the fuzz targets about it"),
    }
    assert!(!e.to_string().is_empty());
}

/// Checks what every frame must satisfy, however hostile the memory it came from, and
/// reads all of its bytes.
fn check_frame_bytes(bytes: &[u8], max: usize) {
    assert!(
        bytes.len() <= max,
        "a {}-byte frame from a ring whose maximum is {max}",
        bytes.len()
    );
    std::hint::black_box(bytes.iter().fold(0u8, |acc, b| acc ^ b));
}

/// As [`check_frame_bytes`], plus the in-place views: payloads start 8-aligned, so
/// `as_pod` succeeds exactly when the length matches.
fn check_frame(frame: &Frame<'_>, max: usize) {
    assert_eq!(frame.as_pod::<u64>().is_some(), frame.len() == 8);
    assert_eq!(frame.as_pod::<[u32; 3]>().is_some(), frame.len() == 12);
    assert_eq!(frame.read_pod::<[u8; 3]>().is_some(), frame.len() == 3);
    if let Some(v) = frame.read_pod::<u64>() {
        assert_eq!(v.to_ne_bytes(), frame.as_bytes());
    }
    check_frame_bytes(frame, max)
}

fn check_segment_error(e: &SegmentError, name: &str) {
    match e {
        SegmentError::Incompatible { name: n, reason }
        | SegmentError::Corrupt { name: n, reason } => {
            assert_eq!(n, name);
            assert!(!reason.is_empty());
        }
        other => panic!("opening a hostile file gave {other:?}, not Incompatible or Corrupt"),
    }
    assert!(!e.to_string().is_empty());
}

fn check_connect_error(e: &ConnectError, name: &str) {
    match e {
        ConnectError::Segment(s) => check_segment_error(s, name),
        ConnectError::Busy { name: n } => assert_eq!(n, name),
        other => panic!("unknown ConnectError {other:?}: teach the fuzz targets about it"),
    }
}

// ---------------------------------------------------------------------------------------
// segment_open
// ---------------------------------------------------------------------------------------

/// Writes `data` as the segment file `name` (mode 0600), then opens it every way a peer
/// could, and uses whatever opens. Then does the same with the header's lengths and
/// checksum forged to match, which a mutator rarely achieves by itself.
pub fn segment_open(data: &[u8]) {
    let name = unique_name("open");
    let _unlink = Unlink(name.clone());
    write_segment_file(&name, data, true);
    open_every_way(&name, data);
    if let Some(forged) = forge_header(data) {
        write_segment_file(&name, &forged, false);
        open_every_way(&name, &forged);
    }
}

fn write_segment_file(name: &str, data: &[u8], create: bool) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(create)
        .truncate(!create)
        .mode(0o600)
        .open(shm_path(name))
        .unwrap_or_else(|e| panic!("cannot write /dev/shm/{name}: {e}"));
    file.write_all(data)
        .unwrap_or_else(|e| panic!("cannot write /dev/shm/{name}: {e}"));
}

fn open_every_way(name: &str, data: &[u8]) {
    let kind_in_file = data
        .get(12..16)
        .map_or(0, |k| u32::from_le_bytes(k.try_into().expect("4 bytes")));
    for kind in [KIND_PORT, kind_in_file, !KIND_PORT] {
        match Segment::open(name, kind) {
            Ok(seg) => {
                assert_eq!(seg.kind(), kind);
                assert_eq!(seg.name(), name);
                assert_eq!(seg.payload_len() + HEADER_LEN, data.len());
                assert!(!seg.is_owner());
                assert_eq!(seg.params().as_slice(), params_in(data).as_slice());
            }
            Err(e) => check_segment_error(&e, name),
        }
    }
    match MessageChannel::open(name) {
        Ok(mut port) => exercise_message_port(&mut port, 6),
        Err(e) => check_connect_error(&e, name),
    }
    open_pod_port::<u64>(name, 0x0123_4567_89AB_CDEF);
    open_pod_port::<u8>(name, 0x5A);
    open_pod_port::<[u32; 3]>(name, [1, 2, 3]);
}

/// The six geometry words of a header that opened, read from the file's bytes.
fn params_in(data: &[u8]) -> Vec<u64> {
    data[64..112]
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
        .collect()
}

fn open_pod_port<T: Pod + Send>(name: &str, sample: T) {
    match MessageChannel::open_pod::<T>(name) {
        Ok(mut port) => exercise_pod_port(&mut port, sample, 6),
        Err(e) => check_connect_error(&e, name),
    }
}

/// Non-blocking traffic on a port over memory that may be hostile: every result must be
/// `Ok` or an error the call documents.
fn exercise_message_port(port: &mut MessagePort, rounds: usize) {
    let max = port.max_frame();
    for i in 0..rounds {
        match port.try_recv() {
            Ok(frame) => check_frame(&frame, max),
            Err(e) => check_recv_error(e, How::Try),
        }
        let len = (i * 37) % (max + 2);
        let bytes = payload(i as u64, len);
        match port.try_post_message(&bytes) {
            Ok(()) => assert!(len <= max),
            Err(e) => check_send_error(e, How::Try, len, max),
        }
        let mut seen = 0;
        match port.try_recv_batch(i % 4, |f| {
            check_frame_bytes(f, max);
            seen += 1;
        }) {
            Ok(n) => assert!(n == seen && n <= i % 4),
            Err(e) => check_recv_error(e, How::Try),
        }
        let timeout = if i == 0 { SHORT_WAIT } else { Duration::ZERO };
        match port.post_message_timeout(&bytes, timeout) {
            Ok(()) => assert!(len <= max),
            Err(e) => check_send_error(e, How::Timeout, len, max),
        }
        match port.recv_timeout(timeout) {
            Ok(frame) => check_frame(&frame, max),
            Err(e) => check_recv_error(e, How::Timeout),
        }
    }
}

fn exercise_pod_port<T: Pod + Send>(port: &mut PodPort<T>, sample: T, rounds: usize) {
    assert!(port.capacity() >= 2, "a pod ring holds at least two blocks");
    let mut out = [T::zeroed(); 9];
    for i in 0..rounds {
        if let Err(e) = port.try_recv() {
            check_recv_error(e, How::Try);
        }
        if let Err(e) = port.try_post_message(sample) {
            check_send_error(e, How::Try, 0, 0);
        }
        let batch = vec![sample; i % 9];
        match port.try_post_batch(&batch) {
            Ok(n) => assert!(n <= batch.len() && (n > 0 || batch.is_empty())),
            Err(e) => check_send_error(e, How::Try, 0, 0),
        }
        let want = (i * 5) % 10;
        match port.try_recv_batch(&mut out[..want.min(9)]) {
            Ok(n) => assert!(n <= want && (n > 0 || want == 0)),
            Err(e) => check_recv_error(e, How::Try),
        }
        let timeout = if i == 0 { SHORT_WAIT } else { Duration::ZERO };
        if let Err(e) = port.post_message_timeout(sample, timeout) {
            check_send_error(e, How::Timeout, 0, 0);
        }
        if let Err(e) = port.recv_timeout(timeout) {
            check_recv_error(e, How::Timeout);
        }
    }
}

// ---------------------------------------------------------------------------------------
// frame_ops
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct FrameSetup {
    /// Selects 128 + 64 * (capacity % 16) bytes.
    capacity: u8,
    /// Taken modulo the largest allowed maximum, plus one.
    max_frame: u16,
}

#[derive(Arbitrary, Debug)]
enum FrameOp {
    Send {
        len: u16,
        how: How,
    },
    SendBatch {
        lens: Vec<u16>,
        blocking: bool,
    },
    Recv {
        how: How,
    },
    RecvWith {
        blocking: bool,
    },
    RecvBatch {
        max: u8,
        blocking: bool,
    },
    /// Drops one end, when [`armed`] says so.
    Drop {
        producer: bool,
        armed: u8,
    },
}

/// What a frame ring must hold, by its documented contract.
struct FrameModel {
    capacity: usize,
    max: usize,
    /// Sent and not yet received, in order.
    queue: VecDeque<Vec<u8>>,
    /// Bytes the queued frames occupy (8-byte header plus payload padded to 8).
    queued_bytes: usize,
    /// The consumer has handed back everything and nothing was sent since (it found the
    /// ring empty, or a batch receive emptied it): a frame of `max_frame` bytes must fit.
    drained: bool,
    next_id: u64,
}

fn frame_size(len: usize) -> usize {
    8 + len.next_multiple_of(8)
}

impl FrameModel {
    fn push(&mut self, bytes: Vec<u8>) {
        assert!(
            bytes.len() <= self.max,
            "sent a frame longer than max_frame"
        );
        self.queued_bytes += frame_size(bytes.len());
        assert!(
            self.queued_bytes <= self.capacity,
            "{} bytes of frames in flight in a {}-byte ring",
            self.queued_bytes,
            self.capacity
        );
        self.queue.push_back(bytes);
        self.drained = false;
    }

    fn expect_frame(&mut self, got: &[u8]) {
        let want = self
            .queue
            .pop_front()
            .unwrap_or_else(|| panic!("received a {}-byte frame nobody sent", got.len()));
        assert_eq!(
            got,
            &want[..],
            "frames lost, duplicated, reordered or altered"
        );
        self.queued_bytes -= frame_size(want.len());
    }

    /// A receive found nothing (`Empty`, `Timeout` or `Disconnected`).
    fn expect_nothing(&mut self, e: RecvError, how: How, producer_gone: bool) {
        check_recv_error(e, how);
        assert!(
            self.queue.is_empty(),
            "{e:?} with {} frames waiting",
            self.queue.len()
        );
        match e {
            RecvError::Disconnected => {
                assert!(producer_gone, "Disconnected while the producer lives")
            }
            RecvError::Empty | RecvError::Timeout => {
                assert!(
                    !producer_gone,
                    "{e:?} after the producer closed, not Disconnected"
                );
                self.drained = true;
            }
            other => panic!("{other:?} from a heap ring with honest ends"),
        }
    }

    /// A new frame whose length, from the input, is sometimes over the maximum.
    fn frame(&mut self, raw_len: u16) -> Vec<u8> {
        self.frame_of_len(usize::from(raw_len) % (self.max + 17))
    }

    fn frame_of_len(&mut self, len: usize) -> Vec<u8> {
        let id = self.next_id;
        self.next_id += 1;
        payload(id, len)
    }

    /// Whether sending `bytes` now must succeed.
    fn must_fit(&self, bytes: &[u8]) -> bool {
        self.drained && bytes.len() <= self.max
    }
}

/// Runs operations on a small heap `FrameRing` and checks them against [`FrameModel`]:
/// frames arrive in order, unaltered, exactly once; a refused frame never arrives;
/// `Empty`, `Disconnected` and `TooLarge` come exactly when the contract says; and a
/// drained ring always takes a frame of `max_frame` bytes.
pub fn frame_ops(data: &[u8]) {
    let Some((setup, ops)) = decode::<FrameSetup, FrameOp>(data) else {
        return;
    };
    let capacity = 128 + 64 * usize::from(setup.capacity % 16);
    let max = usize::from(setup.max_frame) % (capacity / 2 - 16 + 1);
    let (tx, rx) = FrameRing::with_limits(capacity, max);
    assert_eq!((tx.max_frame(), rx.max_frame()), (max, max));
    let mut tx = Some(tx);
    let mut rx = Some(rx);
    let mut m = FrameModel {
        capacity,
        max,
        queue: VecDeque::new(),
        queued_bytes: 0,
        drained: true,
        next_id: 0,
    };
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        match op {
            FrameOp::Send { len, how } => {
                let bytes = m.frame(*len);
                if let Some(tx) = tx.as_mut() {
                    frame_send(tx, rx.is_none(), &mut m, bytes, *how);
                }
            }
            FrameOp::SendBatch { lens, blocking } => {
                let frames: Vec<Vec<u8>> = lens.iter().take(16).map(|&l| m.frame(l)).collect();
                if let Some(tx) = tx.as_mut() {
                    frame_send_batch(tx, rx.is_none(), &mut m, &frames, *blocking);
                }
            }
            FrameOp::Recv { how } => {
                if let Some(rx) = rx.as_mut() {
                    frame_recv(rx, tx.is_none(), &mut m, *how);
                }
            }
            FrameOp::RecvWith { blocking } => {
                if let Some(rx) = rx.as_mut() {
                    frame_recv_with(rx, tx.is_none(), &mut m, *blocking);
                }
            }
            FrameOp::RecvBatch { max: n, blocking } => {
                if let Some(rx) = rx.as_mut() {
                    frame_recv_batch(rx, tx.is_none(), &mut m, usize::from(*n % 12), *blocking);
                }
            }
            FrameOp::Drop { producer, armed: a } if armed(*a) => {
                if *producer {
                    tx = None;
                } else {
                    rx = None;
                }
            }
            FrameOp::Drop { .. } => {}
        }
        if let Some(tx) = tx.as_ref() {
            assert_eq!(tx.is_disconnected(), rx.is_none());
        }
    }
    let Some(mut rx) = rx else {
        return;
    };
    while !m.queue.is_empty() {
        frame_recv(&mut rx, tx.is_none(), &mut m, How::Try);
    }
    frame_recv(&mut rx, tx.is_none(), &mut m, How::Try);
    if let Some(mut tx) = tx {
        // Found empty just above, so everything is handed back: the largest frame fits.
        let bytes = m.frame_of_len(max);
        frame_send(&mut tx, false, &mut m, bytes, How::Try);
        assert_eq!(m.queue.len(), 1);
        frame_recv(&mut rx, false, &mut m, How::Try);
    }
}

fn frame_send(
    tx: &mut FrameProducer,
    consumer_gone: bool,
    m: &mut FrameModel,
    bytes: Vec<u8>,
    how: How,
) {
    let len = bytes.len();
    let must_fit = m.must_fit(&bytes) && !consumer_gone;
    // A blocking send returns at once only when the frame fits, is refused, or nobody
    // will ever make room.
    let how = match how {
        How::Blocking if !(must_fit || consumer_gone || len > m.max) => How::Try,
        how => how,
    };
    let r = match how {
        How::Try => tx.try_send(&bytes),
        How::Timeout => tx.send_timeout(&bytes, Duration::ZERO),
        How::Blocking => tx.send(&bytes),
    };
    match r {
        Ok(()) => {
            assert!(!consumer_gone, "sent into a ring whose consumer is gone");
            m.push(bytes);
        }
        Err(e) => {
            check_send_error(e, how, len, m.max);
            match e {
                SendError::TooLarge { .. } => {}
                SendError::Disconnected => {
                    assert!(consumer_gone, "Disconnected while the consumer lives")
                }
                SendError::Full | SendError::Timeout => {
                    assert!(
                        !must_fit,
                        "a {len}-byte frame refused by a drained ring (max {})",
                        m.max
                    );
                    assert!(
                        !consumer_gone,
                        "{e:?} after the consumer closed, not Disconnected"
                    );
                }
                other => panic!("{other:?} from a heap ring with honest ends"),
            }
            assert!(
                len <= m.max || matches!(e, SendError::TooLarge { .. } | SendError::Disconnected)
            );
        }
    }
}

fn frame_send_batch(
    tx: &mut FrameProducer,
    consumer_gone: bool,
    m: &mut FrameModel,
    frames: &[Vec<u8>],
    blocking: bool,
) {
    let first_fits = frames.first().is_some_and(|f| m.must_fit(f)) && !consumer_gone;
    if blocking && (consumer_gone || frames.is_empty() || (first_fits && frames.len() == 1)) {
        match tx.send_batch(frames) {
            Ok(()) => {
                assert!(!consumer_gone || frames.is_empty());
                frames.iter().for_each(|f| m.push(f.clone()));
            }
            Err(e) => {
                check_send_error(e, How::Blocking, frames[0].len(), m.max);
                assert!(
                    consumer_gone || frames[0].len() > m.max,
                    "send_batch failed with {e:?}"
                );
            }
        }
        return;
    }
    match tx.try_send_batch(frames) {
        Ok(n) => {
            assert!(!consumer_gone, "sent into a ring whose consumer is gone");
            assert!(n <= frames.len());
            assert_eq!(n == 0, frames.is_empty(), "Ok(0) for a non-empty batch");
            frames[..n].iter().for_each(|f| m.push(f.clone()));
        }
        Err(e) => {
            let first = frames.first().map_or(0, Vec::len);
            check_send_error(e, How::Try, first, m.max);
            match e {
                SendError::Disconnected => assert!(consumer_gone),
                SendError::TooLarge { .. } => {}
                SendError::Full => {
                    assert!(
                        !frames.is_empty() && !first_fits && !consumer_gone,
                        "batch refused as Full"
                    );
                }
                other => panic!("{other:?} from a heap ring with honest ends"),
            }
        }
    }
}

fn frame_recv(rx: &mut FrameConsumer, producer_gone: bool, m: &mut FrameModel, how: How) {
    let max = m.max;
    let how = match how {
        How::Blocking if m.queue.is_empty() && !producer_gone => How::Try,
        how => how,
    };
    let r = match how {
        How::Try => rx.try_recv(),
        How::Timeout => rx.recv_timeout(Duration::ZERO),
        How::Blocking => rx.recv(),
    };
    match r {
        Ok(frame) => {
            check_frame(&frame, max);
            m.expect_frame(&frame);
        }
        Err(e) => m.expect_nothing(e, how, producer_gone),
    }
}

fn frame_recv_with(
    rx: &mut FrameConsumer,
    producer_gone: bool,
    m: &mut FrameModel,
    blocking: bool,
) {
    let blocking = blocking && (!m.queue.is_empty() || producer_gone);
    let r = if blocking {
        rx.recv_with(<[u8]>::to_vec)
    } else {
        rx.try_recv_with(<[u8]>::to_vec)
    };
    match r {
        Ok(bytes) => {
            check_frame_bytes(&bytes, m.max);
            m.expect_frame(&bytes);
        }
        Err(e) => m.expect_nothing(
            e,
            if blocking { How::Blocking } else { How::Try },
            producer_gone,
        ),
    }
}

fn frame_recv_batch(
    rx: &mut FrameConsumer,
    producer_gone: bool,
    m: &mut FrameModel,
    max: usize,
    blocking: bool,
) {
    let blocking = blocking && (!m.queue.is_empty() || producer_gone);
    let mut got = Vec::new();
    let frame_max = m.max;
    let collect = |f: &[u8]| {
        check_frame_bytes(f, frame_max);
        got.push(f.to_vec());
    };
    let r = if blocking {
        rx.recv_batch(max, collect)
    } else {
        rx.try_recv_batch(max, collect)
    };
    match r {
        Ok(n) => {
            assert_eq!(n, got.len());
            assert_eq!(
                n,
                max.min(m.queue.len()),
                "a batch receive left ready frames behind"
            );
            got.iter().for_each(|f| m.expect_frame(f));
            // A batch hands back everything it read.
            m.drained = m.queue.is_empty();
        }
        Err(e) => m.expect_nothing(
            e,
            if blocking { How::Blocking } else { How::Try },
            producer_gone,
        ),
    }
}

// ---------------------------------------------------------------------------------------
// pod_ops
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct PodSetup {
    /// Requested capacity, modulo 64.
    capacity: u8,
}

#[derive(Arbitrary, Debug)]
enum PodOp {
    Send {
        how: How,
    },
    SendBatch {
        n: u8,
        blocking: bool,
    },
    Recv {
        how: How,
    },
    RecvBatch {
        n: u8,
        blocking: bool,
    },
    /// Drops one end, when [`armed`] says so.
    Drop {
        producer: bool,
        armed: u8,
    },
}

/// What a pod ring of `u64` must hold, by its documented contract.
///
/// The ring is blocks of `per_block` slots handed back whole. Right after the consumer
/// finds the ring empty (or a batch receive empties it) it has handed back every block it
/// finished, and only the slots of the block it shares with the producer are still
/// unavailable: the producer has exactly `capacity - sent % per_block` free slots.
/// Receives after that can only add room, so the count stays a lower bound.
struct PodModel {
    capacity: usize,
    per_block: usize,
    queue: VecDeque<u64>,
    next: u64,
    /// Values ever accepted by the ring.
    sent: u64,
    /// Free slots the producer is guaranteed.
    room: usize,
    /// `room` is exact: nothing was received since the consumer last drained the ring.
    exact: bool,
}

impl PodModel {
    fn drained(&mut self) {
        self.room = self.capacity - (self.sent % self.per_block as u64) as usize;
        self.exact = true;
    }

    fn accepted(&mut self, values: &[u64]) {
        if self.exact {
            assert!(
                values.len() <= self.room,
                "accepted {} values with {} free slots",
                values.len(),
                self.room
            );
        }
        self.room = self.room.saturating_sub(values.len());
        self.sent += values.len() as u64;
        self.queue.extend(values);
        assert!(
            self.queue.len() <= self.capacity,
            "more values in flight than the capacity"
        );
    }

    fn expect_value(&mut self, got: u64) {
        let want = self
            .queue
            .pop_front()
            .unwrap_or_else(|| panic!("received {got} that nobody sent"));
        assert_eq!(got, want, "values lost, duplicated or reordered");
        self.exact = false;
    }

    fn expect_nothing(&mut self, e: RecvError, how: How, producer_gone: bool) {
        check_recv_error(e, how);
        assert!(
            self.queue.is_empty(),
            "{e:?} with {} values waiting",
            self.queue.len()
        );
        match e {
            RecvError::Disconnected => {
                assert!(producer_gone, "Disconnected while the producer lives")
            }
            RecvError::Empty | RecvError::Timeout => {
                assert!(
                    !producer_gone,
                    "{e:?} after the producer closed, not Disconnected"
                );
                self.drained();
            }
            other => panic!("{other:?} from a heap ring with honest ends"),
        }
    }

    fn values(&mut self, n: usize) -> Vec<u64> {
        let v = (self.next..self.next + n as u64).collect();
        self.next += n as u64;
        v
    }
}

/// Slots per block of a `u64` ring: the smallest ring has exactly two blocks.
fn u64_per_block() -> usize {
    PodRing::<u64>::with_capacity(1).0.capacity() / 2
}

/// Runs operations on a small heap `PodRing<u64>` and checks them against [`PodModel`]:
/// values arrive in order exactly once, and right after a drain the ring takes exactly
/// as many values as it has free slots, then reports `Full`.
pub fn pod_ops(data: &[u8]) {
    let Some((setup, ops)) = decode::<PodSetup, PodOp>(data) else {
        return;
    };
    let requested = usize::from(setup.capacity % 64);
    let (tx, rx) = PodRing::<u64>::with_capacity(requested);
    let capacity = tx.capacity();
    let per_block = u64_per_block();
    assert_eq!(capacity, rx.capacity());
    assert!(capacity >= requested && capacity >= 2 * per_block && capacity % per_block == 0);
    let mut tx = Some(tx);
    let mut rx = Some(rx);
    let mut m = PodModel {
        capacity,
        per_block,
        queue: VecDeque::new(),
        next: 0,
        sent: 0,
        room: capacity,
        exact: true,
    };
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        match op {
            PodOp::Send { how } => {
                if let Some(tx) = tx.as_mut() {
                    pod_send(tx, rx.is_none(), &mut m, *how);
                }
            }
            PodOp::SendBatch { n, blocking } => {
                if let Some(tx) = tx.as_mut() {
                    pod_send_batch(tx, rx.is_none(), &mut m, usize::from(*n % 32), *blocking);
                }
            }
            PodOp::Recv { how } => {
                if let Some(rx) = rx.as_mut() {
                    pod_recv(rx, tx.is_none(), &mut m, *how);
                }
            }
            PodOp::RecvBatch { n, blocking } => {
                if let Some(rx) = rx.as_mut() {
                    pod_recv_batch(rx, tx.is_none(), &mut m, usize::from(*n % 32), *blocking);
                }
            }
            PodOp::Drop { producer, armed: a } if armed(*a) => {
                if *producer {
                    tx = None;
                } else {
                    rx = None;
                }
            }
            PodOp::Drop { .. } => {}
        }
        if let Some(tx) = tx.as_ref() {
            assert_eq!(tx.is_disconnected(), rx.is_none());
        }
    }
    let Some(mut rx) = rx else {
        return;
    };
    while !m.queue.is_empty() {
        pod_recv(&mut rx, tx.is_none(), &mut m, How::Try);
    }
    pod_recv(&mut rx, tx.is_none(), &mut m, How::Try);
    if let Some(mut tx) = tx {
        // Found empty just above: the room is known exactly, so fill it to the last slot.
        let room = m.room;
        for _ in 0..room {
            pod_send(&mut tx, false, &mut m, How::Try);
        }
        assert_eq!(
            m.queue.len(),
            room,
            "the drained ring refused values before it was full"
        );
        assert_eq!(
            tx.try_send(0),
            Err(SendError::Full),
            "the ring took more than its free slots"
        );
        let mut out = vec![0; room + 1];
        pod_recv_batch_into(&mut rx, false, &mut m, &mut out, false);
        assert!(m.queue.is_empty());
    }
}

fn pod_send(tx: &mut PodProducer<u64>, consumer_gone: bool, m: &mut PodModel, how: How) {
    let how = match how {
        How::Blocking if m.room == 0 && !consumer_gone => How::Try,
        how => how,
    };
    let v = m.values(1);
    let r = match how {
        How::Try => tx.try_send(v[0]),
        How::Timeout => tx.send_timeout(v[0], Duration::ZERO),
        How::Blocking => tx.send(v[0]),
    };
    match r {
        Ok(()) => {
            assert!(!consumer_gone, "sent into a ring whose consumer is gone");
            m.accepted(&v);
        }
        Err(e) => pod_refused(e, how, consumer_gone, m),
    }
}

fn pod_refused(e: SendError, how: How, consumer_gone: bool, m: &PodModel) {
    check_send_error(e, how, 0, 0);
    match e {
        SendError::Disconnected => assert!(consumer_gone, "Disconnected while the consumer lives"),
        SendError::Full | SendError::Timeout => {
            assert!(
                !consumer_gone,
                "{e:?} after the consumer closed, not Disconnected"
            );
            assert_eq!(m.room, 0, "{e:?} with {} slots guaranteed free", m.room);
        }
        other => panic!("{other:?} from a heap ring with honest ends"),
    }
}

fn pod_send_batch(
    tx: &mut PodProducer<u64>,
    consumer_gone: bool,
    m: &mut PodModel,
    n: usize,
    blocking: bool,
) {
    let values = m.values(n);
    if blocking && (consumer_gone || n <= m.room) {
        match tx.send_batch(&values) {
            Ok(()) => {
                assert!(!consumer_gone || values.is_empty());
                m.accepted(&values);
            }
            Err(e) => {
                check_send_error(e, How::Blocking, 0, 0);
                assert!(
                    consumer_gone && e == SendError::Disconnected,
                    "send_batch failed with {e:?}"
                );
            }
        }
        return;
    }
    match tx.try_send_batch(&values) {
        Ok(sent) => {
            assert!(!consumer_gone, "sent into a ring whose consumer is gone");
            assert!(
                sent <= n && sent >= n.min(m.room),
                "sent {sent} of {n} with {} slots free",
                m.room
            );
            if m.exact {
                assert_eq!(
                    sent,
                    n.min(m.room),
                    "a drained ring took the wrong number of values"
                );
            }
            m.accepted(&values[..sent]);
        }
        Err(e) => {
            assert!(n > 0 || consumer_gone, "an empty batch failed with {e:?}");
            pod_refused(e, How::Try, consumer_gone, m);
        }
    }
}

fn pod_recv(rx: &mut PodConsumer<u64>, producer_gone: bool, m: &mut PodModel, how: How) {
    let how = match how {
        How::Blocking if m.queue.is_empty() && !producer_gone => How::Try,
        how => how,
    };
    let r = match how {
        How::Try => rx.try_recv(),
        How::Timeout => rx.recv_timeout(Duration::ZERO),
        How::Blocking => rx.recv(),
    };
    match r {
        Ok(v) => m.expect_value(v),
        Err(e) => m.expect_nothing(e, how, producer_gone),
    }
}

fn pod_recv_batch(
    rx: &mut PodConsumer<u64>,
    producer_gone: bool,
    m: &mut PodModel,
    n: usize,
    blocking: bool,
) {
    let mut out = vec![u64::MAX; n];
    pod_recv_batch_into(rx, producer_gone, m, &mut out, blocking);
}

fn pod_recv_batch_into(
    rx: &mut PodConsumer<u64>,
    producer_gone: bool,
    m: &mut PodModel,
    out: &mut [u64],
    blocking: bool,
) {
    let blocking = blocking && (!m.queue.is_empty() || producer_gone || out.is_empty());
    let r = if blocking {
        rx.recv_batch(out)
    } else {
        rx.try_recv_batch(out)
    };
    match r {
        Ok(got) => {
            assert_eq!(
                got,
                out.len().min(m.queue.len()),
                "a batch receive left ready values behind"
            );
            out[..got].iter().for_each(|&v| m.expect_value(v));
            // A batch hands back every block it finished.
            if m.queue.is_empty() {
                m.drained();
            }
        }
        Err(e) => m.expect_nothing(
            e,
            if blocking { How::Blocking } else { How::Try },
            producer_gone,
        ),
    }
}

// ---------------------------------------------------------------------------------------
// hostile_peer
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct HostileSetup {
    pod: bool,
    capacity: u16,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The port `create` returned: producer of ring 1→2, consumer of ring 2→1.
    Creator,
    /// The port `open` returned.
    Opener,
    /// A port from a later `open`, which succeeds only if the scribbles freed the ends.
    Extra,
}

#[derive(Arbitrary, Debug)]
enum HostileOp {
    Scribble(Scribble),
    Send {
        who: Who,
        len: u16,
        timed: Option<bool>,
    },
    SendBatch {
        who: Who,
        n: u8,
    },
    Recv {
        who: Who,
        timed: Option<bool>,
    },
    RecvBatch {
        who: Who,
        max: u8,
    },
    /// Closes a port, when [`armed`] says so.
    Close {
        who: Who,
        armed: u8,
    },
    Reopen,
}

/// A write by the hostile peer. Offsets wrap around what they index, so every scribble
/// lands inside the file and never changes its size.
#[derive(Arbitrary, Debug)]
enum Scribble {
    /// Raw bytes anywhere in the file, header included.
    Bytes { at: u16, bytes: Vec<u8> },
    /// A 4- or 8-byte little-endian value anywhere in the file, aligned or not.
    Word { at: u16, value: u64, wide: bool },
    /// A field of a ring's control block.
    Field {
        second: bool,
        field: Field,
        value: u64,
    },
    /// An 8-byte word of a ring's data area (frame headers, pod stamps).
    Data {
        second: bool,
        index: u16,
        value: u64,
    },
    /// Adds `delta` to an 8-byte word of a ring: plausible-looking lies about positions,
    /// stamps and sequence numbers.
    Nudge {
        second: bool,
        index: u16,
        delta: i16,
    },
    /// Copies one data word of a ring over another: stale headers from another lap.
    Copy { second: bool, from: u16, to: u16 },
}

/// Control-block fields: `released` at 0, the data and space signals `{epoch, waiters}` at
/// 128 and 256, the endpoints `{state, pid, start_time}` at 384 (producer) and 400
/// (consumer).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Field {
    Released,
    DataEpoch,
    DataWaiters,
    SpaceEpoch,
    SpaceWaiters,
    ProducerState,
    ProducerPid,
    ProducerStartTime,
    ConsumerState,
    ConsumerPid,
    ConsumerStartTime,
}

impl Field {
    /// Offset in the control block and width in bytes.
    fn place(self) -> (usize, usize) {
        match self {
            Field::Released => (0, 8),
            Field::DataEpoch => (128, 4),
            Field::DataWaiters => (132, 4),
            Field::SpaceEpoch => (256, 4),
            Field::SpaceWaiters => (260, 4),
            Field::ProducerState => (384, 4),
            Field::ProducerPid => (388, 4),
            Field::ProducerStartTime => (392, 8),
            Field::ConsumerState => (400, 4),
            Field::ConsumerPid => (404, 4),
            Field::ConsumerStartTime => (408, 8),
        }
    }
}

/// Where the two rings lie in a channel file of `file_len` bytes: (file offset of ring
/// 1→2, of ring 2→1, length of one ring). A ring is 512 bytes of control block plus a
/// data area of whole 64-byte lines, and the second starts at the first's length rounded
/// up to 128, so the payload is either exactly two rings or two rings and a 64-byte gap.
fn ring_places(file_len: usize) -> (usize, usize, usize) {
    let payload = file_len - HEADER_LEN;
    let ring = if payload % 256 == 0 {
        payload / 2
    } else {
        (payload - 64) / 2
    };
    assert_eq!(
        ring % 64,
        0,
        "unexpected channel payload of {payload} bytes"
    );
    (HEADER_LEN, HEADER_LEN + ring.next_multiple_of(128), ring)
}

/// The hostile process: writes through its own file handle, as another process would.
struct Scribbler {
    file: File,
    len: usize,
    rings: (usize, usize, usize),
}

impl Scribbler {
    fn write(&self, at: usize, bytes: &[u8]) {
        let at = at % self.len;
        let bytes = &bytes[..bytes.len().min(self.len - at)];
        self.file
            .write_all_at(bytes, at as u64)
            .unwrap_or_else(|e| panic!("scribbling at {at}: {e}"));
    }

    fn read_u64(&self, at: usize) -> u64 {
        let mut word = [0; 8];
        self.file
            .read_exact_at(&mut word, at as u64)
            .unwrap_or_else(|e| panic!("reading at {at}: {e}"));
        u64::from_le_bytes(word)
    }

    fn ring(&self, second: bool) -> usize {
        if second {
            self.rings.1
        } else {
            self.rings.0
        }
    }

    /// File offset of 8-byte word `index` of a ring, control block included.
    fn ring_word(&self, second: bool, index: u16) -> usize {
        self.ring(second) + usize::from(index) * 8 % self.rings.2
    }

    /// File offset of 8-byte word `index` of a ring's data area.
    fn data_word(&self, second: bool, index: u16) -> usize {
        let data = self.rings.2 - CTRL_LEN;
        self.ring(second) + CTRL_LEN + usize::from(index) * 8 % data
    }

    fn apply(&self, s: &Scribble) {
        match s {
            Scribble::Bytes { at, bytes } => self.write(usize::from(*at), bytes),
            Scribble::Word { at, value, wide } => {
                let width = if *wide { 8 } else { 4 };
                self.write(usize::from(*at), &value.to_le_bytes()[..width]);
            }
            Scribble::Field {
                second,
                field,
                value,
            } => {
                let (offset, width) = field.place();
                self.write(self.ring(*second) + offset, &value.to_le_bytes()[..width]);
            }
            Scribble::Data {
                second,
                index,
                value,
            } => {
                self.write(self.data_word(*second, *index), &value.to_le_bytes());
            }
            Scribble::Nudge {
                second,
                index,
                delta,
            } => {
                let at = self.ring_word(*second, *index);
                let value = self.read_u64(at).wrapping_add_signed(i64::from(*delta));
                self.write(at, &value.to_le_bytes());
            }
            Scribble::Copy { second, from, to } => {
                let value = self.read_u64(self.data_word(*second, *from));
                self.write(self.data_word(*second, *to), &value.to_le_bytes());
            }
        }
    }
}

/// Creates a named channel and joins it, then runs the ops. Until the first scribble the
/// channel must behave exactly like two FIFO queues; after it, every call must still
/// return `Ok` or a documented error, promptly, and frames must respect `max_frame`.
pub fn hostile_peer(data: &[u8]) {
    let Some((setup, ops)) = decode::<HostileSetup, HostileOp>(data) else {
        return;
    };
    let name = unique_name("peer");
    let _unlink = Unlink(name.clone());
    if setup.pod {
        hostile_pods(&name, setup.capacity, &ops);
    } else {
        hostile_frames(&name, setup.capacity, &ops);
    }
}

fn scribbler(name: &str) -> Scribbler {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap_or_else(|e| panic!("opening /dev/shm/{name}: {e}"));
    let len = file.metadata().expect("stat of a segment").len() as usize;
    Scribbler {
        file,
        len,
        rings: ring_places(len),
    }
}

/// The clean-channel model: what each direction holds, and which ports closed.
struct Duplex<T> {
    clean: bool,
    /// `[creator → opener, opener → creator]`.
    queues: [VecDeque<T>; 2],
    closed: [bool; 2],
}

impl<T: PartialEq + Debug> Duplex<T> {
    fn new() -> Self {
        Duplex {
            clean: true,
            queues: [VecDeque::new(), VecDeque::new()],
            closed: [false; 2],
        }
    }

    /// Index of `who` as a sender (its outgoing queue), `None` for the extra port.
    fn side(who: Who) -> Option<usize> {
        match who {
            Who::Creator => Some(0),
            Who::Opener => Some(1),
            Who::Extra => None,
        }
    }

    fn sent(&mut self, who: Who, values: impl IntoIterator<Item = T>) {
        if let (true, Some(s)) = (self.clean, Self::side(who)) {
            assert!(
                !self.closed[1 - s],
                "a send succeeded towards a closed port"
            );
            self.queues[s].extend(values);
        }
    }

    fn send_failed(&self, who: Who, e: SendError) {
        if let (true, Some(s)) = (self.clean, Self::side(who)) {
            match e {
                SendError::Disconnected => {
                    assert!(self.closed[1 - s], "Disconnected from a live peer")
                }
                SendError::Full | SendError::Timeout => {
                    assert!(!self.closed[1 - s], "{e:?} towards a closed port")
                }
                // The length is checked before anything else.
                SendError::TooLarge { .. } => {}
                other => panic!("{other:?} on a clean channel"),
            }
        }
    }

    fn received(&mut self, who: Who, got: T) {
        if let (true, Some(s)) = (self.clean, Self::side(who)) {
            let want = self.queues[1 - s].pop_front();
            assert_eq!(
                Some(got),
                want,
                "a clean channel lost, reordered or altered a message"
            );
        }
    }

    /// A batch receive of at most `asked` returned `got`: on a clean channel, all that
    /// was waiting up to `asked`.
    fn batch_received(&self, who: Who, asked: usize, got: usize) {
        if let (true, Some(s)) = (self.clean, Self::side(who)) {
            assert_eq!(
                got,
                asked.min(self.queues[1 - s].len()),
                "a batch receive left messages behind"
            );
        }
    }

    fn recv_failed(&self, who: Who, e: RecvError) {
        if let (true, Some(s)) = (self.clean, Self::side(who)) {
            assert!(self.queues[1 - s].is_empty(), "{e:?} with messages waiting");
            match e {
                RecvError::Disconnected => {
                    assert!(self.closed[1 - s], "Disconnected from a live peer")
                }
                RecvError::Empty | RecvError::Timeout => {
                    assert!(!self.closed[1 - s], "{e:?} from a closed peer")
                }
                other => panic!("{other:?} on a clean channel"),
            }
        }
    }

    fn close(&mut self, who: Who) {
        if let Some(s) = Self::side(who) {
            self.closed[s] = true;
        }
    }

    fn reopened(&self, name: &str, r: Result<(), ConnectError>) {
        if !self.clean {
            if let Err(e) = r {
                match e {
                    ConnectError::Segment(SegmentError::NotFound { name: n }) => {
                        assert_eq!(n, name)
                    }
                    e => check_connect_error(&e, name),
                }
            }
            return;
        }
        match r {
            Ok(()) => panic!("a third port joined a clean channel"),
            Err(ConnectError::Busy { name: n }) => assert_eq!(n, name),
            Err(ConnectError::Segment(SegmentError::NotFound { name: n })) => {
                assert_eq!(n, name);
                assert!(self.closed[0], "the name vanished while its creator lives");
            }
            Err(e) => panic!("reopening a clean channel gave {e:?}"),
        }
    }
}

fn timeout_of(timed: Option<bool>) -> (How, Duration) {
    match timed {
        None => (How::Try, Duration::ZERO),
        Some(false) => (How::Timeout, Duration::ZERO),
        Some(true) => (How::Timeout, SHORT_WAIT),
    }
}

fn slot<T>(ports: &mut [Option<T>; 3], who: Who) -> &mut Option<T> {
    match who {
        Who::Creator => &mut ports[0],
        Who::Opener => &mut ports[1],
        Who::Extra => &mut ports[2],
    }
}

fn hostile_frames(name: &str, capacity: u16, ops: &[HostileOp]) {
    let capacity = usize::from(capacity) % 2048;
    let creator =
        MessageChannel::create(name, capacity).unwrap_or_else(|e| panic!("create {name}: {e}"));
    let opener = MessageChannel::open(name).unwrap_or_else(|e| panic!("open {name}: {e}"));
    let max = creator.max_frame();
    assert_eq!(max, capacity.max(128).next_multiple_of(64) / 2 - 16);
    assert_eq!(opener.max_frame(), max);
    let peer = scribbler(name);
    let mut ports = [Some(creator), Some(opener), None];
    let mut model = Duplex::<Vec<u8>>::new();
    let mut next_id = 0;
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        match op {
            HostileOp::Scribble(s) => {
                model.clean = false;
                peer.apply(s);
            }
            HostileOp::Send { who, len, timed } => {
                let Some(port) = slot(&mut ports, *who).as_mut() else {
                    continue;
                };
                let len = usize::from(*len) % (max + 17);
                let bytes = payload(next_id, len);
                next_id += 1;
                let (how, wait) = timeout_of(*timed);
                let r = match how {
                    How::Timeout => port.post_message_timeout(&bytes, wait),
                    _ => port.try_post_message(&bytes),
                };
                match r {
                    Ok(()) => {
                        assert!(len <= max, "a {len}-byte frame sent past max_frame {max}");
                        model.sent(*who, [bytes]);
                    }
                    Err(e) => {
                        check_send_error(e, how, len, port.max_frame());
                        model.send_failed(*who, e);
                    }
                }
            }
            HostileOp::SendBatch { who, n } => {
                // A port's batch send blocks; the pod variant has the non-blocking one.
                let Some(port) = slot(&mut ports, *who).as_mut() else {
                    continue;
                };
                for _ in 0..*n % 8 {
                    let bytes = payload(next_id, next_id as usize % (max + 1));
                    next_id += 1;
                    match port.try_post_message(&bytes) {
                        Ok(()) => model.sent(*who, [bytes]),
                        Err(e) => {
                            check_send_error(e, How::Try, bytes.len(), max);
                            model.send_failed(*who, e);
                            break;
                        }
                    }
                }
            }
            HostileOp::Recv { who, timed } => {
                let Some(port) = slot(&mut ports, *who).as_mut() else {
                    continue;
                };
                let (how, wait) = timeout_of(*timed);
                let r = match how {
                    How::Timeout => port.recv_timeout(wait),
                    _ => port.try_recv(),
                };
                match r {
                    Ok(frame) => {
                        check_frame(&frame, max);
                        let bytes = frame.to_vec();
                        drop(frame);
                        model.received(*who, bytes);
                    }
                    Err(e) => {
                        check_recv_error(e, how);
                        model.recv_failed(*who, e);
                    }
                }
            }
            HostileOp::RecvBatch { who, max: n } => {
                let Some(port) = slot(&mut ports, *who).as_mut() else {
                    continue;
                };
                let n = usize::from(*n % 12);
                let mut got = Vec::new();
                match port.try_recv_batch(n, |f| {
                    check_frame_bytes(f, max);
                    got.push(f.to_vec());
                }) {
                    Ok(k) => {
                        assert!(k == got.len() && k <= n && (k > 0 || n == 0));
                        model.batch_received(*who, n, k);
                        got.into_iter().for_each(|f| model.received(*who, f));
                    }
                    Err(e) => {
                        check_recv_error(e, How::Try);
                        model.recv_failed(*who, e);
                    }
                }
            }
            HostileOp::Close { who, armed: a } if armed(*a) => {
                if let Some(port) = slot(&mut ports, *who).take() {
                    port.close();
                    model.close(*who);
                }
            }
            HostileOp::Close { .. } => {}
            HostileOp::Reopen => match MessageChannel::open(name) {
                Ok(port) => {
                    model.reopened(name, Ok(()));
                    assert_eq!(port.max_frame(), max);
                    ports[2] = Some(port);
                }
                Err(e) => model.reopened(name, Err(e)),
            },
        }
    }
}

fn hostile_pods(name: &str, capacity: u16, ops: &[HostileOp]) {
    let capacity = usize::from(capacity) % 128;
    let creator = MessageChannel::create_pod::<u64>(name, capacity)
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let opener =
        MessageChannel::open_pod::<u64>(name).unwrap_or_else(|e| panic!("open {name}: {e}"));
    assert!(creator.capacity() >= capacity);
    assert_eq!(opener.capacity(), creator.capacity());
    let peer = scribbler(name);
    let mut ports = [Some(creator), Some(opener), None];
    let mut model = Duplex::<u64>::new();
    let mut next = 0u64;
    let mut out = [0u64; 16];
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        match op {
            HostileOp::Scribble(s) => {
                model.clean = false;
                peer.apply(s);
            }
            HostileOp::Send { who, timed, .. } => {
                let Some(port) = slot(&mut ports, *who).as_mut() else {
                    continue;
                };
                let (how, wait) = timeout_of(*timed);
                let r = match how {
                    How::Timeout => port.post_message_timeout(next, wait),
                    _ => port.try_post_message(next),
                };
                match r {
                    Ok(()) => model.sent(*who, [next]),
                    Err(e) => {
                        check_send_error(e, how, 0, 0);
                        model.send_failed(*who, e);
                    }
                }
                next += 1;
            }
            HostileOp::SendBatch { who, n } => {
                let Some(port) = slot(&mut ports, *who).as_mut() else {
                    continue;
                };
                let values: Vec<u64> = (next..next + u64::from(*n % 40)).collect();
                next += values.len() as u64;
                match port.try_post_batch(&values) {
                    Ok(k) => {
                        assert!(k <= values.len() && (k > 0 || values.is_empty()));
                        model.sent(*who, values[..k].iter().copied());
                    }
                    Err(e) => {
                        check_send_error(e, How::Try, 0, 0);
                        model.send_failed(*who, e);
                    }
                }
            }
            HostileOp::Recv { who, timed } => {
                let Some(port) = slot(&mut ports, *who).as_mut() else {
                    continue;
                };
                let (how, wait) = timeout_of(*timed);
                let r = match how {
                    How::Timeout => port.recv_timeout(wait),
                    _ => port.try_recv(),
                };
                match r {
                    Ok(v) => model.received(*who, v),
                    Err(e) => {
                        check_recv_error(e, how);
                        model.recv_failed(*who, e);
                    }
                }
            }
            HostileOp::RecvBatch { who, max: n } => {
                let Some(port) = slot(&mut ports, *who).as_mut() else {
                    continue;
                };
                let n = usize::from(*n % 17);
                match port.try_recv_batch(&mut out[..n]) {
                    Ok(k) => {
                        assert!(k <= n && (k > 0 || n == 0));
                        model.batch_received(*who, n, k);
                        out[..k].iter().for_each(|&v| model.received(*who, v));
                    }
                    Err(e) => {
                        check_recv_error(e, How::Try);
                        model.recv_failed(*who, e);
                    }
                }
            }
            HostileOp::Close { who, armed: a } if armed(*a) => {
                if let Some(port) = slot(&mut ports, *who).take() {
                    port.close();
                    model.close(*who);
                }
            }
            HostileOp::Close { .. } => {}
            HostileOp::Reopen => match MessageChannel::open_pod::<u64>(name) {
                Ok(port) => {
                    model.reopened(name, Ok(()));
                    ports[2] = Some(port);
                }
                Err(e) => model.reopened(name, Err(e)),
            },
        }
    }
}
