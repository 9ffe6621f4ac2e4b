//! Pinning the two sides of a row to two different CPUs.
//!
//! Unpinned, the scheduler may put both sides on one CPU (a round trip then measures
//! context switches) or migrate them mid-row; either makes numbers meaningless. The
//! measuring side (main thread or parent process) runs on `a`, the other side on `b`.

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// The CPUs the two sides of every row run on.
#[derive(Clone, Debug)]
pub struct Cpus {
    /// The measuring side's CPU and the other side's, when at least two are allowed.
    pub pair: Option<(usize, usize)>,
    /// Why there is no pair, or what went wrong pinning; empty when all is well.
    pub problem: String,
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
                }
            }
        };
        let mut cpus = (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c));
        match (cpus.next(), cpus.next()) {
            (Some(a), Some(b)) => Cpus {
                pair: Some((a, b)),
                problem: String::new(),
            },
            _ => Cpus {
                pair: None,
                problem: "fewer than 2 CPUs allowed; sides not pinned".to_owned(),
            },
        }
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
