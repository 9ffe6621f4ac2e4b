//! The web's SharedState pattern across processes: workers keep a versioned key/value
//! state in sync (`setState` / `getState`), and a worker that joins late asks for the
//! full state (`requestSync`) and then follows the changes.
//!
//! ```text
//! cargo run --example shared_state
//! ```
//!
//! The main process creates the table and starts a writer process (this same binary in
//! another role) that publishes a job's progress. Halfway through, it starts a late
//! joiner, which takes a snapshot, then waits for every later change with
//! `wait_for_change`. Both readers check that they saw each key's final value, and that
//! versions only grew.

use ringport::state::{SharedState, StateOptions};
use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::Duration;

const STEPS: u64 = 200;
/// Long enough for a loaded machine; the example never waits this long when healthy.
const WAIT: Duration = Duration::from_secs(20);

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("writer") => writer(&args[2]),
        Some("late-joiner") => late_joiner(&args[2]),
        _ => coordinator(),
    }
}

fn spawn(role: &str, name: &str) -> Result<Child, Error> {
    Ok(Command::new(std::env::current_exe()?)
        .args([role, name])
        .spawn()?)
}

/// Creates the table, starts the writer and, halfway, the late joiner; follows the state.
fn coordinator() -> Result<(), Error> {
    let name = format!("ringport-example-state-{}", std::process::id());
    let state = SharedState::create(
        &name,
        StateOptions {
            capacity: 64,
            max_key_len: 32,
            max_value_len: 128,
        },
    )?;
    state.set("job.status", b"starting")?;
    let mut writer = spawn("writer", &name)?;
    let mut joiner = None;
    let mut seen = state.version();
    loop {
        seen = state.wait_for_change(seen, WAIT)?;
        let progress = state.get_pod::<u64>("job.progress")?.map_or(0, |v| v.value);
        if joiner.is_none() && progress >= STEPS / 2 {
            println!("main: progress {progress}/{STEPS}, starting a late joiner");
            joiner = Some(spawn("late-joiner", &name)?);
        }
        let status = state
            .get("job.status")?
            .expect("set before the writer started");
        if status.value == b"done" {
            break;
        }
    }
    assert!(writer.wait()?.success(), "writer failed");
    if let Some(mut joiner) = joiner {
        assert!(joiner.wait()?.success(), "late joiner failed");
    }
    let snap = state.snapshot()?;
    println!("main: final state at version {}:", snap.version);
    let mut entries = snap.entries;
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    for e in entries {
        let shown = match <[u8; 8]>::try_from(e.value.as_slice()) {
            Ok(word) if e.key == "job.progress" => u64::from_ne_bytes(word).to_string(),
            _ => format!("{:?}", String::from_utf8_lossy(&e.value)),
        };
        println!("  {:<16} v{:<4} {shown}", e.key, e.version);
    }
    Ok(())
}

/// Publishes a job's progress, one `setState` per step.
fn writer(name: &str) -> Result<(), Error> {
    let state = SharedState::open(name)?;
    state.set("job.status", b"running")?;
    let progress = state.entry("job.progress")?;
    for step in 1..=STEPS {
        progress.set_pod(&step)?;
        if step % 50 == 0 {
            state.set(
                &format!("job.checkpoint.{}", step / 50),
                format!("step {step}").as_bytes(),
            )?;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    state.set("job.status", b"done")?;
    Ok(())
}

/// Joins late: `requestSync` (a snapshot), then every later change.
fn late_joiner(name: &str) -> Result<(), Error> {
    let state = SharedState::open(name)?;
    let snap = state.snapshot()?;
    println!(
        "late joiner: synced {} keys at version {}",
        snap.entries.len(),
        snap.version
    );
    let mut mine: HashMap<String, (Vec<u8>, u64)> = snap
        .entries
        .into_iter()
        .map(|e| (e.key, (e.value, e.version)))
        .collect();
    let mut seen = snap.version;
    while mine.get("job.status").map(|v| v.0.as_slice()) != Some(b"done") {
        seen = state.wait_for_change(seen, WAIT)?;
        for e in state.iter() {
            let e = e?;
            let previous = mine.insert(e.key.clone(), (e.value, e.version));
            if let Some((_, v)) = previous {
                assert!(
                    e.version >= v,
                    "{} went back from v{v} to v{}",
                    e.key,
                    e.version
                );
            }
        }
    }
    let progress = u64::from_ne_bytes(mine["job.progress"].0.as_slice().try_into()?);
    assert_eq!(progress, STEPS, "the late joiner missed the last progress");
    assert_eq!(
        mine.keys()
            .filter(|k| k.starts_with("job.checkpoint"))
            .count(),
        4
    );
    println!("late joiner: followed to version {seen}, progress {progress}/{STEPS}");
    Ok(())
}
