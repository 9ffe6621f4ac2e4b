//! The re-exec protocol of cross-process rows.
//!
//! The parent runs its own executable as `ringport bench-child <row> --name <segment>
//! --parent <pid> ...`. The child asks the kernel to kill it when the parent dies
//! (`PR_SET_PDEATHSIG`, then a check that the parent is still the one that started it),
//! pins itself to the other CPU, runs the row's child side, and prints a one-line JSON
//! report on stdout: `{"futex": syscalls, "marks": [...], "pinned": bool}`, where `marks`
//! are a throughput run's consumer readings (`tput::Marks`) and empty for round trips.
//! A row may use the child's stdin and stdout as its data path (the pipe row does); the
//! report then follows its data on stdout.
//!
//! The parent side is [`ChildGuard`]: it kills and reaps the child on every path that
//! does not end in [`ChildGuard::finish`], and the watchdog does the same if the run
//! aborts.

use crate::bench::Plan;
use crate::pin::pin_current;
use crate::{scenarios, watchdog, Result};
use ringport::atomics::futex_syscalls;
use rustix::process::{getppid, set_parent_process_death_signal, Signal};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};

/// Arguments of the hidden `bench-child` subcommand.
#[derive(clap::Args)]
pub struct ChildArgs {
    /// The row whose child side to run.
    pub row: String,
    /// The row's segment name.
    #[arg(long)]
    pub name: String,
    /// The pid of the parent that must stay alive.
    #[arg(long)]
    pub parent: u32,
    /// The CPU to pin to.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// The plan's warm-up count.
    #[arg(long)]
    pub warm: u64,
    /// The plan's measured count.
    #[arg(long)]
    pub count: u64,
    /// The plan's frame size.
    #[arg(long, default_value_t = 0)]
    pub frame: usize,
}

impl ChildArgs {
    /// The parent's plan for the row.
    pub fn plan(&self) -> Plan {
        Plan {
            warm: self.warm,
            count: self.count,
            frame: self.frame,
            trials: 1,
        }
    }
}

/// What a child reports.
pub struct ChildReport {
    /// Futex syscalls the child made.
    pub futex: u64,
    /// A throughput run's consumer readings (see `tput::Marks`).
    pub marks: Vec<u64>,
    /// Whether the child ran pinned.
    pub pinned: bool,
}

/// A running child process of a row; killed and reaped when dropped unfinished.
pub struct ChildGuard {
    child: Child,
    stdout: ChildStdout,
    reaped: bool,
}

impl ChildGuard {
    /// Starts the child side of `row`.
    pub fn spawn(
        row: &str,
        name: &str,
        plan: &Plan,
        cpu: Option<usize>,
        stdin: Stdio,
    ) -> Result<ChildGuard> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("bench-child")
            .arg(row)
            .args(["--name", name])
            .args(["--parent", &std::process::id().to_string()])
            .args(["--warm", &plan.warm.to_string()])
            .args(["--count", &plan.count.to_string()])
            .args(["--frame", &plan.frame.to_string()])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(cpu) = cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        let mut child = cmd.spawn()?;
        watchdog::track_child(child.id());
        let stdout = child.stdout.take().expect("stdout was piped");
        Ok(ChildGuard {
            child,
            stdout,
            reaped: false,
        })
    }

    /// The parent's end of the child's stdin, if it was piped.
    pub fn take_stdin(&mut self) -> Result<ChildStdin> {
        Ok(self
            .child
            .stdin
            .take()
            .ok_or("the child's stdin is not a pipe")?)
    }

    /// Another handle on the child's stdout, unbuffered, for a row that reads data from
    /// it; the report is read from the original afterwards.
    pub fn stdout_data(&self) -> Result<File> {
        Ok(File::from(self.stdout.as_fd().try_clone_to_owned()?))
    }

    /// Waits for the child to exit and returns its report; an error if it failed.
    pub fn finish(mut self) -> Result<ChildReport> {
        let mut out = String::new();
        self.stdout.read_to_string(&mut out)?;
        let status = self.child.wait()?;
        self.reaped = true;
        watchdog::untrack_child();
        if !status.success() {
            return Err(format!("child process {}", status).into());
        }
        let line = out.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("child report {line:?} is not JSON: {e}"))?;
        let futex = v["futex"].as_u64().ok_or("child report lacks futex")?;
        let pinned = v["pinned"].as_bool().ok_or("child report lacks pinned")?;
        let marks = v["marks"]
            .as_array()
            .ok_or("child report lacks marks")?
            .iter()
            .map(|m| m.as_u64().ok_or("child report has a bad mark"))
            .collect::<std::result::Result<Vec<u64>, _>>()?;
        Ok(ChildReport {
            futex,
            marks,
            pinned,
        })
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.reaped {
            // Killing a child that already exited fails harmlessly; wait reaps either way.
            let _ = self.child.kill();
            let _ = self.child.wait();
            watchdog::untrack_child();
        }
    }
}

/// Runs `ringport bench-child`.
pub fn main(args: ChildArgs) -> ExitCode {
    match run(&args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ringport bench-child {}: {e}", args.row);
            ExitCode::FAILURE
        }
    }
}

/// The value of a child-side step, or an immediate exit with the error while this side's
/// end is still open: dropping it first would let the parent report a closed peer
/// instead of the cause.
pub fn or_exit<T>(args: &ChildArgs, r: Result<T>) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("ringport bench-child {}: {e}", args.row);
        std::process::exit(1)
    })
}

/// The child side proper; returns the report line.
fn run(args: &ChildArgs) -> Result<String> {
    set_parent_process_death_signal(Some(Signal::KILL))?;
    // The parent may have died before the death signal was armed.
    let parent = getppid().map(|p| p.as_raw_nonzero().get().unsigned_abs());
    if parent != Some(args.parent) {
        return Err(format!("parent {} is gone", args.parent).into());
    }
    let pinned = pin_current(args.cpu);
    let side = scenarios::all()
        .into_iter()
        .find(|s| s.name == args.row)
        .and_then(|s| s.child)
        .ok_or_else(|| format!("no cross-process row named {:?}", args.row))?;
    let futex_before = futex_syscalls();
    let marks = side(args)?;
    let report = serde_json::json!({
        "futex": futex_syscalls() - futex_before,
        "marks": marks,
        "pinned": pinned,
    });
    Ok(report.to_string())
}
