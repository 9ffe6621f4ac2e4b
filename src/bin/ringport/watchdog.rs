//! Failing loudly, and leaving nothing behind.
//!
//! A broken row must stop the run with a message, never hang and never look fast, and a
//! cross-process row must leave neither a child process nor a name in `/dev/shm`. The
//! measured loops spin without deadlines (a clock read per poll would distort them), so
//! hangs are bounded from outside: a watchdog thread ends the run when a row overruns its
//! time limit or its child process dies mid-row. Every failure path, the panic hook
//! included, goes through [`abort`], which kills and reaps the row's child, unlinks the
//! row's names and exits, so even a side stuck in a spin loop cannot keep the run alive.

use ringport::process::ProcessId;
use ringport::segment::Segment;
use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Prefix of every name a run puts in `/dev/shm`; the rest is `<pid>-<row>`.
pub const NAME_PREFIX: &str = "ringport-bench-";

/// How often the watchdog looks.
const POLL: Duration = Duration::from_millis(100);

/// How long a child may lie dead before the parent collects it. A child exits right
/// after its last message, so the parent is usually still finishing its own loop.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// What a row holds that must not outlive the run.
struct Active {
    /// The running row and its deadline.
    row: Option<(String, Instant)>,
    /// The row's child process.
    child: Option<u32>,
    /// When the watchdog first found the child dead.
    child_dead_since: Option<Instant>,
    /// Segment names the row created.
    names: Vec<String>,
}

/// What the running row holds.
static ACTIVE: Mutex<Active> = Mutex::new(Active {
    row: None,
    child: None,
    child_dead_since: None,
    names: Vec::new(),
});

/// Set by the first [`abort`]; later callers leave the exit to it.
static ABORTING: AtomicBool = AtomicBool::new(false);

/// [`ACTIVE`], locked.
fn active() -> MutexGuard<'static, Active> {
    // Poisoning would only mean a panic elsewhere, which aborts the run anyway.
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the panic hook and starts the watchdog thread.
pub fn start() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        abort("a benchmark thread panicked");
    }));
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(watch)
        .expect("spawning the watchdog thread");
}

/// The watchdog thread: every [`POLL`], aborts the run if the row overran its limit or
/// its child has lain dead for [`REAP_GRACE`].
fn watch() {
    loop {
        std::thread::sleep(POLL);
        let mut a = active();
        let now = Instant::now();
        if let Some((row, deadline)) = &a.row {
            if now > *deadline {
                let msg =
                    format!("{row}: did not finish within its time limit (see --row-timeout)");
                drop(a);
                abort(&msg);
            }
        }
        let Some(pid) = a.child else {
            continue;
        };
        if ProcessId::of(pid).is_some() {
            a.child_dead_since = None;
            continue;
        }
        let since = *a.child_dead_since.get_or_insert(now);
        if now.duration_since(since) > REAP_GRACE {
            let row = a.row.as_ref().map_or("?", |r| r.0.as_str()).to_owned();
            drop(a);
            abort(&format!(
                "{row}: child process {pid} exited before the row finished (its error, if any, is above)"
            ));
        }
    }
}

/// Marks `row` as running until [`end_row`], failing the run if it takes over `limit`.
pub fn begin_row(row: &str, limit: Duration) {
    let mut a = active();
    a.row = Some((row.to_owned(), Instant::now() + limit));
    a.child = None;
    a.child_dead_since = None;
    a.names.clear();
}

/// The row finished: what it held has been released by its owners.
pub fn end_row() {
    let mut a = active();
    a.row = None;
    a.child = None;
    a.names.clear();
}

/// Records the row's child, to be killed if the run aborts.
pub fn track_child(pid: u32) {
    let mut a = active();
    a.child = Some(pid);
    a.child_dead_since = None;
}

/// The row's child was reaped.
pub fn untrack_child() {
    active().child = None;
}

/// Records a segment name the row created, to be unlinked if the run aborts.
pub fn track_name(name: &str) {
    active().names.push(name.to_owned());
}

/// Prints `msg`, kills and reaps the row's child, unlinks the row's names and exits with
/// status 1.
pub fn abort(msg: &str) -> ! {
    if ABORTING.swap(true, Ordering::SeqCst) {
        // Another thread is already cleaning up and exiting; concurrent exits race.
        loop {
            std::thread::park();
        }
    }
    eprintln!("ringport bench: FAILED: {msg}");
    let (child, names) = {
        let mut a = active();
        (a.child.take(), std::mem::take(&mut a.names))
    };
    if let Some(pid) = child.and_then(|p| Pid::from_raw(p as i32)) {
        // The child may already be gone; there is nothing more to do either way.
        let _ = kill_process(pid, Signal::KILL);
        let _ = waitpid(Some(pid), WaitOptions::empty());
    }
    for name in names {
        let _ = Segment::unlink(&name);
    }
    std::process::exit(1);
}

/// Removes names that earlier runs left in `/dev/shm` when they were killed, once their
/// creators are dead.
pub fn remove_stale_names() {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in dir.flatten() {
        if let Some(name) = entry.file_name().to_str() {
            if name.starts_with(NAME_PREFIX) {
                // A live run's name, or one another user owns, stays; that is not ours
                // to report.
                let _ = Segment::remove_if_stale(name);
            }
        }
    }
}
