//! Round trips: the measuring side sends `2i + 1` and waits for `2i + 2`; the other side
//! checks that it received `2i + 1` and echoes it plus one. Every reply is checked, so a
//! path that loses, repeats or reorders a message fails the row instead of looking fast.
//!
//! One sample per round trip goes into an HDR histogram (nanoseconds, 3 significant
//! digits), after `warm` unrecorded round trips. A sample includes one clock read (about
//! 20 ns on the project's VM, whose clock also advances in 10 ns steps; the report prints
//! the cost); every row pays it alike, floors included.

use crate::bench::{Ctx, Measured};
use crate::child::{or_exit, ChildArgs, ChildGuard};
use crate::Result;
use hdrhistogram::Histogram;
use ringport::atomics::futex_syscalls;
use std::process::Stdio;
use std::time::Instant;

/// One end of a two-way path of `u64` messages.
pub trait Link {
    /// Sends `v` to the other end.
    fn send(&mut self, v: u64) -> Result<()>;
    /// Waits for the next value from the other end.
    fn recv(&mut self) -> Result<u64>;
}

/// A path between two threads of this process.
pub trait InProcess {
    /// Both ends have this type.
    type End: Link + Send + 'static;
    /// A connected pair of ends.
    fn pair() -> Result<(Self::End, Self::End)>;
}

/// A path between this process and a child it starts.
pub trait CrossProcess {
    /// What the parent holds between starting the child and connecting to it.
    type Pending;
    /// The parent's end.
    type Host: Link;
    /// The child's end.
    type Guest: Link;
    /// Sets the path up before the child starts, given the row's segment name; also
    /// returns what the child's stdin must be.
    fn prepare(name: &str) -> Result<(Self::Pending, Stdio)>;
    /// The parent's end, once the child has started.
    fn connect(pending: Self::Pending, child: &mut ChildGuard) -> Result<Self::Host>;
    /// The child's end, in the child.
    fn guest(name: &str) -> Result<Self::Guest>;
}

/// A path between processes that meet through a named segment the parent creates.
pub trait Named: Link + Sized {
    /// Creates the segment `name` and returns the parent's end.
    fn create(name: &str) -> Result<Self>;
    /// Opens the segment `name` and returns the child's end.
    fn open(name: &str) -> Result<Self>;
}

impl<T: Named> CrossProcess for T {
    type Pending = T;
    type Host = T;
    type Guest = T;

    fn prepare(name: &str) -> Result<(T, Stdio)> {
        Ok((T::create(name)?, Stdio::null()))
    }

    fn connect(pending: T, _child: &mut ChildGuard) -> Result<T> {
        Ok(pending)
    }

    fn guest(name: &str) -> Result<T> {
        T::open(name)
    }
}

/// A histogram for round trips of 1 ns to 100 s.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// The measuring side: `warm + count` round trips, the last `count` recorded.
pub fn ping<L: Link>(link: &mut L, warm: u64, count: u64) -> Result<Histogram<u64>> {
    let mut hist = histogram();
    for i in 0..warm + count {
        let v = 2 * i + 1;
        let t0 = Instant::now();
        link.send(v)?;
        let reply = link.recv()?;
        let dt = t0.elapsed();
        if reply != v + 1 {
            return Err(format!(
                "round trip {i}: sent {v}, got back {reply} instead of {}",
                v + 1
            )
            .into());
        }
        if i >= warm {
            hist.saturating_record(dt.as_nanos().try_into().unwrap_or(u64::MAX));
        }
    }
    Ok(hist)
}

/// The echoing side: `total` round trips.
pub fn echo<L: Link>(link: &mut L, total: u64) -> Result<()> {
    for i in 0..total {
        let v = link.recv()?;
        if v != 2 * i + 1 {
            return Err(format!("round trip {i}: received {v} instead of {}", 2 * i + 1).into());
        }
        link.send(v + 1)?;
    }
    Ok(())
}

/// A round-trip row between the main thread and a peer thread.
pub fn threads<T: InProcess>(ctx: &Ctx) -> Result<Measured> {
    let (mut mine, theirs) = T::pair()?;
    let plan = ctx.plan;
    let futex_before = futex_syscalls();
    let peer = ctx.spawn_peer(theirs, move |end| echo(end, plan.total()));
    let hist = ctx.or_abort(ping(&mut mine, plan.warm, plan.count));
    let ((), peer_pinned) = peer.join();
    Ok(Measured::latency(
        hist,
        futex_syscalls() - futex_before,
        ctx.main_pinned && peer_pinned,
    ))
}

/// A round-trip row between this process and a child process.
pub fn processes<T: CrossProcess>(ctx: &Ctx) -> Result<Measured> {
    let name = ctx.segment_name(0);
    let (pending, stdin) = T::prepare(&name)?;
    let mut child = ctx.spawn_child(&name, stdin)?;
    let mut host = T::connect(pending, &mut child)?;
    let futex_before = futex_syscalls();
    let hist = ctx.or_abort(ping(&mut host, ctx.plan.warm, ctx.plan.count));
    let futex = futex_syscalls() - futex_before;
    drop(host);
    let report = child.finish()?;
    Ok(Measured::latency(
        hist,
        futex + report.futex,
        ctx.main_pinned && report.pinned,
    ))
}

/// The child side of [`processes`].
pub fn guest<T: CrossProcess>(args: &ChildArgs) -> Result<Vec<u64>> {
    let mut end = T::guest(&args.name)?;
    or_exit(args, echo(&mut end, args.plan().total()));
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::floor::{FutexSleep, OneLine, TwoLine};
    use crate::links::{FrameBusy, PodBlocking, PodBusy, RtrbBusy};
    use std::time::Duration;

    /// `rounds` round trips over `T` between two threads; the histogram's sample count.
    fn ping_pong<T: InProcess>(rounds: u64) -> u64 {
        crate::within(Duration::from_secs(60), move || {
            let (mut mine, mut theirs) = T::pair().unwrap();
            let peer = std::thread::spawn(move || echo(&mut theirs, 10 + rounds).unwrap());
            let hist = ping(&mut mine, 10, rounds).unwrap();
            peer.join().unwrap();
            hist.len()
        })
    }

    #[test]
    fn every_in_process_path_echoes_in_order() {
        assert_eq!(ping_pong::<OneLine>(500), 500);
        assert_eq!(ping_pong::<TwoLine>(500), 500);
        assert_eq!(ping_pong::<FutexSleep>(50), 50);
        assert_eq!(ping_pong::<PodBusy>(500), 500);
        assert_eq!(ping_pong::<PodBlocking>(500), 500);
        assert_eq!(ping_pong::<FrameBusy>(500), 500);
        assert_eq!(ping_pong::<RtrbBusy>(500), 500);
    }

    /// A path that echoes every other reply twice, as a broken ring might.
    struct Stutter {
        last: u64,
        calls: u64,
    }

    impl Link for Stutter {
        fn send(&mut self, v: u64) -> Result<()> {
            self.last = v;
            Ok(())
        }

        fn recv(&mut self) -> Result<u64> {
            self.calls += 1;
            Ok(if self.calls == 3 {
                self.last
            } else {
                self.last + 1
            })
        }
    }

    #[test]
    fn a_wrong_reply_fails_the_row() {
        let mut link = Stutter { last: 0, calls: 0 };
        let e = ping(&mut link, 0, 10).unwrap_err();
        assert!(e.to_string().contains("round trip 2"), "{e}");
    }
}
