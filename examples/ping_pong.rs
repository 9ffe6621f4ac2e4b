//! The web's `MessageChannel` between two processes: the pattern of a page and a worker
//! that live in different processes (a site-isolated iframe, a shared worker) and talk
//! over an entangled port pair, with a named shared-memory channel in place of the
//! browser's plumbing.
//!
//! The example runs itself twice. The parent creates the channel `/dev/shm/<name>` and
//! re-executes its own binary as `--child <name> <rounds>`; the child opens the channel
//! and echoes every value it receives. The parent measures round trips, first with both
//! sides busy-polling (`try_recv` in a loop, the lowest latency), then with blocking
//! `recv` (which spins briefly, then sleeps in a futex), and prints percentiles. Dropping
//! the creator's port removes the name.
//!
//! Run with `cargo run --release --example ping_pong [-- <rounds>]` (20 000 by default).

use ringport::{MessageChannel, PodPort, RecvError};
use std::process::Command;
use std::time::{Duration, Instant};

const DEFAULT_ROUNDS: u64 = 20_000;

/// Busy-waits for the next value, as a latency-critical loop would. After a long empty
/// stretch it makes one timed, blocking receive, which also notices a peer that died
/// (a busy loop alone would spin forever on a dead channel).
fn recv_busy(port: &mut PodPort<u64>) -> Result<u64, RecvError> {
    loop {
        for _ in 0..1_000_000 {
            match port.try_recv() {
                Err(RecvError::Empty) => std::hint::spin_loop(),
                r => return r,
            }
        }
        match port.recv_timeout(Duration::from_millis(200)) {
            Err(RecvError::Timeout) => {}
            r => return r,
        }
    }
}

fn child(name: &str, rounds: u64) {
    let mut port = MessageChannel::open_pod::<u64>(name).expect("open the parent's channel");
    port.post_message(u64::from(std::process::id())).unwrap();
    for _ in 0..rounds {
        let v = recv_busy(&mut port).unwrap();
        port.post_message(v).unwrap();
    }
    for _ in 0..rounds {
        let v = port.recv().unwrap();
        port.post_message(v).unwrap();
    }
    assert_eq!(port.recv(), Err(RecvError::Disconnected));
}

/// Round trips in nanoseconds, sorted.
fn ping(port: &mut PodPort<u64>, rounds: u64, busy: bool) -> Vec<u64> {
    let mut times = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let start = Instant::now();
        port.post_message(i).unwrap();
        let echo = if busy { recv_busy(port) } else { port.recv() };
        times.push(start.elapsed().as_nanos() as u64);
        assert_eq!(echo, Ok(i), "the echo must be the value just sent");
    }
    times.sort_unstable();
    times
}

fn report(mode: &str, sorted: &[u64]) {
    let at = |q: f64| {
        let ns = sorted[((sorted.len() - 1) as f64 * q) as usize];
        format!("{:>9.2} us", ns as f64 / 1000.0)
    };
    println!(
        "{mode:<9} p50 {}  p99 {}  p99.9 {}  max {}",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, name, rounds] = args.as_slice() {
        if flag == "--child" {
            return child(name, rounds.parse().expect("rounds"));
        }
    }
    let rounds = match args.get(1) {
        Some(n) => n.parse().expect("usage: ping_pong [rounds]"),
        None => DEFAULT_ROUNDS,
    };

    let name = format!("ringport-ping-pong-{}", std::process::id());
    let mut port = MessageChannel::create_pod::<u64>(&name, 64).expect("create the channel");
    let mut peer = Command::new(std::env::current_exe().unwrap())
        .args(["--child", &name, &rounds.to_string()])
        .spawn()
        .expect("start the child");

    // The child announces itself; until it attaches, a receive just waits.
    let child_pid = port
        .recv_timeout(Duration::from_secs(10))
        .expect("the child did not attach within 10 s");
    println!(
        "ping-pong between processes {} and {child_pid} over /dev/shm/{name}, {rounds} round trips per mode",
        std::process::id()
    );
    report("busy", &ping(&mut port, rounds, true));
    report("blocking", &ping(&mut port, rounds, false));

    drop(port);
    let status = peer.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
    let left = std::path::Path::new("/dev/shm").join(&name).exists();
    assert!(!left, "the creator's port removes the name when it drops");
    println!("closed; /dev/shm/{name} removed");
}
