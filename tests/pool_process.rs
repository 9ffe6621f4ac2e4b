//! Buffer pools between really separate processes, and the crash test: a process
//! SIGKILLed while it holds buffers, has buffers in flight and has shared buffers over a
//! broadcast ring (and a subscriber process killed while it holds shared references)
//! leaves a pool that `reclaim` makes whole again, with every handle of the dead sender
//! refused as stale, and what a live receiver took before the kill still its own.
//!
//! A test that needs peers re-executes this test binary as
//! `<exe> <test> --exact --nocapture` with `ROLE_VAR` set; every test first calls
//! [`play_child_role`], which plays that role and tells the test to return.
//!
//! Sizes: `RINGPORT_KILL_ROUNDS` (default 5) rounds of a kill at a random moment.

mod common;
#[path = "common/peer.rs"]
mod peer;
#[path = "common/raw_handle.rs"]
mod raw_handle;

use common::{env_count, watchdog, Payloads};
use peer::{announce, Peer, HANG};
use raw_handle::{forge, raw};
use ringport::broadcast::{self, BroadcastOptions};
use ringport::mpmc;
use ringport::pool::{
    BufferHandle, BufferPool, BufferPublisher, BufferRecvError, BufferSubscriber, LoanError,
    PoolOptions, SharedBuffer, TransferError,
};
use ringport::process::ProcessId;
use ringport::{RecvError, SendError};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

const ROLE_VAR: &str = "RINGPORT_POOL_ROLE";
const NAME_VAR: &str = "RINGPORT_POOL_NAME";
/// For a holder: how many buffers it holds, sends and shares (`k,m,s`); for a subscriber:
/// how many shared buffers it takes; for a churner: its seed.
const ARG_VAR: &str = "RINGPORT_POOL_ARG";

/// Tags of what each side writes, in the top bits: a buffer of one never passes for the
/// other's.
const HOLDER: u64 = 1 << 48;
const CHURNER: u64 = 2 << 48;
const PARENT: u64 = 3 << 48;
const ECHO: u64 = 4 << 48;

fn payloads() -> &'static Payloads {
    static PAYLOADS: OnceLock<Payloads> = OnceLock::new();
    PAYLOADS.get_or_init(|| Payloads::new(3000))
}

/// Writes `tag` and then the frame it determines, so that any process can check every
/// byte from the buffer alone.
fn stamp(buf: &mut [u8], tag: u64) {
    let frame = payloads().get(tag);
    buf[..8].copy_from_slice(&tag.to_le_bytes());
    buf[8..8 + frame.len()].copy_from_slice(frame);
}

fn stamp_len(tag: u64) -> usize {
    8 + payloads().get(tag).len()
}

/// Checks a buffer made by [`stamp`] and returns its tag.
fn check_stamp(buf: &[u8]) -> u64 {
    let tag = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert_eq!(buf.len(), stamp_len(tag), "tag {tag:#x}: length");
    assert!(
        buf[8..] == *payloads().get(tag),
        "tag {tag:#x}: torn or foreign contents"
    );
    tag
}

/// The names of a run's pool, MPMC ring of handles and broadcast ring.
struct Names {
    pool: String,
    ring: String,
    bcast: String,
}

impl Names {
    fn new(base: &str) -> Names {
        Names {
            pool: format!("{base}-pool"),
            ring: format!("{base}-ring"),
            bcast: format!("{base}-bcast"),
        }
    }
}

fn unique(test: &str) -> String {
    format!("rp-pool-xproc-{}-{test}", std::process::id())
}

/// Blocks until the parent writes a line ("" once the parent is gone).
fn await_parent() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("a child gets {name}"))
}

/// If this process is a child, plays its role and returns true: the test function must
/// then return without doing its own part.
fn play_child_role() -> bool {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return false;
    };
    let names = Names::new(&var(NAME_VAR));
    let arg = var(ARG_VAR);
    let pool = BufferPool::open(&names.pool).unwrap();
    match role.as_str() {
        "echo" => echo_child(&pool, &names),
        "holder" => holder_child(&pool, &names, &arg),
        "subscriber" => subscriber_child(&pool, &names, arg.parse().unwrap()),
        "churner" => churner_child(&pool, &names, arg.parse().unwrap()),
        "hog" => hog_child(&pool),
        other => panic!("unknown child role {other:?}"),
    }
    true
}

/// Accepts every buffer the parent sends, checks it, writes its own reply into the same
/// bytes and sends it back, until the parent says "done".
fn echo_child(pool: &BufferPool, names: &Names) {
    let (tx, rx) = mpmc::open::<BufferHandle>(&names.ring).unwrap();
    let (back, _) = mpmc::open::<BufferHandle>(&format!("{}-back", names.ring)).unwrap();
    announce("@@READY@@", "");
    let mut echoed = 0u64;
    loop {
        let h = rx.recv_timeout(HANG).unwrap();
        if h == BufferHandle::default() {
            break;
        }
        let mut b = pool.accept(&h).unwrap();
        let tag = check_stamp(&b);
        // The reply overwrites every byte in place: the tag marked, the frame inverted.
        b[..8].copy_from_slice(&(tag | ECHO).to_le_bytes());
        for x in &mut b[8..] {
            *x = !*x;
        }
        back.send_timeout(b.into_handle(), HANG).unwrap();
        echoed += 1;
    }
    drop(tx);
    announce("@@ECHOED@@", echoed);
    assert_eq!(await_parent(), "done");
}

/// Loans `k` buffers and holds them, sends `m` into the ring, shares `s` over the
/// broadcast ring, reports what it holds, and waits to be killed.
fn holder_child(pool: &BufferPool, names: &Names, arg: &str) {
    let counts: Vec<u64> = arg.split(',').map(|n| n.parse().unwrap()).collect();
    let (k, m, s) = (counts[0], counts[1], counts[2]);
    let (tx, _rx) = mpmc::open::<BufferHandle>(&names.ring).unwrap();
    let mut publisher = BufferPublisher::new(broadcast::open(&names.bcast).unwrap(), pool.clone());
    announce("@@OPEN@@", "");
    assert_eq!(await_parent(), "go");
    let mut tag = HOLDER;
    let mut loan = || {
        tag += 1;
        let mut b = pool.loan_timeout(stamp_len(tag), HANG).unwrap();
        stamp(&mut b, tag);
        b
    };
    let mut held = Vec::new();
    let mut report = Vec::new();
    for _ in 0..k {
        // Sent to itself and taken back, only to learn the generation for the report.
        let h = loan().into_handle();
        report.push(format!("{}:{}:{}", h.index(), h.generation(), h.len()));
        held.push(pool.accept(&h).unwrap());
    }
    for _ in 0..m {
        tx.send_timeout(loan().into_handle(), HANG).unwrap();
    }
    for _ in 0..s {
        publisher.publish(loan()).unwrap();
    }
    announce("@@HOLDING@@", report.join(" "));
    // Killed here, holding everything.
    await_parent();
    drop((held, publisher));
}

/// Takes references to `s` shared buffers, checks them, reports, and waits to be killed.
fn subscriber_child(pool: &BufferPool, names: &Names, s: usize) {
    let publisher = broadcast::open(&names.bcast).unwrap();
    let mut sub = BufferSubscriber::new(publisher.subscribe().unwrap(), pool.clone());
    announce("@@SUBSCRIBED@@", "");
    let refs = take_shared(&mut sub, s);
    announce("@@REFS@@", refs.len());
    // Killed here, holding the references.
    await_parent();
    drop(refs);
}

/// Receives until it holds `s` shared buffers, skipping those it came to too late, and
/// checks each.
fn take_shared(sub: &mut BufferSubscriber, s: usize) -> Vec<SharedBuffer> {
    let mut refs = Vec::new();
    while refs.len() < s {
        match sub.recv_timeout(HANG) {
            Ok(b) => {
                check_stamp(&b);
                refs.push(b);
            }
            Err(BufferRecvError::Recv(RecvError::Lagged(_))) => {}
            Err(e) => panic!("shared buffer: {e}"),
        }
    }
    refs
}

/// xorshift64: a churner's choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Loans, holds, sends, takes back, publishes and releases buffers at random, without
/// ever blocking, until killed.
fn churner_child(pool: &BufferPool, names: &Names, seed: u64) {
    let (tx, rx) = mpmc::open::<BufferHandle>(&names.ring).unwrap();
    let mut publisher = BufferPublisher::new(broadcast::open(&names.bcast).unwrap(), pool.clone());
    announce("@@OPEN@@", "");
    assert_eq!(await_parent(), "go");
    let mut rng = Rng(seed | 1);
    let mut held = Vec::new();
    let mut published = 0u64;
    for seq in 0u64.. {
        let tag = CHURNER | seq;
        match rng.below(8) {
            0..=2 => match pool.try_loan(stamp_len(tag)) {
                Ok(mut b) => {
                    stamp(&mut b, tag);
                    held.push(b);
                }
                Err(LoanError::Empty { .. }) => {}
                Err(e) => panic!("churner: {e}"),
            },
            3 | 4 if !held.is_empty() => {
                let h = held.remove(0).into_handle();
                match tx.try_send(h) {
                    Ok(()) => {}
                    // Nobody took it: take it back.
                    Err(SendError::Full) => held.push(pool.accept(&h).unwrap()),
                    Err(e) => panic!("churner: {e}"),
                }
            }
            5 if !held.is_empty() => {
                publisher.publish(held.remove(0)).unwrap();
                published += 1;
            }
            6 => match rx.try_recv() {
                Ok(h) => {
                    let b = pool.accept(&h).unwrap();
                    check_stamp(&b);
                    held.push(b);
                }
                Err(RecvError::Empty) => {}
                Err(e) => panic!("churner: {e}"),
            },
            _ => drop(held.pop()),
        }
        while held.len() > 4 {
            check_stamp(&held.remove(0));
        }
        if published == 16 {
            announce("@@CHURNING@@", seq);
            published += 1;
        }
    }
}

/// Loans every buffer of the pool, reports how many, and waits to be killed.
fn hog_child(pool: &BufferPool) {
    let mut hoard = Vec::new();
    while let Ok(b) = pool.try_loan(0) {
        hoard.push(b);
    }
    announce("@@HOARDED@@", hoard.len());
    await_parent();
    drop(hoard);
}

fn spawn(test: &str, role: &str, base: &str, arg: &str) -> Peer {
    Peer::spawn(test, &[(ROLE_VAR, role), (NAME_VAR, base), (ARG_VAR, arg)])
}

fn full(pool: &BufferPool) -> Vec<usize> {
    pool.classes().iter().map(|&(_, count)| count).collect()
}

/// Kills `peer` with SIGKILL and reaps it, so that its identity is certainly dead.
fn kill(peer: &mut Peer) {
    let pid = peer.pid();
    peer.kill(true);
    assert!(
        !ProcessId::of(pid).is_some_and(|id| id.is_alive()),
        "child {pid} survived SIGKILL"
    );
}

/// The shared parts of a run: a pool, a ring of handles and a broadcast ring with the
/// parent's subscriber on it, all created by the parent.
struct Rig {
    pool: BufferPool,
    tx: mpmc::Sender<BufferHandle>,
    rx: mpmc::Receiver<BufferHandle>,
    sub: BufferSubscriber,
    _bcast: broadcast::Publisher,
}

impl Rig {
    fn create(names: &Names, options: PoolOptions, bcast_capacity: usize) -> Rig {
        let pool = BufferPool::create(&names.pool, options.processes(8)).unwrap();
        let (tx, rx) = mpmc::create::<BufferHandle>(&names.ring, 16).unwrap();
        let bcast = broadcast::create(
            &names.bcast,
            BroadcastOptions {
                capacity: bcast_capacity,
                max_message: 32,
                ..Default::default()
            },
        )
        .unwrap();
        let sub = BufferSubscriber::new(bcast.subscribe().unwrap(), pool.clone());
        Rig {
            pool,
            tx,
            rx,
            sub,
            _bcast: bcast,
        }
    }

    /// Receives every handle left in the ring, checks that each is refused as stale (its
    /// sender died and the buffer was reclaimed), and returns them.
    fn drain_stale(&self) -> Vec<BufferHandle> {
        let mut handles = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(h) => {
                    assert_stale(&self.pool, &h);
                    handles.push(h);
                }
                Err(RecvError::Empty) => return handles,
                Err(e) => panic!("ring: {e}"),
            }
        }
    }

    /// Loans every buffer of the pool (so that the pool was whole), checks that `dead`
    /// handles stay stale while their buffers are loaned again (so that a reclaimed
    /// buffer's next loan is not taken for the old one).
    fn loan_all_and_check(&self, dead: &[BufferHandle]) {
        let total: usize = full(&self.pool).iter().sum();
        let all: Vec<_> = (0..total).map(|_| self.pool.try_loan(1).unwrap()).collect();
        assert_eq!(
            self.pool.try_loan(1).unwrap_err(),
            LoanError::Empty { len: 1 }
        );
        for h in dead {
            assert_stale(&self.pool, h);
        }
        drop(all);
    }
}

fn assert_stale(pool: &BufferPool, h: &BufferHandle) {
    assert_eq!(
        pool.accept(h).unwrap_err(),
        TransferError::Stale { index: h.index() }
    );
}

/// Buffers cross into another process and back: the child reads the parent's bytes and
/// writes its reply into the same buffer, and when it exits the pool is whole.
#[test]
fn buffers_travel_to_another_process_and_back() {
    if play_child_role() {
        return;
    }
    let test = "buffers_travel_to_another_process_and_back";
    let base = unique(test);
    let ((), _) = watchdog(test, HANG * 2, move || {
        let names = Names::new(&base);
        let pool = BufferPool::create(
            &names.pool,
            PoolOptions::with_classes(&[(256, 2), (4096, 2)]),
        )
        .unwrap();
        let (tx, _rx) = mpmc::create::<BufferHandle>(&names.ring, 4).unwrap();
        let (_back_tx, back) =
            mpmc::create::<BufferHandle>(&format!("{}-back", names.ring), 4).unwrap();
        let mut child = spawn(test, "echo", &base, "");
        child.expect("@@READY@@");
        let count = 100;
        for tag in PARENT..PARENT + count {
            let mut b = pool.loan_timeout(stamp_len(tag), HANG).unwrap();
            stamp(&mut b, tag);
            tx.send_timeout(b.into_handle(), HANG).unwrap();
            let reply = pool.accept(&back.recv_timeout(HANG).unwrap()).unwrap();
            assert_eq!(reply[..8], (tag | ECHO).to_le_bytes());
            assert_eq!(reply.len(), stamp_len(tag));
            assert!(reply[8..]
                .iter()
                .zip(payloads().get(tag))
                .all(|(&r, &p)| r == !p));
        }
        // The all-zero handle names no buffer (sender 0): the child takes it as the end.
        tx.send_timeout(BufferHandle::default(), HANG).unwrap();
        assert_eq!(child.expect("@@ECHOED@@"), count.to_string());
        child.tell("done");
        child.finish();
        assert_eq!(pool.available(), full(&pool));
    });
}

/// The crash test, with every kind of ownership at once. A holder process holds
/// `K` buffers, has `M` in the ring (the parent accepts one of them before the kill) and
/// shares `S` over a broadcast ring, which the parent and a subscriber process both take
/// references to; forged handles naming its buffers are refused as not its sender's.
/// Both children are SIGKILLed. `reclaim` brings back exactly what the holder held and
/// sent but for the accepted one; the shared buffers stay out while the parent's
/// references last; every handle the holder left in the ring, and every handle of what it
/// held, is refused as stale; and once the parent lets go, the pool is whole.
#[test]
fn sigkilled_holder_and_subscriber_leave_a_pool_that_reclaim_makes_whole() {
    if play_child_role() {
        return;
    }
    let test = "sigkilled_holder_and_subscriber_leave_a_pool_that_reclaim_makes_whole";
    let base = unique(test);
    const K: usize = 3;
    const M: usize = 3;
    const S: usize = 2;
    let ((), _) = watchdog(test, HANG * 2, move || {
        let names = Names::new(&base);
        let mut rig = Rig::create(
            &names,
            PoolOptions::with_classes(&[(256, 4), (4096, 8)]),
            16,
        );
        let pool = rig.pool.clone();
        let whole = full(&pool);
        let total: usize = whole.iter().sum();
        let mut subscriber = spawn(test, "subscriber", &base, &S.to_string());
        subscriber.expect("@@SUBSCRIBED@@");
        let mut holder = spawn(test, "holder", &base, &format!("{K},{M},{S}"));
        holder.expect("@@OPEN@@");
        holder.tell("go");
        let report = holder.expect("@@HOLDING@@");
        let held: Vec<(u32, u32, u64)> = report
            .split_whitespace()
            .map(|e| {
                let f: Vec<&str> = e.split(':').collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(held.len(), K);
        assert_eq!(subscriber.expect("@@REFS@@"), S.to_string());
        let mine = take_shared(&mut rig.sub, S);
        assert_eq!(
            pool.available().iter().sum::<usize>(),
            total - K - M - S,
            "the holder's buffers are out"
        );

        // A live receiver accepts one of the holder's handles before the kill.
        let first = rig.rx.recv_timeout(HANG).unwrap();
        let holder_no = raw(&first).sender;
        let mut accepted = pool.accept(&first).unwrap();
        assert_eq!(check_stamp(&accepted) & !0xffff, HOLDER);
        // Marked as this process's: nobody else may touch it again.
        accepted[..8].copy_from_slice(&PARENT.to_le_bytes());
        let accepted_bytes = accepted.to_vec();

        // Forgeries naming the holder's buffers, as from the holder or from this process:
        // the holder holds them, so neither sent them. They are made from a handle of this
        // process (sent to itself and taken back), so only the fields named differ.
        let probe = pool.try_loan(0).unwrap().into_handle();
        let own_no = raw(&probe).sender;
        drop(pool.accept(&probe).unwrap());
        for &(index, gen, len) in &held {
            for sender in [holder_no, own_no] {
                let forged = forge(&probe, |r| {
                    (r.index, r.gen, r.len, r.sender) = (index, gen, len, sender);
                });
                assert_eq!(
                    pool.accept(&forged).unwrap_err(),
                    TransferError::NotOwned { index }
                );
            }
        }
        // And a forged exclusive handle naming a shared buffer.
        let shared_index = mine[0].index();
        let forged = forge(&probe, |r| {
            (r.index, r.gen, r.len, r.sender) = (shared_index, 0, 1, holder_no);
        });
        assert_eq!(
            pool.accept(&forged).unwrap_err(),
            TransferError::WrongKind {
                index: shared_index
            }
        );

        // Kill both, in either order.
        if std::process::id() % 2 == 0 {
            kill(&mut holder);
            kill(&mut subscriber);
        } else {
            kill(&mut subscriber);
            kill(&mut holder);
        }
        assert_eq!(
            pool.reclaim(),
            K + M - 1,
            "held and in flight, but for the accepted one"
        );
        assert_eq!(pool.reclaim(), 0, "nothing is reclaimed twice");
        // Out now: the accepted buffer, and the shared ones while the parent's references
        // last.
        assert_eq!(pool.available().iter().sum::<usize>(), total - 1 - S);

        let mut dead = rig.drain_stale();
        assert_eq!(dead.len(), M - 1, "the holder's other handles");
        for &(index, gen, len) in &held {
            let forged = forge(&probe, |r| {
                (r.index, r.gen, r.len, r.sender) = (index, gen, len, holder_no);
            });
            assert_stale(&pool, &forged);
            dead.push(forged);
        }
        // The accepted buffer is still this process's, untouched, and it can send it on.
        assert_eq!(*accepted, accepted_bytes[..]);
        let h = accepted.into_handle();
        let again = pool.accept(&h).unwrap();
        assert_eq!(*again, accepted_bytes[..]);
        drop(again);
        // The shared buffers too, until their last reference goes.
        for b in &mine {
            check_stamp(b);
        }
        drop(mine);
        assert_eq!(pool.available(), whole, "the pool is whole again");
        assert!(matches!(
            rig.sub.try_recv(),
            Err(BufferRecvError::Recv(RecvError::Empty))
        ));
        rig.loan_all_and_check(&dead);
        drop(rig.tx);
    });
}

/// The same at a random moment: in each round a churner process loans, holds, sends,
/// takes back, publishes and releases at random, while a subscriber process and the
/// parent take shared references and the parent accepts one of its handles; the churner
/// is SIGKILLed 0 to 3 ms into its run (the subscriber too, holding its references).
/// After `reclaim` every handle left in the ring is stale, what the parent took is intact
/// and its own, nothing the churner published can still be taken, and once the parent
/// lets go the pool is whole.
#[test]
fn churner_sigkilled_at_a_random_moment_leaves_a_pool_that_reclaim_makes_whole() {
    if play_child_role() {
        return;
    }
    let test = "churner_sigkilled_at_a_random_moment_leaves_a_pool_that_reclaim_makes_whole";
    let rounds = env_count("RINGPORT_KILL_ROUNDS", 5);
    const S: usize = 3;
    let limit = HANG + Duration::from_secs(rounds);
    let ((), took) = watchdog(test, limit, move || {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("seed {seed:#x}");
        let mut rng = Rng(seed | 1);
        let (mut reclaimed, mut stale) = (0, 0);
        for round in 0..rounds {
            let base = unique(&format!("churn-{round}"));
            let names = Names::new(&base);
            let mut rig = Rig::create(
                &names,
                PoolOptions::with_classes(&[(256, 16), (4096, 16)]),
                8,
            );
            let pool = rig.pool.clone();
            let mut subscriber = spawn(test, "subscriber", &base, &S.to_string());
            subscriber.expect("@@SUBSCRIBED@@");
            let churner_seed = rng.below(u64::MAX).to_string();
            let mut churner = spawn(test, "churner", &base, &churner_seed);
            churner.expect("@@OPEN@@");
            churner.tell("go");
            let mine = take_shared(&mut rig.sub, S);
            let mut accepted = pool.accept(&rig.rx.recv_timeout(HANG).unwrap()).unwrap();
            check_stamp(&accepted);
            // Marked as this process's: the churner may never touch it again.
            accepted[..8].copy_from_slice(&(PARENT | round).to_le_bytes());
            let accepted_bytes = accepted.to_vec();
            assert_eq!(subscriber.expect("@@REFS@@"), S.to_string());
            churner.expect("@@CHURNING@@");
            thread::sleep(Duration::from_micros(rng.below(3000)));
            if rng.below(2) == 0 {
                kill(&mut churner);
                kill(&mut subscriber);
            } else {
                kill(&mut subscriber);
                kill(&mut churner);
            }
            reclaimed += pool.reclaim();
            let dead = rig.drain_stale();
            stale += dead.len();
            for b in &mine {
                check_stamp(b);
            }
            drop(mine);
            assert_eq!(*accepted, accepted_bytes[..]);
            let h = accepted.into_handle();
            drop(pool.accept(&h).unwrap());
            // Whatever the churner published is gone: anchors and the subscriber's
            // references were reclaimed, the parent's dropped.
            loop {
                match rig.sub.try_recv() {
                    Ok(b) => panic!("round {round}: buffer {} still shared", b.index()),
                    Err(BufferRecvError::Recv(RecvError::Lagged(_))) => {}
                    Err(BufferRecvError::Recv(RecvError::Empty)) => break,
                    Err(e) => panic!("round {round}: {e}"),
                }
            }
            assert_eq!(
                pool.available(),
                full(&pool),
                "round {round}: the pool is whole again"
            );
            rig.loan_all_and_check(&dead);
        }
        eprintln!("{rounds} kills: {reclaimed} buffers reclaimed, {stale} stale handles refused");
    });
    eprintln!("{rounds} rounds in {took:?}");
}

/// A loan from a pool that a dead process emptied: refused while it lives, served once it
/// is dead, by a waiting loan (which looks for dead processes itself) and after an
/// explicit `reclaim`.
#[test]
fn a_loan_from_a_pool_a_dead_process_emptied_succeeds_after_reclaim() {
    if play_child_role() {
        return;
    }
    let test = "a_loan_from_a_pool_a_dead_process_emptied_succeeds_after_reclaim";
    let base = unique(test);
    let ((), _) = watchdog(test, HANG * 2, move || {
        let names = Names::new(&base);
        let pool = BufferPool::create(
            &names.pool,
            PoolOptions::with_classes(&[(64, 3), (1024, 2)]),
        )
        .unwrap();
        let total: usize = full(&pool).iter().sum();
        // This process keeps one throughout: reclaim must leave it alone.
        let mut mine = pool.try_loan(5).unwrap();
        mine.copy_from_slice(b"mine!");
        for explicit in [false, true] {
            let mut hog = spawn(test, "hog", &base, "");
            assert_eq!(hog.expect("@@HOARDED@@"), (total - 1).to_string());
            assert_eq!(pool.try_loan(1).unwrap_err(), LoanError::Empty { len: 1 });
            assert_eq!(pool.available(), vec![0, 0]);
            kill(&mut hog);
            let b = if explicit {
                assert_eq!(pool.reclaim(), total - 1);
                pool.try_loan(1).unwrap()
            } else {
                pool.loan_timeout(1, HANG).unwrap()
            };
            assert_eq!(pool.available().iter().sum::<usize>(), total - 2);
            drop(b);
            assert_eq!(&*mine, b"mine!");
        }
        drop(mine);
        assert_eq!(pool.available(), full(&pool));
    });
}
