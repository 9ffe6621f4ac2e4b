//! The fuzz target of the frames that issue 6's queues and process worker pools read
//! from another process, shared like [`targets`](crate::targets) with
//! `tests/fuzz_replay_queue.rs`, which includes this file with `#[path]`. Self-contained
//! for that reason: it uses only ringport's public API, `arbitrary` and std.
//!
//! [`queue_frames`] reads its first byte (modulo 4) as the reader to attack and the rest
//! as a recipe for it:
//!
//! 0. **Batches**, read by `queue::BatchReceiver`. Frames in the batch format
//!    (`"MQB1" | count | count × (len | bytes)`), damaged or not, and raw bytes go through
//!    a heap channel. Each receive answers as [`read_batch`], a field-by-field reading of
//!    the format: the batch with exactly its messages and bytes, or `Corrupt` naming the
//!    first rule the frame breaks, after which the next frame still arrives. What is read
//!    re-encodes to the same bytes, and a `MessageQueue` given the same messages writes
//!    exactly those bytes. Once the peer closes, every frame is read, then `Disconnected`.
//! 1. **Priority messages**, read by `queue::PriorityReceiver`. The target plays a hostile
//!    sender process: it makes the named segments a `PriorityMessageQueue::create` makes
//!    (one channel per level, the report channel, and the doorbell, whose parameters give
//!    the levels and the aging, hostile values included), and `PriorityMessageQueue::open`
//!    must accept or refuse them exactly as [`open_answer`] reads them. It then writes
//!    stamped messages and raw bytes into the level rings. Each receive answers as
//!    `Levels::poll`, a model of the documented delivery order: a frame shorter than its
//!    stamp is `Corrupt` and the next receive goes on; each expired message comes back on
//!    the report ring with its level, stamp and payload; once the levels close, everything
//!    is delivered or reported, then `Disconnected`.
//! 2. **Expiry reports**, read by `queue::PrioritySender`. The target plays a hostile
//!    receiver: it opens the report channel of a real named queue and writes reports and
//!    raw bytes into it. Each `try_recv_expired`, `recv_expired_timeout` or
//!    `recv_expired` answers as [`read_report`], and the next report still arrives after a
//!    refused one.
//! 3. **Worker replies**, read by `worker::wire::Reply::parse` (a process pool's workers
//!    are processes spawned from the pool's program, out of a fuzz target's reach). The
//!    rest of the input is one frame: `parse` answers as [`read_reply`], and what it reads
//!    re-encodes to the same bytes, unless its text was not UTF-8.
//!
//! The priority queue's stamps are `CLOCK_MONOTONIC` nanoseconds, which this target
//! cannot read. So that whether a deadline has passed, and with aging a message's
//! effective level, is known, every stamp, deadline and aging it writes is at most
//! [`PAST`] (1 ms) or at least [`FAR`] (2^62 ns, 146 years); a value between is moved to
//! one side ([`settle`]). That relies on the machine having been up for more than a
//! second, which the `noticed` stamps of the reports check.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use ringport::queue::priority::MAX_LEVELS;
use ringport::queue::{
    Batch, BatchReceiver, Expired, Level, MessageQueue, PriorityMessageQueue, PriorityOptions,
    PriorityReceiver, PrioritySender, QueueOptions,
};
use ringport::segment::{Segment, SegmentError, PARAMS};
use ringport::worker::wire::{Reply, DONE, FAILED, PANICKED, READY};
use ringport::{ConnectError, MessageChannel, MessagePort, RecvError};

/// Operations beyond these are ignored.
const MAX_OPS: usize = 32;
/// Stamps at most this far from boot (1 ms) have passed.
pub const PAST: u64 = 1_000_000;
/// Stamps at least this far from boot (2^62 ns, about 146 years) have not come.
pub const FAR: u64 = 1 << 62;
/// How long the machine must have been up for [`PAST`] stamps to be a second old.
const UPTIME_FLOOR: u64 = 1_000_000_000;
/// Bytes each way of a priority level's ring: room for every frame a recipe writes.
const LEVEL_CAPACITY: usize = 16 * 1024;
/// Bytes each way of a report ring with room for every report a recipe causes.
const REPORT_CAPACITY: usize = 64 * 1024;
/// The doorbell's segment kind, which a sender process writes and `open` checks.
const DOORBELL_KIND: u32 = u32::from_le_bytes(*b"PRIQ");
/// Deadlines of a real queue's levels: nothing it sends expires during a run.
const LONG: Duration = Duration::from_secs(3600);

const BATCH_MAGIC: &[u8; 4] = b"MQB1";
const BATCH_HEADER: usize = 8;
const MESSAGE_HEADER: usize = 16;
const REPORT_HEADER: usize = 24;

/// The target: see the module's documentation.
pub fn queue_frames(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => batches(rest),
        1 => priority_messages(rest),
        2 => expiry_reports(rest),
        _ => worker_reply(rest),
    }
}

// ---------------------------------------------------------------------------------------
// Recipes
// ---------------------------------------------------------------------------------------

/// Up to 255 bytes: a length byte, then as many bytes as it says or the input has left.
#[derive(Clone, Debug)]
struct Bytes(Vec<u8>);

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u8::arbitrary(u)?).min(u.len());
        Ok(Bytes(u.bytes(len)?.to_vec()))
    }
}

/// How to receive.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Way {
    /// The `try_` call.
    Try,
    /// The `_timeout` call with a zero timeout.
    Zero,
    /// The blocking call, where the model knows that it returns; the `try_` call
    /// otherwise.
    Blocking,
}

/// A setup, then operations until the input runs out or [`MAX_OPS`].
fn recipe<'a, S: Arbitrary<'a>, Op: Arbitrary<'a>>(data: &'a [u8]) -> Option<(S, Vec<Op>)> {
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

/// Prints which operation was running when a check fails.
struct Step<'a, T: Debug>(usize, &'a T);

impl<T: Debug> Drop for Step<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("while running op #{}: {:?}", self.0, self.1);
        }
    }
}

/// Operations that end something take effect only for a multiple of 32, so that an
/// input does not end itself within a few steps.
fn armed(byte: u8) -> bool {
    byte % 32 == 0
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

/// A segment name no other input of this process, or other process, uses.
fn unique_name(kind: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("rpfz-{}-{n}-{kind}", std::process::id())
}

/// Removes segment names however the target leaves them, panics included.
struct Unlink(Vec<String>);

impl Drop for Unlink {
    fn drop(&mut self) {
        for name in &self.0 {
            // NotFound is the usual answer: the creator unlinks its own names.
            let _ = Segment::unlink(name);
        }
    }
}

/// The names `PriorityMessageQueue::create` gives its segments, as its documentation
/// lists them: levels, reports, doorbell.
fn queue_names(name: &str, levels: usize) -> (Vec<String>, String, String) {
    let levels = (0..levels).map(|i| format!("{name}-p{i}")).collect();
    (levels, format!("{name}-r"), format!("{name}-b"))
}

// ---------------------------------------------------------------------------------------
// 0: batches
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum BatchOp {
    /// A peer's bytes, as one frame.
    Raw(Bytes),
    /// A batch of these messages in the format, then damaged.
    Batch {
        messages: Vec<Bytes>,
        damage: Damage,
    },
    /// The next batch.
    Receive(Way),
    /// The peer closes its port.
    Close { armed: u8 },
}

#[derive(Arbitrary, Debug)]
enum Damage {
    None,
    /// Sets the byte at this offset, modulo the length.
    Byte {
        at: u16,
        value: u8,
    },
    /// Keeps this many bytes, modulo the length.
    Cut(u16),
    /// Appends these bytes.
    Append(Bytes),
}

/// The batch format, as the queue module documents it.
fn batch_bytes<M: AsRef<[u8]>>(messages: &[M]) -> Vec<u8> {
    let mut frame = BATCH_MAGIC.to_vec();
    frame.extend_from_slice(&(messages.len() as u32).to_le_bytes());
    for m in messages {
        frame.extend_from_slice(&(m.as_ref().len() as u32).to_le_bytes());
        frame.extend_from_slice(m.as_ref());
    }
    frame
}

fn damaged(mut frame: Vec<u8>, damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::None => {}
        Damage::Byte { at, value } => {
            let at = usize::from(*at) % frame.len();
            frame[at] = *value;
        }
        Damage::Cut(keep) => frame.truncate(usize::from(*keep) % frame.len()),
        Damage::Append(bytes) => frame.extend_from_slice(&bytes.0),
    }
    frame
}

/// The batch format read field by field: the messages, or the first rule broken, in the
/// receiver's words. Each message takes at least its length prefix, so the walk ends
/// within `frame.len() / 4` steps whatever the count says.
pub fn read_batch(frame: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if frame.len() < BATCH_HEADER {
        return Err("batch frame shorter than its header");
    }
    if &frame[..4] != BATCH_MAGIC {
        return Err("not a batch frame");
    }
    let count = u32_at(frame, 4);
    let mut rest = &frame[BATCH_HEADER..];
    let mut messages = Vec::new();
    for _ in 0..count {
        if rest.len() < 4 {
            return Err("batch holds fewer messages than it counts");
        }
        let len = u32_at(rest, 0) as usize;
        if len > rest.len() - 4 {
            return Err("batch message runs past the frame");
        }
        messages.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    if !rest.is_empty() {
        return Err("bytes after the batch's last message");
    }
    Ok(messages)
}

/// Writes batches with a real `MessageQueue` and reads its frames raw.
struct Rewriter {
    queue: MessageQueue,
    raw: MessagePort,
}

impl Rewriter {
    fn new(capacity: usize) -> Rewriter {
        let ch = MessageChannel::with_capacity(capacity);
        // Only `flush` sends: no batch fills up, and no timer runs out during a run.
        let options = QueueOptions {
            batch_size: 1 << 20,
            batch_delay: LONG,
            max_queue_size: 1 << 20,
            close_timeout: Duration::from_secs(1),
        };
        let queue = MessageQueue::new(ch.port1, options).expect("a queue starts");
        Rewriter {
            queue,
            raw: ch.port2,
        }
    }

    /// The one frame the queue writes for `messages`.
    fn write(&mut self, messages: &[Vec<u8>]) -> Vec<u8> {
        for m in messages {
            self.queue.enqueue(m).expect("the message fits");
        }
        self.queue.flush().expect("the flush publishes");
        let frame = self.raw.try_recv().expect("one frame per flush").to_vec();
        assert_eq!(self.raw.try_recv().err(), Some(RecvError::Empty));
        frame
    }
}

fn batches(data: &[u8]) {
    let Some(((), ops)) = recipe::<(), BatchOp>(data) else {
        return;
    };
    let frames: Vec<Option<Vec<u8>>> = ops
        .iter()
        .map(|op| match op {
            BatchOp::Raw(bytes) => Some(bytes.0.clone()),
            BatchOp::Batch { messages, damage } => {
                let messages: Vec<&[u8]> = messages.iter().map(|m| &m.0[..]).collect();
                Some(damaged(batch_bytes(&messages), damage))
            }
            _ => None,
        })
        .collect();
    // Room for every frame at once, however the ring wraps; frames up to all of them.
    let total: usize = frames.iter().flatten().map(|f| f.len() + 32).sum();
    let capacity = 2 * total + 1024;
    let ch = MessageChannel::with_capacity(capacity);
    let mut tx = Some(ch.port1);
    let mut rx = BatchReceiver::new(ch.port2);
    let mut rewriter = None;
    let mut queued: VecDeque<Vec<u8>> = VecDeque::new();

    for (n, (op, frame)) in ops.iter().zip(frames).enumerate() {
        let _step = Step(n, op);
        match (op, frame) {
            (_, Some(frame)) => {
                if let Some(tx) = &mut tx {
                    tx.try_post_message(&frame).expect("the ring has room");
                    queued.push_back(frame);
                }
            }
            (BatchOp::Receive(way), None) => receive_batch(
                &mut rx,
                *way,
                &mut queued,
                tx.is_none(),
                &mut rewriter,
                capacity,
            ),
            (BatchOp::Close { armed: a }, None) if armed(*a) => tx = None,
            _ => {}
        }
    }
    // Every frame is read, then the closed port is reported.
    drop(tx);
    for _ in 0..=queued.len() {
        receive_batch(
            &mut rx,
            Way::Try,
            &mut queued,
            true,
            &mut rewriter,
            capacity,
        );
    }
}

fn receive_batch(
    rx: &mut BatchReceiver,
    way: Way,
    queued: &mut VecDeque<Vec<u8>>,
    closed: bool,
    rewriter: &mut Option<Rewriter>,
    capacity: usize,
) {
    let got = match way {
        Way::Try => rx.try_recv(),
        Way::Zero => rx.recv_timeout(Duration::ZERO),
        Way::Blocking if !queued.is_empty() || closed => rx.recv(),
        Way::Blocking => rx.try_recv(),
    };
    let Some(frame) = queued.pop_front() else {
        let want = match way {
            _ if closed => RecvError::Disconnected,
            Way::Zero => RecvError::Timeout,
            _ => RecvError::Empty,
        };
        assert_eq!(got.err(), Some(want), "with no frame waiting");
        return;
    };
    let messages = match (read_batch(&frame), got) {
        (Ok(messages), Ok(batch)) => {
            check_batch(&batch, &frame, &messages);
            messages.iter().map(|m| m.to_vec()).collect::<Vec<_>>()
        }
        (Err(why), Err(RecvError::Corrupt(c))) => {
            assert_eq!(c.what(), why, "refusing {frame:02x?}");
            return;
        }
        (want, got) => panic!("read {frame:02x?} as {got:?}, the format says {want:?}"),
    };
    assert_eq!(batch_bytes(&messages), frame, "not the only encoding");
    // A sender never publishes an empty batch.
    if !messages.is_empty() {
        let rewriter = rewriter.get_or_insert_with(|| Rewriter::new(capacity));
        assert_eq!(
            rewriter.write(&messages),
            frame,
            "MessageQueue writes other bytes"
        );
    }
}

fn check_batch(batch: &Batch<'_>, frame: &[u8], messages: &[&[u8]]) {
    assert_eq!(batch.as_bytes(), frame);
    assert_eq!(batch.len(), messages.len());
    assert_eq!(batch.is_empty(), messages.is_empty());
    let iter = batch.iter();
    assert_eq!(iter.len(), messages.len());
    assert_eq!(iter.collect::<Vec<_>>(), messages);
    assert_eq!(batch.into_iter().count(), messages.len());
}

// ---------------------------------------------------------------------------------------
// 1: priority messages, to a real receiver from a hostile sender
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct LevelSetup {
    /// Level rings made: 1 to 4.
    rings: u8,
    /// What the doorbell says.
    params: Params,
    /// A report ring as large as a real sender's; otherwise as large as a level ring,
    /// which `open` refuses.
    roomy_reports: bool,
}

#[derive(Arbitrary, Debug)]
enum Params {
    /// One level per ring, strict priority.
    Strict,
    /// One level per ring, aging by this many nanoseconds ([`settle`]d).
    Aging(u64),
    /// Any words (the aging [`settle`]d).
    Raw { levels: u64, flag: u64, aging: u64 },
}

#[derive(Arbitrary, Debug)]
enum LevelOp {
    /// A stamped message into a ring (modulo the rings made); times [`settle`]d.
    Send {
        ring: u8,
        enqueued: u64,
        deadline: u64,
        payload: Bytes,
    },
    /// A peer's bytes into a ring; a stamp in them is [`settle`]d.
    Raw { ring: u8, bytes: Bytes },
    /// The next message in priority order.
    Receive(Way),
    /// Reads the reports the receiver sent back.
    Reports,
    /// Closes every level ring.
    CloseLevels { armed: u8 },
    /// Closes the report ring.
    CloseReports { armed: u8 },
}

/// `t`, or, when the clock may or may not have passed it, a value on one side: at most
/// [`PAST`] for even `t`, at least [`FAR`] for odd.
pub fn settle(t: u64) -> u64 {
    match t {
        t if t <= PAST || t >= FAR => t,
        t if t % 2 == 0 => t % (PAST + 1),
        t => t | FAR,
    }
}

/// What `PriorityMessageQueue::open` must answer for a doorbell with `params` and
/// `rings` level rings: the levels and aging, or why not, in its words (`None` for a
/// missing segment).
pub fn open_answer(
    params: [u64; PARAMS],
    rings: usize,
    level_frame: usize,
    report_frame: usize,
) -> Result<(usize, Option<u64>), Option<&'static str>> {
    let levels = match usize::try_from(params[0]) {
        Ok(n) if (1..=MAX_LEVELS).contains(&n) => n,
        _ => return Err(Some("number of levels out of range")),
    };
    let aging = match params[1] {
        0 => None,
        1 => Some(params[2]),
        _ => return Err(Some("unknown aging flag")),
    };
    if levels > rings {
        return Err(None);
    }
    if report_frame < level_frame - MESSAGE_HEADER + REPORT_HEADER {
        return Err(Some("report ring smaller than the level rings"));
    }
    Ok((levels, aging))
}

#[derive(Clone, Debug, PartialEq)]
struct Stamped {
    enqueued: u64,
    deadline: u64,
    payload: Vec<u8>,
}

impl Stamped {
    fn frame(&self) -> Vec<u8> {
        let mut frame = self.enqueued.to_le_bytes().to_vec();
        frame.extend_from_slice(&self.deadline.to_le_bytes());
        frame.extend_from_slice(&self.payload);
        frame
    }

    /// A level ring's frame read as the format says: `None` if shorter than its stamp.
    fn read(frame: &[u8]) -> Option<Stamped> {
        (frame.len() >= MESSAGE_HEADER).then(|| Stamped {
            enqueued: u64_at(frame, 0),
            deadline: u64_at(frame, 8),
            payload: frame[MESSAGE_HEADER..].to_vec(),
        })
    }
}

/// What a receive must answer.
#[derive(Debug, PartialEq)]
enum Answer {
    Deliver(usize),
    Nothing,
    Corrupt,
    Disconnected,
}

/// The receiver as its documentation describes it: one look-ahead per level, filled
/// from the level's ring in order; an expired look-ahead is reported and replaced; the
/// delivery is the look-ahead first by effective level, then by send time, then by level.
struct Levels {
    levels: usize,
    aging: Option<u64>,
    /// Frames written and not yet taken, per ring made (`None`: too short).
    rings: Vec<VecDeque<Option<Stamped>>>,
    heads: Vec<Option<Stamped>>,
    /// The receiver has seen the ring closed and empty.
    closed: Vec<bool>,
    senders_closed: bool,
    reports_open: bool,
    /// Reports sent back and not yet read: level and message.
    reports: VecDeque<(usize, Stamped)>,
}

impl Levels {
    fn effective(&self, level: usize, enqueued: u64) -> usize {
        match self.aging {
            None => level,
            Some(0) => 0,
            // Waited no time at all, or less than one step.
            Some(_) if enqueued >= FAR => level,
            Some(a) if a >= FAR => level,
            // Waited over a second, at least 999 steps of at most 1 ms.
            Some(_) => 0,
        }
    }

    fn poll(&mut self) -> Answer {
        let mut best: Option<(usize, u64, usize)> = None;
        for i in 0..self.levels {
            loop {
                if self.heads[i].is_none() {
                    if self.closed[i] {
                        break;
                    }
                    match self.rings[i].pop_front() {
                        Some(Some(m)) => self.heads[i] = Some(m),
                        Some(None) => return Answer::Corrupt,
                        None => {
                            self.closed[i] = self.senders_closed;
                            break;
                        }
                    }
                }
                let m = self.heads[i].as_ref().expect("just filled");
                if m.deadline <= PAST {
                    let m = self.heads[i].take().expect("just filled");
                    if self.reports_open {
                        self.reports.push_back((i, m));
                    }
                    continue;
                }
                let key = (self.effective(i, m.enqueued), m.enqueued, i);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
                break;
            }
        }
        match best {
            Some((_, _, i)) => Answer::Deliver(i),
            None if self.closed[..self.levels].iter().all(|&c| c) => Answer::Disconnected,
            None => Answer::Nothing,
        }
    }
}

/// A hostile sender's segments.
struct Sender {
    levels: Vec<MessagePort>,
    reports: Option<MessagePort>,
    _bell: Segment,
}

fn priority_messages(data: &[u8]) {
    let Some((setup, ops)) = recipe::<LevelSetup, LevelOp>(data) else {
        return;
    };
    let rings = 1 + usize::from(setup.rings % 4);
    let mut params = [0; PARAMS];
    match setup.params {
        Params::Strict => params[0] = rings as u64,
        Params::Aging(a) => params[..3].copy_from_slice(&[rings as u64, 1, settle(a)]),
        Params::Raw {
            levels,
            flag,
            aging,
        } => params[..3].copy_from_slice(&[levels, flag, settle(aging)]),
    }
    let name = unique_name("prio");
    let (level_names, report_name, bell_name) = queue_names(&name, rings);
    let mut names = level_names.clone();
    names.extend([report_name.clone(), bell_name.clone()]);
    let _unlink = Unlink(names);
    let report_capacity = if setup.roomy_reports {
        REPORT_CAPACITY
    } else {
        LEVEL_CAPACITY
    };
    let levels: Vec<MessagePort> = level_names
        .iter()
        .map(|n| MessageChannel::create(n, LEVEL_CAPACITY).expect("a level ring"))
        .collect();
    let reports = MessageChannel::create(&report_name, report_capacity).expect("a report ring");
    let answer = open_answer(params, rings, levels[0].max_frame(), reports.max_frame());
    // Last, as a real sender does: a receiver that finds the doorbell finds every ring.
    let bell = Segment::create(&bell_name, DOORBELL_KIND, params, 4096).expect("a doorbell");
    let mut sender = Sender {
        levels,
        reports: Some(reports),
        _bell: bell,
    };
    let opened = PriorityMessageQueue::open(&name);
    let (mut receiver, (levels, aging)) = match (opened, answer) {
        (Ok(receiver), Ok(shape)) => (receiver, shape),
        (Err(ConnectError::Segment(SegmentError::Corrupt { reason, .. })), Err(Some(why))) => {
            assert_eq!(reason, why);
            return;
        }
        (Err(ConnectError::Segment(SegmentError::NotFound { .. })), Err(None)) => return,
        (got, want) => panic!("open answered {:?}, expected {want:?}", got.err()),
    };
    assert_eq!(receiver.levels(), levels);
    receiver.set_spin_budget(Duration::ZERO);
    let mut model = Levels {
        levels,
        aging,
        rings: vec![VecDeque::new(); rings],
        heads: vec![None; levels],
        closed: vec![false; levels],
        senders_closed: false,
        reports_open: true,
        reports: VecDeque::new(),
    };

    for (n, op) in ops.iter().enumerate() {
        let _step = Step(n, op);
        match op {
            LevelOp::Send {
                ring,
                enqueued,
                deadline,
                payload,
            } => {
                let m = Stamped {
                    enqueued: settle(*enqueued),
                    deadline: settle(*deadline),
                    payload: payload.0.clone(),
                };
                write_level(&mut sender, &mut model, *ring, &m.frame());
            }
            LevelOp::Raw { ring, bytes } => {
                let mut frame = bytes.0.clone();
                if frame.len() >= MESSAGE_HEADER {
                    for at in [0, 8] {
                        let t = settle(u64_at(&frame, at));
                        frame[at..at + 8].copy_from_slice(&t.to_le_bytes());
                    }
                }
                write_level(&mut sender, &mut model, *ring, &frame);
            }
            LevelOp::Receive(way) => {
                receive_priority(&mut receiver, &mut model, *way);
            }
            LevelOp::Reports => check_reports(&mut sender, &mut model),
            LevelOp::CloseLevels { armed: a } if armed(*a) => {
                sender.levels.clear();
                model.senders_closed = true;
            }
            LevelOp::CloseReports { armed: a } if armed(*a) => {
                sender.reports = None;
                model.reports_open = false;
                model.reports.clear();
            }
            _ => {}
        }
    }
    // Everything written is delivered or reported, then the queue is over.
    sender.levels.clear();
    model.senders_closed = true;
    let written: usize = model.rings.iter().map(VecDeque::len).sum();
    for _ in 0..=written + levels {
        if receive_priority(&mut receiver, &mut model, Way::Try) == Answer::Disconnected {
            check_reports(&mut sender, &mut model);
            return;
        }
    }
    panic!("the receiver never reports the levels closed");
}

fn write_level(sender: &mut Sender, model: &mut Levels, ring: u8, frame: &[u8]) {
    if model.senders_closed {
        return;
    }
    let ring = usize::from(ring) % model.rings.len();
    sender.levels[ring]
        .try_post_message(frame)
        .expect("the level ring has room");
    model.rings[ring].push_back(Stamped::read(frame));
}

fn receive_priority(receiver: &mut PriorityReceiver, model: &mut Levels, way: Way) -> Answer {
    let want = model.poll();
    let got = match way {
        Way::Try => receiver.try_recv(),
        Way::Zero => receiver.recv_timeout(Duration::ZERO),
        Way::Blocking if want != Answer::Nothing => receiver.recv(),
        Way::Blocking => receiver.try_recv(),
    };
    match (&want, got) {
        (Answer::Deliver(i), Ok(delivery)) => {
            let m = model.heads[*i].take().expect("the model's pick");
            assert_eq!(delivery.level, Level(*i as u8));
            assert_eq!(delivery.payload, m.payload);
            if m.enqueued >= FAR {
                assert_eq!(delivery.waited, Duration::ZERO, "sent in the future");
            } else {
                assert!(delivery.waited > Duration::ZERO, "sent at boot");
            }
        }
        (Answer::Nothing, Err(RecvError::Empty)) if !matches!(way, Way::Zero) => {}
        (Answer::Nothing, Err(RecvError::Timeout)) if matches!(way, Way::Zero) => {}
        (Answer::Corrupt, Err(RecvError::Corrupt(c))) => {
            assert_eq!(c.what(), "priority message shorter than its header");
        }
        (Answer::Disconnected, Err(RecvError::Disconnected)) => {}
        (_, got) => panic!("received {got:?}, expected {want:?}"),
    }
    want
}

/// The reports the receiver sent back: each a report frame of the model's next expired
/// message, noticed after its deadline.
fn check_reports(sender: &mut Sender, model: &mut Levels) {
    let Some(port) = &mut sender.reports else {
        return;
    };
    while let Some((level, m)) = model.reports.pop_front() {
        let frame = port.try_recv().expect("a report of an expired message");
        assert!(
            frame.len() >= REPORT_HEADER,
            "report of {} bytes",
            frame.len()
        );
        assert_eq!(u32_at(&frame, 0), level as u32);
        assert_eq!(u32_at(&frame, 4), 0);
        assert_eq!(u64_at(&frame, 8), m.enqueued);
        let noticed = u64_at(&frame, 16);
        assert!(
            (UPTIME_FLOOR..FAR).contains(&noticed),
            "noticed at {noticed} ns of CLOCK_MONOTONIC: this target assumes the machine \
             has been up for over a second"
        );
        assert_eq!(&frame[REPORT_HEADER..], m.payload);
    }
    assert_eq!(
        port.try_recv().err(),
        Some(RecvError::Empty),
        "an extra report"
    );
}

// ---------------------------------------------------------------------------------------
// 2: expiry reports, to a real sender from a hostile receiver
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum ReportOp {
    /// A report in the format, with these fields.
    Report {
        level: u32,
        reserved: u32,
        enqueued: u64,
        noticed: u64,
        payload: Bytes,
    },
    /// A peer's bytes.
    Raw(Bytes),
    /// The next report.
    Receive(Way),
    /// The receiver closes its end of the report ring.
    Close { armed: u8 },
}

/// A report frame read field by field for a queue of `levels` levels: the report, or
/// the first rule broken, in the sender's words.
pub fn read_report(frame: &[u8], levels: usize) -> Result<Expired, &'static str> {
    if frame.len() < REPORT_HEADER {
        return Err("expiry report shorter than its header");
    }
    let level = u32_at(frame, 0);
    if u32_at(frame, 4) != 0 {
        return Err("expiry report with reserved bits set");
    }
    if level as usize >= levels {
        return Err("expiry report names no level of the queue");
    }
    // Clocks of a peer are not trusted to be ordered: "noticed" before "enqueued" is 0.
    let waited = u64_at(frame, 16).saturating_sub(u64_at(frame, 8));
    Ok(Expired {
        level: Level(level as u8),
        payload: frame[REPORT_HEADER..].to_vec(),
        waited: Duration::from_nanos(waited),
    })
}

fn expiry_reports(data: &[u8]) {
    let Some((levels, ops)) = recipe::<u8, ReportOp>(data) else {
        return;
    };
    let levels = 1 + usize::from(levels % 4);
    let name = unique_name("rep");
    let (level_names, report_name, bell_name) = queue_names(&name, levels);
    let mut names = level_names;
    names.extend([report_name.clone(), bell_name]);
    let _unlink = Unlink(names);
    let options = PriorityOptions {
        deadlines: vec![LONG; levels],
        aging: None,
        capacity: LEVEL_CAPACITY,
    };
    let mut sender = PriorityMessageQueue::create(&name, options).expect("a named queue");
    let mut peer = Some(MessageChannel::open(&report_name).expect("the report ring's far end"));
    let mut queued: VecDeque<Vec<u8>> = VecDeque::new();

    for (n, op) in ops.iter().enumerate() {
        let _step = Step(n, op);
        let frame = match op {
            ReportOp::Report {
                level,
                reserved,
                enqueued,
                noticed,
                payload,
            } => {
                let mut frame = level.to_le_bytes().to_vec();
                frame.extend_from_slice(&reserved.to_le_bytes());
                frame.extend_from_slice(&enqueued.to_le_bytes());
                frame.extend_from_slice(&noticed.to_le_bytes());
                frame.extend_from_slice(&payload.0);
                frame
            }
            ReportOp::Raw(bytes) => bytes.0.clone(),
            ReportOp::Receive(way) => {
                receive_report(&mut sender, levels, &mut queued, peer.is_none(), *way);
                continue;
            }
            ReportOp::Close { armed: a } => {
                if armed(*a) {
                    peer = None;
                }
                continue;
            }
        };
        if let Some(peer) = &mut peer {
            peer.try_post_message(&frame)
                .expect("the report ring has room");
            queued.push_back(frame);
        }
    }
    // Every report is read, then the closed ring is reported.
    drop(peer);
    for _ in 0..=queued.len() {
        receive_report(&mut sender, levels, &mut queued, true, Way::Try);
    }
}

fn receive_report(
    sender: &mut PrioritySender,
    levels: usize,
    queued: &mut VecDeque<Vec<u8>>,
    closed: bool,
    way: Way,
) {
    let got = match way {
        Way::Try => sender.try_recv_expired(),
        Way::Zero => sender.recv_expired_timeout(Duration::ZERO),
        Way::Blocking if !queued.is_empty() || closed => sender.recv_expired(),
        Way::Blocking => sender.try_recv_expired(),
    };
    let Some(frame) = queued.pop_front() else {
        let want = match way {
            _ if closed => RecvError::Disconnected,
            Way::Zero => RecvError::Timeout,
            _ => RecvError::Empty,
        };
        assert_eq!(got, Err(want), "with no report waiting");
        return;
    };
    match (read_report(&frame, levels), got) {
        (Ok(want), Ok(got)) => assert_eq!(got, want, "reading {frame:02x?}"),
        (Err(why), Err(RecvError::Corrupt(c))) => assert_eq!(c.what(), why),
        (want, got) => panic!("read {frame:02x?} as {got:?}, the format says {want:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// 3: worker replies
// ---------------------------------------------------------------------------------------

/// A worker's frame read as `worker::wire` documents it.
pub fn read_reply(frame: &[u8]) -> Option<Reply<'_>> {
    let (&tag, rest) = frame.split_first()?;
    let text = || String::from_utf8_lossy(rest).into_owned();
    match tag {
        READY if rest.is_empty() => Some(Reply::Ready),
        DONE => Some(Reply::Done(rest)),
        FAILED => Some(Reply::Failed(text())),
        PANICKED => Some(Reply::Panicked(text())),
        _ => None,
    }
}

fn worker_reply(frame: &[u8]) {
    let reply = Reply::parse(frame);
    assert_eq!(reply, read_reply(frame));
    let Some(reply) = reply else {
        return;
    };
    let (tag, body, text) = match &reply {
        Reply::Ready => (READY, &[][..], None),
        Reply::Done(result) => (DONE, *result, None),
        Reply::Failed(t) => (FAILED, t.as_bytes(), Some(t)),
        Reply::Panicked(t) => (PANICKED, t.as_bytes(), Some(t)),
    };
    let again = [&[tag][..], body].concat();
    match text {
        // Each byte sequence that is not UTF-8 reads as U+FFFD.
        Some(t) if std::str::from_utf8(&frame[1..]).is_err() => assert!(t.contains('\u{fffd}')),
        _ => assert_eq!(again, frame, "not the only encoding of {reply:?}"),
    }
    assert_eq!(Reply::parse(&again), Some(reply), "not a fixed point");
}
