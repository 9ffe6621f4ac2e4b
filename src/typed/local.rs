//! In-process SPSC channels that move any `T: Send`, with no serialisation.
//!
//! # Why boxes
//!
//! The ring underneath is [`PodRing`](crate::ring::PodRing), whose algorithm is
//! loom-verified and Miri-tested; it carries `Pod` values only, because it copies slots
//! bitwise and never runs a destructor. So a `T` travels as the address of a
//! `Box<T>`, a `u64`: the sender boxes the value and sends the address, the receiver
//! turns the address back into the box and moves the value out. A move costs one
//! allocation (none for zero-sized types) and the ring stays the proven one: no second
//! lock-free algorithm that must run destructors in the right places.
//!
//! The addresses never leave this module. Every address in the ring owns its box, and
//! exactly one party frees it: the receiver that receives it, the sender whose send it
//! refused (and which gets its value back), or the drop that drains the ring.
//!
//! # Dropping
//!
//! When the receiver drops, the values still queued are dropped with it, and sends fail
//! with [`SendError::Disconnected`], giving the value back. A send already under way
//! when the receiver dropped may still succeed; its value is dropped when the sender is.
//! When the sender drops, the receiver gets what was queued, then
//! [`RecvError::Disconnected`].

use crate::error::{RecvError, SendError};
use crate::ring::{PodConsumer, PodProducer, PodRing};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

// Addresses travel as u64.
const _: () = assert!(std::mem::size_of::<usize>() <= std::mem::size_of::<u64>());

/// A channel in this process that moves `T`s from one sender to one receiver, holding
/// at least `capacity` of them (rounded up as [`PodRing::with_capacity`] rounds).
///
/// # Panics
/// If the ring would not fit in the address space.
///
/// # Example
/// ```
/// // Closures and other values serde cannot describe move as they are.
/// let (mut tx, mut rx) = ringport::typed::local::<Box<dyn FnOnce() -> String + Send>>(8);
/// let name = String::from("worker");
/// tx.send(Box::new(move || format!("hello from {name}"))).unwrap();
/// let job = std::thread::spawn(move || rx.recv().unwrap()()).join().unwrap();
/// assert_eq!(job, "hello from worker");
/// ```
pub fn local<T: Send>(capacity: usize) -> (LocalSender<T>, LocalReceiver<T>) {
    let (tx, rx) = PodRing::<u64>::with_capacity(capacity);
    let shared = Arc::new(Shared {
        receiver_gone: AtomicBool::new(false),
        parked: Mutex::new(None),
    });
    (
        LocalSender {
            tx,
            shared: shared.clone(),
        },
        LocalReceiver {
            queue: ManuallyDrop::new(Queue {
                rx,
                _owns: PhantomData,
            }),
            shared,
        },
    )
}

/// A send that failed, with the value it did not send.
///
/// # Example
/// ```
/// use ringport::{typed::{local, LocalSendError}, SendError};
/// let (mut tx, rx) = local::<String>(1);
/// drop(rx);
/// let LocalSendError { value, error } = tx.try_send("back".into()).unwrap_err();
/// assert_eq!((value.as_str(), error), ("back", SendError::Disconnected));
/// ```
pub struct LocalSendError<T> {
    /// The value, given back.
    pub value: T,
    /// Why: [`SendError::Full`], [`SendError::Timeout`] or [`SendError::Disconnected`].
    pub error: SendError,
}

impl<T> std::fmt::Debug for LocalSendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Display for LocalSendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<T> std::error::Error for LocalSendError<T> {}

/// What both ends reach.
struct Shared<T> {
    /// Set when the receiver drops, so that sends fail from then on (the ring itself
    /// stays open until both ends are gone: see `parked`).
    receiver_gone: AtomicBool,
    /// The ring's receiving end once the receiver has dropped: a send that raced with the
    /// drop may still have put a value in, which this frees when the last end drops.
    parked: Mutex<Option<Queue<T>>>,
}

/// The ring's receiving end, which owns the boxes queued in it.
struct Queue<T> {
    rx: PodConsumer<u64>,
    _owns: PhantomData<T>,
}

impl<T> Queue<T> {
    /// Drops every value queued now; as for any receive, this hands their space back and
    /// wakes a sender waiting for it.
    fn drain(&mut self) {
        while let Ok(addr) = self.rx.try_recv() {
            // SAFETY: addresses in the ring come from `into_addr` and are received once.
            drop(unsafe { from_addr::<T>(addr) });
        }
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        self.drain();
    }
}

/// Gives up the box, keeping its address (and its provenance exposed, so that
/// [`from_addr`] may rebuild the pointer from the integer).
fn into_addr<T>(value: Box<T>) -> u64 {
    Box::into_raw(value).expose_provenance() as u64
}

/// # Safety
/// `addr` came from [`into_addr`] for a `T`, and no other `from_addr` took it.
unsafe fn from_addr<T>(addr: u64) -> Box<T> {
    let ptr = std::ptr::with_exposed_provenance_mut::<T>(addr as usize);
    // SAFETY: per the caller, `ptr` is a `Box<T>`'s, given up once and taken back once.
    unsafe { Box::from_raw(ptr) }
}

/// The sending end of a [`local`] channel. Dropping it closes the channel after what it
/// sent.
pub struct LocalSender<T> {
    tx: PodProducer<u64>,
    shared: Arc<Shared<T>>,
}

impl<T: Send> LocalSender<T> {
    /// Values the channel holds when full.
    ///
    /// # Example
    /// ```
    /// let (tx, _rx) = ringport::typed::local::<String>(100);
    /// assert!(tx.capacity() >= 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    /// Sends `value`, waiting while the channel is full.
    ///
    /// # Errors
    /// [`SendError::Disconnected`] once the receiver dropped, with the value.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::typed::local::<Vec<String>>(4);
    /// std::thread::spawn(move || tx.send(vec!["a".into(), "b".into()]).unwrap());
    /// assert_eq!(rx.recv().unwrap(), ["a", "b"]);
    /// ```
    pub fn send(&mut self, value: T) -> Result<(), LocalSendError<T>> {
        self.send_with(value, |tx, addr| tx.send(addr))
    }

    /// Sends `value` if there is room, without waiting.
    ///
    /// # Errors
    /// [`SendError::Full`] or [`SendError::Disconnected`], with the value.
    ///
    /// # Example
    /// ```
    /// use ringport::SendError;
    /// let (mut tx, _rx) = ringport::typed::local::<String>(1);
    /// while tx.try_send("more".into()).is_ok() {}
    /// let err = tx.try_send("one too many".into()).unwrap_err();
    /// assert_eq!((err.value.as_str(), err.error), ("one too many", SendError::Full));
    /// ```
    pub fn try_send(&mut self, value: T) -> Result<(), LocalSendError<T>> {
        self.send_with(value, |tx, addr| tx.try_send(addr))
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`SendError::Timeout`] or [`SendError::Disconnected`], with the value.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use ringport::SendError;
    /// let (mut tx, _rx) = ringport::typed::local::<u8>(1);
    /// while tx.try_send(0).is_ok() {}
    /// let err = tx.send_timeout(7, Duration::from_millis(1)).unwrap_err();
    /// assert_eq!((err.value, err.error), (7, SendError::Timeout));
    /// ```
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), LocalSendError<T>> {
        self.send_with(value, |tx, addr| tx.send_timeout(addr, timeout))
    }

    fn send_with(
        &mut self,
        value: T,
        send: impl FnOnce(&mut PodProducer<u64>, u64) -> Result<(), SendError>,
    ) -> Result<(), LocalSendError<T>> {
        // Relaxed: missing a drop that just happened only lets this send through, and
        // the value is then freed with the parked ring.
        if self.shared.receiver_gone.load(Ordering::Relaxed) {
            return Err(LocalSendError {
                value,
                error: SendError::Disconnected,
            });
        }
        let addr = into_addr(Box::new(value));
        send(&mut self.tx, addr).map_err(|error| LocalSendError {
            // SAFETY: the ring refused the address (nothing of a failed send is
            // published), so the box is still this sender's alone.
            value: *unsafe { from_addr::<T>(addr) },
            error,
        })
    }
}

/// The receiving end of a [`local`] channel. Dropping it drops the values still queued.
pub struct LocalReceiver<T> {
    /// Taken only in `drop`.
    queue: ManuallyDrop<Queue<T>>,
    shared: Arc<Shared<T>>,
}

impl<T: Send> LocalReceiver<T> {
    /// Values the channel holds when full.
    ///
    /// # Example
    /// ```
    /// let (_tx, rx) = ringport::typed::local::<String>(100);
    /// assert!(rx.capacity() >= 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.queue.rx.capacity()
    }

    /// Waits for the next value.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once the sender dropped and everything it sent was
    /// received.
    ///
    /// # Example
    /// ```
    /// let (mut tx, mut rx) = ringport::typed::local::<String>(4);
    /// tx.send("x".into()).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv().unwrap(), "x");
    /// assert_eq!(rx.recv(), Err(ringport::RecvError::Disconnected));
    /// ```
    pub fn recv(&mut self) -> Result<T, RecvError> {
        let addr = self.queue.rx.recv()?;
        // SAFETY: addresses in the ring come from `into_addr` and are received once.
        Ok(*unsafe { from_addr::<T>(addr) })
    }

    /// The next value if one is waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Empty`].
    ///
    /// # Example
    /// ```
    /// let (_tx, mut rx) = ringport::typed::local::<String>(4);
    /// assert_eq!(rx.try_recv(), Err(ringport::RecvError::Empty));
    /// ```
    pub fn try_recv(&mut self) -> Result<T, RecvError> {
        let addr = self.queue.rx.try_recv()?;
        // SAFETY: addresses in the ring come from `into_addr` and are received once.
        Ok(*unsafe { from_addr::<T>(addr) })
    }

    /// Waits at most `timeout` for the next value.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus [`RecvError::Timeout`].
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let (_tx, mut rx) = ringport::typed::local::<String>(4);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(ringport::RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        let addr = self.queue.rx.recv_timeout(timeout)?;
        // SAFETY: addresses in the ring come from `into_addr` and are received once.
        Ok(*unsafe { from_addr::<T>(addr) })
    }
}

impl<T> Drop for LocalReceiver<T> {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Relaxed);
        // SAFETY: `queue` is taken here only, and `self` is not used after.
        let mut queue = unsafe { ManuallyDrop::take(&mut self.queue) };
        // Now rather than with the last end: the values go when their receiver does,
        // and a sender blocked on a full ring wakes to find the receiver gone.
        queue.drain();
        *self
            .shared
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its drops in a shared counter.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    /// Small under Miri, which interprets every step.
    const N: usize = if cfg!(miri) { 200 } else { 20_000 };

    #[test]
    fn strings_move_across_threads_in_order() {
        let (mut tx, mut rx) = local::<String>(8);
        let t = std::thread::spawn(move || {
            for i in 0..N {
                tx.send(i.to_string()).unwrap();
            }
        });
        for i in 0..N {
            assert_eq!(rx.recv().unwrap(), i.to_string());
        }
        assert_eq!(rx.recv(), Err(RecvError::Disconnected));
        t.join().unwrap();
    }

    #[test]
    fn a_dropped_receiver_drops_what_was_queued_and_refuses_more() {
        let drops = counter();
        let (mut tx, rx) = local::<Counted>(16);
        for _ in 0..10 {
            tx.try_send(Counted(drops.clone())).unwrap();
        }
        drop(rx);
        assert_eq!(drops.load(Ordering::Relaxed), 10);
        let err = tx.try_send(Counted(drops.clone())).unwrap_err();
        assert_eq!(err.error, SendError::Disconnected);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            10,
            "the value came back alive"
        );
        drop(err);
        drop(tx);
        assert_eq!(drops.load(Ordering::Relaxed), 11);
    }

    #[test]
    fn a_dropped_sender_leaves_its_values_to_the_receiver_or_its_drop() {
        let drops = counter();
        let (mut tx, mut rx) = local::<Counted>(16);
        for _ in 0..5 {
            tx.try_send(Counted(drops.clone())).unwrap();
        }
        drop(tx);
        drop(rx.recv().unwrap());
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        drop(rx);
        assert_eq!(drops.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_full_ring_gives_the_value_back() {
        let (mut tx, mut rx) = local::<Box<u32>>(1);
        let mut sent = 0;
        while tx.try_send(Box::new(sent)).is_ok() {
            sent += 1;
        }
        assert_eq!(sent as usize, tx.capacity());
        let err = tx.try_send(Box::new(99)).unwrap_err();
        assert_eq!((*err.value, err.error), (99, SendError::Full));
        for i in 0..sent {
            assert_eq!(*rx.try_recv().unwrap(), i);
        }
    }

    #[test]
    fn zero_sized_values_move_without_allocating() {
        let (mut tx, mut rx) = local::<()>(4);
        tx.send(()).unwrap();
        assert_eq!(rx.try_recv(), Ok(()));
    }

    #[test]
    fn a_sender_blocked_on_a_full_ring_wakes_when_the_receiver_drops() {
        let drops = counter();
        let (mut tx, rx) = local::<Counted>(1);
        let cap = tx.capacity();
        for _ in 0..cap {
            tx.try_send(Counted(drops.clone())).unwrap();
        }
        let d = drops.clone();
        let t = std::thread::spawn(move || {
            // Whether this lands before or after the drop, every value is dropped once.
            let r = tx.send(Counted(d)).map_err(|e| e.error);
            (r, tx)
        });
        drop(rx);
        let (r, tx) = t.join().unwrap();
        assert!(matches!(r, Ok(()) | Err(SendError::Disconnected)), "{r:?}");
        drop(tx);
        assert_eq!(drops.load(Ordering::Relaxed), cap + 1);
    }
}
