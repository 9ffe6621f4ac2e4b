//! Process workers, the worker's side: [`serve_if_worker`], and the replies' format (see
//! [`wire`](super::wire)).

use super::pool::panic_text;
use crate::typed::{decode, encode};
use crate::{MessageChannel, MessagePort, RecvError, SendError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// The role a worker process was started for.
pub(crate) const ROLE_VAR: &str = "RINGPORT_WORKER_ROLE";
/// The name of the channel its pool created for it.
pub(crate) const CHANNEL_VAR: &str = "RINGPORT_WORKER_CHANNEL";

/// The tag of a worker's first frame, which it sends alone once it has opened its
/// channel.
///
/// # Example
/// ```
/// use ringport::worker::wire::{Reply, READY};
/// assert_eq!(Reply::parse(&[READY]), Some(Reply::Ready));
/// ```
pub const READY: u8 = 0;
/// The tag of a result: the handler's `Ok` value, postcard-encoded, follows.
///
/// # Example
/// ```
/// use ringport::worker::wire::{Reply, DONE};
/// let mut frame = vec![DONE];
/// ringport::typed::encode(&42u32, &mut frame)?;
/// let Some(Reply::Done(encoded)) = Reply::parse(&frame) else { unreachable!() };
/// assert_eq!(ringport::typed::decode::<u32>(encoded)?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DONE: u8 = 1;
/// The tag of a failure: UTF-8 text follows (the handler's error, or why the task or its
/// result could not be decoded or encoded).
///
/// # Example
/// ```
/// use ringport::worker::wire::{Reply, FAILED};
/// assert_eq!(Reply::parse(b"\x02no"), Some(Reply::Failed("no".into())));
/// assert_eq!(FAILED, 2);
/// ```
pub const FAILED: u8 = 2;
/// The tag of a panic: the panic's UTF-8 text follows, and the worker exits after it.
///
/// # Example
/// ```
/// use ringport::worker::wire::{Reply, PANICKED};
/// assert_eq!(Reply::parse(&[PANICKED, b'!']), Some(Reply::Panicked("!".into())));
/// ```
pub const PANICKED: u8 = 3;

/// Whether this process entered [`serve_if_worker`] for its role.
static SERVING: AtomicBool = AtomicBool::new(false);

/// A worker's frame, as its pool reads it.
///
/// # Example
/// ```
/// use ringport::worker::wire::{Reply, DONE, READY};
/// assert_eq!(Reply::parse(&[DONE, 1, 2]), Some(Reply::Done(&[1, 2])));
/// assert_eq!(Reply::parse(&[READY, 0]), None); // READY carries nothing
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// [`READY`]: the worker has opened its channel and waits for tasks.
    Ready,
    /// [`DONE`]: the result's encoding, for [`typed::decode`](crate::typed::decode).
    Done(&'a [u8]),
    /// [`FAILED`]: the text, each byte sequence that is not UTF-8 replaced by U+FFFD.
    Failed(String),
    /// [`PANICKED`]: the panic's text, read as `Failed`'s.
    Panicked(String),
}

impl<'a> Reply<'a> {
    /// Reads one frame of a worker. `None` for a frame that is no reply: empty, an
    /// unknown tag, or `READY` with bytes after it.
    ///
    /// # Example
    /// ```
    /// use ringport::worker::wire::{Reply, FAILED};
    /// assert_eq!(Reply::parse(&[FAILED, 0xff]), Some(Reply::Failed("\u{fffd}".into())));
    /// assert_eq!(Reply::parse(&[]), None);
    /// assert_eq!(Reply::parse(&[4]), None);
    /// ```
    pub fn parse(frame: &'a [u8]) -> Option<Self> {
        let (&tag, rest) = frame.split_first()?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        match tag {
            READY if rest.is_empty() => Some(Reply::Ready),
            DONE => Some(Reply::Done(rest)),
            FAILED => Some(Reply::Failed(text())),
            PANICKED => Some(Reply::Panicked(text())),
            _ => None,
        }
    }
}

pub(crate) fn is_ready(frame: &[u8]) -> bool {
    matches!(Reply::parse(frame), Some(Reply::Ready))
}

/// The role in this process's environment, if a pool started it as a worker and it has
/// not entered [`serve_if_worker`] yet.
pub(crate) fn unserved_role() -> Option<String> {
    let role = std::env::var(ROLE_VAR).ok()?;
    (!SERVING.load(Ordering::Relaxed)).then_some(role)
}

/// Serves tasks for `role` if this process is a worker that a
/// [`WorkerPool::processes`](super::WorkerPool::processes) started for it, and never
/// returns then; in any other process it returns at once.
///
/// Call it first thing in `main`, before anything a worker should not do, once per role
/// the program has pools for. A worker process runs `handler` on each task it is given,
/// one at a time, and sends back its result, or its error's `Display` text (as
/// [`TaskError::Failed`](super::TaskError::Failed)). A panic is sent back as
/// [`TaskError::Panicked`](super::TaskError::Panicked) and ends the process, which its
/// pool replaces. The worker exits when its pool terminates or dies.
///
/// # Example
/// ```
/// use ringport::worker::{serve_if_worker, PoolOptions, ProcessOptions, WorkerPool};
///
/// // First thing in main: in a worker process this serves tasks and never returns.
/// serve_if_worker("double", |n: u64| Ok::<_, String>(n * 2));
///
/// let pool = WorkerPool::<u64, u64>::processes(2, PoolOptions::new(), ProcessOptions::new("double"))?;
/// assert_eq!(pool.execute(21).unwrap().wait(), Ok(42));
/// # Ok::<(), ringport::worker::StartError>(())
/// ```
pub fn serve_if_worker<T, R, E, F>(role: &str, handler: F)
where
    T: DeserializeOwned,
    R: Serialize,
    E: std::fmt::Display,
    F: FnMut(T) -> Result<R, E>,
{
    if std::env::var(ROLE_VAR).ok().as_deref() != Some(role) {
        return;
    }
    SERVING.store(true, Ordering::Relaxed);
    let code = match std::env::var(CHANNEL_VAR) {
        Ok(name) => match MessageChannel::open(&name) {
            Ok(port) => serve(port, handler),
            Err(e) => {
                eprintln!("ringport worker for {role:?}: cannot open channel {name:?}: {e}");
                1
            }
        },
        Err(_) => {
            eprintln!("ringport worker for {role:?}: {CHANNEL_VAR} is not set");
            1
        }
    };
    std::process::exit(code);
}

/// The worker's loop; returns its exit code.
fn serve<T, R, E, F>(mut port: MessagePort, mut handler: F) -> i32
where
    T: DeserializeOwned,
    R: Serialize,
    E: std::fmt::Display,
    F: FnMut(T) -> Result<R, E>,
{
    let max = port.max_frame();
    if port.post_message(&[READY]).is_err() {
        return 1;
    }
    let mut task = Vec::new();
    let mut reply = Vec::new();
    loop {
        match port.recv() {
            // Copied out, and the frame released before the reply: the parent's next
            // task then always finds the ring empty.
            Ok(frame) => {
                task.clear();
                task.extend_from_slice(&frame);
            }
            Err(RecvError::Disconnected | RecvError::PeerDied { .. }) => return 0,
            Err(e) => {
                eprintln!("ringport worker: receiving a task: {e}");
                return 1;
            }
        }
        reply.clear();
        let panicked = match decode::<T>(&task) {
            Err(e) => {
                failed(&mut reply, FAILED, &format!("malformed task: {e}"), max);
                false
            }
            Ok(value) => match catch_unwind(AssertUnwindSafe(|| handler(value))) {
                Ok(Ok(result)) => {
                    reply.push(DONE);
                    match encode(&result, &mut reply) {
                        Ok(()) if reply.len() <= max => {}
                        Ok(()) => {
                            let len = reply.len() - 1;
                            let why = format!(
                                "the result's encoding of {len} bytes exceeds the channel's \
                                 maximum of {}",
                                max - 1
                            );
                            failed(&mut reply, FAILED, &why, max);
                        }
                        Err(e) => failed(
                            &mut reply,
                            FAILED,
                            &format!("encoding the result: {e}"),
                            max,
                        ),
                    }
                    false
                }
                Ok(Err(e)) => {
                    failed(&mut reply, FAILED, &e.to_string(), max);
                    false
                }
                Err(payload) => {
                    failed(&mut reply, PANICKED, &panic_text(payload), max);
                    true
                }
            },
        };
        match port.post_message(&reply) {
            Ok(()) => {}
            Err(SendError::Disconnected | SendError::PeerDied { .. }) => return 0,
            Err(e) => {
                eprintln!("ringport worker: sending a reply: {e}");
                return 1;
            }
        }
        if panicked {
            return 101;
        }
    }
}

/// Replaces `reply` with `tag` and `text`, cut at a character boundary to fit `max`.
fn failed(reply: &mut Vec<u8>, tag: u8, text: &str, max: usize) {
    let mut end = text.len().min(max.saturating_sub(1));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    reply.clear();
    reply.push(tag);
    reply.extend_from_slice(&text.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_and_unknown_ones_do_not() {
        assert!(is_ready(&[READY]));
        assert!(!is_ready(&[READY, 0]));
        assert!(matches!(Reply::parse(&[DONE, 7]), Some(Reply::Done([7]))));
        assert!(matches!(Reply::parse(&[FAILED, b'n', b'o']), Some(Reply::Failed(t)) if t == "no"));
        assert!(
            matches!(Reply::parse(&[PANICKED, 0xff]), Some(Reply::Panicked(t)) if t == "\u{fffd}")
        );
        assert!(Reply::parse(&[]).is_none());
        assert!(Reply::parse(&[9]).is_none());
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        let mut reply = vec![1, 2, 3];
        failed(&mut reply, FAILED, "aé", 3);
        assert_eq!(reply, [FAILED, b'a']);
        failed(&mut reply, PANICKED, "ok", 100);
        assert_eq!(reply, [PANICKED, b'o', b'k']);
    }
}
