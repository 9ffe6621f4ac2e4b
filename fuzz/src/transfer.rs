//! The fuzz target of `ringport::transfer`'s wire format, shared like
//! [`targets`](crate::targets) with `tests/fuzz_replay_transfer.rs`, which includes this
//! file with `#[path]`. Self-contained for that reason: it uses only ringport's public
//! API, `arbitrary`, `bytemuck`, std, `support.rs` and the handle layout in `handle.rs`.
//!
//! [`transfer_wire`] reads its input three ways:
//! - as bytes a peer sent: `wire::decode` never panics and answers exactly as
//!   [`reference`], a field-by-field reading of the format that `transfer::wire`
//!   documents, so every refusal names the first field that breaks a rule; what it
//!   accepts re-encodes to exactly the same bytes;
//! - as a recipe: a heap pool with buffers in flight, held and replayed, heap ports in
//!   transit and perhaps a named channel's port, then messages built from genuine,
//!   edited and forged handles and tickets. Each message: `decode(encode(m)) == m`; every
//!   cut of its encoding is refused, as `counts exceed the message` exactly when the
//!   counts need more than the cut leaves and as `message ends early` otherwise; bytes
//!   after it are refused; a second handle of one buffer is `Duplicate`, a second ticket
//!   of one port is refused;
//! - end to end: each message, damaged as the recipe says, goes as a frame through a heap
//!   channel into `recv_transfer`, whose answer must be the model's (the first refusal
//!   among the buffers, then among the ports; or the message, every buffer's bytes in
//!   place and every port working), and after which the pool's free counts must be the
//!   model's, refused messages included.
//!
//! The named tickets a recipe writes go on the wire under their own names for the first
//! two readings, and under fresh names that no segment has for the third. A damaged frame
//! that names any other segment is replaced by its undamaged self, so the only segment a
//! run ever opens is the one channel it made.

use std::time::Duration;

use arbitrary::Arbitrary;

use crate::handle::Fields;
use crate::support::{decode as read_recipe, own_token, payload, unique_name, Step, Unlink};
use ringport::pool::{
    Buffer, BufferHandle, BufferPool, BufferRecvError, LoanError, PoolOptions, TransferError,
};
use ringport::transfer::wire::{
    decode, encode, encoded_len, EndPosition, PortTicket, WireMessage, HEADER_LEN, MAX_NAME_LEN,
    VERSION,
};
use ringport::transfer::Transfer;
use ringport::{MessageChannel, MessagePort, RecvError};

/// Ops beyond these are ignored: each message is checked at every cut of its encoding.
const MAX_OPS: usize = 16;
/// A message's parts beyond these are ignored.
const MAX_DATA: usize = 300;
const MAX_BUFFERS: usize = 8;
const MAX_PORTS: usize = 4;
/// Heap ports in transit at once.
const MAX_PARKED: usize = 4;
/// Bytes a damage may append.
const MAX_EXTEND: usize = 64;
/// The pool's two classes; lengths to loan go up to the larger.
const SIZES: [usize; 2] = [64, 256];
/// Participant records of both pools: a handle's sender must lie in `1..=PROCESSES`.
const PROCESSES: u32 = 4;
/// Buffers of the second pool, all of [`SIZES`]`[0]` bytes, none ever loaned.
const OTHER_COUNT: usize = 2;
/// Ring bytes each way of the named channel; a ticket's positions are checked against it.
const NAMED_CAPACITY: u64 = 4096;
/// Ring bytes each way of the channel that carries the messages: frames up to 8 KiB,
/// four times the longest message a recipe makes.
const CARRIER_CAPACITY: usize = 16 * 1024;
/// Bounds a post that the ring's room should make immediate.
const HANG_GUARD: Duration = Duration::from_secs(10);

const ENDS_EARLY: TransferError = TransferError::Malformed("message ends early");
const COUNTS: TransferError = TransferError::Malformed("counts exceed the message");
const TRAILING: TransferError = TransferError::Malformed("bytes after the last ticket");
const TWICE: TransferError = TransferError::Malformed("one port transferred twice");

// ---------------------------------------------------------------------------------------
// Reading bytes a peer sent
// ---------------------------------------------------------------------------------------

/// The format of `transfer::wire`, read field by field in the documented order; the first
/// field that breaks a rule names the refusal. A ticket's tag is read alone, and a named
/// ticket's side, owner and name length together before they are checked.
pub fn reference(bytes: &[u8]) -> Result<WireMessage, TransferError> {
    let mut f = FieldReader { bytes, at: 0 };
    if f.int(4)? != u64::from(u32::from_le_bytes(*b"RPTX")) {
        return Err(TransferError::Malformed("not a transfer message"));
    }
    if f.int(1)? != u64::from(VERSION) {
        return Err(TransferError::Malformed("unknown version"));
    }
    if f.int(1)? != 0 {
        return Err(TransferError::Malformed("unknown flags"));
    }
    let n_buffers = f.int(2)? as usize;
    let n_ports = f.int(2)? as usize;
    f.zeros(2)?;
    let data_len = f.int(4)? as usize;
    let data = f.take(data_len)?.to_vec();
    f.align()?;
    // The smallest ticket is 24 bytes: counts that cannot fit are refused up front.
    if n_buffers * 32 + n_ports * 24 > bytes.len() - f.at {
        return Err(COUNTS);
    }
    let mut buffers: Vec<BufferHandle> = Vec::new();
    for _ in 0..n_buffers {
        let h: BufferHandle = bytemuck::pod_read_unaligned(f.take(32)?);
        if buffers
            .iter()
            .any(|b| (b.pool_id(), b.index()) == (h.pool_id(), h.index()))
        {
            return Err(TransferError::Duplicate { index: h.index() });
        }
        buffers.push(h);
    }
    let mut ports = Vec::new();
    for _ in 0..n_ports {
        let ticket = match f.int(1)? {
            1 => {
                f.zeros(7)?;
                PortTicket::InProcess {
                    process: f.int(8)?,
                    key: f.int(8)?,
                }
            }
            2 => {
                let head = f.take(3)?;
                let (side, owner, name_len) = (head[0], head[1], usize::from(head[2]));
                if side != 1 && side != 2 {
                    return Err(TransferError::Malformed("port side is neither 1 nor 2"));
                }
                if owner > 1 {
                    return Err(TransferError::Malformed("port owner flag is not 0 or 1"));
                }
                if !(1..=MAX_NAME_LEN).contains(&name_len) {
                    return Err(TransferError::Malformed("port name length out of range"));
                }
                f.zeros(4)?;
                let (pos, count, seq) = (f.int(8)?, f.int(8)?, f.int(4)? as u32);
                let send = EndPosition { pos, count, seq };
                let (seq, pos, count) = (f.int(4)? as u32, f.int(8)?, f.int(8)?);
                let recv = EndPosition { pos, count, seq };
                let name = std::str::from_utf8(f.take(name_len)?)
                    .map_err(|_| TransferError::Malformed("port name is not UTF-8"))?
                    .to_owned();
                f.align()?;
                PortTicket::Named {
                    name,
                    side,
                    owner: owner == 1,
                    send,
                    recv,
                }
            }
            _ => return Err(TransferError::Malformed("unknown port ticket tag")),
        };
        if ports.iter().any(|p| same_port(p, &ticket)) {
            return Err(TWICE);
        }
        ports.push(ticket);
    }
    if f.at != bytes.len() {
        return Err(TRAILING);
    }
    Ok(WireMessage {
        data,
        buffers,
        ports,
    })
}

struct FieldReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> FieldReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TransferError> {
        let field = self.bytes.get(self.at..self.at + n).ok_or(ENDS_EARLY)?;
        self.at += n;
        Ok(field)
    }

    /// A little-endian unsigned integer of `n` (at most 8) bytes.
    fn int(&mut self, n: usize) -> Result<u64, TransferError> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0, |v, &b| (v << 8) | u64::from(b)))
    }

    fn zeros(&mut self, n: usize) -> Result<(), TransferError> {
        if self.take(n)?.iter().any(|&b| b != 0) {
            return Err(TransferError::Malformed("padding is not zero"));
        }
        Ok(())
    }

    fn align(&mut self) -> Result<(), TransferError> {
        self.zeros(self.at.next_multiple_of(8) - self.at)
    }
}

/// One port, however its ticket's other fields differ: a heap port by its process and
/// key, a named one by its channel and side.
fn same_port(a: &PortTicket, b: &PortTicket) -> bool {
    match (a, b) {
        (PortTicket::InProcess { process, key }, PortTicket::InProcess { process: p, key: k }) => {
            (process, key) == (p, k)
        }
        (
            PortTicket::Named { name, side, .. },
            PortTicket::Named {
                name: n, side: s, ..
            },
        ) => (name, side) == (n, s),
        _ => false,
    }
}

/// `bytes` as a peer's frame.
fn check_decode(bytes: &[u8]) {
    let got = decode(bytes);
    assert_eq!(got, reference(bytes), "decoding {bytes:02x?}");
    if let Ok(m) = got {
        assert_eq!(encoded_len(&m), bytes.len(), "{m:?}");
        assert_eq!(encode(&m), bytes, "the encoding is not canonical for {m:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The recipe
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct Setup {
    /// Buffers of 64 bytes (1 to 4) and of 256 bytes (1 to 3).
    counts: [u8; 2],
    /// `recv_transfer` gets the second pool too, first in its list.
    two_pools: bool,
    /// A named channel, one of whose ports is in transit.
    named: Option<NamedSetup>,
}

#[derive(Arbitrary, Debug)]
struct NamedSetup {
    /// The creator's port travels, and the name with it, rather than the opener's.
    creator_moves: bool,
    /// Messages (0 to 3) the peer queues for the port before it travels.
    queued: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Loans `len % 257` bytes, fills the whole buffer, and sends it.
    Loan {
        len: u16,
        then: Then,
    },
    /// Drops a held buffer: its handle becomes a replayed one.
    Return {
        k: u8,
    },
    /// Puts a heap port in transit, keeping its peer.
    Park,
    Message(Box<Recipe>),
}

/// What becomes of a loan once it is sent.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Then {
    /// Left in flight.
    Send,
    /// Taken back, and held.
    Hold,
    /// Taken back and dropped: its handle is stale.
    Replay,
}

#[derive(Arbitrary, Debug)]
struct Recipe {
    data: Vec<u8>,
    /// Specs naming nothing (no such buffer yet) are skipped, and so are handles of a
    /// buffer already in the message: the message is valid as built.
    buffers: Vec<HandleSpec>,
    ports: Vec<PortSpec>,
    /// A second handle of one buffer, for the duplicate check.
    twin_buffer: Twin,
    /// A second ticket of one port.
    twin_port: Twin,
    /// Bytes to append to the encoding: refused as trailing.
    extra: Vec<u8>,
    /// Done to the frame that goes through `recv_transfer` (at most 4).
    damage: Vec<Damage>,
}

/// Which item to repeat, where to insert the repeat, and how to change its other fields.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Twin {
    of: u8,
    at: u8,
    edit: u32,
}

#[derive(Arbitrary, Debug)]
enum HandleSpec {
    /// The `k`-th buffer in flight (modulo their number), one field edited.
    InFlight {
        k: u8,
        edit: Edit,
    },
    /// The handle with which a held buffer was taken back.
    Held {
        k: u8,
        edit: Edit,
    },
    /// The handle of a buffer taken back and returned since.
    Replayed {
        k: u8,
        edit: Edit,
    },
    /// Small numbers, to reach the edges of a pool of a few buffers.
    Forged {
        pool: PoolPick,
        index: u8,
        gen: u8,
        len: u16,
        sender: u8,
        flags: u8,
    },
    Raw([u8; 32]),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Edit {
    None,
    Len(u16),
    Gen(u32),
    Sender(u32),
    Flags(u32),
    Index(u8),
    Pool(PoolPick),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum PoolPick {
    Ours,
    Other,
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum PortSpec {
    /// The ticket of the `k`-th heap port in transit.
    Parked {
        k: u8,
        edit: KeyEdit,
    },
    InProcess {
        mine: bool,
        process: u64,
        key: u64,
    },
    /// The ticket of the named channel's travelling port, kept after it is taken.
    Genuine {
        edit: NamedEdit,
    },
    /// A named ticket of the recipe's own: its name goes on the wire in the recipe checks
    /// (as UTF-8, lossily), and is replaced by a fresh name end to end.
    Named {
        name: Vec<u8>,
        side: bool,
        owner: bool,
        send: Pos,
        recv: Pos,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum KeyEdit {
    None,
    Process(u64),
    Key(u64),
    /// The key plus a small number: perhaps another port's.
    Near(i8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum NamedEdit {
    None,
    Side,
    Owner,
    SendSeq(u32),
    RecvSeq(u32),
    /// Moves the position on by 8 bytes this many times, as a consistent pair.
    SendAhead(u16),
    RecvAhead(u16),
    Send(Pos),
    Recv(Pos),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Pos {
    pos: u64,
    count: u64,
    seq: u32,
}

impl From<Pos> for EndPosition {
    fn from(p: Pos) -> EndPosition {
        EndPosition {
            pos: p.pos,
            count: p.count,
            seq: p.seq,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Damage {
    Flip {
        at: u16,
        xor: u8,
    },
    /// Writes an 8-byte-aligned word: counts, lengths, a handle's or ticket's fields.
    Word {
        at: u16,
        value: u64,
    },
    Cut(u16),
    Extend(Vec<u8>),
}

// ---------------------------------------------------------------------------------------
// The encoding of a recipe's message
// ---------------------------------------------------------------------------------------

/// The message `m` and its encoding, cut, extended and with an item repeated.
fn check_encoding(m: &WireMessage, r: &Recipe) {
    let bytes = encode(m);
    assert_eq!(bytes.len(), encoded_len(m), "{m:?}");
    assert_eq!(decode(&bytes).as_ref(), Ok(m));
    let body = HEADER_LEN + m.data.len().next_multiple_of(8);
    let counts = m.buffers.len() * 32 + m.ports.len() * 24;
    for cut in 0..bytes.len() {
        let want = if cut >= body && counts > cut - body {
            COUNTS
        } else {
            ENDS_EARLY
        };
        assert_eq!(decode(&bytes[..cut]), Err(want), "cut at {cut} of {m:?}");
    }
    if !r.extra.is_empty() {
        let longer = [&bytes[..], &r.extra].concat();
        assert_eq!(decode(&longer), Err(TRAILING), "{m:?}");
    }
    if let Some((of, at)) = twin_places(r.twin_buffer, m.buffers.len()) {
        let mut twin = Fields::of(&m.buffers[of]);
        twin.gen ^= r.twin_buffer.edit;
        twin.len ^= u64::from(r.twin_buffer.edit >> 8);
        let mut twice = m.clone();
        twice.buffers.insert(at, twin.handle());
        let want = TransferError::Duplicate { index: twin.index };
        assert_eq!(decode(&encode(&twice)), Err(want), "{twice:?}");
    }
    if let Some((of, at)) = twin_places(r.twin_port, m.ports.len()) {
        let mut twin = m.ports[of].clone();
        if let PortTicket::Named {
            owner, send, recv, ..
        } = &mut twin
        {
            *owner ^= r.twin_port.edit & 1 == 1;
            send.seq ^= r.twin_port.edit;
            recv.count ^= u64::from(r.twin_port.edit);
        }
        let mut twice = m.clone();
        twice.ports.insert(at, twin);
        assert_eq!(decode(&encode(&twice)), Err(TWICE), "{twice:?}");
    }
}

/// Where the item to repeat is, and where its repeat goes (after it) in a list of `n`.
fn twin_places(t: Twin, n: usize) -> Option<(usize, usize)> {
    let of = usize::from(t.of).checked_rem(n)?;
    Some((of, of + 1 + usize::from(t.at) % (n - of)))
}

/// The frame that goes through the channel: `clean`, damaged.
fn damaged(clean: &[u8], damage: &[Damage]) -> Vec<u8> {
    let mut f = clean.to_vec();
    for d in damage.iter().take(4) {
        match d {
            Damage::Flip { at, xor } if !f.is_empty() => {
                let i = usize::from(*at) % f.len();
                f[i] ^= xor;
            }
            Damage::Word { at, value } if f.len() >= 8 => {
                let i = (usize::from(*at) % (f.len() - 7)) & !7;
                f[i..i + 8].copy_from_slice(&value.to_le_bytes());
            }
            Damage::Cut(at) => f.truncate(usize::from(*at) % (f.len() + 1)),
            Damage::Extend(bytes) => f.extend(bytes.iter().take(MAX_EXTEND)),
            _ => {}
        }
    }
    f
}

/// A recipe's name as a ticket carries it: valid UTF-8 of 1 to 200 bytes.
fn text_name(bytes: &[u8]) -> String {
    let mut name = String::from_utf8_lossy(bytes).into_owned();
    let mut end = name.len().min(MAX_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    if name.is_empty() {
        name.push('-');
    }
    name
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

/// A buffer of the pool, and its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free(u32),
    /// Held by this process (owner number 1, a heap pool's only participant).
    Held(u32),
    /// In flight from this process.
    Sent(u32),
}

/// A heap port in transit, and its entangled port.
struct Parked {
    key: u64,
    peer: MessagePort,
}

/// The named channel: its travelling port's ticket, and the port that stayed.
struct Named {
    name: String,
    ticket: PortTicket,
    /// Until the ticket is taken, or its taking fails and closes its ends.
    waiting: bool,
    peer: MessagePort,
    /// What the peer queued for the travelling port, in order.
    queued: Vec<Vec<u8>>,
    /// Last, so that it unlinks the name once both ports are gone.
    _unlink: Unlink,
}

/// What to check of a port a message carried.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// Refused: nothing to check.
    Nothing,
    Parked(u64),
    /// The named channel's port; `exact` if the ticket was the genuine one (its owner
    /// flag aside), so the queued messages must arrive.
    Genuine {
        exact: bool,
    },
}

/// Whether two refusals are the same, ignoring the wording of those that explain
/// themselves in text.
fn same(a: &TransferError, b: &TransferError) -> bool {
    use TransferError::{NotTransferable, OutOfRange, Port};
    match (a, b) {
        (OutOfRange(_), OutOfRange(_))
        | (NotTransferable(_), NotTransferable(_))
        | (Port(_), Port(_)) => true,
        _ => a == b,
    }
}

fn port_refusal() -> TransferError {
    TransferError::Port(String::new())
}

struct World {
    pool: BufferPool,
    /// Never loaned from: every handle of it is refused.
    other: BufferPool,
    two_pools: bool,
    counts: [usize; 2],
    /// Each buffer's size, by index.
    sizes: Vec<usize>,
    slots: Vec<Slot>,
    /// The seed of `payload` each buffer was filled from, over its whole capacity.
    seeds: Vec<u64>,
    next_seed: u64,
    in_flight: Vec<BufferHandle>,
    held: Vec<(Buffer, BufferHandle)>,
    replayed: Vec<BufferHandle>,
    parked: Vec<Parked>,
    named: Option<Named>,
    /// This process's identity word, as heap tickets carry it.
    me: u64,
    tx: MessagePort,
    rx: MessagePort,
}

impl World {
    fn new(setup: &Setup) -> World {
        let counts = [
            1 + usize::from(setup.counts[0] % 4),
            1 + usize::from(setup.counts[1] % 3),
        ];
        let options = |classes: &[(usize, usize)]| {
            PoolOptions::with_classes(classes).processes(PROCESSES as usize)
        };
        let pool = BufferPool::new(options(&[(SIZES[0], counts[0]), (SIZES[1], counts[1])]))
            .expect("valid pool options");
        let other =
            BufferPool::new(options(&[(SIZES[0], OTHER_COUNT)])).expect("valid pool options");
        let sizes: Vec<usize> = (0..2)
            .flat_map(|c| std::iter::repeat_n(SIZES[c], counts[c]))
            .collect();
        let carrier = MessageChannel::with_capacity(CARRIER_CAPACITY);
        let mut world = World {
            pool,
            other,
            two_pools: setup.two_pools,
            counts,
            slots: vec![Slot::Free(0); sizes.len()],
            seeds: vec![0; sizes.len()],
            sizes,
            next_seed: 1,
            in_flight: Vec::new(),
            held: Vec::new(),
            replayed: Vec::new(),
            parked: Vec::new(),
            named: None,
            me: own_token(),
            tx: carrier.port1,
            rx: carrier.port2,
        };
        if let Some(n) = &setup.named {
            world.named = world.make_named(n);
        }
        world.check_counts();
        world
    }

    /// Posts a message with its transfer list, and takes its bytes back out undecoded.
    fn post_and_read(&mut self, msg: Transfer) -> WireMessage {
        self.tx
            .post_transfer(msg)
            .unwrap_or_else(|e| panic!("posting a transfer: {e}"));
        let frame = self.rx.try_recv().expect("the frame just posted").to_vec();
        decode(&frame).expect("a posted transfer decodes")
    }

    /// One named channel with a port in transit; `None` if a leftover of a crashed run
    /// holds the name.
    fn make_named(&mut self, setup: &NamedSetup) -> Option<Named> {
        let name = unique_name("port");
        let creator = MessageChannel::create(&name, NAMED_CAPACITY as usize).ok()?;
        let unlink = Unlink(name.clone());
        let opener = MessageChannel::open(&name).expect("opening a channel just made");
        let (mut peer, moving, side, owner) = if setup.creator_moves {
            (opener, creator, 1, true)
        } else {
            (creator, opener, 2, false)
        };
        let queued: Vec<Vec<u8>> = (0..u64::from(setup.queued % 4))
            .map(|i| payload(u64::MAX - i, 8 + i as usize))
            .collect();
        for q in &queued {
            peer.try_post_message(q).expect("room in a fresh ring");
        }
        let mut w = self.post_and_read(Transfer::new(Vec::new()).with_port(moving));
        assert_eq!(w.ports.len(), 1);
        let ticket = w.ports.remove(0);
        let start = EndPosition::default();
        assert_eq!(
            ticket,
            PortTicket::Named {
                name: name.clone(),
                side,
                owner,
                send: start,
                recv: start,
            }
        );
        Some(Named {
            name,
            ticket,
            waiting: true,
            peer,
            queued,
            _unlink: unlink,
        })
    }

    fn class_range(&self, class: usize) -> std::ops::Range<usize> {
        let first = if class == 0 { 0 } else { self.counts[0] };
        first..first + self.counts[class]
    }

    fn check_counts(&self) {
        let free: Vec<usize> = (0..2)
            .map(|c| {
                self.class_range(c)
                    .filter(|&i| matches!(self.slots[i], Slot::Free(_)))
                    .count()
            })
            .collect();
        assert_eq!(self.pool.available(), free, "{:?}", self.slots);
        assert_eq!(self.other.available(), vec![OTHER_COUNT]);
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Loan { len, then } => self.loan(usize::from(*len) % (SIZES[1] + 1), *then),
            Op::Return { k } => {
                if !self.held.is_empty() {
                    let (buf, h) = self.held.remove(usize::from(*k) % self.held.len());
                    drop(buf);
                    self.returned(&h);
                }
            }
            Op::Park => self.park(),
            Op::Message(r) => self.message(r),
        }
        self.check_counts();
    }

    /// A buffer that this process held went back to the pool.
    fn returned(&mut self, h: &BufferHandle) {
        let f = Fields::of(h);
        self.slots[f.index as usize] = Slot::Free(f.gen.wrapping_add(1));
        self.replayed.push(*h);
    }

    fn loan(&mut self, len: usize, then: Then) {
        let fits = SIZES.iter().position(|&s| s >= len).expect("len fits");
        let class = (fits..2).find(|&c| {
            self.class_range(c)
                .any(|i| matches!(self.slots[i], Slot::Free(_)))
        });
        let mut buf = match (self.pool.try_loan(len), class) {
            (Err(e), None) => {
                assert_eq!(e, LoanError::Empty { len });
                return;
            }
            (Ok(buf), Some(c)) => {
                assert!(self.class_range(c).contains(&(buf.index() as usize)));
                buf
            }
            (got, want) => panic!("loan of {len}: {got:?}, model: a buffer of class {want:?}"),
        };
        let index = buf.index() as usize;
        let Slot::Free(gen) = self.slots[index] else {
            panic!("loaned buffer {index}, which is {:?}", self.slots[index]);
        };
        let capacity = buf.capacity();
        assert_eq!((buf.len(), capacity), (len, self.sizes[index]));
        self.seeds[index] = self.next_seed;
        self.next_seed += 1;
        buf.set_len(capacity);
        buf.copy_from_slice(&payload(self.seeds[index], capacity));
        buf.set_len(len);
        let h = buf.into_handle();
        let want = Fields {
            pool: self.pool.id(),
            len: len as u64,
            index: index as u32,
            gen,
            sender: 1,
            flags: 0,
        };
        assert_eq!(Fields::of(&h), want);
        match then {
            Then::Send => {
                self.slots[index] = Slot::Sent(gen);
                self.in_flight.push(h);
            }
            Then::Hold => {
                let back = self.pool.accept(&h).expect("the sender takes its own back");
                self.check_bytes(&back, &h);
                self.slots[index] = Slot::Held(gen);
                self.held.push((back, h));
            }
            Then::Replay => {
                drop(self.pool.accept(&h).expect("the sender takes its own back"));
                self.returned(&h);
            }
        }
    }

    fn park(&mut self) {
        if self.parked.len() == MAX_PARKED {
            return;
        }
        let ch = MessageChannel::with_capacity(256);
        let mut w = self.post_and_read(Transfer::new(Vec::new()).with_port(ch.port2));
        assert!(w.data.is_empty() && w.buffers.is_empty() && w.ports.len() == 1);
        let PortTicket::InProcess { process, key } = w.ports.remove(0) else {
            panic!("a heap port travels as an in-process ticket");
        };
        assert_eq!(process, self.me);
        assert!(self.parked.iter().all(|p| p.key != key), "key {key} twice");
        self.parked.push(Parked {
            key,
            peer: ch.port1,
        });
    }

    /// Taken buffers hold, in place, what their loan wrote.
    fn check_bytes(&self, buf: &Buffer, h: &BufferHandle) {
        let index = h.index() as usize;
        assert_eq!(buf.index(), h.index());
        assert_eq!(buf.len() as u64, h.len());
        assert_eq!(buf.capacity(), self.sizes[index]);
        let want = payload(self.seeds[index], self.sizes[index]);
        assert!(
            buf[..] == want[..buf.len()],
            "buffer {index}'s bytes changed"
        );
    }

    fn pool_id(&self, p: PoolPick) -> u64 {
        match p {
            PoolPick::Ours => self.pool.id(),
            PoolPick::Other => self.other.id(),
            PoolPick::Raw(id) => id,
        }
    }

    fn handle(&self, spec: &HandleSpec) -> Option<BufferHandle> {
        let pick = |list: &[BufferHandle], k: u8| -> Option<BufferHandle> {
            list.get(usize::from(k).checked_rem(list.len())?).copied()
        };
        let (base, edit) = match spec {
            HandleSpec::InFlight { k, edit } => (pick(&self.in_flight, *k)?, *edit),
            HandleSpec::Replayed { k, edit } => (pick(&self.replayed, *k)?, *edit),
            HandleSpec::Held { k, edit } => {
                let held: Vec<BufferHandle> = self.held.iter().map(|(_, h)| *h).collect();
                (pick(&held, *k)?, *edit)
            }
            HandleSpec::Forged {
                pool,
                index,
                gen,
                len,
                sender,
                flags,
            } => {
                let f = Fields {
                    pool: self.pool_id(*pool),
                    len: u64::from(*len),
                    index: u32::from(*index),
                    gen: u32::from(*gen),
                    sender: u32::from(*sender),
                    flags: u32::from(*flags),
                };
                return Some(f.handle());
            }
            HandleSpec::Raw(bytes) => return Some(bytemuck::pod_read_unaligned(bytes)),
        };
        let mut f = Fields::of(&base);
        match edit {
            Edit::None => {}
            Edit::Len(len) => f.len = u64::from(len),
            Edit::Gen(gen) => f.gen = gen,
            Edit::Sender(sender) => f.sender = sender,
            Edit::Flags(flags) => f.flags = flags,
            Edit::Index(index) => f.index = u32::from(index),
            Edit::Pool(p) => f.pool = self.pool_id(p),
        }
        Some(f.handle())
    }

    /// The ticket `spec` names; a recipe's own named ticket under a fresh name (recorded
    /// in `absent`) when `absent` is given.
    fn ticket(&self, spec: &PortSpec, absent: Option<&mut Vec<String>>) -> Option<PortTicket> {
        match spec {
            PortSpec::Parked { k, edit } => {
                let p = self
                    .parked
                    .get(usize::from(*k).checked_rem(self.parked.len())?)?;
                let (mut process, mut key) = (self.me, p.key);
                match *edit {
                    KeyEdit::None => {}
                    KeyEdit::Process(other) => process = other,
                    KeyEdit::Key(other) => key = other,
                    KeyEdit::Near(d) => key = key.wrapping_add_signed(i64::from(d)),
                }
                Some(PortTicket::InProcess { process, key })
            }
            PortSpec::InProcess { mine, process, key } => Some(PortTicket::InProcess {
                process: if *mine { self.me } else { *process },
                key: *key,
            }),
            PortSpec::Genuine { edit } => {
                let mut t = self.named.as_ref()?.ticket.clone();
                let PortTicket::Named {
                    side,
                    owner,
                    send,
                    recv,
                    ..
                } = &mut t
                else {
                    unreachable!("the named channel's ticket is named");
                };
                let ahead = |p: &mut EndPosition, n: u16| {
                    p.count += 8 * u64::from(n);
                    p.pos = p.count % NAMED_CAPACITY;
                };
                match *edit {
                    NamedEdit::None => {}
                    NamedEdit::Side => *side = 3 - *side,
                    NamedEdit::Owner => *owner = !*owner,
                    NamedEdit::SendSeq(seq) => send.seq = seq,
                    NamedEdit::RecvSeq(seq) => recv.seq = seq,
                    NamedEdit::SendAhead(n) => ahead(send, n),
                    NamedEdit::RecvAhead(n) => ahead(recv, n),
                    NamedEdit::Send(p) => *send = p.into(),
                    NamedEdit::Recv(p) => *recv = p.into(),
                }
                Some(t)
            }
            PortSpec::Named {
                name,
                side,
                owner,
                send,
                recv,
            } => {
                let name = match absent {
                    Some(names) => {
                        let fresh = unique_name("absent");
                        names.push(fresh.clone());
                        fresh
                    }
                    None => text_name(name),
                };
                Some(PortTicket::Named {
                    name,
                    side: 1 + u8::from(*side),
                    owner: *owner,
                    send: (*send).into(),
                    recv: (*recv).into(),
                })
            }
        }
    }

    /// The message a recipe describes: its names as written (`absent` is `None`) or fresh.
    fn build(&self, r: &Recipe, mut absent: Option<&mut Vec<String>>) -> WireMessage {
        let mut m = WireMessage {
            data: r.data.iter().take(MAX_DATA).copied().collect(),
            ..WireMessage::default()
        };
        for spec in r.buffers.iter().take(MAX_BUFFERS) {
            let Some(h) = self.handle(spec) else { continue };
            let key = (h.pool_id(), h.index());
            if m.buffers.iter().all(|b| (b.pool_id(), b.index()) != key) {
                m.buffers.push(h);
            }
        }
        for spec in r.ports.iter().take(MAX_PORTS) {
            let Some(t) = self.ticket(spec, absent.as_deref_mut()) else {
                continue;
            };
            if !m.ports.iter().any(|p| same_port(p, &t)) {
                m.ports.push(t);
            }
        }
        m
    }

    /// Whether every named ticket of `w` names a segment this run made, or one that no
    /// segment has.
    fn opens_only_ours(&self, w: &WireMessage, absent: &[String]) -> bool {
        w.ports.iter().all(|t| match t {
            PortTicket::Named { name, .. } => {
                absent.contains(name) || self.named.as_ref().is_some_and(|n| n.name == *name)
            }
            PortTicket::InProcess { .. } => true,
        })
    }

    fn message(&mut self, r: &Recipe) {
        check_encoding(&self.build(r, None), r);
        let mut absent = Vec::new();
        let m = self.build(r, Some(&mut absent));
        let clean = encode(&m);
        let mut frame = damaged(&clean, &r.damage);
        check_decode(&frame);
        let mut decoded = decode(&frame);
        if decoded
            .as_ref()
            .is_ok_and(|w| !self.opens_only_ours(w, &absent))
        {
            frame = clean;
            decoded = Ok(m);
        }
        self.tx
            .post_message_timeout(&frame, HANG_GUARD)
            .expect("a received frame makes room for the next");
        let pools = if self.two_pools {
            vec![self.other.clone(), self.pool.clone()]
        } else {
            vec![self.pool.clone()]
        };
        let got = self.rx.recv_transfer(&pools);
        match decoded {
            Err(e) => assert_eq!(got.unwrap_err(), BufferRecvError::Transfer(e)),
            Ok(w) => self.settle(&w, got),
        }
    }

    /// What taking `h` must give.
    fn expect_buffer(&self, h: &BufferHandle) -> Result<(), TransferError> {
        let f = Fields::of(h);
        let ours = f.pool == self.pool.id();
        let listed = ours || (self.two_pools && f.pool == self.other.id());
        if !listed {
            let expected = if self.two_pools {
                self.other.id()
            } else {
                self.pool.id()
            };
            return Err(TransferError::ForeignPool {
                expected,
                found: f.pool,
            });
        }
        let index = f.index as usize;
        let (slot, size) = match ours {
            true if index < self.slots.len() => (self.slots[index], self.sizes[index]),
            false if index < OTHER_COUNT => (Slot::Free(0), SIZES[0]),
            _ => return Err(TransferError::OutOfRange("")),
        };
        if f.sender == 0 || f.sender > PROCESSES || f.len > size as u64 {
            return Err(TransferError::OutOfRange(""));
        }
        let index = f.index;
        if f.flags != 0 {
            return Err(TransferError::WrongKind { index });
        }
        match slot {
            Slot::Free(_) => Err(TransferError::Stale { index }),
            Slot::Held(gen) | Slot::Sent(gen) if gen != f.gen => {
                Err(TransferError::Stale { index })
            }
            Slot::Held(_) => Err(TransferError::AlreadyReceived { index }),
            Slot::Sent(_) if f.sender != 1 => Err(TransferError::NotOwned { index }),
            Slot::Sent(_) => Ok(()),
        }
    }

    /// What taking `t` must give, given the heap ports this message already took
    /// (`taken`) and whether the named port still waits for a holder.
    fn expect_port(
        &self,
        t: &PortTicket,
        taken: &mut Vec<u64>,
        named_waiting: &mut bool,
    ) -> (Result<(), TransferError>, Check) {
        match t {
            PortTicket::InProcess { process, key } => {
                if *process != self.me {
                    (Err(TransferError::NotTransferable("")), Check::Nothing)
                } else if self.parked.iter().any(|p| p.key == *key) && !taken.contains(key) {
                    taken.push(*key);
                    (Ok(()), Check::Parked(*key))
                } else {
                    (Err(port_refusal()), Check::Nothing)
                }
            }
            PortTicket::Named {
                name,
                side,
                send,
                recv,
                ..
            } => {
                let genuine = self.named.as_ref().filter(|n| n.name == *name);
                let Some(PortTicket::Named {
                    side: g_side,
                    send: g_send,
                    recv: g_recv,
                    ..
                }) = genuine.map(|n| &n.ticket)
                else {
                    return (Err(port_refusal()), Check::Nothing);
                };
                // The other side's ends are held by the peer: a failed claim changes
                // nothing. Taking this side, failed or not, uses the ticket up.
                if !*named_waiting || side != g_side {
                    return (Err(port_refusal()), Check::Nothing);
                }
                *named_waiting = false;
                // Nothing was ever sent from the travelling port nor received by it, so
                // both rings' consumers have released nothing: a sending position may lie
                // up to a ring ahead, a receiving one must be the start.
                let fits = |p: &EndPosition| p.pos % 8 == 0 && p.pos == p.count % NAMED_CAPACITY;
                if fits(send) && send.count <= NAMED_CAPACITY && fits(recv) && recv.count == 0 {
                    let exact = (send, recv) == (g_send, g_recv);
                    (Ok(()), Check::Genuine { exact })
                } else {
                    (Err(port_refusal()), Check::Nothing)
                }
            }
        }
    }

    /// Checks what `recv_transfer` made of the decoded message `w`, and moves the model on.
    fn settle(&mut self, w: &WireMessage, got: Result<Transfer, BufferRecvError>) {
        let buffers: Vec<_> = w.buffers.iter().map(|h| self.expect_buffer(h)).collect();
        let (mut taken, mut named_waiting) =
            (Vec::new(), self.named.as_ref().is_some_and(|n| n.waiting));
        let ports: Vec<_> = w
            .ports
            .iter()
            .map(|t| self.expect_port(t, &mut taken, &mut named_waiting))
            .collect();
        let refusal = buffers
            .iter()
            .chain(ports.iter().map(|(r, _)| r))
            .find_map(|r| r.clone().err());
        match (got, &refusal) {
            (Ok(t), None) => {
                assert_eq!(t.data(), &w.data[..]);
                let (_, got_buffers, got_ports) = t.into_parts();
                assert_eq!(got_buffers.len(), w.buffers.len());
                for (buf, h) in got_buffers.iter().zip(&w.buffers) {
                    self.check_bytes(buf, h);
                }
                assert_eq!(got_ports.len(), w.ports.len());
                for (port, (_, check)) in got_ports.into_iter().zip(&ports) {
                    self.exercise(port, *check);
                }
            }
            (Err(BufferRecvError::Transfer(e)), Some(want)) if same(&e, want) => {
                for (_, check) in &ports {
                    self.check_closed(*check);
                }
            }
            (got, _) => panic!("{w:?}: got {got:?}, model: {refusal:?}"),
        }
        for (h, r) in w.buffers.iter().zip(&buffers) {
            if r.is_ok() {
                let i = self
                    .in_flight
                    .iter()
                    .position(|f| f.index() == h.index())
                    .expect("a buffer taken was in flight");
                let sent = self.in_flight.remove(i);
                self.returned(&sent);
            }
        }
        self.parked.retain(|p| !taken.contains(&p.key));
        if let Some(n) = &mut self.named {
            n.waiting = named_waiting;
        }
    }

    /// A port a message delivered works: through it, its peer hears it.
    fn exercise(&mut self, mut port: MessagePort, check: Check) {
        match check {
            Check::Nothing => unreachable!("a refused port was delivered"),
            Check::Parked(key) => {
                let p = self
                    .parked
                    .iter_mut()
                    .find(|p| p.key == key)
                    .expect("parked");
                port.try_post_message(b"ping").expect("room to the peer");
                assert_eq!(&*p.peer.try_recv().expect("the ping"), b"ping");
            }
            Check::Genuine { exact: true } => {
                let n = self.named.as_mut().expect("the named channel");
                for q in &n.queued {
                    assert_eq!(&*port.try_recv().expect("a queued message"), &q[..]);
                }
                assert_eq!(port.try_recv().err(), Some(RecvError::Empty));
                port.try_post_message(b"back").expect("room to the peer");
                assert_eq!(&*n.peer.try_recv().expect("the answer"), b"back");
            }
            Check::Genuine { exact: false } => {
                // Its sequence numbers or sending position were edited: whatever comes
                // of its traffic must come as a typed answer.
                let n = self.named.as_mut().expect("the named channel");
                for _ in 0..=n.queued.len() {
                    let _ = port.try_recv();
                }
                let _ = port.try_post_message(b"poke");
                let _ = n.peer.try_recv();
            }
        }
    }

    /// A port taken from a refused message was closed again.
    fn check_closed(&mut self, check: Check) {
        let peer = match check {
            Check::Nothing | Check::Genuine { exact: false } => return,
            Check::Parked(key) => {
                &mut self
                    .parked
                    .iter_mut()
                    .find(|p| p.key == key)
                    .expect("parked")
                    .peer
            }
            Check::Genuine { exact: true } => &mut self.named.as_mut().expect("named").peer,
        };
        assert_eq!(peer.try_recv().err(), Some(RecvError::Disconnected));
    }

    /// Takes back everything still in flight or parked; the pool must be whole.
    fn finish(mut self) {
        for h in std::mem::take(&mut self.in_flight) {
            let back = self.pool.accept(&h).expect("a buffer still in flight");
            self.check_bytes(&back, &h);
            drop(back);
            self.returned(&h);
        }
        for (buf, h) in std::mem::take(&mut self.held) {
            drop(buf);
            self.returned(&h);
        }
        if !self.parked.is_empty() {
            let ports = self
                .parked
                .iter()
                .map(|p| PortTicket::InProcess {
                    process: self.me,
                    key: p.key,
                })
                .collect();
            let m = WireMessage {
                ports,
                ..WireMessage::default()
            };
            self.tx
                .post_message_timeout(&encode(&m), HANG_GUARD)
                .expect("room for the last message");
            let t = self.rx.recv_transfer(&[]).expect("every parked port");
            assert_eq!(t.ports().len(), self.parked.len());
        }
        self.check_counts();
        assert_eq!(self.pool.available(), self.counts.to_vec());
    }
}

/// The target: see the module's documentation.
pub fn transfer_wire(data: &[u8]) {
    check_decode(data);
    let Some((setup, ops)) = read_recipe::<Setup, Op>(data, MAX_OPS) else {
        return;
    };
    let mut world = World::new(&setup);
    for (i, op) in ops.iter().enumerate() {
        let _step = Step(i, op);
        world.run(op);
    }
    world.finish();
}
