//! The fuzz targets of `ringport::broadcast`, shared like `targets` with
//! `tests/fuzz_replay_rings.rs`, which includes this file with `#[path]`. Self-contained
//! for that reason: it uses only ringport's public API, `arbitrary` and std.
//!
//! - [`broadcast_ops`]: operation sequences on a heap ring through several publishers
//!   and subscribers, checked against a model of positions and cursors.
//! - [`broadcast_hostile`]: the same operations on a named ring while a "peer" writes
//!   arbitrary words into its shared memory between them.
//!
//! No call here can block on the input: blocking calls are made only where the model
//! proves they return at once (never after a scribble), every other wait has a zero
//! timeout, and every handle's spin budget is zero.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::Arbitrary;

use crate::support::{decode, own_token, payload, unique_name, Step, Unlink};
use ringport::broadcast::{
    self, BroadcastOptions, Overflow, Publisher, SubscribeError, Subscriber,
};
use ringport::segment::{Segment, SegmentError};
use ringport::{RecvError, SendError};

/// Segment kind of a named broadcast ring, `"BCST"`.
const KIND_BROADCAST: u32 = u32::from_le_bytes(*b"BCST");
/// Ops beyond these are ignored, so one input cannot run for long. A hostile op can make
/// a call look at every record, hence the smaller limit.
const MAX_OPS: usize = 512;
const MAX_HOSTILE_OPS: usize = 256;
/// Publisher handles an input can hold at once.
const PUBLISHERS: usize = 3;
/// Subscriber handles an input can hold at once: one more than the largest
/// `max_subscribers`, so `TooManySubscribers` is reachable.
const SUBSCRIBERS: usize = 5;

/// Bytes of a ring's control block: the tail hint, two signals, then the handle totals
/// `{publishers u32, subscribers u32}` and the `closing` flag, each on its own line pair.
const CTRL_LEN: usize = 512;
/// Bytes of a publisher record: the process token, then its handle counts.
const RECORD_LEN: usize = 16;
/// Bytes of a subscriber record (a line pair): the token, then the cursor.
const SUB_RECORD_LEN: usize = 128;
/// The state word's fields: `position << 18 | phase << 16 | owner`.
const POS_SHIFT: u32 = 18;
const POS_MASK: u64 = (1 << 46) - 1;

/// Whether a drop takes effect. Dropping the last publisher ends most of what an input
/// can test, so only one in 32 of those does; one in 4 of the others.
fn armed(byte: u8, last: bool) -> bool {
    byte % if last { 32 } else { 4 } == 0
}

#[derive(Arbitrary, Debug)]
struct Setup {
    /// Selects 1 to 8 messages (2 to 8 once rounded up to a power of two).
    capacity: u8,
    /// Selects a longest message of 0 to 24 bytes.
    max_message: u8,
    backpressure: bool,
    /// Selects a history of 0 to the capacity.
    history: u8,
    /// Selects 1 to 4 subscribers.
    max_subscribers: u8,
    /// Selects 1 or 2 publisher processes.
    publishers: u8,
}

impl Setup {
    fn options(&self) -> BroadcastOptions {
        let capacity = 1 + usize::from(self.capacity % 8);
        let rounded = capacity.next_power_of_two().max(2);
        BroadcastOptions {
            capacity,
            max_message: usize::from(self.max_message % 25),
            overflow: if self.backpressure {
                Overflow::Backpressure
            } else {
                Overflow::Overwrite
            },
            history: usize::from(self.history) % (rounded + 1),
            max_subscribers: 1 + usize::from(self.max_subscribers % 4),
            max_publisher_processes: 1 + usize::from(self.publishers % 2),
        }
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
    /// A fresh message of `len % (max_message + 3)` bytes through publisher
    /// `who % PUBLISHERS`, if there is one.
    Publish {
        who: u8,
        len: u8,
        how: How,
    },
    Recv {
        who: u8,
        how: How,
    },
    /// Subscribes through publisher `from` into slot `to`, dropping what was there after.
    Subscribe {
        from: u8,
        to: u8,
    },
    /// Clones publisher `from` into slot `to`, dropping what was there after.
    ClonePublisher {
        from: u8,
        to: u8,
    },
    DropPublisher {
        who: u8,
        armed: u8,
    },
    DropSubscriber {
        who: u8,
        armed: u8,
    },
}

/// The handles an input holds, each with whether it descends from the ring's creator
/// (whose segment removes the name when the last of them drops), and each subscriber's
/// cursor in the model.
struct Handles {
    publishers: [Option<(Publisher, bool)>; PUBLISHERS],
    subscribers: [Option<(Subscriber, u64, bool)>; SUBSCRIBERS],
}

impl Handles {
    fn new(publisher: Publisher) -> Handles {
        Handles {
            publishers: [Some((quiet_publisher(publisher), true)), None, None],
            subscribers: [None, None, None, None, None],
        }
    }

    fn publishers(&self) -> usize {
        self.publishers.iter().flatten().count()
    }

    fn subscribers(&self) -> usize {
        self.subscribers.iter().flatten().count()
    }

    /// Whether a handle of the creator's is left, so that the name still exists.
    fn creator_left(&self) -> bool {
        let publishers = self.publishers.iter().flatten().map(|h| h.1);
        let subscribers = self.subscribers.iter().flatten().map(|h| h.2);
        publishers.chain(subscribers).any(|creator| creator)
    }
}

/// A handle whose blocking and timed calls look once before they sleep, so a zero
/// timeout costs one look, not a 20 µs spin.
fn quiet_publisher(mut p: Publisher) -> Publisher {
    p.set_spin_budget(Duration::ZERO);
    p
}

/// What the ring must deliver while nobody has damaged it.
struct Model {
    options: BroadcastOptions,
    /// The rounded capacity.
    capacity: u64,
    /// No scribble yet: results must agree with the model exactly. Afterwards they only
    /// have to be documented ones for the call made, within the ring's limits.
    clean: bool,
    /// Every message published, by position.
    published: Vec<Vec<u8>>,
    next_id: u64,
}

impl Model {
    fn new(options: BroadcastOptions) -> Model {
        Model {
            options,
            capacity: options.capacity.next_power_of_two().max(2) as u64,
            clean: true,
            published: Vec::new(),
            next_id: 0,
        }
    }

    /// The next position to be published.
    fn end(&self) -> u64 {
        self.published.len() as u64
    }

    /// Under backpressure, whether some live subscriber is a whole ring behind.
    fn full(&self, h: &Handles) -> bool {
        self.options.overflow == Overflow::Backpressure
            && h.subscribers
                .iter()
                .flatten()
                .any(|&(_, cursor, _)| self.end() - cursor >= self.capacity)
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
            Op::Publish { who, len, how } => self.publish(h, who, len, how),
            Op::Recv { who, how } => self.recv(h, who, how),
            Op::Subscribe { from, to } => {
                let Some((p, creator)) = &h.publishers[usize::from(from) % PUBLISHERS] else {
                    return;
                };
                let creator = *creator;
                let max = self.options.max_subscribers;
                let r = p.subscribe();
                match r {
                    Ok(mut s) => {
                        s.set_spin_budget(Duration::ZERO);
                        if self.clean {
                            assert!(h.subscribers() < max, "subscribed past {max}");
                        }
                        let cursor = self.end().saturating_sub(self.options.history as u64);
                        h.subscribers[usize::from(to) % SUBSCRIBERS] = Some((s, cursor, creator));
                    }
                    Err(e) => {
                        assert_eq!(e, SubscribeError::TooManySubscribers { max });
                        assert!(!self.clean || h.subscribers() == max, "{e:?}");
                    }
                }
            }
            Op::ClonePublisher { from, to } => {
                if let Some((p, creator)) = &h.publishers[usize::from(from) % PUBLISHERS] {
                    let clone = p.clone();
                    assert_eq!(
                        (clone.capacity(), clone.max_message()),
                        (p.capacity(), p.max_message())
                    );
                    h.publishers[usize::from(to) % PUBLISHERS] = Some((clone, *creator));
                }
            }
            Op::DropPublisher { who, armed: a } => {
                if armed(a, h.publishers() == 1) {
                    h.publishers[usize::from(who) % PUBLISHERS] = None;
                }
            }
            Op::DropSubscriber { who, armed: a } => {
                if armed(a, false) {
                    h.subscribers[usize::from(who) % SUBSCRIBERS] = None;
                }
            }
        }
    }

    fn publish(&mut self, h: &Handles, who: u8, len: u8, how: How) {
        let Some((p, _)) = &h.publishers[usize::from(who) % PUBLISHERS] else {
            return;
        };
        let max = self.options.max_message;
        self.next_id += 1;
        let message = payload(self.next_id, usize::from(len) % (max + 3));
        let full = self.full(h);
        let how = self.how(how, full);
        let r = match how {
            How::Try => p.try_publish(&message),
            How::Timeout => p.publish_timeout(&message, Duration::ZERO),
            How::Blocking => p.publish(&message),
        };
        // The length is checked before the ring is looked at, so even a damaged ring
        // reports it exactly.
        if message.len() > max {
            let want = SendError::TooLarge {
                len: message.len(),
                max,
            };
            assert_eq!(r, Err(want), "publishing {} bytes", message.len());
            return;
        }
        if !self.clean {
            match r {
                Ok(_) => {}
                Err(SendError::Full) => assert_eq!(how, How::Try, "Full from a {how:?} publish"),
                Err(SendError::Timeout) => {
                    assert_eq!(how, How::Timeout, "Timeout from a {how:?} publish")
                }
                Err(SendError::Corrupt(c)) => assert!(!c.what().is_empty()),
                Err(e) => panic!("a publish failed with {e:?}"),
            }
            return;
        }
        let want = if full {
            Err(match how {
                How::Try => SendError::Full,
                _ => SendError::Timeout,
            })
        } else {
            Ok(self.end())
        };
        assert_eq!(r, want, "publishing at {}", self.end());
        if r.is_ok() {
            self.published.push(message);
        }
    }

    fn recv(&mut self, h: &mut Handles, who: u8, how: How) {
        let publishers = h.publishers();
        let end = self.end();
        let Some((s, cursor, _)) = &mut h.subscribers[usize::from(who) % SUBSCRIBERS] else {
            return;
        };
        let how = self.how(how, *cursor == end && publishers > 0);
        let r = match how {
            How::Try => s.try_recv(),
            How::Timeout => s.recv_timeout(Duration::ZERO),
            How::Blocking => s.recv(),
        };
        if !self.clean {
            match r {
                Ok(m) => assert!(m.len() <= self.options.max_message, "{} bytes", m.len()),
                Err(RecvError::Lagged(_) | RecvError::Disconnected) => {}
                Err(RecvError::Empty) => assert_eq!(how, How::Try, "Empty from a {how:?} receive"),
                Err(RecvError::Timeout) => {
                    assert_eq!(how, How::Timeout, "Timeout from a {how:?} receive")
                }
                Err(RecvError::Corrupt(c)) => assert!(!c.what().is_empty()),
                Err(e) => panic!("a receive failed with {e:?}"),
            }
            return;
        }
        let r = r.map(<[u8]>::to_vec);
        let overwrite = self.options.overflow == Overflow::Overwrite;
        let want = if *cursor == end {
            Err(if publishers == 0 {
                RecvError::Disconnected
            } else if how == How::Try {
                RecvError::Empty
            } else {
                RecvError::Timeout
            })
        } else if overwrite && end - *cursor > self.capacity {
            // Lapped: it goes on from the oldest message kept, a ring before the end.
            let oldest = end - self.capacity;
            let lost = oldest - *cursor;
            *cursor = oldest;
            Err(RecvError::Lagged(lost))
        } else {
            *cursor += 1;
            Ok(self.published[*cursor as usize - 1].clone())
        };
        assert_eq!(r, want, "receiving at {cursor} of {end}");
    }

    /// Drops every publisher, then drains every subscriber: exactly what the model
    /// says, then `Disconnected`, while the ring is undamaged; after damage, only
    /// documented errors, and an end within a few laps.
    fn finish(&mut self, h: &mut Handles) {
        h.publishers = [None, None, None];
        for who in 0..SUBSCRIBERS {
            if h.subscribers[who].is_none() {
                continue;
            }
            for _ in 0..2 * self.capacity + 2 {
                self.recv(h, who as u8, How::Try);
                let (s, cursor, _) = h.subscribers[who].as_mut().expect("still subscribed");
                if self.clean && *cursor == self.end() {
                    assert_eq!(s.recv(), Err(RecvError::Disconnected));
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// broadcast_ops
// ---------------------------------------------------------------------------------------

/// Runs operations on a heap `broadcast::channel` (2 to 8 slots, messages of up to 0 to
/// 24 bytes, either overflow policy, any history) through up to three publishers and
/// five subscribers, created and dropped by the input, and checks every result against
/// a model of positions and cursors: each subscriber receives exactly the messages from
/// its starting position (the end less the history), in order; under overwrite, a
/// subscriber more than a ring behind gets `Lagged(n)` with the exact loss and goes on
/// from the oldest message kept; under backpressure, `Full` (or `Timeout`) exactly when
/// the slowest live subscriber is a ring behind; `TooLarge`, `TooManySubscribers`, and
/// `Disconnected` once no publisher is left and a subscriber has drained the ring.
pub fn broadcast_ops(data: &[u8]) {
    let Some((setup, ops)) = decode::<Setup, Op>(data, MAX_OPS) else {
        return;
    };
    let options = setup.options();
    let publisher = broadcast::channel(options);
    let mut model = Model::new(options);
    assert_eq!(
        (publisher.capacity() as u64, publisher.max_message()),
        (model.capacity, options.max_message)
    );
    assert!(publisher.segment().is_none());
    let mut handles = Handles::new(publisher);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        model.run(&mut handles, op);
    }
    model.finish(&mut handles);
}

// ---------------------------------------------------------------------------------------
// broadcast_hostile
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum HostileOp {
    Op(Op),
    Scribble(Scribble),
    /// Opens the ring again by name, into publisher slot `to`.
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
    /// Publisher record `record % publishers`: its token, or its handle counts.
    Publisher {
        record: u8,
        counts: bool,
        value: Value,
    },
    /// Subscriber record `record % subscribers`: its token, or its cursor.
    Subscriber {
        record: u8,
        cursor: bool,
        value: Value,
    },
    /// The state word of slot `slot % capacity`.
    State {
        slot: u8,
        value: StateValue,
    },
    /// The length word of slot `slot % capacity`.
    Length {
        slot: u8,
        value: Value,
    },
    /// Data word `word` (wrapping) of slot `slot % capacity`.
    Data {
        slot: u8,
        word: u8,
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
    /// The publishers' position hint, which lapped subscribers also read.
    Tail,
    /// The signal subscribers sleep on: `{epoch u32, waiters u32}`.
    Data,
    /// The signal publishers sleep on under backpressure.
    Space,
    /// The handle totals `{publishers u32, subscribers u32}`.
    Handles,
    /// The `closing` flag a leaving `BroadcastChannel` raises (and the padding after it).
    Closing,
}

/// What to write, from the word's current value.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Value {
    Raw(u64),
    /// A small number: positions, lengths, counts.
    Small(u8),
    Flip(u8),
    Add(i8),
    Max,
    /// Our own process token: a participant that stays alive.
    Mine,
    /// Pid 1 with an unknown start time: alive too.
    Init,
}

/// A slot state word: any word, or a well-formed state near the slot's own position.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum StateValue {
    Word(Value),
    /// The slot's position moved by `laps` whole rings, `phase % 4` (never written,
    /// writing, committed, skipped), and an owner.
    State {
        laps: i8,
        phase: u8,
        owner: Owner,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Owner {
    Nobody,
    /// Record 1: this process (it made the ring).
    Me,
    /// Record `n % 4`: a vacant one, or past the last.
    Record(u8),
}

/// Where the words of a named ring lie (see `ringport::broadcast`'s layout).
struct Layout {
    capacity: usize,
    publishers: usize,
    subscribers: usize,
    subs_off: usize,
    slots_off: usize,
    slot_words: usize,
}

impl Layout {
    fn of(options: &BroadcastOptions) -> Layout {
        let subs_off =
            (CTRL_LEN + options.max_publisher_processes * RECORD_LEN).next_multiple_of(128);
        let slots_off = subs_off + options.max_subscribers * SUB_RECORD_LEN;
        Layout {
            capacity: options.capacity.next_power_of_two().max(2),
            publishers: options.max_publisher_processes,
            subscribers: options.max_subscribers,
            subs_off,
            slots_off,
            slot_words: 2 + options.max_message.div_ceil(8),
        }
    }

    fn len(&self) -> usize {
        self.slots_off + self.capacity * self.slot_words * 8
    }

    /// Word index of slot `slot`'s word `within` (0: state, 1: length, then data).
    fn slot_word(&self, slot: u8, within: usize) -> usize {
        self.slots_off / 8 + usize::from(slot) % self.capacity * self.slot_words + within
    }
}

/// The hostile peer: the ring's segment, mapped again as another process would.
struct Peer {
    segment: Segment,
    layout: Layout,
    token: u64,
}

impl Peer {
    fn word(&self, index: usize) -> &AtomicU64 {
        let index = index % (self.layout.len() / 8);
        // SAFETY: the payload holds `layout.len()` bytes (checked when the peer was
        // made) and starts 128-byte aligned, so the word is in bounds and aligned; it
        // stays mapped while `self.segment` lives, and every access to it, the ring's and
        // ours, is atomic.
        unsafe { AtomicU64::from_ptr(self.segment.payload().as_ptr().add(index * 8).cast()) }
    }

    fn write(&self, index: usize, value: Value) {
        let word = self.word(index);
        let old = word.load(Ordering::Relaxed);
        let new = match value {
            Value::Raw(v) => v,
            Value::Small(n) => u64::from(n),
            Value::Flip(bit) => old ^ (1 << (bit % 64)),
            Value::Add(d) => old.wrapping_add_signed(i64::from(d)),
            Value::Max => u64::MAX,
            Value::Mine => self.token,
            Value::Init => 1,
        };
        word.store(new, Ordering::Relaxed);
    }

    fn apply(&self, s: &Scribble) {
        let l = &self.layout;
        match *s {
            Scribble::Ctrl { field, value } => {
                let offset = match field {
                    CtrlField::Tail => 0,
                    CtrlField::Data => 128,
                    CtrlField::Space => 256,
                    CtrlField::Handles => 384,
                    CtrlField::Closing => 392,
                };
                self.write(offset / 8, value);
            }
            Scribble::Publisher {
                record,
                counts,
                value,
            } => {
                let offset = CTRL_LEN + usize::from(record) % l.publishers * RECORD_LEN;
                self.write(offset / 8 + usize::from(counts), value);
            }
            Scribble::Subscriber {
                record,
                cursor,
                value,
            } => {
                let offset = l.subs_off + usize::from(record) % l.subscribers * SUB_RECORD_LEN;
                self.write(offset / 8 + usize::from(cursor), value);
            }
            Scribble::State { slot, value } => {
                let index = l.slot_word(slot, 0);
                match value {
                    StateValue::Word(value) => self.write(index, value),
                    StateValue::State { laps, phase, owner } => {
                        let word = self.word(index);
                        let shift = i64::from(laps) * l.capacity as i64;
                        let pos = (word.load(Ordering::Relaxed) >> POS_SHIFT)
                            .wrapping_add_signed(shift)
                            & POS_MASK;
                        let owner = match owner {
                            Owner::Nobody => 0,
                            Owner::Me => 1,
                            Owner::Record(n) => u64::from(n % 4),
                        };
                        let phase = u64::from(phase % 4);
                        word.store(pos << POS_SHIFT | phase << 16 | owner, Ordering::Relaxed);
                    }
                }
            }
            Scribble::Length { slot, value } => self.write(l.slot_word(slot, 1), value),
            Scribble::Data { slot, word, value } => {
                let data_words = (l.slot_words - 2).max(1);
                let within = 2 + usize::from(word) % data_words;
                self.write(l.slot_word(slot, within), value)
            }
            Scribble::Raw { index, value } => self.write(usize::from(index), value),
        }
    }
}

/// Creates a named ring and opens it twice (as a ring, and as raw memory), then runs the
/// ops. Until the first scribble the ring must agree with the model exactly, as in
/// [`broadcast_ops`]; after it, every call must return at once with `Ok` or an error
/// documented for it (`Full` and `Empty` only from `try_` calls, `Timeout` only from
/// timed ones, `Lagged`, `Disconnected`, `Corrupt`, and `TooLarge` exactly when the
/// message is too long), messages must stay within the ring's maximum, subscribing
/// must succeed or report the ring's limit, reopening must succeed or find every
/// record held, and dropping everything must finish.
pub fn broadcast_hostile(data: &[u8]) {
    let Some((setup, ops)) = decode::<Setup, HostileOp>(data, MAX_HOSTILE_OPS) else {
        return;
    };
    let options = setup.options();
    let name = unique_name("broadcast");
    let _unlink = Unlink(name.clone());
    let publisher =
        broadcast::create(&name, options).unwrap_or_else(|e| panic!("create {name}: {e}"));
    assert!(publisher.segment().is_some_and(Segment::is_owner));
    let opener = broadcast::open(&name).unwrap_or_else(|e| panic!("open {name}: {e}"));
    let segment =
        Segment::open(&name, KIND_BROADCAST).unwrap_or_else(|e| panic!("map {name}: {e}"));
    let layout = Layout::of(&options);
    assert_eq!(
        segment.payload_len(),
        layout.len(),
        "unexpected ring layout"
    );
    let peer = Peer {
        segment,
        layout,
        token: own_token(),
    };
    let mut handles = Handles::new(publisher);
    handles.publishers[1] = Some((quiet_publisher(opener), false));
    let mut model = Model::new(options);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        match op {
            HostileOp::Op(op) => model.run(&mut handles, op),
            HostileOp::Scribble(s) => {
                model.clean = false;
                peer.apply(s);
            }
            HostileOp::Open { to } => match broadcast::open(&name) {
                Ok(p) => {
                    assert!(
                        handles.creator_left(),
                        "opened {name} after its creator left"
                    );
                    handles.publishers[usize::from(*to) % PUBLISHERS] =
                        Some((quiet_publisher(p), false));
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
