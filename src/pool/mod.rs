//! Zero-copy buffers: a pool of fixed-size buffers whose ownership moves between threads
//! and processes while the bytes stay where they are, like an `ArrayBuffer` in a
//! `postMessage` transfer list.
//!
//! # The model
//!
//! - A [`BufferPool`] holds buffers in up to five size classes, set at creation. It lives
//!   on the heap ([`BufferPool::new`], for threads) or in a named segment
//!   ([`BufferPool::create`] / [`BufferPool::open`], for processes).
//! - [`BufferPool::try_loan`] (or [`loan_timeout`](BufferPool::loan_timeout)) hands out a
//!   writable [`Buffer`] from the smallest class that fits, falling back to larger ones.
//!   The caller writes into it in place.
//! - [`Buffer::into_handle`] consumes the buffer (a Rust move is the web's *detach*) and
//!   returns a 32-byte [`BufferHandle`]: pool, index, generation, length, sender. Only
//!   the handle travels, through a port, an MPMC ring or any channel. The receiver's
//!   [`BufferPool::accept`] checks it and returns the same bytes as its own `Buffer`.
//! - Dropping a `Buffer` returns it to the pool.
//! - Through a broadcast ring ([`BufferPublisher`], [`BufferSubscriber`]) a buffer is
//!   shared read-only and reference-counted: a [`SharedBuffer`] per subscriber, the
//!   buffer going back to the pool when the last reference drops.
//!
//! # Errors
//!
//! Handles are untrusted input: a handle of another pool, out of range, of an old
//! generation (replayed, or the buffer was reclaimed), or naming a buffer its sender did
//! not send, is refused with a [`TransferError`] (the web's `DataCloneError`), and
//! nothing changes hands.
//!
//! # Crashes
//!
//! Every change of hands is one compare-and-swap of the buffer's state word, which names
//! the owning process. When a process dies, [`BufferPool::reclaim`] (run by loans that
//! find a class empty, at most every 100 ms, and by blocked loans) returns everything it
//! held, everything it sent that nobody received yet, its anchors of shared buffers and
//! the shared references it had taken. A receiver that then presents a reclaimed handle
//! gets [`TransferError::Stale`]: in-flight buffers belong to their sender until they
//! are received, so a sender must outlive its deliveries.
//!
//! One window is left open on purpose: a reader's shared reference is counted in the
//! buffer's word and recorded in the reader's table by two stores, so a reader killed
//! between the two (while taking or dropping a reference, a few instructions) leaves a
//! reference nobody can tell from a counted one. The reaper then leaks that buffer rather
//! than risk dropping a live reader's reference and freeing bytes under it.
//!
//! # Example
//! ```
//! use ringport::pool::{BufferPool, PoolOptions};
//!
//! let pool = BufferPool::new(PoolOptions::with_classes(&[(4096, 8)]))?;
//! let (tx, rx) = ringport::mpmc::channel(8);
//! let worker = {
//!     let pool = pool.clone();
//!     std::thread::spawn(move || {
//!         let handle = rx.recv().unwrap();
//!         let buf = pool.accept(&handle).unwrap();
//!         buf.iter().map(|&b| b as u64).sum::<u64>()
//!     })
//! };
//! let mut buf = pool.try_loan(1000)?;
//! buf.fill(1);
//! tx.send(buf.into_handle()).unwrap(); // `buf` is gone: detached
//! assert_eq!(worker.join().unwrap(), 1000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod core;
mod layout;
mod mem;
#[cfg(not(loom))]
mod publish;

use self::core::PoolCore;
use self::layout::PoolGeometry;
pub use self::layout::MAX_CLASSES;
use self::mem::PoolMem;
use crate::participants::Watch;
#[cfg(not(loom))]
pub use publish::{BufferPublisher, BufferRecvError, BufferSendError, BufferSubscriber};
use std::time::{Duration, Instant};
use thiserror::Error;

#[cfg(loom)]
use loom::sync::Arc;
#[cfg(not(loom))]
use std::sync::Arc;

#[cfg(not(loom))]
use crate::segment::{Segment, SegmentError};

/// Segment kind of a named pool (`"POOL"`).
#[cfg(not(loom))]
const KIND_POOL: u32 = u32::from_le_bytes(*b"POOL");

/// How a pool is laid out.
///
/// # Example
/// ```
/// use ringport::pool::PoolOptions;
/// let o = PoolOptions::with_classes(&[(100, 4), (1 << 20, 2)]).processes(8);
/// assert_eq!(o.classes(), &[(128, 4), (1 << 20, 2)]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    classes: Vec<(usize, usize)>,
    processes: usize,
    shared_per_process: usize,
}

impl Default for PoolOptions {
    /// 64 buffers of 4 KiB, 16 of 64 KiB and 4 of 1 MiB (about 5.3 MiB), for up to 64
    /// processes, each holding up to 64 shared buffers at once.
    fn default() -> Self {
        PoolOptions::with_classes(&[(4096, 64), (64 * 1024, 16), (1 << 20, 4)])
    }
}

impl PoolOptions {
    /// Size classes as `(buffer size, count)`: sizes are rounded up to a multiple of 64
    /// and sorted; [`BufferPool::new`] refuses two classes of one size, more than
    /// [`MAX_CLASSES`], or an empty class.
    ///
    /// # Example
    /// ```
    /// let o = ringport::pool::PoolOptions::with_classes(&[(1 << 16, 2), (64, 10)]);
    /// assert_eq!(o.classes(), &[(64, 10), (1 << 16, 2)]);
    /// ```
    pub fn with_classes(classes: &[(usize, usize)]) -> PoolOptions {
        let mut classes: Vec<(usize, usize)> = classes
            .iter()
            .map(|&(size, count)| (size.max(1).next_multiple_of(64), count))
            .collect();
        classes.sort_unstable();
        PoolOptions {
            classes,
            processes: 64,
            shared_per_process: 64,
        }
    }

    /// How many processes may use a named pool at once (default 64; at most 16383).
    ///
    /// # Example
    /// ```
    /// let o = ringport::pool::PoolOptions::default().processes(4);
    /// # let _ = o;
    /// ```
    pub fn processes(mut self, n: usize) -> PoolOptions {
        self.processes = n;
        self
    }

    /// How many shared buffers one process may hold at once in a named pool (default 64),
    /// so that a dead subscriber's references can be dropped. Heap pools have no limit.
    ///
    /// # Example
    /// ```
    /// let o = ringport::pool::PoolOptions::default().shared_per_process(256);
    /// # let _ = o;
    /// ```
    pub fn shared_per_process(mut self, n: usize) -> PoolOptions {
        self.shared_per_process = n;
        self
    }

    /// The size classes, as rounded and sorted.
    ///
    /// # Example
    /// ```
    /// assert_eq!(ringport::pool::PoolOptions::default().classes().len(), 3);
    /// ```
    pub fn classes(&self) -> &[(usize, usize)] {
        &self.classes
    }

    fn geometry(&self) -> Result<PoolGeometry, PoolError> {
        if self.classes.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(PoolError::Options("two size classes of one size"));
        }
        PoolGeometry::new(&self.classes, self.processes, self.shared_per_process)
            .map_err(PoolError::Options)
    }
}

/// Why a pool could not be made or joined.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The options describe no valid pool.
    #[error("invalid pool options: {0}")]
    Options(&'static str),
    /// The segment could not be created or opened, or failed validation.
    #[cfg(not(loom))]
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// Every participant record is held by a live process.
    #[error("every participant record of pool {name:?} is held by a live process")]
    Full {
        /// The pool's name.
        name: String,
    },
}

/// Why no buffer was loaned.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoanError {
    /// Every buffer that could hold `len` bytes is in use.
    #[error("no free buffer holds {len} bytes")]
    Empty {
        /// The length asked for.
        len: usize,
    },
    /// `len` is larger than the largest size class.
    #[error("{len} bytes is more than the largest buffer ({max} bytes)")]
    TooLarge {
        /// The length asked for.
        len: usize,
        /// The largest class's size.
        max: usize,
    },
    /// No buffer came back in time.
    #[error("no buffer of {len} bytes came back in time")]
    Timeout {
        /// The length asked for.
        len: usize,
    },
}

/// Why a handle, or a message carrying handles and ports, was refused: the web's
/// `DataCloneError`. Nothing changes hands when it is returned.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// The handle belongs to another pool.
    #[error("buffer handle of pool {found:#x} presented to pool {expected:#x}")]
    ForeignPool {
        /// This pool's id.
        expected: u64,
        /// The handle's.
        found: u64,
    },
    /// The handle's index or length is outside the pool.
    #[error("buffer handle out of range: {0}")]
    OutOfRange(&'static str),
    /// The buffer has gone back to the pool since the handle was made: a replayed
    /// handle, or one whose sender died and whose buffer was reclaimed.
    #[error("buffer {index}: stale handle (wrong generation, or the buffer was reclaimed)")]
    Stale {
        /// The buffer.
        index: u32,
    },
    /// This process already received this handle.
    #[error("buffer {index}: handle already received")]
    AlreadyReceived {
        /// The buffer.
        index: u32,
    },
    /// The handle's sender did not send this buffer: another process holds it, or sent
    /// it.
    #[error("buffer {index}: its sender did not own it")]
    NotOwned {
        /// The buffer.
        index: u32,
    },
    /// An exclusive handle presented as shared, or the reverse.
    #[error("buffer {index}: shared and exclusive handles mixed up")]
    WrongKind {
        /// The buffer.
        index: u32,
    },
    /// The same buffer appears twice in one message.
    #[error("buffer {index} transferred twice in one message")]
    Duplicate {
        /// The buffer.
        index: u32,
    },
    /// This process holds as many shared buffers as the pool allows.
    #[error("this process already holds {limit} shared buffers")]
    SharedLimit {
        /// The limit.
        limit: usize,
    },
    /// A message's bytes are not a valid transfer message.
    #[error("malformed transfer message: {0}")]
    Malformed(&'static str),
    /// A value that cannot travel where it was sent.
    #[error("not transferable: {0}")]
    NotTransferable(&'static str),
    /// A transferred port could not be taken over.
    #[error("transferred port: {0}")]
    Port(String),
}

/// The web's name for a refused transfer.
pub type DataCloneError = TransferError;

/// What travels instead of a buffer's bytes (32 bytes, `Pod`, so it fits any ring).
///
/// # Example
/// ```
/// let pool = ringport::pool::BufferPool::new(Default::default()).unwrap();
/// let h = pool.try_loan(10).unwrap().into_handle();
/// assert_eq!((h.len(), h.pool_id()), (10, pool.id()));
/// assert_eq!(std::mem::size_of_val(&h), 32);
/// # drop(pool.accept(&h));
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BufferHandle {
    pool: u64,
    len: u64,
    index: u32,
    gen: u32,
    sender: u32,
    flags: u32,
}

const SHARED_FLAG: u32 = 1;

impl BufferHandle {
    /// The id of the pool the buffer belongs to.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default()).unwrap();
    /// assert_eq!(pool.try_loan(1).unwrap().into_handle().pool_id(), pool.id());
    /// ```
    pub fn pool_id(&self) -> u64 {
        self.pool
    }

    /// The buffer's index in its pool.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default()).unwrap();
    /// assert!(pool.try_loan(1).unwrap().into_handle().index() < 84);
    /// ```
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Which loan of the buffer this handle names.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default()).unwrap();
    /// assert_eq!(pool.try_loan(1).unwrap().into_handle().generation(), 0);
    /// ```
    pub fn generation(&self) -> u32 {
        self.gen
    }

    /// The length of the buffer's contents.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default()).unwrap();
    /// assert_eq!(pool.try_loan(5).unwrap().into_handle().len(), 5);
    /// ```
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the buffer has no contents.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default()).unwrap();
    /// assert!(pool.try_loan(0).unwrap().into_handle().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it names a shared, read-only buffer (sent through a broadcast ring).
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default()).unwrap();
    /// assert!(!pool.try_loan(1).unwrap().into_handle().is_shared());
    /// ```
    pub fn is_shared(&self) -> bool {
        self.flags & SHARED_FLAG != 0
    }
}

struct Shared {
    core: PoolCore,
    watch: Watch,
    #[cfg(not(loom))]
    name: Option<String>,
}

/// A pool of buffers on the heap or in a named segment. Clones share it.
///
/// # Example
/// ```
/// use ringport::pool::{BufferPool, LoanError, PoolOptions};
/// let pool = BufferPool::new(PoolOptions::with_classes(&[(64, 1)]))?;
/// let buf = pool.try_loan(64)?;
/// assert_eq!(pool.try_loan(1).unwrap_err(), LoanError::Empty { len: 1 });
/// drop(buf);
/// assert!(pool.try_loan(1).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("id", &self.id())
            .field("classes", &self.classes())
            .finish_non_exhaustive()
    }
}

/// Heap pools' ids: this process's id with a counter, so two pools never share one.
fn heap_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (u64::from(std::process::id()) << 32) ^ n ^ (1 << 63)
}

impl BufferPool {
    fn from_core(core: PoolCore, #[cfg(not(loom))] name: Option<String>) -> BufferPool {
        BufferPool {
            shared: Arc::new(Shared {
                core,
                watch: Watch::default(),
                #[cfg(not(loom))]
                name,
            }),
        }
    }

    /// A pool on the heap, for the threads of this process.
    ///
    /// # Errors
    /// [`PoolError::Options`] if the options describe no valid pool.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// assert_eq!(pool.classes().len(), 3);
    /// # Ok::<(), ringport::pool::PoolError>(())
    /// ```
    pub fn new(options: PoolOptions) -> Result<BufferPool, PoolError> {
        let geo = options.geometry()?;
        let mem = PoolMem::heap(geo);
        mem.records()[0]
            .token
            .store(1, crate::sync::Ordering::Relaxed);
        Ok(BufferPool::from_core(
            PoolCore {
                mem,
                me: 1,
                token: 1,
                id: heap_id(),
            },
            #[cfg(not(loom))]
            None,
        ))
    }

    /// Creates the named pool `name` for processes to share; the returned handle owns the
    /// name and unlinks it when the last clone drops.
    ///
    /// # Errors
    /// [`PoolError::Options`], or [`PoolError::Segment`] (the name is taken or invalid,
    /// `/dev/shm` is full, …).
    ///
    /// # Example
    /// ```
    /// use ringport::pool::{BufferPool, PoolOptions};
    /// let name = format!("doc-pool-{}", std::process::id());
    /// let pool = BufferPool::create(&name, PoolOptions::with_classes(&[(4096, 4)]))?;
    /// let other = BufferPool::open(&name)?; // as another process would
    /// let h = pool.try_loan(3)?.into_handle();
    /// assert_eq!(other.accept(&h)?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create(name: &str, options: PoolOptions) -> Result<BufferPool, PoolError> {
        let geo = options.geometry()?;
        let nonce = (crate::process::ProcessId::current().start_time as u32)
            ^ (heap_id() as u32).rotate_left(7);
        let segment = Segment::create(name, KIND_POOL, geo.params(nonce), geo.len)?;
        BufferPool::attach(segment, geo, nonce)
    }

    /// Opens the named pool `name` that another process created.
    ///
    /// A process is one participant: every handle it opens or clones of one pool shares
    /// its participant record, so buffers belong to processes, not to handles (a handle
    /// presented twice in one process reads `AlreadyReceived` whichever pool handle takes
    /// it the second time).
    ///
    /// # Errors
    /// [`PoolError::Segment`] (not found, not a pool, damaged header or sizes), or
    /// [`PoolError::Full`] when every participant record is held by a live process.
    ///
    /// # Example
    /// ```
    /// let r = ringport::pool::BufferPool::open("no-such-pool");
    /// assert!(matches!(r, Err(ringport::pool::PoolError::Segment(_))));
    /// ```
    #[cfg(not(loom))]
    pub fn open(name: &str) -> Result<BufferPool, PoolError> {
        let segment = Segment::open(name, KIND_POOL)?;
        let (geo, nonce) = PoolGeometry::from_params(segment.params()).map_err(|reason| {
            SegmentError::Corrupt {
                name: name.to_owned(),
                reason: format!("pool geometry: {reason}"),
            }
        })?;
        if geo.len != segment.payload_len() {
            return Err(SegmentError::Corrupt {
                name: name.to_owned(),
                reason: "payload length does not match the pool's sizes".into(),
            }
            .into());
        }
        BufferPool::attach(segment, geo, nonce)
    }

    #[cfg(not(loom))]
    fn attach(segment: Segment, geo: PoolGeometry, nonce: u32) -> Result<BufferPool, PoolError> {
        let name = segment.name().to_owned();
        let id = segment.creator().to_word() ^ u64::from(nonce) << 40;
        let token = crate::process::ProcessId::current().to_word();
        let mem = PoolMem::new(crate::region::Region::segment(segment), geo);
        let mut core = PoolCore {
            mem,
            me: 0,
            token,
            id,
        };
        core.me = match register(&core) {
            Some(me) => me,
            None => {
                core.reclaim();
                register(&core).ok_or_else(|| PoolError::Full { name: name.clone() })?
            }
        };
        Ok(BufferPool::from_core(core, Some(name)))
    }

    /// This pool's id, which every handle of its buffers carries.
    ///
    /// # Example
    /// ```
    /// use ringport::pool::BufferPool;
    /// let (a, b) = (BufferPool::new(Default::default())?, BufferPool::new(Default::default())?);
    /// assert_ne!(a.id(), b.id());
    /// # Ok::<(), ringport::pool::PoolError>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.core().id
    }

    /// The pool's name, if it lives in a segment.
    ///
    /// # Example
    /// ```
    /// assert_eq!(ringport::pool::BufferPool::new(Default::default())?.name(), None);
    /// # Ok::<(), ringport::pool::PoolError>(())
    /// ```
    #[cfg(not(loom))]
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// The size classes, as `(buffer size, count)`.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(ringport::pool::PoolOptions::with_classes(&[(64, 2)]))?;
    /// assert_eq!(pool.classes(), vec![(64, 2)]);
    /// # Ok::<(), ringport::pool::PoolError>(())
    /// ```
    pub fn classes(&self) -> Vec<(usize, usize)> {
        let geo = &self.core().mem.geo;
        geo.classes[..geo.n_classes]
            .iter()
            .map(|c| (c.size, c.count))
            .collect()
    }

    /// How many buffers of each class are free right now (a snapshot that may be stale
    /// by the time it returns).
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(ringport::pool::PoolOptions::with_classes(&[(64, 2)]))?;
    /// let _b = pool.try_loan(1).unwrap();
    /// assert_eq!(pool.available(), vec![1]);
    /// # Ok::<(), ringport::pool::PoolError>(())
    /// ```
    pub fn available(&self) -> Vec<usize> {
        (0..self.core().mem.geo.n_classes)
            .map(|c| self.core().free_in(c))
            .collect()
    }

    pub(crate) fn core(&self) -> &PoolCore {
        &self.shared.core
    }

    fn class_for(&self, len: usize) -> Result<usize, LoanError> {
        let geo = &self.core().mem.geo;
        geo.class_for(len).ok_or(LoanError::TooLarge {
            len,
            max: geo.classes[geo.n_classes - 1].size,
        })
    }

    fn loan_from(&self, class: usize, len: usize) -> Option<Buffer> {
        let geo = &self.core().mem.geo;
        (class..geo.n_classes).find_map(|c| {
            let (index, gen) = self.core().loan(c)?;
            Some(Buffer::new(self.shared.clone(), index, gen, len))
        })
    }

    /// Loans a buffer of at least `len` bytes (its length is `len`; it may hold up to its
    /// class's size), without waiting. A pool that finds every fitting buffer in use looks
    /// for buffers of dead processes, at most every 100 ms.
    ///
    /// # Errors
    /// [`LoanError::TooLarge`] when `len` exceeds the largest class, [`LoanError::Empty`]
    /// when every buffer that fits is in use.
    ///
    /// # Example
    /// ```
    /// use ringport::pool::{BufferPool, LoanError, PoolOptions};
    /// let pool = BufferPool::new(PoolOptions::with_classes(&[(64, 1), (4096, 1)]))?;
    /// let small = pool.try_loan(10)?;
    /// assert_eq!((small.len(), small.capacity()), (10, 64));
    /// let spill = pool.try_loan(10)?; // the 64-byte class is empty: the next one serves
    /// assert_eq!(spill.capacity(), 4096);
    /// assert_eq!(pool.try_loan(5000).unwrap_err(), LoanError::TooLarge { len: 5000, max: 4096 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_loan(&self, len: usize) -> Result<Buffer, LoanError> {
        let class = self.class_for(len)?;
        if let Some(b) = self.loan_from(class, len) {
            return Ok(b);
        }
        if self.shared.watch.look_due() && self.core().reclaim() > 0 {
            if let Some(b) = self.loan_from(class, len) {
                return Ok(b);
            }
        }
        Err(LoanError::Empty { len })
    }

    /// Loans a buffer of at least `len` bytes, waiting up to `timeout` for one to come
    /// back.
    ///
    /// # Errors
    /// [`LoanError::TooLarge`], or [`LoanError::Timeout`].
    ///
    /// # Example
    /// ```
    /// use ringport::pool::{BufferPool, LoanError, PoolOptions};
    /// use std::time::Duration;
    /// let pool = BufferPool::new(PoolOptions::with_classes(&[(64, 1)]))?;
    /// let held = pool.try_loan(8)?;
    /// let p = pool.clone();
    /// let t = std::thread::spawn(move || p.loan_timeout(8, Duration::from_secs(10)).map(|b| b.len()));
    /// std::thread::sleep(Duration::from_millis(20));
    /// drop(held);
    /// assert_eq!(t.join().unwrap(), Ok(8));
    /// assert_eq!(pool.loan_timeout(8, Duration::ZERO).map(|b| b.len()), Ok(8));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn loan_timeout(&self, len: usize, timeout: Duration) -> Result<Buffer, LoanError> {
        let class = self.class_for(len)?;
        if let Some(b) = self.loan_from(class, len) {
            return Ok(b);
        }
        let deadline = Instant::now().checked_add(timeout);
        let core = self.core();
        core.mem
            .ctrl()
            .space
            .wait_until(core.mem.scope(), deadline, |look| {
                if look {
                    core.reclaim();
                }
                self.loan_from(class, len)
            })
            .ok_or(LoanError::Timeout { len })
    }

    fn check(&self, h: &BufferHandle, shared: bool) -> Result<usize, TransferError> {
        let core = self.core();
        if h.pool != core.id {
            return Err(TransferError::ForeignPool {
                expected: core.id,
                found: h.pool,
            });
        }
        let geo = &core.mem.geo;
        let index = h.index as usize;
        if index >= geo.total {
            return Err(TransferError::OutOfRange("index beyond the pool's buffers"));
        }
        if h.sender == 0 || h.sender as usize > geo.processes {
            return Err(TransferError::OutOfRange("sender is no participant"));
        }
        if h.len > geo.classes[geo.class_of(index)].size as u64 {
            return Err(TransferError::OutOfRange("length beyond the buffer's size"));
        }
        if h.is_shared() != shared || h.flags & !SHARED_FLAG != 0 {
            return Err(TransferError::WrongKind { index: h.index });
        }
        Ok(h.len as usize)
    }

    /// Takes the buffer a handle names: the sender's bytes, in place, now this process's
    /// to read, write and send on.
    ///
    /// # Errors
    /// [`TransferError::ForeignPool`], [`TransferError::OutOfRange`],
    /// [`TransferError::WrongKind`] for a shared handle, [`TransferError::Stale`],
    /// [`TransferError::AlreadyReceived`], [`TransferError::NotOwned`]. On error nothing
    /// changes hands.
    ///
    /// # Example
    /// ```
    /// use ringport::pool::{BufferPool, TransferError};
    /// let pool = BufferPool::new(Default::default())?;
    /// let mut b = pool.try_loan(3)?;
    /// b.copy_from_slice(b"abc");
    /// let h = b.into_handle();
    /// assert_eq!(&*pool.accept(&h)?, b"abc");
    /// // Dropped above, so the buffer went back: the handle is now stale.
    /// assert!(matches!(pool.accept(&h), Err(TransferError::Stale { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept(&self, handle: &BufferHandle) -> Result<Buffer, TransferError> {
        let len = self.check(handle, false)?;
        self.core()
            .accept(handle.index, handle.gen, u64::from(handle.sender))?;
        Ok(Buffer::new(
            self.shared.clone(),
            handle.index,
            handle.gen,
            len,
        ))
    }

    /// Takes a reference to the shared buffer a handle names (see [`BufferSubscriber`],
    /// which calls this).
    ///
    /// # Errors
    /// As [`accept`](Self::accept), with [`TransferError::WrongKind`] for an exclusive
    /// handle, and [`TransferError::SharedLimit`] when this process holds as many shared
    /// buffers as the pool allows.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let h = pool.try_loan(2)?.into_handle();
    /// assert!(pool.accept_shared(&h).is_err()); // an exclusive handle
    /// # drop(pool.accept(&h));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_shared(&self, handle: &BufferHandle) -> Result<SharedBuffer, TransferError> {
        let len = self.check(handle, true)?;
        let slot = self.core().acquire(handle.index, handle.gen)?;
        Ok(SharedBuffer::new(
            self.shared.clone(),
            handle.index,
            handle.gen,
            len,
            slot,
        ))
    }

    /// Returns to the pool what dead processes held, sent or shared, and frees their
    /// participant records; returns how many buffers came back. Loans call this
    /// themselves when a class runs empty; call it to reclaim at a time of your choosing.
    /// Heap pools have nothing to reclaim.
    ///
    /// # Example
    /// ```
    /// assert_eq!(ringport::pool::BufferPool::new(Default::default())?.reclaim(), 0);
    /// # Ok::<(), ringport::pool::PoolError>(())
    /// ```
    pub fn reclaim(&self) -> usize {
        self.core().reclaim()
    }
}

#[cfg(not(loom))]
fn register(core: &PoolCore) -> Option<u64> {
    crate::participants::register_by(core.mem.records(), |r| &r.token, core.token)
}

/// A writable buffer on loan from a [`BufferPool`]: its bytes, in place. Dropping it
/// returns it to the pool; [`into_handle`](Buffer::into_handle) sends it.
///
/// # Example
/// ```
/// let pool = ringport::pool::BufferPool::new(Default::default())?;
/// let mut b = pool.try_loan(4)?;
/// b.copy_from_slice(&[1, 2, 3, 4]);
/// b.set_len(2);
/// assert_eq!(&*b, &[1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Buffer {
    shared: Arc<Shared>,
    index: u32,
    gen: u32,
    len: usize,
    capacity: usize,
    #[cfg(not(loom))]
    ptr: std::ptr::NonNull<u8>,
}

// SAFETY: a Buffer is the exclusive owner of its bytes (its state word names this
// process, and only its holder touches them); the pool memory outlives it.
unsafe impl Send for Buffer {}
// SAFETY: shared references only read the bytes.
unsafe impl Sync for Buffer {}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("index", &self.index)
            .field("generation", &self.gen)
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Buffer {
    fn new(shared: Arc<Shared>, index: u32, gen: u32, len: usize) -> Buffer {
        let mem = &shared.core.mem;
        let capacity = mem.geo.classes[mem.geo.class_of(index as usize)].size;
        #[cfg(not(loom))]
        let ptr = mem.data(index as usize);
        Buffer {
            shared,
            index,
            gen,
            len,
            capacity,
            #[cfg(not(loom))]
            ptr,
        }
    }

    /// The length of the contents.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// assert_eq!(pool.try_loan(7)?.len(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The most the buffer holds: its size class.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// assert_eq!(pool.try_loan(7)?.capacity(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the length of the contents; the bytes are whatever the buffer holds.
    ///
    /// # Panics
    /// If `len` exceeds [`capacity`](Self::capacity).
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let mut b = pool.try_loan(0)?;
    /// b.set_len(4096);
    /// assert_eq!(b.len(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity,
            "buffer length {len} exceeds its capacity {}",
            self.capacity
        );
        self.len = len;
    }

    /// The buffer's index in its pool.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let b = pool.try_loan(1)?;
    /// let i = b.index();
    /// assert_eq!(b.into_handle().index(), i);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The pool it belongs to.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// assert_eq!(pool.try_loan(1)?.pool().id(), pool.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(&self) -> BufferPool {
        BufferPool {
            shared: self.shared.clone(),
        }
    }

    fn handle(&self, flags: u32) -> BufferHandle {
        BufferHandle {
            pool: self.shared.core.id,
            len: self.len as u64,
            index: self.index,
            gen: self.gen,
            sender: self.shared.core.me as u32,
            flags,
        }
    }

    /// Gives the value up without returning the buffer to the pool.
    pub(crate) fn forget(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; its only field with a destructor
        // is read out once and dropped here.
        drop(unsafe { std::ptr::read(&this.shared) });
    }

    /// Sends the buffer: marks it in flight from this process and returns the handle to
    /// pass on. The value is consumed, so the sender cannot touch the bytes again (the
    /// web's detach). Until a receiver [`accept`](BufferPool::accept)s it, the buffer
    /// belongs to this process, and is reclaimed if this process dies; a handle that
    /// cannot be delivered can be accepted back by its sender.
    ///
    /// # Example
    /// ```
    /// let pool = ringport::pool::BufferPool::new(Default::default())?;
    /// let h = pool.try_loan(1)?.into_handle();
    /// let back = pool.accept(&h)?; // nobody took it: take it back
    /// # drop(back);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_handle(self) -> BufferHandle {
        let h = self.mark_sent();
        self.forget();
        h
    }

    /// Marks the buffer in flight and returns its handle, keeping the value: a send that
    /// then fails takes it back with [`recall`](Self::recall), one that succeeds gives the
    /// value up with [`forget`](Self::forget).
    pub(crate) fn mark_sent(&self) -> BufferHandle {
        let h = self.handle(0);
        // A failed CAS means the word was damaged: the receiver's accept then fails.
        self.shared.core.send(self.index, self.gen);
        h
    }

    /// Takes back a buffer [`mark_sent`](Self::mark_sent) whose handle was not delivered.
    #[cfg(not(loom))]
    pub(crate) fn recall(&self) {
        let core = &self.shared.core;
        // A failure means the word was damaged meanwhile; dropping the value then finds
        // nothing of this loan to return, as for any damaged word.
        let _ = core.accept(self.index, self.gen, core.me);
    }

    /// Whether the buffer's pool lives in a named segment (so it may leave its process).
    #[cfg(not(loom))]
    pub(crate) fn is_named(&self) -> bool {
        self.shared.name.is_some()
    }

    /// Makes the buffer shared and read-only, keeping this process's anchor reference;
    /// returns the handle, or the buffer back if its state word was damaged.
    #[cfg(not(loom))]
    pub(crate) fn share(self) -> Result<BufferHandle, Buffer> {
        if !self.shared.core.share(self.index, self.gen) {
            return Err(self);
        }
        let h = self.handle(SHARED_FLAG);
        self.forget();
        Ok(h)
    }

    /// Runs `f` on the contents (under loom, which tracks the access for races).
    #[cfg(loom)]
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let len = self.len;
        self.shared
            .core
            .mem
            .with_data(self.index as usize, |d| f(&d[..len]))
    }

    /// Runs `f` on the contents, writable (under loom, which tracks the access for races).
    #[cfg(loom)]
    pub fn with_bytes_mut<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let len = self.len;
        self.shared
            .core
            .mem
            .with_data_mut(self.index as usize, |d| f(&mut d[..len]))
    }
}

#[cfg(not(loom))]
impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: this process holds the buffer (its state word says so), so no
        // cooperating participant touches these `capacity >= len` bytes, which lie inside
        // the pool's memory that `shared` keeps mapped.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(not(loom))]
impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for Deref, and `&mut self` makes this the only access in-process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.shared.core.release(self.index, self.gen);
    }
}

/// A reference to a shared, read-only buffer received through a broadcast ring. The
/// buffer goes back to the pool when its last reference drops.
///
/// # Example
/// ```
/// use ringport::pool::{BufferPool, BufferPublisher};
/// let pool = BufferPool::new(Default::default())?;
/// let mut publisher = BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool.clone());
/// let (mut a, mut b) = (publisher.subscribe()?, publisher.subscribe()?);
/// let mut buf = pool.try_loan(5)?;
/// buf.copy_from_slice(b"hello");
/// publisher.publish(buf)?;
/// let (x, y) = (a.recv()?, b.recv()?);
/// assert_eq!((&*x, &*y), (&b"hello"[..], &b"hello"[..]));
/// assert_eq!(x.as_ptr(), y.as_ptr()); // one copy of the bytes
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedBuffer {
    shared: Arc<Shared>,
    index: u32,
    gen: u32,
    len: usize,
    slot: usize,
    #[cfg(not(loom))]
    ptr: std::ptr::NonNull<u8>,
}

// SAFETY: the bytes of a shared buffer are read-only while any reference lives.
unsafe impl Send for SharedBuffer {}
// SAFETY: as above.
unsafe impl Sync for SharedBuffer {}

impl std::fmt::Debug for SharedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBuffer")
            .field("index", &self.index)
            .field("generation", &self.gen)
            .field("len", &self.len)
            .finish()
    }
}

impl SharedBuffer {
    fn new(shared: Arc<Shared>, index: u32, gen: u32, len: usize, slot: usize) -> SharedBuffer {
        #[cfg(not(loom))]
        let ptr = shared.core.mem.data(index as usize);
        SharedBuffer {
            shared,
            index,
            gen,
            len,
            slot,
            #[cfg(not(loom))]
            ptr,
        }
    }

    /// The buffer's index in its pool.
    ///
    /// # Example
    /// ```
    /// # use ringport::pool::{BufferPool, BufferPublisher};
    /// # let pool = BufferPool::new(Default::default())?;
    /// # let mut p = BufferPublisher::new(ringport::broadcast::channel(Default::default()), pool.clone());
    /// # let mut s = p.subscribe()?;
    /// let buf = pool.try_loan(1)?;
    /// let i = buf.index();
    /// p.publish(buf)?;
    /// assert_eq!(s.recv()?.index(), i);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Runs `f` on the contents (under loom, which tracks the access for races).
    #[cfg(loom)]
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let len = self.len;
        self.shared
            .core
            .mem
            .with_data(self.index as usize, |d| f(&d[..len]))
    }
}

#[cfg(not(loom))]
impl std::ops::Deref for SharedBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: while any reference lives the buffer is SHARED, which no cooperating
        // participant writes; the bytes lie inside the mapped pool `shared` keeps alive.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        self.shared.core.unref(self.index, self.gen, self.slot);
    }
}

#[cfg(loom)]
impl BufferPool {
    /// Under loom: shares `buf` as a broadcast publisher would, returning its handle.
    pub fn share_for_model(&self, buf: Buffer) -> BufferHandle {
        assert!(self.core().share(buf.index, buf.gen));
        let h = buf.handle(SHARED_FLAG);
        buf.forget();
        h
    }

    /// Under loom: drops the anchor reference of a buffer shared by this pool handle.
    pub fn retire_for_model(&self, handle: &BufferHandle) {
        self.core().retire(handle.index, handle.gen);
    }
}

#[cfg(not(loom))]
impl BufferPool {
    pub(crate) fn retire(&self, handle: &BufferHandle) {
        self.core().retire(handle.index, handle.gen);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! Heap pools across threads, small enough for Miri, which checks the bytes' accesses
    //! against the state words' orderings.
    use super::*;

    fn pool(classes: &[(usize, usize)]) -> BufferPool {
        BufferPool::new(PoolOptions::with_classes(classes)).unwrap()
    }

    #[test]
    fn buffers_change_hands_between_threads_without_a_race() {
        let pool = pool(&[(64, 2)]);
        let (tx, rx) = std::sync::mpsc::channel::<BufferHandle>();
        let (back_tx, back_rx) = std::sync::mpsc::channel::<BufferHandle>();
        let worker = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for h in rx {
                    let mut b = pool.accept(&h).unwrap();
                    for v in b.iter_mut() {
                        *v = v.wrapping_add(1);
                    }
                    back_tx.send(b.into_handle()).unwrap();
                }
            })
        };
        for round in 0..8u8 {
            let mut b = pool.try_loan(64).unwrap();
            b.fill(round);
            tx.send(b.into_handle()).unwrap();
            let b = pool.accept(&back_rx.recv().unwrap()).unwrap();
            assert!(b.iter().all(|&v| v == round + 1));
        }
        drop(tx);
        worker.join().unwrap();
        assert_eq!(pool.available(), vec![2]);
    }

    #[test]
    fn a_shared_buffer_returns_after_its_last_reference() {
        let pool = pool(&[(64, 1)]);
        let mut b = pool.try_loan(8).unwrap();
        b.fill(5);
        let h = b.share().unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let s = pool.accept_shared(&h).unwrap();
                    s.iter().map(|&v| u32::from(v)).sum::<u32>()
                })
            })
            .collect();
        for r in readers {
            assert_eq!(r.join().unwrap(), 40);
        }
        assert_eq!(pool.available(), vec![0]);
        pool.retire(&h);
        assert_eq!(pool.available(), vec![1]);
        assert!(matches!(
            pool.accept_shared(&h),
            Err(TransferError::Stale { .. })
        ));
        // The next holder may write what the readers read.
        pool.try_loan(8).unwrap().fill(6);
    }

    #[test]
    fn a_loan_waits_for_a_buffer_another_thread_returns() {
        let pool = pool(&[(64, 1)]);
        let held = pool.try_loan(1).unwrap();
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.loan_timeout(1, Duration::from_secs(30)).is_ok())
        };
        drop(held);
        assert!(waiter.join().unwrap());
    }
}
