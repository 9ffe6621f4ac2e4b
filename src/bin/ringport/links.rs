//! Round-trip paths built on ringport's ports and on peer queues.
//!
//! Every queue holds [`SLOTS`] messages each way (ringport rounds up to whole blocks).
//! "Busy" ends poll with the non-blocking call and `std::hint::spin_loop()` between polls;
//! "blocking" ends use the blocking calls on both sides.

use crate::rtt::{InProcess, Link, Named};
use crate::scenarios::{FRAME_RING, SLOTS};
use crate::Result;
use crossbeam_queue::ArrayQueue;
use ringport::{MessageChannel, MessagePort, PodPort, RecvError, SendError};
use std::hint::spin_loop;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// `PodPort<u64>`, busy-polled.
pub struct PodBusy(PodPort<u64>);

impl Link for PodBusy {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        loop {
            match self.0.try_post_message(v) {
                Err(SendError::Full) => spin_loop(),
                r => return Ok(r?),
            }
        }
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        loop {
            match self.0.try_recv() {
                Err(RecvError::Empty) => spin_loop(),
                r => return Ok(r?),
            }
        }
    }
}

impl InProcess for PodBusy {
    type End = PodBusy;

    fn pair() -> Result<(PodBusy, PodBusy)> {
        let (a, b) = MessageChannel::pod::<u64>(SLOTS);
        Ok((PodBusy(a), PodBusy(b)))
    }
}

impl Named for PodBusy {
    fn create(name: &str) -> Result<Self> {
        Ok(PodBusy(MessageChannel::create_pod::<u64>(name, SLOTS)?))
    }

    fn open(name: &str) -> Result<Self> {
        Ok(PodBusy(MessageChannel::open_pod::<u64>(name)?))
    }
}

/// `PodPort<u64>` with blocking `post_message` and `recv` on both sides.
pub struct PodBlocking(PodPort<u64>);

impl Link for PodBlocking {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        Ok(self.0.post_message(v)?)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        Ok(self.0.recv()?)
    }
}

impl InProcess for PodBlocking {
    type End = PodBlocking;

    fn pair() -> Result<(PodBlocking, PodBlocking)> {
        let (a, b) = MessageChannel::pod::<u64>(SLOTS);
        Ok((PodBlocking(a), PodBlocking(b)))
    }
}

impl Named for PodBlocking {
    fn create(name: &str) -> Result<Self> {
        Ok(PodBlocking(MessageChannel::create_pod::<u64>(name, SLOTS)?))
    }

    fn open(name: &str) -> Result<Self> {
        Ok(PodBlocking(MessageChannel::open_pod::<u64>(name)?))
    }
}

/// `PodPort<u64>` with blocking calls and a zero spin budget: each side sleeps on the
/// futex whenever its message is not already there, to compare the sleep path with a raw
/// futex ping-pong.
pub struct PodSleeping(PodPort<u64>);

impl PodSleeping {
    fn new(mut port: PodPort<u64>) -> Self {
        port.set_spin_budget(Duration::ZERO);
        PodSleeping(port)
    }
}

impl Link for PodSleeping {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        Ok(self.0.post_message(v)?)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        Ok(self.0.recv()?)
    }
}

impl InProcess for PodSleeping {
    type End = PodSleeping;

    fn pair() -> Result<(PodSleeping, PodSleeping)> {
        let (a, b) = MessageChannel::pod::<u64>(SLOTS);
        Ok((PodSleeping::new(a), PodSleeping::new(b)))
    }
}

impl Named for PodSleeping {
    fn create(name: &str) -> Result<Self> {
        Ok(PodSleeping::new(MessageChannel::create_pod::<u64>(
            name, SLOTS,
        )?))
    }

    fn open(name: &str) -> Result<Self> {
        Ok(PodSleeping::new(MessageChannel::open_pod::<u64>(name)?))
    }
}

/// `MessagePort` carrying 8-byte frames, busy-polled.
pub struct FrameBusy(MessagePort);

impl Link for FrameBusy {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        loop {
            match self.0.try_post_message(&v.to_ne_bytes()) {
                Err(SendError::Full) => spin_loop(),
                r => return Ok(r?),
            }
        }
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        loop {
            match self.0.try_recv() {
                Ok(frame) => return Ok(frame.read_pod::<u64>().ok_or("frame is not 8 bytes")?),
                Err(RecvError::Empty) => spin_loop(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl InProcess for FrameBusy {
    type End = FrameBusy;

    fn pair() -> Result<(FrameBusy, FrameBusy)> {
        let ch = MessageChannel::with_capacity(FRAME_RING);
        Ok((FrameBusy(ch.port1), FrameBusy(ch.port2)))
    }
}

impl Named for FrameBusy {
    fn create(name: &str) -> Result<Self> {
        Ok(FrameBusy(MessageChannel::create(name, FRAME_RING)?))
    }

    fn open(name: &str) -> Result<Self> {
        Ok(FrameBusy(MessageChannel::open(name)?))
    }
}

/// Two `rtrb` rings, busy-polled.
pub struct RtrbBusy {
    tx: rtrb::Producer<u64>,
    rx: rtrb::Consumer<u64>,
}

impl Link for RtrbBusy {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        while self.tx.push(v).is_err() {
            spin_loop();
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        loop {
            if let Ok(v) = self.rx.pop() {
                return Ok(v);
            }
            spin_loop();
        }
    }
}

impl InProcess for RtrbBusy {
    type End = RtrbBusy;

    fn pair() -> Result<(RtrbBusy, RtrbBusy)> {
        let (tx_ab, rx_ab) = rtrb::RingBuffer::new(SLOTS);
        let (tx_ba, rx_ba) = rtrb::RingBuffer::new(SLOTS);
        Ok((
            RtrbBusy {
                tx: tx_ab,
                rx: rx_ba,
            },
            RtrbBusy {
                tx: tx_ba,
                rx: rx_ab,
            },
        ))
    }
}

/// Two bounded crossbeam channels, busy-polled with `try_send` / `try_recv`.
pub struct ChannelBusy {
    tx: crossbeam_channel::Sender<u64>,
    rx: crossbeam_channel::Receiver<u64>,
}

impl Link for ChannelBusy {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        loop {
            match self.tx.try_send(v) {
                Err(crossbeam_channel::TrySendError::Full(_)) => spin_loop(),
                r => return Ok(r?),
            }
        }
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        loop {
            match self.rx.try_recv() {
                Err(crossbeam_channel::TryRecvError::Empty) => spin_loop(),
                r => return Ok(r?),
            }
        }
    }
}

impl InProcess for ChannelBusy {
    type End = ChannelBusy;

    fn pair() -> Result<(ChannelBusy, ChannelBusy)> {
        let (tx_ab, rx_ab) = crossbeam_channel::bounded(SLOTS);
        let (tx_ba, rx_ba) = crossbeam_channel::bounded(SLOTS);
        Ok((
            ChannelBusy {
                tx: tx_ab,
                rx: rx_ba,
            },
            ChannelBusy {
                tx: tx_ba,
                rx: rx_ab,
            },
        ))
    }
}

/// Two bounded crossbeam channels with blocking `send` / `recv`.
pub struct ChannelBlocking {
    tx: crossbeam_channel::Sender<u64>,
    rx: crossbeam_channel::Receiver<u64>,
}

impl Link for ChannelBlocking {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        Ok(self.tx.send(v)?)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        Ok(self.rx.recv()?)
    }
}

impl InProcess for ChannelBlocking {
    type End = ChannelBlocking;

    fn pair() -> Result<(ChannelBlocking, ChannelBlocking)> {
        let (tx_ab, rx_ab) = crossbeam_channel::bounded(SLOTS);
        let (tx_ba, rx_ba) = crossbeam_channel::bounded(SLOTS);
        Ok((
            ChannelBlocking {
                tx: tx_ab,
                rx: rx_ba,
            },
            ChannelBlocking {
                tx: tx_ba,
                rx: rx_ab,
            },
        ))
    }
}

/// Two crossbeam `ArrayQueue`s, busy-polled.
pub struct ArrayQueueBusy {
    tx: Arc<ArrayQueue<u64>>,
    rx: Arc<ArrayQueue<u64>>,
}

impl Link for ArrayQueueBusy {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        while self.tx.push(v).is_err() {
            spin_loop();
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        loop {
            if let Some(v) = self.rx.pop() {
                return Ok(v);
            }
            spin_loop();
        }
    }
}

impl InProcess for ArrayQueueBusy {
    type End = ArrayQueueBusy;

    fn pair() -> Result<(ArrayQueueBusy, ArrayQueueBusy)> {
        let ab = Arc::new(ArrayQueue::new(SLOTS));
        let ba = Arc::new(ArrayQueue::new(SLOTS));
        Ok((
            ArrayQueueBusy {
                tx: ab.clone(),
                rx: ba.clone(),
            },
            ArrayQueueBusy { tx: ba, rx: ab },
        ))
    }
}

/// Two bounded `std::sync::mpsc::sync_channel`s, busy-polled.
pub struct MpscBusy {
    tx: mpsc::SyncSender<u64>,
    rx: mpsc::Receiver<u64>,
}

impl Link for MpscBusy {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        loop {
            match self.tx.try_send(v) {
                Err(mpsc::TrySendError::Full(_)) => spin_loop(),
                r => return Ok(r?),
            }
        }
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        loop {
            match self.rx.try_recv() {
                Err(mpsc::TryRecvError::Empty) => spin_loop(),
                r => return Ok(r?),
            }
        }
    }
}

impl InProcess for MpscBusy {
    type End = MpscBusy;

    fn pair() -> Result<(MpscBusy, MpscBusy)> {
        let (tx_ab, rx_ab) = mpsc::sync_channel(SLOTS);
        let (tx_ba, rx_ba) = mpsc::sync_channel(SLOTS);
        Ok((
            MpscBusy {
                tx: tx_ab,
                rx: rx_ba,
            },
            MpscBusy {
                tx: tx_ba,
                rx: rx_ab,
            },
        ))
    }
}
