//! Named channels between really separate processes: long streams checked value by value,
//! a peer killed with SIGKILL in the middle of a stream, close, and the unlink policy.
//!
//! A test that needs a peer re-executes this test binary as
//! `<exe> <test> --exact --nocapture` with `ROLE_VAR` set; every test first calls
//! [`play_child_role`], which plays that role and tells the test to return. Children
//! report progress with marker lines on stdout and take instructions on stdin.
//!
//! Sizes: `RINGPORT_XPROC_MESSAGES` (default 10 000 000) values and
//! `RINGPORT_XPROC_FRAMES` (default 1 000 000) frames for the long streams.

mod common;
#[path = "common/peer.rs"]
mod peer;

use common::{env_count, watchdog, Payloads};
use peer::{announce, Peer, HANG};
use ringport::segment::SegmentError;
use ringport::{ConnectError, MessageChannel, PodPort, RecvError, SendError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "RINGPORT_XPROC_ROLE";
const NAME_VAR: &str = "RINGPORT_XPROC_NAME";
const COUNT_VAR: &str = "RINGPORT_XPROC_COUNT";

/// Far above how long any single step here can plausibly take: only a hang reaches it.
/// The bound on noticing a dead peer. The rings promise about 100 ms; this is the
/// watchdog, not a performance assertion.
const DEATH_NOTICED: Duration = Duration::from_secs(5);
/// Longest frame in the frame tests.
const MAX_LEN: usize = 600;

fn messages() -> u64 {
    env_count("RINGPORT_XPROC_MESSAGES", 10_000_000)
}

fn frames() -> u64 {
    env_count("RINGPORT_XPROC_FRAMES", 1_000_000)
}

/// A watchdog limit for a stream of `n` messages: generous per message, so that only a
/// stall trips it, at any size.
fn stream_limit(n: u64) -> Duration {
    HANG + Duration::from_micros(n * 5)
}

/// A channel name no other test, and no concurrent run of this binary, uses.
fn unique(test: &str) -> String {
    format!("rp-xproc-{}-{test}", std::process::id())
}

fn shm_exists(name: &str) -> bool {
    std::fs::symlink_metadata(format!("/dev/shm/{name}")).is_ok()
}

/// Removes a name the test expects someone else to unlink, should the test fail first.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

/// 64-bit FNV-1a over whole words: both ends fold every value they saw into one number.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x0100_0000_01b3);
    }
}

/// Starts this binary's test `test` as a child playing `role` on channel `name`.
fn spawn(test: &str, role: &str, name: &str, count: u64) -> Peer {
    let count = count.to_string();
    Peer::spawn(
        test,
        &[(ROLE_VAR, role), (NAME_VAR, name), (COUNT_VAR, &count)],
    )
}

/// The process state letter from `/proc/<pid>/stat`, if the process still exists.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Blocks until the parent writes a line.
fn await_parent() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// Waits to be killed. Returning would close the ports in an orderly way, which is
/// exactly what these roles must not do.
fn hang() -> ! {
    thread::sleep(Duration::from_secs(120));
    panic!("the parent never killed this child");
}

/// If this process is a child, plays its role and returns true: the test function must
/// then return without doing its own part.
fn play_child_role() -> bool {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return false;
    };
    let name = std::env::var(NAME_VAR).expect("a child gets a name");
    let count: u64 = std::env::var(COUNT_VAR)
        .expect("a child gets a count")
        .parse()
        .unwrap();
    match role.as_str() {
        "pod-stream" => pod_stream_child(&name, count, false),
        "pod-batch-stream" => pod_stream_child(&name, count, true),
        "frame-stream" => frame_stream_child(&name, count),
        "pod-send-then-hang" => {
            let mut port = MessageChannel::open_pod::<u64>(&name).unwrap();
            for i in 0..count {
                port.post_message(i).unwrap();
            }
            announce("@@SENT@@", count);
            hang();
        }
        "frame-send-then-hang" => {
            let mut port = MessageChannel::open(&name).unwrap();
            let payloads = Payloads::new(MAX_LEN);
            for i in 0..count {
                port.post_message(payloads.get(i)).unwrap();
            }
            announce("@@SENT@@", count);
            hang();
        }
        "pod-recv-then-hang" => {
            let mut port = MessageChannel::open_pod::<u64>(&name).unwrap();
            for i in 0..count {
                assert_eq!(port.recv(), Ok(i));
            }
            announce("@@STOPPED@@", count);
            hang();
        }
        "frame-recv-then-hang" => {
            let mut port = MessageChannel::open(&name).unwrap();
            let payloads = Payloads::new(MAX_LEN);
            for i in 0..count {
                assert_eq!(&*port.recv().unwrap(), payloads.get(i));
            }
            announce("@@STOPPED@@", count);
            hang();
        }
        "late-opener" => {
            announce("@@READY@@", "");
            assert_eq!(await_parent(), "open");
            let mut port = MessageChannel::open_pod::<u64>(&name).unwrap();
            for i in 0..count {
                assert_eq!(port.recv(), Ok(i));
            }
            port.post_message(count).unwrap();
            announce("@@DONE@@", "");
        }
        "send-and-close" => {
            let mut pod = MessageChannel::open_pod::<u64>(&format!("{name}-pod")).unwrap();
            for i in 0..count {
                pod.post_message(i).unwrap();
            }
            pod.close();
            let mut frames = MessageChannel::open(&format!("{name}-frames")).unwrap();
            let payloads = Payloads::new(MAX_LEN);
            for i in 0..count {
                frames.post_message(payloads.get(i)).unwrap();
            }
            drop(frames);
            announce("@@CLOSED@@", "");
        }
        "creator" => {
            // Room for everything it sends, so it never waits for the parent.
            let mut port = MessageChannel::create(&name, 1 << 20).unwrap();
            announce("@@CREATED@@", "");
            assert_eq!(&*port.recv().unwrap(), b"hello");
            port.post_message(b"welcome").unwrap();
            let payloads = Payloads::new(MAX_LEN);
            for i in 0..count {
                port.post_message(payloads.get(i)).unwrap();
            }
            drop(port);
            announce("@@DROPPED@@", "");
        }
        other => panic!("unknown child role {other:?}"),
    }
    true
}

/// Sends `0..count` (singly, or in batches of 1 to 1000), then its checksum of them, and
/// checks that the parent's checksum, sent back, agrees.
fn pod_stream_child(name: &str, count: u64, batches: bool) {
    let mut port = MessageChannel::open_pod::<u64>(name).unwrap();
    let mut sum = Fnv::new();
    if batches {
        let mut chunk = Vec::with_capacity(1000);
        let mut next = 0;
        while next < count {
            let k = (next % 1000 + 1).min(count - next);
            chunk.clear();
            chunk.extend(next..next + k);
            chunk.iter().for_each(|&v| sum.add(v));
            port.post_batch(&chunk).unwrap();
            next += k;
        }
    } else {
        for i in 0..count {
            sum.add(i);
            port.post_message(i).unwrap();
        }
    }
    port.post_message(sum.0).unwrap();
    assert_eq!(port.recv(), Ok(sum.0), "the parent's checksum differs");
}

/// Sends `count` frames, singly and in batches of 8, then waits for the parent's count.
fn frame_stream_child(name: &str, count: u64) {
    let mut port = MessageChannel::open(name).unwrap();
    let payloads = Payloads::new(MAX_LEN);
    let mut next = 0;
    while next < count {
        let k = 8.min(count - next);
        if next / 8 % 2 == 0 {
            for i in next..next + k {
                port.post_message(payloads.get(i)).unwrap();
            }
        } else {
            let batch: Vec<&[u8]> = (next..next + k).map(|i| payloads.get(i)).collect();
            port.post_batch(&batch).unwrap();
        }
        next += k;
    }
    assert_eq!(port.recv().unwrap().read_pod::<u64>(), Some(count));
}

/// Receives a pod stream and its checksum, answers with its own checksum, then expects
/// the child's close.
fn receive_pod_stream(mut port: PodPort<u64>, count: u64, batches: bool) {
    let mut sum = Fnv::new();
    let mut next = 0;
    let mut buf = vec![0u64; 1024];
    while next < count {
        if batches {
            let room = ((next % 1024 + 1).min(count - next)) as usize;
            let k = port.recv_batch(&mut buf[..room]).unwrap();
            for &v in &buf[..k] {
                assert_eq!(v, next, "message {next}");
                sum.add(v);
                next += 1;
            }
        } else {
            let v = port.recv().unwrap();
            assert_eq!(v, next, "message {next}");
            sum.add(v);
            next += 1;
        }
    }
    assert_eq!(port.recv(), Ok(sum.0), "the child's checksum differs");
    port.post_message(sum.0).unwrap();
    assert_eq!(port.recv(), Err(RecvError::Disconnected));
}

fn pod_stream(test: &str, batches: bool) {
    let n = messages();
    let name = unique(test);
    let port = MessageChannel::create_pod::<u64>(&name, 4096).unwrap();
    let peer = spawn(
        test,
        if batches {
            "pod-batch-stream"
        } else {
            "pod-stream"
        },
        &name,
        n,
    );
    let ((), took) = watchdog("pod stream", stream_limit(n), move || {
        receive_pod_stream(port, n, batches)
    });
    peer.finish();
    let rate = n as f64 / took.as_secs_f64() / 1e6;
    eprintln!("{test}: {n} u64 from another process in {took:?} ({rate:.1} M/s)");
}

#[test]
fn pod_stream_from_a_child_process() {
    if play_child_role() {
        return;
    }
    pod_stream("pod_stream_from_a_child_process", false);
}

#[test]
fn pod_batches_from_a_child_process() {
    if play_child_role() {
        return;
    }
    pod_stream("pod_batches_from_a_child_process", true);
}

#[test]
fn frame_stream_from_a_child_process() {
    if play_child_role() {
        return;
    }
    let test = "frame_stream_from_a_child_process";
    let n = frames();
    let name = unique(test);
    let mut port = MessageChannel::create(&name, 64 << 10).unwrap();
    let peer = spawn(test, "frame-stream", &name, n);
    let (bytes, took) = watchdog("frame stream", stream_limit(n), move || {
        let payloads = Payloads::new(MAX_LEN);
        let mut next = 0;
        let mut bytes = 0;
        while next < n {
            if next / 8 % 2 == 0 {
                let f = port.recv().unwrap();
                assert_eq!(&*f, payloads.get(next), "frame {next}");
                bytes += f.len();
                next += 1;
            } else {
                let max = (next % 16 + 1) as usize;
                port.recv_batch(max, |f| {
                    assert_eq!(f, payloads.get(next), "frame {next}");
                    bytes += f.len();
                    next += 1;
                })
                .unwrap();
            }
        }
        port.post_pod(&n).unwrap();
        assert_eq!(port.recv().err(), Some(RecvError::Disconnected));
        bytes
    });
    peer.finish();
    eprintln!("{test}: {n} frames, {bytes} bytes, from another process in {took:?}");
}

/// A blocking call made on its own thread while the peer is killed, with what it
/// returned and when.
fn blocked_until_death<R: Send + 'static>(
    what: &str,
    peer: &mut Peer,
    reap: bool,
    ready: impl FnOnce() + Send + 'static,
    call: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (returned, result) = mpsc::channel();
    let caller = thread::spawn(move || {
        let r = call();
        let _ = returned.send(Instant::now());
        r
    });
    ready();
    // Most likely asleep in the futex by now; the outcome must be the same if not.
    thread::sleep(Duration::from_millis(50));
    let killed = peer.kill(reap);
    let at = match result.recv_timeout(DEATH_NOTICED) {
        Ok(at) => at,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the peer's death went unnoticed for {DEATH_NOTICED:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // It sends unless it panics: show the panic.
            match caller.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(_) => unreachable!("the caller returned without reporting"),
            }
        }
    };
    eprintln!(
        "{what}: peer death noticed {:?} after SIGKILL ({})",
        at.saturating_duration_since(killed),
        if reap { "reaped" } else { "zombie" }
    );
    if !reap {
        assert_eq!(
            state(peer.pid()),
            Some('Z'),
            "the child was still a zombie throughout"
        );
    }
    caller.join().unwrap()
}

fn killed_pod_producer(test: &str, reap: bool) {
    let sent = 1000;
    let name = unique(test);
    let mut port = MessageChannel::create_pod::<u64>(&name, 4096).unwrap();
    let mut peer = spawn(test, "pod-send-then-hang", &name, sent);
    let pid = peer.pid();
    peer.expect("@@SENT@@");
    let progress = Arc::new(AtomicU64::new(0));
    let seen = progress.clone();
    let (received, err) = blocked_until_death(
        test,
        &mut peer,
        reap,
        move || {
            let start = Instant::now();
            while seen.load(Ordering::Acquire) < sent {
                assert!(start.elapsed() < HANG, "the receiver stalled");
                thread::sleep(Duration::from_millis(1));
            }
        },
        move || {
            let mut next = 0;
            loop {
                match port.recv() {
                    Ok(v) => {
                        assert_eq!(v, next);
                        next += 1;
                        progress.store(next, Ordering::Release);
                    }
                    Err(e) => return (next, e),
                }
            }
        },
    );
    assert_eq!(
        received, sent,
        "everything published before the kill arrives"
    );
    assert_eq!(err, RecvError::PeerDied { pid });
}

#[test]
fn killed_producer_wakes_a_blocked_receiver() {
    if play_child_role() {
        return;
    }
    killed_pod_producer("killed_producer_wakes_a_blocked_receiver", true);
}

#[test]
fn killed_zombie_producer_wakes_a_blocked_receiver() {
    if play_child_role() {
        return;
    }
    killed_pod_producer("killed_zombie_producer_wakes_a_blocked_receiver", false);
}

fn killed_pod_consumer(test: &str, reap: bool) {
    let taken = 100;
    let name = unique(test);
    let mut port = MessageChannel::create_pod::<u64>(&name, 64).unwrap();
    let mut peer = spawn(test, "pod-recv-then-hang", &name, taken);
    let pid = peer.pid();
    for i in 0..taken {
        port.post_message_timeout(i, HANG).unwrap();
    }
    peer.expect("@@STOPPED@@");
    // The child reads no more, so the ring fills and the next send must block.
    let mut next = taken;
    while port.try_post_message(next).is_ok() {
        next += 1;
    }
    let err = blocked_until_death(
        test,
        &mut peer,
        reap,
        || {},
        move || port.post_message(next),
    );
    assert_eq!(err, Err(SendError::PeerDied { pid }));
}

#[test]
fn killed_consumer_wakes_a_blocked_sender() {
    if play_child_role() {
        return;
    }
    killed_pod_consumer("killed_consumer_wakes_a_blocked_sender", true);
}

#[test]
fn killed_zombie_consumer_wakes_a_blocked_sender() {
    if play_child_role() {
        return;
    }
    killed_pod_consumer("killed_zombie_consumer_wakes_a_blocked_sender", false);
}

#[test]
fn killed_frame_producer_wakes_a_blocked_receiver() {
    if play_child_role() {
        return;
    }
    let test = "killed_frame_producer_wakes_a_blocked_receiver";
    let sent = 500;
    let name = unique(test);
    let mut port = MessageChannel::create(&name, 64 << 10).unwrap();
    let mut peer = spawn(test, "frame-send-then-hang", &name, sent);
    let pid = peer.pid();
    // More than the ring holds: the child finishes only as this side reads.
    let payloads = Payloads::new(MAX_LEN);
    for i in 0..sent {
        assert_eq!(&*port.recv_timeout(HANG).unwrap(), payloads.get(i));
    }
    peer.expect("@@SENT@@");
    let err = blocked_until_death(test, &mut peer, true, || {}, move || port.recv().err());
    assert_eq!(err, Some(RecvError::PeerDied { pid }));
}

#[test]
fn killed_frame_consumer_wakes_a_blocked_sender() {
    if play_child_role() {
        return;
    }
    let test = "killed_frame_consumer_wakes_a_blocked_sender";
    let taken = 100;
    let name = unique(test);
    let mut port = MessageChannel::create(&name, 4096).unwrap();
    let mut peer = spawn(test, "frame-recv-then-hang", &name, taken);
    let pid = peer.pid();
    let payloads = Payloads::new(MAX_LEN);
    for i in 0..taken {
        port.post_message_timeout(payloads.get(i), HANG).unwrap();
    }
    peer.expect("@@STOPPED@@");
    while port.try_post_message(&[1; 100]).is_ok() {}
    let err = blocked_until_death(
        test,
        &mut peer,
        false,
        || {},
        move || port.post_message(&[2; 100]),
    );
    assert_eq!(err, Err(SendError::PeerDied { pid }));
}

/// The kill lands while messages are still unread: they all arrive, in order, before the
/// death is reported.
#[test]
fn backlog_of_a_killed_producer_is_received_first() {
    if play_child_role() {
        return;
    }
    let test = "backlog_of_a_killed_producer_is_received_first";
    let sent = 3000;
    let name = unique(&format!("{test}-pod"));
    let mut pod = MessageChannel::create_pod::<u64>(&name, sent as usize).unwrap();
    let mut peer = spawn(test, "pod-send-then-hang", &name, sent);
    let pid = peer.pid();
    peer.expect("@@SENT@@");
    peer.kill(true);
    let (received, _) = watchdog("pod backlog", DEATH_NOTICED, move || {
        (0..sent).for_each(|i| assert_eq!(pod.recv(), Ok(i)));
        pod.recv()
    });
    assert_eq!(received, Err(RecvError::PeerDied { pid }));

    // About 300 bytes a frame: all of them fit, so the child never waits.
    let sent = 1500;
    let name = unique(&format!("{test}-frames"));
    let mut frames = MessageChannel::create(&name, 1 << 20).unwrap();
    let mut peer = spawn(test, "frame-send-then-hang", &name, sent);
    let pid = peer.pid();
    peer.expect("@@SENT@@");
    peer.kill(false);
    let (received, _) = watchdog("frame backlog", DEATH_NOTICED, move || {
        let payloads = Payloads::new(MAX_LEN);
        (0..sent).for_each(|i| assert_eq!(&*frames.recv().unwrap(), payloads.get(i)));
        frames.recv().err()
    });
    assert_eq!(received, Some(RecvError::PeerDied { pid }));
}

/// A process that dies before it ever attaches is not a peer: the creator keeps waiting
/// (timeouts, not `PeerDied`), and a later process can still take the free end.
#[test]
fn peer_killed_before_attaching_is_not_an_error() {
    if play_child_role() {
        return;
    }
    let test = "peer_killed_before_attaching_is_not_an_error";
    let name = unique(test);
    let mut port = MessageChannel::create_pod::<u64>(&name, 16).unwrap();
    let mut doomed = spawn(test, "late-opener", &name, 0);
    doomed.expect("@@READY@@");
    doomed.kill(true);
    // Several liveness slices pass inside each timeout.
    let wait = Duration::from_millis(350);
    assert_eq!(port.recv_timeout(wait), Err(RecvError::Timeout));
    let mut filled = 0;
    while port.try_post_message(filled).is_ok() {
        filled += 1;
    }
    assert_eq!(
        port.post_message_timeout(filled, wait),
        Err(SendError::Timeout)
    );

    let mut late = spawn(test, "late-opener", &name, filled);
    late.expect("@@READY@@");
    late.tell("open");
    assert_eq!(port.recv_timeout(HANG), Ok(filled));
    late.expect("@@DONE@@");
    late.finish();
}

/// A child sends, closes its ports and exits; only then does the parent read: everything
/// arrives, followed by `Disconnected` (an orderly close, not a death).
#[test]
fn close_across_processes_drains_then_disconnects() {
    if play_child_role() {
        return;
    }
    let test = "close_across_processes_drains_then_disconnects";
    let name = unique(test);
    let mut pod = MessageChannel::create_pod::<u64>(&format!("{name}-pod"), 512).unwrap();
    let mut frames = MessageChannel::create(&format!("{name}-frames"), 1 << 20).unwrap();
    // All of it fits, so the child never waits for the parent.
    let n = pod.capacity() as u64;
    let mut peer = spawn(test, "send-and-close", &name, n);
    peer.expect("@@CLOSED@@");
    peer.finish();
    for i in 0..n {
        assert_eq!(pod.try_recv(), Ok(i));
    }
    assert_eq!(pod.recv_timeout(HANG), Err(RecvError::Disconnected));
    assert_eq!(pod.post_message(0), Err(SendError::Disconnected));
    let payloads = Payloads::new(MAX_LEN);
    for i in 0..n {
        assert_eq!(&*frames.try_recv().unwrap(), payloads.get(i));
    }
    assert_eq!(
        frames.recv_timeout(HANG).err(),
        Some(RecvError::Disconnected)
    );
    assert_eq!(frames.post_message(b"late"), Err(SendError::Disconnected));
}

/// The creator's port owns the name: once it drops, nobody can open the channel, but the
/// process that joined earlier keeps its mapping and drains it to `Disconnected`.
#[test]
fn creator_drop_unlinks_but_the_opener_keeps_working() {
    if play_child_role() {
        return;
    }
    let test = "creator_drop_unlinks_but_the_opener_keeps_working";
    let name = unique(test);
    let _cleanup = Cleanup(name.clone());
    let sent = 200;
    let mut peer = spawn(test, "creator", &name, sent);
    peer.expect("@@CREATED@@");
    let mut port = MessageChannel::open(&name).unwrap();
    port.post_message(b"hello").unwrap();
    assert_eq!(&*port.recv_timeout(HANG).unwrap(), b"welcome");
    peer.expect("@@DROPPED@@");
    peer.finish();

    assert!(!shm_exists(&name), "the creator's drop unlinked the name");
    assert!(matches!(
        MessageChannel::open(&name),
        Err(ConnectError::Segment(SegmentError::NotFound { .. }))
    ));
    assert!(matches!(
        MessageChannel::open_pod::<u64>(&name),
        Err(ConnectError::Segment(SegmentError::NotFound { .. }))
    ));
    let payloads = Payloads::new(MAX_LEN);
    let mut got = 0;
    while let Ok(f) = port.try_recv() {
        assert_eq!(&*f, payloads.get(got));
        got += 1;
    }
    assert_eq!(got, sent);
    assert_eq!(port.try_recv().err(), Some(RecvError::Disconnected));
    assert_eq!(port.post_message(b"anyone?"), Err(SendError::Disconnected));
}
