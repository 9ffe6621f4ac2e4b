//! Results: a progress line per row on stderr, then on stdout either tables followed by
//! the project's targets checked against this run, or JSON.

use crate::bench::{Measured, Numbers, Plan};
use crate::pin::Cpus;
use crate::scenarios::{Scenario, FRAME_RING, SLOTS};
use crate::tput::TRIALS;
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
        }
    }

    /// One-way messages the row sent, warm-up included (a round trip is two).
    fn messages_sent(&self) -> u64 {
        match self.stats {
            Stats::Latency { .. } => 2 * self.plan.total(),
            Stats::Throughput { .. } => self.plan.trials * self.plan.total(),
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
            Stats::Latency { .. } => None,
        }
    }

    /// Payload gigabytes per second of a frame row.
    fn gb_per_s(&self) -> Option<f64> {
        match self.stats {
            Stats::Throughput { frame, .. } if frame > 0 => Some(self.rate()? * frame as f64 / 1e9),
            _ => None,
        }
    }

    /// The number ratios compare: p50 of a round-trip row, messages/s of a throughput row.
    fn metric(&self) -> f64 {
        match self.stats {
            Stats::Latency { p50, .. } => p50 as f64,
            Stats::Throughput { .. } => self.rate().unwrap_or(0.0),
        }
    }

    /// This row's metric over `other`'s.
    fn ratio_to(&self, other: &Row) -> f64 {
        self.metric() / other.metric().max(f64::MIN_POSITIVE)
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

/// The progress line of a row that just finished; `done` are the rows before it.
pub fn progress_line(row: &Row, done: &[Row]) -> String {
    let numbers = match row.stats {
        Stats::Latency { p50, p99, p999, .. } => {
            format!("p50 {p50} ns, p99 {p99} ns, p99.9 {p999} ns")
        }
        Stats::Throughput {
            slowest, fastest, ..
        } => {
            let mut t = format!(
                "{:.1} M msg/s (runs {:.1} to {:.1})",
                row.rate().unwrap_or(0.0) / 1e6,
                slowest / 1e6,
                fastest / 1e6
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
        let (a, b, unit) = match (&first.stats, &again.stats) {
            (Stats::Latency { p50: a, .. }, Stats::Latency { p50: b, .. }) => {
                (*a as f64, *b as f64, "ns")
            }
            _ => (
                first.rate().unwrap_or(0.0) / 1e6,
                again.rate().unwrap_or(0.0) / 1e6,
                "M msg/s",
            ),
        };
        println!(
            "REFERENCE MOVED: {} measured {a:.0} {unit}, then {b:.0} {unit} ({}); ratios marked ! \
             compare with a moving target: rerun",
            first.name, again.name
        );
    }
    let unpinned: Vec<&str> = rows.iter().filter(|r| !r.pinned).map(|r| r.name).collect();
    if !unpinned.is_empty() {
        println!("UNPINNED rows: {}", unpinned.join(", "));
    }

    print_latency_table(rows);
    print_throughput_table(rows);
    println!();
    println!("Targets (medians of this run)");
    for line in targets(rows) {
        println!("  {line}");
    }
}

/// The round-trip rows, if any ran.
fn print_latency_table(rows: &[Row]) {
    if !rows
        .iter()
        .any(|r| matches!(r.stats, Stats::Latency { .. }))
    {
        return;
    }
    println!();
    println!("Round trips of 8-byte messages, ns (ratio = p50 / reference p50; futex/msg = syscalls per one-way message; others = CPU share other processes took)");
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>9} {:>7}  {:<26} {:>9} {:>6}",
        "row", "p50", "p99", "p99.9", "samples", "ratio", "reference", "futex/msg", "others"
    );
    for row in rows {
        if let Stats::Latency {
            p50,
            p99,
            p999,
            samples,
            ..
        } = row.stats
        {
            println!(
                "{:<40} {p50:>8} {p99:>8} {p999:>8} {samples:>9} {:>7}  {:<26} {:>9} {:>6}",
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
    if !rows
        .iter()
        .any(|r| matches!(r.stats, Stats::Throughput { .. }))
    {
        return;
    }
    println!();
    println!(
        "Throughput, one producer and one consumer, M msg/s: median, slowest and fastest of {TRIALS} runs \
         (ratio = median / reference median; GB/s counts payload)"
    );
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>6} {:>11} {:>7}  {:<28} {:>9} {:>6}",
        "row",
        "median",
        "slowest",
        "fastest",
        "GB/s",
        "messages",
        "ratio",
        "reference",
        "futex/msg",
        "others"
    );
    for row in rows {
        if let Stats::Throughput {
            messages,
            slowest,
            fastest,
            ..
        } = row.stats
        {
            let gb = row
                .gb_per_s()
                .map_or_else(|| "-".to_owned(), |g| format!("{g:.2}"));
            println!(
                "{:<40} {:>8.1} {:>8.1} {:>8.1} {gb:>6} {messages:>11} {:>7}  {:<28} {:>9} {:>6}",
                row.name,
                row.rate().unwrap_or(0.0) / 1e6,
                slowest / 1e6,
                fastest / 1e6,
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
}

/// A target of the project: `row`'s metric over `against`'s, within `bound`.
struct Target {
    what: &'static str,
    row: &'static str,
    against: &'static str,
    bound: Bound,
}

/// The project's targets for ringport against its floors and peers.
const TARGETS: &[Target] = &[
    Target {
        what: "busy pod port round trip between processes vs two-line floor",
        row: "rtt/pod-port-busy/processes",
        against: "floor/two-line/processes",
        bound: Bound::AtMost(1.1),
    },
    Target {
        what: "busy frame port round trip between processes vs two-line floor",
        row: "rtt/frame-port-busy/processes",
        against: "floor/two-line/processes",
        bound: Bound::AtMost(1.1),
    },
    Target {
        what: "pod ring single u64 throughput vs rtrb push/pop",
        row: "tput/pod-ring/threads",
        against: "tput/rtrb/threads",
        bound: Bound::AtLeast(1.0),
    },
    Target {
        what: "pod ring batched throughput vs rtrb chunks",
        row: "tput/pod-ring-batch256/threads",
        against: "tput/rtrb-chunks256/threads",
        bound: Bound::AtLeast(1.0),
    },
    Target {
        what: "pod port throughput, processes vs in-process pod ring",
        row: "tput/pod-port/processes",
        against: "tput/pod-ring/threads",
        bound: Bound::AtLeast(0.9),
    },
    Target {
        what: "pod port batched throughput, processes vs in-process pod ring",
        row: "tput/pod-port-batch256/processes",
        against: "tput/pod-ring-batch256/threads",
        bound: Bound::AtLeast(0.9),
    },
    Target {
        what: "blocking pod port round trip vs crossbeam-channel blocking recv",
        row: "rtt/pod-port-blocking/threads",
        against: "rtt/crossbeam-channel-blocking/threads",
        bound: Bound::AtMost(1.0),
    },
    Target {
        what: "sleeping pod port round trip vs raw futex ping-pong, threads",
        row: "rtt/pod-port-sleep/threads",
        against: "rtt/futex-sleep/threads",
        bound: Bound::AtMost(1.1),
    },
    Target {
        what: "sleeping pod port round trip vs raw futex ping-pong, processes",
        row: "rtt/pod-port-sleep/processes",
        against: "rtt/futex-sleep/processes",
        bound: Bound::AtMost(1.1),
    },
    Target {
        what: "4 KiB frame ring throughput vs rtrb as a byte ring",
        row: "tput/frame-ring-4KiB/threads",
        against: "tput/rtrb-bytes-4KiB/threads",
        bound: Bound::AtLeast(1.0),
    },
];

/// One line per target: whether this run meets it, with the numbers.
fn targets(rows: &[Row]) -> Vec<String> {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mut lines: Vec<String> = TARGETS
        .iter()
        .map(|t| {
            let (Some(row), Some(against)) = (find(t.row), find(t.against)) else {
                return format!("[n/a ] {}: not run", t.what);
            };
            let v = row.ratio_to(against);
            // Rows compared with each other ran at different times; if a reference either of
            // them is compared with moved, the machine changed in between.
            let brackets = [row.reference, against.reference, Some(against.name)];
            if let Some(r) = brackets.into_iter().flatten().find(|r| has_moved(rows, r)) {
                return format!("[rerun] {}: {v:.3}x, but {r} moved during the run", t.what);
            }
            let (ok, bound) = match t.bound {
                Bound::AtMost(b) => (v <= b, format!("<= {b:.2}x")),
                Bound::AtLeast(b) => (v >= b, format!(">= {b:.2}x")),
            };
            format!(
                "[{}] {}: {v:.3}x (target {bound}; {} / {})",
                if ok { " ok " } else { "MISS" },
                t.what,
                row.name,
                against.name
            )
        })
        .collect();
    let ringport: Vec<&Row> = rows
        .iter()
        // Rows that sleep by design (the raw futex and the zero-spin port) are not
        // "the consumer keeps up".
        .filter(|r| r.counts_futex && !r.name.contains("-sleep/"))
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
                "[ ok ] futex syscalls per message: 0 on all {} ringport rows",
                ringport.len()
            )
        } else {
            format!(
                "[MISS] futex syscalls per message: 0 on {} of {} ringport rows; nonzero: {}",
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
    for s in all {
        println!(
            "{:<40} vs {:<28} {}",
            s.name,
            s.reference.unwrap_or("(reference)"),
            s.about
        );
    }
}
