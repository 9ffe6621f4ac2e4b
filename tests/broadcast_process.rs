//! Broadcast rings and `BroadcastChannel` between really separate processes: a
//! subscriber process killed without reading stops holding publishers back, publisher
//! processes killed at random points in a write leave their positions skipped while the
//! parent's subscriber and publisher go on, and channel objects in child processes hear
//! the parent and each other (never themselves), within their subscriber limit.
//!
//! A test that needs a peer re-executes this test binary as
//! `<exe> <test> --exact --nocapture` with `ROLE_VAR` set; every test first calls
//! [`play_child_role`], which plays that role and tells the test to return.
//!
//! Sizes: `RINGPORT_KILL_ROUNDS` (default 20) kills of a publisher under each overflow
//! policy.

mod common;
#[path = "common/peer.rs"]
mod peer;

use common::{env_count, watchdog, Payloads};
use peer::{announce, Peer, HANG};
use ringport::broadcast::{
    self, BroadcastChannel, BroadcastOptions, ChannelError, Overflow, SubscribeError,
};
use ringport::process::ProcessId;
use ringport::segment::{Segment, SegmentError};
use ringport::{RecvError, SendError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "RINGPORT_BC_ROLE";
const NAME_VAR: &str = "RINGPORT_BC_NAME";
const NAMESPACE_VAR: &str = "RINGPORT_NAMESPACE";

/// What the issue allows survivors after a kill: finished, or a clear error, within 1 s.
const SURVIVOR_LIMIT: Duration = Duration::from_secs(1);

const KIND_BROADCAST: u32 = u32::from_le_bytes(*b"BCST");

fn kill_rounds() -> u64 {
    env_count("RINGPORT_KILL_ROUNDS", 20)
}

/// A ring or channel name no other test, and no concurrent run of this binary, uses.
fn unique(test: &str) -> String {
    format!("rp-bc-xproc-{}-{test}", std::process::id())
}

fn spawn(test: &str, role: &str, name: &str, namespace: &str) -> Peer {
    Peer::spawn(
        test,
        &[
            (ROLE_VAR, role),
            (NAME_VAR, name),
            (NAMESPACE_VAR, namespace),
        ],
    )
}

/// Blocks until the parent writes a line (or closes the pipe: then "").
fn await_parent() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// If this process is a child, plays its role and returns true: the test function must
/// then return without doing its own part.
fn play_child_role() -> bool {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return false;
    };
    let name = std::env::var(NAME_VAR).expect("a child gets a name");
    match role.as_str() {
        "idle-subscriber" => idle_subscriber(&name),
        "publisher" => publisher_child(&name),
        "open-refused" => open_refused(&name),
        "channel-poster" => channel_poster(&name),
        "channel-listener" => channel_listener(&name),
        "channel-holder" => channel_holder(&name),
        "channel-refused" => channel_refused(&name),
        other => panic!("unknown child role {other:?}"),
    }
    true
}

fn token(pid: u32) -> u64 {
    let id = ProcessId::of(pid).expect("the child runs");
    (id.start_time << 22) | u64::from(id.pid)
}

// ---------------------------------------------------------------------------------------
// Dead subscribers under backpressure.

/// Subscribes and never reads, until killed.
fn idle_subscriber(name: &str) {
    let p = broadcast::open(name).unwrap();
    let _s = p.subscribe().unwrap();
    announce("@@SUBSCRIBED@@", "");
    await_parent();
    unreachable!("the parent kills this process");
}

/// A child subscribes to a backpressure ring and is SIGKILLed without reading (left a
/// zombie, then reaped): a publisher blocked by its full ring goes on within a second, and
/// its subscriber record is free again.
#[test]
fn dead_subscriber_stops_holding_publishers_back() {
    if play_child_role() {
        return;
    }
    let test = "dead_subscriber_stops_holding_publishers_back";
    let name = unique("dead-subscriber");
    let options = BroadcastOptions {
        capacity: 8,
        max_message: 8,
        overflow: Overflow::Backpressure,
        max_subscribers: 2,
        ..Default::default()
    };
    let p = broadcast::create(&name, options).unwrap();
    let ((), _) = watchdog(test, HANG * 2, move || {
        let mut mine = p.subscribe().unwrap();
        let mut next = 0u64;
        for reap in [false, true] {
            let mut child = spawn(test, "idle-subscriber", &name, "");
            child.expect("@@SUBSCRIBED@@");
            assert_eq!(
                p.subscribe().map(|_| ()),
                Err(SubscribeError::TooManySubscribers { max: 2 })
            );
            // Fill the ring; this process's subscriber keeps up, the child's does not.
            for _ in 0..8 {
                p.try_publish(&next.to_le_bytes()).unwrap();
                assert_eq!(mine.try_recv().unwrap(), next.to_le_bytes());
                next += 1;
            }
            assert_eq!(p.try_publish(b"full"), Err(SendError::Full));
            let killed = child.kill(reap);
            let r = p.publish_timeout(&next.to_le_bytes(), SURVIVOR_LIMIT);
            let took = killed.elapsed();
            assert!(r.is_ok(), "reap={reap}: {r:?} after {took:?}");
            eprintln!("reap={reap}: the blocked publish went on {took:?} after the kill");
            assert_eq!(mine.try_recv().unwrap(), next.to_le_bytes());
            next += 1;
            // The dead subscriber's record is free: a new one fits, and holds nothing up.
            let extra = p.subscribe().unwrap();
            drop(extra);
        }
    });
}

// ---------------------------------------------------------------------------------------
// Publishers killed mid-write.

/// The parent's own publisher, in the messages' `who` field.
const SURVIVOR: u64 = 0;

/// A big message that proves it arrived whole: publisher and sequence number up front,
/// a length that follows from them, every body byte one value, and their check word
/// at the end.
fn stamped(who: u64, seq: u64, max: usize) -> Vec<u8> {
    let h = mix((who << 40) ^ seq);
    let len = max / 2 + (h % (max as u64 / 2 - 23)) as usize;
    let mut m = vec![h as u8; len];
    m[..8].copy_from_slice(&who.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    m[len - 8..].copy_from_slice(&h.to_le_bytes());
    m
}

fn check(m: &[u8], max: usize) -> (u64, u64) {
    assert!(m.len() >= 24, "a {}-byte message", m.len());
    let who = u64::from_le_bytes(m[..8].try_into().unwrap());
    let seq = u64::from_le_bytes(m[8..16].try_into().unwrap());
    assert!(m == stamped(who, seq, max), "torn message {who} #{seq}");
    (who, seq)
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const BIG: usize = 16 << 10;

/// Publishes big stamped messages as its pid until killed.
fn publisher_child(name: &str) {
    let p = broadcast::open(name).unwrap();
    let who = u64::from(std::process::id());
    for seq in 0.. {
        p.publish(&stamped(who, seq, BIG)).unwrap();
        if seq == 0 {
            announce("@@PUBLISHING@@", "");
        }
    }
}

/// splitmix64, seeded from the clock: where in a write each kill lands.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0) % n
    }
}

/// A raw mapping of the ring, to see what a killed publisher left before anyone
/// repairs it. Offsets are ARCHITECTURE.md's ("Broadcast ring").
struct Raw {
    seg: Segment,
    options: BroadcastOptions,
}

impl Raw {
    fn word(&self, offset: usize) -> u64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.seg.payload_len());
        // SAFETY: the offset is 8-aligned and inside the payload (checked above), which
        // is mapped for as long as `self.seg` lives; every access to it is atomic.
        let word = unsafe { AtomicU64::from_ptr(self.seg.payload().as_ptr().add(offset).cast()) };
        word.load(Ordering::Acquire)
    }

    /// The owner number (record index + 1) of the publisher process `token`.
    fn owner_of(&self, token: u64) -> Option<u64> {
        (0..self.options.max_publisher_processes)
            .find(|&i| self.word(512 + 16 * i) == token)
            .map(|i| i as u64 + 1)
    }

    /// Slots whose state is `WRITING` by `owner`.
    fn writing(&self, owner: u64) -> usize {
        let o = &self.options;
        let subs_off = (512 + 16 * o.max_publisher_processes).next_multiple_of(128);
        let slots_off = subs_off + 128 * o.max_subscribers;
        let slot_bytes = (2 + o.max_message.div_ceil(8)) * 8;
        (0..o.capacity)
            .map(|i| self.word(slots_off + i * slot_bytes))
            .filter(|&s| s & 0xffff == owner && (s >> 16) & 3 == 1)
            .count()
    }
}

/// What the parent's subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    received: u64,
    lagged: u64,
    /// Per publisher: one past its last sequence number seen.
    next: HashMap<u64, u64>,
}

/// Receives until disconnected: every message whole; the survivor's contiguous and
/// reported on `markers`; each child's in order (contiguous unless `lossy`).
fn read_all(
    mut s: broadcast::Subscriber,
    lossy: bool,
    markers: mpsc::Sender<(u64, Instant)>,
) -> Seen {
    let mut seen = Seen::default();
    loop {
        match s.recv_timeout(HANG) {
            Ok(m) => {
                let (who, seq) = check(m, BIG);
                let next = seen.next.entry(who).or_insert(0);
                if lossy && who != SURVIVOR {
                    assert!(seq >= *next, "{who}: #{seq} after #{}", *next - 1);
                } else {
                    assert_eq!(seq, *next, "{who}: a message lost or repeated");
                }
                *next = seq + 1;
                seen.received += 1;
                if who == SURVIVOR {
                    markers.send((seq, Instant::now())).unwrap();
                }
            }
            Err(RecvError::Lagged(n)) if lossy => seen.lagged += n,
            Err(RecvError::Disconnected) => return seen,
            Err(e) => panic!("after {} messages: {e}", seen.received),
        }
    }
}

/// Kill rounds under one policy; returns how many kills left a slot mid-write.
fn killed_publishers(test: &str, overflow: Overflow) -> u64 {
    let name = unique(&format!("killed-publisher-{overflow:?}"));
    let options = BroadcastOptions {
        capacity: 16,
        max_message: BIG,
        overflow,
        // Fewer records than rounds: the dead children's records must be reused.
        max_publisher_processes: 4,
        ..Default::default()
    };
    let survivor = broadcast::create(&name, options).unwrap();
    let raw = Raw {
        seg: Segment::open(&name, KIND_BROADCAST).unwrap(),
        options,
    };
    let (markers, marked) = mpsc::channel();
    let lossy = overflow == Overflow::Overwrite;
    let sub = survivor.subscribe().unwrap();
    let reader = thread::spawn(move || read_all(sub, lossy, markers));
    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64);
    let (mut caught, mut slowest) = (0, Duration::ZERO);
    let rounds = kill_rounds();
    for round in 0..rounds {
        let mut child = spawn(test, "publisher", &name, "");
        child.expect("@@PUBLISHING@@");
        let owner = raw
            .owner_of(token(child.pid()))
            .expect("the child has a record");
        thread::sleep(Duration::from_micros(rng.below(2000)));
        let killed = child.kill(round % 2 == 0);
        caught += u64::from(raw.writing(owner) > 0);
        // The survivor publishes past the dead position, and the subscriber gets there.
        let r = survivor.publish_timeout(&stamped(SURVIVOR, round, BIG), SURVIVOR_LIMIT);
        assert!(r.is_ok(), "round {round}: {r:?}");
        let (seq, at) = marked.recv_timeout(HANG).expect("the survivor's message");
        assert_eq!(seq, round);
        let took = at.saturating_duration_since(killed);
        assert!(
            took < SURVIVOR_LIMIT,
            "round {round}: the survivor's message took {took:?} after the kill"
        );
        slowest = slowest.max(took);
    }
    drop(survivor);
    let seen = reader.join().unwrap();
    let children = seen.next.len() as u64 - 1;
    eprintln!(
        "{overflow:?}: {rounds} kills, {caught} mid-write; slowest recovery {slowest:?}; \
         received {} from {children} children, lagged {}",
        seen.received, seen.lagged
    );
    assert_eq!(seen.next[&SURVIVOR], rounds);
    assert_eq!(children, rounds, "every child published");
    caught
}

/// Publisher processes are SIGKILLed at random points while writing big messages, under
/// both policies. The parent's subscriber never sees a torn message, passes the dead
/// positions, and receives the parent's own message published after each kill within a
/// second; the dead children's records are reused.
#[test]
fn killed_publishers_leave_their_positions_skipped() {
    if play_child_role() {
        return;
    }
    let test = "killed_publishers_leave_their_positions_skipped";
    let rounds = kill_rounds();
    let (caught, _) = watchdog(test, HANG + Duration::from_secs(2 * rounds), move || {
        killed_publishers(test, Overflow::Overwrite)
            + killed_publishers(test, Overflow::Backpressure)
    });
    // A child spends most of its time inside a write: with a handful of rounds, some
    // kill surely lands inside one.
    if rounds >= 10 {
        assert!(
            caught > 0,
            "no kill landed inside a write in {rounds} rounds"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Publisher records.

/// Opens the ring and reports why it could not.
fn open_refused(name: &str) {
    let e = broadcast::open(name).expect_err("every publisher record is taken");
    match e {
        SegmentError::Io { source, .. } => announce("@@REFUSED@@", source.kind()),
        other => panic!("{other:?}"),
    }
}

/// A ring for one publisher process refuses a second process, with a typed error.
#[test]
fn publisher_records_are_limited_per_process() {
    if play_child_role() {
        return;
    }
    let test = "publisher_records_are_limited_per_process";
    let name = unique("publisher-records");
    let options = BroadcastOptions {
        max_publisher_processes: 1,
        ..Default::default()
    };
    let p = broadcast::create(&name, options).unwrap();
    // Any number of handles in this process share its one record.
    let _more = (broadcast::open(&name).unwrap(), p.clone());
    let mut child = spawn(test, "open-refused", &name, "");
    let kind = child.expect("@@REFUSED@@");
    assert_eq!(kind, format!("{}", std::io::ErrorKind::QuotaExceeded));
    child.finish();
}

// ---------------------------------------------------------------------------------------
// BroadcastChannel across processes.

/// Joins the channel, posts when told, and stays until the parent lets go.
fn channel_poster(name: &str) {
    let mut ch = BroadcastChannel::new(name).unwrap();
    announce("@@JOINED@@", "");
    assert_eq!(await_parent(), "post");
    ch.post_message(format!("hello from {}", std::process::id()).as_bytes())
        .unwrap();
    // Never delivered to itself.
    assert!(matches!(
        ch.try_recv(),
        Err(ChannelError::Recv(RecvError::Empty))
    ));
    announce("@@POSTED@@", "");
    await_parent();
}

/// Joins, hears the parent, answers, and hears its sibling's answer (never its own).
fn channel_listener(name: &str) {
    let mut ch = BroadcastChannel::new(name).unwrap();
    announce("@@JOINED@@", "");
    let heard = String::from_utf8(ch.recv_timeout(HANG).unwrap().to_vec()).unwrap();
    announce("@@HEARD@@", &heard);
    let payloads = Payloads::new(200);
    let me = std::process::id();
    let mut answer = format!("ack {me} ").into_bytes();
    answer.extend_from_slice(payloads.get(u64::from(me)));
    ch.post_message(&answer).unwrap();
    let sibling = ch.recv_timeout(HANG).unwrap().to_vec();
    let text = String::from_utf8_lossy(&sibling);
    let pid: u32 = text.split(' ').nth(1).unwrap().parse().unwrap();
    assert_ne!(pid, me, "heard its own answer");
    let prefix = format!("ack {pid} ").len();
    assert_eq!(&sibling[prefix..], payloads.get(u64::from(pid)));
    announce("@@SIBLING@@", pid);
    await_parent();
}

/// A child posts and the parent hears it; the parent posts and two children hear it,
/// then hear each other's answers, never their own. The namespace reaches the children
/// through `RINGPORT_NAMESPACE`; after everyone leaves, the name is gone.
#[test]
fn channel_between_processes() {
    if play_child_role() {
        return;
    }
    let test = "channel_between_processes";
    let (ns, name) = (format!("rpx{}", std::process::id()), unique("channel"));
    let file = format!("/dev/shm/bc-{ns}-{name}");
    let ((), _) = watchdog(test, HANG * 2, move || {
        let mut me =
            BroadcastChannel::with_options(&ns, &name, BroadcastOptions::default()).unwrap();
        let mut poster = spawn(test, "channel-poster", &name, &ns);
        poster.expect("@@JOINED@@");
        poster.tell("post");
        poster.expect("@@POSTED@@");
        let heard = String::from_utf8(me.recv_timeout(HANG).unwrap().to_vec()).unwrap();
        assert_eq!(heard, format!("hello from {}", poster.pid()));
        poster.finish();

        let mut listeners = [
            spawn(test, "channel-listener", &name, &ns),
            spawn(test, "channel-listener", &name, &ns),
        ];
        for l in &mut listeners {
            l.expect("@@JOINED@@");
        }
        me.post_message(b"to everyone").unwrap();
        let pids: Vec<u32> = listeners.iter().map(Peer::pid).collect();
        for l in &mut listeners {
            assert_eq!(l.expect("@@HEARD@@"), "to everyone");
        }
        let mut acks = Vec::new();
        for _ in 0..2 {
            let m = me.recv_timeout(HANG).unwrap().to_vec();
            let text = String::from_utf8_lossy(&m);
            acks.push(text.split(' ').nth(1).unwrap().parse::<u32>().unwrap());
        }
        acks.sort_unstable();
        let mut expected = pids.clone();
        expected.sort_unstable();
        assert_eq!(acks, expected);
        for (i, l) in listeners.iter_mut().enumerate() {
            assert_eq!(l.expect("@@SIBLING@@"), pids[1 - i].to_string());
        }
        assert!(std::path::Path::new(&file).exists());
        for l in listeners {
            l.finish();
        }
        me.close();
        assert!(!std::path::Path::new(&file).exists(), "the last user left");
    });
}

/// Joins and holds the channel until killed.
fn channel_holder(name: &str) {
    let _ch = BroadcastChannel::new(name).unwrap();
    announce("@@JOINED@@", "");
    await_parent();
    unreachable!("the parent kills this process");
}

/// Tries to join a full channel and reports the error.
fn channel_refused(name: &str) {
    match BroadcastChannel::new(name) {
        Err(ChannelError::Subscribe(SubscribeError::TooManySubscribers { max })) => {
            announce("@@REFUSED@@", max)
        }
        other => panic!("{other:?}"),
    }
}

/// A channel made for two objects refuses a third, in this process and in another;
/// an object whose process was killed frees its place for the next joiner; and a
/// channel whose users all died is reused by the next joiner and removed by its last.
#[test]
fn channel_subscriber_limit_and_dead_objects_across_processes() {
    if play_child_role() {
        return;
    }
    let test = "channel_subscriber_limit_and_dead_objects_across_processes";
    let (ns, name) = (
        format!("rpx{}", std::process::id()),
        unique("channel-limit"),
    );
    let file = format!("/dev/shm/bc-{ns}-{name}");
    let options = BroadcastOptions {
        max_subscribers: 2,
        ..Default::default()
    };
    let ((), _) = watchdog(test, HANG * 2, move || {
        let mut me = BroadcastChannel::with_options(&ns, &name, options).unwrap();
        let mut holder = spawn(test, "channel-holder", &name, &ns);
        holder.expect("@@JOINED@@");
        assert!(matches!(
            BroadcastChannel::with_options(&ns, &name, options),
            Err(ChannelError::Subscribe(
                SubscribeError::TooManySubscribers { max: 2 }
            ))
        ));
        let mut refused = spawn(test, "channel-refused", &name, &ns);
        assert_eq!(refused.expect("@@REFUSED@@"), "2");
        refused.finish();

        holder.kill(true);
        let mut other = BroadcastChannel::with_options(&ns, &name, options).unwrap();
        me.post_message(b"after the death").unwrap();
        assert_eq!(other.recv_timeout(HANG).unwrap(), b"after the death");
        drop((me, other));
        assert!(!std::path::Path::new(&file).exists());

        // Every user dies: the name stays, the next joiner reaps the dead and works,
        // and its leaving removes the name.
        let mut holder = spawn(test, "channel-holder", &name, &ns);
        holder.expect("@@JOINED@@");
        holder.kill(true);
        assert!(std::path::Path::new(&file).exists());
        let mut a = BroadcastChannel::with_options(&ns, &name, options).unwrap();
        let mut b = BroadcastChannel::with_options(&ns, &name, options).unwrap();
        a.post_message(b"on the old ring").unwrap();
        assert_eq!(b.recv_timeout(HANG).unwrap(), b"on the old ring");
        drop((a, b));
        assert!(!std::path::Path::new(&file).exists(), "the last user left");
    });
}
