//! Transfer lists: buffers and ports that change hands with a message, between threads
//! and between processes (this test binary re-executed in a child role), and the
//! refusals of the web's `DataCloneError`.

#[path = "common/peer.rs"]
mod peer;

use peer::{announce, Peer};
use ringport::pool::{
    BufferHandle, BufferPool, BufferRecvError, BufferSendError, PoolOptions, TransferError,
};
use ringport::segment::Segment;
use ringport::transfer::wire::{self, PortTicket, WireMessage};
use ringport::transfer::Transfer;
use ringport::{MessageChannel, MessagePort, RecvError, SendError};

const ROLE_VAR: &str = "RINGPORT_TRANSFER_ROLE";
const NAME_VAR: &str = "RINGPORT_TRANSFER_NAME";

fn unique(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "tx-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn pool_of(classes: &[(usize, usize)]) -> BufferPool {
    BufferPool::new(PoolOptions::with_classes(classes)).unwrap()
}

fn recv_text(port: &mut MessagePort) -> String {
    String::from_utf8(port.recv().unwrap().to_vec()).unwrap()
}

#[test]
fn a_heap_port_moves_between_threads_with_its_queued_messages_in_order() {
    let (mut main, worker) = {
        let c = MessageChannel::new();
        (c.port1, c.port2)
    };
    let private = MessageChannel::new();
    let (mut keep, give) = (private.port1, private.port2);
    // Queued for `give` before it moves: the new owner must receive them, in order.
    for i in 0..3 {
        keep.post_message(format!("before {i}").as_bytes()).unwrap();
    }
    main.post_transfer(Transfer::new(b"take this".to_vec()).with_port(give))
        .unwrap();
    let t = std::thread::spawn(move || {
        let mut worker = worker;
        let got = worker.recv_transfer(&[]).unwrap();
        assert_eq!(got.data(), b"take this");
        let (_, _, ports) = got.into_parts();
        let mut port = ports.into_iter().next().unwrap();
        let seen: Vec<String> = (0..5).map(|_| recv_text(&mut port)).collect();
        port.post_message(b"done").unwrap();
        seen
    });
    // Sent while the port is in transit, or already taken: either way it arrives.
    for i in 3..5 {
        keep.post_message(format!("after {i}").as_bytes()).unwrap();
    }
    let seen = t.join().unwrap();
    assert_eq!(
        seen,
        ["before 0", "before 1", "before 2", "after 3", "after 4"]
    );
    assert_eq!(recv_text(&mut keep), "done");
}

#[test]
fn buffers_travel_in_place_and_the_pool_stays_whole() {
    let pool = pool_of(&[(4096, 4)]);
    let c = MessageChannel::new();
    let (mut a, mut b) = (c.port1, c.port2);
    let mut x = pool.try_loan(5).unwrap();
    x.copy_from_slice(b"hello");
    let mut y = pool.try_loan(4096).unwrap();
    y.fill(9);
    let (px, py) = (x.as_ptr(), y.as_ptr());
    a.post_transfer(Transfer::new(vec![1]).with_buffer(x).with_buffer(y))
        .unwrap();
    assert_eq!(pool.available(), vec![2]);
    let got = b.recv_transfer(std::slice::from_ref(&pool)).unwrap();
    let (data, buffers, _) = got.into_parts();
    assert_eq!(data, [1]);
    assert_eq!(&*buffers[0], b"hello");
    assert!(buffers[1].iter().all(|&v| v == 9));
    assert_eq!((buffers[0].as_ptr(), buffers[1].as_ptr()), (px, py));
    drop(buffers);
    assert_eq!(pool.available(), vec![4]);
}

#[test]
fn what_cannot_travel_is_refused_before_anything_changes_hands() {
    let pool = pool_of(&[(64, 2)]);
    let c = MessageChannel::new();
    let (mut a, b) = (c.port1, c.port2);

    // A port through its own channel.
    let err = a
        .post_transfer(Transfer::new(vec![]).with_port(b))
        .unwrap_err();
    assert!(matches!(
        err.error,
        BufferSendError::Transfer(TransferError::NotTransferable(_))
    ));
    let (_, _, mut back) = err.message.into_parts();
    let mut b = back.pop().unwrap();

    // Heap things through a named port.
    let name = unique("refuse");
    let mut named = MessageChannel::create(&name, 4096).unwrap();
    let _other = MessageChannel::open(&name).unwrap();
    let heap_port = MessageChannel::new().port1;
    let err = named
        .post_transfer(Transfer::new(vec![]).with_port(heap_port))
        .unwrap_err();
    assert!(matches!(
        err.error,
        BufferSendError::Transfer(TransferError::NotTransferable(_))
    ));
    let buf = pool.try_loan(3).unwrap();
    let err = named
        .post_transfer(Transfer::new(vec![]).with_buffer(buf))
        .unwrap_err();
    assert!(matches!(
        err.error,
        BufferSendError::Transfer(TransferError::NotTransferable(_))
    ));
    // Given back whole, still the sender's.
    assert_eq!(err.message.buffers()[0].len(), 3);
    assert_eq!(pool.available(), vec![1]);
    drop(err);
    assert_eq!(pool.available(), vec![2]);

    // Too large for a frame.
    let err = a
        .post_transfer(Transfer::new(vec![0; a.max_frame()]))
        .unwrap_err();
    assert!(matches!(
        err.error,
        BufferSendError::Send(SendError::TooLarge { .. })
    ));

    // A full ring gives the message back, buffers and all.
    let small = MessageChannel::with_capacity(256);
    let (mut s, _r) = (small.port1, small.port2);
    while s.try_post_message(&[0; 64]).is_ok() {}
    let buf = pool.try_loan(1).unwrap();
    let err = s
        .try_post_transfer(Transfer::new(vec![]).with_buffer(buf))
        .unwrap_err();
    assert_eq!(err.error, BufferSendError::Send(SendError::Full));
    assert_eq!(err.message.buffers().len(), 1);
    assert_eq!(pool.available(), vec![1]);
    drop(err);
    assert_eq!(pool.available(), vec![2]);
    b.post_message(b"still mine").unwrap();
    assert_eq!(recv_text(&mut a), "still mine");
}

/// Posts raw wire bytes, as a buggy or hostile peer would.
fn post_wire(port: &mut MessagePort, m: &WireMessage) {
    port.post_message(&wire::encode(m)).unwrap();
}

#[test]
fn a_refused_message_releases_its_valid_buffers_and_ports() {
    let pool = pool_of(&[(64, 4)]);
    let c = MessageChannel::new();
    let (mut a, mut b) = (c.port1, c.port2);
    let good = pool.try_loan(8).unwrap().into_handle();
    let mut forged: BufferHandle = good;
    // Another index of the pool, which nobody sent.
    let mut raw = bytemuck::bytes_of(&forged).to_vec();
    raw[16] ^= 1;
    forged = bytemuck::pod_read_unaligned(&raw);
    let private = MessageChannel::new();
    let (mut peer, port) = (private.port1, private.port2);
    let ticket = {
        // A genuine ticket, made by posting the port and taking the bytes back out.
        let side = MessageChannel::new();
        let (mut x, mut y) = (side.port1, side.port2);
        x.post_transfer(Transfer::new(vec![]).with_port(port))
            .unwrap();
        let bytes = y.recv().unwrap().to_vec();
        wire::decode(&bytes).unwrap().ports.remove(0)
    };
    post_wire(
        &mut a,
        &WireMessage {
            data: vec![],
            buffers: vec![good, forged],
            ports: vec![ticket],
        },
    );
    let err = b.recv_transfer(std::slice::from_ref(&pool)).unwrap_err();
    assert!(
        matches!(
            err,
            BufferRecvError::Transfer(TransferError::NotOwned { .. } | TransferError::Stale { .. })
        ),
        "{err:?}"
    );
    // The genuine buffer went back to the pool, and the genuine port was closed.
    assert_eq!(pool.available(), vec![4]);
    assert_eq!(peer.recv().err(), Some(RecvError::Disconnected));
}

#[test]
fn duplicated_foreign_and_replayed_handles_are_refused() {
    let pool = pool_of(&[(64, 2)]);
    let other = pool_of(&[(64, 2)]);
    let c = MessageChannel::new();
    let (mut a, mut b) = (c.port1, c.port2);
    let h = pool.try_loan(1).unwrap().into_handle();
    post_wire(
        &mut a,
        &WireMessage {
            buffers: vec![h, h],
            ..Default::default()
        },
    );
    assert_eq!(
        b.recv_transfer(std::slice::from_ref(&pool)).unwrap_err(),
        TransferError::Duplicate { index: h.index() }.into()
    );
    post_wire(
        &mut a,
        &WireMessage {
            buffers: vec![h],
            ..Default::default()
        },
    );
    assert!(matches!(
        b.recv_transfer(std::slice::from_ref(&other)).unwrap_err(),
        BufferRecvError::Transfer(TransferError::ForeignPool { .. })
    ));
    // Taken once, then replayed.
    let once = pool.accept(&h).unwrap();
    post_wire(
        &mut a,
        &WireMessage {
            buffers: vec![h],
            ..Default::default()
        },
    );
    assert_eq!(
        b.recv_transfer(std::slice::from_ref(&pool)).unwrap_err(),
        TransferError::AlreadyReceived { index: h.index() }.into()
    );
    drop(once);
    post_wire(
        &mut a,
        &WireMessage {
            buffers: vec![h],
            ..Default::default()
        },
    );
    assert_eq!(
        b.recv_transfer(std::slice::from_ref(&pool)).unwrap_err(),
        TransferError::Stale { index: h.index() }.into()
    );
    assert_eq!(pool.available(), vec![2]);
}

#[test]
fn a_replayed_port_ticket_finds_the_port_taken() {
    let name = unique("replay");
    let creator = MessageChannel::create(&name, 4096).unwrap();
    let joined = MessageChannel::open(&name).unwrap();
    let side = MessageChannel::new();
    let (mut x, mut y) = (side.port1, side.port2);
    x.post_transfer(Transfer::new(vec![]).with_port(joined))
        .unwrap();
    let bytes = y.recv().unwrap().to_vec();
    x.post_message(&bytes).unwrap();
    x.post_message(&bytes).unwrap();
    let first = y.recv_transfer(&[]).unwrap();
    assert_eq!(first.ports().len(), 1);
    assert!(matches!(
        y.recv_transfer(&[]).unwrap_err(),
        BufferRecvError::Transfer(TransferError::Port(_))
    ));
    let (_, _, mut ports) = first.into_parts();
    let mut joined = ports.pop().unwrap();
    let mut creator = creator;
    creator.post_message(b"to the new holder").unwrap();
    assert_eq!(recv_text(&mut joined), "to the new holder");
    assert!(matches!(
        wire::decode(&bytes).unwrap().ports[0],
        PortTicket::Named {
            side: 2,
            owner: false,
            ..
        }
    ));
}

/// The child: takes a port (and a buffer of a named pool) from the parent, reads what
/// was queued for the port, answers through it, then sends the port back.
fn play_child_role() -> bool {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return false;
    };
    let name = std::env::var(NAME_VAR).unwrap();
    match role.as_str() {
        "taker" => {
            let pool = BufferPool::open(&format!("{name}-pool")).unwrap();
            let mut ctl = MessageChannel::open(&format!("{name}-ctl")).unwrap();
            let got = ctl.recv_transfer(std::slice::from_ref(&pool)).unwrap();
            let (data, buffers, ports) = got.into_parts();
            assert_eq!(data, b"yours");
            assert_eq!(&*buffers[0], b"from the parent's pool");
            let mut port = ports.into_iter().next().unwrap();
            for i in 0..3 {
                assert_eq!(recv_text(&mut port), format!("queued {i}"));
            }
            port.post_message(format!("child {} has it", std::process::id()).as_bytes())
                .unwrap();
            // The parent says when it has seen that, so that the port is not on its way
            // back before then.
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            let mut reply = buffers.into_iter().next().unwrap();
            reply.copy_from_slice(b"back from the child!!!");
            ctl.post_transfer(
                Transfer::new(b"returned".to_vec())
                    .with_port(port)
                    .with_buffer(reply),
            )
            .unwrap();
            announce("CHILD-DONE", "");
        }
        "dying-sender" => {
            let mut ctl = MessageChannel::open(&format!("{name}-ctl")).unwrap();
            let port = MessageChannel::open(&format!("{name}-data")).unwrap();
            ctl.post_transfer(Transfer::new(vec![]).with_port(port))
                .unwrap();
            announce("SENT", "");
            // Killed here, before anyone takes the port.
            loop {
                std::thread::sleep(peer::HANG);
            }
        }
        other => panic!("unknown role {other:?}"),
    }
    true
}

#[test]
fn a_named_port_and_a_buffer_move_to_another_process_and_back() {
    if play_child_role() {
        return;
    }
    let name = unique("proc");
    let pool = BufferPool::create(
        &format!("{name}-pool"),
        PoolOptions::with_classes(&[(64, 2)]),
    )
    .unwrap();
    let mut ctl = MessageChannel::create(&format!("{name}-ctl"), 4096).unwrap();
    // The parent created the data channel, so the transferred port carries its name.
    let data_name = format!("{name}-data");
    let given = MessageChannel::create(&data_name, 4096).unwrap();
    let mut kept = MessageChannel::open(&data_name).unwrap();
    for i in 0..3 {
        kept.post_message(format!("queued {i}").as_bytes()).unwrap();
    }
    let mut child = Peer::spawn(
        "a_named_port_and_a_buffer_move_to_another_process_and_back",
        &[(ROLE_VAR, "taker"), (NAME_VAR, &name)],
    );
    let mut buf = pool.try_loan(22).unwrap();
    buf.copy_from_slice(b"from the parent's pool");
    ctl.post_transfer(
        Transfer::new(b"yours".to_vec())
            .with_port(given)
            .with_buffer(buf),
    )
    .unwrap();
    let hello = recv_text(&mut kept);
    assert_eq!(hello, format!("child {} has it", child.pid()));
    child.tell("seen");
    let back = ctl.recv_transfer(std::slice::from_ref(&pool)).unwrap();
    child.expect("CHILD-DONE");
    child.finish();
    let (data, buffers, ports) = back.into_parts();
    assert_eq!(data, b"returned");
    assert_eq!(&*buffers[0], b"back from the child!!!");
    let mut port = ports.into_iter().next().unwrap();
    kept.post_message(b"welcome back").unwrap();
    assert_eq!(recv_text(&mut port), "welcome back");
    // The name went to the child with the creator's port, and came back with it.
    assert!(Segment::open(&data_name, u32::from_le_bytes(*b"PORT")).is_ok());
    drop(port);
    drop(kept);
    assert!(Segment::open(&data_name, u32::from_le_bytes(*b"PORT")).is_err());
    drop(buffers);
    assert_eq!(pool.available(), vec![2]);
}

/// A port in transit belongs to the process that sent it: if that process dies before
/// anyone takes the port, the port's peer sees it die.
#[test]
fn a_port_whose_sender_dies_in_transit_reports_peer_died() {
    if play_child_role() {
        return;
    }
    let name = unique("dying");
    let mut ctl = MessageChannel::create(&format!("{name}-ctl"), 4096).unwrap();
    let mut kept = MessageChannel::create(&format!("{name}-data"), 4096).unwrap();
    let mut child = Peer::spawn(
        "a_port_whose_sender_dies_in_transit_reports_peer_died",
        &[(ROLE_VAR, "dying-sender"), (NAME_VAR, &name)],
    );
    child.expect("SENT");
    kept.post_message(b"for whoever holds it").unwrap();
    child.kill(true);
    assert!(matches!(
        kept.recv_timeout(peer::HANG),
        Err(RecvError::PeerDied { .. })
    ));
    // The ticket still names the port, and taking it over revives the channel.
    let got = ctl.recv_transfer(&[]).unwrap();
    let (_, _, mut ports) = got.into_parts();
    let mut port = ports.pop().unwrap();
    assert_eq!(recv_text(&mut port), "for whoever holds it");
}
