//! Request/response round trips through `ringport::rpc`: a `CommunicationManager` over
//! each end of a `MessagePort`, the measuring side making requests, the other answering
//! them with a handler.
//!
//! Request `i` carries `2i + 1` (8 bytes); the handler checks that it is the one due and
//! answers `2i + 2`, which the measuring side checks in turn ([`rtt::ping`]): a lost,
//! repeated or reordered request fails the row. A sample is one `request` call, from
//! encoding the request to holding the response.
//!
//! A manager runs a dispatcher thread that receives everything arriving at its port, so a
//! round trip crosses three threads: the requester, the answering manager's dispatcher
//! (which runs the handler) and the requesting manager's dispatcher (which hands the
//! response over). The answering manager is made on the other CPU and its dispatcher
//! stays there; the requesting manager's shares the measuring thread's CPU, where that
//! thread only waits while it works. With two CPUs the three threads share them, and the
//! report marks the rows oversubscribed. The rows are compared with a raw futex
//! ping-pong whose sides both sleep (the floor of a round trip that wakes its peers)
//! and, in the targets, with the blocking port round trip.

use crate::bench::{Ctx, Measured};
use crate::child::{or_exit, ChildArgs};
use crate::rtt::{self, Link};
use crate::scenarios::FRAME_RING;
use crate::Result;
use ringport::atomics::futex_syscalls;
use ringport::rpc::CommunicationManager;
use ringport::MessageChannel;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The requests' type.
const ECHO: &str = "echo";
/// The notification the child sends once its handler is in place.
const READY: &str = "ready";
/// How often the waiting sides look whether the other is ready, or gone.
const POLL: Duration = Duration::from_millis(1);
/// Threads a row runs: the requester and both dispatchers.
const THREADS: usize = 3;

/// The handler: answers request `i`, which must carry `2i + 1`, with `2i + 2`.
fn echo() -> impl FnMut(&[u8]) -> std::result::Result<Vec<u8>, String> + Send + 'static {
    let mut next = 0u64;
    move |payload: &[u8]| {
        let v = u64::from_le_bytes(
            payload
                .try_into()
                .map_err(|_| format!("request {next}: {} bytes, not 8", payload.len()))?,
        );
        if v != 2 * next + 1 {
            return Err(format!(
                "request {next}: received {v} instead of {}",
                2 * next + 1
            ));
        }
        next += 1;
        Ok((v + 1).to_le_bytes().to_vec())
    }
}

/// The measuring side's manager as a [`Link`]: `send` holds the value, `recv` requests
/// it and returns the response.
struct Requester {
    manager: CommunicationManager,
    value: u64,
}

impl Link for Requester {
    fn send(&mut self, v: u64) -> Result<()> {
        self.value = v;
        Ok(())
    }

    fn recv(&mut self) -> Result<u64> {
        let r = self.manager.request(ECHO, &self.value.to_le_bytes())?;
        Ok(u64::from_le_bytes(r.as_slice().try_into().map_err(
            |_| format!("response of {} bytes, not 8", r.len()),
        )?))
    }
}

/// A round-trip row between two managers in this process.
pub fn threads(ctx: &Ctx) -> Result<Measured> {
    let ch = MessageChannel::with_capacity(FRAME_RING);
    let mut requester = Requester {
        manager: CommunicationManager::over_port(ch.port1),
        value: 0,
    };
    let port = ch.port2;
    // Made on the other CPU, whose affinity its dispatcher thread inherits.
    let (responder, responder_pinned) = ctx
        .spawn_on(ctx.cpus.b(), "responder", move || {
            let manager = CommunicationManager::over_port(port);
            manager.register_handler(ECHO, echo())?;
            Ok(manager)
        })
        .join();
    let futex_before = futex_syscalls();
    let hist = rtt::ping(&mut requester, ctx.plan.warm, ctx.plan.count)?;
    let futex = futex_syscalls() - futex_before;
    requester.manager.close();
    responder.close();
    Ok(Measured::latency(hist, futex, ctx.main_pinned && responder_pinned).with_threads(THREADS))
}

/// A round-trip row from this process to a child process that answers, over a named
/// port.
pub fn processes(ctx: &Ctx) -> Result<Measured> {
    let name = ctx.segment_name(0);
    let mut requester = Requester {
        manager: CommunicationManager::over_port(MessageChannel::create(&name, FRAME_RING)?),
        value: 0,
    };
    let ready = Arc::new(AtomicBool::new(false));
    let seen = ready.clone();
    requester
        .manager
        .on_notification(READY, move |_| seen.store(true, Ordering::Release))?;
    let child = ctx.spawn_child(&name, Stdio::null())?;
    // A child that dies first ends the run through the watchdog.
    while !ready.load(Ordering::Acquire) {
        std::thread::sleep(POLL);
    }
    let futex_before = futex_syscalls();
    let hist = ctx.or_abort(rtt::ping(&mut requester, ctx.plan.warm, ctx.plan.count));
    let futex = futex_syscalls() - futex_before;
    // Closing tells the child that the row is over.
    requester.manager.close();
    let report = child.finish()?;
    Ok(
        Measured::latency(hist, futex + report.futex, ctx.main_pinned && report.pinned)
            .with_threads(THREADS),
    )
}

/// The child side of [`processes`]: answers requests until the parent closes.
pub fn guest(args: &ChildArgs) -> Result<Vec<u64>> {
    let manager = CommunicationManager::over_port(MessageChannel::open(&args.name)?);
    manager.register_handler(ECHO, echo())?;
    or_exit(args, manager.broadcast(READY, b"").map_err(Into::into));
    while !manager.is_closed() {
        std::thread::sleep(POLL);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_answered_in_order_and_checked() {
        crate::within(Duration::from_secs(60), || {
            let ch = MessageChannel::new();
            let mut requester = Requester {
                manager: CommunicationManager::over_port(ch.port1),
                value: 0,
            };
            let responder = CommunicationManager::over_port(ch.port2);
            responder.register_handler(ECHO, echo()).unwrap();
            assert_eq!(rtt::ping(&mut requester, 10, 200).unwrap().len(), 200);
            // Request 210 is due; one that skips ahead fails at the handler.
            requester.send(2 * 211 + 1).unwrap();
            let e = requester.recv().unwrap_err().to_string();
            assert!(e.contains("request 210"), "{e}");
        });
    }
}
