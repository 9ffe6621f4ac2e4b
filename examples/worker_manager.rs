//! The web's WorkerManager pattern: a pool of four workers, each with a private channel,
//! that takes tasks, runs them on idle workers, queues the rest, and hands back a
//! promise-like handle per task.
//!
//! First the web example's task, doubling numbers; then a CPU-heavy job, hashing large
//! pseudo-random inputs (FNV-1a, written out below). Each runs twice: on worker threads,
//! and on worker processes, which are this program started again: `serve_if_worker`,
//! called first thing in `main`, makes such a process serve tasks instead of running the
//! rest of `main`. Both runs must give the same hashes as a plain loop here.
//!
//! Run with `cargo run --example worker_manager` (add `--release` for real speed).

use ringport::worker::{serve_if_worker, PoolOptions, ProcessOptions, WorkerPool};
use serde::{Deserialize, Serialize};
use std::time::Instant;

const WORKERS: usize = 4;

/// One hashing job: `len` bytes generated from `seed`, so that the input does not have
/// to travel (a worker process's channel carries tens of kilobytes, not megabytes).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct HashJob {
    seed: u64,
    len: usize,
}

/// The job's input, hashed as it is generated: 64-bit FNV-1a over the bytes of an
/// xorshift stream.
fn hash(job: HashJob) -> u64 {
    // A splitmix64 step spreads neighbouring seeds; xorshift needs a non-zero state.
    let mut state = (job.seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..job.len / 8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        for byte in state.to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn double(n: u64) -> Result<u64, String> {
    Ok(n * 2)
}

fn hash_task(job: HashJob) -> Result<u64, String> {
    Ok(hash(job))
}

fn jobs() -> Vec<HashJob> {
    // Debug builds hash far slower: smaller inputs keep the example quick there.
    let len = if cfg!(debug_assertions) {
        2 << 20
    } else {
        16 << 20
    };
    (0..12).map(|seed| HashJob { seed, len }).collect()
}

/// Runs the doubling and the hashing on these pools, and returns the hashes.
fn run(
    kind: &str,
    doubling: &WorkerPool<u64, u64>,
    hashing: &WorkerPool<HashJob, u64>,
) -> Vec<u64> {
    let handles: Vec<_> = (1..=8).map(|n| doubling.execute(n).unwrap()).collect();
    let doubled: Vec<u64> = handles.into_iter().map(|h| h.wait().unwrap()).collect();
    println!("{kind}: doubled 1..=8 -> {doubled:?}");
    assert_eq!(doubled, (1..=8).map(|n| n * 2).collect::<Vec<_>>());

    let jobs = jobs();
    let start = Instant::now();
    let handles: Vec<_> = jobs.iter().map(|&j| hashing.execute(j).unwrap()).collect();
    let hashes: Vec<u64> = handles.into_iter().map(|h| h.wait().unwrap()).collect();
    let mib = jobs.iter().map(|j| j.len).sum::<usize>() >> 20;
    println!(
        "{kind}: hashed {} inputs, {mib} MiB, in {:.0?} on {WORKERS} workers",
        jobs.len(),
        start.elapsed()
    );
    for (job, h) in jobs.iter().zip(&hashes).take(3) {
        println!("  seed {:>2}: {h:016x}", job.seed);
    }
    hashes
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a worker process these serve tasks and never return.
    serve_if_worker("double", double);
    serve_if_worker("hash", hash_task);

    let options = PoolOptions::new();
    let threads = run(
        "threads",
        &WorkerPool::threads(WORKERS, options.clone(), double),
        &WorkerPool::threads(WORKERS, options.clone(), hash_task),
    );

    let doubling = WorkerPool::processes(WORKERS, options.clone(), ProcessOptions::new("double"))?;
    let hashing = WorkerPool::processes(WORKERS, options, ProcessOptions::new("hash"))?;
    println!("worker processes: {:?}", hashing.worker_pids());
    let processes = run("processes", &doubling, &hashing);
    doubling.terminate();
    hashing.terminate();

    let start = Instant::now();
    let here: Vec<u64> = jobs().into_iter().map(hash).collect();
    println!("one thread: the same hashes in {:.0?}", start.elapsed());
    assert_eq!(threads, here);
    assert_eq!(processes, here);
    println!("threads, processes and the plain loop agree");
    Ok(())
}
