//! MPMC rings between really separate processes: two producer and two consumer
//! processes move messages through a named ring, and, many times over, one of them is
//! killed with SIGKILL at a random moment while the others must finish.
//!
//! A test that needs peers re-executes this test binary as
//! `<exe> <test> --exact --nocapture` with `ROLE_VAR` set; every test first calls
//! [`play_child_role`], which plays that role and tells the test to return. Each child
//! logs the tag of every message it sent or received, as it goes, into its own part of
//! a log segment the parent reads afterwards: a killed child's log holds exactly what it
//! got past.
//!
//! Sizes: `RINGPORT_KILL_ROUNDS` (default 20) kills, `RINGPORT_KILL_MESSAGES` (default
//! 2 000, several milliseconds of work, so that most kills land in the middle of it)
//! messages per producer in each of them, and `RINGPORT_MPMC_XPROC` (default
//! 10 000) messages per producer in the plain run.

mod common;
#[path = "common/peer.rs"]
mod peer;

use bytemuck::Zeroable;
use common::{env_count, watchdog, Payloads};
use peer::{announce, Peer, HANG};
use ringport::mpmc;
use ringport::process::ProcessId;
use ringport::segment::Segment;
use ringport::{RecvError, SendError};
use rustix::process::{kill_process, Pid, Signal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "RINGPORT_MPMC_ROLE";
const NAME_VAR: &str = "RINGPORT_MPMC_NAME";
const ID_VAR: &str = "RINGPORT_MPMC_ID";
const COUNT_VAR: &str = "RINGPORT_MPMC_COUNT";

/// What the issue allows survivors after a kill: finished, or a clear error, within 1 s.
const SURVIVOR_LIMIT: Duration = Duration::from_secs(1);

/// How long an ambush tries to catch a member holding a slot.
const AMBUSH: Duration = Duration::from_millis(100);

const KIND_MPMC: u32 = u32::from_le_bytes(*b"MPMC");
const KIND_LOG: u32 = u32::from_le_bytes(*b"tLOG");

/// A message: a tag (`producer << 32 | sequence`) and 4 KiB that the tag determines, so
/// that a torn or misplaced message cannot pass for a real one, and copying it is a
/// fair part of a claim.
type Msg = [u64; 512];

fn msg(tag: u64) -> Msg {
    static PAYLOADS: OnceLock<Payloads> = OnceLock::new();
    let frame = PAYLOADS
        .get_or_init(|| Payloads::new(std::mem::size_of::<Msg>() - 8))
        .get(tag);
    let mut m = Msg::zeroed();
    m[0] = tag;
    bytemuck::bytes_of_mut(&mut m)[8..8 + frame.len()].copy_from_slice(frame);
    m
}

fn check(m: &Msg) -> u64 {
    assert!(*m == msg(m[0]), "torn or foreign message {:#x}", m[0]);
    m[0]
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn unique(test: &str) -> String {
    format!("rp-mpmc-xproc-{}-{test}", std::process::id())
}

/// Blocks until the parent writes a line.
fn await_parent() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("a child gets {name}"))
}

/// The children of a run: producers 0 and 1, then consumers 0 and 1.
const CREW: usize = 4;

/// The log segment of a ring: for each member, a count, then up to `2 × count` tags.
struct Log {
    seg: Segment,
    per_member: usize,
}

impl Log {
    fn name(ring: &str) -> String {
        format!("{ring}-log")
    }

    fn create(ring: &str, count: u64) -> Log {
        let per_member = 1 + 2 * count as usize;
        let params = [count, 0, 0, 0, 0, 0];
        let seg = Segment::create(&Log::name(ring), KIND_LOG, params, CREW * per_member * 8);
        Log {
            seg: seg.unwrap(),
            per_member,
        }
    }

    fn open(ring: &str) -> Log {
        let seg = Segment::open(&Log::name(ring), KIND_LOG).unwrap();
        let per_member = 1 + 2 * seg.params()[0] as usize;
        Log { seg, per_member }
    }

    fn word(&self, member: usize, index: usize) -> &AtomicU64 {
        assert!(member < CREW && index < self.per_member);
        let offset = (member * self.per_member + index) * 8;
        // SAFETY: the offset is 8-aligned and inside the payload (checked above), which
        // is 128-aligned and mapped for as long as `self.seg` lives; every access to it
        // is atomic.
        unsafe { AtomicU64::from_ptr(self.seg.payload().as_ptr().add(offset).cast()) }
    }

    /// Appends `tag` to `member`'s log (which only that member writes).
    fn push(&self, member: usize, tag: u64) {
        let n = self.word(member, 0).load(Ordering::Relaxed) as usize;
        self.word(member, 1 + n).store(tag, Ordering::Relaxed);
        // Release: whoever sees the count sees the tag.
        self.word(member, 0).store(n as u64 + 1, Ordering::Release);
    }

    fn read(&self, member: usize) -> Vec<u64> {
        let n = self.word(member, 0).load(Ordering::Acquire) as usize;
        (1..=n)
            .map(|i| self.word(member, i).load(Ordering::Relaxed))
            .collect()
    }
}

/// If this process is a child, plays its role and returns true: the test function must
/// then return without doing its own part.
fn play_child_role() -> bool {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return false;
    };
    let name = var(NAME_VAR);
    let id: u64 = var(ID_VAR).parse().unwrap();
    let count: u64 = var(COUNT_VAR).parse().unwrap();
    let log = Log::open(&name);
    let (tx, rx) = mpmc::open::<Msg>(&name).unwrap();
    // Builds the payload pool now rather than in the first few milliseconds of the run.
    check(&msg(0));
    match role.as_str() {
        "producer" => {
            drop(rx);
            announce("@@READY@@", "");
            assert_eq!(await_parent(), "go");
            for i in 0..count {
                let tag = id << 32 | i;
                // Producer 0 blocks, producer 1 polls: both kinds of waiting recover.
                if id == 0 {
                    tx.send_timeout(msg(tag), HANG).unwrap();
                } else {
                    loop {
                        match tx.try_send(msg(tag)) {
                            Ok(()) => break,
                            Err(SendError::Full) => thread::yield_now(),
                            Err(e) => panic!("producer {id}: {e}"),
                        }
                    }
                }
                log.push(id as usize, tag);
            }
            announce("@@SENT@@", count);
        }
        "consumer" => {
            drop(tx);
            announce("@@READY@@", "");
            assert_eq!(await_parent(), "go");
            let mut last = [None::<u64>; 2];
            let mut got = 0u64;
            loop {
                // Consumer 0 with a timeout (as a hang guard), consumer 1 without.
                let r = if id == 0 {
                    rx.recv_timeout(HANG)
                } else {
                    rx.recv()
                };
                match r {
                    Ok(m) => {
                        let tag = check(&m);
                        let (p, i) = ((tag >> 32) as usize, tag & 0xffff_ffff);
                        assert!(last[p].is_none_or(|l| l < i), "producer {p} out of order");
                        last[p] = Some(i);
                        log.push(2 + id as usize, tag);
                        got += 1;
                    }
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("consumer {id}: {e}"),
                }
            }
            announce("@@DONE@@", got);
        }
        other => panic!("unknown child role {other:?}"),
    }
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
}

/// Member `i` of a crew: its role and its id among its kind.
fn member(i: usize) -> (Role, u64) {
    let role = if i < 2 {
        Role::Producer
    } else {
        Role::Consumer
    };
    (role, i as u64 % 2)
}

/// Two producers and two consumers on the ring `name` (whose log exists), with `count`
/// messages per producer to move, opened and waiting for "go"; and their record tokens.
fn launch(test: &str, name: &str, count: u64) -> (Vec<Peer>, Vec<u64>) {
    let count = count.to_string();
    let mut peers: Vec<Peer> = (0..CREW)
        .map(|i| {
            let (role, id) = member(i);
            let role = match role {
                Role::Producer => "producer",
                Role::Consumer => "consumer",
            };
            let id = id.to_string();
            Peer::spawn(
                test,
                &[
                    (ROLE_VAR, role),
                    (NAME_VAR, name),
                    (ID_VAR, &id),
                    (COUNT_VAR, &count),
                ],
            )
        })
        .collect();
    let tokens = peers
        .iter()
        .map(|peer| {
            let id = ProcessId::of(peer.pid()).expect("the child runs");
            (id.start_time << 22) | u64::from(id.pid)
        })
        .collect();
    for peer in &mut peers {
        peer.expect("@@READY@@");
    }
    // Consumers first, so that producers find them receiving.
    for i in [2, 3, 0, 1] {
        peers[i].tell("go");
    }
    (peers, tokens)
}

/// Waits for surviving member `i` to report and exit successfully.
fn finish(i: usize, mut peer: Peer) {
    peer.expect(match member(i).0 {
        Role::Producer => "@@SENT@@",
        Role::Consumer => "@@DONE@@",
    });
    peer.finish();
}

/// Checks the logs against the guarantees, given which member (if any) was killed:
/// every message received at most once and whole (the consumers checked), in each
/// producer's order; a surviving producer's messages all received, but for at most the
/// one a killed consumer took with it; a killed producer's received messages exactly
/// those it finished sending, and perhaps the one it was sending.
fn check_logs(log: &Log, victim: Option<usize>, count: u64) {
    let mut received: Vec<u64> = Vec::new();
    for c in 2..CREW {
        let got = log.read(c);
        let mut last = [None::<u64>; 2];
        for &tag in &got {
            let (p, i) = ((tag >> 32) as usize, tag & 0xffff_ffff);
            assert!(
                p < 2 && i < count,
                "consumer {c} logged a foreign tag {tag:#x}"
            );
            assert!(last[p].is_none_or(|l| l < i), "producer {p} out of order");
            last[p] = Some(i);
        }
        received.extend(got);
    }
    received.sort_unstable();
    let all = received.len();
    received.dedup();
    assert_eq!(received.len(), all, "a message was received twice");
    let mut lost = 0;
    for p in 0..2 {
        let sent = log.read(p);
        let arrived: Vec<u64> = received
            .iter()
            .filter(|&&t| t >> 32 == p as u64)
            .map(|&t| t & 0xffff_ffff)
            .collect();
        assert!(
            sent.iter()
                .copied()
                .eq((0..sent.len() as u64).map(|i| (p as u64) << 32 | i)),
            "producer {p} logged its sends out of order"
        );
        if victim == Some(p) {
            assert!(
                arrived.iter().copied().eq(0..arrived.len() as u64),
                "the killed producer's messages that arrived are not a prefix: {arrived:?}"
            );
            assert!(
                arrived.len() == sent.len() || arrived.len() == sent.len() + 1,
                "the killed producer sent {} and {} arrived",
                sent.len(),
                arrived.len()
            );
        } else {
            assert_eq!(sent.len() as u64, count, "producer {p} finished");
            lost += count - arrived.len() as u64;
        }
    }
    let allowed = u64::from(victim.is_some_and(|v| member(v).0 == Role::Consumer));
    assert!(
        lost <= allowed,
        "{lost} messages lost, {allowed} allowed (the killed consumer's last)"
    );
}

/// The slots (writing, reading) that the process with record token `token` holds.
fn held_by(seg: &Segment, token: u64) -> (u64, u64) {
    let p = seg.params();
    let (capacity, records) = (p[0] as usize, p[3] as usize);
    let payload_off = (p[2] as usize).max(8);
    let stride = (payload_off + p[1] as usize).next_multiple_of(payload_off);
    let slots_off = (640 + 16 * records).next_multiple_of(128);
    assert_eq!(seg.payload_len(), slots_off + capacity * stride);
    let word = |offset: usize| {
        assert!(offset % 8 == 0 && offset + 8 <= seg.payload_len());
        // SAFETY: the offset is 8-aligned and inside the payload (checked above), which
        // is 128-aligned and mapped for as long as `seg` lives; every access to it is
        // atomic.
        unsafe { AtomicU64::from_ptr(seg.payload().as_ptr().add(offset).cast()) }
            .load(Ordering::Acquire)
    };
    let Some(record) = (0..records).find(|&r| word(640 + 16 * r) == token) else {
        return (0, 0);
    };
    let owner = record as u64 + 1;
    let mut held = (0, 0);
    for slot in 0..capacity {
        let s = word(slots_off + slot * stride);
        if s & 0xffff == owner {
            match (s >> 16) & 3 {
                1 => held.0 += 1,
                3 => held.1 += 1,
                _ => {}
            }
        }
    }
    held
}

fn signal(pid: u32, signal: Signal) {
    let pid = Pid::from_raw(pid as i32).expect("a child's pid");
    // The children are reaped only by the test, after this: the pids are theirs.
    kill_process(pid, signal).unwrap();
}

/// The process state letter from `/proc/<pid>/stat`, if the process still exists.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Stops every process of `pids` and returns once each is stopped (or has exited), so
/// that their slots hold still.
fn freeze(pids: &[u32]) {
    for &pid in pids {
        signal(pid, Signal::STOP);
    }
    let start = Instant::now();
    for &pid in pids {
        while !matches!(proc_state(pid), Some('T' | 'Z') | None) {
            assert!(start.elapsed() < HANG, "child {pid} does not stop");
            thread::yield_now();
        }
    }
}

fn thaw(pids: &[u32]) {
    for &pid in pids {
        signal(pid, Signal::CONT);
    }
}

/// splitmix64, seeded from the clock: when each kill lands and who is killed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0) % n
    }
}

/// Two producer and two consumer processes move messages through a named ring: every
/// message arrives once, whole, and in each producer's order.
#[test]
fn two_producer_and_two_consumer_processes() {
    if play_child_role() {
        return;
    }
    let test = "two_producer_and_two_consumer_processes";
    let count = env_count("RINGPORT_MPMC_XPROC", 10_000);
    let name = unique(test);
    let ((), took) = watchdog(test, HANG * 2, move || {
        let log = Log::create(&name, count);
        let ring = mpmc::create::<Msg>(&name, 16).unwrap();
        let (peers, _) = launch(test, &name, count);
        // The children hold the ring now; the parent takes no part.
        drop(ring);
        for (i, peer) in peers.into_iter().enumerate() {
            finish(i, peer);
        }
        check_logs(&log, None, count);
    });
    eprintln!("{} messages between 4 processes in {took:?}", 2 * count);
}

/// The crash test: in each round two producer and two consumer processes start
/// on a fresh ring of 8 slots, and one of them (producers and consumers in turn) is
/// SIGKILLed 0 to 3 ms later; in every other round of each kind, the parent then stops
/// them all, again and again, until it catches one of the kind holding a slot, and
/// kills that one. The survivors all finish within a second of the kill, and the logs
/// show nothing received twice, nothing a survivor sent lost (but the one message a
/// killed consumer may take with it), and a killed producer's messages arriving as
/// exactly what it sent.
#[test]
fn sigkilled_participant_never_wedges_survivors() {
    if play_child_role() {
        return;
    }
    let test = "sigkilled_participant_never_wedges_survivors";
    let rounds = env_count("RINGPORT_KILL_ROUNDS", 20);
    let count = env_count("RINGPORT_KILL_MESSAGES", 2_000);
    let limit = HANG + Duration::from_secs(rounds);
    let ((), took) = watchdog(test, limit, move || {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("seed {seed:#x}");
        let mut rng = Rng(seed);
        let mut slowest = Duration::ZERO;
        // Kills that caught the victim holding a slot (writing, reading), and that
        // landed while it was at work: a producer with sends left, a consumer that had
        // received.
        let mut caught = [0u64; 2];
        let mut midway = 0;
        for round in 0..rounds {
            let name = unique(&format!("kill-{round}"));
            let log = Log::create(&name, count);
            let ring = mpmc::create::<Msg>(&name, 8).unwrap();
            let raw = Segment::open(&name, KIND_MPMC).unwrap();
            let (mut peers, tokens) = launch(test, &name, count);
            drop(ring);
            // Producers and consumers in turn.
            let kind = (round % 2) as usize * 2;
            thread::sleep(Duration::from_micros(rng.below(3000)));
            // Every other kill of each kind is an ambush: so that kills inside a claim
            // are common rather than lucky, the parent stops the whole crew, and kills
            // a member of the kind if it is caught holding a slot; if none is, it lets
            // them run a little and tries again, for a while.
            let ambush = round % 4 >= 2;
            let pids: Vec<u32> = peers.iter().map(Peer::pid).collect();
            let mut victim = kind + rng.below(2) as usize;
            if ambush {
                let until = Instant::now() + AMBUSH;
                loop {
                    freeze(&pids);
                    let holder = (kind..kind + 2).find(|&i| held_by(&raw, tokens[i]) != (0, 0));
                    if let Some(holder) = holder {
                        victim = holder;
                        break;
                    }
                    if Instant::now() >= until {
                        break;
                    }
                    thaw(&pids);
                    thread::sleep(Duration::from_micros(rng.below(300)));
                }
            }
            let killed_at = peers[victim].kill(true);
            let held = held_by(&raw, tokens[victim]);
            if ambush {
                let survivors: Vec<u32> = pids
                    .iter()
                    .copied()
                    .filter(|&p| p != pids[victim])
                    .collect();
                thaw(&survivors);
            }
            caught[0] += held.0;
            caught[1] += held.1;
            let done = log.read(victim).len() as u64;
            midway += u64::from(match member(victim).0 {
                Role::Producer => done < count,
                Role::Consumer => done > 0,
            });
            for (i, peer) in peers.into_iter().enumerate() {
                if i != victim {
                    finish(i, peer);
                }
            }
            let recovery = killed_at.elapsed();
            slowest = slowest.max(recovery);
            assert!(
                recovery <= SURVIVOR_LIMIT,
                "round {round}: survivors took {recovery:?} after {:?} {} was killed",
                member(victim).0,
                member(victim).1
            );
            check_logs(&log, Some(victim), count);
        }
        eprintln!(
            "{rounds} kills, {midway} while the victim was at work; it was caught holding \
             {} writing and {} reading slots; the slowest survivors finished {slowest:?} \
             after the kill",
            caught[0], caught[1]
        );
    });
    eprintln!("{rounds} rounds in {took:?}");
}
