//! A child process that runs one test of this very test binary in a role, so that a
//! cross-process test really spawns a process. The child reads the role (and whatever
//! else it needs) from the environment; the two sides talk through marker lines on the
//! child's stdout and lines on its stdin.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a step may take before the test calls it a hang. A hang detector only, far
/// above any plausible time.
pub const HANG: Duration = Duration::from_secs(30);

/// A child running `test` of this binary; killed and reaped if the test ends without
/// reaping it.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// Runs `test` of this binary as a child with `env` added to its environment.
    pub fn spawn(test: &str, env: &[(&str, &str)]) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // A reader thread, so that waiting for a line can time out.
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer {
            child,
            stdin,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's next stdout line; fails the test if the child exits or stays silent
    /// for [`HANG`] while the parent waits for `what`.
    pub fn next_line(&mut self, what: &str) -> String {
        match self.lines.recv_timeout(HANG) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no {what} from the child in {HANG:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().unwrap();
                panic!("child exited ({status}) before printing {what}")
            }
        }
    }

    /// Waits for a marker line and returns the rest of it. libtest may print its own text
    /// in front of the child's on the same line.
    pub fn expect(&mut self, marker: &str) -> String {
        loop {
            if let Some((_, rest)) = self.next_line(marker).split_once(marker) {
                return rest.trim().to_owned();
            }
        }
    }

    pub fn tell(&mut self, line: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// Waits for the child to exit and checks that it succeeded.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < HANG,
                "the child did not exit within {HANG:?}"
            );
            thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "child failed: {status}");
    }

    /// SIGKILL, and optionally reap. Unreaped, the child stays a zombie until dropped.
    pub fn kill(&mut self, reap: bool) -> Instant {
        let at = Instant::now();
        self.child.kill().unwrap();
        if reap {
            self.child.wait().unwrap();
        }
        at
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tells a parent waiting in [`Peer::expect`] that `marker` was reached.
pub fn announce(marker: &str, detail: impl std::fmt::Display) {
    println!("\n{marker} {detail}");
    std::io::stdout().flush().unwrap();
}
