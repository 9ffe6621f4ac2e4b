//! `ringport bench`: runs the selected rows one after another and reports them.

use crate::child::ChildGuard;
use crate::machine::{clock_read_ns, CpuSample};
use crate::pin::{pin_current, Cpus};
use crate::report::{self, Row};
use crate::scenarios::{self, Scenario, Size};
use crate::tput::TRIALS;
use crate::watchdog::{self, NAME_PREFIX};
use crate::Result;
use hdrhistogram::Histogram;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Options of `ringport bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Run only rows whose name contains SUBSTRING (repeatable). The floors and rtrb rows
    /// the selected rows are compared with run too. The MPMC scaling run (1 to 8
    /// producers and consumers, for machines of 16 CPUs) is left out of the default run:
    /// `--only mpmc-scaling` runs it.
    #[arg(long = "only", value_name = "SUBSTRING")]
    only: Vec<String>,
    /// List the rows and what each compares with, then exit.
    #[arg(long)]
    list: bool,
    /// Print the results as JSON (an array with one object per row) instead of a table.
    #[arg(long)]
    json: bool,
    /// Messages per single-u64 throughput row; batched rows send 4 times as many, slow
    /// peers a sixth, frame rows an eighth (64 B) or a fortieth (4 KiB); shared-state
    /// read rows read a fortieth; MPMC rows send and fan-out rows deliver a two-hundredth
    /// (the MPMC scaling rows send a fortieth); rows of messages in full of B bytes send
    /// N / (100 + B / 20), about 4 GB of large messages; tiny-task rows run and batching
    /// rows send a hundredth.
    #[arg(long, value_name = "N")]
    messages: Option<u64>,
    /// Recorded round trips per busy round-trip row; rows whose sides sleep do 1/300;
    /// shared-state rows time 1/100 as many batches of 256 operations, or 1/600 as many
    /// wake-ups; broadcast publish-time rows 1/1000 as many batches of 256 publishes;
    /// zero-copy transfer rows time 1/100 as many batches of 64 transfers, or do 1/10 as
    /// many round trips of two transfers; worker-pool rows do 1/30 as many task round
    /// trips; priority rows send 1/300 as many HIGH messages, one per 100 us.
    #[arg(long, value_name = "N")]
    rounds: Option<u64>,
    /// A smoke run of about 15 seconds: a fifth of the default sizes.
    #[arg(long)]
    quick: bool,
    /// Fail the run if one row takes longer than this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    row_timeout: u64,
}

/// Default `--messages`.
const MESSAGES: u64 = 200_000_000;
/// Default `--rounds`.
const ROUNDS: u64 = 3_000_000;
/// The MPMC rows send this fraction of `--messages`: several threads on one ring, often
/// more than there are CPUs, and peers an order of magnitude slower than an SPSC ring.
const MPMC_SHARE: u64 = 200;
/// The opt-in MPMC scaling rows send this fraction of `--messages`: a machine of many CPUs
/// moves tens of millions a second.
const SCALING_SHARE: u64 = 40;
/// The fan-out rows deliver this fraction of `--messages`, all subscribers together.
const FANOUT_SHARE: u64 = 200;
/// The worker-pool round-trip rows do this fraction of `--rounds`: a task's round trip
/// takes microseconds, a process worker's several.
const TASK_RTT_SHARE: u64 = 30;
/// The tiny-task rows run this fraction of `--messages`, all runs together: each task
/// costs a pool a few hundred nanoseconds, and a run must outlast the scheduler's slices.
const TASKS_SHARE: u64 = 100;
/// The batching rows send this fraction of `--messages`, all runs together: batches of
/// one cost a lock and a publish per message.
const QUEUED_SHARE: u64 = 100;
/// The priority rows send this fraction of `--rounds` HIGH messages, one per
/// `priority::TICK`.
const TICKS_SHARE: u64 = 300;

/// How much one row sends.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Messages, round trips or batches before measuring starts.
    pub warm: u64,
    /// Messages, round trips or batches measured.
    pub count: u64,
    /// Payload bytes per frame in frame rows, else 0.
    pub frame: usize,
    /// Independent runs of `warm + count` (throughput rows; 1 for round trips).
    pub trials: u64,
}

impl Plan {
    /// Everything one run sends, warm-up included.
    pub fn total(&self) -> u64 {
        self.warm + self.count
    }

    /// The plan for a row of `size`, given `--messages` and `--rounds`.
    fn new(size: Size, messages: u64, rounds: u64) -> Plan {
        let (count, frame) = match size {
            Size::Rtt => (rounds, 0),
            Size::RttSleeping => ((rounds / 300).max(100), 0),
            Size::U64 => (messages, 0),
            Size::U64Batch => (messages * 4, 0),
            Size::U64Slow => (messages / 6, 0),
            Size::Frames(bytes) => (messages / (8 + bytes as u64 / 128), bytes),
            Size::Ops => (rounds / 100, 0),
            Size::Reads => (messages / 40, 0),
            Size::Wakes => (rounds / 600, 0),
            Size::Mpmc => (messages / MPMC_SHARE, 0),
            Size::MpmcScaling => (messages / SCALING_SHARE, 0),
            Size::Fanout(subscribers) => (messages / (FANOUT_SHARE * subscribers as u64), 0),
            Size::Publishes => (rounds / 1000, 0),
            Size::Transfers => (rounds / 100, 0),
            Size::TransferRtt => (rounds / 10, 0),
            Size::Messages(bytes) => (messages / (100 + bytes as u64 / 20), bytes),
            Size::TaskRtt => (rounds / TASK_RTT_SHARE, 0),
            Size::Tasks => (messages / TASKS_SHARE, 0),
            Size::Queued => (messages / QUEUED_SHARE, 0),
            Size::Ticks => (rounds / TICKS_SHARE, 0),
        };
        if size.is_latency() {
            let count = count.max(1);
            return Plan {
                warm: (count / 10).max(100),
                count,
                frame,
                trials: 1,
            };
        }
        if let Size::Messages(_) = size {
            // Messages are sent one at a time, and large ones take a millisecond each:
            // no chunks to round to.
            let count = (count / TRIALS).max(8);
            return Plan {
                warm: (count / 10).max(2),
                count,
                frame,
                trials: TRIALS,
            };
        }
        // Runs send in chunks of 256; whole chunks keep every run's count exact.
        let count = (count / TRIALS).next_multiple_of(256).max(256);
        Plan {
            warm: if size.times_whole_runs() {
                0
            } else {
                (count / 10).next_multiple_of(256)
            },
            count,
            frame,
            trials: TRIALS,
        }
    }
}

/// What a row's harness measured.
pub struct Measured {
    /// Round-trip histogram or throughput.
    pub numbers: Numbers,
    /// Futex syscalls both sides made during the row (through ringport's counter).
    pub futex: u64,
    /// Whether both sides ran pinned.
    pub pinned: bool,
    /// Operations per second the other side completed meanwhile, where it works on its
    /// own rather than answering (the writer beside a reader).
    pub peer_rate: Option<f64>,
    /// Threads that worked in the row, where its harness counts them (rows of many threads).
    pub threads: Option<usize>,
    /// Messages subscribers lost to lags, all runs and subscribers together, in rows
    /// whose path may overwrite.
    pub lost: Option<u64>,
    /// Messages per frame received, in rows that send batches as frames.
    pub per_frame: Option<f64>,
    /// The share of the row the measuring thread waited for a CPU, where it measured it.
    pub cpu_wait: Option<f64>,
}

/// A row's measurement proper.
pub enum Numbers {
    /// Round trips in nanoseconds.
    Latency(Histogram<u64>),
    /// `(messages, nanoseconds)` of each run.
    Throughput(Vec<(u64, u64)>),
    /// Picoseconds per operation of each timed batch of `batch` operations.
    PerOp {
        /// One sample per batch.
        hist: Histogram<u64>,
        /// Operations per batch.
        batch: u64,
    },
}

impl Measured {
    /// A round-trip row's result.
    pub fn latency(hist: Histogram<u64>, futex: u64, pinned: bool) -> Measured {
        Measured {
            numbers: Numbers::Latency(hist),
            futex,
            pinned,
            peer_rate: None,
            threads: None,
            lost: None,
            per_frame: None,
            cpu_wait: None,
        }
    }

    /// A result in picoseconds per operation, over batches of `batch` operations.
    pub fn per_op(hist: Histogram<u64>, batch: u64, futex: u64, pinned: bool) -> Measured {
        Measured {
            numbers: Numbers::PerOp { hist, batch },
            futex,
            pinned,
            peer_rate: None,
            threads: None,
            lost: None,
            per_frame: None,
            cpu_wait: None,
        }
    }

    /// The result with the other side's rate of operations.
    pub fn with_peer_rate(self, rate: f64) -> Measured {
        Measured {
            peer_rate: Some(rate),
            ..self
        }
    }

    /// The result of a row of `threads` threads.
    pub fn with_threads(self, threads: usize) -> Measured {
        Measured {
            threads: Some(threads),
            ..self
        }
    }

    /// The result with the messages subscribers lost to lags.
    pub fn with_lost(self, lost: u64) -> Measured {
        Measured {
            lost: Some(lost),
            ..self
        }
    }

    /// The result with the messages each frame carried.
    pub fn with_per_frame(self, per_frame: f64) -> Measured {
        Measured {
            per_frame: Some(per_frame),
            ..self
        }
    }

    /// The result with the share of the row the measuring thread waited for a CPU.
    pub fn with_cpu_wait(self, cpu_wait: Option<f64>) -> Measured {
        Measured { cpu_wait, ..self }
    }

    /// A throughput row's result.
    pub fn throughput(runs: Vec<(u64, u64)>, futex: u64, pinned: bool) -> Measured {
        Measured {
            numbers: Numbers::Throughput(runs),
            futex,
            pinned,
            peer_rate: None,
            threads: None,
            lost: None,
            per_frame: None,
            cpu_wait: None,
        }
    }
}

/// What a row's harness gets: its plan, CPUs, and helpers that keep the watchdog
/// informed.
pub struct Ctx<'a> {
    /// The row.
    pub scenario: &'a Scenario,
    /// Its position in the run, for unique names.
    pub index: usize,
    /// How much it sends.
    pub plan: Plan,
    /// Where its sides run.
    pub cpus: &'a Cpus,
    /// Whether the measuring thread is pinned.
    pub main_pinned: bool,
}

/// A peer thread of a row; see [`Ctx::spawn_peer`].
pub struct Peer<R> {
    handle: std::thread::JoinHandle<(R, bool)>,
}

impl<R> Peer<R> {
    /// Waits for the peer; returns its result and whether it ran pinned.
    pub fn join(self) -> (R, bool) {
        self.handle
            .join()
            .unwrap_or_else(|_| watchdog::abort("a peer thread panicked"))
    }
}

impl Ctx<'_> {
    /// A name for the segment of the row's run `trial`, unique to this invocation, row
    /// and trial, unlinked even if the run aborts.
    pub fn segment_name(&self, trial: u64) -> String {
        let name = format!("{NAME_PREFIX}{}-{}-{trial}", std::process::id(), self.index);
        watchdog::track_name(&name);
        name
    }

    /// Runs `f` on `end` on a thread pinned to the other side's CPU. An error there
    /// aborts the run before `end` drops: the measuring side would otherwise see a closed
    /// peer and report that instead of the cause.
    pub fn spawn_peer<E, R>(
        &self,
        end: E,
        f: impl FnOnce(&mut E) -> Result<R> + Send + 'static,
    ) -> Peer<R>
    where
        E: Send + 'static,
        R: Send + 'static,
    {
        let mut end = end;
        self.spawn_on(self.cpus.b(), "peer", move || f(&mut end))
    }

    /// Runs `f` on a thread named `role`, pinned to `cpu`; an error there aborts the run
    /// (see [`spawn_peer`](Self::spawn_peer)).
    pub fn spawn_on<R: Send + 'static>(
        &self,
        cpu: Option<usize>,
        role: &str,
        f: impl FnOnce() -> Result<R> + Send + 'static,
    ) -> Peer<R> {
        let row = self.scenario.name;
        let who = role.to_owned();
        let handle = std::thread::Builder::new()
            .name(role.into())
            .spawn(move || {
                let pinned = pin_current(cpu);
                match f() {
                    Ok(r) => (r, pinned),
                    Err(e) => watchdog::abort(&format!("{row} ({who} thread): {e}")),
                }
            })
            .unwrap_or_else(|e| {
                watchdog::abort(&format!("{row}: spawning the {role} thread: {e}"))
            });
        Peer { handle }
    }

    /// The value of a measuring-side step, or an abort while this side's end is still
    /// open (see [`spawn_peer`](Self::spawn_peer)).
    pub fn or_abort<T>(&self, r: Result<T>) -> T {
        r.unwrap_or_else(|e| watchdog::abort(&format!("{}: {e}", self.scenario.name)))
    }

    /// Starts this row's child process, which joins through `name` (and `stdin`).
    pub fn spawn_child(&self, name: &str, stdin: Stdio) -> Result<ChildGuard> {
        ChildGuard::spawn(self.scenario.name, name, &self.plan, self.cpus.b(), stdin)
    }
}

/// Runs `ringport bench`.
pub fn main(args: BenchArgs) -> ExitCode {
    let all = scenarios::all();
    if args.list {
        report::print_list(&all);
        return ExitCode::SUCCESS;
    }
    let selected = scenarios::select(&all, &args.only);
    if selected.is_empty() {
        eprintln!("ringport bench: no row matches {:?}; see --list", args.only);
        return ExitCode::FAILURE;
    }
    let scale = if args.quick { 5 } else { 1 };
    let messages = args.messages.unwrap_or(MESSAGES / scale).max(1);
    let rounds = args.rounds.unwrap_or(ROUNDS / scale).max(1);

    watchdog::remove_stale_names();
    watchdog::start();
    let mut cpus = Cpus::choose();
    let main_pinned = pin_current(cpus.a());
    if cpus.pair.is_some() && !main_pinned {
        cpus.problem = "sched_setaffinity refused; sides not pinned".to_owned();
    }
    eprintln!(
        "ringport bench: {} rows; {}; --messages {messages} --rounds {rounds}",
        selected.len(),
        cpus.describe()
    );

    let clock_read_ns = clock_read_ns();
    let started = Instant::now();
    let run_cpu = CpuSample::now();
    let mut rows: Vec<Row> = Vec::with_capacity(selected.len());
    for (index, scenario) in selected.iter().enumerate() {
        let ctx = Ctx {
            scenario,
            index,
            plan: Plan::new(scenario.size, messages, rounds),
            cpus: &cpus,
            main_pinned,
        };
        watchdog::begin_row(scenario.name, Duration::from_secs(args.row_timeout));
        let t0 = Instant::now();
        let cpu0 = CpuSample::now();
        let measured = (scenario.run)(&ctx)
            .unwrap_or_else(|e| watchdog::abort(&format!("{}: {e}", scenario.name)));
        let wall = t0.elapsed();
        watchdog::end_row();
        let others = others_since(cpu0);
        let row = Row::new(scenario, &ctx.plan, measured, wall, others);
        eprintln!(
            "[{:>2}/{}] {}",
            index + 1,
            selected.len(),
            report::progress_line(&row, &rows, cpus.count())
        );
        rows.push(row);
    }
    let meta = report::Meta {
        cpus: &cpus,
        messages,
        rounds,
        elapsed: started.elapsed(),
        others: others_since(run_cpu),
        clock_read_ns,
    };
    if args.json {
        report::print_json(&rows, &meta);
    } else {
        report::print_table(&rows, &meta);
    }
    ExitCode::SUCCESS
}

/// The share of CPU time other processes took since `before`.
fn others_since(before: Option<CpuSample>) -> Option<f64> {
    before?.others_since(&CpuSample::now()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_plans_are_whole_chunks() {
        for size in [
            Size::U64,
            Size::U64Batch,
            Size::U64Slow,
            Size::Frames(64),
            Size::Frames(4096),
            Size::Reads,
            Size::Mpmc,
            Size::MpmcScaling,
            Size::Fanout(8),
            Size::Tasks,
            Size::Queued,
        ] {
            for messages in [1, 1000, MESSAGES, MESSAGES / 5 + 3] {
                let p = Plan::new(size, messages, ROUNDS);
                assert_eq!(p.trials, TRIALS);
                assert!(
                    p.count >= 256 && p.count % 256 == 0,
                    "{size:?} {messages}: {p:?}"
                );
                assert_eq!(p.warm % 256, 0, "{size:?} {messages}: {p:?}");
            }
        }
    }

    #[test]
    fn round_trip_plans_warm_up_and_run_once() {
        let p = Plan::new(Size::Rtt, MESSAGES, 1000);
        assert_eq!((p.warm, p.count, p.trials), (100, 1000, 1));
        let p = Plan::new(Size::RttSleeping, MESSAGES, 3_000_000);
        assert_eq!((p.count, p.trials), (10_000, 1));
        let p = Plan::new(Size::Ops, MESSAGES, ROUNDS);
        assert_eq!((p.count, p.trials), (30_000, 1));
        let p = Plan::new(Size::Wakes, MESSAGES, ROUNDS);
        assert_eq!((p.warm, p.count, p.trials), (500, 5_000, 1));
        let p = Plan::new(Size::Ops, MESSAGES, 1);
        assert_eq!((p.warm, p.count), (100, 1));
        let p = Plan::new(Size::Publishes, MESSAGES, ROUNDS);
        assert_eq!((p.count, p.trials), (3_000, 1));
        let p = Plan::new(Size::Transfers, MESSAGES, ROUNDS);
        assert_eq!((p.warm, p.count, p.trials), (3_000, 30_000, 1));
        let p = Plan::new(Size::TransferRtt, MESSAGES, ROUNDS);
        assert_eq!((p.count, p.trials), (300_000, 1));
        let p = Plan::new(Size::TaskRtt, MESSAGES, ROUNDS);
        assert_eq!((p.warm, p.count, p.trials), (10_000, 100_000, 1));
        let p = Plan::new(Size::Ticks, MESSAGES, ROUNDS);
        assert_eq!((p.warm, p.count, p.trials), (1_000, 10_000, 1));
    }

    #[test]
    fn message_plans_move_about_the_same_bytes_whatever_the_size() {
        for bytes in [1 << 20, 4 << 20] {
            let p = Plan::new(Size::Messages(bytes), MESSAGES, ROUNDS);
            assert_eq!((p.frame, p.trials), (bytes, TRIALS));
            let moved = (p.count * p.trials * bytes as u64) as f64;
            assert!((3.9e9..4.1e9).contains(&moved), "{bytes}: {p:?}");
        }
        let small = Plan::new(Size::Messages(64), MESSAGES, ROUNDS);
        assert!(small.count > 300_000, "{small:?}");
        // Tiny runs still send and warm up.
        let p = Plan::new(Size::Messages(4 << 20), 1, 1);
        assert_eq!((p.warm, p.count), (2, 8));
    }

    #[test]
    fn rows_of_many_threads_time_whole_runs() {
        let p = Plan::new(Size::Mpmc, MESSAGES, ROUNDS);
        assert_eq!(p.warm, 0);
        assert!((p.count * p.trials).abs_diff(MESSAGES / MPMC_SHARE) < 256 * 5);
        // Fewer messages to more subscribers: the same deliveries.
        for subscribers in [1, 2, 4, 8] {
            let p = Plan::new(Size::Fanout(subscribers), MESSAGES, ROUNDS);
            let deliveries = p.count * p.trials * subscribers as u64;
            assert_eq!(p.warm, 0);
            assert!(deliveries.abs_diff(MESSAGES / FANOUT_SHARE) < 256 * 5 * 8);
        }
    }
}
