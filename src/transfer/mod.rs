//! Transfer lists: a message that carries plain data together with buffers and ports
//! that change hands, like `postMessage(data, [buffers, ports])` on the web.
//!
//! A [`Transfer`] owns what it carries, so a buffer cannot be listed twice and nothing
//! sent can be touched by the sender afterwards: the Rust move is the web's detach.
//! [`MessagePort::post_transfer`] checks what cannot travel before anything changes
//! hands (the web's `DataCloneError`, here [`TransferError`]) and gives the message back
//! with the error. [`MessagePort::recv_transfer`] validates every byte of what arrives
//! (see [`wire`]): a message with a forged, replayed, foreign or duplicated handle, or a
//! port that cannot be taken, is refused whole, and whatever valid buffers and ports it
//! carried are taken and released (buffers back to their pool, ports closed) so that
//! nothing leaks.
//!
//! - Buffers travel as 32-byte handles; the bytes stay in the pool.
//! - A port of a named channel ([`MessageChannel::create`](crate::MessageChannel::create) /
//!   [`open`](crate::MessageChannel::open)) travels anywhere, other processes included;
//!   messages queued for it reach its new owner in order, and its peer never sees it
//!   closed on the way. Until it is received it belongs to the sending process: if that
//!   dies first, the peer sees `PeerDied`.
//! - A heap port ([`MessageChannel::new`](crate::MessageChannel::new)) and a heap pool's
//!   buffer travel only between threads of one process, so they may only be posted
//!   through a heap port.
//! - A port cannot travel through its own channel.
//!
//! # Example
//! ```
//! use ringport::pool::BufferPool;
//! use ringport::transfer::Transfer;
//! use ringport::MessageChannel;
//!
//! let pool = BufferPool::new(Default::default())?;
//! let (main, worker) = { let c = MessageChannel::new(); (c.port1, c.port2) };
//! let (mut main, mut worker) = (main, worker);
//! let private = MessageChannel::new();
//! let mut frame = pool.try_loan(4)?;
//! frame.copy_from_slice(b"data");
//! let msg = Transfer::new(b"job 1".to_vec()).with_buffer(frame).with_port(private.port2);
//! main.post_transfer(msg).map_err(|e| e.error)?;
//!
//! let got = worker.recv_transfer(std::slice::from_ref(&pool))?;
//! assert_eq!(got.data(), b"job 1");
//! assert_eq!(&*got.buffers()[0], b"data");
//! let (_, _, mut ports) = got.into_parts();
//! ports[0].post_message(b"reply on the private port").unwrap();
//! let mut mine = private.port1;
//! assert_eq!(&*mine.recv().unwrap(), b"reply on the private port");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ticket;
pub mod wire;

use crate::error::SendError;
use crate::pool::{Buffer, BufferPool, BufferRecvError, BufferSendError, TransferError};
use crate::MessagePort;
use std::time::{Duration, Instant};
use thiserror::Error;
use wire::WireMessage;

/// A message with its transfer list: plain data, buffers and ports.
///
/// # Example
/// ```
/// let t = ringport::transfer::Transfer::new(vec![1, 2, 3]);
/// assert_eq!((t.data(), t.buffers().len(), t.ports().len()), (&[1, 2, 3][..], 0, 0));
/// ```
#[derive(Debug, Default)]
pub struct Transfer {
    data: Vec<u8>,
    buffers: Vec<Buffer>,
    ports: Vec<MessagePort>,
}

impl std::fmt::Debug for MessagePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagePort")
            .field("named", &self.is_named())
            .finish_non_exhaustive()
    }
}

impl Transfer {
    /// A message of plain `data` with nothing to transfer yet.
    ///
    /// # Example
    /// ```
    /// let t = ringport::transfer::Transfer::new(b"hi".to_vec());
    /// assert_eq!(t.data(), b"hi");
    /// ```
    pub fn new(data: Vec<u8>) -> Transfer {
        Transfer {
            data,
            ..Default::default()
        }
    }

    /// Adds a buffer to the transfer list.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let t = ringport::transfer::Transfer::new(vec![]).with_buffer(pool.try_loan(8)?);
    /// assert_eq!(t.buffers()[0].len(), 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_buffer(mut self, buffer: Buffer) -> Transfer {
        self.buffers.push(buffer);
        self
    }

    /// Adds a port to the transfer list.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let t = ringport::transfer::Transfer::new(vec![]).with_port(ch.port2);
    /// assert_eq!(t.ports().len(), 1);
    /// ```
    pub fn with_port(mut self, port: MessagePort) -> Transfer {
        self.ports.push(port);
        self
    }

    /// The plain data.
    ///
    /// # Example
    /// ```
    /// assert!(ringport::transfer::Transfer::default().data().is_empty());
    /// ```
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The buffers, in the order they were added.
    ///
    /// # Example
    /// ```
    /// assert!(ringport::transfer::Transfer::default().buffers().is_empty());
    /// ```
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }

    /// The ports, in the order they were added.
    ///
    /// # Example
    /// ```
    /// assert!(ringport::transfer::Transfer::default().ports().is_empty());
    /// ```
    pub fn ports(&self) -> &[MessagePort] {
        &self.ports
    }

    /// The data, buffers and ports, to keep.
    ///
    /// # Example
    /// ```
    /// let (data, buffers, ports) = ringport::transfer::Transfer::new(vec![7]).into_parts();
    /// assert_eq!((data, buffers.len(), ports.len()), (vec![7], 0, 0));
    /// ```
    pub fn into_parts(self) -> (Vec<u8>, Vec<Buffer>, Vec<MessagePort>) {
        (self.data, self.buffers, self.ports)
    }
}

/// A transfer that was not posted, with the message given back whole.
#[derive(Debug, Error)]
#[error("{error}")]
pub struct PostTransferError {
    /// Why.
    pub error: BufferSendError,
    /// The message, with every buffer and port still the sender's.
    pub message: Transfer,
}

impl MessagePort {
    /// Checks that everything in `msg` can travel through this port, before anything
    /// changes hands.
    fn check_transfer(&self, msg: &Transfer) -> Result<(), BufferSendError> {
        let named = self.is_named();
        for p in &msg.ports {
            if self.same_channel(p) {
                return Err(TransferError::NotTransferable(
                    "a port cannot travel through its own channel",
                )
                .into());
            }
            if named && !p.is_named() {
                return Err(TransferError::NotTransferable(
                    "a heap port cannot leave its process: make it with MessageChannel::create",
                )
                .into());
            }
        }
        if named && !msg.buffers.iter().all(Buffer::is_named) {
            return Err(TransferError::NotTransferable(
                "a heap pool's buffer cannot leave its process: make the pool with BufferPool::create",
            )
            .into());
        }
        let len = wire::HEADER_LEN
            + msg.data.len().next_multiple_of(8)
            + msg.buffers.len() * 32
            + msg
                .ports
                .iter()
                .map(|p| if p.is_named() { 48 + 200 } else { 24 })
                .sum::<usize>();
        if msg.buffers.len() > usize::from(u16::MAX)
            || msg.ports.len() > usize::from(u16::MAX)
            || len > self.max_frame()
        {
            return Err(SendError::TooLarge {
                len,
                max: self.max_frame(),
            }
            .into());
        }
        Ok(())
    }

    fn post_transfer_with(
        &mut self,
        msg: Transfer,
        post: impl FnOnce(&mut MessagePort, &[u8]) -> Result<(), SendError>,
    ) -> Result<(), PostTransferError> {
        if let Err(error) = self.check_transfer(&msg) {
            return Err(PostTransferError {
                error,
                message: msg,
            });
        }
        // The buffers stay values until the post is known to have succeeded, so that a
        // failed one gives them back without looking up their pools.
        let buffers = msg.buffers;
        let wire = WireMessage {
            buffers: buffers.iter().map(Buffer::mark_sent).collect(),
            ports: msg
                .ports
                .into_iter()
                .map(MessagePort::into_ticket)
                .collect(),
            data: msg.data,
        };
        let bytes = wire::encode(&wire);
        match post(self, &bytes) {
            Ok(()) => {
                buffers.into_iter().for_each(Buffer::forget);
                Ok(())
            }
            Err(e) => {
                // Nothing was published: take everything back. Only a port whose
                // channel's name vanished meanwhile (its peer is gone) can fail to come
                // back, and then it has nowhere to go.
                buffers.iter().for_each(Buffer::recall);
                let ports = WireMessage {
                    ports: wire.ports,
                    data: wire.data,
                    buffers: Vec::new(),
                };
                let (mut message, _) = take(ports, &[]);
                message.buffers = buffers;
                Err(PostTransferError {
                    error: e.into(),
                    message,
                })
            }
        }
    }

    /// Posts a message with its transfer list, waiting for room in the ring.
    ///
    /// # Errors
    /// [`TransferError::NotTransferable`] (a heap port or heap pool's buffer through a
    /// named port, or a port through its own channel), [`SendError::TooLarge`] when the
    /// message does not fit a frame, or the ring's other errors; the message comes back
    /// in the error, everything in it still the sender's.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let (mut a, b) = (ch.port1, ch.port2);
    /// let err = a.post_transfer(ringport::transfer::Transfer::new(vec![]).with_port(b)).unwrap_err();
    /// assert!(matches!(
    ///     err.error,
    ///     ringport::pool::BufferSendError::Transfer(ringport::pool::TransferError::NotTransferable(_))
    /// ));
    /// assert_eq!(err.message.ports().len(), 1); // given back
    /// ```
    pub fn post_transfer(&mut self, msg: Transfer) -> Result<(), PostTransferError> {
        self.post_transfer_with(msg, |p, b| p.post_message(b))
    }

    /// Posts a message with its transfer list if there is room now.
    ///
    /// # Errors
    /// As [`post_transfer`](Self::post_transfer), with [`SendError::Full`].
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let mut a = ch.port1;
    /// a.try_post_transfer(ringport::transfer::Transfer::new(b"x".to_vec())).unwrap();
    /// ```
    pub fn try_post_transfer(&mut self, msg: Transfer) -> Result<(), PostTransferError> {
        self.post_transfer_with(msg, |p, b| p.try_post_message(b))
    }

    /// Posts a message with its transfer list, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`post_transfer`](Self::post_transfer), with [`SendError::Timeout`].
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let mut a = ch.port1;
    /// let t = ringport::transfer::Transfer::new(vec![]);
    /// a.post_transfer_timeout(t, std::time::Duration::from_secs(1)).unwrap();
    /// ```
    pub fn post_transfer_timeout(
        &mut self,
        msg: Transfer,
        timeout: Duration,
    ) -> Result<(), PostTransferError> {
        self.post_transfer_with(msg, |p, b| p.post_message_timeout(b, timeout))
    }

    /// Receives a message with its transfer list, waiting as long as it takes. Buffers
    /// are accepted into whichever of `pools` their handles name.
    ///
    /// # Errors
    /// The ring's errors as [`BufferRecvError::Recv`]; a refused message as
    /// [`BufferRecvError::Transfer`] (see the module docs: the message is consumed, and
    /// its valid buffers and ports are released).
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let (mut a, mut b) = (ch.port1, ch.port2);
    /// a.post_message(b"not a transfer").unwrap();
    /// assert!(matches!(
    ///     b.recv_transfer(&[]),
    ///     Err(ringport::pool::BufferRecvError::Transfer(ringport::pool::TransferError::Malformed(_)))
    /// ));
    /// ```
    pub fn recv_transfer(&mut self, pools: &[BufferPool]) -> Result<Transfer, BufferRecvError> {
        self.recv_transfer_until(pools, None)
    }

    /// Receives a message with its transfer list if one is waiting.
    ///
    /// # Errors
    /// As [`recv_transfer`](Self::recv_transfer), with `Empty`.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let mut b = ch.port2;
    /// assert_eq!(b.try_recv_transfer(&[]).unwrap_err(), ringport::RecvError::Empty.into());
    /// ```
    pub fn try_recv_transfer(&mut self, pools: &[BufferPool]) -> Result<Transfer, BufferRecvError> {
        let wire = self.try_recv_with(wire::decode)??;
        take_all(wire, pools)
    }

    /// Receives a message with its transfer list, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_transfer`](Self::recv_transfer), with `Timeout`.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let mut b = ch.port2;
    /// let r = b.recv_transfer_timeout(&[], std::time::Duration::from_millis(1));
    /// assert_eq!(r.unwrap_err(), ringport::RecvError::Timeout.into());
    /// ```
    pub fn recv_transfer_timeout(
        &mut self,
        pools: &[BufferPool],
        timeout: Duration,
    ) -> Result<Transfer, BufferRecvError> {
        self.recv_transfer_until(pools, Instant::now().checked_add(timeout))
    }

    fn recv_transfer_until(
        &mut self,
        pools: &[BufferPool],
        deadline: Option<Instant>,
    ) -> Result<Transfer, BufferRecvError> {
        let wire = match deadline {
            None => self.recv_with(wire::decode)??,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                let frame = self.recv_timeout(left)?;
                wire::decode(&frame)?
            }
        };
        take_all(wire, pools)
    }
}

/// Takes everything a decoded message transfers, or refuses it whole: what could be taken
/// of a refused message is dropped, so its buffers go back to their pools and its ports
/// close.
fn take_all(wire: WireMessage, pools: &[BufferPool]) -> Result<Transfer, BufferRecvError> {
    match take(wire, pools) {
        (t, None) => Ok(t),
        (_, Some(e)) => Err(e.into()),
    }
}

/// Takes whatever it can of a decoded message, and says why anything could not be taken.
fn take(wire: WireMessage, pools: &[BufferPool]) -> (Transfer, Option<TransferError>) {
    let mut first_error = None;
    let mut buffers = Vec::with_capacity(wire.buffers.len());
    for h in &wire.buffers {
        let r = match pools.iter().find(|p| p.id() == h.pool_id()) {
            Some(pool) => pool.accept(h),
            None => Err(TransferError::ForeignPool {
                expected: pools.first().map_or(0, BufferPool::id),
                found: h.pool_id(),
            }),
        };
        match r {
            Ok(b) => buffers.push(b),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut ports = Vec::with_capacity(wire.ports.len());
    for t in wire.ports {
        match MessagePort::from_ticket(t) {
            Ok(p) => ports.push(p),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let t = Transfer {
        data: wire.data,
        buffers,
        ports,
    };
    (t, first_error)
}
