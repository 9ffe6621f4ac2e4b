//! Single-producer single-consumer rings: the substrate of ports.
//!
//! Two kinds share one control block (`RingCtrl`) and one blocking protocol:
//! - [`PodRing`]: fixed-size slots of a `T: bytemuck::Pod`, packed several to a cache
//!   line with a publication stamp in the same line;
//! - [`FrameRing`]: variable-length byte frames, each behind an 8-byte header, wrapping
//!   with a pad frame so that every frame is contiguous and can be read in place.
//!
//! Both have `try_`, blocking and `_timeout` variants, batch send with a single publish,
//! batch receive with a single release, and see a peer that closed, was dropped, or (across
//! processes) died. Their memory is a `Region` on the heap or in a
//! segment; under loom it is boxed loom atomics and cells with the same algorithm.

pub(crate) mod ctrl;
pub mod frame;
mod handover;
pub mod pod;

#[cfg(not(loom))]
pub use frame::Frame;
pub use frame::{FrameConsumer, FrameProducer, FrameRing};
#[cfg(not(loom))]
pub(crate) use handover::EndState;
#[cfg(loom)]
pub use handover::Handover;
pub use pod::{PodConsumer, PodProducer, PodRing};
