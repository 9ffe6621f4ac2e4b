//! The bytes of a transfer message: plain data, buffer handles and port tickets in one
//! frame. Another process writes these bytes, so [`decode`] validates every field and
//! refuses anything [`encode`] would not have written.
//!
//! ```text
//! 0   magic "RPTX"  u32
//! 4   version       u8 (1)
//! 5   flags         u8 (0)
//! 6   buffers       u16    number of 32-byte buffer handles
//! 8   ports         u16    number of port tickets
//! 10  reserved      u16 (0)
//! 12  data length   u32
//! 16  data, zero-padded to 8 bytes
//!     buffer handles, 32 bytes each
//!     port tickets, each a multiple of 8 bytes:
//!       in-process: tag 1, 7 zero bytes, process word u64, key u64
//!       named:      tag 2, side u8 (1 or 2), owner u8 (0 or 1), name length u8 (1..=200),
//!                   4 zero bytes, sender end (pos u64, count u64, seq u32), receiver end
//!                   (seq u32, pos u64, count u64), name zero-padded to 8 bytes
//! ```
//!
//! All integers are little-endian. Nothing may follow the last ticket.
//!
//! # Example
//! ```
//! use ringport::transfer::wire::{decode, encode, WireMessage};
//! let m = WireMessage { data: b"hi".to_vec(), buffers: vec![], ports: vec![] };
//! let bytes = encode(&m);
//! assert_eq!(decode(&bytes).unwrap(), m);
//! assert!(decode(&bytes[..bytes.len() - 1]).is_err());
//! ```

use crate::pool::{BufferHandle, TransferError};

const MAGIC: u32 = u32::from_le_bytes(*b"RPTX");
/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Bytes before the data.
pub const HEADER_LEN: usize = 16;
const HANDLE_LEN: usize = std::mem::size_of::<BufferHandle>();
const IN_PROCESS: u8 = 1;
const NAMED: u8 = 2;
const IN_PROCESS_LEN: usize = 24;
const NAMED_FIXED_LEN: usize = 48;
/// Longest segment name a ticket carries (the segment module's limit).
pub const MAX_NAME_LEN: usize = 200;

/// Where one end of a ring stopped, as a transferred port carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndPosition {
    /// Byte position in the ring's data area.
    pub pos: u64,
    /// Bytes sent (by a sending end) or received (by a receiving end) since creation.
    pub count: u64,
    /// Sequence number of the next frame.
    pub seq: u32,
}

/// A port in transit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortTicket {
    /// A heap port, parked in its process until taken: only that process can take it.
    InProcess {
        /// The sending process's identity word.
        process: u64,
        /// Its key among the process's parked ports.
        key: u64,
    },
    /// A port of a named channel, handed over in the segment.
    Named {
        /// The channel's segment name.
        name: String,
        /// Which of the channel's two ports: 1 (the creator's) or 2.
        side: u8,
        /// Whether the taker inherits the name (and unlinks it when done).
        owner: bool,
        /// Where the port's sending end stopped.
        send: EndPosition,
        /// Where its receiving end stopped.
        recv: EndPosition,
    },
}

/// A transfer message as it travels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireMessage {
    /// The plain data.
    pub data: Vec<u8>,
    /// Handles of the buffers transferred.
    pub buffers: Vec<BufferHandle>,
    /// Tickets of the ports transferred.
    pub ports: Vec<PortTicket>,
}

fn ticket_len(t: &PortTicket) -> usize {
    match t {
        PortTicket::InProcess { .. } => IN_PROCESS_LEN,
        PortTicket::Named { name, .. } => NAMED_FIXED_LEN + name.len().next_multiple_of(8),
    }
}

/// How many bytes [`encode`] writes for `m`.
///
/// # Example
/// ```
/// use ringport::transfer::wire::{encoded_len, WireMessage};
/// assert_eq!(encoded_len(&WireMessage { data: vec![1], ..Default::default() }), 24);
/// ```
pub fn encoded_len(m: &WireMessage) -> usize {
    HEADER_LEN
        + m.data.len().next_multiple_of(8)
        + m.buffers.len() * HANDLE_LEN
        + m.ports.iter().map(ticket_len).sum::<usize>()
}

/// Writes `m` in the format above.
///
/// # Panics
/// If `m` has more than 65535 buffers or ports, data over 4 GiB, or a ticket whose name is
/// empty or longer than [`MAX_NAME_LEN`]: none of which a message built by this crate has.
///
/// # Example
/// ```
/// use ringport::transfer::wire::{encode, WireMessage};
/// assert_eq!(&encode(&WireMessage::default())[..4], b"RPTX");
/// ```
pub fn encode(m: &WireMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(m));
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(
        &u16::try_from(m.buffers.len())
            .expect("buffers")
            .to_le_bytes(),
    );
    out.extend_from_slice(&u16::try_from(m.ports.len()).expect("ports").to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&u32::try_from(m.data.len()).expect("data").to_le_bytes());
    out.extend_from_slice(&m.data);
    out.resize(out.len().next_multiple_of(8), 0);
    for h in &m.buffers {
        out.extend_from_slice(bytemuck::bytes_of(h));
    }
    for t in &m.ports {
        match t {
            PortTicket::InProcess { process, key } => {
                out.extend_from_slice(&[IN_PROCESS, 0, 0, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&process.to_le_bytes());
                out.extend_from_slice(&key.to_le_bytes());
            }
            PortTicket::Named {
                name,
                side,
                owner,
                send,
                recv,
            } => {
                assert!(
                    !name.is_empty() && name.len() <= MAX_NAME_LEN,
                    "name length"
                );
                out.extend_from_slice(&[NAMED, *side, u8::from(*owner), name.len() as u8]);
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&send.pos.to_le_bytes());
                out.extend_from_slice(&send.count.to_le_bytes());
                out.extend_from_slice(&send.seq.to_le_bytes());
                out.extend_from_slice(&recv.seq.to_le_bytes());
                out.extend_from_slice(&recv.pos.to_le_bytes());
                out.extend_from_slice(&recv.count.to_le_bytes());
                out.extend_from_slice(name.as_bytes());
                out.resize(out.len().next_multiple_of(8), 0);
            }
        }
    }
    debug_assert_eq!(out.len(), encoded_len(m));
    out
}

/// Reads bytes a peer sent.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TransferError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(TransferError::Malformed("message ends early"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, TransferError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, TransferError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, TransferError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, TransferError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// Skips padding, which must be zero.
    fn zeros(&mut self, n: usize) -> Result<(), TransferError> {
        if self.take(n)?.iter().any(|&b| b != 0) {
            return Err(TransferError::Malformed("padding is not zero"));
        }
        Ok(())
    }

    fn pad_to_8(&mut self) -> Result<(), TransferError> {
        self.zeros(self.at.next_multiple_of(8) - self.at)
    }
}

/// Reads a transfer message a peer wrote: the format above, exactly.
///
/// # Errors
/// [`TransferError::Malformed`] for anything [`encode`] would not have written (bad
/// magic, version, flags, padding, lengths, tags, sides, names; trailing bytes; one port
/// twice), and [`TransferError::Duplicate`] for one buffer twice. A handle's fields are
/// checked against its pool when it is accepted, not here.
///
/// # Example
/// ```
/// use ringport::pool::TransferError;
/// use ringport::transfer::wire::decode;
/// assert_eq!(decode(b"no"), Err(TransferError::Malformed("message ends early")));
/// assert_eq!(decode(b"nope"), Err(TransferError::Malformed("not a transfer message")));
/// ```
pub fn decode(bytes: &[u8]) -> Result<WireMessage, TransferError> {
    let mut r = Reader { bytes, at: 0 };
    if r.u32()? != MAGIC {
        return Err(TransferError::Malformed("not a transfer message"));
    }
    if r.u8()? != VERSION {
        return Err(TransferError::Malformed("unknown version"));
    }
    if r.u8()? != 0 {
        return Err(TransferError::Malformed("unknown flags"));
    }
    let n_buffers = r.u16()? as usize;
    let n_ports = r.u16()? as usize;
    r.zeros(2)?;
    let data_len = r.u32()? as usize;
    let data = r.take(data_len)?.to_vec();
    r.pad_to_8()?;
    // Counts are checked against what is left before anything is allocated for them.
    let left = bytes.len() - r.at;
    if n_buffers * HANDLE_LEN > left || n_ports * IN_PROCESS_LEN > left - n_buffers * HANDLE_LEN {
        return Err(TransferError::Malformed("counts exceed the message"));
    }
    let mut buffers: Vec<BufferHandle> = Vec::with_capacity(n_buffers);
    for _ in 0..n_buffers {
        let h: BufferHandle = bytemuck::pod_read_unaligned(r.take(HANDLE_LEN)?);
        if buffers
            .iter()
            .any(|b| b.pool_id() == h.pool_id() && b.index() == h.index())
        {
            return Err(TransferError::Duplicate { index: h.index() });
        }
        buffers.push(h);
    }
    let mut ports = Vec::with_capacity(n_ports);
    for _ in 0..n_ports {
        let t = match r.u8()? {
            IN_PROCESS => {
                r.zeros(7)?;
                PortTicket::InProcess {
                    process: r.u64()?,
                    key: r.u64()?,
                }
            }
            NAMED => {
                let side = r.u8()?;
                let owner = r.u8()?;
                let name_len = r.u8()? as usize;
                if side != 1 && side != 2 {
                    return Err(TransferError::Malformed("port side is neither 1 nor 2"));
                }
                if owner > 1 {
                    return Err(TransferError::Malformed("port owner flag is not 0 or 1"));
                }
                if name_len == 0 || name_len > MAX_NAME_LEN {
                    return Err(TransferError::Malformed("port name length out of range"));
                }
                r.zeros(4)?;
                let send = EndPosition {
                    pos: r.u64()?,
                    count: r.u64()?,
                    seq: r.u32()?,
                };
                let recv_seq = r.u32()?;
                let recv = EndPosition {
                    pos: r.u64()?,
                    count: r.u64()?,
                    seq: recv_seq,
                };
                let name = std::str::from_utf8(r.take(name_len)?)
                    .map_err(|_| TransferError::Malformed("port name is not UTF-8"))?
                    .to_owned();
                r.pad_to_8()?;
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
        if ports.iter().any(|p| same_port(p, &t)) {
            return Err(TransferError::Malformed("one port transferred twice"));
        }
        ports.push(t);
    }
    if r.at != bytes.len() {
        return Err(TransferError::Malformed("bytes after the last ticket"));
    }
    Ok(WireMessage {
        data,
        buffers,
        ports,
    })
}

fn same_port(a: &PortTicket, b: &PortTicket) -> bool {
    match (a, b) {
        (PortTicket::InProcess { process: p, key: k }, PortTicket::InProcess { process, key }) => {
            p == process && k == key
        }
        (
            PortTicket::Named {
                name: n, side: s, ..
            },
            PortTicket::Named { name, side, .. },
        ) => n == name && s == side,
        _ => false,
    }
}
