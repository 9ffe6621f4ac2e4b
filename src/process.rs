//! Process identity that survives pid reuse.
//!
//! Linux recycles pids, so a pid alone cannot tell whether the process that registered
//! somewhere is still the one running under that number. [`ProcessId`] pairs the pid with
//! the process start time (clock ticks since boot, field 22 of `/proc/<pid>/stat`), which
//! no later process with the same pid can share until the machine reboots. Segments record
//! their creator this way, and peers use [`ProcessId::is_alive`] to decide that a
//! participant is gone.
//!
//! # Limits
//!
//! All participants must share one pid namespace and see a `/proc` mounted for it: a pid
//! from another namespace names a different process, or none. When `/proc` cannot tell
//! (not mounted, or `hidepid` hides the process), [`ProcessId::is_alive`] errs on the side
//! of "alive", because callers act on "dead" by reclaiming resources.

use std::sync::atomic::{AtomicU64, Ordering};

/// A process, identified by pid plus start time so that a recycled pid is not mistaken for
/// the original process.
///
/// # Examples
///
/// ```
/// use ringport::process::ProcessId;
///
/// let me = ProcessId::current();
/// assert_eq!(me.pid, std::process::id());
/// assert!(me.is_alive());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessId {
    /// The process id, as the kernel numbers it in the caller's pid namespace.
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`). Zero means
    /// unknown: [`ProcessId::current`] reports it when `/proc` cannot be read, and
    /// [`ProcessId::is_alive`] then checks only that the pid exists.
    pub start_time: u64,
}

impl ProcessId {
    /// The calling process.
    ///
    /// The answer is cached, keyed by pid, so a child created by `fork` sees its own
    /// identity rather than its parent's cached one.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::process::ProcessId;
    ///
    /// let me = ProcessId::current();
    /// assert_eq!(ProcessId::of(me.pid), Some(me));
    /// ```
    pub fn current() -> ProcessId {
        // One packed word rather than a OnceLock: a forked child must replace its parent's
        // entry, and a mutex could be inherited locked by fork.
        static CACHE: AtomicU64 = AtomicU64::new(0);
        let pid = rustix::process::getpid()
            .as_raw_nonzero()
            .get()
            .unsigned_abs();
        current_with(&CACHE, pid)
    }

    /// The live process `pid`, or `None` if there is none (including zombies) or `/proc`
    /// cannot describe it.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::process::ProcessId;
    ///
    /// let me = ProcessId::of(std::process::id()).expect("we are alive");
    /// assert!(me.is_alive());
    /// assert_eq!(ProcessId::of(0), None);
    /// ```
    pub fn of(pid: u32) -> Option<ProcessId> {
        match probe(pid) {
            Probe::Found(stat) if !stat.is_dead() => Some(ProcessId {
                pid,
                start_time: stat.start_time,
            }),
            _ => None,
        }
    }

    /// Whether this process is still running.
    ///
    /// False when `/proc/<pid>/stat` is gone, when the process is a zombie (state `Z`) or
    /// dead (`X`), or when its start time differs, meaning the pid now belongs to another
    /// process. If `/proc` cannot answer, the process counts as alive.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::process::ProcessId;
    ///
    /// let me = ProcessId::current();
    /// assert!(me.is_alive());
    /// let impostor = ProcessId { pid: me.pid, start_time: me.start_time + 1 };
    /// assert!(!impostor.is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        match probe(self.pid) {
            Probe::Found(stat) => {
                !stat.is_dead() && (self.start_time == 0 || stat.start_time == self.start_time)
            }
            Probe::Gone => false,
            Probe::Unknown => true,
        }
    }
}

impl ProcessId {
    /// This identity packed into one non-zero word (pid in the low 22 bits, start time
    /// above), so that a lock word in shared memory can name its holder and be claimed
    /// with one compare-and-swap. A start time too large for 42 bits is packed as unknown.
    pub(crate) fn to_word(self) -> u64 {
        let start = if self.start_time >> (64 - PID_BITS) == 0 {
            self.start_time
        } else {
            0
        };
        (start << PID_BITS) | (u64::from(self.pid) & PID_MASK)
    }

    /// The identity a word made by [`ProcessId::to_word`] names. Any word decodes to
    /// some identity; one that names no live process is simply not alive.
    pub(crate) fn from_word(word: u64) -> ProcessId {
        ProcessId {
            pid: (word & PID_MASK) as u32,
            start_time: word >> PID_BITS,
        }
    }
}

/// Pid bits in a cache word: the kernel's PID_MAX_LIMIT is 2^22.
const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;

fn current_with(cache: &AtomicU64, pid: u32) -> ProcessId {
    // Relaxed suffices: the word is self-contained and any value read is a complete,
    // correct identity for the pid it carries.
    let word = cache.load(Ordering::Relaxed);
    if word != 0 && word & PID_MASK == u64::from(pid) {
        return ProcessId {
            pid,
            start_time: word >> PID_BITS,
        };
    }
    let start_time = own_start_time(pid);
    // 42 bits of ticks last over a thousand years at 100 Hz; a value that does not fit,
    // or an unknown (zero) one that a retry may improve on, is simply not cached.
    if start_time != 0 && u64::from(pid) <= PID_MASK && start_time >> (64 - PID_BITS) == 0 {
        cache.store((start_time << PID_BITS) | u64::from(pid), Ordering::Relaxed);
    }
    ProcessId { pid, start_time }
}

fn own_start_time(pid: u32) -> u64 {
    match std::fs::read("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(parse_stat)
    {
        // A /proc mounted for another pid namespace describes some other process.
        Some(stat) if stat.pid == pid => stat.start_time,
        _ => 0,
    }
}

/// The fields of `/proc/<pid>/stat` that identity needs.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    pid: u32,
    state: u8,
    start_time: u64,
}

impl Stat {
    fn is_dead(&self) -> bool {
        // 'x' is how kernels before 2.6.33 spelled dead.
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses `pid (comm) state f4 ... f22 ...`. The command name is arbitrary bytes and may
/// contain spaces and ')', so the fields resume after the last ')'.
fn parse_stat(text: &[u8]) -> Option<Stat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = std::str::from_utf8(&text[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = match fields.next()?.as_bytes() {
        &[state] => state,
        _ => return None,
    };
    // `nth(18)` after the state (field 3) is field 22.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat {
        pid,
        state,
        start_time,
    })
}

enum Probe {
    Found(Stat),
    Gone,
    Unknown,
}

fn probe(pid: u32) -> Probe {
    let Some(raw) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Probe::Gone;
    };
    match std::fs::read(format!("/proc/{pid}/stat")) {
        Ok(bytes) => match parse_stat(&bytes) {
            Some(stat) if stat.pid == pid => Probe::Found(stat),
            _ => Probe::Unknown,
        },
        // ESRCH: the process exited while its stat file was being read.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => Probe::Gone,
        // A missing file proves death only if /proc would have shown the process;
        // kill(pid, 0) asks the kernel directly when /proc is absent or hides it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match rustix::process::test_kill_process(raw) {
                Err(rustix::io::Errno::SRCH) => Probe::Gone,
                _ => Probe::Unknown,
            }
        }
        Err(_) => Probe::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    fn spawn_sleeper() -> Child {
        Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep")
    }

    fn state_of(pid: u32) -> Option<u8> {
        let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&bytes).map(|s| s.state)
    }

    #[test]
    fn current_is_alive_and_stable() {
        let me = ProcessId::current();
        assert_eq!(me.pid, std::process::id());
        assert_ne!(
            me.start_time, 0,
            "/proc/self/stat should be readable in tests"
        );
        assert!(me.is_alive());
        assert_eq!(ProcessId::current(), me);
        assert_eq!(ProcessId::of(me.pid), Some(me));
    }

    #[test]
    fn cache_entry_for_another_pid_is_recomputed() {
        let me = ProcessId::current();
        // What a forked child inherits: its parent's entry under a different pid.
        let parent_pid = me.pid ^ 1;
        let cache = AtomicU64::new((12345 << PID_BITS) | u64::from(parent_pid));
        assert_eq!(current_with(&cache, me.pid), me);
        assert_eq!(cache.load(Ordering::Relaxed) & PID_MASK, u64::from(me.pid));
        assert_eq!(current_with(&cache, me.pid), me);
    }

    #[test]
    fn killed_and_reaped_child_is_not_alive() {
        let mut child = spawn_sleeper();
        let id = ProcessId::of(child.id()).expect("child is running");
        assert!(id.is_alive());
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(!id.is_alive());
        assert_eq!(ProcessId::of(id.pid), None);
    }

    #[test]
    fn zombie_is_not_alive() {
        let mut child = spawn_sleeper();
        let id = ProcessId::of(child.id()).expect("child is running");
        child.kill().expect("kill");
        let deadline = Instant::now() + Duration::from_secs(5);
        while state_of(id.pid) != Some(b'Z') {
            assert!(Instant::now() < deadline, "child never became a zombie");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!id.is_alive());
        assert_eq!(ProcessId::of(id.pid), None);
        child.wait().expect("reap");
    }

    #[test]
    fn reused_pid_is_detected_by_start_time() {
        let me = ProcessId::current();
        let other_holder = ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(!other_holder.is_alive());
        let unknown_start = ProcessId {
            pid: me.pid,
            start_time: 0,
        };
        assert!(unknown_start.is_alive());
    }

    #[test]
    fn word_round_trips() {
        let me = ProcessId::current();
        assert_ne!(me.to_word(), 0);
        assert_eq!(ProcessId::from_word(me.to_word()), me);
        assert!(!ProcessId::from_word(0).is_alive());
    }

    #[test]
    fn impossible_pids_are_not_alive() {
        for pid in [0, u32::MAX, i32::MAX.unsigned_abs() + 1] {
            assert_eq!(ProcessId::of(pid), None);
            assert!(!ProcessId { pid, start_time: 1 }.is_alive());
        }
    }

    #[test]
    fn parses_command_names_with_spaces_and_parens() {
        let mut line = b"4242 (a) b) (c ) R".to_vec();
        for field in 4..=22 {
            line.extend_from_slice(format!(" {field}").as_bytes());
        }
        line.extend_from_slice(b" 23 24\n");
        assert_eq!(
            parse_stat(&line),
            Some(Stat {
                pid: 4242,
                state: b'R',
                start_time: 22
            })
        );
    }

    #[test]
    fn odd_stat_content_is_rejected_without_panicking() {
        let cases: &[&[u8]] = &[
            b"",
            b")",
            b"(",
            b") 1 (",
            b"12 (x)",
            b"12 (x) S 1 2 3",
            b"12 (x) SS 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
            b"12 (x) S 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 -22",
            b"x (x) S 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
            b"12 (\xff) \xff 4",
            b"99999999999 (x) S 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
        ];
        for case in cases {
            assert_eq!(
                parse_stat(case),
                None,
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }
}
