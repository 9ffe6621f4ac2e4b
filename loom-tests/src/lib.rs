//! Loom models of ringport's lock-free algorithms and of its wait/notify protocol.
//!
//! # What is modelled
//!
//! Every model drives ringport's own code through its public API; nothing here
//! re-implements an algorithm. Built with `--cfg loom`, ringport swaps its atomics for
//! loom's (through its `sync` shim), places ring slots, frame words and pool buffers in
//! loom's race-tracked cells, places state tables in loom's atomics, and replaces the
//! futex with a model, so loom explores the interleavings and the weak-memory outcomes
//! of the real rings, tables and pools. Each model has two threads (three where two
//! writers meet a reader, two producers or consumers share an MPMC ring, or two readers
//! share a pool buffer), the smallest ring, table or pool of its kind, and at most four
//! messages or writes:
//!
//! - `tests/pod_ring.rs`: the SPSC [`PodRing`](ringport::ring::PodRing), with one slot
//!   per block and two blocks, so that the third message wraps around the ring into its
//!   second lap: single sends and receives, batches, blocking send and receive, and a
//!   close that must be seen only after everything sent was received.
//! - `tests/frame_ring.rs`: the [`FrameRing`](ringport::ring::FrameRing) at its minimum
//!   capacity, 128 bytes, with frame lengths chosen so that each model writes a pad
//!   frame, wraps, and looks at header slots that held headers of the previous lap:
//!   single frames, batches, close and drain, blocking send and receive.
//! - `tests/wait_notify.rs`: the raw [`wait`](ringport::atomics::wait) /
//!   [`notify`](ringport::atomics::notify) pair used as `Atomics.wait` /
//!   `Atomics.notify`, and the waiter-counting signal behind every blocking ring call,
//!   in both directions (a receiver waiting for data, a sender waiting for space).
//! - `tests/shared_state.rs`: [`SharedState`](ringport::state::SharedState) on the heap,
//!   with one or two keys and two-word values: the two-copy seqlock of a slot (one
//!   writer or two writers of one key against a reader: no torn value, versions never
//!   going back, the later writer's value staying), the table version (a reader that has
//!   seen an update's or an insert's version reads that write), `wait_for_change` on the
//!   table and on an [`Entry`](ringport::state::Entry) (woken by the write, not by a
//!   write to another key), and a remove racing a set of one key (the later version
//!   decides, and the live-key count agrees). Loom has no clock, so an operation that
//!   waits for another participant yields to the model three times and then reports
//!   `StateError::Contended`; the models accept that outcome and check everything else.
//! - `tests/mpmc.rs`: the [`mpmc`](ringport::mpmc) ring at its minimum capacity, two
//!   slots, with three messages, so that slot 0 is reused in lap 1: two producers and one
//!   consumer (each message once, one producer's two in order), one producer and two
//!   consumers (each message once, either consumer lapped while it reads), blocking send
//!   and receive, and disconnection seen only after everything sent was received; and
//!   with two messages, a consumer that starts at the head hint another consumer left
//!   and must see slots no older than that one saw. At most one thread of a model polls
//!   with `try_` calls, the others block: two pollers waiting for a third can take turns
//!   for ever without loom ever running the third, and a sleeper costs loom far fewer
//!   branches than a poller.
//! - `tests/pool.rs`: a heap [`BufferPool`](ringport::pool::BufferPool) of one 64-byte
//!   buffer, whose handles cross between threads behind a `Relaxed` flag, so that only
//!   the pool's state word orders one holder's accesses to the bytes before the next
//!   one's: a buffer sent, accepted, written and returned, while its sender waits to
//!   loan it again (one holder at a time); a handle replayed after its buffer went back,
//!   while the next loan of the buffer is held, in flight and accepted back (refused as
//!   stale, never taking the later loan); and a buffer shared with two readers while its
//!   publisher retires its anchor and waits to loan it again (each reader that takes a
//!   reference reads the publisher's bytes and is done before the next write, a reader
//!   that comes too late finds its handle stale, and the buffer goes back once).
//! - `tests/port_handover.rs`: one end of a 128-byte frame ring changing holders (the
//!   handover a transferred port makes) after its first frame, while the peer at the
//!   other end blocks to send or receive: a receiving end and a sending end. The peer
//!   sees every frame once, in order, and the end closed only when its last holder drops
//!   it.
//! - `tests/priority_bell.rs`: the doorbell of a three-level
//!   [`PriorityMessageQueue`](ringport::queue::PriorityMessageQueue) of 128-byte frame
//!   rings, one `Signal` that every send rings after publishing into its level's ring and
//!   on which the receiver sleeps for all of them: a send at the lowest level while the
//!   receiver is about to sleep; a low send, then a high one, that the receiver waits for
//!   (and, once it has seen both sent, receives high first); and the sender's drop, which
//!   closes the levels and rings, waking a receiver that drained the queue. The sender
//!   outlives the sends it is tested on, since its drop would ring the bell too.
//! - `tests/worker_duty.rs`: the [`Duty`](ringport::worker::Duty) word of a process
//!   pool's reader thread, which sleeps off duty while nothing in flight is left to it:
//!   one or two callers leave a reply to the reader (under the pool's lock, then a call)
//!   while it finds nothing and goes off duty; it must be called back and take them. The
//!   pool's half of the contract, its lock and what it counts as left to the reader, is
//!   a loom mutex around a counter, as the dispatcher's lock is in the pool.
//!
//! # How a lost wakeup becomes a failure
//!
//! Under loom the futex is a table of sleepers behind one lock, as the kernel's hash
//! bucket is: `wait` compares the word under the lock and parks the thread until a
//! `notify` on the same word takes it off the table, and a timed wait never times out.
//! A sleeper that nobody wakes therefore stays parked for ever; once no thread can run,
//! loom reports the execution as a deadlock. A wakeup lost to a missing fence or a
//! missing wake is thus an ordinary model failure, found in the interleaving that loses
//! it, instead of a hang that a test would have to time out. The model
//! `wait_without_notify_is_a_deadlock` checks that this is so: it leaves the notify out
//! and must be reported as a deadlock.
//!
//! Data races are found through the cells: a consumer that reads a slot without having
//! acquired the store that published it, or a producer that overwrites a slot the
//! consumer may still be reading, is reported as a causality violation. A stale header
//! is found by the ring itself, which validates every header and reports the stale one
//! as corruption.
//!
//! # Negative controls
//!
//! ringport has mutants, selected with `--cfg ringport_mutant="NAME"`, that each weaken
//! one ordering or drop one step of a protocol. Every model names the mutants it is a
//! control of. Built with one of those, the test runs the model in a child process (the
//! same test binary, filtered to that test) and asserts that the child failed; a loom
//! deadlock can abort the process instead of unwinding (see `run`), which
//! `catch_unwind` could not report. A model that is not a control of the active mutant
//! is skipped. Which models catch which mutant, and how:
//!
//! | mutant | what it breaks | caught by | loom reports |
//! | --- | --- | --- | --- |
//! | `typed_publish_relaxed` | pod stamp store is `Relaxed` | every `pod_ring` model | causality violation |
//! | `typed_release_relaxed` | pod `released` store is `Relaxed` | every `pod_ring` model | causality violation |
//! | `frame_publish_relaxed` | frame header store is `Relaxed` | every `frame_ring` model | causality violation |
//! | `frame_skip_zero_next` | the header after a frame is not zeroed | every `frame_ring` model | `Corrupt`: sequence number out of order |
//! | `signal_no_fence` | the signal's store-load fences are gone | the blocking models | deadlock, or too many branches where a poller waits for a sleeper nobody wakes |
//! | `signal_no_notify` | the signal never wakes a sleeper | the blocking models | deadlock, or too many branches where a poller waits for a sleeper nobody wakes |
//! | `state_writer_no_fence` | no `Release` fence between a state write's mark and its words | `writers_of_one_key_serialise_and_readers_see_whole_values` | torn read |
//! | `state_reader_no_fence` | no `Acquire` fence before a state read re-checks `SEQ` | both torn-read models of `shared_state` | torn read |
//! | `state_version_relaxed` | a state write takes its version `Relaxed` | the two version models of `shared_state` | stale read |
//! | `broadcast_writer_no_fence` | no `Release` fence between a broadcast publisher's claim and its words | `a_subscriber_never_delivers_a_message_overwritten_under_it` in `broadcast` | torn message |
//! | `signal_no_arm` | a sleeper never arms the signal, so no notify wakes it | the blocking models of `broadcast`, every `priority_bell` model | deadlock |
//! | `mpmc_publish_relaxed` | the MPMC producer's `FULL` store is `Relaxed` | every `mpmc` model | causality violation |
//! | `mpmc_release_relaxed` | the MPMC consumer's `FREE` store is `Relaxed` | every `mpmc` model that reuses a slot | causality violation |
//! | `pool_loan_relaxed` | a pool buffer's loan, accept and shared reference are `Relaxed`, and so are its return, send and share | every `pool` model | causality violation |
//! | `pool_unref_relaxed` | dropping a reference to a shared buffer is `Relaxed` | `a_shared_buffer_goes_back_after_its_last_reader` in `pool` | causality violation |
//! | `pool_no_generation` | a buffer's generation never changes, so a handle names every loan of its buffer | `a_replayed_handle_never_takes_a_later_loan` in `pool` | a replayed handle not refused as stale, or taking the later loan |
//! | `port_handover_closes` | a ring end passes through `CLOSED` on its way to `HANDOVER` | both `port_handover` models | the peer's send fails `Disconnected`, or its receive reads the end as gone |
//! | `priority_bell_unrung` | a priority send publishes without ringing the doorbell | the two send models of `priority_bell` | deadlock |
//! | `worker_duty_call_silent` | a call that finds a pool's reader thread off duty does not wake it | both `worker_duty` models | deadlock |
//!
//! The blocking models are `blocking_send_on_full_and_blocking_recv` and
//! `close_is_seen_after_everything_sent` in `pod_ring`, `blocking_send_and_recv` in
//! `frame_ring`, the two ring models of `wait_notify`, the two `wait_for_change`
//! models of `shared_state`, every model of `mpmc`, every model of `priority_bell`, and
//! (for `signal_no_fence`, whose fences `WaitCell` shares) every model of `worker_duty`.
//!
//! A torn read is a value whose words, or whose version, come from two writes. Only the
//! model with two writers catches `state_writer_no_fence`: a single writer notifies
//! after each write, and the notifier's `SeqCst` fence, a release fence too, orders one
//! write's flip before the next write's words, which is all the missing fence did. The
//! second of two writer threads has issued no fence before it fills the copy a reader
//! may still be copying.
//!
//! # Running
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p loom-tests --release
//! RUSTFLAGS="--cfg loom --cfg ringport_mutant=\"signal_no_fence\"" cargo test -p loom-tests --release
//! loom-tests/run.sh    # the positive suite, then the suite under every mutant
//! ```
//!
//! `-- --nocapture` shows how many executions each model explored and, under a mutant,
//! what loom reported. The preemption bound defaults to `DEFAULT_PREEMPTIONS` (3);
//! `LOOM_MAX_PREEMPTIONS` overrides it, and loom's other variables (`LOOM_LOG`,
//! `LOOM_LOCATION`, `LOOM_CHECKPOINT_FILE`, ...) apply as usual. Without `--cfg loom`
//! this crate and its tests compile to nothing.

#![deny(missing_docs)]

#[cfg(loom)]
mod harness {
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// The preemption bound used unless `LOOM_MAX_PREEMPTIONS` is set: enough for every
    /// mutant to be caught, small enough for the positive suite to finish in minutes.
    pub const DEFAULT_PREEMPTIONS: usize = 3;

    /// Set in the environment of the child process that runs a negative control.
    const CONTROL_CHILD: &str = "LOOM_TESTS_CONTROL_CHILD";

    /// The mutant this build was compiled with, if any.
    const MUTANT: Option<&str> = if cfg!(ringport_mutant = "typed_publish_relaxed") {
        Some("typed_publish_relaxed")
    } else if cfg!(ringport_mutant = "typed_release_relaxed") {
        Some("typed_release_relaxed")
    } else if cfg!(ringport_mutant = "frame_publish_relaxed") {
        Some("frame_publish_relaxed")
    } else if cfg!(ringport_mutant = "frame_skip_zero_next") {
        Some("frame_skip_zero_next")
    } else if cfg!(ringport_mutant = "signal_no_fence") {
        Some("signal_no_fence")
    } else if cfg!(ringport_mutant = "signal_no_notify") {
        Some("signal_no_notify")
    } else if cfg!(ringport_mutant = "state_writer_no_fence") {
        Some("state_writer_no_fence")
    } else if cfg!(ringport_mutant = "state_reader_no_fence") {
        Some("state_reader_no_fence")
    } else if cfg!(ringport_mutant = "state_version_relaxed") {
        Some("state_version_relaxed")
    } else if cfg!(ringport_mutant = "broadcast_writer_no_fence") {
        Some("broadcast_writer_no_fence")
    } else if cfg!(ringport_mutant = "signal_no_arm") {
        Some("signal_no_arm")
    } else if cfg!(ringport_mutant = "mpmc_publish_relaxed") {
        Some("mpmc_publish_relaxed")
    } else if cfg!(ringport_mutant = "mpmc_release_relaxed") {
        Some("mpmc_release_relaxed")
    } else if cfg!(ringport_mutant = "pool_loan_relaxed") {
        Some("pool_loan_relaxed")
    } else if cfg!(ringport_mutant = "pool_unref_relaxed") {
        Some("pool_unref_relaxed")
    } else if cfg!(ringport_mutant = "pool_no_generation") {
        Some("pool_no_generation")
    } else if cfg!(ringport_mutant = "port_handover_closes") {
        Some("port_handover_closes")
    } else if cfg!(ringport_mutant = "priority_bell_unrung") {
        Some("priority_bell_unrung")
    } else if cfg!(ringport_mutant = "worker_duty_call_silent") {
        Some("worker_duty_call_silent")
    } else {
        None
    };

    /// Explores every execution of `model` within the preemption bound and returns how
    /// many there were; panics on the first failing one.
    fn check<F>(model: F) -> usize
    where
        F: Fn() + Sync + Send + 'static,
    {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
        }
        // A std atomic, which loom neither tracks nor reorders, so it counts executions
        // without adding branches to explore.
        let executions = Arc::new(AtomicUsize::new(0));
        let counter = executions.clone();
        builder.check(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            model();
        });
        executions.load(Ordering::Relaxed)
    }

    /// Runs `model` as the calling `#[test]` function.
    ///
    /// Without a mutant the model must pass. Built with a mutant listed in `controls`,
    /// the model must fail, and `run` panics if loom explored it without finding the
    /// failure. Built with any other mutant, the model is skipped: it says nothing about
    /// that mutant.
    ///
    /// A control runs in a child process (this test binary, filtered to this test) rather
    /// than under `catch_unwind`: loom reports a deadlock by panicking on the stack of the
    /// thread that parked last, after it has already cleared the active thread, so the
    /// first loom object dropped while that stack unwinds (a ring end the thread owns,
    /// the futex model's wake flag) panics again inside loom and the process aborts.
    /// Only a process boundary turns that abort into an answer.
    pub fn run<F>(controls: &[&str], model: F)
    where
        F: Fn() + Sync + Send + 'static,
    {
        if std::env::var_os(CONTROL_CHILD).is_some() {
            check(model);
            return;
        }
        let name = &test_name();
        match MUTANT {
            None => passes(name, model),
            Some(m) if controls.contains(&m) => expect_failure(name, m, ""),
            Some(m) => eprintln!("{name}: skipped, not a control for {m}"),
        }
    }

    /// Runs `model`, which is broken on purpose, as the calling `#[test]` function: loom
    /// must report a failure whose message contains `symptom`, in a child process as for
    /// the controls of [`run`]. Skipped under a mutant.
    pub fn run_broken<F>(symptom: &str, model: F)
    where
        F: Fn() + Sync + Send + 'static,
    {
        if std::env::var_os(CONTROL_CHILD).is_some() {
            check(model);
            return;
        }
        let name = &test_name();
        match MUTANT {
            None => expect_failure(name, "the broken model", symptom),
            Some(m) => eprintln!("{name}: skipped under {m}"),
        }
    }

    /// libtest runs every test on a thread named after it, which is also the filter that
    /// selects the test alone in a child process.
    fn test_name() -> String {
        std::thread::current()
            .name()
            .expect("run from a #[test] function, on the thread libtest names after it")
            .to_owned()
    }

    fn passes<F>(name: &str, model: F)
    where
        F: Fn() + Sync + Send + 'static,
    {
        let executions = check(model);
        eprintln!("{name}: {executions} executions explored");
    }

    /// Runs the test `name` in a child process, which must fail with `symptom` in its
    /// output; `what` names the defect for the messages.
    fn expect_failure(name: &str, what: &str, symptom: &str) {
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = Command::new(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CONTROL_CHILD, "1")
            .output()
            .expect("run the model in a child process");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("running 1 test"),
            "the child did not run exactly the test {name}:\n{text}"
        );
        assert!(!out.status.success(), "loom did not catch {what} in {name}");
        let lines: Vec<&str> = text.lines().collect();
        let found = lines
            .iter()
            .position(|l| l.contains(" panicked at "))
            .and_then(|i| lines.get(i + 1))
            .map_or_else(
                || format!("no panic message, the child ended with {}", out.status),
                |l| (*l).to_owned(),
            );
        assert!(
            found.contains(symptom),
            "{name} failed, but not with {symptom:?}: {found}"
        );
        eprintln!("{name}: loom caught {what}: {found}");
    }
}

#[cfg(loom)]
pub use harness::{run, run_broken, DEFAULT_PREEMPTIONS};
