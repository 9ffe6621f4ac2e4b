//! The frames of a priority queue: stamped messages on the level rings, expiry reports
//! on the report ring. All integers little-endian; every frame read from a ring is
//! untrusted and checked before use.

use super::{Expired, Level};
use crate::error::Corruption;
#[cfg(not(loom))]
use rustix::time::{clock_gettime, ClockId};
use std::time::Duration;

/// `enqueued_ns: u64 | deadline_ns: u64`, then the payload.
pub(crate) const MESSAGE_HEADER: usize = 16;
/// `level: u32 | 0: u32 | enqueued_ns: u64 | noticed_ns: u64`, then the payload.
pub(crate) const REPORT_HEADER: usize = 24;

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for the whole machine, so a stamp written
/// by one process means the same instant to another.
#[cfg(not(loom))]
pub(crate) fn monotonic_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Loom explores schedules, not clocks: a time that differed between runs of one schedule
/// would make its executions unrepeatable. Under loom every stamp is therefore taken at
/// one instant, so a message ages never and expires only with a zero deadline.
#[cfg(loom)]
pub(crate) fn monotonic_ns() -> u64 {
    0
}

/// `from + span`, saturating: a deadline too far to represent never comes.
pub(crate) fn after(from: u64, span: Duration) -> u64 {
    from.saturating_add(u64::try_from(span.as_nanos()).unwrap_or(u64::MAX))
}

/// When a message was sent and when it expires, on the monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) enqueued: u64,
    pub(crate) deadline: u64,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

pub(crate) fn encode_message(out: &mut Vec<u8>, stamp: Stamp, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(&stamp.enqueued.to_le_bytes());
    out.extend_from_slice(&stamp.deadline.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Splits a level ring's frame into its stamp and copies its payload into `payload`.
pub(crate) fn decode_message(frame: &[u8], payload: &mut Vec<u8>) -> Result<Stamp, Corruption> {
    if frame.len() < MESSAGE_HEADER {
        return Err(Corruption::new("priority message shorter than its header"));
    }
    payload.clear();
    payload.extend_from_slice(&frame[MESSAGE_HEADER..]);
    Ok(Stamp {
        enqueued: u64_at(frame, 0),
        deadline: u64_at(frame, 8),
    })
}

pub(crate) fn encode_report(
    out: &mut Vec<u8>,
    level: u8,
    enqueued: u64,
    noticed: u64,
    payload: &[u8],
) {
    out.clear();
    out.extend_from_slice(&u32::from(level).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&enqueued.to_le_bytes());
    out.extend_from_slice(&noticed.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A report as read, its level checked against `levels`.
pub(crate) fn decode_report(frame: &[u8], levels: usize) -> Result<Expired, Corruption> {
    if frame.len() < REPORT_HEADER {
        return Err(Corruption::new("expiry report shorter than its header"));
    }
    let level = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
    if frame[4..8] != [0; 4] {
        return Err(Corruption::new("expiry report with reserved bits set"));
    }
    let level = match u8::try_from(level) {
        Ok(l) if usize::from(l) < levels => l,
        _ => return Err(Corruption::new("expiry report names no level of the queue")),
    };
    // A peer's clock values are not trusted to be ordered: a negative wait reads as zero.
    let waited = u64_at(frame, 16).saturating_sub(u64_at(frame, 8));
    Ok(Expired {
        level: Level(level),
        payload: frame[REPORT_HEADER..].to_vec(),
        waited: Duration::from_nanos(waited),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_reports_round_trip() {
        let mut buf = Vec::new();
        let stamp = Stamp {
            enqueued: 5,
            deadline: 9,
        };
        encode_message(&mut buf, stamp, b"body");
        let mut payload = Vec::new();
        assert_eq!(decode_message(&buf, &mut payload), Ok(stamp));
        assert_eq!(payload, b"body");
        encode_report(&mut buf, 2, 100, 350, b"late");
        assert_eq!(
            decode_report(&buf, 3),
            Ok(Expired {
                level: Level(2),
                payload: b"late".to_vec(),
                waited: Duration::from_nanos(250),
            })
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut payload = Vec::new();
        assert!(decode_message(&[0; 15], &mut payload).is_err());
        let mut buf = Vec::new();
        encode_report(&mut buf, 3, 0, 0, b"");
        assert!(decode_report(&buf, 3).is_err());
        encode_report(&mut buf, 0, 0, 0, b"");
        buf[5] = 1;
        assert!(decode_report(&buf, 3).is_err());
        assert!(decode_report(&buf[..23], 3).is_err());
        // A report noticed "before" it was sent says it waited for nothing.
        encode_report(&mut buf, 0, 10, 3, b"");
        assert_eq!(decode_report(&buf, 1).map(|r| r.waited), Ok(Duration::ZERO));
    }

    #[test]
    fn the_clock_moves_forward_and_far_deadlines_saturate() {
        let a = monotonic_ns();
        assert!(monotonic_ns() >= a);
        assert_eq!(after(u64::MAX - 1, Duration::from_secs(1)), u64::MAX);
        assert_eq!(after(1, Duration::from_nanos(2)), 3);
    }
}
