//! The doorbell: one eventcount that every level's sends ring, so that the receiver can
//! sleep on all the level rings at once.
//!
//! It is the rings' own `Signal` (see `crate::signal`), used the way a ring uses it: the
//! sender publishes into a level ring (a `Release` store), then notifies the bell; the
//! receiver's wait re-checks every level ring with `Acquire` loads after it announces
//! itself. The Dekker pair inside the signal makes sure that a publish either is seen
//! by that re-check or wakes the sleeper; no new atomic protocol is involved. The sender
//! also rings it after it has taken expiry reports, since freeing report-ring room can
//! unblock a receiver that held back an expired message (see `receiver.rs`), and after
//! it closes its level rings.
//!
//! Under `--cfg loom` the bell's signal lives on the heap in loom's atomics, and the
//! sender and receiver around it are the ones that run in production (see
//! `loom-tests/tests/priority_bell.rs`).

#[cfg(not(loom))]
mod mem {
    use crate::atomics::Scope;
    use crate::region::Region;
    use crate::segment::{Segment, SegmentError, PARAMS};
    use crate::signal::Signal;
    use std::sync::Arc;

    /// Segment kind of a priority queue's doorbell (`"PRIQ"`), which also records the
    /// queue's shape in its parameters.
    const KIND_PRIORITY: u32 = u32::from_le_bytes(*b"PRIQ");

    /// A `Signal` at the start of a region of its own.
    #[derive(Clone)]
    pub(crate) struct Bell {
        region: Arc<Region>,
    }

    impl Bell {
        pub(crate) fn heap() -> Bell {
            Bell {
                region: Region::heap(std::mem::size_of::<Signal>()),
            }
        }

        pub(crate) fn create(name: &str, params: [u64; PARAMS]) -> Result<Bell, SegmentError> {
            let segment =
                Segment::create(name, KIND_PRIORITY, params, std::mem::size_of::<Signal>())?;
            Ok(Bell {
                region: Region::segment(segment),
            })
        }

        /// Opens the doorbell `name` and returns it with the parameters its creator wrote.
        pub(crate) fn open(name: &str) -> Result<(Bell, [u64; PARAMS]), SegmentError> {
            let segment = Segment::open(name, KIND_PRIORITY)?;
            if segment.payload_len() < std::mem::size_of::<Signal>() {
                return Err(SegmentError::Corrupt {
                    name: name.to_owned(),
                    reason: "doorbell segment too small for its signal".into(),
                });
            }
            let params = segment.params();
            Ok((
                Bell {
                    region: Region::segment(segment),
                },
                params,
            ))
        }

        pub(crate) fn signal(&self) -> &Signal {
            // SAFETY: the region holds at least a Signal (checked on open, sized on
            // create), starts 128-byte aligned, and lives as long as `self`. A Signal is
            // atomics only, valid for any bytes another process may have written.
            unsafe { &*self.region.ptr(0).cast::<Signal>() }
        }

        pub(crate) fn scope(&self) -> Scope {
            self.region.scope()
        }

        /// The pid of the process that created the queue's segments (the sender), if it
        /// has died. A heap queue's sender is in this process and cannot die alone.
        pub(crate) fn dead_sender(&self) -> Option<u32> {
            let creator = self.region.segment_ref()?.creator();
            (!creator.is_alive()).then_some(creator.pid)
        }
    }
}

#[cfg(loom)]
mod mem {
    use crate::atomics::Scope;
    use crate::signal::Signal;
    use loom::sync::Arc;

    /// Under loom: a `Signal` of loom atomics on the heap (loom's atomics cannot live in
    /// a region's raw bytes).
    #[derive(Clone)]
    pub(crate) struct Bell {
        signal: Arc<Signal>,
    }

    impl Bell {
        pub(crate) fn heap() -> Bell {
            Bell {
                signal: Arc::new(Signal::default()),
            }
        }

        pub(crate) fn signal(&self) -> &Signal {
            &self.signal
        }

        pub(crate) fn scope(&self) -> Scope {
            Scope::Process
        }

        /// Loom models threads of one process, whose sender cannot die alone.
        pub(crate) fn dead_sender(&self) -> Option<u32> {
            None
        }
    }
}

pub(crate) use mem::Bell;

impl Bell {
    /// Wakes the receiver if it sleeps; with nobody asleep, a fence and a load.
    pub(crate) fn ring(&self) {
        self.signal().notify(self.scope());
    }
}
