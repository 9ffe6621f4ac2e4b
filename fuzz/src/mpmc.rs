//! The fuzz targets of `ringport::mpmc`, shared like `targets` with
//! `tests/fuzz_replay_rings.rs`, which includes this file with `#[path]`. Self-contained
//! for that reason: it uses only ringport's public API, `arbitrary` and std.
//!
//! - [`mpmc_ops`]: operation sequences on a heap ring through several sender and receiver
//!   clones, checked against a queue model.
//! - [`mpmc_hostile`]: the same operations on a named ring while a "peer" writes
//!   arbitrary words into its shared memory between them.
//!
//! No call here can block on the input: blocking calls are made only where the model
//! proves they return at once (never after a scribble), every other wait has a zero
//! timeout, and every handle's spin budget is zero.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::Arbitrary;

use crate::support::{decode, own_token, unique_name, Step, Unlink};
use ringport::mpmc::{self, Receiver, Sender};
use ringport::segment::{Segment, SegmentError};
use ringport::{RecvError, SendError};

/// Segment kind of a named MPMC ring, `"MPMC"`.
const KIND_MPMC: u32 = u32::from_le_bytes(*b"MPMC");
/// Ops beyond these are ignored, so one input cannot run for long. A hostile op can make
/// a call look at every participant record, hence the smaller limit.
const MAX_OPS: usize = 512;
const MAX_HOSTILE_OPS: usize = 256;
/// Sender and receiver handles an input can hold at once (each).
const HANDLES: usize = 3;

/// Bytes of a ring's control block: hints, two signals and the handle totals, each on
/// its own 128-byte line pair.
const CTRL_LEN: usize = 640;
/// Bytes of a participant record: the process token, then its sender and receiver
/// counts as two `u32`s in one word.
const RECORD_LEN: usize = 16;
/// Bytes of a `u64` slot: the state word, then the value.
const SLOT_LEN: usize = 16;
/// The state word's fields: `lap << 18 | phase << 16 | owner`.
const LAP_SHIFT: u32 = 18;
const LAP_MASK: u64 = (1 << 46) - 1;
/// The owner of a `FULL` slot whose producer died mid-write.
const SKIP: u64 = 0xffff;

/// Whether a drop takes effect. Dropping the last handle of a kind ends most of what an
/// input can test, so only one in 32 of those does; one in 4 of the others.
fn armed(byte: u8, last: bool) -> bool {
    byte % if last { 32 } else { 4 } == 0
}

#[derive(Arbitrary, Debug)]
struct Setup {
    /// Selects 1 to 16 messages (2 to 16 once rounded up to a power of two).
    capacity: u8,
}

impl Setup {
    fn capacity(&self) -> usize {
        1 + usize::from(self.capacity % 16)
    }
}

/// Which flavour of a call to make.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    Try,
    /// A zero timeout.
    Timeout,
    /// Made only where the model proves it returns at once; otherwise a zero timeout.
    Blocking,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A fresh value through sender `who % HANDLES`, if there is one.
    Send {
        who: u8,
        how: How,
    },
    Recv {
        who: u8,
        how: How,
    },
    /// Clones sender `from` into slot `to`, dropping what was there after.
    CloneSender {
        from: u8,
        to: u8,
    },
    CloneReceiver {
        from: u8,
        to: u8,
    },
    DropSender {
        who: u8,
        armed: u8,
    },
    DropReceiver {
        who: u8,
        armed: u8,
    },
}

/// The handles an input holds, each with whether it descends from the ring's creator
/// (whose segment removes the name when the last of them drops).
struct Handles {
    senders: [Option<(Sender<u64>, bool)>; HANDLES],
    receivers: [Option<(Receiver<u64>, bool)>; HANDLES],
}

impl Handles {
    fn new(tx: Sender<u64>, rx: Receiver<u64>) -> Handles {
        Handles {
            senders: [Some((quiet_sender(tx), true)), None, None],
            receivers: [Some((quiet_receiver(rx), true)), None, None],
        }
    }

    fn sender(&self, who: u8) -> Option<&Sender<u64>> {
        self.senders[usize::from(who) % HANDLES]
            .as_ref()
            .map(|h| &h.0)
    }

    fn receiver(&self, who: u8) -> Option<&Receiver<u64>> {
        self.receivers[usize::from(who) % HANDLES]
            .as_ref()
            .map(|h| &h.0)
    }

    fn senders(&self) -> usize {
        self.senders.iter().flatten().count()
    }

    fn receivers(&self) -> usize {
        self.receivers.iter().flatten().count()
    }

    /// Whether a handle of the creator's is left, so that the name still exists.
    fn creator_left(&self) -> bool {
        let senders = self.senders.iter().flatten().map(|h| h.1);
        let receivers = self.receivers.iter().flatten().map(|h| h.1);
        senders.chain(receivers).any(|creator| creator)
    }
}

/// A handle whose blocking and timed calls look once before they sleep, so a zero
/// timeout costs one look, not a 20 µs spin.
fn quiet_sender(mut tx: Sender<u64>) -> Sender<u64> {
    tx.set_spin_budget(Duration::ZERO);
    tx
}

fn quiet_receiver(mut rx: Receiver<u64>) -> Receiver<u64> {
    rx.set_spin_budget(Duration::ZERO);
    rx
}

/// What the ring must hold while nobody has damaged it.
struct Model {
    capacity: usize,
    /// No scribble yet: results must agree with the model exactly. Afterwards errors
    /// only have to be documented ones for the call made.
    clean: bool,
    queue: VecDeque<u64>,
    sent: u64,
}

impl Model {
    fn new(capacity: usize) -> Model {
        Model {
            capacity,
            clean: true,
            queue: VecDeque::new(),
            sent: 0,
        }
    }

    /// A fresh value, distinct from every other this input sends.
    fn value(&mut self) -> u64 {
        self.sent += 1;
        self.sent.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The call actually made for `how` when `blocks` says a blocking call might wait.
    fn how(&self, how: How, blocks: bool) -> How {
        match how {
            How::Blocking if !self.clean || blocks => How::Timeout,
            how => how,
        }
    }

    fn run(&mut self, h: &mut Handles, op: &Op) {
        match *op {
            Op::Send { who, how } => {
                let receivers = h.receivers();
                let Some(tx) = h.sender(who) else {
                    return;
                };
                let full = self.queue.len() == self.capacity;
                let how = self.how(how, full && receivers > 0);
                let value = self.value();
                let r = match how {
                    How::Try => tx.try_send(value),
                    How::Timeout => tx.send_timeout(value, Duration::ZERO),
                    How::Blocking => tx.send(value),
                };
                if !self.clean {
                    return check_send_error(r, how);
                }
                let want = if receivers == 0 {
                    Err(SendError::Disconnected)
                } else if full {
                    Err(match how {
                        How::Try => SendError::Full,
                        _ => SendError::Timeout,
                    })
                } else {
                    Ok(())
                };
                assert_eq!(r, want, "sending with {} queued", self.queue.len());
                if r.is_ok() {
                    self.queue.push_back(value);
                }
            }
            Op::Recv { who, how } => {
                let senders = h.senders();
                let Some(rx) = h.receiver(who) else {
                    return;
                };
                let how = self.how(how, self.queue.is_empty() && senders > 0);
                let r = match how {
                    How::Try => rx.try_recv(),
                    How::Timeout => rx.recv_timeout(Duration::ZERO),
                    How::Blocking => rx.recv(),
                };
                if !self.clean {
                    return check_recv_error(r, how);
                }
                let want = match self.queue.front() {
                    Some(&v) => Ok(v),
                    None if senders == 0 => Err(RecvError::Disconnected),
                    None => Err(match how {
                        How::Try => RecvError::Empty,
                        _ => RecvError::Timeout,
                    }),
                };
                assert_eq!(r, want, "receiving with {} queued", self.queue.len());
                if r.is_ok() {
                    self.queue.pop_front();
                }
            }
            Op::CloneSender { from, to } => {
                if let Some((tx, creator)) = &h.senders[usize::from(from) % HANDLES] {
                    let clone = (tx.clone(), *creator);
                    assert_eq!(clone.0.capacity(), tx.capacity());
                    h.senders[usize::from(to) % HANDLES] = Some(clone);
                }
            }
            Op::CloneReceiver { from, to } => {
                if let Some((rx, creator)) = &h.receivers[usize::from(from) % HANDLES] {
                    let clone = (rx.clone(), *creator);
                    assert_eq!(clone.0.capacity(), rx.capacity());
                    h.receivers[usize::from(to) % HANDLES] = Some(clone);
                }
            }
            Op::DropSender { who, armed: a } => {
                let last = h.senders() == 1;
                if armed(a, last) {
                    h.senders[usize::from(who) % HANDLES] = None;
                }
            }
            Op::DropReceiver { who, armed: a } => {
                let last = h.receivers() == 1;
                if armed(a, last) {
                    h.receivers[usize::from(who) % HANDLES] = None;
                }
            }
        }
    }

    /// Drops every sender, then drains through the first receiver left: exactly what is
    /// queued, then `Disconnected`, while the ring is undamaged; after damage, only
    /// documented errors, and an end within a few laps.
    fn finish(&mut self, h: &mut Handles) {
        h.senders = [None, None, None];
        let Some((rx, _)) = h.receivers.iter().flatten().next() else {
            return;
        };
        if !self.clean {
            for _ in 0..2 * self.capacity + 2 {
                let r = rx.try_recv();
                if matches!(r, Err(RecvError::Disconnected | RecvError::Corrupt(_))) {
                    return;
                }
                check_recv_error(r, How::Try);
            }
            return;
        }
        while let Some(v) = self.queue.pop_front() {
            assert_eq!(rx.try_recv(), Ok(v), "draining after the senders left");
        }
        assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));
        assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    }
}

/// After damage: `Ok`, or an error documented for the call made.
fn check_send_error(r: Result<(), SendError>, how: How) {
    match r {
        Ok(()) | Err(SendError::Disconnected) => {}
        Err(SendError::Full) => assert_eq!(how, How::Try, "Full from a {how:?} send"),
        Err(SendError::Timeout) => assert_eq!(how, How::Timeout, "Timeout from a {how:?} send"),
        Err(SendError::Corrupt(c)) => assert!(!c.what().is_empty()),
        Err(e) => panic!("a send failed with {e:?}"),
    }
}

fn check_recv_error(r: Result<u64, RecvError>, how: How) {
    match r {
        Ok(_) | Err(RecvError::Disconnected) => {}
        Err(RecvError::Empty) => assert_eq!(how, How::Try, "Empty from a {how:?} receive"),
        Err(RecvError::Timeout) => {
            assert_eq!(how, How::Timeout, "Timeout from a {how:?} receive")
        }
        Err(RecvError::Corrupt(c)) => assert!(!c.what().is_empty()),
        Err(e) => panic!("a receive failed with {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// mpmc_ops
// ---------------------------------------------------------------------------------------

/// Runs operations on a heap `mpmc::channel::<u64>` of 2 to 16 slots through up to three
/// senders and three receivers (clones, created and dropped by the input), and checks
/// every result against a queue: values in FIFO order, `Full` (or `Timeout`) exactly when
/// the capacity is reached, `Empty` exactly when nothing is queued, `Disconnected`
/// exactly when no receiver is left (sends) or no sender is left and the queue is
/// drained (receives).
pub fn mpmc_ops(data: &[u8]) {
    let Some((setup, ops)) = decode::<Setup, Op>(data, MAX_OPS) else {
        return;
    };
    let (tx, rx) = mpmc::channel::<u64>(setup.capacity());
    let capacity = setup.capacity().next_power_of_two().max(2);
    assert_eq!((tx.capacity(), rx.capacity()), (capacity, capacity));
    let mut handles = Handles::new(tx, rx);
    let mut model = Model::new(capacity);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        model.run(&mut handles, op);
    }
    model.finish(&mut handles);
}

// ---------------------------------------------------------------------------------------
// mpmc_hostile
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum HostileOp {
    Op(Op),
    Scribble(Scribble),
    /// Opens the ring again by name, into sender and receiver slot `to`.
    Open {
        to: u8,
    },
}

/// A word the hostile peer writes into the ring.
#[derive(Arbitrary, Debug)]
enum Scribble {
    Ctrl {
        field: CtrlField,
        value: Value,
    },
    /// Record `record % records`: its token, or its two handle counts.
    Record {
        record: u8,
        counts: bool,
        value: Value,
    },
    /// The state word of slot `slot % capacity`.
    State {
        slot: u8,
        value: StateValue,
    },
    /// The value of slot `slot % capacity`.
    Payload {
        slot: u8,
        value: Value,
    },
    /// Any 8-byte word of the ring, `index` wrapping around its words.
    Raw {
        index: u16,
        value: Value,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum CtrlField {
    /// The producers' position hint.
    Tail,
    /// The consumers' position hint.
    Head,
    /// The signal consumers sleep on: `{epoch u32, waiters u32}`.
    Data,
    /// The signal producers sleep on.
    Space,
    /// The handle totals `{senders u32, receivers u32}`.
    Handles,
}

/// What to write, from the word's current value.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Value {
    Raw(u64),
    /// A small number: positions, counts.
    Small(u8),
    Flip(u8),
    Add(i8),
    Max,
    /// Our own process token: a participant that stays alive.
    Mine,
    /// Pid 1 with an unknown start time: alive too.
    Init,
}

/// A slot state word: any word, or a well-formed state near the slot's own lap.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum StateValue {
    Word(Value),
    /// `lap` laps from the slot's current one, `phase % 4` (free, writing, full,
    /// reading), and an owner.
    State {
        lap: i8,
        phase: u8,
        owner: Owner,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Owner {
    Nobody,
    /// Record 1: this process (it made the ring).
    Me,
    /// Record `n % 34`: a vacant record, or 33, past the last one.
    Record(u8),
    /// The skip marker of a dead producer's slot.
    Skip,
}

/// The hostile peer: the ring's segment, mapped again as another process would.
struct Peer {
    segment: Segment,
    capacity: usize,
    slots_off: usize,
    token: u64,
}

impl Peer {
    fn words(&self) -> usize {
        self.segment.payload_len() / 8
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        let index = index % self.words();
        // SAFETY: the payload holds `words()` 8-byte words and starts 128-byte aligned,
        // so the word is in bounds and aligned; it stays mapped while `self.segment`
        // lives, and every access to it, the ring's and ours, is atomic.
        unsafe { AtomicU64::from_ptr(self.segment.payload().as_ptr().add(index * 8).cast()) }
    }

    fn value(&self, old: u64, value: Value) -> u64 {
        match value {
            Value::Raw(v) => v,
            Value::Small(n) => u64::from(n),
            Value::Flip(bit) => old ^ (1 << (bit % 64)),
            Value::Add(d) => old.wrapping_add_signed(i64::from(d)),
            Value::Max => u64::MAX,
            Value::Mine => self.token,
            Value::Init => 1,
        }
    }

    fn write(&self, index: usize, value: Value) {
        let word = self.word(index);
        word.store(
            self.value(word.load(Ordering::Relaxed), value),
            Ordering::Relaxed,
        );
    }

    fn slot_word(&self, slot: u8) -> usize {
        (self.slots_off + usize::from(slot) % self.capacity * SLOT_LEN) / 8
    }

    fn apply(&self, s: &Scribble) {
        match *s {
            Scribble::Ctrl { field, value } => {
                let offset = match field {
                    CtrlField::Tail => 0,
                    CtrlField::Head => 128,
                    CtrlField::Data => 256,
                    CtrlField::Space => 384,
                    CtrlField::Handles => 512,
                };
                self.write(offset / 8, value);
            }
            Scribble::Record {
                record,
                counts,
                value,
            } => {
                let record = usize::from(record) % mpmc::DEFAULT_PROCESSES;
                let offset = CTRL_LEN + record * RECORD_LEN + if counts { 8 } else { 0 };
                self.write(offset / 8, value);
            }
            Scribble::State { slot, value } => {
                let index = self.slot_word(slot);
                match value {
                    StateValue::Word(value) => self.write(index, value),
                    StateValue::State { lap, phase, owner } => {
                        let word = self.word(index);
                        let old = word.load(Ordering::Relaxed) >> LAP_SHIFT;
                        let lap = old.wrapping_add_signed(i64::from(lap)) & LAP_MASK;
                        let owner = match owner {
                            Owner::Nobody => 0,
                            Owner::Me => 1,
                            Owner::Record(n) => u64::from(n % 34),
                            Owner::Skip => SKIP,
                        };
                        let phase = u64::from(phase % 4);
                        word.store(lap << LAP_SHIFT | phase << 16 | owner, Ordering::Relaxed);
                    }
                }
            }
            Scribble::Payload { slot, value } => self.write(self.slot_word(slot) + 1, value),
            Scribble::Raw { index, value } => self.write(usize::from(index), value),
        }
    }
}

/// Creates a named ring and opens it twice (as a ring, and as raw memory), then runs the
/// ops. Until the first scribble the ring must agree with the queue model exactly, as in
/// [`mpmc_ops`]; after it, every call must return at once with `Ok` or an error
/// documented for it (`Full` and `Empty` only from `try_` calls, `Timeout` only from
/// timed ones, `Disconnected`, `Corrupt`), reopening must succeed or find every record
/// held, and dropping everything must finish.
pub fn mpmc_hostile(data: &[u8]) {
    let Some((setup, ops)) = decode::<Setup, HostileOp>(data, MAX_HOSTILE_OPS) else {
        return;
    };
    let name = unique_name("mpmc");
    let _unlink = Unlink(name.clone());
    let (tx, rx) = mpmc::create::<u64>(&name, setup.capacity())
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let (tx1, rx1) = mpmc::open::<u64>(&name).unwrap_or_else(|e| panic!("open {name}: {e}"));
    let capacity = setup.capacity().next_power_of_two().max(2);
    assert_eq!((tx1.capacity(), rx1.capacity()), (capacity, capacity));
    let segment = Segment::open(&name, KIND_MPMC).unwrap_or_else(|e| panic!("map {name}: {e}"));
    let slots_off = (CTRL_LEN + mpmc::DEFAULT_PROCESSES * RECORD_LEN).next_multiple_of(128);
    assert_eq!(
        segment.payload_len(),
        slots_off + capacity * SLOT_LEN,
        "unexpected ring layout"
    );
    let peer = Peer {
        segment,
        capacity,
        slots_off,
        token: own_token(),
    };
    let mut handles = Handles::new(tx, rx);
    handles.senders[1] = Some((quiet_sender(tx1), false));
    handles.receivers[1] = Some((quiet_receiver(rx1), false));
    let mut model = Model::new(capacity);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        match op {
            HostileOp::Op(op) => model.run(&mut handles, op),
            HostileOp::Scribble(s) => {
                model.clean = false;
                peer.apply(s);
            }
            HostileOp::Open { to } => match mpmc::open::<u64>(&name) {
                Ok((tx, rx)) => {
                    assert!(
                        handles.creator_left(),
                        "opened {name} after its creator left"
                    );
                    let to = usize::from(*to) % HANDLES;
                    handles.senders[to] = Some((quiet_sender(tx), false));
                    handles.receivers[to] = Some((quiet_receiver(rx), false));
                }
                // The creator's segment removes the name when its last handle drops.
                Err(SegmentError::NotFound { .. }) if !handles.creator_left() => {}
                Err(SegmentError::Io { source, .. })
                    if !model.clean && source.kind() == std::io::ErrorKind::QuotaExceeded => {}
                Err(e) => panic!("reopening {name} failed: {e:?}"),
            },
        }
    }
    model.finish(&mut handles);
}
