//! Pinning the two sides of a row to two different CPUs.
//!
//! Unpinned, the scheduler may put both sides on one CPU (a round trip then measures
//! context switches) or migrate them mid-row; either makes numbers meaningless. The
//! measuring side (main thread or parent process) runs on `a`, the other side on `b`.
//! Rows of more threads (MPMC, fan-out) spread them over every allowed CPU in turn; with
//! more threads than CPUs they share, and the report says the row was oversubscribed.

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// The CPUs the two sides of every row run on.
#[derive(Clone, Debug)]
pub struct Cpus {
    /// The measuring side's CPU and the other side's, when at least two are allowed.
    pub pair: Option<(usize, usize)>,
    /// Why there is no pair, or what went wrong pinning; empty when all is well.
    pub problem: String,
    /// Every CPU this process was allowed when the run began, in order.
    pub all: Vec<usize>,
}

impl Cpus {
    /// The first two CPUs this process may run on.
    pub fn choose() -> Cpus {
        let allowed = match sched_getaffinity(None) {
            Ok(set) => set,
            Err(e) => {
                return Cpus {
                    pair: None,
                    problem: format!("sched_getaffinity failed ({e}); sides not pinned"),
                    all: Vec::new(),
                }
            }
        };
        let all: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|&c| allowed.is_set(c))
            .collect();
        match *all.as_slice() {
            [a, b, ..] => Cpus {
                pair: Some((a, b)),
                problem: String::new(),
                all,
            },
            _ => Cpus {
                pair: None,
                problem: "fewer than 2 CPUs allowed; sides not pinned".to_owned(),
                all,
            },
        }
    }

    /// How many CPUs the rows' threads share: the allowed ones, or what the system
    /// reports where affinity could not be read.
    pub fn count(&self) -> usize {
        if self.all.is_empty() {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.all.len()
        }
    }

    /// The CPU of worker `k` of a row whose threads take every CPU in turn, none where
    /// there is no pair to spread over.
    pub fn worker(&self, k: usize) -> Option<usize> {
        self.pair?;
        Some(self.all[k % self.all.len()])
    }

    /// The CPU of worker `k` beside a measuring thread on [`a`](Self::a): every other
    /// CPU in turn, so that the measuring thread keeps its own.
    pub fn beside_a(&self, k: usize) -> Option<usize> {
        self.pair?;
        let others = &self.all[1..];
        Some(others[k % others.len()])
    }

    /// The measuring side's CPU.
    pub fn a(&self) -> Option<usize> {
        self.pair.map(|p| p.0)
    }

    /// The other side's CPU.
    pub fn b(&self) -> Option<usize> {
        self.pair.map(|p| p.1)
    }

    /// How the table header describes the pinning.
    pub fn describe(&self) -> String {
        match (self.pair, self.problem.is_empty()) {
            (Some((a, b)), true) => format!("sides pinned to CPUs {a} and {b}"),
            (Some((a, b)), false) => format!("pinning to CPUs {a} and {b}: {}", self.problem),
            (None, _) => self.problem.clone(),
        }
    }
}

/// Pins the calling thread to `cpu`; true on success, false with no CPU to pin to or if
/// the kernel refused (the row then says it ran unpinned).
pub fn pin_current(cpu: Option<usize>) -> bool {
    let Some(cpu) = cpu else {
        return false;
    };
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).is_ok()
}

/// Lets the calling thread run on every CPU of `cpus` (or on whatever it may, where they
/// could not be read); true on success. Threads it then starts inherit that, as do
/// processes.
pub fn unpin_current(cpus: &Cpus) -> bool {
    if cpus.all.is_empty() {
        return false;
    }
    let mut set = CpuSet::new();
    for &c in &cpus.all {
        set.set(c);
    }
    sched_setaffinity(None, &set).is_ok()
}

#[cfg(feature = "serde")]
/// Pins process `pid` (its main thread) to `cpu`; true on success, false with no CPU to
/// pin to or if the kernel refused.
pub fn pin_process(pid: u32, cpu: Option<usize>) -> bool {
    let (Some(cpu), Some(pid)) = (cpu, rustix::process::Pid::from_raw(pid as i32)) else {
        return false;
    };
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(Some(pid), &set).is_ok()
}
