//! Results: a progress line per row on stderr, then on stdout either tables followed by
//! the project's targets checked against this run, or JSON.
//!
//! The shared state's rows (`state/...`) get tables of their own: their latencies are
//! nanoseconds per operation or one-way wake-ups rather than round trips, and their
//! throughput counts reads. So do the MPMC rows (`mpmc/...`, `mpmc-scaling/...`), whose
//! threads may outnumber the CPUs, and the broadcast rows (`broadcast/...`), whose
//! throughput counts deliveries and whose subscribers may lose messages to lags. So do the
//! zero-copy transfer rows (`transfer/...`): the cost of one transfer per buffer size, and
//! messages of up to 4 MiB in full, counted in thousands per second and in GB/s. So do
//! the worker pools' rows (`workers/...`: task round trips, tiny tasks per second) and
//! the queues' (`queues/...`: batching with the messages each frame carried, HIGH
//! priority latencies with the LOW flood's rate beside them).

use crate::bench::{Measured, Numbers, Plan};
use crate::pin::Cpus;
use crate::scenarios::{Scenario, FRAME_RING, SCALING, SLOTS};
use crate::state::BATCH;
use crate::tput::TRIALS;
use crate::transfer;
use crate::{batching, priority, tasks};
use ringport::ring::PodRing;
use serde_json::json;
use std::time::Duration;

/// A finished row.
pub struct Row {
    /// `group/what/placement`.
    pub name: &'static str,
    /// What its ratio is taken against.
    pub reference: Option<&'static str>,
    /// Whether its futex syscalls per message are meaningful.
    pub counts_futex: bool,
    /// The reference it measures a second time, if it does.
    pub recheck_of: Option<&'static str>,
    /// What it sent.
    pub plan: Plan,
    /// What it measured.
    pub stats: Stats,
    /// Futex syscalls during the row, both sides.
    pub futex: u64,
    /// Whether both sides ran pinned.
    pub pinned: bool,
    /// Wall time of the row, setup included.
    pub wall: Duration,
    /// Share of all CPU time other processes took during the row.
    pub others: Option<f64>,
    /// Operations per second of a side that works on its own beside the measured one.
    pub peer_rate: Option<f64>,
    /// Threads that worked in the row, where its harness counts them (rows of many threads).
    pub threads: Option<usize>,
    /// Messages subscribers lost to lags, where the path may overwrite.
    pub lost: Option<u64>,
    /// Messages per frame received, in rows that send batches as frames.
    pub per_frame: Option<f64>,
    /// The share of the row the measuring thread waited for a CPU, where it measured it.
    pub cpu_wait: Option<f64>,
}

/// A row's numbers.
pub enum Stats {
    /// Round trips, nanoseconds.
    Latency {
        /// Median.
        p50: u64,
        /// 99th percentile.
        p99: u64,
        /// 99.9th percentile.
        p999: u64,
        /// Fastest.
        min: u64,
        /// Slowest.
        max: u64,
        /// Mean.
        mean: f64,
        /// Round trips recorded.
        samples: u64,
    },
    /// Messages over time, in independent runs.
    Throughput {
        /// Messages measured.
        messages: u64,
        /// Nanoseconds they took.
        nanos: u64,
        /// Median of the runs' messages per second.
        median: f64,
        /// Slowest run's messages per second.
        slowest: f64,
        /// Fastest run's messages per second.
        fastest: f64,
        /// Payload bytes per frame in frame rows, else 0.
        frame: usize,
    },
    /// Nanoseconds per operation, over timed batches of operations.
    PerOp {
        /// Median batch.
        p50: f64,
        /// 99th percentile.
        p99: f64,
        /// 99.9th percentile.
        p999: f64,
        /// Fastest batch.
        min: f64,
        /// Slowest batch.
        max: f64,
        /// Mean.
        mean: f64,
        /// Batches recorded.
        batches: u64,
        /// Operations per batch.
        batch: u64,
    },
}

/// Whether `name` is a row of the shared state, reported in tables of its own.
fn is_state(name: &str) -> bool {
    name.starts_with("state/")
}

/// Whether `name` is an MPMC row, reported in a table of its own.
fn is_mpmc(name: &str) -> bool {
    name.starts_with("mpmc/") || name.starts_with("mpmc-scaling/")
}

/// Whether `name` is a broadcast row, reported in tables of their own.
fn is_broadcast(name: &str) -> bool {
    name.starts_with("broadcast/")
}

/// Whether `name` is a zero-copy transfer row, reported in tables of their own.
fn is_transfer(name: &str) -> bool {
    name.starts_with("transfer/")
}

/// Whether `name` is a worker pool's row, reported in tables of their own.
fn is_workers(name: &str) -> bool {
    name.starts_with("workers/")
}

/// Whether `name` is a batching or priority queue's row, reported in tables of their own.
fn is_queues(name: &str) -> bool {
    name.starts_with("queues/")
}

/// Whether `name` is a row of one producer and one consumer (or a round trip).
fn is_pair(name: &str) -> bool {
    !is_state(name)
        && !is_mpmc(name)
        && !is_broadcast(name)
        && !is_transfer(name)
        && !is_workers(name)
        && !is_queues(name)
}

/// What a throughput row's rates are divided by in the report, and the unit that gives:
/// messages of up to 4 MiB go by thousands a second, not millions.
fn rate_unit(name: &str) -> (f64, &'static str) {
    if is_state(name) {
        (1e6, "M reads/s")
    } else if is_broadcast(name) {
        (1e6, "M deliveries/s")
    } else if is_transfer(name) {
        (1e3, "k msg/s")
    } else if is_workers(name) {
        (1e6, "M tasks/s")
    } else {
        (1e6, "M msg/s")
    }
}

impl Row {
    /// A row from its scenario and measurement.
    pub fn new(
        scenario: &Scenario,
        plan: &Plan,
        m: Measured,
        wall: Duration,
        others: Option<f64>,
    ) -> Row {
        let stats = match m.numbers {
            Numbers::Latency(h) => Stats::Latency {
                p50: h.value_at_quantile(0.5),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                min: h.min(),
                max: h.max(),
                mean: h.mean(),
                samples: h.len(),
            },
            Numbers::Throughput(runs) => {
                let mut rates: Vec<f64> = runs.iter().map(|&(m, ns)| per_second(m, ns)).collect();
                rates.sort_by(f64::total_cmp);
                let median = match rates.len() {
                    0 => 0.0,
                    n if n % 2 == 1 => rates[n / 2],
                    n => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
                };
                Stats::Throughput {
                    messages: runs.iter().map(|r| r.0).sum(),
                    nanos: runs.iter().map(|r| r.1).sum(),
                    median,
                    slowest: rates.first().copied().unwrap_or(0.0),
                    fastest: rates.last().copied().unwrap_or(0.0),
                    frame: plan.frame,
                }
            }
            Numbers::PerOp { hist, batch } => {
                let ns = |ps: u64| ps as f64 / 1000.0;
                Stats::PerOp {
                    p50: ns(hist.value_at_quantile(0.5)),
                    p99: ns(hist.value_at_quantile(0.99)),
                    p999: ns(hist.value_at_quantile(0.999)),
                    min: ns(hist.min()),
                    max: ns(hist.max()),
                    mean: hist.mean() / 1000.0,
                    batches: hist.len(),
                    batch,
                }
            }
        };
        Row {
            name: scenario.name,
            reference: scenario.reference,
            counts_futex: scenario.counts_futex,
            recheck_of: scenario.recheck_of,
            plan: *plan,
            stats,
            futex: m.futex,
            pinned: m.pinned,
            wall,
            others,
            peer_rate: m.peer_rate,
            threads: m.threads,
            lost: m.lost,
            per_frame: m.per_frame,
            cpu_wait: m.cpu_wait,
        }
    }

    /// Whether the row ran more threads than the machine's `cpus`.
    pub fn oversubscribed(&self, cpus: usize) -> bool {
        self.threads.is_some_and(|t| t > cpus)
    }

    /// The share of messages subscribers lost to lags, of all they received or lost.
    fn lost_share(&self) -> Option<f64> {
        let lost = self.lost?;
        let due = match self.stats {
            // Throughput rows count what was delivered.
            Stats::Throughput { messages, .. } => messages + lost,
            // Publish-time rows: every subscriber was due every message published.
            _ => self.messages_sent() * (self.threads? as u64).saturating_sub(1),
        };
        Some(lost as f64 / due.max(1) as f64)
    }

    /// One-way messages the row sent, warm-up included (a round trip is two), or
    /// operations it ran.
    fn messages_sent(&self) -> u64 {
        match self.stats {
            Stats::Latency { .. } => 2 * self.plan.total(),
            Stats::Throughput { .. } => self.plan.trials * self.plan.total(),
            Stats::PerOp { batch, .. } => self.plan.total() * batch,
        }
    }

    /// Futex syscalls per one-way message, over the whole row.
    pub fn futex_per_message(&self) -> f64 {
        self.futex as f64 / self.messages_sent().max(1) as f64
    }

    /// Messages per second of a throughput row: the median run's.
    fn rate(&self) -> Option<f64> {
        match self.stats {
            Stats::Throughput { median, .. } => Some(median),
            Stats::Latency { .. } | Stats::PerOp { .. } => None,
        }
    }

    /// Payload gigabytes per second of a frame row.
    fn gb_per_s(&self) -> Option<f64> {
        match self.stats {
            Stats::Throughput { frame, .. } if frame > 0 => Some(self.rate()? * frame as f64 / 1e9),
            _ => None,
        }
    }

    /// The number ratios compare: p50 of a round-trip or per-operation row, messages/s
    /// of a throughput row.
    fn metric(&self) -> f64 {
        match self.stats {
            Stats::Latency { p50, .. } => p50 as f64,
            Stats::PerOp { p50, .. } => p50,
            Stats::Throughput { .. } => self.rate().unwrap_or(0.0),
        }
    }

    /// The metric as the report states it, with its unit.
    fn headline(&self) -> (f64, &'static str) {
        match self.stats {
            Stats::Latency { p50, .. } => (p50 as f64, "ns"),
            Stats::PerOp { p50, .. } => (p50, "ns/op"),
            Stats::Throughput { .. } => {
                let (per, unit) = rate_unit(self.name);
                (self.metric() / per, unit)
            }
        }
    }

    /// This row's metric over `other`'s.
    fn ratio_to(&self, other: &Row) -> f64 {
        self.metric() / other.metric().max(f64::MIN_POSITIVE)
    }

    /// The 99th percentile of a round-trip or per-operation row; a throughput row's
    /// metric.
    fn p99(&self) -> f64 {
        match self.stats {
            Stats::Latency { p99, .. } => p99 as f64,
            Stats::PerOp { p99, .. } => p99,
            Stats::Throughput { .. } => self.metric(),
        }
    }

    /// What a target on `on` compares of this row, with its unit.
    fn headline_on(&self, on: On) -> (f64, &'static str) {
        match on {
            On::Headline => self.headline(),
            On::P99 => (self.p99(), self.headline().1),
        }
    }

    /// The ratio to the row's reference, if that ran.
    fn ratio(&self, rows: &[Row]) -> Option<f64> {
        let r = self.reference?;
        rows.iter().find(|o| o.name == r).map(|o| self.ratio_to(o))
    }
}

/// How far a reference's second measurement may stray from its first (either way) before
/// ratios to it are called unreliable.
const MOVED: f64 = 1.25;

/// A reference whose second measurement differs from its first by more than [`MOVED`]:
/// `(its row, its second measurement's row)`.
fn moved(rows: &[Row]) -> Vec<(&Row, &Row)> {
    rows.iter()
        .filter_map(|again| {
            let first = rows.iter().find(|r| Some(r.name) == again.recheck_of)?;
            let r = again.ratio_to(first);
            (!(1.0 / MOVED..=MOVED).contains(&r)).then_some((first, again))
        })
        .collect()
}

/// Whether `name` is a reference that moved during the run.
fn has_moved(rows: &[Row], name: &str) -> bool {
    moved(rows).iter().any(|(first, _)| first.name == name)
}

/// Messages per second.
fn per_second(messages: u64, nanos: u64) -> f64 {
    messages as f64 * 1e9 / nanos.max(1) as f64
}

/// What the header and the JSON say about the whole run.
pub struct Meta<'a> {
    /// Pinning.
    pub cpus: &'a Cpus,
    /// `--messages`.
    pub messages: u64,
    /// `--rounds`.
    pub rounds: u64,
    /// Wall time of all rows.
    pub elapsed: Duration,
    /// Share of all CPU time other processes took during the run.
    pub others: Option<f64>,
    /// What the clock read in every round-trip sample costs.
    pub clock_read_ns: u64,
}

/// What a ringport pod ring asked for [`SLOTS`] holds.
fn pod_slots() -> usize {
    PodRing::<u64>::with_capacity(SLOTS).0.capacity()
}

/// The header's line on queue sizes.
fn capacities() -> String {
    format!(
        "u64 queues hold {SLOTS} messages each way (ringport pod rings {}: whole 64-byte blocks of 7), byte rings {} KiB",
        pod_slots(),
        FRAME_RING / 1024
    )
}

/// A row's futex syscalls per message, or `-` where they mean nothing.
fn futex_cell(row: &Row) -> String {
    if row.counts_futex {
        format!("{:.3}", row.futex_per_message())
    } else {
        "-".to_owned()
    }
}

/// A row's share of CPU time taken by other processes, or `?` for a row too short to
/// tell.
fn others_cell(row: &Row) -> String {
    row.others
        .map_or_else(|| "?".to_owned(), |o| format!("{:.0}%", o * 100.0))
}

/// A row's ratio to its reference: `ref` for references, `?` if the reference is missing,
/// a trailing `!` if the reference moved during the run.
fn ratio_cell(row: &Row, rows: &[Row]) -> String {
    match (row.reference, row.ratio(rows)) {
        (None, _) => "ref".to_owned(),
        (Some(r), Some(ratio)) if row.recheck_of.is_none() && has_moved(rows, r) => {
            format!("{ratio:.2}x!")
        }
        (Some(_), Some(ratio)) => format!("{ratio:.2}x"),
        (Some(_), None) => "?".to_owned(),
    }
}

/// A share of CPU time taken by other processes above which a row's numbers are flagged.
const NOISY: f64 = 0.05;

/// The progress line of a row that just finished on a machine of `cpus` CPUs; `done`
/// are the rows before it.
pub fn progress_line(row: &Row, done: &[Row], cpus: usize) -> String {
    let numbers = match row.stats {
        Stats::Latency { p50, p99, p999, .. } => {
            format!("p50 {p50} ns, p99 {p99} ns, p99.9 {p999} ns")
        }
        Stats::PerOp { p50, p99, p999, .. } => {
            format!("p50 {p50:.2} ns/op, p99 {p99:.2} ns/op, p99.9 {p999:.2} ns/op")
        }
        Stats::Throughput {
            slowest, fastest, ..
        } => {
            let (rate, unit) = row.headline();
            let (per, _) = rate_unit(row.name);
            let mut t = format!(
                "{rate:.1} {unit} (runs {:.1} to {:.1})",
                slowest / per,
                fastest / per
            );
            if let Some(gb) = row.gb_per_s() {
                t += &format!(", {gb:.2} GB/s");
            }
            t
        }
    };
    let mut line = format!("{}: {numbers}", row.name);
    if let (Some(r), Some(ratio)) = (row.reference, row.ratio(done)) {
        line += &format!(" ({ratio:.2}x {r})");
    }
    if let Some(rate) = row.peer_rate {
        line += &format!(", {} {:.2} M/s", peer_label(row.name), rate / 1e6);
    }
    if let Some(per) = row.per_frame {
        line += &format!(", {per:.1} msg/frame");
    }
    if let Some(w) = row.cpu_wait {
        line += &format!(", waited for a CPU {:.0}% of the row", w * 100.0);
    }
    if let (Some(lost), Some(share)) = (row.lost, row.lost_share()) {
        line += &format!(", lost {lost} to lags ({:.1}%)", share * 100.0);
    }
    if row.oversubscribed(cpus) {
        line += &format!(
            ", OVERSUBSCRIBED: {} threads on {cpus} CPUs",
            row.threads.unwrap_or(0)
        );
    }
    if row.counts_futex {
        line += &format!(", futex/msg {:.3}", row.futex_per_message());
    }
    if !row.pinned {
        line += ", UNPINNED";
    }
    if let Some(o) = row.others.filter(|&o| o >= NOISY) {
        line += &format!(", others took {:.0}% of the CPUs", o * 100.0);
    }
    line + &format!(" [{:.1} s]", row.wall.as_secs_f64())
}

/// What the side beside the measured one does, in the progress line: the shared state's
/// writer, or the priority rows' LOW flood.
fn peer_label(name: &str) -> &'static str {
    if is_queues(name) {
        "LOW flood received"
    } else {
        "writer"
    }
}

/// Prints the results as two tables and the targets.
pub fn print_table(rows: &[Row], meta: &Meta) {
    println!(
        "ringport bench: {} rows in {:.1} s; {}; {}",
        rows.len(),
        meta.elapsed.as_secs_f64(),
        meta.cpus.describe(),
        capacities()
    );
    println!(
        "sizes: --messages {} --rounds {}; every round-trip sample includes one clock read \
         (median {} ns)",
        meta.messages, meta.rounds, meta.clock_read_ns
    );
    if let Some(o) = meta.others {
        println!(
            "other processes took {:.0}% of all CPU time during the run{}",
            o * 100.0,
            if o >= NOISY {
                "; rows marked in the 'others' column ran on a busy machine and are not the machine's numbers"
            } else {
                ""
            }
        );
    }
    for (first, again) in moved(rows) {
        let ((a, unit), (b, _)) = (first.headline(), again.headline());
        println!(
            "REFERENCE MOVED: {} measured {a:.1} {unit}, then {b:.1} {unit} ({}); ratios marked ! \
             compare with a moving target: rerun",
            first.name, again.name
        );
    }
    let unpinned: Vec<&str> = rows.iter().filter(|r| !r.pinned).map(|r| r.name).collect();
    if !unpinned.is_empty() {
        println!("UNPINNED rows: {}", unpinned.join(", "));
    }
    let cpus = meta.cpus.count();
    let over: Vec<&Row> = rows.iter().filter(|r| r.oversubscribed(cpus)).collect();
    if !over.is_empty() {
        // The round-trip table has no column to mark them in.
        let unmarked: Vec<&str> = over
            .iter()
            .filter(|r| is_pair(r.name))
            .map(|r| r.name)
            .collect();
        println!(
            "OVERSUBSCRIBED: {} rows ran more threads than the {cpus} CPUs and measure the \
             scheduler as much as the path: {}",
            over.len(),
            if unmarked.is_empty() {
                "those marked * in the 'threads' and 'lost' columns".to_owned()
            } else {
                format!(
                    "{}, and any marked * in the 'threads' and 'lost' columns",
                    unmarked.join(", ")
                )
            }
        );
    }

    print_latency_table(rows);
    print_throughput_table(rows);
    print_mpmc_table(rows, cpus);
    print_broadcast_tables(rows, cpus);
    print_state_tables(rows);
    print_transfer_tables(rows);
    print_worker_tables(rows, cpus);
    print_queue_tables(rows);
    println!();
    println!("Targets (medians of this run)");
    for line in targets(rows, cpus) {
        println!("  {line}");
    }
}

/// A row's thread count, marked `*` where it exceeds the `cpus`, or `-`.
fn threads_cell(row: &Row, cpus: usize) -> String {
    match row.threads {
        Some(t) if t > cpus => format!("{t}*"),
        Some(t) => t.to_string(),
        None => "-".to_owned(),
    }
}

/// The MPMC rows, if any ran.
fn print_mpmc_table(rows: &[Row], cpus: usize) {
    print_throughputs(
        rows,
        |r| is_mpmc(r.name),
        &format!(
            "MPMC throughput of u64, P producers / C consumers (PpCc) on one queue of {SLOTS}, M msg/s: \
             median, slowest and fastest of {TRIALS} runs, each timed whole (ratio = median / \
             reference median; threads = P + C, * = more than the {cpus} CPUs)"
        ),
        ("threads", &|row| threads_cell(row, cpus)),
    );
}

/// The broadcast rows, if any ran: deliveries per second, and publish times.
fn print_broadcast_tables(rows: &[Row], cpus: usize) {
    print_throughputs(
        rows,
        |r| is_broadcast(r.name),
        &format!(
            "Broadcast fan-out of u64, one publisher to N subscriber threads (Nsub), M deliveries/s \
             (messages received, all subscribers together): median, slowest and fastest of \
             {TRIALS} runs, each timed whole (ratio = median / reference median; lost = share \
             lost to lags; * = more threads than the {cpus} CPUs)"
        ),
        ("lost", &|row| lost_cell(row, cpus)),
    );
    print_per_ops(
        rows,
        |r| is_broadcast(r.name),
        &format!(
            "Broadcast publish time under overwrite while subscribers read, ns per publish: \
             percentiles over timed batches of {BATCH} (ratio = p50 / reference p50; lost = \
             share the subscribers lost to lags)"
        ),
        ("lost", &|row| lost_cell(row, cpus)),
    );
}

/// A row's share of messages lost to lags, marked `*` where its threads exceed the
/// `cpus`, or `-`.
fn lost_cell(row: &Row, cpus: usize) -> String {
    let mark = if row.oversubscribed(cpus) { "*" } else { "" };
    row.lost_share().map_or_else(
        || "-".to_owned(),
        |share| format!("{:.1}%{mark}", share * 100.0),
    )
}

/// The round-trip rows, if any ran.
fn print_latency_table(rows: &[Row]) {
    print_latencies(
        rows,
        |r| is_pair(r.name),
        "Round trips of 8-byte messages, ns (ratio = p50 / reference p50; futex/msg = syscalls per one-way message; others = CPU share other processes took)",
        NO_COLUMN,
    );
}

/// No extra column.
const NO_COLUMN: Column = ("", &|_| String::new());

/// The width of an extra column with header `header`, its leading space included: none
/// for an empty header.
fn extra_width(header: &str) -> usize {
    if header.is_empty() {
        0
    } else {
        header.len().max(6) + 1
    }
}

/// The latency rows of `rows` that `keep` accepts, under `title`, if any ran, with
/// `extra` after the sample count (none if its header is empty).
fn print_latencies(rows: &[Row], keep: fn(&Row) -> bool, title: &str, extra: Column) {
    let shown = || {
        rows.iter()
            .filter(move |r| keep(r) && matches!(r.stats, Stats::Latency { .. }))
    };
    if shown().next().is_none() {
        return;
    }
    let (extra_header, extra_cell) = extra;
    let w = extra_width(extra_header);
    let width = reference_width(shown(), 26);
    let names = name_width(shown());
    println!();
    println!("{title}");
    println!(
        "{:<names$} {:>8} {:>8} {:>8} {:>9}{extra_header:>w$} {:>7}  {:<width$} {:>9} {:>6}",
        "row", "p50", "p99", "p99.9", "samples", "ratio", "reference", "futex/msg", "others"
    );
    for row in shown() {
        if let Stats::Latency {
            p50,
            p99,
            p999,
            samples,
            ..
        } = row.stats
        {
            let extra = if w == 0 {
                String::new()
            } else {
                extra_cell(row)
            };
            println!(
                "{:<names$} {p50:>8} {p99:>8} {p999:>8} {samples:>9}{extra:>w$} {:>7}  {:<width$} {:>9} {:>6}",
                row.name,
                ratio_cell(row, rows),
                row.reference.unwrap_or("-"),
                futex_cell(row),
                others_cell(row)
            );
        }
    }
}

/// The throughput rows, if any ran.
fn print_throughput_table(rows: &[Row]) {
    print_throughputs(
        rows,
        |r| is_pair(r.name),
        &format!(
            "Throughput, one producer and one consumer, M msg/s: median, slowest and fastest of {TRIALS} runs \
             (ratio = median / reference median; GB/s counts payload)"
        ),
        ("GB/s", &|row| {
            row.gb_per_s()
                .map_or_else(|| "-".to_owned(), |g| format!("{g:.2}"))
        }),
    );
}

/// A column of a table: its header and a row's cell.
type Column<'a> = (&'static str, &'a dyn Fn(&Row) -> String);

/// The width of the row column: 40, or the longest name's.
fn name_width<'a>(shown: impl Iterator<Item = &'a Row>) -> usize {
    shown.map(|r| r.name.len()).fold(40, usize::max)
}

/// The width of the reference column: its header's or the longest reference's.
fn reference_width<'a>(shown: impl Iterator<Item = &'a Row>, header: usize) -> usize {
    shown
        .filter_map(|r| r.reference)
        .map(str::len)
        .fold(header, usize::max)
}

/// The throughput rows of `rows` that `keep` accepts, under `title`, if any ran, with
/// `extra` after the three rates.
fn print_throughputs(rows: &[Row], keep: fn(&Row) -> bool, title: &str, extra: Column) {
    let shown = || {
        rows.iter()
            .filter(move |r| keep(r) && matches!(r.stats, Stats::Throughput { .. }))
    };
    if shown().next().is_none() {
        return;
    }
    let (extra_header, extra_cell) = extra;
    let w = extra_header.len().max(6);
    let width = reference_width(shown(), 28);
    let names = name_width(shown());
    println!();
    println!("{title}");
    println!(
        "{:<names$} {:>8} {:>8} {:>8} {extra_header:>w$} {:>11} {:>7}  {:<width$} {:>9} {:>6}",
        "row",
        "median",
        "slowest",
        "fastest",
        "messages",
        "ratio",
        "reference",
        "futex/msg",
        "others"
    );
    for row in shown() {
        if let Stats::Throughput {
            messages,
            slowest,
            fastest,
            ..
        } = row.stats
        {
            let extra = extra_cell(row);
            let (per, _) = rate_unit(row.name);
            println!(
                "{:<names$} {:>8.1} {:>8.1} {:>8.1} {extra:>w$} {messages:>11} {:>7}  {:<width$} {:>9} {:>6}",
                row.name,
                row.rate().unwrap_or(0.0) / per,
                slowest / per,
                fastest / per,
                ratio_cell(row, rows),
                row.reference.unwrap_or("-"),
                futex_cell(row),
                others_cell(row)
            );
        }
    }
}

/// The shared state's rows, if any ran: operations, wake-ups, reads beside a writer.
fn print_state_tables(rows: &[Row]) {
    print_per_ops(
        rows,
        |r| is_state(r.name),
        &format!(
            "Shared state, uncontended operations on 64-byte values, ns per operation: percentiles over \
             timed batches of {BATCH} (ratio = p50 / reference p50)"
        ),
        NO_COLUMN,
    );
    print_latencies(
        rows,
        |r| is_state(r.name),
        "Shared state, wake-ups one way, ns: a stamp taken before the set (or futex store) to the \
         woken side holding the value (ratio = p50 / reference p50; futex/msg per wake)",
        NO_COLUMN,
    );
    print_throughputs(
        rows,
        |r| is_state(r.name),
        &format!(
            "Shared state, reads by key of 64-byte values beside a writer rewriting them, M reads/s: \
             median, slowest and fastest of {TRIALS} runs (ratio = median / reference median; \
             writes = the writer's M writes/s meanwhile, median run)"
        ),
        ("writes", &|row| {
            row.peer_rate
                .map_or_else(|| "-".to_owned(), |r| format!("{:.2}", r / 1e6))
        }),
    );
}

/// The zero-copy transfer rows, if any ran: the cost of one transfer pipelined and in
/// ping-pong, and messages in full.
fn print_transfer_tables(rows: &[Row]) {
    print_per_ops(
        rows,
        |r| is_transfer(r.name),
        &format!(
            "Zero-copy transfer cost, pipelined: loan a buffer of the size named, write a {}-byte \
             header, into_handle, PodPort<BufferHandle> to another thread, accept, check the \
             header, drop; ns per transfer, percentiles over timed batches of {} (ratio = p50 / \
             reference p50: flat is 1)",
            transfer::HEADER,
            transfer::BATCH
        ),
        NO_COLUMN,
    );
    print_latencies(
        rows,
        |r| is_transfer(r.name),
        "Zero-copy transfer ping-pong: a transfer of a buffer of the size named to the other \
         thread and one back (each: loan, header, send, accept, check, drop), ns per round trip \
         (ratio = p50 / reference p50: flat is 1)",
        NO_COLUMN,
    );
    print_throughputs(
        rows,
        |r| is_transfer(r.name),
        &format!(
            "Messages in full (the producer writes every byte, the consumer reads every byte), \
             k msg/s: median, slowest and fastest of {TRIALS} runs; GB/s = median x size (ratio = \
             median / reference median)"
        ),
        ("GB/s", &|row| {
            row.gb_per_s()
                .map_or_else(|| "-".to_owned(), |g| format!("{g:.2}"))
        }),
    );
}

/// The worker pools' rows, if any ran: task round trips, and tiny tasks per second.
fn print_worker_tables(rows: &[Row], cpus: usize) {
    print_latencies(
        rows,
        |r| is_workers(r.name),
        "Worker pools: round trip of one empty task (execute, then wait for its result; a blocking \
         port round trip for the reference), ns (ratio = p50 / reference p50; threads = the \
         measuring thread and the pool's)",
        ("threads", &|row| threads_cell(row, cpus)),
    );
    print_throughputs(
        rows,
        |r| is_workers(r.name),
        &format!(
            "Worker pools: tiny tasks (a u64 add), M tasks/s submitted and every result collected, \
             at most {} in flight: median, slowest and fastest of {TRIALS} runs (ratio = median \
             / reference median; threads = submitter + {} workers on every CPU, unpinned; * = \
             more than the {cpus} CPUs)",
            tasks::WINDOW,
            tasks::WORKERS
        ),
        ("threads", &|row| threads_cell(row, cpus)),
    );
}

/// The queues' rows, if any ran: batching throughput, and HIGH priority latency.
fn print_queue_tables(rows: &[Row]) {
    print_throughputs(
        rows,
        |r| is_queues(r.name),
        &format!(
            "Batching: MessageQueue to BatchReceiver, {}-byte messages, M msg/s delivered: median, \
             slowest and fastest of {TRIALS} runs (ratio = median / reference median; msg/frame = \
             messages per frame received, each frame one batch and one publish)",
            batching::MESSAGE
        ),
        ("msg/frame", &|row| {
            row.per_frame
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.1}"))
        }),
    );
    print_latencies(
        rows,
        |r| is_queues(r.name),
        &format!(
            "Priority: HIGH messages one per {} us, send (stamped right before it) to receive, \
             ns; two threads, the sender and the receiver, each on a CPU of its own, neither \
             asleep but the -sleep row's receiver (ratio = p50 / reference p50; low M/s = LOW messages \
             the receiver delivered meanwhile, which the sender floods between HIGH sends in \
             the flood row; cpu wait = share of the row the receiver waited for a CPU: where it \
             is high, HIGH messages waited for the scheduler)",
            priority::TICK.as_micros()
        ),
        ("low M/s cpu wait", &|row| {
            let low = row
                .peer_rate
                .map_or_else(|| "-".to_owned(), |r| format!("{:.2}", r / 1e6));
            let wait = row
                .cpu_wait
                .map_or_else(|| "-".to_owned(), |w| format!("{:.0}%", w * 100.0));
            format!("{low:>7} {wait:>8}")
        }),
    );
}

/// The per-operation rows of `rows` that `keep` accepts, under `title`, if any ran, with
/// `extra` after the sample count (none if its header is empty).
fn print_per_ops(rows: &[Row], keep: fn(&Row) -> bool, title: &str, extra: Column) {
    let shown = || {
        rows.iter()
            .filter(move |r| keep(r) && matches!(r.stats, Stats::PerOp { .. }))
    };
    if shown().next().is_none() {
        return;
    }
    let (extra_header, extra_cell) = extra;
    let w = extra_width(extra_header);
    let width = reference_width(shown(), 26);
    let names = name_width(shown());
    println!();
    println!("{title}");
    println!(
        "{:<names$} {:>8} {:>8} {:>8} {:>9}{extra_header:>w$} {:>7}  {:<width$} {:>9} {:>6}",
        "row", "p50", "p99", "p99.9", "batches", "ratio", "reference", "futex/op", "others"
    );
    for row in shown() {
        if let Stats::PerOp {
            p50,
            p99,
            p999,
            batches,
            ..
        } = row.stats
        {
            let extra = if w == 0 {
                String::new()
            } else {
                extra_cell(row)
            };
            println!(
                "{:<names$} {p50:>8.2} {p99:>8.2} {p999:>8.2} {batches:>9}{extra:>w$} {:>7}  {:<width$} {:>9} {:>6}",
                row.name,
                ratio_cell(row, rows),
                row.reference.unwrap_or("-"),
                futex_cell(row),
                others_cell(row)
            );
        }
    }
}

/// How a target judges its value.
enum Bound {
    /// The value must not exceed this.
    AtMost(f64),
    /// The value must reach this.
    AtLeast(f64),
    /// No bound: the comparison is shown for information.
    Info,
}

/// What a target compares of its two rows.
#[derive(Clone, Copy)]
enum On {
    /// The metric of the tables' ratios: p50, or the median run's rate.
    Headline,
    /// The 99th percentile (latency rows).
    P99,
}

/// A target of the project: `row`'s metric (`on`) over `against`'s, within `bound`, on a
/// machine of at least `min_cpus` CPUs (its rows' threads each on their own).
struct Target {
    what: &'static str,
    row: &'static str,
    against: &'static str,
    bound: Bound,
    min_cpus: usize,
    on: On,
}

/// The project's targets for ringport against its floors and peers.
const TARGETS: &[Target] = &[
    Target {
        what: "busy pod port round trip between processes vs two-line floor",
        row: "rtt/pod-port-busy/processes",
        against: "floor/two-line/processes",
        bound: Bound::AtMost(1.1),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "busy frame port round trip between processes vs two-line floor",
        row: "rtt/frame-port-busy/processes",
        against: "floor/two-line/processes",
        bound: Bound::AtMost(1.1),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "pod ring single u64 throughput vs rtrb push/pop",
        row: "tput/pod-ring/threads",
        against: "tput/rtrb/threads",
        bound: Bound::AtLeast(1.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "pod ring batched throughput vs rtrb chunks",
        row: "tput/pod-ring-batch256/threads",
        against: "tput/rtrb-chunks256/threads",
        bound: Bound::AtLeast(1.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "pod port throughput, processes vs in-process pod ring",
        row: "tput/pod-port/processes",
        against: "tput/pod-ring/threads",
        bound: Bound::AtLeast(0.9),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "pod port batched throughput, processes vs in-process pod ring",
        row: "tput/pod-port-batch256/processes",
        against: "tput/pod-ring-batch256/threads",
        bound: Bound::AtLeast(0.9),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "blocking pod port round trip vs crossbeam-channel blocking recv",
        row: "rtt/pod-port-blocking/threads",
        against: "rtt/crossbeam-channel-blocking/threads",
        bound: Bound::AtMost(1.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "sleeping pod port round trip vs raw futex ping-pong, threads",
        row: "rtt/pod-port-sleep/threads",
        against: "rtt/futex-sleep/threads",
        bound: Bound::AtMost(1.1),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "sleeping pod port round trip vs raw futex ping-pong, processes",
        row: "rtt/pod-port-sleep/processes",
        against: "rtt/futex-sleep/processes",
        bound: Bound::AtMost(1.1),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "4 KiB frame ring throughput vs rtrb as a byte ring",
        row: "tput/frame-ring-4KiB/threads",
        against: "tput/rtrb-bytes-4KiB/threads",
        bound: Bound::AtLeast(1.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: uncontended get_pod of 64 bytes by key vs HashMap get + copy",
        row: "state/get-pod/threads",
        against: "state/hashmap-get/threads",
        bound: Bound::AtMost(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: uncontended Entry::get_pod of 64 bytes, one key, vs a plain copy",
        row: "state/entry-get-pod-hot/threads",
        against: "state/plain-copy-hot/threads",
        bound: Bound::AtMost(3.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: reads beside a continuous writer vs RwLock<HashMap>",
        row: "state/reads/threads",
        against: "state/rwlock-hashmap-reads/threads",
        bound: Bound::AtLeast(5.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: get_into of 64 bytes by key vs HashMap get + copy",
        row: "state/get-into/threads",
        against: "state/hashmap-get/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: get_pod by key vs RwLock<HashMap> read lock + get + copy",
        row: "state/get-pod/threads",
        against: "state/rwlock-hashmap-get/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: Entry::get_pod over 1024 keys vs plain copies of 1024 values",
        row: "state/entry-get-pod/threads",
        against: "state/plain-copy/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: set of 64 bytes by key vs RwLock<HashMap> overwrite",
        row: "state/set/threads",
        against: "state/rwlock-hashmap-set/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: wait_for_change wake-up vs raw futex wake, threads",
        row: "state/wait-for-change-wake/threads",
        against: "state/futex-wake/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "shared state: wait_for_change wake-up vs raw futex wake, processes",
        row: "state/wait-for-change-wake/processes",
        against: "state/futex-wake/processes",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "MPMC 2P/2C u64 throughput: ringport blocking send / recv vs ArrayQueue with snooze",
        row: "mpmc/ringport-blocking-2p2c/threads",
        against: "mpmc/arrayqueue-snooze-2p2c/threads",
        bound: Bound::AtLeast(1.5),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "MPMC 2P/2C u64 throughput: ringport try_ with snooze vs ArrayQueue with snooze",
        row: "mpmc/ringport-try-snooze-2p2c/threads",
        against: "mpmc/arrayqueue-snooze-2p2c/threads",
        bound: Bound::AtLeast(1.5),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "MPMC 8P/8C u64 throughput: ringport blocking send / recv vs ArrayQueue with snooze",
        row: "mpmc-scaling/ringport-blocking-8p8c/threads",
        against: "mpmc-scaling/arrayqueue-snooze-8p8c/threads",
        bound: Bound::AtLeast(5.0),
        min_cpus: 16,
        on: On::Headline,
    },
    Target {
        what: "MPMC 8P/8C u64 throughput: ringport try_ with snooze vs ArrayQueue with snooze",
        row: "mpmc-scaling/ringport-try-snooze-8p8c/threads",
        against: "mpmc-scaling/arrayqueue-snooze-8p8c/threads",
        bound: Bound::AtLeast(5.0),
        min_cpus: 16,
        on: On::Headline,
    },
    Target {
        what: "broadcast fan-out to 1 subscriber: overwrite ring deliveries vs tokio broadcast",
        row: "broadcast/ringport-overwrite-1sub/threads",
        against: "broadcast/tokio-1sub/threads",
        bound: Bound::AtLeast(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "broadcast fan-out to 2 subscribers: overwrite ring deliveries vs tokio broadcast",
        row: "broadcast/ringport-overwrite-2sub/threads",
        against: "broadcast/tokio-2sub/threads",
        bound: Bound::AtLeast(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "broadcast fan-out to 4 subscribers: overwrite ring deliveries vs tokio broadcast",
        row: "broadcast/ringport-overwrite-4sub/threads",
        against: "broadcast/tokio-4sub/threads",
        bound: Bound::AtLeast(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "broadcast fan-out to 8 subscribers: overwrite ring deliveries vs tokio broadcast",
        row: "broadcast/ringport-overwrite-8sub/threads",
        against: "broadcast/tokio-8sub/threads",
        bound: Bound::AtLeast(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "broadcast overwrite publish time, 8 subscribers reading vs 1",
        row: "broadcast/publish-overwrite-8sub/threads",
        against: "broadcast/publish-overwrite-1sub/threads",
        bound: Bound::AtMost(1.3),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "MPMC 1P/1C u64 throughput: ringport blocking send / recv vs ArrayQueue with snooze",
        row: "mpmc/ringport-blocking-1p1c/threads",
        against: "mpmc/arrayqueue-snooze-1p1c/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "request/response round trip vs blocking pod port round trip, threads",
        row: "rpc/request/threads",
        against: "rtt/pod-port-blocking/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "request/response round trip vs blocking pod port round trip, processes",
        row: "rpc/request/processes",
        against: "rtt/pod-port-blocking/processes",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "zero-copy transfer cost, pipelined: 4 MiB buffers vs 4 KiB (flat)",
        row: "transfer/pipelined-4MiB/threads",
        against: "transfer/pipelined-4KiB/threads",
        bound: Bound::AtMost(1.2),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "zero-copy transfer cost, ping-pong round trip: 4 MiB buffers vs 4 KiB (flat)",
        row: "transfer/ping-pong-4MiB/threads",
        against: "transfer/ping-pong-4KiB/threads",
        bound: Bound::AtMost(1.2),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "1 MiB messages in full between threads: zero-copy vs crossbeam-channel of fresh Vec<u8>",
        row: "transfer/zero-copy-1MiB/threads",
        against: "transfer/crossbeam-vec-1MiB/threads",
        bound: Bound::AtLeast(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "1 MiB messages in full between processes: zero-copy vs Unix domain socket",
        row: "transfer/zero-copy-1MiB/processes",
        against: "transfer/unix-socket-1MiB/processes",
        bound: Bound::AtLeast(5.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "1 MiB messages in full between processes: zero-copy vs iceoryx2",
        row: "transfer/zero-copy-1MiB/processes",
        against: "transfer/iceoryx2-1MiB/processes",
        bound: Bound::AtLeast(1.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "zero-copy transfer cost, pipelined: 64 B buffers vs 4 KiB",
        row: "transfer/pipelined-64B/threads",
        against: "transfer/pipelined-4KiB/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "1 MiB messages in full between threads: frame ring copy vs crossbeam-channel of Vec",
        row: "transfer/frame-ring-copy-1MiB/threads",
        against: "transfer/crossbeam-vec-1MiB/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "64 B messages in full between threads: zero-copy vs crossbeam-channel of Vec",
        row: "transfer/zero-copy-64B/threads",
        against: "transfer/crossbeam-vec-64B/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "4 MiB messages in full between threads: zero-copy vs crossbeam-channel of Vec",
        row: "transfer/zero-copy-4MiB/threads",
        against: "transfer/crossbeam-vec-4MiB/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what:
            "broadcast fan-out to 8 subscribers: backpressure ring (lossless) deliveries vs tokio",
        row: "broadcast/ringport-backpressure-8sub/threads",
        against: "broadcast/tokio-8sub/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "empty-task round trip through a pool of 1 worker thread vs blocking port round trip",
        row: "workers/pool-threads-1w/threads",
        against: "workers/port-blocking/threads",
        bound: Bound::AtMost(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "empty-task round trip through a pool of 4 worker threads vs blocking port round trip",
        row: "workers/pool-threads-4w/threads",
        against: "workers/port-blocking/threads",
        bound: Bound::AtMost(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "empty-task round trip through a pool of 1 worker process vs blocking port round trip \
               between processes",
        row: "workers/pool-processes-1w/processes",
        against: "workers/port-blocking/processes",
        bound: Bound::AtMost(2.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "tiny-task throughput: WorkerPool of 2 threads vs rayon ThreadPool(2) + channel",
        row: "workers/tiny-tasks-pool-2w/threads",
        against: "workers/tiny-tasks-rayon-2w/threads",
        bound: Bound::AtLeast(1.0),
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "HIGH priority p99 under a LOW flood vs HIGH p99 alone",
        row: "queues/priority-high-flood/threads",
        against: "queues/priority-high-alone/threads",
        bound: Bound::AtMost(2.0),
        min_cpus: 0,
        on: On::P99,
    },
    Target {
        what: "empty-task round trip, 1 worker: WorkerPool thread vs rayon ThreadPool(1) + channel",
        row: "workers/pool-threads-1w/threads",
        against: "workers/rayon-1w/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "empty-task round trip, 4 workers: WorkerPool threads vs rayon ThreadPool(4) + channel",
        row: "workers/pool-threads-4w/threads",
        against: "workers/rayon-4w/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "tiny-task throughput: WorkerPool of 2 threads vs a crossbeam-channel pool of 2",
        row: "workers/tiny-tasks-pool-2w/threads",
        against: "workers/tiny-tasks-crossbeam-2w/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "batching: MessageQueue batch size 16 vs 1, messages delivered",
        row: "queues/batch-16/threads",
        against: "queues/batch-1/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "batching: MessageQueue batch size 100 vs 1, messages delivered",
        row: "queues/batch-100/threads",
        against: "queues/batch-1/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::Headline,
    },
    Target {
        what: "HIGH priority p99, receiver with the default spin budget (it sleeps) vs polling",
        row: "queues/priority-high-alone-sleep/threads",
        against: "queues/priority-high-alone/threads",
        bound: Bound::Info,
        min_cpus: 0,
        on: On::P99,
    },
];

/// `row`'s value over `against`'s, as target `on` compares them.
fn ratio_on(row: &Row, against: &Row, on: On) -> f64 {
    match on {
        On::Headline => row.ratio_to(against),
        On::P99 => row.p99() / against.p99().max(f64::MIN_POSITIVE),
    }
}

/// One line per target: whether this run, on a machine of `cpus` CPUs, meets it, with
/// the numbers.
fn targets(rows: &[Row], cpus: usize) -> Vec<String> {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mut lines: Vec<String> = TARGETS
        .iter()
        .map(|t| {
            let found = (find(t.row), find(t.against));
            if cpus < t.min_cpus {
                let measured = match found {
                    (Some(row), Some(against)) => {
                        format!("; this run: {:.3}x", ratio_on(row, against, t.on))
                    }
                    _ => String::new(),
                };
                return format!(
                    "[n/m ] {}: not measurable here ({cpus} CPUs; it needs {}){measured}",
                    t.what, t.min_cpus
                );
            }
            let (Some(row), Some(against)) = found else {
                let how = if t.row.starts_with(SCALING) {
                    format!(" (opt-in: ringport bench --only {SCALING})")
                } else if t.against.contains("iceoryx2") && !cfg!(feature = "iceoryx2") {
                    " (needs a build with --features iceoryx2)".to_owned()
                } else {
                    String::new()
                };
                return format!("[n/a ] {}: not run{how}", t.what);
            };
            let v = ratio_on(row, against, t.on);
            // Rows compared with each other ran at different times; if a reference either of
            // them is compared with moved, the machine changed in between.
            let brackets = [row.reference, against.reference, Some(against.name)];
            if let Some(r) = brackets.into_iter().flatten().find(|r| has_moved(rows, r)) {
                return format!("[rerun] {}: {v:.3}x, but {r} moved during the run", t.what);
            }
            let (a, unit) = row.headline_on(t.on);
            let (b, _) = against.headline_on(t.on);
            let quantile = match t.on {
                On::Headline => "",
                On::P99 => " p99",
            };
            let mut numbers = format!(
                "{} {a:.2} / {} {b:.2} {unit}{quantile}",
                row.name, against.name
            );
            // Beside a writer, read rates mean little without the writers' own rates: a
            // lock whose readers starve its writer reads as if nobody wrote.
            if let (Some(w), Some(x)) = (row.peer_rate, against.peer_rate) {
                numbers += &format!("; writers {:.2} / {:.2} M writes/s", w / 1e6, x / 1e6);
            }
            // Where subscribers lose messages, a delivery rate means little without the
            // losses.
            if let (Some(a), Some(b)) = (row.lost_share(), against.lost_share()) {
                numbers += &format!("; lost to lags {:.1}% / {:.1}%", a * 100.0, b * 100.0);
            }
            if let Some(r) = [row, against].into_iter().find(|r| r.oversubscribed(cpus)) {
                numbers += &format!(
                    "; OVERSUBSCRIBED: {} threads on {cpus} CPUs",
                    r.threads.unwrap_or(0)
                );
            }
            let (ok, bound) = match t.bound {
                Bound::AtMost(b) => (v <= b, format!("<= {b:.2}x")),
                Bound::AtLeast(b) => (v >= b, format!(">= {b:.2}x")),
                Bound::Info => return format!("[info] {}: {v:.3}x ({numbers})", t.what),
            };
            format!(
                "[{}] {}: {v:.3}x (target {bound}; {numbers})",
                if ok { " ok " } else { "MISS" },
                t.what,
            )
        })
        .collect();
    let ringport: Vec<&Row> = rows
        .iter()
        // Rows that sleep by design (the raw futex, the zero-spin port, the wake-ups, the
        // requests, whose dispatchers wait for messages, the worker pools and queues,
        // whose workers and receivers wait in blocking calls that spin 20 µs and then
        // sleep) are not "the consumer keeps up", nor are rows of more threads than
        // CPUs, whose threads must sleep to let the others run.
        .filter(|r| {
            r.counts_futex
                && !r.name.contains("-sleep")
                && !r.name.contains("-wake")
                && !r.name.starts_with("rpc/")
                && !r.name.starts_with("workers/")
                && !r.name.starts_with("queues/")
                && !r.oversubscribed(cpus)
        })
        .collect();
    if ringport.is_empty() {
        lines.push("[n/a ] futex syscalls per message on ringport rows: none run".to_owned());
    } else {
        let busy: Vec<String> = ringport
            .iter()
            .filter(|r| r.futex > 0)
            .map(|r| {
                format!(
                    "{} ({} syscalls, {:.1e}/msg)",
                    r.name,
                    r.futex,
                    r.futex_per_message()
                )
            })
            .collect();
        lines.push(if busy.is_empty() {
            format!(
                "[ ok ] futex syscalls per message: 0 on all {} ringport rows (oversubscribed \
                 rows not counted)",
                ringport.len()
            )
        } else {
            format!(
                "[MISS] futex syscalls per message: 0 on {} of {} ringport rows (oversubscribed \
                 rows not counted); nonzero: {}",
                ringport.len() - busy.len(),
                ringport.len(),
                busy.join(", ")
            )
        });
    }
    lines
}

/// Prints the results as a JSON array, one object per row.
pub fn print_json(rows: &[Row], meta: &Meta) {
    let objects: Vec<String> = rows
        .iter()
        .map(|row| {
            let mut o = json!({
                "name": row.name,
                "reference": row.reference,
                "ratio": row.ratio(rows),
                "warmup": row.plan.warm,
                "pinned": row.pinned,
                "cpus": meta.cpus.pair.map(|(a, b)| [a, b]),
                "futex_syscalls": row.futex,
                "futex_per_message": row.counts_futex.then(|| row.futex_per_message()),
                "queue_slots": SLOTS,
                "pod_ring_slots": pod_slots(),
                "byte_ring_bytes": FRAME_RING,
                "wall_s": row.wall.as_secs_f64(),
                "others_cpu_share": row.others,
                "reference_moved": row.reference.map(|r| has_moved(rows, r)),
                "peer_ops_per_s": row.peer_rate,
                "threads": row.threads,
                "oversubscribed": row.oversubscribed(meta.cpus.count()),
                "lost_to_lags": row.lost,
                "lost_share": row.lost_share(),
                "msgs_per_frame": row.per_frame,
                "measuring_thread_cpu_wait_share": row.cpu_wait,
                "clock_read_ns": meta.clock_read_ns,
            });
            let numbers = match row.stats {
                Stats::Latency {
                    p50,
                    p99,
                    p999,
                    min,
                    max,
                    mean,
                    samples,
                } => json!({
                    "kind": "latency",
                    "p50_ns": p50,
                    "p99_ns": p99,
                    "p999_ns": p999,
                    "min_ns": min,
                    "max_ns": max,
                    "mean_ns": mean,
                    "samples": samples,
                }),
                Stats::Throughput {
                    messages,
                    nanos,
                    median,
                    slowest,
                    fastest,
                    frame,
                } => json!({
                    "kind": "throughput",
                    "messages": messages,
                    "seconds": nanos as f64 / 1e9,
                    "runs": TRIALS,
                    "msgs_per_s": median,
                    "msgs_per_s_slowest": slowest,
                    "msgs_per_s_fastest": fastest,
                    "msgs_per_s_overall": per_second(messages, nanos),
                    "frame_bytes": (frame > 0).then_some(frame),
                    "gb_per_s": row.gb_per_s(),
                }),
                Stats::PerOp {
                    p50,
                    p99,
                    p999,
                    min,
                    max,
                    mean,
                    batches,
                    batch,
                } => json!({
                    "kind": "per_op",
                    "p50_ns": p50,
                    "p99_ns": p99,
                    "p999_ns": p999,
                    "min_ns": min,
                    "max_ns": max,
                    "mean_ns": mean,
                    "batches": batches,
                    "ops_per_batch": batch,
                }),
            };
            if let (Some(o), serde_json::Value::Object(n)) = (o.as_object_mut(), numbers) {
                o.extend(n);
            }
            o.to_string()
        })
        .collect();
    println!("[\n{}\n]", objects.join(",\n"));
}

/// Prints every row with its reference and what it measures.
pub fn print_list(all: &[Scenario]) {
    let names = all.iter().map(|s| s.name.len()).fold(40, usize::max);
    let refs = all
        .iter()
        .filter_map(|s| s.reference)
        .map(str::len)
        .fold(36, usize::max);
    for s in all {
        let opt_in = s
            .opt_in
            .map(|word| format!(" (opt-in: --only {word})"))
            .unwrap_or_default();
        println!(
            "{:<names$} vs {:<refs$} {}{opt_in}",
            s.name,
            s.reference.unwrap_or("(reference)"),
            s.about
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_names_rows_that_exist() {
        let all = crate::scenarios::all();
        for t in TARGETS {
            for name in [t.row, t.against] {
                let built = (!name.contains("iceoryx2") || cfg!(feature = "iceoryx2"))
                    && (!name.starts_with("workers/pool-processes") || cfg!(feature = "serde"));
                let exists = all.iter().any(|s| s.name == name);
                assert_eq!(exists, built, "{}: {name}", t.what);
            }
        }
    }

    #[test]
    fn transfer_rows_have_tables_and_units_of_their_own() {
        assert!(!is_pair("transfer/zero-copy-1MiB/processes"));
        assert_eq!(
            rate_unit("transfer/crossbeam-vec-4MiB/threads").1,
            "k msg/s"
        );
        assert_eq!(rate_unit("tput/pod-ring/threads").1, "M msg/s");
    }
}
