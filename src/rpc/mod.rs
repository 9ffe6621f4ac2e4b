//! Request/response over a port or a broadcast channel: the web's CommunicationManager
//! pattern of handlers by message type, requests that wait for their response with a
//! timeout, and notifications that expect no answer.
//!
//! # The contract
//!
//! - **Handlers** ([`CommunicationManager::register_handler`]) answer requests of their
//!   type with a response, or with an error that reaches the requester as
//!   [`RequestError::Remote`]. They run one at a time on the manager's dispatcher thread,
//!   which receives everything that arrives; a slow handler delays every other message.
//! - **Requests** ([`request`](CommunicationManager::request),
//!   [`request_timeout`](CommunicationManager::request_timeout)) carry a correlation id
//!   unique across processes (the process id in the high 32 bits, a process-wide counter
//!   below), and return the response with that id, or [`RequestError::Timeout`] after the
//!   timeout (5 s unless given). A request that timed out leaves no entry behind, and its
//!   late response is dropped.
//! - **Notifications** ([`broadcast`](CommunicationManager::broadcast)) run the
//!   listeners that the receivers registered for their type
//!   ([`on_notification`](CommunicationManager::on_notification)).
//! - **Over a port** ([`over_port`](CommunicationManager::over_port)) there is one peer.
//!   A request of a type the peer has no handler for fails with
//!   [`RequestError::NoHandler`].
//! - **Over a broadcast channel** ([`over_broadcast`](CommunicationManager::over_broadcast))
//!   a request and a notification reach every other manager on the channel, never the
//!   sender. The first response wins; later ones are dropped. A manager without a
//!   handler for the type stays silent, since another one may answer: a request nobody
//!   handles times out. Under [`Overflow::Overwrite`](crate::broadcast::Overflow) a
//!   manager that falls a whole ring behind loses what was overwritten, and requests
//!   lost that way time out too.
//! - **Closing** ([`close`](CommunicationManager::close), the last clone dropping, or the
//!   transport closing because the peer closed or died) fails every pending request with
//!   [`RequestError::Closed`]; later requests fail the same way.
//!
//! Messages travel in the [`envelope`] format, which the receiver decodes as untrusted
//! input: a frame that is not an envelope is dropped.
//!
//! # Example
//! ```
//! use ringport::rpc::{CommunicationManager, RequestError};
//! use ringport::MessageChannel;
//!
//! let ch = MessageChannel::new();
//! let main = CommunicationManager::over_port(ch.port1);
//! let worker = CommunicationManager::over_port(ch.port2); // usually another thread or process
//! worker.register_handler("double", |p: &[u8]| {
//!     let n: u64 = std::str::from_utf8(p).map_err(|e| e.to_string())?.parse().map_err(|e| format!("{e}"))?;
//!     Ok::<_, String>((2 * n).to_string().into_bytes())
//! })?;
//! assert_eq!(main.request("double", b"21").unwrap(), b"42");
//! assert!(matches!(main.request("double", b"x"), Err(RequestError::Remote(_))));
//! assert!(matches!(main.request("triple", b"1"), Err(RequestError::NoHandler { .. })));
//! # Ok::<(), ringport::rpc::envelope::EncodeError>(())
//! ```

pub mod envelope;

use crate::broadcast::{BroadcastChannel, ChannelError, ChannelReceiver, ChannelSender};
use crate::error::{RecvError, SendError};
use crate::ring::ctrl::{spin_then, DEFAULT_SPIN};
use crate::ring::{FrameConsumer, FrameProducer};
use crate::MessagePort;
use envelope::{decode, EncodeError, Envelope, Kind, HEADER_LEN};
use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::{JoinHandle, Thread, ThreadId};
use std::time::{Duration, Instant};
use thiserror::Error;

/// How long [`CommunicationManager::request`] waits for a response.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle dispatcher waits for a message before it looks whether it should
/// stop: what [`CommunicationManager::close`] waits at most for it, beside a handler
/// that is running. The rings' wakeups cannot be triggered from outside, hence a tick.
const TICK: Duration = Duration::from_millis(10);
/// How soon a dispatcher with responses it could not send yet tries again.
const RETRY: Duration = Duration::from_millis(1);

/// Why a request, or a notification, failed.
///
/// # Example
/// ```
/// use ringport::rpc::{CommunicationManager, RequestError};
/// let ch = ringport::MessageChannel::new();
/// let a = CommunicationManager::over_port(ch.port1);
/// a.close();
/// assert_eq!(a.request("anything", b""), Err(RequestError::Closed));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No response arrived before the timeout.
    #[error("no response before the timeout")]
    Timeout,
    /// The handler failed; its error's message.
    #[error("the handler failed: {0}")]
    Remote(String),
    /// The receiver has no handler for the type (over a port).
    #[error("the receiver has no handler for type {ty:?}")]
    NoHandler {
        /// The request's type.
        ty: String,
    },
    /// The manager was closed, or its transport: the peer closed, or died.
    #[error("the manager or its transport is closed")]
    Closed,
    /// The payload is longer than one message of the transport carries with this type.
    #[error("payload of {len} bytes exceeds the {max} bytes a message of this type carries")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The longest payload for this type.
        max: usize,
    },
    /// The type cannot be encoded (too long).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A handler asked its own manager: the response could never be dispatched, since
    /// the dispatcher is busy running that handler.
    #[error("a handler cannot make a request of its own manager")]
    FromHandler,
    /// The transport failed otherwise (its shared memory is corrupt).
    #[error(transparent)]
    Send(SendError),
}

impl From<SendError> for RequestError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Timeout => RequestError::Timeout,
            SendError::Disconnected | SendError::PeerDied { .. } => RequestError::Closed,
            SendError::TooLarge { len, max } => RequestError::TooLarge { len, max },
            other => RequestError::Send(other),
        }
    }
}

impl From<ChannelError> for RequestError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Send(e) => e.into(),
            // Posting can fail with nothing else; a closed channel is a closed manager.
            _ => RequestError::Closed,
        }
    }
}

type Handler = Arc<Mutex<Box<dyn FnMut(&[u8]) -> Result<Vec<u8>, String> + Send>>>;
type Listener = Arc<Mutex<Box<dyn FnMut(&[u8]) + Send>>>;

/// Locks `m`, going on after a panic of a previous holder: a handler that panicked is
/// reported to its requester, and what the locks guard stays consistent (maps, and
/// handlers, which remain callable).
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A correlation id unique across the processes on one channel, barring pid reuse.
fn next_id() -> u64 {
    static COUNTER: AtomicU32 = AtomicU32::new(1);
    (u64::from(std::process::id()) << 32) | u64::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Where a pending request's response lands.
struct Slot {
    done: AtomicBool,
    value: Mutex<Option<Result<Vec<u8>, RequestError>>>,
    waiter: Thread,
}

impl Slot {
    fn fill(&self, value: Result<Vec<u8>, RequestError>) {
        *lock(&self.value) = Some(value);
        self.done.store(true, Ordering::Release);
        self.waiter.unpark();
    }

    /// Waits until the slot is filled or `deadline` passes; true if filled. It polls
    /// for as long as the rings do before it parks: with a fast handler and cores to
    /// spare, the response arrives within that, and parking would cost a wakeup.
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let filled = || self.done.load(Ordering::Acquire).then_some(());
        if spin_then(DEFAULT_SPIN, filled).is_some() {
            return true;
        }
        // Parks can end early (another unpark of this thread): the flag decides.
        loop {
            if self.done.load(Ordering::Acquire) {
                return true;
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    std::thread::park_timeout(d - now);
                }
            }
        }
    }

    fn take(&self) -> Result<Vec<u8>, RequestError> {
        lock(&self.value)
            .take()
            .expect("a filled slot is taken once")
    }
}

#[derive(Default)]
struct Pending {
    closed: bool,
    slots: HashMap<u64, Arc<Slot>>,
}

/// The sending side of a transport.
enum Tx {
    Port(Mutex<Option<FrameProducer>>),
    Broadcast(RwLock<Option<ChannelSender>>),
}

impl Tx {
    /// Sends `bytes`, waiting for room until `deadline`.
    fn send(&self, bytes: &[u8], deadline: Option<Instant>) -> Result<(), RequestError> {
        let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match self {
            Tx::Port(tx) => {
                let mut tx = lock(tx);
                let tx = tx.as_mut().ok_or(RequestError::Closed)?;
                match left() {
                    Some(t) => tx.send_timeout(bytes, t)?,
                    None => tx.send(bytes)?,
                }
            }
            Tx::Broadcast(tx) => {
                let tx = tx.read().unwrap_or_else(PoisonError::into_inner);
                let tx = tx.as_ref().ok_or(RequestError::Closed)?;
                match left() {
                    Some(t) => tx.post_message_timeout(bytes, t)?,
                    None => tx.post_message(bytes)?,
                }
            }
        }
        Ok(())
    }

    /// Sends `bytes` if it can without waiting, for room or for the lock; false if it
    /// could not.
    fn try_send(&self, bytes: &[u8]) -> Result<bool, RequestError> {
        let r = match self {
            Tx::Port(tx) => match tx.try_lock() {
                Ok(mut tx) => tx
                    .as_mut()
                    .ok_or(RequestError::Closed)?
                    .try_send(bytes)
                    .map_err(ChannelError::Send),
                Err(_) => return Ok(false),
            },
            Tx::Broadcast(tx) => match tx.try_read() {
                Ok(tx) => tx
                    .as_ref()
                    .ok_or(RequestError::Closed)?
                    .try_post_message(bytes),
                Err(_) => return Ok(false),
            },
        };
        match r {
            Ok(()) => Ok(true),
            Err(ChannelError::Send(SendError::Full)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the sending half: the peer of a port sees the channel closed.
    fn close(&self) {
        match self {
            Tx::Port(tx) => drop(lock(tx).take()),
            Tx::Broadcast(tx) => drop(tx.write().unwrap_or_else(PoisonError::into_inner).take()),
        }
    }
}

/// The receiving side of a transport, owned by the dispatcher.
enum Rx {
    Port(FrameConsumer),
    Broadcast(ChannelReceiver),
}

/// Why the dispatcher got no message.
enum Idle {
    /// Nothing yet (or, under overwrite, messages lost to a lag): look again.
    Nothing,
    /// The transport is closed or broken: stop.
    Gone,
}

impl Rx {
    /// Waits at most `timeout` for a message and calls `f` on it in place.
    fn recv_timeout(&mut self, timeout: Duration, f: impl FnOnce(&[u8])) -> Result<(), Idle> {
        let idle = |e: RecvError| match e {
            RecvError::Timeout | RecvError::Empty | RecvError::Lagged(_) => Idle::Nothing,
            _ => Idle::Gone,
        };
        match self {
            Rx::Port(rx) => f(&rx.recv_timeout(timeout).map_err(idle)?),
            Rx::Broadcast(rx) => match rx.recv_timeout(timeout) {
                Ok(bytes) => f(bytes),
                Err(ChannelError::Recv(e)) => return Err(idle(e)),
                Err(_) => return Err(Idle::Gone),
            },
        }
        Ok(())
    }
}

/// What the dispatcher and the requesters share.
struct Shared {
    tx: Tx,
    /// The longest message the transport carries.
    max_message: usize,
    pending: Mutex<Pending>,
    handlers: Mutex<HashMap<String, Handler>>,
    listeners: Mutex<HashMap<String, Vec<Listener>>>,
    /// Set by `close`: the dispatcher stops at its next look.
    stopping: AtomicBool,
}

impl Shared {
    /// Removes the pending entry `id`; false if the dispatcher (or a close) took it first.
    fn forget(&self, id: u64) -> bool {
        lock(&self.pending).slots.remove(&id).is_some()
    }

    /// Refuses new requests, fails the pending ones with `Closed` and drops the sender.
    fn shut(&self) {
        let slots = {
            let mut pending = lock(&self.pending);
            pending.closed = true;
            std::mem::take(&mut pending.slots)
        };
        for slot in slots.into_values() {
            slot.fill(Err(RequestError::Closed));
        }
        self.tx.close();
    }

    /// The encoding of `e`, checked against the transport's maximum.
    fn encode(&self, e: &Envelope<'_>) -> Result<Vec<u8>, RequestError> {
        if e.encoded_len() > self.max_message {
            let overhead = HEADER_LEN + e.ty.len();
            return Err(RequestError::TooLarge {
                len: e.payload.len(),
                max: self.max_message.saturating_sub(overhead),
            });
        }
        Ok(e.to_vec()?)
    }

    /// Handles one received message; responses it cannot send now join `backlog`.
    fn dispatch(&self, bytes: &[u8], backlog: &mut VecDeque<Vec<u8>>) {
        // Not an envelope (or a version this build does not read): from no manager.
        let Ok(e) = decode(bytes) else { return };
        match e.kind {
            Kind::Request => {
                if let Some(reply) = self.answer(&e) {
                    if backlog.is_empty() && matches!(self.tx.try_send(&reply), Ok(true)) {
                        return;
                    }
                    // A closed transport fails this again at the flush, which stops.
                    backlog.push_back(reply);
                }
            }
            Kind::Response | Kind::Error | Kind::NoHandler => {
                let Some(slot) = lock(&self.pending).slots.remove(&e.id) else {
                    // Timed out already, another responder won, or not ours.
                    return;
                };
                slot.fill(match e.kind {
                    Kind::Response => Ok(e.payload.to_vec()),
                    Kind::Error => Err(RequestError::Remote(
                        String::from_utf8_lossy(e.payload).into_owned(),
                    )),
                    _ => Err(RequestError::NoHandler {
                        ty: e.ty.to_owned(),
                    }),
                });
            }
            Kind::Notify => {
                let listeners = lock(&self.listeners).get(e.ty).cloned();
                for listener in listeners.into_iter().flatten() {
                    // A panicking listener must not stop the dispatcher; it already
                    // reported itself through the panic hook.
                    let _ = catch_unwind(AssertUnwindSafe(|| (lock(&listener))(e.payload)));
                }
            }
        }
    }

    /// The encoded answer to request `e`, or `None` for silence (over a broadcast
    /// channel, where another manager may have a handler).
    fn answer(&self, e: &Envelope<'_>) -> Option<Vec<u8>> {
        let handler = lock(&self.handlers).get(e.ty).cloned();
        let outcome = match handler {
            Some(h) => catch_unwind(AssertUnwindSafe(|| (lock(&h))(e.payload)))
                .unwrap_or_else(|_| Err(format!("the handler for {:?} panicked", e.ty))),
            None if matches!(self.tx, Tx::Broadcast(_)) => return None,
            None => {
                return self
                    .encode(&Envelope {
                        kind: Kind::NoHandler,
                        payload: b"",
                        ..*e
                    })
                    .ok()
            }
        };
        let encoded = match &outcome {
            Ok(response) => self.encode(&Envelope {
                kind: Kind::Response,
                payload: response,
                ..*e
            }),
            Err(message) => self.encode(&Envelope {
                kind: Kind::Error,
                payload: message.as_bytes(),
                ..*e
            }),
        };
        encoded
            .or_else(|too_large| {
                // The answer does not fit the transport: say so, briefly.
                let message = too_large.to_string();
                self.encode(&Envelope {
                    kind: Kind::Error,
                    payload: message.as_bytes(),
                    ..*e
                })
            })
            .ok()
    }

    /// Sends what the backlog holds, in order, while the transport has room; false if
    /// the transport is closed.
    fn flush(&self, backlog: &mut VecDeque<Vec<u8>>) -> bool {
        while let Some(reply) = backlog.front() {
            match self.tx.try_send(reply) {
                Ok(true) => drop(backlog.pop_front()),
                Ok(false) => return true,
                Err(_) => return false,
            }
        }
        true
    }
}

/// Receives and dispatches until the manager closes or the transport does. Responses
/// are sent without waiting (queued when the transport is full), so that two managers
/// answering each other's requests cannot wait on each other for ever.
fn dispatch_loop(shared: Arc<Shared>, mut rx: Rx) {
    let mut backlog = VecDeque::new();
    while !shared.stopping.load(Ordering::Acquire) && shared.flush(&mut backlog) {
        let wait = if backlog.is_empty() { TICK } else { RETRY };
        if let Err(Idle::Gone) = rx.recv_timeout(wait, |bytes| shared.dispatch(bytes, &mut backlog))
        {
            break;
        }
    }
    shared.shut();
}

/// Closes the manager when the last clone drops.
struct Owner {
    shared: Arc<Shared>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    dispatcher_id: ThreadId,
}

impl Owner {
    fn close(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.shut();
        // A handler closing its own manager: the dispatcher stops when it returns.
        if std::thread::current().id() != self.dispatcher_id {
            if let Some(dispatcher) = lock(&self.dispatcher).take() {
                // Handlers' panics are caught, so the dispatcher itself does not panic.
                let _ = dispatcher.join();
            }
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.close();
    }
}

/// Request/response and notifications over a port or a broadcast channel, with handlers
/// and listeners by message type. Clones share one manager; it closes when the last
/// one drops, or at [`close`](Self::close).
///
/// Handlers and listeners run on the manager's dispatcher thread, one at a time. A
/// handler that makes a request of its own manager gets [`RequestError::FromHandler`]
/// (its response could not be dispatched until it returned); one that holds a clone of
/// its own manager keeps it open until [`close`](Self::close) is called.
///
/// # Example
/// ```
/// use ringport::rpc::CommunicationManager;
/// use std::sync::mpsc;
///
/// let ch = ringport::MessageChannel::new();
/// let (page, worker) = (
///     CommunicationManager::over_port(ch.port1),
///     CommunicationManager::over_port(ch.port2),
/// );
/// worker.register_handler("ping", |_: &[u8]| Ok::<_, String>(b"pong".to_vec()))?;
/// let (tx, news) = mpsc::channel();
/// page.on_notification("status", move |p: &[u8]| tx.send(p.to_vec()).unwrap())?;
///
/// assert_eq!(page.request("ping", b"").unwrap(), b"pong");
/// worker.broadcast("status", b"ready").unwrap();
/// assert_eq!(news.recv().unwrap(), b"ready");
/// # Ok::<(), ringport::rpc::envelope::EncodeError>(())
/// ```
#[derive(Clone)]
pub struct CommunicationManager {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for CommunicationManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommunicationManager")
            .field("pending", &self.pending())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl CommunicationManager {
    /// A manager talking to whatever is at the other end of `port`: another manager, in
    /// this process or another.
    ///
    /// # Panics
    /// If the dispatcher thread cannot be spawned.
    ///
    /// # Example
    /// ```
    /// let name = format!("doc-rpc-port-{}", std::process::id());
    /// let port = ringport::MessageChannel::create(&name, 1 << 16).unwrap();
    /// let manager = ringport::rpc::CommunicationManager::over_port(port);
    /// let _peer = ringport::MessageChannel::open(&name).unwrap(); // usually another process
    /// assert_eq!(manager.pending(), 0);
    /// ```
    pub fn over_port(port: MessagePort) -> CommunicationManager {
        let (tx, rx) = port.split();
        let max_message = tx.max_frame();
        Self::start(Tx::Port(Mutex::new(Some(tx))), max_message, Rx::Port(rx))
    }

    /// A manager talking to every other manager on the broadcast channel `channel`.
    ///
    /// # Errors
    /// [`ChannelError::Closed`] if the channel object was closed.
    ///
    /// # Panics
    /// If the dispatcher thread cannot be spawned.
    ///
    /// # Example
    /// ```
    /// use ringport::broadcast::BroadcastChannel;
    /// use ringport::rpc::CommunicationManager;
    ///
    /// let name = format!("doc-rpc-bc-{}", std::process::id());
    /// let a = CommunicationManager::over_broadcast(BroadcastChannel::new(&name)?)?;
    /// let b = CommunicationManager::over_broadcast(BroadcastChannel::new(&name)?)?;
    /// b.register_handler("who", |_: &[u8]| Ok::<_, String>(b"b".to_vec())).unwrap();
    /// assert_eq!(a.request("who", b"").unwrap(), b"b");
    /// # Ok::<(), ringport::broadcast::ChannelError>(())
    /// ```
    pub fn over_broadcast(channel: BroadcastChannel) -> Result<CommunicationManager, ChannelError> {
        let (tx, rx) = channel.split()?;
        let max_message = tx.max_message();
        Ok(Self::start(
            Tx::Broadcast(RwLock::new(Some(tx))),
            max_message,
            Rx::Broadcast(rx),
        ))
    }

    fn start(tx: Tx, max_message: usize, rx: Rx) -> CommunicationManager {
        let shared = Arc::new(Shared {
            tx,
            max_message,
            pending: Mutex::default(),
            handlers: Mutex::default(),
            listeners: Mutex::default(),
            stopping: AtomicBool::new(false),
        });
        let for_dispatcher = shared.clone();
        let dispatcher = std::thread::Builder::new()
            .name("ringport-rpc".into())
            .spawn(move || dispatch_loop(for_dispatcher, rx))
            .expect("spawning the dispatcher thread");
        CommunicationManager {
            owner: Arc::new(Owner {
                shared,
                dispatcher_id: dispatcher.thread().id(),
                dispatcher: Mutex::new(Some(dispatcher)),
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.owner.shared
    }

    /// Answers requests of type `ty` with `handler`, in place of any handler it had. The
    /// handler runs on the dispatcher thread; its `Err` reaches the requester as
    /// [`RequestError::Remote`] with the error's message, and so does a panic.
    ///
    /// # Errors
    /// [`EncodeError::TypeTooLong`] for a type over 255 bytes.
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::{CommunicationManager, RequestError};
    /// let ch = ringport::MessageChannel::new();
    /// let (a, b) = (CommunicationManager::over_port(ch.port1), CommunicationManager::over_port(ch.port2));
    /// let mut calls = 0;
    /// b.register_handler("count", move |_: &[u8]| {
    ///     calls += 1;
    ///     if calls > 2 { Err("enough") } else { Ok(vec![calls]) }
    /// })?;
    /// assert_eq!(a.request("count", b"").unwrap(), [1]);
    /// assert_eq!(a.request("count", b"").unwrap(), [2]);
    /// assert_eq!(a.request("count", b""), Err(RequestError::Remote("enough".into())));
    /// # Ok::<(), ringport::rpc::envelope::EncodeError>(())
    /// ```
    pub fn register_handler<F, E>(&self, ty: &str, mut handler: F) -> Result<(), EncodeError>
    where
        F: FnMut(&[u8]) -> Result<Vec<u8>, E> + Send + 'static,
        E: Display,
    {
        check_type(ty)?;
        let handler: Handler = Arc::new(Mutex::new(Box::new(move |p: &[u8]| {
            handler(p).map_err(|e| e.to_string())
        })));
        lock(&self.shared().handlers).insert(ty.to_owned(), handler);
        Ok(())
    }

    /// Runs `listener` on the payload of every notification of type `ty`, beside the
    /// listeners already registered for it. Listeners run on the dispatcher thread.
    ///
    /// # Errors
    /// [`EncodeError::TypeTooLong`] for a type over 255 bytes.
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::CommunicationManager;
    /// let ch = ringport::MessageChannel::new();
    /// let (a, b) = (CommunicationManager::over_port(ch.port1), CommunicationManager::over_port(ch.port2));
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// b.on_notification("log", move |p: &[u8]| tx.send(p.len()).unwrap())?;
    /// a.broadcast("log", b"four").unwrap();
    /// assert_eq!(rx.recv().unwrap(), 4);
    /// # Ok::<(), ringport::rpc::envelope::EncodeError>(())
    /// ```
    pub fn on_notification<F>(&self, ty: &str, listener: F) -> Result<(), EncodeError>
    where
        F: FnMut(&[u8]) + Send + 'static,
    {
        check_type(ty)?;
        let listener: Listener = Arc::new(Mutex::new(Box::new(listener)));
        lock(&self.shared().listeners)
            .entry(ty.to_owned())
            .or_default()
            .push(listener);
        Ok(())
    }

    /// Sends a request of type `ty` and waits up to [`DEFAULT_TIMEOUT`] (5 s) for its
    /// response.
    ///
    /// # Errors
    /// As [`request_timeout`](Self::request_timeout).
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::CommunicationManager;
    /// let ch = ringport::MessageChannel::new();
    /// let (a, b) = (CommunicationManager::over_port(ch.port1), CommunicationManager::over_port(ch.port2));
    /// b.register_handler("len", |p: &[u8]| Ok::<_, String>(vec![p.len() as u8]))?;
    /// assert_eq!(a.request("len", b"abc").unwrap(), [3]);
    /// # Ok::<(), ringport::rpc::envelope::EncodeError>(())
    /// ```
    pub fn request(&self, ty: &str, payload: &[u8]) -> Result<Vec<u8>, RequestError> {
        self.request_timeout(ty, payload, DEFAULT_TIMEOUT)
    }

    /// Sends a request of type `ty` and waits up to `timeout` in all (sending included)
    /// for its response. The first response with its correlation id wins.
    ///
    /// # Errors
    /// [`RequestError::Timeout`]; [`RequestError::Remote`] (the handler failed);
    /// [`RequestError::NoHandler`]; [`RequestError::Closed`]; [`RequestError::TooLarge`];
    /// [`RequestError::Encode`] for a type over 255 bytes; [`RequestError::FromHandler`];
    /// [`RequestError::Send`].
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::{CommunicationManager, RequestError};
    /// use std::time::Duration;
    /// let ch = ringport::MessageChannel::new();
    /// let a = CommunicationManager::over_port(ch.port1);
    /// let _silent = ch.port2; // receives, never answers
    /// let r = a.request_timeout("anyone", b"", Duration::from_millis(10));
    /// assert_eq!(r, Err(RequestError::Timeout));
    /// assert_eq!(a.pending(), 0);
    /// ```
    pub fn request_timeout(
        &self,
        ty: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, RequestError> {
        if std::thread::current().id() == self.owner.dispatcher_id {
            return Err(RequestError::FromHandler);
        }
        let deadline = Instant::now().checked_add(timeout);
        let shared = self.shared();
        let id = next_id();
        let message = shared.encode(&Envelope {
            kind: Kind::Request,
            id,
            ty,
            payload,
        })?;
        let slot = Arc::new(Slot {
            done: AtomicBool::new(false),
            value: Mutex::new(None),
            waiter: std::thread::current(),
        });
        {
            // Entered before sending: the response may arrive before `send` returns.
            let mut pending = lock(&shared.pending);
            if pending.closed {
                return Err(RequestError::Closed);
            }
            pending.slots.insert(id, slot.clone());
        }
        if let Err(e) = shared.tx.send(&message, deadline) {
            if shared.forget(id) {
                return Err(e);
            }
            // Closed meanwhile: the close filled the slot.
        }
        if slot.wait(deadline) || !shared.forget(id) {
            // Filled, or about to be: whoever removed the entry fills it next.
            slot.wait(None);
            return slot.take();
        }
        Err(RequestError::Timeout)
    }

    /// Sends a notification of type `ty`: to the peer over a port, to every other
    /// manager over a broadcast channel. It expects no answer; it waits up to
    /// [`DEFAULT_TIMEOUT`] for room in the transport.
    ///
    /// # Errors
    /// [`RequestError::Closed`], [`RequestError::Timeout`] (no room),
    /// [`RequestError::TooLarge`], [`RequestError::Encode`], [`RequestError::Send`].
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let a = ringport::rpc::CommunicationManager::over_port(ch.port1);
    /// let mut peer = ch.port2;
    /// a.broadcast("hello", b"world").unwrap();
    /// let frame = peer.recv().unwrap();
    /// let e = ringport::rpc::envelope::decode(&frame).unwrap();
    /// assert_eq!((e.ty, e.payload), ("hello", &b"world"[..]));
    /// ```
    pub fn broadcast(&self, ty: &str, payload: &[u8]) -> Result<(), RequestError> {
        let shared = self.shared();
        let message = shared.encode(&Envelope {
            kind: Kind::Notify,
            id: 0,
            ty,
            payload,
        })?;
        if lock(&shared.pending).closed {
            return Err(RequestError::Closed);
        }
        shared
            .tx
            .send(&message, Instant::now().checked_add(DEFAULT_TIMEOUT))
    }

    /// Requests waiting for their response now.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// assert_eq!(ringport::rpc::CommunicationManager::over_port(ch.port1).pending(), 0);
    /// ```
    pub fn pending(&self) -> usize {
        lock(&self.shared().pending).slots.len()
    }

    /// Whether the manager is closed: by [`close`](Self::close), or because its
    /// transport closed.
    ///
    /// # Example
    /// ```
    /// let ch = ringport::MessageChannel::new();
    /// let a = ringport::rpc::CommunicationManager::over_port(ch.port1);
    /// assert!(!a.is_closed());
    /// a.clone().close();
    /// assert!(a.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        lock(&self.shared().pending).closed
    }

    /// Closes the manager for every clone: pending requests fail with
    /// [`RequestError::Closed`], the transport closes (a port's peer sees it
    /// disconnected), and the dispatcher thread is joined, after the handler it may be
    /// running returns. A send in progress on another thread, waiting for room in a
    /// full transport, delays the close by up to that send's timeout. Called from a
    /// handler, it returns at once and the dispatcher stops when the handler returns.
    /// Idempotent.
    ///
    /// # Example
    /// ```
    /// use ringport::rpc::{CommunicationManager, RequestError};
    /// let ch = ringport::MessageChannel::new();
    /// let (a, b) = (CommunicationManager::over_port(ch.port1), CommunicationManager::over_port(ch.port2));
    /// a.close();
    /// assert_eq!(a.broadcast("x", b""), Err(RequestError::Closed));
    /// assert_eq!(b.request("x", b""), Err(RequestError::Closed));
    /// ```
    pub fn close(&self) {
        self.owner.close();
    }
}

fn check_type(ty: &str) -> Result<(), EncodeError> {
    if ty.len() > envelope::MAX_TYPE_LEN {
        return Err(EncodeError::TypeTooLong { len: ty.len() });
    }
    Ok(())
}
