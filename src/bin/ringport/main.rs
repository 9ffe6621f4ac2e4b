//! `ringport`: the benchmark harness of the ringport crate.
//!
//! `ringport bench` measures ringport's rings and ports against the floors of the machine
//! (cache lines bounced between two CPUs, a futex both sides sleep on) and against peer
//! queues, its MPMC and broadcast rings against peer queues and channels, its shared
//! state table against std maps, its zero-copy buffer pool against channels of `Vec`s,
//! copies through a ring or a socket and (feature `iceoryx2`) iceoryx2, and its worker
//! pools against rayon and a crossbeam-channel pool, its batching and priority queues
//! against themselves at other settings, all in one invocation, and prints each row's
//! ratio to its reference. See `ringport bench --help` and `--list`.
//!
//! Layout: [`scenarios`] is the registry of rows; [`bench`] runs a selection of them;
//! [`rtt`] and [`tput`] are the generic round-trip and throughput harnesses, fed by the
//! transports in [`links`], [`floor`], [`ipc`] and [`streams`]; [`queues`] has the MPMC
//! rows (producers and consumers on one queue), [`fanout`] the broadcast rows (one
//! publisher, many subscribers), [`requests`] the request/response rows, [`state`] the
//! shared state table's rows, [`transfer`] the zero-copy transfer rows (with
//! `iceoryx` behind its feature), [`pools`] the worker pools' round trips, [`tasks`]
//! their tiny-task throughput, [`batching`] the batching queue's rows and [`priority`]
//! the priority queue's, each with harnesses of their own; [`child`] is the re-exec
//! protocol of cross-process rows;
//! [`machine`] measures how much other processes disturbed each row; [`watchdog`] turns
//! every failure or hang into a loud exit that leaves no child and no name behind;
//! [`report`] prints the results.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod batching;
mod bench;
mod child;
mod fanout;
mod floor;
#[cfg(feature = "iceoryx2")]
mod iceoryx;
mod ipc;
mod links;
mod machine;
mod pin;
mod pools;
mod priority;
mod queues;
mod report;
mod requests;
mod rtt;
mod scenarios;
mod shm;
mod state;
mod streams;
mod tasks;
mod tput;
mod transfer;
mod watchdog;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Errors of the harness: any error type, with its message as the report.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Results of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// Command line of the `ringport` binary.
#[derive(Parser)]
#[command(
    name = "ringport",
    version,
    about = "ringport tools: benchmark harness"
)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Subcommand)]
enum Command {
    /// Measure round trips and throughput of ringport, the machine's floors and peer
    /// queues, in one run, and print each row's ratio to its reference.
    Bench(bench::BenchArgs),
    /// The child side of a cross-process row (started by `bench`, not by hand).
    #[command(hide = true)]
    BenchChild(child::ChildArgs),
}

/// Dispatches to the subcommand; its exit status is the process's.
fn main() -> ExitCode {
    // A worker process of a pool row is this binary started again: it serves tasks here
    // and never reaches the command line.
    pools::serve_if_worker();
    match Cli::parse().command {
        Command::Bench(args) => bench::main(args),
        Command::BenchChild(args) => child::main(args),
    }
}

/// Runs `f` on its own thread and returns its result, failing the test if it takes longer
/// than `limit`: a lost message would otherwise spin forever. One such test runs at a
/// time: each keeps two threads spinning, and several at once on a two-CPU machine starve
/// each other for whole scheduler slices.
#[cfg(test)]
fn within<T: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A poisoned lock only means another test failed; this one can still run.
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The receiver is gone only after a timeout, which already failed the test.
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("no result within {limit:?}: {e}"))
}
