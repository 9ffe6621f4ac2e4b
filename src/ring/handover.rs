//! Handing one end of a frame ring to another holder, for a transferred port: the old
//! holder stops without closing, and the new one goes on where it stopped.
//!
//! A ring end's positions live in its holder, not in shared memory, so they travel with
//! the handover (in a transferred port's ticket) and are checked against the ring when
//! the new holder takes the end: a sender's position must lie between what the consumer
//! released and a ring ahead of it, a receiver's must equal what it released (the old
//! holder releases everything before it lets go). The endpoint goes from `ATTACHED` to
//! `HANDOVER`, never through `CLOSED`, so the peer keeps sending and draining meanwhile,
//! and the new holder takes it with a compare-and-swap, so a replayed ticket finds it
//! taken.

use super::ctrl::{CONSUMER, DEFAULT_SPIN, PRODUCER};
use super::frame::{ConsState, FrameMem, ProdState};
use super::{FrameConsumer, FrameProducer};
use crate::sync::Ordering;
use std::mem::ManuallyDrop;

/// Where a ring end stopped: its byte position in the data area, its monotonic byte
/// count (the sender's tail or the receiver's head) and its frame sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EndState {
    pub(crate) pos: u64,
    pub(crate) count: u64,
    pub(crate) seq: u32,
}

impl FrameProducer {
    /// Lets go of the sending end without closing it.
    pub(crate) fn hand_over(self) -> (FrameMem, EndState) {
        let this = ManuallyDrop::new(self);
        this.mem.ctrl().ends[PRODUCER].hand_over();
        let st = EndState {
            pos: this.st.pos as u64,
            count: this.st.tail,
            seq: this.st.seq,
        };
        // SAFETY: `this` is never used or dropped again; its memory handle is read out
        // once, and its state is plain data.
        (unsafe { std::ptr::read(&this.mem) }, st)
    }

    /// Takes a handed-over sending end for the process `pid` (0: in-process).
    pub(crate) fn take_over(
        mem: FrameMem,
        st: EndState,
        pid: u32,
        start_time: u64,
    ) -> Result<FrameProducer, &'static str> {
        let ctrl = mem.ctrl();
        if !ctrl.ends[PRODUCER].take_over(pid, start_time) {
            return Err("its sending end is not waiting for a new holder");
        }
        let cap = mem.geo.capacity as u64;
        let released = ctrl.released.load(Ordering::Acquire);
        if st.pos % 8 != 0
            || st.pos != st.count % cap
            || st.count < released
            || st.count - released > cap
        {
            // The ring cannot go on from a state it does not match: close it, so the peer
            // sees the end gone rather than waiting for it.
            ctrl.ends[PRODUCER].close();
            ctrl.data.notify(mem.scope());
            return Err("its sending position does not match the ring");
        }
        Ok(FrameProducer {
            st: ProdState {
                spin: DEFAULT_SPIN,
                pos: st.pos as usize,
                tail: st.count,
                seq: st.seq,
                released,
            },
            mem,
        })
    }
}

impl FrameConsumer {
    /// Releases everything received and lets go of the receiving end without closing it.
    pub(crate) fn hand_over(mut self) -> (FrameMem, EndState) {
        Self::release(&self.mem, &mut self.st);
        let this = ManuallyDrop::new(self);
        this.mem.ctrl().ends[CONSUMER].hand_over();
        let st = EndState {
            pos: this.st.pos as u64,
            count: this.st.head,
            seq: this.st.seq,
        };
        // SAFETY: as in `FrameProducer::hand_over`.
        (unsafe { std::ptr::read(&this.mem) }, st)
    }

    /// Takes a handed-over receiving end for the process `pid` (0: in-process).
    pub(crate) fn take_over(
        mem: FrameMem,
        st: EndState,
        pid: u32,
        start_time: u64,
    ) -> Result<FrameConsumer, &'static str> {
        let ctrl = mem.ctrl();
        if !ctrl.ends[CONSUMER].take_over(pid, start_time) {
            return Err("its receiving end is not waiting for a new holder");
        }
        let cap = mem.geo.capacity as u64;
        if st.pos % 8 != 0
            || st.pos != st.count % cap
            || st.count != ctrl.released.load(Ordering::Acquire)
        {
            ctrl.ends[CONSUMER].close();
            ctrl.space.notify(mem.scope());
            return Err("its receiving position does not match the ring");
        }
        Ok(FrameConsumer {
            st: ConsState {
                spin: DEFAULT_SPIN,
                pos: st.pos as usize,
                head: st.count,
                seq: st.seq,
                released: st.count,
            },
            mem,
        })
    }
}

/// Under loom: a ring end between two holders, as a transferred port carries it, so the
/// models can hand ends over between threads.
#[cfg(loom)]
pub struct Handover {
    mem: FrameMem,
    st: EndState,
}

#[cfg(loom)]
impl FrameProducer {
    /// Under loom: [`FrameProducer::hand_over`].
    pub fn hand_over_for_model(self) -> Handover {
        let (mem, st) = self.hand_over();
        Handover { mem, st }
    }
}

#[cfg(loom)]
impl FrameConsumer {
    /// Under loom: [`FrameConsumer::hand_over`].
    pub fn hand_over_for_model(self) -> Handover {
        let (mem, st) = self.hand_over();
        Handover { mem, st }
    }
}

#[cfg(loom)]
impl Handover {
    /// Under loom: takes the handed-over sending end.
    pub fn into_producer(self) -> Result<FrameProducer, &'static str> {
        FrameProducer::take_over(self.mem, self.st, 0, 0)
    }

    /// Under loom: takes the handed-over receiving end.
    pub fn into_consumer(self) -> Result<FrameConsumer, &'static str> {
        FrameConsumer::take_over(self.mem, self.st, 0, 0)
    }
}
