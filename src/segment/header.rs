//! The 128-byte header at the start of every segment.
//!
//! The header is written once, before the segment's name is published, and never changes
//! afterwards; mutable runtime state belongs in the payload. Readers still treat it as
//! untrusted: [`decode`] works on a private copy, checks every field and never panics.

use bytemuck::{Pod, Zeroable};

use super::PARAMS;
use crate::process::ProcessId;

// Every integer is stored in native byte order. The format is for processes of one
// machine, and big-endian Linux targets are rare enough not to be worth a byte swap on
// each access.
#[cfg(target_endian = "big")]
compile_error!("ringport segments are little-endian; big-endian targets are not supported");

/// `magic`: identifies a ringport segment.
pub(crate) const MAGIC: [u8; 8] = *b"RINGPORT";
/// `layout_version`: bumped on any change to this layout.
pub(crate) const LAYOUT_VERSION: u32 = 1;
/// Size of the header in bytes, which is also where the payload starts.
pub(crate) const HEADER_LEN: usize = 128;
/// Bytes covered by `checksum`: everything before it.
const CHECKSUM_OFFSET: usize = std::mem::offset_of!(RawHeader, checksum);

/// The header as it lies in memory, little-endian.
///
/// | offset | size | field                | contents                                           |
/// |-------:|-----:|----------------------|----------------------------------------------------|
/// |      0 |    8 | `magic`              | `b"RINGPORT"`                                      |
/// |      8 |    4 | `layout_version`     | `1`                                                |
/// |     12 |    4 | `kind`               | what lives in the payload; each user module owns one value |
/// |     16 |    4 | `header_len`         | `128`                                              |
/// |     20 |    4 | `reserved0`          | `0`                                                |
/// |     24 |    8 | `total_len`          | file size: `payload_offset + payload_len`          |
/// |     32 |    8 | `payload_offset`     | `128`, so the payload is 128-byte aligned in a page-aligned mapping |
/// |     40 |    8 | `payload_len`        | payload bytes                                      |
/// |     48 |    4 | `creator_pid`        | pid of the creating process, `1..=i32::MAX`       |
/// |     52 |    4 | `reserved1`          | `0`                                                |
/// |     56 |    8 | `creator_start_time` | creator's start time in clock ticks since boot (0: unknown) |
/// |     64 |   48 | `params`             | six kind-specific geometry words                   |
/// |    112 |    4 | `checksum`           | CRC-32 (IEEE) of bytes `0..112`                    |
/// |    116 |   12 | `reserved2`          | zeros                                              |
///
/// Reserved fields must be zero: a later layout that gives them meaning bumps
/// `layout_version`, so version 1 readers never misread them.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct RawHeader {
    magic: [u8; 8],
    layout_version: u32,
    kind: u32,
    header_len: u32,
    reserved0: u32,
    total_len: u64,
    payload_offset: u64,
    payload_len: u64,
    creator_pid: u32,
    reserved1: u32,
    creator_start_time: u64,
    params: [u64; PARAMS],
    checksum: u32,
    reserved2: [u8; 12],
}

const _: () = assert!(std::mem::size_of::<RawHeader>() == HEADER_LEN);
const _: () = assert!(CHECKSUM_OFFSET == 112);

/// A validated header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: u32,
    pub(crate) params: [u64; PARAMS],
    pub(crate) payload_len: usize,
    /// `HEADER_LEN + payload_len`, which the caller has checked does not overflow.
    pub(crate) total_len: usize,
    pub(crate) creator: ProcessId,
}

/// Why a header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Not a segment of this layout or of the expected kind.
    Incompatible(String),
    /// A ringport header of this layout whose contents do not add up.
    Corrupt(String),
}

impl Header {
    /// The header's bytes, checksum included.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut raw = RawHeader {
            magic: MAGIC,
            layout_version: LAYOUT_VERSION,
            kind: self.kind,
            header_len: HEADER_LEN as u32,
            reserved0: 0,
            total_len: self.total_len as u64,
            payload_offset: HEADER_LEN as u64,
            payload_len: self.payload_len as u64,
            creator_pid: self.creator.pid,
            reserved1: 0,
            creator_start_time: self.creator.start_time,
            params: self.params,
            checksum: 0,
            reserved2: [0; 12],
        };
        raw.checksum = checksum(bytemuck::bytes_of(&raw));
        bytemuck::cast(raw)
    }
}

fn checksum(header: &[u8]) -> u32 {
    crc32fast::hash(&header[..CHECKSUM_OFFSET])
}

/// Validates a private copy of a header read from a file of `file_len` bytes, and checks
/// its kind when `kind` is given.
///
/// Checks run from the most to the least fundamental, so the error names the first thing
/// that is wrong: magic and version (another format), checksum (damage), kind (another
/// user of ringport), then the lengths against each other and the file.
pub(crate) fn decode(
    bytes: &[u8],
    kind: Option<u32>,
    file_len: u64,
) -> Result<Header, HeaderError> {
    use HeaderError::{Corrupt, Incompatible};

    let Some(bytes) = bytes.get(..HEADER_LEN) else {
        return Err(Corrupt(format!(
            "{} bytes is shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    };
    let raw: RawHeader = bytemuck::pod_read_unaligned(bytes);
    if raw.magic != MAGIC {
        return Err(Incompatible("not a ringport segment".into()));
    }
    if raw.layout_version != LAYOUT_VERSION {
        return Err(Incompatible(format!(
            "layout version {} found, version {LAYOUT_VERSION} expected",
            raw.layout_version
        )));
    }
    let computed = checksum(bytes);
    if raw.checksum != computed {
        return Err(Corrupt(format!(
            "header checksum {:#010x} found, {computed:#010x} computed",
            raw.checksum
        )));
    }
    if let Some(expected) = kind {
        if raw.kind != expected {
            return Err(Incompatible(format!(
                "kind {:#x} found, kind {expected:#x} expected",
                raw.kind
            )));
        }
    }
    if raw.header_len as usize != HEADER_LEN {
        return Err(Corrupt(format!(
            "header_len {} found, {HEADER_LEN} expected",
            raw.header_len
        )));
    }
    if raw.payload_offset != HEADER_LEN as u64 {
        return Err(Corrupt(format!(
            "payload_offset {} found, {HEADER_LEN} expected",
            raw.payload_offset
        )));
    }
    if raw.reserved0 != 0 || raw.reserved1 != 0 || raw.reserved2 != [0; 12] {
        return Err(Corrupt("reserved header fields are not zero".into()));
    }
    if raw.payload_offset.checked_add(raw.payload_len) != Some(raw.total_len) {
        return Err(Corrupt(format!(
            "total_len {} is not payload_offset {} + payload_len {}",
            raw.total_len, raw.payload_offset, raw.payload_len
        )));
    }
    if raw.total_len != file_len {
        return Err(Corrupt(format!(
            "total_len {} differs from the file size {file_len}",
            raw.total_len
        )));
    }
    let (Ok(total_len), Ok(payload_len)) = (
        usize::try_from(raw.total_len),
        usize::try_from(raw.payload_len),
    ) else {
        return Err(Corrupt(format!(
            "total_len {} exceeds the address space",
            raw.total_len
        )));
    };
    if raw.creator_pid == 0 || i32::try_from(raw.creator_pid).is_err() {
        return Err(Corrupt(format!(
            "creator_pid {} is not a valid pid",
            raw.creator_pid
        )));
    }
    Ok(Header {
        kind: raw.kind,
        params: raw.params,
        payload_len,
        total_len,
        creator: ProcessId {
            pid: raw.creator_pid,
            start_time: raw.creator_start_time,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: u32 = 0x7e57;

    fn sample() -> Header {
        Header {
            kind: KIND,
            params: [1, 2, 3, u64::MAX, 0, 42],
            payload_len: 4096,
            total_len: HEADER_LEN + 4096,
            creator: ProcessId {
                pid: 1234,
                start_time: 987_654,
            },
        }
    }

    fn file_len(h: &Header) -> u64 {
        h.total_len as u64
    }

    /// Rewrites a little-endian field and refreshes the checksum, as a forger would.
    fn forge(bytes: &mut [u8; HEADER_LEN], offset: usize, value: &[u8]) {
        bytes[offset..offset + value.len()].copy_from_slice(value);
        let sum = checksum(bytes);
        bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&sum.to_le_bytes());
    }

    fn reason(r: Result<Header, HeaderError>) -> String {
        match r {
            Err(HeaderError::Corrupt(s)) => format!("corrupt: {s}"),
            Err(HeaderError::Incompatible(s)) => format!("incompatible: {s}"),
            Ok(h) => panic!("accepted {h:?}"),
        }
    }

    #[test]
    fn field_offsets_match_the_documented_table() {
        use std::mem::offset_of;
        let offsets = [
            offset_of!(RawHeader, magic),
            offset_of!(RawHeader, layout_version),
            offset_of!(RawHeader, kind),
            offset_of!(RawHeader, header_len),
            offset_of!(RawHeader, reserved0),
            offset_of!(RawHeader, total_len),
            offset_of!(RawHeader, payload_offset),
            offset_of!(RawHeader, payload_len),
            offset_of!(RawHeader, creator_pid),
            offset_of!(RawHeader, reserved1),
            offset_of!(RawHeader, creator_start_time),
            offset_of!(RawHeader, params),
            offset_of!(RawHeader, checksum),
            offset_of!(RawHeader, reserved2),
        ];
        assert_eq!(
            offsets,
            [0, 8, 12, 16, 20, 24, 32, 40, 48, 52, 56, 64, 112, 116]
        );
    }

    #[test]
    fn round_trips() {
        let h = sample();
        let bytes = h.encode();
        assert_eq!(&bytes[..8], b"RINGPORT");
        assert_eq!(decode(&bytes, Some(KIND), file_len(&h)), Ok(h));
        assert_eq!(decode(&bytes, None, file_len(&h)), Ok(h));
    }

    #[test]
    fn each_check_names_what_is_wrong() {
        let h = sample();
        let good = h.encode();
        let len = file_len(&h);
        let with = |offset: usize, value: &[u8]| {
            let mut b = good;
            forge(&mut b, offset, value);
            decode(&b, Some(KIND), len)
        };
        assert_eq!(
            reason(decode(&good[..100], Some(KIND), len)),
            "corrupt: 100 bytes is shorter than the 128-byte header"
        );
        assert_eq!(
            reason(with(0, b"RINGPORX")),
            "incompatible: not a ringport segment"
        );
        assert_eq!(
            reason(with(8, &2u32.to_le_bytes())),
            "incompatible: layout version 2 found, version 1 expected"
        );
        assert_eq!(
            reason(decode(&good, Some(KIND + 1), len)),
            "incompatible: kind 0x7e57 found, kind 0x7e58 expected"
        );
        assert_eq!(
            reason(with(16, &64u32.to_le_bytes())),
            "corrupt: header_len 64 found, 128 expected"
        );
        assert_eq!(
            reason(with(32, &256u64.to_le_bytes())),
            "corrupt: payload_offset 256 found, 128 expected"
        );
        assert_eq!(
            reason(with(20, &1u32.to_le_bytes())),
            "corrupt: reserved header fields are not zero"
        );
        assert_eq!(
            reason(with(52, &1u32.to_le_bytes())),
            "corrupt: reserved header fields are not zero"
        );
        assert_eq!(
            reason(with(40, &1u64.to_le_bytes())),
            "corrupt: total_len 4224 is not payload_offset 128 + payload_len 1"
        );
        assert_eq!(
            reason(with(40, &u64::MAX.to_le_bytes())),
            format!(
                "corrupt: total_len 4224 is not payload_offset 128 + payload_len {}",
                u64::MAX
            )
        );
        assert_eq!(
            reason(decode(&good, Some(KIND), len + 1)),
            "corrupt: total_len 4224 differs from the file size 4225"
        );
        assert_eq!(
            reason(with(48, &0u32.to_le_bytes())),
            "corrupt: creator_pid 0 is not a valid pid"
        );
        assert_eq!(
            reason(with(48, &u32::MAX.to_le_bytes())),
            format!("corrupt: creator_pid {} is not a valid pid", u32::MAX)
        );

        // Reserved tail bytes lie outside the checksum but are still checked.
        let mut tail = good;
        tail[HEADER_LEN - 1] = 1;
        assert_eq!(
            reason(decode(&tail, Some(KIND), len)),
            "corrupt: reserved header fields are not zero"
        );

        let mut damaged = good;
        damaged[70] ^= 0x10;
        assert!(reason(decode(&damaged, Some(KIND), len)).starts_with("corrupt: header checksum"));
    }

    /// xorshift64*: enough randomness to mutate headers without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn mutated_headers_never_panic_and_are_rejected_or_consistent() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let good = sample().encode();
        let good_len = file_len(&sample());
        for round in 0..20_000 {
            let mut bytes = good;
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let at = rng.below(HEADER_LEN);
                bytes[at] ^= 1 + rng.below(255) as u8;
            }
            // Half the time the forger fixes the checksum, so the deeper checks see
            // the mutation rather than stopping at the CRC.
            if round % 2 == 0 {
                let sum = checksum(&bytes);
                bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&sum.to_le_bytes());
            }
            let file_len = match rng.below(4) {
                0 => rng.next(),
                1 => u64::from_le_bytes(bytes[24..32].try_into().unwrap()),
                _ => good_len,
            };
            let cut = if rng.below(8) == 0 {
                rng.below(HEADER_LEN + 1)
            } else {
                HEADER_LEN
            };
            match decode(&bytes[..cut], Some(KIND), file_len) {
                Ok(h) => {
                    assert_eq!(h.total_len as u64, file_len);
                    assert_eq!(h.total_len, HEADER_LEN + h.payload_len);
                    assert_eq!(h.kind, KIND);
                    assert!(h.creator.pid != 0 && h.creator.pid <= i32::MAX as u32);
                }
                Err(HeaderError::Corrupt(_) | HeaderError::Incompatible(_)) => {}
            }
        }
    }

    #[test]
    fn any_single_damaged_byte_is_caught() {
        let good = sample().encode();
        for at in 0..HEADER_LEN {
            for delta in [0x01, 0x80, 0xff] {
                let mut bytes = good;
                bytes[at] ^= delta;
                assert!(
                    decode(&bytes, Some(KIND), file_len(&sample())).is_err(),
                    "byte {at}"
                );
            }
        }
    }
}
