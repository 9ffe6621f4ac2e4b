//! `CommunicationManager`: requests, responses, errors, timeouts and notifications over
//! ports (between threads and between processes) and over broadcast channels.
//!
//! A test that needs a peer process re-executes this test binary as
//! `<exe> <test> --exact --nocapture` with `ROLE_VAR` set; every test first calls
//! [`play_child_role`], which plays that role and tells the test to return.
//!
//! Sizes: `RINGPORT_RPC_REQUESTS` (default 300) requests per thread in the concurrent
//! test, `RINGPORT_RPC_RTT` (default 10 000) round trips in the ignored `rtt_report`.

mod common;
#[path = "common/peer.rs"]
mod peer;

use common::{env_count, watchdog, Payloads};
use peer::{announce, Peer, HANG};
use ringport::broadcast::{BroadcastChannel, BroadcastOptions};
use ringport::rpc::envelope::{decode, EncodeError, Envelope, Kind};
use ringport::rpc::{CommunicationManager, RequestError};
use ringport::{MessageChannel, RecvError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "RINGPORT_RPC_ROLE";
const NAME_VAR: &str = "RINGPORT_RPC_NAME";
/// The broadcast tests' namespace, apart from every other user's channels.
const NAMESPACE: &str = "rpc-tests";

/// A channel or segment name no other test, and no concurrent run, uses.
fn unique(test: &str) -> String {
    format!("rp-rpc-{}-{test}", std::process::id())
}

fn port_pair() -> (CommunicationManager, CommunicationManager) {
    let ch = MessageChannel::new();
    (
        CommunicationManager::over_port(ch.port1),
        CommunicationManager::over_port(ch.port2),
    )
}

fn broadcast_manager(name: &str) -> CommunicationManager {
    let options = BroadcastOptions {
        max_message: 1024,
        ..Default::default()
    };
    let channel = BroadcastChannel::with_options(NAMESPACE, name, options).unwrap();
    CommunicationManager::over_broadcast(channel).unwrap()
}

fn u64_of(bytes: &[u8]) -> Result<u64, String> {
    Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| {
        format!("expected 8 bytes, got {}", bytes.len())
    })?))
}

/// `double`: an 8-byte number in, twice it out; anything else is the handler's error.
fn serve_double(m: &CommunicationManager) {
    m.register_handler("double", |p: &[u8]| {
        u64_of(p).map(|n| (2 * n).to_le_bytes().to_vec())
    })
    .unwrap();
}

fn double(m: &CommunicationManager, n: u64) -> Result<u64, RequestError> {
    Ok(u64_of(&m.request("double", &n.to_le_bytes())?).unwrap())
}

/// Blocks until the parent writes a line.
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
        "port-peer" => port_peer_child(&name),
        "broadcast-peer" => broadcast_peer_child(&name),
        "echo" => echo_child(&name),
        "hang-peer" => hang_peer_child(&name),
        other => panic!("unknown child role {other:?}"),
    }
    true
}

/// Serves `double`, `fail` and `pid` over the parent's port, asks the parent's `greet`
/// handler, and leaves when the parent's `bye` notification arrives.
fn port_peer_child(name: &str) {
    let manager = CommunicationManager::over_port(MessageChannel::open(name).unwrap());
    serve_double(&manager);
    manager
        .register_handler("fail", |_: &[u8]| Err::<Vec<u8>, _>("refused by the child"))
        .unwrap();
    manager
        .register_handler("pid", |_: &[u8]| {
            Ok::<_, String>(std::process::id().to_le_bytes().to_vec())
        })
        .unwrap();
    let (bye, byes) = mpsc::channel();
    manager
        .on_notification("bye", move |p: &[u8]| bye.send(p.to_vec()).unwrap())
        .unwrap();
    announce("@@READY@@", "");
    let greeting = manager.request("greet", b"child").unwrap();
    announce("@@GREETED@@", String::from_utf8(greeting).unwrap());
    assert_eq!(byes.recv_timeout(HANG).unwrap(), b"see you");
    manager.close();
}

/// Serves `pid` on the parent's broadcast channel until the parent's `bye`.
fn broadcast_peer_child(name: &str) {
    let manager = broadcast_manager(name);
    manager
        .register_handler("pid", |_: &[u8]| {
            Ok::<_, String>(std::process::id().to_le_bytes().to_vec())
        })
        .unwrap();
    let (bye, byes) = mpsc::channel();
    manager
        .on_notification("bye", move |_: &[u8]| bye.send(()).unwrap())
        .unwrap();
    announce("@@READY@@", "");
    byes.recv_timeout(HANG).unwrap();
}

/// Echoes requests over the parent's port until the parent closes it.
fn echo_child(name: &str) {
    let manager = CommunicationManager::over_port(MessageChannel::open(name).unwrap());
    manager
        .register_handler("echo", |p: &[u8]| Ok::<_, String>(p.to_vec()))
        .unwrap();
    announce("@@READY@@", "");
    assert_eq!(await_parent(), "done");
}

/// Takes the parent's `hang` request and never answers it: the parent kills it.
fn hang_peer_child(name: &str) {
    let manager = CommunicationManager::over_port(MessageChannel::open(name).unwrap());
    manager
        .register_handler("hang", |_: &[u8]| -> Result<Vec<u8>, String> {
            announce("@@HANDLING@@", "");
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    announce("@@READY@@", "");
    await_parent();
}

#[test]
fn requests_are_answered_both_ways_over_a_port_between_threads() {
    if play_child_role() {
        return;
    }
    let (a, b) = port_pair();
    serve_double(&a);
    serve_double(&b);
    b.register_handler("upper", |p: &[u8]| Ok::<_, String>(p.to_ascii_uppercase()))
        .unwrap();
    for n in 0..100 {
        assert_eq!(double(&a, n), Ok(2 * n));
        assert_eq!(double(&b, n + 1), Ok(2 * n + 2));
    }
    assert_eq!(a.request("upper", b"web").unwrap(), b"WEB");
    assert_eq!(a.request("upper", b"").unwrap(), b"");
    assert_eq!((a.pending(), b.pending()), (0, 0));
}

#[test]
fn a_handler_error_or_panic_travels_back_as_remote() {
    if play_child_role() {
        return;
    }
    let (a, b) = port_pair();
    serve_double(&b);
    b.register_handler("panics", |_: &[u8]| -> Result<Vec<u8>, String> {
        panic!("the handler's own bug")
    })
    .unwrap();
    assert_eq!(
        a.request("double", b"short"),
        Err(RequestError::Remote("expected 8 bytes, got 5".into()))
    );
    match a.request("panics", b"") {
        Err(RequestError::Remote(m)) => assert!(m.contains("panicked"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The dispatcher survived both, and the handler that panicked can run again.
    assert_eq!(double(&a, 4), Ok(8));
    assert!(matches!(
        a.request("panics", b""),
        Err(RequestError::Remote(_))
    ));
}

#[test]
fn a_request_without_a_handler_gets_an_error_naming_its_type() {
    if play_child_role() {
        return;
    }
    let (a, _b) = port_pair();
    assert_eq!(
        a.request("nobody-serves-this", b"?"),
        Err(RequestError::NoHandler {
            ty: "nobody-serves-this".into()
        })
    );
    assert_eq!(a.pending(), 0);
}

#[test]
fn a_timeout_leaves_nothing_pending_and_the_late_response_is_ignored() {
    if play_child_role() {
        return;
    }
    let (a, b) = port_pair();
    serve_double(&b);
    // The handler answers only when the test lets it: the request is certain to time
    // out first, whatever the machine's speed.
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    b.register_handler("slow", move |p: &[u8]| {
        started_tx.send(()).unwrap();
        released.recv().unwrap();
        Ok::<_, String>(p.to_vec())
    })
    .unwrap();
    let r = a.request_timeout("slow", b"late", Duration::from_millis(20));
    assert_eq!(r, Err(RequestError::Timeout));
    assert_eq!(a.pending(), 0);
    started.recv_timeout(HANG).unwrap();
    release.send(()).unwrap();
    // The port is FIFO: this answer comes after the late one, which was dropped, not
    // taken for this request's.
    assert_eq!(double(&a, 21), Ok(42));
    assert_eq!(a.pending(), 0);
}

#[test]
fn concurrent_requests_from_many_threads_get_their_own_responses() {
    if play_child_role() {
        return;
    }
    let per = env_count("RINGPORT_RPC_REQUESTS", 300);
    let (a, b) = port_pair();
    b.register_handler("reverse", |p: &[u8]| {
        Ok::<_, String>(p.iter().rev().copied().collect())
    })
    .unwrap();
    let payloads = Arc::new(Payloads::new(200));
    let threads: u64 = 4;
    watchdog("concurrent requests", HANG, move || {
        std::thread::scope(|s| {
            for t in 0..threads {
                let (a, payloads) = (a.clone(), payloads.clone());
                s.spawn(move || {
                    for i in 0..per {
                        let sent = payloads.get(t * per + i);
                        let got = a.request("reverse", sent).unwrap();
                        let want: Vec<u8> = sent.iter().rev().copied().collect();
                        assert_eq!(got, want, "thread {t} request {i}");
                    }
                });
            }
        });
        assert_eq!(a.pending(), 0);
    });
}

#[test]
fn the_first_responder_wins_on_a_broadcast_channel() {
    if play_child_role() {
        return;
    }
    let name = unique("first-wins");
    let asker = broadcast_manager(&name);
    let answers = Arc::new(AtomicUsize::new(0));
    let responders: Vec<_> = ["b", "c"]
        .into_iter()
        .map(|who| {
            let m = broadcast_manager(&name);
            let answers = answers.clone();
            m.register_handler("who", move |p: &[u8]| {
                answers.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>([who.as_bytes(), p].concat())
            })
            .unwrap();
            m
        })
        .collect();
    let rounds = 20;
    for round in 0..rounds {
        let tag = format!(":{round}");
        let got = asker.request("who", tag.as_bytes()).unwrap();
        // One of the two, and for this round: a loser's answer to an earlier round was
        // dropped rather than taken for this one.
        assert!(
            got == [b"b", tag.as_bytes()].concat() || got == [b"c", tag.as_bytes()].concat(),
            "round {round}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert_eq!(asker.pending(), 0);
    }
    // Both answered every request; only one answer each time was returned.
    let start = Instant::now();
    while answers.load(Ordering::SeqCst) < 2 * rounds {
        assert!(
            start.elapsed() < HANG,
            "the second responder never answered"
        );
        std::thread::yield_now();
    }
    assert_eq!(asker.pending(), 0);
    // A manager without a handler stays silent on a broadcast channel: only the
    // responders' handlers run, so nobody answers `unknown`.
    let r = asker.request_timeout("unknown", b"", Duration::from_millis(20));
    assert_eq!(r, Err(RequestError::Timeout));
    drop(responders);
}

#[test]
fn notifications_reach_every_other_manager_but_not_the_sender() {
    if play_child_role() {
        return;
    }
    let name = unique("notify");
    let (log, heard) = mpsc::channel::<(&str, Vec<u8>)>();
    let managers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|who| {
            let m = broadcast_manager(&name);
            let log = log.clone();
            m.on_notification("news", move |p: &[u8]| log.send((who, p.to_vec())).unwrap())
                .unwrap();
            m
        })
        .collect();
    drop(log);
    managers[0].broadcast("news", b"from a").unwrap();
    let mut first: Vec<_> = (0..2).map(|_| heard.recv_timeout(HANG).unwrap()).collect();
    first.sort();
    assert_eq!(
        first,
        [("b", b"from a".to_vec()), ("c", b"from a".to_vec())]
    );
    // Each manager receives in publishing order, so had `a` heard its own news it would
    // have logged it before `b`'s.
    managers[1].broadcast("news", b"from b").unwrap();
    let mut second: Vec<_> = (0..2).map(|_| heard.recv_timeout(HANG).unwrap()).collect();
    second.sort();
    assert_eq!(
        second,
        [("a", b"from b".to_vec()), ("c", b"from b".to_vec())]
    );
    // Over a port, to the peer; every listener of the type runs, in registration order.
    let (a, b) = port_pair();
    let (log, heard) = mpsc::channel();
    for listener in 0..2 {
        let log = log.clone();
        b.on_notification("tick", move |p: &[u8]| {
            log.send((listener, p.to_vec())).unwrap()
        })
        .unwrap();
    }
    a.broadcast("tick", b"1").unwrap();
    assert_eq!(heard.recv_timeout(HANG).unwrap(), (0, b"1".to_vec()));
    assert_eq!(heard.recv_timeout(HANG).unwrap(), (1, b"1".to_vec()));
}

#[test]
fn close_fails_pending_requests_with_closed() {
    if play_child_role() {
        return;
    }
    let (a, b) = port_pair();
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    b.register_handler("block", move |_: &[u8]| {
        started_tx.send(()).unwrap();
        released.recv().unwrap();
        Ok::<_, String>(Vec::new())
    })
    .unwrap();
    let requester = {
        let a = a.clone();
        std::thread::spawn(move || a.request("block", b""))
    };
    started.recv_timeout(HANG).unwrap();
    assert_eq!(a.pending(), 1);
    a.close();
    let (r, _) = watchdog("the pending request", HANG, move || {
        requester.join().unwrap()
    });
    assert_eq!(r, Err(RequestError::Closed));
    assert_eq!(a.pending(), 0);
    assert!(a.is_closed());
    assert_eq!(a.request("block", b""), Err(RequestError::Closed));
    assert_eq!(a.broadcast("news", b""), Err(RequestError::Closed));
    // The peer sees its port closed: its own requests fail the same way.
    release.send(()).unwrap();
    assert_eq!(b.request("anything", b""), Err(RequestError::Closed));
}

#[test]
fn a_closing_peer_fails_pending_requests_with_closed() {
    if play_child_role() {
        return;
    }
    let ch = MessageChannel::new();
    let a = CommunicationManager::over_port(ch.port1);
    let mut silent = ch.port2;
    let requester = {
        let a = a.clone();
        std::thread::spawn(move || a.request("anything", b""))
    };
    // The peer takes the request, never answers, and closes.
    let frame = silent.recv_with(|f| f.to_vec()).unwrap();
    assert_eq!(decode(&frame).unwrap().kind, Kind::Request);
    drop(silent);
    let (r, _) = watchdog("the pending request", HANG, move || {
        requester.join().unwrap()
    });
    assert_eq!(r, Err(RequestError::Closed));
    assert_eq!(a.pending(), 0);
}

#[test]
fn a_peer_process_killed_mid_request_fails_it_with_closed() {
    if play_child_role() {
        return;
    }
    let name = unique("killed");
    let manager = CommunicationManager::over_port(MessageChannel::create(&name, 1 << 16).unwrap());
    let mut child = Peer::spawn(
        "a_peer_process_killed_mid_request_fails_it_with_closed",
        &[(ROLE_VAR, "hang-peer"), (NAME_VAR, &name)],
    );
    child.expect("@@READY@@");
    let requester = {
        let m = manager.clone();
        std::thread::spawn(move || m.request_timeout("hang", b"", HANG * 2))
    };
    child.expect("@@HANDLING@@");
    assert_eq!(manager.pending(), 1);
    child.kill(true);
    let (r, _) = watchdog("the request to a dead peer", HANG, move || {
        requester.join().unwrap()
    });
    assert_eq!(r, Err(RequestError::Closed));
    assert_eq!(manager.pending(), 0);
    assert!(manager.is_closed());
}

#[test]
fn a_handler_asking_its_own_manager_is_refused() {
    if play_child_role() {
        return;
    }
    let (a, b) = port_pair();
    let inner = b.clone();
    b.register_handler("nested", move |_: &[u8]| {
        match inner.request("nested", b"") {
            Err(RequestError::FromHandler) => Ok(b"refused".to_vec()),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap();
    assert_eq!(a.request("nested", b"").unwrap(), b"refused");
    // The handler holds a clone of `b`: only an explicit close ends it.
    b.close();
}

#[test]
fn a_handler_may_close_its_own_manager() {
    if play_child_role() {
        return;
    }
    let (a, b) = port_pair();
    let inner = b.clone();
    b.register_handler("stop", move |_: &[u8]| {
        inner.close();
        Ok::<_, String>(b"stopping".to_vec())
    })
    .unwrap();
    // The answer cannot go out on the closed port; the requester sees its peer close.
    let (r, _) = watchdog("a request that closes its responder", HANG, move || {
        a.request("stop", b"")
    });
    assert_eq!(r, Err(RequestError::Closed));
    assert!(b.is_closed());
    assert_eq!(b.request("stop", b""), Err(RequestError::Closed));
}

#[test]
fn oversized_payloads_and_types_are_typed_errors() {
    if play_child_role() {
        return;
    }
    let ch = MessageChannel::with_capacity(4096);
    let max_frame = ch.port1.max_frame();
    let (a, b) = (
        CommunicationManager::over_port(ch.port1),
        CommunicationManager::over_port(ch.port2),
    );
    b.register_handler("echo", |p: &[u8]| Ok::<_, String>(p.to_vec()))
        .unwrap();
    b.register_handler("grow", |p: &[u8]| Ok::<_, String>([p, p].concat()))
        .unwrap();
    let max = max_frame - 15 - "echo".len();
    assert_eq!(a.request("echo", &vec![7; max]).unwrap(), vec![7; max]);
    assert_eq!(
        a.request("echo", &vec![7; max + 1]),
        Err(RequestError::TooLarge { len: max + 1, max })
    );
    // A response too large for the transport comes back as the handler's error.
    assert!(matches!(
        a.request("grow", &vec![0; max]),
        Err(RequestError::Remote(m)) if m.contains("exceeds")
    ));
    let long = "t".repeat(256);
    assert_eq!(
        a.request(&long, b""),
        Err(RequestError::Encode(EncodeError::TypeTooLong { len: 256 }))
    );
    assert_eq!(
        b.register_handler(&long, |_: &[u8]| Ok::<_, String>(Vec::new())),
        Err(EncodeError::TypeTooLong { len: 256 })
    );
    assert_eq!(a.pending(), 0);
}

#[test]
fn frames_that_are_not_envelopes_are_dropped() {
    if play_child_role() {
        return;
    }
    let ch = MessageChannel::new();
    let a = CommunicationManager::over_port(ch.port1);
    serve_double(&a);
    let mut raw = ch.port2;
    let request = Envelope {
        kind: Kind::Request,
        id: 77,
        ty: "double",
        payload: &5u64.to_le_bytes(),
    }
    .to_vec()
    .unwrap();
    let mut garbage: Vec<Vec<u8>> = vec![Vec::new(), vec![0xff; 3], vec![1; 40]];
    let mut cut = request.clone();
    cut.pop();
    garbage.push(cut);
    let mut bad_version = request.clone();
    bad_version[0] = 2;
    garbage.push(bad_version);
    for g in &garbage {
        raw.post_message(g).unwrap();
    }
    raw.post_message(&request).unwrap();
    let reply = raw.recv_with(|f| f.to_vec()).unwrap();
    let reply = decode(&reply).unwrap();
    assert_eq!(
        (reply.kind, reply.id, reply.ty, reply.payload),
        (Kind::Response, 77, "double", &10u64.to_le_bytes()[..])
    );
    // Nothing else came back: the garbage got no answer.
    assert_eq!(raw.try_recv().err(), Some(RecvError::Empty));
}

#[test]
fn requests_and_notifications_cross_processes_over_a_port() {
    if play_child_role() {
        return;
    }
    let name = unique("xproc-port");
    let port = MessageChannel::create(&name, 1 << 16).unwrap();
    let manager = CommunicationManager::over_port(port);
    manager
        .register_handler("greet", |p: &[u8]| Ok::<_, String>([b"hello ", p].concat()))
        .unwrap();
    let mut child = Peer::spawn(
        "requests_and_notifications_cross_processes_over_a_port",
        &[(ROLE_VAR, "port-peer"), (NAME_VAR, &name)],
    );
    child.expect("@@READY@@");
    let pid = manager.request("pid", b"").unwrap();
    assert_eq!(pid, child.pid().to_le_bytes());
    for n in 0..200 {
        assert_eq!(double(&manager, n), Ok(2 * n));
    }
    assert_eq!(
        manager.request("fail", b""),
        Err(RequestError::Remote("refused by the child".into()))
    );
    assert_eq!(
        manager.request("absent", b""),
        Err(RequestError::NoHandler {
            ty: "absent".into()
        })
    );
    assert_eq!(child.expect("@@GREETED@@"), "hello child");
    manager.broadcast("bye", b"see you").unwrap();
    child.finish();
    assert_eq!(manager.pending(), 0);
}

#[test]
fn requests_and_notifications_cross_processes_over_a_broadcast_channel() {
    if play_child_role() {
        return;
    }
    let name = unique("xproc-bc");
    let manager = broadcast_manager(&name);
    let mut child = Peer::spawn(
        "requests_and_notifications_cross_processes_over_a_broadcast_channel",
        &[(ROLE_VAR, "broadcast-peer"), (NAME_VAR, &name)],
    );
    child.expect("@@READY@@");
    let pid = manager.request("pid", b"").unwrap();
    assert_eq!(pid, child.pid().to_le_bytes());
    manager.broadcast("bye", b"").unwrap();
    child.finish();
    assert_eq!(manager.pending(), 0);
}

/// Round-trip times of `request` in nanoseconds, sorted.
fn round_trips(m: &CommunicationManager, n: u64) -> Vec<u64> {
    let payload = [0u8; 16];
    let mut times: Vec<u64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            m.request("echo", &payload).unwrap();
            start.elapsed().as_nanos() as u64
        })
        .collect();
    times.sort_unstable();
    times
}

fn print_percentiles(what: &str, sorted: &[u64]) {
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "rpc rtt {what:<22} n={} p50 {:>8.2} us  p99 {:>8.2} us  max {:>9.2} us",
        sorted.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Prints request/response round-trip percentiles; measures, asserts nothing about time.
/// `cargo test --release --test rpc -- --ignored --nocapture rtt_report`
#[test]
#[ignore = "a measurement, not a check: run it by name"]
fn rtt_report() {
    if play_child_role() {
        return;
    }
    let n = env_count("RINGPORT_RPC_RTT", 10_000);
    let echo = |m: &CommunicationManager| {
        m.register_handler("echo", |p: &[u8]| Ok::<_, String>(p.to_vec()))
            .unwrap();
    };
    let (a, b) = port_pair();
    echo(&b);
    round_trips(&a, n / 10);
    print_percentiles("port, threads", &round_trips(&a, n));

    let name = unique("rtt-bc");
    let (a, b) = (broadcast_manager(&name), broadcast_manager(&name));
    echo(&b);
    round_trips(&a, n / 10);
    print_percentiles("broadcast, threads", &round_trips(&a, n));

    let name = unique("rtt-xproc");
    let a = CommunicationManager::over_port(MessageChannel::create(&name, 1 << 16).unwrap());
    // The child runs a test that is not ignored (it plays its role before the test's
    // own part), since the harness would skip this one.
    let mut child = Peer::spawn(
        "requests_are_answered_both_ways_over_a_port_between_threads",
        &[(ROLE_VAR, "echo"), (NAME_VAR, &name)],
    );
    child.expect("@@READY@@");
    round_trips(&a, n / 10);
    print_percentiles("port, processes", &round_trips(&a, n));
    child.tell("done");
    child.finish();
}
