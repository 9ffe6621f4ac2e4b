//! The rows of `ringport bench`, named `group/what/placement`, in the order they run.
//!
//! Each row names its reference: round-trip rows the two-line floor of their placement,
//! throughput rows the rtrb row of their message size. References come first in the list,
//! so every progress line can already show its ratio, and a selection with `--only` brings
//! its references along. Each reference runs again (`...-again/...`) after the rows that
//! compare with it: the machine can change under a run (the hypervisor moves the two vCPUs
//! onto other cores, or onto siblings of one core, and the floor moves from ~120 to ~480 ns
//! or back), and a ratio to a reference that moved means nothing.

use crate::bench::{Ctx, Measured};
use crate::child::ChildArgs;
use crate::fanout::{self, CrossbeamChannels, RingBackpressure, RingOverwrite, Tokio};
use crate::floor::{FutexSleep, OneLine, TwoLine};
use crate::ipc::{Pipe, Socket};
use crate::links::{
    ArrayQueueBusy, ChannelBlocking, ChannelBusy, FrameBusy, MpscBusy, PodBlocking, PodBusy,
    PodSleeping, RtrbBusy,
};
use crate::queues::{
    self, ArrayQueueSnooze, CrossbeamChannel, Flume, RingportBlocking, RingportSnooze,
};
use crate::requests;
use crate::rtt::{self, CrossProcess, InProcess};
use crate::state::{self, FutexWake, RwLockReads, StateReads, StateWake};
use crate::streams::{
    ArrayQueueOne, ChannelOne, FramePortFrames, FrameRingFrames, MpscOne, PodPortBatch,
    PodPortBlocking, PodPortOne, PodRingBatch, PodRingOne, RtrbBytes, RtrbChunks, RtrbOne,
};
use crate::tput::{self, InProcessStream, NamedStream};
use crate::transfer::{self, CrossbeamVec, FrameRingCopy, PingPong, UnixSocket, ZeroCopy};
use crate::Result;
use crate::{batching, pools, priority, tasks};

/// Messages each `u64` queue holds, ringport's and the peers' alike.
pub const SLOTS: usize = 4096;
/// Bytes each byte ring holds, ringport's and rtrb's alike.
pub const FRAME_RING: usize = 256 * 1024;

/// Reference of round-trip rows between threads.
pub const FLOOR_THREADS: &str = "floor/two-line/threads";
/// Reference of round-trip rows between processes.
pub const FLOOR_PROCESSES: &str = "floor/two-line/processes";
/// Reference of single-message `u64` throughput rows.
pub const RTRB: &str = "tput/rtrb/threads";
/// Reference of batched `u64` throughput rows.
pub const RTRB_CHUNKS: &str = "tput/rtrb-chunks256/threads";
/// Reference of 64-byte frame rows.
pub const RTRB_BYTES_64: &str = "tput/rtrb-bytes-64B/threads";
/// Reference of 4 KiB frame rows.
pub const RTRB_BYTES_4K: &str = "tput/rtrb-bytes-4KiB/threads";
/// Reference of the shared state's reads by key.
pub const HASHMAP_GET: &str = "state/hashmap-get/threads";
/// Reference of the shared state's reads through entry handles.
pub const PLAIN_COPY: &str = "state/plain-copy/threads";
/// Reference of the shared state's reads of one key through an entry handle.
pub const PLAIN_COPY_HOT: &str = "state/plain-copy-hot/threads";
/// Reference of the shared state's writes.
pub const RWLOCK_SET: &str = "state/rwlock-hashmap-set/threads";
/// Reference of the shared state's read throughput beside a writer.
pub const RWLOCK_READS: &str = "state/rwlock-hashmap-reads/threads";
/// Reference of `wait_for_change` wake-ups between threads.
pub const FUTEX_WAKE_THREADS: &str = "state/futex-wake/threads";
/// Reference of `wait_for_change` wake-ups between processes.
pub const FUTEX_WAKE_PROCESSES: &str = "state/futex-wake/processes";
/// Reference of request/response round trips between threads.
pub const RPC_FLOOR_THREADS: &str = "rpc/futex-sleep/threads";
/// Reference of request/response round trips between processes.
pub const RPC_FLOOR_PROCESSES: &str = "rpc/futex-sleep/processes";
/// Reference of the broadcast ring's publish time beside more subscribers.
pub const PUBLISH_1: &str = "broadcast/publish-overwrite-1sub/threads";
/// Reference of the pipelined zero-copy transfer rows.
pub const PIPELINED_4K: &str = "transfer/pipelined-4KiB/threads";
/// Reference of the zero-copy transfer ping-pong rows.
pub const PING_PONG_4K: &str = "transfer/ping-pong-4KiB/threads";
/// Reference of the rows of 1 MiB messages in full between processes.
pub const UNIX_SOCKET_1M: &str = "transfer/unix-socket-1MiB/processes";
/// Reference of the worker pools' round trips between threads.
pub const PORT_RTT_THREADS: &str = "workers/port-blocking/threads";
/// Reference of the worker pools' round trips between processes.
pub const PORT_RTT_PROCESSES: &str = "workers/port-blocking/processes";
/// The round-trip row of a pool of worker processes, which the pool starts itself rather
/// than through the bench's child protocol.
#[cfg(feature = "serde")]
pub const POOL_PROCESSES: &str = "workers/pool-processes-1w/processes";
/// Reference of the tiny-task throughput rows.
pub const RAYON_TASKS: &str = "workers/tiny-tasks-rayon-2w/threads";
/// Reference of the batching rows.
pub const BATCH_1: &str = "queues/batch-1/threads";
/// Reference of the priority rows.
pub const HIGH_ALONE: &str = "queues/priority-high-alone/threads";
/// What an `--only` value must contain to select the MPMC scaling rows, which the
/// default run leaves out.
pub const SCALING: &str = "mpmc-scaling";

/// How much a row sends, relative to `--rounds` and `--messages`.
#[derive(Clone, Copy, Debug)]
pub enum Size {
    /// `--rounds` busy round trips.
    Rtt,
    /// A three-hundredth of that, for paths whose sides sleep (tens of microseconds
    /// each).
    RttSleeping,
    /// `--messages` u64s.
    U64,
    /// Four times that, for batched rows, several times faster.
    U64Batch,
    /// A sixth of that, for peers an order of magnitude slower.
    U64Slow,
    /// Frames of this many payload bytes: `--messages / (8 + bytes / 128)` of them, an
    /// eighth for 64 bytes, a fortieth for 4 KiB.
    Frames(usize),
    /// `--rounds / 100` timed batches of [`state::BATCH`] operations on one thread.
    Ops,
    /// `--messages / 40` reads beside a writer.
    Reads,
    /// `--rounds / 600` one-way wake-ups, each a sleeper's (a fiftieth of a millisecond
    /// apart at least).
    Wakes,
    /// `--messages / 200` u64s through an MPMC queue, all producers together.
    Mpmc,
    /// `--messages / 40` u64s through an MPMC queue: the opt-in scaling run, for machines
    /// of many CPUs.
    MpmcScaling,
    /// `--messages / (200 * subscribers)` u64s published to this many subscribers:
    /// `--messages / 200` deliveries.
    Fanout(usize),
    /// `--rounds / 1000` timed batches of [`state::BATCH`] publishes beside subscribers.
    Publishes,
    /// `--rounds / 100` timed batches of [`transfer::BATCH`] zero-copy transfers.
    Transfers,
    /// `--rounds / 10` round trips of two zero-copy transfers.
    TransferRtt,
    /// Messages of this many bytes written and read in full: `--messages / (100 + bytes /
    /// 20)` of them, about 4 GB for large messages.
    Messages(usize),
    /// `--rounds / 30` round trips of one task through a worker pool.
    TaskRtt,
    /// `--messages / 100` tiny tasks through a pool of threads, all runs together.
    Tasks,
    /// `--messages / 100` messages through a batching queue, all runs together.
    Queued,
    /// `--rounds / 300` HIGH messages through a priority queue, one per
    /// [`priority::TICK`].
    Ticks,
}

impl Size {
    /// Whether the row is one run of samples (round trips, wake-ups or batches) rather
    /// than independent throughput runs.
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Size::Rtt
                | Size::RttSleeping
                | Size::Ops
                | Size::Wakes
                | Size::Publishes
                | Size::Transfers
                | Size::TransferRtt
                | Size::TaskRtt
                | Size::Ticks
        )
    }

    /// Whether each run of the row is timed whole, from a start signal its threads wait
    /// for (rows of more than two threads), rather than after a warm-up.
    pub fn times_whole_runs(self) -> bool {
        matches!(self, Size::Mpmc | Size::MpmcScaling | Size::Fanout(_))
    }
}

/// The measuring side of a row.
pub type ParentSide = fn(&Ctx) -> Result<Measured>;
/// The child side of a cross-process row (one run of a throughput row); returns a
/// throughput run's consumer readings (see [`tput::Marks`]), none for a round trip.
pub type ChildSide = fn(&ChildArgs) -> Result<Vec<u64>>;

/// One row.
pub struct Scenario {
    /// `group/what/placement`.
    pub name: &'static str,
    /// One line on what it measures.
    pub about: &'static str,
    /// The row its ratio is taken against; `None` for references.
    pub reference: Option<&'static str>,
    /// Whether the row goes through ringport's futex counter, so its syscalls per message
    /// mean something (ringport rows and the futex floor).
    pub counts_futex: bool,
    /// How much it sends.
    pub size: Size,
    /// The measuring side.
    pub run: ParentSide,
    /// The child side, for rows between processes.
    pub child: Option<ChildSide>,
    /// The reference this row measures again, to see whether it moved during the run.
    pub recheck_of: Option<&'static str>,
    /// For rows left out of the default run: the word an `--only` value must contain
    /// to select them.
    pub opt_in: Option<&'static str>,
}

/// Which of a row's properties the constructors below take.
struct Spec {
    name: &'static str,
    about: &'static str,
    counts_futex: bool,
    size: Size,
}

/// A [`Spec`].
const fn spec(name: &'static str, about: &'static str, counts_futex: bool, size: Size) -> Spec {
    Spec {
        name,
        about,
        counts_futex,
        size,
    }
}

/// The reference of round-trip row `name`: the two-line `floor` of its placement, none for
/// that floor itself.
fn latency_reference(name: &'static str, floor: &'static str) -> Option<&'static str> {
    (name != floor).then_some(floor)
}

/// A round-trip row between threads over `T`.
fn rtt_threads<T: InProcess>(s: Spec) -> Scenario {
    Scenario {
        name: s.name,
        about: s.about,
        reference: latency_reference(s.name, FLOOR_THREADS),
        counts_futex: s.counts_futex,
        size: s.size,
        run: rtt::threads::<T>,
        child: None,
        recheck_of: None,
        opt_in: None,
    }
}

/// A round-trip row between processes over `T`.
fn rtt_processes<T: CrossProcess>(s: Spec) -> Scenario {
    Scenario {
        name: s.name,
        about: s.about,
        reference: latency_reference(s.name, FLOOR_PROCESSES),
        counts_futex: s.counts_futex,
        size: s.size,
        run: rtt::processes::<T>,
        child: Some(rtt::guest::<T>),
        recheck_of: None,
        opt_in: None,
    }
}

/// A throughput row between threads over `S`, compared with `reference`.
fn tput_threads<S: InProcessStream>(s: Spec, reference: &'static str) -> Scenario {
    Scenario {
        name: s.name,
        about: s.about,
        reference: (s.name != reference).then_some(reference),
        counts_futex: s.counts_futex,
        size: s.size,
        run: tput::threads::<S>,
        child: None,
        recheck_of: None,
        opt_in: None,
    }
}

/// A throughput row between processes over `S`, compared with `reference`.
fn tput_processes<S: NamedStream>(s: Spec, reference: &'static str) -> Scenario {
    Scenario {
        name: s.name,
        about: s.about,
        reference: Some(reference),
        counts_futex: s.counts_futex,
        size: s.size,
        run: tput::processes::<S>,
        child: Some(tput::guest::<S>),
        recheck_of: None,
        opt_in: None,
    }
}

/// A row run by `run` in this process, compared with `reference`.
fn row_by(s: Spec, reference: &'static str, run: ParentSide) -> Scenario {
    Scenario {
        name: s.name,
        about: s.about,
        reference: (s.name != reference).then_some(reference),
        counts_futex: s.counts_futex,
        size: s.size,
        run,
        child: None,
        recheck_of: None,
        opt_in: None,
    }
}

/// A wake-up row between processes over `W`, compared with `reference`.
fn wake_processes<W: state::Wake>(s: Spec, reference: &'static str) -> Scenario {
    Scenario {
        child: Some(state::wake_guest::<W>),
        ..row_by(s, reference, state::wake_processes::<W>)
    }
}

/// `s`, made the second measurement of `reference`.
fn recheck(s: Scenario, reference: &'static str) -> Scenario {
    Scenario {
        reference: Some(reference),
        recheck_of: Some(reference),
        ..s
    }
}

/// The MPMC rows of `$p` producers and `$c` consumers in group `$group`: the reference
/// (ArrayQueue with snooze), ringport's ring blocking and polling, crossbeam-channel and
/// flume, and the reference again, each sending `$size`; opt-in behind `$opt_in` if that
/// is `Some`.
macro_rules! mpmc_family {
    ($group:literal, $p:literal, $c:literal, $size:expr, $opt_in:expr) => {{
        let reference = concat!($group, "/arrayqueue-snooze-", $p, "p", $c, "c/threads");
        let row = |name, about, counts_futex, run: ParentSide| Scenario {
            opt_in: $opt_in,
            ..row_by(spec(name, about, counts_futex, $size), reference, run)
        };
        vec![
            row(
                reference,
                "crossbeam ArrayQueue(4096), push / pop with Backoff::snooze",
                false,
                queues::threads::<ArrayQueueSnooze, $p, $c>,
            ),
            row(
                concat!($group, "/ringport-blocking-", $p, "p", $c, "c/threads"),
                "mpmc::channel::<u64>(4096), blocking send / recv",
                true,
                queues::threads::<RingportBlocking, $p, $c>,
            ),
            row(
                concat!($group, "/ringport-try-snooze-", $p, "p", $c, "c/threads"),
                "mpmc::channel::<u64>(4096), try_send / try_recv with Backoff::snooze",
                true,
                queues::threads::<RingportSnooze, $p, $c>,
            ),
            row(
                concat!($group, "/crossbeam-channel-", $p, "p", $c, "c/threads"),
                "crossbeam_channel::bounded(4096), blocking send / recv",
                false,
                queues::threads::<CrossbeamChannel, $p, $c>,
            ),
            row(
                concat!($group, "/flume-", $p, "p", $c, "c/threads"),
                "flume::bounded(4096), blocking send / recv",
                false,
                queues::threads::<Flume, $p, $c>,
            ),
            recheck(
                row(
                    concat!(
                        $group,
                        "/arrayqueue-snooze-again-",
                        $p,
                        "p",
                        $c,
                        "c/threads"
                    ),
                    "ArrayQueue with snooze again: did it move?",
                    false,
                    queues::threads::<ArrayQueueSnooze, $p, $c>,
                ),
                reference,
            ),
        ]
    }};
}

/// The fan-out rows of one publisher and `$n` subscribers: the reference (tokio's
/// broadcast channel), ringport's ring under overwrite and backpressure, a crossbeam
/// channel per subscriber, and the reference again.
macro_rules! fanout_family {
    ($n:literal) => {{
        let reference = concat!("broadcast/tokio-", $n, "sub/threads");
        let row = |name, about, counts_futex, run: ParentSide| {
            row_by(
                spec(name, about, counts_futex, Size::Fanout($n)),
                reference,
                run,
            )
        };
        vec![
            row(
                reference,
                "tokio::sync::broadcast::channel(4096), send / blocking_recv",
                false,
                fanout::threads::<Tokio, $n>,
            ),
            row(
                concat!("broadcast/ringport-overwrite-", $n, "sub/threads"),
                "broadcast::channel, capacity 4096, Overwrite: publish / blocking recv",
                true,
                fanout::threads::<RingOverwrite, $n>,
            ),
            row(
                concat!("broadcast/ringport-backpressure-", $n, "sub/threads"),
                "broadcast::channel, capacity 4096, Backpressure: publish / blocking recv",
                true,
                fanout::threads::<RingBackpressure, $n>,
            ),
            row(
                concat!("broadcast/crossbeam-channels-", $n, "sub/threads"),
                "a crossbeam_channel::bounded(4096) per subscriber, the publisher sends to each",
                false,
                fanout::threads::<CrossbeamChannels, $n>,
            ),
            recheck(
                row(
                    concat!("broadcast/tokio-again-", $n, "sub/threads"),
                    "tokio broadcast again: did it move?",
                    false,
                    fanout::threads::<Tokio, $n>,
                ),
                reference,
            ),
        ]
    }};
}

/// Every row, in running order: the default run's, then the opt-in ones.
pub fn all() -> Vec<Scenario> {
    let mut rows = single_pair();
    rows.extend(rpc());
    rows.extend(mpmc_family!("mpmc", 1, 1, Size::Mpmc, None));
    rows.extend(mpmc_family!("mpmc", 2, 2, Size::Mpmc, None));
    for family in [
        fanout_family!(1),
        fanout_family!(2),
        fanout_family!(4),
        fanout_family!(8),
    ] {
        rows.extend(family);
    }
    rows.extend(publish_times());
    rows.extend(transfers());
    rows.extend(workers());
    rows.extend(queues_rows());
    for family in [
        mpmc_family!("mpmc-scaling", 1, 1, Size::MpmcScaling, Some(SCALING)),
        mpmc_family!("mpmc-scaling", 2, 2, Size::MpmcScaling, Some(SCALING)),
        mpmc_family!("mpmc-scaling", 4, 4, Size::MpmcScaling, Some(SCALING)),
        mpmc_family!("mpmc-scaling", 8, 8, Size::MpmcScaling, Some(SCALING)),
    ] {
        rows.extend(family);
    }
    rows
}

/// A pipelined transfer-cost row of `$size`-byte buffers, `$label` in its name.
macro_rules! pipelined {
    ($label:literal, $size:expr) => {
        row_by(
            spec(
                concat!("transfer/pipelined-", $label, "/threads"),
                concat!(
                    "loan ",
                    $label,
                    ", 64-byte header, into_handle, PodPort<BufferHandle>, accept, check, drop; streamed"
                ),
                true,
                Size::Transfers,
            ),
            PIPELINED_4K,
            transfer::pipelined::<{ $size }>,
        )
    };
}

/// A transfer ping-pong row of `$size`-byte buffers, `$label` in its name.
macro_rules! ping_pong {
    ($label:literal, $size:expr) => {{
        let name = concat!("transfer/ping-pong-", $label, "/threads");
        Scenario {
            reference: (name != PING_PONG_4K).then_some(PING_PONG_4K),
            ..rtt_threads::<PingPong<{ $size }>>(spec(
                name,
                concat!(
                    "a transfer of a ",
                    $label,
                    " buffer there, one back (loan, header, send, accept, check, drop)"
                ),
                true,
                Size::TransferRtt,
            ))
        }
    }};
}

/// The rows of `$size`-byte messages in full between threads, `$label` in their names:
/// the reference (a fresh `Vec` per message through crossbeam-channel), the zero-copy
/// pool, the frame ring's copy, and the reference again.
macro_rules! full_messages {
    ($label:literal, $size:expr) => {{
        let reference = concat!("transfer/crossbeam-vec-", $label, "/threads");
        let spec = |name, about, counts_futex| spec(name, about, counts_futex, Size::Messages($size));
        vec![
            tput_threads::<CrossbeamVec<{ $size }>>(
                spec(
                    reference,
                    concat!(
                        "crossbeam_channel::bounded, a fresh vec![byte; ",
                        $label,
                        "] per message, read in full and dropped"
                    ),
                    false,
                ),
                reference,
            ),
            tput_threads::<ZeroCopy<{ $size }>>(
                spec(
                    concat!("transfer/zero-copy-", $label, "/threads"),
                    "pool buffer written in full, handle through a PodPort, accepted, read in place",
                    true,
                ),
                reference,
            ),
            tput_threads::<FrameRingCopy<{ $size }>>(
                spec(
                    concat!("transfer/frame-ring-copy-", $label, "/threads"),
                    "reused Vec written in full, FrameRing::try_send copies it, read in place",
                    true,
                ),
                reference,
            ),
            recheck(
                tput_threads::<CrossbeamVec<{ $size }>>(
                    spec(
                        concat!("transfer/crossbeam-vec-again-", $label, "/threads"),
                        "crossbeam-channel of fresh Vecs again: did it move?",
                        false,
                    ),
                    reference,
                ),
                reference,
            ),
        ]
    }};
}

/// The zero-copy transfer rows (issue 4): the cost of one transfer by buffer size,
/// pipelined and in ping-pong; messages of 64 B to 4 MiB written and read in full between
/// threads; 1 MiB messages in full between processes.
fn transfers() -> Vec<Scenario> {
    const MIB: usize = 1 << 20;
    let mut rows = vec![
        pipelined!("4KiB", 4096),
        pipelined!("64B", 64),
        pipelined!("64KiB", 1 << 16),
        pipelined!("1MiB", MIB),
        pipelined!("4MiB", 4 * MIB),
        recheck(
            row_by(
                spec(
                    "transfer/pipelined-again-4KiB/threads",
                    "pipelined 4 KiB transfers again: did it move?",
                    true,
                    Size::Transfers,
                ),
                PIPELINED_4K,
                transfer::pipelined::<4096>,
            ),
            PIPELINED_4K,
        ),
        ping_pong!("4KiB", 4096),
        ping_pong!("64B", 64),
        ping_pong!("64KiB", 1 << 16),
        ping_pong!("1MiB", MIB),
        ping_pong!("4MiB", 4 * MIB),
        recheck(
            rtt_threads::<PingPong<4096>>(spec(
                "transfer/ping-pong-again-4KiB/threads",
                "4 KiB transfer ping-pong again: did it move?",
                true,
                Size::TransferRtt,
            )),
            PING_PONG_4K,
        ),
    ];
    for family in [
        full_messages!("64B", 64),
        full_messages!("4KiB", 4096),
        full_messages!("64KiB", 1 << 16),
        full_messages!("1MiB", MIB),
        full_messages!("4MiB", 4 * MIB),
    ] {
        rows.extend(family);
    }
    let between = |name, about, counts_futex| spec(name, about, counts_futex, Size::Messages(MIB));
    rows.push(Scenario {
        reference: None,
        ..tput_processes::<UnixSocket<MIB>>(
            between(
                UNIX_SOCKET_1M,
                "Unix stream socket, reused 1 MiB buffer written in full, write_all / read_exact",
                false,
            ),
            UNIX_SOCKET_1M,
        )
    });
    rows.push(tput_processes::<ZeroCopy<MIB>>(
        between(
            "transfer/zero-copy-1MiB/processes",
            "named pool, 1 MiB buffers written in full, handles through a named PodPort, child reads in place",
            true,
        ),
        UNIX_SOCKET_1M,
    ));
    #[cfg(feature = "iceoryx2")]
    rows.push(tput_processes::<crate::iceoryx::Iceoryx2<MIB>>(
        between(
            "transfer/iceoryx2-1MiB/processes",
            "iceoryx2 publish-subscribe, loaned [u8] samples of 1 MiB written in full, child reads in place",
            false,
        ),
        UNIX_SOCKET_1M,
    ));
    rows.push(recheck(
        tput_processes::<UnixSocket<MIB>>(
            between(
                "transfer/unix-socket-again-1MiB/processes",
                "Unix socket again: did it move?",
                false,
            ),
            UNIX_SOCKET_1M,
        ),
        UNIX_SOCKET_1M,
    ));
    rows
}

/// The worker-pool rows (issue 6): one empty task's round trip through pools of threads
/// and of processes, against a blocking port round trip and rayon; tiny-task throughput
/// against rayon and a crossbeam-channel pool.
fn workers() -> Vec<Scenario> {
    let rtt = |name, about| spec(name, about, true, Size::TaskRtt);
    let port_threads = |name, about| Scenario {
        reference: None,
        ..rtt_threads::<PodBlocking>(rtt(name, about))
    };
    let pool = |name, about, counts_futex, run| {
        row_by(
            spec(name, about, counts_futex, Size::TaskRtt),
            PORT_RTT_THREADS,
            run,
        )
    };
    let tiny = |name, about, counts_futex, run| {
        row_by(
            spec(name, about, counts_futex, Size::Tasks),
            RAYON_TASKS,
            run,
        )
    };
    let mut rows = vec![
        port_threads(
            PORT_RTT_THREADS,
            "PodPort<u64>, blocking recv on both sides: the port round trip, as rtt/pod-port-blocking",
        ),
        pool(
            "workers/pool-threads-1w/threads",
            "WorkerPool::threads(1), execute(v) then wait: the successor of v",
            true,
            pools::threads::<1>,
        ),
        pool(
            "workers/pool-threads-4w/threads",
            "WorkerPool::threads(4), one task at a time",
            true,
            pools::threads::<4>,
        ),
        pool(
            "workers/rayon-1w/threads",
            "rayon ThreadPool(1) spawn, the result through a crossbeam channel",
            false,
            pools::rayon::<1>,
        ),
        pool(
            "workers/rayon-4w/threads",
            "rayon ThreadPool(4) spawn, one task at a time, result through crossbeam",
            false,
            pools::rayon::<4>,
        ),
        recheck(
            port_threads(
                "workers/port-blocking-again/threads",
                "blocking port round trip again: did it move?",
            ),
            PORT_RTT_THREADS,
        ),
    ];
    let port_processes = |name, about| Scenario {
        reference: None,
        ..rtt_processes::<PodBlocking>(rtt(name, about))
    };
    rows.push(port_processes(
        PORT_RTT_PROCESSES,
        "named PodPort<u64>, blocking recv on both sides: the port round trip",
    ));
    #[cfg(feature = "serde")]
    rows.push(row_by(
        spec(
            POOL_PROCESSES,
            "WorkerPool::processes(1) of this binary, execute(v) then wait: v + 1 over its channel",
            true,
            Size::TaskRtt,
        ),
        PORT_RTT_PROCESSES,
        pools::processes,
    ));
    rows.push(recheck(
        port_processes(
            "workers/port-blocking-again/processes",
            "blocking port round trip between processes again: did it move?",
        ),
        PORT_RTT_PROCESSES,
    ));
    rows.extend([
        tiny(
            RAYON_TASKS,
            "rayon ThreadPool(2) spawn of a u64 add, each result through a crossbeam channel",
            false,
            tasks::threads::<tasks::Rayon>,
        ),
        tiny(
            "workers/tiny-tasks-pool-2w/threads",
            "WorkerPool::threads(2) execute of a u64 add, every handle waited",
            true,
            tasks::threads::<tasks::Ringport>,
        ),
        tiny(
            "workers/tiny-tasks-crossbeam-2w/threads",
            "2 threads take tasks from a crossbeam channel and send results on another",
            false,
            tasks::threads::<tasks::Crossbeam>,
        ),
        recheck(
            tiny(
                "workers/tiny-tasks-rayon-again-2w/threads",
                "rayon and a channel again: did it move?",
                false,
                tasks::threads::<tasks::Rayon>,
            ),
            RAYON_TASKS,
        ),
    ]);
    rows
}

/// The queue rows (issue 6): MessageQueue batching at batch sizes 1, 16 and 100; the
/// latency of HIGH priority messages alone and under a LOW flood.
fn queues_rows() -> Vec<Scenario> {
    let batch = |name, about, run| row_by(spec(name, about, true, Size::Queued), BATCH_1, run);
    let high = |name, about, run| row_by(spec(name, about, true, Size::Ticks), HIGH_ALONE, run);
    vec![
        batch(
            BATCH_1,
            "MessageQueue batch_size 1, 16-byte messages, BatchReceiver checks each",
            batching::threads::<1>,
        ),
        batch(
            "queues/batch-16/threads",
            "MessageQueue batch_size 16: one frame, one publish per 16 messages",
            batching::threads::<16>,
        ),
        batch(
            "queues/batch-100/threads",
            "MessageQueue batch_size 100: one frame, one publish per 100 messages",
            batching::threads::<100>,
        ),
        recheck(
            batch(
                "queues/batch-again-1/threads",
                "batches of one again: did it move?",
                batching::threads::<1>,
            ),
            BATCH_1,
        ),
        high(
            HIGH_ALONE,
            "PriorityMessageQueue, a HIGH message every 100 us, send to receive; both sides spin",
            priority::alone,
        ),
        high(
            "queues/priority-high-flood/threads",
            "the same while the sender floods LOW with 64-byte messages between HIGH sends",
            priority::flooded,
        ),
        high(
            "queues/priority-high-alone-sleep/threads",
            "HIGH alone, receiver with the default 20 us spin budget: each message wakes it",
            priority::alone_sleeping,
        ),
        recheck(
            high(
                "queues/priority-high-alone-again/threads",
                "HIGH alone again: did it move?",
                priority::alone,
            ),
            HIGH_ALONE,
        ),
    ]
}

/// A raw futex ping-pong, both sides asleep, as the reference `name` of the
/// request/response rows of its placement.
fn futex_floor<const PROCESSES: bool>(name: &'static str, about: &'static str) -> Scenario {
    let s = spec(name, about, true, Size::RttSleeping);
    Scenario {
        reference: None,
        ..if PROCESSES {
            rtt_processes::<FutexSleep>(s)
        } else {
            rtt_threads::<FutexSleep>(s)
        }
    }
}

/// The request/response rows (`ringport::rpc` over a port), between threads and between
/// processes, each between its futex floor and that floor again.
fn rpc() -> Vec<Scenario> {
    let request = |name, about, reference| {
        row_by(
            spec(name, about, true, Size::RttSleeping),
            reference,
            requests::threads,
        )
    };
    vec![
        futex_floor::<false>(
            RPC_FLOOR_THREADS,
            "raw futex ping-pong, both sides sleep: the floor of the request rows",
        ),
        request(
            "rpc/request/threads",
            "CommunicationManager::request over a MessagePort, 8-byte echo handler",
            RPC_FLOOR_THREADS,
        ),
        recheck(
            futex_floor::<false>(
                "rpc/futex-sleep-again/threads",
                "raw futex ping-pong again: did it move?",
            ),
            RPC_FLOOR_THREADS,
        ),
        futex_floor::<true>(
            RPC_FLOOR_PROCESSES,
            "raw shared futex ping-pong, both sides sleep: the floor of the request rows",
        ),
        Scenario {
            run: requests::processes,
            child: Some(requests::guest),
            ..request(
                "rpc/request/processes",
                "CommunicationManager::request over a named MessagePort, child handler",
                RPC_FLOOR_PROCESSES,
            )
        },
        recheck(
            futex_floor::<true>(
                "rpc/futex-sleep-again/processes",
                "raw shared futex ping-pong again: did it move?",
            ),
            RPC_FLOOR_PROCESSES,
        ),
    ]
}

/// The publish-time rows: ringport's overwrite ring with 1 and 8 subscribers reading.
fn publish_times() -> Vec<Scenario> {
    vec![
        row_by(
            spec(
                PUBLISH_1,
                "broadcast::channel(4096) Overwrite, ns per publish in batches of 256, 1 subscriber reading",
                true,
                Size::Publishes,
            ),
            PUBLISH_1,
            fanout::publish_time::<1>,
        ),
        row_by(
            spec(
                "broadcast/publish-overwrite-8sub/threads",
                "the same with 8 subscribers reading",
                true,
                Size::Publishes,
            ),
            PUBLISH_1,
            fanout::publish_time::<8>,
        ),
        recheck(
            row_by(
                spec(
                    "broadcast/publish-overwrite-again-1sub/threads",
                    "publish time with 1 subscriber again: did it move?",
                    true,
                    Size::Publishes,
                ),
                PUBLISH_1,
                fanout::publish_time::<1>,
            ),
            PUBLISH_1,
        ),
    ]
}

/// The rows of one producer and one consumer (or one reader, or one thread), in running
/// order.
fn single_pair() -> Vec<Scenario> {
    use Size::*;
    vec![
        rtt_threads::<TwoLine>(spec(
            FLOOR_THREADS,
            "two AtomicU64 in separate lines, one per direction",
            false,
            Rtt,
        )),
        rtt_threads::<OneLine>(spec(
            "floor/one-line/threads",
            "one AtomicU64 bounced: 2k+1 there, 2k+2 back",
            false,
            Rtt,
        )),
        rtt_processes::<TwoLine>(spec(
            FLOOR_PROCESSES,
            "two-line floor in a /dev/shm segment",
            false,
            Rtt,
        )),
        rtt_processes::<OneLine>(spec(
            "floor/one-line/processes",
            "one-line floor in a /dev/shm segment",
            false,
            Rtt,
        )),
        rtt_threads::<PodBusy>(spec(
            "rtt/pod-port-busy/threads",
            "PodPort<u64>, try_recv spin",
            true,
            Rtt,
        )),
        rtt_threads::<FrameBusy>(spec(
            "rtt/frame-port-busy/threads",
            "MessagePort, 8-byte frames, try_recv spin",
            true,
            Rtt,
        )),
        rtt_threads::<PodBlocking>(spec(
            "rtt/pod-port-blocking/threads",
            "PodPort<u64>, blocking recv on both sides",
            true,
            Rtt,
        )),
        rtt_threads::<RtrbBusy>(spec(
            "rtt/rtrb-busy/threads",
            "two rtrb rings, pop spin",
            false,
            Rtt,
        )),
        rtt_threads::<ChannelBusy>(spec(
            "rtt/crossbeam-channel-busy/threads",
            "two bounded crossbeam channels, try_recv spin",
            false,
            Rtt,
        )),
        rtt_threads::<ArrayQueueBusy>(spec(
            "rtt/arrayqueue-busy/threads",
            "two crossbeam ArrayQueues, pop spin",
            false,
            Rtt,
        )),
        rtt_threads::<MpscBusy>(spec(
            "rtt/std-mpsc-busy/threads",
            "two std sync_channels, try_recv spin",
            false,
            Rtt,
        )),
        rtt_threads::<ChannelBlocking>(spec(
            "rtt/crossbeam-channel-blocking/threads",
            "two bounded crossbeam channels, blocking recv",
            false,
            Rtt,
        )),
        rtt_threads::<FutexSleep>(spec(
            "rtt/futex-sleep/threads",
            "raw futex ping-pong, both sides sleep in wait",
            true,
            RttSleeping,
        )),
        rtt_threads::<PodSleeping>(spec(
            "rtt/pod-port-sleep/threads",
            "PodPort<u64>, blocking recv with a zero spin budget: both sides sleep",
            true,
            RttSleeping,
        )),
        recheck(
            rtt_threads::<TwoLine>(spec(
                "floor/two-line-again/threads",
                "the two-line floor again: did it move during the run?",
                false,
                Rtt,
            )),
            FLOOR_THREADS,
        ),
        rtt_processes::<PodBusy>(spec(
            "rtt/pod-port-busy/processes",
            "named PodPort<u64>, try_recv spin",
            true,
            Rtt,
        )),
        rtt_processes::<FrameBusy>(spec(
            "rtt/frame-port-busy/processes",
            "named MessagePort, 8-byte frames, try_recv spin",
            true,
            Rtt,
        )),
        rtt_processes::<PodBlocking>(spec(
            "rtt/pod-port-blocking/processes",
            "named PodPort<u64>, blocking recv on both sides",
            true,
            Rtt,
        )),
        rtt_processes::<FutexSleep>(spec(
            "rtt/futex-sleep/processes",
            "raw shared futex ping-pong, both sides sleep",
            true,
            RttSleeping,
        )),
        rtt_processes::<PodSleeping>(spec(
            "rtt/pod-port-sleep/processes",
            "named PodPort<u64>, blocking recv with a zero spin budget: both sides sleep",
            true,
            RttSleeping,
        )),
        rtt_processes::<Socket>(spec(
            "rtt/unix-socket/processes",
            "Unix stream socket pair, 8-byte write/read",
            false,
            RttSleeping,
        )),
        rtt_processes::<Pipe>(spec(
            "rtt/pipe/processes",
            "two pipes, 8-byte write/read",
            false,
            RttSleeping,
        )),
        recheck(
            rtt_processes::<TwoLine>(spec(
                "floor/two-line-again/processes",
                "the two-line floor again: did it move during the run?",
                false,
                Rtt,
            )),
            FLOOR_PROCESSES,
        ),
        tput_threads::<RtrbOne>(spec(RTRB, "rtrb push / pop", false, U64), RTRB),
        tput_threads::<RtrbChunks>(
            spec(
                RTRB_CHUNKS,
                "rtrb push_partial_slice / pop_partial_slice, 256 per chunk",
                false,
                U64Batch,
            ),
            RTRB_CHUNKS,
        ),
        tput_threads::<PodRingOne>(
            spec(
                "tput/pod-ring/threads",
                "PodRing<u64> try_send / try_recv",
                true,
                U64,
            ),
            RTRB,
        ),
        tput_threads::<PodRingBatch>(
            spec(
                "tput/pod-ring-batch256/threads",
                "PodRing<u64> try_send_batch / try_recv_batch, 256 per chunk",
                true,
                U64Batch,
            ),
            RTRB_CHUNKS,
        ),
        tput_processes::<PodPortOne>(
            spec(
                "tput/pod-port/processes",
                "named PodPort<u64>, child consumer, one per call",
                true,
                U64,
            ),
            RTRB,
        ),
        tput_processes::<PodPortBatch>(
            spec(
                "tput/pod-port-batch256/processes",
                "named PodPort<u64>, child consumer, 256 per call",
                true,
                U64Batch,
            ),
            RTRB_CHUNKS,
        ),
        tput_threads::<PodPortBlocking>(
            spec(
                "tput/pod-port-blocking/threads",
                "PodPort<u64> post_message / blocking recv",
                true,
                U64,
            ),
            RTRB,
        ),
        tput_threads::<ArrayQueueOne>(
            spec(
                "tput/arrayqueue/threads",
                "crossbeam ArrayQueue push / pop",
                false,
                U64Slow,
            ),
            RTRB,
        ),
        tput_threads::<ChannelOne>(
            spec(
                "tput/crossbeam-channel/threads",
                "bounded crossbeam channel try_send / try_recv",
                false,
                U64Slow,
            ),
            RTRB,
        ),
        tput_threads::<MpscOne>(
            spec(
                "tput/std-mpsc/threads",
                "std sync_channel try_send / try_recv",
                false,
                U64Slow,
            ),
            RTRB,
        ),
        recheck(
            tput_threads::<RtrbOne>(
                spec(
                    "tput/rtrb-again/threads",
                    "rtrb push / pop again: did it move?",
                    false,
                    U64,
                ),
                RTRB,
            ),
            RTRB,
        ),
        recheck(
            tput_threads::<RtrbChunks>(
                spec(
                    "tput/rtrb-chunks256-again/threads",
                    "rtrb chunks again: did it move?",
                    false,
                    U64Batch,
                ),
                RTRB_CHUNKS,
            ),
            RTRB_CHUNKS,
        ),
        tput_threads::<RtrbBytes>(
            spec(
                RTRB_BYTES_64,
                "rtrb<u8> byte ring, u32 length prefix, 64-byte frames",
                false,
                Frames(64),
            ),
            RTRB_BYTES_64,
        ),
        tput_threads::<RtrbBytes>(
            spec(
                RTRB_BYTES_4K,
                "rtrb<u8> byte ring, u32 length prefix, 4 KiB frames",
                false,
                Frames(4096),
            ),
            RTRB_BYTES_4K,
        ),
        tput_threads::<FrameRingFrames>(
            spec(
                "tput/frame-ring-64B/threads",
                "FrameRing try_send / try_recv_with, 64-byte frames",
                true,
                Frames(64),
            ),
            RTRB_BYTES_64,
        ),
        tput_threads::<FrameRingFrames>(
            spec(
                "tput/frame-ring-4KiB/threads",
                "FrameRing try_send / try_recv_with, 4 KiB frames",
                true,
                Frames(4096),
            ),
            RTRB_BYTES_4K,
        ),
        tput_processes::<FramePortFrames>(
            spec(
                "tput/frame-port-4KiB/processes",
                "named MessagePort, child consumer, 4 KiB frames",
                true,
                Frames(4096),
            ),
            RTRB_BYTES_4K,
        ),
        recheck(
            tput_threads::<RtrbBytes>(
                spec(
                    "tput/rtrb-bytes-64B-again/threads",
                    "rtrb byte ring, 64-byte frames, again: did it move?",
                    false,
                    Frames(64),
                ),
                RTRB_BYTES_64,
            ),
            RTRB_BYTES_64,
        ),
        recheck(
            tput_threads::<RtrbBytes>(
                spec(
                    "tput/rtrb-bytes-4KiB-again/threads",
                    "rtrb byte ring, 4 KiB frames, again: did it move?",
                    false,
                    Frames(4096),
                ),
                RTRB_BYTES_4K,
            ),
            RTRB_BYTES_4K,
        ),
        row_by(
            spec(
                HASHMAP_GET,
                "unsynchronised HashMap<String, [u8; 64]> get + copy, 1024 keys in shuffled order",
                false,
                Ops,
            ),
            HASHMAP_GET,
            state::hashmap_get,
        ),
        row_by(
            spec(
                "state/get-pod/threads",
                "SharedState::get_pod::<[u8; 64]> by key, same keys and order",
                true,
                Ops,
            ),
            HASHMAP_GET,
            state::get_pod,
        ),
        row_by(
            spec(
                "state/get-into/threads",
                "SharedState::get_into a 64-byte buffer by key, same keys and order",
                true,
                Ops,
            ),
            HASHMAP_GET,
            state::get_into,
        ),
        row_by(
            spec(
                "state/rwlock-hashmap-get/threads",
                "RwLock<HashMap<String, [u8; 64]>> read lock + get + copy, same keys and order",
                false,
                Ops,
            ),
            HASHMAP_GET,
            state::rwlock_get,
        ),
        recheck(
            row_by(
                spec(
                    "state/hashmap-get-again/threads",
                    "HashMap get + copy again: did it move?",
                    false,
                    Ops,
                ),
                HASHMAP_GET,
                state::hashmap_get,
            ),
            HASHMAP_GET,
        ),
        row_by(
            spec(
                PLAIN_COPY,
                "copy of a [u8; 64] through black_box from a table of 1024, same order",
                false,
                Ops,
            ),
            PLAIN_COPY,
            state::plain_copy,
        ),
        row_by(
            spec(
                "state/entry-get-pod/threads",
                "Entry::get_pod::<[u8; 64]>, 1024 handles resolved beforehand, same order",
                true,
                Ops,
            ),
            PLAIN_COPY,
            state::entry_get_pod,
        ),
        row_by(
            spec(
                PLAIN_COPY_HOT,
                "copy of one [u8; 64] through black_box, again and again",
                false,
                Ops,
            ),
            PLAIN_COPY_HOT,
            state::plain_copy_hot,
        ),
        row_by(
            spec(
                "state/entry-get-pod-hot/threads",
                "Entry::get_pod::<[u8; 64]> of one key, again and again (a hot path's read)",
                true,
                Ops,
            ),
            PLAIN_COPY_HOT,
            state::entry_get_pod_hot,
        ),
        recheck(
            row_by(
                spec(
                    "state/plain-copy-hot-again/threads",
                    "plain copy of one value again: did it move?",
                    false,
                    Ops,
                ),
                PLAIN_COPY_HOT,
                state::plain_copy_hot,
            ),
            PLAIN_COPY_HOT,
        ),
        recheck(
            row_by(
                spec(
                    "state/plain-copy-again/threads",
                    "plain copy again: did it move?",
                    false,
                    Ops,
                ),
                PLAIN_COPY,
                state::plain_copy,
            ),
            PLAIN_COPY,
        ),
        row_by(
            spec(
                RWLOCK_SET,
                "RwLock<HashMap<String, [u8; 64]>> write lock + get_mut + overwrite, 1024 keys",
                false,
                Ops,
            ),
            RWLOCK_SET,
            state::rwlock_set,
        ),
        row_by(
            spec(
                "state/set/threads",
                "SharedState::set of a 64-byte value by key, same keys and order",
                true,
                Ops,
            ),
            RWLOCK_SET,
            state::set,
        ),
        row_by(
            spec(
                "state/entry-set/threads",
                "Entry::set of a 64-byte value, 1024 handles resolved beforehand",
                true,
                Ops,
            ),
            RWLOCK_SET,
            state::entry_set,
        ),
        recheck(
            row_by(
                spec(
                    "state/rwlock-hashmap-set-again/threads",
                    "RwLock<HashMap> overwrite again: did it move?",
                    false,
                    Ops,
                ),
                RWLOCK_SET,
                state::rwlock_set,
            ),
            RWLOCK_SET,
        ),
        row_by(
            spec(
                RWLOCK_READS,
                "RwLock<HashMap> get by key over 64 keys, a writer rewriting them on the other CPU",
                false,
                Reads,
            ),
            RWLOCK_READS,
            state::reads::<RwLockReads>,
        ),
        row_by(
            spec(
                "state/reads/threads",
                "SharedState::get_pod by key over 64 keys, a writer setting them on the other CPU",
                true,
                Reads,
            ),
            RWLOCK_READS,
            state::reads::<StateReads>,
        ),
        recheck(
            row_by(
                spec(
                    "state/rwlock-hashmap-reads-again/threads",
                    "RwLock<HashMap> reads beside a writer again: did it move?",
                    false,
                    Reads,
                ),
                RWLOCK_READS,
                state::reads::<RwLockReads>,
            ),
            RWLOCK_READS,
        ),
        row_by(
            spec(
                FUTEX_WAKE_THREADS,
                "raw futex word + stamp: store, notify; the other side wakes from wait, one way",
                true,
                Wakes,
            ),
            FUTEX_WAKE_THREADS,
            state::wake_threads::<FutexWake>,
        ),
        row_by(
            spec(
                "state/wait-for-change-wake/threads",
                "set a stamped value; the other side wakes from wait_for_change and reads it",
                true,
                Wakes,
            ),
            FUTEX_WAKE_THREADS,
            state::wake_threads::<StateWake>,
        ),
        recheck(
            row_by(
                spec(
                    "state/futex-wake-again/threads",
                    "raw futex wake again: did it move?",
                    true,
                    Wakes,
                ),
                FUTEX_WAKE_THREADS,
                state::wake_threads::<FutexWake>,
            ),
            FUTEX_WAKE_THREADS,
        ),
        wake_processes::<FutexWake>(
            spec(
                FUTEX_WAKE_PROCESSES,
                "raw shared futex word + stamp in a segment, child stamps, one way",
                true,
                Wakes,
            ),
            FUTEX_WAKE_PROCESSES,
        ),
        wake_processes::<StateWake>(
            spec(
                "state/wait-for-change-wake/processes",
                "named SharedState, child sets stamped values, parent wakes from wait_for_change",
                true,
                Wakes,
            ),
            FUTEX_WAKE_PROCESSES,
        ),
        recheck(
            wake_processes::<FutexWake>(
                spec(
                    "state/futex-wake-again/processes",
                    "raw shared futex wake again: did it move?",
                    true,
                    Wakes,
                ),
                FUTEX_WAKE_PROCESSES,
            ),
            FUTEX_WAKE_PROCESSES,
        ),
    ]
}

/// The rows whose names contain one of `only` (all but the opt-in rows if it is empty),
/// plus the references of those and their second measurements, in running order. An
/// opt-in row is chosen only by a value that contains its opt-in word.
pub fn select<'a>(all: &'a [Scenario], only: &[String]) -> Vec<&'a Scenario> {
    let chosen = |s: &Scenario| match s.opt_in {
        None => only.is_empty() || only.iter().any(|o| s.name.contains(o.as_str())),
        Some(word) => only
            .iter()
            .any(|o| o.contains(word) && s.name.contains(o.as_str())),
    };
    let mut names: Vec<&str> = all.iter().filter(|s| chosen(s)).map(|s| s.name).collect();
    names.extend(all.iter().filter(|s| chosen(s)).filter_map(|s| s.reference));
    all.iter()
        .filter(|s| names.contains(&s.name) || s.recheck_of.is_some_and(|r| names.contains(&r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_say_their_placement() {
        let all = all();
        for (i, s) in all.iter().enumerate() {
            assert!(
                all[..i].iter().all(|o| o.name != s.name),
                "{} twice",
                s.name
            );
            let processes = s.name.ends_with("/processes");
            assert!(processes || s.name.ends_with("/threads"), "{}", s.name);
            // A pool of worker processes starts its processes itself.
            let own_children = s.name == "workers/pool-processes-1w/processes";
            assert_eq!(s.child.is_some(), processes && !own_children, "{}", s.name);
        }
    }

    #[test]
    fn references_exist_and_run_first() {
        let all = all();
        for (i, s) in all.iter().enumerate() {
            if let Some(r) = s.reference {
                let at = all.iter().position(|o| o.name == r).expect(r);
                assert!(at < i, "{} runs before its reference {r}", s.name);
                assert!(all[at].reference.is_none(), "{r} is not a reference");
            }
        }
    }

    #[test]
    fn every_reference_is_measured_again_after_its_rows() {
        let all = all();
        for (at, r) in all
            .iter()
            .enumerate()
            .filter(|(_, s)| s.reference.is_none())
        {
            let again = all
                .iter()
                .position(|s| s.recheck_of == Some(r.name))
                .unwrap_or_else(|| panic!("{} is never measured again", r.name));
            assert!(at < again);
            assert_eq!(all[again].size.is_latency(), r.size.is_latency());
            for (i, s) in all.iter().enumerate() {
                if s.reference == Some(r.name) && s.recheck_of.is_none() {
                    assert!(i < again, "{} runs after {}", s.name, all[again].name);
                }
            }
        }
    }

    #[test]
    fn a_selection_brings_its_references() {
        let all = all();
        let names = |only: &[&str]| -> Vec<&str> {
            let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
            select(&all, &only).iter().map(|s| s.name).collect()
        };
        assert_eq!(
            names(&["rtt/pipe"]),
            [
                "floor/two-line/processes",
                "rtt/pipe/processes",
                "floor/two-line-again/processes"
            ]
        );
        assert_eq!(
            names(&["frame-port-4KiB"]),
            [
                "tput/rtrb-bytes-4KiB/threads",
                "tput/frame-port-4KiB/processes",
                "tput/rtrb-bytes-4KiB-again/threads"
            ]
        );
        let default = all.iter().filter(|s| s.opt_in.is_none()).count();
        assert_eq!(names(&[]).len(), default);
        assert!(names(&["no-such-row"]).is_empty());
    }

    #[test]
    fn the_transfer_family_runs_together() {
        let all = all();
        let only = vec!["transfer".to_owned()];
        let names: Vec<&str> = select(&all, &only).iter().map(|s| s.name).collect();
        assert!(
            names.iter().all(|n| n.starts_with("transfer/")),
            "{names:?}"
        );
        let iceoryx2 = usize::from(cfg!(feature = "iceoryx2"));
        assert_eq!(names.len(), 2 * 6 + 5 * 4 + 3 + iceoryx2);
        for size in ["64B", "4KiB", "64KiB", "1MiB", "4MiB"] {
            for path in [
                "pipelined",
                "ping-pong",
                "crossbeam-vec",
                "zero-copy",
                "frame-ring-copy",
            ] {
                let name = format!("transfer/{path}-{size}/threads");
                assert!(names.contains(&name.as_str()), "{name} missing");
            }
        }
        let row = |name: &str| all.iter().find(|s| s.name == name).unwrap();
        assert_eq!(
            row("transfer/ping-pong-4MiB/threads").reference,
            Some(PING_PONG_4K)
        );
        assert_eq!(row(PING_PONG_4K).reference, None);
        assert_eq!(row(UNIX_SOCKET_1M).reference, None);
        assert_eq!(
            row("transfer/zero-copy-1MiB/processes").reference,
            Some(UNIX_SOCKET_1M)
        );
    }

    #[test]
    fn the_issue_6_families_run_together() {
        let all = all();
        let names = |only: &str| -> Vec<&str> {
            select(&all, &[only.to_owned()])
                .iter()
                .map(|s| s.name)
                .collect()
        };
        let workers = names("workers");
        assert!(
            workers.iter().all(|n| n.starts_with("workers/")),
            "{workers:?}"
        );
        let processes = usize::from(cfg!(feature = "serde"));
        assert_eq!(workers.len(), 6 + 2 + processes + 4);
        let queues = names("queues");
        assert!(
            queues.iter().all(|n| n.starts_with("queues/")),
            "{queues:?}"
        );
        assert_eq!(queues.len(), 8);
        assert_eq!(
            names("batch-100"),
            [
                BATCH_1,
                "queues/batch-100/threads",
                "queues/batch-again-1/threads"
            ]
        );
        assert_eq!(
            names("priority-high-flood"),
            [
                HIGH_ALONE,
                "queues/priority-high-flood/threads",
                "queues/priority-high-alone-again/threads"
            ]
        );
    }

    #[test]
    fn opt_in_rows_run_only_when_named_by_their_word() {
        let all = all();
        let names = |only: &[&str]| -> Vec<&str> {
            let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
            select(&all, &only).iter().map(|s| s.name).collect()
        };
        assert!(names(&[]).iter().all(|n| !n.starts_with(SCALING)));
        assert!(names(&["mpmc"]).iter().all(|n| n.starts_with("mpmc/")));
        assert!(names(&["flume-8p8c"]).is_empty());
        assert_eq!(
            names(&["mpmc-scaling/flume-8p8c"]),
            [
                "mpmc-scaling/arrayqueue-snooze-8p8c/threads",
                "mpmc-scaling/flume-8p8c/threads",
                "mpmc-scaling/arrayqueue-snooze-again-8p8c/threads"
            ]
        );
        let scaling = names(&[SCALING]);
        assert_eq!(scaling.len(), 4 * 6);
        assert!(scaling.iter().all(|n| n.starts_with(SCALING)));
        assert_eq!(
            names(&["flume-2p2c"]),
            [
                "mpmc/arrayqueue-snooze-2p2c/threads",
                "mpmc/flume-2p2c/threads",
                "mpmc/arrayqueue-snooze-again-2p2c/threads"
            ]
        );
    }
}
