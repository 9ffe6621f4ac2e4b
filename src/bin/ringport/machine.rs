//! What the machine adds to the numbers: other processes, and the clock.
//!
//! Both sides of a row spin on their own CPU; on a two-CPU machine any other busy process
//! (a build, a test run, the hypervisor's steal) takes one of them away for whole
//! scheduler slices, which shows up as a slow median or a huge tail rather than as an
//! error. Each row therefore reports the share of all CPU time that went to something
//! other than this run, from `/proc/stat` minus this process's and its reaped children's
//! times: near 0% means the numbers are the machine's, tens of percent mean they are not.
//! Rows whose measuring thread spins can also report the share of the row that thread
//! waited for a CPU ([`ThreadSched`]), which tells a slow path from a starved thread.
//! The cost of a clock read is printed too, since every round-trip sample contains one.

use std::fs;

/// Clock ticks (usually 10 ms each, summed over CPUs) below which a share is mostly
/// rounding and is not reported.
const MIN_TICKS: u64 = 40;

/// CPU time counters at one moment, in clock ticks.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    /// All CPUs' time, idle included.
    total: u64,
    /// All CPUs' non-idle time, steal included.
    busy: u64,
    /// This process's time plus its reaped children's.
    ours: u64,
}

impl CpuSample {
    /// The counters now; `None` where `/proc` cannot tell.
    pub fn now() -> Option<CpuSample> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
        // already counted in user.
        let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
        let idle = field(3) + field(4);
        let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
        let me = fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name, which may itself contain spaces:
        // utime, stime, cutime, cstime are fields 14-17, i.e. 11-14 after the name.
        let rest: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
        let ours = (11..=14)
            .map(|i| rest.get(i)?.parse::<u64>().ok())
            .sum::<Option<u64>>()?;
        Some(CpuSample {
            total: busy + idle,
            busy,
            ours,
        })
    }

    /// The share (0 to 1) of all CPU time between `self` and `later` that other processes
    /// (or the hypervisor) took; `None` for an interval too short to tell.
    pub fn others_since(&self, later: &CpuSample) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        if total < MIN_TICKS {
            return None;
        }
        let busy = later.busy.saturating_sub(self.busy);
        let ours = later.ours.saturating_sub(self.ours);
        Some((busy.saturating_sub(ours) as f64 / total as f64).min(1.0))
    }
}

/// Median nanoseconds between two back-to-back `Instant::now()`: what the one clock read
/// inside every round-trip sample adds to it.
pub fn clock_read_ns() -> u64 {
    let mut gaps: Vec<u64> = (0..20_000)
        .map(|_| {
            let a = std::time::Instant::now();
            let b = std::time::Instant::now();
            (b - a).as_nanos().try_into().unwrap_or(u64::MAX)
        })
        .collect();
    gaps.sort_unstable();
    gaps[gaps.len() / 2]
}

/// The calling thread's scheduler counters at one moment, in nanoseconds: how long it ran,
/// and how long it waited runnable for a CPU (`/proc/thread-self/schedstat`).
#[derive(Clone, Copy, Debug)]
pub struct ThreadSched {
    ran: u64,
    waited: u64,
}

impl ThreadSched {
    /// The calling thread's counters now; `None` where the kernel does not keep them.
    pub fn now() -> Option<ThreadSched> {
        let stat = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok());
        Some(ThreadSched {
            ran: fields.next()??,
            waited: fields.next()??,
        })
    }

    /// The share (0 to 1) of its time since `self` that the thread spent waiting for a
    /// CPU while it could have run: a spinning thread that other processes keep off its
    /// CPU. Call on the same thread as [`now`](Self::now); `None` if it neither ran nor
    /// waited.
    pub fn waiting_share_since(&self, later: &ThreadSched) -> Option<f64> {
        let ran = later.ran.checked_sub(self.ran)?;
        let waited = later.waited.checked_sub(self.waited)?;
        (ran + waited > 0).then(|| waited as f64 / (ran + waited) as f64)
    }
}
