//! The fuzz targets of `ringport::pool`, shared like [`targets`](crate::targets) with
//! `tests/fuzz_replay_pool.rs`, which includes this file with `#[path]`. Self-contained
//! for that reason: it uses only ringport's public API, `arbitrary`, `bytemuck`, std,
//! `support.rs` and the handle layout in `handle.rs`.
//!
//! - [`pool_ops`]: operation sequences on a heap or named pool through two pool handles,
//!   exclusive transfers and shared buffers over a broadcast ring, checked against a
//!   model of every buffer's state, generation and bytes.
//! - [`pool_handles`]: the same operations mixed with forged and replayed handles and,
//!   on a named pool, with a "peer" writing arbitrary words into the pool's memory.
//!
//! No call here can block on the input: loans wait with a zero timeout, a blocking
//! receive is made only where the ring model proves a message is ready, and a publish
//! under backpressure only where it proves there is room. The ring lives on the heap and
//! is never damaged, so its model stays exact in both targets.
//!
//! A named pool's second handle comes from `BufferPool::open` in this same process, which
//! finds this process's participant record and so acts as the same participant. The
//! third setup gives it a record of its own instead, as another process would have: it
//! hides the creator's record from `open` for a moment (see [`Run::new`]).

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::Arbitrary;

use crate::handle::{Fields, SHARED_FLAG};
use crate::support::{decode, own_token, payload, unique_name, Step, Unlink};
use ringport::broadcast::{self, BroadcastOptions, Overflow, Publisher};
use ringport::pool::{
    Buffer, BufferHandle, BufferPool, BufferPublisher, BufferRecvError, BufferSendError,
    BufferSubscriber, LoanError, PoolError, PoolOptions, SharedBuffer, TransferError,
};
use ringport::segment::Segment;
use ringport::RecvError;

/// Segment kind of a named pool, `"POOL"`.
const KIND_POOL: u32 = u32::from_le_bytes(*b"POOL");
/// Ops beyond these are ignored, so one input cannot run for long. A hostile op can make
/// a loan look at every participant record, hence the smaller limit.
const MAX_OPS: usize = 512;
const MAX_HOSTILE_OPS: usize = 256;
/// Writable buffers an input can hold at once.
const HELD: usize = 6;
/// Handles an input remembers (to present again, replay or forge from).
const HANDLES: usize = 6;
/// Shared buffers an input can hold at once.
const SHARED: usize = 4;
/// Buffer subscribers an input can hold at once.
const SUBSCRIBERS: usize = 2;
/// Buffer sizes a setup picks its classes from, before the pool rounds them up to 64.
const SIZES: [usize; 6] = [1, 64, 100, 640, 1000, 4096];

/// Bytes of a pool's control block: the loans' signal, then one cursor per class, each
/// on its own 128-byte line.
const CTRL_LEN: usize = 768;
/// Where class `c`'s loan cursor lies: `CURSORS + c * LINE`.
const CURSORS: usize = 128;
const LINE: usize = 128;
/// Bytes of a participant record: the process token, then the reaper's token.
const RECORD_LEN: usize = 16;
/// Bytes of a buffer descriptor: the state word, alone on its line.
const DESC_LEN: usize = 64;
/// Where each class's buffers start.
const DATA_ALIGN: usize = 4096;
/// The state word's fields: `gen << 32 | kind << 30 | owner << 16 | refs`.
const GEN_SHIFT: u32 = 32;
const KIND_SHIFT: u32 = 30;
const OWNER_SHIFT: u32 = 16;
const OWNER_MAX: u64 = 0x3fff;
const REFS_MAX: u64 = 0xffff;

/// Size classes as `(size, count)`.
type Classes = Vec<(usize, usize)>;

#[derive(Arbitrary, Debug)]
struct Setup {
    /// `% 3`: a heap pool and a clone of it; a named pool and a second `open` of it (one
    /// participant); a named pool and a second participant.
    mode: u8,
    /// Selects 1 to 3 classes.
    classes: u8,
    /// Each selects a size from [`SIZES`]; classes of one rounded size merge.
    sizes: [u8; 3],
    /// Each selects 1 to 4 buffers.
    counts: [u8; 3],
    /// Selects 2 to 4 participant records.
    processes: u8,
    /// Selects 0 (untracked) to 3 shared references per process.
    shared_per_process: u8,
    /// Selects a ring of 1 to 4 messages (2 or 4 once rounded).
    capacity: u8,
    backpressure: bool,
    /// Selects a history of 0 to the capacity.
    history: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Heap,
    Named,
    /// Named, and the second handle is a participant of its own.
    Peer,
}

impl Setup {
    fn mode(&self) -> Mode {
        match self.mode % 3 {
            0 => Mode::Heap,
            1 => Mode::Named,
            _ => Mode::Peer,
        }
    }

    /// The classes asked for, and the `(size, count)` the pool must report.
    fn classes(&self) -> (Classes, Classes) {
        let n = 1 + usize::from(self.classes % 3);
        let mut asked: Vec<(usize, usize)> = (0..n)
            .map(|c| {
                let size = SIZES[usize::from(self.sizes[c]) % SIZES.len()];
                (size, 1 + usize::from(self.counts[c] % 4))
            })
            .collect();
        // Two classes of one size are refused: keep the first of each.
        asked.sort_by_key(|&(size, _)| size.next_multiple_of(64));
        asked.dedup_by_key(|&mut (size, _)| size.next_multiple_of(64));
        let rounded = asked
            .iter()
            .map(|&(size, count)| (size.next_multiple_of(64), count))
            .collect();
        (asked, rounded)
    }

    fn processes(&self) -> usize {
        2 + usize::from(self.processes % 3)
    }

    fn shared_per_process(&self) -> usize {
        usize::from(self.shared_per_process % 4)
    }

    fn ring(&self) -> BroadcastOptions {
        let capacity = 1 + usize::from(self.capacity % 4);
        let rounded = capacity.next_power_of_two().max(2);
        BroadcastOptions {
            capacity,
            overflow: if self.backpressure {
                Overflow::Backpressure
            } else {
                Overflow::Overwrite
            },
            history: usize::from(self.history) % (rounded + 1),
            ..BroadcastOptions::default()
        }
    }
}

/// A length to loan.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Small(u8),
    /// Class `class`'s size plus `delta` (at least 0): the edges of each class.
    Class {
        class: u8,
        delta: i8,
    },
    /// Anything up to past the largest class.
    Any(u16),
}

/// How a handle is presented.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Present {
    Accept,
    AcceptShared,
    /// To another (heap) pool: always `ForeignPool`.
    Foreign {
        shared: bool,
    },
}

/// Which flavour of a receive to make.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Try,
    /// A zero timeout.
    Timeout,
    /// Made only where the model proves it returns at once; otherwise a zero timeout.
    Blocking,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Loans through pool handle `via` into held slot `to` (dropping what was there).
    Loan {
        via: bool,
        len: Len,
        to: u8,
        /// `loan_timeout` with a zero timeout rather than `try_loan`.
        timeout: bool,
    },
    /// Fills held buffer `slot` with fresh bytes.
    Write {
        slot: u8,
    },
    SetLen {
        slot: u8,
        len: u16,
    },
    Drop {
        slot: u8,
    },
    /// Sends held buffer `slot`, remembering its handle in handle slot `to`.
    Send {
        slot: u8,
        to: u8,
    },
    /// Presents remembered handle `handle` through pool handle `via`; a buffer received
    /// goes to held (or shared) slot `to`.
    Accept {
        handle: u8,
        via: bool,
        how: Present,
        to: u8,
    },
    /// Publishes held buffer `slot` to the subscribers.
    Publish {
        slot: u8,
    },
    /// Publishes a buffer of another pool: refused, and it goes back to its own.
    PublishForeign,
    Retire,
    /// Subscribes into subscriber slot `to`, receiving through pool handle `via`.
    Subscribe {
        to: u8,
        via: bool,
    },
    DropSubscriber {
        who: u8,
    },
    /// Receives through subscriber `who` into shared slot `to`.
    Recv {
        who: u8,
        how: How,
        to: u8,
    },
    DropShared {
        slot: u8,
    },
    Reclaim {
        via: bool,
    },
    /// Opens a named pool again by name, as the second handle.
    Reopen,
}

/// What the model knows of one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Held {
        owner: u32,
    },
    /// In flight from `sender`, with the length its handle carries.
    Sent {
        sender: u32,
        len: u64,
    },
    /// `refs` counts the readers and the publisher's anchor, if `anchored`.
    Shared {
        refs: u32,
        anchored: bool,
    },
}

struct Buf {
    state: State,
    gen: u32,
    /// All of its bytes, as last written through a buffer the model knows of.
    bytes: Vec<u8>,
    /// A scribble hit its state word or bytes: nothing about it is predictable.
    damaged: bool,
}

#[derive(Clone, Copy, Debug)]
struct Class {
    size: usize,
    count: usize,
    first: usize,
    data_off: usize,
}

/// Where everything of a named pool lies (mirrors the crate's layout; checked against
/// the segment in [`Run::new`]).
struct Layout {
    records_off: usize,
    held_off: usize,
    descs_off: usize,
    data_off: usize,
    len: usize,
}

fn layout(classes: &mut [Class], processes: usize, shared_per_process: usize) -> Layout {
    let records_off = CTRL_LEN;
    let held_off = records_off + processes * RECORD_LEN;
    let descs_off = (held_off + processes * shared_per_process * 8).next_multiple_of(64);
    let total: usize = classes.iter().map(|c| c.count).sum();
    let mut off = descs_off + total * DESC_LEN;
    for c in classes.iter_mut() {
        off = off.next_multiple_of(DATA_ALIGN);
        c.data_off = off;
        off += c.size * c.count;
    }
    Layout {
        records_off,
        held_off,
        descs_off,
        data_off: classes[0].data_off,
        len: off,
    }
}

/// The broadcast ring's model: what was published, and the publisher's anchors.
struct RingModel {
    capacity: u64,
    overflow: Overflow,
    history: u64,
    /// Each published handle and the bytes it carried.
    published: Vec<(Fields, Vec<u8>)>,
    /// Positions and buffers whose anchor the publisher still holds, oldest first.
    anchors: VecDeque<(u64, u32)>,
}

impl RingModel {
    fn end(&self) -> u64 {
        self.published.len() as u64
    }
}

/// The hostile peer: the pool's segment, mapped again as another process would.
struct Peer {
    segment: Segment,
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
        // lives, and every access to it, the pool's and ours, is atomic.
        unsafe { AtomicU64::from_ptr(self.segment.payload().as_ptr().add(index * 8).cast()) }
    }
}

/// One input's pool, ring, handles and model.
struct Run {
    mode: Mode,
    /// The two pool handles ops go through: the creator's, and a clone or another `open`.
    pools: [BufferPool; 2],
    /// Their participant numbers (record index + 1).
    me: [u32; 2],
    id: u64,
    foreign: BufferPool,
    name: Option<String>,
    peer: Option<Peer>,
    layout: Option<Layout>,
    processes: usize,
    shared_per_process: usize,

    held: [Option<(Buffer, u32)>; HELD],
    handles: [Option<BufferHandle>; HANDLES],
    /// Shared buffers, with the participant whose table records the reference.
    shared: [Option<(SharedBuffer, u32)>; SHARED],
    /// Subscribers, with the model's cursor and the participant that receives.
    subscribers: [Option<(BufferSubscriber, u64, u32)>; SUBSCRIBERS],
    publisher: Option<BufferPublisher>,
    /// A clone of the ring's publisher, to subscribe through the second pool handle.
    ring: Option<Publisher>,

    classes: Vec<Class>,
    bufs: Vec<Buf>,
    /// Each class's loan cursor, unless a scribble hit it since the last loan.
    cursors: Vec<Option<u64>>,
    ring_model: RingModel,
    /// A scribble hit a participant record or reference table: a reclaim may take
    /// anything from anyone, so only typed errors and sizes are checked.
    records_damaged: bool,
    next_id: u64,
}

/// Whether two errors are the same, ignoring `OutOfRange`'s wording.
fn same(a: &TransferError, b: &TransferError) -> bool {
    match (a, b) {
        (TransferError::OutOfRange(_), TransferError::OutOfRange(_)) => true,
        _ => a == b,
    }
}

impl Run {
    /// Makes the pools and the ring. `Peer` mode gives the second handle a record of its
    /// own: `open` takes the first record holding this process's token, so the creator's
    /// record is hidden behind another token while `open` registers, then restored.
    fn new(setup: &Setup) -> (Run, Option<Unlink>) {
        let mode = setup.mode();
        let (asked, rounded) = setup.classes();
        let processes = setup.processes();
        let shared_per_process = setup.shared_per_process();
        let options = PoolOptions::with_classes(&asked)
            .processes(processes)
            .shared_per_process(shared_per_process);
        assert_eq!(options.classes(), &rounded[..]);
        let mut classes = Vec::new();
        let mut first = 0;
        for &(size, count) in &rounded {
            classes.push(Class {
                size,
                count,
                first,
                data_off: 0,
            });
            first += count;
        }
        let (pools, me, name, unlink, peer, layout) = if mode == Mode::Heap {
            let pool = BufferPool::new(options).expect("a heap pool");
            ([pool.clone(), pool], [1, 1], None, None, None, None)
        } else {
            let name = unique_name("pool");
            let unlink = Unlink(name.clone());
            let a =
                BufferPool::create(&name, options).unwrap_or_else(|e| panic!("create {name}: {e}"));
            let segment =
                Segment::open(&name, KIND_POOL).unwrap_or_else(|e| panic!("map {name}: {e}"));
            let peer = Peer {
                segment,
                token: own_token(),
            };
            let layout = layout(&mut classes, processes, shared_per_process);
            assert_eq!(
                peer.segment.payload_len(),
                layout.len,
                "unexpected pool layout"
            );
            let first_record = peer.word(layout.records_off / 8);
            assert_eq!(
                first_record.load(Ordering::Relaxed),
                peer.token,
                "unexpected pool layout"
            );
            if mode == Mode::Peer {
                first_record.store(peer.token ^ 1, Ordering::Relaxed);
            }
            let b = BufferPool::open(&name);
            first_record.store(peer.token, Ordering::Relaxed);
            let b = b.unwrap_or_else(|e| panic!("open {name}: {e}"));
            let me = if mode == Mode::Peer { [1, 2] } else { [1, 1] };
            (
                [a, b],
                me,
                Some(name),
                Some(unlink),
                Some(peer),
                Some(layout),
            )
        };
        assert_eq!(pools[0].id(), pools[1].id());
        assert_eq!(pools[0].classes(), rounded);
        assert_eq!(pools[1].classes(), rounded);
        let total: usize = rounded.iter().map(|c| c.1).sum();
        let ring_options = setup.ring();
        let ring = broadcast::channel(ring_options);
        let ring_model = RingModel {
            capacity: ring.capacity() as u64,
            overflow: ring_options.overflow,
            history: ring_options.history as u64,
            published: Vec::new(),
            anchors: VecDeque::new(),
        };
        let publisher = BufferPublisher::new(ring.clone(), pools[0].clone());
        let foreign = BufferPool::new(PoolOptions::with_classes(&[(64, 1)])).expect("a pool");
        let run = Run {
            mode,
            id: pools[0].id(),
            pools,
            me,
            foreign,
            name,
            peer,
            layout,
            processes,
            shared_per_process,
            held: Default::default(),
            handles: [None; HANDLES],
            shared: Default::default(),
            subscribers: Default::default(),
            publisher: Some(publisher),
            ring: Some(ring),
            bufs: (0..total)
                .map(|i| Buf {
                    state: State::Free,
                    gen: 0,
                    bytes: vec![0; classes[class_of(&classes, i)].size],
                    damaged: false,
                })
                .collect(),
            cursors: vec![Some(0); classes.len()],
            classes,
            ring_model,
            records_damaged: false,
            next_id: 0,
        };
        run.check_counts();
        (run, unlink)
    }

    fn total(&self) -> usize {
        self.bufs.len()
    }

    fn size_of(&self, index: u32) -> usize {
        self.classes[class_of(&self.classes, index as usize)].size
    }

    /// Whether the model knows buffer `index`'s state exactly.
    fn exact(&self, index: u32) -> bool {
        !self.records_damaged && !self.bufs[index as usize].damaged
    }

    /// Whether the model knows every buffer's state exactly.
    fn all_exact(&self) -> bool {
        !self.records_damaged && self.bufs.iter().all(|b| !b.damaged)
    }

    fn free_counts(&self) -> Vec<usize> {
        self.classes
            .iter()
            .map(|c| {
                self.bufs[c.first..c.first + c.count]
                    .iter()
                    .filter(|b| b.state == State::Free)
                    .count()
            })
            .collect()
    }

    /// `available()` through both handles: exactly the model's free counts while it
    /// knows every buffer; at least the undamaged free ones while no record is damaged.
    fn check_counts(&self) {
        let want = self.free_counts();
        for pool in &self.pools {
            let got = pool.available();
            assert_eq!(got.len(), self.classes.len());
            if self.all_exact() {
                assert_eq!(got, want, "free buffers per class");
            } else {
                for (c, class) in self.classes.iter().enumerate() {
                    assert!(got[c] <= class.count, "{got:?} free of {:?}", self.classes);
                    if !self.records_damaged {
                        let sure = self.bufs[class.first..class.first + class.count]
                            .iter()
                            .filter(|b| !b.damaged && b.state == State::Free)
                            .count();
                        assert!(got[c] >= sure, "{got:?} free, {sure} sure in class {c}");
                    }
                }
            }
        }
    }

    fn check_bytes(&self, index: u32, got: &[u8]) {
        if self.exact(index) {
            let want = &self.bufs[index as usize].bytes[..got.len()];
            assert!(got == want, "buffer {index}'s bytes changed");
        }
    }

    /// The model's side of a held buffer going back to the pool.
    fn released(&mut self, index: u32, owner: u32) {
        if self.exact(index) {
            let b = &mut self.bufs[index as usize];
            assert_eq!(b.state, State::Held { owner }, "buffer {index}");
            b.state = State::Free;
            b.gen = b.gen.wrapping_add(1);
        }
    }

    /// The model's side of one reference to a shared buffer dropping.
    fn unref(&mut self, index: u32, anchor: bool) {
        if !self.exact(index) {
            return;
        }
        let b = &mut self.bufs[index as usize];
        let State::Shared { refs, anchored } = b.state else {
            panic!(
                "dropping a reference to buffer {index} in state {:?}",
                b.state
            );
        };
        assert!(
            refs > 0 && (!anchor || anchored),
            "buffer {index}: {:?}",
            b.state
        );
        b.state = if refs == 1 {
            b.gen = b.gen.wrapping_add(1);
            State::Free
        } else {
            State::Shared {
                refs: refs - 1,
                anchored: anchored && !anchor,
            }
        };
    }

    fn put_held(&mut self, to: u8, buf: Buffer, owner: u32) {
        let old = self.held[usize::from(to) % HELD].replace((buf, owner));
        if let Some((old, owner)) = old {
            let index = old.index();
            drop(old);
            self.released(index, owner);
        }
    }

    fn put_shared(&mut self, to: u8, buf: SharedBuffer, me: u32) {
        let old = self.shared[usize::from(to) % SHARED].replace((buf, me));
        if let Some((old, _)) = old {
            let index = old.index();
            drop(old);
            self.unref(index, false);
        }
    }

    fn len(&self, len: Len) -> usize {
        let max = self.classes.last().expect("a class").size;
        match len {
            Len::Small(n) => usize::from(n),
            Len::Class { class, delta } => {
                let size = self.classes[usize::from(class) % self.classes.len()].size;
                size.saturating_add_signed(isize::from(delta))
            }
            Len::Any(n) => usize::from(n) % (max + 66),
        }
    }

    /// The buffer a loan of class `first_class` or larger takes: the first free one from
    /// the cursor of the first class that has one.
    fn predict_loan(&self, first_class: usize) -> Option<(usize, Option<u32>)> {
        for (c, class) in self.classes.iter().enumerate().skip(first_class) {
            let free = |i: usize| self.bufs[class.first + i].state == State::Free;
            if !(0..class.count).any(free) {
                continue;
            }
            let index = self.cursors[c].map(|cursor| {
                let start = (cursor % class.count as u64) as usize;
                let i = (0..class.count)
                    .map(|k| (start + k) % class.count)
                    .find(|&i| free(i))
                    .expect("a free buffer");
                (class.first + i) as u32
            });
            return Some((c, index));
        }
        None
    }

    fn loan(&mut self, via: bool, len: Len, to: u8, timeout: bool) {
        let via = usize::from(via);
        let len = self.len(len);
        let pool = &self.pools[via];
        let r = if timeout {
            pool.loan_timeout(len, Duration::ZERO)
        } else {
            pool.try_loan(len)
        };
        let Some(first_class) = self.classes.iter().position(|c| c.size >= len) else {
            let max = self.classes.last().expect("a class").size;
            assert_eq!(r.map(drop), Err(LoanError::TooLarge { len, max }));
            return;
        };
        // Undamaged free buffers are certainly free (only our own ops take buffers):
        // while no record is damaged, a loan must find one if the model has one.
        let sure = if self.records_damaged {
            None
        } else {
            Some(self.predict_loan_sure(first_class))
        };
        let exact = self.all_exact();
        let predicted = self.predict_loan(first_class);
        match r {
            Ok(buf) => {
                let index = buf.index();
                let c = class_of(&self.classes, index as usize);
                assert_eq!(
                    (buf.len(), buf.capacity()),
                    (len, self.classes[c].size),
                    "loaned buffer {index}"
                );
                assert!(c >= first_class, "{len} bytes loaned from class {c}");
                if let Some(Some(sure)) = sure {
                    assert!(
                        c <= sure,
                        "loaned from class {c} while {sure} has a free buffer"
                    );
                }
                if exact {
                    let (class, index_wanted) = predicted.expect("a free buffer");
                    assert_eq!(c, class, "loaned buffer {index}");
                    if let Some(wanted) = index_wanted {
                        assert_eq!(index, wanted, "the loan's cursor");
                    }
                }
                self.cursors[c] = Some((index as usize - self.classes[c].first + 1) as u64);
                let owner = self.me[via];
                if self.exact(index) {
                    let b = &mut self.bufs[index as usize];
                    assert_eq!(
                        b.state,
                        State::Free,
                        "loaned buffer {index}, which has another holder"
                    );
                    b.state = State::Held { owner };
                }
                // Loans do not clear buffers: a loan shows what the last holder wrote.
                self.check_bytes(index, &buf);
                self.put_held(to, buf, owner);
            }
            Err(e) => {
                let want = if timeout {
                    LoanError::Timeout { len }
                } else {
                    LoanError::Empty { len }
                };
                assert_eq!(e, want);
                if let Some(Some(class)) = sure {
                    panic!("{e:?} while class {class} has a free buffer");
                }
            }
        }
    }

    /// The first class from `first_class` with a buffer that is free and undamaged.
    fn predict_loan_sure(&self, first_class: usize) -> Option<usize> {
        self.classes
            .iter()
            .enumerate()
            .skip(first_class)
            .find(|(_, class)| {
                self.bufs[class.first..class.first + class.count]
                    .iter()
                    .any(|b| !b.damaged && b.state == State::Free)
            })
            .map(|(c, _)| c)
    }

    fn write(&mut self, slot: u8) {
        self.next_id += 1;
        let Some((buf, _)) = &mut self.held[usize::from(slot) % HELD] else {
            return;
        };
        let bytes = payload(self.next_id, buf.len());
        buf.copy_from_slice(&bytes);
        let index = buf.index() as usize;
        self.bufs[index].bytes[..bytes.len()].copy_from_slice(&bytes);
    }

    fn set_len(&mut self, slot: u8, len: u16) {
        let Some((mut buf, owner)) = self.held[usize::from(slot) % HELD].take() else {
            return;
        };
        let len = usize::from(len) % (buf.capacity() + 1);
        buf.set_len(len);
        assert_eq!(buf.len(), len);
        self.check_bytes(buf.index(), &buf);
        self.held[usize::from(slot) % HELD] = Some((buf, owner));
    }

    fn send(&mut self, slot: u8, to: u8) {
        let Some((buf, owner)) = self.held[usize::from(slot) % HELD].take() else {
            return;
        };
        let (index, len) = (buf.index(), buf.len() as u64);
        let h = buf.into_handle();
        let f = Fields::of(&h);
        assert_eq!(
            (f.pool, f.len, f.index, f.flags),
            (self.id, len, index, 0),
            "a sent buffer's handle"
        );
        if self.exact(index) {
            let b = &mut self.bufs[index as usize];
            assert_eq!((f.gen, f.sender), (b.gen, owner), "a sent buffer's handle");
            b.state = State::Sent { sender: owner, len };
        }
        self.handles[usize::from(to) % HANDLES] = Some(h);
    }

    /// What presenting `f` through participant `me` must return, or `None` where the
    /// model cannot know (damage).
    fn expect(&self, f: &Fields, me: u32, shared: bool) -> Option<Result<(), TransferError>> {
        let index = f.index;
        if f.pool != self.id {
            return Some(Err(TransferError::ForeignPool {
                expected: self.id,
                found: f.pool,
            }));
        }
        if index as usize >= self.total()
            || f.sender == 0
            || f.sender as usize > self.processes
            || f.len > self.size_of(index) as u64
        {
            return Some(Err(TransferError::OutOfRange("")));
        }
        if (f.flags & SHARED_FLAG != 0) != shared || f.flags & !SHARED_FLAG != 0 {
            return Some(Err(TransferError::WrongKind { index }));
        }
        let tracked = self.mode != Mode::Heap && self.shared_per_process > 0;
        if shared && tracked {
            if self.records_damaged {
                return None;
            }
            let mine = self.shared.iter().flatten().filter(|s| s.1 == me).count();
            if mine >= self.shared_per_process {
                return Some(Err(TransferError::SharedLimit {
                    limit: self.shared_per_process,
                }));
            }
        }
        if !self.exact(index) {
            return None;
        }
        let b = &self.bufs[index as usize];
        Some(match b.state {
            State::Free => Err(TransferError::Stale { index }),
            _ if b.gen != f.gen => Err(TransferError::Stale { index }),
            State::Held { owner } if owner == me => Err(TransferError::AlreadyReceived { index }),
            State::Held { .. } => Err(TransferError::NotOwned { index }),
            State::Sent { .. } if shared => Err(TransferError::WrongKind { index }),
            State::Sent { sender, .. } if sender != f.sender => {
                Err(TransferError::NotOwned { index })
            }
            State::Sent { .. } => Ok(()),
            State::Shared { .. } if shared => Ok(()),
            State::Shared { .. } => Err(TransferError::WrongKind { index }),
        })
    }

    fn present(&mut self, h: &BufferHandle, via: bool, how: Present, to: u8) {
        let f = Fields::of(h);
        let via = usize::from(via);
        let me = self.me[via];
        match how {
            Present::Foreign { shared } => {
                let r = if shared {
                    self.foreign.accept_shared(h).map(drop)
                } else {
                    self.foreign.accept(h).map(drop)
                };
                if f.pool != self.foreign.id() {
                    let want = TransferError::ForeignPool {
                        expected: self.foreign.id(),
                        found: f.pool,
                    };
                    assert_eq!(r, Err(want));
                } else {
                    // Its one buffer is never lent out across ops, so never in flight.
                    assert!(r.is_err(), "the foreign pool accepted {f:?}");
                }
            }
            Present::Accept => {
                let want = self.expect(&f, me, false);
                match self.pools[via].accept(h) {
                    Ok(buf) => {
                        let index = buf.index();
                        assert_eq!(
                            (index, buf.len() as u64, buf.capacity()),
                            (f.index, f.len, self.size_of(f.index)),
                            "accepted {f:?}"
                        );
                        if let Some(want) = want {
                            let state = self.bufs[index as usize].state;
                            assert!(
                                want.is_ok(),
                                "accepted {f:?} (wanted {want:?}): buffer {index} is {state:?}"
                            );
                            self.bufs[index as usize].state = State::Held { owner: me };
                        }
                        self.check_bytes(index, &buf);
                        self.put_held(to, buf, me);
                    }
                    Err(e) => {
                        if let Some(want) = want {
                            let want = want.expect_err("accept should succeed");
                            assert!(same(&e, &want), "presenting {f:?}: {e:?}, not {want:?}");
                        }
                    }
                }
            }
            Present::AcceptShared => {
                let want = self.expect(&f, me, true);
                match self.pools[via].accept_shared(h) {
                    Ok(buf) => {
                        let index = buf.index();
                        assert_eq!((index, buf.len() as u64), (f.index, f.len));
                        if let Some(want) = want {
                            let state = self.bufs[index as usize].state;
                            assert!(
                                want.is_ok(),
                                "shared {f:?} (wanted {want:?}): buffer {index} is {state:?}"
                            );
                            self.add_ref(index);
                        }
                        self.check_bytes(index, &buf);
                        self.put_shared(to, buf, me);
                    }
                    Err(e) => {
                        if let Some(want) = want {
                            let want = want.expect_err("accept_shared should succeed");
                            assert!(same(&e, &want), "sharing {f:?}: {e:?}, not {want:?}");
                        }
                    }
                }
            }
        }
    }

    fn add_ref(&mut self, index: u32) {
        if let State::Shared { refs, anchored } = self.bufs[index as usize].state {
            self.bufs[index as usize].state = State::Shared {
                refs: refs + 1,
                anchored,
            };
        }
    }

    /// Under backpressure, whether some subscriber is a whole ring behind (a publish
    /// would wait for it).
    fn ring_full(&self) -> bool {
        let m = &self.ring_model;
        m.overflow == Overflow::Backpressure
            && self
                .subscribers
                .iter()
                .flatten()
                .any(|s| m.end() - s.1 >= m.capacity)
    }

    fn publish(&mut self, slot: u8) {
        if self.publisher.is_none() || self.ring_full() {
            return;
        }
        let Some((buf, owner)) = self.held[usize::from(slot) % HELD].take() else {
            return;
        };
        let (index, len) = (buf.index(), buf.len());
        let bytes = buf.to_vec();
        let end = self.ring_model.end();
        if self.exact(index) {
            let state = self.bufs[index as usize].state;
            assert_eq!(state, State::Held { owner }, "publishing buffer {index}");
        }
        let r = self.publisher.as_mut().expect("a publisher").publish(buf);
        match r {
            Ok(pos) => {
                assert_eq!(pos, end, "publish position");
                let b = &mut self.bufs[index as usize];
                let f = Fields {
                    pool: self.id,
                    len: len as u64,
                    index,
                    gen: b.gen,
                    sender: owner,
                    flags: SHARED_FLAG,
                };
                if !b.damaged && !self.records_damaged {
                    b.state = State::Shared {
                        refs: 1,
                        anchored: true,
                    };
                }
                self.ring_model.published.push((f, bytes));
                self.ring_model.anchors.push_back((pos, index));
                self.retire_passed(pos);
            }
            Err(e) => {
                assert!(!self.exact(index), "publishing buffer {index}: {e:?}");
                assert!(
                    matches!(e, BufferSendError::Send(ringport::SendError::Corrupt(_))),
                    "publishing a damaged buffer: {e:?}"
                );
            }
        }
    }

    /// The model of the publisher dropping the anchors nobody can still need.
    fn retire_passed(&mut self, newest: u64) {
        let m = &self.ring_model;
        let lowest = self
            .subscribers
            .iter()
            .flatten()
            .map(|s| s.1)
            .min()
            .unwrap_or(u64::MAX);
        let mut retired = Vec::new();
        for &(pos, index) in &m.anchors {
            let lapped = pos + m.capacity <= newest;
            let passed = !lapped && m.overflow == Overflow::Backpressure && pos < lowest;
            if !(lapped || passed) {
                break;
            }
            retired.push(index);
        }
        for index in retired {
            self.ring_model.anchors.pop_front();
            self.unref(index, true);
        }
    }

    fn publish_foreign(&mut self) {
        let Some(publisher) = &mut self.publisher else {
            return;
        };
        let buf = self.foreign.try_loan(1).expect("the foreign pool's buffer");
        let want = TransferError::ForeignPool {
            expected: self.id,
            found: self.foreign.id(),
        };
        assert_eq!(publisher.publish(buf), Err(BufferSendError::Transfer(want)));
        assert_eq!(self.foreign.available(), vec![1]);
    }

    fn retire(&mut self) {
        let Some(publisher) = &mut self.publisher else {
            return;
        };
        publisher.retire();
        if let Some(&(newest, _)) = self.ring_model.anchors.back() {
            self.retire_passed(newest);
        }
    }

    fn subscribe(&mut self, to: u8, via: bool) {
        let (Some(publisher), Some(ring)) = (&self.publisher, &self.ring) else {
            return;
        };
        let via = usize::from(via);
        let sub = if via == 0 {
            publisher.subscribe().expect("a subscriber record")
        } else {
            let mut s = ring.subscribe().expect("a subscriber record");
            s.set_spin_budget(Duration::ZERO);
            BufferSubscriber::new(s, self.pools[1].clone())
        };
        let cursor = self
            .ring_model
            .end()
            .saturating_sub(self.ring_model.history);
        self.subscribers[usize::from(to) % SUBSCRIBERS] = Some((sub, cursor, self.me[via]));
    }

    fn recv(&mut self, who: u8, how: How, to: u8) {
        let who = usize::from(who) % SUBSCRIBERS;
        let Some((mut sub, mut cursor, me)) = self.subscribers[who].take() else {
            return;
        };
        let end = self.ring_model.end();
        let alive = self.publisher.is_some();
        let how = match how {
            How::Blocking if cursor == end && alive => How::Timeout,
            how => how,
        };
        let r = match how {
            How::Try => sub.try_recv(),
            How::Timeout => sub.recv_timeout(Duration::ZERO),
            How::Blocking => sub.recv(),
        };
        let capacity = self.ring_model.capacity;
        if cursor == end {
            let want = if !alive {
                RecvError::Disconnected
            } else if how == How::Try {
                RecvError::Empty
            } else {
                RecvError::Timeout
            };
            assert_eq!(r.map(drop), Err(BufferRecvError::Recv(want)));
        } else if self.ring_model.overflow == Overflow::Overwrite && end - cursor > capacity {
            let lost = end - capacity - cursor;
            cursor = end - capacity;
            assert_eq!(
                r.map(drop),
                Err(BufferRecvError::Recv(RecvError::Lagged(lost)))
            );
        } else {
            let (f, bytes) = self.ring_model.published[cursor as usize].clone();
            cursor += 1;
            let want = self.expect(&f, me, true);
            match (r, want) {
                (Ok(buf), want) => {
                    let index = buf.index();
                    assert_eq!((index, buf.len()), (f.index, bytes.len()), "received {f:?}");
                    if let Some(want) = want {
                        let state = self.bufs[index as usize].state;
                        assert!(want.is_ok(), "received {f:?} (wanted {want:?}): {state:?}");
                        self.add_ref(index);
                        assert!(*buf == bytes[..], "shared buffer {index}'s bytes changed");
                    }
                    self.put_shared(to, buf, me);
                }
                (Err(e), None) => assert!(
                    matches!(
                        e,
                        BufferRecvError::Recv(RecvError::Lagged(1)) | BufferRecvError::Transfer(_)
                    ),
                    "receiving {f:?}: {e:?}"
                ),
                (Err(e), Some(Err(TransferError::Stale { .. }))) => {
                    assert_eq!(e, BufferRecvError::Recv(RecvError::Lagged(1)), "{f:?}");
                }
                (Err(BufferRecvError::Transfer(e)), Some(Err(want))) => {
                    assert!(same(&e, &want), "receiving {f:?}: {e:?}, not {want:?}");
                }
                (Err(e), Some(want)) => panic!("receiving {f:?}: {e:?}, not {want:?}"),
            }
        }
        self.subscribers[who] = Some((sub, cursor, me));
    }

    fn drop_shared(&mut self, slot: u8) {
        if let Some((buf, _)) = self.shared[usize::from(slot) % SHARED].take() {
            let index = buf.index();
            drop(buf);
            self.unref(index, false);
        }
    }

    fn reclaim(&mut self, via: bool) {
        let back = self.pools[usize::from(via)].reclaim();
        if self.records_damaged {
            assert!(back <= self.total(), "reclaimed {back}");
        } else {
            // Every record names this live process, or nobody.
            assert_eq!(back, 0, "reclaimed from live participants");
        }
    }

    fn reopen(&mut self) {
        let Some(name) = &self.name else {
            return;
        };
        match BufferPool::open(name) {
            Ok(pool) => {
                assert_eq!(
                    (pool.id(), pool.classes()),
                    (self.id, self.pools[0].classes())
                );
                self.pools[1] = pool;
                // The first record holding this process's token: the creator's.
                self.me[1] = self.me[0];
            }
            Err(PoolError::Full { .. }) if self.records_damaged => {}
            Err(e) => panic!("reopening {name}: {e:?}"),
        }
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Loan {
                via,
                len,
                to,
                timeout,
            } => self.loan(via, len, to, timeout),
            Op::Write { slot } => self.write(slot),
            Op::SetLen { slot, len } => self.set_len(slot, len),
            Op::Drop { slot } => {
                if let Some((buf, owner)) = self.held[usize::from(slot) % HELD].take() {
                    let index = buf.index();
                    drop(buf);
                    self.released(index, owner);
                }
            }
            Op::Send { slot, to } => self.send(slot, to),
            Op::Accept {
                handle,
                via,
                how,
                to,
            } => {
                if let Some(h) = self.handles[usize::from(handle) % HANDLES] {
                    self.present(&h, via, how, to);
                }
            }
            Op::Publish { slot } => self.publish(slot),
            Op::PublishForeign => self.publish_foreign(),
            Op::Retire => self.retire(),
            Op::Subscribe { to, via } => self.subscribe(to, via),
            Op::DropSubscriber { who } => self.subscribers[usize::from(who) % SUBSCRIBERS] = None,
            Op::Recv { who, how, to } => self.recv(who, how, to),
            Op::DropShared { slot } => self.drop_shared(slot),
            Op::Reclaim { via } => self.reclaim(via),
            Op::Reopen => self.reopen(),
        }
        self.check_counts();
    }

    /// Gives everything back: held buffers, those in flight (through their senders'
    /// handles, as a sender may), shared ones, then the publisher and its anchors; every
    /// buffer the model knows must then be free, the subscribers must drain to
    /// `Disconnected`, and every handle seen must be stale.
    fn finish(mut self) {
        for slot in 0..HELD {
            self.run(&Op::Drop { slot: slot as u8 });
        }
        for index in 0..self.total() as u32 {
            let b = &self.bufs[index as usize];
            let State::Sent { sender, len } = b.state else {
                continue;
            };
            if !self.exact(index) {
                continue;
            }
            let h = Fields {
                pool: self.id,
                len,
                index,
                gen: b.gen,
                sender,
                flags: 0,
            }
            .handle();
            self.present(&h, false, Present::Accept, 0);
            self.run(&Op::Drop { slot: 0 });
        }
        for slot in 0..SHARED {
            self.drop_shared(slot as u8);
        }
        self.ring = None;
        self.publisher = None;
        for (_, index) in std::mem::take(&mut self.ring_model.anchors) {
            self.unref(index, true);
        }
        self.check_counts();
        if !self.records_damaged {
            let left = self.bufs.iter().enumerate();
            let left: Vec<_> = left
                .filter(|(_, b)| !b.damaged && b.state != State::Free)
                .map(|(i, b)| (i, b.state))
                .collect();
            assert!(left.is_empty(), "buffers left out of the pool: {left:?}");
        }
        for who in 0..SUBSCRIBERS {
            for _ in 0..2 * self.ring_model.capacity + 2 {
                let Some((_, cursor, _)) = &self.subscribers[who] else {
                    break;
                };
                let done = *cursor == self.ring_model.end();
                self.recv(who as u8, How::Try, 0);
                if done {
                    break;
                }
            }
            self.subscribers[who] = None;
            self.drop_shared(0);
        }
        for h in self.handles {
            for via in [false, true] {
                if let Some(h) = h {
                    self.present(&h, via, Present::Accept, 0);
                    self.run(&Op::Drop { slot: 0 });
                }
            }
        }
        self.check_counts();
    }
}

fn class_of(classes: &[Class], index: usize) -> usize {
    classes
        .iter()
        .rposition(|c| c.first <= index)
        .expect("index within the pool")
}

// ---------------------------------------------------------------------------------------
// pool_ops
// ---------------------------------------------------------------------------------------

/// Runs operations on a pool of 1 to 3 small size classes (on the heap through two
/// clones; or named, through the creator's handle and a second `open`, as one participant
/// or two) and on a broadcast ring of 2 or 4 slots, and checks every result against a
/// model of each buffer (free, held, in flight, shared with a reference count) with its
/// generation and bytes: loans take the buffer the class cursor finds first, in the
/// smallest class with one free, `TooLarge` / `Empty` / `Timeout` exactly when due;
/// `available()` equals the model's free counts after every op; bytes survive every
/// transfer (and loans, which do not clear them); handles presented again, by the other
/// handle, after release, as shared or to another pool, fail with exactly
/// `AlreadyReceived`, `NotOwned`, `Stale`, `WrongKind`, `ForeignPool`, `SharedLimit`;
/// published buffers reach each subscriber or read as `Lagged`, and return to the pool
/// exactly when their last reference and anchor drop.
pub fn pool_ops(data: &[u8]) {
    let Some((setup, ops)) = decode::<Setup, Op>(data, MAX_OPS) else {
        return;
    };
    let (mut run, _unlink) = Run::new(&setup);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        run.run(op);
    }
    run.finish();
}

// ---------------------------------------------------------------------------------------
// pool_handles
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum HostileOp {
    Op(Op),
    Forge(Forge),
    /// Ignored on a heap pool.
    Scribble(Scribble),
}

/// A handle made from a genuine one (or from raw bytes), then edited field by field.
#[derive(Arbitrary, Debug)]
struct Forge {
    base: Base,
    pool: PoolEdit,
    index: IndexEdit,
    gen: GenEdit,
    sender: SenderEdit,
    len: LenEdit,
    flags: FlagsEdit,
    via: bool,
    shared: bool,
    to: u8,
}

#[derive(Arbitrary, Debug)]
enum Base {
    /// A remembered handle.
    Handle(u8),
    /// The handle a held buffer would have if it were sent.
    Held(u8),
    /// A published (shared) buffer's handle.
    Published(u8),
    Raw([u8; 32]),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum PoolEdit {
    Keep,
    Ours,
    Foreign,
    Flip(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum IndexEdit {
    Keep,
    Add(i8),
    /// The index of held buffer `slot`.
    Held(u8),
    /// `total + n`: just out of range.
    Past(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum GenEdit {
    Keep,
    Add(i8),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SenderEdit {
    Keep,
    Zero,
    /// The first or second handle's participant.
    Me(bool),
    /// `processes + 1 + n`: no participant.
    Past(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum LenEdit {
    Keep,
    /// The buffer's size: the longest valid length.
    Size,
    /// `size + 1 + n`.
    Over(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FlagsEdit {
    Keep,
    Exclusive,
    Shared,
    Raw(u32),
}

/// A word the hostile peer writes into the pool.
#[derive(Arbitrary, Debug)]
enum Scribble {
    /// Buffer `index % total`'s state word.
    State { index: u8, value: StateValue },
    /// Record `record % processes`: its token, or its reaper's.
    Record {
        record: u8,
        reaper: bool,
        value: Value,
    },
    /// Entry `entry` of the shared-reference tables.
    Held { entry: u8, value: HeldValue },
    /// Word `word % 96` of the control block: the signal, the loan cursors.
    Ctrl { word: u8, value: Value },
    /// Any 8-byte word of the pool, bytes included, `word` wrapping around its words.
    Raw { word: u16, value: Value },
}

/// What to write, from the word's current value.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Value {
    Raw(u64),
    Small(u8),
    Flip(u8),
    Add(i8),
    Max,
    /// This process's token: a participant that stays alive.
    Mine,
    /// Pid 1 with an unknown start time: alive too.
    Init,
    /// This process's pid with another start time: a participant that died.
    Dead,
}

/// A state word: any word, or a well-formed one near the buffer's generation.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum StateValue {
    Word(Value),
    State {
        gen: i8,
        /// `% 4`: free, held, sent, shared.
        kind: u8,
        owner: Owner,
        /// 255 stands for the most references a buffer can have.
        refs: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Owner {
    Nobody,
    /// The first or second handle's participant.
    Me(bool),
    /// Record `n % (processes + 2)`: vacant ones, and some past the last.
    Record(u8),
    Max,
}

/// An entry of a shared-reference table: any word, or one naming a buffer.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum HeldValue {
    Word(Value),
    Entry { index: u8, gen: i8 },
}

impl Run {
    fn forge(&mut self, forge: &Forge) {
        let held = |slot: u8| {
            self.held[usize::from(slot) % HELD]
                .as_ref()
                .map(|(buf, owner)| Fields {
                    pool: self.id,
                    len: buf.len() as u64,
                    index: buf.index(),
                    gen: self.bufs[buf.index() as usize].gen,
                    sender: *owner,
                    flags: 0,
                })
        };
        let mut f = match forge.base {
            Base::Handle(slot) => self.handles[usize::from(slot) % HANDLES]
                .map(|h| Fields::of(&h))
                .unwrap_or_default(),
            Base::Held(slot) => held(slot).unwrap_or_default(),
            Base::Published(n) => {
                let published = &self.ring_model.published;
                if published.is_empty() {
                    Fields::default()
                } else {
                    published[usize::from(n) % published.len()].0
                }
            }
            Base::Raw(bytes) => Fields::of(&bytemuck::pod_read_unaligned(&bytes)),
        };
        f.pool = match forge.pool {
            PoolEdit::Keep => f.pool,
            PoolEdit::Ours => self.id,
            PoolEdit::Foreign => self.foreign.id(),
            PoolEdit::Flip(bit) => f.pool ^ 1 << (bit % 64),
        };
        f.index = match forge.index {
            IndexEdit::Keep => f.index,
            IndexEdit::Add(d) => f.index.wrapping_add_signed(i32::from(d)),
            IndexEdit::Held(slot) => held(slot).map_or(f.index, |h| h.index),
            IndexEdit::Past(n) => self.total() as u32 + u32::from(n),
            IndexEdit::Raw(i) => i,
        };
        f.gen = match forge.gen {
            GenEdit::Keep => f.gen,
            GenEdit::Add(d) => f.gen.wrapping_add_signed(i32::from(d)),
            GenEdit::Raw(g) => g,
        };
        f.sender = match forge.sender {
            SenderEdit::Keep => f.sender,
            SenderEdit::Zero => 0,
            SenderEdit::Me(b) => self.me[usize::from(b)],
            SenderEdit::Past(n) => (self.processes + 1) as u32 + u32::from(n),
            SenderEdit::Raw(s) => s,
        };
        let size = if (f.index as usize) < self.total() {
            self.size_of(f.index) as u64
        } else {
            f.len
        };
        f.len = match forge.len {
            LenEdit::Keep => f.len,
            LenEdit::Size => size,
            LenEdit::Over(n) => size.wrapping_add(1 + u64::from(n)),
            LenEdit::Raw(len) => len,
        };
        f.flags = match forge.flags {
            FlagsEdit::Keep => f.flags,
            FlagsEdit::Exclusive => 0,
            FlagsEdit::Shared => SHARED_FLAG,
            FlagsEdit::Raw(flags) => flags,
        };
        let how = if forge.shared {
            Present::AcceptShared
        } else {
            Present::Accept
        };
        self.present(&f.handle(), forge.via, how, forge.to);
    }

    fn value(&self, old: u64, value: Value) -> u64 {
        let token = own_token();
        match value {
            Value::Raw(v) => v,
            Value::Small(n) => u64::from(n),
            Value::Flip(bit) => old ^ (1 << (bit % 64)),
            Value::Add(d) => old.wrapping_add_signed(i64::from(d)),
            Value::Max => u64::MAX,
            Value::Mine => token,
            Value::Init => 1,
            // Start times sit above the 22 pid bits.
            Value::Dead => token.wrapping_add(1 << 22),
        }
    }

    /// Writes `value` over word `word` of the pool and notes what the model can no
    /// longer know.
    fn scribble_word(&mut self, word: usize, value: Value) {
        let peer = self.peer.as_ref().expect("a named pool");
        let word = word % peer.words();
        let w = peer.word(word);
        w.store(
            self.value(w.load(Ordering::Relaxed), value),
            Ordering::Relaxed,
        );
        self.damage(word * 8);
    }

    fn damage(&mut self, offset: usize) {
        let layout = self.layout.as_ref().expect("a named pool");
        if offset < layout.records_off {
            if offset >= CURSORS && (offset - CURSORS) % LINE == 0 {
                if let Some(cursor) = self.cursors.get_mut((offset - CURSORS) / LINE) {
                    *cursor = None;
                }
            }
        } else if offset < layout.descs_off {
            self.records_damaged = true;
        } else if offset < layout.data_off {
            let rel = offset - layout.descs_off;
            if rel % DESC_LEN == 0 && rel / DESC_LEN < self.total() {
                self.bufs[rel / DESC_LEN].damaged = true;
            }
        } else if let Some(c) = self
            .classes
            .iter()
            .find(|c| (c.data_off..c.data_off + c.size * c.count).contains(&offset))
        {
            let index = c.first + (offset - c.data_off) / c.size;
            self.bufs[index].damaged = true;
        }
    }

    fn scribble(&mut self, s: &Scribble) {
        let Some(layout) = &self.layout else {
            return;
        };
        let (records_off, held_off, descs_off) =
            (layout.records_off, layout.held_off, layout.descs_off);
        match *s {
            Scribble::State { index, value } => {
                let index = usize::from(index) % self.total();
                let word = (descs_off + index * DESC_LEN) / 8;
                match value {
                    StateValue::Word(value) => self.scribble_word(word, value),
                    StateValue::State {
                        gen,
                        kind,
                        owner,
                        refs,
                    } => {
                        let gen = self.bufs[index].gen.wrapping_add_signed(i32::from(gen));
                        let owner = match owner {
                            Owner::Nobody => 0,
                            Owner::Me(b) => u64::from(self.me[usize::from(b)]),
                            Owner::Record(n) => u64::from(n) % (self.processes as u64 + 2),
                            Owner::Max => OWNER_MAX,
                        };
                        let refs = if refs == u8::MAX {
                            REFS_MAX
                        } else {
                            u64::from(refs)
                        };
                        let state = u64::from(gen) << GEN_SHIFT
                            | u64::from(kind % 4) << KIND_SHIFT
                            | owner << OWNER_SHIFT
                            | refs;
                        self.scribble_word(word, Value::Raw(state));
                    }
                }
            }
            Scribble::Record {
                record,
                reaper,
                value,
            } => {
                let record = usize::from(record) % self.processes;
                let offset = records_off + record * RECORD_LEN + if reaper { 8 } else { 0 };
                self.scribble_word(offset / 8, value);
            }
            Scribble::Held { entry, value } => {
                let entries = self.processes * self.shared_per_process;
                if entries == 0 {
                    return;
                }
                let word = held_off / 8 + usize::from(entry) % entries;
                let value = match value {
                    HeldValue::Word(value) => value,
                    HeldValue::Entry { index, gen } => {
                        let index = usize::from(index) % (self.total() + 2);
                        let gen = self
                            .bufs
                            .get(index)
                            .map_or(0, |b| b.gen)
                            .wrapping_add_signed(i32::from(gen));
                        Value::Raw((index as u64 + 1) << 32 | u64::from(gen))
                    }
                };
                self.scribble_word(word, value);
            }
            Scribble::Ctrl { word, value } => {
                self.scribble_word(usize::from(word) % (CTRL_LEN / 8), value)
            }
            Scribble::Raw { word, value } => self.scribble_word(usize::from(word), value),
        }
    }
}

/// The operations of [`pool_ops`] mixed with forged and replayed handles (edited from
/// genuine ones, held buffers' or published ones, or raw bytes: another pool's id, an
/// index out of range or of a buffer we hold, another generation, sender, length or
/// flags) presented with `accept` and `accept_shared`, and, on a named pool, with writes
/// of arbitrary words into the pool's state words, participant records, reference
/// tables, control block and bytes. A handle that does not name a buffer in flight from
/// its sender (or a live shared one) must be refused, with exactly the model's error
/// while the buffer's word is undamaged: in particular a buffer held through one handle
/// is never handed to a second `accept`. Whatever the damage, every call returns, with a
/// typed error or a buffer of the handle's index and length, and `available()` never
/// counts more buffers than a class has.
pub fn pool_handles(data: &[u8]) {
    let Some((setup, ops)) = decode::<Setup, HostileOp>(data, MAX_HOSTILE_OPS) else {
        return;
    };
    let (mut run, _unlink) = Run::new(&setup);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        match op {
            HostileOp::Op(op) => run.run(op),
            HostileOp::Forge(forge) => {
                run.forge(forge);
                run.check_counts();
            }
            HostileOp::Scribble(s) => run.scribble(s),
        }
    }
    run.finish();
}
