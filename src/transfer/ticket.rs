//! Turning a port into a ticket and back: the port's half of a transfer.
//!
//! - A port of a named channel hands both of its ring ends over in the segment and
//!   writes where they stopped into the ticket; the taker opens the segment by name and
//!   takes the ends over. Messages queued for the port stay in its ring and reach the
//!   taker in order. If the port's segment was created here, its name goes with it.
//! - A heap port cannot leave its process: it is parked in this process under a key, and
//!   the ticket names the process and the key.

use super::wire::{EndPosition, PortTicket};
use crate::pool::TransferError;
use crate::port::{MessageChannel, MessagePort, Side};
use crate::process::ProcessId;
use crate::ring::frame::FrameMem;
use crate::ring::{EndState, FrameConsumer, FrameProducer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Heap ports in transit within this process.
fn parked() -> &'static Mutex<HashMap<u64, MessagePort>> {
    static PARKED: OnceLock<Mutex<HashMap<u64, MessagePort>>> = OnceLock::new();
    PARKED.get_or_init(Default::default)
}

fn position(st: EndState) -> EndPosition {
    EndPosition {
        pos: st.pos,
        count: st.count,
        seq: st.seq,
    }
}

fn end_state(p: EndPosition) -> EndState {
    EndState {
        pos: p.pos,
        count: p.count,
        seq: p.seq,
    }
}

impl MessagePort {
    /// Whether this port lives in a named segment (and so may leave its process).
    pub(crate) fn is_named(&self) -> bool {
        self.tx.mem.region().segment_ref().is_some()
    }

    /// Whether `other` is this port's own channel (its entangled port, or itself).
    pub(crate) fn same_channel(&self, other: &MessagePort) -> bool {
        let (a, b) = (self.tx.mem.region(), other.tx.mem.region());
        Arc::ptr_eq(a, b)
            || matches!(
                (a.segment_ref(), b.segment_ref()),
                (Some(x), Some(y)) if x.name() == y.name()
            )
    }

    /// Lets go of the port for whoever takes the ticket.
    pub(crate) fn into_ticket(self) -> PortTicket {
        let region = self.tx.mem.region().clone();
        let Some(segment) = region.segment_ref() else {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            let key = NEXT.fetch_add(1, Ordering::Relaxed);
            parked()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, self);
            return PortTicket::InProcess {
                process: ProcessId::current().to_word(),
                key,
            };
        };
        let side = if self.tx.mem.offset() == 0 { 1 } else { 2 };
        let (tx, rx) = (self.tx, self.rx);
        let (_, send) = tx.hand_over();
        let (_, recv) = rx.hand_over();
        PortTicket::Named {
            name: segment.name().to_owned(),
            side,
            owner: segment.disown(),
            send: position(send),
            recv: position(recv),
        }
    }

    /// Takes the port a ticket names.
    pub(crate) fn from_ticket(ticket: PortTicket) -> Result<MessagePort, TransferError> {
        match ticket {
            PortTicket::InProcess { process, key } => {
                if process != ProcessId::current().to_word() {
                    return Err(TransferError::NotTransferable(
                        "a heap port cannot leave its process",
                    ));
                }
                parked()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key)
                    .ok_or_else(|| TransferError::Port("no such port in transit".into()))
            }
            PortTicket::Named {
                name,
                side,
                owner,
                send,
                recv,
            } => {
                let port_err = |e: String| TransferError::Port(format!("{name:?}: {e}"));
                let (region, layout, geo) =
                    MessageChannel::open_frames(&name).map_err(|e| port_err(e.to_string()))?;
                let side = if side == 1 { Side::First } else { Side::Second };
                let (out, inc) = layout.rings(side);
                let me = ProcessId::current();
                let tx = FrameProducer::take_over(
                    FrameMem::new(region.clone(), out, geo),
                    end_state(send),
                    me.pid,
                    me.start_time,
                )
                .map_err(|e| port_err(e.into()))?;
                // A failed second half drops the first, which closes it: the peer then
                // sees the port gone instead of waiting for it.
                let rx = FrameConsumer::take_over(
                    FrameMem::new(region.clone(), inc, geo),
                    end_state(recv),
                    me.pid,
                    me.start_time,
                )
                .map_err(|e| port_err(e.into()))?;
                if owner {
                    if let Some(segment) = region.segment_ref() {
                        segment.adopt();
                    }
                }
                Ok(MessagePort { tx, rx })
            }
        }
    }
}
